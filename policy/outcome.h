/* outcome - the outcome log: every delivery attempt per recipient (and
 * every bounce or complaint that came back later), in SQLite
 * (outcome.db), written in batches, kept for outcome.retention, queried
 * by weirctl (outcome show, report). weir-agent owns the writer; weirctl
 * opens it read-only. */
#ifndef WEIR_POLICY_OUTCOME_H
#define WEIR_POLICY_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct weir_config;
struct outcome_log;

enum outcome_result {
	OUTCOME_DELIVERED,
	OUTCOME_DEFERRED,
	OUTCOME_BOUNCED,    /* refused with 5xx at relay time, or a bounce came back */
	OUTCOME_COMPLAINT,  /* an ARF complaint came back */
	OUTCOME_SUPPRESSED, /* refused because the recipient is suppressed */
};

/* One row. Strings are borrowed for the call (copied). */
struct outcome_rec {
	long long time_ms;    /* wall clock */
	const char *queue_id; /* the MTA's queue id when known, else NULL */
	const char *sender;
	const char *login; /* or NULL */
	const char *recipient;
	const char *route;    /* or NULL */
	const char *upstream; /* "host[ip]:port" or NULL */
	int code;             /* reply code, 0 when none */
	const char *status;   /* enhanced status or NULL */
	const char *reply;    /* the reply text (one line) or NULL */
	const char *reason;   /* classification (bounce.h) or NULL */
	bool hard;
	enum outcome_result result;
	const char *source; /* "relay", "bounce", "complaint", "intake" */
};

/* outcome_open - the writer (create the file and schema); NULL with *err_r */
struct outcome_log *outcome_open(const struct weir_config *cfg, char **err_r);
/* outcome_add - queue a row; written within outcome.flush_interval
 * (batched, one transaction); never blocks on the disk */
void outcome_add(struct outcome_log *o, const struct outcome_rec *r);
/* outcome_flush - write what is queued now (tests, shutdown); 0 or -1 */
int outcome_flush(struct outcome_log *o, char **err_r);
/* outcome_write - write rows now, in one transaction, past the queue
 * (bounce intake: its rows must be on disk before the MTA hears 250);
 * all or none; 0 or -1 with *err_r (caller frees). Thread safe. */
int outcome_write(struct outcome_log *o, const struct outcome_rec *r, size_t n, char **err_r);
/* outcome_expire - delete rows older than now_ms - outcome.retention
 * (the writer does it once an hour); the number deleted or -1 */
long outcome_expire(struct outcome_log *o, long long now_ms, char **err_r);
/* outcome_close - flush and free; NULL is ok */
void outcome_close(struct outcome_log *o);

/* outcome_result_name - "delivered", "deferred", ... */
const char *outcome_result_name(enum outcome_result r);
/* outcome_result_parse - the other way; -1 for an unknown name */
int outcome_result_parse(const char *name);

/* Reading (weirctl outcome show; a read-only connection of its own, so
 * it runs while weir-agent writes) */
struct outcome_filter {
	long long since_ms; /* rows at or after (0: all) */
	const char *rcpt;   /* only this recipient (case-insensitive), or NULL */
	int result;         /* enum outcome_result, or -1 for any */
	long limit;         /* at most (0: no limit) */
};
/* outcome_query - the rows of cfg's outcome.db that pass f, newest
 * first, each given to fn (its strings live for the call); 0, or -1 with
 * *err_r (caller frees) */
int outcome_query(const struct weir_config *cfg, const struct outcome_filter *f,
                  void (*fn)(void *ctx, long long id, const struct outcome_rec *r), void *ctx,
                  char **err_r);

#endif
