/* report - the figures of weirctl report (see report.h for how a
 * recipient is counted)
 *
 * The outcome log is read newest first (outcome_query), so the first row
 * seen of a message recipient is its last attempt: that row decides its
 * state and later (older) rows of it are only counted as rows. Bounce
 * messages come after the delivery they refer to, so they are seen first
 * and wait in a list per (sender, recipient) until an older delivered
 * message recipient of the pair takes one; those left at the end count on
 * their own. Memory: a key per message recipient of the window. */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "lib/strbuf.h"
#include "lib/strmap.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/outcome.h"
#include "policy/preflight.h"
#include "policy/rate_hits.h"
#include "policy/report.h"

/* A bounce message waiting for the delivery it refers to */
struct bounce_wait {
	enum outcome_result result;
	bool hard;
	long long time_ms;
	char *reason;
};

struct waiting {
	char *sender, *rcpt; /* lowercased */
	struct bounce_wait *v;
	size_t n, size;
};

/* The state of one pass over the outcome log */
struct build {
	struct report *r;
	struct strmap *seen;           /* message recipient keys decided */
	struct strmap *waiting;        /* "sender\nrcpt" -> struct waiting */
	struct strmap *dest, *senders; /* domain -> struct report_domain */
	struct strmap *reasons;        /* "h|s" reason -> struct report_reason */
};

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s != NULL ? s : "");

	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* domain_name - the lowercased domain of addr (caller frees): "<>" for
 * the null sender, "(none)" for an address without one */
static char *domain_name(const char *addr, bool sender)
{
	const char *at;

	if (addr == NULL || addr[0] == '\0' || strcmp(addr, "<>") == 0)
		return xstrdup(sender ? "<>" : "(none)");
	if ((at = strrchr(addr, '@')) == NULL || at[1] == '\0')
		return xstrdup("(none)");
	return lower_dup(at + 1);
}

static struct report_domain *domain_get(struct strmap *m, const char *addr, bool sender)
{
	char *name = domain_name(addr, sender);
	struct report_domain *d = strmap_get(m, name);

	if (d == NULL) {
		d = xcalloc(1, sizeof(*d));
		d->name = name;
		strmap_put(m, name, d);
	} else {
		free(name);
	}
	return d;
}

static void counts_add(struct report_counts *c, enum outcome_result res)
{
	switch (res) {
	case OUTCOME_DELIVERED: c->delivered++; break;
	case OUTCOME_DEFERRED: c->deferred++; break;
	case OUTCOME_BOUNCED: c->bounced++; break;
	case OUTCOME_SUPPRESSED: c->suppressed++; break;
	case OUTCOME_COMPLAINT: c->complaints++; return;
	}
	c->recipients++;
}

/* count - one final state (or a complaint) of sender -> rcpt, decided
 * by a row of time_ms; by_bounce: it came from a bounce message */
static void count(struct build *b, const char *sender, const char *rcpt, enum outcome_result res,
                  const char *reason, bool hard, bool by_bounce, long long time_ms)
{
	struct report *r = b->r;

	counts_add(&r->total, res);
	if (r->nseries > 0) {
		long long i = (time_ms - r->since_ms) / r->bucket_ms;
		/* rows outside the window (clock steps) go to its ends */
		i = i < 0 ? 0 : i >= (long long)r->nseries ? (long long)r->nseries - 1 : i;
		counts_add(&r->series[i], res);
	}
	counts_add(&domain_get(b->dest, rcpt, false)->c, res);
	counts_add(&domain_get(b->senders, sender, true)->c, res);
	if (res == OUTCOME_BOUNCED || (res == OUTCOME_DEFERRED && by_bounce)) {
		const char *why = reason != NULL && reason[0] != '\0' ? reason : "(none)";
		char *key = xasprintf("%c%s", hard ? 'h' : 's', why);
		struct report_reason *rc = strmap_get(b->reasons, key);
		if (rc == NULL) {
			rc = xcalloc(1, sizeof(*rc));
			rc->reason = xstrdup(why);
			rc->hard = hard;
			strmap_put(b->reasons, key, rc);
		}
		rc->count++;
		free(key);
	}
}

/* pair_key - "sender\nrecipient", lowercased; caller frees */
static char *pair_key(const char *sender, const char *rcpt)
{
	char *s = lower_dup(sender), *r = lower_dup(rcpt);
	char *k = xasprintf("%s\n%s", s, r);

	free(s);
	free(r);
	return k;
}

/* wait_bounce - a bounce message: it waits for its delivery */
static void wait_bounce(struct build *b, const struct outcome_rec *x)
{
	char *key = pair_key(x->sender, x->recipient);
	struct waiting *w = strmap_get(b->waiting, key);

	if (w == NULL) {
		w = xcalloc(1, sizeof(*w));
		w->sender = lower_dup(x->sender);
		w->rcpt = lower_dup(x->recipient);
		strmap_put(b->waiting, key, w);
	}
	free(key);
	if (w->n == w->size) {
		w->size = w->size ? 2 * w->size : 2;
		w->v = xrealloc(w->v, w->size * sizeof(*w->v));
	}
	w->v[w->n].result = x->result;
	w->v[w->n].hard = x->hard;
	w->v[w->n].time_ms = x->time_ms;
	w->v[w->n].reason = x->reason != NULL ? xstrdup(x->reason) : NULL;
	w->n++;
}

/* take_bounce - the oldest bounce message waiting for sender -> rcpt
 * (the nearest after a delivery seen now), into *out; false when none */
static bool take_bounce(struct build *b, const char *sender, const char *rcpt,
                        struct bounce_wait *out)
{
	char *key = pair_key(sender, rcpt);
	struct waiting *w = strmap_get(b->waiting, key);

	free(key);
	if (w == NULL || w->n == 0)
		return false;
	*out = w->v[--w->n];
	return true;
}

/* attempt - a relay attempt or refusal: the first seen of its message
 * recipient is its final state */
static void attempt(struct build *b, const struct outcome_rec *x)
{
	char *key, *pair;
	struct bounce_wait bw;

	pair = pair_key(x->sender, x->recipient);
	if (x->queue_id != NULL && x->queue_id[0] != '\0') {
		char *rcpt = lower_dup(x->recipient);
		key = xasprintf("q%s\n%s", x->queue_id, rcpt);
		free(rcpt);
	} else {
		key = xasprintf("p%s", pair);
	}
	free(pair);
	if (strmap_get(b->seen, key) != NULL) {
		free(key);
		return;
	}
	strmap_put(b->seen, key, b); /* any non-NULL value */
	free(key);
	if (x->result == OUTCOME_DELIVERED && take_bounce(b, x->sender, x->recipient, &bw)) {
		count(b, x->sender, x->recipient, bw.result, bw.reason, bw.hard, true, bw.time_ms);
		free(bw.reason);
		return;
	}
	count(b, x->sender, x->recipient, x->result, x->reason, x->hard, false, x->time_ms);
}

/* on_row - outcome_query's callback, newest first */
static void on_row(void *ctx, long long id, const struct outcome_rec *x)
{
	struct build *b = ctx;

	(void)id;
	if (x->time_ms > b->r->until_ms)
		return;
	b->r->rows++;
	if (x->result == OUTCOME_COMPLAINT)
		count(b, x->sender, x->recipient, OUTCOME_COMPLAINT, NULL, false, false,
		      x->time_ms);
	else if (x->source != NULL && strcmp(x->source, "bounce") == 0)
		wait_bounce(b, x);
	else
		attempt(b, x);
}

/* flush_one - the bounce messages of a pair that no delivery took count
 * on their own */
static void flush_one(const char *key, void *value, void *ctx)
{
	struct waiting *w = value;

	(void)key;
	for (size_t i = w->n; i-- > 0;)
		count(ctx, w->sender, w->rcpt, w->v[i].result, w->v[i].reason, w->v[i].hard, true,
		      w->v[i].time_ms);
}

static void free_waiting(void *value)
{
	struct waiting *w = value;

	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].reason);
	free(w->v);
	free(w->sender);
	free(w->rcpt);
	free(w);
}

/* Collecting a map's values into a sorted array */
struct collect {
	void *v;
	size_t n, elem;
};

static void collect_one(const char *key, void *value, void *ctx)
{
	struct collect *c = ctx;

	(void)key;
	memcpy((char *)c->v + c->n++ * c->elem, value, c->elem);
	free(value); /* its members now belong to the array */
}

static void *collect(struct strmap *m, size_t elem, size_t *n_r,
                     int (*cmp)(const void *, const void *))
{
	struct collect c = {NULL, 0, elem};

	c.v = xcalloc(strmap_count(m) + 1, elem);
	strmap_foreach(m, collect_one, &c);
	qsort(c.v, c.n, elem, cmp);
	*n_r = c.n;
	return c.v;
}

static int domain_cmp(const void *a, const void *b)
{
	const struct report_domain *x = a, *y = b;

	if (x->c.recipients != y->c.recipients)
		return x->c.recipients > y->c.recipients ? -1 : 1;
	if (x->c.complaints != y->c.complaints)
		return x->c.complaints > y->c.complaints ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int reason_cmp(const void *a, const void *b)
{
	const struct report_reason *x = a, *y = b;
	int c;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if ((c = strcmp(x->reason, y->reason)) != 0)
		return c;
	return (int)y->hard - (int)x->hard;
}

/* read_outcomes - the outcome log's part of r */
static int read_outcomes(const struct weir_config *cfg, struct report *r, char **err_r)
{
	struct outcome_filter f = {.since_ms = r->since_ms, .result = -1};
	struct build b = {
	    .r = r,
	    .seen = strmap_new(),
	    .waiting = strmap_new(),
	    .dest = strmap_new(),
	    .senders = strmap_new(),
	    .reasons = strmap_new(),
	};
	int rc_q;

	rc_q = outcome_query(cfg, &f, on_row, &b, err_r);
	if (rc_q == 0)
		strmap_foreach(b.waiting, flush_one, &b);
	strmap_free(b.seen, NULL);
	strmap_free(b.waiting, free_waiting);
	r->dest = collect(b.dest, sizeof(*r->dest), &r->ndest, domain_cmp);
	r->senders = collect(b.senders, sizeof(*r->senders), &r->nsenders, domain_cmp);
	r->reasons = collect(b.reasons, sizeof(*r->reasons), &r->nreasons, reason_cmp);
	strmap_free(b.dest, NULL);
	strmap_free(b.senders, NULL);
	strmap_free(b.reasons, NULL);
	return rc_q;
}

/* on_rate_hit - rate_hits_top's callback, most hits first */
static void on_rate_hit(void *ctx, const char *login, const char *limit_name, long count)
{
	struct report *r = ctx;
	struct report_rate_hit *h;

	if ((r->nrate & (r->nrate - 1)) == 0) /* 0, 1, 2, 4, ...: room doubles */
		r->rate = xrealloc(r->rate, (r->nrate ? 2 * r->nrate : 1) * sizeof(*r->rate));
	h = &r->rate[r->nrate++];
	h->login = xstrdup(login != NULL ? login : "");
	h->limit = xstrdup(limit_name != NULL ? limit_name : "");
	h->count = count;
	r->rate_total += count;
}

/* read_rate_hits - weir-milter's rate-limit refusals since the window
 * began, per login and limit (all of them: the total counts them all) */
static void read_rate_hits(const struct weir_config *cfg, struct report *r)
{
	char *err = NULL;

	if (rate_hits_top(cfg, r->since_ms, (size_t)-1, on_rate_hit, r, &err) < 0)
		r->rate_note = err;
}

/* read_spf - preflight findings last seen in the window (the store is
 * sorted newest last seen first: they are a prefix) */
static void read_spf(const struct weir_config *cfg, struct report *r)
{
	char *err = NULL;

	if (!cfg->spf.preflight) {
		r->spf_note = xstrdup("spf.preflight is off");
		return;
	}
	if (preflight_findings(cfg->spf.preflight_db, &r->spf, &r->spf_read, &err) < 0) {
		r->spf_note = err;
		return;
	}
	while (r->nspf < r->spf_read && r->spf[r->nspf].last * 1000 >= r->since_ms)
		r->nspf++;
}

int report_build(const struct weir_config *cfg, long long since_ms, long long until_ms,
                 struct report **r_r, char **err_r)
{
	return report_build_series(cfg, since_ms, until_ms, 0, r_r, err_r);
}

int report_build_series(const struct weir_config *cfg, long long since_ms, long long until_ms,
                        long long bucket_ms, struct report **r_r, char **err_r)
{
	struct report *r = xcalloc(1, sizeof(*r));

	*r_r = NULL;
	r->since_ms = since_ms;
	r->until_ms = until_ms;
	if (bucket_ms > 0 && until_ms >= since_ms) {
		r->bucket_ms = bucket_ms;
		r->nseries = (size_t)((until_ms - since_ms) / bucket_ms + 1);
		r->series = xcalloc(r->nseries, sizeof(*r->series));
	}
	if (read_outcomes(cfg, r, err_r) < 0) {
		report_free(r);
		return -1;
	}
	read_rate_hits(cfg, r);
	read_spf(cfg, r);
	*r_r = r;
	return 0;
}

double report_delivery_rate(const struct report_counts *c)
{
	long d = c->delivered + c->bounced;

	return d > 0 ? (double)c->delivered / (double)d : -1;
}

double report_bounce_rate(const struct report_counts *c)
{
	long d = c->delivered + c->bounced;

	return d > 0 ? (double)c->bounced / (double)d : -1;
}

void report_free(struct report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->ndest; i++)
		free(r->dest[i].name);
	for (size_t i = 0; i < r->nsenders; i++)
		free(r->senders[i].name);
	for (size_t i = 0; i < r->nreasons; i++)
		free(r->reasons[i].reason);
	for (size_t i = 0; i < r->nrate; i++) {
		free(r->rate[i].login);
		free(r->rate[i].limit);
	}
	free(r->dest);
	free(r->senders);
	free(r->reasons);
	free(r->series);
	free(r->rate);
	free(r->rate_note);
	preflight_findings_free(r->spf, r->spf_read);
	free(r->spf_note);
	free(r);
}

void report_json_counts(struct strbuf *b, const struct report_counts *c)
{
	json_member_int(b, "recipients", c->recipients);
	json_member_int(b, "delivered", c->delivered);
	json_member_int(b, "deferred", c->deferred);
	json_member_int(b, "bounced", c->bounced);
	json_member_int(b, "suppressed", c->suppressed);
	json_member_int(b, "complaints", c->complaints);
}

void report_json_rate(struct strbuf *b, const char *key, double v)
{
	char num[32];

	json_key(b, key);
	if (v < 0) {
		strbuf_adds(b, "null");
		return;
	}
	snprintf(num, sizeof(num), "%.4f", v);
	strbuf_adds(b, num);
}
