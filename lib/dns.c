/* dns - thin asynchronous address lookups through libunbound and libevent
 *
 * libunbound resolves in its own thread (ub_ctx_async(ctx, 1)); results
 * are handed over through ub_fd(), which we watch with a libevent event
 * and drain with ub_process(), so callbacks run in the event loop's
 * thread. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "lib/dns.h"
#include "lib/dns_wait.h"
#include "lib/xalloc.h"

#define RR_TYPE_A 1
#define RR_TYPE_AAAA 28
#define RR_TYPE_MX 15
#define RR_CLASS_IN 1

struct dns {
	int refs;
	struct ub_ctx *ctx;
	struct event *ev;
	struct event_base *base;
	long timeout;
};

struct dns_query {
	struct dns *dns;
	struct event *timer, *deliver;
	int ids[2];     /* libunbound async ids, A and AAAA */
	bool pending[2];
	struct sockaddr_storage addrs[2][DNS_MAX_ADDRS];
	size_t n[2];
	const char *err;
	dns_addr_cb *cb;
	void *ctx;
	/* MX lookups: one query (ids[0]), the answer kept here */
	dns_mx_cb *mx_cb;
	enum dns_mx_status mx_status;
	struct dns_mx *mx;
	size_t nmx;
};

/* dns_readable - libunbound has answers: run their callbacks */
static void dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;

	(void)fd;
	(void)what;
	dns_ref(dns);
	ub_process(dns->ctx);
	dns_unref(dns);
}

/* dns_new - a resolver context; see dns.h */
struct dns *dns_new(struct event_base *base, const char *servers, long timeout_secs,
		    const char **err_r)
{
	struct dns *dns = xcalloc(1, sizeof(*dns));

	dns->refs = 1;
	dns->base = base;
	dns->timeout = timeout_secs;
	dns->ctx = ub_ctx_create();
	if (dns->ctx == NULL) {
		*err_r = "ub_ctx_create failed";
		free(dns);
		return NULL;
	}
	if (ub_ctx_async(dns->ctx, 1) != 0)
		*err_r = "ub_ctx_async failed";
	else if (dns_ctx_configure(dns->ctx, servers, err_r) == 0)
		*err_r = NULL;
	if (*err_r != NULL) {
		ub_ctx_delete(dns->ctx);
		free(dns);
		return NULL;
	}
	dns->ev = event_new(base, ub_fd(dns->ctx), EV_READ | EV_PERSIST, dns_readable, dns);
	event_add(dns->ev, NULL);
	return dns;
}

/* dns_ref - one more reference */
void dns_ref(struct dns *dns)
{
	dns->refs++;
}

/* dns_unref - drop a reference, free with the last */
void dns_unref(struct dns *dns)
{
	if (dns == NULL || --dns->refs > 0)
		return;
	event_free(dns->ev);
	ub_ctx_delete(dns->ctx);
	free(dns);
}

/* query_free - release q and its events (does not cancel libunbound) */
static void query_free(struct dns_query *q)
{
	free(q->mx);
	event_free(q->timer);
	event_free(q->deliver);
	dns_unref(q->dns);
	free(q);
}

static void mx_finish(struct dns_query *q);

/* query_finish - both answers are in, or time is up: call back */
static void query_finish(struct dns_query *q)
{
	struct sockaddr_storage all[DNS_MAX_ADDRS];
	size_t n = 0;
	dns_addr_cb *cb = q->cb;
	void *ctx = q->ctx;
	const char *err = q->err ? q->err : "no address found";

	if (q->mx_cb != NULL) {
		mx_finish(q);
		return;
	}
	for (int t = 0; t < 2; t++) {
		if (q->pending[t]) {
			ub_cancel(q->dns->ctx, q->ids[t]);
			q->pending[t] = false;
		}
		for (size_t i = 0; i < q->n[t] && n < DNS_MAX_ADDRS; i++)
			all[n++] = q->addrs[t][i];
	}
	query_free(q);
	cb(ctx, all, n, n ? NULL : err);
}

/* store_result - copy the addresses of one answer */
static void store_result(struct dns_query *q, int t, struct ub_result *res)
{
	for (int i = 0; res->data[i] != NULL && q->n[t] < DNS_MAX_ADDRS; i++) {
		struct sockaddr_storage *ss = &q->addrs[t][q->n[t]];

		memset(ss, 0, sizeof(*ss));
		if (t == 0 && res->len[i] == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, res->data[i], 4);
			q->n[t]++;
		} else if (t == 1 && res->len[i] == 16) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, res->data[i], 16);
			q->n[t]++;
		}
	}
}

/* answer - libunbound callback for one record type */
static void answer(struct dns_query *q, int t, int err, struct ub_result *res)
{
	q->pending[t] = false;
	if (err != 0)
		q->err = ub_strerror(err);
	else if (res->bogus)
		q->err = "DNSSEC validation failed";
	else if (res->havedata)
		store_result(q, t, res);
	else if (res->nxdomain)
		q->err = "host not found";
	if (res != NULL)
		ub_resolve_free(res);
	if (!q->pending[0] && !q->pending[1])
		query_finish(q);
}

static void answer_a(void *arg, int err, struct ub_result *res)
{
	answer(arg, 0, err, res);
}

static void answer_aaaa(void *arg, int err, struct ub_result *res)
{
	answer(arg, 1, err, res);
}

/* query_timeout - the resolver took too long */
static void query_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	q->err = "DNS lookup timed out";
	q->n[0] = q->n[1] = 0;
	q->mx_status = DNS_MX_FAIL;
	query_finish(q);
}

/* query_deliver - report an error found while starting the lookup */
static void query_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	q->err = "cannot start DNS lookup";
	q->n[0] = q->n[1] = 0;
	q->mx_status = DNS_MX_FAIL;
	query_finish(q);
}

/* mx_finish - the MX answer is in, or time is up: call back */
static void mx_finish(struct dns_query *q)
{
	dns_mx_cb *cb = q->mx_cb;
	void *ctx = q->ctx;
	enum dns_mx_status st = q->mx_status;
	struct dns_mx *mx = q->mx;
	size_t n = q->nmx;
	const char *err = q->err ? q->err : "DNS lookup failed";

	if (q->pending[0]) {
		ub_cancel(q->dns->ctx, q->ids[0]);
		q->pending[0] = false;
	}
	q->mx = NULL;
	query_free(q);
	cb(ctx, st, st == DNS_MX_OK ? mx : NULL, st == DNS_MX_OK ? n : 0,
	   st == DNS_MX_FAIL ? err : NULL);
	free(mx);
}

/* mx_name - the domain name of an MX rdata after the preference
 * (uncompressed wire format) as text without the final dot; -1 when
 * malformed */
static int mx_name(const unsigned char *p, size_t len, char *out, size_t size)
{
	size_t o = 0, i = 0;

	while (i < len && p[i] != 0) {
		size_t l = p[i++];
		if (l > 63 || i + l > len || o + l + 2 > size)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t k = 0; k < l; k++) {
			unsigned char c = p[i + k];
			out[o++] = c > ' ' && c < 0x7f ? (char)c : '?';
		}
		i += l;
	}
	if (i >= len)
		return -1;
	out[o] = '\0';
	return 0;
}

/* mx_store - the MX records of an answer, sorted by preference; a "0 ."
 * among others is dropped, alone it is a null MX */
static void mx_store(struct dns_query *q, struct ub_result *res)
{
	size_t n = 0;
	bool null_mx = false;

	q->mx = xcalloc(DNS_MAX_MX, sizeof(*q->mx));
	for (int i = 0; res->data[i] != NULL && n < DNS_MAX_MX; i++) {
		const unsigned char *d = (const unsigned char *)res->data[i];
		struct dns_mx m;
		if (res->len[i] < 3 || mx_name(d + 2, (size_t)res->len[i] - 2, m.name,
					       sizeof(m.name)) < 0)
			continue;
		m.pref = (unsigned)d[0] << 8 | d[1];
		if (m.name[0] == '\0') {
			null_mx = true;
			continue;
		}
		/* insertion sort, stable: ties keep the server's order */
		size_t j = n++;
		while (j > 0 && q->mx[j - 1].pref > m.pref) {
			q->mx[j] = q->mx[j - 1];
			j--;
		}
		q->mx[j] = m;
	}
	q->nmx = n;
	if (n > 0)
		q->mx_status = DNS_MX_OK;
	else if (null_mx)
		q->mx_status = DNS_MX_NULL;
	else {
		q->mx_status = DNS_MX_FAIL;
		q->err = "malformed MX records";
	}
}

/* answer_mx - libunbound callback of an MX query */
static void answer_mx(void *arg, int err, struct ub_result *res)
{
	struct dns_query *q = arg;

	q->pending[0] = false;
	q->mx_status = DNS_MX_FAIL;
	if (err != 0)
		q->err = ub_strerror(err);
	else if (res->bogus)
		q->err = "DNSSEC validation failed";
	else if (res->nxdomain)
		q->mx_status = DNS_MX_NXDOMAIN;
	else if (res->havedata)
		mx_store(q, res);
	else if (res->rcode == 0 &&
		 dns_is_referral(res->answer_packet, (size_t)res->answer_len))
		q->err = "no server answers for the domain";
	else if (res->rcode == 0)
		q->mx_status = DNS_MX_NONE;
	else
		q->err = res->rcode == 2 ? "server failure" : "DNS error";
	if (res != NULL)
		ub_resolve_free(res);
	query_finish(q);
}

struct dns_query *dns_lookup_mx(struct dns *dns, const char *name, dns_mx_cb *cb, void *ctx)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	struct timeval tv = {dns->timeout, 0};

	q->dns = dns;
	dns_ref(dns);
	q->mx_cb = cb;
	q->ctx = ctx;
	q->mx_status = DNS_MX_FAIL;
	q->timer = evtimer_new(dns->base, query_timeout, q);
	q->deliver = evtimer_new(dns->base, query_deliver, q);
	q->pending[0] = ub_resolve_async(dns->ctx, name, RR_TYPE_MX, RR_CLASS_IN, q, answer_mx,
					 &q->ids[0]) == 0;
	if (!q->pending[0]) {
		struct timeval now = {0, 0};
		evtimer_add(q->deliver, &now);
		return q;
	}
	evtimer_add(q->timer, &tv);
	return q;
}

/* dns_lookup_addr - start A and AAAA lookups of name */
struct dns_query *dns_lookup_addr(struct dns *dns, const char *name, dns_addr_cb *cb, void *ctx)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	struct timeval tv = {dns->timeout, 0};

	q->dns = dns;
	dns_ref(dns);
	q->cb = cb;
	q->ctx = ctx;
	q->timer = evtimer_new(dns->base, query_timeout, q);
	q->deliver = evtimer_new(dns->base, query_deliver, q);
	q->pending[0] = ub_resolve_async(dns->ctx, name, RR_TYPE_A, RR_CLASS_IN, q, answer_a,
					 &q->ids[0]) == 0;
	q->pending[1] = ub_resolve_async(dns->ctx, name, RR_TYPE_AAAA, RR_CLASS_IN, q,
					 answer_aaaa, &q->ids[1]) == 0;
	if (!q->pending[0] || !q->pending[1]) {
		/* Report asynchronously, as promised. */
		struct timeval now = {0, 0};
		evtimer_add(q->deliver, &now);
		return q;
	}
	evtimer_add(q->timer, &tv);
	return q;
}

/* dns_cancel - forget q */
void dns_cancel(struct dns_query *q)
{
	for (int t = 0; t < 2; t++)
		if (q->pending[t])
			ub_cancel(q->dns->ctx, q->ids[t]);
	query_free(q);
}
