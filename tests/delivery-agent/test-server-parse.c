/* test-server-parse - delivery-agent/smtp_cmd.c: commands, paths, parameters */
#include "autoconf.h"

#include <string.h>

#include "delivery-agent/smtp_cmd.h"
#include "tests/testlib.h"

static void test_verbs(void)
{
	struct smtp_cmd c;

	test_begin("verbs");
	smtp_cmd_parse("lhlo mta.test", &c);
	test_assert(c.verb == CMD_LHLO);
	test_assert_str(c.arg, "mta.test");
	smtp_cmd_parse("QUIT", &c);
	test_assert(c.verb == CMD_QUIT && c.arg[0] == '\0');
	smtp_cmd_parse("MAIL FROM:<a@b>", &c);
	test_assert(c.verb == CMD_MAIL);
	test_assert_str(c.arg, "FROM:<a@b>");
	smtp_cmd_parse("QUITX", &c);
	test_assert(c.verb == CMD_UNKNOWN);
	smtp_cmd_parse("EXPN x", &c);
	test_assert(c.verb == CMD_NOTIMPL);
	smtp_cmd_parse("", &c);
	test_assert(c.verb == CMD_UNKNOWN);
	test_end();
}

static void test_mail(void)
{
	struct smtp_mail m;
	const char *err = NULL;

	test_begin("MAIL");
	test_assert(smtp_parse_mail("FROM:<a@x.test>", &m, &err) == 0);
	test_assert_str(m.addr, "a@x.test");
	test_assert(m.size == -1 && m.body == BODY_NONE);
	test_assert(smtp_parse_mail("from: <> SIZE=123 body=8bitmime", &m, &err) == 0);
	test_assert_str(m.addr, "");
	test_assert(m.size == 123 && m.body == BODY_8BITMIME);
	test_assert(smtp_parse_mail("FROM:<@r1,@r2:u@x.test>", &m, &err) == 0);
	test_assert_str(m.addr, "u@x.test");
	test_assert(smtp_parse_mail("FROM:<\"a b\"@x.test> BODY=7BIT", &m, &err) == 0);
	test_assert_str(m.addr, "\"a b\"@x.test");
	test_assert(smtp_parse_mail("FROM:<u@[127.0.0.1]>", &m, &err) == 0);
	test_assert(smtp_parse_mail("FROM:a@x.test", &m, &err) == -1);
	test_assert_str(err, "501 5.5.4 Syntax: MAIL FROM:<address>");
	test_assert(smtp_parse_mail("TO:<a@x.test>", &m, &err) == -1);
	test_assert(smtp_parse_mail("FROM:<a@x.test> AUTH=<>", &m, &err) == -1);
	test_assert_str(err, "555 5.5.4 Unsupported MAIL parameter");
	test_assert(smtp_parse_mail("FROM:<a@x.test> SIZE=12a", &m, &err) == -1);
	test_assert(smtp_parse_mail("FROM:<a@x.test> SIZE=1 SIZE=2", &m, &err) == -1);
	test_assert(smtp_parse_mail("FROM:<a@x.test> BODY=BINARYMIME", &m, &err) == -1);
	test_assert(smtp_parse_mail("FROM:<a@x.test>x", &m, &err) == -1);
	test_assert(smtp_parse_mail("FROM:<a@x.test", &m, &err) == -1);
	test_assert(smtp_parse_mail("FROM:<postmaster>", &m, &err) == -1);
	test_assert_str(err, "501 5.1.7 Bad sender address syntax");
	test_end();
}

static void test_rcpt(void)
{
	char addr[SMTP_PATH_MAX + 1];
	const char *err = NULL;
	char big[400];

	test_begin("RCPT");
	test_assert(smtp_parse_rcpt("TO:<b@y.test>", addr, &err) == 0);
	test_assert_str(addr, "b@y.test");
	test_assert(smtp_parse_rcpt("To:<Postmaster>", addr, &err) == 0);
	test_assert(smtp_parse_rcpt("TO:<>", addr, &err) == -1);
	test_assert_str(err, "501 5.1.3 Bad recipient address syntax");
	test_assert(smtp_parse_rcpt("TO:<b@y.test> NOTIFY=NEVER", addr, &err) == -1);
	test_assert_str(err, "555 5.5.4 Unsupported RCPT parameter");
	test_assert(smtp_parse_rcpt("TO:<b@y.test>  ", addr, &err) == 0);
	memset(big, 'a', sizeof(big));
	memcpy(big, "TO:<", 4);
	memcpy(big + 300, "@x.test>", 9);
	test_assert(smtp_parse_rcpt(big, addr, &err) == -1);
	test_end();
}

static void test_addresses(void)
{
	static const char *const good[] = {"a@b", "a.b+c@x-y.test", "\"x\\\"y\"@z.test",
					   "u@[IPv6:::1]", "!#$%&'*+-/=?^_`{|}~@x"};
	static const char *const bad[] = {"", "a", "@x", "a@", ".a@x", "a.@x", "a..b@x",
					  "a@-x", "a@x-", "a@x..y", "a b@x", "a@x y",
					  "\"\"@x", "a@[x", "\xc3\xa9@x", "a@b@c"};

	test_begin("address syntax");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bool ok = smtp_address_valid(good[i], strlen(good[i]), false);
		test_assert(ok);
		if (!ok)
			fprintf(stderr, "rejected: %s\n", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool ok = smtp_address_valid(bad[i], strlen(bad[i]), false);
		test_assert(!ok);
		if (ok)
			fprintf(stderr, "accepted: %s\n", bad[i]);
	}
	test_end();
}

int main(void)
{
	test_verbs();
	test_mail();
	test_rcpt();
	test_addresses();
	return test_exit_status();
}
