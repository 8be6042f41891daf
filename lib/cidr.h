/* cidr - IPv4 and IPv6 networks in CIDR notation */
#ifndef WEIR_CIDR_H
#define WEIR_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

/* cidr_parse - "192.0.2.0/24", "2001:db8::/32", or one address (a full
 * prefix). Host bits set below the prefix are an error, as they usually
 * mean a typing mistake. -1 with *err_r (static). */
int cidr_parse(const char *s, struct cidr *c, const char **err_r);
/* cidr_match_sockaddr - true if the address in sa is inside c; an
 * IPv4-mapped IPv6 address (::ffff:192.0.2.1) matches IPv4 networks */
bool cidr_match_sockaddr(const struct cidr *c, const struct sockaddr *sa);
/* cidr_match_text - the same for an address in text form */
bool cidr_match_text(const struct cidr *c, const char *ip);
/* cidr_list_match_text - true if ip is inside any of the n networks */
bool cidr_list_match_text(const struct cidr *v, size_t n, const char *ip);

#endif
