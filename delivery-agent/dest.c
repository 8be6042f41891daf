/* dest - one destination of a transaction (see dest.h)
 *
 * For an mx route the recipient domain's MX hosts are looked up first
 * (RFC 5321 5.1): in preference order, equal preferences shuffled, the
 * domain itself when it has no MX; a null MX (RFC 7505) or a domain that
 * does not exist is a permanent answer, a DNS failure a temporary one.
 * The pool then gives a session to one of the hosts (failing over on
 * connection, greeting and TLS failures) and MAIL FROM goes out with
 * SIZE, BODY, SMTPUTF8 and the DSN parameters the upstream can take.
 * Mail the upstream cannot carry unchanged (8-bit without 8BITMIME,
 * SMTPUTF8 without SMTPUTF8) is refused, never altered. */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/dest.h"
#include "delivery-agent/pool.h"
#include "delivery-agent/upstream.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

enum fail_kind {
	FAIL_LINE,    /* fail is a complete reply line */
	FAIL_QUOTED,  /* reply: the upstream refused MAIL */
	FAIL_NULL_MX, /* 556 5.1.10 */
	FAIL_NXDOMAIN,
	FAIL_DNS, /* fail: the resolver's reason */
};

struct dest {
	struct client *c;
	const struct route *route;
	char *domain;
	enum dest_state state;
	struct pool_req *req;
	struct pool_session *s;
	struct dns_query *mxq;
	struct route_host *mx_hosts;
	size_t nmx;
	unsigned inflight; /* commands sent on the session and not answered */
	enum fail_kind fail_kind;
	char *fail;
	struct smtp_reply fail_reply;
	char name[320];
	dest_open_cb *open_cb;
	dest_reply_cb *reply_cb;
	struct event *kick;  /* report a state from the event loop */
	struct event *later; /* report later_fail from the event loop */
	char *later_fail;
	struct evbuffer *msg;
	struct dest_work work;
	bool dsn_dropped_logged;
	bool retried;     /* MAIL on a reused session was lost: once more, fresh */
	int max_messages; /* per session (throttle), 0: none */
	char *mail_from;  /* VERP: the MAIL FROM address, else NULL */
};

static struct upstream *up_of(const struct dest *d)
{
	return d->s ? pool_session_upstream(d->s) : NULL;
}

/* kicked - run open_cb from the event loop */
static void kicked(evutil_socket_t fd, short what, void *arg)
{
	struct dest *d = arg;

	(void)fd;
	(void)what;
	d->open_cb(d);
}

static void reply_done(void *arg, const struct smtp_reply *r, const char *fail);

/* later_cb - a failure found when a step started, reported now */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dest *d = arg;
	char *fail = d->later_fail;

	(void)fd;
	(void)what;
	d->later_fail = NULL;
	reply_done(d, NULL, fail);
	free(fail);
}

/* fail_later - reply_done(d, NULL, fail) from the event loop */
static void fail_later(struct dest *d, char *fail)
{
	free(d->later_fail);
	d->later_fail = fail;
	d->inflight++;
	event_active(d->later, EV_TIMEOUT, 0);
}

struct dest *dest_new(struct client *c, const struct route *r, const char *domain)
{
	struct dest *d = xcalloc(1, sizeof(*d));

	d->c = c;
	d->route = r;
	d->domain = domain ? xstrdup(domain) : NULL;
	d->kick = evtimer_new(c->agent->base, kicked, d);
	d->later = evtimer_new(c->agent->base, later_cb, d);
	smtp_reply_init(&d->fail_reply);
	snprintf(d->name, sizeof(d->name), "%s%s%s", r->name, domain ? "/" : "",
	         domain ? domain : "");
	return d;
}

static void mx_hosts_free(struct dest *d)
{
	for (size_t i = 0; i < d->nmx; i++) {
		free(d->mx_hosts[i].host);
		free(d->mx_hosts[i].id);
	}
	free(d->mx_hosts);
	d->mx_hosts = NULL;
	d->nmx = 0;
}

void dest_free(struct dest *d)
{
	if (d == NULL)
		return;
	if (d->mxq != NULL)
		dns_cancel(d->mxq);
	pool_cancel(d->req);
	if (d->inflight > 0)
		pool_discard(d->s);
	else
		pool_release(d->s);
	mx_hosts_free(d);
	event_free(d->kick);
	event_free(d->later);
	free(d->later_fail);
	if (d->msg != NULL)
		evbuffer_free(d->msg);
	smtp_reply_clear(&d->fail_reply);
	free(d->fail);
	free(d->domain);
	free(d->mail_from);
	free(d->work.rcpts);
	free(d);
}

bool dest_is(const struct dest *d, const struct route *r, const char *domain)
{
	if (d->route != r || d->mail_from != NULL)
		return false;
	if (!r->mx)
		return true;
	return domain != NULL && d->domain != NULL && strcasecmp(d->domain, domain) == 0;
}

void dest_mail_from(struct dest *d, const char *addr)
{
	free(d->mail_from);
	d->mail_from = xstrdup(addr);
}

enum dest_state dest_state(const struct dest *d)
{
	return d->state;
}

const char *dest_name(const struct dest *d)
{
	return d->name;
}

struct client *dest_client(const struct dest *d)
{
	return d->c;
}

const struct route *dest_route(const struct dest *d)
{
	return d->route;
}

struct dest_work *dest_work(struct dest *d)
{
	return &d->work;
}

/* failed - D_FAILED with a complete line; report */
static void failed(struct dest *d, enum fail_kind kind, const char *text)
{
	d->state = D_FAILED;
	d->fail_kind = kind;
	free(d->fail);
	d->fail = xstrdup(text ? text : "");
	if (d->s != NULL) {
		pool_release(d->s);
		d->s = NULL;
	}
	d->open_cb(d);
}

/* keep_reply - a copy of an upstream's refusal, quoted to each recipient */
static void keep_reply(struct dest *d, const struct smtp_reply *r)
{
	smtp_reply_clear(&d->fail_reply);
	d->fail_reply = *r;
	d->fail_reply.text = r->text ? xstrndup(r->text, r->text_len) : NULL;
}

const struct smtp_reply *dest_fail_reply(const struct dest *d)
{
	return d->state == D_FAILED && d->fail_reply.code != 0 ? &d->fail_reply : NULL;
}

void dest_max_messages(struct dest *d, int n)
{
	d->max_messages = n > 0 ? n : 0;
}

int dest_fail_code(const struct dest *d)
{
	switch (d->fail_kind) {
	case FAIL_NULL_MX: return 556;
	case FAIL_NXDOMAIN: return 550;
	case FAIL_DNS: return 451;
	case FAIL_QUOTED: return d->fail_reply.code / 100 == 5 ? d->fail_reply.code : 451;
	case FAIL_LINE:
	default: return d->fail[0] == '5' ? atoi(d->fail) : 451;
	}
}

char *dest_fail_line(const struct dest *d, const char *rcpt)
{
	char who[SMTP_PATH_MAX + 8];

	snprintf(who, sizeof(who), "<%s>", rcpt ? rcpt : "");
	switch (d->fail_kind) {
	case FAIL_NULL_MX:
		return xasprintf("556 5.1.10 %s: domain does not accept mail (null MX)", who);
	case FAIL_NXDOMAIN: return xasprintf("550 5.1.2 %s: domain not found", who);
	case FAIL_DNS:
		return xasprintf("451 4.4.3 %s: MX lookup of %s failed: %s", who, d->domain,
		                 d->fail);
	case FAIL_QUOTED: return relay_quote(&d->fail_reply, rcpt ? who : NULL, d->name);
	case FAIL_LINE:
	default: return xstrdup(d->fail);
	}
}

static void reopen(struct dest *d);

/* mail_done - the upstream answered MAIL */
static void mail_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct dest *d = arg;

	d->inflight = 0;
	if (r == NULL) {
		bool again = !d->retried && pool_session_reused(d->s);
		pool_discard(d->s); /* the upstream closed it */
		d->s = NULL;
		if (again) {
			/* an idle session the server had closed: nothing was
			 * sent yet, so a fresh one may take it */
			log_info("conn=%lu relay=%s: reused session lost at MAIL (%s); opening "
			         "another",
			         d->c->id, d->name, fail);
			d->retried = true;
			reopen(d);
			return;
		}
		failed(d, FAIL_LINE, fail);
		return;
	}
	if (r->code / 100 != 2) {
		keep_reply(d, r);
		failed(d, FAIL_QUOTED, NULL);
		return;
	}
	upstream_set_in_txn(up_of(d), true);
	d->state = D_OPEN;
	d->open_cb(d);
}

/* send_mail - MAIL FROM with what the upstream supports */
static void send_mail(struct dest *d)
{
	const struct smtp_mail *m = &d->c->txn.mail;
	struct upstream *up = up_of(d);
	const char *host = upstream_host_name(up);
	char line[SMTP_PATH_MAX + SMTP_ENVID_MAX + 128], *fail;
	int n;

	if (m->body == BODY_8BITMIME && !upstream_has_8bitmime(up)) {
		fail = xasprintf("550 5.6.3 smart host %s does not accept 8-bit mail", host);
		failed(d, FAIL_LINE, fail);
		free(fail);
		return;
	}
	if (m->smtputf8 && !upstream_has_smtputf8(up)) {
		fail = xasprintf("553 5.6.7 smart host %s does not accept SMTPUTF8 mail", host);
		failed(d, FAIL_LINE, fail);
		free(fail);
		return;
	}
	n = snprintf(line, sizeof(line), "MAIL FROM:<%s>", d->mail_from ? d->mail_from : m->addr);
	if (m->size >= 0 && upstream_has_size(up))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " SIZE=%lld", m->size);
	if (m->body == BODY_8BITMIME)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " BODY=8BITMIME");
	if (m->smtputf8)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " SMTPUTF8");
	if (upstream_has_dsn(up)) {
		if (m->ret[0])
			n += snprintf(line + n, sizeof(line) - (size_t)n, " RET=%s", m->ret);
		if (m->envid[0])
			snprintf(line + n, sizeof(line) - (size_t)n, " ENVID=%s", m->envid);
	} else if (m->ret[0] || m->envid[0]) {
		log_info("conn=%lu relay=%s: no DSN there: RET/ENVID not passed on", d->c->id,
		         d->name);
		d->dsn_dropped_logged = true;
	}
	d->state = D_MAIL;
	d->inflight++;
	upstream_command(up, line, mail_done, d);
}

/* opened - the pool's answer */
static void opened(void *arg, struct pool_session *s, const struct smtp_reply *reply,
                   const char *fail, const char *host)
{
	struct dest *d = arg;

	d->req = NULL;
	if (s == NULL && host != NULL)
		snprintf(d->name, sizeof(d->name), "%s", host);
	if (s == NULL) {
		if (reply != NULL)
			keep_reply(d, reply); /* with fail: the refusal, for the throttle */
		if (fail == NULL)
			failed(d, FAIL_QUOTED, NULL);
		else
			failed(d, FAIL_LINE, fail);
		return;
	}
	d->s = s;
	snprintf(d->name, sizeof(d->name), "%s", upstream_name(pool_session_upstream(s)));
	send_mail(d);
}

/* open_hosts - ask the pool for a session to one of the hosts */
static void open_hosts(struct dest *d, const struct route_host *hosts, size_t n, bool ordered)
{
	struct client *c = d->c;

	d->state = D_OPENING;
	d->req = pool_open(c->agent->pool, c->agent->dns, c->cfg, d->route, hosts, n, ordered,
	                   (unsigned)d->max_messages, opened, d);
}

/* mx_host - one MX (or the domain itself) as a host: port 25, TLS
 * "may" without verification, no AUTH */
static void mx_host(struct route_host *h, const char *name)
{
	memset(h, 0, sizeof(*h));
	h->host = xstrdup(name);
	h->port = 25;
	h->tls = ROUTE_TLS_MAY;
	h->verify = false;
	h->auth = ROUTE_AUTH_NONE;
	h->weight = 1;
	h->id = xasprintf("%s:25", name);
}

/* mx_done - the MX records of the recipient domain */
static void mx_done(void *arg, enum dns_mx_status st, const struct dns_mx *mx, size_t n,
                    const char *err)
{
	struct dest *d = arg;

	d->mxq = NULL;
	switch (st) {
	case DNS_MX_NULL: failed(d, FAIL_NULL_MX, NULL); return;
	case DNS_MX_NXDOMAIN: failed(d, FAIL_NXDOMAIN, NULL); return;
	case DNS_MX_FAIL: failed(d, FAIL_DNS, err); return;
	case DNS_MX_NONE:
		d->mx_hosts = xcalloc(1, sizeof(*d->mx_hosts));
		mx_host(&d->mx_hosts[0], d->domain);
		d->nmx = 1;
		break;
	case DNS_MX_OK:
		d->mx_hosts = xcalloc(n, sizeof(*d->mx_hosts));
		for (size_t i = 0; i < n; i++)
			mx_host(&d->mx_hosts[i], mx[i].name);
		d->nmx = n;
		/* equal preferences in random order (RFC 5321 5.1) */
		for (size_t i = 0; i < n;) {
			size_t j = i;
			while (j < n && mx[j].pref == mx[i].pref)
				j++;
			for (size_t k = j - 1; k > i; k--) {
				size_t r = i + (size_t)random() % (k - i + 1);
				struct route_host t = d->mx_hosts[k];
				d->mx_hosts[k] = d->mx_hosts[r];
				d->mx_hosts[r] = t;
			}
			i = j;
		}
		break;
	}
	log_debug("conn=%lu mx of %s: %zu hosts, first %s", d->c->id, d->domain, d->nmx,
	          d->mx_hosts[0].host);
	open_hosts(d, d->mx_hosts, d->nmx, true);
}

/* reopen - ask the pool again (hosts as the first time) */
static void reopen(struct dest *d)
{
	if (d->route->mx)
		open_hosts(d, d->mx_hosts, d->nmx, true);
	else
		open_hosts(d, d->route->hosts, d->route->nhosts, false);
}

void dest_open(struct dest *d, dest_open_cb *done)
{
	d->open_cb = done;
	if (!d->route->mx) {
		open_hosts(d, d->route->hosts, d->route->nhosts, false);
		return;
	}
	if (d->domain == NULL || d->domain[0] == '[') {
		/* an address literal has no MX; not for direct delivery */
		d->state = D_FAILED;
		d->fail_kind = FAIL_LINE;
		d->fail = xstrdup("550 5.1.2 address literals are not delivered directly");
		event_active(d->kick, EV_TIMEOUT, 0);
		return;
	}
	d->state = D_RESOLVING;
	d->mxq = dns_lookup_mx(d->c->agent->dns, d->domain, mx_done, d);
}

/* reply_done - the reply to RCPT or to the data */
static void reply_done(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct dest *d = arg;
	dest_reply_cb *cb = d->reply_cb;

	if (d->inflight > 0)
		d->inflight--;
	if (r == NULL || !upstream_connected(up_of(d))) {
		/* the session is gone (or closing after 421): the commands
		 * queued after this one were dropped */
		d->inflight = 0;
		if (d->s != NULL && r == NULL) {
			pool_discard(d->s);
			d->s = NULL;
		}
	}
	if (d->state == D_DATA) {
		d->state = D_DONE;
		if (r != NULL && r->code / 100 == 2 && d->s != NULL)
			pool_session_sent(d->s);
	}
	cb(d, r, fail);
}

void dest_rcpt(struct dest *d, const struct rcpt *r, dest_reply_cb *done)
{
	struct upstream *up = up_of(d);
	char line[SMTP_PATH_MAX + SMTP_ORCPT_MAX + 64];
	int n;

	d->reply_cb = done;
	if (up == NULL || !upstream_connected(up)) {
		fail_later(
		    d, xasprintf("451 4.4.2 <%s>: connection to %s was lost", r->addr, d->name));
		return;
	}
	n = snprintf(line, sizeof(line), "RCPT TO:<%s>", r->addr);
	if (upstream_has_dsn(up)) {
		if (r->params.notify[0])
			n += snprintf(line + n, sizeof(line) - (size_t)n, " NOTIFY=%s",
			              r->params.notify);
		if (r->params.orcpt[0])
			snprintf(line + n, sizeof(line) - (size_t)n, " ORCPT=%s", r->params.orcpt);
	} else if ((r->params.notify[0] || r->params.orcpt[0]) && !d->dsn_dropped_logged) {
		log_info("conn=%lu relay=%s: no DSN there: NOTIFY/ORCPT not passed on", d->c->id,
		         d->name);
		d->dsn_dropped_logged = true;
	}
	d->inflight++;
	upstream_command(up, line, reply_done, d);
}

void dest_data(struct dest *d, struct evbuffer *msg, dest_reply_cb *done)
{
	struct upstream *up = up_of(d);
	size_t len = evbuffer_get_length(msg);

	d->reply_cb = done;
	d->state = D_DATA;
	if (up == NULL || !upstream_ready(up)) {
		fail_later(d,
		           xasprintf("451 4.4.2 connection to %s was lost before DATA", d->name));
		return;
	}
	/* a reference to the transaction's copy, which outlives the send */
	if (d->msg == NULL)
		d->msg = evbuffer_new();
	evbuffer_add_reference(d->msg, evbuffer_pullup(msg, (ev_ssize_t)len), len, NULL, NULL);
	pool_session_used(d->s);
	d->inflight++;
	upstream_data(up, d->msg, reply_done, d);
}

bool dest_connected(const struct dest *d)
{
	const struct upstream *up = up_of(d);

	return up != NULL && upstream_connected(up);
}

bool dest_pipelining(const struct dest *d)
{
	const struct upstream *up = up_of(d);

	return up != NULL && upstream_has_pipelining(up);
}
