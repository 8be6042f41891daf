/* throttle_redis - the fleet part of the throttle (throttle.backend =
 * "redis"): GCRA reservations made atomically in Redis by a Lua script
 * on Redis server time, so every weir-agent sharing the Redis holds the
 * combined rate. Uses the rate.redis* settings (address, password file,
 * timeout); keys are rate.redis_prefix + "throttle:" + the limiter key
 * and expire when idle. One thread (the agent's event loop); calls block
 * for at most rate.redis_timeout_ms. Internal to policy/throttle*.c. */
#ifndef WEIR_POLICY_THROTTLE_REDIS_H
#define WEIR_POLICY_THROTTLE_REDIS_H

#include <stdbool.h>
#include <stddef.h>

struct weir_config;
struct throttle_redis;

/* throttle_redis_open - a handle (no connection made yet); NULL with
 * *err_r (caller frees) when the settings cannot be used (password file
 * unreadable or loose) */
struct throttle_redis *throttle_redis_open(const struct weir_config *cfg, char **err_r);
void throttle_redis_close(struct throttle_redis *r);

/* throttle_redis_reserve - reserve one slot of key (emission interval
 * t_ms, burst) unless the wait would exceed max_delay_ms: 1 = reserved,
 * *delay_ms_r how long to wait (0: at once); 0 = refused, nothing
 * committed, *delay_ms_r the wait it would have needed; -1 = Redis
 * failed (err: why, for the log; the caller then uses the local share) */
int throttle_redis_reserve(struct throttle_redis *r, const char *key, long long t_ms,
                           long long burst, long long max_delay_ms, long long *delay_ms_r,
                           char *err, size_t errsize);
/* throttle_redis_unreserve - give back a slot reserved by the last call
 * for key (another limiter of the same recipient refused); best effort */
void throttle_redis_unreserve(struct throttle_redis *r, const char *key, long long t_ms);

/* The same with the emission interval in microseconds (period_ms * 1000 /
 * n), so that rates like 3/s are held exactly; the ms versions call these */
int throttle_redis_reserve_us(struct throttle_redis *r, const char *key, long long t_us,
                              long long burst, long long max_delay_ms, long long *delay_ms_r,
                              char *err, size_t errsize);
void throttle_redis_unreserve_us(struct throttle_redis *r, const char *key, long long t_us);

#endif
