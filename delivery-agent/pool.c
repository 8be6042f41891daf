/* pool - upstream sessions per host, host health and balancing
 *
 * A request (pool_open) walks the hosts it was given: pick one (balanced
 * or in order, up hosts first), take an idle session of it or open a
 * new one (waiting for a free slot when the host is at max_connections),
 * and on a host failure (connect, greeting, TLS) mark the host down and
 * pick again among the hosts not tried yet. Hosts are remembered for the
 * life of the process, keyed by id, so health survives reloads. See
 * pool.h for the contract. */
#include "autoconf.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery-agent/pool.h"
#include "delivery-agent/upstream.h"
#include "lib/log.h"
#include "lib/smtp_reply.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

#define BACKOFF_MAX    600 /* seconds: the longest a host is skipped */
#define STATE_INTERVAL 5   /* seconds between state file writes */

struct pool_session {
	struct pool_host *host;
	struct upstream *up;
	struct event *idle_timer;
	unsigned messages, max_messages;
	long idle_secs;
	bool idle;
	bool reused;                      /* handed out from the idle list */
	struct pool_session *prev, *next; /* the host's idle list */
};

struct pool_host {
	char *id;
	char *route;            /* route it was first used for (state file) */
	struct route_host *own; /* MX hosts: our copy, borrowed by upstreams */
	int failures;
	time_t down_until; /* 0: up */
	char last_error[200];
	unsigned open, sent;
	size_t nidle;
	struct pool_session *idle; /* most recently used first */
	struct pool_req *waiters, *waiters_tail;
	struct pool_host *next;
};

/* smooth weighted round robin state of one route */
struct pool_wrr {
	char *route;
	size_t n;
	char **ids;
	long *cw;
	struct pool_wrr *next;
};

struct pool {
	struct event_base *base;
	struct pool_host *hosts;
	struct pool_wrr *wrr;
	struct event *state_timer;
	bool state_error_logged;
};

struct pool_req {
	struct pool *p;
	struct dns *dns;
	struct weir_config *cfg;
	const struct route *route;
	const struct route_host *hosts;
	size_t n;
	bool *tried;
	bool ordered;
	unsigned max_messages; /* 0: the host's */
	const struct route_host *cur_rh; /* the host being tried */
	struct pool_host *cur;
	struct pool_session *s; /* being opened or reset */
	struct event *kick, *wait_timer;
	bool waiting;
	char last_fail[512];
	struct smtp_reply refusal; /* the last host's refusal of the session, if any */
	pool_cb *cb;
	void *ctx;
	struct pool_req *wnext;
};

static void next_host(struct pool_req *q);
static void acquire(struct pool_req *q);

/* host_get - the pool's record of id, made on first use */
static struct pool_host *host_get(struct pool *p, const char *id, const char *route)
{
	struct pool_host *h;

	for (h = p->hosts; h != NULL; h = h->next)
		if (strcmp(h->id, id) == 0)
			return h;
	h = xcalloc(1, sizeof(*h));
	h->id = xstrdup(id);
	h->route = xstrdup(route);
	h->next = p->hosts;
	p->hosts = h;
	return h;
}

static bool host_is_down(const struct pool_host *h, time_t now)
{
	return h != NULL && h->down_until > now;
}

/* state_changed - a host went up or down: write the state file now */
static void state_changed(struct pool *p)
{
	struct weir_config *cfg = config_current();

	if (cfg != NULL)
		pool_write_state(p, cfg);
	config_unref(cfg);
}

/* host_failed - connect, greeting or TLS failure: down for a while */
static void host_failed(struct pool *p, struct pool_host *h, const struct weir_config *cfg,
                        const char *why)
{
	long backoff = cfg->agent.host_backoff, cap = backoff > BACKOFF_MAX ? backoff : BACKOFF_MAX;

	for (int i = 1; i < h->failures + 1 && backoff < cap; i++)
		backoff *= 2;
	if (backoff > cap)
		backoff = cap;
	h->failures++;
	h->down_until = time(NULL) + backoff;
	snprintf(h->last_error, sizeof(h->last_error), "%s", why);
	log_warning("host=%s route=%s state=down failures=%d backoff=%lds reason=\"%s\"", h->id,
	            h->route, h->failures, backoff, why);
	state_changed(p);
}

/* host_ok - a session opened: the host is up */
static void host_ok(struct pool *p, struct pool_host *h)
{
	if (h->failures == 0 && h->down_until == 0)
		return;
	log_info("host=%s route=%s state=up after %d failures", h->id, h->route, h->failures);
	h->failures = 0;
	h->down_until = 0;
	state_changed(p);
}

/* wrr_get - route's balancing state for its current host list */
static struct pool_wrr *wrr_get(struct pool *p, const struct route *r)
{
	struct pool_wrr *w;

	for (w = p->wrr; w != NULL; w = w->next)
		if (strcmp(w->route, r->name) == 0)
			break;
	if (w != NULL) {
		bool same = w->n == r->nhosts;
		for (size_t i = 0; same && i < w->n; i++)
			same = strcmp(w->ids[i], r->hosts[i].id) == 0;
		if (same)
			return w;
		for (size_t i = 0; i < w->n; i++)
			free(w->ids[i]);
		free(w->ids);
		free(w->cw);
	} else {
		w = xcalloc(1, sizeof(*w));
		w->route = xstrdup(r->name);
		w->next = p->wrr;
		p->wrr = w;
	}
	w->n = r->nhosts;
	w->ids = xcalloc(w->n + 1, sizeof(*w->ids));
	w->cw = xcalloc(w->n + 1, sizeof(*w->cw));
	for (size_t i = 0; i < w->n; i++)
		w->ids[i] = xstrdup(r->hosts[i].id);
	return w;
}

/* pick - the next host to try: among the untried up hosts, the first
 * (ordered) or by smooth weighted round robin among those of the lowest
 * priority; when none is up, the untried one that recovers first.
 * -1 when every host was tried. */
static long pick(struct pool_req *q)
{
	time_t now = time(NULL);
	long best = -1, soonest = -1;
	int prio = -1;
	long total = 0;
	struct pool_wrr *w;

	for (size_t i = 0; i < q->n; i++) {
		const struct route_host *rh = &q->hosts[i];
		struct pool_host *h;
		if (q->tried[i])
			continue;
		h = host_get(q->p, rh->id, q->route->name);
		if (host_is_down(h, now)) {
			if (soonest < 0 ||
			    h->down_until < host_get(q->p, q->hosts[soonest].id, "")->down_until)
				soonest = (long)i;
			continue;
		}
		if (q->ordered)
			return (long)i;
		if (prio < 0 || rh->priority < prio)
			prio = rh->priority;
	}
	if (prio < 0)
		return soonest;
	w = wrr_get(q->p, q->route);
	for (size_t i = 0; i < q->n; i++) {
		const struct route_host *rh = &q->hosts[i];
		if (q->tried[i] || rh->priority != prio ||
		    host_is_down(host_get(q->p, rh->id, ""), now))
			continue;
		w->cw[i] += rh->weight;
		total += rh->weight;
		if (best < 0 || w->cw[i] > w->cw[best])
			best = (long)i;
	}
	w->cw[best] -= total;
	return best;
}

/* finish - hand the result to the caller and free q */
static void finish(struct pool_req *q, struct pool_session *s, const struct smtp_reply *reply,
                   const char *fail)
{
	pool_cb *cb = q->cb;
	void *ctx = q->ctx;
	char *copy = fail ? xstrdup(fail) : NULL; /* fail may be q->last_fail */
	char *host = q->cur_rh ? xstrdup(q->cur_rh->host) : NULL;
	struct smtp_reply refusal = q->refusal; /* q is freed below */

	smtp_reply_init(&q->refusal);
	q->s = NULL;
	pool_cancel(q);
	if (reply == NULL && copy != NULL && refusal.code != 0)
		reply = &refusal;
	cb(ctx, s, reply, copy, host);
	smtp_reply_clear(&refusal);
	free(copy);
	free(host);
}

static void session_free(struct pool_session *s)
{
	struct pool_host *h = s->host;

	upstream_free(s->up);
	event_free(s->idle_timer);
	h->open--;
	free(s);
}

/* wake - a slot or an idle session of h may be free: the first waiter
 * tries again */
static void wake(struct pool_host *h)
{
	struct pool_req *q = h->waiters;

	if (q == NULL)
		return;
	h->waiters = q->wnext;
	if (h->waiters == NULL)
		h->waiters_tail = NULL;
	q->wnext = NULL;
	q->waiting = false;
	evtimer_del(q->wait_timer);
	acquire(q);
}

/* idle_unlink - take s off its host's idle list */
static void idle_unlink(struct pool_session *s)
{
	struct pool_host *h = s->host;

	if (!s->idle)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		h->idle = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	s->idle = false;
	h->nidle--;
	evtimer_del(s->idle_timer);
}

/* idle_expired - session_idle passed: QUIT */
static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
	struct pool_session *s = arg;
	struct pool_host *h = s->host;

	(void)fd;
	(void)what;
	log_debug("host=%s idle session closed", h->id);
	idle_unlink(s);
	session_free(s);
	wake(h);
}

/* opened - the new session is ready, or failed */
static void opened(void *arg, const struct smtp_reply *reply, const char *fail)
{
	struct pool_req *q = arg;
	struct pool_session *s = q->s;
	enum upstream_failure why;

	if (fail == NULL && reply != NULL && reply->code / 100 == 2) {
		host_ok(q->p, q->cur);
		finish(q, s, NULL, NULL);
		return;
	}
	why = upstream_failure(s->up);
	if (fail == NULL) {
		/* the upstream's own 5xx while opening (AUTH refused, reject):
		 * copied, as it may live in the upstream freed below */
		struct smtp_reply copy = *reply;
		copy.text = reply->text ? xstrndup(reply->text, reply->text_len) : NULL;
		q->s = NULL;
		session_free(s);
		wake(q->cur);
		finish(q, NULL, &copy, NULL);
		smtp_reply_clear(&copy);
		return;
	}
	q->s = NULL;
	smtp_reply_clear(&q->refusal);
	if (upstream_refusal(s->up) != NULL) {
		const struct smtp_reply *r = upstream_refusal(s->up);
		q->refusal = *r;
		q->refusal.text = r->text ? xstrndup(r->text, r->text_len) : NULL;
	}
	session_free(s);
	wake(q->cur);
	snprintf(q->last_fail, sizeof(q->last_fail), "%s", fail);
	if (why == UPF_CONNECT || why == UPF_GREETING || why == UPF_TLS) {
		host_failed(q->p, q->cur, q->cfg, fail);
		next_host(q);
		return;
	}
	if (why == UPF_AUTH) {
		finish(q, NULL, NULL, q->last_fail);
		return;
	}
	next_host(q); /* EHLO refused, a timeout later on: another host may do */
}

/* reset_done - RSET on an idle session before reuse */
static void reset_done(void *arg, const struct smtp_reply *reply, const char *fail)
{
	struct pool_req *q = arg;
	struct pool_session *s = q->s;

	if (fail == NULL && reply->code / 100 == 2) {
		upstream_set_in_txn(s->up, false);
		finish(q, s, NULL, NULL);
		return;
	}
	q->s = NULL;
	session_free(s);
	acquire(q); /* a fresh session of the same host */
}

/* wait_expired - no slot of the host came free in connect_timeout */
static void wait_expired(evutil_socket_t fd, short what, void *arg)
{
	struct pool_req *q = arg;
	struct pool_host *h = q->cur;
	struct pool_req **pp;
	char line[512];

	(void)fd;
	(void)what;
	for (pp = &h->waiters; *pp != NULL && *pp != q; pp = &(*pp)->wnext)
		;
	if (*pp == q)
		*pp = q->wnext;
	h->waiters_tail = NULL;
	for (struct pool_req *w = h->waiters; w != NULL; w = w->wnext)
		h->waiters_tail = w;
	q->waiting = false;
	snprintf(line, sizeof(line),
	         "451 4.4.5 smart host %s: all %u sessions busy for %lds, try again later", h->id,
	         h->open, q->cfg->agent.connect_timeout);
	finish(q, NULL, NULL, line);
}

/* max_conn - the host's session limit */
static unsigned max_conn(const struct pool_req *q)
{
	return q->cur_rh->max_connections > 0 ? (unsigned)q->cur_rh->max_connections
	                                      : (unsigned)q->cfg->agent.max_connections;
}

/* acquire - a session of the current host: idle, new, or wait */
static void acquire(struct pool_req *q)
{
	struct pool_host *h = q->cur;
	struct pool_session *s;

	while ((s = h->idle) != NULL) {
		idle_unlink(s);
		if (!upstream_ready(s->up) || (q->max_messages > 0 && s->messages >= q->max_messages)) {
			session_free(s); /* closed by the server while idle, or used up */
			continue;
		}
		if (q->max_messages > 0 && s->max_messages > q->max_messages)
			s->max_messages = q->max_messages;
		q->s = s;
		s->reused = true;
		if (upstream_in_txn(s->up)) {
			upstream_command(s->up, "RSET", reset_done, q);
			return;
		}
		finish(q, s, NULL, NULL);
		return;
	}
	if (h->open >= max_conn(q)) {
		struct timeval tv = {q->cfg->agent.connect_timeout, 0};
		q->waiting = true;
		if (h->waiters_tail)
			h->waiters_tail->wnext = q;
		else
			h->waiters = q;
		h->waiters_tail = q;
		evtimer_add(q->wait_timer, &tv);
		log_debug("host=%s all %u sessions busy: waiting", h->id, h->open);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->host = h;
	s->idle_timer = evtimer_new(q->p->base, idle_expired, s);
	s->max_messages = (unsigned)(q->cur_rh->max_messages > 0 ? q->cur_rh->max_messages
	                                                         : q->cfg->agent.max_messages);
	if (q->max_messages > 0 && s->max_messages > q->max_messages)
		s->max_messages = q->max_messages;
	s->idle_secs = q->cfg->agent.session_idle;
	s->up = upstream_new_host(q->p->base, q->dns, q->cfg, q->cur_rh);
	h->open++;
	q->s = s;
	upstream_open(s->up, opened, q);
}

/* next_host - pick an untried host and get a session of it */
static void next_host(struct pool_req *q)
{
	long i = pick(q);

	if (i < 0) {
		finish(q, NULL, NULL,
		       q->last_fail[0] ? q->last_fail : "451 4.4.0 no smart host to try");
		return;
	}
	q->tried[i] = true;
	q->cur_rh = &q->hosts[i];
	q->cur = host_get(q->p, q->cur_rh->id, q->route->name);
	if (q->cur_rh != NULL && q->route->mx && q->cur->own == NULL) {
		/* keep a copy the upstream can borrow beyond this request */
		struct route_host *c = xcalloc(1, sizeof(*c));
		*c = *q->cur_rh;
		c->host = xstrdup(q->cur_rh->host);
		c->id = xstrdup(q->cur_rh->id);
		c->ca_file = c->credentials = c->oauth2_token_file = c->helo = NULL;
		q->cur->own = c;
	}
	if (q->cur->own != NULL)
		q->cur_rh = q->cur->own;
	if (host_is_down(q->cur, time(NULL)))
		log_info("host=%s route=%s: every host is down; trying the one that recovers first",
		         q->cur->id, q->route->name);
	acquire(q);
}

/* start - first step, from the event loop */
static void start(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	next_host(arg);
}

struct pool_req *pool_open(struct pool *p, struct dns *dns, struct weir_config *cfg,
                           const struct route *route, const struct route_host *hosts, size_t n,
                           bool ordered, unsigned max_messages, pool_cb *cb, void *ctx)
{
	struct pool_req *q = xcalloc(1, sizeof(*q));

	q->p = p;
	q->dns = dns;
	q->cfg = cfg;
	q->route = route;
	q->hosts = hosts;
	q->n = n;
	q->tried = xcalloc(n + 1, sizeof(*q->tried));
	q->ordered = ordered;
	q->max_messages = max_messages;
	q->cb = cb;
	q->ctx = ctx;
	q->kick = evtimer_new(p->base, start, q);
	q->wait_timer = evtimer_new(p->base, wait_expired, q);
	event_active(q->kick, EV_TIMEOUT, 0);
	return q;
}

void pool_cancel(struct pool_req *q)
{
	if (q == NULL)
		return;
	if (q->waiting) {
		struct pool_req **pp;
		for (pp = &q->cur->waiters; *pp != NULL && *pp != q; pp = &(*pp)->wnext)
			;
		if (*pp == q)
			*pp = q->wnext;
		q->cur->waiters_tail = NULL;
		for (struct pool_req *w = q->cur->waiters; w != NULL; w = w->wnext)
			q->cur->waiters_tail = w;
	}
	if (q->s != NULL) {
		struct pool_host *h = q->s->host;
		session_free(q->s); /* being opened or reset: its callback goes too */
		wake(h);
	}
	event_free(q->kick);
	event_free(q->wait_timer);
	smtp_reply_clear(&q->refusal);
	free(q->tried);
	free(q);
}

struct upstream *pool_session_upstream(struct pool_session *s)
{
	return s->up;
}

const char *pool_session_host(const struct pool_session *s)
{
	return s->host->id;
}

void pool_session_sent(struct pool_session *s)
{
	s->host->sent++;
}

bool pool_session_reused(const struct pool_session *s)
{
	return s->messages > 0 || s->reused;
}

void pool_session_used(struct pool_session *s)
{
	s->messages++;
}

void pool_release(struct pool_session *s)
{
	struct pool_host *h;
	struct timeval tv = {0, 0};

	if (s == NULL)
		return;
	h = s->host;
	tv.tv_sec = s->idle_secs;
	if (!upstream_ready(s->up) || s->messages >= s->max_messages) {
		session_free(s);
		wake(h);
		return;
	}
	s->idle = true;
	s->prev = NULL;
	s->next = h->idle;
	if (h->idle)
		h->idle->prev = s;
	h->idle = s;
	h->nidle++;
	evtimer_add(s->idle_timer, &tv);
	wake(h);
}

void pool_discard(struct pool_session *s)
{
	struct pool_host *h;

	if (s == NULL)
		return;
	h = s->host;
	session_free(s);
	wake(h);
}

/* state_tick - the periodic state file write */
static void state_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	state_changed(arg);
}

struct pool *pool_new(struct event_base *base)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	struct timeval tv = {STATE_INTERVAL, 0};

	p->base = base;
	p->state_timer = event_new(base, -1, EV_PERSIST, state_tick, p);
	evtimer_add(p->state_timer, &tv);
	return p;
}

void pool_flush_idle(struct pool *p)
{
	for (struct pool_host *h = p->hosts; h != NULL; h = h->next)
		while (h->idle != NULL) {
			struct pool_session *s = h->idle;
			idle_unlink(s);
			session_free(s);
		}
}

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	pool_flush_idle(p);
	while (p->hosts != NULL) {
		struct pool_host *h = p->hosts;
		p->hosts = h->next;
		if (h->own != NULL) {
			free(h->own->host);
			free(h->own->id);
			free(h->own);
		}
		free(h->id);
		free(h->route);
		free(h);
	}
	while (p->wrr != NULL) {
		struct pool_wrr *w = p->wrr;
		p->wrr = w->next;
		for (size_t i = 0; i < w->n; i++)
			free(w->ids[i]);
		free(w->ids);
		free(w->cw);
		free(w->route);
		free(w);
	}
	event_free(p->state_timer);
	free(p);
}

/* host_info - fn with what h (NULL: never used) shows */
static void host_info(const char *route, const char *id, const struct pool_host *h, time_t now,
                      void (*fn)(void *ctx, const struct pool_host_info *hi), void *ctx)
{
	bool down = host_is_down(h, now);
	struct pool_host_info hi = {
	    .route = route,
	    .id = id,
	    .up = !down,
	    .down_until = down ? (long long)h->down_until : 0,
	    .failures = h ? h->failures : 0,
	    .open = h ? h->open : 0,
	    .sent = h ? h->sent : 0,
	    .idle = h ? h->nidle : 0,
	    .error = h && h->last_error[0] ? h->last_error : NULL,
	};

	fn(ctx, &hi);
}

void pool_foreach_host(struct pool *p, const struct weir_config *cfg,
                       void (*fn)(void *ctx, const struct pool_host_info *hi), void *ctx)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		for (size_t j = 0; j < r->nhosts; j++) {
			const struct pool_host *h;
			for (h = p->hosts; h != NULL && strcmp(h->id, r->hosts[j].id) != 0;
			     h = h->next)
				;
			host_info(r->name, r->hosts[j].id, h, now, fn, ctx);
		}
		if (r->mx)
			for (const struct pool_host *h = p->hosts; h != NULL; h = h->next)
				if (h->own != NULL && strcmp(h->route, r->name) == 0)
					host_info(r->name, h->id, h, now, fn, ctx);
	}
}

/* write_host - one "host" line of the state file */
static void write_host(FILE *f, const char *route, const char *id, const struct pool_host *h,
                       time_t now)
{
	bool down = host_is_down(h, now);

	fprintf(f, "host route=%s id=%s state=%s until=%lld failures=%d open=%u idle=%zu sent=%u",
	        route, id, down ? "down" : "up", down ? (long long)h->down_until : 0LL,
	        h ? h->failures : 0, h ? h->open : 0, h ? h->nidle : 0, h ? h->sent : 0);
	fprintf(f, " error=%s\n", h && h->last_error[0] ? h->last_error : "-");
}

void pool_write_state(struct pool *p, const struct weir_config *cfg)
{
	const char *path = cfg->agent.state_file;
	time_t now = time(NULL);
	char *tmp;
	FILE *f;

	if (path == NULL || path[0] == '\0')
		return;
	tmp = xasprintf("%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL) {
		if (!p->state_error_logged)
			log_warning("state file %s: %s (weirctl route show will not see this "
			            "agent)",
			            tmp, strerror(errno));
		p->state_error_logged = true;
		free(tmp);
		return;
	}
	fprintf(f, "# weir-agent state: host health (weirctl route show)\n");
	fprintf(f, "time %lld\npid %ld\n", (long long)now, (long)getpid());
	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		fprintf(f, "route name=%s mx=%s default=%s\n", r->name, r->mx ? "yes" : "no",
		        r->is_default ? "yes" : "no");
		for (size_t j = 0; j < r->nhosts; j++) {
			const struct pool_host *h;
			for (h = p->hosts; h != NULL && strcmp(h->id, r->hosts[j].id) != 0;
			     h = h->next)
				;
			write_host(f, r->name, r->hosts[j].id, h, now);
		}
		if (r->mx)
			for (const struct pool_host *h = p->hosts; h != NULL; h = h->next)
				if (h->own != NULL && strcmp(h->route, r->name) == 0)
					write_host(f, r->name, h->id, h, now);
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		if (!p->state_error_logged)
			log_warning("state file %s: %s", path, strerror(errno));
		p->state_error_logged = true;
		unlink(tmp);
	} else {
		p->state_error_logged = false;
	}
	free(tmp);
}
