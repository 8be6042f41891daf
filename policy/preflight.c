/* preflight - outbound SPF preflight and its findings store
 *
 * Egress addresses: spf.egress when set; else the host of
 * agent.smarthost: an [IP] (or a bare IP) as it is, a name resolved to
 * its A and AAAA addresses through dns_wait. A resolved list is kept for
 * EGRESS_TTL seconds; a failed resolution for EGRESS_RETRY seconds (so a
 * DNS outage costs one lookup timeout a minute, not one per message;
 * while it lasts the addresses last resolved are used, if any).
 *
 * The store (spf.preflight_db) is one SQLite table
 *
 *   preflight(domain, result, egress_ip, count, first_seen, last_seen,
 *             last_reason)  primary key (domain, result, egress_ip)
 *
 * times in unix seconds. Each check's findings go in at once, in one
 * transaction (WAL, synchronous=NORMAL: no fsync per message), so counts
 * are exact without any aggregation in memory. The connection is opened
 * on the first finding and kept; every use is under store_lock. A store
 * that cannot be opened or written is logged once; the findings are then
 * logged instead, and the store is tried again every STORE_RETRY seconds
 * (a directory fixed by the operator starts working without a restart). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/preflight.h"

#define EGRESS_TTL    300 /* seconds a resolved smart host is kept */
#define EGRESS_RETRY  60  /* seconds before a failed resolution is retried */
#define STORE_RETRY   300 /* seconds before a failed store is tried again */
#define STORE_BUSY_MS 2000
#define DNS_T_A       1
#define DNS_T_AAAA    28

struct preflight {
	const struct weir_config *cfg;
	struct spf_engine *spf;
	struct dns_wait *dns;

	pthread_mutex_t egress_lock; /* guards the egress cache */
	struct strlist egress;       /* last resolved addresses */
	char *egress_err;            /* why the last resolution failed */
	time_t egress_until;         /* monotonic: resolve again after this */
	bool egress_resolved;
	atomic_bool loopback_told; /* the loopback warning was logged */

	pthread_mutex_t store_lock; /* guards db, upsert and the flags */
	sqlite3 *db;
	sqlite3_stmt *upsert;
	bool store_failed;  /* failing now: findings are logged instead */
	bool store_logged;  /* the failure was logged (once per preflight) */
	time_t store_retry; /* monotonic: try the store again after this */
};

static const char schema[] = "CREATE TABLE IF NOT EXISTS preflight ("
                             " domain TEXT NOT NULL,"
                             " result TEXT NOT NULL,"
                             " egress_ip TEXT NOT NULL,"
                             " count INTEGER NOT NULL,"
                             " first_seen INTEGER NOT NULL,"
                             " last_seen INTEGER NOT NULL,"
                             " last_reason TEXT NOT NULL DEFAULT '',"
                             " PRIMARY KEY (domain, result, egress_ip))";

static const char upsert_sql[] =
    "INSERT INTO preflight (domain, result, egress_ip, count, first_seen, last_seen,"
    " last_reason) VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5)"
    " ON CONFLICT (domain, result, egress_ip) DO UPDATE SET count = count + 1,"
    " last_seen = max(last_seen, excluded.last_seen), last_reason = excluded.last_reason";

static time_t monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* preflight_rank - fail > permerror > softfail > temperror > none >
 * neutral > pass: what the next hop is likeliest to hold against us */
int preflight_rank(enum spf_result r)
{
	switch (r) {
	case SPF_RES_PASS: return 0;
	case SPF_RES_NEUTRAL: return 1;
	case SPF_RES_NONE: return 2;
	case SPF_RES_TEMPERROR: return 3;
	case SPF_RES_SOFTFAIL: return 4;
	case SPF_RES_PERMERROR: return 5;
	case SPF_RES_FAIL: return 6;
	}
	return 5;
}

static void strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void strlist_push(struct strlist *l, const char *s)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

static void strlist_copy(struct strlist *dst, const struct strlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		strlist_push(dst, src->v[i]);
}

/* ip_canonical - s as inet_ntop writes it (so "2001:DB8::1" and
 * "2001:db8::1" count as one egress address) into buf; -1 if not an IP */
static int ip_canonical(const char *s, char *buf, size_t size)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return inet_ntop(AF_INET, a, buf, (socklen_t)size) != NULL ? 0 : -1;
	if (inet_pton(AF_INET6, s, a) == 1)
		return inet_ntop(AF_INET6, a, buf, (socklen_t)size) != NULL ? 0 : -1;
	return -1;
}

struct preflight *preflight_new(const struct weir_config *cfg, struct spf_engine *spf,
                                struct dns_wait *dns)
{
	struct preflight *p = xcalloc(1, sizeof(*p));

	p->cfg = cfg;
	p->spf = spf;
	p->dns = dns;
	pthread_mutex_init(&p->egress_lock, NULL);
	pthread_mutex_init(&p->store_lock, NULL);
	return p;
}

static void store_close(struct preflight *p)
{
	sqlite3_finalize(p->upsert);
	p->upsert = NULL;
	sqlite3_close(p->db);
	p->db = NULL;
}

void preflight_free(struct preflight *p)
{
	if (p == NULL)
		return;
	store_close(p);
	strlist_clear(&p->egress);
	free(p->egress_err);
	pthread_mutex_destroy(&p->egress_lock);
	pthread_mutex_destroy(&p->store_lock);
	free(p);
}

/* resolve - the A and AAAA addresses of host into *out; -1 with *err_r
 * (caller frees) when there are none. *temporary_r: some lookup failed
 * temporarily (the answer may be incomplete). */
static int resolve(struct dns_wait *dns, const char *host, struct strlist *out, char **err_r,
                   bool *temporary_r)
{
	static const int types[] = {DNS_T_A, DNS_T_AAAA};
	enum dns_wait_result res[2];
	char buf[INET6_ADDRSTRLEN];

	*temporary_r = false;
	if (dns == NULL) {
		*err_r = xasprintf("smart host %s: no resolver to look it up with", host);
		return -1;
	}
	for (size_t t = 0; t < 2; t++) {
		struct dns_wait_answer ans = {0};
		res[t] = dns_wait_query(dns, host, types[t], &ans);
		if (res[t] == DNS_WAIT_TEMPFAIL || res[t] == DNS_WAIT_TIMEOUT)
			*temporary_r = true;
		if (res[t] != DNS_WAIT_OK)
			continue;
		for (size_t i = 0; i < ans.n; i++) {
			size_t want = types[t] == DNS_T_A ? 4 : 16;
			int af = types[t] == DNS_T_A ? AF_INET : AF_INET6;
			if (ans.len[i] == want && inet_ntop(af, ans.rdata[i], buf, sizeof(buf)))
				strlist_push(out, buf);
		}
		dns_wait_answer_free(&ans);
	}
	if (out->n > 0)
		return 0;
	if (*temporary_r)
		*err_r = xasprintf("smart host %s: temporary DNS failure looking up its "
		                   "addresses (A: %s, AAAA: %s)",
		                   host, res[0] == DNS_WAIT_TIMEOUT ? "timeout" : "failed",
		                   res[1] == DNS_WAIT_TIMEOUT ? "timeout" : "failed");
	else
		*err_r = xasprintf("smart host %s does not resolve (no A or AAAA record)", host);
	return -1;
}

/* egress_lookup - the cached addresses of the smart host name host
 * into *out, resolving again when the cache is stale; -1 with *err_r */
static int egress_lookup(struct preflight *p, const char *host, struct strlist *out, char **err_r)
{
	time_t now = monotonic_now();
	int rc = 0;

	pthread_mutex_lock(&p->egress_lock);
	if (!p->egress_resolved || now >= p->egress_until) {
		struct strlist fresh = {0};
		char *err = NULL;
		bool temporary;
		if (resolve(p->dns, host, &fresh, &err, &temporary) == 0) {
			strlist_clear(&p->egress);
			p->egress = fresh;
			free(p->egress_err);
			p->egress_err = NULL;
		} else {
			/* a definite "no such host" drops the old list; a
			 * temporary failure keeps it while it lasts */
			if (!temporary)
				strlist_clear(&p->egress);
			log_warning("spf preflight: %s%s", err,
			            p->egress.n > 0 ? "; using the addresses resolved before" : "");
			free(p->egress_err);
			p->egress_err = err;
		}
		p->egress_resolved = true;
		p->egress_until =
		    now + (p->egress_err == NULL && !temporary ? EGRESS_TTL : EGRESS_RETRY);
	}
	if (p->egress.n > 0) {
		strlist_copy(out, &p->egress);
	} else {
		*err_r = xstrdup(p->egress_err != NULL ? p->egress_err : "no egress address");
		rc = -1;
	}
	pthread_mutex_unlock(&p->egress_lock);
	return rc;
}

/* egress_get - the egress addresses (copies, canonical text) into *out;
 * -1 with *err_r (caller frees) when none is known */
static int egress_get(struct preflight *p, struct strlist *out, char **err_r)
{
	const struct weir_config *cfg = p->cfg;
	char buf[INET6_ADDRSTRLEN];
	struct endpoint ep;
	const char *err;
	bool literal;

	if (cfg->spf.egress.n > 0) {
		for (size_t i = 0; i < cfg->spf.egress.n; i++)
			if (ip_canonical(cfg->spf.egress.v[i], buf, sizeof(buf)) == 0)
				strlist_push(out, buf);
		return 0; /* settings.c checked each one */
	}
	if (cfg->agent.smarthost == NULL || cfg->agent.smarthost[0] == '\0') {
		*err_r = xstrdup("no egress address known: spf.egress is empty and "
		                 "agent.smarthost is not set");
		return -1;
	}
	if (endpoint_parse_hostport(cfg->agent.smarthost, 25, &ep, &literal, &err) < 0) {
		*err_r = xasprintf("agent.smarthost %s: %s", cfg->agent.smarthost, err);
		return -1;
	}
	if (ip_canonical(ep.host, buf, sizeof(buf)) == 0)
		strlist_push(out, buf);
	else if (egress_lookup(p, ep.host, out, err_r) < 0)
		return -1;
	/* a local relay or filter in between hides where mail really leaves */
	for (size_t i = 0; i < out->n; i++)
		if ((strncmp(out->v[i], "127.", 4) == 0 || strcmp(out->v[i], "::1") == 0) &&
		    !atomic_exchange(&p->loopback_told, true))
			log_warning("spf preflight: agent.smarthost %s is a loopback address (%s): "
			            "set spf.egress to the addresses mail leaves from",
			            cfg->agent.smarthost, out->v[i]);
	return 0;
}

/* store_fail - the store does not work: say so the first time, close it
 * and try again later; lock held */
static void store_fail(struct preflight *p, const char *what)
{
	if (!p->store_logged)
		log_warning("spf preflight store %s: %s: %s; findings are logged instead "
		            "(weirctl spf report will miss them)",
		            p->cfg->spf.preflight_db, what,
		            p->db != NULL ? sqlite3_errmsg(p->db) : "cannot open");
	p->store_logged = true;
	p->store_failed = true;
	p->store_retry = monotonic_now() + STORE_RETRY;
	store_close(p);
}

/* store_open - the connection, opened (and the table made) on first use;
 * false when the store is not usable now; lock held */
static bool store_open(struct preflight *p)
{
	const char *path = p->cfg->spf.preflight_db;

	if (p->db != NULL)
		return true;
	if (p->store_failed && monotonic_now() < p->store_retry)
		return false;
	if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		store_fail(p, "cannot open");
		return false;
	}
	sqlite3_busy_timeout(p->db, STORE_BUSY_MS);
	if (sqlite3_exec(p->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(p->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(p->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		store_fail(p, "cannot set up");
		return false;
	}
	if (sqlite3_prepare_v2(p->db, upsert_sql, -1, &p->upsert, NULL) != SQLITE_OK) {
		store_fail(p, "cannot prepare");
		return false;
	}
	if (p->store_failed)
		log_info("spf preflight store %s: usable again", path);
	p->store_failed = false;
	return true;
}

/* store_add - count the non-pass findings of r; lock held. -1 when the
 * store failed (it is closed then). */
static int store_add(struct preflight *p, const struct preflight_result *r, time_t now)
{
	if (sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		store_fail(p, "cannot write");
		return -1;
	}
	for (size_t i = 0; i < r->naddrs; i++) {
		const struct preflight_addr *a = &r->addrs[i];
		int rc;
		if (a->result == SPF_RES_PASS)
			continue;
		sqlite3_bind_text(p->upsert, 1, r->domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(p->upsert, 2, spf_result_name(a->result), -1, SQLITE_STATIC);
		sqlite3_bind_text(p->upsert, 3, a->ip, -1, SQLITE_STATIC);
		sqlite3_bind_int64(p->upsert, 4, (sqlite3_int64)now);
		sqlite3_bind_text(p->upsert, 5, a->reason != NULL ? a->reason : "", -1,
		                  SQLITE_STATIC);
		rc = sqlite3_step(p->upsert);
		sqlite3_reset(p->upsert);
		sqlite3_clear_bindings(p->upsert);
		if (rc != SQLITE_DONE) {
			sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
			store_fail(p, "cannot write");
			return -1;
		}
	}
	if (sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
		store_fail(p, "cannot commit");
		return -1;
	}
	return 0;
}

/* log_findings - what the store could not count */
static void log_findings(const struct preflight_result *r)
{
	for (size_t i = 0; i < r->naddrs; i++) {
		struct kvline kv;
		if (r->addrs[i].result == SPF_RES_PASS)
			continue;
		kv_init(&kv);
		kv_add(&kv, "spf_preflight", spf_result_name(r->addrs[i].result));
		kv_add(&kv, "domain", r->domain);
		kv_add(&kv, "egress", r->addrs[i].ip);
		kv_add(&kv, "reason", r->addrs[i].reason != NULL ? r->addrs[i].reason : "");
		log_info("spf preflight finding not stored: %s", kv_str(&kv));
		kv_free(&kv);
	}
}

/* record - count r's non-pass findings in the store, or log them */
static void record(struct preflight *p, const struct preflight_result *r)
{
	bool any = false, stored = false;

	for (size_t i = 0; i < r->naddrs && !any; i++)
		any = r->addrs[i].result != SPF_RES_PASS;
	if (!any || p->cfg->spf.preflight_db == NULL || p->cfg->spf.preflight_db[0] == '\0')
		return;
	pthread_mutex_lock(&p->store_lock);
	if (store_open(p))
		stored = store_add(p, r, time(NULL)) == 0;
	pthread_mutex_unlock(&p->store_lock);
	if (!stored)
		log_findings(r);
}

/* sender_parts - sender without <>, into *addr_r (caller frees), and its
 * domain lowercased without a final dot into *domain_r; -1 with *err_r
 * (static) when there is no domain to check */
static int sender_parts(const char *sender, char **addr_r, char **domain_r, const char **err_r)
{
	size_t len = sender != NULL ? strlen(sender) : 0;
	const char *at;
	char *addr, *dom;

	if (len >= 2 && sender[0] == '<' && sender[len - 1] == '>')
		addr = xstrndup(sender + 1, len - 2);
	else
		addr = xstrdup(sender != NULL ? sender : "");
	if (addr[0] == '\0') {
		free(addr);
		*err_r = "null sender: nothing to check";
		return -1;
	}
	at = strrchr(addr, '@');
	if (at == NULL || at[1] == '\0' || at[1] == '.') {
		free(addr);
		*err_r = "sender has no domain: nothing to check";
		return -1;
	}
	dom = xstrdup(at + 1);
	for (char *q = dom; *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
	len = strlen(dom);
	if (len > 0 && dom[len - 1] == '.')
		dom[len - 1] = '\0';
	*addr_r = addr;
	*domain_r = dom;
	return 0;
}

/* addr_reason - what one egress address's outcome means, for the log
 * and the store (libspf2's own reason is a bare "mechanism" for most
 * results); caller frees */
static char *addr_reason(const char *domain, const char *ip, const struct spf_outcome *o)
{
	const char *why = o->reason != NULL && o->reason[0] != '\0' ? o->reason : "no reason given";

	switch (o->result) {
	case SPF_RES_PASS: return xasprintf("%s designates %s as permitted sender", domain, ip);
	case SPF_RES_FAIL:
		return xasprintf("%s does not designate %s as permitted sender", domain, ip);
	case SPF_RES_SOFTFAIL:
		return xasprintf("%s does not designate %s as permitted sender (softfail)", domain,
		                 ip);
	case SPF_RES_NEUTRAL:
		return xasprintf("%s is neither permitted nor denied by %s", ip, domain);
	case SPF_RES_NONE: return xasprintf("%s publishes no SPF record (%s)", domain, why);
	case SPF_RES_TEMPERROR:
		return xasprintf("temporary error evaluating the SPF record of %s: %s", domain,
		                 why);
	case SPF_RES_PERMERROR: return xasprintf("the SPF record of %s is broken: %s", domain, why);
	}
	return xstrdup(why);
}

int preflight_check_flags(struct preflight *p, const char *sender, unsigned flags,
                          struct preflight_result *r)
{
	struct strlist egress = {0};
	const char *err;
	char *addr, *err2 = NULL;
	size_t worst = 0;

	memset(r, 0, sizeof(*r));
	r->worst = SPF_RES_NONE;
	if (sender_parts(sender, &addr, &r->domain, &err) < 0) {
		r->reason = xstrdup(err);
		return -1;
	}
	if (egress_get(p, &egress, &err2) < 0) {
		r->reason = err2;
		free(addr);
		return -1;
	}
	if (egress.n == 0) {
		r->reason = xstrdup("no egress address known");
		free(addr);
		return -1;
	}
	r->addrs = xcalloc(egress.n, sizeof(*r->addrs));
	for (size_t i = 0; i < egress.n; i++) {
		struct preflight_addr *a = &r->addrs[r->naddrs++];
		struct spf_outcome o;
		/* spf_check fails only for a bad client address; egress
		 * addresses are canonical IPs, but its outcome still holds a
		 * result and a reason */
		spf_check(p->spf, egress.v[i], p->cfg->hostname, addr, &o);
		a->ip = xstrdup(egress.v[i]);
		a->result = o.result;
		a->reason = addr_reason(r->domain, a->ip, &o);
		spf_outcome_free(&o);
		if (preflight_rank(a->result) > preflight_rank(r->addrs[worst].result))
			worst = i;
	}
	strlist_clear(&egress);
	free(addr);
	r->worst = r->addrs[worst].result;
	r->ip = xstrdup(r->addrs[worst].ip);
	r->reason = xstrdup(r->addrs[worst].reason != NULL ? r->addrs[worst].reason
	                                                   : spf_result_name(r->worst));
	if (!(flags & PREFLIGHT_NO_STORE))
		record(p, r);
	return 0;
}

int preflight_check(struct preflight *p, const char *sender, struct preflight_result *r)
{
	return preflight_check_flags(p, sender, 0, r);
}

void preflight_result_free(struct preflight_result *r)
{
	for (size_t i = 0; i < r->naddrs; i++) {
		free(r->addrs[i].ip);
		free(r->addrs[i].reason);
	}
	free(r->addrs);
	free(r->domain);
	free(r->ip);
	free(r->reason);
	memset(r, 0, sizeof(*r));
}

void preflight_prepare_store(const struct weir_config *cfg, uid_t uid, gid_t gid)
{
	if (cfg->spf.preflight == 0)
		return;
	daemon_prepare_db(cfg->spf.preflight_db, uid, gid, "spf preflight store");
}


static char *column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return xstrdup(t != NULL ? (const char *)t : "");
}

/* read_rows - every row, newest last_seen first; -1 with *err_r */
static int read_rows(sqlite3 *db, struct preflight_finding **rows_r, size_t *n_r, char **err_r)
{
	static const char sql[] = "SELECT domain, result, egress_ip, count, first_seen, last_seen,"
	                          " last_reason FROM preflight"
	                          " ORDER BY last_seen DESC, domain, result, egress_ip";
	sqlite3_stmt *st = NULL;
	struct preflight_finding *rows = NULL;
	size_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(db,
	                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
	                        "'preflight'",
	                        -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_DONE) { /* a file with no table yet: nothing found */
		*rows_r = NULL;
		*n_r = 0;
		return 0;
	}
	if (rc != SQLITE_ROW || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		*err_r = xasprintf("cannot read: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct preflight_finding *r;
		rows = xrealloc(rows, (n + 1) * sizeof(*rows));
		r = &rows[n++];
		r->domain = column_dup(st, 0);
		r->result = column_dup(st, 1);
		r->egress = column_dup(st, 2);
		r->count = sqlite3_column_int64(st, 3);
		r->first = sqlite3_column_int64(st, 4);
		r->last = sqlite3_column_int64(st, 5);
		r->reason = column_dup(st, 6);
	}
	if (rc != SQLITE_DONE)
		*err_r = xasprintf("cannot read: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	*rows_r = rows;
	*n_r = n;
	return rc == SQLITE_DONE ? 0 : -1;
}

void preflight_findings_free(struct preflight_finding *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].domain);
		free(rows[i].result);
		free(rows[i].egress);
		free(rows[i].reason);
	}
	free(rows);
}

/* iso_time - t as ISO 8601 UTC ("2026-11-22T10:00:00Z") into buf */
static void iso_time(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", t);
}

/* print_label - a Prometheus label value: \ " and newline escaped */
static void print_label(FILE *out, const char *name, const char *v, const char *sep)
{
	fprintf(out, "%s=\"", name);
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(out, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
	fprintf(out, "\"%s", sep);
}

static void print_prometheus(FILE *out, const struct preflight_finding *rows, size_t n)
{
	static const char metric[] = "weir_spf_preflight_findings_total";

	fprintf(out,
	        "# HELP %s Outgoing mail whose sender domain's SPF did not pass for an "
	        "egress address, by domain, result and egress address.\n",
	        metric);
	fprintf(out, "# TYPE %s counter\n", metric);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "%s{", metric);
		print_label(out, "domain", rows[i].domain, ",");
		print_label(out, "result", rows[i].result, ",");
		print_label(out, "egress", rows[i].egress, "");
		fprintf(out, "} %lld\n", rows[i].count);
	}
}

static int width(int w, const char *s)
{
	int l = (int)strlen(s);

	return l > w ? l : w;
}

static void print_table(FILE *out, const struct preflight_finding *rows, size_t n)
{
	int wd = 6, wr = 6, we = 6, wc = 5;
	char first[32], last[32], count[24];

	if (n == 0) {
		fprintf(out, "no findings\n");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(count, sizeof(count), "%lld", rows[i].count);
		wd = width(wd, rows[i].domain);
		wr = width(wr, rows[i].result);
		we = width(we, rows[i].egress);
		wc = width(wc, count);
	}
	fprintf(out, "%-*s  %-*s  %-*s  %*s  %-20s  %-20s  %s\n", wd, "DOMAIN", wr, "RESULT", we,
	        "EGRESS", wc, "COUNT", "FIRST SEEN", "LAST SEEN", "LAST REASON");
	for (size_t i = 0; i < n; i++) {
		iso_time(rows[i].first, first, sizeof(first));
		iso_time(rows[i].last, last, sizeof(last));
		fprintf(out, "%-*s  %-*s  %-*s  %*lld  %-20s  %-20s  %s\n", wd, rows[i].domain, wr,
		        rows[i].result, we, rows[i].egress, wc, rows[i].count, first, last,
		        rows[i].reason);
	}
}


int preflight_findings(const char *db_path, struct preflight_finding **v_r, size_t *n_r,
                       char **err_r)
{
	sqlite3 *db = NULL;
	struct stat st;
	int rc;

	*v_r = NULL;
	*n_r = 0;
	if (db_path == NULL || db_path[0] == '\0') {
		*err_r = xstrdup("spf.preflight_db is \"\": findings are not stored");
		return -1;
	}
	if (stat(db_path, &st) < 0) {
		*err_r = errno == ENOENT
		             ? xasprintf("%s: no such file (no finding recorded yet, or "
		                         "spf.preflight_db names another file)",
		                         db_path)
		             : xasprintf("%s: %s", db_path, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		*err_r = xasprintf("%s: cannot open: %s", db_path,
		                   db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_MS);
	rc = read_rows(db, v_r, n_r, err_r);
	sqlite3_close(db);
	daemon_db_give_back(db_path);
	if (rc < 0) {
		char *e = xasprintf("%s: %s", db_path, *err_r);
		free(*err_r);
		*err_r = e;
		preflight_findings_free(*v_r, *n_r);
		*v_r = NULL;
		*n_r = 0;
		return -1;
	}
	return 0;
}

int preflight_report(const char *db_path, FILE *out, bool prometheus, char **err_r)
{
	struct preflight_finding *rows;
	size_t n;

	if (preflight_findings(db_path, &rows, &n, err_r) < 0)
		return -1;
	if (prometheus)
		print_prometheus(out, rows, n);
	else
		print_table(out, rows, n);
	preflight_findings_free(rows, n);
	return 0;
}
