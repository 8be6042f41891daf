/* weirctl - the operator's tool for weir
 *
 * SYNOPSIS
 *	weirctl [-c FILE] COMMAND [ARGS]
 *
 * COMMANDS
 *	check		validate weir.conf; every error as file:line: text;
 *			exit 1 on any error
 *	keygen		make a DKIM key pair and print its DNS record
 *	spf report	print the SPF preflight store (spf.preflight_db)
 *	spf check	evaluate SPF for IP SENDER [HELO] as weir-milter would
 *	spf preflight	the outbound preflight of one sender or domain
 *	rate show	the state of rate limits (rate.backend's store)
 *	rate reset	clear one rate limit's state
 *	route show	weir-agent's routes and the health of their hosts
 *			(agent.state_file)
 *	throttle show	weir-agent's throttle limiters (throttle.state_file)
 *	bounce classify	failed recipients of bounce messages, with reasons
 *	bounce intake	record one bounce or complaint read on standard input
 *	outcome show	the outcome log (outcome.db)
 *	report		delivered, deferred and bounced per domain, bounce
 *			reasons, rate-limit refusals, SPF preflight findings
 *	bounce parse	everything read from one bounce message
 *	suppression	list, add, remove, import or export the suppression
 *			list (suppression.db)
 *	defaults	print every setting with its built-in default
 *	settings	print every setting with its value in weir.conf
 *	version		print the version
 *
 * Later commands (keys, rates, routes, suppression, reports) are added to
 * the command table below. */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/dns_wait.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/keygen.h"
#include "policy/preflight.h"
#include "policy/rate.h"
#include "policy/rate_store.h"
#include "policy/spf.h"
#include "policy/throttle.h"
#include "policy/weirctl_bounce.h"
#include "policy/weirctl_outcome.h"
#include "policy/weirctl_report.h"
#include "policy/weirctl_suppress.h"

struct command {
	const char *name;
	int (*run)(const char *conf, int argc, char **argv);
	const char *usage;
};

static int cmd_check(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	size_t n;

	(void)argc;
	(void)argv;
	cfg = config_load_reported(conf, CONFIG_FOR_ALL, true, &n);
	if (cfg == NULL) {
		fprintf(stderr, "%s: %zu error%s\n", conf, n, n == 1 ? "" : "s");
		return 1;
	}
	printf("%s: ok\n", conf);
	config_unref(cfg);
	return 0;
}

static void print_settings(const struct weir_config *cfg)
{
	for (size_t i = 0; i < weir_settings_count; i++) {
		char *v = setting_format(&weir_settings[i], cfg);
		printf("%s = %s;\n", weir_settings[i].name, v);
		free(v);
	}
}

static int cmd_defaults(const char *conf, int argc, char **argv)
{
	struct config_errors errs;
	struct weir_config *cfg;

	(void)conf;
	(void)argc;
	(void)argv;
	config_errors_init(&errs);
	cfg = config_load_string("(defaults)", "", 0, &errs);
	config_errors_free(&errs);
	if (cfg == NULL)
		return 1;
	print_settings(cfg);
	config_unref(cfg);
	return 0;
}

static int cmd_settings(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;

	(void)argc;
	(void)argv;
	cfg = config_load_reported(conf, 0, true, NULL);
	if (cfg == NULL)
		return 1;
	print_settings(cfg);
	config_unref(cfg);
	return 0;
}

static int cmd_version(const char *conf, int argc, char **argv)
{
	(void)conf;
	(void)argc;
	(void)argv;
	printf("weirctl %s\n", PACKAGE_VERSION);
	return 0;
}

static int cmd_keygen(const char *conf, int argc, char **argv)
{
	(void)conf;
	return keygen_main(argc, argv);
}

/* SPF: weirctl spf report|check|preflight [-c FILE] ... */

static const char spf_usage[] =
    "usage: weirctl spf report [-c FILE] [--prometheus]\n"
    "       weirctl spf check [-c FILE] IP SENDER [HELO]\n"
    "       weirctl spf preflight [-c FILE] SENDER-OR-DOMAIN\n"
    "SENDER \"<>\" (or \"\") is the null sender: HELO is then required.\n";

/* sub_options - the options after "spf SUB" or "rate SUB": -c FILE
 * (into *conf), --prometheus (when prometheus is not NULL). Returns the
 * index of the first operand in argv, or -1 after the usage message. */
static int sub_options(int argc, char **argv, const char **conf, bool *prometheus,
		       const char *usage)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"prometheus", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 0; /* glibc: start again on this argv */
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': *conf = optarg; break;
		case 'p':
			if (prometheus != NULL) {
				*prometheus = true;
				break;
			}
			/* fall through */
		default: fputs(usage, stderr); return -1;
		case 'h': fputs(usage, stdout); return -1;
		}
	}
	return optind;
}

/* An SPF engine as weir-milter builds one for cfg */
struct spf_setup {
	struct dns_wait *dns;
	struct spf_engine *spf;
};

static int spf_setup(const struct weir_config *cfg, struct spf_setup *s)
{
	const char *err;

	s->spf = NULL;
	s->dns = dns_wait_new(cfg->resolver, cfg->resolver_timeout, &err);
	if (s->dns == NULL) {
		fprintf(stderr, "weirctl: resolver %s: %s\n", cfg->resolver, err);
		return -1;
	}
	s->spf = spf_engine_new(s->dns, &err);
	if (s->spf == NULL) {
		fprintf(stderr, "weirctl: SPF: %s\n", err);
		dns_wait_free(s->dns);
		return -1;
	}
	spf_engine_set_timeout(s->spf, cfg->spf.timeout);
	spf_engine_set_receiver(s->spf, cfg->hostname);
	return 0;
}

static void spf_teardown(struct spf_setup *s)
{
	spf_engine_free(s->spf);
	dns_wait_free(s->dns);
}

static int spf_report(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	bool prometheus = false;
	char *err = NULL;
	int i, rc = 0;

	if ((i = sub_options(argc, argv, &conf, &prometheus, spf_usage)) < 0)
		return 2;
	if (i != argc) {
		fputs(spf_usage, stderr);
		return 2;
	}
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	if (preflight_report(cfg->spf.preflight_db, stdout, prometheus, &err) < 0) {
		fprintf(stderr, "weirctl spf report: %s\n", err);
		free(err);
		rc = 1;
	}
	config_unref(cfg);
	return rc;
}

/* null_sender - "" or "<>" */
static bool null_sender(const char *s)
{
	return s[0] == '\0' || strcmp(s, "<>") == 0;
}

static int spf_check_cmd(const char *conf, int argc, char **argv)
{
	const char *ip, *sender, *helo;
	struct weir_config *cfg;
	struct spf_setup s;
	struct spf_outcome o;
	char *addr, *received;
	size_t len;
	int i, rc;

	if ((i = sub_options(argc, argv, &conf, NULL, spf_usage)) < 0)
		return 2;
	if (argc - i < 2 || argc - i > 3 || (null_sender(argv[i + 1]) && argc - i < 3)) {
		fputs(spf_usage, stderr);
		return 2;
	}
	ip = argv[i];
	sender = argv[i + 1];
	helo = argc - i == 3 ? argv[i + 2] : "";
	len = strlen(sender);
	addr = len >= 2 && sender[0] == '<' && sender[len - 1] == '>'
	           ? xstrndup(sender + 1, len - 2)
	           : xstrdup(sender);
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL) {
		free(addr);
		return 1;
	}
	if (spf_setup(cfg, &s) < 0) {
		free(addr);
		config_unref(cfg);
		return 1;
	}
	/* as weir-milter: the null sender's identity is the HELO name */
	if (addr[0] == '\0')
		rc = spf_check_helo(s.spf, ip, helo, &o);
	else
		rc = spf_check(s.spf, ip, helo, addr, &o);
	if (rc < 0) {
		fprintf(stderr, "weirctl spf check: %s: %s\n", ip,
		        o.reason != NULL ? o.reason : "unusable");
		rc = 2;
	} else {
		received = spf_received_value(&o, cfg->hostname, ip, helo, addr,
		                              addr[0] == '\0' ? "helo" : "mailfrom");
		printf("result: %s\n", spf_result_name(o.result));
		printf("reason: %s\n", o.reason != NULL ? o.reason : "");
		if (o.explanation != NULL && o.explanation[0] != '\0')
			printf("explanation: %s\n", o.explanation);
		printf("Received-SPF: %s\n", received);
		free(received);
		rc = 0;
	}
	spf_outcome_free(&o);
	spf_teardown(&s);
	config_unref(cfg);
	free(addr);
	return rc;
}

static int spf_preflight_cmd(const char *conf, int argc, char **argv)
{
	struct preflight_result r;
	struct weir_config *cfg;
	struct preflight *p;
	struct spf_setup s;
	char *sender;
	int i, rc = 0;

	if ((i = sub_options(argc, argv, &conf, NULL, spf_usage)) < 0)
		return 2;
	if (argc - i != 1 || null_sender(argv[i])) {
		fputs(spf_usage, stderr);
		return 2;
	}
	/* a bare domain: its postmaster, as the null sender's check would */
	sender =
	    strchr(argv[i], '@') != NULL ? xstrdup(argv[i]) : xasprintf("postmaster@%s", argv[i]);
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL) {
		free(sender);
		return 1;
	}
	if (spf_setup(cfg, &s) < 0) {
		free(sender);
		config_unref(cfg);
		return 1;
	}
	log_set_level(LOG_LEVEL_ERROR); /* the reason is printed below */
	p = preflight_new(cfg, s.spf, s.dns);
	if (preflight_check_flags(p, sender, PREFLIGHT_NO_STORE, &r) < 0) {
		fprintf(stderr, "weirctl spf preflight: %s\n", r.reason);
		rc = 1;
	} else {
		printf("sender %s, domain %s, HELO %s\n", sender, r.domain, cfg->hostname);
		for (size_t k = 0; k < r.naddrs; k++) {
			const struct preflight_addr *a = &r.addrs[k];
			printf("  %-39s %-9s %s\n", a->ip, spf_result_name(a->result),
			       a->reason != NULL ? a->reason : "");
			if (a->result == SPF_RES_FAIL || a->result == SPF_RES_PERMERROR)
				rc = 1;
		}
		printf("worst: %s (%s)\n", spf_result_name(r.worst), r.ip);
	}
	preflight_result_free(&r);
	preflight_free(p);
	spf_teardown(&s);
	config_unref(cfg);
	free(sender);
	return rc;
}

static int cmd_spf(const char *conf, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "report") == 0)
		return spf_report(conf, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return spf_check_cmd(conf, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "preflight") == 0)
		return spf_preflight_cmd(conf, argc - 1, argv + 1);
	fputs(spf_usage, stderr);
	return 2;
}

/* rate: weirctl rate show|reset [-c FILE] ... */

static const char rate_usage[] =
    "usage: weirctl rate show [-c FILE] [STATE_KEY]\n"
    "       weirctl rate reset [-c FILE] STATE_KEY\n"
    "STATE_KEY is NAME:VALUE, as in the log (login-burst:alice).\n";

/* rate_setup - the configuration and the store of weirctl rate SUB;
 * *key_r the operand (NULL when none). 0, 1 (error printed) or 2 (usage) */
static int rate_setup(const char *conf, int argc, char **argv, bool key_required,
		      struct weir_config **cfg_r, struct rate_store **s_r, const char **key_r)
{
	char *err = NULL;
	int i;

	if ((i = sub_options(argc, argv, &conf, NULL, rate_usage)) < 0)
		return 2;
	if (argc - i > 1 || (key_required && argc - i != 1) ||
	    (argc - i == 1 && strchr(argv[i], ':') == NULL)) {
		fputs(rate_usage, stderr);
		return 2;
	}
	*key_r = argc - i == 1 ? argv[i] : NULL;
	if ((*cfg_r = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	if ((*s_r = rate_store_open_admin(*cfg_r, &err)) == NULL) {
		fprintf(stderr, "weirctl rate: %s\n", err);
		free(err);
		config_unref(*cfg_r);
		return 1;
	}
	return 0;
}

static int rate_show_cmd(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	struct rate_store *s;
	const char *key;
	char *err = NULL;
	int rc;

	if ((rc = rate_setup(conf, argc, argv, false, &cfg, &s, &key)) != 0)
		return rc;
	if (rate_store_show(s, key, stdout, &err) < 0) {
		fprintf(stderr, "weirctl rate show: %s\n", err);
		free(err);
		rc = 1;
	}
	rate_store_close(s);
	config_unref(cfg);
	return rc;
}

static int rate_reset_cmd(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	struct rate_store *s;
	const char *key;
	char *err = NULL, *name;
	int rc;

	if ((rc = rate_setup(conf, argc, argv, true, &cfg, &s, &key)) != 0)
		return rc;
	name = xstrndup(key, (size_t)(strchr(key, ':') - key));
	if (rate_limit_find(cfg, name) == NULL)
		fprintf(stderr, "weirctl rate reset: note: no limit called %s in %s\n", name,
			cfg->file);
	if (rate_store_reset(s, key, &err) < 0) {
		fprintf(stderr, "weirctl rate reset: %s\n", err);
		free(err);
		rc = 1;
	} else if (cfg->rate.backend == RATE_BACKEND_MEMORY) {
		printf("%s: reset; weir-milter forgets it at its next flush (within %lds)\n", key,
		       cfg->rate.flush_interval);
	} else {
		printf("%s: reset\n", key);
	}
	free(name);
	rate_store_close(s);
	config_unref(cfg);
	return rc;
}

static int cmd_rate(const char *conf, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return rate_show_cmd(conf, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "reset") == 0)
		return rate_reset_cmd(conf, argc - 1, argv + 1);
	fputs(rate_usage, stderr);
	return 2;
}

/* route: weirctl route show [-c FILE] */

static const char route_usage[] = "usage: weirctl route show [-c FILE]\n";

/* state_field - the value of " key=" in line, up to the next space (or
 * the end for error=); "" when absent. Into buf. */
static const char *state_field(const char *line, const char *key, char *buf, size_t size)
{
	char pat[32];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), " %s=", key);
	if ((p = strstr(line, pat)) == NULL) {
		buf[0] = '\0';
		return buf;
	}
	p += strlen(pat);
	n = strcmp(key, "error") == 0 ? strcspn(p, "\n") : strcspn(p, " \n");
	snprintf(buf, size, "%.*s", (int)n, p);
	return buf;
}

/* when_text - "2026-01-02 03:04:05 UTC" */
static void when_text(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* route_show_host - one "host" line of the state file, for people */
static void route_show_host(const char *line, time_t now)
{
	char id[300], st[16], until[32], fail[16], open[16], idle[16], sent[24], err[600], when[40];
	const char *s = state_field(line, "state", st, sizeof(st));

	state_field(line, "id", id, sizeof(id));
	state_field(line, "until", until, sizeof(until));
	state_field(line, "failures", fail, sizeof(fail));
	state_field(line, "open", open, sizeof(open));
	state_field(line, "idle", idle, sizeof(idle));
	state_field(line, "sent", sent, sizeof(sent));
	state_field(line, "error", err, sizeof(err));
	if (strcmp(s, "down") == 0) {
		time_t u = (time_t)atoll(until);
		when_text(u, when, sizeof(when));
		if (u > now)
			printf("  %-32s down until %s (%llds), failures=%s\n", id, when,
			       (long long)(u - now), fail);
		else
			printf("  %-32s down until %s (over: tried at the next message), "
			       "failures=%s\n", id, when, fail);
	} else {
		printf("  %-32s up, failures=%s\n", id, fail);
	}
	printf("  %-32s sessions open=%s idle=%s, messages sent=%s\n", "", open, idle, sent);
	if (err[0] && strcmp(err, "-") != 0)
		printf("  %-32s last error: %s\n", "", err);
}

static int route_show_cmd(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	char line[2048], when[40];
	time_t now = time(NULL), written = 0;
	const char *path;
	FILE *f;
	int i;

	if ((i = sub_options(argc, argv, &conf, NULL, route_usage)) < 0)
		return 2;
	if (argc - i != 0) {
		fputs(route_usage, stderr);
		return 2;
	}
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	path = cfg->agent.state_file;
	if (path[0] == '\0') {
		fprintf(stderr, "weirctl route show: agent.state_file is \"\" in %s: weir-agent "
				"writes no state\n", cfg->file);
		config_unref(cfg);
		return 1;
	}
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "weirctl route show: %s: %s (is weir-agent running?)\n", path,
			strerror(errno));
		config_unref(cfg);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char name[128], mx[8], def[8];
		if (strncmp(line, "time ", 5) == 0) {
			written = (time_t)atoll(line + 5);
			when_text(written, when, sizeof(when));
			printf("# %s, written %s (%llds ago)%s\n", path, when,
			       (long long)(now - written),
			       now - written > 30 ? ": weir-agent writes it every 5s; is it "
						    "running?" : "");
		} else if (strncmp(line, "route ", 6) == 0) {
			state_field(line, "name", name, sizeof(name));
			state_field(line, "mx", mx, sizeof(mx));
			state_field(line, "default", def, sizeof(def));
			printf("route %s%s%s\n", name, strcmp(def, "yes") == 0 ? " (default)" : "",
			       strcmp(mx, "yes") == 0 ? ": direct to the recipient domain's MX" : "");
		} else if (strncmp(line, "host ", 5) == 0) {
			route_show_host(line, now);
		}
	}
	fclose(f);
	config_unref(cfg);
	return written ? 0 : 1;
}

static int cmd_route(const char *conf, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return route_show_cmd(conf, argc - 1, argv + 1);
	fputs(route_usage, stderr);
	return 2;
}

/* throttle: weirctl throttle show [-c FILE] */

static const char throttle_usage[] = "usage: weirctl throttle show [-c FILE]\n";

/* throttle_show_cmd - throttle.state_file as a table */
static int throttle_show_cmd(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	char *err = NULL;
	int i, rc = 0;

	if ((i = sub_options(argc, argv, &conf, NULL, throttle_usage)) < 0)
		return 2;
	if (argc - i != 0) {
		fputs(throttle_usage, stderr);
		return 2;
	}
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	if (cfg->throttle.state_file[0] == '\0') {
		fprintf(stderr, "weirctl throttle show: throttle.state_file is \"\" in %s: "
				"weir-agent writes no throttle state\n", cfg->file);
		rc = 1;
	} else if (throttle_state_print(cfg->throttle.state_file, stdout, &err) < 0) {
		fprintf(stderr, "weirctl throttle show: %s\n", err);
		free(err);
		rc = 1;
	}
	config_unref(cfg);
	return rc;
}

static int cmd_throttle(const char *conf, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return throttle_show_cmd(conf, argc - 1, argv + 1);
	fputs(throttle_usage, stderr);
	return 2;
}

/* cmd_bounce - "bounce intake" (weirctl_intake.c), else weirctl_bounce.c */
static int cmd_bounce(const char *conf, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "intake") == 0)
		return weirctl_bounce_intake(conf, argc - 1, argv + 1);
	return weirctl_bounce(conf, argc, argv);
}

static const struct command commands[] = {
    {"check", cmd_check, "validate weir.conf"},
    {"keygen", cmd_keygen,
     "--domain D --selector S [--algorithm rsa|ed25519] [--bits N] [--output FILE]: "
     "a DKIM key and its DNS record"},
    {"spf", cmd_spf,
     "report [--prometheus] | check IP SENDER [HELO] | preflight SENDER-OR-DOMAIN: "
     "SPF tools"},
    {"rate", cmd_rate, "show [STATE_KEY] | reset STATE_KEY: rate limit state"},
    {"route", cmd_route, "show: weir-agent's routes and the health of their hosts"},
    {"throttle", cmd_throttle, "show: weir-agent's throttle limiters and their state"},
    {"outcome", weirctl_outcome,
     "show [--since DURATION] [--rcpt ADDRESS] [--result R] [--limit N] [--json]: "
     "the outcome log"},
    {"report", weirctl_report,
     "[--since DURATION] [--top N] [--json]: delivery and bounce rates per domain, "
     "bounce reasons, rate-limit refusals, SPF preflight findings"},
    {"bounce", cmd_bounce,
     "classify [--rules FILE] MESSAGE... | parse [--rules FILE] MESSAGE | intake "
     "[--sender A] [--recipient A] < MESSAGE: read and record bounces"},
    {"suppression", weirctl_suppression,
     "list [--scope D] [--all] | add ADDRESS [--scope D] [--reason TEXT] [--expires DURATION] "
     "| remove ADDRESS [--scope D] | import FILE.csv | export [FILE]: the suppression list"},
    {"defaults", cmd_defaults, "print every setting with its built-in default"},
    {"settings", cmd_settings, "print every setting as weir.conf sets it"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: weirctl [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].usage);
	fprintf(out, "\nFILE defaults to %s\n", config_default_path());
}

int main(int argc, char **argv)
{
	const char *conf = config_default_path();
	int c;

	log_open("weirctl", true, "mail");
	while ((c = getopt(argc, argv, "+c:h")) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return commands[i].run(conf, argc - optind, argv + optind);
	fprintf(stderr, "weirctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}
