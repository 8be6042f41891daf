/* suppress - the suppression list in SQLite (suppression.db)
 *
 *   suppression(addr_key, address, scope, reason, hard, source, created,
 *               expires, count)  primary key (addr_key, scope)
 *   soft_event(addr_key, address, at, reason)
 *
 * addr_key is the address lowercased: the lookup key (the local part is
 * compared case-insensitively, address keeps it as first written). scope
 * "" is global, else a sender domain. Times are unix seconds, expires 0
 * never. An expired row stays (weirctl suppression list --all shows it)
 * until an event or an administrator writes over it.
 *
 * Soft bounces are kept one row each in soft_event and counted over
 * soft_window (a sliding window: three bounces on days 6, 8 and 9 count
 * as three within 7 days); old ones are pruned by the next soft bounce.
 *
 * Connections: WAL (readers never wait for writers), synchronous=NORMAL,
 * a busy timeout; each event is one IMMEDIATE transaction, so weir-agent
 * and weirctl may write at the same time. A lookup is one indexed read
 * through a prepared statement (bench/suppress-lookup). */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/suppress_int.h"

#define BUSY_MS        2000 /* writers: weirctl, weir-agent */
#define READER_BUSY_MS 250  /* weir-milter at RCPT: never hold a client long */
#define SCHEMA_VERSION 1

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS suppression ("
    " addr_key TEXT NOT NULL, address TEXT NOT NULL, scope TEXT NOT NULL,"
    " reason TEXT NOT NULL, hard INTEGER NOT NULL, source TEXT NOT NULL,"
    " created INTEGER NOT NULL, expires INTEGER NOT NULL, count INTEGER NOT NULL,"
    " PRIMARY KEY (addr_key, scope)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS soft_event (addr_key TEXT NOT NULL, address TEXT NOT NULL,"
    " at INTEGER NOT NULL, reason TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS soft_event_key ON soft_event (addr_key, at);"
    "CREATE INDEX IF NOT EXISTS soft_event_at ON soft_event (at);";

#define COLUMNS "address, scope, reason, hard, source, created, expires, count"

static const char *const stmt_sql[ST_N] = {
    [ST_LOOKUP] = "SELECT " COLUMNS " FROM suppression WHERE addr_key = ?1"
                  " AND scope IN ('', ?2) AND (expires = 0 OR expires > ?3)"
                  " ORDER BY scope LIMIT 1",
    [ST_GET] = "SELECT " COLUMNS " FROM suppression WHERE addr_key = ?1 AND scope = ?2",
    [ST_PUT] = "INSERT OR REPLACE INTO suppression (addr_key, " COLUMNS ")"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_DEL_KEY] = "DELETE FROM suppression WHERE addr_key = ?1",
    [ST_DEL_ONE] = "DELETE FROM suppression WHERE addr_key = ?1 AND scope = ?2",
    [ST_SOFT_ADD] = "INSERT INTO soft_event (addr_key, address, at, reason)"
                    " VALUES (?1, ?2, ?3, ?4)",
    [ST_SOFT_N] = "SELECT count(*) FROM soft_event WHERE addr_key = ?1 AND at > ?2",
    [ST_SOFT_OLD] = "DELETE FROM soft_event WHERE at <= ?1",
    [ST_SOFT_DEL] = "DELETE FROM soft_event WHERE addr_key = ?1",
    [ST_COUNT] = "SELECT count(*) FROM suppression WHERE expires = 0 OR expires > ?1",
    [ST_COUNT_SCOPE] = "SELECT scope, count(*), sum(hard) FROM suppression"
                       " WHERE expires = 0 OR expires > ?1 GROUP BY scope"
                       " ORDER BY count(*) DESC, scope",
};

/* Connections and statements */

int supp_fail(struct suppress *s, struct supp_conn *c, const char *what, char **err_r)
{
	*err_r = xasprintf("%s: %s: %s", s->path, what,
	                   c != NULL && c->db != NULL ? sqlite3_errmsg(c->db) : "cannot open");
	return -1;
}

int supp_exec(struct suppress *s, struct supp_conn *c, const char *sql, char **err_r)
{
	if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return supp_fail(s, c, sql, err_r);
	return 0;
}

void supp_rollback(struct supp_conn *c)
{
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static void conn_close(struct supp_conn *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < ST_N; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

/* conn_open - a connection to the existing file; flags as
 * sqlite3_open_v2's. NULL with *err_r. */
static struct supp_conn *conn_open(struct suppress *s, int flags, char **err_r)
{
	struct supp_conn *c = xcalloc(1, sizeof(*c));

	if (sqlite3_open_v2(s->path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		supp_fail(s, c, "cannot open", err_r);
		conn_close(c);
		return NULL;
	}
	sqlite3_busy_timeout(c->db, (flags & SQLITE_OPEN_READONLY) ? READER_BUSY_MS : BUSY_MS);
	return c;
}

struct supp_conn *supp_get(struct suppress *s, char **err_r)
{
	struct supp_conn *c;

	pthread_mutex_lock(&s->lock);
	c = s->idle;
	if (c != NULL)
		s->idle = c->next;
	pthread_mutex_unlock(&s->lock);
	if (c != NULL)
		return c;
	return conn_open(s, s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, err_r);
}

void supp_put(struct suppress *s, struct supp_conn *c)
{
	if (c == NULL)
		return;
	supp_rollback(c); /* a failed call may have left a transaction open */
	pthread_mutex_lock(&s->lock);
	c->next = s->idle;
	s->idle = c;
	pthread_mutex_unlock(&s->lock);
}

sqlite3_stmt *supp_stmt(struct suppress *s, struct supp_conn *c, enum supp_stmt which, char **err_r)
{
	if (c->st[which] == NULL) {
		if (sqlite3_prepare_v3(c->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
		                       &c->st[which], NULL) != SQLITE_OK) {
			supp_fail(s, c, "cannot prepare", err_r);
			return NULL;
		}
	} else {
		sqlite3_reset(c->st[which]);
		sqlite3_clear_bindings(c->st[which]);
	}
	return c->st[which];
}

/* setup - the first connection: WAL and the schema (writable), or a
 * check of the schema's version (read-only). -1 with *err_r. */
static int setup(struct suppress *s, struct supp_conn *c, bool writable, char **err_r)
{
	sqlite3_stmt *st = NULL;
	int version = -1;

	if (writable && (supp_exec(s, c, "PRAGMA journal_mode=WAL", err_r) < 0 ||
	                 supp_exec(s, c, "PRAGMA synchronous=NORMAL", err_r) < 0 ||
	                 supp_exec(s, c, "BEGIN IMMEDIATE", err_r) < 0))
		return -1;
	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0) {
		supp_fail(s, c, "cannot read", err_r);
	} else if (version > SCHEMA_VERSION) {
		*err_r = xasprintf("%s: made by a newer weir (schema %d; this one knows %d)",
		                   s->path, version, SCHEMA_VERSION);
	} else if (!writable) {
		if (version == 0) /* a file nobody set up: nothing is suppressed */
			*err_r = xasprintf("%s: not a suppression list (no schema)", s->path);
		return version == SCHEMA_VERSION ? 0 : -1;
	} else if (supp_exec(s, c, schema, err_r) == 0 &&
	           supp_exec(s, c, "PRAGMA user_version = 1", err_r) == 0 &&
	           supp_exec(s, c, "COMMIT", err_r) == 0) {
		return 0;
	}
	supp_rollback(c);
	return -1;
}

struct suppress *suppress_open_flags(const struct weir_config *cfg, unsigned flags, char **err_r)
{
	struct suppress *s;
	struct supp_conn *c = NULL;
	const char *path = cfg->suppression.db;
	bool existed;

	if (path == NULL || path[0] == '\0') {
		*err_r = xstrdup("suppression.db is \"\"");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->path = xstrdup(path);
	s->readonly = (flags & SUPPRESS_READONLY) != 0;
	s->soft_threshold = cfg->suppression.soft_threshold;
	s->soft_window = cfg->suppression.soft_window;
	s->hard_expiry = cfg->suppression.hard_expiry;
	s->soft_expiry = cfg->suppression.soft_expiry;
	s->complaint_expiry = cfg->suppression.complaint_expiry;
	pthread_mutex_init(&s->lock, NULL);
	existed = access(path, F_OK) == 0;
	if (!existed && !(flags & SUPPRESS_CREATE)) {
		*err_r = xasprintf("%s: %s", path, strerror(ENOENT));
		goto fail;
	}
	if (!existed || !s->readonly) {
		/* create (or check) the schema through a writable connection */
		c = conn_open(s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err_r);
		if (c == NULL)
			goto fail;
		if (!existed)
			chmod(path, 0640); /* addresses: not for everyone's eyes */
		if (setup(s, c, true, err_r) < 0)
			goto fail;
		if (s->readonly) {
			conn_close(c);
			c = NULL;
		}
	}
	if (c == NULL && ((c = supp_get(s, err_r)) == NULL || setup(s, c, false, err_r) < 0))
		goto fail;
	supp_put(s, c);
	return s;
fail:
	conn_close(c);
	suppress_close(s);
	return NULL;
}

struct suppress *suppress_open(const struct weir_config *cfg, bool create, char **err_r)
{
	return suppress_open_flags(cfg, create ? SUPPRESS_CREATE : 0, err_r);
}

void suppress_close(struct suppress *s)
{
	if (s == NULL)
		return;
	while (s->idle != NULL) {
		struct supp_conn *c = s->idle;
		s->idle = c->next;
		conn_close(c);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}

void suppress_prepare_db(const struct weir_config *cfg, uid_t uid, gid_t gid)
{
	daemon_prepare_db(cfg->suppression.db, uid, gid, "suppression list");
}

/* Addresses */

int supp_address(const char *rcpt, char *addr, char *key, const char **err_r)
{
	size_t n = rcpt != NULL ? strlen(rcpt) : 0;
	const char *at;

	while (n > 0 && isspace((unsigned char)*rcpt)) {
		rcpt++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)rcpt[n - 1]))
		n--;
	if (n >= 2 && rcpt[0] == '<' && rcpt[n - 1] == '>') {
		rcpt++;
		n -= 2;
	}
	if (n > 0 && rcpt[n - 1] == '.') /* a final dot of the domain */
		n--;
	if (n == 0) {
		*err_r = "empty address";
		return -1;
	}
	if (n > SUPP_ADDR_MAX) {
		*err_r = "address too long";
		return -1;
	}
	at = memrchr(rcpt, '@', n);
	if (at == NULL || at == rcpt || (size_t)(at - rcpt) == n - 1) {
		*err_r = "not an address (LOCAL@DOMAIN)";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)rcpt[i];
		if (ch < 0x20 || ch == 0x7f) {
			*err_r = "control character in the address";
			return -1;
		}
		key[i] = (char)tolower(ch);
		addr[i] = rcpt + i > at ? key[i] : (char)ch;
	}
	addr[n] = key[n] = '\0';
	return 0;
}

int supp_scope(const char *domain, char *scope, const char **err_r)
{
	size_t n = domain != NULL ? strlen(domain) : 0;

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n > SUPP_SCOPE_MAX) {
		*err_r = "scope: domain too long";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)domain[i];
		if (ch <= ' ' || ch == 0x7f || ch == '@' || ch == ',' || ch == '"') {
			*err_r = "scope: not a domain";
			return -1;
		}
		scope[i] = (char)tolower(ch);
	}
	scope[n] = '\0';
	return 0;
}

bool supp_text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Rows */

static void column_copy(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(buf, size, "%s", t != NULL ? (const char *)t : "");
}

void supp_row(sqlite3_stmt *st, struct suppress_entry *e)
{
	column_copy(st, 0, e->address, sizeof(e->address));
	column_copy(st, 1, e->scope, sizeof(e->scope));
	column_copy(st, 2, e->reason, sizeof(e->reason));
	e->hard = sqlite3_column_int(st, 3) != 0;
	column_copy(st, 4, e->source, sizeof(e->source));
	e->created = sqlite3_column_int64(st, 5);
	e->expires = sqlite3_column_int64(st, 6);
	e->count = sqlite3_column_int(st, 7);
}

int supp_put_entry(struct suppress *s, struct supp_conn *c, const char *key,
                   const struct suppress_entry *e, char **err_r)
{
	sqlite3_stmt *st = supp_stmt(s, c, ST_PUT, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->address, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, e->hard ? 1 : 0);
	sqlite3_bind_text(st, 6, e->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, e->created);
	sqlite3_bind_int64(st, 8, e->expires);
	sqlite3_bind_int(st, 9, e->count);
	if (sqlite3_step(st) != SQLITE_DONE)
		return supp_fail(s, c, "cannot write", err_r);
	sqlite3_reset(st);
	return 0;
}

/* key_step - run a statement bound to key (and optionally an int64 and
 * a scope) to its end; -1 with *err_r */
static int key_step(struct suppress *s, struct supp_conn *c, enum supp_stmt which, const char *key,
                    char **err_r)
{
	sqlite3_stmt *st = supp_stmt(s, c, which, err_r);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return supp_fail(s, c, "cannot write", err_r);
	sqlite3_reset(st);
	return 0;
}

/* Lookups */

static bool active(const struct suppress_entry *e, long long now)
{
	return e->expires == 0 || e->expires > now;
}

int suppress_lookup(struct suppress *s, const char *rcpt, const char *sender_domain, long long now,
                    struct suppress_entry *e, char **err_r)
{
	char addr[SUPP_ADDR_MAX + 1], key[SUPP_ADDR_MAX + 1], scope[SUPP_SCOPE_MAX + 1];
	struct supp_conn *c;
	sqlite3_stmt *st;
	const char *bad;
	int rc, ret;

	/* what cannot be stored cannot be suppressed */
	if (supp_address(rcpt, addr, key, &bad) < 0)
		return 0;
	if (supp_scope(sender_domain, scope, &bad) < 0)
		scope[0] = '\0';
	if ((c = supp_get(s, err_r)) == NULL)
		return -1;
	if ((st = supp_stmt(s, c, ST_LOOKUP, err_r)) == NULL) {
		supp_put(s, c);
		return -1;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		supp_row(st, e);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = supp_fail(s, c, "cannot read", err_r);
	}
	sqlite3_reset(st);
	supp_put(s, c);
	return ret;
}

/* get_row - the row of (key, scope) into *e: 1, 0 none, -1 error */
static int get_row(struct suppress *s, struct supp_conn *c, const char *key, const char *scope,
                   struct suppress_entry *e, char **err_r)
{
	sqlite3_stmt *st = supp_stmt(s, c, ST_GET, err_r);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		supp_row(st, e);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return supp_fail(s, c, "cannot read", err_r);
	return rc == SQLITE_ROW;
}

/* Events */

/* later - the later of two expiry times (0, never, is the latest) */
static long long later(long long a, long long b)
{
	return a == 0 || b == 0 ? 0 : a > b ? a : b;
}

/* merge - write the event ev for key: over an active row it counts one
 * more, extends the expiry and turns the row hard when ev is (keeping
 * its date, so "suppressed since" stays the first time); otherwise
 * (none, or expired) ev is written as a new row. Transaction open. */
static int merge(struct suppress *s, struct supp_conn *c, const char *key,
                 const struct suppress_entry *ev, long long now, char **err_r)
{
	struct suppress_entry old;
	int rc = get_row(s, c, key, ev->scope, &old, err_r);

	if (rc < 0)
		return -1;
	if (rc == 0 || !active(&old, now))
		return supp_put_entry(s, c, key, ev, err_r);
	old.count++;
	old.expires = later(old.expires, ev->expires);
	if (ev->hard && !old.hard) {
		old.hard = true;
		memcpy(old.reason, ev->reason, sizeof(old.reason));
		memcpy(old.source, ev->source, sizeof(old.source));
	}
	return supp_put_entry(s, c, key, &old, err_r);
}

/* event_init - an entry for an event at now, expiring after expiry
 * seconds (0: never); reason cut to fit */
static void event_init(struct suppress_entry *ev, const char *addr, const char *scope,
                       const char *reason, bool hard, const char *source, long long now,
                       long long expiry)
{
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->address, sizeof(ev->address), "%s", addr);
	snprintf(ev->scope, sizeof(ev->scope), "%s", scope);
	snprintf(ev->reason, sizeof(ev->reason), "%s",
	         reason != NULL && reason[0] != '\0' ? reason : "undefined");
	for (char *p = ev->reason; *p != '\0'; p++) /* it goes into SMTP replies */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	ev->hard = hard;
	snprintf(ev->source, sizeof(ev->source), "%s", source);
	ev->created = now;
	ev->expires = expiry > 0 ? now + expiry : 0;
	ev->count = 1;
}

/* begin - a writable connection with an IMMEDIATE transaction open */
static struct supp_conn *begin(struct suppress *s, char **err_r)
{
	struct supp_conn *c;

	if (s->readonly) {
		*err_r = xasprintf("%s: opened for lookups only", s->path);
		return NULL;
	}
	if ((c = supp_get(s, err_r)) == NULL)
		return NULL;
	if (supp_exec(s, c, "BEGIN IMMEDIATE", err_r) < 0) {
		supp_put(s, c);
		return NULL;
	}
	return c;
}

/* commit - end the transaction of begin (rc 0: commit, else roll back)
 * and give the connection back; returns rc, or -1 if the commit failed */
static int commit(struct suppress *s, struct supp_conn *c, int rc, char **err_r)
{
	if (rc >= 0 && supp_exec(s, c, "COMMIT", err_r) < 0)
		rc = -1;
	supp_put(s, c); /* rolls back what is left open */
	return rc;
}

/* addr_err - the message for an address that cannot be recorded */
static int addr_err(const char *rcpt, const char *why, char **err_r)
{
	*err_r = xasprintf("<%s>: %s", rcpt != NULL ? rcpt : "", why);
	return -1;
}

int suppress_hard_bounce(struct suppress *s, const char *rcpt, const char *reason, long long now,
                         char **err_r)
{
	char addr[SUPP_ADDR_MAX + 1], key[SUPP_ADDR_MAX + 1];
	struct suppress_entry ev;
	struct supp_conn *c;
	const char *bad;
	int rc;

	if (supp_address(rcpt, addr, key, &bad) < 0)
		return addr_err(rcpt, bad, err_r);
	if ((c = begin(s, err_r)) == NULL)
		return -1;
	event_init(&ev, addr, "", reason, true, "bounce", now, s->hard_expiry);
	rc = merge(s, c, key, &ev, now, err_r);
	if (rc == 0)
		rc = key_step(s, c, ST_SOFT_DEL, key, err_r);
	return commit(s, c, rc < 0 ? -1 : 1, err_r);
}

/* soft_count - record a soft bounce of key and count those within the
 * window; -1 with *err_r */
static int soft_count(struct suppress *s, struct supp_conn *c, const char *key, const char *addr,
                      const char *reason, long long now, char **err_r)
{
	long long since = now - s->soft_window;
	sqlite3_stmt *st;
	int n;

	if ((st = supp_stmt(s, c, ST_SOFT_OLD, err_r)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, since);
	if (sqlite3_step(st) != SQLITE_DONE)
		return supp_fail(s, c, "cannot write", err_r);
	if ((st = supp_stmt(s, c, ST_SOFT_ADD, err_r)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, reason != NULL ? reason : "", -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return supp_fail(s, c, "cannot write", err_r);
	if ((st = supp_stmt(s, c, ST_SOFT_N, err_r)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	if (sqlite3_step(st) != SQLITE_ROW)
		return supp_fail(s, c, "cannot read", err_r);
	n = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return n;
}

int suppress_soft_bounce(struct suppress *s, const char *rcpt, const char *reason, long long now,
                         char **err_r)
{
	char addr[SUPP_ADDR_MAX + 1], key[SUPP_ADDR_MAX + 1];
	struct suppress_entry ev, old;
	struct supp_conn *c;
	const char *bad;
	int rc, n;

	if (supp_address(rcpt, addr, key, &bad) < 0)
		return addr_err(rcpt, bad, err_r);
	if ((c = begin(s, err_r)) == NULL)
		return -1;
	/* already suppressed everywhere: one more event for its count */
	rc = get_row(s, c, key, "", &old, err_r);
	if (rc == 1 && active(&old, now)) {
		old.count++;
		rc = supp_put_entry(s, c, key, &old, err_r);
		return commit(s, c, rc < 0 ? -1 : 1, err_r);
	}
	if (rc < 0 || (n = soft_count(s, c, key, addr, reason, now, err_r)) < 0)
		return commit(s, c, -1, err_r);
	if (n < s->soft_threshold)
		return commit(s, c, 0, err_r);
	event_init(&ev, addr, "", reason, false, "soft", now, s->soft_expiry);
	ev.count = n;
	rc = supp_put_entry(s, c, key, &ev, err_r);
	if (rc == 0)
		rc = key_step(s, c, ST_SOFT_DEL, key, err_r);
	return commit(s, c, rc < 0 ? -1 : 1, err_r);
}

int suppress_complaint(struct suppress *s, const char *rcpt, const char *sender_domain,
                       const char *feedback_type, long long now, char **err_r)
{
	char addr[SUPP_ADDR_MAX + 1], key[SUPP_ADDR_MAX + 1], scope[SUPP_SCOPE_MAX + 1];
	char reason[SUPP_REASON_MAX + 1];
	struct suppress_entry ev;
	struct supp_conn *c;
	const char *bad;
	int rc;

	if (supp_address(rcpt, addr, key, &bad) < 0)
		return addr_err(rcpt, bad, err_r);
	/* no sender domain known: the complaint holds for every sender */
	if (supp_scope(sender_domain, scope, &bad) < 0)
		return addr_err(rcpt, bad, err_r);
	if (feedback_type != NULL && feedback_type[0] != '\0')
		snprintf(reason, sizeof(reason), "complaint (%.40s)", feedback_type);
	else
		snprintf(reason, sizeof(reason), "complaint");
	if ((c = begin(s, err_r)) == NULL)
		return -1;
	event_init(&ev, addr, scope, reason, false, "complaint", now, s->complaint_expiry);
	rc = merge(s, c, key, &ev, now, err_r);
	return commit(s, c, rc < 0 ? -1 : 1, err_r);
}

/* Administration */

int suppress_add(struct suppress *s, const struct suppress_entry *e, char **err_r)
{
	char key[SUPP_ADDR_MAX + 1];
	struct suppress_entry n = *e;
	struct supp_conn *c;
	const char *bad;
	int rc;

	if (supp_address(e->address, n.address, key, &bad) < 0 ||
	    supp_scope(e->scope, n.scope, &bad) < 0)
		return addr_err(e->address, bad, err_r);
	if (!supp_text_ok(e->reason, SUPP_REASON_MAX) || !supp_text_ok(e->source, SUPP_SOURCE_MAX))
		return addr_err(e->address, "reason or source: control characters", err_r);
	if (n.count < 1)
		n.count = 1;
	if ((c = begin(s, err_r)) == NULL)
		return -1;
	rc = supp_put_entry(s, c, key, &n, err_r);
	return commit(s, c, rc, err_r);
}

int suppress_remove(struct suppress *s, const char *address, const char *scope, char **err_r)
{
	char addr[SUPP_ADDR_MAX + 1], key[SUPP_ADDR_MAX + 1], sc[SUPP_SCOPE_MAX + 1];
	struct supp_conn *c;
	sqlite3_stmt *st;
	const char *bad;
	int rc = -1;

	if (supp_address(address, addr, key, &bad) < 0 ||
	    (scope != NULL && supp_scope(scope, sc, &bad) < 0))
		return addr_err(address, bad, err_r);
	if ((c = begin(s, err_r)) == NULL)
		return -1;
	if ((st = supp_stmt(s, c, scope != NULL ? ST_DEL_ONE : ST_DEL_KEY, err_r)) != NULL) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (scope != NULL)
			sqlite3_bind_text(st, 2, sc, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			supp_fail(s, c, "cannot write", err_r);
		else
			rc = sqlite3_changes(c->db) > 0;
		sqlite3_reset(st);
	}
	/* a removed address starts again from no soft bounce */
	if (rc >= 0 && key_step(s, c, ST_SOFT_DEL, key, err_r) < 0)
		rc = -1;
	return commit(s, c, rc, err_r);
}

int suppress_list(struct suppress *s, const char *scope, bool all, long long now,
                  void (*fn)(void *ctx, const struct suppress_entry *e), void *ctx, char **err_r)
{
	char sc[SUPP_SCOPE_MAX + 1];
	struct suppress_entry e;
	struct supp_conn *c;
	sqlite3_stmt *st = NULL;
	const char *bad;
	char *sql;
	int rc;

	if (scope != NULL && supp_scope(scope, sc, &bad) < 0) {
		*err_r = xstrdup(bad);
		return -1;
	}
	if ((c = supp_get(s, err_r)) == NULL)
		return -1;
	sql = xasprintf("SELECT " COLUMNS " FROM suppression WHERE 1%s%s ORDER BY scope, addr_key",
	                scope != NULL ? " AND scope = ?1" : "",
	                all ? "" : " AND (expires = 0 OR expires > ?2)");
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		rc = supp_fail(s, c, "cannot read", err_r);
		supp_put(s, c);
		return rc;
	}
	if (scope != NULL)
		sqlite3_bind_text(st, 1, sc, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		supp_row(st, &e);
		fn(ctx, &e);
	}
	rc = rc == SQLITE_DONE ? 0 : supp_fail(s, c, "cannot read", err_r);
	sqlite3_finalize(st);
	supp_put(s, c);
	return rc;
}

long long suppress_count(struct suppress *s, long long now, char **err_r)
{
	struct supp_conn *c;
	sqlite3_stmt *st;
	long long n = -1;

	if ((c = supp_get(s, err_r)) == NULL)
		return -1;
	if ((st = supp_stmt(s, c, ST_COUNT, err_r)) != NULL) {
		sqlite3_bind_int64(st, 1, now);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		else
			supp_fail(s, c, "cannot read", err_r);
		sqlite3_reset(st);
	}
	supp_put(s, c);
	return n;
}

int suppress_count_scopes(struct suppress *s, long long now,
                          void (*fn)(void *ctx, const char *scope, long long n, long long hard),
                          void *ctx, char **err_r)
{
	struct supp_conn *c;
	sqlite3_stmt *st;
	int rc = -1, step;

	if ((c = supp_get(s, err_r)) == NULL)
		return -1;
	if ((st = supp_stmt(s, c, ST_COUNT_SCOPE, err_r)) != NULL) {
		sqlite3_bind_int64(st, 1, now);
		while ((step = sqlite3_step(st)) == SQLITE_ROW)
			fn(ctx, (const char *)sqlite3_column_text(st, 0),
			   sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
		if (step == SQLITE_DONE)
			rc = 0;
		else
			supp_fail(s, c, "cannot read", err_r);
		sqlite3_reset(st);
	}
	supp_put(s, c);
	return rc;
}

/* Replies */

void supp_iso_time(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", t);
}

void suppress_reply_text(const struct suppress_entry *e, const char *rcpt, char *buf, size_t size)
{
	char day[32];
	time_t t = (time_t)e->created;
	struct tm tm;
	size_t n = rcpt != NULL ? strlen(rcpt) : 0;

	if (gmtime_r(&t, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
		snprintf(day, sizeof(day), "%lld", e->created);
	if (n >= 2 && rcpt[0] == '<' && rcpt[n - 1] == '>') {
		rcpt++;
		n -= 2;
	}
	snprintf(buf, size, "<%.*s>: suppressed since %s: %s", (int)(n > 320 ? 320 : n),
	         rcpt != NULL ? rcpt : "", day, e->reason);
}

void suppress_reply(const struct suppress_entry *e, const char *rcpt, char *buf, size_t size)
{
	int n = snprintf(buf, size, "550 5.1.1 ");

	if (n > 0 && (size_t)n < size)
		suppress_reply_text(e, rcpt, buf + n, size - (size_t)n);
}
