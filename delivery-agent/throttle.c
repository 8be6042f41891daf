/* throttle - weir-agent's side of the throttle (see throttle.h)
 *
 * An admission takes the limiters of one recipient (policy/throttle.c:
 * destination, route, sender) and splits them: those the transaction
 * already holds only count the recipient against `recipients` (452 4.5.3
 * beyond it: the MTA sends the rest in another transaction at once); the
 * others are charged once for the transaction: a session and a rate slot.
 * A suspended limiter, or one with max_waiting RCPTs already waiting,
 * answers 451 at once. Sessions full: the RCPT waits in a FIFO for the
 * limiter; a release hands the session straight to the first waiter
 * (nobody can slip in between), which then tries again from the event
 * loop. Then the rate: throttle_reserve either commits a slot now or in
 * delay ms (the RCPT waits on a timer with its sessions already taken),
 * or says no. The time spent waiting for a session counts against
 * throttle.wait. While an RCPT waits its client is busy (its input
 * stays buffered); other connections go on.
 *
 * Ownership: the agent owns one struct throttle_agent (a->throttle);
 * each transaction owns a struct throttle_txn (c->txn.throttle), freed
 * by throttle_txn_end, which also frees a pending admission (cancelling
 * its timer, FIFO place and MX lookup). Limiter pointers stay valid for
 * the life of the engine, across reloads. */
#include "autoconf.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/stats.h"
#include "delivery-agent/throttle.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/smtp_reply.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/throttle.h"

#define STATE_TICK_MS 1000 /* state file: at most once a second */

struct admission;

struct throttle_agent {
	struct throttle *t;
	struct event_base *base;
	bool needs_mx;
	long long wait_ms;
	int max_waiting;
	char *state_file; /* "" none */
	bool state_error_logged;
	struct event *state_timer;
	struct admission *fifo, *fifo_tail; /* waiting for a session, in order */
};

/* The MX host names of one recipient domain, per transaction */
struct mx_names {
	char *domain;
	char **names;
	size_t n;
};

/* A limiter the transaction holds (charged, a session taken) */
struct held {
	struct throttle_limiter *l;
	int rcpts;
};

struct throttle_txn {
	struct held *held;
	size_t nheld;
	struct mx_names *mx;
	size_t nmx;
	struct admission *pending;
};

enum adm_state {
	A_NEW,
	A_DNS,   /* MX lookup */
	A_FIFO,  /* waiting for a session of wait_for (timer: the deadline) */
	A_WOKEN, /* wait_for's session was handed over: try again */
	A_DELAY, /* reserved: go when the timer fires */
};

struct admission {
	struct throttle_agent *ta;
	struct client *c;
	char *rcpt, *rdom, *route, *sdom;
	admit_cb *done;
	enum adm_state state;
	long long deadline_ms;
	struct dns_query *q;
	struct event *timer;
	struct throttle_limiter *wait_for;
	struct throttle_limiter *granted[THROTTLE_KINDS]; /* sessions handed over */
	size_t ngranted;
	struct throttle_limiter *waiting[THROTTLE_KINDS]; /* counted as waiting on */
	size_t nwaiting;
	struct throttle_limiter *dest_lim;
	struct admission *fnext, *fprev;
};

/* now_ms - the wall clock in ms (the engine's unit) */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* configure - the settings the agent side reads itself */
static void configure(struct throttle_agent *ta, struct weir_config *cfg)
{
	ta->needs_mx = throttle_needs_mx(cfg);
	ta->wait_ms = (long long)cfg->throttle.wait * 1000;
	ta->max_waiting = cfg->throttle.max_waiting;
	free(ta->state_file);
	ta->state_file = xstrdup(cfg->throttle.state_file ? cfg->throttle.state_file : "");
	ta->state_error_logged = false;
}

/* write_state - the state file now; an error is logged once until a
 * write succeeds again */
static void write_state(struct throttle_agent *ta)
{
	char *err = NULL;

	if (ta->state_file[0] == '\0')
		return;
	if (throttle_state_write(ta->t, ta->state_file, now_ms(), &err) < 0) {
		if (!ta->state_error_logged)
			log_warning("throttle state file %s: %s (weirctl throttle show will not see "
			            "this agent)",
			            ta->state_file, err ? err : "error");
		ta->state_error_logged = true;
	} else {
		ta->state_error_logged = false;
	}
	free(err);
}

/* state_tick - once a second: the state file when something changed */
static void state_tick(evutil_socket_t fd, short what, void *arg)
{
	struct throttle_agent *ta = arg;

	(void)fd;
	(void)what;
	if (throttle_state_changed(ta->t))
		write_state(ta);
}

static void agent_throttle_new(struct agent *a, struct weir_config *cfg)
{
	struct throttle_agent *ta = xcalloc(1, sizeof(*ta));
	struct timeval tv = {STATE_TICK_MS / 1000, (STATE_TICK_MS % 1000) * 1000};

	ta->t = throttle_new(cfg);
	ta->base = a->base;
	configure(ta, cfg);
	ta->state_timer = event_new(a->base, -1, EV_PERSIST, state_tick, ta);
	evtimer_add(ta->state_timer, &tv);
	a->throttle = ta;
	write_state(ta);
}

void throttle_agent_start(struct agent *a, struct weir_config *cfg)
{
	if (throttle_active(cfg))
		agent_throttle_new(a, cfg);
}

void throttle_agent_reload(struct agent *a, struct weir_config *cfg)
{
	/* once made, the engine stays (transactions hold its limiters);
	 * with nothing configured it matches nothing */
	if (a->throttle == NULL) {
		throttle_agent_start(a, cfg);
		return;
	}
	throttle_reconfigure(a->throttle->t, cfg);
	configure(a->throttle, cfg);
	write_state(a->throttle);
}

struct throttle *throttle_agent_engine(struct agent *a)
{
	return a->throttle != NULL ? a->throttle->t : NULL;
}

void throttle_agent_stop(struct agent *a)
{
	struct throttle_agent *ta = a->throttle;

	if (ta == NULL)
		return;
	write_state(ta);
	event_free(ta->state_timer);
	throttle_free(ta->t);
	free(ta->state_file);
	free(ta);
	a->throttle = NULL;
}

/* ---- the transaction's limiters ---- */

static struct throttle_txn *txn_of(struct client *c)
{
	if (c->txn.throttle == NULL)
		c->txn.throttle = xcalloc(1, sizeof(*c->txn.throttle));
	return c->txn.throttle;
}

static struct held *held_find(struct throttle_txn *tx, const struct throttle_limiter *l)
{
	for (size_t i = 0; i < tx->nheld; i++)
		if (tx->held[i].l == l)
			return &tx->held[i];
	return NULL;
}

static const struct mx_names *mx_find(const struct throttle_txn *tx, const char *domain)
{
	for (size_t i = 0; i < tx->nmx; i++)
		if (strcmp(tx->mx[i].domain, domain) == 0)
			return &tx->mx[i];
	return NULL;
}

/* ---- waiting ---- */

static void fifo_unlink(struct admission *ad)
{
	struct throttle_agent *ta = ad->ta;

	if (ad->fprev)
		ad->fprev->fnext = ad->fnext;
	else if (ta->fifo == ad)
		ta->fifo = ad->fnext;
	if (ad->fnext)
		ad->fnext->fprev = ad->fprev;
	else if (ta->fifo_tail == ad)
		ta->fifo_tail = ad->fprev;
	ad->fnext = ad->fprev = NULL;
}

static void fifo_append(struct admission *ad)
{
	struct throttle_agent *ta = ad->ta;

	ad->fprev = ta->fifo_tail;
	ad->fnext = NULL;
	if (ta->fifo_tail)
		ta->fifo_tail->fnext = ad;
	else
		ta->fifo = ad;
	ta->fifo_tail = ad;
}

/* wake - a session of l was released: hand it to the first RCPT waiting
 * for it, which tries again from the event loop */
static void wake(struct throttle_agent *ta, struct throttle_limiter *l)
{
	for (struct admission *ad = ta->fifo; ad != NULL; ad = ad->fnext) {
		if (ad->wait_for != l)
			continue;
		if (!throttle_session_free(l, now_ms()))
			return;
		fifo_unlink(ad);
		throttle_session_take(l);
		ad->granted[ad->ngranted++] = l;
		ad->wait_for = NULL;
		ad->state = A_WOKEN;
		event_active(ad->timer, EV_TIMEOUT, 0);
		return;
	}
}

/* waiting_set - count ad as waiting on the new limiters of m (or on none) */
static void waiting_set(struct admission *ad, const struct throttle_match *m)
{
	for (size_t i = 0; i < ad->nwaiting; i++)
		throttle_waiting_add(ad->waiting[i], -1);
	ad->nwaiting = 0;
	for (size_t i = 0; m != NULL && i < m->n; i++) {
		throttle_waiting_add(m->l[i], 1);
		ad->waiting[ad->nwaiting++] = m->l[i];
	}
}

/* give_back - the sessions handed over to ad, when it will not use them */
static void give_back(struct admission *ad)
{
	while (ad->ngranted > 0) {
		struct throttle_limiter *l = ad->granted[--ad->ngranted];
		throttle_session_release(l);
		wake(ad->ta, l);
	}
}

static struct admission *admission_new(struct client *c, const char *rcpt, const char *route,
                                       const char *rdom, admit_cb *done);

/* admission_free - forget ad (nothing it committed is undone except the
 * sessions handed over to it, unless keep_granted) */
static void admission_free(struct admission *ad, bool keep_granted)
{
	struct throttle_txn *tx = ad->c->txn.throttle;

	if (ad->q != NULL)
		dns_cancel(ad->q);
	if (ad->state == A_FIFO)
		fifo_unlink(ad);
	waiting_set(ad, NULL);
	if (!keep_granted)
		give_back(ad);
	if (tx != NULL && tx->pending == ad)
		tx->pending = NULL;
	event_free(ad->timer);
	free(ad->rcpt);
	free(ad->rdom);
	free(ad->route);
	free(ad->sdom);
	free(ad);
}

/* ---- answers ---- */

static void deferred_log(struct admission *ad, struct throttle_limiter *l, const char *reason)
{
	const char *route = ad->route != NULL ? ad->route : "none";

	throttle_deferred(l);
	stats_throttle_deferred(ad->c->agent->stats, throttle_limiter_key(l), reason);
	stats_delivery(ad->c->agent->stats, "deferred", route);
	log_info("conn=%lu throttle=%s status=deferred reason=%s rcpt=<%s>", ad->c->id,
	         throttle_limiter_key(l), reason, ad->rcpt);
}

/* refuse_limit - 451 for the rate ("20/s") or the sessions ("10
 * sessions") of l */
static void refuse_limit(struct admission *ad, struct throttle_limiter *l, const char *reason,
                         bool sessions)
{
	struct throttle_limits lim = throttle_limiter_limits(l, now_ms());
	char text[64];

	/* only the dimension that refused, whatever else l limits */
	if (sessions)
		lim.n = 0;
	else
		lim.sessions = 0;
	lim.messages_per_session = lim.recipients = 0;
	throttle_rate_text(&lim, text, sizeof(text));
	client_reply(ad->c, "451 4.7.0 <%s>: throttled: %s at %s, retry", ad->rcpt,
	             throttle_limiter_key(l), text);
	deferred_log(ad, l, reason);
}

/* refuse_waiting - 451 at once: max_waiting RCPTs already wait on l */
static void refuse_waiting(struct admission *ad, struct throttle_limiter *l, int waiting)
{
	client_reply(ad->c, "451 4.7.0 <%s>: throttled: %s busy, %d waiting, retry", ad->rcpt,
	             throttle_limiter_key(l), waiting);
	deferred_log(ad, l, "waiting");
}

/* refuse_suspended - 451 until the suspension ends */
static void refuse_suspended(struct admission *ad, struct throttle_limiter *l, long long until)
{
	char iso[32] = "?", after[320] = "";
	const char *why = NULL;
	time_t secs;
	struct tm tm;

	if (throttle_suspended_until(l, now_ms(), &why) > until)
		until = throttle_suspended_until(l, now_ms(), &why);
	secs = (time_t)(until / 1000);
	if (gmtime_r(&secs, &tm) != NULL)
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (why != NULL && why[0] != '\0')
		snprintf(after, sizeof(after), " after \"%.300s\"", why);
	client_reply(ad->c, "451 4.7.0 <%s>: throttled: %s suspended until %s%s, retry", ad->rcpt,
	             throttle_limiter_key(l), iso, after);
	deferred_log(ad, l, "suspended");
}

/* ---- admission ---- */

static void adm_timer(evutil_socket_t fd, short what, void *arg);

/* go - every limiter of the recipient admits it: the transaction holds
 * the new ones (sessions taken, or handed over while waiting) */
static void go(struct admission *ad, const struct throttle_match *all,
               const struct throttle_match *fresh)
{
	struct throttle_txn *tx = txn_of(ad->c);

	for (size_t i = 0; i < fresh->n; i++) {
		bool granted = false;
		for (size_t j = 0; j < ad->ngranted; j++)
			if (ad->granted[j] == fresh->l[i]) {
				ad->granted[j] = ad->granted[--ad->ngranted];
				granted = true;
				break;
			}
		if (!granted)
			throttle_session_take(fresh->l[i]);
		tx->held = xrealloc(tx->held, (tx->nheld + 1) * sizeof(*tx->held));
		tx->held[tx->nheld].l = fresh->l[i];
		tx->held[tx->nheld++].rcpts = 0;
	}
	for (size_t i = 0; i < all->n; i++)
		held_find(tx, all->l[i])->rcpts++;
	give_back(ad); /* handed over for a limiter the recipient no longer has */
}

/* mx_of - the MX names of ad's domain when they matter and are known;
 * false when a lookup is needed first */
static bool mx_of(struct admission *ad, const char *const **names_r, size_t *n_r)
{
	struct throttle_txn *tx = txn_of(ad->c);
	const struct mx_names *mx;
	struct throttle_match m;

	*names_r = NULL;
	*n_r = 0;
	if (!ad->ta->needs_mx || ad->rdom == NULL || ad->rdom[0] == '[')
		return true;
	/* a group matching the domain itself comes before any MX match */
	throttle_match(ad->ta->t, ad->rdom, NULL, 0, ad->route, ad->sdom, &m);
	if (m.n > 0 && strncmp(throttle_limiter_key(m.l[0]), "group:", 6) == 0)
		return true;
	if ((mx = mx_find(tx, ad->rdom)) == NULL)
		return false;
	*names_r = (const char *const *)mx->names;
	*n_r = mx->n;
	return true;
}

static void mx_done(void *arg, enum dns_mx_status st, const struct dns_mx *mx, size_t n,
                    const char *err);

/* evaluate - one step of ad: go, refuse, or wait (see the head comment) */
static enum admit evaluate(struct admission *ad, bool may_wait)
{
	struct throttle_agent *ta = ad->ta;
	struct throttle_txn *tx = txn_of(ad->c);
	struct throttle_match all, fresh = {.n = 0};
	const char *const *mxn;
	size_t nmx, which = 0;
	long long now = now_ms(), delay = 0, until = 0;
	enum throttle_verdict v;

	if (!mx_of(ad, &mxn, &nmx)) {
		if (!may_wait)
			return ADMIT_LATER;
		ad->state = A_DNS;
		ad->q = dns_lookup_mx(ad->c->agent->dns, ad->rdom, mx_done, ad);
		return ADMIT_WAIT;
	}
	throttle_match(ta->t, ad->rdom, mxn, nmx, ad->route, ad->sdom, &all);
	ad->dest_lim = NULL;
	if (all.n > 0 && (strncmp(throttle_limiter_key(all.l[0]), "group:", 6) == 0 ||
	                  strncmp(throttle_limiter_key(all.l[0]), "domain:", 7) == 0))
		ad->dest_lim = all.l[0];
	waiting_set(ad, NULL);
	for (size_t i = 0; i < all.n; i++) {
		struct held *h = held_find(tx, all.l[i]);
		struct throttle_limits lim = throttle_limiter_limits(all.l[i], now);
		if (h == NULL) {
			fresh.l[fresh.n++] = all.l[i];
		} else if (lim.recipients > 0 && h->rcpts >= lim.recipients) {
			client_reply(ad->c,
			             "452 4.5.3 <%s>: too many recipients for %s in one transaction",
			             ad->rcpt, throttle_limiter_key(all.l[i]));
			log_info("conn=%lu throttle=%s status=deferred reason=recipients rcpt=<%s>",
			         ad->c->id, throttle_limiter_key(all.l[i]), ad->rcpt);
			return ADMIT_REFUSED;
		}
	}
	for (size_t i = 0; i < fresh.n; i++) {
		long long u = throttle_suspended_until(fresh.l[i], now, NULL);
		if (u > now) {
			refuse_suspended(ad, fresh.l[i], u);
			return ADMIT_REFUSED;
		}
	}
	for (size_t i = 0; i < fresh.n; i++)
		if (throttle_waiting(fresh.l[i]) >= ta->max_waiting) {
			refuse_waiting(ad, fresh.l[i], throttle_waiting(fresh.l[i]));
			return ADMIT_REFUSED;
		}
	if (ad->deadline_ms == 0)
		ad->deadline_ms = now + ta->wait_ms;
	for (size_t i = 0; i < fresh.n; i++) {
		bool granted = false;
		for (size_t j = 0; j < ad->ngranted; j++)
			granted = granted || ad->granted[j] == fresh.l[i];
		if (granted || throttle_session_free(fresh.l[i], now))
			continue;
		if (!may_wait)
			return ADMIT_LATER;
		if (now >= ad->deadline_ms) {
			refuse_limit(ad, fresh.l[i], "sessions", true);
			return ADMIT_REFUSED;
		}
		ad->state = A_FIFO;
		ad->wait_for = fresh.l[i];
		fifo_append(ad);
		waiting_set(ad, &fresh);
		struct timeval tv = {(ad->deadline_ms - now) / 1000,
		                     ((ad->deadline_ms - now) % 1000) * 1000};
		evtimer_add(ad->timer, &tv);
		return ADMIT_WAIT;
	}
	v = throttle_reserve(ta->t, &fresh, now, may_wait ? ad->deadline_ms - now : 0, &delay,
	                     &which, &until);
	switch (v) {
	case THROTTLE_GO: break;
	case THROTTLE_SUSPENDED: refuse_suspended(ad, fresh.l[which], until); return ADMIT_REFUSED;
	case THROTTLE_RATE:
	case THROTTLE_BACKEND:
	default:
		if (!may_wait)
			return ADMIT_LATER;
		refuse_limit(ad, fresh.l[which < fresh.n ? which : 0], "rate", false);
		return ADMIT_REFUSED;
	}
	go(ad, &all, &fresh);
	if (delay <= 0)
		return ADMIT_GO;
	/* the slot is ours in delay ms; the sessions are held meanwhile */
	ad->state = A_DELAY;
	waiting_set(ad, &fresh);
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	evtimer_add(ad->timer, &tv);
	return ADMIT_WAIT;
}

/* finish - an ADMIT_WAIT ends: tell the relay (ad is gone by then) */
static void finish(struct admission *ad, enum admit r)
{
	struct client *c = ad->c;
	admit_cb *done = ad->done;

	if (r == ADMIT_WAIT)
		return;
	if (r == ADMIT_GO)
		c->rcpt_lim = ad->dest_lim;
	admission_free(ad, false);
	if (c->closing)
		return; /* its last reply is being written: nothing more */
	done(c, r == ADMIT_GO);
}

/* mx_done - the MX of the recipient domain: a failure only means that
 * no group matches by MX */
static void mx_done(void *arg, enum dns_mx_status st, const struct dns_mx *mx, size_t n,
                    const char *err)
{
	struct admission *ad = arg;
	struct throttle_txn *tx = txn_of(ad->c);
	struct mx_names *e;

	ad->q = NULL;
	tx->mx = xrealloc(tx->mx, (tx->nmx + 1) * sizeof(*tx->mx));
	e = &tx->mx[tx->nmx++];
	e->domain = xstrdup(ad->rdom);
	e->n = st == DNS_MX_OK ? n : 0;
	e->names = xcalloc(e->n + 1, sizeof(*e->names));
	for (size_t i = 0; i < e->n; i++)
		e->names[i] = xstrdup(mx[i].name);
	if (st == DNS_MX_FAIL)
		log_info("conn=%lu throttle: MX lookup of %s failed (%s): no MX group matches it",
		         ad->c->id, ad->rdom, err ? err : "?");
	ad->state = A_NEW;
	finish(ad, evaluate(ad, true));
}

/* adm_timer - the deadline in the FIFO, a handed-over session, or the
 * reserved slot's time */
static void adm_timer(evutil_socket_t fd, short what, void *arg)
{
	struct admission *ad = arg;
	struct throttle_limiter *l = ad->wait_for;

	(void)fd;
	(void)what;
	switch (ad->state) {
	case A_FIFO:
		fifo_unlink(ad);
		ad->state = A_NEW;
		ad->wait_for = NULL;
		refuse_limit(ad, l, "sessions", true);
		finish(ad, ADMIT_REFUSED);
		return;
	case A_WOKEN: ad->state = A_NEW; finish(ad, evaluate(ad, true)); return;
	case A_DELAY: finish(ad, ADMIT_GO); return;
	default: return;
	}
}

static struct admission *admission_new(struct client *c, const char *rcpt, const char *route,
                                       const char *rdom, admit_cb *done)
{
	struct admission *ad = xcalloc(1, sizeof(*ad));

	ad->ta = c->agent->throttle;
	ad->c = c;
	ad->rcpt = xstrdup(rcpt);
	ad->rdom = rdom ? xstrdup(rdom) : NULL;
	ad->route = route ? xstrdup(route) : NULL;
	ad->sdom = c->txn.sender_domain ? xstrdup(c->txn.sender_domain) : NULL;
	ad->done = done;
	ad->timer = evtimer_new(c->agent->base, adm_timer, ad);
	return ad;
}

enum admit throttle_admit(struct client *c, const char *rcpt, const char *route, const char *rdom,
                          bool may_wait, admit_cb *done, struct throttle_limiter **dest_lim_r)
{
	struct admission *ad;
	enum admit r;

	*dest_lim_r = NULL;
	if (c->agent->throttle == NULL)
		return ADMIT_GO;
	ad = admission_new(c, rcpt, route, rdom, done);
	r = evaluate(ad, may_wait);
	if (r == ADMIT_WAIT) {
		txn_of(c)->pending = ad;
		return r;
	}
	*dest_lim_r = ad->dest_lim;
	admission_free(ad, false);
	return r;
}

void throttle_txn_end(struct client *c)
{
	struct throttle_txn *tx = c->txn.throttle;
	struct throttle_agent *ta = c->agent->throttle;

	if (tx == NULL)
		return;
	if (tx->pending != NULL)
		admission_free(tx->pending, false);
	c->txn.throttle = NULL;
	for (size_t i = 0; i < tx->nheld; i++) {
		throttle_session_release(tx->held[i].l);
		if (ta != NULL)
			wake(ta, tx->held[i].l);
	}
	for (size_t i = 0; i < tx->nmx; i++) {
		for (size_t j = 0; j < tx->mx[i].n; j++)
			free(tx->mx[i].names[j]);
		free(tx->mx[i].names);
		free(tx->mx[i].domain);
	}
	free(tx->mx);
	free(tx->held);
	free(tx);
}

/* ---- replies ---- */

void throttle_feed(struct client *c, struct throttle_limiter *l, const struct smtp_reply *r)
{
	struct throttle_agent *ta = c->agent->throttle;
	char text[401];
	size_t n = 0;

	if (ta == NULL || l == NULL || r == NULL)
		return;
	/* the text as one line: continuation lines joined with a space */
	for (size_t i = 0; r->text != NULL && i < r->text_len && n + 1 < sizeof(text); i++) {
		unsigned char ch = (unsigned char)r->text[i];
		text[n++] = ch == '\n' ? ' ' : (ch < ' ' || ch >= 0x7f) ? '?' : (char)ch;
	}
	text[n] = '\0';
	throttle_reply(ta->t, l, r->code, r->enhanced[0] ? r->enhanced : NULL, n ? text : NULL,
	               now_ms());
}

void throttle_delivered(struct client *c, struct throttle_limiter *l)
{
	if (c->agent->throttle != NULL && l != NULL)
		throttle_success(c->agent->throttle->t, l, now_ms());
}

int throttle_messages_per_session(struct client *c, struct throttle_limiter *l)
{
	if (c->agent->throttle == NULL || l == NULL)
		return 0;
	return throttle_limiter_limits(l, now_ms()).messages_per_session;
}
