/* metrics - a thread-safe registry rendered in Prometheus text format 0.0.4
 *
 * One mutex guards the whole registry: updates are a lookup among at most
 * max_series label sets and a few additions, so contention is not worth a
 * finer scheme. Series are kept in first-seen order in a plain list; the
 * lookup compares label values linearly (max_series is small by design).
 */
#include "autoconf.h"

#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "xalloc.h"

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct series {
	struct series *next;
	char **values;     /* n_labels copies */
	double value;      /* counter, gauge */
	uint64_t *buckets; /* histogram: n_bounds + 1 counts, not cumulative */
	double sum;
	uint64_t count;
};

struct metric {
	struct metric *next;
	struct metrics *reg;
	enum metric_kind kind;
	char *name, *help;
	size_t n_labels;
	char **labels;
	double *bounds;
	size_t n_bounds;
	struct series *head, *tail;
	size_t n_series; /* not counting the "other" series */
	struct series *other;
};

struct metrics {
	pthread_mutex_t lock;
	size_t max_series;
	struct metric *head, *tail;
};

const double METRICS_DEFAULT_BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const size_t METRICS_DEFAULT_N_BUCKETS =
    sizeof(METRICS_DEFAULT_BUCKETS) / sizeof(METRICS_DEFAULT_BUCKETS[0]);

/* metrics_new - an empty registry */
struct metrics *metrics_new(size_t max_series)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	pthread_mutex_init(&m->lock, NULL);
	m->max_series = max_series ? max_series : METRICS_MAX_SERIES_DEFAULT;
	return m;
}

/* series_free - one series and its label values */
static void series_free(struct series *s, size_t n_labels)
{
	for (size_t i = 0; i < n_labels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->buckets);
	free(s);
}

/* metric_clear - drop every series (lock held or registry private) */
static void metric_clear(struct metric *mt)
{
	struct series *s, *next;

	for (s = mt->head; s; s = next) {
		next = s->next;
		series_free(s, mt->n_labels);
	}
	if (mt->other)
		series_free(mt->other, mt->n_labels);
	mt->head = mt->tail = mt->other = NULL;
	mt->n_series = 0;
}

/* metrics_free - the registry and everything in it */
void metrics_free(struct metrics *m)
{
	struct metric *mt, *next;

	if (!m)
		return;
	for (mt = m->head; mt; mt = next) {
		next = mt->next;
		metric_clear(mt);
		for (size_t i = 0; i < mt->n_labels; i++)
			free(mt->labels[i]);
		free(mt->labels);
		free(mt->bounds);
		free(mt->name);
		free(mt->help);
		free(mt);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* valid_name - Prometheus metric ([a-zA-Z_:][a-zA-Z0-9_:]*) or label
 * ([a-zA-Z_][a-zA-Z0-9_]*, not "__" reserved) name */
static int valid_name(const char *s, int is_label)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	if (is_label && strncmp(s, "__", 2) == 0)
		return 0;
	for (; *s; s++) {
		int ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		         (*s >= '0' && *s <= '9') || *s == '_' || (!is_label && *s == ':');
		if (!ok)
			return 0;
	}
	return 1;
}

/* same_labels - whether a declared metric has exactly these label names */
static int same_labels(const struct metric *mt, const char *const *labels, size_t n)
{
	if (mt->n_labels != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(mt->labels[i], labels[i]) != 0)
			return 0;
	return 1;
}

/* same_bounds - whether a declared histogram has exactly these buckets */
static int same_bounds(const struct metric *mt, const double *b, size_t n)
{
	if (mt->n_bounds != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (mt->bounds[i] != b[i])
			return 0;
	return 1;
}

/* declare - the common part of metrics_counter/gauge/histogram */
static struct metric *declare(struct metrics *m, enum metric_kind kind, const char *name,
                              const char *help, const char *const *labels, const double *bounds,
                              size_t n_bounds)
{
	struct metric *mt;
	size_t n = 0;

	if (!m || !valid_name(name, 0))
		return NULL;
	for (; labels && labels[n]; n++) {
		if (n >= METRICS_MAX_LABELS || !valid_name(labels[n], 1))
			return NULL;
		if (kind == KIND_HISTOGRAM && strcmp(labels[n], "le") == 0)
			return NULL;
		for (size_t j = 0; j < n; j++)
			if (strcmp(labels[j], labels[n]) == 0)
				return NULL;
	}
	for (size_t i = 0; i < n_bounds; i++)
		if (isnan(bounds[i]) || isinf(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
			return NULL;

	pthread_mutex_lock(&m->lock);
	for (mt = m->head; mt; mt = mt->next) {
		if (strcmp(mt->name, name) != 0)
			continue;
		if (mt->kind != kind || !same_labels(mt, labels, n) ||
		    (kind == KIND_HISTOGRAM && !same_bounds(mt, bounds, n_bounds)))
			mt = NULL;
		pthread_mutex_unlock(&m->lock);
		return mt;
	}
	mt = xcalloc(1, sizeof(*mt));
	mt->reg = m;
	mt->kind = kind;
	mt->name = xstrdup(name);
	mt->help = xstrdup(help ? help : "");
	mt->n_labels = n;
	mt->labels = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		mt->labels[i] = xstrdup(labels[i]);
	if (kind == KIND_HISTOGRAM) {
		mt->n_bounds = n_bounds;
		mt->bounds = xcalloc(n_bounds ? n_bounds : 1, sizeof(double));
		if (n_bounds)
			memcpy(mt->bounds, bounds, n_bounds * sizeof(double));
	}
	if (m->tail)
		m->tail->next = mt;
	else
		m->head = mt;
	m->tail = mt;
	pthread_mutex_unlock(&m->lock);
	return mt;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *const *labels)
{
	return declare(m, KIND_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *const *labels)
{
	return declare(m, KIND_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *const *labels, const double *buckets, size_t n_buckets)
{
	if (!buckets) {
		buckets = METRICS_DEFAULT_BUCKETS;
		n_buckets = METRICS_DEFAULT_N_BUCKETS;
	}
	return declare(m, KIND_HISTOGRAM, name, help, labels, buckets, n_buckets);
}

/* series_new - a zeroed series with these label values (all "other" when
 * values is NULL) */
static struct series *series_new(const struct metric *mt, const char *const *values)
{
	struct series *s = xcalloc(1, sizeof(*s));

	s->values = xcalloc(mt->n_labels ? mt->n_labels : 1, sizeof(char *));
	for (size_t i = 0; i < mt->n_labels; i++) {
		const char *v = values ? values[i] : METRICS_OTHER;
		s->values[i] = xstrdup(v ? v : "");
	}
	if (mt->kind == KIND_HISTOGRAM)
		s->buckets = xcalloc(mt->n_bounds + 1, sizeof(uint64_t));
	return s;
}

/* series_matches - whether s carries exactly these values (NULL as "") */
static int series_matches(const struct metric *mt, const struct series *s,
                          const char *const *values)
{
	for (size_t i = 0; i < mt->n_labels; i++) {
		const char *v = values[i] ? values[i] : "";
		if (strcmp(s->values[i], v) != 0)
			return 0;
	}
	return 1;
}

/* series_get - the series for values, created if there is room, else the
 * "other" series (lock held) */
static struct series *series_get(struct metric *mt, const char *const *values)
{
	const char *v[METRICS_MAX_LABELS + 1] = {NULL};
	struct series *s;

	/* copy up to the first NULL (a short list, or none at all, ends in "") */
	for (size_t i = 0; values && i < mt->n_labels && values[i]; i++)
		v[i] = values[i];
	values = v;
	for (s = mt->head; s; s = s->next)
		if (series_matches(mt, s, values))
			return s;
	if (mt->other && series_matches(mt, mt->other, values))
		return mt->other;
	if (mt->n_series >= mt->reg->max_series) {
		/* fold; an existing series that is all "other" already serves */
		const char *o[METRICS_MAX_LABELS + 1] = {NULL};
		for (size_t i = 0; i < mt->n_labels; i++)
			o[i] = METRICS_OTHER;
		if (!mt->other)
			for (s = mt->head; s; s = s->next)
				if (series_matches(mt, s, o))
					return s;
		if (!mt->other)
			mt->other = series_new(mt, NULL);
		return mt->other;
	}
	s = series_new(mt, values);
	if (mt->tail)
		mt->tail->next = s;
	else
		mt->head = s;
	mt->tail = s;
	mt->n_series++;
	return s;
}

void metrics_add(struct metric *mt, const char *const *values, double v)
{
	if (!mt || mt->kind == KIND_HISTOGRAM || isnan(v))
		return;
	if (mt->kind == KIND_COUNTER && v < 0)
		return;
	pthread_mutex_lock(&mt->reg->lock);
	series_get(mt, values)->value += v;
	pthread_mutex_unlock(&mt->reg->lock);
}

void metrics_inc(struct metric *mt, const char *const *values)
{
	metrics_add(mt, values, 1);
}

void metrics_set(struct metric *mt, const char *const *values, double v)
{
	if (!mt || mt->kind != KIND_GAUGE)
		return;
	pthread_mutex_lock(&mt->reg->lock);
	series_get(mt, values)->value = v;
	pthread_mutex_unlock(&mt->reg->lock);
}

void metrics_observe(struct metric *mt, const char *const *values, double v)
{
	struct series *s;
	size_t i;

	if (!mt || mt->kind != KIND_HISTOGRAM || isnan(v))
		return;
	pthread_mutex_lock(&mt->reg->lock);
	s = series_get(mt, values);
	for (i = 0; i < mt->n_bounds && v > mt->bounds[i]; i++)
		;
	s->buckets[i]++;
	s->sum += v;
	s->count++;
	pthread_mutex_unlock(&mt->reg->lock);
}

void metrics_reset(struct metric *mt)
{
	if (!mt)
		return;
	pthread_mutex_lock(&mt->reg->lock);
	metric_clear(mt);
	pthread_mutex_unlock(&mt->reg->lock);
}

/* fmt_double - a float as Prometheus prints it: shortest round-tripping
 * form, +Inf/-Inf/NaN spelled out */
static void fmt_double(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* add_escaped - s with \ and newline escaped, and " too when in_label
 * (text format 0.0.4: HELP escapes \ and \n; label values also \") */
static void add_escaped(struct strbuf *b, const char *s, int in_label)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && in_label)
			esc = "\\\"";
		if (!esc)
			continue;
		strbuf_add(b, run, (size_t)(s - run));
		strbuf_adds(b, esc);
		run = s + 1;
	}
	strbuf_add(b, run, (size_t)(s - run));
}

/* add_sample - one line: name suffix {labels[,le="x"]} value */
static void add_sample(struct strbuf *b, const struct metric *mt, const char *suffix,
                       const struct series *s, const char *le, const char *value)
{
	int any = 0;

	strbuf_adds(b, mt->name);
	strbuf_adds(b, suffix);
	for (size_t i = 0; s && i < mt->n_labels; i++) {
		strbuf_adds(b, any++ ? "," : "{");
		strbuf_adds(b, mt->labels[i]);
		strbuf_adds(b, "=\"");
		add_escaped(b, s->values[i], 1);
		strbuf_adds(b, "\"");
	}
	if (le) {
		strbuf_adds(b, any++ ? ",le=\"" : "{le=\"");
		strbuf_adds(b, le);
		strbuf_adds(b, "\"");
	}
	strbuf_adds(b, any ? "} " : " ");
	strbuf_adds(b, value);
	strbuf_adds(b, "\n");
}

/* render_series - the sample lines of one series */
static void render_series(struct strbuf *b, const struct metric *mt, const struct series *s)
{
	char num[64], le[64];
	uint64_t cum = 0;

	if (mt->kind != KIND_HISTOGRAM) {
		fmt_double(num, sizeof(num), s->value);
		add_sample(b, mt, "", s, NULL, num);
		return;
	}
	for (size_t i = 0; i <= mt->n_bounds; i++) {
		cum += s->buckets[i];
		if (i < mt->n_bounds)
			fmt_double(le, sizeof(le), mt->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
		add_sample(b, mt, "_bucket", s, le, num);
	}
	fmt_double(num, sizeof(num), s->sum);
	add_sample(b, mt, "_sum", s, NULL, num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)s->count);
	add_sample(b, mt, "_count", s, NULL, num);
}

/* render_metric - HELP, TYPE and every series of one metric */
static void render_metric(struct strbuf *b, struct metric *mt)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};

	strbuf_adds(b, "# HELP ");
	strbuf_adds(b, mt->name);
	strbuf_adds(b, " ");
	add_escaped(b, mt->help, 0);
	strbuf_adds(b, "\n# TYPE ");
	strbuf_adds(b, mt->name);
	strbuf_adds(b, " ");
	strbuf_adds(b, types[mt->kind]);
	strbuf_adds(b, "\n");
	/* a metric without labels always has its one series, at zero at first,
	 * so that a scraper sees it from the start */
	if (mt->n_labels == 0)
		series_get(mt, NULL);
	for (const struct series *s = mt->head; s; s = s->next)
		render_series(b, mt, s);
	if (mt->other)
		render_series(b, mt, mt->other);
}

char *metrics_render(struct metrics *m)
{
	struct strbuf b = {0};
	char *out;

	if (m) {
		pthread_mutex_lock(&m->lock);
		for (struct metric *mt = m->head; mt; mt = mt->next)
			render_metric(&b, mt);
		pthread_mutex_unlock(&m->lock);
	}
	out = strbuf_take(&b);
	return out ? out : xstrdup("");
}
