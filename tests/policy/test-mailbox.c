/* test-mailbox - RFC 5322 From / Sender values: mailbox lists, groups,
 * comments, folding, RFC 2047 display names, and display names that hide
 * another address */
#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/mailbox.h"
#include "tests/testlib.h"

struct mb {
	const char *addr;
	const char *display; /* NULL: no display name expected */
	bool hides;
};

/* err == NULL: success with n mailboxes (up to 3 checked); else the error
 * must contain err */
struct mb_case {
	const char *in;
	const char *err;
	size_t n;
	struct mb m[3];
};

#define A "alice@example.com"

/* clang-format off */
static const struct mb_case cases[] = {
	/* plain forms */
	{"alice@example.com", NULL, 1, {{A, NULL, false}}},
	{"Alice <alice@example.com>", NULL, 1, {{A, "Alice", false}}},
	{"\"Alice, A.\" <alice@example.com>", NULL, 1, {{A, "Alice, A.", false}}},
	{"alice@example.com (comment)", NULL, 1, {{A, NULL, false}}},
	{"<alice@example.com>", NULL, 1, {{A, NULL, false}}},
	{" <alice@example.com> ", NULL, 1, {{A, NULL, false}}},
	{"Alice <ALICE@Example.COM.>", NULL, 1, {{A, "Alice", false}}},
	{"John Q. Public <jqp@example.com>",
	 NULL, 1, {{"jqp@example.com", "John Q. Public", false}}},
	{"\"Joe \\\"Q\\\" Public\" <jqp@example.com>",
	 NULL, 1, {{"jqp@example.com", "Joe \"Q\" Public", false}}},
	{"J\xc3\xbcrgen <j@example.com>", NULL, 1, {{"j@example.com", "J\xc3\xbcrgen", false}}},
	{"\xff\xfe <a@x.example>", NULL, 1, {{"a@x.example", "\xff\xfe", false}}},
	{"[x] <a@x.example>", NULL, 1, {{"a@x.example", "[x]", false}}},
	{"\"\" <a@x.example>", NULL, 1, {{"a@x.example", NULL, false}}},
	/* folding */
	{"Alice\r\n <alice@example.com>", NULL, 1, {{A, "Alice", false}}},
	{"Alice\n\t<alice@example.com>", NULL, 1, {{A, "Alice", false}}},
	{"\"Alice\r\n Example\" <alice@example.com>", NULL, 1, {{A, "Alice Example", false}}},
	{"Alice <alice@example.com>\r\n", NULL, 1, {{A, "Alice", false}}},
	{"Alice <alice@\r\n example.com>", NULL, 1, {{A, "Alice", false}}},
	/* obsolete and unusual addr-specs */
	{"alice @ example.com", NULL, 1, {{A, NULL, false}}},
	{"alice(x)@(y)example.com", NULL, 1, {{A, NULL, false}}},
	{"alice@example . com", NULL, 1, {{A, NULL, false}}},
	{"a.b.c@example.com", NULL, 1, {{"a.b.c@example.com", NULL, false}}},
	{"\"a b\"@example.com", NULL, 1, {{"\"a b\"@example.com", NULL, false}}},
	{"\"a\".\"b\"@example.com", NULL, 1, {{"a.b@example.com", NULL, false}}},
	{"\"alice\"@example.com", NULL, 1, {{A, NULL, false}}},
	{"a@[192.0.2.1]", NULL, 1, {{"a@[192.0.2.1]", NULL, false}}},
	{"<@a.example:alice@example.com>", NULL, 1, {{A, NULL, false}}},
	{"Alice <@a.example,@b.example:alice@example.com>", NULL, 1, {{A, "Alice", false}}},
	{"Alice <\"bob@evil.com\"@example.com>",
	 NULL, 1, {{"\"bob@evil.com\"@example.com", "Alice", false}}},
	/* lists and groups */
	{"a@x.example, b@y.example",
	 NULL, 2, {{"a@x.example", NULL, false}, {"b@y.example", NULL, false}}},
	{"Alice <alice@example.com>, \"Bob\" <bob@example.com>",
	 NULL, 2, {{A, "Alice", false}, {"bob@example.com", "Bob", false}}},
	{"a@x.example,,b@y.example,",
	 NULL, 2, {{"a@x.example", NULL, false}, {"b@y.example", NULL, false}}},
	{"undisclosed-recipients:;", NULL, 0, {{NULL, NULL, false}}},
	{"undisclosed-recipients: ; (none)", NULL, 0, {{NULL, NULL, false}}},
	{"g: a@x.example, b@y.example;",
	 NULL, 2, {{"a@x.example", NULL, false}, {"b@y.example", NULL, false}}},
	{"\"The Group\": Alice <alice@example.com>;, c@z.example",
	 NULL, 2, {{A, "Alice", false}, {"c@z.example", NULL, false}}},
	{"g: a@x.example", NULL, 1, {{"a@x.example", NULL, false}}},
	/* display names that hide another address */
	{"\"bob@evil.com\" <alice@example.com>", NULL, 1, {{A, "bob@evil.com", true}}},
	{"bob@evil.com <alice@example.com>", NULL, 1, {{A, "bob@evil.com", true}}},
	{"\"Bob <bob@evil.com>\" <alice@example.com>", NULL, 1, {{A, "Bob <bob@evil.com>", true}}},
	{"'bob@evil.com' <alice@example.com>", NULL, 1, {{A, "'bob@evil.com'", true}}},
	{"\"bob@[192.0.2.1]\" <alice@example.com>", NULL, 1, {{A, "bob@[192.0.2.1]", true}}},
	{"\"Alice alice@example.com.evil.net\" <alice@example.com>",
	 NULL, 1, {{A, "Alice alice@example.com.evil.net", true}}},
	{"\"bob\xe2\x80\x8b@evil.com\" <alice@example.com>",
	 NULL, 1, {{A, "bob\xe2\x80\x8b@evil.com", true}}},
	{"\"bob@evil\xe2\x80\x8b.com\" <alice@example.com>",
	 NULL, 1, {{A, "bob@evil\xe2\x80\x8b.com", true}}},
	{"\"\xe7\x94\xa8@evil.com\" <alice@example.com>",
	 NULL, 1, {{A, "\xe7\x94\xa8@evil.com", true}}},
	{"\"Alice\xe2\x80\x94\x61lice@example.com\" <alice@example.com>",
	 NULL, 1, {{A, "Alice\xe2\x80\x94\x61lice@example.com", false}}},
	{"alice@example.com <alice@example.com>", NULL, 1, {{A, A, false}}},
	{"\"Alice@Example.COM\" <alice@example.com>", NULL, 1, {{A, "Alice@Example.COM", false}}},
	{"'alice@example.com' <alice@example.com>", NULL, 1, {{A, "'alice@example.com'", false}}},
	{"\"Alice <alice@example.com>\" <alice@example.com>",
	 NULL, 1, {{A, "Alice <alice@example.com>", false}}},
	{"\"Alice at home\" <alice@example.com>", NULL, 1, {{A, "Alice at home", false}}},
	{"\"x@localhost\" <alice@example.com>", NULL, 1, {{A, "x@localhost", false}}},
	{"alice@example.com (bob@evil.com)", NULL, 1, {{A, NULL, true}}},
	{"Alice (bob@evil.com) <alice@example.com>", NULL, 1, {{A, "Alice", true}}},
	{"Alice <alice@example.com> (=?utf-8?Q?bob=40evil.com?=)", NULL, 1, {{A, "Alice", true}}},
	{"Alice <alice@example.com> (Alice Example, alice@example.com)",
	 NULL, 1, {{A, "Alice", false}}},
	{"=?utf-8?B?Ym9iQGV2aWwuY29t?= <alice@example.com>", NULL, 1, {{A, "bob@evil.com", true}}},
	{"=?utf-8?Q?bob=40evil.com?= <alice@example.com>", NULL, 1, {{A, "bob@evil.com", true}}},
	{"=?UTF-8?q?bob=40evil=2Ecom?= <alice@example.com>", NULL, 1, {{A, "bob@evil.com", true}}},
	{"\"=?utf-8?Q?bob=40evil.com?=\" <alice@example.com>",
	 NULL, 1, {{A, "bob@evil.com", true}}},
	{"Bob =?utf-8?B?PHhAeT4=?= <alice@example.com>", NULL, 1, {{A, "Bob <x@y>", true}}},
	{"=?utf-8?Q?Bob_=3Cx=40y=3E?= <alice@example.com>", NULL, 1, {{A, "Bob <x@y>", true}}},
	{"\"=?utf-8?Q?=3Cbob?= =?utf-8?Q?=40evil=3E?=\" <alice@example.com>",
	 NULL, 1, {{A, "<bob@evil>", true}}},
	{"=?utf-8?Q?Alice=0D=0ABcc=3A_x?= <alice@example.com>",
	 NULL, 1, {{A, "Alice??Bcc: x", true}}},
	/* ':' (not allowed in an encoded word of a phrase) makes a group */
	{"=?utf-8?Q?Alice=0D=0ABcc:_x?= <alice@example.com>", NULL, 1, {{A, "_x?=", false}}},
	{"=?utf-8?B?QWxpY2UAeA==?= <alice@example.com>", NULL, 1, {{A, "Alice?x", true}}},
	{"=?utf-8?Q?alice=40example.com?= <alice@example.com>", NULL, 1, {{A, A, false}}},
	{"=?utf-8?Q?Alice_=3CALICE=40example.com=3E?= <alice@example.com>",
	 NULL, 1, {{A, "Alice <ALICE@example.com>", true}}},
	/* RFC 2047 decoding that is not hiding anything */
	{"=?iso-8859-1?Q?J=FCrgen?= <j@example.com>",
	 NULL, 1, {{"j@example.com", "J\xc3\xbcrgen", false}}},
	{"=?ISO-8859-1?B?SvxyZ2Vu?= <j@example.com>",
	 NULL, 1, {{"j@example.com", "J\xc3\xbcrgen", false}}},
	{"=?utf-8?B?SsO8cmdlbg==?= <j@example.com>",
	 NULL, 1, {{"j@example.com", "J\xc3\xbcrgen", false}}},
	{"=?utf-8?B?SsO8cmdlbg?= <j@example.com>",
	 NULL, 1, {{"j@example.com", "J\xc3\xbcrgen", false}}},
	{"=?utf-8?Q?J=C3=BCrgen?= =?utf-8?Q?_M=C3=BCller?= <j@example.com>",
	 NULL, 1, {{"j@example.com", "J\xc3\xbcrgen M\xc3\xbcller", false}}},
	{"=?us-ascii?Q?Alice?= Example <a@example.com>",
	 NULL, 1, {{"a@example.com", "Alice Example", false}}},
	{"=?UTF-8*en?Q?Alice?= <a@example.com>", NULL, 1, {{"a@example.com", "Alice", false}}},
	{"=?koi8-r?B?4uXy?= <a@example.com>",
	 NULL, 1, {{"a@example.com", "=?koi8-r?B?4uXy?=", false}}},
	{"=?utf-8?B?inv@lid?= <a@example.com>",
	 NULL, 1, {{"a@example.com", "=?utf-8?B?inv@lid?=", false}}},
	{"=?utf-8?Q?bad=ZZ?= <a@example.com>",
	 NULL, 1, {{"a@example.com", "=?utf-8?Q?bad=ZZ?=", false}}},
	/* encoded words that decode to nothing */
	{"=?utf-8?B?t?= <a@example.com>", NULL, 1, {{"a@example.com", "", false}}},
	{"x =?utf-8?B?\?= <a@example.com>", NULL, 1, {{"a@example.com", "x ", false}}},
	{"=?utf-8?X?abc?= <a@example.com>", NULL, 1, {{"a@example.com", "=?utf-8?X?abc?=", false}}},
	{"=?utf-8?Q?abc <a@example.com>", NULL, 1, {{"a@example.com", "=?utf-8?Q?abc", false}}},
	/* errors */
	{"Alice <alice@example.com> <bob@evil.com>", "text after address", 0, {{0}}},
	{"", "no mailbox", 0, {{0}}},
	{"   ", "no mailbox", 0, {{0}}},
	{"\r\n", "no mailbox", 0, {{0}}},
	{",", "no mailbox", 0, {{0}}},
	{"(only a comment)", "no mailbox", 0, {{0}}},
	{"alice", "no @", 0, {{0}}},
	{"Alice <alice>", "no @", 0, {{0}}},
	{"Alice <>", "empty address", 0, {{0}}},
	{"@example.com", "empty local part", 0, {{0}}},
	{"alice@", "missing domain", 0, {{0}}},
	{"a@b..c", "empty label", 0, {{0}}},
	{"a@x.example@y.example", "more than one @", 0, {{0}}},
	{"\"Alice <alice@example.com>", "unbalanced quotes", 0, {{0}}},
	{"Alice (x <alice@example.com>", "unbalanced parentheses", 0, {{0}}},
	{"Alice ((x) <alice@example.com>", "unbalanced parentheses", 0, {{0}}},
	{"Alice) <alice@example.com>", "unbalanced parentheses", 0, {{0}}},
	{"Alice <alice@example.com", "unbalanced angle brackets", 0, {{0}}},
	{"Alice alice@example.com>", "unbalanced angle brackets", 0, {{0}}},
	{"Alice <<alice@example.com>>", "unbalanced angle brackets", 0, {{0}}},
	{"Alice <a<b@x.example>", "unbalanced angle brackets", 0, {{0}}},
	{"a@[192.0.2.1", "unbalanced square brackets", 0, {{0}}},
	{"a@192.0.2.1]", "unbalanced square brackets", 0, {{0}}},
	{"a@x.example \\", "backslash", 0, {{0}}},
	{"Alice <@x.example>", "invalid route", 0, {{0}}},
	{"Alice\r\nBcc: x@y.example", "line break", 0, {{0}}},
	{"Alice\rx <a@x.example>", "line break", 0, {{0}}},
	{"Alice\x01 <a@x.example>", "control character", 0, {{0}}},
	{"Alice\x1b[31m <a@x.example>", "control character", 0, {{0}}},
	{"Doe, John <john@x.example>", "no @", 0, {{0}}},
	{"a@x.example b@y.example", "more than one @", 0, {{0}}},
	{"\"a\" \"b\"@x.example", "without '.'", 0, {{0}}},
	{"g: h: a@x.example;;", "group inside a group", 0, {{0}}},
	{"a@x.example;", "outside a group", 0, {{0}}},
	{"a@x.example: b@y.example;", "invalid group name", 0, {{0}}},
	{": a@x.example;", "invalid group name", 0, {{0}}},
	{"g: a@x.example; b@y.example", "text after address", 0, {{0}}},
	{"a@x.example (unclosed", "unbalanced parentheses", 0, {{0}}},
	{"<a@[192.0.2.999]>", "invalid address literal", 0, {{0}}},
	{"<\"a%b\"@x.example", "unbalanced angle brackets", 0, {{0}}},
};
/* clang-format on */

/* check_case - parse one value and compare with the expectations */
static void check_case(const struct mb_case *c)
{
	struct mailbox_list l;
	const char *err = NULL;
	int ret = mailbox_list_parse(c->in, &l, &err);

	if (c->err != NULL) {
		test_assert(ret == -1);
		test_assert(err != NULL && strstr(err, c->err) != NULL);
		if (ret == 0 || strstr(err, c->err) == NULL)
			fprintf(stderr, "  got %s\n", ret == 0 ? "success" : err);
		test_assert(l.n == 0 && l.v == NULL);
		return;
	}
	test_assert(ret == 0);
	if (ret != 0) {
		fprintf(stderr, "  error: %s\n", err);
		return;
	}
	test_assert(l.n == c->n);
	for (size_t i = 0; i < l.n && i < c->n && i < 3; i++) {
		const struct mailbox *m = &l.v[i];

		test_assert_str(m->addr, c->m[i].addr);
		test_assert(m->domain != NULL && strcmp(m->domain, strrchr(m->addr, '@') + 1) == 0);
		if (c->m[i].display != NULL)
			test_assert_str(m->display, c->m[i].display);
		else
			test_assert(m->display == NULL && m->display_raw == NULL);
		test_assert(mailbox_display_hides_address(m) == c->m[i].hides);
	}
	mailbox_list_free(&l);
	test_assert(l.n == 0 && l.v == NULL);
}

static void test_table(void)
{
	char name[160];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "mailbox_list_parse %s", cases[i].in);
		for (char *p = name; *p != '\0'; p++)
			if (*p == '\r' || *p == '\n' || (unsigned char)*p < 0x20)
				*p = '.';
		test_begin(name);
		check_case(&cases[i]);
		test_end();
	}
}

static void test_fields(void)
{
	struct mailbox_list l;
	const char *err;

	test_begin("comment, raw display, domain and tricks fields");
	test_assert(mailbox_list_parse("alice(x)@(y)Example.COM (z)", &l, &err) == 0);
	test_assert(l.n == 1);
	if (l.n == 1) {
		test_assert_str(l.v[0].comment, "x y z");
		test_assert_str(l.v[0].domain, "example.com");
		test_assert(l.v[0].tricks == 0);
	}
	mailbox_list_free(&l);
	test_assert(mailbox_list_parse("=?utf-8?Q?A?= (c (nested) \\) x) <a%b@[192.0.2.1]>", &l,
	                               &err) == 0);
	test_assert(l.n == 1);
	if (l.n == 1) {
		test_assert_str(l.v[0].display_raw, "=?utf-8?Q?A?=");
		test_assert_str(l.v[0].display, "A");
		test_assert_str(l.v[0].comment, "c (nested) ) x");
		test_assert_str(l.v[0].domain, "[192.0.2.1]");
		test_assert(l.v[0].tricks == (ADDR_PERCENT | ADDR_IP_LITERAL));
	}
	mailbox_list_free(&l);
	test_assert(mailbox_list_parse("<@a.example:b@c.example>", &l, &err) == 0);
	test_assert(l.n == 1 && (l.v[0].tricks & ADDR_SOURCE_ROUTE) != 0);
	mailbox_list_free(&l);
	test_assert(mailbox_list_parse("a@x.example", &l, &err) == 0);
	test_assert(l.n == 1 && l.v[0].comment == NULL && l.v[0].display_raw == NULL);
	mailbox_list_free(&l);
	test_end();
}

static void test_hides_by_hand(void)
{
	struct mailbox m = {0};

	test_begin("mailbox_display_hides_address on a struct built by hand");
	m.addr = A;
	test_assert(!mailbox_display_hides_address(&m));
	m.display = "bob@evil.com";
	test_assert(mailbox_display_hides_address(&m));
	m.display = "Alice";
	test_assert(!mailbox_display_hides_address(&m));
	m.display = NULL;
	m.comment = "=?utf-8?Q?bob=40evil.com?=";
	test_assert(mailbox_display_hides_address(&m));
	m.display = "Alice";
	test_assert(mailbox_display_hides_address(&m));
	m.comment = "Alice's work address";
	test_assert(!mailbox_display_hides_address(&m));
	test_end();
}

static void test_long(void)
{
	size_t big = MAILBOX_VALUE_MAX + 100;
	char *s = xmalloc(big + 1);
	struct mailbox_list l;
	const char *err = NULL;
	size_t n = 0;

	test_begin("over-long and very long values");
	memset(s, 'a', big);
	s[big] = '\0';
	test_assert(mailbox_list_parse(s, &l, &err) == -1 && strstr(err, "64 KB") != NULL);
	/* exactly the limit: many mailboxes, one long display name */
	for (size_t i = 0; i + 13 <= MAILBOX_VALUE_MAX; i += 13, n++)
		memcpy(s + i, "a@x.example, ", 13);
	s[n * 13] = '\0';
	test_assert(mailbox_list_parse(s, &l, &err) == 0 && l.n == n);
	mailbox_list_free(&l);
	memset(s, 'x', MAILBOX_VALUE_MAX);
	memcpy(s + MAILBOX_VALUE_MAX - 14, " <a@x.example>", 14);
	s[MAILBOX_VALUE_MAX] = '\0';
	test_assert(mailbox_list_parse(s, &l, &err) == 0 && l.n == 1);
	mailbox_list_free(&l);
	/* deep comment nesting is counted, not recursed */
	memset(s, '(', 30000);
	memset(s + 30000, ')', 30000);
	strcpy(s + 60000, " a@x.example");
	test_assert(mailbox_list_parse(s, &l, &err) == 0 && l.n == 1);
	mailbox_list_free(&l);
	s[100] = '\0';
	test_assert(mailbox_list_parse(s, &l, &err) == -1);
	free(s);
	test_end();
}

static void test_all_octets(void)
{
	char s[64];
	struct mailbox_list l;
	const char *err;
	int ok = 0;

	test_begin("every octet in a display name and a local part, no crash");
	for (int c = 1; c < 256; c++) {
		snprintf(s, sizeof(s), "A%cB <a%cb@x.example>", c, c);
		if (mailbox_list_parse(s, &l, &err) == 0) {
			ok++;
			test_assert(l.n >= 1);
			(void)mailbox_display_hides_address(&l.v[0]);
			mailbox_list_free(&l);
		}
	}
	/* atext (19 specials, 62 letters and digits), '.' (a phrase may hold
	 * it, obs-phrase) and the 128 high octets (RFC 6532) */
	test_assert(ok == 19 + 62 + 1 + 128);
	test_end();
}

int main(void)
{
	test_table();
	test_fields();
	test_hides_by_hand();
	test_long();
	test_all_octets();
	return test_exit_status();
}
