/* cidr - IPv4 and IPv6 networks in CIDR notation */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"

int cidr_parse(const char *s, struct cidr *c, const char **err_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max;

	memset(c, 0, sizeof(*c));
	if (hlen == 0 || hlen >= sizeof(host)) {
		*err_r = "not an IP address or network";
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		*err_r = "not an IP address or network";
		return -1;
	}
	c->prefix = max;
	if (slash != NULL) {
		char *end;
		unsigned long p;

		if (slash[1] < '0' || slash[1] > '9') {
			*err_r = "prefix length must be a number";
			return -1;
		}
		p = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || p > max) {
			*err_r = c->family == AF_INET ? "prefix length must be 0 to 32"
						      : "prefix length must be 0 to 128";
			return -1;
		}
		c->prefix = (unsigned)p;
	}
	for (unsigned bit = c->prefix; bit < max; bit++) {
		if (c->addr[bit / 8] & (0x80 >> (bit % 8))) {
			*err_r = "host bits are set below the prefix length";
			return -1;
		}
	}
	return 0;
}

/* match_bytes - addr (of c's family) inside c? */
static bool match_bytes(const struct cidr *c, const uint8_t *addr)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool cidr_match_sockaddr(const struct cidr *c, const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		return c->family == AF_INET && match_bytes(c, (const uint8_t *)&sin->sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a =
			((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (c->family == AF_INET6)
			return match_bytes(c, a);
		return memcmp(a, v4mapped, 12) == 0 && match_bytes(c, a + 12);
	}
	return false;
}

bool cidr_match_text(const struct cidr *c, const char *ip)
{
	uint8_t a[16];

	if (inet_pton(AF_INET, ip, a) == 1)
		return c->family == AF_INET && match_bytes(c, a);
	if (inet_pton(AF_INET6, ip, a) == 1) {
		if (c->family == AF_INET6)
			return match_bytes(c, a);
		return memcmp(a, v4mapped, 12) == 0 && match_bytes(c, a + 12);
	}
	return false;
}

bool cidr_list_match_text(const struct cidr *v, size_t n, const char *ip)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match_text(&v[i], ip))
			return true;
	return false;
}
