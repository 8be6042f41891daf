/* test-rate-redis - the Redis backend of the rate store (policy/rate_redis.c)
 * against a throwaway redis-server on a free loopback port: the charge
 * script against the algorithms of issue 6 (burst, smooth rate, quota
 * windows, all-or-nothing, force), two threads charging at once, show and
 * reset, AUTH and the password file's mode, Redis stopped, killed and
 * restarted (fail_mode open and closed, no hang beyond the timeout,
 * recovery without reopening). Skipped (77) without redis-server. */
#include "autoconf.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_redis.h"
#include "tests/redislib.h"
#include "tests/testlib.h"

#define TIMEOUT_MS 300

static char tmpdir[] = "/tmp/test-rate-redis.XXXXXX";
static pid_t servers[2];
static int port, auth_port;

static atomic_int warnings, infos;
static char last_log[1024];

static void hook(enum log_level level, const char *line)
{
	if (level == LOG_LEVEL_WARNING)
		atomic_fetch_add(&warnings, 1);
	if (level == LOG_LEVEL_INFO)
		atomic_fetch_add(&infos, 1);
	snprintf(last_log, sizeof(last_log), "%s", line);
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
	redis_test_cleanup(tmpdir, servers, 2);
}

static struct weir_config cfg;
static char addr[64];

static void cfg_init(int p)
{
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p);
	memset(&cfg, 0, sizeof(cfg));
	cfg.rate.backend = RATE_BACKEND_REDIS;
	cfg.rate.redis = addr;
	cfg.rate.redis_password_file = (char *)"";
	cfg.rate.redis_prefix = (char *)"t:";
	cfg.rate.redis_timeout_ms = TIMEOUT_MS;
	cfg.rate.fail_mode = RATE_FAIL_OPEN;
}

/* rate / quota items; period in ms */
static struct rate_item item(const char *key, long long n, long long period, long long burst,
                             long long qn, long long qperiod, int action)
{
	struct rate_item it = {
	    .state_key = (char *)key,
	    .limit_name = "t",
	    .period_ms = period,
	    .n = n,
	    .burst = burst,
	    .quota_period_ms = qperiod,
	    .quota_n = qn,
	    .cost = 1,
	    .action = action,
	};
	return it;
}

static bool charge1(struct rate_redis *r, struct rate_item it, struct rate_verdict *v)
{
	test_assert(rate_redis_charge(r, &it, 1, false, v) == 0);
	test_assert(!v->backend_down);
	return v->allowed;
}

static void test_burst(struct rate_redis *r)
{
	struct rate_item it = item("burst:alice", 1, 3600000, 3, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;

	test_begin("burst: 3 at once, then the smooth rate");
	for (int i = 0; i < 3; i++) {
		test_assert(charge1(r, it, &v));
		test_assert(v.remaining == 3 - i);
	}
	test_assert(!charge1(r, it, &v));
	test_assert(v.denied == 0 && !v.quota && v.resets_at_ms == 0 && v.remaining == 0);
	/* new_tat - now - capacity = (now + 4T) - now - 3T = T, less the ms gone by */
	test_assert(v.retry_after_ms <= 3600000 && v.retry_after_ms > 3600000 - 5000);
	test_end();
}

static void test_smooth(struct rate_redis *r)
{
	/* T = 100 ms, burst 1: one charge every 100 ms, never two at once */
	struct rate_item it = item("smooth:bob", 10, 1000, 1, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;
	long long end;
	int allowed = 0;

	test_begin("smooth rate: 10/s with burst 1 over 1 s");
	test_assert(charge1(r, it, &v));
	test_assert(!charge1(r, it, &v));
	test_assert(v.retry_after_ms > 0 && v.retry_after_ms <= 100);
	test_sleep_ms(v.retry_after_ms + 2);
	test_assert(charge1(r, it, &v));
	end = test_mono_ms() + 1000;
	while (test_mono_ms() < end) {
		if (charge1(r, it, &v))
			allowed++;
		else
			test_sleep_ms(v.retry_after_ms > 5 ? 5 : v.retry_after_ms);
	}
	/* 1 s at 10/s: 10, or 9 when the last slot falls just past the end */
	test_assert(allowed >= 9 && allowed <= 11);
	test_end();
}

static void test_quota(struct rate_redis *r)
{
	struct rate_item day = item("quota:carol", 0, 0, 0, 5, 86400000, ACTION_REJECT);
	struct rate_item sec = item("quota:dave", 0, 0, 0, 2, 1000, ACTION_TEMPFAIL);
	struct rate_verdict v;
	long long before = wall_ms();

	test_begin("quota: N per UTC-aligned window, reset when it ends");
	for (int i = 0; i < 5; i++) {
		test_assert(charge1(r, day, &v));
		test_assert(v.remaining == 5 - i);
	}
	test_assert(!charge1(r, day, &v));
	test_assert(v.quota && v.remaining == 0);
	test_assert(v.resets_at_ms % 86400000 == 0);
	test_assert(v.resets_at_ms > before && v.resets_at_ms <= before + 86400000 + 1000);
	test_assert(v.retry_after_ms > 0 && v.retry_after_ms <= v.resets_at_ms - before + 1000);

	while (charge1(r, sec, &v)) /* 2, or up to 4 when the window rolls */
		;
	test_assert(v.quota && v.resets_at_ms % 1000 == 0);
	test_sleep_ms(v.retry_after_ms + 5);
	test_assert(charge1(r, sec, &v));
	test_assert(v.remaining == 2);
	test_end();
}

static void test_rate_and_quota(struct rate_redis *r)
{
	/* rate 1/h burst 10, quota 2/d: the quota denies first */
	struct rate_item it = item("both:erin", 1, 3600000, 10, 2, 86400000, ACTION_TEMPFAIL);
	struct rate_verdict v;

	test_begin("rate and quota on one item: the quota's denial");
	test_assert(charge1(r, it, &v) && v.remaining == 2);
	test_assert(charge1(r, it, &v) && v.remaining == 1);
	test_assert(!charge1(r, it, &v));
	test_assert(v.quota && v.resets_at_ms % 86400000 == 0);
	test_end();
}

static void test_all_or_nothing(struct rate_redis *r)
{
	struct rate_item items[3] = {
	    item("multi:a", 1, 3600000, 5, 0, 0, ACTION_LOG),
	    item("multi:b", 1, 3600000, 1, 0, 0, ACTION_TEMPFAIL),
	    item("multi:c", 0, 0, 0, 3, 86400000, ACTION_REJECT),
	};
	struct rate_verdict v;

	test_begin("several items: all or nothing, strictest denial reported");
	test_assert(charge1(r, items[1], &v)); /* b: its burst of 1 is used */
	for (int i = 0; i < 3; i++) {
		test_assert(rate_redis_charge(r, items, 3, false, &v) == 0);
		test_assert(!v.allowed && v.denied == 1 && !v.quota);
	}
	/* a and c were not charged: a still has 5, c still 3 */
	test_assert(charge1(r, items[0], &v) && v.remaining == 5);
	test_assert(charge1(r, items[2], &v) && v.remaining == 3);
	/* use up c; now b (tempfail) and c (reject) deny: c is reported */
	test_assert(charge1(r, items[2], &v) && charge1(r, items[2], &v));
	test_assert(rate_redis_charge(r, items, 3, false, &v) == 0);
	test_assert(!v.allowed && v.denied == 2 && v.quota);
	/* the same key twice in one decision: the second sees the first */
	struct rate_item twice[2] = {item("multi:d", 1, 3600000, 1, 0, 0, ACTION_TEMPFAIL),
	                             item("multi:d", 1, 3600000, 1, 0, 0, ACTION_TEMPFAIL)};
	test_assert(rate_redis_charge(r, twice, 2, false, &v) == 0);
	test_assert(!v.allowed && v.denied == 1);
	test_assert(charge1(r, twice[0], &v));
	test_end();
}

/* field - one field of a state hash through an admin connection */
static long long field(const char *key, const char *name)
{
	redisContext *c = redis_admin(port, NULL);
	redisReply *reply;
	long long val = -1;

	if (c == NULL)
		return -2;
	reply = redisCommand(c, "HGET t:%s %s", key, name);
	if (reply != NULL && reply->type == REDIS_REPLY_STRING)
		val = strtoll(reply->str, NULL, 10);
	freeReplyObject(reply);
	redisFree(c);
	return val;
}

static long long pttl(const char *fullkey)
{
	redisContext *c = redis_admin(port, NULL);
	redisReply *reply;
	long long val = -3;

	if (c == NULL)
		return -4;
	reply = redisCommand(c, "PTTL %s", fullkey);
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		val = reply->integer;
	freeReplyObject(reply);
	redisFree(c);
	return val;
}

static void test_force(struct rate_redis *r)
{
	struct rate_item items[2] = {
	    item("force:f", 1, 3600000, 1, 0, 0, ACTION_HOLD),
	    item("force:g", 0, 0, 0, 1, 86400000, ACTION_LOG),
	};
	struct rate_verdict v;
	long long tat;

	test_begin("force: a denied decision is committed anyway");
	test_assert(rate_redis_charge(r, items, 2, false, &v) == 0 && v.allowed);
	tat = field("force:f", "tat");
	test_assert(field("force:g", "qcount") == 1);
	test_assert(rate_redis_charge(r, items, 2, false, &v) == 0 && !v.allowed);
	test_assert(field("force:f", "tat") == tat && field("force:g", "qcount") == 1);
	test_assert(rate_redis_charge(r, items, 2, true, &v) == 0 && !v.allowed);
	test_assert(v.denied == 0); /* hold is stricter than log */
	test_assert(field("force:f", "tat") == tat + 3600000);
	test_assert(field("force:g", "qcount") == 2);
	test_end();
}

static void test_expiry(struct rate_redis *r)
{
	struct rate_item it = item("ttl:h", 10, 1000, 5, 0, 0, ACTION_TEMPFAIL);
	struct rate_item q = item("ttl:i", 0, 0, 0, 5, 1000, ACTION_TEMPFAIL);
	struct rate_verdict v;
	long long ttl;

	test_begin("idle keys vanish (PEXPIRE)");
	test_assert(charge1(r, it, &v) && charge1(r, it, &v));
	ttl = pttl("t:ttl:h"); /* tat = now + 200 */
	test_assert(ttl > 0 && ttl <= 200);
	test_assert(charge1(r, q, &v));
	ttl = pttl("t:ttl:i"); /* the end of this second's window */
	test_assert(ttl > 0 && ttl <= 1000);
	test_sleep_ms(1100);
	test_assert(pttl("t:ttl:h") == -2 && pttl("t:ttl:i") == -2);
	test_end();
}

static void test_show_reset(struct rate_redis *r)
{
	struct rate_item it = item("show:alice", 1, 3600000, 3, 10, 86400000, ACTION_TEMPFAIL);
	struct rate_verdict v;
	char *buf = NULL, *err = NULL;
	size_t len = 0;
	FILE *out;

	test_begin("show one key, all keys; reset");
	test_assert(charge1(r, it, &v));
	out = open_memstream(&buf, &len);
	test_assert(rate_redis_show(r, "show:alice", out, &err) == 0);
	fclose(out);
	test_assert(buf != NULL && strncmp(buf,
	                                   "show:alice limit=show value=alice "
	                                   "rate_remaining=2 rate_full_at=",
	                                   63) == 0);
	test_assert(buf != NULL && strstr(buf, " quota_used=1 quota_limit=10 quota_remaining=9 "
	                                       "quota_resets_at=") != NULL);
	test_assert(buf != NULL && strstr(buf, "T00:00:00Z\n") != NULL);
	free(buf);

	out = open_memstream(&buf, &len);
	test_assert(rate_redis_show(r, NULL, out, &err) == 0);
	fclose(out);
	test_assert(buf != NULL && strstr(buf, "\nshow:alice limit=show value=alice "
	                                       "rate_remaining=2 ") != NULL);
	test_assert(buf != NULL && strstr(buf, "both:erin ") == buf); /* sorted */
	test_assert(buf != NULL && strstr(buf, "\nburst:alice limit=burst value=alice "
	                                       "rate_remaining=0 rate_retry_at=") != NULL);
	free(buf);

	test_assert(rate_redis_reset(r, "show:alice", &err) == 0);
	test_assert(rate_redis_reset(r, "show:nobody", &err) == 0);
	out = open_memstream(&buf, &len);
	test_assert(rate_redis_show(r, "show:alice", out, &err) == 0);
	fclose(out);
	test_assert_str(buf, "show:alice state=none\n");
	free(buf);
	test_assert(charge1(r, it, &v) && v.remaining == 3);
	test_end();
}

/* Two threads charge one rate key and one quota key as fast as they can */
struct race {
	struct rate_redis *r;
	int allowed_rate, allowed_quota, allowed_pair, errors;
};

static void *race_thread(void *arg)
{
	struct race *rc = arg;
	struct rate_item rate = item("race:rate", 100, 3600000, 100, 0, 0, ACTION_TEMPFAIL);
	struct rate_item quota = item("race:quota", 0, 0, 0, 150, 86400000, ACTION_TEMPFAIL);
	struct rate_item pair[2] = {item("race:p1", 1, 3600000, 50, 0, 0, ACTION_TEMPFAIL),
	                            item("race:p2", 0, 0, 0, 70, 86400000, ACTION_TEMPFAIL)};
	struct rate_verdict v;

	for (int i = 0; i < 300; i++) {
		if (rate_redis_charge(rc->r, &rate, 1, false, &v) != 0 || v.backend_down)
			rc->errors++;
		rc->allowed_rate += v.allowed;
		if (rate_redis_charge(rc->r, &quota, 1, false, &v) != 0 || v.backend_down)
			rc->errors++;
		rc->allowed_quota += v.allowed;
		if (rate_redis_charge(rc->r, pair, 2, false, &v) != 0 || v.backend_down)
			rc->errors++;
		rc->allowed_pair += v.allowed;
	}
	return NULL;
}

static void test_threads(struct rate_redis *r)
{
	struct race rc[2] = {{.r = r}, {.r = r}};
	pthread_t t[2];

	test_begin("two threads charging at once hold the limit exactly");
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, race_thread, &rc[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	test_assert(rc[0].errors == 0 && rc[1].errors == 0);
	test_assert(rc[0].allowed_rate + rc[1].allowed_rate == 100);
	test_assert(rc[0].allowed_quota + rc[1].allowed_quota == 150);
	test_assert(rc[0].allowed_pair + rc[1].allowed_pair == 50);
	test_assert(field("race:p2", "qcount") == 50);
	/* both threads had work to do */
	test_assert(rc[0].allowed_rate > 0 && rc[1].allowed_rate > 0);
	test_end();
}

/* A thread that decides with two stores, one closed while it lives, and
 * ends after: its connections are freed once (valgrind, ASan) */
struct two_stores {
	struct rate_redis *r, *r2;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int step;
	bool ok;
};

static void step_wait(struct two_stores *ts, int step)
{
	pthread_mutex_lock(&ts->lock);
	while (ts->step < step)
		pthread_cond_wait(&ts->cond, &ts->lock);
	pthread_mutex_unlock(&ts->lock);
}

static void step_set(struct two_stores *ts, int step)
{
	pthread_mutex_lock(&ts->lock);
	ts->step = step;
	pthread_cond_broadcast(&ts->cond);
	pthread_mutex_unlock(&ts->lock);
}

static void *two_stores_thread(void *arg)
{
	struct two_stores *ts = arg;
	struct rate_item it = item("close:k", 1000, 1000, 1000, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v1, v2;

	ts->ok = rate_redis_charge(ts->r, &it, 1, false, &v1) == 0 && v1.allowed &&
	         !v1.backend_down && rate_redis_charge(ts->r2, &it, 1, false, &v2) == 0 &&
	         v2.allowed && !v2.backend_down;
	step_set(ts, 1);
	step_wait(ts, 2); /* r2 closed meanwhile */
	ts->ok = ts->ok && rate_redis_charge(ts->r, &it, 1, false, &v1) == 0 && v1.allowed;
	return NULL;
}

static void test_close_with_threads(struct rate_redis *r)
{
	struct two_stores ts = {.r = r};
	struct rate_item it = item("close:k", 1000, 1000, 1000, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;
	char *err = NULL;
	pthread_t t;

	test_begin("a store closed while a thread that used it lives on");
	pthread_mutex_init(&ts.lock, NULL);
	pthread_cond_init(&ts.cond, NULL);
	ts.r2 = rate_redis_open(&cfg, &err);
	test_assert(ts.r2 != NULL);
	pthread_create(&t, NULL, two_stores_thread, &ts);
	step_wait(&ts, 1);
	test_assert(charge1(ts.r2, it, &v));
	rate_redis_close(ts.r2);
	step_set(&ts, 2);
	pthread_join(t, NULL);
	test_assert(ts.ok);
	test_assert(charge1(r, it, &v)); /* the ended thread's connection is gone from r */
	pthread_cond_destroy(&ts.cond);
	pthread_mutex_destroy(&ts.lock);
	test_end();
}

static void test_password(void)
{
	struct rate_item it = item("auth:x", 1, 1000, 5, 0, 0, ACTION_TEMPFAIL);
	char *pwfile = xasprintf("%s/redis.pw", tmpdir), *err = NULL;
	struct rate_redis *r;
	struct rate_verdict v;
	FILE *f;

	test_begin("password file: mode checked, AUTH sent, never logged");
	auth_port = redis_free_port();
	servers[1] = redis_server_start(tmpdir, auth_port, "pw-Secret-42");
	cfg_init(auth_port);
	cfg.rate.redis_password_file = pwfile;
	f = fopen(pwfile, "w");
	fputs("pw-Secret-42\n", f);
	fclose(f);

	chmod(pwfile, 0644);
	test_assert(rate_redis_open(&cfg, &err) == NULL);
	test_assert(err != NULL && strstr(err, "chmod 0640") != NULL &&
	            strstr(err, "every user read") != NULL);
	free(err);
	err = NULL;
	chmod(pwfile, 0620);
	test_assert(rate_redis_open(&cfg, &err) == NULL);
	test_assert(err != NULL && strstr(err, "chmod 0640") != NULL);
	free(err);
	err = NULL;

	chmod(pwfile, 0640);
	r = rate_redis_open(&cfg, &err);
	test_assert(r != NULL);
	test_assert(charge1(r, it, &v));
	rate_redis_close(r);

	/* no password: NOAUTH from Redis is an outage */
	cfg.rate.redis_password_file = (char *)"";
	r = rate_redis_open(&cfg, &err);
	test_assert(rate_redis_charge(r, &it, 1, false, &v) == 0 && v.backend_down && v.allowed);
	rate_redis_close(r);

	/* a wrong one: the same, and the password is in no log line */
	f = fopen(pwfile, "w");
	fputs("wrong-Secret-43\n", f);
	fclose(f);
	cfg.rate.redis_password_file = pwfile;
	cfg.rate.fail_mode = RATE_FAIL_CLOSED;
	r = rate_redis_open(&cfg, &err);
	test_assert(r != NULL);
	last_log[0] = '\0';
	test_assert(rate_redis_charge(r, &it, 1, false, &v) == 0 && v.backend_down && !v.allowed);
	test_assert(strstr(last_log, "AUTH") != NULL);
	test_assert(strstr(last_log, "Secret") == NULL);
	rate_redis_close(r);
	redis_server_stop(&servers[1], SIGTERM);
	free(pwfile);
	test_end();
}

/* charge_timed - one decision on key; its duration in *ms_r */
static struct rate_verdict charge_timed(struct rate_redis *r, const char *key, long long *ms_r)
{
	struct rate_item it = item(key, 1000, 3600000, 1000, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;
	long long t0 = test_mono_ms();

	test_assert(rate_redis_charge(r, &it, 1, false, &v) == 0);
	*ms_r = test_mono_ms() - t0;
	return v;
}

static void test_outage(struct rate_redis *r)
{
	unsigned long fails = rate_redis_failures();
	struct rate_verdict v;
	long long ms;
	int w;

	test_begin("Redis hung: fail open within the timeout, logged once");
	w = atomic_load(&warnings);
	kill(servers[0], SIGSTOP);
	v = charge_timed(r, "down:a", &ms);
	test_assert(v.allowed && v.backend_down);
	test_assert(ms >= TIMEOUT_MS - 20 && ms < TIMEOUT_MS + 200);
	for (int i = 0; i < 5; i++) {
		v = charge_timed(r, "down:a", &ms);
		test_assert(v.allowed && v.backend_down && ms < TIMEOUT_MS + 200);
	}
	test_assert(rate_redis_failures() == fails + 6);
	test_assert(atomic_load(&warnings) == w + 1);
	kill(servers[0], SIGCONT);
	test_end();

	test_begin("Redis back: the next decisions use it, end of outage logged");
	test_sleep_ms(1100);
	v = charge_timed(r, "down:b", &ms);
	test_assert(v.allowed && !v.backend_down);
	test_assert(atomic_load(&infos) >= 1 && strstr(last_log, "failed_decisions=6") != NULL);
	test_end();

	test_begin("Redis killed: fail closed per setting, no hang");
	cfg.rate.fail_mode = RATE_FAIL_CLOSED;
	rate_redis_reconfigure(r, &cfg);
	w = atomic_load(&warnings);
	fails = rate_redis_failures();
	redis_server_stop(&servers[0], SIGKILL);
	for (int i = 0; i < 5; i++) {
		v = charge_timed(r, "down:c", &ms);
		test_assert(!v.allowed && v.backend_down && ms < TIMEOUT_MS);
	}
	test_assert(rate_redis_failures() == fails + 5);
	test_assert(atomic_load(&warnings) == w + 1);
	test_end();

	test_begin("Redis restarted on the same port: used again without reopening");
	servers[0] = redis_server_start(tmpdir, port, NULL);
	test_sleep_ms(1100); /* the reconnection backoff */
	v = charge_timed(r, "down:d", &ms);
	test_assert(v.allowed && !v.backend_down);
	test_assert(field("down:d", "tat") > 0);
	test_end();

	test_begin("Redis restarted between two decisions: no decision lost");
	redis_server_stop(&servers[0], SIGKILL);
	servers[0] = redis_server_start(tmpdir, port, NULL);
	v = charge_timed(r, "down:e", &ms);
	test_assert(v.allowed && !v.backend_down); /* resent over a new connection */
	test_assert(field("down:e", "tat") > 0);
	test_end();

	test_begin("SCRIPT FLUSH: NOSCRIPT loads the script again");
	redisContext *c = redis_admin(port, NULL);
	freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
	redisFree(c);
	fails = rate_redis_failures();
	v = charge_timed(r, "down:f", &ms);
	test_assert(v.allowed && !v.backend_down && rate_redis_failures() == fails);
	test_end();
}

static void test_reconfigure(struct rate_redis *r)
{
	struct rate_item it = item("re:k", 1, 3600000, 2, 0, 0, ACTION_TEMPFAIL);
	struct rate_verdict v;

	test_begin("reconfigure: a new prefix is used at the next decision");
	cfg.rate.redis_prefix = (char *)"u:";
	rate_redis_reconfigure(r, &cfg);
	test_assert(charge1(r, it, &v));
	test_assert(pttl("u:re:k") > 0 && pttl("t:re:k") == -2);
	cfg.rate.redis_prefix = (char *)"t:";
	rate_redis_reconfigure(r, &cfg);
	cfg.rate.redis = (char *)"no-port:abc";
	rate_redis_reconfigure(r, &cfg); /* refused: logged, old settings kept */
	test_assert(charge1(r, it, &v));
	cfg.rate.redis = addr;
	test_end();
}

int main(void)
{
	struct rate_redis *r;
	char *err = NULL;

	if (!redis_server_installed()) {
		printf("redis-server not installed: skipped\n");
		return 77;
	}
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	log_open("test-rate-redis", true, "mail");
	log_set_hook(hook);

	port = redis_free_port();
	servers[0] = redis_server_start(tmpdir, port, NULL);
	cfg_init(port);
	r = rate_redis_open(&cfg, &err);
	if (r == NULL) {
		fprintf(stderr, "rate_redis_open: %s\n", err);
		return 1;
	}
	test_burst(r);
	test_smooth(r);
	test_quota(r);
	test_rate_and_quota(r);
	test_all_or_nothing(r);
	test_force(r);
	test_expiry(r);
	test_show_reset(r);
	test_threads(r);
	test_close_with_threads(r);
	test_reconfigure(r);
	test_outage(r);
	rate_redis_close(r);

	test_password();
	log_set_hook(NULL);
	return test_exit_status();
}
