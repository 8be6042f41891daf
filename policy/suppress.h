/* suppress - the suppression list: recipients weir will not send to any
 * more (hard bounces, repeated soft bounces, complaints, manual entries),
 * globally or for one sender domain, in an SQLite file
 * (suppression.db). Thread safe: each thread gets its own connection
 * (weir-milter's threads look up at RCPT; weir-agent records bounces):
 * a call takes an idle connection of the store's pool, or opens one, and
 * gives it back, so no two threads ever share one and there are as many
 * connections as calls that ran at the same time.
 *
 * Addresses: the domain is lowercased (and a final dot dropped); the
 * local part is kept as given but compared case-insensitively (ASCII).
 * Every function taking an address accepts it with or without <>. */
#ifndef WEIR_POLICY_SUPPRESS_H
#define WEIR_POLICY_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct weir_config;
struct suppress;

/* suppress_open - the store at cfg->suppression.db; create it (and its
 * schema) when create; NULL with *err_r (caller frees) */
struct suppress *suppress_open(const struct weir_config *cfg, bool create, char **err_r);
/* Flags of suppress_open_flags */
#define SUPPRESS_CREATE   0x1 /* create the file and its schema when missing */
#define SUPPRESS_READONLY 0x2 /* lookups only (weir-milter): read-only
                               * connections; the write functions fail */
/* suppress_open_flags - suppress_open with SUPPRESS_* flags. The file is
 * opened (and created) at once, so errors show here. */
struct suppress *suppress_open_flags(const struct weir_config *cfg, unsigned flags,
                                     char **err_r);
/* suppress_close - no call may be running; NULL is ok */
void suppress_close(struct suppress *s);

/* One entry */
struct suppress_entry {
	char address[320];
	char scope[256];   /* "" global, else a sender domain */
	char reason[64];   /* Sisimai's name, "complaint", "manual" ... */
	bool hard;
	char source[64];   /* "bounce", "complaint", "soft", "manual", "import" */
	long long created; /* seconds since the epoch, UTC */
	long long expires; /* 0: never */
	int count;         /* events that led to it */
};

/* suppress_lookup - is rcpt suppressed for mail from sender_domain (NULL:
 * the null sender) at now: 1 with *e filled, 0 no, -1 the store failed
 * (*err_r; callers never refuse mail because of that) */
int suppress_lookup(struct suppress *s, const char *rcpt, const char *sender_domain,
                    long long now, struct suppress_entry *e, char **err_r);

/* Events: the policy of cfg->suppression (soft_threshold within
 * soft_window, expiries) decides whether an entry is made; returns 1
 * when the recipient is now suppressed, 0 when only counted, -1 on error */
int suppress_hard_bounce(struct suppress *s, const char *rcpt, const char *reason, long long now,
                         char **err_r);
int suppress_soft_bounce(struct suppress *s, const char *rcpt, const char *reason, long long now,
                         char **err_r);
int suppress_complaint(struct suppress *s, const char *rcpt, const char *sender_domain,
                       const char *feedback_type, long long now, char **err_r);

/* Manual administration (weirctl) */
int suppress_add(struct suppress *s, const struct suppress_entry *e, char **err_r);
/* suppress_remove - 1 removed, 0 none, -1 error; scope NULL: every scope */
int suppress_remove(struct suppress *s, const char *address, const char *scope, char **err_r);
/* suppress_list - each entry (scope NULL: all; expired ones only with all) */
int suppress_list(struct suppress *s, const char *scope, bool all, long long now,
                  void (*fn)(void *ctx, const struct suppress_entry *e), void *ctx,
                  char **err_r);
int suppress_export_csv(struct suppress *s, FILE *out, char **err_r);
/* suppress_import_csv - returns the number imported; errors name the line */
long suppress_import_csv(struct suppress *s, FILE *in, const char *name, char **err_r);
/* suppress_count - active entries (metrics) */
long long suppress_count(struct suppress *s, long long now, char **err_r);
/* suppress_count_scopes - active entries per scope ("" global), most
 * first: fn gets the scope, their number and how many are hard; 0 or -1 */
int suppress_count_scopes(struct suppress *s, long long now,
                          void (*fn)(void *ctx, const char *scope, long long n, long long hard),
                          void *ctx, char **err_r);

/* suppress_reply - "550 5.1.1 <rcpt>: suppressed since 2026-11-22: reason" */
void suppress_reply(const struct suppress_entry *e, const char *rcpt, char *buf, size_t size);
/* suppress_reply_text - the same without "550 5.1.1 " (for an API that
 * takes the code and the enhanced status apart, e.g. smfi_setreply) */
void suppress_reply_text(const struct suppress_entry *e, const char *rcpt, char *buf,
                         size_t size);

/* suppress_prepare_db - as root, before dropping privileges (daemons) or
 * around a change (weirctl): the directory of cfg->suppression.db made if
 * missing and the file (-wal, -shm) given to uid:gid; see
 * daemon_prepare_db */
void suppress_prepare_db(const struct weir_config *cfg, uid_t uid, gid_t gid);

#endif
