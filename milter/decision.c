/* decision - apply a policy rule's action and log it
 *
 * One key=value line per decision (rule, action, identity, reply), and
 * one per message at its end (log_message). In dry-run, or with the
 * action "log", the reply that would have been given is logged and the
 * message goes on. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/metrics.h"
#include "milter/session.h"

/* Most recipients named in the per-message log line; the count is
 * always logged in full. */
#define LOG_MAX_RCPTS 20

static const char *const rule_names[] = {
	[RULE_RELAY] = "relay",
	[RULE_ENVELOPE_SENDER] = "envelope_sender",
	[RULE_NULL_SENDER] = "null_sender",
	[RULE_HEADER_FROM] = "header_from",
	[RULE_SPOOFING] = "spoofing",
};

static const char *const action_names[] = {
	[ACTION_ACCEPT] = "accept", [ACTION_REJECT] = "reject", [ACTION_TEMPFAIL] = "tempfail",
	[ACTION_HOLD] = "hold",     [ACTION_LOG] = "log",
};

static int rule_action(const struct weir_config *cfg, enum rule rule)
{
	switch (rule) {
	case RULE_RELAY: return cfg->policy.relay;
	case RULE_ENVELOPE_SENDER: return cfg->policy.envelope_sender;
	case RULE_NULL_SENDER: return cfg->policy.null_sender;
	case RULE_HEADER_FROM: return cfg->policy.header_from;
	case RULE_SPOOFING: return cfg->policy.spoofing;
	}
	return ACTION_REJECT;
}

static void add_context(struct kvline *kv, const struct conn *c)
{
	const struct msg *m = c->msg;

	kv_add(kv, "queue_id", m && m->queue_id ? m->queue_id : "NOQUEUE");
	kv_addf(kv, "conn", "%lu", c->id);
	kv_addf(kv, "client", "%s[%s]", c->client_name, c->client_addr ? c->client_addr : "local");
	if (m != NULL) {
		kv_add(kv, "identity", identity_name(m->identity));
		kv_add(kv, "login", m->login ? m->login : "-");
	}
}

enum mlfi_status decide(struct conn *c, const struct mlfi_io *io, enum rule rule,
			const char *text)
{
	return decide_action(c, io, rule_names[rule], rule_action(c->cfg, rule), "5.7.1", "4.7.1",
			     text, NULL);
}

enum mlfi_status decide_action(struct conn *c, const struct mlfi_io *io, const char *rule,
			       int action, const char *esc_reject, const char *esc_tempfail,
			       const char *text, const char *extra)
{
	bool dry = c->cfg->policy.dry_run;
	bool temp = action == ACTION_TEMPFAIL;
	const char *esc = temp ? esc_tempfail : esc_reject;
	char *reply = xasprintf("%s %s %s", temp ? "451" : "550", esc, text);
	enum mlfi_status st = MLFI_CONTINUE;
	struct kvline kv;

	kv_init(&kv);
	add_context(&kv, c);
	kv_add(&kv, "rule", rule);
	kv_add(&kv, "action", action_names[action]);
	if (extra != NULL)
		kv_append(&kv, extra);
	if (dry)
		kv_add(&kv, "dry_run", "yes");
	if (action == ACTION_ACCEPT)
		kv_add(&kv, "reply", "");
	else if (action == ACTION_LOG)
		kv_addf(&kv, "reply", "would reject: %s", reply);
	else if (dry)
		kv_addf(&kv, "reply", "would %s: %s", action_names[action],
			action == ACTION_HOLD ? text : reply);
	else if (action == ACTION_HOLD)
		kv_addf(&kv, "reply", "hold: %s", text);
	else
		kv_add(&kv, "reply", reply);
	log_info("%s", kv_str(&kv));
	kv_free(&kv);

	if (!dry) {
		switch (action) {
		case ACTION_REJECT:
		case ACTION_TEMPFAIL:
			if (c->msg != NULL)
				c->msg->refused_by = mm_reason(rule);
			if (io->setreply(io->handle, temp ? "451" : "550", esc, text) < 0)
				log_warning("conn=%lu could not set the reply text", c->id);
			st = temp ? MLFI_TEMPFAIL : MLFI_REJECT;
			break;
		case ACTION_HOLD:
			if (c->msg != NULL && c->msg->hold == NULL) {
				c->msg->hold = xasprintf("weir %s: %s", rule, text);
				c->msg->held_by = mm_reason(rule);
			}
			break;
		case ACTION_ACCEPT:
		case ACTION_LOG:
			break;
		}
	}
	free(reply);
	return st;
}

/* count_message - the message's decision in weir_milter_messages_total;
 * a transaction the client gave up ("none") is not a decision */
static void count_message(const struct msg *m, const char *decision)
{
	const char *reason = "none";

	if (strcmp(decision, "none") == 0)
		return;
	if (strcmp(decision, "hold") == 0)
		reason = m->held_by ? m->held_by : "other";
	else if (strcmp(decision, "accept") != 0)
		reason = m->refused_by ? m->refused_by : "other";
	mm_message(decision, reason);
}

void log_message(struct conn *c, const char *decision, const char *reason, const char *extra)
{
	struct msg *m = c->msg;
	struct kvline kv;
	char *list = NULL;
	size_t len = 0;

	kv_init(&kv);
	add_context(&kv, c);
	if (c->helo)
		kv_add(&kv, "helo", c->helo);
	kv_add(&kv, "auth", m->login && m->identity == ID_AUTHENTICATED ? m->login : "-");
	kv_addf(&kv, "from", "<%s>", m->sender ? m->sender : "");
	for (size_t i = 0; i < m->n_rcpts && i < LOG_MAX_RCPTS; i++) {
		size_t n = strlen(m->rcpts[i]);
		list = xrealloc(list, len + n + 4);
		len += (size_t)snprintf(list + len, n + 4, "%s<%s>", i ? "," : "", m->rcpts[i]);
	}
	if (m->n_rcpts > LOG_MAX_RCPTS) {
		list = xrealloc(list, len + 5);
		strcpy(list + len, ",...");
	}
	kv_add(&kv, "rcpts", list ? list : "");
	kv_addf(&kv, "nrcpt", "%zu", m->n_rcpts);
	kv_add(&kv, "decision", decision);
	if (reason)
		kv_add(&kv, "reason", reason);
	if (m->rate_log != NULL)
		kv_add(&kv, "rate", m->rate_log);
	kv_append(&kv, m->spf_log);
	kv_append(&kv, extra);
	log_info("%s", kv_str(&kv));
	kv_free(&kv);
	free(list);
	count_message(m, decision);
}
