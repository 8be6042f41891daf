/* rate-bench - rate limit decisions per second and memory for live keys
 *
 * SYNOPSIS
 *	bench/rate-bench [--backend memory|redis|both] [--keys N] [--seconds S]
 *	                 [--threads T] [--redis HOST:PORT] [--state-db FILE]
 *
 * DESCRIPTION
 *	Each decision is what weir-milter does at one RCPT: rate_plan over
 *	three limits (login, login+rcpt_domain, client /24), then rate_charge
 *	of the planned items at once, for logins picked at random among
 *	--keys (default 100 000). It prints decisions per second with one
 *	thread and with --threads (default 4) for each backend run, the ratio
 *	redis/memory when both run, and for the memory backend the RSS that
 *	--keys live keys take (goal for 100 000: at most 64 MB) and, with
 *	--state-db, the time to flush them all and to load them at open.
 *
 *	--backend redis (or both) uses the Redis server at --redis; without
 *	--redis it starts a throwaway redis-server on a free loopback port
 *	(in a temporary directory, no persistence) and stops it at the end.
 *	The Redis run also prints what the keys take in Redis (INFO memory's
 *	used_memory before and after making them, and their number, counted
 *	with SCAN), and stops if any decision fell to rate.fail_mode (then the
 *	numbers would not be Redis's). Keys under the bench's prefix
 *	(weir:rate-bench:) left by an earlier run are deleted first.
 *	Nothing else is needed: no root, no MTA. */
#include "autoconf.h"

#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate.h"
#include "policy/rate_redis.h"
#include "policy/rate_store.h"

#define REDIS_PREFIX "weir:rate-bench:"

struct options {
	const char *backend;
	long keys;
	double seconds;
	int threads;
	const char *redis;
	const char *state_db;
};

/* One backend's numbers */
struct result {
	double rate_1, rate_n; /* decisions/s: one thread, opts->threads */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f != NULL && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	if (f != NULL)
		fclose(f);
	return kb;
}

/* config_for - weir.conf for backend with the three limits */
static struct weir_config *config_for(const struct options *o, const char *backend)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf(
		"rate = { backend = \"%s\"; state_db = \"%s\"; redis = \"%s\";\n"
		"  flush_interval = 300; redis_prefix = \"" REDIS_PREFIX "\";\n"
		"  limits = (\n"
		"    { name = \"login\"; key = \"login\"; count = \"recipients\"; rate = \"100/1h\";\n"
		"      burst = 20; quota = \"2000/1d\"; },\n"
		"    { name = \"login-dom\"; key = \"login+rcpt_domain\"; rate = \"30/1m\"; burst = 10; },\n"
		"    { name = \"client\"; key = \"client\"; count = \"recipients\"; rate = \"1000/1h\";\n"
		"      burst = 1000; ipv4_prefix = 24; }\n"
		"  ); };\n",
		backend, o->state_db ? o->state_db : "", o->redis ? o->redis : "127.0.0.1:6379");

	config_errors_init(&errs);
	cfg = config_load_string("rate-bench.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "%s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

/* decide - one RCPT decision for login number i */
static bool decide(const struct weir_config *cfg, struct rate_store *s, long i, long long now)
{
	char login[32], ip[32], rcpt[64];
	struct rate_context ctx = {login, ip, "sender@example.com", rcpt, IDENTITY_AUTHENTICATED,
				   NULL, 0};
	struct rate_verdict v;
	struct rate_item *items;
	size_t n;

	snprintf(login, sizeof(login), "user%06ld", i);
	snprintf(ip, sizeof(ip), "10.%ld.%ld.%ld", (i >> 16) & 255, (i >> 8) & 255, i & 255);
	snprintf(rcpt, sizeof(rcpt), "r@domain%ld.example", i % 50);
	n = rate_plan(cfg, RATE_AT_RCPT, &ctx, &items);
	rate_charge(s, items, n, false, now, &v);
	rate_items_free(items, n);
	return v.allowed;
}

struct worker {
	const struct weir_config *cfg;
	struct rate_store *s;
	long keys;
	double until;
	unsigned seed;
	long done;
};

static void *work(void *p)
{
	struct worker *w = p;

	while (now_s() < w->until) {
		for (int k = 0; k < 100; k++)
			decide(w->cfg, w->s, (long)(rand_r(&w->seed) % w->keys), rate_now_ms());
		w->done += 100;
	}
	return NULL;
}

/* run - decisions/s with nthreads for o->seconds */
static double run(const struct weir_config *cfg, struct rate_store *s, const struct options *o,
		  int nthreads)
{
	struct worker *w = xcalloc((size_t)nthreads, sizeof(*w));
	pthread_t *th = xcalloc((size_t)nthreads, sizeof(*th));
	double t0 = now_s(), until = t0 + o->seconds;
	long total = 0;

	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){cfg, s, o->keys, until, (unsigned)(i + 1) * 7919u, 0};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		total += w[i].done;
	}
	free(w);
	free(th);
	return (double)total / (now_s() - t0);
}

/* The Redis half: a throwaway redis-server when --redis is not given
 * (started as the field notes say, stopped by its PID), and what the
 * keys take in Redis */
static pid_t redis_pid;
static char redis_dir[] = "/tmp/rate-bench.XXXXXX";
static char redis_addr[64];

/* redis_admin - a plain connection to the server at addr (HOST:PORT,
 * [IPv6]:PORT or unix:/path), or NULL */
static redisContext *redis_admin(const char *addr)
{
	struct timeval tv = {2, 0};
	redisContext *c;
	struct endpoint ep;
	const char *err;
	bool literal;

	if (strncmp(addr, "unix:", 5) == 0)
		c = redisConnectUnixWithTimeout(addr + 5, tv);
	else if (endpoint_parse_hostport(addr, 6379, &ep, &literal, &err) == 0)
		c = redisConnectWithTimeout(ep.host, (int)ep.port, tv);
	else
		return NULL;
	if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK)
		return c;
	if (c != NULL)
		redisFree(c);
	return NULL;
}

static void redis_stop(void)
{
	char *path;

	if (redis_pid <= 0)
		return;
	kill(redis_pid, SIGTERM);
	waitpid(redis_pid, NULL, 0);
	redis_pid = 0;
	path = xasprintf("%s/redis.log", redis_dir);
	unlink(path);
	free(path);
	rmdir(redis_dir);
}

/* redis_spawn - redis-server on a free loopback port; its address in
 * redis_addr; -1 if it cannot be started */
static int redis_spawn(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	char port[16], *log;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0 || mkdtemp(redis_dir) == NULL) {
		perror("rate-bench: redis-server");
		return -1;
	}
	close(fd);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sin.sin_port));
	snprintf(redis_addr, sizeof(redis_addr), "127.0.0.1:%s", port);
	log = xasprintf("%s/redis.log", redis_dir);
	redis_pid = fork();
	if (redis_pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port,
		       "--save", "", "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
		_exit(127);
	}
	free(log);
	atexit(redis_stop);
	for (int i = 0; i < 100 && redis_pid > 0; i++) {
		redisContext *c = redis_admin(redis_addr);
		redisReply *reply = c ? redisCommand(c, "PING") : NULL;
		bool up = reply != NULL && reply->type == REDIS_REPLY_STATUS;
		freeReplyObject(reply);
		if (c != NULL)
			redisFree(c);
		if (up) {
			printf("redis: a throwaway redis-server at %s (pid %ld)\n", redis_addr,
			       (long)redis_pid);
			return 0;
		}
		if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid)
			redis_pid = 0;
		usleep(50000);
	}
	fprintf(stderr, "rate-bench: redis-server did not start (installed? apt-get install "
			"redis-server; or give --redis HOST:PORT)\n");
	redis_stop();
	return -1;
}

/* redis_used_memory - INFO memory's used_memory in bytes, or -1 */
static long long redis_used_memory(redisContext *c)
{
	redisReply *reply = redisCommand(c, "INFO memory");
	long long bytes = -1;
	const char *p;

	if (reply != NULL && reply->type == REDIS_REPLY_STRING &&
	    (p = strstr(reply->str, "used_memory:")) != NULL)
		bytes = atoll(p + strlen("used_memory:"));
	freeReplyObject(reply);
	return bytes;
}

/* redis_prefix_keys - the number of keys under the bench's prefix (SCAN);
 * with unlink, they are removed as well. -1 on an error. */
static long redis_prefix_keys(redisContext *c, bool unlink_them)
{
	char cursor[32] = "0";
	long n = 0;

	do {
		redisReply *reply = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor,
						 REDIS_PREFIX);
		if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->len >= sizeof(cursor)) {
			freeReplyObject(reply);
			return -1;
		}
		memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
		for (size_t i = 0; i < reply->element[1]->elements; i++) {
			const redisReply *k = reply->element[1]->element[i];
			n++;
			if (unlink_them)
				freeReplyObject(redisCommand(c, "UNLINK %b", k->str, k->len));
		}
		freeReplyObject(reply);
	} while (strcmp(cursor, "0") != 0);
	return n;
}

/* redis_before - forget an earlier run's keys; the memory in use now */
static long long redis_before(const struct options *o)
{
	redisContext *c = redis_admin(o->redis);
	long long used;

	if (c == NULL) {
		fprintf(stderr, "rate-bench: redis %s: cannot connect\n", o->redis);
		return -1;
	}
	if (redis_prefix_keys(c, true) < 0)
		fprintf(stderr, "rate-bench: redis %s: cannot remove old keys\n", o->redis);
	used = redis_used_memory(c);
	redisFree(c);
	return used;
}

/* redis_after - what the keys made take in Redis */
static void redis_after(const struct options *o, long long used0)
{
	redisContext *c = redis_admin(o->redis);
	long long used;
	long n;

	if (c == NULL)
		return;
	used = redis_used_memory(c);
	n = redis_prefix_keys(c, false);
	redisFree(c);
	printf("redis: used_memory %.1f MB -> %.1f MB (+%.1f MB for %ld keys, %.0f bytes a key)\n",
	       used0 / 1048576.0, used / 1048576.0, (used - used0) / 1048576.0, n,
	       n > 0 ? (double)(used - used0) / (double)n : 0.0);
}

/* redis_failed - decisions that fell to rate.fail_mode since failures0 */
static bool redis_failed(unsigned long failures0)
{
	unsigned long f = rate_redis_failures() - failures0;

	if (f == 0)
		return false;
	fprintf(stderr, "rate-bench: redis: %lu decisions were made by fail_mode, not by Redis "
			"(see the warning above); no numbers\n", f);
	return true;
}

/* bench_backend - open the store, fill --keys keys, measure */
static int bench_backend(const struct options *o, const char *backend, struct result *r)
{
	struct weir_config *cfg = config_for(o, backend);
	bool redis = strcmp(backend, "redis") == 0;
	unsigned long failures0 = rate_redis_failures();
	long long used0 = 0;
	long rss0 = rss_kb(), rss1;
	struct rate_store *s;
	char *err = NULL;
	double t0;

	if (cfg == NULL)
		return -1;
	if (redis && (used0 = redis_before(o)) < 0) {
		config_unref(cfg);
		return -1;
	}
	if ((s = rate_store_open(cfg, &err)) == NULL) {
		fprintf(stderr, "rate-bench: %s: %s\n", backend, err);
		free(err);
		config_unref(cfg);
		return -1;
	}
	t0 = now_s();
	for (long i = 0; i < o->keys; i++)
		decide(cfg, s, i, rate_now_ms());
	rss1 = rss_kb();
	printf("%s: %ld keys made in %.2f s", backend, o->keys, now_s() - t0);
	/* live keys: one per login, one per login and domain, one per /24 */
	if (strcmp(backend, "memory") == 0)
		printf(", RSS %.1f MB -> %.1f MB (+%.1f MB for %ld live keys; goal for 100 000: "
		       "at most 64 MB)",
		       rss0 / 1024.0, rss1 / 1024.0, (rss1 - rss0) / 1024.0,
		       2 * o->keys + (o->keys + 255) / 256);
	printf("\n");
	if (redis) {
		if (redis_failed(failures0)) {
			rate_store_close(s);
			config_unref(cfg);
			return -1;
		}
		redis_after(o, used0);
	}
	r->rate_1 = run(cfg, s, o, 1);
	r->rate_n = run(cfg, s, o, o->threads);
	if (redis && redis_failed(failures0)) {
		rate_store_close(s);
		config_unref(cfg);
		return -1;
	}
	printf("%s: %.0f decisions/s with 1 thread, %.0f with %d threads\n", backend, r->rate_1,
	       r->rate_n, o->threads);
	if (strcmp(backend, "memory") == 0 && o->state_db != NULL) {
		t0 = now_s();
		rate_store_flush(s);
		printf("memory: flush of the changed keys to %s: %.2f s\n", o->state_db,
		       now_s() - t0);
		rate_store_close(s);
		t0 = now_s();
		s = rate_store_open(cfg, &err);
		printf("memory: open with the keys in %s: %.2f s\n", o->state_db, now_s() - t0);
	}
	rate_store_close(s);
	config_unref(cfg);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rate-bench [--backend memory|redis|both] [--keys N] [--seconds S]\n"
		   "                  [--threads T] [--redis HOST:PORT] [--state-db FILE]\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"backend", required_argument, NULL, 'b'}, {"keys", required_argument, NULL, 'k'},
	    {"seconds", required_argument, NULL, 's'}, {"threads", required_argument, NULL, 't'},
	    {"redis", required_argument, NULL, 'r'},   {"state-db", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct options){"memory", 100000, 3.0, 4, NULL, NULL};
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': o->backend = optarg; break;
		case 'k': o->keys = atol(optarg); break;
		case 's': o->seconds = atof(optarg); break;
		case 't': o->threads = atoi(optarg); break;
		case 'r': o->redis = optarg; break;
		case 'd': o->state_db = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->keys < 1 || o->seconds <= 0 || o->threads < 1 ||
	    (strcmp(o->backend, "memory") != 0 && strcmp(o->backend, "redis") != 0 &&
	     strcmp(o->backend, "both") != 0)) {
		usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct result mem = {0}, redis = {0};
	bool both;
	struct options o;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	log_open("rate-bench", true, "mail");
	log_set_level(LOG_LEVEL_WARNING);
	both = strcmp(o.backend, "both") == 0;
	if ((both || strcmp(o.backend, "memory") == 0) && bench_backend(&o, "memory", &mem) < 0)
		return 1;
	if (both || strcmp(o.backend, "redis") == 0) {
		if (o.redis == NULL) {
			if (redis_spawn() < 0)
				return 1;
			o.redis = redis_addr;
		}
		if (bench_backend(&o, "redis", &redis) < 0)
			return 1;
	}
	if (both && mem.rate_1 > 0 && mem.rate_n > 0)
		printf("redis/memory: %.3f with 1 thread, %.3f with %d threads\n",
		       redis.rate_1 / mem.rate_1, redis.rate_n / mem.rate_n, o.threads);
	return 0;
}
