/* suppress-lookup - RCPT-time suppression lookups against a big list
 *
 * SYNOPSIS
 *	bench/suppress-lookup [--entries N] [--lookups M] [--dir DIR]
 *
 * DESCRIPTION
 *	Makes a suppression list of N entries (default 1 000 000: global
 *	ones, and one in ten for a sender domain) in DIR (default a
 *	temporary directory, removed at the end) through
 *	suppress_import_csv, then times M lookups (default 100 000) through
 *	suppress_lookup as weir-milter does them: a read-only store, a random
 *	recipient (half of them on the list, in random letter case), a random
 *	sender domain. Prints the time to build the list, p50, p99 and max
 *	of one lookup in microseconds, and the goal (p99 <= 100 us). Exit 1
 *	when a lookup gives a wrong answer or fails; the goal itself is only
 *	reported. Nothing else is needed: no root, no MTA. */
#include "autoconf.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/suppress.h"

#define GOAL_P99_US 100.0
#define DOMAINS     1000

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* xorshift64* - reproducible numbers, no libc state */
static unsigned long long next_rand(unsigned long long *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static struct weir_config *config_for(const char *db)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("suppression = { db = \"%s\"; };\n", db);

	config_errors_init(&errs);
	cfg = config_load_string("bench.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "%s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

/* build - N entries: user<i>@d<i % DOMAINS>.example, every tenth in the
 * scope of sender domain s<(i / 10) % 10>.example */
static int build(struct weir_config *cfg, long n)
{
	struct suppress *s;
	char *err = NULL;
	FILE *csv = tmpfile();
	long got;

	if (csv == NULL) {
		perror("tmpfile");
		return -1;
	}
	fputs("address,scope,reason,hard,source,created,expires\n", csv);
	for (long i = 0; i < n; i++) {
		char scope[32] = "";
		if (i % 10 == 0)
			snprintf(scope, sizeof(scope), "s%ld.example", (i / 10) % 10);
		fprintf(csv,
		        "user%ld@d%ld.example,%s,userunknown,true,bounce,"
		        "2026-01-01T00:00:00Z,\n",
		        i, i % DOMAINS, scope);
	}
	rewind(csv);
	if ((s = suppress_open(cfg, true, &err)) == NULL ||
	    (got = suppress_import_csv(s, csv, "bench.csv", &err)) != n) {
		fprintf(stderr, "build: %s\n", err != NULL ? err : "short import");
		free(err);
		suppress_close(s);
		fclose(csv);
		return -1;
	}
	suppress_close(s);
	fclose(csv);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"entries", required_argument, NULL, 'n'},
	    {"lookups", required_argument, NULL, 'l'},
	    {"dir", required_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0},
	};
	long entries = 1000000, lookups = 100000, wrong = 0;
	unsigned long long seed = 0x9e3779b97f4a7c15ULL;
	char tmpl[] = "/tmp/weir-suppress-bench.XXXXXX", *dir = NULL, *db, *err = NULL;
	struct weir_config *cfg;
	struct suppress *s;
	double *t, t0;
	bool own_dir = false;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "n:l:d:", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': entries = atol(optarg); break;
		case 'l': lookups = atol(optarg); break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: %s [--entries N] [--lookups M] [--dir DIR]\n",
			        argv[0]);
			return 2;
		}
	}
	if (entries < 1 || lookups < 1) {
		fprintf(stderr, "--entries and --lookups must be positive\n");
		return 2;
	}
	log_open("suppress-lookup", true, "mail");
	if (dir == NULL) {
		if ((dir = mkdtemp(tmpl)) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		own_dir = true;
	}
	db = xasprintf("%s/suppression.db", dir);
	unlink(db);
	if ((cfg = config_for(db)) == NULL)
		return 1;
	t0 = now_us();
	if (build(cfg, entries) < 0)
		return 1;
	printf("suppression list: %ld entries built in %.1f s (%s)\n", entries,
	       (now_us() - t0) / 1e6, db);
	if ((s = suppress_open_flags(cfg, SUPPRESS_READONLY, &err)) == NULL) {
		fprintf(stderr, "open: %s\n", err);
		return 1;
	}
	t = xcalloc((size_t)lookups, sizeof(*t));
	for (long k = 0; k < lookups; k++) {
		long i = (long)(next_rand(&seed) % (unsigned long long)entries);
		bool present = next_rand(&seed) & 1;
		long sd = (long)(next_rand(&seed) % 100);
		char rcpt[128], sender[32];
		struct suppress_entry e;
		int r;

		snprintf(rcpt, sizeof(rcpt), "%s%ld@d%ld.example", present ? "user" : "nobody", i,
		         i % DOMAINS);
		if (next_rand(&seed) & 1)
			rcpt[0] = (char)toupper((unsigned char)rcpt[0]);
		snprintf(sender, sizeof(sender), "s%ld.example", sd);
		t0 = now_us();
		r = suppress_lookup(s, rcpt, sender, 1800000000LL, &e, &err);
		t[k] = now_us() - t0;
		if (r < 0) {
			fprintf(stderr, "lookup %s: %s\n", rcpt, err);
			free(err);
			err = NULL;
			rc = 1;
			break;
		}
		/* present: global, or scoped to s<(i/10)%10>.example */
		if (r != (present && (i % 10 != 0 || sd == (i / 10) % 10)))
			wrong++;
	}
	qsort(t, (size_t)lookups, sizeof(*t), cmp_double);
	printf("lookups: %ld (half on the list), p50 %.1f us, p99 %.1f us, max %.1f us\n", lookups,
	       t[lookups / 2], t[lookups * 99 / 100], t[lookups - 1]);
	printf("goal: p99 <= %.0f us: %s\n", GOAL_P99_US,
	       t[lookups * 99 / 100] <= GOAL_P99_US ? "met" : "MISSED");
	if (wrong > 0) {
		printf("WRONG answers: %ld\n", wrong);
		rc = 1;
	}
	free(t);
	suppress_close(s);
	config_unref(cfg);
	if (own_dir) {
		char *f[] = {db, xasprintf("%s-wal", db), xasprintf("%s-shm", db)};
		for (size_t i = 0; i < 3; i++) {
			unlink(f[i]);
			if (i > 0)
				free(f[i]);
		}
		rmdir(dir);
	}
	free(db);
	return rc;
}
