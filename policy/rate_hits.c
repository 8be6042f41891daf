/* rate_hits - rate-limit hits in outcome.db (see rate_hits.h)
 *
 * A hit is rare next to the mail that passes, so each is one INSERT in
 * autocommit (WAL, synchronous=NORMAL: no fsync per row). weir-agent
 * writes the same file in batches; a busy timeout of 100 ms bounds how
 * long a milter thread can wait for it, and a row that does not make it
 * is dropped rather than delaying the SMTP reply. */
#include "autoconf.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_hits.h"

#define BUSY_MS         100
#define LOG_EVERY_MS    60000LL
#define EXPIRE_EVERY_MS 3600000LL

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS rate_hits (time_ms INTEGER NOT NULL, login TEXT, "
    "limit_name TEXT);"
    "CREATE INDEX IF NOT EXISTS rate_hits_time ON rate_hits(time_ms);";

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3 *db;
static sqlite3_stmt *ins;
static char *db_path;         /* the file db is open on */
static long long last_log_ms; /* last error logged */
static long long last_expire_ms;
static unsigned long dropped; /* rows lost since the last error logged */

/* close_db - (lock held) */
static void close_db(void)
{
	sqlite3_finalize(ins);
	ins = NULL;
	sqlite3_close(db);
	db = NULL;
	free(db_path);
	db_path = NULL;
}

/* open_db - (lock held) a connection on path with the table; NULL error
 * text on success, else sqlite's message (copied) */
static char *open_db(const char *path)
{
	char *err;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db, BUSY_MS);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO rate_hits (time_ms, login, limit_name) "
	                       "VALUES (?1, ?2, ?3)",
	                       -1, &ins, NULL) != SQLITE_OK)
		goto fail;
	db_path = xstrdup(path);
	return NULL;
fail:
	err = xstrdup(db ? sqlite3_errmsg(db) : "out of memory");
	close_db();
	return err;
}

/* failed - (lock held) count a lost row; say so at most once a minute */
static void failed(const char *path, const char *why, long long now_ms)
{
	dropped++;
	if (last_log_ms != 0 && now_ms - last_log_ms < LOG_EVERY_MS)
		return;
	log_warning("rate hits: %s: %s; %lu hit%s not recorded for weirctl report", path, why,
	            dropped, dropped == 1 ? "" : "s");
	last_log_ms = now_ms;
	dropped = 0;
}

/* expire - (lock held) rows past outcome.retention, once an hour */
static void expire(const struct weir_config *cfg, long long now_ms)
{
	sqlite3_stmt *del = NULL;

	if (now_ms - last_expire_ms < EXPIRE_EVERY_MS)
		return;
	last_expire_ms = now_ms;
	if (sqlite3_prepare_v2(db, "DELETE FROM rate_hits WHERE time_ms < ?1", -1, &del, NULL) !=
	    SQLITE_OK)
		return;
	sqlite3_bind_int64(del, 1, now_ms - (long long)cfg->outcome.retention * 1000);
	if (sqlite3_step(del) != SQLITE_DONE)
		log_debug("rate hits: expiry: %s", sqlite3_errmsg(db));
	sqlite3_finalize(del);
}

void rate_hits_record(const struct weir_config *cfg, const char *login, const char *limit_name,
                      long long now_ms)
{
	const char *path = cfg->outcome.db;
	char *err;

	if (path == NULL || path[0] == '\0')
		return;
	pthread_mutex_lock(&lock);
	if (db != NULL && strcmp(db_path, path) != 0)
		close_db(); /* a reload moved outcome.db */
	if (db == NULL && (err = open_db(path)) != NULL) {
		failed(path, err, now_ms);
		free(err);
		pthread_mutex_unlock(&lock);
		return;
	}
	sqlite3_bind_int64(ins, 1, now_ms);
	sqlite3_bind_text(ins, 2, login ? login : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(ins, 3, limit_name ? limit_name : "", -1, SQLITE_TRANSIENT);
	if (sqlite3_step(ins) != SQLITE_DONE)
		failed(path, sqlite3_errmsg(db), now_ms);
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	expire(cfg, now_ms);
	pthread_mutex_unlock(&lock);
}

void rate_hits_close(void)
{
	pthread_mutex_lock(&lock);
	close_db();
	pthread_mutex_unlock(&lock);
}

int rate_hits_top(const struct weir_config *cfg, long long since_ms, size_t n,
                  void (*fn)(void *ctx, const char *login, const char *limit_name, long count),
                  void *ctx, char **err_r)
{
	static const char sql[] =
	    "SELECT COALESCE(login, ''), COALESCE(limit_name, ''), COUNT(*) AS k "
	    "FROM rate_hits WHERE time_ms >= ?1 GROUP BY 1, 2 ORDER BY k DESC, 1, 2 LIMIT ?2";
	const char *path = cfg->outcome.db;
	sqlite3 *rd = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc;

	*err_r = NULL;
	if (path == NULL || path[0] == '\0' || stat(path, &sb) < 0)
		return 0; /* nothing recorded (yet) */
	if (sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(rd, 2000);
	rc = sqlite3_prepare_v2(rd, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		/* no table: the milter has not recorded a hit yet */
		if (strstr(sqlite3_errmsg(rd), "no such table") != NULL) {
			sqlite3_close(rd);
			return 0;
		}
		goto fail;
	}
	sqlite3_bind_int64(st, 1, since_ms);
	sqlite3_bind_int64(st, 2, n > 0x7fffffff ? 0x7fffffff : (long long)n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(st, 0),
		   (const char *)sqlite3_column_text(st, 1), (long)sqlite3_column_int64(st, 2));
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	sqlite3_close(rd);
	return 0;
fail:
	*err_r = xasprintf("%s: %s", path, rd ? sqlite3_errmsg(rd) : "out of memory");
	sqlite3_finalize(st);
	sqlite3_close(rd);
	return -1;
}
