/* test-metrics - lib/metrics.c: text format 0.0.4, escaping, histograms,
 * the "other" fold, and updates from several threads */
#include "autoconf.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/metrics.h"
#include "tests/testlib.h"

static void test_counter_gauge(void)
{
	struct metrics *m = metrics_new(0);
	struct metric *c, *g, *plain;
	char *out;

	test_begin("counter and gauge render exactly");
	c = metrics_counter(m, "weir_test_messages_total", "Messages by decision.",
	                    METRICS_L("decision", "reason"));
	g = metrics_gauge(m, "weir_test_queue", "Queue size.", METRICS_L("queue"));
	plain = metrics_counter(m, "weir_test_plain_total", "No labels.", NULL);
	test_assert(c != NULL && g != NULL && plain != NULL);
	metrics_inc(c, METRICS_L("accept", "none"));
	metrics_inc(c, METRICS_L("reject", "sender"));
	metrics_add(c, METRICS_L("accept", "none"), 2);
	metrics_add(c, METRICS_L("accept", "none"), -5); /* a counter never goes down */
	metrics_set(g, METRICS_L("active"), 7.5);
	metrics_add(g, METRICS_L("active"), -0.5);
	metrics_set(g, METRICS_L("hold"), 0.1);
	out = metrics_render(m);
	test_assert_str(out, "# HELP weir_test_messages_total Messages by decision.\n"
	                     "# TYPE weir_test_messages_total counter\n"
	                     "weir_test_messages_total{decision=\"accept\",reason=\"none\"} 3\n"
	                     "weir_test_messages_total{decision=\"reject\",reason=\"sender\"} 1\n"
	                     "# HELP weir_test_queue Queue size.\n"
	                     "# TYPE weir_test_queue gauge\n"
	                     "weir_test_queue{queue=\"active\"} 7\n"
	                     "weir_test_queue{queue=\"hold\"} 0.1\n"
	                     "# HELP weir_test_plain_total No labels.\n"
	                     "# TYPE weir_test_plain_total counter\n"
	                     "weir_test_plain_total 0\n");
	free(out);
	metrics_free(m);
	test_end();
}

static void test_declare(void)
{
	struct metrics *m = metrics_new(0);
	struct metric *a;

	test_begin("declarations: same name, bad names");
	a = metrics_counter(m, "x_total", "h", METRICS_L("a"));
	test_assert(a != NULL);
	test_assert(metrics_counter(m, "x_total", "h", METRICS_L("a")) == a);
	test_assert(metrics_counter(m, "x_total", "h", METRICS_L("b")) == NULL);
	test_assert(metrics_gauge(m, "x_total", "h", METRICS_L("a")) == NULL);
	test_assert(metrics_counter(m, "1bad", "h", NULL) == NULL);
	test_assert(metrics_counter(m, "bad-name", "h", NULL) == NULL);
	test_assert(metrics_counter(m, "y", "h", METRICS_L("__reserved")) == NULL);
	test_assert(metrics_counter(m, "y", "h", METRICS_L("a", "a")) == NULL);
	test_assert(metrics_histogram(m, "h", "h", METRICS_L("le"), NULL, 0) == NULL);
	test_assert(metrics_histogram(m, "h2", "h", NULL, (const double[]){1, 1}, 2) == NULL);
	/* wrong kinds and NULL handles are ignored */
	metrics_observe(a, METRICS_L("v"), 1);
	metrics_set(a, METRICS_L("v"), 1);
	metrics_inc(NULL, NULL);
	metrics_free(m);
	metrics_free(NULL);
	test_end();
}

static void test_escaping(void)
{
	struct metrics *m = metrics_new(0);
	struct metric *c = metrics_counter(
	    m, "esc_total", "Help with \\ backslash\nand \"quotes\".", METRICS_L("v"));
	char *out;

	test_begin("escaping of label values and HELP");
	metrics_inc(c, METRICS_L("a\\b\"c\nd"));
	metrics_inc(c, METRICS_L("")); /* an empty value is a value */
	out = metrics_render(m);
	test_assert_str(out, "# HELP esc_total Help with \\\\ backslash\\nand \"quotes\".\n"
	                     "# TYPE esc_total counter\n"
	                     "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
	                     "esc_total{v=\"\"} 1\n");
	free(out);
	metrics_free(m);
	test_end();
}

static void test_histogram(void)
{
	struct metrics *m = metrics_new(0);
	struct metric *h = metrics_histogram(m, "lat_seconds", "Latency.", METRICS_L("stage"),
	                                     (const double[]){0.1, 0.5, 1}, 3);
	struct metric *d = metrics_histogram(m, "d_seconds", "Default buckets.", NULL, NULL, 0);
	char *out, *p;

	test_begin("histogram buckets are cumulative, with +Inf, _sum, _count");
	metrics_observe(h, METRICS_L("rcpt"), 0.05);
	metrics_observe(h, METRICS_L("rcpt"), 0.1); /* on the bound: le="0.1" */
	metrics_observe(h, METRICS_L("rcpt"), 0.7);
	metrics_observe(h, METRICS_L("rcpt"), 3);
	metrics_observe(h, METRICS_L("rcpt"), NAN); /* ignored */
	metrics_observe(d, NULL, 0.002);
	out = metrics_render(m);
	p = strstr(out, "# HELP d_seconds");
	test_assert(p != NULL);
	if (p)
		*p = '\0';
	test_assert_str(out, "# HELP lat_seconds Latency.\n"
	                     "# TYPE lat_seconds histogram\n"
	                     "lat_seconds_bucket{stage=\"rcpt\",le=\"0.1\"} 2\n"
	                     "lat_seconds_bucket{stage=\"rcpt\",le=\"0.5\"} 2\n"
	                     "lat_seconds_bucket{stage=\"rcpt\",le=\"1\"} 3\n"
	                     "lat_seconds_bucket{stage=\"rcpt\",le=\"+Inf\"} 4\n"
	                     "lat_seconds_sum{stage=\"rcpt\"} 3.85\n"
	                     "lat_seconds_count{stage=\"rcpt\"} 4\n");
	if (p) {
		*p = '#';
		test_assert(strstr(p, "d_seconds_bucket{le=\"0.005\"} 1\n") != NULL);
		test_assert(strstr(p, "d_seconds_bucket{le=\"+Inf\"} 1\n") != NULL);
		test_assert(strstr(p, "d_seconds_sum 0.002\n") != NULL);
		test_assert(strstr(p, "d_seconds_count 1\n") != NULL);
	}
	free(out);
	metrics_free(m);
	test_end();
}

static void test_fold(void)
{
	struct metrics *m = metrics_new(3);
	struct metric *c = metrics_counter(m, "f_total", "Fold.", METRICS_L("a", "b"));
	struct metric *g = metrics_gauge(m, "g", "Fold too.", METRICS_L("k"));
	char *out;

	test_begin("label sets beyond max_series fold into \"other\"");
	metrics_inc(c, METRICS_L("1", "x"));
	metrics_inc(c, METRICS_L("2", "x"));
	metrics_inc(c, METRICS_L("3", "x"));
	metrics_inc(c, METRICS_L("4", "x"));
	metrics_inc(c, METRICS_L("5", "y"));
	metrics_inc(c, METRICS_L("1", "x")); /* known: still its own series */
	metrics_inc(c, METRICS_L("other", "other"));
	/* a series that is already all "other" is the one the fold uses */
	metrics_inc(g, METRICS_L("other"));
	metrics_set(g, METRICS_L("k1"), 1);
	metrics_set(g, METRICS_L("k2"), 2);
	metrics_set(g, METRICS_L("k3"), 3); /* 4th: folds into the existing "other" */
	out = metrics_render(m);
	test_assert_str(out, "# HELP f_total Fold.\n"
	                     "# TYPE f_total counter\n"
	                     "f_total{a=\"1\",b=\"x\"} 2\n"
	                     "f_total{a=\"2\",b=\"x\"} 1\n"
	                     "f_total{a=\"3\",b=\"x\"} 1\n"
	                     "f_total{a=\"other\",b=\"other\"} 3\n"
	                     "# HELP g Fold too.\n"
	                     "# TYPE g gauge\n"
	                     "g{k=\"other\"} 3\n"
	                     "g{k=\"k1\"} 1\n"
	                     "g{k=\"k2\"} 2\n");
	free(out);
	metrics_reset(g);
	out = metrics_render(m);
	test_assert(strstr(out, "g{") == NULL);
	free(out);
	metrics_free(m);
	test_end();
}

#define THREADS    8
#define PER_THREAD 20000

static void *hammer(void *arg)
{
	struct metric **mt = arg;
	static const char *const names[] = {"a", "b", "c", "d"};

	for (int i = 0; i < PER_THREAD; i++) {
		metrics_inc(mt[0], METRICS_L(names[i % 4]));
		metrics_observe(mt[1], NULL, (i % 2) ? 0.25 : 2);
	}
	return NULL;
}

static void test_threads(void)
{
	struct metrics *m = metrics_new(0);
	struct metric *mt[2];
	pthread_t t[THREADS];
	char *out, want[128];

	test_begin("concurrent updates lose nothing");
	mt[0] = metrics_counter(m, "t_total", "Threads.", METRICS_L("n"));
	mt[1] = metrics_histogram(m, "t_seconds", "Threads.", NULL, (const double[]){1}, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, hammer, mt);
	for (int i = 0; i < 100; i++)
		free(metrics_render(m)); /* rendering while others write */
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	out = metrics_render(m);
	for (int i = 0; i < 4; i++) {
		snprintf(want, sizeof(want), "t_total{n=\"%c\"} %d\n", 'a' + i,
		         THREADS * PER_THREAD / 4);
		test_assert(strstr(out, want) != NULL);
	}
	snprintf(want, sizeof(want), "t_seconds_bucket{le=\"1\"} %d\n", THREADS * PER_THREAD / 2);
	test_assert(strstr(out, want) != NULL);
	snprintf(want, sizeof(want), "t_seconds_count %d\n", THREADS * PER_THREAD);
	test_assert(strstr(out, want) != NULL);
	snprintf(want, sizeof(want), "t_seconds_sum %d\n", THREADS * PER_THREAD / 2 * 9 / 4);
	test_assert(strstr(out, want) != NULL);
	free(out);
	metrics_free(m);
	test_end();
}

static void test_numbers(void)
{
	struct metrics *m = metrics_new(0);
	struct metric *g = metrics_gauge(m, "n", "Numbers.", METRICS_L("k"));
	char *out;

	test_begin("numbers: shortest form, big values, infinities");
	metrics_set(g, METRICS_L("big"), 1e21);
	metrics_set(g, METRICS_L("third"), 1.0 / 3);
	metrics_set(g, METRICS_L("inf"), INFINITY);
	metrics_set(g, METRICS_L("neg"), -2);
	metrics_set(g, METRICS_L("int"), 123456789012.0);
	out = metrics_render(m);
	test_assert(strstr(out, "n{k=\"big\"} 1e+21\n") != NULL);
	test_assert(strstr(out, "n{k=\"third\"} 0.3333333333333333\n") != NULL);
	test_assert(strstr(out, "n{k=\"inf\"} +Inf\n") != NULL);
	test_assert(strstr(out, "n{k=\"neg\"} -2\n") != NULL);
	test_assert(strstr(out, "n{k=\"int\"} 123456789012\n") != NULL);
	free(out);
	metrics_free(m);
	test_end();
}

int main(void)
{
	test_counter_gauge();
	test_declare();
	test_escaping();
	test_histogram();
	test_fold();
	test_threads();
	test_numbers();
	return test_exit_status();
}
