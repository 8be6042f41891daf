/* stats - weir-agent's metrics (lib/metrics.h registry, served at
 * /metrics by http.c) and the snapshot of its live state (throttle,
 * upstream health, suppression counts) that the dashboard reads.
 *
 * Threads. The update functions are called from the event loop (they
 * only touch the thread-safe registry). The snapshot is built on the
 * event loop by a timer once a second (suppression counts every 30 s)
 * and published as a JSON text under a mutex: the HTTP thread copies
 * it with stats_snapshot and never touches the loop's structures. */
#ifndef WEIR_AGENT_STATS_H
#define WEIR_AGENT_STATS_H

#include <stdbool.h>

struct agent;
struct agent_stats;
struct metrics;

/* stats_new - the registry with every weir-agent metric declared */
struct agent_stats *stats_new(void);
/* stats_start - the snapshot timers on a's event loop (a->stats set) */
void stats_start(struct agent *a);
/* stats_free - stop the timers and free (NULL is ok); the HTTP server
 * must be stopped first */
void stats_free(struct agent_stats *s);

/* stats_registry - the registry (any thread) */
struct metrics *stats_registry(struct agent_stats *s);
/* stats_snapshot - the last snapshot: a JSON object with members
 * "time" (ms), "throttle", "upstreams" and "suppression"; caller frees.
 * Any thread. */
char *stats_snapshot(struct agent_stats *s);

/* stats_now_ms - a monotonic clock in ms (delivery durations) */
long long stats_now_ms(void);

/* Updates (NULL s is ok). result: "delivered", "deferred", "bounced",
 * "suppressed"; group: the route name ("none" when not known) */
void stats_delivery(struct agent_stats *s, const char *result, const char *group);
/* stats_delivery_seconds - MAIL to the final answer of one recipient */
void stats_delivery_seconds(struct agent_stats *s, const char *route, double secs);
/* stats_throttle_deferred - a 451 of the throttle: limiter key, reason
 * ("rate", "sessions", "waiting", "suspended", ...) */
void stats_throttle_deferred(struct agent_stats *s, const char *group, const char *reason);
/* stats_bounce - a recipient of a bounce or complaint taken in: its
 * reason and kind ("hard", "soft", "complaint") */
void stats_bounce(struct agent_stats *s, const char *reason, const char *kind);

#endif
