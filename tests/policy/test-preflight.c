/* test-preflight - policy/preflight.c with the SPF engine answering DNS
 * from a table (spf_engine_new_lookup) and a real SQLite file in a
 * temporary directory: worst-result order, egress addresses, counts in
 * the store (one thread and several), the report as a table and for
 * Prometheus, and a store that cannot be written (checks go on, the
 * failure is logged once). */
#include "autoconf.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/preflight.h"
#include "policy/spf.h"
#include "tests/testlib.h"

/* The zone: TXT records only (ip4/ip6 terms need no lookups) */
static const struct {
	const char *name, *txt;
} zone[] = {
    {"pass.test", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"},
    /* .1 pass, .2 neutral, 2001:db8::1 fail */
    {"mixed.test", "v=spf1 ip4:192.0.2.1 ?ip4:192.0.2.2 -all"},
    /* .1 pass, .2 and v6 softfail */
    {"soft.test", "v=spf1 ip4:192.0.2.1 ~all"},
    /* .1 pass, others reach an include with no record: permerror */
    {"perm.test", "v=spf1 ip4:192.0.2.1 include:missing.test ~all"},
    /* .1 fail, others permerror: fail is worse */
    {"failperm.test", "v=spf1 -ip4:192.0.2.1 include:missing.test -all"},
    /* .1 temperror (include of a failing server), .2 pass, v6 softfail */
    {"tempsoft.test", "v=spf1 ip4:192.0.2.2 ~ip6:2001:db8::/32 include:down.test -all"},
    /* .1 neutral, .2 and v6 temperror */
    {"neutemp.test", "v=spf1 ?ip4:192.0.2.1 include:down.test -all"},
    {"bad.test", "v=spf1 ip4:192.0.2.1 bogus-term -all"},
};

static int lookups;

/* answer - the table as a DNS server would give it */
static enum dns_wait_result answer(void *ctx, const char *name, int rrtype,
                                   struct dns_wait_answer *ans)
{
	(void)ctx;
	__atomic_add_fetch(&lookups, 1, __ATOMIC_RELAXED);
	if (strcmp(name, "down.test") == 0)
		return DNS_WAIT_TEMPFAIL;
	if (rrtype != 16)
		return DNS_WAIT_NONE;
	for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
		size_t len = strlen(zone[i].txt);
		if (strcasecmp(name, zone[i].name) != 0)
			continue;
		ans->n = 1;
		ans->rdata = xcalloc(1, sizeof(*ans->rdata));
		ans->len = xcalloc(1, sizeof(*ans->len));
		ans->rdata[0] = xmalloc(len + 2);
		ans->rdata[0][0] = (unsigned char)len; /* records here are < 256 */
		memcpy(ans->rdata[0] + 1, zone[i].txt, len + 1);
		ans->len[0] = len + 1;
		ans->ttl = 60;
		return DNS_WAIT_OK;
	}
	return DNS_WAIT_NONE;
}

static char dir[] = "/tmp/weir-test-preflight.XXXXXX";
static int warnings, unstored, loopback;

static void hook(enum log_level level, const char *line)
{
	if (level == LOG_LEVEL_WARNING && strstr(line, "preflight store") != NULL)
		warnings++;
	if (strstr(line, "not stored") != NULL)
		unstored++;
	if (level == LOG_LEVEL_WARNING && strstr(line, "loopback") != NULL)
		loopback++;
}

static struct weir_config *conf(const char *body)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("hostname = \"relay.weir.test\";\n%s\n", body);

	config_errors_init(&errs);
	cfg = config_load_string("(test)", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "config: %s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

/* count_of - the store's count for one key (-1: no row, -2: error) */
static long long count_of(const char *db_path, const char *domain, const char *result,
                          const char *ip)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -2;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_prepare_v2(db,
	                       "SELECT count FROM preflight WHERE domain = ? AND result = ? AND "
	                       "egress_ip = ?",
	                       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, result, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ip, -1, SQLITE_STATIC);
		n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

static long long rows_of(const char *db_path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -2;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM preflight", -1, &st, NULL) == SQLITE_OK) {
		n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

static int sql(const char *db_path, const char *stmt)
{
	sqlite3 *db;
	int rc;

	if (sqlite3_open(db_path, &db) != SQLITE_OK)
		return -1;
	rc = sqlite3_exec(db, stmt, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* report - preflight_report into a string (caller frees); NULL on -1 */
static char *report(const char *db_path, bool prometheus, char **err_r)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	int rc = preflight_report(db_path, f, prometheus, err_r);

	fclose(f);
	if (rc < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* check_one - preflight of sender; the worst result, its address, and
 * each address's result name joined with spaces */
static void check_one(struct preflight *p, const char *sender, unsigned flags,
                      const char *want_worst, const char *want_ip, const char *want_each)
{
	struct preflight_result r;
	char each[200] = "";

	test_assert(preflight_check_flags(p, sender, flags, &r) == 0);
	test_assert_str(spf_result_name(r.worst), want_worst);
	test_assert_str(r.ip, want_ip);
	test_assert(r.reason != NULL);
	for (size_t i = 0; i < r.naddrs; i++) {
		size_t l = strlen(each);
		snprintf(each + l, sizeof(each) - l, "%s%s", l ? " " : "",
		         spf_result_name(r.addrs[i].result));
	}
	test_assert_str(each, want_each);
	preflight_result_free(&r);
}

struct thread_arg {
	struct preflight *p;
	int n;
};

static void *hammer(void *arg)
{
	struct thread_arg *a = arg;

	for (int i = 0; i < a->n; i++) {
		struct preflight_result r;
		if (preflight_check(a->p, "app@soft.test", &r) == 0)
			preflight_result_free(&r);
	}
	return NULL;
}

int main(void)
{
	const char *err = NULL;
	char *db, *text, *e = NULL, *body;
	struct weir_config *cfg, *cfg2;
	struct spf_engine *spf;
	struct preflight *p, *p2;
	struct preflight_result r;

	log_open("test-preflight", true, "mail");
	log_set_hook(hook);
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) < 0) {
		perror("mkdtemp");
		return 1;
	}
	db = xasprintf("%s/pf.db", dir);
	body = xasprintf("spf = { egress = (\"192.0.2.1\", \"192.0.2.2\", \"2001:DB8::1\");\n"
	                 " preflight_db = \"%s\"; };",
	                 db);
	cfg = conf(body);
	free(body);
	spf = spf_engine_new_lookup(answer, NULL, &err);

	test_begin("setup");
	test_assert(cfg != NULL);
	test_assert(spf != NULL);
	test_end();
	if (cfg == NULL || spf == NULL)
		return 1;
	spf_engine_set_receiver(spf, cfg->hostname);
	p = preflight_new(cfg, spf, NULL);

	test_begin("rank: fail > permerror > softfail > temperror > none > neutral > pass");
	test_assert(preflight_rank(SPF_RES_FAIL) > preflight_rank(SPF_RES_PERMERROR));
	test_assert(preflight_rank(SPF_RES_PERMERROR) > preflight_rank(SPF_RES_SOFTFAIL));
	test_assert(preflight_rank(SPF_RES_SOFTFAIL) > preflight_rank(SPF_RES_TEMPERROR));
	test_assert(preflight_rank(SPF_RES_TEMPERROR) > preflight_rank(SPF_RES_NONE));
	test_assert(preflight_rank(SPF_RES_NONE) > preflight_rank(SPF_RES_NEUTRAL));
	test_assert(preflight_rank(SPF_RES_NEUTRAL) > preflight_rank(SPF_RES_PASS));
	test_end();

	test_begin("worst over the egress addresses");
	check_one(p, "a@pass.test", 0, "pass", "192.0.2.1", "pass pass pass");
	check_one(p, "a@mixed.test", 0, "fail", "2001:db8::1", "pass neutral fail");
	check_one(p, "a@soft.test", 0, "softfail", "192.0.2.2", "pass softfail softfail");
	check_one(p, "a@perm.test", 0, "permerror", "192.0.2.2", "pass permerror permerror");
	check_one(p, "a@failperm.test", 0, "fail", "192.0.2.1", "fail permerror permerror");
	check_one(p, "a@tempsoft.test", 0, "softfail", "2001:db8::1", "temperror pass softfail");
	check_one(p, "a@none.test", 0, "none", "192.0.2.1", "none none none");
	check_one(p, "<a@bad.test>", 0, "permerror", "192.0.2.1", "permerror permerror permerror");
	check_one(p, "a@neutemp.test", 0, "temperror", "192.0.2.2", "neutral temperror temperror");
	test_end();

	test_begin("the domain is the sender's, lowercased");
	test_assert(preflight_check(p, "Someone@MIXED.Test", &r) == 0);
	test_assert_str(r.domain, "mixed.test");
	test_assert_str(spf_result_name(r.worst), "fail");
	test_assert_str(r.reason, "mixed.test does not designate 2001:db8::1 as permitted sender");
	preflight_result_free(&r);
	test_assert(preflight_check_flags(p, "x@Mixed.Test.", PREFLIGHT_NO_STORE, &r) == 0);
	test_assert_str(r.domain, "mixed.test");
	preflight_result_free(&r);
	test_end();

	test_begin("nothing to check: -1 with a reason");
	test_assert(preflight_check(p, "", &r) == -1);
	test_assert(r.reason != NULL && strstr(r.reason, "null sender") != NULL);
	preflight_result_free(&r);
	test_assert(preflight_check(p, "<>", &r) == -1);
	preflight_result_free(&r);
	test_assert(preflight_check(p, "nodomain", &r) == -1);
	test_assert(r.reason != NULL && strstr(r.reason, "domain") != NULL);
	preflight_result_free(&r);
	test_end();

	test_begin("counts in the store: non-pass findings only, exact");
	for (int i = 0; i < 3; i++) {
		test_assert(preflight_check(p, "b@mixed.test", &r) == 0);
		preflight_result_free(&r);
	}
	/* 1 + 1 (lowercased) + 3 */
	test_assert(count_of(db, "mixed.test", "fail", "2001:db8::1") == 5);
	test_assert(count_of(db, "mixed.test", "neutral", "192.0.2.2") == 5);
	test_assert(count_of(db, "mixed.test", "pass", "192.0.2.1") == -1);
	test_assert(count_of(db, "pass.test", "pass", "192.0.2.1") == -1);
	test_assert(count_of(db, "soft.test", "softfail", "192.0.2.2") == 1);
	test_assert(count_of(db, "tempsoft.test", "temperror", "192.0.2.1") == 1);
	test_assert(count_of(db, "none.test", "none", "2001:db8::1") == 1);
	test_end();

	test_begin("PREFLIGHT_NO_STORE: evaluated, not counted");
	long long nrows = rows_of(db);
	check_one(p, "a@mixed.test", PREFLIGHT_NO_STORE, "fail", "2001:db8::1",
	          "pass neutral fail");
	check_one(p, "a@newdomain.test", PREFLIGHT_NO_STORE, "none", "192.0.2.1", "none none none");
	test_assert(count_of(db, "mixed.test", "fail", "2001:db8::1") == 5);
	test_assert(count_of(db, "newdomain.test", "none", "192.0.2.1") == -1);
	test_assert(nrows > 0 && rows_of(db) == nrows);
	test_end();

	test_begin("threads: counts stay exact");
	{
		pthread_t t[4];
		struct thread_arg a = {p, 25};
		long long before = count_of(db, "soft.test", "softfail", "192.0.2.2");
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, hammer, &a);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		test_assert(count_of(db, "soft.test", "softfail", "192.0.2.2") == before + 100);
		test_assert(count_of(db, "soft.test", "softfail", "2001:db8::1") == before + 100);
	}
	test_end();

	test_begin("a second preflight (a reload) on the same file adds to it");
	p2 = preflight_new(cfg, spf, NULL);
	test_assert(preflight_check(p2, "c@mixed.test", &r) == 0);
	preflight_result_free(&r);
	test_assert(preflight_check(p, "c@mixed.test", &r) == 0);
	preflight_result_free(&r);
	preflight_free(p2);
	test_assert(count_of(db, "mixed.test", "fail", "2001:db8::1") == 7);
	test_assert(warnings == 0 && unstored == 0);
	test_end();

	test_begin("report: table, newest first, ISO 8601 UTC");
	test_assert(sql(db, "UPDATE preflight SET first_seen = 0, last_seen = 86400 "
	                    "WHERE domain = 'soft.test';"
	                    "UPDATE preflight SET first_seen = 60, last_seen = 1700000000, "
	                    "last_reason = 'why not' WHERE domain = 'mixed.test';"
	                    "UPDATE preflight SET first_seen = 1, last_seen = 2 "
	                    "WHERE domain NOT IN ('soft.test', 'mixed.test');") == 0);
	text = report(db, false, &e);
	test_assert(text != NULL);
	if (text != NULL) {
		const char *head = strstr(text, "DOMAIN");
		const char *mixed = strstr(text, "\nmixed.test ");
		const char *soft = strstr(text, "\nsoft.test ");
		const char *none = strstr(text, "\nnone.test ");
		char f[7][64];
		long long n = 0;
		test_assert(head == text);
		test_assert(head != NULL && strstr(head, "RESULT") && strstr(head, "EGRESS") &&
		            strstr(head, "COUNT") && strstr(head, "FIRST SEEN") &&
		            strstr(head, "LAST SEEN") && strstr(head, "LAST REASON"));
		test_assert(mixed != NULL && soft != NULL && none != NULL);
		test_assert(mixed < soft && soft < none);
		test_assert(strstr(text, "1970-01-01T00:01:00Z  2023-11-14T22:13:20Z  why not\n") !=
		            NULL);
		test_assert(strstr(text, "1970-01-01T00:00:00Z  1970-01-02T00:00:00Z") != NULL);
		/* the first row: mixed.test fail 2001:db8::1, count 7 */
		test_assert(mixed != NULL && sscanf(mixed + 1, "%63s %63s %63s %lld %63s %63s %63s",
		                                    f[0], f[1], f[2], &n, f[4], f[5], f[6]) == 7);
		test_assert_str(f[1], "fail");
		test_assert_str(f[2], "2001:db8::1");
		test_assert(n == 7);
		test_assert_str(f[4], "1970-01-01T00:01:00Z");
		test_assert_str(f[5], "2023-11-14T22:13:20Z");
	}
	free(text);
	test_end();

	test_begin("report: Prometheus, label values escaped");
	test_assert(sql(db, "INSERT INTO preflight VALUES ('q\"uo\\te\nd.test', 'fail', "
	                    "'192.0.2.1', 4, 1, 1, '')") == 0);
	text = report(db, true, &e);
	test_assert(text != NULL);
	if (text != NULL) {
		test_assert(strncmp(text, "# HELP weir_spf_preflight_findings_total ", 41) == 0);
		test_assert(strstr(text, "\n# TYPE weir_spf_preflight_findings_total counter\n") !=
		            NULL);
		test_assert(strstr(text,
		                   "\nweir_spf_preflight_findings_total{domain=\"mixed.test\","
		                   "result=\"fail\",egress=\"2001:db8::1\"} 7\n") != NULL);
		test_assert(strstr(text, "{domain=\"q\\\"uo\\\\te\\nd.test\",result=\"fail\","
		                         "egress=\"192.0.2.1\"} 4\n") != NULL);
		test_assert(strstr(text, "result=\"pass\"") == NULL);
	}
	free(text);
	test_end();

	test_begin("report: missing file, empty store");
	{
		char *missing = xasprintf("%s/missing.db", dir);
		char *empty = xasprintf("%s/empty.db", dir);
		test_assert(report(missing, false, &e) == NULL);
		test_assert(e != NULL && strstr(e, "no such file") != NULL);
		free(e);
		e = NULL;
		test_assert(report("", false, &e) == NULL);
		free(e);
		e = NULL;
		test_assert(sql(empty, "PRAGMA user_version = 1") == 0); /* a file, no table */
		text = report(empty, false, &e);
		test_assert_str(text, "no findings\n");
		free(text);
		test_assert(sql(empty, "CREATE TABLE preflight (domain TEXT, result TEXT, "
		                       "egress_ip TEXT, count INTEGER, first_seen INTEGER, "
		                       "last_seen INTEGER, last_reason TEXT)") == 0);
		text = report(empty, false, &e);
		test_assert_str(text, "no findings\n");
		free(text);
		free(missing);
		free(empty);
	}
	test_end();

	test_begin("store that cannot be opened: checks go on, logged once");
	body = xasprintf("spf = { egress = \"192.0.2.2\"; preflight_db = \"%s/no/such/dir/x.db\"; "
	                 "};",
	                 dir);
	cfg2 = conf(body);
	free(body);
	test_assert(cfg2 != NULL);
	if (cfg2 != NULL) {
		p2 = preflight_new(cfg2, spf, NULL);
		for (int i = 0; i < 3; i++)
			check_one(p2, "a@mixed.test", 0, "neutral", "192.0.2.2", "neutral");
		check_one(p2, "a@pass.test", 0, "pass", "192.0.2.2", "pass");
		test_assert(warnings == 1);
		test_assert(unstored == 3);
		preflight_free(p2);
		config_unref(cfg2);
	}
	test_end();

	test_begin("read-only store: checks go on, logged once, counts unchanged");
	{
		long long before = count_of(db, "mixed.test", "fail", "2001:db8::1");
		bool root = geteuid() == 0;
		warnings = unstored = 0;
		p2 = preflight_new(cfg, spf, NULL);
		/* root writes whatever the mode: be nobody for a while */
		test_assert(chmod(db, 0444) == 0 && chmod(dir, 0555) == 0);
		test_assert(!root || seteuid(65534) == 0);
		for (int i = 0; i < 3; i++)
			check_one(p2, "a@mixed.test", 0, "fail", "2001:db8::1",
			          "pass neutral fail");
		test_assert(!root || seteuid(0) == 0);
		test_assert(chmod(db, 0644) == 0 && chmod(dir, 0755) == 0);
		test_assert(warnings == 1);
		test_assert(unstored == 6); /* neutral and fail, 3 times */
		test_assert(count_of(db, "mixed.test", "fail", "2001:db8::1") == before);
		preflight_free(p2);
	}
	test_end();

	test_begin("egress from agent.smarthost");
	cfg2 =
	    conf("agent = { smarthost = \"[192.0.2.2]:2525\"; };\nspf = { preflight_db = \"\"; };");
	test_assert(cfg2 != NULL);
	if (cfg2 != NULL) {
		p2 = preflight_new(cfg2, spf, NULL);
		check_one(p2, "a@mixed.test", 0, "neutral", "192.0.2.2", "neutral");
		preflight_free(p2);
		config_unref(cfg2);
	}
	cfg2 =
	    conf("agent = { smarthost = \"[127.0.0.1]:25\"; };\nspf = { preflight_db = \"\"; };");
	test_assert(cfg2 != NULL);
	if (cfg2 != NULL) {
		/* evaluated like any address (no loopback free ride), with
		 * one warning: the real egress is unknown behind a local relay */
		p2 = preflight_new(cfg2, spf, NULL);
		check_one(p2, "a@mixed.test", 0, "fail", "127.0.0.1", "fail");
		check_one(p2, "a@mixed.test", 0, "fail", "127.0.0.1", "fail");
		test_assert(loopback == 1);
		preflight_free(p2);
		config_unref(cfg2);
	}
	cfg2 = conf("agent = { smarthost = \"smtp.example.test:25\"; };");
	test_assert(cfg2 != NULL);
	if (cfg2 != NULL) {
		/* no resolver */
		p2 = preflight_new(cfg2, spf, NULL);
		test_assert(preflight_check(p2, "a@mixed.test", &r) == -1);
		test_assert(r.reason != NULL && strstr(r.reason, "smtp.example.test") != NULL);
		preflight_result_free(&r);
		preflight_free(p2);
		/* a resolver that refuses: temporary failure, said so */
		struct dns_wait *dns = dns_wait_new("127.0.0.1@9", 1, &err);
		test_assert(dns != NULL);
		p2 = preflight_new(cfg2, spf, dns);
		test_assert(preflight_check(p2, "a@mixed.test", &r) == -1);
		test_assert(r.reason != NULL && strstr(r.reason, "temporary") != NULL);
		preflight_result_free(&r);
		preflight_free(p2);
		dns_wait_free(dns);
		config_unref(cfg2);
	}
	cfg2 = conf("");
	test_assert(cfg2 != NULL);
	if (cfg2 != NULL) {
		p2 = preflight_new(cfg2, spf, NULL);
		test_assert(preflight_check(p2, "a@mixed.test", &r) == -1);
		test_assert(r.reason != NULL && strstr(r.reason, "no egress address") != NULL);
		preflight_result_free(&r);
		preflight_free(p2);
		config_unref(cfg2);
	}
	test_end();

	test_begin("prepare_store: directory made 0750 for the owner, db chowned");
	{
		char *sub = xasprintf("%s/state", dir);
		struct stat st;
		body = xasprintf("spf = { preflight_db = \"%s/pf.db\"; };", sub);
		cfg2 = conf(body);
		free(body);
		test_assert(cfg2 != NULL);
		if (cfg2 != NULL) {
			uid_t uid = geteuid() == 0 ? 65534 : (uid_t)-1;
			gid_t gid = geteuid() == 0 ? 65534 : (gid_t)-1;
			preflight_prepare_store(cfg2, uid, gid);
			test_assert(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) &&
			            (st.st_mode & 07777) == 0750);
			test_assert(uid == (uid_t)-1 || st.st_uid == uid);
			text = xasprintf("%s/pf.db", sub);
			test_assert(sql(text, "PRAGMA user_version = 1") == 0);
			preflight_prepare_store(cfg2, uid, gid);
			test_assert(stat(text, &st) == 0);
			test_assert(uid == (uid_t)-1 || (st.st_uid == uid && st.st_gid == gid));
			unlink(text);
			free(text);
			config_unref(cfg2);
		}
		rmdir(sub);
		free(sub);
	}
	test_end();

	preflight_free(p);
	spf_engine_free(spf);
	config_unref(cfg);
	log_set_hook(NULL);
	{
		char *cmd = xasprintf("rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
		free(cmd);
	}
	free(db);
	return test_exit_status();
}
