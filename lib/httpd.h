/* httpd - a small HTTP server for metrics and status pages (libmicrohttpd) */
#ifndef WEIR_HTTPD_H
#define WEIR_HTTPD_H

#include <stddef.h>

/*
 * The server runs on libmicrohttpd's own polling thread: the handler is
 * called from that thread (one request at a time), never from the caller's.
 * Only GET and HEAD reach the handler (405 otherwise; HEAD gets the headers
 * of the GET answer without the body). With auth set, a request without
 * matching HTTP basic credentials gets 401 before the handler runs.
 */

struct httpd;

struct httpd_request {
	const char *method; /* "GET" or "HEAD" */
	const char *path;   /* URL path, percent-decoded, without the query */
	const char *query;  /* raw query string after '?' ("" if none) */
};

struct httpd_response {
	int status;                /* 200 unless the handler sets it */
	const char *content_type;  /* static string; "text/plain; charset=utf-8" if NULL */
	char *body;                /* malloc'd by the handler; freed by httpd (NULL: empty) */
	size_t body_len;           /* octets of body; 0 with body set means strlen(body) */
	const char *cache_control; /* static string or NULL (no header) */
};

/* httpd_handler_fn - fill resp for req; resp arrives with status 200 and
 * everything else NULL/0 */
typedef void httpd_handler_fn(void *ctx, const struct httpd_request *req,
                              struct httpd_response *resp);

/* httpd_start - listen on "HOST:PORT" (an IPv4 literal, or an IPv6 literal in
 * brackets: "[::1]:9155") and serve. auth: NULL/"" for none, or
 * "user:password" (copied). Returns NULL with *err_r set (static or
 * thread-local text, valid until the next call) when the address is bad or
 * the bind fails. */
struct httpd *httpd_start(const char *listen, const char *auth, httpd_handler_fn *handler,
                          void *ctx, const char **err_r);
/* httpd_stop - stop listening, wait for the thread, free (NULL ok). The
 * handler is not called after this returns. */
void httpd_stop(struct httpd *h);
/* httpd_port - the bound port (useful with port 0 in tests) */
unsigned httpd_port(const struct httpd *h);

/* httpd_query_get - the percent-decoded value of name in a raw query
 * string ("a=1&b=x%20y"), or NULL when absent. Caller frees. */
char *httpd_query_get(const char *query, const char *name);

/* httpd_listen_check - 0 when listen is a "HOST:PORT" httpd_start accepts
 * (no socket is opened), else -1 with *err_r (static text) */
int httpd_listen_check(const char *listen, const char **err_r);
/* httpd_listen_is_loopback - 1 when listen ("HOST:PORT") names 127.0.0.0/8
 * or ::1, 0 otherwise (or when it does not parse) */
int httpd_listen_is_loopback(const char *listen);

#endif
