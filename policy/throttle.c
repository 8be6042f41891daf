/* throttle - weir-agent's shaping per destination, the runtime part:
 * which limiters a recipient passes, GCRA reservations (local, or in
 * Redis through throttle_redis.c for a fleet), sessions, the adaptive
 * back-off state machine and the observed rate. Parsing is in
 * throttle_config.c and throttle_rules.c, the state file in
 * throttle_state.c.
 *
 * One thread (the agent's event loop); no locks. Times are the caller's
 * now_ms, so tests run on a fake clock. Theoretical arrival times are
 * kept in microseconds: 3/s over a minute is off by microseconds, not by
 * the 0.1 % whole milliseconds would give. */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/strmap.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/throttle.h"
#include "policy/throttle_int.h"
#include "policy/throttle_redis.h"

/* last_used_ms of a limiter matched but not yet seen at a known time:
 * the garbage collector starts its idle clock then */
#define MATCHED LLONG_MAX

/* throttle_iso - "2026-11-22T10:00:00Z" */
void throttle_iso(long long ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* tick - note now as the latest time seen */
static void tick(struct throttle *t, long long now_ms)
{
	if (now_ms > t->clock_ms)
		t->clock_ms = now_ms;
}

/* hits_reset - one empty ring of match times per rule of the configuration */
static void hits_reset(const struct throttle *t, struct throttle_limiter *l)
{
	const struct throttle_config *tc = &t->cfg->throttle;

	for (size_t i = 0; i < l->nhits; i++)
		free(l->hits[i].times);
	free(l->hits);
	l->hits = NULL;
	l->nhits = 0;
	if (!l->dest || tc->nrules == 0)
		return;
	l->hits = xcalloc(tc->nrules, sizeof(*l->hits));
	for (size_t i = 0; i < tc->nrules; i++)
		l->hits[i].times = xcalloc((size_t)tc->rules[i].threshold, sizeof(long long));
	l->nhits = tc->nrules;
}

/* limiter_free - a limiter and what it holds (strmap value free) */
static void limiter_free(void *p)
{
	struct throttle_limiter *l = p;

	for (size_t i = 0; i < l->nhits; i++)
		free(l->hits[i].times);
	free(l->hits);
	free(l->key);
	free(l->rule);
	free(l->reply);
	free(l);
}

/* limiter_get - the limiter called key, made on first use; its limits
 * refreshed from lim */
static struct throttle_limiter *limiter_get(struct throttle *t, const char *key, bool dest,
                                            const struct throttle_limits *lim)
{
	struct throttle_limiter *l = strmap_get(t->limiters, key);

	if (l == NULL) {
		l = xcalloc(1, sizeof(*l));
		l->key = xstrdup(key);
		l->dest = dest;
		l->owner = t;
		hits_reset(t, l);
		strmap_put(t->limiters, key, l);
	}
	l->lim = *lim;
	l->last_used_ms = MATCHED;
	return l;
}

/* redis_open - the fleet handle when throttle.backend is redis */
static void redis_open(struct throttle *t)
{
	char *err = NULL;

	t->redis = NULL;
	if (t->cfg->throttle.backend != THROTTLE_REDIS)
		return;
	if ((t->redis = throttle_redis_open(t->cfg, &err)) == NULL) {
		log_warning(
		    "throttle: redis unusable (%s): each instance uses its local share 1/%ld "
		    "of every rate",
		    err ? err : "?", t->cfg->throttle.fleet_size);
		t->redis_down = true;
		free(err);
	}
}

/* throttle_new - runtime state for cfg (a reference is taken) */
struct throttle *throttle_new(struct weir_config *cfg)
{
	struct throttle *t = xcalloc(1, sizeof(*t));

	t->cfg = config_ref(cfg);
	t->limiters = strmap_new();
	t->dirty = true; /* the first state file, even with nothing to show */
	redis_open(t);
	return t;
}

/* sender_entry - the first throttle.senders entry matching domain s */
static const struct throttle_named *sender_entry(const struct weir_config *cfg, const char *s)
{
	for (size_t i = 0; i < cfg->throttle.nsenders; i++) {
		const char *e = cfg->throttle.senders[i].name;
		size_t ns = strlen(s), ne = strlen(e);
		if (e[0] != '.'
		        ? strcasecmp(s, e) == 0
		        : strcasecmp(s, e + 1) == 0 || (ns > ne && strcasecmp(s + ns - ne, e) == 0))
			return &cfg->throttle.senders[i];
	}
	return NULL;
}

/* route_entry - the throttle.routes entry of route name */
static const struct throttle_named *route_entry(const struct weir_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->throttle.nroutes; i++)
		if (strcmp(cfg->throttle.routes[i].name, name) == 0)
			return &cfg->throttle.routes[i];
	return NULL;
}

/* key_limits - the limits cfg gives the limiter called key; false when
 * cfg no longer has it */
static bool key_limits(const struct weir_config *cfg, const char *key,
                       struct throttle_limits *lim_r)
{
	const struct throttle_named *e = NULL;

	if (strncmp(key, "group:", 6) == 0) {
		for (size_t i = 0; i < cfg->throttle.ngroups; i++)
			if (strcmp(cfg->throttle.groups[i].name, key + 6) == 0) {
				*lim_r = cfg->throttle.groups[i].lim;
				return true;
			}
	} else if (strncmp(key, "domain:", 7) == 0 && cfg->throttle.has_domains) {
		*lim_r = cfg->throttle.domains;
		return true;
	} else if (strncmp(key, "route:", 6) == 0) {
		e = route_entry(cfg, key + 6);
	} else if (strncmp(key, "sender:", 7) == 0) {
		e = sender_entry(cfg, key + 7);
	}
	if (e != NULL)
		*lim_r = e->lim;
	return e != NULL;
}

/* refresh - after a reload: l's limits from the new configuration (none
 * when it is gone: it then only lives until idle), its rule counts reset */
static void refresh(const char *key, void *value, void *ctx)
{
	struct throttle_limiter *l = value;
	struct throttle *t = ctx;

	if (!key_limits(t->cfg, key, &l->lim)) {
		memset(&l->lim, 0, sizeof(l->lim));
		l->lim.burst = 1;
	}
	hits_reset(t, l);
}

/* throttle_reconfigure - a reload: limits from cfg, state kept by key */
void throttle_reconfigure(struct throttle *t, struct weir_config *cfg)
{
	struct weir_config *old = t->cfg;

	t->cfg = config_ref(cfg);
	strmap_foreach(t->limiters, refresh, t);
	config_unref(old);
	throttle_redis_close(t->redis);
	t->redis_down = false;
	redis_open(t);
	t->dirty = true;
}

void throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	strmap_free(t->limiters, limiter_free);
	throttle_redis_close(t->redis);
	config_unref(t->cfg);
	free(t);
}

/* mx_matches - host h (any case, trailing dot allowed) is suffix s or
 * ends with "." s */
static bool mx_matches(const char *h, const char *s)
{
	size_t nh = strlen(h), ns = strlen(s);

	if (nh > 0 && h[nh - 1] == '.')
		nh--;
	if (nh == ns)
		return strncasecmp(h, s, ns) == 0;
	return nh > ns && h[nh - ns - 1] == '.' && strncasecmp(h + nh - ns, s, ns) == 0;
}

/* find_group - the first group whose domains match rdom, else the first
 * whose mx suffixes match one of the MX hosts */
static const struct throttle_group *find_group(const struct throttle_config *tc, const char *rdom,
                                               const char *const *mx, size_t nmx)
{
	for (size_t i = 0; i < tc->ngroups; i++)
		if (tc->groups[i].ndomains > 0 &&
		    domain_in_list(rdom, tc->groups[i].domains, tc->groups[i].ndomains))
			return &tc->groups[i];
	for (size_t i = 0; i < tc->ngroups; i++)
		for (size_t j = 0; j < tc->groups[i].nmx; j++)
			for (size_t k = 0; k < nmx; k++)
				if (mx[k] != NULL && mx_matches(mx[k], tc->groups[i].mx[j]))
					return &tc->groups[i];
	return NULL;
}

/* add - limiter key (made from prefix and name) to m */
static void add(struct throttle *t, struct throttle_match *m, const char *prefix, const char *name,
                bool dest, const struct throttle_limits *lim)
{
	char *key = xasprintf("%s%s", prefix, name);

	m->l[m->n++] = limiter_get(t, key, dest, lim);
	free(key);
}

/* throttle_match - the limiters of one recipient: destination, route,
 * sender */
void throttle_match(struct throttle *t, const char *rdom, const char *const *mx, size_t nmx,
                    const char *route, const char *sdom, struct throttle_match *m)
{
	const struct throttle_config *tc = &t->cfg->throttle;
	const struct throttle_group *g = rdom ? find_group(tc, rdom, mx, nmx) : NULL;
	const struct throttle_named *e;

	m->n = 0;
	if (g != NULL)
		add(t, m, "group:", g->name, true, &g->lim);
	else if (rdom != NULL && rdom[0] != '\0' && tc->has_domains)
		add(t, m, "domain:", rdom, true, &tc->domains);
	if (route != NULL && (e = route_entry(t->cfg, route)) != NULL)
		add(t, m, "route:", route, false, &e->lim);
	if (sdom != NULL && sdom[0] != '\0' && (e = sender_entry(t->cfg, sdom)) != NULL) {
		char *s = xstrdup(sdom);
		for (char *p = s; *p; p++)
			*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
		add(t, m, "sender:", s, false, &e->lim);
		free(s);
	}
}

const char *throttle_limiter_key(const struct throttle_limiter *l)
{
	return l->key;
}

/* slow_now - l is in slow state at now */
static bool slow_now(const struct throttle_limiter *l, long long now_ms)
{
	return l->state == LIMITER_SLOW && now_ms < l->until_ms;
}

/* throttle_limiter_limits - the limits in force at now (slow applied:
 * the rate's period stretched, sessions scaled, at least 1) */
struct throttle_limits throttle_limiter_limits(const struct throttle_limiter *l, long long now_ms)
{
	struct throttle_limits lim = l->lim;

	if (!slow_now(l, now_ms))
		return lim;
	if (lim.n > 0)
		lim.period_ms = (long long)((double)lim.period_ms / l->factor + 0.5);
	if (lim.sessions > 0) {
		lim.sessions = (int)(lim.sessions * l->factor);
		if (lim.sessions < 1)
			lim.sessions = 1;
	}
	return lim;
}

/* emission_us - the emission interval T of l at now, microseconds */
static long long emission_us(const struct throttle_limiter *l, long long now_ms)
{
	double T = (double)l->lim.period_ms * 1000.0 / (double)l->lim.n;

	if (slow_now(l, now_ms))
		T /= l->factor;
	return T < 1 ? 1 : (long long)(T + 0.5);
}

/* gcra - reserve one slot of l locally with interval T_us: true and
 * *delay_ms_r (committed), or false when the wait would exceed
 * max_delay_ms (nothing committed) */
static bool gcra(struct throttle_limiter *l, long long T_us, long long now_ms,
                 long long max_delay_ms, long long *delay_ms_r)
{
	long long now_us = now_ms * 1000;
	long long allow_us = l->tat_us - (l->lim.burst - 1) * T_us;
	long long delay_us = allow_us > now_us ? allow_us - now_us : 0;
	long long delay_ms = (delay_us + 999) / 1000;

	*delay_ms_r = delay_ms;
	if (delay_ms > max_delay_ms)
		return false;
	l->tat_us = (l->tat_us > now_us ? l->tat_us : now_us) + T_us;
	return true;
}

/* What one committed reservation was, to give it back */
struct undo {
	struct throttle_limiter *l;
	bool in_redis;
	long long old_tat_us, t_us;
};

/* redis_state - log the outage once, and once the end of it */
static void redis_state(struct throttle *t, bool down, const char *err)
{
	if (down && !t->redis_down)
		log_warning("throttle: redis unreachable (%s): each instance uses its local share "
		            "1/%ld of every rate",
		            err, t->cfg->throttle.fleet_size);
	else if (!down && t->redis_down)
		log_info("throttle: redis reachable again: rates are shared by the fleet");
	t->redis_down = down;
}

/* reserve_one - one slot of l's rate; u filled for an undo */
static enum throttle_verdict reserve_one(struct throttle *t, struct throttle_limiter *l,
                                         long long now_ms, long long max_delay_ms,
                                         long long *delay_ms_r, struct undo *u)
{
	long long T_us = emission_us(l, now_ms);
	char err[256] = "";
	int rc = -1;

	u->l = l;
	u->old_tat_us = l->tat_us;
	u->in_redis = false;
	if (t->redis != NULL) {
		u->t_us = T_us;
		rc = throttle_redis_reserve_us(t->redis, l->key, T_us, l->lim.burst, max_delay_ms,
		                               delay_ms_r, err, sizeof(err));
		if (rc >= 0) {
			redis_state(t, false, NULL);
			u->in_redis = true;
			return rc == 1 ? THROTTLE_GO : THROTTLE_RATE;
		}
		redis_state(t, true, err[0] ? err : "error");
	}
	if (t->redis_down) /* the local share of the fleet's rate */
		T_us *= t->cfg->throttle.fleet_size;
	if (gcra(l, T_us, now_ms, max_delay_ms, delay_ms_r))
		return THROTTLE_GO;
	return t->redis_down ? THROTTLE_BACKEND : THROTTLE_RATE;
}

/* undo_all - give back the reservations u[0..n) */
static void undo_all(struct throttle *t, const struct undo *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (u[i].in_redis)
			throttle_redis_unreserve_us(t->redis, u[i].l->key, u[i].t_us);
		else
			u[i].l->tat_us = u[i].old_tat_us;
	}
}

/* charge - one message counted for l at when_ms (the observed rate) */
static void charge(struct throttle_limiter *l, long long now_ms, long long when_ms)
{
	long long sec = when_ms / 1000;
	int i = (int)(sec % THROTTLE_OBSERVED);

	if (l->ring_sec[i] != sec) {
		l->ring_sec[i] = sec;
		l->ring_count[i] = 0;
	}
	l->ring_count[i]++;
	l->last_charge_ms = now_ms;
	l->last_used_ms = now_ms;
	l->owner->dirty = true;
}

/* throttle_observed - messages charged per second over the last minute */
double throttle_observed(const struct throttle_limiter *l, long long now_ms)
{
	long long sec = now_ms / 1000;
	unsigned long sum = 0;

	for (int i = 0; i < THROTTLE_OBSERVED; i++)
		if (l->ring_sec[i] > sec - THROTTLE_OBSERVED && l->ring_sec[i] <= sec)
			sum += l->ring_count[i];
	return (double)sum / THROTTLE_OBSERVED;
}

/* collectable - l holds nothing worth keeping at now */
static bool collectable(struct throttle_limiter *l, long long now_ms)
{
	if (l->last_used_ms == MATCHED) {
		l->last_used_ms = now_ms; /* the idle clock starts now */
		return false;
	}
	return l->sessions == 0 && l->waiting == 0 && l->state == LIMITER_NORMAL &&
	       l->tat_us <= now_ms * 1000 && now_ms - l->last_used_ms >= THROTTLE_IDLE_MS &&
	       (l->last_charge_ms == 0 || now_ms - l->last_charge_ms >= THROTTLE_IDLE_MS);
}

/* What a collection pass keeps */
struct gc_pass {
	struct strmap *keep;
	const struct throttle_match *protect;
	long long now_ms;
	size_t freed;
};

/* gc_one - keep l, or free it */
static void gc_one(const char *key, void *value, void *ctx)
{
	struct gc_pass *p = ctx;
	struct throttle_limiter *l = value;
	bool mine = false;

	for (size_t i = 0; p->protect != NULL && i < p->protect->n; i++)
		mine |= p->protect->l[i] == l;
	if (!mine && collectable(l, p->now_ms)) {
		limiter_free(l);
		p->freed++;
	} else {
		strmap_put(p->keep, key, l);
	}
}

/* throttle_gc - free idle limiters, at most once a minute; never those
 * of protect */
void throttle_gc(struct throttle *t, long long now_ms, const struct throttle_match *protect)
{
	struct gc_pass p = {.protect = protect, .now_ms = now_ms};

	if (t->last_gc_ms != 0 && now_ms - t->last_gc_ms < THROTTLE_GC_MS)
		return;
	t->last_gc_ms = now_ms;
	p.keep = strmap_new();
	strmap_foreach(t->limiters, gc_one, &p);
	strmap_free(t->limiters, NULL);
	t->limiters = p.keep;
}

/* throttle_reserve - one slot on each of m's rated limiters, all or none */
enum throttle_verdict throttle_reserve(struct throttle *t, const struct throttle_match *m,
                                       long long now_ms, long long max_delay_ms,
                                       long long *delay_ms_r, size_t *which_r,
                                       long long *until_ms_r)
{
	struct undo u[THROTTLE_KINDS];
	long long delay = 0, d;
	size_t nu = 0;

	tick(t, now_ms);
	*delay_ms_r = 0;
	*which_r = 0;
	*until_ms_r = 0;
	if (max_delay_ms < 0)
		max_delay_ms = 0;
	for (size_t i = 0; i < m->n; i++) {
		throttle_expire(t, m->l[i], now_ms);
		m->l[i]->last_used_ms = now_ms;
		if (m->l[i]->state == LIMITER_SUSPENDED) {
			*which_r = i;
			*until_ms_r = m->l[i]->until_ms;
			return THROTTLE_SUSPENDED;
		}
	}
	for (size_t i = 0; i < m->n; i++) {
		enum throttle_verdict v;
		if (m->l[i]->lim.n == 0)
			continue;
		if ((v = reserve_one(t, m->l[i], now_ms, max_delay_ms, &d, &u[nu])) !=
		    THROTTLE_GO) {
			undo_all(t, u, nu);
			*which_r = i;
			return v;
		}
		nu++;
		delay = d > delay ? d : delay;
	}
	for (size_t i = 0; i < m->n; i++)
		charge(m->l[i], now_ms, now_ms + delay);
	throttle_gc(t, now_ms, m);
	*delay_ms_r = delay;
	return THROTTLE_GO;
}

/* throttle_session_free - l may take one more session at now */
bool throttle_session_free(const struct throttle_limiter *l, long long now_ms)
{
	struct throttle_limits lim = throttle_limiter_limits(l, now_ms);

	return lim.sessions == 0 || l->sessions < lim.sessions;
}

void throttle_session_take(struct throttle_limiter *l)
{
	l->sessions++;
	l->owner->dirty = true;
}

void throttle_session_release(struct throttle_limiter *l)
{
	if (l->sessions > 0)
		l->sessions--;
	l->owner->dirty = true;
}

int throttle_waiting(const struct throttle_limiter *l)
{
	return l->waiting;
}

void throttle_waiting_add(struct throttle_limiter *l, int delta)
{
	l->waiting += delta;
	if (l->waiting < 0)
		l->waiting = 0;
	l->owner->dirty = true;
}

void throttle_deferred(struct throttle_limiter *l)
{
	l->deferred++;
	l->owner->dirty = true;
}

/* throttle_suspended_until - > now when suspended; *why_r the reply */
long long throttle_suspended_until(const struct throttle_limiter *l, long long now_ms,
                                   const char **why_r)
{
	if (why_r != NULL)
		*why_r = l->reply;
	if (l->state != LIMITER_SUSPENDED || l->until_ms <= now_ms)
		return 0;
	return l->until_ms;
}

