/* throttle_int - what policy/throttle*.c share; not for other callers
 * (they use policy/throttle.h) */
#ifndef WEIR_POLICY_THROTTLE_INT_H
#define WEIR_POLICY_THROTTLE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/throttle.h"

#define THROTTLE_IDLE_MS   (10LL * 60 * 1000) /* active this long after a charge */
#define THROTTLE_GC_MS     (60LL * 1000)      /* idle limiters freed at most this often */
#define THROTTLE_OBSERVED  60                 /* seconds the observed rate covers */
#define THROTTLE_REPLY_MAX 200                /* characters of a reply kept */

enum limiter_state { LIMITER_NORMAL, LIMITER_SUSPENDED, LIMITER_SLOW };

/* The last matches of one rule for one limiter: a ring of up to
 * threshold times */
struct rule_hits {
	long long *times;
	int n, next;
};

struct throttle;

struct throttle_limiter {
	struct throttle *owner;
	char *key;
	bool dest;                  /* a destination: rules apply */
	struct throttle_limits lim; /* as configured (slow not applied) */
	long long tat_us;           /* GCRA theoretical arrival time, microseconds */
	int sessions, waiting;
	unsigned long long deferred;
	enum limiter_state state;
	long long until_ms;
	double factor; /* slow */
	int recover;   /* slow: successes that end it; 0: duration only */
	int successes;
	char *rule, *reply;     /* what started the state (NULL when normal) */
	struct rule_hits *hits; /* one per rule of the configuration */
	size_t nhits;
	long long ring_sec[THROTTLE_OBSERVED]; /* observed rate: per-second counts */
	unsigned ring_count[THROTTLE_OBSERVED];
	long long last_charge_ms; /* 0: never */
	long long last_used_ms;   /* matched, charged, replied to */
};

struct throttle_redis;
struct strmap;

struct throttle {
	struct weir_config *cfg;      /* a reference */
	struct strmap *limiters;      /* key -> struct throttle_limiter */
	struct throttle_redis *redis; /* backend redis; NULL: local only */
	bool redis_down;              /* the outage was logged */
	long long clock_ms;           /* the latest now_ms seen */
	long long last_gc_ms;
	bool dirty; /* something the state file shows changed */
	bool timed; /* the last state file shows what time alone changes */
};

/* throttle_rule_matches - every field rule r gives matches the reply
 * (throttle_rules.c) */
bool throttle_rule_matches(const struct throttle_rule *r, int code, const char *status,
                           const char *text);
/* throttle_expire - a suspension or slow state past its time ends (logged) */
void throttle_expire(struct throttle *t, struct throttle_limiter *l, long long now_ms);
/* throttle_observed - messages charged per second over the last minute */
double throttle_observed(const struct throttle_limiter *l, long long now_ms);
/* throttle_limiter_active - l has state the state file shows */
bool throttle_limiter_active(const struct throttle_limiter *l, long long now_ms);
/* throttle_gc - free idle limiters, at most once a minute; never those
 * of protect (may be NULL) */
void throttle_gc(struct throttle *t, long long now_ms, const struct throttle_match *protect);
/* throttle_iso - "2026-11-22T10:00:00Z" */
void throttle_iso(long long ms, char *buf, size_t size);

#endif
