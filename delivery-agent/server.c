/* server - the LMTP/ESMTP server side of weir-agent (RFC 5321, RFC 2033)
 *
 * Commands are taken one at a time from the input buffer; while one
 * waits for the smart host (client->busy) further pipelined input stays
 * buffered, so replies go out in order. The exception: RCPTs going on to
 * a smart host that pipelines are sent without waiting (relay.c keeps
 * them in c->flight); meanwhile only further RCPTs are read, and a reply
 * that is ready at once waits behind the ones in flight. The message is collected whole
 * (CRLF-normalized, bare CRs dropped, dot-stuffing kept as received)
 * before anything is sent upstream, so a client that disconnects in
 * DATA causes nothing to be relayed. */
#include "autoconf.h"

#include <arpa/inet.h>
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
#include <sys/un.h>
#include <unistd.h>

#include "delivery-agent/agent.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"

#define DATA_CHUNK 65536 /* longest piece of a data line held at once */

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_process(struct client *c);

/* idle_arm - restart the idle timer */
static void idle_arm(struct client *c)
{
	struct timeval tv = {c->cfg->agent.idle_timeout, 0};

	evtimer_add(c->idle, &tv);
}

/* idle_cb - the client was silent for agent.idle_timeout */
static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (c->busy) {
		idle_arm(c); /* we are the slow one, not the client */
		return;
	}
	log_info("conn=%lu idle timeout", c->id);
	client_close(c, "421 4.4.2 idle timeout, closing connection");
}

/* format_peer - text for the log */
static void format_peer(const struct sockaddr *sa, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa == NULL || sa->sa_family == AF_UNIX) {
		snprintf(buf, size, "unix");
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(s->sin6_port));
	}
}

/* client_accept - a new connection from the MTA */
void client_accept(struct agent *a, int fd, const struct sockaddr *sa, bool lmtp)
{
	struct weir_config *cfg = config_current();
	struct client *c;

	if (a->stopping || a->nclients >= (size_t)cfg->agent.max_clients) {
		static const char busy[] = "421 4.3.2 too many connections, try again later\r\n";
		ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		(void)n;
		log_warning("refused connection: %s", a->stopping ? "shutting down" : "max_clients reached");
		close(fd);
		config_unref(cfg);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->agent = a;
	c->cfg = cfg;
	c->id = ++a->next_id;
	c->lmtp = lmtp;
	format_peer(sa, c->peer, sizeof(c->peer));
	c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->idle = evtimer_new(a->base, idle_cb, c);
	c->next = a->clients;
	if (a->clients)
		a->clients->prev = c;
	a->clients = c;
	a->nclients++;
	log_info("conn=%lu connect from %s proto=%s", c->id, c->peer, lmtp ? "lmtp" : "smtp");
	client_reply(c, "220 %s %s weir-agent", cfg->hostname, lmtp ? "LMTP" : "ESMTP");
	idle_arm(c);
}

/* client_reply - one reply line */
void client_reply(struct client *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	log_debug("conn=%lu > %s", c->id, line);
	if (c->nflight > 0 && !c->flight_reply && !c->closing) {
		/* answered at once, but after RCPTs still in flight */
		struct flight *f = &c->flight[c->nflight - 1];
		size_t had = f->after ? strlen(f->after) : 0;
		f->after = xrealloc(f->after, had + (size_t)n + 3);
		memcpy(f->after + had, line, (size_t)n);
		memcpy(f->after + had + n, "\r\n", 3);
		return;
	}
	bufferevent_write(c->bev, line, (size_t)n);
	bufferevent_write(c->bev, "\r\n", 2);
}

/* client_error - reply with a protocol error; too many of them: 421 */
static void client_error(struct client *c, const char *line)
{
	client_reply(c, "%s", line);
	if (++c->errors > c->cfg->agent.max_errors) {
		log_warning("conn=%lu too many errors", c->id);
		client_close(c, "421 4.7.0 too many errors, closing connection");
	}
}

/* txn_reset - forget the transaction */
void txn_reset(struct client *c)
{
	struct txn *t = &c->txn;

	relay_txn_end(c);
	free(t->from);
	if (t->msg)
		evbuffer_free(t->msg);
	memset(t, 0, sizeof(*t));
	if (c->state != CL_START)
		c->state = CL_READY;
}

/* client_free - close the connection and free everything of it */
void client_free(struct client *c)
{
	struct agent *a = c->agent;

	log_info("conn=%lu disconnect from %s", c->id, c->peer);
	txn_reset(c);
	free(c->flight);
	bufferevent_free(c->bev);
	event_free(c->idle);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nclients--;
	config_unref(c->cfg);
	free(c);
	agent_client_gone(a);
}

/* client_close - last reply, then close once it is written */
void client_close(struct client *c, const char *line)
{
	if (c->closing)
		return;
	c->closing = true; /* replies still in flight are not waited for */
	if (line != NULL)
		client_reply(c, "%s", line);
	bufferevent_disable(c->bev, EV_READ);
	evtimer_del(c->idle);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		client_free(c); /* callers return right after client_close */
}

/* client_shutdown - SIGTERM handling for one session */
void client_shutdown(struct client *c, bool force)
{
	if (force || (!c->busy && c->state != CL_MAIL && c->state != CL_DATA))
		client_close(c, "421 4.3.2 shutting down");
}

/* client_done - the smart host answered: continue with queued input */
void client_done(struct client *c)
{
	c->busy = false;
	if (c->closing)
		return;
	if (c->agent->stopping && c->state != CL_MAIL && c->state != CL_DATA) {
		client_close(c, "421 4.3.2 shutting down");
		return;
	}
	client_process(c);
}

/* hello - HELO, EHLO or LHLO */
static void hello(struct client *c, enum smtp_verb verb, const char *arg)
{
	bool want_lhlo = c->lmtp;

	if ((verb == CMD_LHLO) != want_lhlo) {
		client_error(c, want_lhlo ? "500 5.5.1 this is LMTP: use LHLO"
					  : "500 5.5.1 LHLO is for LMTP; use EHLO");
		return;
	}
	if (arg[0] == '\0') {
		client_error(c, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	/* A new greeting resets the transaction (RFC 5321 4.1.4); the
	 * upstream one is reset at the next MAIL (relay_mail). */
	txn_reset(c);
	c->state = CL_READY;
	if (verb == CMD_HELO) {
		client_reply(c, "250 %s", c->cfg->hostname);
		return;
	}
	client_reply(c, "250-%s", c->cfg->hostname);
	client_reply(c, "250-PIPELINING");
	client_reply(c, "250-SIZE %lld", c->cfg->agent.max_message_size);
	client_reply(c, "250-8BITMIME");
	client_reply(c, "250-SMTPUTF8");
	client_reply(c, "250-DSN");
	client_reply(c, "250 ENHANCEDSTATUSCODES");
}

/* cmd_mail - check MAIL and hand it to the relay */
static void cmd_mail(struct client *c, const char *arg)
{
	const char *err;

	if (c->state == CL_START) {
		client_error(c, "503 5.5.1 send LHLO/EHLO first");
		return;
	}
	if (c->state != CL_READY) {
		client_error(c, "503 5.5.1 nested MAIL command");
		return;
	}
	if (smtp_parse_mail(arg, &c->pending_mail, &err) < 0) {
		client_error(c, err);
		return;
	}
	if (c->pending_mail.size > c->cfg->agent.max_message_size) {
		client_reply(c, "552 5.3.4 message too large (limit %lld bytes)",
			     c->cfg->agent.max_message_size);
		return;
	}
	c->busy = true;
	relay_mail(c);
}

/* cmd_rcpt - check RCPT and hand it to the relay */
static void cmd_rcpt(struct client *c, const char *arg)
{
	const char *err;

	if (c->state != CL_MAIL) {
		client_error(c, "503 5.5.1 need MAIL before RCPT");
		return;
	}
	if (smtp_parse_rcpt_params(arg, &c->pending_rcpt, c->txn.mail.smtputf8, &err) < 0) {
		client_error(c, err);
		return;
	}
	if (c->txn.nrequested >= (size_t)c->cfg->agent.max_recipients) {
		client_reply(c, "452 4.5.3 too many recipients");
		return;
	}
	c->txn.nrequested++;
	c->busy = true;
	relay_rcpt(c);
}

/* cmd_data - start reading the message */
static void cmd_data(struct client *c, const char *arg)
{
	if (arg[0] != '\0') {
		client_error(c, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (c->state != CL_MAIL) {
		client_error(c, "503 5.5.1 need MAIL and RCPT before DATA");
		return;
	}
	if (c->txn.nrcpts == 0) {
		client_reply(c, "554 5.5.1 no valid recipients");
		return;
	}
	c->txn.msg = evbuffer_new();
	c->txn.at_bol = true;
	c->state = CL_DATA;
	client_reply(c, "354 End data with <CR><LF>.<CR><LF>");
}

/* command - one command line */
static void command(struct client *c, const char *line)
{
	struct smtp_cmd cmd;

	log_debug("conn=%lu < %s", c->id, line);
	smtp_cmd_parse(line, &cmd);
	switch (cmd.verb) {
	case CMD_HELO:
	case CMD_EHLO:
	case CMD_LHLO:
		hello(c, cmd.verb, cmd.arg);
		break;
	case CMD_MAIL:
		cmd_mail(c, cmd.arg);
		break;
	case CMD_RCPT:
		cmd_rcpt(c, cmd.arg);
		break;
	case CMD_DATA:
		cmd_data(c, cmd.arg);
		break;
	case CMD_RSET:
		c->busy = true;
		relay_rset(c);
		break;
	case CMD_NOOP:
		client_reply(c, "250 2.0.0 Ok");
		break;
	case CMD_QUIT:
		client_close(c, "221 2.0.0 Bye");
		break;
	case CMD_VRFY:
		client_reply(c, "252 2.5.0 cannot verify, but will try to deliver");
		break;
	case CMD_HELP:
		client_reply(c, "214 2.0.0 see RFC 5321 and RFC 2033");
		break;
	case CMD_NOTIMPL:
		client_error(c, "502 5.5.1 command not implemented");
		break;
	case CMD_UNKNOWN:
		client_error(c, "500 5.5.2 command not recognized");
		break;
	}
}

/* data_line - one received message line (no LF; CR already removed) */
static void data_line(struct client *c, const char *s, size_t n, bool complete)
{
	struct txn *t = &c->txn;
	size_t add = n + (complete ? 2 : 0);

	if (t->too_big || t->msg_size + add > (size_t)c->cfg->agent.max_message_size) {
		t->too_big = true;
		evbuffer_drain(t->msg, evbuffer_get_length(t->msg));
	} else {
		evbuffer_add(t->msg, s, n);
		if (complete)
			evbuffer_add(t->msg, "\r\n", 2);
	}
	t->msg_size += add;
	t->at_bol = complete;
}

/* drop_bare_cr - remove CRs from s in place: only CRLF ends a line */
static size_t drop_bare_cr(char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++)
		if (s[i] != '\r')
			s[o++] = s[i];
	return o;
}

/* data_end - the final dot was read */
static void data_end(struct client *c)
{
	if (c->txn.too_big) {
		char line[128];
		snprintf(line, sizeof(line), "552 5.3.4 message too large (limit %lld bytes)",
			 c->cfg->agent.max_message_size);
		for (size_t i = 0; i < (c->lmtp ? c->txn.nrcpts : 1); i++) {
			client_reply(c, "%s", line);
			relay_log(c, c->lmtp ? c->txn.rcpts[i].addr : NULL, "bounced", line);
		}
		/* the upstream transaction is reset at the next MAIL */
		txn_reset(c);
		if (c->agent->stopping)
			client_close(c, "421 4.3.2 shutting down");
		return;
	}
	c->busy = true;
	relay_data(c);
}

/* read_data - consume message input; 1 = go on, 0 = need more input */
static int read_data(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	size_t n, len;
	char *buf;

	if (p.pos < 0) {
		len = evbuffer_get_length(in);
		if (len < DATA_CHUNK)
			return 0;
		/* a very long line: store a piece, keep a trailing CR back */
		buf = xmalloc(len);
		evbuffer_copyout(in, buf, len);
		if (buf[len - 1] == '\r')
			len--;
		evbuffer_drain(in, len);
		n = drop_bare_cr(buf, len);
		data_line(c, buf, n, false);
		free(buf);
		return 1;
	}
	len = (size_t)p.pos;
	buf = xmalloc(len + 1);
	evbuffer_remove(in, buf, len + 1);
	n = drop_bare_cr(buf, len);
	if (c->txn.at_bol && n == 1 && buf[0] == '.' ) {
		free(buf);
		data_end(c);
		return 1;
	}
	data_line(c, buf, n, true);
	free(buf);
	return 1;
}

/* read_command - take one command line; 1 = handled, 0 = need input */
static int read_command(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	size_t len;
	char *line;

	if (p.pos < 0) {
		len = evbuffer_get_length(in);
		if (len <= SMTP_CMD_MAX_LINE + 1)
			return 0;
		evbuffer_drain(in, len);
		if (!c->skip_line) {
			c->skip_line = true;
			client_error(c, "500 5.5.2 line too long");
		}
		return 0;
	}
	len = (size_t)p.pos;
	if (c->skip_line || len > SMTP_CMD_MAX_LINE + 1) {
		evbuffer_drain(in, len + 1);
		if (!c->skip_line)
			client_error(c, "500 5.5.2 line too long");
		c->skip_line = false;
		return 1;
	}
	line = xmalloc(len + 1);
	evbuffer_remove(in, line, len + 1);
	line[len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	command(c, line);
	free(line);
	return 1;
}

/* client_next_is_rcpt - a complete RCPT line waits in the input */
bool client_next_is_rcpt(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	char head[8];

	if (p.pos < (ev_ssize_t)sizeof(head) || p.pos > SMTP_CMD_MAX_LINE + 1)
		return false;
	if (evbuffer_copyout(in, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
		return false;
	return strncasecmp(head, "RCPT TO:", sizeof(head)) == 0;
}

/* client_process - handle buffered input until we must wait */
static void client_process(struct client *c)
{
	while (!c->busy && !c->closing) {
		int r;
		if (c->nflight > 0 && !client_next_is_rcpt(c)) {
			c->busy = true; /* the flight lands first */
			break;
		}
		r = c->state == CL_DATA ? read_data(c) : read_command(c);
		if (r == 0)
			break;
	}
}

/* client_read_cb - input from the MTA */
static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	idle_arm(c);
	client_process(c);
}

/* client_write_cb - output drained: finish closing */
static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (c->closing)
		client_free(c);
}

/* client_event_cb - the MTA went away (possibly in the middle of DATA:
 * nothing was sent upstream then, and the upstream session is closed
 * without the final dot) */
static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->state == CL_DATA || c->busy)
			log_warning("conn=%lu client disconnected in a transaction; nothing was relayed"
				    " for it unless the smart host already had the data", c->id);
		client_free(c);
	}
}
