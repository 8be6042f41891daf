/* relay - the client commands that go through to the smart host
 *
 * Real-time proxy: the client's MAIL opens (or reuses) the upstream
 * session and is answered with what the smart host said to our MAIL;
 * each RCPT likewise; DATA is collected whole, then relayed, and each
 * accepted recipient gets the smart host's final answer. A recipient
 * gets 250 only after the smart host gave 250 for it and for the data;
 * our own trouble or the smart host's silence is always a 4xx. */
#include "autoconf.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/upstream.h"
#include "lib/log.h"
#include "lib/smtp_reply.h"
#include "lib/xalloc.h"
#include "policy/config.h"

/* status_of - log status for a reply code */
static const char *status_of(int code)
{
	return code / 100 == 2 ? "sent" : code / 100 == 4 ? "deferred" : "bounced";
}

/* relay_log - one key=value line per recipient or transaction */
void relay_log(struct client *c, const char *rcpt, const char *status, const char *reply)
{
	struct kvline kv;

	kv_init(&kv);
	kv_addf(&kv, "conn", "%lu", c->id);
	kv_add(&kv, "proto", c->lmtp ? "lmtp" : "smtp");
	kv_addf(&kv, "from", "<%s>", c->txn.from ? c->txn.from : c->pending_mail.addr);
	if (rcpt != NULL)
		kv_addf(&kv, "to", "<%s>", rcpt);
	else
		kv_addf(&kv, "nrcpt", "%zu", c->txn.nrcpts);
	if (c->txn.msg_size > 0)
		kv_addf(&kv, "size", "%zu", c->txn.msg_size);
	kv_add(&kv, "relay", c->up ? upstream_name(c->up) : c->cfg->agent.smarthost);
	kv_add(&kv, "status", status);
	kv_add(&kv, "reply", reply);
	log_info("%s", kv_str(&kv));
	kv_free(&kv);
}

/* relay_quote - a non-2xx smart host reply, quoted for the client */
char *relay_quote(const struct smtp_reply *r, const char *who, const char *relay)
{
	char enh[16], *said = smtp_reply_oneline(r, 400), *line;
	/* 421 closes a session: to the MTA this is only a per-command
	 * temporary failure, the connection to weir-agent stays fine. */
	int code = r->code == 421 ? 451 : r->code;

	line = xasprintf("%d %s %s%ssmart host %s said: %s", code,
			 smtp_reply_enhanced(r, enh, sizeof(enh)), who ? who : "",
			 who ? ": " : "", relay, said);
	free(said);
	return line;
}

/* answer - give the client a reply derived from the smart host's: ok
 * is sent when it is 2xx, else the quoted reply; returns the code */
static int answer(struct client *c, const struct smtp_reply *r, const char *fail,
		  const char *who, const char *ok, char **line_r)
{
	char *line;
	int code;

	if (r == NULL) {
		line = xstrdup(fail);
		code = 451;
	} else if (r->code / 100 == 2) {
		line = xstrdup(ok);
		code = r->code;
	} else {
		line = relay_quote(r, who, upstream_name(c->up));
		code = r->code / 100 == 5 ? r->code : 451;
		if (r->code / 100 != 5 && r->code / 100 != 4) {
			/* 3xx where it makes no sense: our problem, keep the mail */
			free(line);
			line = xasprintf("451 4.4.0 %s: unexpected reply from smart host %s",
					 who ? who : "", upstream_name(c->up));
		}
	}
	client_reply(c, "%s", line);
	if (line_r)
		*line_r = line;
	else
		free(line);
	return code;
}

static void send_mail(struct client *c);

/* mail_done - the smart host answered our MAIL */
static void mail_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct client *c = arg;
	char who[SMTP_PATH_MAX + 3], *line;
	int code;

	snprintf(who, sizeof(who), "<%s>", c->pending_mail.addr);
	code = answer(c, r, fail, who, "250 2.1.0 Ok", &line);
	if (code / 100 == 2) {
		upstream_set_in_txn(c->up, true);
		c->txn.from = xstrdup(c->pending_mail.addr);
		c->txn.body = c->pending_mail.body;
		c->txn.size = c->pending_mail.size;
		c->state = CL_MAIL;
	} else {
		relay_log(c, NULL, status_of(code), line);
	}
	free(line);
	client_done(c);
}

/* opened - the upstream session is ready (or could not be opened) */
static void opened(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct client *c = arg;

	(void)r;
	if (fail != NULL) {
		client_reply(c, "%s", fail);
		relay_log(c, NULL, "deferred", fail);
		client_done(c);
		return;
	}
	send_mail(c);
}

/* reset_done - upstream RSET before a new MAIL */
static void reset_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct client *c = arg;

	if (fail != NULL || r->code / 100 != 2) {
		/* start over on a fresh session */
		upstream_free(c->up);
		c->up = upstream_new(c->agent->base, c->agent->dns, c->cfg);
		upstream_open(c->up, opened, c);
		return;
	}
	upstream_set_in_txn(c->up, false);
	send_mail(c);
}

/* send_mail - MAIL FROM to the smart host */
static void send_mail(struct client *c)
{
	const struct smtp_mail *m = &c->pending_mail;
	char line[SMTP_PATH_MAX + 64];
	int n;

	if (m->body == BODY_8BITMIME && !upstream_has_8bitmime(c->up)) {
		client_reply(c, "550 5.6.3 smart host does not accept 8-bit mail");
		relay_log(c, NULL, "bounced", "550 5.6.3 smart host does not accept 8-bit mail");
		client_done(c);
		return;
	}
	n = snprintf(line, sizeof(line), "MAIL FROM:<%s>", m->addr);
	if (m->size >= 0 && upstream_has_size(c->up))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " SIZE=%lld", m->size);
	if (m->body == BODY_8BITMIME)
		snprintf(line + n, sizeof(line) - (size_t)n, " BODY=8BITMIME");
	upstream_command(c->up, line, mail_done, c);
}

/* relay_mail - the client's MAIL (already checked) */
void relay_mail(struct client *c)
{
	struct agent *a = c->agent;

	if (c->up == NULL)
		c->up = upstream_new(a->base, a->dns, c->cfg);
	if (!upstream_ready(c->up))
		upstream_open(c->up, opened, c);
	else if (upstream_in_txn(c->up))
		upstream_command(c->up, "RSET", reset_done, c);
	else
		send_mail(c);
}

/* rcpt_done - the smart host answered our RCPT */
static void rcpt_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct client *c = arg;
	struct txn *t = &c->txn;
	char who[SMTP_PATH_MAX + 3], *line;
	int code;

	snprintf(who, sizeof(who), "<%s>", c->pending_rcpt);
	code = answer(c, r, fail, who, "250 2.1.5 Ok", &line);
	if (code / 100 == 2) {
		t->rcpts = xrealloc(t->rcpts, (t->nrcpts + 1) * sizeof(*t->rcpts));
		t->rcpts[t->nrcpts++] = xstrdup(c->pending_rcpt);
	} else {
		relay_log(c, c->pending_rcpt, status_of(code), line);
	}
	free(line);
	client_done(c);
}

/* relay_rcpt - the client's RCPT (already checked) */
void relay_rcpt(struct client *c)
{
	char line[SMTP_PATH_MAX + 16];

	if (c->up == NULL || !upstream_ready(c->up)) {
		char *msg = xasprintf("451 4.4.2 <%s>: connection to the smart host was lost",
				      c->pending_rcpt);
		client_reply(c, "%s", msg);
		relay_log(c, c->pending_rcpt, "deferred", msg);
		free(msg);
		c->busy = false;
		return;
	}
	snprintf(line, sizeof(line), "RCPT TO:<%s>", c->pending_rcpt);
	upstream_command(c->up, line, rcpt_done, c);
}

/* data_result - answer every recipient (LMTP) or the transaction (SMTP)
 * with the smart host's final answer, or DATA refused, or lost */
static void data_result(struct client *c, const struct smtp_reply *r, const char *fail)
{
	struct txn *t = &c->txn;
	char *said = r ? smtp_reply_oneline(r, 300) : NULL, *line = NULL;
	int code = 451;

	for (size_t i = 0; i < (c->lmtp ? t->nrcpts : 1); i++) {
		char who[SMTP_PATH_MAX + 3], *ok;
		snprintf(who, sizeof(who), "<%s>", t->rcpts[i]);
		ok = xasprintf("250 2.0.0 %s%srelayed to %s: %s", c->lmtp ? who : "",
			       c->lmtp ? " " : "", upstream_name(c->up), said ? said : "");
		free(line);
		code = answer(c, r, fail, c->lmtp ? who : NULL, ok, &line);
		free(ok);
		if (c->lmtp)
			relay_log(c, t->rcpts[i], status_of(code), said ? said : line);
	}
	if (!c->lmtp)
		for (size_t i = 0; i < t->nrcpts; i++)
			relay_log(c, t->rcpts[i], status_of(code), said ? said : line);
	relay_log(c, NULL, status_of(code), said ? said : line);
	free(said);
	free(line);
	txn_reset(c);
}

/* data_done - upstream callback after the data */
static void data_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct client *c = arg;

	data_result(c, r, fail);
	client_done(c);
}

/* relay_data - the whole message is in: send it */
void relay_data(struct client *c)
{
	if (c->up == NULL || !upstream_ready(c->up)) {
		data_result(c, NULL, "451 4.4.2 connection to the smart host was lost before DATA");
		c->busy = false;
		return;
	}
	upstream_data(c->up, c->txn.msg, data_done, c);
}

/* rset_done - upstream answered RSET: whatever it said, we are reset */
static void rset_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct client *c = arg;

	if (fail != NULL || r->code / 100 != 2) {
		upstream_free(c->up); /* a fresh session at the next MAIL */
		c->up = NULL;
	} else {
		upstream_set_in_txn(c->up, false);
	}
	client_reply(c, "250 2.0.0 Ok");
	client_done(c);
}

/* relay_rset - the client's RSET */
void relay_rset(struct client *c)
{
	txn_reset(c);
	if (c->up != NULL && upstream_ready(c->up) && upstream_in_txn(c->up)) {
		upstream_command(c->up, "RSET", rset_done, c);
		return;
	}
	client_reply(c, "250 2.0.0 Ok");
	c->busy = false;
}
