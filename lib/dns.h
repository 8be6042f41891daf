/* dns - thin asynchronous address lookups through libunbound and libevent
 *
 * Generic: knows nothing about mail. One struct dns per resolver
 * configuration; it is reference counted so that a daemon can replace it
 * on reload while lookups in flight finish against the old one. */
#ifndef WEIR_DNS_H
#define WEIR_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_query;

#define DNS_MAX_ADDRS 16

/* Called exactly once per lookup, unless it was cancelled: n addresses
 * (IPv4 first, port 0), or n == 0 and err says why. addrs is only valid
 * during the call. */
typedef void dns_addr_cb(void *ctx, const struct sockaddr_storage *addrs, size_t n,
			 const char *err);

/* dns_new - a resolver: servers is "system" (/etc/resolv.conf and
 * /etc/hosts) or a space separated list of IP[@PORT] to forward to.
 * Returns NULL with *err_r (static) on failure. One reference. */
struct dns *dns_new(struct event_base *base, const char *servers, long timeout_secs,
		    const char **err_r);
void dns_ref(struct dns *dns);
/* dns_unref - drop a reference; the context is freed with the last one
 * (each pending query holds one). NULL is ok. */
void dns_unref(struct dns *dns);

/* dns_lookup_addr - A and AAAA records of name. The callback is never
 * called from inside this function. Returns a handle for dns_cancel,
 * valid until the callback has run. */
struct dns_query *dns_lookup_addr(struct dns *dns, const char *name, dns_addr_cb *cb, void *ctx);
#define DNS_MAX_MX 32

/* What an MX lookup found. DNS_MX_NONE: the name exists but has no MX
 * (RFC 5321 5.1: use its addresses); DNS_MX_NULL: the single "0 ." MX
 * of RFC 7505 (the domain takes no mail). */
enum dns_mx_status { DNS_MX_OK, DNS_MX_NONE, DNS_MX_NXDOMAIN, DNS_MX_NULL, DNS_MX_FAIL };

struct dns_mx {
	unsigned pref;
	char name[256]; /* without the trailing dot */
};

/* Called exactly once per MX lookup unless cancelled: n records sorted
 * by preference (ties in the server's order) when status is DNS_MX_OK;
 * err says why for DNS_MX_FAIL. mx is only valid during the call. */
typedef void dns_mx_cb(void *ctx, enum dns_mx_status status, const struct dns_mx *mx, size_t n,
		       const char *err);

/* dns_lookup_mx - the MX records of name; like dns_lookup_addr, the
 * callback never runs from inside this function; cancel with
 * dns_cancel. */
struct dns_query *dns_lookup_mx(struct dns *dns, const char *name, dns_mx_cb *cb, void *ctx);

/* dns_cancel - forget q; its callback will not run */
void dns_cancel(struct dns_query *q);

#endif
