/* dns_wait - blocking DNS lookups with a time bound, for threaded daemons
 * (weir-milter's DKIM and SPF checks). Generic: knows nothing about mail.
 * Thread safe: any number of threads may look up through one dns_wait. */
#ifndef WEIR_DNS_WAIT_H
#define WEIR_DNS_WAIT_H

#include <stdbool.h>
#include <stddef.h>

struct ub_ctx;
struct dns_wait;

enum dns_wait_result {
	DNS_WAIT_OK,       /* records found */
	DNS_WAIT_NONE,     /* NXDOMAIN or no record of the type */
	DNS_WAIT_TEMPFAIL, /* server failure, refused, resolver error */
	DNS_WAIT_TIMEOUT,  /* no answer within the time bound */
};

/* dns_ctx_configure - point a libunbound context at the system resolver
 * ("system": /etc/resolv.conf and /etc/hosts) or at a space separated
 * list of IP[@PORT]. -1 with *err_r (static) on failure. */
int dns_ctx_configure(struct ub_ctx *ctx, const char *servers, const char **err_r);

/* dns_wait_new - a resolver for servers (as above) whose lookups give up
 * after timeout_secs. NULL with *err_r on failure. */
struct dns_wait *dns_wait_new(const char *servers, long timeout_secs, const char **err_r);
void dns_wait_free(struct dns_wait *w);
/* dns_wait_zone_nodefault - ask the servers about zone (e.g. the reverse
 * zone of a documentation prefix) instead of libunbound's built-in
 * local answer. Before the first lookup only; -1 on failure. */
int dns_wait_zone_nodefault(struct dns_wait *w, const char *zone);

/* One answer of dns_wait_query: n records, record i's rdata (a copy, in
 * uncompressed wire format as libunbound gives it) is rdata[i], len[i]
 * bytes long (plus a NUL byte not counted); ttl is the answer's TTL. */
struct dns_wait_answer {
	size_t n;
	unsigned char **rdata;
	size_t *len;
	unsigned ttl;
};

/* dns_wait_query - the records of type rrtype (class IN) of name. *ans is
 * filled only when the result is DNS_WAIT_OK; the caller frees it with
 * dns_wait_answer_free (harmless on an empty answer). A referral (the
 * server does not answer for the zone) is DNS_WAIT_TEMPFAIL. */
enum dns_wait_result dns_wait_query(struct dns_wait *w, const char *name, int rrtype,
				    struct dns_wait_answer *ans);
void dns_wait_answer_free(struct dns_wait_answer *ans);

/* dns_wait_txt - the TXT records of name, each one's strings joined.
 * *records_r (free with dns_records_free) holds *n_r records when the
 * result is DNS_WAIT_OK. */
enum dns_wait_result dns_wait_txt(struct dns_wait *w, const char *name, char ***records_r,
				  size_t *n_r);
void dns_records_free(char **records, size_t n);

/* dns_is_referral - pkt (a whole DNS answer) holds no records and no
 * SOA in its authority section: a delegation, not a proof that the name
 * or the record is absent (RFC 2308) */
bool dns_is_referral(const unsigned char *pkt, size_t len);

/* dns_txt_join - the character-strings of one TXT rdata (wire format),
 * joined into one string; caller frees */
char *dns_txt_join(const unsigned char *rdata, size_t len);

#endif
