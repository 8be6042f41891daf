/* httpd - a small HTTP server for metrics and status pages
 *
 * A thin layer over libmicrohttpd: we bind the listening socket ourselves
 * (so that a bind failure comes back as errno text, and port 0 works), then
 * hand it to MHD, which serves it on its own polling thread with a
 * connection limit and an idle timeout. The raw request URI is captured by
 * the URI log callback so that the handler sees the query string as sent.
 */
#include "autoconf.h"

#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define HTTPD_CONNECTION_LIMIT 32
#define HTTPD_PER_IP_LIMIT     16
#define HTTPD_TIMEOUT_SECONDS  10
#define HTTPD_REALM            "weir"

struct httpd {
	struct MHD_Daemon *mhd;
	char *auth; /* "user:password" or NULL */
	httpd_handler_fn *handler;
	void *ctx;
	unsigned port;
};

/* parse_listen - "A.B.C.D:PORT" or "[V6]:PORT" into a socket address */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len_r,
                        const char **err_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = listen;
	size_t hlen;
	char *end;
	long port;

	if (!listen || !*listen) {
		*err_r = "empty listen address";
		return -1;
	}
	if (*listen == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':') {
			*err_r = "expected [IPV6]:PORT";
			return -1;
		}
		h = listen + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || strchr(listen, ':') != colon) {
			*err_r = "expected HOST:PORT (IPv6 in brackets: [::1]:9155)";
			return -1;
		}
		hlen = (size_t)(colon - listen);
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*err_r = "bad host address";
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || port < 0 || port > 65535) {
		*err_r = "port must be a number from 0 to 65535";
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	if (*listen == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			*err_r = "bracketed host must be an IPv6 address";
			return -1;
		}
		*len_r = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
			*err_r = "host must be an IPv4 address (or [IPv6])";
			return -1;
		}
		*len_r = sizeof(*s4);
	}
	return 0;
}

int httpd_listen_check(const char *listen, const char **err_r)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return parse_listen(listen, &ss, &len, err_r);
}

int httpd_listen_is_loopback(const char *listen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err;

	if (parse_listen(listen, &ss, &len, &err) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}

/* bind_listen - a listening socket for ss, or -1 with *err_r */
static int bind_listen(const struct sockaddr_storage *ss, socklen_t len, unsigned *port_r,
                       const char **err_r)
{
	static _Thread_local char buf[160];
	int fd, on = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 64) < 0)
		goto fail;
	{
		struct sockaddr_storage got;
		socklen_t glen = sizeof(got);
		if (getsockname(fd, (struct sockaddr *)&got, &glen) < 0)
			goto fail;
		*port_r =
		    ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
		                                   : ((struct sockaddr_in6 *)&got)->sin6_port);
	}
	return fd;
fail:
	snprintf(buf, sizeof(buf), "%s", strerror(errno));
	*err_r = buf;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* consttime_eq - compare a to the secret b without an early exit on the
 * first difference (the time depends on the lengths only) */
static int consttime_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char diff = (unsigned char)(alen != blen);
	size_t n = alen > blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		unsigned char y = i < blen ? (unsigned char)b[i] : 0;
		diff |= (unsigned char)(x ^ y);
	}
	return diff == 0;
}

/* auth_ok - whether the request carries the configured basic credentials */
static int auth_ok(const struct httpd *h, struct MHD_Connection *conn)
{
	char *pass = NULL, *user;
	int ok = 0;

	user = MHD_basic_auth_get_username_password(conn, &pass);
	if (user && pass) {
		size_t ulen = strlen(user), plen = strlen(pass);
		char *got = xmalloc(ulen + plen + 2);
		memcpy(got, user, ulen);
		got[ulen] = ':';
		memcpy(got + ulen + 1, pass, plen + 1);
		ok = consttime_eq(got, ulen + plen + 1, h->auth, strlen(h->auth));
		memset(got, 0, ulen + plen + 1);
		free(got);
	}
	if (user)
		MHD_free(user);
	if (pass)
		MHD_free(pass);
	return ok;
}

/* queue_text - a short plain-text answer (errors) */
static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                  int auth_fail)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (auth_fail)
		ret = MHD_queue_basic_auth_fail_response(conn, HTTPD_REALM, r);
	else
		ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* answer - MHD's access handler: auth, method, then the caller's handler */
static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	struct httpd *h = cls;
	struct httpd_request req;
	struct httpd_response resp = {.status = 200};
	struct MHD_Response *r;
	const char *raw = *con_cls, *q;
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	if (*upload_data_size != 0) {
		*upload_data_size = 0; /* a body we do not want: discard */
		return MHD_YES;
	}
	if (h->auth && !auth_ok(h, conn))
		return queue_text(conn, MHD_HTTP_UNAUTHORIZED, "authentication required\n", 1);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", 0);

	q = raw ? strchr(raw, '?') : NULL;
	req.method = method;
	req.path = url;
	req.query = q ? q + 1 : "";
	h->handler(h->ctx, &req, &resp);

	if (resp.body && resp.body_len == 0)
		resp.body_len = strlen(resp.body);
	if (resp.status < 100 || resp.status > 599)
		resp.status = 500;
	if (resp.body)
		r = MHD_create_response_from_buffer(resp.body_len, resp.body,
		                                    MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(resp.body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        resp.content_type ? resp.content_type
	                                          : "text/plain; charset=utf-8");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (resp.cache_control)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, resp.cache_control);
	ret = MHD_queue_response(conn, (unsigned)resp.status, r);
	MHD_destroy_response(r);
	return ret;
}

/* uri_log - keep the raw request URI (with its query) for answer() */
static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)conn;
	return xstrdup(uri ? uri : "");
}

/* completed - free what uri_log kept */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

/* mhd_log - libmicrohttpd's own messages, at debug level: most are about
 * what a client sent (bad auth header, closed early), and a start failure
 * reaches the caller through httpd_start's error anyway */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_debug("httpd: %s", buf);
}

struct httpd *httpd_start(const char *listen, const char *auth, httpd_handler_fn *handler,
                          void *ctx, const char **err_r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct httpd *h;
	unsigned port = 0;
	int fd;

	if (parse_listen(listen, &ss, &len, err_r) < 0)
		return NULL;
	if (auth && *auth && !strchr(auth, ':')) {
		*err_r = "auth must be user:password";
		return NULL;
	}
	fd = bind_listen(&ss, len, &port, err_r);
	if (fd < 0)
		return NULL;
	h = xcalloc(1, sizeof(*h));
	h->auth = auth && *auth ? xstrdup(auth) : NULL;
	h->handler = handler;
	h->ctx = ctx;
	h->port = port;
	h->mhd =
	    MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
	                         (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	                     0, NULL, NULL, answer, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	                     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
	                     (unsigned)HTTPD_CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                     (unsigned)HTTPD_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	                     (unsigned)HTTPD_TIMEOUT_SECONDS, MHD_OPTION_URI_LOG_CALLBACK, uri_log,
	                     NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	if (!h->mhd) {
		/* MHD may or may not have closed the socket it was given */
		if (fcntl(fd, F_GETFD) != -1)
			close(fd);
		free(h->auth);
		free(h);
		*err_r = "cannot start the HTTP server thread";
		return NULL;
	}
	return h;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd); /* joins the thread, closes the socket */
	if (h->auth) {
		memset(h->auth, 0, strlen(h->auth));
		free(h->auth);
	}
	free(h);
}

unsigned httpd_port(const struct httpd *h)
{
	return h ? h->port : 0;
}

/* hexval - one hex digit, or -1 */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* url_decode - n octets of s, %XX and '+' decoded, in new memory */
static char *url_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
		           hexval(s[i + 2]) >= 0) {
			*o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

char *httpd_query_get(const char *query, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;
		char *key = url_decode(p, klen);
		int match = strlen(key) == nlen && memcmp(key, name, nlen) == 0;
		free(key);
		if (match)
			return eq ? url_decode(eq + 1, plen - klen - 1) : xstrdup("");
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}
