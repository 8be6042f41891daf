/* test-throttle-redis - the throttle's fleet reservations
 * (policy/throttle_redis.c) against a throwaway redis-server on a free
 * loopback port: GCRA reservation spacing, burst, refusal beyond the wait
 * with nothing committed, unreserve, microsecond intervals, expiry, two
 * handles (two agents) sharing one rate, Redis hung, killed and back
 * (errors within the timeout, back-off, recovery without reopening),
 * SCRIPT FLUSH, and a password-protected Redis with the password file.
 * Skipped (77) without redis-server. */
#include "autoconf.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/throttle_redis.h"
#include "tests/redislib.h"
#include "tests/testlib.h"

#define TIMEOUT_MS 300
/* slack for a loaded test machine */
#define SLACK_MS 150

static char tmpdir[] = "/tmp/test-throttle-redis.XXXXXX";
static pid_t servers[2];
static int port;

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
	cfg.rate.redis = addr;
	cfg.rate.redis_password_file = (char *)"";
	cfg.rate.redis_prefix = (char *)"t:";
	cfg.rate.redis_timeout_ms = TIMEOUT_MS;
}

static struct throttle_redis *open_ok(void)
{
	char *err = NULL;
	struct throttle_redis *r = throttle_redis_open(&cfg, &err);

	if (r == NULL) {
		fprintf(stderr, "throttle_redis_open: %s\n", err);
		exit(1);
	}
	return r;
}

/* reserve - one reservation of key (T in ms); its result, *delay_ms_r */
static int reserve(struct throttle_redis *r, const char *key, long long t_ms, long long burst,
                   long long max_delay_ms, long long *delay_ms_r)
{
	char err[256] = "";
	int ret =
	    throttle_redis_reserve(r, key, t_ms, burst, max_delay_ms, delay_ms_r, err, sizeof(err));

	if (ret < 0)
		fprintf(stderr, "reserve %s: %s\n", key, err);
	return ret;
}

/* stored - the tat (us) under "t:throttle:key" (-1: none), or its PTTL */
static long long stored(const char *key, bool ttl)
{
	redisContext *c = redis_admin(port, NULL);
	redisReply *reply;
	long long val = -1;

	if (c == NULL)
		return -9;
	reply = ttl ? redisCommand(c, "PTTL t:throttle:%s", key)
	            : redisCommand(c, "GET t:throttle:%s", key);
	if (reply != NULL && reply->type == REDIS_REPLY_STRING)
		val = strtoll(reply->str, NULL, 10);
	else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		val = reply->integer;
	freeReplyObject(reply);
	redisFree(c);
	return val;
}

/* near - d is want less the ms that went by since (at most SLACK_MS) */
static bool near(long long d, long long want)
{
	return d <= want && d >= want - SLACK_MS;
}

static void test_spacing(struct throttle_redis *r)
{
	long long d0 = -1, d1 = -1, d2 = -1;

	test_begin("reservations at once are spaced by T (burst 1)");
	test_assert(reserve(r, "group:space", 200, 1, 3000, &d0) == 1);
	test_assert(reserve(r, "group:space", 200, 1, 3000, &d1) == 1);
	test_assert(reserve(r, "group:space", 200, 1, 3000, &d2) == 1);
	test_assert(d0 == 0);
	test_assert(near(d1, 200));
	test_assert(near(d2, 400));
	test_end();

	test_begin("burst: b at once, then spaced by T");
	for (int i = 0; i < 3; i++) {
		test_assert(reserve(r, "group:burst", 1000, 3, 5000, &d0) == 1);
		test_assert(d0 == 0);
	}
	test_assert(reserve(r, "group:burst", 1000, 3, 5000, &d0) == 1);
	test_assert(near(d0, 1000));
	test_end();

	test_begin("after the waits have passed: at once again");
	test_sleep_ms(650); /* tat was 600 ms ahead */
	test_assert(reserve(r, "group:space", 200, 1, 0, &d0) == 1 && d0 == 0);
	test_end();
}

static void test_refusal(struct throttle_redis *r)
{
	long long d = -1, tat;

	test_begin("a wait beyond max_delay is refused and commits nothing");
	test_assert(reserve(r, "domain:refuse.example", 1000, 1, 500, &d) == 1 && d == 0);
	tat = stored("domain:refuse.example", false);
	test_assert(tat > 0);
	for (int i = 0; i < 3; i++) {
		test_assert(reserve(r, "domain:refuse.example", 1000, 1, 500, &d) == 0);
		test_assert(near(d, 1000));
	}
	test_assert(stored("domain:refuse.example", false) == tat);
	/* had the refusals committed, this would wait about 4 s */
	test_assert(reserve(r, "domain:refuse.example", 1000, 1, 1500, &d) == 1);
	test_assert(near(d, 1000));
	test_assert(stored("domain:refuse.example", false) == tat + 1000000);
	/* max_delay 0: only what goes at once */
	test_assert(reserve(r, "domain:refuse.example", 1000, 1, 0, &d) == 0 && d > 1000);
	test_end();
}

static void test_unreserve(struct throttle_redis *r)
{
	long long d = -1, tat;

	test_begin("unreserve gives the slot back, never below now");
	test_assert(reserve(r, "route:eu", 1000, 1, 5000, &d) == 1 && d == 0);
	test_assert(reserve(r, "route:eu", 1000, 1, 5000, &d) == 1 && near(d, 1000));
	tat = stored("route:eu", false);
	throttle_redis_unreserve(r, "route:eu", 1000);
	test_assert(stored("route:eu", false) == tat - 1000000);
	test_assert(reserve(r, "route:eu", 1000, 1, 5000, &d) == 1 && near(d, 1000));
	/* two back: the first goes to tat - T, the second stops at now (the
	 * key goes: as if never charged) */
	throttle_redis_unreserve(r, "route:eu", 1000);
	throttle_redis_unreserve(r, "route:eu", 1000);
	throttle_redis_unreserve(r, "route:eu", 1000);
	test_assert(stored("route:eu", false) == -1);
	test_assert(reserve(r, "route:eu", 1000, 1, 5000, &d) == 1 && d == 0);
	/* a key never charged: nothing happens */
	throttle_redis_unreserve(r, "route:none", 1000);
	test_assert(stored("route:none", false) == -1);
	test_end();
}

static void test_microseconds(struct throttle_redis *r)
{
	long long d = -1, tat;

	test_begin("microsecond intervals: 3/s is T = 333333 us, not 333 ms");
	test_assert(
	    throttle_redis_reserve_us(r, "sender:us.example", 333333, 1, 5000, &d, NULL, 0) == 1 &&
	    d == 0);
	tat = stored("sender:us.example", false);
	test_assert(
	    throttle_redis_reserve_us(r, "sender:us.example", 333333, 1, 5000, &d, NULL, 0) == 1);
	test_assert(
	    throttle_redis_reserve_us(r, "sender:us.example", 333333, 1, 5000, &d, NULL, 0) == 1);
	test_assert(stored("sender:us.example", false) == tat + 2 * 333333);
	/* the delay is rounded up: the caller never goes early */
	test_assert(d <= 667 && d >= 667 - SLACK_MS);
	throttle_redis_unreserve_us(r, "sender:us.example", 333333);
	test_assert(stored("sender:us.example", false) == tat + 333333);
	test_end();
}

static void test_expiry(struct throttle_redis *r)
{
	long long d = -1, ttl;

	test_begin("keys expire a little after their state stops mattering");
	test_assert(reserve(r, "group:ttl", 200, 1, 1000, &d) == 1 && d == 0);
	ttl = stored("group:ttl", true);
	test_assert(ttl > 1000 && ttl <= 1200);
	test_assert(reserve(r, "group:ttl", 200, 1, 1000, &d) == 1);
	ttl = stored("group:ttl", true);
	test_assert(ttl > 1200 && ttl <= 1400);
	test_end();
}

static void test_two_agents(struct throttle_redis *r)
{
	struct throttle_redis *r2 = open_ok();
	long long d[4] = {-1, -1, -1, -1};

	test_begin("two handles (two agents) on one key share the rate");
	test_assert(reserve(r, "group:shared", 300, 1, 5000, &d[0]) == 1);
	test_assert(reserve(r2, "group:shared", 300, 1, 5000, &d[1]) == 1);
	test_assert(reserve(r, "group:shared", 300, 1, 5000, &d[2]) == 1);
	test_assert(reserve(r2, "group:shared", 300, 1, 5000, &d[3]) == 1);
	test_assert(d[0] == 0 && near(d[1], 300) && near(d[2], 600) && near(d[3], 900));
	/* another key is another limiter */
	test_assert(reserve(r2, "group:other", 300, 1, 5000, &d[0]) == 1 && d[0] == 0);
	/* r2 gives its slot back: r sees it */
	throttle_redis_unreserve(r2, "group:shared", 300);
	test_assert(reserve(r, "group:shared", 300, 1, 5000, &d[0]) == 1 && near(d[0], 900));
	throttle_redis_close(r2);
	test_end();
}

/* timed - one reservation; its result and *ms_r its duration */
static int timed(struct throttle_redis *r, const char *key, long long *ms_r, char *err,
                 size_t errsize)
{
	long long t0 = test_mono_ms(), d;
	int ret = throttle_redis_reserve(r, key, 10, 1000, 1000, &d, err, errsize);

	*ms_r = test_mono_ms() - t0;
	return ret;
}

static void test_outage(struct throttle_redis *r)
{
	char err[256];
	long long ms, d;

	test_begin("Redis hung: -1 with the reason within the timeout, then at once");
	kill(servers[0], SIGSTOP);
	test_assert(timed(r, "down:a", &ms, err, sizeof(err)) == -1);
	test_assert(ms >= TIMEOUT_MS - 20 && ms <= TIMEOUT_MS + SLACK_MS);
	test_assert(strstr(err, addr) != NULL && strstr(err, "no answer within 300 ms") != NULL);
	for (int i = 0; i < 5; i++) { /* the back-off: no attempt for a second */
		test_assert(timed(r, "down:a", &ms, err, sizeof(err)) == -1);
		test_assert(ms < 50);
	}
	/* after the back-off one attempt: connect works (the kernel accepts),
	 * SCRIPT LOAD gets no answer; all within one timeout */
	test_sleep_ms(1050);
	test_assert(timed(r, "down:a", &ms, err, sizeof(err)) == -1);
	test_assert(ms >= TIMEOUT_MS - 20 && ms <= TIMEOUT_MS + SLACK_MS);
	test_assert(strstr(err, "SCRIPT LOAD") != NULL);
	kill(servers[0], SIGCONT);
	test_end();

	test_begin("Redis back: used again after the back-off, without reopening");
	test_assert(timed(r, "down:b", &ms, err, sizeof(err)) == -1 && ms < 50);
	test_sleep_ms(1050);
	test_assert(reserve(r, "down:b", 10, 1, 1000, &d) == 1 && d == 0);
	test_end();

	test_begin("Redis killed: -1 at once (refused), and back");
	redis_server_stop(&servers[0], SIGKILL);
	for (int i = 0; i < 3; i++) {
		test_assert(timed(r, "down:c", &ms, err, sizeof(err)) == -1);
		test_assert(ms < TIMEOUT_MS);
	}
	test_assert(strstr(err, "onnect") != NULL || strstr(err, "EVALSHA") != NULL);
	servers[0] = redis_server_start(tmpdir, port, NULL);
	test_sleep_ms(1050);
	test_assert(reserve(r, "down:c", 10, 1, 1000, &d) == 1 && d == 0);
	test_end();

	test_begin("Redis restarted between two calls: resent over a new connection");
	redis_server_stop(&servers[0], SIGKILL);
	servers[0] = redis_server_start(tmpdir, port, NULL);
	test_assert(reserve(r, "down:d", 1000, 1, 1000, &d) == 1 && d == 0);
	test_assert(stored("down:d", false) > 0);
	test_end();

	test_begin("SCRIPT FLUSH: NOSCRIPT loads the script again");
	redisContext *c = redis_admin(port, NULL);
	freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
	redisFree(c);
	test_assert(reserve(r, "down:d", 1000, 1, 2000, &d) == 1 && near(d, 1000));
	test_end();
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	chmod(path, mode);
}

static void test_password(void)
{
	char *pwfile = xasprintf("%s/redis.pw", tmpdir), *err = NULL, ebuf[256];
	int auth_port = redis_free_port();
	struct throttle_redis *r;
	long long d;

	test_begin("password file: mode checked, AUTH sent, never in errors");
	servers[1] = redis_server_start(tmpdir, auth_port, "pw-Secret-42");
	cfg_init(auth_port);
	cfg.rate.redis_password_file = pwfile;
	write_file(pwfile, "pw-Secret-42\n", 0644);
	test_assert(throttle_redis_open(&cfg, &err) == NULL);
	test_assert(err != NULL && strstr(err, "chmod 0640") != NULL &&
	            strstr(err, "every user read") != NULL);
	free(err);
	err = NULL;

	chmod(pwfile, 0600);
	r = throttle_redis_open(&cfg, &err);
	test_assert(r != NULL);
	test_assert(r != NULL &&
	            throttle_redis_reserve(r, "auth:x", 100, 1, 1000, &d, ebuf, sizeof(ebuf)) == 1);
	throttle_redis_close(r);

	/* without the password: NOAUTH, an error */
	cfg.rate.redis_password_file = (char *)"";
	r = open_ok();
	test_assert(throttle_redis_reserve(r, "auth:x", 100, 1, 1000, &d, ebuf, sizeof(ebuf)) ==
	            -1);
	test_assert(strstr(ebuf, "NOAUTH") != NULL);
	throttle_redis_close(r);

	/* a wrong one: AUTH fails, and the password is in no message */
	cfg.rate.redis_password_file = pwfile;
	write_file(pwfile, "wrong-Secret-43\n", 0600);
	r = open_ok();
	test_assert(throttle_redis_reserve(r, "auth:x", 100, 1, 1000, &d, ebuf, sizeof(ebuf)) ==
	            -1);
	test_assert(strstr(ebuf, "AUTH") != NULL && strstr(ebuf, "Secret") == NULL);
	throttle_redis_close(r);
	redis_server_stop(&servers[1], SIGTERM);
	free(pwfile);
	test_end();
}

static void test_bad_settings(void)
{
	char *err = NULL;

	test_begin("unusable settings: no handle, a reason");
	cfg_init(port);
	cfg.rate.redis = (char *)"no-port:abc";
	test_assert(throttle_redis_open(&cfg, &err) == NULL && err != NULL &&
	            strstr(err, "rate.redis") != NULL);
	free(err);
	err = NULL;
	cfg_init(port);
	cfg.rate.redis_password_file = (char *)"/nonexistent/redis.pw";
	test_assert(throttle_redis_open(&cfg, &err) == NULL && err != NULL &&
	            strstr(err, "/nonexistent/redis.pw") != NULL);
	free(err);
	test_end();
}

int main(void)
{
	struct throttle_redis *r;

	if (!redis_server_installed()) {
		printf("redis-server not installed: skipped\n");
		return 77;
	}
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	log_open("test-throttle-redis", true, "mail");

	port = redis_free_port();
	servers[0] = redis_server_start(tmpdir, port, NULL);
	cfg_init(port);
	r = open_ok();
	test_spacing(r);
	test_refusal(r);
	test_unreserve(r);
	test_microseconds(r);
	test_expiry(r);
	test_two_agents(r);
	test_outage(r);
	throttle_redis_close(r);

	test_bad_settings();
	test_password();
	return test_exit_status();
}
