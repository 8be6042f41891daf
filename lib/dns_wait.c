/* dns_wait - blocking DNS lookups with a time bound, for threaded daemons
 *
 * One libunbound context is shared by every thread. A thread of our own
 * runs ub_process whenever answers arrive; a lookup starts an
 * asynchronous query and sleeps on a condition variable until its answer
 * is in or its time is up (the query is then cancelled). libunbound's
 * callbacks run inside ub_process, under the same mutex the waiters use,
 * so no answer is ever lost between check and wait. */
#include "autoconf.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "lib/dns_wait.h"
#include "lib/xalloc.h"

struct dns_wait {
	struct ub_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t answered;
	pthread_t thread;
	bool stop;
	long timeout;
};

struct pending {
	bool done;
	int rcode;
	struct dns_wait_answer ans;
};

int dns_ctx_configure(struct ub_ctx *ctx, const char *servers, const char **err_r)
{
	char *copy, *tok, *save = NULL;
	int ret = 0;

	if (strcmp(servers, "system") == 0) {
		if (ub_ctx_resolvconf(ctx, NULL) != 0 || ub_ctx_hosts(ctx, NULL) != 0) {
			*err_r = "cannot read /etc/resolv.conf or /etc/hosts";
			return -1;
		}
		return 0;
	}
	copy = xstrdup(servers);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (ub_ctx_set_fwd(ctx, tok) != 0) {
			*err_r = "bad resolver address";
			ret = -1;
			break;
		}
	}
	free(copy);
	/* libunbound answers names under the reserved "test." (RFC 6761)
	 * NXDOMAIN itself. With servers of its own, an administrator (or a
	 * test bed) may serve such names there: ask them. */
	if (ret == 0 && ub_ctx_zone_add(ctx, "test.", "nodefault") != 0) {
		*err_r = "cannot configure the resolver";
		ret = -1;
	}
	return ret;
}


char *dns_txt_join(const unsigned char *d, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0, i = 0;

	while (i < len) {
		size_t n = d[i++];
		if (n > len - i)
			n = len - i;
		memcpy(out + o, d + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return out;
}

/* skip_name - past a (possibly compressed) name at off in pkt; 0 if the
 * packet is broken */
static size_t skip_name(const unsigned char *pkt, size_t len, size_t off)
{
	while (off < len) {
		unsigned char l = pkt[off];
		if ((l & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0;
		if (l == 0)
			return off + 1;
		off += (size_t)l + 1;
	}
	return 0;
}

/* dns_is_referral - an answer with no records and no SOA in its authority
 * section: a delegation, not a proof that the name or record is absent
 * (RFC 2308: NXDOMAIN and NODATA answers carry the zone's SOA) */
bool dns_is_referral(const unsigned char *pkt, size_t len)
{
	size_t off = 12, qd, an, ns;

	if (pkt == NULL || len < 12)
		return false;
	qd = (size_t)(pkt[4] << 8 | pkt[5]);
	an = (size_t)(pkt[6] << 8 | pkt[7]);
	ns = (size_t)(pkt[8] << 8 | pkt[9]);
	for (size_t i = 0; i < qd; i++) {
		if ((off = skip_name(pkt, len, off)) == 0 || (off += 4) > len)
			return false;
	}
	for (size_t i = 0; i < an + ns; i++) {
		size_t rdlen;
		unsigned type;

		if ((off = skip_name(pkt, len, off)) == 0 || off + 10 > len)
			return false;
		type = (unsigned)(pkt[off] << 8 | pkt[off + 1]);
		rdlen = (size_t)(pkt[off + 8] << 8 | pkt[off + 9]);
		if (i >= an && type == 6 /* SOA */)
			return false;
		off += 10 + rdlen;
		if (off > len)
			return false;
	}
	return ns > 0;
}

/* answer - libunbound callback, run inside ub_process with lock held.
 * Copies each record's rdata (uncompressed wire format). */
static void answer(void *arg, int err, struct ub_result *res)
{
	struct pending *p = arg;

	p->done = true;
	p->rcode = err != 0 ? -1 : res->rcode;
	if (err == 0 && res->havedata) {
		size_t n = 0;
		while (res->data[n] != NULL)
			n++;
		p->ans.rdata = xcalloc(n + 1, sizeof(*p->ans.rdata));
		p->ans.len = xcalloc(n + 1, sizeof(*p->ans.len));
		for (size_t i = 0; i < n; i++) {
			size_t len = res->len[i] > 0 ? (size_t)res->len[i] : 0;
			p->ans.rdata[i] = xmalloc(len + 1);
			memcpy(p->ans.rdata[i], res->data[i], len);
			p->ans.len[i] = len;
		}
		p->ans.n = n;
		p->ans.ttl = res->ttl > 0 ? (unsigned)res->ttl : 0;
	}
	if (err == 0 && res->rcode == 0 && !res->havedata &&
	    dns_is_referral(res->answer_packet, (size_t)res->answer_len))
		p->rcode = -1; /* nobody answered for the zone: try again later */
	if (res != NULL)
		ub_resolve_free(res);
}

/* process_loop - our thread: process answers as they arrive */
static void *process_loop(void *arg)
{
	struct dns_wait *w = arg;
	struct pollfd pfd = {.fd = ub_fd(w->ctx), .events = POLLIN};

	for (;;) {
		int n = poll(&pfd, 1, 100);
		pthread_mutex_lock(&w->lock);
		if (w->stop) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		if (n > 0) {
			ub_process(w->ctx);
			pthread_cond_broadcast(&w->answered);
		}
		pthread_mutex_unlock(&w->lock);
	}
}

struct dns_wait *dns_wait_new(const char *servers, long timeout_secs, const char **err_r)
{
	struct dns_wait *w = xcalloc(1, sizeof(*w));

	w->timeout = timeout_secs;
	w->ctx = ub_ctx_create();
	if (w->ctx == NULL) {
		*err_r = "ub_ctx_create failed";
		free(w);
		return NULL;
	}
	if (ub_ctx_async(w->ctx, 1) != 0 || dns_ctx_configure(w->ctx, servers, err_r) < 0) {
		if (*err_r == NULL)
			*err_r = "ub_ctx_async failed";
		ub_ctx_delete(w->ctx);
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	/* A monotonic clock: a clock step never stretches a time bound. */
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->answered, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&w->thread, NULL, process_loop, w) != 0) {
		*err_r = "cannot start the DNS thread";
		ub_ctx_delete(w->ctx);
		free(w);
		return NULL;
	}
	return w;
}

int dns_wait_zone_nodefault(struct dns_wait *w, const char *zone)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	rc = ub_ctx_zone_add(w->ctx, zone, "nodefault");
	pthread_mutex_unlock(&w->lock);
	return rc == 0 ? 0 : -1;
}

void dns_wait_free(struct dns_wait *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	ub_ctx_delete(w->ctx);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->answered);
	free(w);
}

enum dns_wait_result dns_wait_query(struct dns_wait *w, const char *name, int rrtype,
				    struct dns_wait_answer *ans)
{
	struct pending p = {0};
	struct timespec deadline;
	enum dns_wait_result r;
	int id, rc = 0;

	memset(ans, 0, sizeof(*ans));
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += w->timeout;
	pthread_mutex_lock(&w->lock);
	if (ub_resolve_async(w->ctx, name, rrtype, 1 /* IN */, &p, answer, &id) != 0) {
		pthread_mutex_unlock(&w->lock);
		return DNS_WAIT_TEMPFAIL;
	}
	while (!p.done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&w->answered, &w->lock, &deadline);
	if (!p.done) {
		ub_cancel(w->ctx, id);
		r = DNS_WAIT_TIMEOUT;
	} else if (p.rcode == 0 && p.ans.n > 0) {
		r = DNS_WAIT_OK;
		*ans = p.ans;
		memset(&p.ans, 0, sizeof(p.ans));
	} else if (p.rcode == 3 || p.rcode == 0) {
		r = DNS_WAIT_NONE; /* NXDOMAIN, or no record of the type */
	} else {
		r = DNS_WAIT_TEMPFAIL; /* SERVFAIL, REFUSED, resolver error */
	}
	pthread_mutex_unlock(&w->lock);
	dns_wait_answer_free(&p.ans);
	return r;
}

void dns_wait_answer_free(struct dns_wait_answer *ans)
{
	if (ans == NULL)
		return;
	for (size_t i = 0; i < ans->n; i++)
		free(ans->rdata[i]);
	free(ans->rdata);
	free(ans->len);
	memset(ans, 0, sizeof(*ans));
}

enum dns_wait_result dns_wait_txt(struct dns_wait *w, const char *name, char ***records_r,
				  size_t *n_r)
{
	struct dns_wait_answer ans;
	enum dns_wait_result r;

	*records_r = NULL;
	*n_r = 0;
	r = dns_wait_query(w, name, 16 /* TXT */, &ans);
	if (r != DNS_WAIT_OK)
		return r;
	*records_r = xcalloc(ans.n, sizeof(**records_r));
	for (size_t i = 0; i < ans.n; i++)
		(*records_r)[i] = dns_txt_join(ans.rdata[i], ans.len[i]);
	*n_r = ans.n;
	dns_wait_answer_free(&ans);
	return r;
}

void dns_records_free(char **records, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(records[i]);
	free(records);
}
