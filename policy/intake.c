/* intake - one bounce or complaint taken in (see intake.h)
 *
 * For a delivery status notification or a non-standard bounce each
 * failed recipient is a hard bounce (suppressed at once) or a soft one
 * (counted: suppression.soft_threshold within suppression.soft_window
 * suppresses); for an ARF complaint the complained-about recipient is
 * suppressed for the original sender's domain. When the report names no
 * usable recipient, the envelope recipient's VERP encoding (a route with
 * verp sent the message with MAIL FROM PREFIX+LOCAL=DOMAIN@bounce.domain)
 * names it. Auto-replies and messages that are no bounce change nothing.
 *
 * Order: suppression entries first, then the outcome rows (one
 * transaction, on disk before we return), then the webhook events. A
 * store failure stops there and the caller answers with a temporary
 * failure; the MTA brings the message again and what was written before
 * the failure is written again (a soft bounce may then count twice: the
 * cost of never losing one). */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/json.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/bounce.h"
#include "policy/config.h"
#include "policy/intake.h"
#include "policy/outcome.h"
#include "policy/suppress.h"

#define ADDR_MAX 320

/* One recipient to record */
struct item {
	char addr[ADDR_MAX + 1];
	const struct bounce_rcpt *rc; /* NULL: named by VERP only */
	const char *source;           /* for the webhook: dsn, text, verp, arf */
	const char *reason;
	bool hard;
	int suppressed; /* what the suppression list said: 1 now suppressed */
};

const char *intake_kind_name(enum bounce_kind kind)
{
	switch (kind) {
	case BOUNCE_DSN: return "dsn";
	case BOUNCE_TEXT: return "text";
	case BOUNCE_COMPLAINT: return "complaint";
	case BOUNCE_AUTOREPLY: return "autoreply";
	case BOUNCE_NONE:
	default: return "none";
	}
}

/* usable - a recipient we can record: a plain address (an unreadable one
 * would make the store refuse, and the MTA retry for ever) */
static bool usable(const char *addr, char *out, size_t size)
{
	struct address a;
	const char *err;
	bool ok;

	if (addr == NULL || addr[0] == '\0' || strlen(addr) >= size)
		return false;
	if (address_parse(addr, &a, &err) < 0)
		return false;
	ok = !a.null && a.domain != NULL && a.domain[0] != '[';
	if (ok)
		snprintf(out, size, "%s@%s", a.local, a.domain);
	address_free(&a);
	return ok && strlen(out) < size;
}

/* domain_of - the lowercased domain of addr, or NULL; caller frees */
static char *domain_of(const char *addr)
{
	struct address a;
	const char *err;
	char *d = NULL;

	if (addr != NULL && address_parse(addr, &a, &err) == 0) {
		if (a.domain != NULL && a.domain[0] != '[')
			d = xstrdup(a.domain);
		address_free(&a);
	}
	return d;
}

/* collect - the recipients to record, each with its classification */
static size_t collect(const struct intake_env *env, const struct bounce_report *rep,
                      const char *env_rcpt, struct item **items_r)
{
	char verp[ADDR_MAX + 1];
	bool have_verp = env_rcpt != NULL && bounce_verp_decode(env_rcpt, verp, sizeof(verp)) &&
	                 usable(verp, verp, sizeof(verp));
	const char *src = rep->kind == BOUNCE_DSN    ? "dsn"
	                  : rep->kind == BOUNCE_TEXT ? "text"
	                                             : "arf";
	struct item *v = xcalloc(rep->nrcpts + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < rep->nrcpts; i++) {
		const struct bounce_rcpt *rc = &rep->rcpts[i];
		struct item *it = &v[n];
		it->rc = rc;
		it->reason = rc->cls.reason ? rc->cls.reason : "undefined";
		it->hard = rc->cls.hard;
		it->source = src;
		if (usable(rc->recipient, it->addr, sizeof(it->addr))) {
			n++;
		} else if (have_verp) {
			snprintf(it->addr, sizeof(it->addr), "%s", verp);
			it->source = "verp";
			have_verp = false; /* one recipient per VERP address */
			n++;
		} else {
			log_info("bounce intake: unreadable recipient \"%s\" skipped",
			         rc->recipient ? rc->recipient : "");
		}
	}
	if (n == 0 && have_verp) {
		/* the report names nobody: the VERP address does */
		struct bounce_class cls;
		struct item *it = &v[n++];
		bounce_classify_reply(env->rules, 0, NULL, NULL, &cls);
		snprintf(it->addr, sizeof(it->addr), "%s", verp);
		it->reason = rep->kind == BOUNCE_COMPLAINT ? "feedback" : cls.reason;
		it->hard = rep->kind == BOUNCE_COMPLAINT ? false : cls.hard;
		it->source = "verp";
	}
	*items_r = v;
	return n;
}

/* record_store - the suppression list's word on each item */
static int record_store(const struct intake_env *env, const struct bounce_report *rep,
                        const char *scope, struct item *v, size_t n, long long now, char **err_r)
{
	for (size_t i = 0; i < n; i++) {
		struct item *it = &v[i];
		if (rep->kind == BOUNCE_COMPLAINT)
			it->suppressed = suppress_complaint(env->store, it->addr, scope,
			                                    rep->feedback_type, now, err_r);
		else if (it->hard)
			it->suppressed =
			    suppress_hard_bounce(env->store, it->addr, it->reason, now, err_r);
		else
			it->suppressed =
			    suppress_soft_bounce(env->store, it->addr, it->reason, now, err_r);
		if (it->suppressed < 0)
			return -1;
	}
	return 0;
}

/* record_outcome - one outcome row per item, in one transaction */
static int record_outcome(const struct intake_env *env, const struct bounce_report *rep,
                          const struct item *v, size_t n, long long now_ms, char **err_r)
{
	struct outcome_rec *rows;
	int rc;

	if (env->outcome == NULL || n == 0)
		return 0;
	rows = xcalloc(n, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &v[i];
		struct outcome_rec *r = &rows[i];
		r->time_ms = now_ms;
		r->sender = rep->original_from ? rep->original_from : "";
		r->recipient = it->addr;
		r->code = it->rc ? it->rc->code : 0;
		r->status = it->rc ? it->rc->status : NULL;
		r->reply = it->rc ? it->rc->diagnostic : NULL;
		r->reason = it->reason;
		r->hard = it->hard;
		if (rep->kind == BOUNCE_COMPLAINT) {
			r->result = OUTCOME_COMPLAINT;
			r->source = "complaint";
		} else {
			r->result = it->hard ? OUTCOME_BOUNCED : OUTCOME_DEFERRED;
			r->source = "bounce";
		}
	}
	rc = outcome_write(env->outcome, rows, n, err_r);
	free(rows);
	return rc;
}

/* event_id - 128 random bits in hex */
static void event_id(char *buf, size_t size)
{
	unsigned char r[16];
	static unsigned long seq;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		/* no entropy (very early boot): unique enough for an id */
		unsigned long long t = (unsigned long long)time(NULL);
		memset(r, 0, sizeof(r));
		memcpy(r, &t, sizeof(t));
		seq++;
		memcpy(r + 8, &seq, sizeof(seq) < 8 ? sizeof(seq) : 8);
	}
	for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < size; i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
}

/* event_json - the webhook event of one item; caller frees */
static char *event_json(const struct bounce_report *rep, const struct item *it, const char *scope,
                        long long now)
{
	struct strbuf b = {0};
	char id[33] = "", when[32];
	time_t t = (time_t)now;
	struct tm tm;

	event_id(id, sizeof(id));
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	strbuf_adds(&b, "{");
	json_member_str(&b, "type", rep->kind == BOUNCE_COMPLAINT ? "complaint" : "bounce");
	json_member_str(&b, "id", id);
	json_member_str(&b, "time", when);
	json_member_str(&b, "recipient", it->addr);
	json_member_str(&b, "sender", rep->original_from);
	if (rep->kind == BOUNCE_COMPLAINT) {
		json_member_str(&b, "feedback_type", rep->feedback_type);
		json_member_str(&b, "scope", scope);
	} else {
		json_member_str(&b, "reason", it->reason);
		json_member_bool(&b, "hard", it->hard);
		json_member_str(&b, "status", it->rc ? it->rc->status : NULL);
		if (it->rc != NULL && it->rc->code > 0)
			json_member_int(&b, "code", it->rc->code);
		else
			json_member_str(&b, "code", NULL);
		json_member_str(&b, "diagnostic", it->rc ? it->rc->diagnostic : NULL);
	}
	json_member_str(&b, "source", it->source);
	json_member_str(&b, "original_message_id", rep->original_msgid);
	json_member_bool(&b, "suppressed", it->suppressed == 1);
	strbuf_adds(&b, "}");
	return strbuf_take(&b);
}

int intake_message(const struct intake_env *env, const char *msg, size_t len, const char *env_rcpt,
                   struct intake_result *res, char **err_r)
{
	struct bounce_report rep;
	struct timespec ts;
	struct item *v = NULL;
	char *scope = NULL;
	size_t n = 0;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	memset(&rep, 0, sizeof(rep));
	if (bounce_parse(env->rules, msg, len, &rep) < 0)
		log_warning("bounce intake: message of %zu octets too large to read", len);
	res->kind = rep.kind;
	if (rep.kind == BOUNCE_NONE || rep.kind == BOUNCE_AUTOREPLY) {
		bounce_report_free(&rep);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	n = collect(env, &rep, env_rcpt, &v);
	if (rep.kind == BOUNCE_COMPLAINT)
		scope = domain_of(rep.original_from); /* NULL: every sender */
	if (record_store(env, &rep, scope, v, n, (long long)ts.tv_sec, err_r) < 0 ||
	    record_outcome(env, &rep, v, n, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
	                   err_r) < 0) {
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *json;
		res->recorded++;
		if (v[i].suppressed == 1)
			res->suppressed++;
		log_info("bounce intake: kind=%s to=<%s> reason=%s %s%s%s%s",
		         intake_kind_name(rep.kind), v[i].addr, v[i].reason,
		         rep.kind == BOUNCE_COMPLAINT ? "scope=" : "",
		         rep.kind == BOUNCE_COMPLAINT ? (scope ? scope : "global") : "",
		         rep.kind == BOUNCE_COMPLAINT ? " " : (v[i].hard ? "hard " : "soft "),
		         v[i].suppressed == 1 ? "suppressed" : "counted");
		if (env->recorded != NULL)
			env->recorded(env->ctx, rep.kind, v[i].reason, v[i].hard);
		if (env->event == NULL)
			continue;
		json = event_json(&rep, &v[i], scope, (long long)ts.tv_sec);
		env->event(env->ctx, rep.kind == BOUNCE_COMPLAINT ? "complaint" : "bounce", json);
		free(json);
	}
out:
	free(v);
	free(scope);
	bounce_report_free(&rep);
	return rc;
}
