/* test-address - RFC 5321 paths: syntax, limits, canonical form, relay
 * tricks; domain normalization and lists; plus stripping; globs */
#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/address.h"
#include "tests/testlib.h"

#define SR  ADDR_SOURCE_ROUTE
#define PCT ADDR_PERCENT
#define BNG ADDR_BANG
#define QAT ADDR_QUOTED_AT
#define LIT ADDR_IP_LITERAL

/* A parse case: err == NULL means success with the fields given; else the
 * error must contain err. local == NULL and domain == NULL are checked. */
struct parse_case {
	const char *in;
	const char *err;
	const char *canonical;
	const char *local;
	const char *domain;
	unsigned tricks;
};

/* clang-format off */
static const struct parse_case parse_cases[] = {
	/* ordinary forms */
	{"<alice@example.com>", NULL, "alice@example.com", "alice", "example.com", 0},
	{"alice@example.com", NULL, "alice@example.com", "alice", "example.com", 0},
	{"  <alice@example.com>\t", NULL, "alice@example.com", "alice", "example.com", 0},
	{"< alice@example.com >", NULL, "alice@example.com", "alice", "example.com", 0},
	{"<Alice@EXAMPLE.COM.>", NULL, "alice@example.com", "Alice", "example.com", 0},
	{"<USER+Tag@Example.Com>", NULL, "user+tag@example.com", "USER+Tag", "example.com", 0},
	{"<postmaster>", NULL, "postmaster", "postmaster", NULL, 0},
	{"<a@b.c.>", NULL, "a@b.c", "a", "b.c", 0},
	{"<a@x_y.example>", NULL, "a@x_y.example", "a", "x_y.example", 0},
	{"<a@-x.example>", NULL, "a@-x.example", "a", "-x.example", 0},
	{"<j\xc3\xbcrgen@B\xc3\xbc" "cher.example>",
	 NULL, "j\xc3\xbcrgen@b\xc3\xbc" "cher.example", "j\xc3\xbcrgen",
	 "b\xc3\xbc" "cher.example", 0},
	/* lenient local parts (Postfix accepts them) */
	{"<a..b@example.com>", NULL, "a..b@example.com", "a..b", "example.com", 0},
	{"<foo.@docomo.ne.jp>", NULL, "foo.@docomo.ne.jp", "foo.", "docomo.ne.jp", 0},
	/* quoting */
	{"<\"alice\"@example.com>", NULL, "alice@example.com", "alice", "example.com", 0},
	{"<\"a b\"@Example.com>", NULL, "\"a b\"@example.com", "a b", "example.com", 0},
	{"<\"a\\\"b\"@example.com>", NULL, "\"a\\\"b\"@example.com", "a\"b", "example.com", 0},
	{"<\"a\\\\b\"@x.example>", NULL, "\"a\\\\b\"@x.example", "a\\b", "x.example", 0},
	{"<\"\\a\\l\\i\\c\\e\"@x.example>", NULL, "alice@x.example", "alice", "x.example", 0},
	{"<\"\"@example.com>", NULL, "\"\"@example.com", "", "example.com", 0},
	{"<\"A.B\"@X.example>", NULL, "a.b@x.example", "A.B", "x.example", 0},
	/* null path */
	{"<>", NULL, "", NULL, NULL, 0},
	{"< >", NULL, "", NULL, NULL, 0},
	/* tricks */
	{"<@a.example,@b.example:user@c.example>", NULL, "user@c.example", "user", "c.example", SR},
	{"<@a.example:user@c.example>", NULL, "user@c.example", "user", "c.example", SR},
	{"@a.example:user@c.example", NULL, "user@c.example", "user", "c.example", SR},
	{"<@[192.0.2.1]:user@c.example>", NULL, "user@c.example", "user", "c.example", SR},
	{"<@[IPv6:2001:db8::1],@b.example:u@c.example>", NULL, "u@c.example", "u", "c.example", SR},
	{"<@a.example:\"x@y\"@c.example>", NULL, "\"x@y\"@c.example", "x@y", "c.example", SR | QAT},
	{"<user%other.example@example.com>",
	 NULL, "user%other.example@example.com", "user%other.example", "example.com", PCT},
	{"<other.example!user@example.com>",
	 NULL, "other.example!user@example.com", "other.example!user", "example.com", BNG},
	{"<a%b!c@example.com>", NULL, "a%b!c@example.com", "a%b!c", "example.com", PCT | BNG},
	{"<\"user@other.example\"@example.com>",
	 NULL, "\"user@other.example\"@example.com", "user@other.example", "example.com", QAT},
	{"<\"user\\@other.example\"@example.com>",
	 NULL, "\"user@other.example\"@example.com", "user@other.example", "example.com", QAT},
	{"<\"user%other\"@example.com>",
	 NULL, "user%other@example.com", "user%other", "example.com", PCT},
	{"<\"a!b\"@example.com>", NULL, "a!b@example.com", "a!b", "example.com", BNG},
	{"<user@[192.0.2.1]>", NULL, "user@[192.0.2.1]", "user", "[192.0.2.1]", LIT},
	{"<user@[IPv6:2001:DB8::1]>",
	 NULL, "user@[ipv6:2001:db8::1]", "user", "[ipv6:2001:db8::1]", LIT},
	{"<a@[IPv6:::1]>", NULL, "a@[ipv6:::1]", "a", "[ipv6:::1]", LIT},
	{"<user@[x-tag:Stuff]>", NULL, "user@[x-tag:stuff]", "user", "[x-tag:stuff]", LIT},
	{"<user%x@[127.0.0.1]>", NULL, "user%x@[127.0.0.1]", "user%x", "[127.0.0.1]", PCT | LIT},
	/* syntax errors */
	{"", "empty address", NULL, NULL, NULL, 0},
	{"   ", "empty address", NULL, NULL, NULL, 0},
	{"<a@b..c>", "empty label", NULL, NULL, NULL, 0},
	{"<a@.b>", "empty label", NULL, NULL, NULL, 0},
	{"<a@b.c..>", "empty label", NULL, NULL, NULL, 0},
	{"<a@.>", "empty label", NULL, NULL, NULL, 0},
	{"<a@>", "missing domain", NULL, NULL, NULL, 0},
	{"a@", "missing domain", NULL, NULL, NULL, 0},
	{"<a@b@c>", "more than one @", NULL, NULL, NULL, 0},
	{"<alice@example.com", "angle brackets", NULL, NULL, NULL, 0},
	{"alice@example.com>", "angle brackets", NULL, NULL, NULL, 0},
	{"<<alice@example.com>>", "angle brackets", NULL, NULL, NULL, 0},
	{"<", "angle brackets", NULL, NULL, NULL, 0},
	{">", "angle brackets", NULL, NULL, NULL, 0},
	{"<a@b> x", "angle brackets", NULL, NULL, NULL, 0},
	{"<\"alice@example.com>", "unbalanced quotes", NULL, NULL, NULL, 0},
	{"<\"a\\\"@example.com>", "unbalanced quotes", NULL, NULL, NULL, 0},
	{"<a\"b\"@example.com>", "quoted string must be the whole", NULL, NULL, NULL, 0},
	{"<\"a\"b@example.com>", "text after quoted", NULL, NULL, NULL, 0},
	{"<\"a\".b@example.com>", "text after quoted", NULL, NULL, NULL, 0},
	{"<a\tb@example.com>", "control character", NULL, NULL, NULL, 0},
	{"<a\x01@example.com>", "control character", NULL, NULL, NULL, 0},
	{"<\"a\x7f\"@example.com>", "control character", NULL, NULL, NULL, 0},
	{"<a@exa\x1bmple.com>", "control character", NULL, NULL, NULL, 0},
	{"<a b@example.com>", "space", NULL, NULL, NULL, 0},
	{"<a@exa mple.com>", "space", NULL, NULL, NULL, 0},
	{"<a@exa%mple.com>", "invalid character in domain", NULL, NULL, NULL, 0},
	{"<a@exa!mple.com>", "invalid character in domain", NULL, NULL, NULL, 0},
	{"<a(b)@x.example>", "invalid character in local part", NULL, NULL, NULL, 0},
	{"<a\\b@x.example>", "invalid character in local part", NULL, NULL, NULL, 0},
	{"<a,b@x.example>", "invalid character in local part", NULL, NULL, NULL, 0},
	{"<@x.example>", "source route without ':'", NULL, NULL, NULL, 0},
	{"<@a.example:>", "without a mailbox", NULL, NULL, NULL, 0},
	{"<@:u@x.example>", "missing domain", NULL, NULL, NULL, 0},
	{"<@a,b:u@x.example>", "invalid source route", NULL, NULL, NULL, 0},
	{"<@a..b:u@x.example>", "empty label", NULL, NULL, NULL, 0},
	{"<@a:@b:u@x.example>", "empty local part", NULL, NULL, NULL, 0},
	{"<user@[192.0.2.256]>", "invalid address literal", NULL, NULL, NULL, 0},
	{"<user@[192.0.2]>", "invalid address literal", NULL, NULL, NULL, 0},
	{"<user@[IPv6:1::2::3]>", "invalid address literal", NULL, NULL, NULL, 0},
	{"<user@[]>", "invalid address literal", NULL, NULL, NULL, 0},
	{"<user@[:x]>", "invalid address literal", NULL, NULL, NULL, 0},
	{"<user@[192.0.2.1>", "square brackets", NULL, NULL, NULL, 0},
	{"<user@192.0.2.1]>", "square brackets", NULL, NULL, NULL, 0},
	{"<user@[1.2.3.4]x>", "square brackets", NULL, NULL, NULL, 0},
	{"<user@[[1.2.3.4]>", "square brackets", NULL, NULL, NULL, 0},
	{"<user@x.example.[1.2.3.4]>", "square brackets", NULL, NULL, NULL, 0},
};
/* clang-format on */

/* check_parse - run one parse case */
static void check_parse(const struct parse_case *c)
{
	struct address a;
	const char *err = NULL;
	int ret = address_parse(c->in, &a, &err);

	if (c->err != NULL) {
		test_assert(ret == -1);
		test_assert(err != NULL && strstr(err, c->err) != NULL);
		if (err != NULL && strstr(err, c->err) == NULL)
			fprintf(stderr, "  input \"%s\": error \"%s\"\n", c->in, err);
		test_assert(a.local == NULL && a.domain == NULL && a.canonical == NULL);
		return;
	}
	test_assert(ret == 0);
	if (ret != 0) {
		fprintf(stderr, "  input \"%s\": error \"%s\"\n", c->in, err);
		return;
	}
	test_assert_str(a.canonical, c->canonical);
	test_assert(a.null == (c->local == NULL));
	if (c->local != NULL)
		test_assert_str(a.local, c->local);
	else
		test_assert(a.local == NULL);
	if (c->domain != NULL)
		test_assert_str(a.domain, c->domain);
	else
		test_assert(a.domain == NULL);
	test_assert(a.tricks == c->tricks);
	if (a.tricks != c->tricks)
		fprintf(stderr, "  input \"%s\": tricks %u, want %u\n", c->in, a.tricks, c->tricks);
	address_free(&a);
	test_assert(a.canonical == NULL);
}

static void test_parse_table(void)
{
	char name[128];

	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		snprintf(name, sizeof(name), "address_parse %s", parse_cases[i].in);
		test_begin(name);
		check_parse(&parse_cases[i]);
		test_end();
	}
}

/* repeat - n copies of c in new memory */
static char *repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* parse_ok - address_parse of the formatted path succeeds */
static bool parse_ok(const char *path)
{
	struct address a;
	const char *err;
	int ret = address_parse(path, &a, &err);

	address_free(&a);
	return ret == 0;
}

static void test_limits(void)
{
	char *l64 = repeat('l', 64), *l65 = repeat('l', 65), *lab63 = repeat('d', 63);
	char *lab64 = repeat('d', 64), *s, *big = repeat('a', 100000);
	struct address a;
	const char *err = NULL;

	test_begin("address_parse limits (RFC 5321 4.5.3.1)");
	s = xasprintf("<%s@example.com>", l64);
	test_assert(parse_ok(s));
	free(s);
	s = xasprintf("<%s@example.com>", l65);
	test_assert(!parse_ok(s));
	test_assert(address_parse(s, &a, &err) == -1 && strstr(err, "64") != NULL);
	free(s);
	/* 62 octets plus the quotes: 64 as written */
	s = xasprintf("<\"%.62s\"@example.com>", l64);
	test_assert(parse_ok(s));
	free(s);
	s = xasprintf("<\"%.63s\"@example.com>", l64);
	test_assert(!parse_ok(s));
	free(s);
	s = xasprintf("<a@%s.example>", lab63);
	test_assert(parse_ok(s));
	free(s);
	s = xasprintf("<a@%s.example>", lab64);
	test_assert(address_parse(s, &a, &err) == -1 && strstr(err, "label") != NULL);
	free(s);
	/* path: 64 + 1 + 189 = 254 inside the brackets, 256 with them */
	s = xasprintf("<%s@%s.%s.%.53s.example>", l64, lab63, lab63, lab63);
	test_assert(strlen(s) == 256);
	test_assert(parse_ok(s));
	test_assert(parse_ok(s + 1) == false); /* unbalanced */
	free(s);
	s = xasprintf("<%s@%s.%s.%.54s.example>", l64, lab63, lab63, lab63);
	test_assert(address_parse(s, &a, &err) == -1 && strstr(err, "256") != NULL);
	free(s);
	/* the same without brackets counts them too */
	s = xasprintf("%s@%s.%s.%.54s.example", l64, lab63, lab63, lab63);
	test_assert(!parse_ok(s));
	free(s);
	big[0] = '<';
	test_assert(address_parse(big, &a, &err) == -1 && strstr(err, "256") != NULL);
	test_assert(a.canonical == NULL);
	free(l64);
	free(l65);
	free(lab63);
	free(lab64);
	free(big);
	test_end();
}

struct norm_case {
	const char *in, *out, *err;
};

/* clang-format off */
static const struct norm_case norm_cases[] = {
	{"Example.COM.", "example.com", NULL},
	{"example.com", "example.com", NULL},
	{"a", "a", NULL},
	{"a.", "a", NULL},
	{"xn--bcher-kva.example", "xn--bcher-kva.example", NULL},
	{"B\xc3\xbc" "cher.Example", "b\xc3\xbc" "cher.example", NULL},
	{"a_b.example", "a_b.example", NULL},
	{"", NULL, "empty domain"},
	{".", NULL, "empty label"},
	{"..", NULL, "empty label"},
	{"a..b", NULL, "empty label"},
	{"a.b..", NULL, "empty label"},
	{".a", NULL, "empty label"},
	{"a b", NULL, "space"},
	{"[1.2.3.4]", NULL, "invalid character"},
	{"a@b", NULL, "invalid character"},
	{"a\nb", NULL, "control"},
};
/* clang-format on */

static void test_domain_normalize(void)
{
	char *lab63 = repeat('d', 63), *lab64 = repeat('d', 64), *s, *r;
	const char *err;

	test_begin("domain_normalize");
	for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
		const struct norm_case *c = &norm_cases[i];

		err = NULL;
		r = domain_normalize(c->in, &err);
		if (c->out != NULL) {
			test_assert_str(r, c->out);
		} else {
			test_assert(r == NULL);
			test_assert(err != NULL && strstr(err, c->err) != NULL);
			if (err == NULL || strstr(err, c->err) == NULL)
				fprintf(stderr, "  \"%s\": %s\n", c->in, err ? err : "(no error)");
		}
		free(r);
	}
	/* 4 * 63 + 3 = 255 octets: the longest name; one more is too long */
	s = xasprintf("%s.%s.%s.%s", lab63, lab63, lab63, lab63);
	r = domain_normalize(s, &err);
	test_assert(r != NULL && strlen(r) == 255);
	free(r);
	free(s);
	s = xasprintf("%s.%s.%s.%s.", lab63, lab63, lab63, lab63);
	r = domain_normalize(s, &err);
	test_assert(r != NULL && strlen(r) == 255);
	free(r);
	free(s);
	s = xasprintf("%s.%s.%s.%s.a", lab63, lab63, lab63, lab63);
	test_assert(domain_normalize(s, &err) == NULL && strstr(err, "255") != NULL);
	free(s);
	s = xasprintf("%s.example", lab64);
	test_assert(domain_normalize(s, &err) == NULL && strstr(err, "63") != NULL);
	free(s);
	free(lab63);
	free(lab64);
	test_end();
}

static void test_domain_in_list(void)
{
	char *entries[] = {"example.com", ".example.org", "[192.0.2.1]"};
	const size_t n = sizeof(entries) / sizeof(entries[0]);

	test_begin("domain_in_list");
	test_assert(domain_in_list("example.com", entries, n));
	test_assert(domain_in_list("EXAMPLE.com", entries, n));
	test_assert(!domain_in_list("a.example.com", entries, n));
	test_assert(!domain_in_list("xexample.com", entries, n));
	test_assert(!domain_in_list("example.com.evil", entries, n));
	test_assert(domain_in_list("example.org", entries, n));
	test_assert(domain_in_list("a.example.org", entries, n));
	test_assert(domain_in_list("b.a.Example.Org", entries, n));
	test_assert(!domain_in_list("badexample.org", entries, n));
	test_assert(!domain_in_list("example.org.evil.net", entries, n));
	test_assert(!domain_in_list("org", entries, n));
	test_assert(domain_in_list("[192.0.2.1]", entries, n));
	test_assert(!domain_in_list("192.0.2.1", entries, n));
	test_assert(!domain_in_list("", entries, n));
	test_assert(!domain_in_list(NULL, entries, n));
	test_assert(!domain_in_list("example.com", entries, 0));
	test_end();
}

struct plus_case {
	const char *in, *sep, *out;
};

/* clang-format off */
static const struct plus_case plus_cases[] = {
	{"alice+tag@example.com", "+", "alice@example.com"},
	{"alice+tag+more@example.com", "+", "alice@example.com"},
	{"alice@example.com", "+", "alice@example.com"},
	{"+tag@example.com", "+", "+tag@example.com"},
	{"alice+@example.com", "+", "alice@example.com"},
	{"alice+tag@example.com", "", "alice+tag@example.com"},
	{"alice+tag@example.com", NULL, "alice+tag@example.com"},
	{"alice-tag+x@example.com", "+-", "alice@example.com"},
	{"alice-tag@example.com", "+", "alice-tag@example.com"},
	{"alice+tag", "+", "alice"},
	{"\"a+b c\"@example.com", "+", "\"a+b c\"@example.com"},
	{"alice@ex+ample.com", "+", "alice@ex+ample.com"},
	{"", "+", ""},
};
/* clang-format on */

static void test_strip_plus(void)
{
	test_begin("address_strip_plus");
	for (size_t i = 0; i < sizeof(plus_cases) / sizeof(plus_cases[0]); i++) {
		char *r = address_strip_plus(plus_cases[i].in, plus_cases[i].sep);

		test_assert_str(r, plus_cases[i].out);
		free(r);
	}
	test_end();
}

struct glob_case {
	const char *pattern, *addr;
	bool match;
};

/* clang-format off */
static const struct glob_case glob_cases[] = {
	{"*-noreply@example.com", "app-noreply@example.com", true},
	{"*-noreply@example.com", "-noreply@example.com", true},
	{"*-noreply@example.com", "app-noreply@example.com.evil", false},
	{"*-noreply@example.com", "app-noreply@sub.example.com", false},
	{"app?@example.com", "app1@example.com", true},
	{"app?@example.com", "app12@example.com", false},
	{"app?@example.com", "app@example.com", false},
	{"A*@EXAMPLE.com", "alice@example.com", true},
	{"*@*.example.com", "a@b.example.com", true},
	{"*@*.example.com", "a@example.com", false},
	{"a*b*c", "aXbYc", true},
	{"a*b", "aXbYc", false},
	{"*", "", true},
	{"*", "anything@example.com", true},
	{"", "", true},
	{"", "a", false},
	{"a", "", false},
	{"**a**", "xay", true},
	{"alice@example.com", "alice@example.com", true},
	{"alice@example.com", "alice@example.co", false},
};
/* clang-format on */

static void test_glob(void)
{
	char *many_a = repeat('a', 20000);

	test_begin("address_glob");
	for (size_t i = 0; i < sizeof(glob_cases) / sizeof(glob_cases[0]); i++) {
		const struct glob_case *c = &glob_cases[i];

		test_assert(address_glob(c->pattern, c->addr) == c->match);
		if (address_glob(c->pattern, c->addr) != c->match)
			fprintf(stderr, "  \"%s\" ~ \"%s\"\n", c->pattern, c->addr);
	}
	/* backtracking stays polynomial */
	test_assert(!address_glob("*a*a*a*a*a*a*a*a*b", many_a));
	test_assert(address_glob("*a*a*a*a*a*a*a*a*a", many_a));
	free(many_a);
	test_end();
}

static void test_quote_local(void)
{
	char *r;

	test_begin("address_quote_local");
	test_assert_str(r = address_quote_local("alice"), "alice");
	free(r);
	test_assert_str(r = address_quote_local("a.b+c"), "a.b+c");
	free(r);
	test_assert_str(r = address_quote_local(""), "\"\"");
	free(r);
	test_assert_str(r = address_quote_local("a b"), "\"a b\"");
	free(r);
	test_assert_str(r = address_quote_local("a\"b\\c"), "\"a\\\"b\\\\c\"");
	free(r);
	test_assert_str(r = address_quote_local("x@y"), "\"x@y\"");
	free(r);
	test_end();
}

int main(void)
{
	test_parse_table();
	test_limits();
	test_domain_normalize();
	test_domain_in_list();
	test_strip_plus();
	test_glob();
	test_quote_local();
	return test_exit_status();
}
