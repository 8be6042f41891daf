/* rate_store - the state of rate limits and quotas: in memory with
 * SQLite persistence (one gateway), or in Redis (a fleet). Both decide
 * with the same algorithms (GCRA for rates, fixed UTC-aligned windows
 * for quotas; see rate_store.c). Thread safe. */
#ifndef WEIR_POLICY_RATE_STORE_H
#define WEIR_POLICY_RATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policy/rate.h"

struct weir_config;
struct rate_store;

struct rate_verdict {
	bool allowed;
	size_t denied;            /* index of the denying item with the strictest action */
	long long retry_after_ms; /* of that item */
	long long resets_at_ms;   /* quota window end of that item (0: its rate denied) */
	bool quota;               /* the denial is the quota's */
	long long remaining;      /* of that item's rate or quota, before this charge */
	bool backend_down;        /* Redis unreachable: decided by rate.fail_mode */
};

/* rate_store_open - the store cfg->rate.backend names. NULL with *err_r
 * (caller frees) when it cannot be set up (an unreachable Redis is not
 * such an error: that is fail_mode's). */
struct rate_store *rate_store_open(const struct weir_config *cfg, char **err_r);
/* rate_store_reconfigure - a reload: new settings, counters kept */
void rate_store_reconfigure(struct rate_store *s, const struct weir_config *cfg);
/* rate_store_close - flush and free; NULL is ok */
void rate_store_close(struct rate_store *s);

/* rate_charge - decide items[0..n) atomically: all allowed and committed,
 * or none committed (unless force: then all are committed anyway). 0, or
 * -1 on an internal error (the verdict then follows fail_mode). */
int rate_charge(struct rate_store *s, const struct rate_item *items, size_t n, bool force,
		long long now_ms, struct rate_verdict *v);

/* For weirctl: print the state of one key (NULL: all) / clear one key */
int rate_store_show(struct rate_store *s, const char *state_key, FILE *out, char **err_r);
int rate_store_reset(struct rate_store *s, const char *state_key, char **err_r);

/* rate_now_ms - wall clock in ms (UTC) */
long long rate_now_ms(void);

/* rate_store_open_admin - for weirctl (show, reset): the memory backend
 * then works on rate.state_db only (no counters loaded, no flush thread;
 * a reset is passed to the running weir-milter through the rate_reset
 * table); the Redis backend is the same as rate_store_open */
struct rate_store *rate_store_open_admin(const struct weir_config *cfg, char **err_r);
/* rate_store_flush - memory backend: write changed counters and take
 * reset requests now instead of at the next flush_interval (tests,
 * benches); 0, or -1 when the write failed. Redis: nothing to do, 0. */
int rate_store_flush(struct rate_store *s);

/* The state of one key as both backends keep it; all times in ms */
struct rate_state {
	long long tat;          /* GCRA theoretical arrival time (0: none) */
	long long t, cap;       /* GCRA emission interval and capacity last charged with */
	long long qwin, qcount; /* quota window start (-1: none) and the count in it */
	long long qn, qw;       /* quota and its window last charged with */
};

/* rate_state_format - the line `weirctl rate show` prints for a key in
 * state st at now_ms (caller frees): "KEY limit=NAME value=VALUE
 * rate_remaining=N [rate_retry_at=ISO rate_retry_after=S] rate_full_at=ISO
 * quota_used=N quota_limit=N quota_remaining=N quota_resets_at=ISO", rate
 * and quota fields only when the key has them, times ISO-8601 UTC */
char *rate_state_format(const char *state_key, const struct rate_state *st, long long now_ms);

#endif
