/* test-cidr - CIDR parsing and matching, IPv4, IPv6, v4-mapped */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/cidr.h"
#include "tests/testlib.h"

static bool in(const char *net, const char *ip)
{
	struct cidr c;
	const char *err;

	return cidr_parse(net, &c, &err) == 0 && cidr_match_text(&c, ip);
}

int main(void)
{
	struct cidr c;
	const char *err;

	test_begin("parse");
	test_assert(cidr_parse("192.0.2.0/24", &c, &err) == 0 && c.prefix == 24);
	test_assert(cidr_parse("192.0.2.1", &c, &err) == 0 && c.prefix == 32);
	test_assert(cidr_parse("2001:db8::/32", &c, &err) == 0 && c.prefix == 32);
	test_assert(cidr_parse("::1", &c, &err) == 0 && c.prefix == 128);
	test_assert(cidr_parse("0.0.0.0/0", &c, &err) == 0);
	test_assert(cidr_parse("192.0.2.1/24", &c, &err) < 0); /* host bits */
	test_assert(cidr_parse("192.0.2.0/33", &c, &err) < 0);
	test_assert(cidr_parse("2001:db8::/129", &c, &err) < 0);
	test_assert(cidr_parse("192.0.2.0/", &c, &err) < 0);
	test_assert(cidr_parse("192.0.2.0/x", &c, &err) < 0);
	test_assert(cidr_parse("example.com", &c, &err) < 0);
	test_assert(cidr_parse("", &c, &err) < 0);
	test_assert(cidr_parse("/8", &c, &err) < 0);
	test_end();

	test_begin("match");
	test_assert(in("192.0.2.0/24", "192.0.2.255"));
	test_assert(!in("192.0.2.0/24", "192.0.3.0"));
	test_assert(in("10.0.0.0/8", "10.255.0.1"));
	test_assert(in("192.0.2.128/25", "192.0.2.200"));
	test_assert(!in("192.0.2.128/25", "192.0.2.127"));
	test_assert(in("0.0.0.0/0", "203.0.113.9"));
	test_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
	test_assert(!in("2001:db8::/32", "2001:db9::1"));
	test_assert(in("192.0.2.0/24", "::ffff:192.0.2.7")); /* v4-mapped */
	test_assert(!in("2001:db8::/32", "192.0.2.7"));
	test_assert(!in("192.0.2.0/24", "2001:db8::1"));
	test_assert(!in("192.0.2.0/24", "garbage"));
	struct sockaddr_in sin = {0};
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	test_assert(cidr_parse("127.0.0.0/8", &c, &err) == 0);
	test_assert(cidr_match_sockaddr(&c, (struct sockaddr *)&sin));
	test_assert(!cidr_match_sockaddr(&c, NULL));
	test_end();
	return test_exit_status();
}
