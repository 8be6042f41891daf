/* stats - weir-agent's metrics and the live-state snapshot (see stats.h)
 *
 * Label sets stay bounded: routes come from the configuration, limiter
 * keys and upstream hosts from the throttle and the pool (the registry
 * folds anything past 100 series into "other"), results, kinds and
 * bounce reasons from fixed lists. */
#include "autoconf.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/pool.h"
#include "delivery-agent/stats.h"
#include "delivery-agent/throttle.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/suppress.h"
#include "policy/throttle.h"

#define SNAPSHOT_SECS    1  /* throttle state and upstream health */
#define SUPPRESSION_SECS 30 /* suppression counts (an SQLite count) */
#define SCOPES_MAX       20 /* per-scope suppression counts shown */

/* delivery durations: MAIL to the final answer, up to minutes */
static const double delivery_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

struct agent_stats {
	struct metrics *m;
	struct metric *deliveries, *delivery_seconds, *throttle_deferred, *throttle_state,
	    *throttle_sessions, *upstream_up, *suppression_entries, *bounces;
	struct agent *agent;
	struct event *snap_timer, *supp_timer;
	/* event loop only */
	char *suppression;  /* the "suppression" member's JSON object */
	char *throttle_sig; /* limiter keys of the last snapshot, '\n'-joined */
	char *upstream_sig; /* host ids of the last snapshot */
	bool supp_warned;
	/* published for the HTTP thread */
	pthread_mutex_t lock;
	char *snapshot;
};

long long stats_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wall_ms - the wall clock in ms */
static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* addf - printf to a strbuf */
static void addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct strbuf *b, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		strbuf_add(b, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* declared - a declaration that cannot fail unless the code is wrong */
static struct metric *declared(struct metric *mt, const char *name)
{
	if (mt == NULL)
		log_panic("metric %s: bad declaration", name);
	return mt;
}

struct agent_stats *stats_new(void)
{
	struct agent_stats *s = xcalloc(1, sizeof(*s));
	struct metrics *m = metrics_new(0);

	s->m = m;
	pthread_mutex_init(&s->lock, NULL);
	s->deliveries =
	    declared(metrics_counter(m, "weir_agent_deliveries_total",
	                             "Answers to the MTA about a recipient, by result and route.",
	                             METRICS_L("result", "group")),
	             "deliveries");
	s->delivery_seconds =
	    declared(metrics_histogram(m, "weir_agent_delivery_seconds",
	                               "Seconds from MAIL to the final answer about a recipient.",
	                               METRICS_L("route"), delivery_buckets,
	                               sizeof(delivery_buckets) / sizeof(delivery_buckets[0])),
	             "delivery_seconds");
	s->throttle_deferred =
	    declared(metrics_counter(m, "weir_agent_throttle_deferred_total",
	                             "Recipients the throttle answered 451, by limiter and reason.",
	                             METRICS_L("group", "reason")),
	             "throttle_deferred");
	s->throttle_state = declared(
	    metrics_gauge(m, "weir_agent_throttle_state",
	                  "1 for the current state of each active limiter, 0 for the others.",
	                  METRICS_L("group", "state")),
	    "throttle_state");
	s->throttle_sessions =
	    declared(metrics_gauge(m, "weir_agent_throttle_sessions",
	                           "Transactions in progress holding each active limiter.",
	                           METRICS_L("group")),
	             "throttle_sessions");
	s->upstream_up = declared(
	    metrics_gauge(m, "weir_agent_upstream_up",
	                  "1 when the upstream host is up, 0 when backed off.", METRICS_L("host")),
	    "upstream_up");
	s->suppression_entries = declared(
	    metrics_gauge(m, "weir_agent_suppression_entries",
	                  "Active entries of the suppression list (refreshed every 30 s).", NULL),
	    "suppression_entries");
	s->bounces = declared(
	    metrics_counter(m, "weir_agent_bounces_total",
	                    "Recipients of bounces and complaints taken in, by reason and kind.",
	                    METRICS_L("reason", "kind")),
	    "bounces");
	s->suppression = xstrdup("{\"available\":false,\"error\":\"not counted yet\"}");
	s->snapshot = xstrdup("{\"time\":0,\"throttle\":[],\"upstreams\":[],\"suppression\":"
	                      "{\"available\":false,\"error\":\"not counted yet\"}}");
	return s;
}

struct metrics *stats_registry(struct agent_stats *s)
{
	return s->m;
}

char *stats_snapshot(struct agent_stats *s)
{
	char *copy;

	pthread_mutex_lock(&s->lock);
	copy = xstrdup(s->snapshot);
	pthread_mutex_unlock(&s->lock);
	return copy;
}

void stats_delivery(struct agent_stats *s, const char *result, const char *group)
{
	if (s != NULL)
		metrics_inc(s->deliveries, METRICS_L(result, group ? group : "none"));
}

void stats_delivery_seconds(struct agent_stats *s, const char *route, double secs)
{
	if (s != NULL)
		metrics_observe(s->delivery_seconds, METRICS_L(route ? route : "none"),
		                secs < 0 ? 0 : secs);
}

void stats_throttle_deferred(struct agent_stats *s, const char *group, const char *reason)
{
	if (s != NULL)
		metrics_inc(s->throttle_deferred, METRICS_L(group, reason));
}

void stats_bounce(struct agent_stats *s, const char *reason, const char *kind)
{
	if (s != NULL)
		metrics_inc(s->bounces, METRICS_L(reason, kind));
}

/* ---- the snapshot (event loop) ---- */

/* A snapshot being built */
struct snap {
	struct agent_stats *s;
	struct strbuf json; /* the array being written */
	struct strbuf sig;  /* keys seen, for the gauges' reset */
	bool first;
	long long now_ms;
};

/* limiter_one - throttle_foreach_active's callback: JSON and gauges */
static void limiter_one(void *ctx, const struct throttle_limiter_info *li)
{
	static const char *const states[] = {"normal", "suspended", "slow"};
	struct snap *sn = ctx;

	strbuf_adds(&sn->json, sn->first ? "{" : ",{");
	sn->first = false;
	json_member_str(&sn->json, "key", li->key);
	json_member_str(&sn->json, "state", li->state);
	json_member_str(&sn->json, "rate", li->rate);
	json_key(&sn->json, "observed");
	addf(&sn->json, "%.2f", li->observed);
	json_member_int(&sn->json, "sessions", li->sessions);
	json_member_int(&sn->json, "max_sessions", li->max_sessions);
	json_member_int(&sn->json, "waiting", li->waiting);
	json_member_int(&sn->json, "deferred", (long long)li->deferred);
	json_member_int(&sn->json, "until", li->until_ms);
	json_member_str(&sn->json, "rule", li->rule);
	json_member_str(&sn->json, "reply", li->reply);
	strbuf_adds(&sn->json, "}");
	strbuf_adds(&sn->sig, li->key);
	strbuf_adds(&sn->sig, "\n");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		metrics_set(sn->s->throttle_state, METRICS_L(li->key, states[i]),
		            strcmp(li->state, states[i]) == 0 ? 1 : 0);
	metrics_set(sn->s->throttle_sessions, METRICS_L(li->key), li->sessions);
}

/* host_one - pool_foreach_host's callback: JSON and the gauge */
static void host_one(void *ctx, const struct pool_host_info *hi)
{
	struct snap *sn = ctx;

	strbuf_adds(&sn->json, sn->first ? "{" : ",{");
	sn->first = false;
	json_member_str(&sn->json, "route", hi->route);
	json_member_str(&sn->json, "host", hi->id);
	json_member_bool(&sn->json, "up", hi->up);
	json_member_int(&sn->json, "down_until", hi->down_until * 1000);
	json_member_int(&sn->json, "failures", hi->failures);
	json_member_int(&sn->json, "open", hi->open);
	json_member_int(&sn->json, "idle", (long long)hi->idle);
	json_member_int(&sn->json, "sent", hi->sent);
	json_member_str(&sn->json, "error", hi->error);
	strbuf_adds(&sn->json, "}");
	strbuf_adds(&sn->sig, hi->id);
	strbuf_adds(&sn->sig, "\n");
	metrics_set(sn->s->upstream_up, METRICS_L(hi->id), hi->up ? 1 : 0);
}

/* sig_changed - the keys differ from last time: *old takes sig's text;
 * a gauge whose series went away is reset before it is set again */
static bool sig_changed(char **old, struct strbuf *sig)
{
	char *now = strbuf_take(sig);
	bool changed;

	if (now == NULL)
		now = xstrdup("");
	changed = *old == NULL || strcmp(*old, now) != 0;
	free(*old);
	*old = now;
	return changed;
}

/* snap_throttle - the active limiters into b as a JSON array, and their
 * gauges; when the set of limiters changed, the gauges are reset and set
 * again so that a limiter gone idle loses its series */
static void snap_throttle(struct agent_stats *s, struct strbuf *b, long long now)
{
	struct throttle *t = throttle_agent_engine(s->agent);
	struct snap sn = {.s = s, .first = true, .now_ms = now};

	strbuf_adds(&sn.json, "[");
	if (t != NULL)
		throttle_foreach_active(t, now, limiter_one, &sn);
	strbuf_adds(&sn.json, "]");
	if (sig_changed(&s->throttle_sig, &sn.sig) && t != NULL) {
		struct snap again = {.s = s, .first = true, .now_ms = now};
		metrics_reset(s->throttle_state);
		metrics_reset(s->throttle_sessions);
		throttle_foreach_active(t, now, limiter_one, &again);
		free(strbuf_take(&again.json));
		free(strbuf_take(&again.sig));
	}
	strbuf_adds(b, sn.json.s);
	free(strbuf_take(&sn.json));
}

/* snap_upstreams - the upstream hosts into b, as snap_throttle */
static void snap_upstreams(struct agent_stats *s, struct strbuf *b, long long now)
{
	struct weir_config *cfg = config_current();
	struct snap sn = {.s = s, .first = true, .now_ms = now};

	strbuf_adds(&sn.json, "[");
	if (cfg != NULL)
		pool_foreach_host(s->agent->pool, cfg, host_one, &sn);
	strbuf_adds(&sn.json, "]");
	if (sig_changed(&s->upstream_sig, &sn.sig) && cfg != NULL) {
		struct snap again = {.s = s, .first = true, .now_ms = now};
		metrics_reset(s->upstream_up);
		pool_foreach_host(s->agent->pool, cfg, host_one, &again);
		free(strbuf_take(&again.json));
		free(strbuf_take(&again.sig));
	}
	config_unref(cfg);
	strbuf_adds(b, sn.json.s);
	free(strbuf_take(&sn.json));
}

/* snapshot_tick - once a second: build and publish the snapshot */
static void snapshot_tick(evutil_socket_t fd, short what, void *arg)
{
	struct agent_stats *s = arg;
	struct strbuf b = {0};
	long long now = wall_ms();
	char *old;

	(void)fd;
	(void)what;
	strbuf_adds(&b, "{");
	json_member_int(&b, "time", now);
	json_key(&b, "throttle");
	snap_throttle(s, &b, now);
	json_key(&b, "upstreams");
	snap_upstreams(s, &b, now);
	json_key(&b, "suppression");
	strbuf_adds(&b, s->suppression);
	strbuf_adds(&b, "}");
	pthread_mutex_lock(&s->lock);
	old = s->snapshot;
	s->snapshot = strbuf_take(&b);
	pthread_mutex_unlock(&s->lock);
	free(old);
}

/* Per-scope counts being written */
struct scopes {
	struct strbuf json;
	size_t n;
	long long global, hard;
};

static void scope_one(void *ctx, const char *scope, long long n, long long hard)
{
	struct scopes *sc = ctx;

	sc->hard += hard;
	if (scope == NULL || scope[0] == '\0')
		sc->global += n;
	if (sc->n++ >= SCOPES_MAX)
		return;
	strbuf_adds(&sc->json, sc->n > 1 ? ",{" : "{");
	json_member_str(&sc->json, "scope", scope != NULL && scope[0] ? scope : "global");
	json_member_int(&sc->json, "active", n);
	json_member_int(&sc->json, "hard", hard);
	strbuf_adds(&sc->json, "}");
}

/* count_suppression - the suppression counts as a JSON object (caller
 * frees); *active_r -1 when they could not be read */
static char *count_suppression(struct agent_stats *s, const struct weir_config *cfg,
                               long long *active_r)
{
	struct scopes sc = {{0}, 0, 0, 0};
	struct strbuf b = {0};
	struct suppress *st;
	char *err = NULL;
	long long now = wall_ms() / 1000, active = -1;

	*active_r = -1;
	/* read-only: the agent may not own the file (weir-milter reads it,
	 * weirctl writes it); a missing file is no error worth repeating */
	st = suppress_open_flags(cfg, SUPPRESS_READONLY, &err);
	if (st != NULL && (active = suppress_count(st, now, &err)) >= 0) {
		strbuf_adds(&sc.json, "[");
		if (suppress_count_scopes(st, now, scope_one, &sc, &err) < 0)
			active = -1;
		strbuf_adds(&sc.json, "]");
	}
	suppress_close(st);
	strbuf_adds(&b, "{");
	json_member_bool(&b, "available", active >= 0);
	if (active >= 0) {
		json_member_int(&b, "active", active);
		json_member_int(&b, "global", sc.global);
		json_member_int(&b, "hard", sc.hard);
		json_member_int(&b, "soft", active - sc.hard);
		json_member_int(&b, "scopes_total", (long long)sc.n);
		json_key(&b, "scopes");
		strbuf_adds(&b, sc.json.s);
		s->supp_warned = false;
	} else {
		json_member_str(&b, "error", err != NULL ? err : "cannot read");
		if (!s->supp_warned)
			log_info("metrics: suppression list not counted: %s", err ? err : "?");
		s->supp_warned = true;
	}
	strbuf_adds(&b, "}");
	free(strbuf_take(&sc.json));
	free(err);
	*active_r = active;
	return strbuf_take(&b);
}

/* suppression_tick - every 30 s (and at start): the suppression counts */
static void suppression_tick(evutil_socket_t fd, short what, void *arg)
{
	struct agent_stats *s = arg;
	struct weir_config *cfg = config_current();
	long long active;

	(void)fd;
	(void)what;
	if (cfg == NULL)
		return;
	free(s->suppression);
	s->suppression = count_suppression(s, cfg, &active);
	if (active >= 0)
		metrics_set(s->suppression_entries, NULL, (double)active);
	config_unref(cfg);
}

void stats_start(struct agent *a)
{
	struct agent_stats *s = a->stats;
	struct timeval snap = {SNAPSHOT_SECS, 0}, supp = {SUPPRESSION_SECS, 0};

	s->agent = a;
	s->snap_timer = event_new(a->base, -1, EV_PERSIST, snapshot_tick, s);
	s->supp_timer = event_new(a->base, -1, EV_PERSIST, suppression_tick, s);
	if (s->snap_timer == NULL || s->supp_timer == NULL)
		log_fatal("metrics: cannot make the snapshot timers");
	evtimer_add(s->snap_timer, &snap);
	evtimer_add(s->supp_timer, &supp);
	suppression_tick(-1, 0, s);
	snapshot_tick(-1, 0, s);
}

void stats_free(struct agent_stats *s)
{
	if (s == NULL)
		return;
	if (s->snap_timer != NULL)
		event_free(s->snap_timer);
	if (s->supp_timer != NULL)
		event_free(s->supp_timer);
	metrics_free(s->m);
	free(s->suppression);
	free(s->throttle_sig);
	free(s->upstream_sig);
	free(s->snapshot);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
