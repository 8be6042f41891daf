/* weir-agent - delivery agent: LMTP/ESMTP from the MTA, SMTP to the smart host
 *
 * SYNOPSIS
 *	weir-agent [-c FILE] [-f] [-n] [-V]
 *
 * DESCRIPTION
 *	The MTA (Postfix's lmtp/smtp client, Sendmail's mailers) hands
 *	outgoing mail to weir-agent, which relays it in real time to the
 *	smart host and answers each recipient with what the smart host
 *	said: 250 only after the smart host accepted the recipient and the
 *	data, 4xx for anything temporary (including our own trouble), 5xx
 *	only for the smart host's permanent refusals. The MTA keeps
 *	ownership of every message.
 *
 * SIGNALS
 *	SIGHUP, SIGUSR1: reload weir.conf (sessions in flight keep the old
 *	configuration). SIGTERM, SIGINT: stop accepting, finish
 *	transactions in flight (at most agent.shutdown_timeout), exit.
 *
 * CONFIGURATION PARAMETERS
 *	user, hostname, resolver, resolver_timeout, log_facility,
 *	log_level, every agent.* setting and every throttle.* setting;
 *	outcome.* (the outcome log), bounce.* (intake for bounce.domains,
 *	VERP, classification rules, webhooks) and suppression.* (the
 *	list it records bounces in and, with suppression.agent, checks
 *	before relaying); agent.http_listen, agent.http_auth_file and
 *	agent.dashboard_dir: Prometheus metrics at /metrics and the
 *	dashboard (stats.c, http.c) (see weir.conf(5)).
 *
 * SECURITY
 *	Started as root, binds its sockets, writes the pid file, then
 *	becomes "user" for good before it reads any network input. */
#include "autoconf.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/http.h"
#include "delivery-agent/pool.h"
#include "delivery-agent/record.h"
#include "delivery-agent/stats.h"
#include "delivery-agent/throttle.h"
#include "lib/daemon.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

#define FORCE_EXIT_DELAY 5 /* seconds after the forced 421s before exit */

static const char *config_path;
static bool foreground;

/* usage - print the synopsis and exit */
static void usage(void)
{
	fprintf(stderr, "usage: weir-agent [-c FILE] [-f] [-n] [-V]\n");
	exit(2);
}

/* load - read the configuration, printing or logging each error */
static struct weir_config *load(bool to_stderr)
{
	return config_load_reported(config_path, CONFIG_FOR_AGENT, to_stderr, NULL);
}

/* accept_cb - a connection on one of our listeners */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct listener *li = arg;

	(void)l;
	(void)salen;
	client_accept(li->agent, fd, sa, li->lmtp);
}

/* bind_one - open one listening socket (as root, before dropping) */
static void bind_one(struct agent *a, const char *spec, bool lmtp, const struct weir_config *cfg,
		     uid_t uid, gid_t gid)
{
	struct listener *li;
	const char *err;
	int fd;

	a->listeners = xrealloc(a->listeners, (a->nlisteners + 1) * sizeof(*a->listeners));
	li = xcalloc(1, sizeof(*li));
	a->listeners[a->nlisteners++] = li;
	li->agent = a;
	li->lmtp = lmtp;
	li->spec = xstrdup(spec);
	if (endpoint_parse_milter(spec, &li->ep, &err) < 0)
		log_fatal("%s: %s", spec, err);
	fd = endpoint_listen(&li->ep, 128, &err);
	if (fd < 0)
		log_fatal("cannot listen on %s: %s", spec, err);
	if (li->ep.family == ENDPOINT_UNIX) {
		if (chmod(li->ep.path, (mode_t)cfg->agent.socket_mode) < 0)
			log_fatal("chmod %s: %m", li->ep.path);
		if (geteuid() == 0 && chown(li->ep.path, uid, gid) < 0)
			log_fatal("chown %s: %m", li->ep.path);
	}
	li->l = evconnlistener_new(a->base, accept_cb, li, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (li->l == NULL)
		log_fatal("cannot listen on %s", spec);
	log_info("listening on %s (%s)", spec, lmtp ? "LMTP" : "ESMTP");
}

/* close_listeners - stop accepting; remove unix sockets we made */
static void close_listeners(struct agent *a)
{
	for (size_t i = 0; i < a->nlisteners; i++) {
		struct listener *li = a->listeners[i];
		if (li->l != NULL) {
			evconnlistener_free(li->l);
			li->l = NULL;
			if (li->ep.family == ENDPOINT_UNIX)
				unlink(li->ep.path); /* may fail after dropping root */
		}
	}
}

/* strlist_equal - same addresses in the same order */
static bool strlist_equal(const struct strlist *x, const struct strlist *y)
{
	if (x->n != y->n)
		return false;
	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->v[i], y->v[i]) != 0)
			return false;
	return true;
}

/* set_resolver - (re)create the DNS context when its settings changed */
static void set_resolver(struct agent *a, const struct weir_config *cfg)
{
	const char *err;
	struct dns *dns;

	if (a->dns != NULL && strcmp(a->dns_servers, cfg->resolver) == 0 &&
	    a->dns_timeout == cfg->resolver_timeout)
		return;
	dns = dns_new(a->base, cfg->resolver, cfg->resolver_timeout, &err);
	if (dns == NULL) {
		if (a->dns == NULL)
			log_fatal("resolver %s: %s", cfg->resolver, err);
		log_error("resolver %s: %s; keeping the old one", cfg->resolver, err);
		return;
	}
	dns_unref(a->dns); /* lookups in flight keep the old one alive */
	a->dns = dns;
	free(a->dns_servers);
	a->dns_servers = xstrdup(cfg->resolver);
	a->dns_timeout = cfg->resolver_timeout;
}

/* reload - SIGHUP/SIGUSR1: load weir.conf again; keep the old one on error */
static void reload(struct agent *a)
{
	struct weir_config *cfg = load(false), *old;

	if (cfg == NULL) {
		log_error("reload of %s failed; keeping the running configuration", config_path);
		return;
	}
	old = config_current();
	if (!strlist_equal(&old->agent.lmtp_listen, &cfg->agent.lmtp_listen) ||
	    !strlist_equal(&old->agent.smtp_listen, &cfg->agent.smtp_listen))
		log_warning("listen addresses cannot change on reload; restart weir-agent");
	if (!foreground && log_open("weir-agent", false, cfg->log_facility) < 0)
		log_error("bad log_facility %s", cfg->log_facility);
	log_set_level((enum log_level)cfg->log_level);
	set_resolver(a, cfg);
	config_set_current(cfg);
	/* idle sessions were opened under the old settings */
	pool_flush_idle(a->pool);
	pool_write_state(a->pool, cfg);
	throttle_agent_reload(a, cfg);
	record_reload(a, old, cfg);
	http_reload(a, cfg);
	config_unref(old);
	log_info("reloaded %s", config_path);
}

/* kill_cb - the last grace period is over: exit */
static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	(void)fd;
	(void)what;
	event_base_loopexit(a->base, NULL);
}

/* stop_cb - agent.shutdown_timeout is over: 421 to everyone left */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct client *c, *next;
	struct timeval tv = {FORCE_EXIT_DELAY, 0};

	(void)fd;
	(void)what;
	log_warning("shutdown timeout: closing %zu sessions", a->nclients);
	a->kill_timer = evtimer_new(a->base, kill_cb, a);
	evtimer_add(a->kill_timer, &tv);
	for (c = a->clients; c != NULL; c = next) {
		next = c->next;
		client_shutdown(c, true);
	}
}

/* shutdown_start - SIGTERM/SIGINT */
static void shutdown_start(struct agent *a)
{
	struct weir_config *cfg = config_current();
	struct timeval tv = {cfg->agent.shutdown_timeout, 0};
	struct client *c, *next;

	config_unref(cfg);
	if (a->stopping)
		return;
	a->stopping = true;
	log_info("shutting down: %zu sessions", a->nclients);
	close_listeners(a);
	for (c = a->clients; c != NULL; c = next) {
		next = c->next;
		client_shutdown(c, false);
	}
	if (a->nclients == 0) {
		event_base_loopexit(a->base, NULL);
		return;
	}
	a->stop_timer = evtimer_new(a->base, stop_cb, a);
	evtimer_add(a->stop_timer, &tv);
}

/* agent_client_gone - a session ended; the last one ends a shutdown */
void agent_client_gone(struct agent *a)
{
	if (a->stopping && a->nclients == 0)
		event_base_loopexit(a->base, NULL);
}

/* signal_cb - reload or stop */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	if (sig == SIGHUP || sig == SIGUSR1)
		reload(arg);
	else
		shutdown_start(arg);
}

/* parse_args - the command line; returns true for -n */
static bool parse_args(int argc, char **argv)
{
	bool check = false;
	int ch;

	config_path = config_default_path();
	while ((ch = getopt(argc, argv, "c:fnV")) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'n':
			check = true;
			break;
		case 'V':
			printf("weir-agent %s\n", PACKAGE_VERSION);
			exit(0);
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	return check;
}

/* default_route_name - for the start message */
static const char *default_route_name(const struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		if (cfg->agent.routes[i].is_default)
			return cfg->agent.routes[i].name;
	return "none";
}

/* startup - sockets, pid file, privileges, resolver */
static void startup(struct agent *a, struct weir_config *cfg)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	const char *err;

	if (geteuid() == 0 && daemon_lookup_user(cfg->user, &uid, &gid) < 0)
		log_fatal("unknown user %s", cfg->user);
	for (size_t i = 0; i < cfg->agent.lmtp_listen.n; i++)
		bind_one(a, cfg->agent.lmtp_listen.v[i], true, cfg, uid, gid);
	for (size_t i = 0; i < cfg->agent.smtp_listen.n; i++)
		bind_one(a, cfg->agent.smtp_listen.v[i], false, cfg, uid, gid);
	if (cfg->agent.pid_file[0] != '\0' &&
	    daemon_pidfile_write(cfg->agent.pid_file, uid, gid, &err) < 0)
		log_fatal("pid file %s: %s", cfg->agent.pid_file, err);
	/* the state file is rewritten (tmp + rename) as user: its directory */
	if (geteuid() == 0) {
		daemon_prepare_db(cfg->agent.state_file, uid, gid, "agent.state_file");
		daemon_prepare_db(cfg->throttle.state_file, uid, gid, "throttle.state_file");
		record_prepare(cfg, uid, gid);
	}
	if (daemon_drop_privileges(cfg->user, &err) < 0)
		log_fatal("cannot switch to user %s: %s", cfg->user, err);
	set_resolver(a, cfg);
}

/* cleanup - free everything (valgrind clean exit) */
static void cleanup(struct agent *a, struct event **sigs, size_t nsigs)
{
	struct weir_config *cfg = config_current();

	http_stop(a); /* its thread reads the stats: first */
	stats_free(a->stats);
	a->stats = NULL;
	while (a->clients != NULL)
		client_free(a->clients);
	pool_write_state(a->pool, cfg);
	pool_free(a->pool);
	throttle_agent_stop(a);
	record_stop(a);
	close_listeners(a);
	for (size_t i = 0; i < a->nlisteners; i++) {
		free(a->listeners[i]->spec);
		free(a->listeners[i]);
	}
	free(a->listeners);
	for (size_t i = 0; i < nsigs; i++)
		event_free(sigs[i]);
	if (a->stop_timer)
		event_free(a->stop_timer);
	if (a->kill_timer)
		event_free(a->kill_timer);
	dns_unref(a->dns);
	free(a->dns_servers);
	if (cfg->agent.pid_file[0] != '\0')
		daemon_pidfile_remove(cfg->agent.pid_file);
	config_unref(cfg);
	config_set_current(NULL);
	event_base_free(a->base);
	libevent_global_shutdown();
}

int main(int argc, char **argv)
{
	static const int signals[] = {SIGHUP, SIGUSR1, SIGTERM, SIGINT};
	struct event *sigs[sizeof(signals) / sizeof(signals[0])];
	struct agent agent;
	struct weir_config *cfg;
	bool check = parse_args(argc, argv);

	cfg = load(true);
	if (check) {
		if (cfg == NULL)
			return 1;
		printf("%s: ok\n", config_path);
		config_unref(cfg);
		return 0;
	}
	if (cfg == NULL)
		return 1;
	if (!foreground && daemon_detach() < 0) {
		fprintf(stderr, "weir-agent: cannot detach: %m\n");
		return 1;
	}
	if (log_open("weir-agent", foreground, cfg->log_facility) < 0)
		log_fatal("bad log_facility %s", cfg->log_facility);
	log_set_level((enum log_level)cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	memset(&agent, 0, sizeof(agent));
	agent.base = event_base_new();
	if (agent.base == NULL)
		log_fatal("event_base_new failed");
	config_set_current(cfg);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	agent.pool = pool_new(agent.base);
	agent.stats = stats_new();
	startup(&agent, cfg);
	pool_write_state(agent.pool, cfg);
	throttle_agent_start(&agent, cfg);
	record_start(&agent, cfg);
	stats_start(&agent);
	http_start(&agent, cfg); /* after dropping privileges: a port above 1023 */
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		sigs[i] = evsignal_new(agent.base, signals[i], signal_cb, &agent);
		evsignal_add(sigs[i], NULL);
	}
	daemon_ready();
	log_info("started, %zu route%s, default %s", cfg->agent.nroutes,
		 cfg->agent.nroutes == 1 ? "" : "s", default_route_name(cfg));
	event_base_dispatch(agent.base);
	log_info("stopped");
	cleanup(&agent, sigs, sizeof(sigs) / sizeof(sigs[0]));
	return 0;
}
