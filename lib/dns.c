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
	event_free(q->timer);
	event_free(q->deliver);
	dns_unref(q->dns);
	free(q);
}

/* query_finish - both answers are in, or time is up: call back */
static void query_finish(struct dns_query *q)
{
	struct sockaddr_storage all[DNS_MAX_ADDRS];
	size_t n = 0;
	dns_addr_cb *cb = q->cb;
	void *ctx = q->ctx;
	const char *err = q->err ? q->err : "no address found";

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
	query_finish(q);
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
