/* outcome - the outcome log (see outcome.h)
 *
 *   outcome(id, time_ms, queue_id, sender, login, recipient, route,
 *           upstream, code, status, reply, reason, hard, result, source)
 *
 * weir-agent is the only writer. Its event loop never waits for the
 * disk: outcome_add copies the row into a bounded queue in memory, and a
 * writer thread of the log's own writes what is queued every
 * outcome.flush_interval, in one transaction (WAL, synchronous=NORMAL).
 * When the queue is full (the disk is far behind) rows are dropped with
 * a counted warning rather than blocking delivery; a batch that cannot
 * be written goes back to the queue for the next round. Once an hour the
 * writer deletes rows older than outcome.retention. Bounce intake writes
 * past the queue (outcome_write), since its rows must be on disk before
 * the MTA is told 250.
 *
 * One connection, used by one thread at a time (db_lock); the queue has
 * a lock of its own, so outcome_add never waits for a write. Readers
 * (weirctl) open read-only connections of their own. */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/outcome.h"

#define BUSY_MS         5000
#define READER_BUSY_MS  2000
#define QUEUE_MAX       50000           /* rows held in memory at most */
#define EXPIRE_EVERY_MS (3600 * 1000LL) /* retention check */
#define DROP_WARN_MS    (60 * 1000LL)   /* one drop warning a minute */
#define NSTR            10              /* strings of a row */

struct outcome_log {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *ins, *del;
	pthread_mutex_t db_lock; /* db and its statements */
	pthread_mutex_t lock;    /* the queue and the fields below */
	pthread_cond_t cond;
	struct outcome_rec *q; /* owned copies (strings malloc'd) */
	size_t n, size;
	unsigned long dropped; /* since the last warning */
	long long drop_warned; /* ms, monotonic */
	bool stop;
	long long interval_ms, retention_ms;
	pthread_t thread;
	bool running;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS outcome ("
    " id INTEGER PRIMARY KEY,"
    " time_ms INTEGER NOT NULL,"
    " queue_id TEXT, sender TEXT NOT NULL, login TEXT, recipient TEXT NOT NULL,"
    " route TEXT, upstream TEXT, code INTEGER NOT NULL, status TEXT, reply TEXT,"
    " reason TEXT, hard INTEGER NOT NULL, result TEXT NOT NULL, source TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS outcome_time ON outcome (time_ms);"
    "CREATE INDEX IF NOT EXISTS outcome_recipient ON outcome (recipient COLLATE NOCASE);";

static const char insert_sql[] =
    "INSERT INTO outcome (time_ms, queue_id, sender, login, recipient, route, upstream,"
    " code, status, reply, reason, hard, result, source)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

static const char delete_sql[] = "DELETE FROM outcome WHERE time_ms < ?1";

static const char *const result_names[] = {"delivered", "deferred", "bounced", "complaint",
                                           "suppressed"};

const char *outcome_result_name(enum outcome_result r)
{
	if ((unsigned)r < sizeof(result_names) / sizeof(result_names[0]))
		return result_names[r];
	return "unknown";
}

int outcome_result_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++)
		if (strcmp(name, result_names[i]) == 0)
			return (int)i;
	return -1;
}

static long long now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The strings of a row, in one array (copying and freeing them) */
static const char **rec_strs(struct outcome_rec *r, const char **v)
{
	v[0] = r->queue_id;
	v[1] = r->sender;
	v[2] = r->login;
	v[3] = r->recipient;
	v[4] = r->route;
	v[5] = r->upstream;
	v[6] = r->status;
	v[7] = r->reply;
	v[8] = r->reason;
	v[9] = r->source;
	return v;
}

/* rec_copy - dst becomes a copy of src that owns its strings */
static void rec_copy(struct outcome_rec *dst, const struct outcome_rec *src)
{
	const char *v[NSTR];
	char *c[NSTR];

	*dst = *src;
	rec_strs(dst, v);
	for (int i = 0; i < NSTR; i++)
		c[i] = v[i] ? xstrdup(v[i]) : NULL;
	dst->queue_id = c[0];
	dst->sender = c[1];
	dst->login = c[2];
	dst->recipient = c[3];
	dst->route = c[4];
	dst->upstream = c[5];
	dst->status = c[6];
	dst->reply = c[7];
	dst->reason = c[8];
	dst->source = c[9];
	if (dst->time_ms == 0)
		dst->time_ms = now_ms(CLOCK_REALTIME);
}

static void rec_free(struct outcome_rec *r)
{
	const char *v[NSTR];

	rec_strs(r, v);
	for (int i = 0; i < NSTR; i++)
		free((char *)v[i]);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* write_rows - one transaction; the caller holds db_lock */
static int write_rows(struct outcome_log *o, const struct outcome_rec *r, size_t n, char **err_r)
{
	const char *what = "BEGIN";

	if (sqlite3_exec(o->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	what = "INSERT";
	for (size_t i = 0; i < n; i++) {
		const struct outcome_rec *x = &r[i];
		long long t = x->time_ms ? x->time_ms : now_ms(CLOCK_REALTIME);
		int rc;
		sqlite3_bind_int64(o->ins, 1, t);
		bind_text(o->ins, 2, x->queue_id);
		sqlite3_bind_text(o->ins, 3, x->sender ? x->sender : "", -1, SQLITE_TRANSIENT);
		bind_text(o->ins, 4, x->login);
		sqlite3_bind_text(o->ins, 5, x->recipient ? x->recipient : "", -1,
		                  SQLITE_TRANSIENT);
		bind_text(o->ins, 6, x->route);
		bind_text(o->ins, 7, x->upstream);
		sqlite3_bind_int(o->ins, 8, x->code);
		bind_text(o->ins, 9, x->status);
		bind_text(o->ins, 10, x->reply);
		bind_text(o->ins, 11, x->reason);
		sqlite3_bind_int(o->ins, 12, x->hard ? 1 : 0);
		sqlite3_bind_text(o->ins, 13, outcome_result_name(x->result), -1, SQLITE_STATIC);
		sqlite3_bind_text(o->ins, 14, x->source ? x->source : "relay", -1,
		                  SQLITE_TRANSIENT);
		rc = sqlite3_step(o->ins);
		sqlite3_reset(o->ins);
		sqlite3_clear_bindings(o->ins);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	what = "COMMIT";
	if (sqlite3_exec(o->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
fail:
	*err_r = xasprintf("%s: %s: %s", o->path, what, sqlite3_errmsg(o->db));
	if (!sqlite3_get_autocommit(o->db))
		sqlite3_exec(o->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* drop_count - rows lost (queue full); a warning at most once a
 * minute. Caller holds lock. */
static void drop_count(struct outcome_log *o, size_t n)
{
	long long now = now_ms(CLOCK_MONOTONIC);

	o->dropped += n;
	if (o->drop_warned == 0 || now - o->drop_warned >= DROP_WARN_MS) {
		log_warning("outcome log %s: queue full (%d rows): %lu rows dropped", o->path,
		            QUEUE_MAX, o->dropped);
		o->dropped = 0;
		o->drop_warned = now;
	}
}

/* requeue - a batch that could not be written goes back in front of
 * what was queued meanwhile, as far as the queue has room */
static void requeue(struct outcome_log *o, struct outcome_rec *b, size_t n)
{
	size_t keep;

	pthread_mutex_lock(&o->lock);
	keep = o->n >= QUEUE_MAX ? 0 : n < QUEUE_MAX - o->n ? n : QUEUE_MAX - o->n;
	if (o->n + keep > o->size) {
		o->size = o->n + keep;
		o->q = xrealloc(o->q, o->size * sizeof(*o->q));
	}
	memmove(o->q + keep, o->q, o->n * sizeof(*o->q));
	memcpy(o->q, b, keep * sizeof(*o->q));
	o->n += keep;
	if (keep < n)
		drop_count(o, n - keep);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = keep; i < n; i++)
		rec_free(&b[i]);
	free(b);
}

/* flush_queue - write what is queued */
static int flush_queue(struct outcome_log *o, char **err_r)
{
	struct outcome_rec *b;
	size_t n;
	int rc;

	pthread_mutex_lock(&o->lock);
	b = o->q;
	n = o->n;
	o->q = NULL;
	o->n = o->size = 0;
	pthread_mutex_unlock(&o->lock);
	if (n == 0)
		return 0;
	pthread_mutex_lock(&o->db_lock);
	rc = write_rows(o, b, n, err_r);
	pthread_mutex_unlock(&o->db_lock);
	if (rc < 0) {
		requeue(o, b, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		rec_free(&b[i]);
	free(b);
	return 0;
}

/* writer - the thread: a batch every interval, expiry every hour */
static void *writer(void *arg)
{
	struct outcome_log *o = arg;
	long long next_expire = 0;
	char *err = NULL;

	pthread_mutex_lock(&o->lock);
	while (!o->stop) {
		long long due = now_ms(CLOCK_MONOTONIC) + o->interval_ms;
		struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000};
		while (!o->stop && pthread_cond_timedwait(&o->cond, &o->lock, &ts) != ETIMEDOUT)
			;
		if (o->stop)
			break;
		pthread_mutex_unlock(&o->lock);
		if (flush_queue(o, &err) < 0) {
			log_error("outcome log: %s (kept for the next round)", err);
			free(err);
			err = NULL;
		}
		if (now_ms(CLOCK_MONOTONIC) >= next_expire) {
			long k = outcome_expire(o, now_ms(CLOCK_REALTIME), &err);
			if (k < 0) {
				log_error("outcome log: expiry: %s", err);
				free(err);
				err = NULL;
			} else if (k > 0) {
				log_info("outcome log: %ld rows past outcome.retention deleted", k);
			}
			next_expire = now_ms(CLOCK_MONOTONIC) + EXPIRE_EVERY_MS;
		}
		pthread_mutex_lock(&o->lock);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

/* free_log - everything but the thread */
static void free_log(struct outcome_log *o)
{
	for (size_t i = 0; i < o->n; i++)
		rec_free(&o->q[i]);
	free(o->q);
	sqlite3_finalize(o->ins);
	sqlite3_finalize(o->del);
	sqlite3_close(o->db);
	pthread_mutex_destroy(&o->db_lock);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o->path);
	free(o);
}

/* open_db - the file, its schema, the statements */
static int open_db(struct outcome_log *o, char **err_r)
{
	bool existed = access(o->path, F_OK) == 0;

	if (sqlite3_open_v2(o->path, &o->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		*err_r = xasprintf("%s: cannot open: %s", o->path,
		                   o->db ? sqlite3_errmsg(o->db) : strerror(errno));
		return -1;
	}
	/* addresses: not for everyone's eyes */
	if (!existed)
		chmod(o->path, 0640);
	sqlite3_busy_timeout(o->db, BUSY_MS);
	if (sqlite3_exec(o->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(o->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(o->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(o->db, insert_sql, -1, &o->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(o->db, delete_sql, -1, &o->del, NULL) != SQLITE_OK) {
		*err_r = xasprintf("%s: %s", o->path, sqlite3_errmsg(o->db));
		return -1;
	}
	return 0;
}

struct outcome_log *outcome_open(const struct weir_config *cfg, char **err_r)
{
	struct outcome_log *o;
	pthread_condattr_t ca;

	*err_r = NULL;
	if (cfg->outcome.db == NULL || cfg->outcome.db[0] == '\0') {
		*err_r = xstrdup("outcome.db is \"\": no outcome log");
		return NULL;
	}
	o = xcalloc(1, sizeof(*o));
	o->path = xstrdup(cfg->outcome.db);
	o->interval_ms = (long long)cfg->outcome.flush_interval * 1000;
	o->retention_ms = (long long)cfg->outcome.retention * 1000;
	pthread_mutex_init(&o->db_lock, NULL);
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (open_db(o, err_r) < 0) {
		free_log(o);
		return NULL;
	}
	if (pthread_create(&o->thread, NULL, writer, o) != 0) {
		*err_r = xasprintf("%s: cannot start the writer thread", o->path);
		free_log(o);
		return NULL;
	}
	o->running = true;
	return o;
}

void outcome_add(struct outcome_log *o, const struct outcome_rec *r)
{
	if (o == NULL)
		return;
	pthread_mutex_lock(&o->lock);
	if (o->n >= QUEUE_MAX) {
		drop_count(o, 1);
	} else {
		if (o->n == o->size) {
			o->size = o->size ? 2 * o->size : 64;
			o->q = xrealloc(o->q, o->size * sizeof(*o->q));
		}
		rec_copy(&o->q[o->n++], r);
	}
	pthread_mutex_unlock(&o->lock);
}

int outcome_flush(struct outcome_log *o, char **err_r)
{
	return o == NULL ? 0 : flush_queue(o, err_r);
}

int outcome_write(struct outcome_log *o, const struct outcome_rec *r, size_t n, char **err_r)
{
	int rc;

	if (o == NULL || n == 0)
		return 0;
	pthread_mutex_lock(&o->db_lock);
	rc = write_rows(o, r, n, err_r);
	pthread_mutex_unlock(&o->db_lock);
	return rc;
}

long outcome_expire(struct outcome_log *o, long long now, char **err_r)
{
	long k = -1;

	pthread_mutex_lock(&o->db_lock);
	sqlite3_bind_int64(o->del, 1, now - o->retention_ms);
	if (sqlite3_step(o->del) == SQLITE_DONE)
		k = (long)sqlite3_changes(o->db);
	else
		*err_r = xasprintf("%s: DELETE: %s", o->path, sqlite3_errmsg(o->db));
	sqlite3_reset(o->del);
	pthread_mutex_unlock(&o->db_lock);
	return k;
}

void outcome_close(struct outcome_log *o)
{
	char *err = NULL;

	if (o == NULL)
		return;
	if (o->running) {
		pthread_mutex_lock(&o->lock);
		o->stop = true;
		pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->lock);
		pthread_join(o->thread, NULL);
	}
	if (flush_queue(o, &err) < 0) {
		log_error("outcome log: %s; %zu rows lost at exit", err, o->n);
		free(err);
	}
	if (o->dropped > 0)
		log_warning("outcome log %s: %lu more rows dropped (queue full)", o->path,
		            o->dropped);
	free_log(o);
}

/* query_sql - the SELECT for a filter (binds: ?1 since, ?2 rcpt, ?3
 * result, ?4 limit) */
static char *query_sql(const struct outcome_filter *f)
{
	struct strbuf b = {0};

	strbuf_adds(&b, "SELECT id, time_ms, queue_id, sender, login, recipient, route, upstream,"
	                " code, status, reply, reason, hard, result, source FROM outcome"
	                " WHERE time_ms >= ?1");
	if (f->rcpt != NULL)
		strbuf_adds(&b, " AND recipient = ?2 COLLATE NOCASE");
	if (f->result >= 0)
		strbuf_adds(&b, " AND result = ?3");
	strbuf_adds(&b, " ORDER BY time_ms DESC, id DESC LIMIT ?4");
	return strbuf_take(&b);
}

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int outcome_query(const struct weir_config *cfg, const struct outcome_filter *f,
                  void (*fn)(void *ctx, long long id, const struct outcome_rec *r), void *ctx,
                  char **err_r)
{
	const char *path = cfg->outcome.db;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc;

	if (path == NULL || path[0] == '\0') {
		*err_r = xstrdup("outcome.db is \"\": outcomes are not recorded");
		return -1;
	}
	if (access(path, F_OK) < 0) {
		*err_r = xasprintf("%s: %s (nothing recorded yet, or outcome.db names another "
		                   "file)",
		                   path, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		*err_r = xasprintf("%s: cannot open: %s", path,
		                   db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, READER_BUSY_MS);
	sql = query_sql(f);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, f->since_ms);
	if (f->rcpt != NULL)
		sqlite3_bind_text(st, 2, f->rcpt, -1, SQLITE_TRANSIENT);
	if (f->result >= 0)
		sqlite3_bind_text(st, 3, outcome_result_name((enum outcome_result)f->result), -1,
		                  SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, f->limit > 0 ? f->limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct outcome_rec r = {
		    .time_ms = sqlite3_column_int64(st, 1),
		    .queue_id = col(st, 2),
		    .sender = col(st, 3),
		    .login = col(st, 4),
		    .recipient = col(st, 5),
		    .route = col(st, 6),
		    .upstream = col(st, 7),
		    .code = sqlite3_column_int(st, 8),
		    .status = col(st, 9),
		    .reply = col(st, 10),
		    .reason = col(st, 11),
		    .hard = sqlite3_column_int(st, 12) != 0,
		    .source = col(st, 14),
		};
		int res = outcome_result_parse(col(st, 13) ? col(st, 13) : "");
		r.result = res < 0 ? OUTCOME_DEFERRED : (enum outcome_result)res;
		fn(ctx, sqlite3_column_int64(st, 0), &r);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
fail:
	*err_r = xasprintf("%s: %s", path, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return -1;
}
