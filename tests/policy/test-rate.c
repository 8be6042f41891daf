/* test-rate - rate limits: planning (policy/rate.c: keys, prefixes,
 * overrides, when a limit applies) and the memory backend of the rate
 * store (policy/rate_store.c: GCRA smoothness and burst, no window-edge
 * burst, quota windows, atomic multi-item decisions, force, persistence
 * across close/open, the rate_reset table, 100 000 keys within the memory
 * goal). Times are fake (now_ms passed in), except the 100 000 keys' RSS,
 * which is measured. */
#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate.h"
#include "policy/rate_mem.h"
#include "policy/rate_store.h"
#include "tests/testlib.h"

/* 2026-11-22T10:59:59Z, in ms: one second before a full hour */
#define T0   1795345199000LL
#define HOUR 3600000LL
#define DAY  (24 * HOUR)

/* Sanitizers' shadow memory and redzones make RSS mean nothing */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif

static char tmpdir[] = "/tmp/test-rate.XXXXXX";

static void quiet(enum log_level level, const char *line)
{
	(void)level;
	(void)line;
}

static struct weir_config *load(const char *rate_group)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("rate = { %s };\n", rate_group);

	config_errors_init(&errs);
	cfg = config_load_string("t.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "  %s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	if (cfg == NULL)
		abort();
	return cfg;
}

/* plan_keys - the state keys planned, joined by ' ' (caller frees) */
static char *plan_keys(const struct weir_config *cfg, enum rate_when when,
                       const struct rate_context *ctx)
{
	struct rate_item *items;
	size_t n = rate_plan(cfg, when, ctx, &items);
	char *out = xstrdup("");

	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s%s%s", out, i ? " " : "", items[i].state_key);
		free(out);
		out = next;
	}
	rate_items_free(items, n);
	return out;
}

#define assert_plan(cfg, when, ctx, want)                                                          \
	do {                                                                                       \
		char *got_ = plan_keys(cfg, when, ctx);                                            \
		test_assert_str(got_, want);                                                       \
		free(got_);                                                                        \
	} while (0)

static void test_keys(void)
{
	struct weir_config *cfg = load(
	    "limits = ("
	    " { name = \"l\"; key = \"login\"; rate = \"10/1m\"; },"
	    " { name = \"c\"; key = \"client\"; rate = \"10/1m\"; ipv4_prefix = 24; ipv6_prefix = "
	    "48; },"
	    " { name = \"c32\"; key = \"client\"; rate = \"10/1m\"; },"
	    " { name = \"s\"; key = \"sender\"; rate = \"10/1m\"; },"
	    " { name = \"sd\"; key = \"sender_domain\"; rate = \"10/1m\"; },"
	    " { name = \"ld\"; key = \"login+rcpt_domain\"; rate = \"10/1m\"; },"
	    " { name = \"r\"; key = \"client+login\"; count = \"recipients\"; rate = \"10/1m\"; }"
	    ");");
	struct rate_context ctx = {.login = "Alice",
	                           .client_ip = "192.0.2.77",
	                           .sender = "<Bob.Smith@Example.COM>",
	                           .identity_class = IDENTITY_AUTHENTICATED};
	char *seen[] = {"gmail.com"};

	test_begin("keys: parts, lowercasing, prefixes, joined by |");
	assert_plan(cfg, RATE_AT_MAIL, &ctx,
	            "l:alice c:192.0.2.0/24 c32:192.0.2.77/32 s:bob.smith@example.com "
	            "sd:example.com");
	ctx.client_ip = "2001:db8:1:2::5";
	ctx.sender = "carol@[192.0.2.1]";
	assert_plan(cfg, RATE_AT_MAIL, &ctx,
	            "l:alice c:2001:db8:1::/48 c32:2001:db8:1:2::/64 s:carol@[192.0.2.1] "
	            "sd:[192.0.2.1]");
	ctx.client_ip = "[IPv6:::ffff:198.51.100.9]";
	assert_plan(cfg, RATE_AT_MAIL, &ctx,
	            "l:alice c:198.51.100.0/24 c32:198.51.100.9/32 s:carol@[192.0.2.1] "
	            "sd:[192.0.2.1]");
	ctx.login = "Al\tice\r\n"; /* no control characters in keys */
	assert_plan(cfg, RATE_AT_MAIL, &ctx,
	            "l:al?ice?? c:198.51.100.0/24 c32:198.51.100.9/32 s:carol@[192.0.2.1] "
	            "sd:[192.0.2.1]");
	test_end();

	test_begin("keys: a missing part means the limit does not apply");
	ctx.login = NULL;
	ctx.sender = "";
	ctx.client_ip = "not-an-ip";
	assert_plan(cfg, RATE_AT_MAIL, &ctx, "");
	ctx.login = "";
	ctx.sender = "<>";
	ctx.client_ip = "192.0.2.1";
	assert_plan(cfg, RATE_AT_MAIL, &ctx, "c:192.0.2.0/24 c32:192.0.2.1/32");
	test_end();

	test_begin("when: MAIL for messages, RCPT for recipients and per-domain messages");
	ctx.login = "alice";
	ctx.sender = "alice@example.com";
	ctx.rcpt = "<X@GMail.com>";
	assert_plan(cfg, RATE_AT_RCPT, &ctx, "ld:alice|gmail.com r:192.0.2.1/32|alice");
	ctx.seen_domains = seen;
	ctx.n_seen_domains = 1;
	assert_plan(cfg, RATE_AT_RCPT, &ctx, "r:192.0.2.1/32|alice");
	ctx.rcpt = "y@example.net";
	assert_plan(cfg, RATE_AT_RCPT, &ctx, "ld:alice|example.net r:192.0.2.1/32|alice");
	ctx.rcpt = "postmaster";
	assert_plan(cfg, RATE_AT_RCPT, &ctx, "r:192.0.2.1/32|alice");
	test_end();
	config_unref(cfg);
}

static void test_overrides(void)
{
	struct weir_config *cfg =
	    load("limits = ("
	         " { name = \"lb\"; key = \"login\"; count = \"recipients\"; rate = \"100/1h\";"
	         "   burst = 20; quota = \"2000/1d\"; action = \"hold\";"
	         "   overrides = ("
	         "     { login = \"Bulk-App\"; rate = \"10000/1h\"; burst = 500; quota = "
	         "\"200000/1d\"; },"
	         "     { domain = \".newcorp.example\"; rate = \"10/1h\"; },"
	         "     { rcpt_domain = \"gmail.com\"; quota = \"50/1d\"; },"
	         "     { network = \"10.1.0.0/16\"; unlimited = true; },"
	         "     { login = \"alice\"; network = \"192.0.2.0/24\"; burst = 2; }"
	         "   ); }"
	         ");");
	struct rate_context ctx = {.login = "bulk-app",
	                           .client_ip = "10.1.2.3",
	                           .sender = "a@newcorp.example",
	                           .rcpt = "x@gmail.com"};
	struct rate_item *it;
	size_t n;

	test_begin("overrides: the first match wins, unset values are the limit's");
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &it);
	test_assert(n == 1 && it[0].n == 10000 && it[0].burst == 500 && it[0].quota_n == 200000);
	test_assert(n == 1 && it[0].action == ACTION_HOLD && it[0].period_ms == HOUR);
	rate_items_free(it, n);
	ctx.login = "carol";
	ctx.sender = "a@sales.newcorp.example"; /* ".newcorp.example": subdomains too */
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &it);
	test_assert(n == 1 && it[0].n == 10 && it[0].burst == 20 && it[0].quota_n == 2000);
	rate_items_free(it, n);
	ctx.sender = "a@example.com";
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &it);
	test_assert(n == 1 && it[0].n == 100 && it[0].quota_n == 50 &&
	            it[0].quota_period_ms == DAY);
	rate_items_free(it, n);
	ctx.rcpt = "x@example.org";
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &it);
	test_assert(n == 0); /* 10.1.0.0/16: unlimited */
	rate_items_free(it, n);
	ctx.client_ip = "192.0.2.9";
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &it);
	test_assert(n == 1 && it[0].burst == 20); /* login alice AND network: carol is not */
	rate_items_free(it, n);
	ctx.login = "Alice";
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &it);
	test_assert(n == 1 && it[0].burst == 2 && it[0].n == 100);
	test_assert_str(n == 1 ? rate_item_value(&it[0]) : NULL, "alice");
	rate_items_free(it, n);
	test_end();
	config_unref(cfg);
}

static void test_applicability(void)
{
	struct weir_config *cfg =
	    load("limits = ("
	         " { name = \"auth\"; key = \"login\"; rate = \"1/s\"; identities = "
	         "\"authenticated\"; },"
	         " { name = \"out\"; key = \"client\"; rate = \"1/s\"; identities = (\"outside\", "
	         "\"trusted\"); },"
	         " { name = \"all\"; key = \"sender_domain\"; quota = \"9/1h\"; }"
	         ");");
	struct rate_context ctx = {
	    .login = "alice", .client_ip = "192.0.2.1", .sender = "a@example.com"};

	test_begin("identities: a limit applies to its classes only");
	ctx.identity_class = IDENTITY_AUTHENTICATED;
	assert_plan(cfg, RATE_AT_MAIL, &ctx, "auth:alice all:example.com");
	ctx.identity_class = IDENTITY_OUTSIDE;
	assert_plan(cfg, RATE_AT_MAIL, &ctx, "out:192.0.2.1/32 all:example.com");
	ctx.identity_class = IDENTITY_TRUSTED;
	assert_plan(cfg, RATE_AT_MAIL, &ctx, "out:192.0.2.1/32 all:example.com");
	test_end();

	test_begin("rates: N/PERIOD");
	long long n, p;
	const char *err;
	test_assert(rate_parse_rate("100/1h", &n, &p, &err) == 0 && n == 100 && p == HOUR);
	test_assert(rate_parse_rate("30/10m", &n, &p, &err) == 0 && n == 30 && p == 600000);
	test_assert(rate_parse_rate("5/s", &n, &p, &err) == 0 && n == 5 && p == 1000);
	test_assert(rate_parse_rate("2/d", &n, &p, &err) == 0 && p == DAY);
	test_assert(rate_parse_rate("0/1h", &n, &p, &err) < 0);
	test_assert(rate_parse_rate("/1h", &n, &p, &err) < 0);
	test_assert(rate_parse_rate("5/", &n, &p, &err) < 0);
	test_assert(rate_parse_rate("5/0s", &n, &p, &err) < 0);
	test_assert(rate_parse_rate("5/1y", &n, &p, &err) < 0);
	test_assert(rate_parse_rate("-5/1h", &n, &p, &err) < 0);
	test_assert(rate_parse_rate("99999999999999999999/1h", &n, &p, &err) < 0);
	test_end();
	config_unref(cfg);
}

/* The algorithms, through the memory store */

static struct rate_item item(const char *key, long long n, long long period, long long burst,
                             long long qn, long long qperiod, int action)
{
	struct rate_item it = {(char *)key, "x", period, n, burst, qperiod, qn, 1, action};
	return it;
}

static bool charge1(struct rate_store *s, struct rate_item *it, long long now,
                    struct rate_verdict *v)
{
	struct rate_verdict local;

	if (v == NULL)
		v = &local;
	test_assert(rate_charge(s, it, 1, false, now, v) == 0);
	return v->allowed;
}

static struct rate_store *memory_store(const char *db, long flush_interval)
{
	char *text = xasprintf("backend = \"memory\"; state_db = \"%s\"; flush_interval = %ld;", db,
	                       flush_interval);
	struct weir_config *cfg = load(text);
	char *err = NULL;
	struct rate_store *s = rate_store_open(cfg, &err);

	if (s == NULL)
		fprintf(stderr, "  rate_store_open: %s\n", err);
	free(err);
	free(text);
	config_unref(cfg);
	return s;
}

static void test_gcra(struct rate_store *s)
{
	struct rate_item it = item("g:burst", 10, 10000, 3, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;
	int allowed = 0;

	test_begin("GCRA: burst at once, then one per T");
	test_assert(charge1(s, &it, T0, &v) && v.remaining == 3);
	test_assert(charge1(s, &it, T0, &v) && v.remaining == 2);
	test_assert(charge1(s, &it, T0, &v) && v.remaining == 1);
	test_assert(!charge1(s, &it, T0, &v) && v.retry_after_ms == 1000 && !v.quota &&
	            v.remaining == 0 && v.resets_at_ms == 0 && v.denied == 0);
	test_assert(!charge1(s, &it, T0 + 999, &v) && v.retry_after_ms == 1);
	test_assert(charge1(s, &it, T0 + 1000, &v));
	test_assert(!charge1(s, &it, T0 + 1000, &v));
	/* idle long enough, the whole burst is back */
	test_assert(charge1(s, &it, T0 + 60000, &v) && v.remaining == 3);
	test_end();

	test_begin("GCRA: smooth, 10/10s with burst 1 sends one per second");
	it = item("g:smooth", 10, 10000, 1, 0, 0, ACTION_TEMPFAIL);
	for (long long t = T0; t < T0 + 10000; t += 100)
		allowed += charge1(s, &it, t, NULL);
	test_assert(allowed == 10);
	test_end();
}

static void test_window_edge(struct rate_store *s)
{
	struct rate_item it = item("g:edge", 60, 60000, 10, 0, 0, ACTION_TEMPFAIL);
	static bool ok[30000];
	int worst = 0;

	/* A client trying every 10 ms for 5 minutes: in no 60 s interval,
	 * wherever it starts, more than burst + 60 go (a fixed window would
	 * let 2 x 60 through around its edge). */
	test_begin("no window-edge burst: at most burst + N in any sliding window");
	for (int i = 0; i < 30000; i++)
		ok[i] = charge1(s, &it, T0 + 10LL * i, NULL);
	for (int start = 0; start + 6000 <= 30000; start += 50) {
		int n = 0;
		for (int i = start; i < start + 6000; i++)
			n += ok[i];
		if (n > worst)
			worst = n;
	}
	test_assert(worst <= 10 + 60);
	test_assert(worst >= 60);
	test_end();
}

static void test_quota(struct rate_store *s)
{
	struct rate_item it = item("q:hour", 0, 0, 0, 5, HOUR, ACTION_REJECT);
	struct rate_item day = item("q:day", 0, 0, 0, 2, DAY, ACTION_TEMPFAIL);
	struct rate_verdict v;
	char when[64];
	time_t secs;

	test_begin("quota: N per UTC-aligned window, then the next window");
	for (int i = 0; i < 5; i++)
		test_assert(charge1(s, &it, T0 - 5000 + 1000 * i, &v) && v.remaining == 5 - i);
	test_assert(!charge1(s, &it, T0, &v) && v.quota && v.retry_after_ms == 1000 &&
	            v.remaining == 0);
	secs = (time_t)(v.resets_at_ms / 1000);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&secs));
	test_assert_str(when, "2026-11-22T11:00:00Z");
	test_assert(charge1(s, &it, T0 + 1000, &v) && v.remaining == 5);
	test_end();

	test_begin("quota: a day is a UTC day");
	test_assert(charge1(s, &day, T0, &v) && charge1(s, &day, T0, &v));
	test_assert(!charge1(s, &day, T0 + 12 * HOUR, &v));
	secs = (time_t)(v.resets_at_ms / 1000);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&secs));
	test_assert_str(when, "2026-11-23T00:00:00Z");
	test_assert(charge1(s, &day, v.resets_at_ms, &v));
	test_end();

	test_begin("rate and quota on one item: the longer denial is reported");
	it = item("q:both", 1, 1000, 1, 1, HOUR, ACTION_TEMPFAIL);
	test_assert(charge1(s, &it, T0 - 3000, &v));
	test_assert(!charge1(s, &it, T0 - 3000, &v) && v.quota && v.retry_after_ms == 4000);
	test_end();
}

static void test_atomic(struct rate_store *s)
{
	struct rate_item items[3] = {
	    item("a:plenty", 100, 1000, 100, 0, 0, ACTION_LOG),
	    item("a:tight", 1, 60000, 1, 0, 0, ACTION_TEMPFAIL),
	    item("a:strict", 0, 0, 0, 1, HOUR, ACTION_REJECT),
	};
	struct rate_verdict v;

	test_begin("several items: all or nothing, the strictest denial reported");
	test_assert(rate_charge(s, items, 3, false, T0, &v) == 0 && v.allowed);
	test_assert(v.remaining == 1); /* the smallest before the charge */
	test_assert(rate_charge(s, items, 3, false, T0, &v) == 0 && !v.allowed);
	test_assert(v.denied == 2 && v.quota); /* reject beats tempfail */
	/* nothing was committed: a:plenty has 99 left, not 98 */
	test_assert(charge1(s, &items[0], T0, &v) && v.remaining == 99);
	items[2].action = ACTION_HOLD;
	test_assert(rate_charge(s, items, 3, false, T0, &v) == 0 && !v.allowed);
	test_assert(v.denied == 1 && v.retry_after_ms == 60000); /* tempfail beats hold */
	test_end();

	test_begin("force: a denied decision is committed all the same");
	test_assert(rate_charge(s, items, 3, true, T0, &v) == 0 && !v.allowed && v.denied == 1);
	test_assert(charge1(s, &items[0], T0, &v) && v.remaining == 97);
	test_assert(!charge1(s, &items[1], T0 + 60000, &v)); /* tat moved one more T */
	test_assert(charge1(s, &items[1], T0 + 120000, &v));
	test_end();

	test_begin("the same key twice in one decision is charged twice");
	struct rate_item twice[2] = {item("a:twice", 2, 1000, 2, 0, 0, ACTION_TEMPFAIL),
	                             item("a:twice", 2, 1000, 2, 0, 0, ACTION_TEMPFAIL)};
	test_assert(rate_charge(s, twice, 2, false, T0, &v) == 0 && v.allowed);
	test_assert(rate_charge(s, twice, 2, false, T0 + 500, &v) == 0 && !v.allowed);
	test_assert(rate_charge(s, twice, 1, false, T0 + 500, &v) == 0 && v.allowed);
	test_end();
}

struct thread_arg {
	struct rate_store *s;
	int allowed;
};

static void *charge_thread(void *p)
{
	struct thread_arg *a = p;
	struct rate_item items[2] = {item("t:shared", 1, HOUR, 1000, 0, 0, ACTION_TEMPFAIL),
	                             item("t:other", 1, HOUR, 100000, 0, 0, ACTION_TEMPFAIL)};
	struct rate_verdict v;

	for (int i = 0; i < 5000; i++)
		if (rate_charge(a->s, items, 2, false, T0, &v) == 0 && v.allowed)
			a->allowed++;
	return NULL;
}

static void test_threads(struct rate_store *s)
{
	struct thread_arg args[4];
	pthread_t th[4];
	int total = 0;

	test_begin("four threads at once hold a limit exactly");
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){s, 0};
		pthread_create(&th[i], NULL, charge_thread, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += args[i].allowed;
	}
	test_assert(total == 1000);
	test_end();
}

static char *slurp_show(struct rate_store *s, const char *key)
{
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (rate_store_show(s, key, f, &err) < 0) {
		fprintf(f, "error: %s", err);
		free(err);
	}
	fclose(f);
	return buf;
}

static void test_persistence(void)
{
	char *db = xasprintf("%s/rate.db", tmpdir);
	struct rate_item q = item("p:alice", 10, HOUR, 10, 5, DAY, ACTION_TEMPFAIL);
	struct rate_item idle = item("p:idle", 10, 1000, 1, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;
	struct rate_store *s;
	struct stat st;

	test_begin("persistence: counts survive close and open");
	s = memory_store(db, 300);
	test_assert(s != NULL);
	for (int i = 0; i < 3; i++)
		test_assert(charge1(s, &q, T0, &v));
	test_assert(charge1(s, &idle, T0, &v));
	rate_store_close(s); /* flushes */
	test_assert(stat(db, &st) == 0 && (st.st_mode & 0777) == 0640);
	s = memory_store(db, 300);
	test_assert(charge1(s, &q, T0 + 1000, &v) && v.remaining == 2);
	test_assert(charge1(s, &q, T0 + 2000, &v));
	test_assert(!charge1(s, &q, T0 + 3000, &v) && v.quota);
	test_end();

	test_begin("persistence: idle keys leave memory and the file at a flush");
	/* p:idle recovered at T0 + 100; p:alice's quota lasts the day */
	test_assert(rate_store_flush(s) == 0);
	char *out = slurp_show(s, NULL);
	test_assert(strstr(out, "p:idle") == NULL);
	test_assert(strstr(out, "p:alice limit=p value=alice") != NULL);
	test_assert(strstr(out, "quota_used=5 quota_limit=5 quota_remaining=0 "
	                        "quota_resets_at=2026-11-23T00:00:00Z") != NULL);
	free(out);
	rate_store_close(s);
	s = memory_store(db, 300);
	out = slurp_show(s, "p:idle");
	test_assert_str(out, "p:idle state=none\n");
	free(out);
	test_end();

	test_begin("reset: weirctl's request is taken at the next flush");
	char *text = xasprintf("state_db = \"%s\";", db);
	struct weir_config *cfg = load(text);
	char *err = NULL;
	struct rate_store *admin = rate_store_open_admin(cfg, &err);
	test_assert(admin != NULL);
	out = slurp_show(admin, NULL);
	test_assert(strncmp(out, "# memory backend: counters as of weir-milter's last flush", 57) ==
	            0);
	test_assert(strstr(out, "\np:alice limit=p value=alice ") != NULL);
	free(out);
	test_assert(rate_store_reset(admin, "p:alice", &err) == 0);
	out = slurp_show(admin, "p:alice");
	test_assert(strstr(out, "p:alice state=none") != NULL); /* the row is gone at once */
	free(out);
	test_assert(!charge1(s, &q, T0 + 4000, &v)); /* weir-milter: until its next flush */
	test_assert(rate_store_flush(s) == 0);
	test_assert(charge1(s, &q, T0 + 5000, &v) && v.remaining == 5);
	/* a reset asked for while weir-milter is down is taken at its start */
	rate_store_close(s);
	test_assert(rate_store_reset(admin, "p:alice", &err) == 0);
	s = memory_store(db, 300);
	test_assert(charge1(s, &q, T0 + 6000, &v) && v.remaining == 5);
	rate_store_close(s);
	rate_store_close(admin);
	config_unref(cfg);
	test_end();

	test_begin("flush thread: counts written every flush_interval");
	s = memory_store(db, 1);
	test_assert(charge1(s, &idle, T0 + 10 * HOUR, &v));
	sleep(2);
	cfg = load(text);
	admin = rate_store_open_admin(cfg, &err);
	out = slurp_show(admin, "p:idle");
	test_assert(strstr(out, "p:idle limit=p value=idle rate_remaining=") != NULL);
	free(out);
	rate_store_close(admin);
	config_unref(cfg);
	rate_store_close(s);
	test_end();
	free(text);
	free(db);
}

struct flush_arg {
	struct rate_store *s;
	int id;
	atomic_bool *done;
};

static void *quota_thread(void *p)
{
	struct flush_arg *a = p;
	struct rate_verdict v;
	char key[32];

	for (int round = 0; round < 5; round++)
		for (int k = 0; k < 300; k++) {
			snprintf(key, sizeof(key), "s:t%d-%d", a->id, k);
			struct rate_item it = item(key, 0, 0, 0, 1000, DAY, ACTION_TEMPFAIL);
			rate_charge(a->s, &it, 1, false, T0 + round, &v);
		}
	return NULL;
}

static void *flush_thread(void *p)
{
	struct flush_arg *a = p;

	while (!atomic_load(a->done))
		rate_store_flush(a->s);
	return NULL;
}

static void test_flush_while_charging(void)
{
	char *db = xasprintf("%s/stress.db", tmpdir);
	struct rate_store *s = memory_store(db, 1);
	atomic_bool done = false;
	struct flush_arg args[3] = {{s, 0, &done}, {s, 1, &done}, {s, 2, &done}};
	pthread_t th[3];
	struct rate_verdict v;
	bool all = true;
	char key[32];

	test_begin("flushes during decisions lose no count");
	pthread_create(&th[2], NULL, flush_thread, &args[2]);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, quota_thread, &args[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	atomic_store(&done, true);
	pthread_join(th[2], NULL);
	rate_store_close(s);
	s = memory_store(db, 300);
	for (int id = 0; id < 2; id++)
		for (int k = 0; k < 300; k++) {
			snprintf(key, sizeof(key), "s:t%d-%d", id, k);
			struct rate_item it = item(key, 0, 0, 0, 1000, DAY, ACTION_TEMPFAIL);
			all &= charge1(s, &it, T0 + 10, &v) && v.remaining == 995;
		}
	test_assert(all);
	rate_store_close(s);
	test_end();
	free(db);
}

static void test_reload(void)
{
	struct weir_config *cfg =
	    load("state_db = \"\"; limits = ({ name = \"x\"; key = \"login\"; "
	         "rate = \"2/1h\"; burst = 2; });");
	struct weir_config *cfg2 = load("state_db = \"\"; flush_interval = 5; limits = ({ name = "
	                                "\"x\"; key = \"login\"; rate = \"4/1h\"; burst = 3; });");
	struct rate_context ctx = {.login = "bob"};
	struct rate_item *it;
	struct rate_verdict v;
	char *err = NULL;
	struct rate_store *s = rate_store_open(cfg, &err);
	size_t n;

	test_begin("reload: counters stay, new limits apply to them");
	n = rate_plan(cfg, RATE_AT_MAIL, &ctx, &it);
	test_assert(rate_charge(s, it, n, false, T0, &v) == 0 && v.allowed);
	test_assert(rate_charge(s, it, n, false, T0, &v) == 0 && v.allowed);
	test_assert(rate_charge(s, it, n, false, T0, &v) == 0 && !v.allowed);
	rate_items_free(it, n);
	rate_store_reconfigure(s, cfg2);
	n = rate_plan(cfg2, RATE_AT_MAIL, &ctx, &it);
	/* tat is T0 + 1h; T is now 15 min, capacity 45 min: still over */
	test_assert(rate_charge(s, it, n, false, T0, &v) == 0 && !v.allowed &&
	            v.retry_after_ms == 30 * 60000);
	rate_items_free(it, n);
	rate_store_close(s);
	config_unref(cfg);
	config_unref(cfg2);
	test_end();
}

static void test_backend_switch(void)
{
	char *db = xasprintf("%s/switch.db", tmpdir);
	char *mem_text = xasprintf("state_db = \"%s\";", db);
	char *redis_text = xasprintf("state_db = \"%s\"; backend = \"redis\"; "
	                             "redis = \"127.0.0.1:1\"; fail_mode = \"closed\";",
	                             db);
	struct weir_config *mem = load(mem_text), *redis = load(redis_text);
	struct rate_item q = item("w:x", 0, 0, 0, 5, DAY, ACTION_TEMPFAIL);
	struct rate_verdict v;
	char *err = NULL;
	struct rate_store *s = rate_store_open(mem, &err);

	test_begin("reload to another backend and back: the memory counters wait in the file");
	for (int i = 0; i < 3; i++)
		test_assert(charge1(s, &q, T0, &v));
	rate_store_reconfigure(s, redis);
	/* nothing listens on port 1: fail_mode closed */
	test_assert(!charge1(s, &q, T0, &v) && v.backend_down);
	rate_store_reconfigure(s, mem);
	test_assert(charge1(s, &q, T0, &v) && v.remaining == 2 && !v.backend_down);
	rate_store_close(s);
	config_unref(mem);
	config_unref(redis);
	free(mem_text);
	free(redis_text);
	free(db);
	test_end();
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

static double secs_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_many_keys(void)
{
	char *db = xasprintf("%s/many.db", tmpdir);
	struct rate_store *s = memory_store(db, 300);
	long before = rss_kb(), after;
	struct rate_verdict v;
	struct timespec t0;
	char key[64];
	int allowed = 0;

	test_begin("100 000 keys: well under 64 MB, flushed and loaded again");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "login-burst:user%06d@example.com", i);
		struct rate_item it = item(key, 100, HOUR, 20, 2000, DAY, ACTION_TEMPFAIL);
		allowed += rate_charge(s, &it, 1, false, T0, &v) == 0 && v.allowed;
	}
	after = rss_kb();
	printf("  100000 keys: %.0f decisions/s, RSS %ld kB -> %ld kB (+%.1f MB)\n",
	       100000 / secs_since(&t0), before, after, (double)(after - before) / 1024);
	test_assert(allowed == 100000);
	test_assert(!RSS_MEANINGFUL || after - before < 32 * 1024);
	test_assert(!RSS_MEANINGFUL || after < 64 * 1024);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_assert(rate_store_flush(s) == 0);
	printf("  flush of 100000 changed keys: %.2f s\n", secs_since(&t0));
	rate_store_close(s);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = memory_store(db, 300);
	printf("  open with 100000 keys: %.2f s\n", secs_since(&t0));
	struct rate_item last = item(key, 100, HOUR, 20, 2000, DAY, ACTION_TEMPFAIL);
	test_assert(charge1(s, &last, T0, &v) && v.remaining == 19);
	rate_store_close(s);
	test_end();
	free(db);
}

static void test_format(void)
{
	struct rate_state st = {T0 + 1000, 1000, 2000, T0 - 3599000, 7, 10, HOUR};
	char *line;

	test_begin("show: one line per key, times in UTC");
	line = rate_state_format("lb:alice|gmail.com", &st, T0);
	test_assert_str(line, "lb:alice|gmail.com limit=lb value=alice|gmail.com rate_remaining=1 "
	                      "rate_full_at=2026-11-22T11:00:00Z quota_used=7 quota_limit=10 "
	                      "quota_remaining=3 quota_resets_at=2026-11-22T11:00:00Z");
	free(line);
	st.tat = T0 + 2000;
	line = rate_state_format("lb:bob", &st, T0 + 3600000);
	test_assert(strstr(line, "rate_remaining=2 ") != NULL);
	test_assert(strstr(line, "quota_used=0 quota_limit=10 quota_remaining=10 "
	                         "quota_resets_at=2026-11-22T12:00:00Z") != NULL);
	free(line);
	st.tat = T0 + 2500;
	line = rate_state_format("lb:bob", &st, T0);
	test_assert(strstr(line, "rate_remaining=0 rate_retry_at=2026-11-22T11:00:00Z "
	                         "rate_retry_after=2s") != NULL);
	free(line);
	test_end();
}

int main(void)
{
	struct rate_store *s;
	char *cmd;

	log_set_hook(quiet);
	log_set_level(LOG_LEVEL_ERROR);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_keys();
	test_overrides();
	test_applicability();
	s = memory_store("", 300);
	test_gcra(s);
	test_window_edge(s);
	test_quota(s);
	test_atomic(s);
	test_threads(s);
	rate_store_close(s);
	test_persistence();
	test_flush_while_charging();
	test_reload();
	test_backend_switch();
	test_format();
	test_many_keys();
	cmd = xasprintf("rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cmd);
	return test_exit_status();
}
