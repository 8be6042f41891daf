/* suppress_int - what suppress.c and suppress_csv.c share: the store, its
 * pool of connections, prepared statements and address normalization.
 * Not for use outside policy/suppress*.c. */
#ifndef WEIR_POLICY_SUPPRESS_INT_H
#define WEIR_POLICY_SUPPRESS_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "policy/suppress.h"

/* Longest address and key kept (struct suppress_entry's buffers) */
#define SUPP_ADDR_MAX   (sizeof(((struct suppress_entry *)0)->address) - 1)
#define SUPP_SCOPE_MAX  (sizeof(((struct suppress_entry *)0)->scope) - 1)
#define SUPP_REASON_MAX (sizeof(((struct suppress_entry *)0)->reason) - 1)
#define SUPP_SOURCE_MAX (sizeof(((struct suppress_entry *)0)->source) - 1)

/* The statements each connection prepares (once, on first use) */
enum supp_stmt {
	ST_LOOKUP,   /* active entry of a key in the global or one domain scope */
	ST_GET,      /* the row of (key, scope), expired or not */
	ST_PUT,      /* insert or replace a row */
	ST_DEL_KEY,  /* remove a key in every scope */
	ST_DEL_ONE,  /* remove (key, scope) */
	ST_SOFT_ADD, /* record a soft bounce */
	ST_SOFT_N,   /* soft bounces of a key since a time */
	ST_SOFT_OLD, /* forget soft bounces before a time */
	ST_SOFT_DEL, /* forget a key's soft bounces */
	ST_COUNT,    /* active entries */
	ST_COUNT_SCOPE, /* active entries per scope */
	ST_N
};

/* One connection, used by one thread at a time */
struct supp_conn {
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
	struct supp_conn *next; /* in the idle list */
};

struct suppress {
	char *path;
	bool readonly;
	long soft_threshold;
	long long soft_window, hard_expiry, soft_expiry, complaint_expiry;
	pthread_mutex_t lock; /* guards idle */
	struct supp_conn *idle;
};

/* supp_get - an idle connection, or a new one; NULL with *err_r */
struct supp_conn *supp_get(struct suppress *s, char **err_r);
/* supp_put - give c back (NULL is ok) */
void supp_put(struct suppress *s, struct supp_conn *c);
/* supp_stmt - c's statement which, reset and unbound; NULL with *err_r */
sqlite3_stmt *supp_stmt(struct suppress *s, struct supp_conn *c, enum supp_stmt which,
                        char **err_r);
/* supp_fail - *err_r = "PATH: what: SQLite's message"; returns -1 */
int supp_fail(struct suppress *s, struct supp_conn *c, const char *what, char **err_r);
/* supp_exec - one statement without results (BEGIN, COMMIT ...) */
int supp_exec(struct suppress *s, struct supp_conn *c, const char *sql, char **err_r);
void supp_rollback(struct supp_conn *c);

/* supp_address - rcpt ("<a@b>" or "a@b") normalized into addr (local part
 * as given, domain lowercased without a final dot) and key (all of it
 * lowercased), each SUPP_ADDR_MAX + 1 bytes; -1 with *err_r (static) */
int supp_address(const char *rcpt, char *addr, char *key, const char **err_r);
/* supp_scope - a sender domain ("" or NULL: global) normalized into scope
 * (SUPP_SCOPE_MAX + 1 bytes); -1 with *err_r (static) */
int supp_scope(const char *domain, char *scope, const char **err_r);
/* supp_text_ok - reason and source: printable, no control characters,
 * at most max bytes */
bool supp_text_ok(const char *s, size_t max);

/* supp_put_entry - write e (already normalized, key its lookup key)
 * replacing any row of (key, scope) */
int supp_put_entry(struct suppress *s, struct supp_conn *c, const char *key,
                   const struct suppress_entry *e, char **err_r);
/* supp_row - the columns address, scope, reason, hard, source, created,
 * expires, count of st's current row into *e */
void supp_row(sqlite3_stmt *st, struct suppress_entry *e);

/* supp_iso_time - t as "2026-11-22T10:00:00Z" into buf (>= 24 bytes) */
void supp_iso_time(long long t, char *buf, size_t size);

#endif
