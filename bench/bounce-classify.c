/* bounce-classify - messages per second through bounce_parse (MIME walk,
 * DSN/ARF/text reading, classification) over the whole bounce corpus.
 *
 *	bench/bounce-classify [-r RULES] [-n ROUNDS] [CORPUS]
 *
 * CORPUS defaults to $WEIR_BOUNCE_CORPUS or ../shared/corpus/bounces; every
 * *.eml under its maildir/ is read into memory first, so the figure is
 * parsing and classification alone. RULES defaults to
 * contrib/bounce/rules.conf, ROUNDS to 5. */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/bounce.h"

struct msg {
	char *s;
	size_t n;
};

static struct msg *msgs;
static size_t nmsgs;

static void add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n, cap = 1 << 16;

	if (f == NULL)
		return;
	buf = xmalloc(cap);
	n = 0;
	for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
		n += got;
		if (n == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	fclose(f);
	msgs = xrealloc(msgs, (nmsgs + 1) * sizeof(*msgs));
	msgs[nmsgs].s = buf;
	msgs[nmsgs].n = n;
	nmsgs++;
}

/* add_dir - every *.eml below dir */
static void add_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *p;
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".eml") == 0)
			add_file(p);
		else
			add_dir(p);
		free(p);
	}
	closedir(d);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *rules_path = "contrib/bounce/rules.conf", *corpus;
	struct bounce_rules *r;
	size_t rounds = 5, rcpts = 0, bytes = 0;
	char *err = NULL, *dir;
	double t0, t;
	int c;

	while ((c = getopt(argc, argv, "r:n:")) != -1) {
		switch (c) {
		case 'r': rules_path = optarg; break;
		case 'n': rounds = strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench/bounce-classify [-r RULES] [-n ROUNDS] [CORPUS]\n");
			return 2;
		}
	}
	corpus = optind < argc ? argv[optind] : getenv("WEIR_BOUNCE_CORPUS");
	if (corpus == NULL)
		corpus = "../shared/corpus/bounces";
	if ((r = bounce_rules_load(rules_path, &err)) == NULL) {
		fprintf(stderr, "bounce-classify: %s\n", err);
		return 1;
	}
	dir = xasprintf("%s/maildir", corpus);
	add_dir(dir);
	free(dir);
	if (nmsgs == 0 || rounds == 0) {
		fprintf(stderr, "bounce-classify: no *.eml under %s/maildir\n", corpus);
		return 1;
	}
	for (size_t i = 0; i < nmsgs; i++)
		bytes += msgs[i].n;
	t0 = now();
	for (size_t k = 0; k < rounds; k++)
		for (size_t i = 0; i < nmsgs; i++) {
			struct bounce_report rep;

			bounce_parse(r, msgs[i].s, msgs[i].n, &rep);
			rcpts += rep.nrcpts;
			bounce_report_free(&rep);
		}
	t = now() - t0;
	printf("%zu messages (%.1f MB) x %zu rounds in %.2f s: %.0f messages/s, %.1f MB/s, "
	       "%zu recipients a round\n",
	       nmsgs, bytes / 1e6, rounds, t, nmsgs * rounds / t, bytes * rounds / 1e6 / t,
	       rcpts / rounds);
	for (size_t i = 0; i < nmsgs; i++)
		free(msgs[i].s);
	free(msgs);
	bounce_rules_free(r);
	return 0;
}
