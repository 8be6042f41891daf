/* relay_data - the end of DATA: what goes to each destination and the
 * answers (see relay.c for the whole picture). With routes by login the
 * recipients accepted provisionally are routed here, now that the
 * login (agent.login_header, taken out of the message) is known; every
 * destination with accepted recipients gets the data once, and the
 * client is answered when the last one has answered: per recipient over
 * LMTP, once over SMTP. */
#include "autoconf.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/dest.h"
#include "delivery-agent/intake.h"
#include "delivery-agent/record.h"
#include "delivery-agent/relay_int.h"
#include "delivery-agent/throttle.h"
#include "delivery-agent/verp.h"
#include "lib/log.h"
#include "lib/smtp_reply.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

/* take_login - remove every header field called name from the message
 * (its header section: up to the first empty line) and return the
 * first one's value, trimmed (caller frees; NULL when there was none) */
static char *take_login(struct evbuffer *msg, const char *name)
{
	size_t len = evbuffer_get_length(msg), nlen = strlen(name), pos = 0;
	const char *buf = (const char *)evbuffer_pullup(msg, (ev_ssize_t)len);
	struct evbuffer *out;
	char *login = NULL;
	bool found = false;

	if (len == 0)
		return NULL;
	out = evbuffer_new();
	while (pos < len) {
		const char *eol = memchr(buf + pos, '\n', len - pos);
		size_t end = eol ? (size_t)(eol - buf) + 1 : len, fend = end;
		if (end - pos <= 2 && buf[pos] == '\r')
			break; /* the empty line: the body follows */
		if (buf[pos] == '\r' || buf[pos] == '\n')
			break;
		/* the field with its continuation lines */
		while (fend < len && (buf[fend] == ' ' || buf[fend] == '\t')) {
			const char *e = memchr(buf + fend, '\n', len - fend);
			fend = e ? (size_t)(e - buf) + 1 : len;
		}
		if (fend - pos > nlen && strncasecmp(buf + pos, name, nlen) == 0 &&
		    (buf[pos + nlen] == ':' ||
		     ((buf[pos + nlen] == ' ' || buf[pos + nlen] == '\t') &&
		      memchr(buf + pos + nlen, ':', fend - pos - nlen) != NULL))) {
			if (!found) {
				const char *v = memchr(buf + pos, ':', fend - pos) + 1;
				size_t vl = (size_t)(buf + fend - v);
				char *t = xstrndup(v, vl), *p = t, *q;
				for (q = t; *q; q++)
					if (*q == '\r' || *q == '\n' || *q == '\t')
						*q = ' ';
				while (*p == ' ')
					p++;
				for (q = p + strlen(p); q > p && q[-1] == ' '; q--)
					*(q - 1) = '\0';
				if (*p != '\0')
					login = xstrdup(p);
				free(t);
				found = true;
			}
		} else {
			evbuffer_add(out, buf + pos, fend - pos);
		}
		pos = fend;
	}
	if (!found) {
		evbuffer_free(out);
		return NULL;
	}
	evbuffer_add(out, buf + pos, len - pos);
	evbuffer_drain(msg, len);
	evbuffer_add_buffer(msg, out);
	evbuffer_free(out);
	return login;
}

static void dest_finished(struct client *c);

/* feed_dest - a reply that concerns the recipients of d (MAIL refused;
 * after DATA: those it accepted): once to each of their destination
 * limiters, and a success when the data was accepted */
static void feed_dest(struct client *c, struct dest *d, const struct smtp_reply *r, bool data)
{
	struct txn *t = &c->txn;
	bool delivered = data && r != NULL && r->code / 100 == 2;

	for (size_t i = 0; i < t->nrcpts; i++) {
		struct throttle_limiter *l = t->rcpts[i].lim;
		bool seen = false;
		if (t->rcpts[i].dest != d || l == NULL || (data && !t->rcpts[i].upstream_ok))
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = t->rcpts[j].dest == d && t->rcpts[j].lim == l &&
			       (!data || t->rcpts[j].upstream_ok);
		if (seen)
			continue;
		throttle_feed(c, l, r);
		if (delivered)
			throttle_delivered(c, l);
	}
}

/* data_done - a destination's answer after the data */
static void data_done(struct dest *d, const struct smtp_reply *r, const char *fail)
{
	struct client *c = relay_client_of(d);
	struct txn *t = &c->txn;
	char *said = r ? smtp_reply_oneline(r, 300) : NULL;

	feed_dest(c, d, r, true);
	for (size_t i = 0; i < t->nrcpts; i++) {
		struct rcpt *rc = &t->rcpts[i];
		char who[SMTP_PATH_MAX + 3], *ok;
		if (rc->dest != d || !rc->upstream_ok)
			continue;
		snprintf(who, sizeof(who), "<%s>", rc->addr);
		ok = xasprintf("250 2.0.0 %s%srelayed to %s: %s", c->lmtp ? who : "",
		               c->lmtp ? " " : "", dest_name(d), said ? said : "");
		free(rc->line);
		rc->line =
		    relay_outcome(r, fail, c->lmtp ? who : NULL, ok, dest_name(d), &rc->code);
		free(ok);
	}
	free(said);
	dest_finished(c);
}

static void prov_next(struct dest *d);

/* prov_rcpt_done - the destination answered a provisional recipient */
static void prov_rcpt_done(struct dest *d, const struct smtp_reply *r, const char *fail)
{
	struct client *c = relay_client_of(d);
	struct dest_work *w = dest_work(d);
	struct rcpt *rc = &c->txn.rcpts[w->rcpts[w->next++]];
	char who[SMTP_PATH_MAX + 3];

	snprintf(who, sizeof(who), "<%s>", rc->addr);
	throttle_feed(c, rc->lim, r);
	free(rc->line);
	rc->line = relay_outcome(r, fail, who, "250 2.1.5 Ok", dest_name(d), &rc->code);
	if (rc->code / 100 == 2) {
		rc->upstream_ok = true;
		w->accepted++;
		free(rc->line);
		rc->line = NULL;
	}
	if (r == NULL || !dest_connected(d)) {
		/* the session is gone: no replies come for the rest */
		char *why = r ? smtp_reply_oneline(r, 200) : xstrdup(fail ? fail : "");
		for (; w->next < w->n; w->next++) {
			struct rcpt *o = &c->txn.rcpts[w->rcpts[w->next]];
			free(o->line);
			o->code = 451;
			o->line = xasprintf("451 4.4.2 <%s>: connection to %s was lost (%s)",
			                    o->addr, dest_name(d), why);
		}
		w->sent = w->n;
		free(why);
	}
	if (w->next < w->sent)
		return; /* more replies to come */
	prov_next(d);
}

/* smtp_partial - SMTP, routed at end of DATA, some recipients refused:
 * one answer cannot tell them apart, so nothing is sent */
static void smtp_partial(struct client *c, struct dest *d)
{
	struct txn *t = &c->txn;
	const struct rcpt *first = NULL;
	bool all_5xx = true;

	for (size_t i = 0; i < t->nrcpts; i++) {
		if (t->rcpts[i].upstream_ok || t->rcpts[i].dest != d)
			continue;
		if (first == NULL)
			first = &t->rcpts[i];
		all_5xx = all_5xx && t->rcpts[i].code / 100 == 5;
	}
	if (dest_work(d)->accepted == 0 && all_5xx)
		t->smtp_line = xstrdup(first->line);
	else
		t->smtp_line = xasprintf("451 4.5.3 %s refused some recipients (%s); send them "
		                         "one per transaction, or over LMTP",
		                         dest_name(d), first->line);
}

/* prov_next - the next provisional recipient, then the data */
static void prov_next(struct dest *d)
{
	struct client *c = relay_client_of(d);
	struct dest_work *w = dest_work(d);

	if (w->next < w->n && dest_state(d) == D_OPEN) {
		/* all at once when the upstream pipelines, else one by one */
		size_t upto = dest_pipelining(d) ? w->n : w->next + 1;
		for (; w->sent < upto; w->sent++)
			dest_rcpt(d, &c->txn.rcpts[w->rcpts[w->sent]], prov_rcpt_done);
		return;
	}
	if (!c->lmtp && w->accepted < w->n) {
		smtp_partial(c, d);
		dest_finished(c);
		return;
	}
	if (w->accepted == 0) {
		dest_finished(c);
		return;
	}
	dest_data(d, c->txn.msg, data_done);
}

/* prov_opened - a destination of provisional recipients is open */
static void prov_opened(struct dest *d)
{
	struct client *c = relay_client_of(d);
	struct dest_work *w = dest_work(d);

	if (dest_state(d) != D_OPEN) {
		feed_dest(c, d, dest_fail_reply(d), false);
		for (size_t i = 0; i < w->n; i++) {
			struct rcpt *rc = &c->txn.rcpts[w->rcpts[i]];
			free(rc->line);
			rc->line = dest_fail_line(d, rc->addr);
			rc->code = dest_fail_code(d);
		}
		if (!c->lmtp)
			c->txn.smtp_line = dest_fail_line(d, NULL);
		dest_finished(c);
		return;
	}
	prov_next(d);
}

/* route_provisional - end of DATA with routes by login: route each
 * recipient now that the login is known */
static void route_provisional(struct client *c)
{
	struct txn *t = &c->txn;

	for (size_t i = 0; i < t->nrcpts; i++) {
		struct rcpt *rc = &t->rcpts[i];
		char *rdom = relay_domain_of(rc->addr);
		const struct route *r = routes_find(c->cfg, t->sender_domain, rdom, t->login);
		struct dest *d;
		struct dest_work *w;

		if (rc->intake) {
			free(rdom);
			continue; /* answered by intake_data */
		}
		if (r == NULL) {
			rc->code = 451;
			rc->line =
			    xasprintf("451 4.3.0 <%s>: no route: check agent.routes", rc->addr);
			free(rdom);
			continue;
		}
		if ((d = relay_find_dest(t, r, r->mx ? rdom : NULL)) == NULL) {
			d = verp_dest_new(c, r, r->mx ? rdom : NULL, rc->addr);
			relay_add_dest(t, d);
			if (r->mx)
				dest_max_messages(d, throttle_messages_per_session(c, rc->lim));
		}
		free(rdom);
		rc->dest = d;
		w = dest_work(d);
		w->rcpts = xrealloc(w->rcpts, (w->n + 1) * sizeof(*w->rcpts));
		w->rcpts[w->n++] = i;
	}
}

/* answer_all - every destination is done: the replies, in order; the
 * caller goes on with the client's input unless async */
static void answer_all(struct client *c, bool async)
{
	struct txn *t = &c->txn;
	const char *line = NULL;
	int code = 451;

	for (size_t i = 0; i < t->nrcpts; i++) {
		struct rcpt *rc = &t->rcpts[i];
		if (rc->line == NULL) {
			rc->code = 451;
			rc->line =
			    xasprintf("451 4.3.0 <%s>: not relayed (internal error)", rc->addr);
		}
	}
	/* SMTP: one answer for all; each recipient is logged with it */
	if (!c->lmtp)
		line = t->smtp_line ? t->smtp_line : t->rcpts[0].line;
	for (size_t i = 0; i < t->nrcpts; i++) {
		struct rcpt *rc = &t->rcpts[i];
		const char *said = c->lmtp ? rc->line : line;
		if (c->lmtp)
			client_reply(c, "%s", rc->line);
		relay_log_line(c, rc->addr, rc->dest, relay_status_of(atoi(said)), said);
	}
	if (!c->lmtp) {
		code = atoi(line);
		client_reply(c, "%s", line);
	}
	relay_log_line(c, NULL, NULL, c->lmtp ? "done" : relay_status_of(code),
	               c->lmtp ? "-" : line);
	txn_reset(c);
	if (async)
		client_done(c);
	else
		c->busy = false;
}

/* dest_finished - one destination less to wait for */
static void dest_finished(struct client *c)
{
	if (--c->txn.pending == 0)
		answer_all(c, true);
}

/* relay_data - the whole message is in: route what waits for it, and
 * send it to every destination with accepted recipients */
void relay_data(struct client *c)
{
	struct txn *t = &c->txn;
	size_t n = 0;

	if (c->cfg->agent.login_header[0] != '\0')
		t->login = take_login(t->msg, c->cfg->agent.login_header);
	t->queue_id = record_queue_id(t->msg);
	intake_data(c);
	if (t->provisional)
		route_provisional(c);
	for (size_t i = 0; i < t->ndests; i++)
		if (t->provisional ? dest_work(t->dests[i])->n > 0
		                   : dest_work(t->dests[i])->accepted > 0)
			n++;
	if (n == 0) {
		/* nothing to send (every recipient was refused in routing) */
		answer_all(c, false);
		return;
	}
	t->pending = n;
	for (size_t i = 0; i < t->ndests; i++) {
		struct dest *d = t->dests[i];
		if (t->provisional) {
			if (dest_work(d)->n > 0)
				dest_open(d, prov_opened);
		} else if (dest_work(d)->accepted > 0) {
			dest_data(d, t->msg, data_done);
		}
	}
}
