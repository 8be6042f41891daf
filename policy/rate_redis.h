/* rate_redis - the Redis backend of rate_store (a fleet of gateways
 * sharing limits): one Lua script per decision, the server's clock,
 * per-thread connections, fail_mode when Redis is unreachable. */
#ifndef WEIR_POLICY_RATE_REDIS_H
#define WEIR_POLICY_RATE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policy/rate_store.h"

struct rate_redis;

struct rate_redis *rate_redis_open(const struct weir_config *cfg, char **err_r);
void rate_redis_reconfigure(struct rate_redis *r, const struct weir_config *cfg);
void rate_redis_close(struct rate_redis *r);
int rate_redis_charge(struct rate_redis *r, const struct rate_item *items, size_t n, bool force,
		      struct rate_verdict *v);
int rate_redis_show(struct rate_redis *r, const char *state_key, FILE *out, char **err_r);
int rate_redis_reset(struct rate_redis *r, const char *state_key, char **err_r);

/* rate_redis_failures - decisions made by rate.fail_mode since the process
 * started (Redis unreachable, timing out or answering with an error) */
unsigned long rate_redis_failures(void);

#endif
