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

#endif
