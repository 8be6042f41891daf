/* rate_mem - the memory backend of rate_store (one gateway): counters in
 * memory, persisted to SQLite (rate_db). Internal to policy/: callers use
 * rate_store.h, which dispatches here when rate.backend is "memory". */
#ifndef WEIR_POLICY_RATE_MEM_H
#define WEIR_POLICY_RATE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policy/rate_store.h"

struct rate_mem;

/* rate_mem_open - load rate.state_db and start the flush thread; with
 * admin, only remember the db's path (weirctl). Open after any fork():
 * the flush thread does not survive one. */
struct rate_mem *rate_mem_open(const struct weir_config *cfg, bool admin, char **err_r);
void rate_mem_reconfigure(struct rate_mem *m, const struct weir_config *cfg);
void rate_mem_close(struct rate_mem *m);
int rate_mem_charge(struct rate_mem *m, const struct rate_item *items, size_t n, bool force,
                    long long now_ms, struct rate_verdict *v);
int rate_mem_show(struct rate_mem *m, const char *state_key, FILE *out, char **err_r);
int rate_mem_reset(struct rate_mem *m, const char *state_key, char **err_r);
int rate_mem_flush(struct rate_mem *m);
/* rate_mem_count - keys held in memory (tests, bench) */
size_t rate_mem_count(struct rate_mem *m);

/* rate_state_charge - one item's charge on st at now (the algorithms of
 * issue 6, identical to the Redis backend's script): st is updated as if
 * the charge were committed; *ok_r etc. say whether it is allowed */
struct rate_outcome {
	bool ok;
	long long retry_after_ms, resets_at_ms;
	bool quota;
	long long remaining;
};
void rate_state_charge(struct rate_state *st, const struct rate_item *it, long long now_ms,
                       struct rate_outcome *o);
/* rate_state_idle - nothing left to remember at now: the rate recovered
 * and the quota window is over */
bool rate_state_idle(const struct rate_state *st, long long now_ms);
/* rate_floordiv - a / b rounded towards minus infinity (b > 0) */
long long rate_floordiv(long long a, long long b);

/* rate_db - the SQLite file of the memory backend:
 *   rate_state(state_key PRIMARY KEY, tat, t, cap, qwin, qcount, qn, qw, updated)
 *   rate_reset(state_key, at): resets asked for by weirctl, taken by the
 *   running weir-milter at its next flush
 * One connection per struct rate_db; not thread safe (the caller locks). */
struct rate_db;

struct rate_row {
	char *key;
	struct rate_state st;
};

/* rate_db_open - open path, creating it (mode 0640) only when create */
struct rate_db *rate_db_open(const char *path, bool create, char **err_r);
void rate_db_close(struct rate_db *db);
/* rate_db_load - fn for every row; -1 with *err_r */
int rate_db_load(struct rate_db *db,
                 void (*fn)(void *ctx, const char *key, const struct rate_state *st), void *ctx,
                 char **err_r);
/* rate_db_take_resets - fn for each requested reset, whose state rows
 * and requests are then deleted, all in one transaction */
int rate_db_take_resets(struct rate_db *db, void (*fn)(void *ctx, const char *key), void *ctx,
                        char **err_r);
/* rate_db_write - upsert rows[0..n), delete gone[0..ngone), one
 * transaction; updated = now_ms */
int rate_db_write(struct rate_db *db, const struct rate_row *rows, size_t n, char *const *gone,
                  size_t ngone, long long now_ms, char **err_r);
/* rate_db_delete - forget one key's row */
int rate_db_delete(struct rate_db *db, const char *key, char **err_r);
/* rate_db_request_reset - weirctl: delete the key's row, and ask the
 * running weir-milter to forget it (rate_reset) */
int rate_db_request_reset(struct rate_db *db, const char *key, long long now_ms, char **err_r);
/* rate_db_show - the rows (key: one; NULL: all, sorted) as
 * rate_state_format lines at now_ms */
int rate_db_show(struct rate_db *db, const char *key, long long now_ms, FILE *out, char **err_r);

#endif
