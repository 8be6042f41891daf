/* throttle_redis - the throttle's GCRA reservations in Redis, shared by
 * every weir-agent of a fleet (throttle.backend = "redis").
 *
 * State: one string per limiter, rate.redis_prefix + "throttle:" + the
 * limiter key, holding tat (the theoretical arrival time, microseconds of
 * the Redis server's clock). It expires a second after tat: from then on
 * tat <= now and the limiter is as if it had never been charged.
 *
 * A reservation (throttle.h): with emission interval T and burst b, a
 * charge at now may go at once when tat - now <= (b-1)*T; otherwise its
 * slot is at tat - (b-1)*T and it waits that long. A wait beyond
 * max_delay is refused with nothing written; else tat = max(tat, now) +
 * T. Concurrent callers thus queue in order, whichever agent they run in.
 * One Lua script does it atomically on the server's clock (TIME), so
 * agents with skewed clocks agree; it is loaded with SCRIPT LOAD on each
 * connection and run with EVALSHA (NOSCRIPT: loaded again). Microseconds
 * keep rates like 3/s exact (T = 333333 us, not 333 ms).
 *
 * Connection, password, timeout and back-off: redis_conn.c. One handle
 * belongs to one thread (weir-agent's event loop); every call blocks for
 * at most rate.redis_timeout_ms, and while Redis is unreachable a call
 * fails at once except for one attempt a second. Outages are not logged
 * here: the caller (throttle.c) logs them once and uses its local share. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/redis_conn.h"
#include "policy/throttle_redis.h"

/* KEYS[1]: the limiter's key. ARGV: "r" (reserve) or "u" (unreserve), T
 * (us), burst, max_delay (us). Returns {reserved 0/1, delay ms rounded
 * up}; unreserve returns {1, 0}. */
/* clang-format off */
static const char reserve_script[] =
	"if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local T = tonumber(ARGV[2])\n"
	"local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
	"if tat < now then tat = now end\n"
	"local function keep(v)\n"
	"  if v <= now then redis.call('DEL', KEYS[1]); return end\n"
	"  redis.call('SET', KEYS[1], string.format('%.0f', v),\n"
	"             'PX', string.format('%.0f', math.ceil((v - now) / 1000) + 1000))\n"
	"end\n"
	"if ARGV[1] == 'u' then\n"
	"  keep(math.max(tat - T, now))\n"
	"  return {1, 0}\n"
	"end\n"
	"local burst, maxd = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"local delay = math.max(tat - (burst - 1) * T - now, 0)\n"
	"local ms = math.ceil(delay / 1000)\n"
	"if delay > maxd then return {0, ms} end\n"
	"keep(tat + T)\n"
	"return {1, ms}\n";
/* clang-format on */

struct throttle_redis {
	struct redis_conn conn;
};

struct throttle_redis *throttle_redis_open(const struct weir_config *cfg, char **err_r)
{
	struct redis_settings *set = redis_settings_new(cfg, err_r);
	struct throttle_redis *r;

	if (set == NULL)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	redis_conn_init(&r->conn, set, reserve_script, NULL);
	redis_settings_unref(set);
	return r;
}

void throttle_redis_close(struct throttle_redis *r)
{
	if (r == NULL)
		return;
	redis_conn_clear(&r->conn);
	free(r);
}

/* run - the script for key with mode and numbers; the reply (caller
 * frees), or NULL with r->conn.err */
static redisReply *run(struct throttle_redis *r, const char *key, const char *mode, long long t_us,
                       long long burst, long long max_delay_us)
{
	long long deadline = redis_conn_deadline(&r->conn);
	char nums[3][24];
	const char *argv[8];
	size_t lens[8];
	redisReply *reply;
	char *fullkey;

	/* the SHA1 comes with the connection: connect first */
	if (!redis_conn_ready(&r->conn, deadline))
		return NULL;
	fullkey = xasprintf("%sthrottle:%s", r->conn.set->prefix, key);
	snprintf(nums[0], sizeof(nums[0]), "%lld", t_us);
	snprintf(nums[1], sizeof(nums[1]), "%lld", burst);
	snprintf(nums[2], sizeof(nums[2]), "%lld", max_delay_us);
	argv[0] = "EVALSHA";
	argv[1] = r->conn.sha; /* rewritten with the same value by a reload */
	argv[2] = "1";
	argv[3] = fullkey;
	argv[4] = mode;
	argv[5] = nums[0];
	argv[6] = nums[1];
	argv[7] = nums[2];
	for (size_t i = 0; i < 8; i++)
		lens[i] = strlen(argv[i]);
	reply = redis_conn_command(&r->conn, deadline, 8, argv, lens);
	free(fullkey);
	if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
		redis_conn_note_error(&r->conn, "EVALSHA", reply);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

/* failed - -1 with why in err; the address but never the password */
static int failed(const struct throttle_redis *r, char *err, size_t errsize)
{
	if (err != NULL && errsize > 0)
		snprintf(err, errsize, "redis %s: %s", r->conn.set->addr, r->conn.err);
	return -1;
}

int throttle_redis_reserve_us(struct throttle_redis *r, const char *key, long long t_us,
                              long long burst, long long max_delay_ms, long long *delay_ms_r,
                              char *err, size_t errsize)
{
	redisReply *reply;
	long long reserved, delay;

	*delay_ms_r = 0;
	if (t_us < 1)
		t_us = 1;
	if (burst < 1)
		burst = 1;
	if (max_delay_ms < 0)
		max_delay_ms = 0;
	reply = run(r, key, "r", t_us, burst, max_delay_ms * 1000);
	if (reply == NULL)
		return failed(r, err, errsize);
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER ||
	    reply->element[1]->type != REDIS_REPLY_INTEGER ||
	    (reply->element[0]->integer != 0 && reply->element[0]->integer != 1) ||
	    reply->element[1]->integer < 0) {
		snprintf(r->conn.err, sizeof(r->conn.err), "EVALSHA: malformed answer");
		freeReplyObject(reply);
		return failed(r, err, errsize);
	}
	reserved = reply->element[0]->integer;
	delay = reply->element[1]->integer;
	freeReplyObject(reply);
	*delay_ms_r = delay;
	return (int)reserved;
}

int throttle_redis_reserve(struct throttle_redis *r, const char *key, long long t_ms,
                           long long burst, long long max_delay_ms, long long *delay_ms_r,
                           char *err, size_t errsize)
{
	return throttle_redis_reserve_us(r, key, t_ms * 1000, burst, max_delay_ms, delay_ms_r, err,
	                                 errsize);
}

void throttle_redis_unreserve_us(struct throttle_redis *r, const char *key, long long t_us)
{
	/* best effort: a slot not given back costs one T of this limiter */
	freeReplyObject(run(r, key, "u", t_us < 1 ? 1 : t_us, 1, 0));
}

void throttle_redis_unreserve(struct throttle_redis *r, const char *key, long long t_ms)
{
	throttle_redis_unreserve_us(r, key, t_ms * 1000);
}
