/* test-bounce - policy/bounce*.c: rules file, classification of replies,
 * RFC 3464 DSN, ARF, auto-replies, non-standard bounces, line endings,
 * malformed input, VERP. The rules under test are the shipped
 * contrib/bounce/rules.conf (path from $srcdir) plus small files written
 * here. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/bounce.h"
#include "tests/testlib.h"

static struct bounce_rules *rules;

static const char dsn[] =
    "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
    "To: sender@example.com\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\n"
    "\n"
    "--BB\n"
    "Content-Type: text/plain\n"
    "\n"
    "This is the mail system at host mx.example.org.\n"
    "\n"
    "<alice@Example.NET>: host mx.example.net[192.0.2.1] said: 550 5.1.1\n"
    "    <alice@example.net>: Recipient address rejected: User unknown\n"
    "\n"
    "--BB\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.example.org\n"
    "\n"
    "Final-Recipient: rfc822; alice@Example.NET\n"
    "Original-Recipient: rfc822;alice@example.net\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Remote-MTA: dns; mx.example.net\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <alice@example.net>: Recipient address\n"
    "    rejected: User unknown in virtual mailbox table\n"
    "\n"
    "Final-Recipient: rfc822; bob@example.net\n"
    "Action: delayed\n"
    "Status: 4.2.2\n"
    "Diagnostic-Code: smtp; 452 4.2.2 <bob@example.net>: mailbox is full\n"
    "\n"
    "Final-Recipient: rfc822; carol@example.net\n"
    "Action: delivered\n"
    "Status: 2.0.0\n"
    "\n"
    "--BB\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: Sender <sender@example.com>\n"
    "To: alice@example.net\n"
    "Message-ID: <orig-1@example.com>\n"
    "Subject: hello\n"
    "\n"
    "hello\n"
    "--BB--\n";

static const char arf[] =
    "From: feedback@isp.example\n"
    "To: abuse@example.com\n"
    "Subject: FW: hello\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"AA\"\n"
    "\n"
    "--AA\n"
    "Content-Type: text/plain\n"
    "\n"
    "This is an email abuse report.\n"
    "--AA\n"
    "Content-Type: message/feedback-report\n"
    "\n"
    "Feedback-Type: abuse\n"
    "User-Agent: SomeGenerator/1.0\n"
    "Version: 1\n"
    "Original-Mail-From: <bounces@example.com>\n"
    "Original-Rcpt-To: <user@isp.example>\n"
    "\n"
    "--AA\n"
    "Content-Type: text/rfc822-headers\n"
    "\n"
    "From: <news@example.com>\n"
    "To: <user@isp.example>\n"
    "Message-ID: <m-42@example.com>\n"
    "--AA--\n";

static const char vacation[] = "From: bob@example.net\n"
			       "To: sender@example.com\n"
			       "Subject: Out of office: hello\n"
			       "Auto-Submitted: auto-replied\n"
			       "\n"
			       "I am away until Monday.\n";

static const char exim[] =
    "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
    "To: sender@example.com\n"
    "Subject: Mail delivery failed: returning message to sender\n"
    "Auto-Submitted: auto-replied\n"
    "\n"
    "This message was created automatically by mail delivery software.\n"
    "\n"
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n"
    "\n"
    "  dave@example.net\n"
    "    SMTP error from remote mail server after RCPT TO:<dave@example.net>:\n"
    "    host mx.example.net [192.0.2.2]: 550 5.1.1 <dave@example.net>... User unknown\n"
    "  erin@example.net\n"
    "    SMTP error from remote mail server after RCPT TO:<erin@example.net>:\n"
    "    host mx.example.net [192.0.2.2]: 552 5.2.2 Mailbox full\n"
    "\n"
    "------ This is a copy of the message, including all the headers. ------\n"
    "\n"
    "Return-path: <sender@example.com>\n"
    "From: sender@example.com\n"
    "To: dave@example.net, erin@example.net\n"
    "\n"
    "hi\n";

/* with_eol - s with every "\n" replaced by eol (new memory) */
static char *with_eol(const char *s, const char *eol)
{
	size_t n = 0, el = strlen(eol);
	char *out = xmalloc(strlen(s) * el + 1), *o = out;

	for (; *s; s++) {
		if (*s == '\n') {
			memcpy(o, eol, el);
			o += el;
		} else {
			*o++ = *s;
		}
		n++;
	}
	*o = '\0';
	return out;
}

static void check_dsn(const char *msg)
{
	struct bounce_report rep;

	test_assert(bounce_parse(rules, msg, strlen(msg), &rep) == 0);
	test_assert(rep.kind == BOUNCE_DSN);
	test_assert(rep.nrcpts == 2);
	if (rep.nrcpts == 2) {
		test_assert_str(rep.rcpts[0].recipient, "alice@example.net");
		test_assert_str(rep.rcpts[0].status, "5.1.1");
		test_assert(rep.rcpts[0].code == 550);
		test_assert(rep.rcpts[0].diagnostic != NULL &&
			    strstr(rep.rcpts[0].diagnostic, "virtual mailbox table") != NULL);
		test_assert_str(rep.rcpts[0].cls.reason, "userunknown");
		test_assert(rep.rcpts[0].cls.hard);
		test_assert_str(rep.rcpts[1].recipient, "bob@example.net");
		test_assert_str(rep.rcpts[1].status, "4.2.2");
		test_assert(rep.rcpts[1].code == 452);
		test_assert_str(rep.rcpts[1].cls.reason, "mailboxfull");
		test_assert(!rep.rcpts[1].cls.hard);
	}
	test_assert_str(rep.original_from, "sender@example.com");
	test_assert_str(rep.original_msgid, "orig-1@example.com");
	bounce_report_free(&rep);
}

static void test_classify_reply(void)
{
	static const struct {
		int code;
		const char *status, *text, *reason;
		bool hard;
	} cases[] = {
	    {550, "5.1.1", "<a@example.net>: Recipient address rejected: User unknown",
	     "userunknown", true},
	    /* the words alone, the SMTP stage and the status unknown: a
	     * filter's as likely as the mailbox's (Sisimai's filtered) */
	    {550, NULL, "No such user here", "filtered", false},
	    {552, "5.2.2", "Mailbox full", "mailboxfull", false},
	    {452, "4.2.2", "The email account that you tried to reach is over quota",
	     "mailboxfull", false},
	    {554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
	     "blocked", false},
	    {550, "5.7.26", "Unauthenticated email from example.com is not accepted due to "
			    "domain's DMARC policy", "authfailure", false},
	    {421, "4.7.0", "Try again later, closing connection. (rate limited)", "speeding",
	     false},
	    {550, "5.1.2", "Host unknown", "hostunknown", true},
	    {550, "5.7.1", "Message rejected as spam", "spamdetected", false},
	    {0, NULL, NULL, "undefined", false},
	};

	test_begin("bounce_classify_reply");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bounce_class c;

		bounce_classify_reply(rules, cases[i].code, cases[i].status, cases[i].text, &c);
		test_assert_str(c.reason, cases[i].reason);
		test_assert(c.hard == cases[i].hard);
	}
	/* the same words in answer to RCPT TO are the mailbox's */
	{
		struct bounce_class c;

		bounce_classify_reply_after(rules, "RCPT", 550, NULL, "No such user here", &c);
		test_assert_str(c.reason, "userunknown");
		test_assert(c.hard);
		bounce_classify_reply_after(rules, "DATA", 550, NULL, "No such user here", &c);
		test_assert_str(c.reason, "filtered");
		test_assert(!c.hard);
	}
	test_end();
}

static void test_dsn(void)
{
	test_begin("RFC 3464 DSN, two failed recipients, LF");
	check_dsn(dsn);
	test_end();
	test_begin("RFC 3464 DSN, CRLF and CR");
	for (int k = 0; k < 2; k++) {
		char *m = with_eol(dsn, k == 0 ? "\r\n" : "\r");

		check_dsn(m);
		free(m);
	}
	test_end();
}

static void test_arf_and_autoreply(void)
{
	struct bounce_report rep;

	test_begin("ARF complaint");
	test_assert(bounce_parse(rules, arf, strlen(arf), &rep) == 0);
	test_assert(rep.kind == BOUNCE_COMPLAINT);
	test_assert_str(rep.feedback_type, "abuse");
	test_assert(rep.nrcpts == 1);
	if (rep.nrcpts == 1) {
		test_assert_str(rep.rcpts[0].recipient, "user@isp.example");
		test_assert_str(rep.rcpts[0].cls.reason, "feedback");
	}
	test_assert_str(rep.original_from, "bounces@example.com");
	test_assert_str(rep.original_msgid, "m-42@example.com");
	bounce_report_free(&rep);
	test_end();

	test_begin("RFC 3834 auto-reply is not a bounce");
	test_assert(bounce_parse(rules, vacation, strlen(vacation), &rep) == 0);
	test_assert(rep.kind == BOUNCE_AUTOREPLY);
	test_assert(rep.nrcpts == 0);
	bounce_report_free(&rep);
	test_end();
}

static void test_text_bounce(void)
{
	struct bounce_report rep;

	test_begin("Exim bounce (Auto-Submitted, yet a bounce)");
	test_assert(bounce_parse(rules, exim, strlen(exim), &rep) == 0);
	test_assert(rep.kind == BOUNCE_TEXT);
	test_assert(rep.nrcpts == 2);
	if (rep.nrcpts == 2) {
		test_assert_str(rep.rcpts[0].recipient, "dave@example.net");
		test_assert_str(rep.rcpts[0].status, "5.1.1");
		test_assert_str(rep.rcpts[0].cls.reason, "userunknown");
		test_assert_str(rep.rcpts[1].recipient, "erin@example.net");
		test_assert(rep.rcpts[1].code == 552);
		test_assert_str(rep.rcpts[1].cls.reason, "mailboxfull");
	}
	bounce_report_free(&rep);
	test_end();
}

static void test_malformed(void)
{
	static const char *const bad[] = {
	    "",
	    "\n\n\n",
	    "Content-Type: multipart/report; boundary=\"X\"\n\n--X\nContent-Type: "
	    "message/delivery-status\n\nFinal-Recipient: rfc822;",
	    "Content-Type: multipart/report; boundary=\"X\"\n\n--X\nContent-Type: "
	    "message/delivery-status\n\nAction: failed\nStatus: 5.",
	    "From: MAILER-DAEMON\nContent-Type: multipart/mixed; boundary=\n\n--\n--",
	    "Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n",
	    "From: MAILER-DAEMON@x.example\nSubject: Undeliverable\n\n<@>:\n<a@>:\n@b.c\n",
	};
	struct bounce_report rep;

	test_begin("truncated and malformed messages");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		test_assert(bounce_parse(rules, bad[i], strlen(bad[i]), &rep) == 0);
		for (size_t j = 0; j < rep.nrcpts; j++)
			test_assert(rep.rcpts[j].recipient != NULL &&
				    strchr(rep.rcpts[j].recipient, '@') != NULL);
		bounce_report_free(&rep);
	}
	/* every prefix of a DSN */
	for (size_t n = 0; n < sizeof(dsn) - 1; n += 7) {
		test_assert(bounce_parse(rules, dsn, n, &rep) == 0);
		test_assert(rep.nrcpts <= 2);
		bounce_report_free(&rep);
	}
	/* too large */
	{
		size_t big = 10 * 1024 * 1024 + 1;
		char *m = xmalloc(big);

		memset(m, 'a', big);
		test_assert(bounce_parse(rules, m, big, &rep) == -1);
		test_assert(rep.kind == BOUNCE_NONE && rep.nrcpts == 0);
		bounce_report_free(&rep);
		free(m);
	}
	test_end();
}

static void test_rules_file(void)
{
	char path[] = "/tmp/test-bounce-rules.XXXXXX", *err = NULL;
	struct bounce_rules *r;
	struct bounce_class c;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	test_begin("rules file: order, hard by status, errors with FILE:LINE");
	fputs("# comment\n\n"
	      "mailboxfull soft text=/quota/\n"
	      "gone hard code=550 text=/gone/\n"
	      "notaccept status status=5.\n"
	      "notaccept status\n",
	      f);
	fclose(f);
	r = bounce_rules_load(path, &err);
	test_assert(r != NULL && err == NULL);
	bounce_classify_reply(r, 550, "5.2.2", "over quota", &c);
	test_assert_str(c.reason, "mailboxfull");
	bounce_classify_reply(r, 550, NULL, "user gone", &c);
	test_assert_str(c.reason, "gone");
	test_assert(c.hard);
	bounce_classify_reply(r, 551, NULL, "user gone", &c);
	test_assert_str(c.reason, "notaccept");
	test_assert(c.hard);
	bounce_classify_reply(r, 450, "4.0.0", "later", &c);
	test_assert_str(c.reason, "notaccept");
	test_assert(!c.hard);
	bounce_rules_free(r);

	f = fopen(path, "w");
	fputs("userunknown hard status=5.1.1\nBad hard\n", f);
	fclose(f);
	test_assert(bounce_rules_load(path, &err) == NULL);
	test_assert(err != NULL && strncmp(err, path, strlen(path)) == 0 &&
		    strstr(err, ":2: ") != NULL);
	free(err);
	f = fopen(path, "w");
	fputs("x hard text=/([/\n", f);
	fclose(f);
	test_assert(bounce_rules_load(path, &err) == NULL);
	test_assert(err != NULL && strstr(err, ":1: bad regular expression") != NULL);
	free(err);
	f = fopen(path, "w");
	fputs("x maybe\n", f);
	fclose(f);
	test_assert(bounce_rules_load(path, &err) == NULL);
	free(err);
	unlink(path);
	test_assert(bounce_rules_load(path, &err) == NULL && err != NULL);
	free(err);
	test_end();
}

static void test_verp(void)
{
	static const char *const rcpts[] = {"alice@example.com", "a=b@example.com",
					    "x+tag@example.org", "a=b+c=d@Example.NET"};
	char enc[256], dec[256];

	test_begin("VERP round trip");
	for (size_t i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++) {
		test_assert(bounce_verp_encode(rcpts[i], "bounces", "b.example", enc, sizeof(enc)));
		test_assert(bounce_verp_decode(enc, dec, sizeof(dec)));
		/* the domain comes back lowercased */
		test_assert(strncmp(dec, rcpts[i], strrchr(rcpts[i], '@') - rcpts[i]) == 0);
		test_assert(strcasecmp(dec, rcpts[i]) == 0);
	}
	test_assert(bounce_verp_encode("alice@example.com", "bounces", "b.example", enc,
				       sizeof(enc)));
	test_assert_str(enc, "bounces+alice=example.com@b.example");
	test_assert(!bounce_verp_encode("alice@example.com", "bounces", "b.example", enc, 10));
	test_assert(!bounce_verp_encode("noat", "bounces", "b.example", enc, sizeof(enc)));
	test_assert(!bounce_verp_decode("bounces@b.example", dec, sizeof(dec)));
	test_assert(!bounce_verp_decode("bounces+alice@b.example", dec, sizeof(dec)));
	test_assert(!bounce_verp_decode("bounces+alice=example.com@b.example", dec, 5));
	test_assert(!bounce_verp_decode("no-at-sign", dec, sizeof(dec)));
	test_end();
}

int main(void)
{
	const char *srcdir = getenv("srcdir");
	char *path = xasprintf("%s/contrib/bounce/rules.conf", srcdir ? srcdir : ".");
	char *err = NULL;

	rules = bounce_rules_load(path, &err);
	if (rules == NULL) {
		fprintf(stderr, "test-bounce: %s\n", err);
		return 1;
	}
	free(path);
	test_rules_file();
	test_classify_reply();
	test_dsn();
	test_arf_and_autoreply();
	test_text_bounce();
	test_malformed();
	test_verp();
	bounce_rules_free(rules);
	return test_exit_status();
}
