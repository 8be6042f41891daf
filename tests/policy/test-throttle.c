/* test-throttle - the policy side of weir-agent's throttle (policy/
 * throttle*.c) on a fake clock: parsing (and each kind of error with
 * file:line), which limiters a recipient passes, GCRA exactness,
 * waiting in order, all-or-nothing reservations, burst, sessions, the
 * back-off rules (suspend, slow, recovery; the built-in rules against
 * real provider replies), the state file through throttle_state_print,
 * the fleet's local share when Redis is unreachable, and the
 * collection of idle limiters. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/strmap.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/throttle.h"
#include "policy/throttle_int.h"
#include "tests/testlib.h"
#include "tests/conftest.h"

/* 2026-11-22T10:59:59Z, in ms */
#define T0  1795345199000LL
#define MIN 60000LL

static struct config_errors errs;
static char logged[8192];

/* capture - keep the log lines (the back-off's state changes) */
static void capture(enum log_level level, const char *line)
{
	(void)level;
	if (strlen(logged) + strlen(line) + 2 < sizeof(logged)) {
		strcat(logged, line);
		strcat(logged, "\n");
	}
}

static struct weir_config *load(const char *text)
{
	char *full = xasprintf("agent = { smarthost = \"192.0.2.1\"; };\n%s", text);
	struct weir_config *cfg;

	cfg = conf_load(&errs, full, CONFIG_FOR_AGENT);
	free(full);
	return cfg;
}

#define has_error(want) conf_has_error(&errs, want)

static const char good[] =
    "throttle = {\n"
    "  wait = \"5s\"; max_waiting = 7; fleet_size = 3; state_file = \"\";\n"
    "  domains = { rate = \"2/s\"; sessions = 3; recipients = 50; };\n"
    "  groups = (\n"
    "    { name = \"google\"; domains = (\"Gmail.com\", \".google.com\");\n"
    "      mx = (\".google.com\", \"googlemail.com\"); rate = \"20/s\"; burst = 2;\n"
    "      sessions = 10; messages_per_session = 100; recipients = 100; },\n"
    "    { name = \"ms\"; mx = \"protection.outlook.com\"; rate = \"300/1m\"; } );\n"
    "  routes = ( { route = \"smarthost\"; rate = \"50/s\"; sessions = 5; } );\n"
    "  senders = ( { domain = \".example.com\"; rate = \"10/s\"; } );\n"
    "};\n";

static void test_parse_good(void)
{
	struct weir_config *cfg;
	const struct throttle_config *tc;

	test_begin("parse: a good configuration");
	cfg = load(good);
	test_assert(cfg != NULL);
	if (cfg == NULL)
		return;
	tc = &cfg->throttle;
	test_assert(tc->wait == 5 && tc->max_waiting == 7 && tc->fleet_size == 3);
	test_assert(tc->backend == THROTTLE_MEMORY);
	test_assert_str(tc->state_file, "");
	test_assert(tc->has_domains && tc->domains.n == 2 && tc->domains.period_ms == 1000);
	test_assert(tc->domains.sessions == 3 && tc->domains.recipients == 50);
	test_assert(tc->domains.burst == 1);
	test_assert(tc->ngroups == 2);
	test_assert_str(tc->groups[0].name, "google");
	test_assert(tc->groups[0].ndomains == 2 && tc->groups[0].nmx == 2);
	test_assert_str(tc->groups[0].domains[0], "gmail.com");
	test_assert_str(tc->groups[0].domains[1], ".google.com");
	test_assert_str(tc->groups[0].mx[0], "google.com");
	test_assert_str(tc->groups[0].mx[1], "googlemail.com");
	test_assert(tc->groups[0].lim.n == 20 && tc->groups[0].lim.burst == 2);
	test_assert(tc->groups[0].lim.messages_per_session == 100);
	test_assert(tc->groups[1].lim.n == 300 && tc->groups[1].lim.period_ms == 60000);
	test_assert(tc->nroutes == 1 && tc->routes[0].lim.sessions == 5);
	test_assert(tc->nsenders == 1);
	test_assert_str(tc->senders[0].name, ".example.com");
	test_assert(tc->nrules == 4 && !tc->rules_written); /* the built-in rules */
	test_assert_str(tc->rules[0].name, "try-again-later");
	test_assert(throttle_active(cfg) && throttle_needs_mx(cfg));
	config_unref(cfg);

	cfg = load("throttle = { rules = (); };");
	test_assert(cfg != NULL && cfg->throttle.nrules == 0 && !throttle_active(cfg));
	test_assert(cfg != NULL && cfg->throttle.wait == 3 && cfg->throttle.max_waiting == 4);
	test_assert(cfg != NULL && cfg->throttle.fleet_size == 1);
	test_assert(cfg != NULL &&
	            strcmp(cfg->throttle.state_file, "/run/weir/throttle-state") == 0);
	config_unref(cfg);

	cfg =
	    load("throttle = { backend = \"redis\"; rules = ( { name = \"x\"; code = \"421|45\";\n"
	         "  status = \"4.7.\"; text = \"slow down\"; threshold = 2; window = 30;\n"
	         "  action = \"slow\"; factor = 0.25; duration = \"2m\"; recover = 9; } ); };");
	test_assert(cfg != NULL);
	if (cfg != NULL) {
		const struct throttle_rule *r = &cfg->throttle.rules[0];
		test_assert(cfg->throttle.backend == THROTTLE_REDIS);
		test_assert(cfg->throttle.nrules == 1 && cfg->throttle.rules_written);
		test_assert_str(r->code, "421|45");
		test_assert_str(r->status, "4.7.");
		test_assert(r->threshold == 2 && r->window_ms == 30000 &&
		            r->action == THROTTLE_SLOW);
		test_assert(r->factor == 0.25 && r->duration_ms == 120000 && r->recover == 9);
		config_unref(cfg);
	}
	test_end();
}

/* bad - text fails to load with an error containing want */
static void bad(const char *text, const char *want)
{
	struct weir_config *cfg = load(text);

	test_assert(cfg == NULL);
	test_assert(has_error(want));
	config_unref(cfg);
}

static void test_parse_bad(void)
{
	test_begin("parse: errors with file:line");
	bad("throttle = {\n wait = \"61s\"; };", "t.conf:3: throttle.wait: out of range");
	bad("throttle = {\n max_waiting = 0; };", "t.conf:3: throttle.max_waiting: out of range");
	bad("throttle = {\n backend = \"sql\"; };", "t.conf:3: throttle.backend");
	bad("throttle = {\n fleet_size = 1001; };", "t.conf:3: throttle.fleet_size");
	bad("throttle = {\n domains = { rate = \"fast\"; }; };",
	    "t.conf:3: throttle.domains: rate: \"fast\": expected N/PERIOD");
	bad("throttle = {\n domains = { rate = \"1/s\";\n sesions = 2; }; };",
	    "t.conf:4: throttle.domains: unknown key 'sesions'");
	bad("throttle = {\n domains = ( \"x\" ); };",
	    "t.conf:3: throttle.domains: expected a group");
	bad("throttle = { groups = (\n { name = \"g\"; rate = \"1/s\"; } ); };",
	    "t.conf:3: throttle.groups: g: needs domains or mx");
	bad("throttle = { groups = (\n { name = \"g\"; domains = \"a.test\"; },\n"
	    " { name = \"g\"; domains = \"b.test\"; } ); };",
	    "t.conf:4: throttle.groups: g: a second group called g (the first is at line 3)");
	bad("throttle = { groups = (\n { name = \"g\"; domains = \"a..test\"; } ); };",
	    "t.conf:3: throttle.groups: g: domains: \"a..test\"");
	bad("throttle = { groups = (\n { name = \"g h\"; domains = \"a.test\"; } ); };",
	    "t.conf:3: throttle.groups: entry 1: name \"g h\"");
	bad("throttle = { groups = (\n { name = \"g\"; domains = \"a.test\";\n burst = 0; } ); };",
	    "t.conf:4: throttle.groups: g: burst: out of range");
	bad("throttle = { routes = (\n { route = \"eu\"; rate = \"1/s\"; } ); };",
	    "t.conf:3: throttle.routes: eu: no route of that name");
	bad("throttle = { senders = (\n { domain = \"x.test\";\n mx = \"y\"; } ); };",
	    "t.conf:4: throttle.senders: unknown key 'mx'");
	bad("throttle = { senders = (\n { rate = \"1/s\"; } ); };",
	    "t.conf:3: throttle.senders: entry 1: needs domain");
	bad("throttle = { rules = (\n { name = \"r\"; text = \"(oops\"; action = \"suspend\";\n"
	    " duration = \"1m\"; } ); };",
	    "t.conf:3: throttle.rules: r: text \"(oops\": ");
	bad("throttle = { rules = (\n { name = \"r\";\n code = \"6\"; action = \"suspend\";"
	    " duration = \"1m\"; } ); };",
	    "t.conf:4: throttle.rules: r: code \"6\"");
	bad("throttle = { rules = (\n { name = \"r\"; code = \"4\"; action = \"slow\";"
	    " duration = \"1m\"; } ); };",
	    "t.conf:3: throttle.rules: r: action \"slow\" needs factor");
	bad("throttle = { rules = (\n { name = \"r\"; code = \"4\"; action = \"slow\";\n"
	    " factor = 1.0; duration = \"1m\"; } ); };",
	    "t.conf:4: throttle.rules: r: factor: expected a decimal number between 0 and 1");
	bad("throttle = { rules = (\n { name = \"r\"; code = \"4\"; action = \"suspend\"; } ); };",
	    "t.conf:3: throttle.rules: r: needs duration");
	bad("throttle = { rules = (\n { name = \"r\"; action = \"suspend\"; duration = 60; } ); };",
	    "t.conf:3: throttle.rules: r: needs code, status or text");
	bad("throttle = { rules = (\n { name = \"r\"; code = \"4\"; action = \"stop\";"
	    " duration = 60; } ); };",
	    "t.conf:3: throttle.rules: r: action: expected \"suspend\" or \"slow\"");
	bad("throttle = { rules = (\n { name = \"r\"; code = \"4\"; action = \"suspend\";\n"
	    " duration = 60;\n window = \"8d\"; } ); };",
	    "t.conf:5: throttle.rules: r: window: out of range");
	bad("throttle = { rules = (\n { name = \"r\"; code = \"4\"; action = \"suspend\";"
	    " duration = 60;\n tresh = 2; } ); };",
	    "t.conf:4: throttle.rules: unknown key 'tresh'");
	test_end();
}

/* keys - the keys of m joined by spaces, into buf */
static const char *keys(const struct throttle_match *m, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < m->n; i++) {
		strncat(buf, i ? " " : "", size - strlen(buf) - 1);
		strncat(buf, throttle_limiter_key(m->l[i]), size - strlen(buf) - 1);
	}
	return buf;
}

static void test_match(void)
{
	struct weir_config *cfg = load(good);
	const char *gmx[] = {"alt1.gmail-smtp-in.l.GOOGLE.com."};
	const char *msmx[] = {"x.mail.protection.outlook.com"};
	const char *both[] = {"a.protection.outlook.com", "b.google.com"};
	const char *near[] = {"notgoogle.com"};
	struct throttle_match m;
	struct throttle *t;
	char buf[256];

	test_begin("matching: groups by domain, then MX, per-domain, route, sender");
	if (cfg == NULL) {
		test_assert(cfg != NULL);
		return;
	}
	t = throttle_new(cfg);
	throttle_match(t, "gmail.com", NULL, 0, "smarthost", "Mail.Example.COM", &m);
	test_assert_str(keys(&m, buf, sizeof(buf)),
	                "group:google route:smarthost sender:mail.example.com");
	throttle_match(t, "a.b.google.com", NULL, 0, "other", NULL, &m);
	test_assert_str(keys(&m, buf, sizeof(buf)), "group:google");
	throttle_match(t, "hosted.test", gmx, 1, NULL, "example.com", &m);
	test_assert_str(keys(&m, buf, sizeof(buf)), "group:google sender:example.com");
	throttle_match(t, "corp.test", msmx, 1, NULL, "badexample.com", &m);
	test_assert_str(keys(&m, buf, sizeof(buf)), "group:ms");
	/* MX: the first group in order wins, whichever host matched */
	throttle_match(t, "x.test", both, 2, NULL, NULL, &m);
	test_assert_str(keys(&m, buf, sizeof(buf)), "group:google");
	/* a domain match beats an earlier group's MX match */
	throttle_match(t, "gmail.com", msmx, 1, NULL, NULL, &m);
	test_assert_str(keys(&m, buf, sizeof(buf)), "group:google");
	throttle_match(t, "other.test", near, 1, "smarthost", NULL, &m);
	test_assert_str(keys(&m, buf, sizeof(buf)), "domain:other.test route:smarthost");
	test_assert(m.n == 2 && throttle_limiter_limits(m.l[0], T0).sessions == 3);
	/* the same key is the same limiter */
	{
		struct throttle_match m2;
		throttle_match(t, "other.test", NULL, 0, NULL, NULL, &m2);
		test_assert(m2.n == 1 && m2.l[0] == m.l[0]);
	}
	throttle_free(t);
	config_unref(cfg);

	cfg = load("throttle = { groups = ( { name = \"g\"; domains = \"g.test\"; } ); };");
	test_assert(cfg != NULL);
	if (cfg != NULL) {
		t = throttle_new(cfg);
		throttle_match(t, "other.test", NULL, 0, "smarthost", "a.test", &m);
		test_assert(m.n == 0); /* no throttle.domains, routes or senders */
		throttle_free(t);
		config_unref(cfg);
	}
	test_end();
}

/* one - a throttle with one limiter "group:g" of limits (written as
 * weir.conf members) and the given rules */
static struct throttle *one(const char *limits, const char *rules, struct throttle_match *m)
{
	char *text =
	    xasprintf("throttle = { groups = ( { name = \"g\"; domains = \"g.test\"; %s } );"
	              " %s };",
	              limits, rules);
	struct weir_config *cfg = load(text);
	struct throttle *t;

	free(text);
	if (cfg == NULL) {
		for (size_t i = 0; i < errs.list.n; i++)
			fprintf(stderr, "    %s\n", errs.list.v[i]);
		return NULL;
	}
	t = throttle_new(cfg);
	config_unref(cfg);
	throttle_match(t, "g.test", NULL, 0, NULL, NULL, m);
	return t;
}

/* go - reserve with max_delay; the delay, or -1 when refused */
static long long go(struct throttle *t, const struct throttle_match *m, long long now,
                    long long max_delay)
{
	long long delay, until;
	size_t which;

	if (throttle_reserve(t, m, now, max_delay, &delay, &which, &until) != THROTTLE_GO)
		return -1;
	return delay;
}

/* count_60s - reservations a driver that asks every ms (taking only
 * those allowed at once) gets in 60 s */
static int count_60s(const char *rate)
{
	char *limits = xasprintf("rate = \"%s\";", rate);
	struct throttle_match m;
	struct throttle *t = one(limits, "rules = ();", &m);
	int n = 0;

	free(limits);
	if (t == NULL)
		return -1;
	for (long long now = T0; now < T0 + MIN; now++)
		if (go(t, &m, now, 0) == 0)
			n++;
	throttle_free(t);
	return n;
}

static void test_gcra(void)
{
	struct throttle_match m;
	struct throttle *t;
	int n;

	test_begin("GCRA: exact over a minute; waiters queue in order");
	n = count_60s("7/s");
	test_assert(n >= 419 && n <= 421);
	n = count_60s("3/s");
	test_assert(n >= 179 && n <= 181);
	n = count_60s("100/s");
	test_assert(n >= 5999 && n <= 6001);
	n = count_60s("1/s");
	test_assert(n >= 59 && n <= 61);
	n = count_60s("90/1m");
	test_assert(n >= 89 && n <= 91);

	t = one("rate = \"10/s\";", "rules = ();", &m);
	test_assert(t != NULL);
	if (t != NULL) {
		test_assert(go(t, &m, T0, 0) == 0);
		/* two more at the same moment: T and 2T */
		test_assert(go(t, &m, T0, 3000) == 100);
		test_assert(go(t, &m, T0, 3000) == 200);
		/* over the wait: refused, nothing committed */
		test_assert(go(t, &m, T0, 250) == -1);
		test_assert(go(t, &m, T0, 300) == 300);
		/* an offered load at the rate is never delayed */
		test_assert(go(t, &m, T0 + 400, 0) == 0);
		for (long long now = T0 + 500; now < T0 + 10000; now += 100)
			test_assert(go(t, &m, now, 0) == 0);
		throttle_free(t);
	}

	t = one("rate = \"1/s\"; burst = 5;", "rules = ();", &m);
	test_assert(t != NULL);
	if (t != NULL) {
		for (int i = 0; i < 5; i++)
			test_assert(go(t, &m, T0, 0) == 0);
		test_assert(go(t, &m, T0, 0) == -1);
		test_assert(go(t, &m, T0, 1000) == 1000);
		test_assert(go(t, &m, T0 + 2000, 0) == 0); /* one more slot came back */
		test_assert(go(t, &m, T0 + 2000, 0) == -1);
		throttle_free(t);
	}
	test_end();
}

static void test_all_or_nothing(void)
{
	struct weir_config *cfg = load(
	    "throttle = { groups = ( { name = \"g\"; domains = \"g.test\"; rate = \"10/s\"; } );\n"
	    " routes = ( { route = \"smarthost\"; rate = \"1/s\"; } ); };");
	struct throttle_match both, dest;
	struct throttle *t;
	long long delay, until;
	size_t which;

	test_begin("reservations: all or nothing across limiters, the longest delay");
	test_assert(cfg != NULL);
	if (cfg == NULL)
		return;
	t = throttle_new(cfg);
	config_unref(cfg);
	throttle_match(t, "g.test", NULL, 0, "smarthost", NULL, &both);
	throttle_match(t, "g.test", NULL, 0, NULL, NULL, &dest);
	test_assert(both.n == 2 && dest.n == 1);
	test_assert(go(t, &both, T0, 0) == 0);
	/* the route refuses: the group's slot is given back */
	test_assert(throttle_reserve(t, &both, T0 + 200, 100, &delay, &which, &until) ==
	            THROTTLE_RATE);
	test_assert(which == 1 && delay == 0);
	test_assert(go(t, &dest, T0 + 200, 0) == 0);
	test_assert(go(t, &dest, T0 + 200, 1000) == 100);
	/* both allow with a wait: the longer one */
	test_assert(go(t, &both, T0 + 300, 3000) == 700);
	throttle_free(t);
	test_end();
}

static void test_sessions(void)
{
	struct throttle_match m;
	struct throttle *t = one("sessions = 2;", "rules = ();", &m);
	struct throttle_limiter *l;

	test_begin("sessions: taken, full, released; waiting counts");
	test_assert(t != NULL);
	if (t == NULL)
		return;
	l = m.l[0];
	test_assert(throttle_session_free(l, T0));
	throttle_session_take(l);
	test_assert(throttle_session_free(l, T0));
	throttle_session_take(l);
	test_assert(!throttle_session_free(l, T0));
	throttle_session_release(l);
	test_assert(throttle_session_free(l, T0));
	throttle_session_release(l);
	throttle_session_release(l); /* never below zero */
	throttle_session_take(l);
	throttle_session_take(l);
	test_assert(!throttle_session_free(l, T0));
	throttle_waiting_add(l, 2);
	test_assert(throttle_waiting(l) == 2);
	throttle_waiting_add(l, -3);
	test_assert(throttle_waiting(l) == 0);
	/* no rate: reservations always go at once */
	test_assert(go(t, &m, T0, 0) == 0 && go(t, &m, T0, 0) == 0);
	throttle_free(t);
	test_end();
}

static const char suspend_rule[] =
    "rules = ( { name = \"tal\"; code = \"421\"; status = \"4.7.\"; text = \"try again later\";"
    " threshold = 3; window = \"60s\"; action = \"suspend\"; duration = \"5m\"; } );";

static void test_suspend(void)
{
	struct throttle_match m;
	struct throttle *t = one("rate = \"10/s\";", suspend_rule, &m);
	struct throttle_limiter *l;
	long long delay, until;
	const char *why;
	size_t which;

	test_begin("rules: suspend at threshold within the window, not outside it");
	test_assert(t != NULL);
	if (t == NULL)
		return;
	l = m.l[0];
	logged[0] = '\0';
	/* three matches spread over more than the window: nothing */
	test_assert(!throttle_reply(t, l, 421, "4.7.0", "Try again later", T0));
	test_assert(!throttle_reply(t, l, 421, "4.7.0", "try again later", T0 + 40000));
	test_assert(!throttle_reply(t, l, 421, "4.7.0", "try again later", T0 + 80001 + 20000));
	/* non-matching replies do not count */
	test_assert(!throttle_reply(t, l, 450, "4.7.0", "try again later", T0 + 101000));
	test_assert(!throttle_reply(t, l, 421, "4.4.2", "try again later", T0 + 101000));
	test_assert(!throttle_reply(t, l, 421, NULL, "try again later", T0 + 101000));
	test_assert(!throttle_reply(t, l, 421, "4.7.0", "busy", T0 + 101000));
	test_assert(throttle_suspended_until(l, T0 + 101000, &why) == 0);
	test_assert(logged[0] == '\0');
	/* the third within 60 s of the first two */
	test_assert(!throttle_reply(t, l, 421, "4.7.0", "try again later", T0 + 110000));
	test_assert(throttle_reply(t, l, 421, "4.7.0", "try again later \"now\"", T0 + 120000));
	test_assert(throttle_suspended_until(l, T0 + 120000, &why) == T0 + 120000 + 5 * MIN);
	test_assert_str(why, "421 4.7.0 try again later 'now'");
	test_assert(strstr(logged, "throttle=group:g state=suspended until=2026-11-22T11:06:59Z "
	                           "rule=tal reply=\"421 4.7.0 try again later 'now'\"") != NULL);
	test_assert(throttle_reserve(t, &m, T0 + 130000, 3000, &delay, &which, &until) ==
	            THROTTLE_SUSPENDED);
	test_assert(which == 0 && until == T0 + 120000 + 5 * MIN);
	/* after the duration: normal again, logged */
	logged[0] = '\0';
	test_assert(go(t, &m, T0 + 120000 + 5 * MIN, 0) == 0);
	test_assert(strstr(logged, "throttle=group:g state=normal after=duration") != NULL);
	test_assert(throttle_suspended_until(l, T0 + 120000 + 5 * MIN, NULL) == 0);
	throttle_free(t);

	/* route and sender limiters are not subject to rules */
	{
		struct weir_config *cfg = load(
		    "throttle = { routes = ( { route = \"smarthost\"; rate = \"1/s\"; } ); rules = "
		    "("
		    " { name = \"r\"; code = \"4\"; action = \"suspend\"; duration = 60; } ); };");
		test_assert(cfg != NULL);
		if (cfg != NULL) {
			t = throttle_new(cfg);
			config_unref(cfg);
			throttle_match(t, "x.test", NULL, 0, "smarthost", NULL, &m);
			test_assert(m.n == 1);
			test_assert(!throttle_reply(t, m.l[0], 421, "4.7.0", "no", T0));
			test_assert(go(t, &m, T0, 0) == 0);
			throttle_free(t);
		}
	}
	test_end();
}

static const char slow_rule[] =
    "rules = ( { name = \"rl\"; code = \"4\"; text = \"rate limit\"; threshold = 1;"
    " action = \"slow\"; factor = 0.5; duration = \"10m\"; recover = 3; } );";

static void test_slow(void)
{
	struct throttle_match m;
	struct throttle *t = one("rate = \"10/s\"; sessions = 4;", slow_rule, &m);
	struct throttle_limiter *l;
	struct throttle_limits lim;
	char text[32];

	test_begin("rules: slow state halves rate and sessions; recovery");
	test_assert(t != NULL);
	if (t == NULL)
		return;
	l = m.l[0];
	logged[0] = '\0';
	test_assert(throttle_reply(t, l, 451, "4.7.650", "Rate limit exceeded", T0));
	test_assert(strstr(logged,
	                   "throttle=group:g state=slow factor=0.5 until=2026-11-22T11:09:59Z "
	                   "rule=rl reply=\"451 4.7.650 Rate limit exceeded\"") != NULL);
	lim = throttle_limiter_limits(l, T0);
	test_assert(lim.n == 10 && lim.period_ms == 2000 && lim.sessions == 2);
	throttle_rate_text(&lim, text, sizeof(text));
	test_assert_str(text, "5/s");
	test_assert(go(t, &m, T0, 0) == 0);
	test_assert(go(t, &m, T0, 1000) == 200); /* T = 200 ms instead of 100 */
	throttle_session_take(l);
	throttle_session_take(l);
	test_assert(!throttle_session_free(l, T0));
	/* recover = 3: back to normal after 3 deliveries */
	logged[0] = '\0';
	throttle_success(t, l, T0 + 1000);
	throttle_success(t, l, T0 + 1000);
	test_assert(throttle_limiter_limits(l, T0 + 1000).period_ms == 2000);
	throttle_success(t, l, T0 + 1000);
	test_assert(strstr(logged, "throttle=group:g state=normal after=successes") != NULL);
	test_assert(throttle_limiter_limits(l, T0 + 1000).period_ms == 1000);
	test_assert(throttle_session_free(l, T0 + 1000)); /* 2 of 4 */
	throttle_session_take(l);
	throttle_session_take(l);
	test_assert(!throttle_session_free(l, T0 + 1000));
	/* again, and this time the duration ends it */
	test_assert(throttle_reply(t, l, 421, NULL, "rate limited", T0 + 2000));
	test_assert(throttle_limiter_limits(l, T0 + 2000 + 10 * MIN - 1).period_ms == 2000);
	logged[0] = '\0';
	test_assert(go(t, &m, T0 + 2000 + 10 * MIN, 0) == 0);
	test_assert(strstr(logged, "state=normal after=duration") != NULL);
	throttle_free(t);
	test_end();
}

/* replies of real providers, and which built-in rule acts at once */
static void test_default_rules(void)
{
	static const struct {
		int code;
		const char *status, *text, *state;
	} cases[] = {
	    {421, "4.7.0",
	     "[TS01] Messages from 1.2.3.4 temporarily deferred due to unexpected volume",
	     "state=suspended"},
	    {421, "4.7.28",
	     "Gmail has detected an unusual rate of unsolicited mail originating from your IP "
	     "address. To protect our users from spam, mail sent from your IP address has been "
	     "temporarily rate limited.",
	     "state=suspended"},
	    {550, "5.7.28", "Our system has detected an unusual rate of unsolicited mail",
	     "state=suspended"},
	};
	static const struct {
		int code;
		const char *status, *text;
	} harmless[] = {
	    {450, "4.2.1", "The user you are trying to contact is receiving mail too quickly"},
	    {550, "5.1.1", "The email account that you tried to reach does not exist"},
	    {451, "4.3.0", "Temporary local problem"},
	    {250, "2.0.0", "OK"},
	};
	struct throttle_match m;
	struct throttle *t;

	test_begin("built-in rules against provider replies");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = one("rate = \"10/s\";", "", &m);
		test_assert(t != NULL);
		if (t == NULL)
			return;
		logged[0] = '\0';
		test_assert(
		    throttle_reply(t, m.l[0], cases[i].code, cases[i].status, cases[i].text, T0));
		test_assert(strstr(logged, cases[i].state) != NULL);
		throttle_free(t);
	}
	/* Outlook: two within a minute slow the group down; a third
	 * (try-again-later's threshold) suspends it */
	t = one("rate = \"10/s\";", "", &m);
	if (t != NULL) {
		const char *txt =
		    "The mail server [1.2.3.4] has been temporarily rate limited due to "
		    "IP reputation";
		logged[0] = '\0';
		test_assert(!throttle_reply(t, m.l[0], 451, "4.7.650", txt, T0));
		test_assert(throttle_reply(t, m.l[0], 451, "4.7.650", txt, T0 + 1000));
		test_assert(strstr(logged, "state=slow factor=0.5") != NULL &&
		            strstr(logged, "rule=outlook-throttle") != NULL);
		test_assert(throttle_reply(t, m.l[0], 451, "4.7.650", txt, T0 + 2000));
		test_assert(strstr(logged, "state=suspended") != NULL &&
		            strstr(logged, "rule=try-again-later") != NULL);
		/* "451 4.7.500 Server busy": matched on "STATUS TEXT" */
		throttle_free(t);
	}
	t = one("rate = \"10/s\";", "", &m);
	if (t != NULL) {
		test_assert(
		    !throttle_reply(t, m.l[0], 451, "4.7.500", "Server busy. (S77719)", T0));
		test_assert(
		    throttle_reply(t, m.l[0], 451, "4.7.500", "Server busy. (S77719)", T0 + 10));
		throttle_free(t);
	}
	for (size_t i = 0; i < sizeof(harmless) / sizeof(harmless[0]); i++) {
		t = one("rate = \"10/s\";", "", &m);
		if (t == NULL)
			return;
		for (int k = 0; k < 5; k++)
			test_assert(!throttle_reply(t, m.l[0], harmless[i].code, harmless[i].status,
			                            harmless[i].text, T0 + k));
		throttle_free(t);
	}
	test_end();
}

/* read_file - the whole file; caller frees */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = xcalloc(1, 65536);

	if (f != NULL) {
		size_t n = fread(buf, 1, 65535, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

static void test_state_file(void)
{
	char dir[] = "/tmp/weir-test-throttle.XXXXXX", *path, *text, *out = NULL, *err = NULL;
	struct throttle_match m, m2;
	struct throttle *t = one("rate = \"20/s\"; sessions = 10;", suspend_rule, &m);
	size_t outlen = 0;
	struct stat st;
	FILE *mem;

	test_begin("state file: lines, atomic write, changed, weirctl's table");
	test_assert(t != NULL && mkdtemp(dir) != NULL);
	if (t == NULL)
		return;
	path = xasprintf("%s/throttle-state", dir);
	test_assert(throttle_state_print(path, stdout, &err) == -1);
	test_assert(err != NULL && strstr(err, "has not written it yet") != NULL &&
	            strstr(err, "is throttle configured and weir-agent running?") != NULL);
	free(err);
	test_assert(throttle_state_changed(t)); /* never written */
	test_assert(throttle_state_write(t, path, T0, &err) == 0);
	test_assert(!throttle_state_changed(t));
	text = read_file(path);
	test_assert_str(text, ""); /* nothing active yet */
	free(text);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);

	for (int i = 0; i < 12; i++)
		test_assert(go(t, &m, T0 + i * 50, 0) == 0);
	test_assert(throttle_state_changed(t));
	throttle_session_take(m.l[0]);
	throttle_session_take(m.l[0]);
	throttle_session_take(m.l[0]);
	throttle_deferred(m.l[0]);
	for (int i = 0; i < 3; i++)
		throttle_reply(t, m.l[0], 421, "4.7.0", "try again later", T0 + 1000 + i);
	throttle_match(t, "idle.test", NULL, 0, NULL, NULL, &m2); /* no limiter: no line */
	test_assert(throttle_state_write(t, path, T0 + 1500, &err) == 0);
	text = read_file(path);
	test_assert_str(text, "group:g rate=20/s observed=0.2/s sessions=3/10 waiting=0 deferred=1 "
	                      "state=suspended until=2026-11-22T11:05:00Z rule=tal "
	                      "reply=\"421 4.7.0 try again later\"\n");
	free(text);
	test_assert(throttle_state_changed(t)); /* the observed rate moves with time */

	mem = open_memstream(&out, &outlen);
	test_assert(throttle_state_print(path, mem, &err) == 0);
	fclose(mem);
	{
		const char *head =
		    "LIMITER  RATE  OBSERVED  SESSIONS  WAITING  DEFERRED  STATE      "
		    "UNTIL                 WHY\n";
		test_assert(out != NULL && strncmp(out, head, strlen(head)) == 0);
	}
	test_assert(out != NULL && strstr(out, "\ngroup:g  20/s  0.2/s     3/10      0        1  "
	                                       "       suspended  2026-11-22T11:05:00Z  tal: "
	                                       "\"421 4.7.0 try again later\"\n") != NULL);
	if (out != NULL && strstr(out, "\ngroup:g") == NULL)
		fprintf(stderr, "%s", out);
	free(out);

	/* after 10 minutes and the suspension: nothing held, nothing shown */
	throttle_session_release(m.l[0]);
	throttle_session_release(m.l[0]);
	throttle_session_release(m.l[0]);
	test_assert(throttle_state_write(t, path, T0 + 12 * MIN, &err) == 0);
	text = read_file(path);
	test_assert_str(text, "");
	free(text);
	test_assert(!throttle_state_changed(t));
	unlink(path);
	rmdir(dir);
	free(path);
	throttle_free(t);
	test_end();
}

/* occurrences - how often sub is in s */
static int occurrences(const char *s, const char *sub)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, sub)) != NULL; p++)
		n++;
	return n;
}

static void test_fleet_fallback(void)
{
	struct weir_config *cfg;
	struct throttle_match m;
	struct throttle *t;

	test_begin("fleet: Redis unreachable, each instance uses its share (logged once)");
	/* port 9 on loopback: connection refused */
	cfg = load("rate = { redis = \"127.0.0.1:9\"; redis_timeout_ms = 100; };\n"
	           "throttle = { backend = \"redis\"; fleet_size = 4; groups = ( { name = \"g\";"
	           " domains = \"g.test\"; rate = \"10/s\"; } ); };");
	test_assert(cfg != NULL);
	if (cfg == NULL)
		return;
	logged[0] = '\0';
	t = throttle_new(cfg);
	config_unref(cfg);
	throttle_match(t, "g.test", NULL, 0, NULL, NULL, &m);
	test_assert(go(t, &m, T0, 0) == 0);
	test_assert(go(t, &m, T0, 1000) == 400); /* 10/s shared by 4: T = 400 ms */
	{
		long long delay, until;
		size_t which;
		test_assert(throttle_reserve(t, &m, T0, 0, &delay, &which, &until) ==
		            THROTTLE_BACKEND);
	}
	test_assert(strstr(logged, "throttle: redis unreachable (") != NULL &&
	            strstr(logged, "): each instance uses its local share 1/4 of every rate") !=
	                NULL);
	test_assert(occurrences(logged, "redis unreachable") == 1);
	throttle_free(t);
	test_end();
}

static void test_reconfigure(void)
{
	struct throttle_match m, m2;
	struct throttle *t = one("rate = \"10/s\";", suspend_rule, &m);
	struct weir_config *cfg;

	test_begin("reload: new limits, state kept by key");
	test_assert(t != NULL);
	if (t == NULL)
		return;
	for (int i = 0; i < 3; i++)
		throttle_reply(t, m.l[0], 421, "4.7.0", "try again later", T0 + i);
	test_assert(throttle_suspended_until(m.l[0], T0 + 10, NULL) > 0);
	cfg = load("throttle = { groups = ( { name = \"g\"; domains = \"g.test\";"
	           " rate = \"1/s\"; } ); };");
	test_assert(cfg != NULL);
	if (cfg != NULL) {
		throttle_reconfigure(t, cfg);
		config_unref(cfg);
		throttle_match(t, "g.test", NULL, 0, NULL, NULL, &m2);
		test_assert(m2.n == 1 && m2.l[0] == m.l[0]);
		test_assert(throttle_limiter_limits(m.l[0], T0 + 10).n == 1);
		test_assert(throttle_suspended_until(m.l[0], T0 + 10, NULL) > 0);
		test_assert(go(t, &m, T0 + 6 * MIN, 0) == 0);
		test_assert(go(t, &m, T0 + 6 * MIN, 2000) == 1000);
	}
	throttle_free(t);
	test_end();
}

/* count - limiters t holds */
static size_t count(const struct throttle *t)
{
	return strmap_count(t->limiters);
}

static void test_gc(void)
{
	struct weir_config *cfg = load("throttle = { domains = { rate = \"1/s\"; }; };");
	struct throttle_match m, busy, keep;
	struct throttle *t;
	char dom[64];

	test_begin("idle limiters are freed, busy ones kept");
	test_assert(cfg != NULL);
	if (cfg == NULL)
		return;
	t = throttle_new(cfg);
	config_unref(cfg);
	for (int i = 0; i < 2000; i++) {
		snprintf(dom, sizeof(dom), "d%d.test", i);
		throttle_match(t, dom, NULL, 0, NULL, NULL, &m);
		test_assert(go(t, &m, T0 + i, 0) == 0);
	}
	throttle_match(t, "busy.test", NULL, 0, NULL, NULL, &busy);
	throttle_session_take(busy.l[0]);
	throttle_match(t, "fresh.test", NULL, 0, NULL, NULL, &keep); /* matched, not charged */
	test_assert(count(t) == 2002);
	/* within 10 minutes: all kept */
	throttle_match(t, "a.test", NULL, 0, NULL, NULL, &m);
	test_assert(go(t, &m, T0 + 5 * MIN, 0) == 0);
	test_assert(count(t) == 2003);
	/* later: the idle ones go, at most once a minute */
	throttle_match(t, "b.test", NULL, 0, NULL, NULL, &m);
	test_assert(go(t, &m, T0 + 11 * MIN, 0) == 0);
	test_assert(count(t) == 4); /* busy, fresh (first seen at 5 min), a, b */
	test_assert(strmap_get(t->limiters, "domain:busy.test") == busy.l[0]);
	test_assert(strmap_get(t->limiters, "domain:fresh.test") == keep.l[0]);
	test_assert(strmap_get(t->limiters, "domain:d5.test") == NULL);
	/* the matched-but-idle one goes 10 minutes after it was first seen */
	throttle_session_release(busy.l[0]);
	test_assert(go(t, &m, T0 + 22 * MIN, 0) == 0);
	test_assert(strmap_get(t->limiters, "domain:fresh.test") == NULL);
	test_assert(strmap_get(t->limiters, "domain:b.test") == m.l[0]);
	test_assert(count(t) == 1);
	throttle_free(t);
	test_end();
}

int main(void)
{
	log_open("test-throttle", true, "mail");
	log_set_hook(capture);
	config_errors_init(&errs);
	test_parse_good();
	test_parse_bad();
	test_match();
	test_gcra();
	test_all_or_nothing();
	test_sessions();
	test_suspend();
	test_slow();
	test_default_rules();
	test_state_file();
	test_fleet_fallback();
	test_reconfigure();
	test_gc();
	config_errors_free(&errs);
	return test_exit_status();
}
