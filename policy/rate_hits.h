/* rate_hits - rate-limit hits recorded by weir-milter for weirctl report
 *
 * Table rate_hits(time_ms, login, limit_name) in outcome.db (the file of
 * the outcome log, policy/outcome.h). weir-milter writes a row each time
 * a limit denies (whatever its action); weirctl report reads them. */
#ifndef WEIR_POLICY_RATE_HITS_H
#define WEIR_POLICY_RATE_HITS_H

#include <stddef.h>

struct weir_config;

/* rate_hits_record - one hit of limit_name by login (the SMTP AUTH login,
 * or the client address when there is none) at now_ms. Never blocks mail
 * for long (100 ms busy timeout) and never fails the caller: an error is
 * logged at most once a minute and the row is lost. Thread safe (one
 * process-wide connection under a mutex, reopened when outcome.db
 * changes); rows older than outcome.retention go once an hour. Nothing is
 * recorded when outcome.db is "". */
void rate_hits_record(const struct weir_config *cfg, const char *login, const char *limit_name,
                      long long now_ms);
/* rate_hits_close - close the process-wide connection (at exit) */
void rate_hits_close(void);

/* rate_hits_top - the n (login, limit) pairs with the most hits at or
 * after since_ms, most first, each given to fn (strings live for the
 * call); a file or table that does not exist yet has no hits. Returns 0,
 * or -1 with *err_r (caller frees). Opens its own read-only connection. */
int rate_hits_top(const struct weir_config *cfg, long long since_ms, size_t n,
                  void (*fn)(void *ctx, const char *login, const char *limit_name, long count),
                  void *ctx, char **err_r);

#endif
