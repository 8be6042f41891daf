/* report - what happened to the mail of a time window, from the stores:
 * the outcome log (outcome.db: deliveries, bounces, complaints), the
 * milter's rate-limit refusals (policy/rate_hits.h, in the same file)
 * and the SPF preflight store (spf.preflight_db). weirctl report prints it.
 *
 * Counting. An outcome row is one attempt for one recipient; a message
 * retried counts once, by its final state in the window:
 *
 *  - a relay attempt (or a suppression refusal) belongs to the message
 *    recipient (queue id, recipient) when the queue id is known, else
 *    (sender, recipient): without a queue id a retry cannot be told from
 *    a new message, so those count once per sender and recipient;
 *  - its final state is its last attempt in the window (by time, then
 *    row id): deferred then delivered counts one delivered;
 *  - a bounce message that came back later (source "bounce") turns the
 *    nearest earlier delivered message recipient of the same sender and
 *    recipient into the bounce's result (bounced, or deferred for a soft
 *    one); when there is none in the window it counts on its own;
 *  - complaints are counted apart and never change a state.
 *
 * Addresses and domains are compared without regard to case. Attempts
 * before the window are not seen: a message deferred before it and
 * delivered in it counts as delivered. */
#ifndef WEIR_POLICY_REPORT_H
#define WEIR_POLICY_REPORT_H

#include <stdbool.h>
#include <stddef.h>

struct weir_config;
struct preflight_finding;

struct report_counts {
	long recipients; /* final states: the four below */
	long delivered, deferred, bounced, suppressed;
	long complaints; /* complaint rows (not states) */
};

struct report_domain {
	char *name; /* lowercased; "<>" for the null sender */
	struct report_counts c;
};

struct report_reason {
	char *reason;
	bool hard;
	long count;
};

struct report_rate_hit {
	char *login, *limit;
	long count;
};

/* A report. Arrays are sorted: domains by recipients (then name), the
 * others by count, most first. Free with report_free. */
struct report {
	long long since_ms, until_ms; /* the window, [since, until] */
	long rows;                    /* outcome rows in the window */
	struct report_counts total;
	/* report_build_series: the final states per time bucket, each in
	 * the bucket of the row that decided it (the last attempt, or the
	 * bounce message that changed it), so the buckets add up to total;
	 * bucket i is [since_ms + i * bucket_ms, since_ms + (i + 1) * bucket_ms) */
	long long bucket_ms; /* 0: no series */
	struct report_counts *series;
	size_t nseries;
	struct report_domain *dest, *senders; /* by recipient / sender domain */
	size_t ndest, nsenders;
	/* the reasons of recipients whose final state came from a
	 * refusal or bounce message (bounced, or deferred by a bounce) */
	struct report_reason *reasons;
	size_t nreasons;
	/* weir-milter's rate-limit refusals since since_ms, per login and
	 * limit (rate_hits_top); rate_note is the error when they could not
	 * be read (NULL when they were) */
	struct report_rate_hit *rate;
	size_t nrate;
	long rate_total;
	char *rate_note;
	/* SPF preflight findings last seen in the window (their counts are
	 * since first seen); spf_note as rate_note */
	struct preflight_finding *spf;
	size_t nspf, spf_read; /* shown; read (and freed) */
	char *spf_note;
};

/* report_build - the report of cfg's stores for [since_ms, until_ms];
 * 0 with *r_r (free with report_free), or -1 with *err_r (caller frees)
 * when the outcome log is missing or unreadable. The rate-limit and SPF
 * stores are optional: their absence is a note, not an error. */
int report_build(const struct weir_config *cfg, long long since_ms, long long until_ms,
                 struct report **r_r, char **err_r);
/* report_build_series - report_build, with the series of bucket_ms
 * buckets (0: none; the caller keeps their number reasonable) */
int report_build_series(const struct weir_config *cfg, long long since_ms, long long until_ms,
                        long long bucket_ms, struct report **r_r, char **err_r);
/* report_delivery_rate - delivered / (delivered + bounced), or -1 when both are 0 */
double report_delivery_rate(const struct report_counts *c);
/* report_bounce_rate - bounced / (delivered + bounced), or -1 */
double report_bounce_rate(const struct report_counts *c);
/* report_free - NULL is ok */
void report_free(struct report *r);

/* For JSON writers of these figures (weirctl report --json, weir-agent's
 * /api/summary): the six counts of c as members, and one rate member
 * (null when v < 0) */
struct strbuf;
void report_json_counts(struct strbuf *b, const struct report_counts *c);
void report_json_rate(struct strbuf *b, const char *key, double v);

#endif
