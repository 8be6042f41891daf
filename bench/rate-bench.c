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
 *	--backend redis needs a Redis server at --redis (default
 *	127.0.0.1:6379); bench/README says how to start a throwaway one.
 *	Nothing else is needed: no root, no MTA. */
#include "autoconf.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate.h"
#include "policy/rate_store.h"

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
		"  flush_interval = 300; redis_prefix = \"weir:rate-bench:\";\n"
		"  limits = (\n"
		"    { name = \"login\"; key = \"login\"; count = \"recipients\"; rate = \"100/1h\";\n"
		"      burst = 20; quota = \"2000/1d\"; },\n"
		"    { name = \"login-dom\"; key = \"login+rcpt_domain\"; rate = \"30/1m\"; burst = 10; },\n"
		"    { name = \"client\"; key = \"client\"; count = \"recipients\"; rate = \"1000/1h\";\n"
		"      burst = 1000; ipv4_prefix = 24; }\n"
		"  ); };\n",
		backend, o->state_db ? o->state_db : "", o->redis);

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

/* bench_backend - open the store, fill --keys keys, measure */
static int bench_backend(const struct options *o, const char *backend, struct result *r)
{
	struct weir_config *cfg = config_for(o, backend);
	long rss0 = rss_kb(), rss1;
	struct rate_store *s;
	char *err = NULL;
	double t0;

	if (cfg == NULL)
		return -1;
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
	/* REDIS HALF: the Redis backend's memory for the same keys (INFO
	 * memory's used_memory before and after) goes here. */
	r->rate_1 = run(cfg, s, o, 1);
	r->rate_n = run(cfg, s, o, o->threads);
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

	*o = (struct options){"memory", 100000, 3.0, 4, "127.0.0.1:6379", NULL};
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
	if ((both || strcmp(o.backend, "redis") == 0) && bench_backend(&o, "redis", &redis) < 0)
		return 1;
	if (both && mem.rate_1 > 0 && mem.rate_n > 0)
		printf("redis/memory: %.3f with 1 thread, %.3f with %d threads\n",
		       redis.rate_1 / mem.rate_1, redis.rate_n / mem.rate_n, o.threads);
	return 0;
}
