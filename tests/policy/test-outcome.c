/* test-outcome - the outcome log (policy/outcome.c) on a real SQLite
 * file: batched writes that never wait for the disk, every field back
 * through outcome_query and its filters, retention, the bounded queue,
 * the synchronous path for bounce intake, and a reader running while the
 * writer writes (each batch appears whole, never SQLITE_BUSY). */
#include "autoconf.h"

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
#include "policy/outcome.h"
#include "tests/testlib.h"

static char dir[] = "/tmp/weir-test-outcome.XXXXXX";
static int nwarn;

static void hook(enum log_level level, const char *line)
{
	if (level == LOG_LEVEL_WARNING && strstr(line, "rows dropped") != NULL)
		nwarn++;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* conf - a configuration with outcome.db = DIR/name */
static struct weir_config *conf(const char *name, const char *extra)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("outcome = { db = \"%s/%s\"; %s };\n", dir, name, extra);

	config_errors_init(&errs);
	cfg = config_load_string("t.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "%s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

/* A query's rows, copied */
struct rows {
	size_t n;
	struct outcome_rec v[64];
	long long id[64];
};

static char *dup0(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void collect(void *ctx, long long id, const struct outcome_rec *r)
{
	struct rows *x = ctx;

	if (x->n < 64) {
		struct outcome_rec *c = &x->v[x->n];
		*c = *r;
		c->queue_id = dup0(r->queue_id);
		c->sender = dup0(r->sender);
		c->login = dup0(r->login);
		c->recipient = dup0(r->recipient);
		c->route = dup0(r->route);
		c->upstream = dup0(r->upstream);
		c->status = dup0(r->status);
		c->reply = dup0(r->reply);
		c->reason = dup0(r->reason);
		c->source = dup0(r->source);
		x->id[x->n] = id;
	}
	x->n++;
}

static void rows_free(struct rows *x)
{
	for (size_t i = 0; i < x->n && i < 64; i++) {
		struct outcome_rec *c = &x->v[i];
		free((char *)c->queue_id);
		free((char *)c->sender);
		free((char *)c->login);
		free((char *)c->recipient);
		free((char *)c->route);
		free((char *)c->upstream);
		free((char *)c->status);
		free((char *)c->reply);
		free((char *)c->reason);
		free((char *)c->source);
	}
	memset(x, 0, sizeof(*x));
}

static void counter(void *ctx, long long id, const struct outcome_rec *r)
{
	(void)id;
	(void)r;
	(*(long *)ctx)++;
}

/* count - rows that pass f (-1 on error) */
static long count(const struct weir_config *cfg, const struct outcome_filter *f)
{
	struct outcome_filter all = {.result = -1};
	char *err = NULL;
	long n = 0;

	if (outcome_query(cfg, f ? f : &all, counter, &n, &err) < 0) {
		fprintf(stderr, "query: %s\n", err);
		free(err);
		return -1;
	}
	return n;
}

static struct outcome_rec row(const char *rcpt, enum outcome_result res, long long t)
{
	struct outcome_rec r = {
	    .time_ms = t,
	    .sender = "app@example.com",
	    .recipient = rcpt,
	    .code = res == OUTCOME_DELIVERED ? 250 : 550,
	    .result = res,
	    .source = "relay",
	};
	return r;
}

static void test_fields(void)
{
	struct weir_config *cfg = conf("fields.db", "");
	char *err = NULL;
	struct outcome_log *o = outcome_open(cfg, &err);
	struct outcome_rec r = {
	    .time_ms = now_ms() - 5000,
	    .queue_id = "4ABC123",
	    .sender = "app@example.com",
	    .login = "alice",
	    .recipient = "Bob@Example.org",
	    .route = "m365",
	    .upstream = "smtp.example.net[192.0.2.1]:587",
	    .code = 550,
	    .status = "5.1.1",
	    .reply = "user unknown\ttab",
	    .reason = "userunknown",
	    .hard = true,
	    .result = OUTCOME_BOUNCED,
	    .source = "relay",
	};
	struct outcome_rec d = row("carol@example.org", OUTCOME_DELIVERED, 0);
	struct outcome_filter f = {.result = -1};
	struct rows x = {0};

	test_begin("every field back, newest first; filters rcpt, result, since, limit");
	test_assert(o != NULL);
	if (o == NULL) {
		fprintf(stderr, "%s\n", err);
		free(err);
		config_unref(cfg);
		test_end();
		return;
	}
	outcome_add(o, &r);
	outcome_add(o, &d);
	test_assert(outcome_flush(o, &err) == 0);
	test_assert(outcome_query(cfg, &f, collect, &x, &err) == 0);
	test_assert(x.n == 2);
	if (x.n == 2) {
		const struct outcome_rec *b = &x.v[1];
		test_assert_str(x.v[0].recipient, "carol@example.org"); /* newest first */
		test_assert(x.v[0].time_ms >= now_ms() - 2000);         /* 0: now */
		test_assert(x.v[0].result == OUTCOME_DELIVERED);
		test_assert(x.v[0].queue_id == NULL && x.v[0].login == NULL);
		test_assert(b->time_ms == r.time_ms);
		test_assert_str(b->queue_id, "4ABC123");
		test_assert_str(b->sender, "app@example.com");
		test_assert_str(b->login, "alice");
		test_assert_str(b->recipient, "Bob@Example.org");
		test_assert_str(b->route, "m365");
		test_assert_str(b->upstream, "smtp.example.net[192.0.2.1]:587");
		test_assert(b->code == 550);
		test_assert_str(b->status, "5.1.1");
		test_assert_str(b->reply, "user unknown\ttab");
		test_assert_str(b->reason, "userunknown");
		test_assert(b->hard);
		test_assert(b->result == OUTCOME_BOUNCED);
		test_assert_str(b->source, "relay");
		test_assert(x.id[0] > x.id[1]);
	}
	rows_free(&x);
	f.rcpt = "bob@example.ORG"; /* case-insensitive */
	test_assert(count(cfg, &f) == 1);
	f.rcpt = NULL;
	f.result = OUTCOME_DELIVERED;
	test_assert(count(cfg, &f) == 1);
	f.result = OUTCOME_COMPLAINT;
	test_assert(count(cfg, &f) == 0);
	f.result = -1;
	f.since_ms = now_ms() - 2000;
	test_assert(count(cfg, &f) == 1);
	f.since_ms = 0;
	f.limit = 1;
	test_assert(count(cfg, &f) == 1);
	test_assert(outcome_result_parse("suppressed") == OUTCOME_SUPPRESSED);
	test_assert(outcome_result_parse("nonsense") == -1);
	test_assert_str(outcome_result_name(OUTCOME_COMPLAINT), "complaint");
	outcome_close(o);
	config_unref(cfg);
	test_end();
}

static void test_batching(void)
{
	struct weir_config *cfg = conf("batch.db", "flush_interval = \"1s\";");
	char *err = NULL;
	struct outcome_log *o = outcome_open(cfg, &err);
	long long t0, waited;
	long n = 0;
	char rcpt[64];

	test_begin("batches: outcome_add never waits, the writer writes within flush_interval");
	test_assert(o != NULL);
	if (o == NULL) {
		free(err);
		config_unref(cfg);
		test_end();
		return;
	}
	t0 = mono_ms();
	for (int i = 0; i < 20000; i++) {
		struct outcome_rec r;
		snprintf(rcpt, sizeof(rcpt), "r%d@example.org", i);
		r = row(rcpt, OUTCOME_DELIVERED, 0);
		outcome_add(o, &r);
	}
	/* copies in memory only: far less than one fsync per row */
	test_assert(mono_ms() - t0 < 1000);
	/* the batch is written by the thread, whole, within the interval */
	t0 = mono_ms();
	while ((n = count(cfg, NULL)) < 20000 && mono_ms() - t0 < 10000)
		usleep(50000);
	waited = mono_ms() - t0;
	test_assert(n == 20000);
	/* one interval (1s), plus the time to write 20000 rows on a slow
	 * machine or under valgrind */
	test_assert(waited <= 6000);
	/* outcome_close writes what is still queued */
	for (int i = 0; i < 10; i++) {
		struct outcome_rec r = row("last@example.org", OUTCOME_DEFERRED, 0);
		outcome_add(o, &r);
	}
	outcome_close(o);
	test_assert(count(cfg, NULL) == 20010);
	config_unref(cfg);
	test_end();
}

static void test_retention(void)
{
	struct weir_config *cfg = conf("ret.db", "retention = \"1h\";");
	char *err = NULL;
	struct outcome_log *o = outcome_open(cfg, &err);
	long long now = now_ms();
	struct outcome_rec v[3] = {
	    row("old@example.org", OUTCOME_BOUNCED, now - 3600 * 1000LL - 60000),
	    row("edge@example.org", OUTCOME_BOUNCED, now - 3600 * 1000LL + 60000),
	    row("new@example.org", OUTCOME_DELIVERED, now),
	};
	struct outcome_filter f = {.result = -1, .rcpt = "old@example.org"};

	test_begin("retention: rows older than outcome.retention deleted");
	test_assert(o != NULL);
	if (o == NULL) {
		free(err);
		config_unref(cfg);
		test_end();
		return;
	}
	/* the synchronous path (bounce intake): on disk when it returns */
	test_assert(outcome_write(o, v, 3, &err) == 0);
	test_assert(count(cfg, NULL) == 3);
	test_assert(outcome_expire(o, now, &err) == 1);
	test_assert(count(cfg, NULL) == 2);
	test_assert(count(cfg, &f) == 0);
	test_assert(outcome_expire(o, now, &err) == 0);
	/* two hours on, the rest is gone too */
	test_assert(outcome_expire(o, now + 7200 * 1000LL, &err) == 2);
	test_assert(count(cfg, NULL) == 0);
	outcome_close(o);
	config_unref(cfg);
	test_end();
}

static void test_bounded(void)
{
	struct weir_config *cfg = conf("bound.db", "flush_interval = \"60s\";");
	char *err = NULL;
	struct outcome_log *o = outcome_open(cfg, &err);
	struct outcome_rec r = row("x@example.org", OUTCOME_DELIVERED, 0);

	test_begin("a full queue drops rows with a counted warning, never blocks");
	test_assert(o != NULL);
	if (o == NULL) {
		free(err);
		config_unref(cfg);
		test_end();
		return;
	}
	nwarn = 0;
	log_set_hook(hook);
	for (int i = 0; i < 50000 + 25; i++)
		outcome_add(o, &r);
	log_set_hook(NULL);
	test_assert(nwarn == 1); /* once a minute, not once a row */
	test_assert(outcome_flush(o, &err) == 0);
	test_assert(count(cfg, NULL) == 50000);
	outcome_close(o);
	config_unref(cfg);
	test_end();
}

/* The concurrent reader */
struct reader {
	const struct weir_config *cfg;
	atomic_bool stop;
	int errors, torn, backwards;
	long last, reads;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	while (!atomic_load(&rd->stop)) {
		long n = count(rd->cfg, NULL);
		if (n < 0)
			rd->errors++;
		else if (n % 100 != 0)
			rd->torn++; /* a batch seen in part */
		else if (n < rd->last)
			rd->backwards++;
		else
			rd->last = n;
		rd->reads++;
	}
	return NULL;
}

static void test_reader(void)
{
	struct weir_config *cfg = conf("conc.db", "flush_interval = \"60s\";");
	char *err = NULL;
	struct outcome_log *o = outcome_open(cfg, &err);
	struct reader rd = {.cfg = cfg};
	pthread_t th;

	test_begin("a reader while the writer writes: batches appear whole, no errors");
	test_assert(o != NULL);
	if (o == NULL) {
		free(err);
		config_unref(cfg);
		test_end();
		return;
	}
	test_assert(outcome_flush(o, &err) == 0); /* the file exists for the reader */
	pthread_create(&th, NULL, reader_main, &rd);
	for (int b = 0; b < 50; b++) {
		for (int i = 0; i < 100; i++) {
			struct outcome_rec r = row("c@example.org", OUTCOME_DELIVERED, 0);
			outcome_add(o, &r);
		}
		if (outcome_flush(o, &err) < 0) {
			fprintf(stderr, "flush: %s\n", err);
			free(err);
			err = NULL;
			rd.errors++;
		}
		usleep(2000);
	}
	atomic_store(&rd.stop, true);
	pthread_join(th, NULL);
	test_assert(rd.errors == 0);
	test_assert(rd.torn == 0);
	test_assert(rd.backwards == 0);
	test_assert(rd.reads > 10);
	test_assert(count(cfg, NULL) == 5000);
	outcome_close(o);
	config_unref(cfg);
	test_end();
}

static void test_errors(void)
{
	struct weir_config *cfg = conf("nodir/x.db", "");
	struct weir_config *off;
	struct config_errors errs;
	char *err = NULL;
	struct outcome_filter f = {.result = -1};
	long n = 0;

	test_begin("errors: a file that cannot be made, outcome.db \"\", nothing recorded yet");
	test_assert(outcome_open(cfg, &err) == NULL);
	test_assert(err != NULL && strstr(err, "nodir") != NULL);
	free(err);
	err = NULL;
	test_assert(outcome_query(cfg, &f, counter, &n, &err) < 0);
	test_assert(err != NULL && strstr(err, "nothing recorded yet") != NULL);
	free(err);
	err = NULL;
	config_errors_init(&errs);
	off = config_load_string("t.conf", "outcome = { db = \"\"; };", 0, &errs);
	config_errors_free(&errs);
	test_assert(off != NULL);
	if (off != NULL) {
		test_assert(outcome_open(off, &err) == NULL);
		free(err);
		config_unref(off);
	}
	outcome_add(NULL, NULL); /* no log: nothing */
	test_assert(outcome_flush(NULL, &err) == 0);
	outcome_close(NULL);
	config_unref(cfg);
	test_end();
}

int main(void)
{
	char *cmd;

	if (mkdtemp(dir) == NULL)
		return 1;
	test_fields();
	test_batching();
	test_retention();
	test_bounded();
	test_reader();
	test_errors();
	cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	return test_exit_status();
}
