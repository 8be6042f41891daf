/* weir-milter - weir's policy milter for Postfix and Sendmail
 *
 * SYNOPSIS
 *	weir-milter [-c FILE] [-f] [-n] [-V]
 *
 * DESCRIPTION
 *	Runs inside the MTA's SMTP session through the milter protocol
 *	(libmilter). For every message it logs one key=value line with the
 *	queue id, client, SMTP AUTH login, envelope and decision; policy
 *	checks plug into milter/session.c.
 *
 *	-c FILE	configuration (default SYSCONFDIR/weir/weir.conf)
 *	-f	foreground: log to stderr, do not detach
 *	-n	check the configuration, print every error as file:line, exit
 *	-V	print the version
 *
 * SIGNALS
 *	SIGUSR1 reloads the configuration: sessions in flight keep the one
 *	they started with; a file with errors is refused and the running
 *	configuration stays. SIGTERM, SIGINT and SIGHUP belong to libmilter,
 *	which stops accepting connections and exits.
 *
 * SECURITY
 *	Started as root, weir-milter opens its socket, writes its pid file,
 *	and the metrics endpoint (so that either may use a port below
 *	1024), then becomes the configured user for good before it serves
 *	anyone; the endpoint's thread is the process's and drops with it.
 *
 * CONFIGURATION PARAMETERS
 *	user, hostname, log_facility, log_level, milter.socket,
 *	milter.socket_mode, milter.pid_file, milter.timeout,
 *	milter.metrics_listen (Prometheus /metrics over HTTP); the policy
 *	groups (policy, senders, spf, dkim, rate); suppression.milter and
 *	suppression.db (recipients refused at RCPT).
 */
#include "autoconf.h"

#include <errno.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/metrics.h"
#include "milter/mlfi.h"
#include "milter/session.h"
#include "policy/config.h"
#include "policy/preflight.h"
#include "policy/suppress.h"

static const char *config_path;
static volatile sig_atomic_t stopping;

static void usage(void)
{
	fprintf(stderr, "usage: weir-milter [-c FILE] [-f] [-n] [-V]\n");
	exit(2);
}

/* load - load config_path; on errors log each one (or print them when
 * to_stderr) and return NULL */
static struct weir_config *load(bool to_stderr)
{
	return config_load_reported(config_path, CONFIG_FOR_MILTER, to_stderr, NULL);
}

/* reload - SIGUSR1: swap in a new configuration if it loads cleanly */
static void reload(void)
{
	struct weir_config *old = config_current();
	struct weir_config *cfg = load(false);

	if (cfg == NULL) {
		log_error("reload refused: %s has errors; keeping the running configuration",
			  config_path);
		config_unref(old);
		return;
	}
	if (strcmp(old->milter.socket, cfg->milter.socket) != 0 ||
	    strcmp(old->milter.metrics_listen, cfg->milter.metrics_listen) != 0 ||
	    strcmp(old->user, cfg->user) != 0)
		log_warning("reload: milter.socket, milter.metrics_listen and user take effect "
			    "only after a restart");
	log_set_level((enum log_level)cfg->log_level);
	config_set_current(cfg);
	log_info("reload: configuration %s loaded", config_path);
	config_unref(old);
}

/* signal_thread - waits for SIGUSR1, which every other thread blocks */
static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (stopping)
			return NULL;
		if (sig == SIGUSR1)
			reload();
	}
}

/* open_socket - have libmilter create its socket, then set the mode and
 * owner of a unix socket so the MTA (in the user's group) can connect */
static void open_socket(const struct weir_config *cfg)
{
	struct endpoint ep;
	const char *err;

	if (smfi_setconn(cfg->milter.socket) != MI_SUCCESS)
		log_fatal("milter.socket %s: rejected by libmilter", cfg->milter.socket);
	smfi_settimeout((int)cfg->milter.timeout);
	if (mlfi_register() < 0)
		log_fatal("smfi_register failed");
	/* smfi_opensocket(true) removes an existing unix socket: never do
	 * that to a milter that is still serving on it. */
	if (endpoint_parse_milter(cfg->milter.socket, &ep, &err) == 0 &&
	    ep.family == ENDPOINT_UNIX && endpoint_unix_alive(ep.path))
		log_fatal("%s: another process is listening on this socket", cfg->milter.socket);
	if (smfi_opensocket(true) != MI_SUCCESS)
		log_fatal("cannot listen on %s (in use? permissions?)", cfg->milter.socket);
	if (ep.family == ENDPOINT_UNIX) {
		uid_t uid;
		gid_t gid;
		if (chmod(ep.path, (mode_t)cfg->milter.socket_mode) < 0)
			log_fatal("chmod %s: %s", ep.path, strerror(errno));
		if (geteuid() == 0 && daemon_lookup_user(cfg->user, &uid, &gid) == 0 &&
		    chown(ep.path, uid, gid) < 0)
			log_fatal("chown %s: %s", ep.path, strerror(errno));
	}
}

static char *pid_file;

static void remove_pid_file(void)
{
	if (pid_file != NULL)
		daemon_pidfile_remove(pid_file);
	free(pid_file);
	pid_file = NULL;
}

/* write_pid_file - before the socket is opened, so a second instance
 * stops here, and owned by the user so it can be removed after the drop */
static void write_pid_file(const struct weir_config *cfg)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	const char *err;

	if (geteuid() == 0 && daemon_lookup_user(cfg->user, &uid, &gid) < 0)
		log_fatal("user %s: no such account (create it, or set 'user')", cfg->user);
	preflight_prepare_store(cfg, uid, gid); /* still root: the SPF preflight's directory */
	if (cfg->rate.backend == RATE_BACKEND_MEMORY && cfg->rate.nlimits > 0)
		daemon_prepare_db(cfg->rate.state_db, uid, gid, "rate state");
	if (cfg->rate.nlimits > 0) /* rate hits for weirctl report */
		daemon_prepare_db(cfg->outcome.db, uid, gid, "outcome log");
	if (cfg->suppression.milter)
		suppress_prepare_db(cfg, uid, gid);
	if (cfg->milter.pid_file[0] == '\0')
		return;
	if (daemon_pidfile_write(cfg->milter.pid_file, uid, gid, &err) < 0)
		log_fatal("pid file %s: %s", cfg->milter.pid_file, err);
	pid_file = xstrdup(cfg->milter.pid_file);
	atexit(remove_pid_file);
}

static void become_user(const struct weir_config *cfg)
{
	const char *err;

	if (daemon_drop_privileges(cfg->user, &err) < 0)
		log_fatal("cannot switch to user %s: %s", cfg->user, err);
}

int main(int argc, char **argv)
{
	bool foreground = false, check_only = false;
	struct weir_config *cfg;
	pthread_t sigthread;
	sigset_t set;
	int c, rc;

	config_path = config_default_path();
	while ((c = getopt(argc, argv, "c:fnV")) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'f': foreground = true; break;
		case 'n': check_only = true; break;
		case 'V': printf("weir-milter %s\n", PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	log_open("weir-milter", true, "mail");
	cfg = load(true);
	if (cfg == NULL)
		return 1;
	if (check_only) {
		printf("%s: ok\n", config_path);
		config_unref(cfg);
		return 0;
	}
	log_set_level((enum log_level)cfg->log_level);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!foreground) {
		log_open("weir-milter", false, cfg->log_facility);
		if (daemon_detach() < 0)
			log_fatal("cannot detach: %s", strerror(errno));
	}
	/* Block SIGUSR1 in every thread libmilter will start (and until
	 * our signal thread waits for it: a reload signal during start-up is
	 * then taken late, not fatal); one thread of ours takes it with
	 * sigwait. SIGHUP, SIGTERM and SIGINT are blocked too, so that only
	 * libmilter's own signal thread (which sigwaits for them) receives
	 * them. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	write_pid_file(cfg);
	milter_metrics_init();
	open_socket(cfg);
	milter_metrics_listen(cfg); /* with every signal above blocked in its thread */
	become_user(cfg);
	log_info("starting socket=%s user=%s config=%s", cfg->milter.socket,
		 geteuid() == 0 ? "root" : cfg->user, config_path);
	config_set_current(cfg); /* the reference is the running one's now */

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (pthread_create(&sigthread, NULL, signal_thread, &set) != 0)
		log_fatal("cannot start the signal thread");
	daemon_ready();
	rc = smfi_main();
	log_info("stopping");
	rate_stage_shutdown(); /* the last counts reach rate.state_db */
	milter_metrics_stop();

	stopping = 1;
	pthread_kill(sigthread, SIGUSR1);
	pthread_join(sigthread, NULL);
	config_set_current(NULL);
	return rc == MI_SUCCESS ? 0 : 1;
}
