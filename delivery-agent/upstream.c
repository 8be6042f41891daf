/* upstream - one SMTP client session to a smart host
 *
 * A small state machine on a libevent bufferevent: resolve (lib/dns) ->
 * connect (each address in turn) -> [implicit TLS] -> greeting -> EHLO
 * (HELO on 5xx) -> [STARTTLS -> TLS -> EHLO] -> [AUTH] -> ready; then
 * commands. Commands given while a reply is awaited wait in a queue:
 * with PIPELINING (RFC 2920) they are written at once and their replies
 * come back in order; without it each is written when the reply before
 * it has come. This file has the connection, the replies and
 * the commands; upstream_secure.c the TLS and AUTH steps. Every wait has
 * a timer: agent.connect_timeout for connect, TLS handshake and
 * greeting, agent.command_timeout per command, agent.data_timeout after
 * the final dot. Any failure closes the session and reports a complete
 * 4xx reply line, so that the MTA keeps the message; upstream_failure
 * tells the pool which step failed. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "delivery-agent/tls.h"
#include "delivery-agent/upstream.h"
#include "delivery-agent/upstream_int.h"
#include "lib/dns.h"
#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

/* up_arm - (re)start the step timer */
void up_arm(struct upstream *up, long secs)
{
	struct timeval tv = {secs, 0};

	evtimer_add(up->timer, &tv);
}

/* up_host - the host as configured, for messages */
const char *up_host(const struct upstream *up)
{
	return up->host->host != NULL ? up->host->host : "";
}

/* up_forget_auth - wipe the secrets of the last AUTH exchange */
void up_forget_auth(struct upstream *up)
{
	auth_secret_free(up->auth_token);
	up->auth_token = NULL;
	memset(&up->auth, 0, sizeof(up->auth));
	up->auth_err = NULL;
}

/* up_close - drop the socket (no QUIT) */
void up_close(struct upstream *up)
{
	if (up->bev != NULL) {
		evutil_socket_t fd = bufferevent_getfd(up->bev);
		bufferevent_free(up->bev);
		if (!up->bev_owns_fd && fd >= 0)
			evutil_closesocket(fd);
		up->bev = NULL;
	}
	up->bev_owns_fd = true;
	up->ssl = NULL;
	evtimer_del(up->timer);
	smtp_reply_clear(&up->reply);
	up->state = UP_IDLE;
	up->in_txn = false;
	for (size_t i = 0; i < up->nqueue; i++)
		free(up->queue[i].line);
	up->nqueue = 0; /* their callers learn from the first one's failure */
}

/* up_deliver - hand a result to the waiting caller, which may free up: the
 * reply is moved out of up first */
void up_deliver(struct upstream *up, struct smtp_reply *reply, const char *fail)
{
	upstream_cb *cb = up->cb;
	void *ctx = up->ctx;
	struct smtp_reply r;

	up->cb = NULL;
	up->ctx = NULL;
	if (reply != NULL) {
		r = *reply;
		smtp_reply_init(reply);
	}
	if (cb != NULL)
		cb(ctx, reply ? &r : NULL, fail);
	if (reply != NULL)
		free(r.text);
}

/* opening - upstream_open has not answered yet */
static bool opening(const struct upstream *up)
{
	return up->state < UP_READY;
}

/* up_fail - close the session and report a 4xx line built from fmt; kind
 * is recorded when the session was being opened */
void up_fail(struct upstream *up, enum upstream_failure kind, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (opening(up))
		up->failure = kind;
	up_forget_auth(up);
	up_close(up);
	up_deliver(up, NULL, line);
}

/* up_quoted - the current reply as one line for messages; caller frees */
char *up_quoted(struct upstream *up)
{
	return smtp_reply_oneline(&up->reply, 300);
}

static void start_later(evutil_socket_t fd, short what, void *arg);

/* more_cb - replies to pipelined commands are still in the input */
static void more_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	(void)fd;
	(void)what;
	if (up->bev != NULL)
		up_read_cb(up->bev, up);
}

/* timer_cb - the current step took too long */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	(void)fd;
	(void)what;
	switch (up->state) {
	case UP_CONNECTING:
		snprintf(up->last_err, sizeof(up->last_err), "connection timed out");
		up_close(up);
		up_try_connect(up);
		break;
	case UP_TLS: up_tls_failed(up, "the TLS handshake timed out"); break;
	case UP_GREETING:
		up_fail(up, UPF_GREETING,
		        "451 4.4.2 smart host %s: timed out waiting for the greeting", up->name);
		break;
	case UP_DATA_END:
		up_fail(up, UPF_PROTOCOL,
		        "451 4.4.2 smart host %s: timed out after the end of data", up->name);
		break;
	default:
		up_fail(up, UPF_PROTOCOL,
		        "451 4.4.2 smart host %s: timed out waiting for the reply to %s", up->name,
		        up->what);
		break;
	}
}

/* upstream_new_host - an unconnected session to host */
struct upstream *upstream_new_host(struct event_base *base, struct dns *dns,
                                   struct weir_config *cfg, const struct route_host *host)
{
	struct upstream *up = xcalloc(1, sizeof(*up));

	up->base = base;
	up->dns = dns;
	dns_ref(dns);
	up->cfg = config_ref(cfg);
	up->host = host;
	up->bev_owns_fd = true;
	up->timer = evtimer_new(base, timer_cb, up);
	up->kick = evtimer_new(base, start_later, up);
	up->more = evtimer_new(base, more_cb, up);
	smtp_reply_init(&up->reply);
	smtp_reply_init(&up->ehlo);
	smtp_reply_init(&up->refusal);
	snprintf(up->name, sizeof(up->name), "%s:%d", up_host(up), host->port);
	return up;
}

/* upstream_new - agent.smarthost, as before routes: TLS when offered,
 * not verified, no AUTH */
struct upstream *upstream_new(struct event_base *base, struct dns *dns, struct weir_config *cfg)
{
	struct upstream *up;
	struct route_host *h;
	struct endpoint ep;
	const char *err;
	bool literal;

	h = xcalloc(1, sizeof(*h));
	if (endpoint_parse_hostport(cfg->agent.smarthost, 25, &ep, &literal, &err) < 0) {
		/* config_load validated it; keep the promise of an async result */
		snprintf(ep.host, sizeof(ep.host), "%s", cfg->agent.smarthost);
		ep.port = 25;
	}
	h->host = xstrdup(ep.host);
	h->port = (int)ep.port;
	h->tls = ROUTE_TLS_MAY;
	h->auth = ROUTE_AUTH_NONE;
	h->weight = 1;
	h->id = xstrdup(cfg->agent.smarthost);
	up = upstream_new_host(base, dns, cfg, h);
	up->legacy = *h;
	up->host = &up->legacy;
	free(h);
	return up;
}

/* quit_now - best effort QUIT without waiting: the socket is writable
 * and nothing is queued, so the few bytes go out at once. Through TLS
 * the record is made by SSL_write; for a filter (STARTTLS) it lands in
 * the connection's output buffer, whose start libevent keeps frozen for
 * its own writer (no copyout, no evbuffer_write), so it is peeked at and
 * sent by hand. */
static void quit_now(struct upstream *up)
{
	struct bufferevent *under = bufferevent_get_underlying(up->bev);
	struct evbuffer *out = under != NULL ? bufferevent_get_output(under) : NULL;
	struct evbuffer_iovec v[4];
	struct iovec iov[4];
	struct msghdr mh = {.msg_iov = iov};
	ssize_t w;
	int n;

	if (up->ssl == NULL) {
		w = send(bufferevent_getfd(up->bev), "QUIT\r\n", 6, MSG_NOSIGNAL);
		(void)w;
		return;
	}
	if (out != NULL && evbuffer_get_length(out) > 0)
		return; /* a record half sent: do not interleave */
	if (SSL_write(up->ssl, "QUIT\r\n", 6) != 6 || out == NULL)
		return; /* a socket bufferevent: SSL_write sent it */
	n = evbuffer_peek(out, -1, NULL, v, 4);
	if (n < 1 || n > 4)
		return;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	mh.msg_iovlen = (size_t)n;
	w = sendmsg(bufferevent_getfd(under), &mh, MSG_NOSIGNAL);
	(void)w;
}

/* upstream_free - QUIT when idle, close, free */
void upstream_free(struct upstream *up)
{
	if (up == NULL)
		return;
	if (up->query != NULL)
		dns_cancel(up->query);
	if (up->bev != NULL && up->state == UP_READY &&
	    evbuffer_get_length(bufferevent_get_output(up->bev)) == 0)
		quit_now(up);
	up_forget_auth(up);
	up_close(up);
	event_free(up->timer);
	event_free(up->kick);
	event_free(up->more);
	free(up->queue);
	if (up->msg != NULL)
		evbuffer_free(up->msg);
	smtp_reply_clear(&up->ehlo);
	smtp_reply_clear(&up->refusal);
	if (up->host == &up->legacy) {
		free(up->legacy.host);
		free(up->legacy.id);
	}
	dns_unref(up->dns);
	config_unref(up->cfg);
	free(up);
}

/* set_name - "host[ip]:port" for the address being tried */
static void set_name(struct upstream *up, const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
	snprintf(up->name, sizeof(up->name), "%s[%s]:%d", up_host(up), ip, up->host->port);
	snprintf(up->address, sizeof(up->address), ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	         ip, up->host->port);
}

/* up_try_connect - connect to the next address, or give up */
void up_try_connect(struct upstream *up)
{
	struct sockaddr_storage *ss;
	socklen_t len;
	bool implicit = up->host->tls == ROUTE_TLS_IMPLICIT;

	if (up->next_addr >= up->naddrs) {
		up_fail(up, UPF_CONNECT, "451 4.4.1 smart host %s unreachable: %s", up_host(up),
		        up->last_err);
		return;
	}
	ss = &up->addrs[up->next_addr++];
	set_name(up, ss);
	if (ss->ss_family == AF_INET) {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)up->host->port);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)up->host->port);
		len = sizeof(struct sockaddr_in6);
	}
	/* For implicit TLS the connected socket moves to an SSL
	 * bufferevent: this one must not close it when freed. */
	up->bev = bufferevent_socket_new(up->base, -1, implicit ? 0 : BEV_OPT_CLOSE_ON_FREE);
	up->bev_owns_fd = !implicit;
	bufferevent_setcb(up->bev, up_read_cb, NULL, up_event_cb, up);
	up->state = UP_CONNECTING;
	up->tls_active = up->tls_verified = false;
	up_arm(up, up->cfg->agent.connect_timeout);
	if (bufferevent_socket_connect(up->bev, (struct sockaddr *)ss, (int)len) < 0) {
		snprintf(up->last_err, sizeof(up->last_err), "%s", strerror(errno));
		up_close(up);
		up_try_connect(up);
	}
}

/* resolved - the smart host's addresses are known */
static void resolved(void *arg, const struct sockaddr_storage *addrs, size_t n, const char *err)
{
	struct upstream *up = arg;

	up->query = NULL;
	if (n == 0) {
		up_fail(up, UPF_CONNECT, "451 4.4.1 smart host %s unreachable: %s", up_host(up),
		        err);
		return;
	}
	memcpy(up->addrs, addrs, n * sizeof(addrs[0]));
	up->naddrs = n;
	up->next_addr = 0;
	up_try_connect(up);
}

/* start_later - begin connecting from the event loop (no re-entrancy) */
static void start_later(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;
	struct in_addr a4;
	struct in6_addr a6;
	const char *host = up_host(up);

	(void)fd;
	(void)what;
	memset(up->addrs, 0, sizeof(up->addrs));
	up->naddrs = up->next_addr = 0;
	snprintf(up->last_err, sizeof(up->last_err), "no address");
	if (inet_pton(AF_INET, host, &a4) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&up->addrs[0];
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		up->naddrs = 1;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&up->addrs[0];
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		up->naddrs = 1;
	} else {
		up->state = UP_RESOLVING;
		up->query = dns_lookup_addr(up->dns, host, resolved, up);
		return;
	}
	up_try_connect(up);
}

/* upstream_open - connect, TLS, greet, AUTH; see upstream.h */
void upstream_open(struct upstream *up, upstream_cb *cb, void *ctx)
{
	up_close(up);
	up_forget_auth(up);
	up->cb = cb;
	up->ctx = ctx;
	up->failure = UPF_NONE;
	up->tls_fallback = false;
	up->auth_used = AUTH_MECH_NONE;
	memset(&up->caps, 0, sizeof(up->caps));
	up->helo_only = false;
	smtp_reply_clear(&up->ehlo);
	smtp_reply_clear(&up->refusal);
	snprintf(up->what, sizeof(up->what), "connect");
	up->state = UP_RESOLVING;
	event_active(up->kick, EV_TIMEOUT, 0);
}

/* write_line - one command line to the server */
static void write_line(struct upstream *up, const char *line, const char *shown)
{
	log_debug("upstream %s: > %s", up->name, shown ? shown : line);
	bufferevent_write(up->bev, line, strlen(line));
	bufferevent_write(up->bev, "\r\n", 2);
}

/* up_send_line - write one command and wait secs for its reply; shown is
 * what the debug log gets instead of the line (AUTH), or NULL */
void up_send_line(struct upstream *up, const char *line, const char *shown, enum up_state st,
                  long secs)
{
	smtp_reply_clear(&up->reply);
	write_line(up, line, shown);
	up->state = st;
	up_arm(up, secs);
}

/* up_send_ehlo - EHLO (or HELO) with the host's name or agent.helo_name */
void up_send_ehlo(struct upstream *up, const char *verb, enum up_state st)
{
	char line[300];
	const char *helo = up->host->helo != NULL && up->host->helo[0] != '\0'
	                       ? up->host->helo
	                       : up->cfg->agent.helo_name;

	snprintf(line, sizeof(line), "%s %s", verb, helo ? helo : "localhost");
	snprintf(up->what, sizeof(up->what), "%s", verb);
	up_send_line(up, line, NULL, st, up->cfg->agent.command_timeout);
}

/* keep_refusal - the server refused the session: its reply, kept */
static void keep_refusal(struct upstream *up)
{
	smtp_reply_clear(&up->refusal);
	up->refusal = up->reply;
	up->refusal.text = up->reply.text ? xstrndup(up->reply.text, up->reply.text_len) : NULL;
}

/* greeted - the reply to the greeting, EHLO or HELO is complete */
static void greeted(struct upstream *up)
{
	char *q;
	int code = up->reply.code;

	if (up->state == UP_GREETING) {
		if (code == 220) {
			up->ehlo_after_tls = false;
			up_send_ehlo(up, "EHLO", UP_EHLO);
			return;
		}
		q = up_quoted(up);
		keep_refusal(up);
		up_fail(up, UPF_GREETING,
		        "451 4.4.0 smart host %s refused the session: %s said: %s", up_host(up),
		        up->name, q);
		free(q);
		return;
	}
	if (up->state == UP_EHLO && code / 100 == 5 && !up->ehlo_after_tls) {
		up_send_ehlo(up, "HELO", UP_HELO);
		return;
	}
	if (code / 100 == 2) {
		if (up->state == UP_EHLO)
			ehlo_parse(up->reply.text, &up->caps);
		else
			memset(&up->caps, 0, sizeof(up->caps));
		up->helo_only = up->state == UP_HELO;
		smtp_reply_clear(&up->ehlo);
		up->ehlo = up->reply;
		smtp_reply_init(&up->reply);
		up_after_ehlo(up);
		return;
	}
	q = up_quoted(up);
	keep_refusal(up);
	up_fail(up, UPF_PROTOCOL, "451 4.4.0 smart host %s refused the session: %s said: %s",
	        up_host(up), up->name, q);
	free(q);
}

/* next_command - the reply for cb has come and more commands wait: the
 * next one's caller waits now (its line written if it was not), then
 * the reply goes to its caller, which may free up */
static void next_command(struct upstream *up)
{
	upstream_cb *cb = up->cb;
	void *ctx = up->ctx;
	struct smtp_reply r = up->reply;
	struct up_cmd next = up->queue[0];

	smtp_reply_init(&up->reply);
	up->nqueue--;
	memmove(up->queue, up->queue + 1, up->nqueue * sizeof(*up->queue));
	up->cb = next.cb;
	up->ctx = next.ctx;
	memcpy(up->what, next.what, sizeof(up->what));
	if (next.line != NULL) {
		write_line(up, next.line, NULL);
		free(next.line);
	}
	up_arm(up, up->cfg->agent.command_timeout);
	if (evbuffer_get_length(bufferevent_get_input(up->bev)) > 0)
		event_active(up->more, EV_TIMEOUT, 0);
	cb(ctx, &r, NULL);
	free(r.text);
}

/* got_reply - one complete reply for the current step */
static void got_reply(struct upstream *up)
{
	if (log_level_enabled(LOG_LEVEL_DEBUG)) {
		char *q = up_quoted(up);
		log_debug("upstream %s: < %s", up->name, q);
		free(q);
	}
	switch (up->state) {
	case UP_GREETING:
	case UP_EHLO:
	case UP_HELO: greeted(up); return;
	case UP_STARTTLS: up_starttls_reply(up); return;
	case UP_AUTH: up_auth_reply(up); return;
	case UP_DATA_CMD:
		if (up->reply.code == 354) {
			struct evbuffer *out = bufferevent_get_output(up->bev);
			evbuffer_add_buffer(out, up->msg);
			evbuffer_add(out, ".\r\n", 3);
			smtp_reply_clear(&up->reply);
			up->state = UP_DATA_END;
			snprintf(up->what, sizeof(up->what), "end of data");
			up_arm(up, up->cfg->agent.data_timeout);
			return;
		}
		break;
	case UP_COMMAND:
	case UP_DATA_END: break;
	default: log_debug("upstream %s: unexpected reply ignored", up->name); return;
	}
	evtimer_del(up->timer);
	if (up->state == UP_DATA_END)
		up->in_txn = false;
	if (up->reply.code != 421 && up->nqueue > 0) {
		next_command(up);
		return;
	}
	up->state = UP_READY;
	if (up->reply.code == 421) {
		/* The server is closing the session; report the reply, then
		 * forget the connection so the next MAIL reconnects. */
		struct smtp_reply r = up->reply;
		smtp_reply_init(&up->reply);
		up_close(up);
		up_deliver(up, &r, NULL);
		return;
	}
	up_deliver(up, &up->reply, NULL);
}

/* waiting_for_reply - a state in which the server's lines are read */
static bool waiting_for_reply(const struct upstream *up)
{
	switch (up->state) {
	case UP_GREETING:
	case UP_EHLO:
	case UP_HELO:
	case UP_STARTTLS:
	case UP_AUTH:
	case UP_COMMAND:
	case UP_DATA_CMD:
	case UP_DATA_END: return true;
	default: return false;
	}
}

/* up_read_cb - reply lines from the smart host */
void up_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream *up = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *err;
	size_t len;
	char *line;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		int r;
		if (!waiting_for_reply(up)) {
			free(line);
			continue; /* nothing asked: ignore */
		}
		r = smtp_reply_feed(&up->reply, line, len, &err);
		free(line);
		if (r < 0) {
			up_fail(up, up->state == UP_GREETING ? UPF_GREETING : UPF_PROTOCOL,
			        "451 4.4.0 smart host %s: bad reply to %s: %s", up->name, up->what,
			        err);
			return;
		}
		if (r == 1) {
			got_reply(up);
			/* up may be freed now: touch nothing */
			return;
		}
	}
	if (evbuffer_get_length(in) > SMTP_REPLY_MAX_LINE + 2)
		up_fail(up, UPF_PROTOCOL, "451 4.4.0 smart host %s: reply line too long", up->name);
}

/* up_event_cb - connected, TLS up, closed or failed */
void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream *up = arg;
	char reason[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (up->state == UP_TLS) {
			up_tls_done(up);
			return;
		}
		if (up->host->tls == ROUTE_TLS_IMPLICIT) {
			up_start_tls(up);
			return;
		}
		up->state = UP_GREETING;
		snprintf(up->what, sizeof(up->what), "greeting");
		bufferevent_enable(up->bev, EV_READ);
		return;
	}
	if (up->state == UP_CONNECTING) {
		int e = EVUTIL_SOCKET_ERROR();
		snprintf(up->last_err, sizeof(up->last_err), "%s",
		         e ? evutil_socket_error_to_string(e) : "connection failed");
		up_close(up);
		up_try_connect(up);
		return;
	}
	if (up->state == UP_TLS) {
		reason[0] = '\0';
		tls_failure(bev, up->ssl,
		            what & BEV_EVENT_EOF ? "the server closed the connection during the "
		                                   "TLS handshake"
		                                 : "the TLS handshake failed",
		            reason, sizeof(reason));
		up_tls_failed(up, reason);
		return;
	}
	if (up->state == UP_READY || up->state == UP_IDLE) {
		log_debug("upstream %s: connection closed while idle", up->name);
		up_close(up);
		return;
	}
	up_fail(up, up->state == UP_GREETING ? UPF_GREETING : UPF_PROTOCOL,
	        "451 4.4.2 smart host %s: lost connection while waiting for the reply to %s",
	        up->name, up->what);
}

/* upstream_command - send a command (or queue it), wait for its reply */
void upstream_command(struct upstream *up, const char *line, upstream_cb *cb, void *ctx)
{
	size_t n = strcspn(line, " ");
	char what[sizeof(up->what)];

	snprintf(what, sizeof(what), "%.*s", (int)(n < 15 ? n : 15), line);
	if (up->state == UP_COMMAND) {
		struct up_cmd *q;
		if (up->nqueue == up->queue_size) {
			up->queue_size = up->queue_size ? 2 * up->queue_size : 8;
			up->queue = xrealloc(up->queue, up->queue_size * sizeof(*up->queue));
		}
		q = &up->queue[up->nqueue++];
		q->cb = cb;
		q->ctx = ctx;
		memcpy(q->what, what, sizeof(q->what));
		q->line = NULL;
		if (up->caps.pipelining)
			write_line(up, line, NULL);
		else
			q->line = xstrdup(line);
		return;
	}
	up->cb = cb;
	up->ctx = ctx;
	memcpy(up->what, what, sizeof(up->what));
	up_send_line(up, line, NULL, UP_COMMAND, up->cfg->agent.command_timeout);
}

/* upstream_data - DATA, message, final dot */
void upstream_data(struct upstream *up, struct evbuffer *msg, upstream_cb *cb, void *ctx)
{
	up->cb = cb;
	up->ctx = ctx;
	if (up->msg == NULL)
		up->msg = evbuffer_new();
	evbuffer_drain(up->msg, evbuffer_get_length(up->msg));
	evbuffer_add_buffer(up->msg, msg);
	snprintf(up->what, sizeof(up->what), "DATA");
	up_send_line(up, "DATA", NULL, UP_DATA_CMD, up->cfg->agent.command_timeout);
}

const struct smtp_reply *upstream_refusal(const struct upstream *up)
{
	return up->refusal.code != 0 ? &up->refusal : NULL;
}

bool upstream_ready(const struct upstream *up)
{
	return up->state == UP_READY && up->bev != NULL;
}

bool upstream_connected(const struct upstream *up)
{
	return up->bev != NULL && (up->state == UP_READY || up->state == UP_COMMAND);
}

enum upstream_failure upstream_failure(const struct upstream *up)
{
	return up->failure;
}

bool upstream_has_8bitmime(const struct upstream *up)
{
	return up->caps.eightbitmime;
}

bool upstream_has_size(const struct upstream *up)
{
	return up->caps.has_size;
}

bool upstream_has_pipelining(const struct upstream *up)
{
	return up->caps.pipelining;
}

bool upstream_has_smtputf8(const struct upstream *up)
{
	return up->caps.smtputf8;
}

bool upstream_has_dsn(const struct upstream *up)
{
	return up->caps.dsn;
}

long long upstream_size_limit(const struct upstream *up)
{
	return up->caps.has_size ? up->caps.size : -1;
}

void upstream_tls_info(const struct upstream *up, struct upstream_tls *info)
{
	info->active = up->tls_active;
	info->protocol = up->tls_active ? up->tls_proto : "none";
	info->cipher = up->tls_active ? up->tls_cipher : "none";
	info->verified = up_verified_word(up);
}

const char *upstream_auth_mech(const struct upstream *up)
{
	return auth_mech_name(up->auth_used);
}

bool upstream_in_txn(const struct upstream *up)
{
	return up->in_txn;
}

void upstream_set_in_txn(struct upstream *up, bool on)
{
	up->in_txn = on;
}

const char *upstream_name(const struct upstream *up)
{
	return up->name;
}

const char *upstream_host_name(const struct upstream *up)
{
	return up_host(up);
}
