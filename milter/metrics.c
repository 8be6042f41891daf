/* metrics - weir-milter's Prometheus metrics (see metrics.h)
 *
 * The metrics (names and labels are part of weir's interface: the Grafana
 * dashboard in contrib/grafana reads them):
 *	weir_milter_messages_total{decision,reason}
 *	weir_milter_stage_seconds{stage}		histogram
 *	weir_milter_rate_limited_total{limit}
 *	weir_milter_spf_results_total{result}
 *	weir_milter_dkim_signed_total
 *	weir_milter_suppressed_total
 *
 * The endpoint runs on libmicrohttpd's thread (lib/httpd.c), started in
 * main before the privileges are dropped, so a port below 1024 works too;
 * the thread belongs to the process and so serves as the dropped user. */
#include "autoconf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "milter/metrics.h"
#include "policy/config.h"

struct milter_metrics {
	struct metrics *reg;
	struct metric *messages, *stage, *rate_limited, *spf, *dkim_signed, *suppressed;
	struct httpd *httpd;
};

/* Set once before libmilter's threads start; swapped to NULL at stop */
static _Atomic(struct milter_metrics *) current;

/* Stage latency in seconds: a stage is usually well under a millisecond
 * (a rule lookup) and up to seconds (DNS for SPF, a Redis round trip) */
static const double stage_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,   0.5,   1,      2.5,   5,    10,    30};

/* The reason label's values: the rules and checks of decision.c */
static const struct {
	const char *rule, *reason;
} reasons[] = {
    {"relay", "relay"},
    {"envelope_sender", "sender"},
    {"null_sender", "sender"},
    {"sender", "sender"},
    {"header_from", "header_from"},
    {"spoofing", "spoofing"},
    {"spf", "spf"},
    {"spf_preflight", "spf_preflight"},
    {"rate", "rate"},
    {"suppression", "suppressed"},
    {"suppressed", "suppressed"},
    {"dkim", "dkim"},
    {"internal", "internal"},
    {"none", "none"},
};

const char *mm_reason(const char *rule)
{
	for (size_t i = 0; rule && i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(rule, reasons[i].rule) == 0)
			return reasons[i].reason;
	return METRICS_OTHER;
}

void milter_metrics_init(void)
{
	struct milter_metrics *mm;
	struct metrics *r;

	if (atomic_load(&current) != NULL)
		return;
	mm = xcalloc(1, sizeof(*mm));
	r = mm->reg = metrics_new(0);
	mm->messages = metrics_counter(
	    r, "weir_milter_messages_total",
	    "Messages by weir-milter's decision and the rule or check that decided it.",
	    METRICS_L("decision", "reason"));
	mm->stage = metrics_histogram(
	    r, "weir_milter_stage_seconds", "Time weir-milter spent in each SMTP stage.",
	    METRICS_L("stage"), stage_buckets, sizeof(stage_buckets) / sizeof(stage_buckets[0]));
	mm->rate_limited = metrics_counter(
	    r, "weir_milter_rate_limited_total",
	    "Rate limit and quota hits (whatever the action), per limit.", METRICS_L("limit"));
	mm->spf = metrics_counter(r, "weir_milter_spf_results_total",
	                          "SPF results of mail from outside clients.", METRICS_L("result"));
	mm->dkim_signed = metrics_counter(r, "weir_milter_dkim_signed_total",
	                                  "Messages weir-milter signed with DKIM.", NULL);
	mm->suppressed = metrics_counter(r, "weir_milter_suppressed_total",
	                                 "Recipients found on the suppression list at RCPT.", NULL);
	if (!mm->messages || !mm->stage || !mm->rate_limited || !mm->spf || !mm->dkim_signed ||
	    !mm->suppressed)
		log_panic("metrics: a weir-milter metric could not be declared");
	atomic_store(&current, mm);
}

struct metrics *milter_metrics_registry(void)
{
	struct milter_metrics *mm = atomic_load(&current);

	return mm ? mm->reg : NULL;
}

/* serve - the HTTP handler: /metrics, and a pointer to it at / */
static void serve(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct milter_metrics *mm = ctx;

	if (strcmp(req->path, "/metrics") == 0) {
		resp->content_type = METRICS_CONTENT_TYPE;
		resp->body = metrics_render(mm->reg);
		resp->cache_control = "no-store";
	} else if (strcmp(req->path, "/") == 0) {
		resp->body = xstrdup("weir-milter: metrics at /metrics\n");
	} else {
		resp->status = 404;
		resp->body = xstrdup("not found\n");
	}
}

void milter_metrics_listen(const struct weir_config *cfg)
{
	struct milter_metrics *mm = atomic_load(&current);
	const char *listen = cfg->milter.metrics_listen, *err = NULL;

	if (mm == NULL || mm->httpd != NULL || listen == NULL || listen[0] == '\0')
		return;
	mm->httpd = httpd_start(listen, NULL, serve, mm, &err);
	if (mm->httpd == NULL)
		log_warning("milter.metrics_listen %s: %s; running without the metrics endpoint",
		            listen, err ? err : "?");
	else
		log_info("metrics endpoint listen=%s port=%u path=/metrics", listen,
		         httpd_port(mm->httpd));
}

void milter_metrics_stop(void)
{
	struct milter_metrics *mm = atomic_exchange(&current, NULL);

	if (mm == NULL)
		return;
	httpd_stop(mm->httpd); /* the handler uses mm: stop it first */
	metrics_free(mm->reg);
	free(mm);
}

void mm_message(const char *decision, const char *reason)
{
	struct milter_metrics *mm = atomic_load(&current);

	if (mm)
		metrics_inc(mm->messages, METRICS_L(decision, reason ? reason : "none"));
}

double mm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mm_stage(const char *stage, double start)
{
	struct milter_metrics *mm = atomic_load(&current);
	double d;

	if (!mm)
		return;
	d = mm_now() - start;
	metrics_observe(mm->stage, METRICS_L(stage), d < 0 ? 0 : d);
}

void mm_rate_limited(const char *limit)
{
	struct milter_metrics *mm = atomic_load(&current);

	if (mm)
		metrics_inc(mm->rate_limited, METRICS_L(limit));
}

void mm_spf_result(const char *result)
{
	struct milter_metrics *mm = atomic_load(&current);

	if (mm)
		metrics_inc(mm->spf, METRICS_L(result));
}

void mm_dkim_signed(void)
{
	struct milter_metrics *mm = atomic_load(&current);

	if (mm)
		metrics_inc(mm->dkim_signed, NULL);
}

void mm_suppressed(void)
{
	struct milter_metrics *mm = atomic_load(&current);

	if (mm)
		metrics_inc(mm->suppressed, NULL);
}
