/* upstream - one SMTP client session to a smart host
 *
 * A small state machine on a libevent bufferevent: resolve (lib/dns) ->
 * connect (each address in turn) -> [implicit TLS] -> greeting -> EHLO
 * (HELO on 5xx) -> [STARTTLS -> TLS -> EHLO] -> [AUTH] -> ready; then
 * one command at a time. Every wait has a timer: agent.connect_timeout
 * for connect, TLS handshake and greeting, agent.command_timeout per
 * command, agent.data_timeout after the final dot. Any failure closes
 * the session and reports a complete 4xx reply line, so that the MTA
 * keeps the message; upstream_failure tells the pool which step failed.
 *
 * TLS (tls.c) is bufferevent_openssl: a filter over the connection for
 * STARTTLS, a socket bufferevent for implicit TLS (port 465). AUTH
 * (auth.c) is never sent in clear unless the host says tls = "none";
 * secrets are never logged: AUTH lines are logged as "AUTH MECH
 * <hidden>" (auth_redact). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "delivery-agent/auth.h"
#include "delivery-agent/ehlo.h"
#include "delivery-agent/tls.h"
#include "delivery-agent/upstream.h"
#include "lib/dns.h"
#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

enum up_state {
	UP_IDLE,       /* not connected */
	UP_RESOLVING,
	UP_CONNECTING,
	UP_TLS,        /* handshake (implicit TLS, or after STARTTLS) */
	UP_GREETING,
	UP_EHLO,
	UP_HELO,
	UP_STARTTLS,   /* waiting for 220 to STARTTLS */
	UP_AUTH,       /* waiting for 334/235 */
	UP_READY,      /* between commands */
	UP_COMMAND,
	UP_DATA_CMD,   /* waiting for 354 */
	UP_DATA_END,   /* waiting for the reply to the final dot */
};

struct upstream {
	struct event_base *base;
	struct dns *dns;
	struct weir_config *cfg;
	const struct route_host *host;
	struct route_host legacy; /* upstream_new: agent.smarthost */
	struct bufferevent *bev;
	bool bev_owns_fd; /* false while a plain connection waits for implicit TLS */
	SSL *ssl;         /* the bufferevent's, once TLS started */
	struct event *timer;
	struct event *kick; /* starts a connection from the event loop */
	struct dns_query *query;
	enum up_state state;
	enum upstream_failure failure;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs, next_addr;
	char name[320];
	char address[INET6_ADDRSTRLEN + 10]; /* "ip:port", "[ip6]:port" */
	char last_err[160];
	char what[16]; /* command being answered, for messages */
	struct smtp_reply reply;
	struct smtp_reply ehlo; /* the last EHLO/HELO reply, for upstream_open's caller */
	struct ehlo_caps caps;
	bool helo_only;    /* HELO was answered, EHLO was not */
	bool tls_active, tls_verified;
	bool tls_fallback; /* "may": the handshake failed, this connection is clear */
	bool ehlo_after_tls; /* the EHLO that follows STARTTLS */
	const char *clear_why; /* why this session has no TLS, for the AUTH refusal */
	char tls_proto[24], tls_cipher[80];
	struct auth_client auth;
	enum auth_mech auth_used; /* of this session, for the log */
	char *auth_token;   /* XOAUTH2 bearer token: a copy, wiped when freed */
	const char *auth_err; /* our reason for cancelling the exchange ("*") */
	struct evbuffer *msg;
	bool in_txn;
	upstream_cb *cb;
	void *ctx;
};

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void try_connect(struct upstream *up);
static void start_later(evutil_socket_t fd, short what, void *arg);
static void tls_failed(struct upstream *up, const char *reason);

/* arm - (re)start the step timer */
static void arm(struct upstream *up, long secs)
{
	struct timeval tv = {secs, 0};

	evtimer_add(up->timer, &tv);
}

/* host_name - the host as configured, for messages */
static const char *host_name(const struct upstream *up)
{
	return up->host->host != NULL ? up->host->host : "";
}

/* forget_auth - wipe the secrets of the last AUTH exchange */
static void forget_auth(struct upstream *up)
{
	auth_secret_free(up->auth_token);
	up->auth_token = NULL;
	memset(&up->auth, 0, sizeof(up->auth));
	up->auth_err = NULL;
}

/* close_conn - drop the socket (no QUIT) */
static void close_conn(struct upstream *up)
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

/* opening - upstream_open has not answered yet */
static bool opening(const struct upstream *up)
{
	return up->state < UP_READY;
}

/* fail - close the session and report a 4xx line built from fmt; kind
 * is recorded when the session was being opened */
static void fail(struct upstream *up, enum upstream_failure kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct upstream *up, enum upstream_failure kind, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (opening(up))
		up->failure = kind;
	forget_auth(up);
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
	case UP_TLS:
		tls_failed(up, "the TLS handshake timed out");
		break;
	case UP_GREETING:
		fail(up, UPF_GREETING, "451 4.4.2 smart host %s: timed out waiting for the greeting",
		     up->name);
		break;
	case UP_DATA_END:
		fail(up, UPF_PROTOCOL, "451 4.4.2 smart host %s: timed out after the end of data",
		     up->name);
		break;
	default:
		fail(up, UPF_PROTOCOL,
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
	smtp_reply_init(&up->reply);
	smtp_reply_init(&up->ehlo);
	snprintf(up->name, sizeof(up->name), "%s:%d", host_name(up), host->port);
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
		 * empty, so QUIT goes out at once (through TLS when on). */
		evutil_socket_t fd = bufferevent_getfd(up->bev);
		struct bufferevent *under = bufferevent_get_underlying(up->bev);
		if (up->ssl == NULL) {
			ssize_t n = send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
			(void)n;
		} else if (SSL_write(up->ssl, "QUIT\r\n", 6) == 6 && under != NULL) {
			/* a filter: the record is in the connection's buffer */
			evbuffer_write(bufferevent_get_output(under), bufferevent_getfd(under));
		}
	}
	forget_auth(up);
	close_conn(up);
	event_free(up->timer);
	event_free(up->kick);
	if (up->msg != NULL)
		evbuffer_free(up->msg);
	smtp_reply_clear(&up->ehlo);
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
	snprintf(up->name, sizeof(up->name), "%s[%s]:%d", host_name(up), ip, up->host->port);
	snprintf(up->address, sizeof(up->address), ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
		 ip, up->host->port);
}

/* try_connect - connect to the next address, or give up */
static void try_connect(struct upstream *up)
{
	struct sockaddr_storage *ss;
	socklen_t len;
	bool implicit = up->host->tls == ROUTE_TLS_IMPLICIT;

	if (up->next_addr >= up->naddrs) {
		fail(up, UPF_CONNECT, "451 4.4.1 smart host %s unreachable: %s", host_name(up),
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
		fail(up, UPF_CONNECT, "451 4.4.1 smart host %s unreachable: %s", host_name(up),
		     err);
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
	const char *host = host_name(up);

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
	try_connect(up);
}

/* upstream_open - connect, TLS, greet, AUTH; see upstream.h */
void upstream_open(struct upstream *up, upstream_cb *cb, void *ctx)
{
	close_conn(up);
	forget_auth(up);
	up->cb = cb;
	up->ctx = ctx;
	up->failure = UPF_NONE;
	up->tls_fallback = false;
	up->auth_used = AUTH_MECH_NONE;
	memset(&up->caps, 0, sizeof(up->caps));
	up->helo_only = false;
	smtp_reply_clear(&up->ehlo);
	snprintf(up->what, sizeof(up->what), "connect");
	up->state = UP_RESOLVING;
	event_active(up->kick, EV_TIMEOUT, 0);
}

/* send_line - write one command and wait secs for its reply; shown is
 * what the debug log gets instead of the line (AUTH), or NULL */
static void send_line(struct upstream *up, const char *line, const char *shown,
		      enum up_state st, long secs)
{
	log_debug("upstream %s: > %s", up->name, shown ? shown : line);
	smtp_reply_clear(&up->reply);
	bufferevent_write(up->bev, line, strlen(line));
	bufferevent_write(up->bev, "\r\n", 2);
	up->state = st;
	arm(up, secs);
}

/* send_ehlo - EHLO (or HELO) with the host's name or agent.helo_name */
static void send_ehlo(struct upstream *up, const char *verb, enum up_state st)
{
	char line[300];
	const char *helo = up->host->helo != NULL && up->host->helo[0] != '\0'
				   ? up->host->helo
				   : up->cfg->agent.helo_name;

	snprintf(line, sizeof(line), "%s %s", verb, helo ? helo : "localhost");
	snprintf(up->what, sizeof(up->what), "%s", verb);
	send_line(up, line, NULL, st, up->cfg->agent.command_timeout);
}

/* tls_required - STARTTLS or implicit: the certificate is checked
 * (unless verify = false), and no TLS means no session */
static bool tls_required(const struct upstream *up)
{
	return up->host->tls == ROUTE_TLS_STARTTLS || up->host->tls == ROUTE_TLS_IMPLICIT;
}

/* verified_word - verified= of the session log line */
static const char *verified_word(const struct upstream *up)
{
	if (!up->tls_active || !tls_required(up))
		return "not-required";
	return up->tls_verified ? "yes" : "no";
}

/* log_session - the one line per opened session */
static void log_session(struct upstream *up)
{
	struct kvline kv;

	kv_init(&kv);
	kv_add(&kv, "host", host_name(up));
	kv_add(&kv, "address", up->address);
	if (up->tls_active)
		kv_addf(&kv, "tls", "%s/%s", up->tls_proto, up->tls_cipher);
	else
		kv_add(&kv, "tls", "none");
	kv_add(&kv, "verified", verified_word(up));
	kv_add(&kv, "auth", auth_mech_name(up->auth_used));
	log_info("upstream session %s", kv_str(&kv));
	kv_free(&kv);
}

/* session_ready - upstream_open succeeded: hand up the EHLO reply */
static void session_ready(struct upstream *up)
{
	forget_auth(up);
	evtimer_del(up->timer);
	up->state = UP_READY;
	log_session(up);
	deliver(up, &up->ehlo, NULL);
}

/* tls_failed - the handshake (or STARTTLS) failed: with "may" once more
 * to the same address without TLS, else the host failed */
static void tls_failed(struct upstream *up, const char *reason)
{
	if (up->host->tls == ROUTE_TLS_MAY && !up->tls_fallback) {
		log_warning("upstream %s: TLS failed (%s): connecting again without TLS (tls = "
			    "\"may\")",
			    up->name, reason);
		up->tls_fallback = true;
		up->clear_why = "TLS failed and tls = \"may\" went on without it";
		close_conn(up);
		up->next_addr--; /* the same address again */
		try_connect(up);
		return;
	}
	fail(up, UPF_TLS, "451 4.7.5 TLS with smart host %s failed: %s", host_name(up), reason);
}

/* start_tls - wrap the connection in TLS: a filter after STARTTLS, the
 * socket itself for implicit TLS */
static void start_tls(struct upstream *up)
{
	const char *ca = up->host->ca_file && up->host->ca_file[0] ? up->host->ca_file
			 : up->cfg->agent.tls_ca_file && up->cfg->agent.tls_ca_file[0]
				 ? up->cfg->agent.tls_ca_file
				 : NULL;
	bool verify = tls_required(up) && up->host->verify;
	struct bufferevent *bev;
	char err[256];
	SSL *ssl = tls_client_new(ca, verify, host_name(up), err, sizeof(err));

	if (ssl == NULL) {
		tls_failed(up, err);
		return;
	}
	evtimer_del(up->timer);
	if (up->host->tls == ROUTE_TLS_IMPLICIT) {
		/* the plain bufferevent only connected; the SSL one takes
		 * over its socket (it was made without BEV_OPT_CLOSE_ON_FREE) */
		evutil_socket_t fd = bufferevent_getfd(up->bev);
		bufferevent_free(up->bev);
		up->bev = NULL;
		bev = bufferevent_openssl_socket_new(up->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			evutil_closesocket(fd);
	} else {
		bev = bufferevent_openssl_filter_new(up->base, up->bev, ssl,
						     BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE);
		if (bev != NULL)
			up->bev = NULL; /* now owned by the filter */
	}
	up->bev_owns_fd = true;
	if (bev == NULL) {
		SSL_free(ssl);
		tls_failed(up, "cannot make a TLS bufferevent");
		return;
	}
	up->bev = bev;
	up->ssl = ssl;
	/* a server that closes without close_notify after QUIT is common */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setcb(bev, up_read_cb, NULL, up_event_cb, up);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	up->state = UP_TLS;
	snprintf(up->what, sizeof(up->what), "TLS handshake");
	arm(up, up->cfg->agent.connect_timeout);
}

/* tls_done - the handshake succeeded (and the certificate, when
 * verified, names the host) */
static void tls_done(struct upstream *up)
{
	const char *cipher = SSL_get_cipher_name(up->ssl);

	up->tls_active = true;
	up->tls_verified = tls_required(up) && up->host->verify;
	snprintf(up->tls_proto, sizeof(up->tls_proto), "%s", SSL_get_version(up->ssl));
	snprintf(up->tls_cipher, sizeof(up->tls_cipher), "%s", cipher ? cipher : "?");
	if (tls_required(up) && !up->host->verify)
		log_warning("upstream %s: TLS certificate NOT verified (verify = false: for a lab "
			    "only)",
			    up->name);
	if (up->host->tls == ROUTE_TLS_IMPLICIT) {
		up->state = UP_GREETING;
		snprintf(up->what, sizeof(up->what), "greeting");
		arm(up, up->cfg->agent.connect_timeout);
		return;
	}
	/* RFC 3207 4.2: forget what was learnt before TLS, ask again */
	memset(&up->caps, 0, sizeof(up->caps));
	up->ehlo_after_tls = true;
	send_ehlo(up, "EHLO", UP_EHLO);
}

/* mech_list - the offered mechanisms weir knows, for messages */
static const char *mech_list(unsigned bits, char *buf, size_t size)
{
	static const enum auth_mech all[] = {AUTH_MECH_PLAIN, AUTH_MECH_LOGIN, AUTH_MECH_CRAM_MD5,
					     AUTH_MECH_XOAUTH2};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if ((bits & all[i]) && n < size)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "",
					      auth_mech_name(all[i]));
	if (buf[0] == '\0')
		snprintf(buf, size, "none");
	return buf;
}

/* auth_wanted - the host logs in: an explicit mechanism, or "any" with
 * credentials or a token file */
static bool auth_wanted(const struct upstream *up)
{
	const struct route_host *h = up->host;

	if (h->auth == ROUTE_AUTH_NONE)
		return false;
	return h->auth != ROUTE_AUTH_ANY || h->credentials != NULL ||
	       (h->oauth2_token_file != NULL && h->oauth2_token_file[0] != '\0');
}

/* start_auth - AUTH with the host's credentials, or ready without */
static void start_auth(struct upstream *up)
{
	const struct route_host *h = up->host;
	const struct credential *cred;
	const char *err, *token = NULL;
	char buf[300], shown[64], *line;
	bool token_file = h->oauth2_token_file != NULL && h->oauth2_token_file[0] != '\0';
	enum auth_mech mech;

	if (!auth_wanted(up)) {
		session_ready(up);
		return;
	}
	if (!up->tls_active && h->tls != ROUTE_TLS_NONE) {
		fail(up, UPF_AUTH,
		     "451 4.7.8 smart host %s: weir sends AUTH only over TLS, and %s (%s)",
		     host_name(up), up->clear_why ? up->clear_why : "the session has no TLS",
		     up->name);
		return;
	}
	if (h->credentials == NULL) {
		fail(up, UPF_AUTH, "451 4.7.8 smart host %s: AUTH is set but no credentials",
		     host_name(up));
		return;
	}
	if ((cred = credential_find(up->cfg, h->credentials)) == NULL) {
		fail(up, UPF_AUTH,
		     "451 4.7.8 smart host %s: no credentials %s in agent.credentials_file",
		     host_name(up), h->credentials);
		return;
	}
	if (token_file && (h->auth == ROUTE_AUTH_ANY || h->auth == ROUTE_AUTH_XOAUTH2) &&
	    (token = auth_token(h->oauth2_token_file, buf, sizeof(buf))) == NULL) {
		fail(up, UPF_AUTH, "451 4.7.8 smart host %s: no XOAUTH2 token: %s", host_name(up),
		     buf);
		return;
	}
	mech = auth_choose(h->auth, up->caps.auth, token != NULL, &err);
	if (mech == AUTH_MECH_NONE) {
		fail(up, UPF_AUTH, "451 4.7.8 smart host %s: no AUTH mechanism to use: %s (offered: %s)",
		     host_name(up), err, mech_list(up->caps.auth, buf, sizeof(buf)));
		return;
	}
	up->auth.mech = mech;
	up->auth.user = cred->user;
	if (mech == AUTH_MECH_XOAUTH2) {
		up->auth_token = xstrdup(token);
		up->auth.secret = up->auth_token;
	} else {
		up->auth.secret = cred->secret;
	}
	line = auth_start(&up->auth);
	snprintf(up->what, sizeof(up->what), "AUTH");
	send_line(up, line, auth_redact(line, shown, sizeof(shown)), UP_AUTH,
		  up->cfg->agent.command_timeout);
	auth_secret_free(line);
}

/* auth_refused - our credentials were refused (535, 5.7.8): 451 4.7.8
 * for the administrator to fix, or the server's 5xx as it is */
static void auth_refused(struct upstream *up)
{
	const struct route_host *h = up->host;
	char *q = quoted(up);

	log_warning("upstream %s: AUTH %s as credentials %s refused: %s", up->name,
		    auth_mech_name(up->auth.mech), h->credentials, q);
	free(q);
	if (up->cfg->agent.auth_failure == 1 && up->reply.code / 100 == 5) {
		struct smtp_reply r = up->reply;
		smtp_reply_init(&up->reply);
		up->failure = UPF_AUTH;
		forget_auth(up);
		close_conn(up);
		deliver(up, &r, NULL);
		free(r.text);
		return;
	}
	fail(up, UPF_AUTH,
	     "451 4.7.8 smart host %s refused weir's credentials (%s in agent.credentials_file): "
	     "fix them",
	     host_name(up), h->credentials);
}

/* auth_reply - a reply during the AUTH exchange */
static void auth_reply(struct upstream *up)
{
	int code = up->reply.code;
	const char *err = NULL;
	char *resp, *q;

	if (code == 334 && up->auth_err == NULL) {
		resp = auth_continue(&up->auth, up->reply.text ? up->reply.text : "", &err);
		if (resp == NULL) {
			/* RFC 4954 4: "*" cancels; the server answers 501 */
			up->auth_err = err;
			send_line(up, "*", NULL, UP_AUTH, up->cfg->agent.command_timeout);
			return;
		}
		send_line(up, resp, "<hidden>", UP_AUTH, up->cfg->agent.command_timeout);
		auth_secret_free(resp);
		return;
	}
	if (code / 100 == 2 && up->auth_err == NULL) {
		up->auth_used = up->auth.mech;
		session_ready(up);
		return;
	}
	if (up->auth_err == NULL && (code == 535 || strcmp(up->reply.enhanced, "5.7.8") == 0)) {
		auth_refused(up);
		return;
	}
	q = quoted(up);
	fail(up, UPF_AUTH, "451 4.7.8 smart host %s: AUTH %s failed: %s%s%s said: %s",
	     host_name(up), auth_mech_name(up->auth.mech), up->auth_err ? up->auth_err : "",
	     up->auth_err ? "; " : "", up->name, q);
	free(q);
}

/* after_ehlo - STARTTLS when the host's tls asks for it, else AUTH */
static void after_ehlo(struct upstream *up)
{
	enum route_tls t = up->host->tls;

	if (!up->tls_active && !up->tls_fallback && (t == ROUTE_TLS_MAY || t == ROUTE_TLS_STARTTLS)) {
		if (up->caps.starttls) {
			snprintf(up->what, sizeof(up->what), "STARTTLS");
			send_line(up, "STARTTLS", NULL, UP_STARTTLS,
				  up->cfg->agent.command_timeout);
			return;
		}
		if (t == ROUTE_TLS_STARTTLS) {
			fail(up, UPF_TLS,
			     "451 4.7.5 TLS with smart host %s failed: %s does not offer STARTTLS",
			     host_name(up), up->name);
			return;
		}
		up->clear_why = "the server does not offer STARTTLS";
	}
	start_auth(up);
}

/* starttls_reply - 220: TLS; else go on in clear ("may") or fail */
static void starttls_reply(struct upstream *up)
{
	char *q;

	if (up->reply.code == 220) {
		/* Anything after the 220 was sent before TLS by someone who
		 * wants it read as if protected (CVE-2011-0411's mirror). */
		if (evbuffer_get_length(bufferevent_get_input(up->bev)) > 0) {
			fail(up, UPF_TLS,
			     "451 4.7.5 TLS with smart host %s failed: %s sent data after its 220 "
			     "to STARTTLS",
			     host_name(up), up->name);
			return;
		}
		start_tls(up);
		return;
	}
	q = quoted(up);
	if (up->host->tls == ROUTE_TLS_MAY) {
		log_info("upstream %s: STARTTLS refused (%s): going on without TLS", up->name, q);
		free(q);
		up->clear_why = "the server refused STARTTLS";
		start_auth(up);
		return;
	}
	fail(up, UPF_TLS, "451 4.7.5 TLS with smart host %s failed: STARTTLS refused: %s said: %s",
	     host_name(up), up->name, q);
	free(q);
}

/* greeted - the reply to the greeting, EHLO or HELO is complete */
static void greeted(struct upstream *up)
{
	char *q;
	int code = up->reply.code;

	if (up->state == UP_GREETING) {
		if (code == 220) {
			up->ehlo_after_tls = false;
			send_ehlo(up, "EHLO", UP_EHLO);
			return;
		}
		q = quoted(up);
		fail(up, UPF_GREETING, "451 4.4.0 smart host %s refused the session: %s said: %s",
		     host_name(up), up->name, q);
		free(q);
		return;
	}
	if (up->state == UP_EHLO && code / 100 == 5 && !up->ehlo_after_tls) {
		send_ehlo(up, "HELO", UP_HELO);
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
		after_ehlo(up);
		return;
	}
	q = quoted(up);
	fail(up, UPF_PROTOCOL, "451 4.4.0 smart host %s refused the session: %s said: %s",
	     host_name(up), up->name, q);
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
	case UP_STARTTLS:
		starttls_reply(up);
		return;
	case UP_AUTH:
		auth_reply(up);
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
	case UP_DATA_END:
		return true;
	default:
		return false;
	}
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
		if (!waiting_for_reply(up)) {
			free(line);
			continue; /* nothing asked: ignore */
		}
		r = smtp_reply_feed(&up->reply, line, len, &err);
		free(line);
		if (r < 0) {
			fail(up, up->state == UP_GREETING ? UPF_GREETING : UPF_PROTOCOL,
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
		fail(up, UPF_PROTOCOL, "451 4.4.0 smart host %s: reply line too long", up->name);
}

/* up_event_cb - connected, TLS up, closed or failed */
static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream *up = arg;
	char reason[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (up->state == UP_TLS) {
			tls_done(up);
			return;
		}
		if (up->host->tls == ROUTE_TLS_IMPLICIT) {
			start_tls(up);
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
		close_conn(up);
		try_connect(up);
		return;
	}
	if (up->state == UP_TLS) {
		reason[0] = '\0';
		tls_failure(bev, up->ssl,
			    what & BEV_EVENT_EOF ? "the server closed the connection during the "
						   "TLS handshake"
						 : "the TLS handshake failed",
			    reason, sizeof(reason));
		tls_failed(up, reason);
		return;
	}
	if (up->state == UP_READY || up->state == UP_IDLE) {
		log_debug("upstream %s: connection closed while idle", up->name);
		close_conn(up);
		return;
	}
	fail(up, up->state == UP_GREETING ? UPF_GREETING : UPF_PROTOCOL,
	     "451 4.4.2 smart host %s: lost connection while waiting for the reply to %s",
	     up->name, up->what);
}

/* upstream_command - send a command, wait for its reply */
void upstream_command(struct upstream *up, const char *line, upstream_cb *cb, void *ctx)
{
	size_t n = strcspn(line, " ");

	up->cb = cb;
	up->ctx = ctx;
	snprintf(up->what, sizeof(up->what), "%.*s", (int)(n < 15 ? n : 15), line);
	send_line(up, line, NULL, UP_COMMAND, up->cfg->agent.command_timeout);
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
	send_line(up, "DATA", NULL, UP_DATA_CMD, up->cfg->agent.command_timeout);
}

bool upstream_ready(const struct upstream *up)
{
	return up->state == UP_READY && up->bev != NULL;
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
	info->verified = verified_word(up);
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
	return host_name(up);
}
