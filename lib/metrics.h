/* metrics - a thread-safe registry of counters, gauges and histograms,
 * rendered in the Prometheus text exposition format 0.0.4 */
#ifndef WEIR_METRICS_H
#define WEIR_METRICS_H

#include <stddef.h>

/*
 * One registry per process. Every metric has a fixed list of label names,
 * given when it is declared; each update passes the label values in the same
 * order. A metric holds at most max_series distinct label value sets; an
 * update with a new set beyond that is folded into one series whose label
 * values are all "other", so cardinality stays bounded whatever the input.
 *
 * Thread safety: every function may be called from any thread (one mutex per
 * registry). Handles stay valid until metrics_free(); the registry owns them.
 *
 * Declaring the same name twice returns the existing handle when the type and
 * label names match, NULL otherwise (a programming error; the caller may
 * log_panic).
 */

struct metrics;
struct metric;

#define METRICS_MAX_SERIES_DEFAULT 100
#define METRICS_MAX_LABELS         8
#define METRICS_OTHER              "other"

/* metrics_new - an empty registry; max_series 0 means the default (100) */
struct metrics *metrics_new(size_t max_series);
/* metrics_free - free the registry, its metrics and their handles (NULL ok) */
void metrics_free(struct metrics *m);

/* metrics_counter - declare a counter; labels: NULL-terminated label names
 * (NULL or an empty list for none, at most METRICS_MAX_LABELS). name and
 * help are copied. Returns NULL on a bad name or a conflicting redeclaration. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *const *labels);
/* metrics_gauge - declare a gauge; as metrics_counter */
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *const *labels);
/* metrics_histogram - declare a histogram with the given upper bounds
 * (strictly increasing, n_buckets of them; +Inf is implicit). buckets NULL
 * means METRICS_DEFAULT_BUCKETS. */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *const *labels, const double *buckets,
                                 size_t n_buckets);

/* Default histogram buckets in seconds (Prometheus client defaults). */
extern const double METRICS_DEFAULT_BUCKETS[];
extern const size_t METRICS_DEFAULT_N_BUCKETS;

/*
 * Updates. values: the label values, one per label name in declaration
 * order (may be NULL for a metric without labels); the list may end early
 * (NULL-terminated): missing values are "". Values are copied. A NULL metric is ignored, so callers
 * need not test whether the registry exists. A wrong kind (metrics_add on a histogram,
 * ...) is ignored too.
 */

/* metrics_add - add v (>= 0) to a counter, or v (any sign) to a gauge */
void metrics_add(struct metric *mt, const char *const *values, double v);
/* metrics_inc - metrics_add(mt, values, 1) */
void metrics_inc(struct metric *mt, const char *const *values);
/* metrics_set - set a gauge */
void metrics_set(struct metric *mt, const char *const *values, double v);
/* metrics_observe - record one observation in a histogram */
void metrics_observe(struct metric *mt, const char *const *values, double v);
/* metrics_reset - drop every series of a metric (gauges whose label sets
 * change, e.g. a state that is 1 for the current value only) */
void metrics_reset(struct metric *mt);

/* Convenience for literal label lists: METRICS_L("accept", "sender") */
#define METRICS_L(...) ((const char *const[]){__VA_ARGS__, NULL})

/* metrics_render - the whole registry in text format 0.0.4, metrics in
 * declaration order, series in first-seen order. Caller frees. */
char *metrics_render(struct metrics *m);

/* Content-Type of metrics_render's output */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
