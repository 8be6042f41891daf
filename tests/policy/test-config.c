/* test-config - weir.conf loading: defaults, types, bounds, unknown
 * settings, file:line in every error, includes, reference counting */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate.h"
#include "tests/testlib.h"
#include "tests/conftest.h"

static struct config_errors errs;

static struct weir_config *load(const char *text, enum config_user who)
{
	return conf_load(&errs, text, who);
}

#define has_error(want) conf_has_error(&errs, want)

static void test_defaults(void)
{
	struct weir_config *cfg;

	test_begin("defaults from an empty file");
	cfg = load("", 0);
	test_assert(cfg != NULL);
	if (cfg) {
		test_assert_str(cfg->user, "weir");
		test_assert_str(cfg->resolver, "system");
		test_assert(cfg->agent.max_message_size == 50LL * 1024 * 1024);
		test_assert(cfg->agent.command_timeout == 300);
		test_assert(cfg->milter.socket_mode == 0660);
		test_assert(cfg->agent.lmtp_listen.n == 1);
		test_assert(cfg->agent.smtp_listen.n == 0);
		test_assert(cfg->log_level == LOG_LEVEL_INFO);
		test_assert(cfg->hostname != NULL && cfg->hostname[0] != '\0');
		test_assert_str(cfg->agent.helo_name, cfg->hostname);
	}
	config_unref(cfg);
	test_end();
}

static void test_values(void)
{
	struct weir_config *cfg;

	test_begin("values of every type");
	cfg = load("hostname = \"relay.example\";\n"
		   "log_level = \"debug\";\n"
		   "milter = { socket = \"inet:8891@127.0.0.1\"; socket_mode = \"0600\"; };\n"
		   "agent = {\n"
		   "  smarthost = \"[192.0.2.1]:2525\";\n"
		   "  lmtp_listen = \"unix:/x/a.lmtp\";\n"
		   "  smtp_listen = [\"inet:10025@127.0.0.1\", \"inet6:10025@::1\"];\n"
		   "  data_timeout = \"10m\";\n"
		   "  connect_timeout = 7;\n"
		   "  max_message_size = \"2M\";\n"
		   "  max_recipients = 5;\n"
		   "};\n",
		   CONFIG_FOR_ALL);
	test_assert(cfg != NULL);
	if (cfg) {
		test_assert_str(cfg->hostname, "relay.example");
		test_assert_str(cfg->agent.helo_name, "relay.example");
		test_assert(cfg->log_level == LOG_LEVEL_DEBUG);
		test_assert(cfg->milter.socket_mode == 0600);
		test_assert(cfg->agent.lmtp_listen.n == 1);
		test_assert_str(cfg->agent.lmtp_listen.v[0], "unix:/x/a.lmtp");
		test_assert(cfg->agent.smtp_listen.n == 2);
		test_assert(cfg->agent.data_timeout == 600);
		test_assert(cfg->agent.connect_timeout == 7);
		test_assert(cfg->agent.max_message_size == 2 * 1048576);
		test_assert(cfg->agent.max_recipients == 5);
	}
	config_unref(cfg);
	test_end();
}

static void test_every_error_with_line(void)
{
	struct weir_config *cfg;

	test_begin("every error reported with file:line");
	cfg = load("user = \"weir\";\n"                          /* 1 */
		   "agent = {\n"                                 /* 2 */
		   "  smarthots = \"x:25\";\n"                    /* 3 */
		   "  max_clients = 0;\n"                        /* 4 */
		   "  data_timeout = \"5x\";\n"                   /* 5 */
		   "  smtp_listen = (\"inet:70000@h\", 3);\n"     /* 6 */
		   "  max_recipients = \"many\";\n"               /* 7 */
		   "};\n"                                        /* 8 */
		   "milter = { socket = \"tcp:1\"; };\n"           /* 9 */
		   "nonsense = { a = 1; };\n"                    /* 10 */
		   "log_level = \"loud\";\n",                     /* 11 */
		   CONFIG_FOR_ALL);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:3: unknown setting 'agent.smarthots' (did you mean "
			      "'agent.smarthost'?)"));
	test_assert(has_error("t.conf:4: agent.max_clients: out of range (1 to 100000)"));
	test_assert(has_error("t.conf:5: agent.data_timeout: expected a duration"));
	test_assert(has_error("t.conf:6: agent.smtp_listen: inet:70000@h: port must be"));
	test_assert(has_error("t.conf:6: agent.smtp_listen: element 2: expected a string"));
	test_assert(has_error("t.conf:7: agent.max_recipients: expected a number, got a string"));
	test_assert(has_error("t.conf:9: milter.socket: expected unix:/path"));
	test_assert(has_error("t.conf:10: unknown setting 'nonsense'"));
	test_assert(has_error("t.conf:11: log_level: not one of the allowed values"));
	test_assert(has_error("t.conf: agent.smarthost must be set"));
	test_end();

	test_begin("dotted names are not settings");
	/* libconfig does not allow '.' in names: a syntax error, reported
	 * with its line */
	test_assert(cfg == NULL);
	cfg = load("\n\nmilter.socket_mode = \"0600\";\n", 0);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:3: "));
	test_end();
}

static void test_syntax_error(void)
{
	struct weir_config *cfg;

	test_begin("syntax error with its line");
	cfg = load("user = \"a\";\n\nagent = {\n  smarthost = ;\n};\n", 0);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:4: syntax error"));
	test_end();
}

static void test_required(void)
{
	struct weir_config *cfg;

	test_begin("what each program requires");
	cfg = load("", CONFIG_FOR_MILTER);
	test_assert(cfg != NULL); /* the milter needs no smart host */
	config_unref(cfg);
	cfg = load("", CONFIG_FOR_AGENT);
	test_assert(cfg == NULL);
	test_assert(has_error("agent.smarthost must be set"));
	cfg = load("agent = { smarthost = \"relay.example\"; lmtp_listen = (); };",
		   CONFIG_FOR_AGENT);
	test_assert(cfg == NULL);
	test_assert(has_error("weir-agent needs agent.lmtp_listen or agent.smtp_listen"));
	test_end();
}

static void test_units(void)
{
	long long v;
	const char *err;

	test_begin("durations and sizes");
	test_assert(config_parse_duration("90", &v, &err) == 0 && v == 90);
	test_assert(config_parse_duration("2h", &v, &err) == 0 && v == 7200);
	test_assert(config_parse_duration("1w", &v, &err) == 0 && v == 604800);
	test_assert(config_parse_duration("-1", &v, &err) < 0);
	test_assert(config_parse_duration("", &v, &err) < 0);
	test_assert(config_parse_duration("5 m", &v, &err) < 0);
	test_assert(config_parse_duration("99999999999999999999", &v, &err) < 0);
	test_assert(config_parse_size("10k", &v, &err) == 0 && v == 10240);
	test_assert(config_parse_size("1G", &v, &err) == 0 && v == 1073741824);
	test_assert(config_parse_size("9223372036854775807G", &v, &err) < 0);
	test_assert(config_parse_size("1.5M", &v, &err) < 0);
	test_end();
}

static void test_include(void)
{
	char dir[] = "/tmp/weir-test-config-XXXXXX";
	char *main_path, *inc_path;
	struct weir_config *cfg;
	FILE *f;

	test_begin("@include relative to the file, errors name the included file");
	test_assert(mkdtemp(dir) != NULL);
	main_path = xasprintf("%s/weir.conf", dir);
	inc_path = xasprintf("%s/agent.inc", dir);
	f = fopen(inc_path, "w");
	fputs("agent = {\n  smarthost = \"[127.0.0.1]:25\";\n  bogus = 1;\n};\n", f);
	fclose(f);
	f = fopen(main_path, "w");
	fputs("user = \"weir\";\n@include \"agent.inc\"\n", f);
	fclose(f);
	config_errors_free(&errs);
	config_errors_init(&errs);
	cfg = config_load(main_path, CONFIG_FOR_ALL, &errs);
	test_assert(cfg == NULL);
	char *want = xasprintf("%s:3: unknown setting 'agent.bogus'", inc_path);
	test_assert(has_error(want));
	free(want);
	f = fopen(inc_path, "w");
	fputs("agent = {\n  smarthost = \"[127.0.0.1]:25\";\n};\n", f);
	fclose(f);
	cfg = config_load(main_path, CONFIG_FOR_ALL, &errs);
	test_assert(cfg != NULL);
	if (cfg)
		test_assert_str(cfg->agent.smarthost, "[127.0.0.1]:25");
	config_unref(cfg);
	test_assert(config_load("/nonexistent/weir.conf", 0, &errs) == NULL);
	test_assert(has_error("/nonexistent/weir.conf: cannot read: No such file"));
	unlink(main_path);
	unlink(inc_path);
	rmdir(dir);
	free(main_path);
	free(inc_path);
	test_end();
}

static void test_current(void)
{
	struct weir_config *a, *b, *held;

	test_begin("reload swaps, holders keep theirs");
	a = load("hostname = \"a\";", 0);
	b = load("hostname = \"b\";", 0);
	config_set_current(a);
	held = config_current(); /* a session in flight */
	config_set_current(b);   /* reload */
	test_assert_str(held->hostname, "a");
	struct weir_config *now = config_current();
	test_assert_str(now->hostname, "b");
	config_unref(now);
	config_unref(held); /* frees a */
	config_set_current(NULL);
	test_end();
}

static void test_rate(void)
{
	struct weir_config *cfg;

	test_begin("rate: settings and limits");
	cfg = load("rate = {\n"
		   "  backend = \"redis\"; redis = \"[::1]:6380\"; fail_mode = \"closed\";\n"
		   "  flush_interval = \"5s\"; redis_timeout_ms = 250;\n"
		   "  limits = (\n"
		   "    { name = \"a\"; key = \"login+rcpt_domain\"; rate = \"30/10m\"; burst = 5;\n"
		   "      quota = \"1000/1d\"; action = \"hold\"; identities = \"authenticated\"; },\n"
		   "    { name = \"b.c-d_e\"; key = \"client\"; count = \"recipients\"; quota = \"5/h\";\n"
		   "      ipv4_prefix = 24; ipv6_prefix = 56;\n"
		   "      overrides = ({ network = \"10.0.0.0/8\"; unlimited = true; },\n"
		   "                   { rcpt_domain = \".example\"; quota = \"9/h\"; }); }\n"
		   "  );\n"
		   "};\n",
		   CONFIG_FOR_ALL & ~CONFIG_FOR_AGENT);
	test_assert(cfg != NULL);
	if (cfg) {
		const struct rate_limit *a = &cfg->rate.limits[0], *b = &cfg->rate.limits[1];
		test_assert(cfg->rate.backend == RATE_BACKEND_REDIS);
		test_assert(cfg->rate.fail_mode == RATE_FAIL_CLOSED);
		test_assert(cfg->rate.flush_interval == 5 && cfg->rate.redis_timeout_ms == 250);
		test_assert_str(cfg->rate.state_db, "/var/lib/weir/rate.db");
		test_assert(cfg->rate.nlimits == 2);
		test_assert(a->nparts == 2 && a->parts[0] == RATE_KEY_LOGIN &&
			    a->parts[1] == RATE_KEY_RCPT_DOMAIN);
		test_assert(a->params.n == 30 && a->params.period_ms == 600000 &&
			    a->params.burst == 5);
		test_assert(a->params.quota_n == 1000 && a->params.quota_period_ms == 86400000);
		test_assert(a->action == ACTION_HOLD && a->identities == IDENTITY_AUTHENTICATED);
		test_assert(!a->recipients && b->recipients && b->params.n == 0);
		test_assert(b->ipv4_prefix == 24 && b->ipv6_prefix == 56 && b->noverrides == 2);
		test_assert(b->overrides[0].unlimited && b->overrides[1].set_quota);
		test_assert_str(b->overrides[1].rcpt_domain, ".example");
		test_assert(rate_limit_find(cfg, "b.c-d_e") == b);
	}
	config_unref(cfg);
	test_end();

	test_begin("rate: every error with file:line");
	cfg = load("rate = {\n"                                                   /* 1 */
		   "  backend = \"etcd\";\n"                                       /* 2 */
		   "  redis = \"unix:run/redis.sock\";\n"                          /* 3 */
		   "  redis_prefix = \"a b\";\n"                                   /* 4 */
		   "  flush_interval = \"0s\";\n"                                  /* 5 */
		   "  limits = (\n"                                                /* 6 */
		   "    { name = \"x\"; key = \"login+bogus\"; rate = \"10\"; },\n" /* 7 */
		   "    { name = \"x\"; key = \"login\"; quota = \"0/1d\"; },\n"    /* 8 */
		   "    { name = \"y\"; key = \"sender\";\n"                       /* 9 */
		   "      burst = 3; action = \"drop\"; colour = 1; },\n"          /* 10 */
		   "    { name = \"bad name\"; key = \"login+login\"; rate = \"1/s\"; },\n" /* 11 */
		   "    { name = \"z\"; key = \"login\"; rate = \"1/s\";\n"        /* 12 */
		   "      ipv4_prefix = 33;\n"                                     /* 13 */
		   "      identities = (\"everyone\");\n"                          /* 14 */
		   "      overrides = (\n"                                         /* 15 */
		   "        { rate = \"5/m\"; },\n"                                /* 16 */
		   "        { login = \"a\"; },\n"                                 /* 17 */
		   "        { rcpt_domain = \"gmail.com\"; rate = \"5/m\"; },\n"   /* 18 */
		   "        { network = \"10.0.0.1/8\"; unlimited = true; rate = \"1/s\"; },\n" /* 19 */
		   "        { domain = \"bad..domain\"; burst = 2; size = 1; },\n" /* 20 */
		   "        \"not a group\"\n"                                     /* 21 */
		   "      ); },\n"                                                 /* 22 */
		   "    { name = \"q\"; key = \"sender\"; rate = \"1/s\"; ipv6_prefix = 64; },\n" /* 23 */
		   "    { name = \"r\"; rate = 5; },\n"                            /* 24 */
		   "    7\n"                                                       /* 25 */
		   "  );\n"
		   "};\n",
		   CONFIG_FOR_MILTER);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:2: rate.backend: not one of the allowed values (memory, redis)"));
	test_assert(has_error("t.conf:3: rate.redis: unix: needs an absolute path"));
	test_assert(has_error("t.conf:4: rate.redis_prefix: printable characters without spaces"));
	test_assert(has_error("t.conf:5: rate.flush_interval: out of range (1s to 300s)"));
	test_assert(has_error("t.conf:7: rate.limits: x: key: unknown part 'bogus'"));
	test_assert(has_error("t.conf:7: rate.limits: x: rate: \"10\": expected N/PERIOD"));
	test_assert(has_error("t.conf:8: rate.limits: x: quota: \"0/1d\": N must be from 1"));
	test_assert(has_error("t.conf:9: rate.limits: y: needs rate or quota (or both)"));
	test_assert(has_error("t.conf:10: rate.limits: y: burst without rate"));
	test_assert(has_error("t.conf:10: rate.limits: y: action: \"drop\": expected tempfail, "
			      "reject, hold or log"));
	test_assert(has_error("t.conf:10: rate.limits: y: unknown key 'colour'"));
	test_assert(has_error("t.conf:11: rate.limits: entry 4: name \"bad name\": letters"));
	test_assert(has_error("t.conf:11: rate.limits: entry 4: key: 'login' given twice"));
	test_assert(has_error("t.conf:13: rate.limits: z: ipv4_prefix: out of range (0 to 32)"));
	test_assert(has_error("t.conf:14: rate.limits: z: identities: expected \"authenticated\""));
	test_assert(has_error("t.conf:16: rate.limits: z: overrides: each needs login, domain, "
			      "rcpt_domain or network"));
	test_assert(has_error("t.conf:17: rate.limits: z: overrides: each sets rate, burst, quota "
			      "or unlimited = true"));
	test_assert(has_error("t.conf:18: rate.limits: z: overrides: rcpt_domain needs a limit "
			      "charged per recipient"));
	test_assert(has_error("t.conf:19: rate.limits: z: overrides: network \"10.0.0.1/8\": "));
	test_assert(has_error("t.conf:19: rate.limits: z: overrides: unlimited = true leaves no "
			      "room"));
	test_assert(has_error("t.conf:20: rate.limits: z: overrides: domain \"bad..domain\": "));
	test_assert(has_error("t.conf:20: rate.limits: z: overrides: unknown key 'size'"));
	/* libconfig gives a scalar in a list the line after it */
	test_assert(has_error("rate.limits: z: overrides: entry 6 is not a group"));
	test_assert(has_error("t.conf:23: rate.limits: q: ipv6_prefix: only for keys with client"));
	test_assert(has_error("t.conf:24: rate.limits: r: key is required"));
	test_assert(has_error("t.conf:24: rate.limits: r: rate: expected a string"));
	test_assert(has_error("rate.limits: entry 8 is not a group"));
	test_end();

	test_begin("rate: a duplicate name");
	cfg = load("rate = { limits = (\n"
		   "  { name = \"x\"; key = \"login\"; rate = \"1/s\"; },\n"
		   "  { name = \"x\"; key = \"client\"; rate = \"1/s\"; }); };\n",
		   CONFIG_FOR_MILTER);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:3: rate.limits: x: name given to two limits"));
	cfg = load("rate = { limits = { name = \"x\"; }; };\n", CONFIG_FOR_MILTER);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:1: rate.limits: expected a list"));
	test_end();
}

int main(void)
{
	log_open("test-config", true, "mail");
	config_errors_init(&errs);
	test_defaults();
	test_values();
	test_every_error_with_line();
	test_syntax_error();
	test_required();
	test_units();
	test_include();
	test_current();
	test_rate();
	config_errors_free(&errs);
	return test_exit_status();
}
