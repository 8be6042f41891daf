/* spf-check - evaluate SPF cases through weir's engine (policy/spf.c)
 *
 * spf-check SERVERS TIMEOUT_SECS [THREADS]
 *
 * Reads cases from stdin, one per line, tab separated:
 *   ID <TAB> CLIENT_IP <TAB> HELO <TAB> MAILFROM      (MAILFROM may be empty)
 * and prints, per case, tab separated:
 *   ID <TAB> RESULT <TAB> REASON <TAB> EXPLANATION <TAB> RECEIVED-SPF
 * A MAILFROM of "-" checks the HELO identity instead. With THREADS > 1 the
 * cases are shared out over that many threads (one engine): a smoke test of
 * the engine's thread safety. Used by tests/spf/rfc7208.py. */
#include "autoconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/dns_wait.h"
#include "policy/spf.h"

struct job {
	char *line;
	char *out;
};

static struct spf_engine *engine;
static struct job *jobs;
static size_t njobs, next_job;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;

/* field - next tab separated field of *s (modified in place) */
static char *field(char **s)
{
	char *f = *s, *tab;

	if (f == NULL)
		return "";
	tab = strchr(f, '\t');
	if (tab != NULL) {
		*tab = '\0';
		*s = tab + 1;
	} else {
		*s = NULL;
	}
	return f;
}

static void run_job(struct job *j)
{
	char *s = j->line, *id = field(&s), *ip = field(&s), *helo = field(&s),
	     *from = field(&s);
	struct spf_outcome o;
	size_t size = 4096;

	if (strcmp(from, "-") == 0)
		spf_check_helo(engine, ip, helo, &o);
	else
		spf_check(engine, ip, helo, from, &o);
	j->out = malloc(size);
	snprintf(j->out, size, "%s\t%s\t%s\t%s\t%s", id, o.result_name,
		 o.reason ? o.reason : "", o.explanation ? o.explanation : "",
		 o.received_spf ? o.received_spf : "");
	for (char *p = j->out + strlen(id) + 1; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	spf_outcome_free(&o);
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i;
		pthread_mutex_lock(&job_lock);
		i = next_job++;
		pthread_mutex_unlock(&job_lock);
		if (i >= njobs)
			return NULL;
		run_job(&jobs[i]);
	}
}

int main(int argc, char **argv)
{
	const char *err = NULL;
	struct dns_wait *dns;
	char buf[8192];
	int nthreads = argc > 3 ? atoi(argv[3]) : 1;
	pthread_t th[64];

	if (argc < 3) {
		fprintf(stderr, "usage: spf-check SERVERS TIMEOUT_SECS [THREADS] <cases\n");
		return 2;
	}
	if (nthreads < 1 || nthreads > 64)
		nthreads = 1;
	dns = dns_wait_new(argv[1], atol(argv[2]), &err);
	if (dns == NULL || (engine = spf_engine_new(dns, &err)) == NULL) {
		fprintf(stderr, "spf-check: %s\n", err);
		return 2;
	}
	/* the RFC 7208 suite uses documentation and private (RFC 1918)
	 * prefixes, whose reverse zones libunbound otherwise answers itself
	 * (NXDOMAIN) */
	dns_wait_zone_nodefault(dns, "2.0.192.in-addr.arpa.");
	dns_wait_zone_nodefault(dns, "168.192.in-addr.arpa.");
	dns_wait_zone_nodefault(dns, "8.b.d.0.1.0.0.2.ip6.arpa.");
	spf_engine_set_receiver(engine, "receiver.weir.test");
	while (fgets(buf, sizeof(buf), stdin) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (buf[0] == '\0')
			continue;
		jobs = realloc(jobs, (njobs + 1) * sizeof(*jobs));
		jobs[njobs].line = strdup(buf);
		jobs[njobs++].out = NULL;
	}
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < njobs; i++) {
		printf("%s\n", jobs[i].out);
		free(jobs[i].out);
		free(jobs[i].line);
	}
	free(jobs);
	spf_engine_free(engine);
	dns_wait_free(dns);
	return 0;
}
