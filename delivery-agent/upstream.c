/* upstream - one SMTP client session to the smart host
 *
 * A small state machine on a libevent bufferevent: resolve (lib/dns) ->
 * connect (each address in turn) -> greeting -> EHLO (HELO on 5xx) ->
 * ready; then one command at a time. Every wait has a timer:
 * agent.connect_timeout for connect + greeting, agent.command_timeout
 * per command, agent.data_timeout after the final dot. Any failure
 * closes the session and reports a complete 4xx reply line, so that the
 * MTA keeps the message. */
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
#include <unistd.h>

#include "delivery-agent/upstream.h"
#include "lib/dns.h"
#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"

enum up_state {
	UP_IDLE,       /* not connected */
	UP_RESOLVING,
	UP_CONNECTING,
	UP_GREETING,
	UP_EHLO,
	UP_HELO,
	UP_READY,      /* between commands */
	UP_COMMAND,
	UP_DATA_CMD,   /* waiting for 354 */
	UP_DATA_END,   /* waiting for the reply to the final dot */
};

struct upstream {
	struct event_base *base;
	struct dns *dns;
	struct weir_config *cfg;
	struct bufferevent *bev;
	struct event *timer;
	struct event *kick; /* starts a connection from the event loop */
	struct dns_query *query;
	enum up_state state;
	struct endpoint ep;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs, next_addr;
	char name[320];
	char last_err[128];
	char what[16]; /* command being answered, for messages */
	struct smtp_reply reply;
	struct evbuffer *msg;
	bool has_8bitmime, has_size, in_txn;
	upstream_cb *cb;
	void *ctx;
};

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void try_connect(struct upstream *up);
static void start_later(evutil_socket_t fd, short what, void *arg);

/* arm - (re)start the step timer */
static void arm(struct upstream *up, long secs)
{
	struct timeval tv = {secs, 0};

	evtimer_add(up->timer, &tv);
}

/* close_conn - drop the socket (no QUIT) */
static void close_conn(struct upstream *up)
{
	if (up->bev != NULL) {
		bufferevent_free(up->bev);
		up->bev = NULL;
	}
	evtimer_del(up->timer);
	smtp_reply_clear(&up->reply);
	up->state = UP_IDLE;
	up->in_txn = false;
}

/* deliver - hand a result to the waiting caller, which may free up: the
 * reply is moved out of up first */
static void deliver(struct upstream *up, struct smtp_reply *reply, const char *fail)
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

/* fail - close the session and report a 4xx line built from fmt */
static void fail(struct upstream *up, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct upstream *up, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	close_conn(up);
	deliver(up, NULL, line);
}

/* quoted - the current reply as one line for messages; caller frees */
static char *quoted(struct upstream *up)
{
	return smtp_reply_oneline(&up->reply, 300);
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
		close_conn(up);
		try_connect(up);
		break;
	case UP_GREETING:
		fail(up, "451 4.4.2 smart host %s: timed out waiting for the greeting", up->name);
		break;
	case UP_DATA_END:
		fail(up, "451 4.4.2 smart host %s: timed out after the end of data", up->name);
		break;
	default:
		fail(up, "451 4.4.2 smart host %s: timed out waiting for the reply to %s",
		     up->name, up->what);
		break;
	}
}

/* upstream_new - an unconnected session */
struct upstream *upstream_new(struct event_base *base, struct dns *dns, struct weir_config *cfg)
{
	struct upstream *up = xcalloc(1, sizeof(*up));

	up->base = base;
	up->dns = dns;
	dns_ref(dns);
	up->cfg = config_ref(cfg);
	up->timer = evtimer_new(base, timer_cb, up);
	up->kick = evtimer_new(base, start_later, up);
	smtp_reply_init(&up->reply);
	snprintf(up->name, sizeof(up->name), "%s", cfg->agent.smarthost);
	return up;
}

/* upstream_free - QUIT when idle, close, free */
void upstream_free(struct upstream *up)
{
	if (up == NULL)
		return;
	if (up->query != NULL)
		dns_cancel(up->query);
	if (up->bev != NULL && up->state == UP_READY &&
	    evbuffer_get_length(bufferevent_get_output(up->bev)) == 0) {
		/* Best effort, without waiting: the socket is writable and
		 * empty, so six bytes go out at once. */
		ssize_t n = send(bufferevent_getfd(up->bev), "QUIT\r\n", 6, MSG_NOSIGNAL);
		(void)n;
	}
	close_conn(up);
	event_free(up->timer);
	event_free(up->kick);
	if (up->msg != NULL)
		evbuffer_free(up->msg);
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
	snprintf(up->name, sizeof(up->name), "%s[%s]:%u", up->ep.host, ip, up->ep.port);
}

/* try_connect - connect to the next address, or give up */
static void try_connect(struct upstream *up)
{
	struct sockaddr_storage *ss;
	socklen_t len;

	if (up->next_addr >= up->naddrs) {
		fail(up, "451 4.4.1 smart host %s unreachable: %s", up->ep.host, up->last_err);
		return;
	}
	ss = &up->addrs[up->next_addr++];
	set_name(up, ss);
	if (ss->ss_family == AF_INET) {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)up->ep.port);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)up->ep.port);
		len = sizeof(struct sockaddr_in6);
	}
	up->bev = bufferevent_socket_new(up->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(up->bev, up_read_cb, NULL, up_event_cb, up);
	up->state = UP_CONNECTING;
	arm(up, up->cfg->agent.connect_timeout);
	if (bufferevent_socket_connect(up->bev, (struct sockaddr *)ss, (int)len) < 0) {
		snprintf(up->last_err, sizeof(up->last_err), "%s", strerror(errno));
		close_conn(up);
		try_connect(up);
	}
}

/* resolved - the smart host's addresses are known */
static void resolved(void *arg, const struct sockaddr_storage *addrs, size_t n, const char *err)
{
	struct upstream *up = arg;

	up->query = NULL;
	if (n == 0) {
		fail(up, "451 4.4.1 smart host %s unreachable: %s", up->ep.host, err);
		return;
	}
	memcpy(up->addrs, addrs, n * sizeof(addrs[0]));
	up->naddrs = n;
	up->next_addr = 0;
	try_connect(up);
}

/* start_later - begin connecting from the event loop (no re-entrancy) */
static void start_later(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;
	struct in_addr a4;
	struct in6_addr a6;

	(void)fd;
	(void)what;
	memset(up->addrs, 0, sizeof(up->addrs));
	up->naddrs = up->next_addr = 0;
	snprintf(up->last_err, sizeof(up->last_err), "no address");
	if (inet_pton(AF_INET, up->ep.host, &a4) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&up->addrs[0];
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		up->naddrs = 1;
	} else if (inet_pton(AF_INET6, up->ep.host, &a6) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&up->addrs[0];
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		up->naddrs = 1;
	} else {
		up->state = UP_RESOLVING;
		up->query = dns_lookup_addr(up->dns, up->ep.host, resolved, up);
		return;
	}
	try_connect(up);
}

/* upstream_open - connect and greet; see upstream.h */
void upstream_open(struct upstream *up, upstream_cb *cb, void *ctx)
{
	const char *err;
	bool literal;

	close_conn(up);
	up->cb = cb;
	up->ctx = ctx;
	up->has_8bitmime = up->has_size = false;
	snprintf(up->what, sizeof(up->what), "connect");
	if (endpoint_parse_hostport(up->cfg->agent.smarthost, 25, &up->ep, &literal, &err) < 0) {
		/* config_load validated it; keep the promise of an async result */
		snprintf(up->ep.host, sizeof(up->ep.host), "%s", up->cfg->agent.smarthost);
	}
	up->state = UP_RESOLVING;
	event_active(up->kick, EV_TIMEOUT, 0);
}

/* parse_ehlo - note the extensions we use from a 250 EHLO reply */
static void parse_ehlo(struct upstream *up)
{
	const char *p = up->reply.text;

	up->has_8bitmime = up->has_size = false;
	while (p != NULL && *p) {
		size_t n = strcspn(p, "\n");
		if ((n == 8 && strncasecmp(p, "8BITMIME", 8) == 0))
			up->has_8bitmime = true;
		else if (n >= 4 && strncasecmp(p, "SIZE", 4) == 0 && (n == 4 || p[4] == ' '))
			up->has_size = true;
		p += n;
		if (*p == '\n')
			p++;
	}
}

/* send_line - write one command and wait secs for its reply */
static void send_line(struct upstream *up, const char *line, enum up_state st, long secs)
{
	log_debug("upstream %s: > %s", up->name, line);
	smtp_reply_clear(&up->reply);
	bufferevent_write(up->bev, line, strlen(line));
	bufferevent_write(up->bev, "\r\n", 2);
	up->state = st;
	arm(up, secs);
}

/* greeted - the reply to the greeting, EHLO or HELO is complete */
static void greeted(struct upstream *up)
{
	char *q, line[300];
	int code = up->reply.code;

	if (up->state == UP_GREETING && code == 220) {
		snprintf(line, sizeof(line), "EHLO %s", up->cfg->agent.helo_name);
		send_line(up, line, UP_EHLO, up->cfg->agent.command_timeout);
		return;
	}
	if (up->state == UP_EHLO && code / 100 == 5) {
		snprintf(line, sizeof(line), "HELO %s", up->cfg->agent.helo_name);
		send_line(up, line, UP_HELO, up->cfg->agent.command_timeout);
		return;
	}
	if (code / 100 == 2 && up->state != UP_GREETING) {
		if (up->state == UP_EHLO)
			parse_ehlo(up);
		up->state = UP_READY;
		evtimer_del(up->timer);
		deliver(up, &up->reply, NULL);
		return;
	}
	q = quoted(up);
	fail(up, "451 4.4.0 smart host %s refused the session: %s said: %s", up->ep.host,
	     up->name, q);
	free(q);
}

/* got_reply - one complete reply for the current step */
static void got_reply(struct upstream *up)
{
	if (log_level_enabled(LOG_LEVEL_DEBUG)) {
		char *q = quoted(up);
		log_debug("upstream %s: < %s", up->name, q);
		free(q);
	}
	switch (up->state) {
	case UP_GREETING:
	case UP_EHLO:
	case UP_HELO:
		greeted(up);
		return;
	case UP_DATA_CMD:
		if (up->reply.code == 354) {
			struct evbuffer *out = bufferevent_get_output(up->bev);
			evbuffer_add_buffer(out, up->msg);
			evbuffer_add(out, ".\r\n", 3);
			smtp_reply_clear(&up->reply);
			up->state = UP_DATA_END;
			snprintf(up->what, sizeof(up->what), "end of data");
			arm(up, up->cfg->agent.data_timeout);
			return;
		}
		break;
	case UP_COMMAND:
	case UP_DATA_END:
		break;
	default:
		log_debug("upstream %s: unexpected reply ignored", up->name);
		return;
	}
	evtimer_del(up->timer);
	if (up->state == UP_DATA_END)
		up->in_txn = false;
	up->state = UP_READY;
	if (up->reply.code == 421) {
		/* The server is closing the session; report the reply, then
		 * forget the connection so the next MAIL reconnects. */
		struct smtp_reply r = up->reply;
		smtp_reply_init(&up->reply);
		close_conn(up);
		deliver(up, &r, NULL);
		return;
	}
	deliver(up, &up->reply, NULL);
}

/* up_read_cb - reply lines from the smart host */
static void up_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream *up = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *err;
	size_t len;
	char *line;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		int r;
		if (up->state == UP_READY || up->state == UP_CONNECTING) {
			free(line);
			continue; /* nothing asked: ignore */
		}
		r = smtp_reply_feed(&up->reply, line, len, &err);
		free(line);
		if (r < 0) {
			fail(up, "451 4.4.0 smart host %s: bad reply to %s: %s", up->name,
			     up->what, err);
			return;
		}
		if (r == 1) {
			got_reply(up);
			/* up may be freed now: touch nothing */
			return;
		}
	}
	if (evbuffer_get_length(in) > SMTP_REPLY_MAX_LINE + 2)
		fail(up, "451 4.4.0 smart host %s: reply line too long", up->name);
}

/* up_event_cb - connected, closed or failed */
static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream *up = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		up->state = UP_GREETING;
		snprintf(up->what, sizeof(up->what), "greeting");
		bufferevent_enable(up->bev, EV_READ);
		return;
	}
	if (up->state == UP_CONNECTING) {
		int e = EVUTIL_SOCKET_ERROR();
		snprintf(up->last_err, sizeof(up->last_err), "%s",
			 e ? evutil_socket_error_to_string(e) : "connection failed");
		close_conn(up);
		try_connect(up);
		return;
	}
	if (up->state == UP_READY || up->state == UP_IDLE) {
		log_debug("upstream %s: connection closed while idle", up->name);
		close_conn(up);
		return;
	}
	fail(up, "451 4.4.2 smart host %s: lost connection while waiting for the reply to %s",
	     up->name, up->what);
}

/* upstream_command - send a command, wait for its reply */
void upstream_command(struct upstream *up, const char *line, upstream_cb *cb, void *ctx)
{
	size_t n = strcspn(line, " ");

	up->cb = cb;
	up->ctx = ctx;
	snprintf(up->what, sizeof(up->what), "%.*s", (int)(n < 15 ? n : 15), line);
	send_line(up, line, UP_COMMAND, up->cfg->agent.command_timeout);
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
	send_line(up, "DATA", UP_DATA_CMD, up->cfg->agent.command_timeout);
}

bool upstream_ready(const struct upstream *up)
{
	return up->state == UP_READY && up->bev != NULL;
}

bool upstream_has_8bitmime(const struct upstream *up)
{
	return up->has_8bitmime;
}

bool upstream_has_size(const struct upstream *up)
{
	return up->has_size;
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
