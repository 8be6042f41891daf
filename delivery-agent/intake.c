/* intake - bounce intake in weir-agent (see intake.h)
 *
 * Over LMTP intake recipients may share a transaction with recipients to
 * relay: each gets its own answer. Over SMTP one answer covers them all,
 * so the two kinds go in separate transactions (452 4.5.3). The message
 * is taken in once per transaction, for the first intake recipient (its
 * VERP address names the bounced recipient when the report does not);
 * every intake recipient gets the same answer. The writes are
 * synchronous (SQLite, WAL): a few milliseconds on the event loop, once
 * per bounce, so that 250 is only said when the records are on disk. */
#include "autoconf.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/intake.h"
#include "delivery-agent/record.h"
#include "delivery-agent/relay_int.h"
#include "delivery-agent/stats.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/intake.h"

/* has_kind - the transaction has a recipient taken in (intake) or one
 * to relay (!intake) */
static bool has_kind(const struct client *c, bool intake)
{
	for (size_t i = 0; i < c->txn.nrcpts; i++)
		if (c->txn.rcpts[i].intake == intake)
			return true;
	return c->txn.ndests > 0 && !intake;
}

bool intake_in_txn(const struct client *c)
{
	return has_kind(c, true);
}

bool intake_rcpt(struct client *c)
{
	const char *addr = c->pending_rcpt.addr;
	struct rcpt *rc;

	if (!record_bounce_domain(c->cfg, addr))
		return false;
	if (c->nflight > 0) {
		/* after the replies in flight, so that the recipients stay
		 * in the order of their 250s (LMTP answers in that order) */
		c->rcpt_deferred = true;
		return true;
	}
	if (!c->lmtp && has_kind(c, false)) {
		client_reply(c,
		             "452 4.5.3 <%s>: bounce intake and mail to relay go in separate "
		             "transactions",
		             addr);
		c->busy = false;
		return true;
	}
	rc = relay_add_rcpt(c, &c->pending_rcpt, NULL);
	rc->intake = true;
	rc->lim = NULL;
	client_reply(c, "250 2.1.5 <%s>: bounce intake", addr);
	c->busy = false;
	return true;
}

/* unstuffed - the message as sent (dot-stuffing undone); caller frees */
static char *unstuffed(struct evbuffer *msg, size_t *len_r)
{
	size_t len = evbuffer_get_length(msg), o = 0;
	char *in = xmalloc(len + 1), *out = xmalloc(len + 1);
	bool bol = true;

	evbuffer_copyout(msg, in, len);
	for (size_t i = 0; i < len; i++) {
		if (!(bol && in[i] == '.'))
			out[o++] = in[i];
		bol = in[i] == '\n';
	}
	out[o] = '\0';
	free(in);
	*len_r = o;
	return out;
}

/* count_recorded - intake_env.recorded: the metrics of one recipient */
static void count_recorded(void *ctx, enum bounce_kind kind, const char *reason, bool hard)
{
	struct agent *a = ctx;

	stats_bounce(a->stats, reason != NULL ? reason : "undefined",
	             kind == BOUNCE_COMPLAINT ? "complaint"
	             : hard                   ? "hard"
	                                      : "soft");
}

/* take_in - process the message; the answer line for rcpt (caller frees) */
static char *take_in(struct client *c, const char *rcpt, int *code_r)
{
	struct agent *a = c->agent;
	struct intake_env env = {
	    .cfg = c->cfg, .event = record_webhook, .recorded = count_recorded, .ctx = a};
	struct intake_result res;
	char *msg, *err = NULL, *line;
	size_t len;
	int rc;

	*code_r = 451;
	if (c->cfg->outcome.db[0] != '\0' && a->outcome == NULL) {
		log_error("conn=%lu bounce intake: the outcome log (%s) is not open", c->id,
		          c->cfg->outcome.db);
		return xstrdup("451 4.3.0 bounce not recorded: outcome log unavailable, try "
		               "again later");
	}
	if ((env.store = record_store(c->cfg, &err)) == NULL) {
		log_error("conn=%lu bounce intake: suppression list: %s", c->id, err);
		free(err);
		return xstrdup("451 4.3.0 bounce not recorded: suppression list unavailable, "
		               "try again later");
	}
	env.rules = record_rules(c->cfg);
	env.outcome = a->outcome;
	msg = unstuffed(c->txn.msg, &len);
	rc = intake_message(&env, msg, len, rcpt, &res, &err);
	free(msg);
	if (rc < 0) {
		log_error("conn=%lu bounce intake: %s", c->id, err);
		free(err);
		return xstrdup("451 4.3.0 bounce not recorded: local store error, try again later");
	}
	log_info("conn=%lu bounce intake to=<%s> kind=%s recorded=%zu suppressed=%zu", c->id, rcpt,
	         intake_kind_name(res.kind), res.recorded, res.suppressed);
	*code_r = 250;
	if (res.recorded == 0)
		line = xasprintf("250 2.0.0 accepted, nothing recorded (%s)",
		                 intake_kind_name(res.kind));
	else
		line = xasprintf("250 2.0.0 %s recorded for %zu recipient%s",
		                 intake_kind_name(res.kind), res.recorded,
		                 res.recorded == 1 ? "" : "s");
	return line;
}

void intake_data(struct client *c)
{
	struct txn *t = &c->txn;
	char *line = NULL;
	int code = 451;

	for (size_t i = 0; i < t->nrcpts; i++) {
		struct rcpt *rc = &t->rcpts[i];
		if (!rc->intake)
			continue;
		if (line == NULL)
			line = take_in(c, rc->addr, &code);
		free(rc->line);
		rc->code = code;
		/* LMTP: each recipient's line names it */
		rc->line =
		    c->lmtp ? xasprintf("%.9s <%s>: %s", line, rc->addr, line + 10) : xstrdup(line);
	}
	free(line);
}
