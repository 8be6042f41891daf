/* spf - SPF (RFC 7208) evaluation on top of libspf2, with every DNS query
 * going through weir's own resolver (lib/dns_wait).
 *
 * Thread safety: one engine may be shared by any number of threads. Each
 * thread gets its own libspf2 server, all of them resolving through the
 * one thread-safe struct dns_wait (whose libunbound cache, honouring the
 * records' TTLs, is the only cache: libspf2's own kept failures for 30
 * minutes). */
#ifndef WEIR_POLICY_SPF_H
#define WEIR_POLICY_SPF_H

#include "lib/dns_wait.h"

struct spf_engine;

enum spf_result {
	SPF_RES_NONE,
	SPF_RES_NEUTRAL,
	SPF_RES_PASS,
	SPF_RES_FAIL,
	SPF_RES_SOFTFAIL,
	SPF_RES_TEMPERROR,
	SPF_RES_PERMERROR,
};

/* What one check found. All strings are owned by the outcome: free with
 * spf_outcome_free. Any of them may be NULL except result_name. */
struct spf_outcome {
	enum spf_result result;
	const char *result_name; /* "pass", "fail", ... (static) */
	char *reason;            /* why, for the log (libspf2's or weir's) */
	char *explanation;       /* the domain's exp= text, for a fail */
	char *received_spf;      /* the Received-SPF header's value */
};

/* Limits weir enforces before libspf2 sees anything (see spf.c) */
#define SPF_MAX_DOMAIN 253      /* RFC 1035 */
#define SPF_MAX_LOCALPART 64    /* RFC 5321 4.5.3.1.1 */
#define SPF_MAX_RECORD 2048     /* one TXT record starting v=spf1 */
#define SPF_MAX_VOID_LOOKUPS 2  /* RFC 7208 4.6.4 */
#define SPF_MAX_TERMS 10        /* RFC 7208 4.6.4: DNS-querying terms; MX names */

/* spf_engine_new - an engine resolving through dns (not owned; it must
 * outlive the engine). NULL with *err_r (static) on failure. */
struct spf_engine *spf_engine_new(struct dns_wait *dns, const char **err_r);
/* A lookup function used instead of dns_wait_query (unit tests, fuzzing):
 * same contract as dns_wait_query. */
typedef enum dns_wait_result (*spf_lookup_fn)(void *ctx, const char *name, int rrtype,
					      struct dns_wait_answer *ans);
/* spf_engine_new_lookup - an engine whose DNS answers come from fn */
struct spf_engine *spf_engine_new_lookup(spf_lookup_fn fn, void *ctx, const char **err_r);
/* spf_engine_set_timeout - bound, in seconds, on one whole check: once it
 * has passed, every further lookup of that check fails temporarily and the
 * result is temperror. 0: no bound but the resolver's own per lookup. */
void spf_engine_set_timeout(struct spf_engine *e, long secs);
/* spf_engine_set_receiver - the host name put in Received-SPF (default:
 * libspf2's, the local host name). Call before the first check. */
void spf_engine_set_receiver(struct spf_engine *e, const char *name);
/* spf_engine_free - no check may be running */
void spf_engine_free(struct spf_engine *e);

/* spf_check - evaluate the MAIL FROM identity (sender "" or NULL: the
 * null sender, checked as postmaster@helo, RFC 7208 2.4). 0 when *out
 * holds a result (temperror and permerror included), -1 with out->reason
 * set when the arguments themselves are unusable (bad client address). */
int spf_check(struct spf_engine *e, const char *client_ip, const char *helo,
	      const char *sender, struct spf_outcome *out);
/* spf_check_helo - evaluate the HELO identity (RFC 7208 2.3) */
int spf_check_helo(struct spf_engine *e, const char *client_ip, const char *helo,
		   struct spf_outcome *out);
void spf_outcome_free(struct spf_outcome *out);

const char *spf_result_name(enum spf_result r);

/* Headers (policy/spf_header.c). identity: "mailfrom" or "helo". */
/* spf_received_value - the value of a Received-SPF header (RFC 7208 9.1):
 * result, comment, and the key=value pairs, values quoted where they are
 * not dot-atoms; sender NULL or "" for the helo identity. Caller frees. */
char *spf_received_value(const struct spf_outcome *o, const char *receiver,
			 const char *client_ip, const char *helo, const char *sender,
			 const char *identity);
/* spf_ar_entry - "spf=RESULT smtp.mailfrom=ADDR" or "spf=RESULT
 * smtp.helo=NAME" for Authentication-Results (RFC 8601), with a comment
 * for errors; values quoted where they are not tokens. Caller frees. */
char *spf_ar_entry(const struct spf_outcome *o, const char *helo, const char *sender,
		   const char *identity);
/* spf_domain_of - the domain an identity names: the part after the last
 * '@' of sender, else helo (static buffer of the caller: out, size) */
const char *spf_domain_of(const char *sender, const char *helo, char *out, size_t size);

#endif
