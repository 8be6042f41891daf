/* test-httpd - lib/httpd.c over loopback with a raw socket client: status
 * codes (200, 404, 405, 401), basic auth, HEAD, the raw query string,
 * bind failures and listen address parsing */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/httpd.h"
#include "lib/xalloc.h"
#include "tests/testlib.h"

static int calls;

/* handler - /hello, /query (echoes the raw query and one decoded value),
 * /teapot (a status of its own), 404 for the rest */
static void handler(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	(void)ctx;
	calls++;
	if (strcmp(req->path, "/hello") == 0) {
		resp->content_type = "text/plain; version=0.0.4";
		resp->body = xstrdup("hello world\n");
	} else if (strcmp(req->path, "/query") == 0) {
		char *since = httpd_query_get(req->query, "since");
		resp->body = xasprintf("%s|%s", req->query, since ? since : "(none)");
		free(since);
	} else if (strcmp(req->path, "/teapot") == 0) {
		resp->status = 418;
		resp->cache_control = "no-store";
	} else {
		resp->status = 404;
		resp->body = xstrdup("not found\n");
	}
}

/* request - send raw to 127.0.0.1 or ::1 at port; the whole answer
 * (malloc'd), or NULL */
static char *request(int family, unsigned port, const char *raw)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct timeval tv = {5, 0};
	char *buf = xmalloc(65536);
	size_t n = 0;
	ssize_t k;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_loopback;
		len = sizeof(*s6);
	}
	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, raw, strlen(raw)) != (ssize_t)strlen(raw)) {
		close(fd);
		free(buf);
		return NULL;
	}
	while (n + 1 < 65536 && (k = read(fd, buf + n, 65536 - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* status - the status code of an answer, or -1 */
static int status(const char *answer)
{
	int code;

	if (answer == NULL || sscanf(answer, "HTTP/1.%*d %d", &code) != 1)
		return -1;
	return code;
}

/* body - the body of an answer (after the blank line), or "" */
static const char *body(const char *answer)
{
	const char *p = answer ? strstr(answer, "\r\n\r\n") : NULL;

	return p ? p + 4 : "";
}

static int get(unsigned port, const char *method, const char *path, const char *auth,
               char **answer_r)
{
	char raw[1024];
	char *a;
	int code;

	snprintf(raw, sizeof(raw),
	         "%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s%sConnection: close\r\n\r\n", method,
	         path, auth ? "Authorization: Basic " : "", auth ? auth : "", auth ? "\r\n" : "");
	a = request(AF_INET, port, raw);
	code = status(a);
	if (answer_r)
		*answer_r = a;
	else
		free(a);
	return code;
}

static void test_plain(void)
{
	const char *err = NULL;
	struct httpd *h = httpd_start("127.0.0.1:0", NULL, handler, NULL, &err);
	unsigned port = httpd_port(h);
	char *a;

	test_begin("GET, HEAD, 404, 405, query string, own status");
	test_assert(h != NULL);
	test_assert(port > 0);
	test_assert(get(port, "GET", "/hello", NULL, &a) == 200);
	test_assert_str(body(a), "hello world\n");
	test_assert(a && strstr(a, "Content-Type: text/plain; version=0.0.4\r\n") != NULL);
	free(a);
	test_assert(get(port, "HEAD", "/hello", NULL, &a) == 200);
	test_assert_str(body(a), "");
	test_assert(a && strstr(a, "Content-Length: 12\r\n") != NULL);
	free(a);
	test_assert(get(port, "GET", "/nothing", NULL, NULL) == 404);
	calls = 0;
	test_assert(get(port, "POST", "/hello", NULL, &a) == 405);
	test_assert(a && strstr(a, "Allow: GET, HEAD\r\n") != NULL);
	free(a);
	test_assert(get(port, "DELETE", "/hello", NULL, NULL) == 405);
	test_assert(calls == 0); /* the handler never saw them */
	test_assert(get(port, "GET", "/query?since=24%20h&x=a+b", NULL, &a) == 200);
	test_assert_str(body(a), "since=24%20h&x=a+b|24 h");
	free(a);
	test_assert(get(port, "GET", "/query", NULL, &a) == 200);
	test_assert_str(body(a), "|(none)");
	free(a);
	test_assert(get(port, "GET", "/teapot", NULL, &a) == 418);
	test_assert(a && strstr(a, "Cache-Control: no-store\r\n") != NULL);
	free(a);
	httpd_stop(h);
	/* stopped: nothing listens there any more */
	test_assert(get(port, "GET", "/hello", NULL, NULL) == -1);
	test_end();
}

static void test_auth(void)
{
	const char *err = NULL;
	struct httpd *h = httpd_start("127.0.0.1:0", "admin:s3cret", handler, NULL, &err);
	unsigned port = httpd_port(h);
	char *a;

	test_begin("basic auth: 401 with WWW-Authenticate, 200 with the right password");
	test_assert(h != NULL);
	calls = 0;
	test_assert(get(port, "GET", "/hello", NULL, &a) == 401);
	test_assert(a && strstr(a, "WWW-Authenticate: Basic realm=\"weir\"") != NULL);
	free(a);
	/* admin:wrong, admin:s3cretX, admin (no colon), nobody:s3cret */
	test_assert(get(port, "GET", "/hello", "YWRtaW46d3Jvbmc=", NULL) == 401);
	test_assert(get(port, "GET", "/hello", "YWRtaW46czNjcmV0WA==", NULL) == 401);
	test_assert(get(port, "GET", "/hello", "YWRtaW4=", NULL) == 401);
	test_assert(get(port, "GET", "/hello", "bm9ib2R5OnMzY3JldA==", NULL) == 401);
	/* 401 comes before 405: no method is served to a stranger */
	test_assert(get(port, "POST", "/hello", NULL, NULL) == 401);
	test_assert(calls == 0);
	test_assert(get(port, "GET", "/hello", "YWRtaW46czNjcmV0", &a) == 200);
	test_assert_str(body(a), "hello world\n");
	free(a);
	test_assert(get(port, "POST", "/hello", "YWRtaW46czNjcmV0", NULL) == 405);
	httpd_stop(h);
	test_end();
}

static void test_listen(void)
{
	const char *err = NULL;
	struct httpd *h = httpd_start("127.0.0.1:0", NULL, handler, NULL, &err), *h2;
	char spec[64], *a;

	test_begin("bind failure, listen addresses, IPv6");
	test_assert(h != NULL);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", httpd_port(h));
	err = NULL;
	h2 = httpd_start(spec, NULL, handler, NULL, &err);
	test_assert(h2 == NULL);
	test_assert(err != NULL && strstr(err, "in use") != NULL);
	httpd_stop(h2);
	httpd_stop(h);

	test_assert(httpd_start("localhost:80", NULL, handler, NULL, &err) == NULL);
	test_assert(httpd_start("127.0.0.1", NULL, handler, NULL, &err) == NULL);
	test_assert(httpd_start("127.0.0.1:70000", NULL, handler, NULL, &err) == NULL);
	test_assert(httpd_start("::1:80", NULL, handler, NULL, &err) == NULL);
	test_assert(httpd_start("[127.0.0.1]:80", NULL, handler, NULL, &err) == NULL);
	test_assert(httpd_start("127.0.0.1:0", "nocolon", handler, NULL, &err) == NULL);
	test_assert(httpd_listen_check("[::1]:9155", &err) == 0);
	test_assert(httpd_listen_check("0.0.0.0:9155", &err) == 0);
	test_assert(httpd_listen_check("", &err) < 0);
	test_assert(httpd_listen_is_loopback("127.0.0.1:9155") == 1);
	test_assert(httpd_listen_is_loopback("127.3.2.1:9155") == 1);
	test_assert(httpd_listen_is_loopback("[::1]:9155") == 1);
	test_assert(httpd_listen_is_loopback("0.0.0.0:9155") == 0);
	test_assert(httpd_listen_is_loopback("[::]:9155") == 0);
	test_assert(httpd_listen_is_loopback("10.0.0.1:9155") == 0);
	test_assert(httpd_listen_is_loopback("nonsense") == 0);

	h = httpd_start("[::1]:0", NULL, handler, NULL, &err);
	if (h == NULL) {
		printf("# no IPv6 loopback here (%s): skipped\n", err);
	} else {
		snprintf(spec, sizeof(spec), "GET /hello HTTP/1.0\r\n\r\n");
		a = request(AF_INET6, httpd_port(h), spec);
		test_assert(status(a) == 200);
		test_assert_str(body(a), "hello world\n");
		free(a);
		httpd_stop(h);
	}
	test_end();
}

static void test_query_get(void)
{
	char *v;

	test_begin("httpd_query_get");
	v = httpd_query_get("a=1&since=24h&b", "since");
	test_assert_str(v, "24h");
	free(v);
	v = httpd_query_get("a=1&b", "b");
	test_assert_str(v, "");
	free(v);
	v = httpd_query_get("x%41=%7e%2", "xA");
	test_assert_str(v, "~%2");
	free(v);
	test_assert(httpd_query_get("a=1", "b") == NULL);
	test_assert(httpd_query_get("", "a") == NULL);
	test_assert(httpd_query_get("ab=1", "a") == NULL);
	test_end();
}

int main(void)
{
	test_plain();
	test_auth();
	test_listen();
	test_query_get();
	return test_exit_status();
}
