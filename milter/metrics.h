/* metrics - weir-milter's Prometheus metrics and their HTTP endpoint
 *
 * One process-wide registry (lib/metrics.h), declared by
 * milter_metrics_init before libmilter starts its threads; every mm_*
 * function is thread safe and does nothing before init or after stop, so
 * the unit tests of the stages need no setup. Label values come from fixed
 * lists (decision, reason, stage, SPF result) or from the configuration
 * (rate limit names), and the registry folds anything beyond its bound. */
#ifndef WEIR_MILTER_METRICS_H
#define WEIR_MILTER_METRICS_H

struct weir_config;
struct metrics;

/* milter_metrics_init - declare the metrics (idempotent) */
void milter_metrics_init(void);
/* milter_metrics_registry - the registry (tests render it); NULL before init */
struct metrics *milter_metrics_registry(void);
/* milter_metrics_listen - serve /metrics at cfg's milter.metrics_listen
 * (nothing when ""); a bind failure is a warning, never fatal */
void milter_metrics_listen(const struct weir_config *cfg);
/* milter_metrics_stop - stop the endpoint and free the registry */
void milter_metrics_stop(void);

/* mm_reason - the reason label for a rule or check name as decision.c
 * names it ("envelope_sender" -> "sender", "suppression" -> "suppressed");
 * a static string from a fixed list, "other" for anything unknown */
const char *mm_reason(const char *rule);
/* mm_message - one message's decision (accept, reject, tempfail, hold,
 * discard) with its reason (mm_reason's list, or "none") */
void mm_message(const char *decision, const char *reason);
/* mm_now - a monotonic clock in seconds, for mm_stage */
double mm_now(void);
/* mm_stage - time spent in a stage (connect, mail, rcpt, eom) since start */
void mm_stage(const char *stage, double start);
void mm_rate_limited(const char *limit);
/* mm_spf_result - an SPF result name (pass, fail, softfail, ...) */
void mm_spf_result(const char *result);
void mm_dkim_signed(void);
void mm_suppressed(void);

#endif
