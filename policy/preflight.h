/* preflight - outbound SPF preflight: does the sender domain's SPF
 * record allow the addresses weir's outgoing mail leaves from?
 *
 * For mail weir relays (authenticated, certificate or trusted clients)
 * weir-milter evaluates the sender's SPF against every egress address
 * (spf.egress, or the A/AAAA addresses of agent.smarthost's host) with
 * weir's hostname as HELO, the way the next hop will. A domain whose
 * record would fail there is a problem of the sender's DNS that the
 * operator can fix before the mail bounces; findings are counted in an
 * SQLite store (spf.preflight_db) that `weirctl spf report` prints.
 *
 * Thread safety: one struct preflight may be used by any number of
 * threads at once (the egress address cache and the store connection
 * are each guarded by a mutex). */
#ifndef WEIR_POLICY_PREFLIGHT_H
#define WEIR_POLICY_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "policy/config.h"
#include "policy/spf.h"

struct preflight;

/* What one egress address gave */
struct preflight_addr {
	char *ip;
	enum spf_result result;
	char *reason;
};

/* What one check found. Free with preflight_result_free. */
struct preflight_result {
	/* worst over the egress addresses, in the order fail > permerror >
	 * softfail > temperror > none > neutral > pass */
	enum spf_result worst;
	char *domain; /* the sender's domain (lowercased) */
	char *ip;     /* the egress address that gave worst */
	char *reason; /* for the log; also set when preflight_check fails */
	/* every egress address checked, in order (weirctl spf preflight) */
	struct preflight_addr *addrs;
	size_t naddrs;
};

/* Flags of preflight_check_flags */
#define PREFLIGHT_NO_STORE 0x1 /* evaluate only; record nothing */

/* preflight_new - a preflight for cfg (not owned: it must outlive the
 * preflight); spf and dns are not owned either. dns may be NULL when
 * spf.egress is set or the smart host is an [IP] (nothing to resolve).
 * The store is opened on the first finding, not here. */
struct preflight *preflight_new(const struct weir_config *cfg, struct spf_engine *spf,
                                struct dns_wait *dns);
/* preflight_free - no check may be running; NULL is ok */
void preflight_free(struct preflight *p);

/* preflight_check - evaluate sender's SPF (spf_check with HELO =
 * cfg->hostname) against every egress address and count each non-pass
 * finding in the store. 0 with *r filled; -1 with only r->reason set when
 * there is nothing to check (null sender, sender without a domain, no
 * egress address known, a smart host name that does not resolve). A store
 * that cannot be opened or written never fails a check: it is logged once
 * and findings are logged instead. The caller frees *r in both cases. */
int preflight_check(struct preflight *p, const char *sender, struct preflight_result *r);
/* preflight_check_flags - the same with PREFLIGHT_* flags */
int preflight_check_flags(struct preflight *p, const char *sender, unsigned flags,
                          struct preflight_result *r);
void preflight_result_free(struct preflight_result *r);

/* preflight_rank - the place of r in the worst-result order (pass 0 ...
 * fail 6) */
int preflight_rank(enum spf_result r);

/* preflight_prepare_store - as root, before dropping privileges: create
 * the directory of cfg->spf.preflight_db (mode 0750, owned by uid:gid)
 * if missing, and chown an existing db file (and its -wal, -shm) to
 * uid:gid. (uid_t)-1 leaves owners alone. Errors are logged, never
 * fatal. Nothing to do when spf.preflight is off or the db is "". */
void preflight_prepare_store(const struct weir_config *cfg, uid_t uid, gid_t gid);

/* One row of the store: a (domain, result, egress address) and how often
 * it was found; first and last seen in seconds since the epoch */
struct preflight_finding {
	char *domain, *result, *egress, *reason;
	long long count, first, last;
};

/* preflight_findings - every row of the store at db_path, newest last
 * seen first (none for a file without the table yet); 0 with *v_r and
 * *n_r (free with preflight_findings_free), -1 with *err_r (caller
 * frees) when the store is missing or unreadable */
int preflight_findings(const char *db_path, struct preflight_finding **v_r, size_t *n_r,
                       char **err_r);
void preflight_findings_free(struct preflight_finding *v, size_t n);

/* preflight_report - print the store at db_path to out: a table sorted
 * by last seen, newest first ("no findings" when empty), or with
 * prometheus the counter weir_spf_preflight_findings_total in the
 * Prometheus text exposition format. 0 on success; -1 with *err_r (caller
 * frees) when the store is missing or unreadable. */
int preflight_report(const char *db_path, FILE *out, bool prometheus, char **err_r);

#endif
