/* endpoint - socket addresses written as text */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/endpoint.h"

static int parse_port(const char *s, size_t n, unsigned *port_r)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port_r = (unsigned)v;
	return 0;
}

static bool host_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '_'))
			return false;
	}
	return true;
}

int endpoint_parse_milter(const char *spec, struct endpoint *ep, const char **err_r)
{
	const char *rest, *at;

	memset(ep, 0, sizeof(*ep));
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		rest = strchr(spec, ':') + 1;
		if (rest[0] != '/') {
			*err_r = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(rest) >= sizeof(ep->path)) {
			*err_r = "unix socket path is too long";
			return -1;
		}
		ep->family = ENDPOINT_UNIX;
		strcpy(ep->path, rest);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0) {
		ep->family = ENDPOINT_INET;
		rest = spec + 5;
	} else if (strncmp(spec, "inet6:", 6) == 0) {
		ep->family = ENDPOINT_INET6;
		rest = spec + 6;
	} else {
		*err_r = "expected unix:/path, inet:PORT@HOST or inet6:PORT@HOST";
		return -1;
	}
	at = strchr(rest, '@');
	if (parse_port(rest, at ? (size_t)(at - rest) : strlen(rest), &ep->port) < 0) {
		*err_r = "port must be a number from 1 to 65535";
		return -1;
	}
	if (at != NULL) {
		size_t n = strlen(at + 1);
		if (n == 0 || n >= sizeof(ep->host) || !host_chars_ok(at + 1, n)) {
			*err_r = "bad host after '@'";
			return -1;
		}
		memcpy(ep->host, at + 1, n + 1);
	}
	return 0;
}

int endpoint_parse_hostport(const char *spec, unsigned default_port, struct endpoint *ep,
			    bool *literal_r, const char **err_r)
{
	const char *host, *colon;
	size_t hlen;

	memset(ep, 0, sizeof(*ep));
	ep->family = ENDPOINT_INET;
	*literal_r = false;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (close == NULL) {
			*err_r = "missing ']'";
			return -1;
		}
		host = spec + 1;
		hlen = (size_t)(close - host);
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] != '\0' && colon == NULL) {
			*err_r = "expected ':PORT' after ']'";
			return -1;
		}
		*literal_r = true;
	} else {
		host = spec;
		colon = strrchr(spec, ':');
		if (colon != NULL && strchr(spec, ':') != colon) {
			*err_r = "write an IPv6 address in brackets: [2001:db8::1]:25";
			return -1;
		}
		hlen = colon ? (size_t)(colon - spec) : strlen(spec);
	}
	if (hlen == 0 || hlen >= sizeof(ep->host) || !host_chars_ok(host, hlen)) {
		*err_r = "bad host name";
		return -1;
	}
	memcpy(ep->host, host, hlen);
	ep->host[hlen] = '\0';
	if (*literal_r) {
		struct in6_addr a6;
		struct in_addr a4;
		if (inet_pton(AF_INET6, ep->host, &a6) == 1)
			ep->family = ENDPOINT_INET6;
		else if (inet_pton(AF_INET, ep->host, &a4) != 1) {
			*err_r = "bracketed host must be an IP address";
			return -1;
		}
	}
	if (colon != NULL) {
		if (parse_port(colon + 1, strlen(colon + 1), &ep->port) < 0) {
			*err_r = "port must be a number from 1 to 65535";
			return -1;
		}
	} else if (default_port != 0) {
		ep->port = default_port;
	} else {
		*err_r = "missing ':PORT'";
		return -1;
	}
	return 0;
}

void endpoint_format(const struct endpoint *ep, char *buf, size_t size)
{
	switch (ep->family) {
	case ENDPOINT_UNIX:
		snprintf(buf, size, "unix:%s", ep->path);
		break;
	case ENDPOINT_INET:
	case ENDPOINT_INET6:
		snprintf(buf, size, "%s:%u%s%s", ep->family == ENDPOINT_INET ? "inet" : "inet6",
			 ep->port, ep->host[0] ? "@" : "", ep->host);
		break;
	}
}

bool endpoint_unix_alive(const char *path)
{
	struct sockaddr_un sun;
	bool alive;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return false;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	alive = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return alive;
}

static int listen_unix(const struct endpoint *ep, int backlog, const char **err_r)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ep->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		struct stat st;

		if (errno != EADDRINUSE)
			goto fail;
		/* Stale socket from a crashed run, or a live server? */
		if (endpoint_unix_alive(ep->path)) {
			close(fd);
			*err_r = "another process is listening on this socket";
			return -1;
		}
		if (lstat(ep->path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(ep->path);
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			goto fail;
	}
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	*err_r = strerror(errno);
	if (fd >= 0)
		close(fd);
	return -1;
}

int endpoint_listen(const struct endpoint *ep, int backlog, const char **err_r)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int fd = -1, on = 1, gai;

	if (ep->family == ENDPOINT_UNIX)
		return listen_unix(ep, backlog, err_r);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = ep->family == ENDPOINT_INET6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", ep->port);
	gai = getaddrinfo(ep->host[0] ? ep->host : NULL, port, &hints, &res);
	if (gai != 0) {
		*err_r = gai_strerror(gai);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	*err_r = strerror(errno);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}
