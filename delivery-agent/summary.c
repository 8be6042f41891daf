/* summary - the dashboard's data, /api/summary (HTTP thread)
 *
 * The figures are policy/report.c's, the same as `weirctl report` for
 * the same window: totals, the series per bucket (they add up to the
 * totals) and the top destinations. The recent bounces are the newest
 * bounced rows of the outcome log; throttle state, upstream health and
 * suppression counts come from the stats snapshot (stats.c). Object:
 *
 *   {"since": ms, "until": ms, "bucket_seconds": N,
 *    "totals": {recipients, delivered, deferred, bounced, suppressed,
 *               complaints}, "delivery_rate": x|null, "bounce_rate": x|null,
 *    "series": {"time": [s...], "delivered": [...], "deferred": [...],
 *               "bounced": [...]},
 *    "top_destinations": [{domain, recipients, delivered, ...}],
 *    "recent_bounces": [{time, sender, recipient, code, status, reason,
 *                        hard, reply, source}],
 *    "outcome_error": null | "text",
 *    "time", "throttle", "upstreams", "suppression": the snapshot's} */
#include "autoconf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery-agent/http.h"
#include "delivery-agent/stats.h"
#include "lib/json.h"
#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/outcome.h"
#include "policy/report.h"

#define TOP_DESTINATIONS 10
#define RECENT_BOUNCES   20
#define SERIES_MAX       300 /* buckets at most */

/* bucket_secs - 1 minute up to 3 hours, 5 minutes up to 24 hours (288
 * buckets), then as many 5 minutes as keep it under SERIES_MAX */
static long long bucket_secs(long long span)
{
	long long b;

	if (span <= 3 * 3600)
		return 60;
	if (span <= 24 * 3600)
		return 300;
	b = (span / SERIES_MAX + 299) / 300 * 300;
	return b;
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* add_series - one array of the series: field picks the count */
static void add_series(struct strbuf *b, const char *key, const struct report *r, size_t field)
{
	char buf[32];

	json_key(b, key);
	strbuf_adds(b, "[");
	for (size_t i = 0; i < r->nseries; i++) {
		long v = *(const long *)((const char *)&r->series[i] + field);
		snprintf(buf, sizeof(buf), "%s%ld", i ? "," : "", v);
		strbuf_adds(b, buf);
	}
	strbuf_adds(b, "]");
}

static void add_report(struct strbuf *b, const struct report *r)
{
	char buf[32];

	json_member_int(b, "bucket_seconds", r->bucket_ms / 1000);
	json_key(b, "totals");
	strbuf_adds(b, "{");
	report_json_counts(b, &r->total);
	strbuf_adds(b, "}");
	report_json_rate(b, "delivery_rate", report_delivery_rate(&r->total));
	report_json_rate(b, "bounce_rate", report_bounce_rate(&r->total));
	json_key(b, "series");
	strbuf_adds(b, "{");
	json_key(b, "time");
	strbuf_adds(b, "[");
	for (size_t i = 0; i < r->nseries; i++) {
		snprintf(buf, sizeof(buf), "%s%lld", i ? "," : "",
		         (r->since_ms + (long long)i * r->bucket_ms) / 1000);
		strbuf_adds(b, buf);
	}
	strbuf_adds(b, "]");
	add_series(b, "delivered", r, offsetof(struct report_counts, delivered));
	add_series(b, "deferred", r, offsetof(struct report_counts, deferred));
	add_series(b, "bounced", r, offsetof(struct report_counts, bounced));
	strbuf_adds(b, "}");
	json_key(b, "top_destinations");
	strbuf_adds(b, "[");
	for (size_t i = 0; i < r->ndest && i < TOP_DESTINATIONS; i++) {
		strbuf_adds(b, i ? ",{" : "{");
		json_member_str(b, "domain", r->dest[i].name);
		report_json_counts(b, &r->dest[i].c);
		strbuf_adds(b, "}");
	}
	strbuf_adds(b, "]");
}

/* Recent bounces being written */
struct bounces {
	struct strbuf *b;
	size_t n;
};

static void bounce_one(void *ctx, long long id, const struct outcome_rec *x)
{
	struct bounces *bs = ctx;
	struct strbuf *b = bs->b;

	(void)id;
	strbuf_adds(b, bs->n++ ? ",{" : "{");
	json_member_int(b, "time", x->time_ms);
	json_member_str(b, "sender", x->sender);
	json_member_str(b, "recipient", x->recipient);
	json_member_int(b, "code", x->code);
	json_member_str(b, "status", x->status);
	json_member_str(b, "reason", x->reason);
	json_member_bool(b, "hard", x->hard);
	json_member_str(b, "reply", x->reply);
	json_member_str(b, "source", x->source);
	strbuf_adds(b, "}");
}

/* add_bounces - the newest bounced rows; the error text or NULL */
static char *add_bounces(struct strbuf *b, const struct weir_config *cfg)
{
	struct outcome_filter f = {.result = OUTCOME_BOUNCED, .limit = RECENT_BOUNCES};
	struct strbuf rows = {0};
	struct bounces bs = {&rows, 0};
	char *err = NULL;

	json_key(b, "recent_bounces");
	strbuf_adds(b, "[");
	if (outcome_query(cfg, &f, bounce_one, &bs, &err) == 0 && rows.s != NULL)
		strbuf_adds(b, rows.s);
	strbuf_adds(b, "]");
	free(strbuf_take(&rows));
	return err;
}

char *summary_json(struct agent_stats *stats, long long since_ms)
{
	struct weir_config *cfg = config_current();
	long long until = wall_ms(), since = until - since_ms;
	struct report *r = NULL, empty;
	struct strbuf b = {0};
	char *err = NULL, *berr = NULL, *snap = stats_snapshot(stats);

	strbuf_adds(&b, "{");
	json_member_int(&b, "since", since);
	json_member_int(&b, "until", until);
	if (cfg == NULL || cfg->outcome.db[0] == '\0')
		err = xstrdup("no outcome log (outcome.db = \"\")");
	else if (report_build_series(cfg, since, until, bucket_secs(since_ms / 1000) * 1000, &r,
	                             &err) == 0)
		berr = add_bounces(&b, cfg);
	if (r != NULL) {
		add_report(&b, r);
	} else {
		/* the live parts still show; the figures are zero */
		memset(&empty, 0, sizeof(empty));
		empty.since_ms = since;
		empty.bucket_ms = bucket_secs(since_ms / 1000) * 1000;
		add_report(&b, &empty);
		json_key(&b, "recent_bounces");
		strbuf_adds(&b, "[]");
	}
	json_member_str(&b, "outcome_error", err != NULL ? err : berr);
	/* the snapshot's members: "{...}" without its braces */
	if (snap[0] == '{' && snap[1] != '}') {
		strbuf_adds(&b, ",");
		strbuf_add(&b, snap + 1, strlen(snap) - 2);
	}
	strbuf_adds(&b, "}");
	report_free(r);
	free(err);
	free(berr);
	free(snap);
	config_unref(cfg);
	return strbuf_take(&b);
}
