/* test-report - weirctl report (policy/report.c, policy/weirctl_report.c)
 * on a real outcome.db written through the outcome log's own writer and
 * a real SPF preflight store written by preflight_check (DNS from a
 * table): every figure of the text and the JSON output, one state per
 * message recipient (deferred then delivered counts as delivered, a
 * bounce message turns its delivery into a bounce), the window, an empty
 * log, a missing one, and the command itself (exit status, --json that
 * parses). */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/outcome.h"
#include "policy/preflight.h"
#include "policy/rate_hits.h"
#include "policy/report.h"
#include "policy/spf.h"
#include "policy/weirctl_report.h"
#include "tests/testlib.h"

#define MIN (60 * 1000LL)

static char dir[] = "/tmp/weir-test-report.XXXXXX";

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* answer - one SPF record that fails every address */
static enum dns_wait_result answer(void *ctx, const char *name, int rrtype,
                                   struct dns_wait_answer *ans)
{
	static const char txt[] = "v=spf1 -all";
	size_t len = sizeof(txt) - 1;

	(void)ctx;
	if (rrtype != 16 || strcasecmp(name, "a.test") != 0)
		return DNS_WAIT_NONE;
	ans->n = 1;
	ans->rdata = xcalloc(1, sizeof(*ans->rdata));
	ans->len = xcalloc(1, sizeof(*ans->len));
	ans->rdata[0] = xmalloc(len + 2);
	ans->rdata[0][0] = (unsigned char)len;
	memcpy(ans->rdata[0] + 1, txt, len + 1);
	ans->len[0] = len + 1;
	ans->ttl = 60;
	return DNS_WAIT_OK;
}

/* conf - outcome.db = DIR/name; the preflight store DIR/pf.db; also
 * written to DIR/name.conf for the command */
static struct weir_config *conf(const char *name)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("hostname = \"relay.weir.test\";\n"
	                       "outcome = { db = \"%s/%s\"; };\n"
	                       "spf = { egress = \"192.0.2.9\"; preflight_db = \"%s/pf.db\"; };\n",
	                       dir, name, dir);
	char *path = xasprintf("%s/%s.conf", dir, name);
	FILE *f = fopen(path, "w");

	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	config_errors_init(&errs);
	cfg = config_load_string(path, text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "%s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	free(path);
	return cfg;
}

/* add - one outcome row at now + ago_min minutes (negative: before) */
static void add(struct outcome_log *o, long long now, long ago_min, const char *qid,
                const char *sender, const char *rcpt, enum outcome_result res, const char *reason,
                bool hard, const char *source)
{
	struct outcome_rec r = {
	    .time_ms = now + ago_min * MIN,
	    .queue_id = qid,
	    .sender = sender,
	    .recipient = rcpt,
	    .code = res == OUTCOME_DELIVERED  ? 250
	            : res == OUTCOME_DEFERRED ? 450
	                                      : 550,
	    .reason = reason,
	    .hard = hard,
	    .result = res,
	    .source = source,
	};

	outcome_add(o, &r);
}

/* fill - the rows every figure below is worked out from */
static int fill(const struct weir_config *cfg, long long now)
{
	struct outcome_log *o;
	char *err = NULL;
	int rc;

	if ((o = outcome_open(cfg, &err)) == NULL) {
		fprintf(stderr, "outcome_open: %s\n", err);
		free(err);
		return -1;
	}
	/* deferred, then delivered: one delivered */
	add(o, now, -120, "Q1", "alice@a.test", "bob@x.test", OUTCOME_DEFERRED, "greylisted", false,
	    "relay");
	add(o, now, -60, "Q1", "alice@a.test", "bob@x.test", OUTCOME_DELIVERED, NULL, false,
	    "relay");
	add(o, now, -60, "Q1", "alice@a.test", "carol@x.test", OUTCOME_DELIVERED, NULL, false,
	    "relay");
	add(o, now, -50, "Q2", "alice@a.test", "dave@y.test", OUTCOME_BOUNCED, "bad-mailbox", true,
	    "relay");
	/* deferred twice: one deferred, not in the bounce reasons */
	add(o, now, -40, "Q3", "bob@b.test", "erin@x.test", OUTCOME_DEFERRED, "greylisted", false,
	    "relay");
	add(o, now, -30, "Q3", "bob@b.test", "erin@x.test", OUTCOME_DEFERRED, "greylisted", false,
	    "relay");
	/* deferred before the window, delivered in it (case differs) */
	add(o, now, -1500, "Q4", "Bob@B.test", "BOB@X.test", OUTCOME_DEFERRED, "greylisted", false,
	    "relay");
	add(o, now, -10, "Q4", "bob@b.test", "bob@X.TEST", OUTCOME_DELIVERED, NULL, false, "relay");
	/* before the window only; after it */
	add(o, now, -2000, "Q5", "alice@a.test", "frank@z.test", OUTCOME_DELIVERED, NULL, false,
	    "relay");
	add(o, now, 10, "Q8", "alice@a.test", "kate@x.test", OUTCOME_DELIVERED, NULL, false,
	    "relay");
	/* refused twice without a queue id: once per sender and recipient */
	add(o, now, -20, NULL, "alice@a.test", "gone@y.test", OUTCOME_SUPPRESSED, "hard-bounce",
	    true, "relay");
	add(o, now, -15, NULL, "alice@a.test", "gone@y.test", OUTCOME_SUPPRESSED, "hard-bounce",
	    true, "relay");
	/* delivered, then a bounce message came back: bounced */
	add(o, now, -100, "Q6", "carol@b.test", "henry@y.test", OUTCOME_DELIVERED, NULL, false,
	    "relay");
	add(o, now, -90, NULL, "carol@b.test", "henry@y.test", OUTCOME_BOUNCED, "bad-mailbox", true,
	    "bounce");
	/* a soft bounce message with no delivery in the window */
	add(o, now, -5, NULL, "alice@a.test", "ivan@z.test", OUTCOME_DEFERRED, "mailbox-full",
	    false, "bounce");
	/* a complaint: counted, carol stays delivered */
	add(o, now, -3, NULL, "alice@a.test", "carol@x.test", OUTCOME_COMPLAINT, "abuse", false,
	    "complaint");
	add(o, now, -7, "Q7", "", "jack@x.test", OUTCOME_BOUNCED, "bad-mailbox", true, "relay");
	/* a reason that needs escaping */
	add(o, now, -8, "Q9", "bob@b.test", "lou@y.test", OUTCOME_BOUNCED, "policy \"x\"\tlimit",
	    false, "relay");
	/* weir-milter's rate-limit refusals, one before the window */
	for (int i = 0; i < 3; i++)
		rate_hits_record(cfg, "alice", "login-burst", now - (10 + i) * MIN);
	rate_hits_record(cfg, "bob", "login-day", now - 5 * MIN);
	rate_hits_record(cfg, "alice", "login-day", now - 4 * MIN);
	rate_hits_record(cfg, "eve\"x", "login-day", now - 50 * MIN);
	rate_hits_record(cfg, "bob", "login-day", now - 2000 * MIN);
	rate_hits_close();
	rc = outcome_flush(o, &err);
	if (rc < 0) {
		fprintf(stderr, "outcome_flush: %s\n", err);
		free(err);
	}
	outcome_close(o);
	return rc;
}

/* spf_finding - two checks of alice@a.test: one finding, count 2 */
static int spf_finding(const struct weir_config *cfg)
{
	struct spf_engine *spf;
	struct preflight *p;
	struct preflight_result r;
	const char *err;

	if ((spf = spf_engine_new_lookup(answer, NULL, &err)) == NULL)
		return -1;
	spf_engine_set_receiver(spf, cfg->hostname);
	p = preflight_new(cfg, spf, NULL);
	for (int i = 0; i < 2; i++) {
		if (preflight_check(p, "alice@a.test", &r) < 0) {
			preflight_result_free(&r);
			preflight_free(p);
			spf_engine_free(spf);
			return -1;
		}
		preflight_result_free(&r);
	}
	preflight_free(p);
	spf_engine_free(spf);
	return 0;
}

static void iso(long long ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* render - the report as text (json false) or JSON; caller frees */
static char *render(const struct report *r, size_t top, bool json)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (json)
		report_print_json(f, r, top);
	else
		report_print_text(f, r, top);
	fclose(f);
	return s;
}

static const char want_text_body[] =
    "\n"
    "Totals\n"
    "  recipients             10\n"
    "  delivered              3\n"
    "  deferred               2\n"
    "  bounced                4\n"
    "  suppressed             1\n"
    "  complaints             1\n"
    "  delivery rate          42.9%\n"
    "  bounce rate            57.1%\n"
    "  outcome rows           15\n"
    "  rate-limit refusals    6\n"
    "  SPF preflight findings 1\n"
    "\n"
    "By destination domain\n"
    "  DOMAIN  RECIPIENTS  DELIVERED  DEFERRED  BOUNCED  SUPPRESSED  COMPLAINTS  DELIVERY  "
    "BOUNCE\n"
    "  x.test           5          3         1        1           0           1     75.0%   "
    "25.0%\n"
    "  y.test           4          0         0        3           1           0      0.0%  "
    "100.0%\n"
    "  z.test           1          0         1        0           0           0         -       "
    "-\n"
    "\n"
    "By sender domain\n"
    "  DOMAIN  RECIPIENTS  DELIVERED  DEFERRED  BOUNCED  SUPPRESSED  COMPLAINTS  DELIVERY  "
    "BOUNCE\n"
    "  a.test           5          2         1        1           1           1     66.7%   "
    "33.3%\n"
    "  b.test           4          1         1        2           0           0     33.3%   "
    "66.7%\n"
    "  <>               1          0         0        1           0           0      0.0%  "
    "100.0%\n"
    "\n"
    "Top bounce reasons\n"
    "  REASON            KIND  COUNT\n"
    "  bad-mailbox       hard      3\n"
    "  mailbox-full      soft      1\n"
    "  policy \"x\"?limit  soft      1\n"
    "\n"
    "Top rate-limited logins\n"
    "  LOGIN  LIMIT        REFUSALS\n"
    "  alice  login-burst         3\n"
    "  alice  login-day           1\n"
    "  bob    login-day           1\n"
    "  eve\"x  login-day           1\n"
    "\n"
    "SPF preflight findings (last seen in the window; counts since first seen)\n";

static void test_full(const struct weir_config *cfg, long long now)
{
	struct report *r = NULL;
	char *err = NULL, *s, *want, since[32], until[32], seen[32];
	int rc;

	test_begin("figures of a day");
	rc = report_build(cfg, now - 1440 * MIN, now, &r, &err);
	test_assert(rc == 0);
	if (rc < 0) {
		fprintf(stderr, "report_build: %s\n", err);
		free(err);
		test_end();
		return;
	}
	test_assert(r->total.recipients == 10);
	test_assert(r->total.delivered == 3);
	test_assert(r->total.deferred == 2);
	test_assert(r->total.bounced == 4);
	test_assert(r->total.suppressed == 1);
	test_assert(r->total.complaints == 1);
	test_assert(r->rows == 15);
	test_assert(r->ndest == 3 && r->nsenders == 3 && r->nreasons == 3);
	test_assert(r->nspf == 1 && r->spf_note == NULL);
	test_assert(r->nrate == 4 && r->rate_total == 6 && r->rate_note == NULL);
	test_end();

	test_begin("text");
	iso(now - 1440 * MIN, since, sizeof(since));
	iso(now, until, sizeof(until));
	iso(r->spf[0].last * 1000, seen, sizeof(seen));
	s = render(r, 0, false);
	want = xasprintf("weir report, %s to %s\n%s"
	                 "  DOMAIN  RESULT  EGRESS     COUNT  LAST SEEN             LAST REASON\n"
	                 "  a.test  fail    192.0.2.9      2  %s  %s\n",
	                 since, until, want_text_body, seen, r->spf[0].reason);
	test_assert_str(s, want);
	free(want);
	free(s);
	test_end();

	test_begin("json");
	s = render(r, 0, true);
	want = xasprintf(
	    "{\"since\":\"%s\",\"until\":\"%s\","
	    "\"totals\":{\"recipients\":10,\"delivered\":3,\"deferred\":2,\"bounced\":4,"
	    "\"suppressed\":1,\"complaints\":1,\"delivery_rate\":0.4286,\"bounce_rate\":0.5714,"
	    "\"outcome_rows\":15,\"rate_limit_refusals\":6,\"spf_preflight_findings\":1},"
	    "\"destination_domains\":["
	    "{\"domain\":\"x.test\",\"recipients\":5,\"delivered\":3,\"deferred\":1,\"bounced\":1,"
	    "\"suppressed\":0,\"complaints\":1,\"delivery_rate\":0.7500,\"bounce_rate\":0.2500},"
	    "{\"domain\":\"y.test\",\"recipients\":4,\"delivered\":0,\"deferred\":0,\"bounced\":3,"
	    "\"suppressed\":1,\"complaints\":0,\"delivery_rate\":0.0000,\"bounce_rate\":1.0000},"
	    "{\"domain\":\"z.test\",\"recipients\":1,\"delivered\":0,\"deferred\":1,\"bounced\":0,"
	    "\"suppressed\":0,\"complaints\":0,\"delivery_rate\":null,\"bounce_rate\":null}],"
	    "\"destination_domains_omitted\":0,"
	    "\"sender_domains\":["
	    "{\"domain\":\"a.test\",\"recipients\":5,\"delivered\":2,\"deferred\":1,\"bounced\":1,"
	    "\"suppressed\":1,\"complaints\":1,\"delivery_rate\":0.6667,\"bounce_rate\":0.3333},"
	    "{\"domain\":\"b.test\",\"recipients\":4,\"delivered\":1,\"deferred\":1,\"bounced\":2,"
	    "\"suppressed\":0,\"complaints\":0,\"delivery_rate\":0.3333,\"bounce_rate\":0.6667},"
	    "{\"domain\":\"<>\",\"recipients\":1,\"delivered\":0,\"deferred\":0,\"bounced\":1,"
	    "\"suppressed\":0,\"complaints\":0,\"delivery_rate\":0.0000,\"bounce_rate\":1.0000}],"
	    "\"sender_domains_omitted\":0,"
	    "\"bounce_reasons\":["
	    "{\"reason\":\"bad-mailbox\",\"kind\":\"hard\",\"count\":3},"
	    "{\"reason\":\"mailbox-full\",\"kind\":\"soft\",\"count\":1},"
	    "{\"reason\":\"policy \\\"x\\\"\\tlimit\",\"kind\":\"soft\",\"count\":1}],"
	    "\"rate_limited\":[{\"login\":\"alice\",\"limit\":\"login-burst\",\"refusals\":3},"
	    "{\"login\":\"alice\",\"limit\":\"login-day\",\"refusals\":1},"
	    "{\"login\":\"bob\",\"limit\":\"login-day\",\"refusals\":1},"
	    "{\"login\":\"eve\\\"x\",\"limit\":\"login-day\",\"refusals\":1}],"
	    "\"rate_limited_note\":null,"
	    "\"spf_preflight\":[{\"domain\":\"a.test\",\"result\":\"fail\","
	    "\"egress\":\"192.0.2.9\","
	    "\"count\":2,\"first_seen\":\"%s\",\"last_seen\":\"%s\",\"last_reason\":\"%s\"}],"
	    "\"spf_preflight_note\":null}\n",
	    since, until, seen, seen, r->spf[0].reason);
	test_assert_str(s, want);
	free(want);
	free(s);
	test_end();

	test_begin("--top 1");
	s = render(r, 1, false);
	test_assert(strstr(s, "  x.test           5") != NULL);
	test_assert(strstr(s, "y.test") == NULL && strstr(s, "b.test") == NULL);
	test_assert(strstr(s, "  ... and 2 more (--top 0 shows all)\n") != NULL);
	test_assert(strstr(s, "mailbox-full") == NULL);
	free(s);
	s = render(r, 1, true);
	test_assert(strstr(s, "\"destination_domains_omitted\":2,") != NULL);
	test_assert(strstr(s, "\"sender_domains_omitted\":2,") != NULL);
	test_assert(strstr(s, "\"y.test\"") == NULL);
	/* the totals do not depend on --top */
	test_assert(strstr(s, "\"totals\":{\"recipients\":10,") != NULL);
	free(s);
	test_end();
	report_free(r);
}

/* test_window - a narrower window, and one with nothing in it */
static void test_window(const struct weir_config *cfg, long long now)
{
	struct report *r = NULL;
	char *err = NULL, *s;

	test_begin("window: the last 45 minutes");
	/* in: erin's deferrals (-40, -30), gone (-20, -15), bob's Q4
	 * (-10), lou (-8), jack (-7), ivan (-5), the complaint (-3) */
	test_assert(report_build(cfg, now - 45 * MIN, now, &r, &err) == 0);
	if (r != NULL) {
		test_assert(r->rows == 9);
		test_assert(r->total.recipients == 6);
		test_assert(r->total.delivered == 1);
		test_assert(r->total.deferred == 2);
		test_assert(r->total.bounced == 2);
		test_assert(r->total.suppressed == 1);
		test_assert(r->total.complaints == 1);
		/* alice's (-12 .. -4) and bob's (-5); not eve's (-50) */
		test_assert(r->nrate == 3 && r->rate_total == 5);
	}
	report_free(r);
	test_end();

	test_begin("window: nothing in it");
	r = NULL;
	test_assert(report_build(cfg, now + 60 * 1000, now + 120 * 1000, &r, &err) == 0);
	if (r != NULL) {
		test_assert(r->rows == 0 && r->total.recipients == 0 && r->total.complaints == 0);
		test_assert(r->nspf == 0 && r->ndest == 0 && r->nreasons == 0 && r->nrate == 0);
		s = render(r, 0, false);
		test_assert(strstr(s, "logins\n  no refusals recorded\n") != NULL);
		test_assert(strstr(s, "  delivery rate          -\n") != NULL);
		test_assert(strstr(s, "By destination domain\n  none\n") != NULL);
		test_assert(strstr(s, "By sender domain\n  none\n") != NULL);
		test_assert(strstr(s, "Top bounce reasons\n  none\n") != NULL);
		test_assert(strstr(s, "first seen)\n  none\n") != NULL);
		free(s);
		s = render(r, 0, true);
		test_assert(strstr(s, "\"delivery_rate\":null,\"bounce_rate\":null") != NULL);
		test_assert(strstr(s, "\"destination_domains\":[],") != NULL);
		test_assert(strstr(s, "\"bounce_reasons\":[],") != NULL);
		test_assert(strstr(s, "\"spf_preflight\":[],") != NULL);
		free(s);
	}
	report_free(r);
	test_end();
}

/* test_empty - a log with no rows yet; a missing log */
static void test_empty(long long now)
{
	struct weir_config *cfg = conf("empty.db");
	struct outcome_log *o;
	struct report *r = NULL;
	char *err = NULL;

	test_begin("an empty outcome log");
	o = cfg != NULL ? outcome_open(cfg, &err) : NULL;
	test_assert(o != NULL);
	outcome_close(o);
	test_assert(cfg != NULL && report_build(cfg, now - 1440 * MIN, now, &r, &err) == 0);
	if (r != NULL) {
		test_assert(r->rows == 0 && r->total.recipients == 0);
		test_assert(r->ndest == 0 && r->nsenders == 0 && r->nreasons == 0);
		/* no rate_hits table yet: no refusals, not an error */
		test_assert(r->nrate == 0 && r->rate_total == 0 && r->rate_note == NULL);
	}
	report_free(r);
	config_unref(cfg);
	test_end();

	test_begin("a missing outcome log");
	cfg = conf("missing.db");
	r = NULL;
	test_assert(cfg != NULL && report_build(cfg, now - MIN, now, &r, &err) == -1);
	test_assert(r == NULL);
	test_assert(err != NULL && strstr(err, "missing.db") != NULL &&
	            strstr(err, "No such file") != NULL);
	free(err);
	config_unref(cfg);
	test_end();
}

/* run - the command's exit status, its standard output into *out_r */
static int run(const char *args, char **out_r)
{
	char *cmd = xasprintf("policy/weirctl %s 2>&1", args);
	char buf[4096];
	size_t n;
	FILE *p = popen(cmd, "r");
	struct strbuf b = {0};
	int st;

	free(cmd);
	if (p == NULL)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		strbuf_add(&b, buf, n);
	st = pclose(p);
	*out_r = strbuf_take(&b);
	if (*out_r == NULL)
		*out_r = xstrdup("");
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_command(void)
{
	char *out, *args;

	if (access("policy/weirctl", X_OK) < 0) {
		printf("skip the command: no policy/weirctl here\n");
		return;
	}
	test_begin("weirctl report");
	args = xasprintf("-c %s/full.db.conf report", dir);
	test_assert(run(args, &out) == 0);
	test_assert(strstr(out, "  recipients             10\n") != NULL);
	free(out);
	free(args);
	args = xasprintf("-c %s/full.db.conf report --since 7d --json | python3 -c 'import json,"
	                 "sys; d=json.load(sys.stdin); print(d[\"totals\"][\"recipients\"], "
	                 "d[\"bounce_reasons\"][2][\"reason\"])'",
	                 dir);
	if (system("python3 -c '' 2>/dev/null") == 0) {
		test_assert(run(args, &out) == 0);
		/* 7 days: Q5's delivery (-2000 minutes) counts too */
		test_assert_str(out, "11 policy \"x\"\tlimit\n");
		free(out);
	}
	free(args);
	args = xasprintf("-c %s/missing.db.conf report", dir);
	test_assert(run(args, &out) == 1);
	test_assert(strstr(out, "weirctl report: ") != NULL && strstr(out, "missing.db") != NULL);
	free(out);
	free(args);
	args = xasprintf("-c %s/full.db.conf report --since 3x", dir);
	test_assert(run(args, &out) == 2);
	test_assert(strstr(out, "--since 3x") != NULL);
	free(out);
	free(args);
	args = xasprintf("-c %s/full.db.conf report --since 0", dir);
	test_assert(run(args, &out) == 2);
	free(out);
	free(args);
	test_assert(run("report stray", &out) == 2);
	free(out);
	test_end();
}

int main(void)
{
	struct weir_config *cfg;
	long long now;

	log_open("test-report", true, "mail");
	log_set_level(LOG_LEVEL_ERROR);
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) < 0) {
		perror("mkdtemp");
		return 1;
	}
	cfg = conf("full.db");
	now = now_ms();
	test_begin("setup");
	test_assert(cfg != NULL);
	test_assert(cfg != NULL && fill(cfg, now) == 0);
	test_assert(cfg != NULL && spf_finding(cfg) == 0);
	test_end();
	if (test_exit_status() != 0)
		return 1;
	test_full(cfg, now);
	test_window(cfg, now);
	test_empty(now);
	test_command();
	config_unref(cfg);
	if (test_exit_status() == 0) {
		char *cmd = xasprintf("rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
		free(cmd);
	}
	return test_exit_status();
}
