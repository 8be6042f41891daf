/* sender-map - how fast weir-milter decides "may LOGIN send as ADDRESS"
 * with a large sender map, and how long loading that map takes.
 *
 *	bench/sender-map [LOGINS [ADDRESSES_PER_LOGIN [DECISIONS]]]
 *
 * Writes a senders.table with LOGINS logins (default 10 000) of
 * ADDRESSES_PER_LOGIN addresses each (default 10: 8 exact, one domain,
 * one glob: 100 000 in all), loads weir.conf with it (start-up / reload
 * time), then times DECISIONS envelope-sender decisions (default
 * 2 000 000: parse the MAIL FROM argument, strip a +tag, look up; half
 * allowed, half refused). The baseline is the same decisions against a
 * map of 10 logins, measured in the same run: the ratio says what the
 * map's size costs per decision. Bounded: one process, no network. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/senders.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* write_table - the table file for n logins of k addresses */
static void write_table(const char *path, long n, long k)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	for (long i = 0; i < n; i++) {
		fprintf(f, "user%ld", i);
		for (long j = 0; j < k - 2; j++)
			fprintf(f, "%suser%ld.%ld@dept%ld.example.com", j ? ", " : " ", i, j, i % 97);
		fprintf(f, ", @team%ld.example.org, *-noreply-%ld@apps.example.net\n", i, i);
	}
	fclose(f);
}

static struct weir_config *load(const char *dir, const char *table, double *secs_r)
{
	char *conf = xasprintf("%s/weir.conf", dir);
	struct config_errors errs;
	struct weir_config *cfg;
	FILE *f = fopen(conf, "w");
	double t0;

	fprintf(f, "senders = { table = \"%s\"; };\n", table);
	fclose(f);
	config_errors_init(&errs);
	t0 = now();
	cfg = config_load(conf, 0, &errs);
	*secs_r = now() - t0;
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "%s\n", errs.list.v[i]);
	config_errors_free(&errs);
	unlink(conf);
	free(conf);
	if (cfg == NULL)
		exit(1);
	return cfg;
}

/* decide - n decisions over logins 0..nlogins-1; returns seconds */
static double decide(const struct weir_config *cfg, long nlogins, long k, long n, long *allowed_r)
{
	char login[32], arg[128];
	struct address a;
	const char *err;
	long allowed = 0;
	double t0 = now();

	for (long i = 0; i < n; i++) {
		long u = (i * 7919) % nlogins;
		snprintf(login, sizeof(login), "user%ld", u);
		switch (i % 4) {
		case 0: /* exact, with a tag */
			snprintf(arg, sizeof(arg), "<user%ld.%ld+tag@Dept%ld.example.com>", u,
				 i % (k - 2), u % 97);
			break;
		case 1: /* someone else's address */
			snprintf(arg, sizeof(arg), "<user%ld.0@dept%ld.example.com>", (u + 1) % nlogins,
				 ((u + 1) % nlogins) % 97);
			break;
		case 2: /* domain form */
			snprintf(arg, sizeof(arg), "<anyone@team%ld.example.org>", u);
			break;
		default: /* glob form, refused */
			snprintf(arg, sizeof(arg), "<billing-%ld@apps.example.net>", u);
			break;
		}
		if (address_parse(arg, &a, &err) == 0) {
			allowed += sender_map_allows(cfg->sender_map, login, a.canonical);
			address_free(&a);
		}
	}
	*allowed_r = allowed;
	return now() - t0;
}

int main(int argc, char **argv)
{
	long nlogins = argc > 1 ? atol(argv[1]) : 10000;
	long k = argc > 2 ? atol(argv[2]) : 10;
	long n = argc > 3 ? atol(argv[3]) : 2000000;
	char dir[] = "/tmp/weir-bench-senders-XXXXXX";
	char *big, *small;
	struct weir_config *cfg_big, *cfg_small;
	double load_big, load_small, t_big, t_small;
	long ok_big, ok_small;

	if (nlogins < 10 || k < 3 || n < 1000 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "usage: sender-map [LOGINS>=10 [ADDRESSES>=3 [DECISIONS>=1000]]]\n");
		return 2;
	}
	big = xasprintf("%s/big.table", dir);
	small = xasprintf("%s/small.table", dir);
	write_table(big, nlogins, k);
	write_table(small, 10, k);
	cfg_big = load(dir, big, &load_big);
	cfg_small = load(dir, small, &load_small);
	printf("map: %zu logins, %zu entries; load (start-up/reload) %.3f s\n",
	       sender_map_logins(cfg_big->sender_map), sender_map_entries(cfg_big->sender_map),
	       load_big);
	t_small = decide(cfg_small, 10, k, n, &ok_small);
	t_big = decide(cfg_big, nlogins, k, n, &ok_big);
	printf("baseline (10 logins): %ld decisions in %.3f s = %.0f/s (%ld allowed)\n", n, t_small,
	       (double)n / t_small, ok_small);
	printf("large map:            %ld decisions in %.3f s = %.0f/s (%ld allowed)\n", n, t_big,
	       (double)n / t_big, ok_big);
	printf("ratio (time per decision, large / baseline): %.2f\n", t_big / t_small);
	config_unref(cfg_big);
	config_unref(cfg_small);
	unlink(big);
	unlink(small);
	rmdir(dir);
	free(big);
	free(small);
	return ok_big == n / 2 ? 0 : 1;
}
