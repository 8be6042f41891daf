/* relay - the client commands that go through to the upstreams
 *
 * Each recipient is routed (policy/routes.c: sender domain, recipient
 * domain, default) to a destination: a route's smart host, or for an mx
 * route the recipient domain's MX hosts (dest.c). When no route depends
 * on the recipient, the one destination is chosen at MAIL and the
 * client's MAIL is answered with the upstream's answer to ours, as a
 * real-time proxy; otherwise MAIL is answered here and each destination
 * gets MAIL at its first recipient. Each RCPT is answered with what its
 * destination said. Over SMTP a transaction has one destination (a
 * recipient for another gets 452 4.5.3); over LMTP any number, each
 * recipient answered with its own destination's outcome after DATA.
 * With routes by login the login is in agent.login_header, i.e. in the
 * message: recipients are accepted provisionally and everything is
 * routed and relayed at the end of DATA.
 *
 * The promise: a recipient gets 250 only after its upstream gave 250
 * for it and for the data; our own trouble, timeouts, lost connections,
 * DNS and TLS failures are 4xx; an upstream's 5xx is passed on quoted.
 * DATA goes to each destination once: nothing is relayed twice.
 *
 * Before routing, a recipient in bounce.domains is taken in here
 * (intake.c), and with suppression.agent a suppressed recipient is
 * refused (record.c). A VERP route gives each recipient a destination
 * of its own (verp.c): over SMTP a second one gets 452 4.5.3. Every
 * answer about a recipient is logged and recorded in the outcome log
 * (relay_log_line). */
#include "autoconf.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/dest.h"
#include "delivery-agent/intake.h"
#include "delivery-agent/pool.h"
#include "delivery-agent/record.h"
#include "delivery-agent/relay_int.h"
#include "delivery-agent/stats.h"
#include "delivery-agent/throttle.h"
#include "delivery-agent/upstream.h"
#include "delivery-agent/verp.h"
#include "lib/log.h"
#include "lib/smtp_reply.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

/* relay_status_of - log status for a reply code */
const char *relay_status_of(int code)
{
	return code / 100 == 2 ? "sent" : code / 100 == 4 ? "deferred" : "bounced";
}

/* log_relay - the relay named in a log line */
static const char *log_relay(const struct client *c, const struct dest *d)
{
	if (d == NULL && c->txn.ndests > 0)
		d = c->txn.dests[0];
	if (d != NULL)
		return dest_name(d);
	return c->cfg->agent.nroutes > 0 ? c->cfg->agent.routes[0].name : "-";
}

void relay_log_line(struct client *c, const char *rcpt, const struct dest *d, const char *status,
                    const char *reply)
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
	if (d != NULL || c->txn.ndests > 0)
		kv_add(&kv, "route", dest_route(d ? d : c->txn.dests[0])->name);
	kv_add(&kv, "relay", log_relay(c, d));
	if (c->txn.login != NULL)
		kv_add(&kv, "login", c->txn.login);
	kv_add(&kv, "status", status);
	kv_add(&kv, "reply", reply);
	log_info("%s", kv_str(&kv));
	kv_free(&kv);
	if (rcpt != NULL)
		record_answer(c, rcpt, d, reply);
}

/* relay_log - one key=value line per recipient or transaction */
void relay_log(struct client *c, const char *rcpt, const char *status, const char *reply)
{
	relay_log_line(c, rcpt, NULL, status, reply);
}

/* relay_quote - a non-2xx upstream reply, quoted for the client */
char *relay_quote(const struct smtp_reply *r, const char *who, const char *relay)
{
	char enh[16], *said = smtp_reply_oneline(r, 400), *line;
	/* 421 closes a session: to the MTA this is only a per-command
	 * temporary failure, the connection to weir-agent stays fine. */
	int code = r->code == 421 ? 451 : r->code;

	line = xasprintf("%d %s %s%ssmart host %s said: %s", code,
	                 smtp_reply_enhanced(r, enh, sizeof(enh)), who ? who : "", who ? ": " : "",
	                 relay, said);
	free(said);
	return line;
}

/* relay_outcome - the line for a client from an upstream reply (ok when it is
 * 2xx) or a failure line; *code_r its code */
char *relay_outcome(const struct smtp_reply *r, const char *fail, const char *who, const char *ok,
                    const char *relay, int *code_r)
{
	if (r == NULL) {
		*code_r = 451;
		return xstrdup(fail);
	}
	if (r->code / 100 == 2) {
		*code_r = r->code;
		return xstrdup(ok);
	}
	if (r->code / 100 == 5 || r->code / 100 == 4) {
		*code_r = r->code / 100 == 5 ? r->code : 451;
		return relay_quote(r, who, relay);
	}
	/* 1xx/3xx where it makes no sense: our problem, keep the mail */
	*code_r = 451;
	return xasprintf("451 4.4.0 %s%sunexpected reply from smart host %s", who ? who : "",
	                 who ? ": " : "", relay);
}

/* relay_domain_of - the lowercased domain of an address, or NULL */
char *relay_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *d;

	if (at == NULL || at[1] == '\0')
		return NULL;
	d = xstrdup(at + 1);
	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

void relay_add_dest(struct txn *t, struct dest *d)
{
	t->dests = xrealloc(t->dests, (t->ndests + 1) * sizeof(*t->dests));
	t->dests[t->ndests++] = d;
}

/* relay_find_dest - the transaction's destination for route r (and domain) */
struct dest *relay_find_dest(struct txn *t, const struct route *r, const char *domain)
{
	for (size_t i = 0; i < t->ndests; i++)
		if (dest_is(t->dests[i], r, domain))
			return t->dests[i];
	return NULL;
}

/* relay_txn_end - give sessions back; forget the routing */
void relay_txn_end(struct client *c)
{
	struct txn *t = &c->txn;

	throttle_txn_end(c);
	c->rcpt_lim = NULL;
	for (size_t i = 0; i < t->ndests; i++)
		dest_free(t->dests[i]);
	free(t->dests);
	t->dests = NULL;
	t->ndests = 0;
	c->rcpt_dest = NULL;
	for (size_t i = 0; i < c->nflight; i++)
		free(c->flight[i].after);
	c->nflight = 0;
	c->rcpt_deferred = false;
	for (size_t i = 0; i < t->nrcpts; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].line);
	}
	free(t->rcpts);
	t->rcpts = NULL;
	t->nrcpts = 0;
	free(t->sender_domain);
	free(t->sig_domain);
	free(t->login);
	free(t->smtp_line);
	free(t->queue_id);
	t->sender_domain = t->sig_domain = t->login = t->smtp_line = t->queue_id = NULL;
}

/* relay_add_rcpt - a recipient answered 2xx */
struct rcpt *relay_add_rcpt(struct client *c, const struct smtp_rcpt *params, struct dest *d)
{
	struct txn *t = &c->txn;
	struct rcpt *r;

	t->rcpts = xrealloc(t->rcpts, (t->nrcpts + 1) * sizeof(*t->rcpts));
	r = &t->rcpts[t->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(params->addr);
	r->params = *params;
	r->dest = d;
	r->lim = c->rcpt_lim;
	return r;
}

/* begin_txn - MAIL accepted: the transaction's fields */
static void begin_txn(struct client *c)
{
	struct txn *t = &c->txn;

	t->from = xstrdup(c->pending_mail.addr);
	t->mail_ms = stats_now_ms();
	t->mail = c->pending_mail;
	t->sender_domain = relay_domain_of(c->pending_mail.addr);
	t->provisional = routes_use_login(c->cfg);
}

struct client *relay_client_of(struct dest *d)
{
	return dest_client(d);
}

/* early_opened - the destination chosen at MAIL answered our MAIL */
static void early_opened(struct dest *d)
{
	struct client *c = relay_client_of(d);
	char *line;

	if (dest_state(d) == D_OPEN) {
		c->state = CL_MAIL;
		client_reply(c, "250 2.1.0 Ok");
		client_done(c);
		return;
	}
	line = dest_fail_line(d, c->pending_mail.addr);
	client_reply(c, "%s", line);
	relay_log_line(c, NULL, d, relay_status_of(dest_fail_code(d)), line);
	free(line);
	txn_reset(c); /* frees d */
	client_done(c);
}

/* relay_mail - the client's MAIL (already checked) */
void relay_mail(struct client *c)
{
	struct txn *t = &c->txn;
	const struct route *r;
	struct dest *d;

	begin_txn(c);
	/* with bounce intake a recipient may need no upstream at all */
	if (routes_depend_on_rcpt(c->cfg) || c->cfg->bounce.domains.n > 0) {
		c->state = CL_MAIL;
		client_reply(c, "250 2.1.0 Ok");
		c->busy = false;
		return;
	}
	r = routes_find(c->cfg, t->sender_domain, NULL, NULL);
	if (r == NULL) {
		client_reply(c, "451 4.3.0 no route for this mail: check agent.routes");
		txn_reset(c);
		c->busy = false;
		return;
	}
	t->early = true;
	d = dest_new(c, r, NULL);
	relay_add_dest(t, d);
	dest_open(d, early_opened);
}

/* flight_answer - the first RCPT in flight gets its answer (a reply, or
 * fail with r NULL); then the replies held behind it go out */
static void flight_answer(struct client *c, struct dest *d, const struct smtp_reply *r,
                          const char *fail)
{
	struct flight *f = &c->flight[0];
	char who[SMTP_PATH_MAX + 3], *line;
	int code;

	snprintf(who, sizeof(who), "<%s>", f->rcpt.addr);
	throttle_feed(c, f->lim, r);
	line = relay_outcome(r, fail, who, "250 2.1.5 Ok", dest_name(d), &code);
	c->flight_reply = true;
	if (!c->closing)
		client_reply(c, "%s", line);
	c->flight_reply = false;
	if (code / 100 == 2) {
		struct rcpt *rc = relay_add_rcpt(c, &f->rcpt, d);
		rc->lim = f->lim;
		rc->upstream_ok = true;
		dest_work(d)->accepted++;
	} else {
		relay_log_line(c, f->rcpt.addr, d, relay_status_of(code), line);
	}
	free(line);
	if (f->after != NULL && !c->closing)
		bufferevent_write(c->bev, f->after, strlen(f->after));
	free(f->after);
	c->nflight--;
	memmove(c->flight, c->flight + 1, c->nflight * sizeof(*c->flight));
}

static void rcpt_go_on(struct client *c);

/* rcpt_done - the destination answered the first RCPT in flight */
static void rcpt_done(struct dest *d, const struct smtp_reply *r, const char *fail)
{
	struct client *c = relay_client_of(d);

	flight_answer(c, d, r, fail);
	if (r == NULL || !dest_connected(d)) {
		/* the session is gone: no replies come for the rest */
		char *why = r ? smtp_reply_oneline(r, 200) : xstrdup(fail ? fail : "");
		while (c->nflight > 0) {
			char *lost = xasprintf("451 4.4.2 <%s>: connection to %s was lost (%s)",
			                       c->flight[0].rcpt.addr, dest_name(d), why);
			flight_answer(c, d, NULL, lost);
			free(lost);
		}
		free(why);
	}
	if (c->nflight > 0)
		return;
	if (c->rcpt_deferred) {
		c->rcpt_deferred = false;
		relay_rcpt(c);
		rcpt_go_on(c);
		return;
	}
	client_done(c);
}

/* rcpt_send - RCPT to an open destination (in flight), else its
 * failure at once */
static void rcpt_send(struct client *c, struct dest *d)
{
	char *line;

	if (dest_state(d) == D_OPEN) {
		struct rcpt tmp = {.addr = c->pending_rcpt.addr, .params = c->pending_rcpt};
		struct flight *f;
		if (c->nflight == c->flight_size) {
			c->flight_size = c->flight_size ? 2 * c->flight_size : 8;
			c->flight = xrealloc(c->flight, c->flight_size * sizeof(*c->flight));
		}
		f = &c->flight[c->nflight++];
		f->rcpt = c->pending_rcpt;
		f->dest = d;
		f->lim = c->rcpt_lim;
		f->after = NULL;
		dest_rcpt(d, &tmp, rcpt_done);
		/* with PIPELINING the next RCPT may follow before the reply */
		if (dest_pipelining(d) && c->nflight < RELAY_FLIGHT_MAX)
			c->busy = false;
		return;
	}
	line = dest_fail_line(d, c->pending_rcpt.addr);
	client_reply(c, "%s", line);
	relay_log_line(c, c->pending_rcpt.addr, d, relay_status_of(dest_fail_code(d)), line);
	free(line);
	c->busy = false;
}

/* rcpt_go_on - after relay_rcpt from the event loop: read on when it
 * does not wait */
static void rcpt_go_on(struct client *c)
{
	if (!c->busy) {
		c->busy = true;
		client_done(c);
	}
}

/* rcpt_opened - the recipient's destination is open (or failed) */
static void rcpt_opened(struct dest *d)
{
	struct client *c = relay_client_of(d);

	/* once per destination: later RCPTs for it get the same failure */
	if (dest_state(d) == D_FAILED)
		throttle_feed(c, c->rcpt_lim, dest_fail_reply(d));
	rcpt_send(c, d);
	rcpt_go_on(c);
}

static void rcpt_route(struct client *c, bool admitted);

/* rcpt_admitted - the throttle let pending_rcpt wait and now decided */
static void rcpt_admitted(struct client *c, bool go)
{
	if (!go) {
		client_done(c); /* answered 451/452: read on */
		return;
	}
	rcpt_route(c, true);
	rcpt_go_on(c);
}

/* rcpt_provisional - routes by login: accepted now, routed after DATA;
 * over SMTP only recipients that go where the first one goes whatever
 * the login. The throttle admits the recipient here, with the limiters
 * that do not depend on the login (destination, sender): here it may
 * wait without holding anything up but this client, and a 451 goes to
 * this very recipient. The route limiter is not applied to routes by
 * login: the route is known only at the end of DATA, where waiting or
 * refusing would have to happen for recipients already answered 250. */
static void rcpt_provisional(struct client *c, const char *rdom, bool admitted)
{
	struct txn *t = &c->txn;
	unsigned long long sig = 0;
	const char *sd = NULL;

	if (!c->lmtp) {
		sig = routes_signature(c->cfg, t->sender_domain, rdom);
		sd = routes_any_mx(c->cfg) ? rdom : NULL;
		if (t->nrcpts > 0 && t->from[0] != '\0' && routes_verp_in(c->cfg, sig | t->sig)) {
			client_reply(c, "452 4.5.3 <%s>: VERP route: one recipient per transaction",
			             c->pending_rcpt.addr);
			c->busy = false;
			return;
		}
		if (t->nrcpts > 0 && (sig != t->sig || (sd == NULL) != (t->sig_domain == NULL) ||
		                      (sd != NULL && strcmp(sd, t->sig_domain) != 0))) {
			client_reply(c,
			             "452 4.5.3 <%s>: recipients for another destination: send "
			             "them in another transaction",
			             c->pending_rcpt.addr);
			c->busy = false;
			return;
		}
	}
	if (!admitted) {
		switch (throttle_admit(c, c->pending_rcpt.addr, NULL, rdom, true, rcpt_admitted,
		                       &c->rcpt_lim)) {
		case ADMIT_GO: break;
		case ADMIT_WAIT: return;
		case ADMIT_LATER: /* not with may_wait */
		case ADMIT_REFUSED:
		default: c->busy = false; return;
		}
	}
	if (!c->lmtp && t->nrcpts == 0) {
		t->sig = sig;
		t->sig_domain = sd ? xstrdup(sd) : NULL;
	}
	relay_add_rcpt(c, &c->pending_rcpt, NULL);
	client_reply(c, "250 2.1.5 Ok, queued for routing");
	c->busy = false;
}

/* rcpt_admit - the throttle's word on pending_rcpt before it goes to
 * route r: true to go on now. With RCPTs in flight it must not wait (the
 * flight's replies would be answered while this RCPT, read after them,
 * waits, and reading on would be wrong): a RCPT that would have to wait
 * is deferred until the flight has landed, like a RCPT for another
 * destination, and asked again then, when it may wait; nothing is
 * committed meanwhile, so replies stay in the order of the commands. */
static bool rcpt_admit(struct client *c, const struct route *r, const char *rdom)
{
	switch (throttle_admit(c, c->pending_rcpt.addr, r->name, rdom, c->nflight == 0,
	                       rcpt_admitted, &c->rcpt_lim)) {
	case ADMIT_GO: return true;
	case ADMIT_WAIT: return false; /* rcpt_admitted follows; c stays busy */
	case ADMIT_LATER: c->rcpt_deferred = true; return false;
	case ADMIT_REFUSED:
	default: c->busy = false; return false;
	}
}

/* rcpt_route - route pending_rcpt, let the throttle admit it (unless
 * admitted already), send it to its destination */
static void rcpt_route(struct client *c, bool admitted)
{
	struct txn *t = &c->txn;
	char *rdom = relay_domain_of(c->pending_rcpt.addr);
	const struct route *r;
	struct dest *d = NULL;

	if (t->provisional) {
		rcpt_provisional(c, rdom, admitted);
		free(rdom);
		return;
	}
	if (t->early) {
		d = t->dests[0];
		r = dest_route(d);
	} else if ((r = routes_find(c->cfg, t->sender_domain, rdom, NULL)) == NULL) {
		client_reply(c, "451 4.3.0 <%s>: no route: check agent.routes",
		             c->pending_rcpt.addr);
		free(rdom);
		c->busy = false;
		return;
	} else if (!c->lmtp && t->ndests > 0 && verp_applies(c, r)) {
		client_reply(c,
		             "452 4.5.3 <%s>: route %s sends with VERP: one recipient per "
		             "transaction",
		             c->pending_rcpt.addr, r->name);
		free(rdom);
		c->busy = false;
		return;
	} else if ((d = relay_find_dest(t, r, r->mx ? rdom : NULL)) == NULL && !c->lmtp &&
	           t->ndests > 0) {
		client_reply(c,
		             "452 4.5.3 <%s>: recipients for another destination: send "
		             "them in another transaction",
		             c->pending_rcpt.addr);
		free(rdom);
		c->busy = false;
		return;
	}
	if (c->nflight > 0 && (d == NULL || d != c->flight[0].dest || dest_state(d) != D_OPEN)) {
		/* another destination: after the replies in flight */
		c->rcpt_deferred = true;
		free(rdom);
		return;
	}
	if (!admitted && !rcpt_admit(c, r, rdom)) {
		free(rdom);
		return;
	}
	if (d == NULL) {
		d = verp_dest_new(c, r, r->mx ? rdom : NULL, c->pending_rcpt.addr);
		relay_add_dest(t, d);
		if (r->mx)
			dest_max_messages(d, throttle_messages_per_session(c, c->rcpt_lim));
	}
	free(rdom);
	c->rcpt_dest = d;
	if (dest_state(d) == D_NEW)
		dest_open(d, rcpt_opened);
	else
		rcpt_send(c, d);
}

/* relay_rcpt - the client's RCPT (already checked): bounce intake,
 * the suppression list, then routing */
void relay_rcpt(struct client *c)
{
	if (intake_rcpt(c))
		return;
	if (!c->lmtp && intake_in_txn(c)) {
		client_reply(c,
		             "452 4.5.3 <%s>: bounce intake and mail to relay go in separate "
		             "transactions",
		             c->pending_rcpt.addr);
		c->busy = false;
		return;
	}
	if (record_suppressed(c)) {
		c->busy = false;
		return;
	}
	rcpt_route(c, false);
}

/* relay_rset - the client's RSET: sessions go back to the pool, which
 * resets them before their next use */
void relay_rset(struct client *c)
{
	txn_reset(c);
	client_reply(c, "250 2.0.0 Ok");
	c->busy = false;
}
