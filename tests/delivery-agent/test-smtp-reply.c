/* test-smtp-reply - lib/smtp_reply.c: multi-line replies, enhanced codes */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "lib/smtp_reply.h"
#include "tests/testlib.h"

/* feed_all - feed lines separated by '\n'; returns the last result */
static int feed_all(struct smtp_reply *r, const char *text, const char **err_r)
{
	int ret = -1;

	*err_r = NULL;
	while (*text) {
		size_t n = strcspn(text, "\n");
		ret = smtp_reply_feed(r, text, n, err_r);
		if (ret != 0)
			return ret;
		text += n;
		if (*text == '\n')
			text++;
	}
	return ret;
}

static void test_single(void)
{
	struct smtp_reply r;
	const char *err;
	char *line;

	test_begin("single line with enhanced code");
	smtp_reply_init(&r);
	test_assert(feed_all(&r, "250 2.1.0 Ok", &err) == 1);
	test_assert(r.code == 250);
	test_assert_str(r.enhanced, "2.1.0");
	test_assert_str(r.text, "Ok");
	line = smtp_reply_oneline(&r, 100);
	test_assert_str(line, "250 2.1.0 Ok");
	free(line);
	smtp_reply_clear(&r);
	test_assert(feed_all(&r, "220", &err) == 1 && r.code == 220 && r.text_len == 0);
	smtp_reply_clear(&r);
	test_end();
}

static void test_multi(void)
{
	struct smtp_reply r;
	const char *err;
	char *line, buf[16];

	test_begin("multi-line");
	smtp_reply_init(&r);
	test_assert(smtp_reply_feed(&r, "250-mx.test", 11, &err) == 0);
	test_assert(smtp_reply_feed(&r, "250-8BITMIME", 12, &err) == 0);
	test_assert(smtp_reply_feed(&r, "250 SIZE 100", 12, &err) == 1);
	test_assert(r.lines == 3 && r.complete);
	test_assert_str(r.text, "mx.test\n8BITMIME\nSIZE 100");
	test_assert_str(r.enhanced, "");
	test_assert_str(smtp_reply_enhanced(&r, buf, sizeof(buf)), "2.0.0");
	line = smtp_reply_oneline(&r, 1000);
	test_assert_str(line, "250 mx.test; 8BITMIME; SIZE 100");
	free(line);
	test_assert(smtp_reply_feed(&r, "250 more", 8, &err) == -1);
	smtp_reply_clear(&r);
	test_assert(feed_all(&r, "550-5.1.1 first\n550 5.1.1 second", &err) == 1);
	test_assert_str(r.text, "first\nsecond");
	test_assert_str(r.enhanced, "5.1.1");
	smtp_reply_clear(&r);
	test_end();
}

static void test_bad(void)
{
	static const char *const bad[] = {
		"", "25", "abc def", "250x", "150 hi", "650 hi", "260 hi", "2a0 hi",
		"250-a\n251 b", /* mismatched codes */
	};
	struct smtp_reply r;
	const char *err;
	char *big;

	test_begin("malformed replies");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_reply_init(&r);
		int ret = bad[i][0] ? feed_all(&r, bad[i], &err) : smtp_reply_feed(&r, "", 0, &err);
		test_assert(ret == -1);
		if (ret != -1)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		test_assert(ret != -1 || err != NULL);
		smtp_reply_clear(&r);
	}
	big = malloc(SMTP_REPLY_MAX_LINE + 10);
	memset(big, 'x', SMTP_REPLY_MAX_LINE + 10);
	memcpy(big, "250 ", 4);
	smtp_reply_init(&r);
	test_assert(smtp_reply_feed(&r, big, SMTP_REPLY_MAX_LINE + 1, &err) == -1);
	smtp_reply_clear(&r);
	test_assert(smtp_reply_feed(&r, big, SMTP_REPLY_MAX_LINE, &err) == 1);
	smtp_reply_clear(&r);
	for (int i = 0; i < SMTP_REPLY_MAX_LINES; i++)
		test_assert(smtp_reply_feed(&r, "250-x", 5, &err) == 0);
	test_assert(smtp_reply_feed(&r, "250 x", 5, &err) == -1);
	smtp_reply_clear(&r);
	free(big);
	test_end();
}

static void test_enhanced(void)
{
	struct smtp_reply r;
	const char *err;
	int cls = 0;

	test_begin("enhanced codes");
	test_assert(smtp_enhanced_parse("5.7.23 x", 8, &cls) == 6 && cls == 5);
	test_assert(smtp_enhanced_parse("4.4.1", 5, &cls) == 5 && cls == 4);
	test_assert(smtp_enhanced_parse("3.1.1 x", 7, &cls) == 0);
	test_assert(smtp_enhanced_parse("5.1234.1", 8, &cls) == 0);
	test_assert(smtp_enhanced_parse("5.1.1x", 6, &cls) == 0);
	test_assert(smtp_enhanced_parse("5..1", 4, &cls) == 0);
	smtp_reply_init(&r);
	/* class mismatch: not taken as an enhanced code */
	test_assert(feed_all(&r, "550 2.0.0 odd", &err) == 1);
	test_assert_str(r.enhanced, "");
	test_assert_str(r.text, "2.0.0 odd");
	smtp_reply_clear(&r);
	/* control characters are not forwarded */
	test_assert(smtp_reply_feed(&r, "451 a\rb\x01", 8, &err) == 1);
	char *line = smtp_reply_oneline(&r, 100);
	test_assert_str(line, "451 a?b?");
	free(line);
	smtp_reply_clear(&r);
	test_end();
}

int main(void)
{
	test_single();
	test_multi();
	test_bad();
	test_enhanced();
	return test_exit_status();
}
