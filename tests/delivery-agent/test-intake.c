/* test-intake - weir-agent's bounce intake, VERP, agent-side suppression
 * and the outcome log, against the real weir-agent and fake smart hosts
 * (harness.c); the records are read back from the agent's own SQLite
 * files with the policy library. */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/outcome.h"
#include "policy/suppress.h"
#include "tests/testlib.h"
#include "tests/delivery-agent/harness.h"

static char top[8192];

static const char dsn_msg[] =
    "From: MAILER-DAEMON@mx.y.test (Mail Delivery System)\n"
    "To: bounces+orig=x.test@bounces.test\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\n"
    "\n"
    "--BB\n"
    "Content-Type: text/plain\n"
    "\n"
    "Your message could not be delivered to one or more recipients.\n"
    ".a line with a dot\n"
    "\n"
    "--BB\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.y.test\n"
    "\n"
    "Final-Recipient: rfc822; gone@y.test\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <gone@y.test>: Recipient address rejected: User "
    "unknown\n"
    "\n"
    "Final-Recipient: rfc822; full@y.test\n"
    "Action: failed\n"
    "Status: 4.2.2\n"
    "Diagnostic-Code: smtp; 452 4.2.2 <full@y.test>: Mailbox full\n"
    "\n"
    "--BB\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: app@x.test\n"
    "To: gone@y.test, full@y.test\n"
    "Message-ID: <m1@x.test>\n"
    "Subject: hello\n"
    "\n"
    "hi\n"
    "--BB--\n";

static const char arf_msg[] =
    "From: fbl@isp.test\n"
    "To: fbl@bounces.test\n"
    "Subject: complaint about message\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"AA\"\n"
    "\n"
    "--AA\n"
    "Content-Type: text/plain\n"
    "\n"
    "This is an email abuse report.\n"
    "\n"
    "--AA\n"
    "Content-Type: message/feedback-report\n"
    "\n"
    "Feedback-Type: abuse\n"
    "User-Agent: isp-fbl/1.0\n"
    "Version: 1\n"
    "Original-Mail-From: <news@shop.test>\n"
    "Original-Rcpt-To: <carol@y.test>\n"
    "\n"
    "--AA\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: news@shop.test\n"
    "To: carol@y.test\n"
    "Message-ID: <n1@shop.test>\n"
    "Subject: offer\n"
    "\n"
    "buy\n"
    "--AA--\n";

static const char vacation_msg[] = "From: erin@y.test\n"
                                   "To: app@x.test\n"
                                   "Subject: Out of office: hello\n"
                                   "Auto-Submitted: auto-replied\n"
                                   "\n"
                                   "I am away until Monday.\n";

/* a DSN that names nobody: the VERP address does */
static const char anon_msg[] =
    "From: MAILER-DAEMON@mx.z.test\n"
    "To: bounces+dave=z.test@bounces.test\n"
    "Subject: Delivery Status Notification (Failure)\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"CC\"\n"
    "\n"
    "--CC\n"
    "Content-Type: text/plain\n"
    "\n"
    "Delivery failed.\n"
    "\n"
    "--CC\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.z.test\n"
    "\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "\n"
    "--CC--\n";

/* set_top - the bounce group (and more) for the next agent */
static void set_top(const char *more)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	char rules[PATH_MAX + 64], *abs;

	snprintf(rules, sizeof(rules), "%s/contrib/bounce/rules.conf", srcdir);
	abs = realpath(rules, NULL);
	snprintf(top, sizeof(top),
	         "bounce = { domains = (\"bounces.test\"); rules = \"%s\"; };\n%s",
	         abs ? abs : rules, more);
	free(abs);
	top_extra = top;
}

/* send_msg - the DATA part: text with LF line ends, sent with CRLF and
 * dot-stuffed, then the final dot; the first reply */
static const char *send_msg(int fd, const char *text, char *b, size_t size)
{
	struct strbuf_s {
		char *s;
		size_t n;
	} o = {xmalloc(2 * strlen(text) + 8), 0};
	bool bol = true;

	for (const char *p = text; *p; p++) {
		if (bol && *p == '.')
			o.s[o.n++] = '.';
		if (*p == '\n')
			o.s[o.n++] = '\r';
		o.s[o.n++] = *p;
		bol = *p == '\n';
	}
	memcpy(o.s + o.n, ".", 2);
	cmd(fd, o.s, b, size);
	free(o.s);
	return b;
}

static struct weir_config *agent_conf(const struct env *e)
{
	struct config_errors errs;
	struct weir_config *cfg;

	config_errors_init(&errs);
	cfg = config_load(e->conf, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "%s\n", errs.list.v[i]);
	config_errors_free(&errs);
	return cfg;
}

/* The outcome rows of one recipient */
struct found {
	int n;
	struct outcome_rec last; /* the newest; strings copied */
	char *s[6];
};

static void found_row(void *ctx, long long id, const struct outcome_rec *r)
{
	struct found *f = ctx;

	(void)id;
	if (f->n++ > 0)
		return; /* newest first */
	f->last = *r;
	f->last.queue_id = f->s[0] = r->queue_id ? xstrdup(r->queue_id) : NULL;
	f->last.reason = f->s[1] = r->reason ? xstrdup(r->reason) : NULL;
	f->last.source = f->s[2] = r->source ? xstrdup(r->source) : NULL;
	f->last.status = f->s[3] = r->status ? xstrdup(r->status) : NULL;
	f->last.route = f->s[4] = r->route ? xstrdup(r->route) : NULL;
	f->last.sender = f->s[5] = r->sender ? xstrdup(r->sender) : NULL;
}

static void found_free(struct found *f)
{
	for (int i = 0; i < 6; i++)
		free(f->s[i]);
	memset(f, 0, sizeof(*f));
}

/* rows - the outcome rows for rcpt (all: NULL); waits up to secs for at
 * least want of them (the writer's batches) */
static int rows(const struct env *e, const char *rcpt, int want, int secs, struct found *f)
{
	struct weir_config *cfg = agent_conf(e);
	struct outcome_filter flt = {.rcpt = rcpt, .result = -1};

	for (int i = 0; cfg != NULL && i <= secs * 10; i++) {
		char *err = NULL;
		found_free(f);
		if (outcome_query(cfg, &flt, found_row, f, &err) < 0)
			free(err);
		if (f->n >= want)
			break;
		usleep(100000);
	}
	config_unref(cfg);
	return f->n;
}

/* suppressed - the suppression list's word on rcpt for sender_domain */
static int suppressed(const struct env *e, const char *rcpt, const char *sender_domain,
                      struct suppress_entry *entry)
{
	struct weir_config *cfg = agent_conf(e);
	struct suppress_entry tmp;
	struct suppress *s;
	char *err = NULL;
	int rc = -1;

	if (cfg != NULL && (s = suppress_open_flags(cfg, SUPPRESS_READONLY, &err)) != NULL) {
		rc = suppress_lookup(s, rcpt, sender_domain, (long long)time(NULL),
		                     entry ? entry : &tmp, &err);
		suppress_close(s);
	}
	if (rc < 0)
		fprintf(stderr, "suppression lookup: %s\n", err ? err : "?");
	free(err);
	config_unref(cfg);
	return rc;
}

static void test_dsn(void)
{
	struct env e;
	struct found f = {0};
	struct suppress_entry se;
	char b[1024], path[200];
	int fd;

	test_begin("intake: a DSN with two failures: outcome rows, suppression, 250 after");
	set_top("");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	test_assert_str(cmd(fd, "RCPT TO:<bounces+orig=x.test@Bounces.Test>", b, sizeof(b)),
	                "250 2.1.5 <bounces+orig=x.test@Bounces.Test>: bounce intake");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	test_assert_str(send_msg(fd, dsn_msg, b, sizeof(b)),
	                "250 2.0.0 <bounces+orig=x.test@Bounces.Test>: dsn recorded for 2 "
	                "recipients");
	/* on disk when the MTA hears 250: no waiting for the writer */
	test_assert(rows(&e, "gone@y.test", 1, 0, &f) == 1);
	test_assert(f.last.result == OUTCOME_BOUNCED && f.last.hard);
	test_assert_str(f.last.reason, "userunknown");
	test_assert_str(f.last.source, "bounce");
	test_assert_str(f.last.status, "5.1.1");
	test_assert(f.last.code == 550);
	test_assert_str(f.last.sender, "app@x.test");
	test_assert(rows(&e, "full@y.test", 1, 0, &f) == 1);
	test_assert(f.last.result == OUTCOME_DEFERRED && !f.last.hard);
	test_assert_str(f.last.reason, "mailboxfull");
	found_free(&f);
	test_assert(suppressed(&e, "gone@y.test", "x.test", &se) == 1);
	test_assert(se.hard);
	test_assert_str(se.reason, "userunknown");
	test_assert(suppressed(&e, "full@y.test", "x.test", NULL) == 0); /* counted only */
	/* nothing went upstream for the bounce */
	snprintf(path, sizeof(path), "%s.cmds", e.msgfile);
	test_assert(count_lines(path, "MAIL") == 0);

	/* agent side: the suppressed recipient is refused before relaying,
	 * the soft one still relayed */
	PREFIX(cmd(fd, "MAIL FROM:<app@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<gone@y.test>", b, sizeof(b)),
	       "550 5.1.1 <gone@y.test>: suppressed since ");
	test_assert(strstr(b, ": userunknown") != NULL);
	PREFIX(cmd(fd, "RCPT TO:<full@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "Subject: t\r\n\r\nx\r\n.", b, sizeof(b)),
	       "250 2.0.0 <full@y.test> relayed");
	test_assert(count_lines(path, "RCPT TO:<gone@y.test>") == 0);
	test_assert(count_lines(path, "RCPT TO:<full@y.test>") == 1);
	test_assert(rows(&e, "gone@y.test", 2, 3, &f) == 2);
	test_assert(f.last.result == OUTCOME_SUPPRESSED);
	test_assert(f.last.code == 550);
	test_assert_str(f.last.reason, "userunknown");
	test_assert(rows(&e, "full@y.test", 2, 3, &f) == 2);
	test_assert(f.last.result == OUTCOME_DELIVERED);
	found_free(&f);
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

static void test_complaint(void)
{
	struct env e;
	struct found f = {0};
	char b[1024];
	int fd;

	test_begin("intake: an ARF complaint suppresses for the sender's domain only");
	set_top("");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<fbl@bounces.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(send_msg(fd, arf_msg, b, sizeof(b)),
	       "250 2.0.0 <fbl@bounces.test>: complaint recorded for 1 recipient");
	test_assert(suppressed(&e, "carol@y.test", "shop.test", NULL) == 1);
	test_assert(suppressed(&e, "carol@y.test", "other.test", NULL) == 0);
	test_assert(rows(&e, "carol@y.test", 1, 0, &f) == 1);
	test_assert(f.last.result == OUTCOME_COMPLAINT);
	test_assert_str(f.last.source, "complaint");
	found_free(&f);
	/* the agent refuses it for that sender domain only */
	PREFIX(cmd(fd, "MAIL FROM:<news@shop.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<carol@y.test>", b, sizeof(b)), "550 5.1.1 <carol@y.test>");
	PREFIX(cmd(fd, "RSET", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "MAIL FROM:<info@other.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<carol@y.test>", b, sizeof(b)), "250 2.1.5");
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

static void test_not_bounces(void)
{
	struct env e;
	struct found f = {0};
	char b[1024];
	int fd;

	test_begin("intake: an auto-reply and a plain message: accepted, nothing recorded");
	set_top("");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<erin@y.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<bounces+erin=y.test@bounces.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(send_msg(fd, vacation_msg, b, sizeof(b)),
	       "250 2.0.0 <bounces+erin=y.test@bounces.test>: accepted, nothing recorded "
	       "(autoreply)");
	PREFIX(send_one(fd, "x@y.test", "info@bounces.test", b, sizeof(b)),
	       "250 2.0.0 <info@bounces.test>: accepted, nothing recorded (none)");
	test_assert(rows(&e, NULL, 1, 0, &f) == 0);
	test_assert(suppressed(&e, "erin@y.test", "x.test", NULL) == 0);
	found_free(&f);
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

static void test_verp_decode(void)
{
	struct env e;
	struct found f = {0};
	char b[1024];
	int fd;

	test_begin("intake: a DSN that names nobody: the VERP address does");
	set_top("");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<bounces+dave=z.test@bounces.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(send_msg(fd, anon_msg, b, sizeof(b)),
	       "250 2.0.0 <bounces+dave=z.test@bounces.test>: dsn recorded for 1 recipient");
	test_assert(rows(&e, "dave@z.test", 1, 0, &f) == 1);
	test_assert_str(f.last.source, "bounce");
	test_assert(suppressed(&e, "dave@z.test", NULL, NULL) == 0); /* soft: undefined */
	found_free(&f);
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

static void test_mixed(void)
{
	struct env e;
	char b[1024], path[200];
	int fd, sp = free_port(), lines;

	test_begin("intake beside relaying: LMTP answers each; SMTP keeps them apart (452)");
	set_top("");
	env_init(&e);
	start_fake(&e, "ok");
	snprintf(path, sizeof(path), "smtp_listen = (\"inet:%d@127.0.0.1\");", sp);
	start_agent(&e, path);
	fd = session(&e);
	send_raw(fd, "MAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<bounces+gone=y.test@"
	             "bounces.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.0");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5 <bounces+gone=y.test@bounces.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "354");
	PREFIX(send_msg(fd, dsn_msg, b, sizeof(b)), "250 2.0.0 <a@y.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <bounces+gone=y.test@bounces.test>: dsn");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <b@y.test> relayed");
	snprintf(path, sizeof(path), "%s.log", e.msgfile);
	test_assert(count_lines(path, "MESSAGE a@y.test b@y.test") == 1);
	close(fd);
	fd = tcp_connect(sp, 50);
	PREFIX(reply(fd, b, sizeof(b)), "220");
	PREFIX(cmd(fd, "EHLO mta.test", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<fbl@bounces.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<c@y.test>", b, sizeof(b)),
	       "452 4.5.3 <c@y.test>: bounce intake and mail to relay");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(send_msg(fd, vacation_msg, b, sizeof(b)), "250 2.0.0 accepted, nothing recorded");
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<c@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<fbl@bounces.test>", b, sizeof(b)),
	       "452 4.5.3 <fbl@bounces.test>: bounce intake and mail to relay");
	close(fd);
	lines = count_lines(path, "MESSAGE");
	test_assert(lines == 1);
	teardown(&e);
	top_extra = "";
	test_end();
}

static void test_store_error(void)
{
	struct env e;
	char b[1024], more[256];
	int fd;

	test_begin("intake: the suppression list cannot be written: 451 4.3.0, kept by the MTA");
	env_init(&e);
	/* a directory that cannot be made: its parent is a file */
	snprintf(more, sizeof(more), "suppression = { db = \"%s/file/s.db\"; agent = false; };\n",
	         e.dir);
	set_top(more);
	snprintf(b, sizeof(b), "%s/file", e.dir);
	fclose(fopen(b, "w"));
	start_fake(&e, "ok");
	start_agent(&e, NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<bounces+x=y.test@bounces.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(send_msg(fd, dsn_msg, b, sizeof(b)),
	       "451 4.3.0 <bounces+x=y.test@bounces.test>: bounce not recorded");
	/* relaying goes on (the list is not checked with agent = false) */
	PREFIX(send_one(fd, "s@x.test", "ok@y.test", b, sizeof(b)), "250 2.0.0 <ok@y.test>");
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

static const char verp_routes[] =
    " routes = ( { name = \"news\"; sender_domains = (\"shop.test\"); verp = \"Bounces.Test\";"
    " hosts = ( { host = \"127.0.0.1\"; port = %d; } ); },"
    " { name = \"plain\"; hosts = ( { host = \"127.0.0.1\"; port = %d; } ); } );";

static void test_verp(void)
{
	struct env e;
	struct found f = {0};
	char b[1024], extra[1024], path[200];
	int fd, sp = free_port();

	test_begin("VERP: LMTP: one upstream transaction per recipient, encoded MAIL FROM");
	set_top("");
	env_init(&e);
	start_fake(&e, "ok");
	snprintf(extra, sizeof(extra), "smtp_listen = (\"inet:%d@127.0.0.1\");\n", sp);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), verp_routes, e.up_port,
	         e.up_port);
#pragma GCC diagnostic pop
	start_agent(&e, extra);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<news@shop.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<Z.Last@w.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd,
	           "Received: from app.shop.test by mta.test (Postfix) with ESMTPSA id "
	           "4XyZ12Ab\r\n\tfor <x@y.test>; Mon, 1 Jan 2026 00:00:00 +0000\r\n"
	           "Subject: t\r\n\r\nbody\r\n.",
	           b, sizeof(b)),
	       "250 2.0.0 <x@y.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <Z.Last@w.test> relayed");
	snprintf(path, sizeof(path), "%s.cmds", e.msgfile);
	test_assert(count_lines(path, "MAIL FROM:<bounces+x=y.test@bounces.test>") == 1);
	test_assert(count_lines(path, "MAIL FROM:<bounces+Z.Last=w.test@bounces.test>") == 1);
	snprintf(path, sizeof(path), "%s.log", e.msgfile);
	test_assert(count_lines(path, "MESSAGE x@y.test") == 1);
	test_assert(count_lines(path, "MESSAGE Z.Last@w.test") == 1);
	/* the outcome rows: the route, the queue id of the Received header */
	test_assert(rows(&e, "x@y.test", 1, 3, &f) == 1);
	test_assert(f.last.result == OUTCOME_DELIVERED);
	test_assert_str(f.last.route, "news");
	test_assert_str(f.last.queue_id, "4XyZ12Ab");
	test_assert(f.last.code == 250);
	found_free(&f);
	/* other senders: the plain route, one transaction */
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<p@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<q@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <p@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <q@y.test>");
	test_assert(count_lines(path, "MESSAGE p@y.test q@y.test") == 1);
	close(fd);
	test_end();

	test_begin("VERP: SMTP: 452 4.5.3 for a second recipient");
	fd = tcp_connect(sp, 50);
	PREFIX(reply(fd, b, sizeof(b)), "220");
	PREFIX(cmd(fd, "EHLO mta.test", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "MAIL FROM:<news@shop.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<r1@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<r2@y.test>", b, sizeof(b)),
	       "452 4.5.3 <r2@y.test>: route news sends with VERP");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 relayed");
	snprintf(path, sizeof(path), "%s.cmds", e.msgfile);
	test_assert(count_lines(path, "MAIL FROM:<bounces+r1=y.test@bounces.test>") == 1);
	test_assert(count_lines(path, "RCPT TO:<r2@y.test>") == 0);
	/* the null sender is sent as it is */
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<r3@y.test>", b, sizeof(b)), "250 2.1.5");
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

static void test_relay_rows(void)
{
	struct env e;
	struct found f = {0};
	char b[1024];
	int fd;

	test_begin("outcome rows for relaying: deferred and bounced classified, one per answer");
	set_top("");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<app@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<t450@y.test>", b, sizeof(b)), "450 4.2.0");
	PREFIX(cmd(fd, "RCPT TO:<r550@y.test>", b, sizeof(b)), "550 5.1.1");
	PREFIX(cmd(fd, "RCPT TO:<ok@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "Subject: t\r\n\r\nx\r\n.", b, sizeof(b)), "250 2.0.0 <ok@y.test>");
	test_assert(rows(&e, NULL, 3, 3, &f) == 3);
	test_assert(rows(&e, "r550@y.test", 1, 0, &f) == 1);
	test_assert(f.last.result == OUTCOME_BOUNCED && f.last.hard);
	test_assert_str(f.last.reason, "userunknown");
	test_assert_str(f.last.status, "5.1.1");
	test_assert(f.last.code == 550);
	test_assert_str(f.last.source, "relay");
	test_assert(f.last.queue_id == NULL); /* answered before the data */
	test_assert(rows(&e, "t450@y.test", 1, 0, &f) == 1);
	test_assert(f.last.result == OUTCOME_DEFERRED);
	test_assert(f.last.code == 450);
	test_assert(f.last.reason != NULL);
	test_assert(rows(&e, "ok@y.test", 1, 0, &f) == 1);
	test_assert(f.last.result == OUTCOME_DELIVERED);
	test_assert(f.last.reason == NULL);
	found_free(&f);
	close(fd);
	teardown(&e);
	top_extra = "";
	test_end();
}

int main(void)
{
	test_dsn();
	test_complaint();
	test_not_bounces();
	test_verp_decode();
	test_mixed();
	test_store_error();
	test_verp();
	test_relay_rows();
	return test_exit_status();
}
