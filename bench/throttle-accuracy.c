/* throttle-accuracy - how exactly the throttle holds each destination's rate
 *
 * SYNOPSIS
 *	bench/throttle-accuracy [--groups N] [--min-rate R] [--max-rate R]
 *	                        [--seconds S] [--overload F] [--load F]
 *	                        [--arrivals even|poisson] [--wait SECS]
 *	                        [--backend memory|redis] [--redis HOST:PORT]
 *	                        [--verbose]
 *
 * DESCRIPTION
 *	Drives issue 8's throttle engine (policy/throttle.h: throttle_new,
 *	throttle_match, throttle_reserve) directly, on the real clock, the
 *	way weir-agent does at each RCPT: N destination groups (default 100,
 *	gNNN for the domain dNNN.bench.example) with rates spread evenly
 *	between --min-rate and --max-rate messages/s (default 1 and 100:
 *	1/s, 2/s, ..., 100/s; 5 050 messages/s in all, far more than Postfix
 *	and a Python sink could carry on a small machine, hence no MTA here;
 *	bench/throttle-e2e.sh is the end-to-end variant). Each arrival asks
 *	throttle_reserve for a slot with up to --wait seconds (throttle.wait,
 *	default 3) of waiting: THROTTLE_GO with a delay means the message
 *	goes at now + delay; THROTTLE_RATE is a deferral (the agent's 451).
 *
 *	Phase 1, accuracy: evenly spaced arrivals at --overload (default
 *	1.5) times each group's rate for --seconds (default 60). Observed rate = messages
 *	that go within the phase / its length. Prints per group the
 *	configured and observed rate and |observed - configured| /
 *	configured, then the worst and the mean of that error. (With
 *	integer-millisecond arithmetic a rate whose interval is not a whole
 *	number of ms shows here; a count over S seconds cannot resolve
 *	better than 1/(rate x S): 1.7 % for 1/s over 60 s.)
 *
 *	Phase 2, no deferral under the rate: a fresh throttle, arrivals at
 *	--load (default 0.9) times each rate for --seconds, evenly spaced
 *	(default) or Poisson (--arrivals poisson: this phase only), each
 *	allowed to wait up to
 *	--wait. Prints the number of deferrals (goal: 0, the spec's "an
 *	offered load at or under the rate is never deferred"; it holds for
 *	even arrivals; Poisson arrivals at 90 % queue like M/D/1, whose
 *	waits exceed a few seconds now and then for the slow groups, so
 *	some deferrals there are expected, not a bug), the longest and the
 *	mean wait, and the observed/offered ratio.
 *
 *	--backend redis makes the reservations in the Redis at --redis
 *	(throttle.backend = "redis", keys under weir:throttle-bench:PID:);
 *	a reservation that fell back to the local share is counted and
 *	reported. Default: the memory backend, nothing else needed (no root,
 *	no MTA, no network). Run time: 2 x --seconds (two minutes by
 *	default; --seconds 10 for a quick look).
 *
 *	Built by `make` (noinst); run by hand: bench/throttle-accuracy. */
#include "autoconf.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/throttle.h"

struct options {
	int groups;
	double min_rate, max_rate;
	double seconds;
	double overload, load;
	bool poisson;
	double wait;
	const char *backend;
	const char *redis;
	bool verbose;
};

/* One destination group's arrivals and what became of them */
struct group {
	char domain[64];
	long rate;          /* messages per second, as configured */
	double gap_ns;      /* mean time between arrivals */
	long long next_ns;  /* next arrival (CLOCK_REALTIME ns) */
	long arrivals, went, deferred, backend;
	long long wait_ms_sum, wait_ms_max;
};

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* sleep_until - until the CLOCK_REALTIME time t (ns) */
static void sleep_until(long long t)
{
	struct timespec ts = {(time_t)(t / 1000000000LL), (long)(t % 1000000000LL)};

	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) != 0)
		;
}

/* addf - append xasprintf(fmt, ...) to b */
static void addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		fprintf(stderr, "throttle-accuracy: configuration line too long\n");
		exit(1);
	}
	strbuf_adds(b, buf);
}

/* config_for - weir.conf text for the groups; phase names the Redis keys */
static struct weir_config *config_for(const struct options *o, const struct group *g, int phase)
{
	struct config_errors errs;
	struct weir_config *cfg;
	struct strbuf sb = {NULL, 0, 0};
	char *text;

	if (o->redis != NULL)
		addf(&sb, "rate = { redis = \"%s\"; redis_prefix = \"weir:throttle-bench:%ld:%d:\"; };\n",
		     o->redis, (long)getpid(), phase);
	addf(&sb, "throttle = {\n  wait = \"%lds\";\n  max_waiting = 10000;\n  backend = \"%s\";\n"
		  "  state_file = \"\";\n  rules = ();\n  groups = (\n",
	     (long)ceil(o->wait), o->backend);
	for (int i = 0; i < o->groups; i++)
		addf(&sb, "    { name = \"g%03d\"; domains = (\"%s\"); rate = \"%ld/s\"; burst = 1; }%s\n",
		     i + 1, g[i].domain, g[i].rate, i + 1 < o->groups ? "," : "");
	addf(&sb, "  );\n};\n");
	text = strbuf_take(&sb);
	config_errors_init(&errs);
	cfg = config_load_string("throttle-accuracy.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "throttle-accuracy: %s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

/* gap - the time to the next arrival of g (ns) */
static double gap(bool poisson, const struct group *g)
{
	if (poisson)
		return -log(1.0 - drand48()) * g->gap_ns;
	return g->gap_ns;
}

/* run_phase - arrivals at factor x each rate for o->seconds, Poisson or
 * evenly spaced; fills g[] */
static int run_phase(const struct options *o, struct group *g, double factor, bool poisson,
		     int phase)
{
	struct weir_config *cfg = config_for(o, g, phase);
	struct throttle *t;
	long long start, end, max_delay_ms = (long long)(o->wait * 1000.0);

	if (cfg == NULL)
		return -1;
	t = throttle_new(cfg);
	start = now_ns() + 10000000LL; /* 10 ms to set up */
	end = start + (long long)(o->seconds * 1e9);
	for (int i = 0; i < o->groups; i++) {
		g[i].gap_ns = 1e9 / ((double)g[i].rate * factor);
		/* a random phase: the groups do not all arrive at once */
		g[i].next_ns = start + (long long)(drand48() * g[i].gap_ns);
		g[i].arrivals = g[i].went = g[i].deferred = g[i].backend = 0;
		g[i].wait_ms_sum = g[i].wait_ms_max = 0;
	}
	for (;;) {
		struct group *n = NULL;
		struct throttle_match m;
		enum throttle_verdict v;
		long long delay = 0, until = 0, now_ms, at;
		size_t which = 0;

		for (int i = 0; i < o->groups; i++)
			if (n == NULL || g[i].next_ns < n->next_ns)
				n = &g[i];
		if (n->next_ns >= end)
			break;
		sleep_until(n->next_ns);
		n->next_ns += (long long)gap(poisson, n);
		n->arrivals++;
		now_ms = now_ns() / 1000000LL;
		throttle_match(t, n->domain, NULL, 0, "bench", "client.example", &m);
		v = throttle_reserve(t, &m, now_ms, max_delay_ms, &delay, &which, &until);
		if (v != THROTTLE_GO) {
			n->deferred++;
			if (v == THROTTLE_BACKEND)
				n->backend++;
			continue;
		}
		at = (now_ms + delay) * 1000000LL;
		n->wait_ms_sum += delay;
		if (delay > n->wait_ms_max)
			n->wait_ms_max = delay;
		if (at >= start && at < end)
			n->went++;
	}
	throttle_free(t);
	config_unref(cfg);
	return 0;
}

/* accuracy - phase 1's report */
static void accuracy(const struct options *o, const struct group *g)
{
	double worst = 0, sum = 0;
	int worst_i = 0;
	long backend = 0;

	if (o->verbose)
		printf("%-22s %8s %10s %8s %9s\n", "group", "rate", "observed", "error", "deferred");
	for (int i = 0; i < o->groups; i++) {
		double obs = (double)g[i].went / o->seconds;
		double err = fabs(obs - (double)g[i].rate) / (double)g[i].rate;

		sum += err;
		if (err > worst) {
			worst = err;
			worst_i = i;
		}
		backend += g[i].backend;
		if (o->verbose)
			printf("%-22s %6ld/s %8.2f/s %7.2f%% %9ld\n", g[i].domain, g[i].rate, obs,
			       100 * err, g[i].deferred);
	}
	printf("phase 1 (offered %.1fx each rate, %.0f s): error |observed-configured|/configured: "
	       "worst %.2f%% (g%03d at %ld/s: %.3f/s), mean %.2f%%\n",
	       o->overload, o->seconds, 100 * worst, worst_i + 1, g[worst_i].rate,
	       (double)g[worst_i].went / o->seconds, 100 * sum / o->groups);
	if (backend > 0)
		printf("phase 1: %ld reservations failed in Redis (local share used): not Redis's "
		       "numbers\n", backend);
}

/* deferrals - phase 2's report */
static void deferrals(const struct options *o, const struct group *g)
{
	long arrivals = 0, deferred = 0, went = 0, gd = 0;
	long long wmax = 0, wsum = 0;
	double offered = 0;

	for (int i = 0; i < o->groups; i++) {
		arrivals += g[i].arrivals;
		deferred += g[i].deferred;
		went += g[i].went;
		wsum += g[i].wait_ms_sum;
		if (g[i].wait_ms_max > wmax)
			wmax = g[i].wait_ms_max;
		offered += o->load * (double)g[i].rate * o->seconds;
		if (g[i].deferred > 0) {
			gd++;
			if (o->verbose || gd <= 10)
				printf("  %s (%ld/s): %ld of %ld arrivals deferred\n", g[i].domain,
				       g[i].rate, g[i].deferred, g[i].arrivals);
		}
	}
	printf("phase 2 (offered %.0f%% of each rate, %s arrivals, wait up to %.1f s, %.0f s): "
	       "%ld deferrals in %ld arrivals, %ld groups (goal 0%s); wait max %lld ms, mean %.1f ms; "
	       "went/offered %.3f\n",
	       100 * o->load, o->poisson ? "Poisson" : "evenly spaced", o->wait, o->seconds,
	       deferred, arrivals, gd, o->poisson ? " for even arrivals; Poisson: some expected" : "",
	       wmax, arrivals > deferred ? (double)wsum / (double)(arrivals - deferred) : 0.0,
	       offered > 0 ? (double)went / offered : 0.0);
}

static void usage(void)
{
	fprintf(stderr, "usage: throttle-accuracy [--groups N] [--min-rate R] [--max-rate R] "
			"[--seconds S] [--overload F] [--load F] [--arrivals even|poisson] "
			"[--wait SECS] [--backend memory|redis] [--redis HOST:PORT] [--verbose]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"groups", required_argument, NULL, 'g'},   {"min-rate", required_argument, NULL, 'm'},
		{"max-rate", required_argument, NULL, 'M'}, {"seconds", required_argument, NULL, 's'},
		{"overload", required_argument, NULL, 'o'}, {"load", required_argument, NULL, 'l'},
		{"arrivals", required_argument, NULL, 'a'}, {"wait", required_argument, NULL, 'w'},
		{"backend", required_argument, NULL, 'b'},  {"redis", required_argument, NULL, 'r'},
		{"verbose", no_argument, NULL, 'v'},        {NULL, 0, NULL, 0}};
	struct options o = {100, 1, 100, 60, 1.5, 0.9, false, 3, "memory", NULL, false};
	struct group *g;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'g': o.groups = atoi(optarg); break;
		case 'm': o.min_rate = atof(optarg); break;
		case 'M': o.max_rate = atof(optarg); break;
		case 's': o.seconds = atof(optarg); break;
		case 'o': o.overload = atof(optarg); break;
		case 'l': o.load = atof(optarg); break;
		case 'a':
			if (strcmp(optarg, "poisson") != 0 && strcmp(optarg, "even") != 0)
				usage();
			o.poisson = strcmp(optarg, "poisson") == 0;
			break;
		case 'w': o.wait = atof(optarg); break;
		case 'b': o.backend = optarg; break;
		case 'r': o.redis = optarg; break;
		case 'v': o.verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc || o.groups < 1 || o.groups > 999 || o.min_rate < 1 ||
	    o.max_rate < o.min_rate || o.seconds <= 0 || o.overload <= 1 || o.load <= 0 ||
	    o.load > 1 || o.wait < 1 || o.wait > 60 ||
	    (strcmp(o.backend, "memory") != 0 && strcmp(o.backend, "redis") != 0))
		usage();
	if (strcmp(o.backend, "redis") == 0 && o.redis == NULL) {
		fprintf(stderr, "throttle-accuracy: --backend redis needs --redis HOST:PORT\n");
		return 2;
	}
	srand48((long)now_ns());
	g = xcalloc((size_t)o.groups, sizeof(*g));
	for (int i = 0; i < o.groups; i++) {
		double r = o.groups > 1 ? o.min_rate + (o.max_rate - o.min_rate) * i / (o.groups - 1)
					: o.min_rate;

		snprintf(g[i].domain, sizeof(g[i].domain), "d%03d.bench.example", i + 1);
		g[i].rate = lround(r);
	}
	printf("throttle-accuracy: %d groups at %ld/s .. %ld/s, burst 1, wait %.1f s, backend %s\n",
	       o.groups, g[0].rate, g[o.groups - 1].rate, o.wait, o.backend);
	fflush(stdout);
	if (run_phase(&o, g, o.overload, false, 1) < 0)
		return 1;
	accuracy(&o, g);
	fflush(stdout);
	if (run_phase(&o, g, o.load, o.poisson, 2) < 0)
		return 1;
	deferrals(&o, g);
	free(g);
	return 0;
}
