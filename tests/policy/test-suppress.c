/* test-suppress - the suppression list (policy/suppress*.c) on a real
 * SQLite file with fake times: hard bounces, soft bounces counted within
 * the window (and not outside it), complaints in the sender domain's
 * scope, expiry, manual entries, case-insensitive local parts, the reply
 * text, CSV export -> import round trip (quotes and commas), a bad CSV
 * line reported as FILE:LINE with nothing imported, a read-only store,
 * and two threads looking up at once */
#include "autoconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/suppress.h"
#include "tests/testlib.h"

#define DAY 86400LL
#define T0  1795000000LL /* 2026-11-18T11:06:40Z */

static char dir[] = "/tmp/weir-test-suppress.XXXXXX";
static int ndb;

/* config - a fresh db file in dir, and the suppression settings given */
static struct weir_config *config(const char *extra)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("suppression = { db = \"%s/s%d.db\"; %s };\n", dir, ++ndb, extra);

	config_errors_init(&errs);
	cfg = config_load_string("t.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "config: %s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

static struct suppress *open_new(struct weir_config *cfg)
{
	char *err = NULL;
	struct suppress *s = suppress_open(cfg, true, &err);

	if (s == NULL)
		fprintf(stderr, "open: %s\n", err);
	free(err);
	return s;
}

/* look - suppress_lookup's answer (-1 printed) */
static int look(struct suppress *s, const char *rcpt, const char *domain, long long now,
                struct suppress_entry *e)
{
	struct suppress_entry tmp;
	char *err = NULL;
	int rc = suppress_lookup(s, rcpt, domain, now, e != NULL ? e : &tmp, &err);

	if (rc < 0)
		fprintf(stderr, "lookup %s: %s\n", rcpt, err);
	free(err);
	return rc;
}

static void test_hard(void)
{
	struct weir_config *cfg = config("hard_expiry = \"365d\";");
	struct suppress *s = open_new(cfg);
	struct suppress_entry e;
	char *err = NULL, reply[512];

	test_begin("hard bounce: global entry until hard_expiry");
	test_assert(s != NULL);
	test_assert(look(s, "bob@example.net", "corp.example", T0, NULL) == 0);
	test_assert(suppress_hard_bounce(s, "<Bob@Example.NET>", "userunknown", T0, &err) == 1);
	test_assert(look(s, "bob@example.net", "corp.example", T0 + 1, &e) == 1);
	test_assert_str(e.address, "Bob@example.net");
	test_assert_str(e.scope, "");
	test_assert_str(e.reason, "userunknown");
	test_assert_str(e.source, "bounce");
	test_assert(e.hard);
	test_assert(e.created == T0);
	test_assert(e.expires == T0 + 365 * DAY);
	test_assert(e.count == 1);
	/* any sender, the null sender too */
	test_assert(look(s, "bob@example.net", NULL, T0 + 1, NULL) == 1);
	test_assert(look(s, "bob@example.net", "other.example", T0 + 1, NULL) == 1);
	/* a second bounce counts, keeps the date, extends the expiry */
	test_assert(suppress_hard_bounce(s, "bob@example.net", "userunknown", T0 + DAY, &err) == 1);
	test_assert(look(s, "BOB@example.net", NULL, T0 + DAY, &e) == 1);
	test_assert(e.count == 2 && e.created == T0 && e.expires == T0 + 366 * DAY);
	/* expired: no longer suppressed */
	test_assert(look(s, "bob@example.net", NULL, T0 + 366 * DAY, NULL) == 0);
	test_assert(look(s, "bob@example.net", NULL, T0 + 366 * DAY - 1, NULL) == 1);
	/* a bounce after the expiry starts a new entry */
	test_assert(
	    suppress_hard_bounce(s, "bob@example.net", "hostunknown", T0 + 400 * DAY, &err) == 1);
	test_assert(look(s, "bob@example.net", NULL, T0 + 400 * DAY, &e) == 1);
	test_assert(e.count == 1 && e.created == T0 + 400 * DAY);
	test_assert_str(e.reason, "hostunknown");
	suppress_reply(&e, "bob@example.net", reply, sizeof(reply));
	test_assert_str(reply, "550 5.1.1 <bob@example.net>: suppressed since 2027-12-23: "
	                       "hostunknown");
	suppress_reply_text(&e, "<bob@example.net>", reply, sizeof(reply));
	test_assert_str(reply, "<bob@example.net>: suppressed since 2027-12-23: hostunknown");
	/* not an address: an error, nothing written */
	test_assert(suppress_hard_bounce(s, "nobody", "userunknown", T0, &err) == -1);
	test_assert(err != NULL && strstr(err, "not an address") != NULL);
	free(err);
	err = NULL;
	test_assert(look(s, "nobody", NULL, T0, NULL) == 0);
	suppress_close(s);
	config_unref(cfg);
	test_end();

	test_begin("hard_expiry = 0: for ever");
	cfg = config("hard_expiry = 0;");
	s = open_new(cfg);
	test_assert(suppress_hard_bounce(s, "a@example.net", "userunknown", T0, &err) == 1);
	test_assert(look(s, "a@example.net", NULL, T0 + 3650 * DAY, &e) == 1);
	test_assert(e.expires == 0);
	suppress_close(s);
	config_unref(cfg);
	test_end();
}

static void test_soft(void)
{
	struct weir_config *cfg =
	    config("soft_threshold = 3; soft_window = \"7d\"; soft_expiry = \"30d\";");
	struct suppress *s = open_new(cfg);
	struct suppress_entry e;
	char *err = NULL;

	test_begin("soft bounces: soft_threshold within soft_window");
	test_assert(suppress_soft_bounce(s, "c@example.net", "mailboxfull", T0, &err) == 0);
	test_assert(suppress_soft_bounce(s, "C@example.net", "mailboxfull", T0 + DAY, &err) == 0);
	test_assert(look(s, "c@example.net", NULL, T0 + DAY, NULL) == 0);
	test_assert(suppress_soft_bounce(s, "c@EXAMPLE.net", "mailboxfull", T0 + 6 * DAY, &err) ==
	            1);
	test_assert(look(s, "c@example.net", NULL, T0 + 6 * DAY, &e) == 1);
	test_assert(!e.hard && e.count == 3 && e.expires == T0 + 36 * DAY);
	test_assert_str(e.source, "soft");
	test_assert_str(e.reason, "mailboxfull");
	test_assert(look(s, "c@example.net", NULL, T0 + 36 * DAY, NULL) == 0);
	/* more soft bounces while suppressed only count */
	test_assert(suppress_soft_bounce(s, "c@example.net", "mailboxfull", T0 + 7 * DAY, &err) ==
	            1);
	test_assert(look(s, "c@example.net", NULL, T0 + 7 * DAY, &e) == 1 && e.count == 4);
	test_end();

	test_begin("soft bounces outside the window do not add up");
	/* days 0, 8, 16: never three within 7 days */
	test_assert(suppress_soft_bounce(s, "d@example.net", "mailboxfull", T0, &err) == 0);
	test_assert(suppress_soft_bounce(s, "d@example.net", "mailboxfull", T0 + 8 * DAY, &err) ==
	            0);
	test_assert(suppress_soft_bounce(s, "d@example.net", "mailboxfull", T0 + 16 * DAY, &err) ==
	            0);
	test_assert(look(s, "d@example.net", NULL, T0 + 16 * DAY, NULL) == 0);
	/* a sliding window: days 16, 20, 22 are three within 7 days */
	test_assert(suppress_soft_bounce(s, "d@example.net", "mailboxfull", T0 + 20 * DAY, &err) ==
	            0);
	test_assert(suppress_soft_bounce(s, "d@example.net", "mailboxfull", T0 + 22 * DAY, &err) ==
	            1);
	test_assert(look(s, "d@example.net", NULL, T0 + 22 * DAY, NULL) == 1);
	test_end();

	test_begin("a hard bounce turns a soft entry hard");
	test_assert(suppress_hard_bounce(s, "c@example.net", "userunknown", T0 + 8 * DAY, &err) ==
	            1);
	test_assert(look(s, "c@example.net", NULL, T0 + 8 * DAY, &e) == 1);
	test_assert(e.hard && e.count == 5 && e.created == T0 + 6 * DAY);
	test_assert_str(e.reason, "userunknown");
	test_assert(e.expires == T0 + 8 * DAY + 365 * DAY);
	test_end();
	suppress_close(s);
	config_unref(cfg);
}

static void test_complaint(void)
{
	struct weir_config *cfg = config("complaint_expiry = 0;");
	struct suppress *s = open_new(cfg);
	struct suppress_entry e;
	char *err = NULL;

	test_begin("complaint: suppressed for the sender domain only");
	test_assert(
	    suppress_complaint(s, "eve@example.net", "News.Example.COM.", "abuse", T0, &err) == 1);
	test_assert(look(s, "eve@example.net", "news.example.com", T0 + DAY, &e) == 1);
	test_assert_str(e.scope, "news.example.com");
	test_assert_str(e.reason, "complaint (abuse)");
	test_assert_str(e.source, "complaint");
	test_assert(e.expires == 0);
	test_assert(look(s, "eve@example.net", "NEWS.example.com", T0 + DAY, NULL) == 1);
	test_assert(look(s, "eve@example.net", "shop.example.com", T0 + DAY, NULL) == 0);
	test_assert(look(s, "eve@example.net", NULL, T0 + DAY, NULL) == 0);
	test_assert(look(s, "eve@example.net", "news.example.com", T0 + 3650 * DAY, NULL) == 1);
	/* no sender domain known: every sender */
	test_assert(suppress_complaint(s, "fay@example.net", NULL, NULL, T0, &err) == 1);
	test_assert(look(s, "fay@example.net", "x.example", T0, &e) == 1);
	test_assert_str(e.reason, "complaint");
	test_end();
	suppress_close(s);
	config_unref(cfg);
}

struct collected {
	char lines[16][1024];
	int n;
};

static void collect(void *ctx, const struct suppress_entry *e)
{
	struct collected *c = ctx;

	if (c->n < 16)
		snprintf(c->lines[c->n], sizeof(c->lines[0]), "%s|%s|%s|%lld", e->address, e->scope,
		         e->reason, e->expires);
	c->n++;
}

static void test_manual(void)
{
	struct weir_config *cfg = config("");
	struct suppress *s = open_new(cfg);
	struct suppress_entry e = {0}, got;
	struct collected col = {0};
	char *err = NULL;

	test_begin("manual entries: add, scope, expiry, list, remove");
	snprintf(e.address, sizeof(e.address), "Gil.Bates@Example.ORG");
	snprintf(e.reason, sizeof(e.reason), "asked to be removed");
	snprintf(e.source, sizeof(e.source), "manual");
	e.created = T0;
	e.expires = T0 + 2;
	test_assert(suppress_add(s, &e, &err) == 0);
	test_assert(look(s, "gil.bates@example.org", NULL, T0 + 1, &got) == 1);
	test_assert_str(got.address, "Gil.Bates@example.org");
	test_assert(got.count == 1);
	test_assert(look(s, "GIL.BATES@EXAMPLE.ORG", "a.example", T0 + 1, NULL) == 1);
	test_assert(look(s, "gil.bates@example.org", NULL, T0 + 2, NULL) == 0);
	/* scoped */
	snprintf(e.address, sizeof(e.address), "hal@example.org");
	snprintf(e.scope, sizeof(e.scope), "Shop.Example");
	e.expires = 0;
	test_assert(suppress_add(s, &e, &err) == 0);
	test_assert(look(s, "hal@example.org", "shop.example", T0, NULL) == 1);
	test_assert(look(s, "hal@example.org", "news.example", T0, NULL) == 0);
	/* the global entry comes first when both exist */
	e.scope[0] = '\0';
	snprintf(e.reason, sizeof(e.reason), "global one");
	test_assert(suppress_add(s, &e, &err) == 0);
	test_assert(look(s, "hal@example.org", "shop.example", T0, &got) == 1);
	test_assert_str(got.scope, "");
	test_assert(suppress_count(s, T0, &err) == 3);
	test_assert(suppress_count(s, T0 + 5, &err) == 2);
	/* list: active, all, one scope */
	test_assert(suppress_list(s, NULL, false, T0 + 5, collect, &col, &err) == 0);
	test_assert(col.n == 2);
	col.n = 0;
	test_assert(suppress_list(s, NULL, true, T0 + 5, collect, &col, &err) == 0);
	test_assert(col.n == 3);
	col.n = 0;
	test_assert(suppress_list(s, "shop.example", true, T0 + 5, collect, &col, &err) == 0);
	test_assert(col.n == 1);
	test_assert_str(col.lines[0], "hal@example.org|shop.example|asked to be removed|0");
	/* remove one scope, then every scope */
	test_assert(suppress_remove(s, "HAL@example.org", "", &err) == 1);
	test_assert(look(s, "hal@example.org", "news.example", T0, NULL) == 0);
	test_assert(look(s, "hal@example.org", "shop.example", T0, NULL) == 1);
	test_assert(suppress_remove(s, "hal@example.org", NULL, &err) == 1);
	test_assert(look(s, "hal@example.org", "shop.example", T0, NULL) == 0);
	test_assert(suppress_remove(s, "hal@example.org", NULL, &err) == 0);
	/* bad input */
	snprintf(e.address, sizeof(e.address), "no-domain");
	test_assert(suppress_add(s, &e, &err) == -1);
	free(err);
	err = NULL;
	snprintf(e.address, sizeof(e.address), "ivy@example.org");
	snprintf(e.reason, sizeof(e.reason), "two\r\nlines");
	test_assert(suppress_add(s, &e, &err) == -1);
	free(err);
	err = NULL;
	test_end();
	suppress_close(s);
	config_unref(cfg);
}

static char *slurp(FILE *f)
{
	size_t n = 0, size = 4096;
	char *buf = xmalloc(size);
	size_t got;

	rewind(f);
	while ((got = fread(buf + n, 1, size - n - 1, f)) > 0) {
		n += got;
		if (n + 1 == size)
			buf = xrealloc(buf, size *= 2);
	}
	buf[n] = '\0';
	return buf;
}

static void test_csv(void)
{
	struct weir_config *cfg = config(""), *cfg2 = config("");
	struct suppress *s = open_new(cfg), *s2 = open_new(cfg2);
	struct suppress_entry e = {0}, got;
	char *err = NULL, *out1, *out2, path[256];
	FILE *f = tmpfile(), *f2 = tmpfile(), *bad;
	long n;

	test_begin("CSV: export -> import round trip");
	snprintf(e.address, sizeof(e.address), "jo,e@example.org");
	snprintf(e.reason, sizeof(e.reason), "said \"stop\", twice");
	snprintf(e.source, sizeof(e.source), "manual");
	e.created = T0;
	e.expires = T0 + DAY;
	e.hard = true;
	test_assert(suppress_add(s, &e, &err) == 0);
	snprintf(e.address, sizeof(e.address), "Kim@example.org");
	snprintf(e.scope, sizeof(e.scope), "news.example");
	snprintf(e.reason, sizeof(e.reason), " leading space");
	e.expires = 0;
	e.hard = false;
	test_assert(suppress_add(s, &e, &err) == 0);
	test_assert(suppress_export_csv(s, f, &err) == 0);
	out1 = slurp(f);
	test_assert_str(out1, "address,scope,reason,hard,source,created,expires\n"
	                      "\"jo,e@example.org\",,\"said \"\"stop\"\", twice\",true,manual,"
	                      "2026-11-18T11:06:40Z,2026-11-19T11:06:40Z\n"
	                      "Kim@example.org,news.example,\" leading space\",false,manual,"
	                      "2026-11-18T11:06:40Z,\n");
	rewind(f);
	n = suppress_import_csv(s2, f, "x.csv", &err);
	test_assert(n == 2);
	test_assert(suppress_export_csv(s2, f2, &err) == 0);
	out2 = slurp(f2);
	test_assert_str(out2, out1);
	test_assert(look(s2, "JO,E@example.org", NULL, T0, &got) == 1);
	test_assert_str(got.reason, "said \"stop\", twice");
	test_assert(got.hard && got.expires == T0 + DAY);
	test_assert(look(s2, "kim@example.org", "news.example", T0, NULL) == 1);
	free(out1);
	free(out2);
	fclose(f);
	fclose(f2);
	test_end();

	test_begin("CSV: a bad line is FILE:LINE and nothing is imported");
	snprintf(path, sizeof(path), "%s/bad.csv", dir);
	bad = fopen(path, "w+");
	fputs("address,reason,expires\r\n"
	      "new1@example.org,ok,\r\n"
	      "\"new2@example.org\",\"comma, here\",2030-01-01\r\n"
	      "new5@example.org,\"two\nlines: not in an SMTP reply\",\r\n"
	      "not-an-address,x,\r\n"
	      "new3@example.org,x,tomorrow\r\n"
	      "new4@example.org,x\r\n",
	      bad);
	rewind(bad);
	test_assert(suppress_import_csv(s2, bad, "bad.csv", &err) == -1);
	test_assert(err != NULL && strstr(err, "bad.csv:4: reason: at most 63") != NULL);
	test_assert(err != NULL && strstr(err, "bad.csv:6: \"not-an-address\"") != NULL);
	test_assert(err != NULL && strstr(err, "bad.csv:7: expires: \"tomorrow\"") != NULL);
	test_assert(err != NULL && strstr(err, "bad.csv:8: 2 fields, the header has 3") != NULL);
	test_assert(err != NULL && strstr(err, "nothing imported") != NULL);
	test_assert(err != NULL && strstr(err, "bad.csv:2") == NULL);
	if (err != NULL)
		fprintf(stderr, "  (as expected)\n%s\n", err);
	free(err);
	err = NULL;
	test_assert(look(s2, "new1@example.org", NULL, T0, NULL) == 0);
	test_assert(look(s2, "new2@example.org", NULL, T0, NULL) == 0);
	test_assert(suppress_count(s2, T0, &err) == 2);
	/* the same file without its bad lines goes in whole */
	fclose(bad);
	bad = fopen(path, "w+");
	fputs("address,reason,expires\n"
	      "new1@example.org,ok,\n"
	      "\"new2@example.org\",\"comma, here\",2030-01-01\n",
	      bad);
	rewind(bad);
	test_assert(suppress_import_csv(s2, bad, "good.csv", &err) == 2);
	test_assert(look(s2, "new2@example.org", NULL, T0, &got) == 1);
	test_assert_str(got.source, "import");
	test_assert(got.expires == 1893456000LL);
	fclose(bad);
	/* a header without address; an unterminated quote */
	bad = fopen(path, "w+");
	fputs("email,reason\nx@example.org,y\n", bad);
	rewind(bad);
	test_assert(suppress_import_csv(s2, bad, "h.csv", &err) == -1);
	test_assert(err != NULL && strstr(err, "h.csv:1: unknown column \"email\"") != NULL);
	free(err);
	err = NULL;
	fclose(bad);
	bad = fopen(path, "w+");
	fputs("address\n\"open@example.org\n", bad);
	rewind(bad);
	test_assert(suppress_import_csv(s2, bad, "q.csv", &err) == -1);
	test_assert(err != NULL && strstr(err, "q.csv:2: a quoted field does not end") != NULL);
	free(err);
	fclose(bad);
	test_end();
	suppress_close(s);
	suppress_close(s2);
	config_unref(cfg);
	config_unref(cfg2);
}

static void test_readonly(void)
{
	struct weir_config *cfg = config("");
	struct suppress *w = open_new(cfg), *r;
	char *err = NULL;
	struct stat st;

	test_begin("read-only store: lookups see writes, writes refused; missing file");
	r = suppress_open_flags(cfg, SUPPRESS_READONLY, &err);
	test_assert(r != NULL);
	test_assert(suppress_hard_bounce(w, "lee@example.org", "userunknown", T0, &err) == 1);
	test_assert(look(r, "lee@example.org", NULL, T0, NULL) == 1);
	test_assert(suppress_hard_bounce(r, "lee@example.org", "userunknown", T0, &err) == -1);
	test_assert(err != NULL && strstr(err, "lookups only") != NULL);
	free(err);
	err = NULL;
	test_assert(stat(cfg->suppression.db, &st) == 0 && (st.st_mode & 0777) == 0640);
	suppress_close(r);
	suppress_close(w);
	config_unref(cfg);
	cfg = config("");
	test_assert(suppress_open(cfg, false, &err) == NULL);
	test_assert(err != NULL && strstr(err, "No such file") != NULL);
	free(err);
	err = NULL;
	r = suppress_open_flags(cfg, SUPPRESS_READONLY | SUPPRESS_CREATE, &err);
	test_assert(r != NULL);
	test_assert(look(r, "lee@example.org", NULL, T0, NULL) == 0);
	suppress_close(r);
	config_unref(cfg);
	test_end();
}

struct worker {
	struct suppress *s;
	int id;
	int wrong;
};

static void *lookup_thread(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 2000; i++) {
		char rcpt[64];
		int k = (i * 7 + w->id) % 200;
		snprintf(rcpt, sizeof(rcpt), "%s%d@example.com", k % 2 ? "USER" : "nobody", k);
		if (look(w->s, rcpt, "sender.example", T0, NULL) != (k % 2))
			w->wrong++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct weir_config *cfg = config("");
	struct suppress *w = open_new(cfg), *r;
	struct worker wk[2];
	pthread_t t[2];
	char *err = NULL;

	test_begin("two threads looking up at once");
	for (int k = 1; k < 200; k += 2) {
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "user%d@example.com", k);
		test_assert(suppress_hard_bounce(w, rcpt, "userunknown", T0, &err) == 1);
	}
	r = suppress_open_flags(cfg, SUPPRESS_READONLY, &err);
	test_assert(r != NULL);
	for (int i = 0; i < 2; i++) {
		wk[i] = (struct worker){r, i, 0};
		pthread_create(&t[i], NULL, lookup_thread, &wk[i]);
	}
	/* and a writer at the same time */
	for (int k = 0; k < 50; k++) {
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "other%d@example.com", k);
		test_assert(suppress_hard_bounce(w, rcpt, "userunknown", T0, &err) == 1);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	test_assert(wk[0].wrong == 0 && wk[1].wrong == 0);
	test_assert(suppress_count(r, T0, &err) == 150);
	suppress_close(r);
	suppress_close(w);
	config_unref(cfg);
	test_end();
}

int main(void)
{
	char cmd[300];

	log_open("test-suppress", true, "mail");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_hard();
	test_soft();
	test_complaint();
	test_manual();
	test_csv();
	test_readonly();
	test_threads();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_exit_status();
}
