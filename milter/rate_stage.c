/* rate_stage - rate limits and quotas at MAIL and RCPT (issue 6)
 *
 * At MAIL the limits counted in messages whose key has no recipient
 * part are charged; at each RCPT those counted in recipients, and the
 * per-recipient-domain message counts the first time a domain shows up
 * in the transaction. One stage's charges are decided together
 * (rate_charge: all or none). A denial's action is the strictest of the
 * denying limits': tempfail (451 4.7.0, with when to retry), reject
 * (550 5.7.1), hold (the message goes to the MTA's hold queue at its
 * end; the charge is made anyway) or log.
 *
 * Every denial is counted (weir_milter_rate_limited_total) and recorded
 * for weirctl report (policy/rate_hits.c: login, else client address).
 *
 * The store is process-wide (counters outlive a reload): opened on first
 * use, reconfigured when a message arrives under a new configuration,
 * closed (flushed) by rate_stage_shutdown. */
#include "autoconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/metrics.h"
#include "milter/session.h"
#include "policy/rate.h"
#include "policy/rate_hits.h"
#include "policy/rate_store.h"

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rate_store *store;
/* the configuration the store was last given, referenced so that its
 * address cannot be reused by a newer one while the store is set up for it */
static struct weir_config *store_cfg;
static bool store_failed; /* opening failed: said once */
static bool store_shut;   /* rate_stage_shutdown ran: no reopening */

/* store_for - the store, set up for cfg; NULL when it cannot be opened */
static struct rate_store *store_for(struct weir_config *cfg)
{
	struct rate_store *s;
	char *err = NULL;

	pthread_mutex_lock(&store_lock);
	if (store_shut) {
		pthread_mutex_unlock(&store_lock);
		return NULL;
	}
	if (store == NULL) {
		store = rate_store_open(cfg, &err);
		if (store == NULL && !store_failed) {
			log_error("rate limits: cannot open the %s store: %s; rate.fail_mode decides",
				  cfg->rate.backend == RATE_BACKEND_REDIS ? "Redis" : "memory",
				  err ? err : "?");
			store_failed = true;
		}
		free(err);
		if (store != NULL) {
			store_failed = false;
			store_cfg = config_ref(cfg);
		}
	} else if (store_cfg != cfg) {
		/* a reload: new limits (a new backend too), counters kept */
		rate_store_reconfigure(store, cfg);
		config_unref(store_cfg);
		store_cfg = config_ref(cfg);
	}
	s = store;
	pthread_mutex_unlock(&store_lock);
	return s;
}

void rate_stage_shutdown(void)
{
	pthread_mutex_lock(&store_lock);
	rate_store_close(store);
	store = NULL;
	config_unref(store_cfg);
	store_cfg = NULL;
	store_shut = true;
	pthread_mutex_unlock(&store_lock);
	rate_hits_close();
}

static unsigned identity_class(enum identity id)
{
	switch (id) {
	case ID_AUTHENTICATED:
	case ID_CERTIFICATE: return IDENTITY_AUTHENTICATED;
	case ID_TRUSTED: return IDENTITY_TRUSTED;
	case ID_OUTSIDE: return IDENTITY_OUTSIDE;
	}
	return IDENTITY_OUTSIDE;
}

/* iso_time - ms since the epoch as 2026-11-22T10:00:00Z */
static void iso_time(long long ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* window_name - "hourly", "daily", or "N-second" for a quota window */
static void window_name(long long ms, char *buf, size_t size)
{
	if (ms == 3600000)
		snprintf(buf, size, "hourly");
	else if (ms == 86400000)
		snprintf(buf, size, "daily");
	else if (ms % 86400000 == 0)
		snprintf(buf, size, "%lld-day", ms / 86400000);
	else if (ms % 3600000 == 0)
		snprintf(buf, size, "%lld-hour", ms / 3600000);
	else
		snprintf(buf, size, "%lld-second", ms / 1000);
}

/* note - the message line's rate= value: ok, or NAME:ACTION of the
 * first limit that did not allow */
static void note(struct msg *m, const char *value)
{
	if (m->rate_log != NULL && strcmp(value, "ok") == 0)
		return;
	if (m->rate_log != NULL && strcmp(m->rate_log, "ok") != 0)
		return;
	free(m->rate_log);
	m->rate_log = xstrdup(value);
}

static const char *action_name(int action)
{
	switch (action) {
	case ACTION_REJECT: return "reject";
	case ACTION_TEMPFAIL: return "tempfail";
	case ACTION_HOLD: return "hold";
	case ACTION_LOG: return "log";
	default: return "accept";
	}
}

/* charge - decide one stage's items; the stage's answer */
static enum mlfi_status charge(struct conn *c, const struct mlfi_io *io, struct rate_item *items,
			       size_t n)
{
	struct rate_store *s = store_for(c->cfg);
	struct rate_verdict v;
	const struct rate_item *it;
	char text[600], when[40], win[32], extra[600], value[300], *nv;
	long long secs;
	int action;
	enum mlfi_status st;
	struct kvline kv;

	memset(&v, 0, sizeof(v));
	if (s == NULL || rate_charge(s, items, n, false, rate_now_ms(), &v) < 0) {
		v.backend_down = true;
		v.allowed = c->cfg->rate.fail_mode == RATE_FAIL_OPEN;
	}
	if (v.allowed) {
		note(c->msg, v.backend_down ? "unchecked" : "ok");
		return MLFI_CONTINUE;
	}
	if (v.backend_down) {
		note(c->msg, "store_unavailable");
		return decide_action(c, io, "rate", ACTION_TEMPFAIL, "5.3.0", "4.3.0",
				     "rate limit state unavailable: try again later",
				     "limit=- key=- backend=down");
	}
	it = &items[v.denied < n ? v.denied : 0];
	action = it->action;
	/* a hit, whatever the action: for the metrics and weirctl report */
	mm_rate_limited(it->limit_name);
	rate_hits_record(c->cfg, c->msg->login ? c->msg->login : c->client_addr, it->limit_name,
			 rate_now_ms());
	snprintf(value, sizeof(value), "%s", rate_item_value(it));
	secs = (v.retry_after_ms + 999) / 1000;
	if (v.quota) {
		iso_time(v.resets_at_ms, when, sizeof(when));
		window_name(it->quota_period_ms, win, sizeof(win));
		snprintf(text, sizeof(text),
			 "rate limit %s: %s quota of %lld reached for %.200s: resets at %s",
			 it->limit_name, win, it->quota_n, value, when);
	} else {
		snprintf(text, sizeof(text),
			 "rate limit %s exceeded for %.200s: try again in %lld second%s",
			 it->limit_name, value, secs, secs == 1 ? "" : "s");
	}
	kv_init(&kv);
	kv_add(&kv, "limit", it->limit_name);
	kv_add(&kv, "key", value);
	kv_addf(&kv, "retry_after", "%lld", secs);
	snprintf(extra, sizeof(extra), "%s", kv_str(&kv));
	kv_free(&kv);
	nv = xasprintf("%s:%s", it->limit_name, action_name(action));
	note(c->msg, nv);
	free(nv);
	/* hold and log let the message go on: the charge is made anyway, so
	 * that the counters see what was accepted; so does a dry run */
	if (action == ACTION_HOLD || action == ACTION_LOG || c->cfg->policy.dry_run)
		rate_charge(s, items, n, true, rate_now_ms(), &v);
	st = decide_action(c, io, "rate", action, "5.7.1", "4.7.0", text, extra);
	return st;
}

/* domain_of - the lowercased domain of an address, or NULL */
static char *domain_of(const char *addr)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	char *d;

	if (at == NULL || at[1] == '\0')
		return NULL;
	d = xstrdup(at + 1);
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return d;
}

static void fill_context(const struct conn *c, struct rate_context *ctx)
{
	const struct msg *m = c->msg;

	memset(ctx, 0, sizeof(*ctx));
	ctx->login = m->login;
	ctx->client_ip = c->client_addr;
	ctx->sender = m->sender != NULL ? m->sender : "";
	ctx->identity_class = identity_class(m->identity);
	ctx->seen_domains = m->rate_domains;
	ctx->n_seen_domains = m->n_rate_domains;
}

enum mlfi_status rate_mail(struct conn *c, const struct mlfi_io *io)
{
	struct rate_context ctx;
	struct rate_item *items = NULL;
	size_t n;
	enum mlfi_status st = MLFI_CONTINUE;

	if (c->msg == NULL || c->cfg->rate.nlimits == 0)
		return MLFI_CONTINUE;
	fill_context(c, &ctx);
	n = rate_plan(c->cfg, RATE_AT_MAIL, &ctx, &items);
	if (n > 0)
		st = charge(c, io, items, n);
	rate_items_free(items, n);
	return st;
}

enum mlfi_status rate_rcpt(struct conn *c, const struct mlfi_io *io, const char *rcpt)
{
	struct msg *m = c->msg;
	struct rate_context ctx;
	struct rate_item *items = NULL;
	char *dom;
	size_t n;
	enum mlfi_status st = MLFI_CONTINUE;
	bool seen = false;

	if (m == NULL || c->cfg->rate.nlimits == 0)
		return MLFI_CONTINUE;
	fill_context(c, &ctx);
	ctx.rcpt = rcpt;
	n = rate_plan(c->cfg, RATE_AT_RCPT, &ctx, &items);
	if (n > 0)
		st = charge(c, io, items, n);
	rate_items_free(items, n);
	/* the domain now counts as charged in this transaction */
	if ((st == MLFI_CONTINUE) && (dom = domain_of(rcpt)) != NULL) {
		for (size_t i = 0; i < m->n_rate_domains && !seen; i++)
			seen = strcmp(m->rate_domains[i], dom) == 0;
		if (!seen && m->n_rate_domains < 1000) {
			m->rate_domains = xrealloc(m->rate_domains,
						   (m->n_rate_domains + 1) * sizeof(*m->rate_domains));
			m->rate_domains[m->n_rate_domains++] = dom;
		} else {
			free(dom);
		}
	}
	return st;
}
