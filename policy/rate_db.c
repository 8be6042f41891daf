/* rate_db - the SQLite file of the memory rate backend (rate.state_db)
 *
 *   rate_state(state_key, tat, t, cap, qwin, qcount, qn, qw, updated)
 *   rate_reset(state_key, at)
 *
 * weir-milter is the only writer of rate_state: its flush thread upserts
 * the counters that changed and deletes those gone idle, all in one
 * transaction (WAL, synchronous=NORMAL: a crash loses at most the last
 * flush_interval, never the file). weirctl reads rate_state and writes
 * rate_reset rows, which the flush thread takes (see rate_store.c).
 * Times are ms; updated is the writer's clock at the flush. */
#include "autoconf.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/rate_mem.h"

#define BUSY_MS 2000

struct rate_db {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *upsert, *del;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS rate_state ("
    " state_key TEXT PRIMARY KEY NOT NULL,"
    " tat INTEGER NOT NULL, t INTEGER NOT NULL, cap INTEGER NOT NULL,"
    " qwin INTEGER NOT NULL, qcount INTEGER NOT NULL,"
    " qn INTEGER NOT NULL, qw INTEGER NOT NULL,"
    " updated INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rate_reset (state_key TEXT NOT NULL, at INTEGER NOT NULL);";

static const char upsert_sql[] =
    "INSERT INTO rate_state (state_key, tat, t, cap, qwin, qcount, qn, qw, updated)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (state_key) DO UPDATE SET"
    " tat = excluded.tat, t = excluded.t, cap = excluded.cap, qwin = excluded.qwin,"
    " qcount = excluded.qcount, qn = excluded.qn, qw = excluded.qw,"
    " updated = excluded.updated";

static const char select_sql[] =
    "SELECT state_key, tat, t, cap, qwin, qcount, qn, qw FROM rate_state";

static int db_error(struct rate_db *db, const char *what, char **err_r)
{
	*err_r = xasprintf("%s: %s: %s", db->path, what, sqlite3_errmsg(db->db));
	return -1;
}

struct rate_db *rate_db_open(const char *path, bool create, char **err_r)
{
	struct rate_db *db = xcalloc(1, sizeof(*db));
	bool existed = access(path, F_OK) == 0;

	db->path = xstrdup(path);
	if (!existed && !create) {
		*err_r = xasprintf("%s: no counters yet (weir-milter creates the file)", path);
		goto fail;
	}
	if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		*err_r = xasprintf("%s: cannot open: %s", path,
		                   db->db ? sqlite3_errmsg(db->db) : strerror(errno));
		goto fail;
	}
	/* logins and addresses: not for everyone's eyes */
	if (!existed)
		chmod(path, 0640);
	sqlite3_busy_timeout(db->db, BUSY_MS);
	if (sqlite3_exec(db->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->db, upsert_sql, -1, &db->upsert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->db, "DELETE FROM rate_state WHERE state_key = ?1", -1, &db->del,
	                       NULL) != SQLITE_OK) {
		db_error(db, "cannot set up", err_r);
		goto fail;
	}
	return db;
fail:
	rate_db_close(db);
	return NULL;
}

void rate_db_close(struct rate_db *db)
{
	if (db == NULL)
		return;
	sqlite3_finalize(db->upsert);
	sqlite3_finalize(db->del);
	sqlite3_close(db->db);
	free(db->path);
	free(db);
}

static void row_state(sqlite3_stmt *st, struct rate_state *s)
{
	s->tat = sqlite3_column_int64(st, 1);
	s->t = sqlite3_column_int64(st, 2);
	s->cap = sqlite3_column_int64(st, 3);
	s->qwin = sqlite3_column_int64(st, 4);
	s->qcount = sqlite3_column_int64(st, 5);
	s->qn = sqlite3_column_int64(st, 6);
	s->qw = sqlite3_column_int64(st, 7);
}

int rate_db_load(struct rate_db *db,
                 void (*fn)(void *ctx, const char *key, const struct rate_state *st), void *ctx,
                 char **err_r)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db->db, select_sql, -1, &st, NULL) != SQLITE_OK)
		return db_error(db, "cannot read", err_r);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rate_state s;
		const char *key = (const char *)sqlite3_column_text(st, 0);

		row_state(st, &s);
		if (key != NULL)
			fn(ctx, key, &s);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_error(db, "cannot read", err_r);
}

/* exec - one statement without results */
static int exec(struct rate_db *db, const char *sql, char **err_r)
{
	if (sqlite3_exec(db->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_error(db, sql, err_r);
	return 0;
}

static int delete_key(struct rate_db *db, const char *key)
{
	int rc;

	sqlite3_bind_text(db->del, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(db->del);
	sqlite3_reset(db->del);
	sqlite3_clear_bindings(db->del);
	return rc == SQLITE_DONE ? 0 : -1;
}

int rate_db_take_resets(struct rate_db *db, void (*fn)(void *ctx, const char *key), void *ctx,
                        char **err_r)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (exec(db, "BEGIN IMMEDIATE", err_r) < 0)
		return -1;
	if (sqlite3_prepare_v2(db->db, "SELECT DISTINCT state_key FROM rate_reset", -1, &st,
	                       NULL) != SQLITE_OK) {
		db_error(db, "cannot read rate_reset", err_r);
		exec(db, "ROLLBACK", err_r);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		if (key == NULL)
			continue;
		fn(ctx, key);
		if (delete_key(db, key) < 0) {
			rc = SQLITE_ERROR;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		ret = db_error(db, "cannot take resets", err_r);
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		return ret;
	}
	if (exec(db, "DELETE FROM rate_reset", err_r) < 0 || exec(db, "COMMIT", err_r) < 0) {
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

static int upsert(struct rate_db *db, const struct rate_row *r, long long now_ms)
{
	const long long v[] = {r->st.tat,    r->st.t,  r->st.cap, r->st.qwin,
	                       r->st.qcount, r->st.qn, r->st.qw,  now_ms};
	int rc;

	sqlite3_bind_text(db->upsert, 1, r->key, -1, SQLITE_STATIC);
	for (int i = 0; i < 8; i++)
		sqlite3_bind_int64(db->upsert, i + 2, v[i]);
	rc = sqlite3_step(db->upsert);
	sqlite3_reset(db->upsert);
	sqlite3_clear_bindings(db->upsert);
	return rc == SQLITE_DONE ? 0 : -1;
}

int rate_db_write(struct rate_db *db, const struct rate_row *rows, size_t n, char *const *gone,
                  size_t ngone, long long now_ms, char **err_r)
{
	if (n == 0 && ngone == 0)
		return 0;
	if (exec(db, "BEGIN IMMEDIATE", err_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (upsert(db, &rows[i], now_ms) < 0)
			goto fail;
	for (size_t i = 0; i < ngone; i++)
		if (delete_key(db, gone[i]) < 0)
			goto fail;
	if (exec(db, "COMMIT", err_r) == 0)
		return 0;
	sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
fail:
	db_error(db, "cannot write", err_r);
	sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int rate_db_delete(struct rate_db *db, const char *key, char **err_r)
{
	if (delete_key(db, key) < 0)
		return db_error(db, "cannot delete", err_r);
	return 0;
}

int rate_db_request_reset(struct rate_db *db, const char *key, long long now_ms, char **err_r)
{
	sqlite3_stmt *st;
	int rc;

	if (exec(db, "BEGIN IMMEDIATE", err_r) < 0)
		return -1;
	if (sqlite3_prepare_v2(db->db, "INSERT INTO rate_reset (state_key, at) VALUES (?1, ?2)", -1,
	                       &st, NULL) != SQLITE_OK) {
		db_error(db, "cannot write rate_reset", err_r);
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || delete_key(db, key) < 0) {
		db_error(db, "cannot write rate_reset", err_r);
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (exec(db, "COMMIT", err_r) < 0) {
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int rate_db_show(struct rate_db *db, const char *key, long long now_ms, FILE *out, char **err_r)
{
	sqlite3_stmt *st;
	bool found = false;
	int rc;
	char *sql =
	    xasprintf("%s%s ORDER BY state_key", select_sql, key ? " WHERE state_key = ?1" : "");

	rc = sqlite3_prepare_v2(db->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return db_error(db, "cannot read", err_r);
	if (key != NULL)
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rate_state s;
		const char *k = (const char *)sqlite3_column_text(st, 0);
		char *line;

		row_state(st, &s);
		line = rate_state_format(k ? k : "", &s, now_ms);
		fprintf(out, "%s\n", line);
		free(line);
		found = true;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, "cannot read", err_r);
	if (key != NULL && !found)
		fprintf(out, "%s state=none\n", key);
	return 0;
}
