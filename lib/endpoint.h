/* endpoint - socket addresses written as text */
#ifndef WEIR_ENDPOINT_H
#define WEIR_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

enum endpoint_family { ENDPOINT_UNIX, ENDPOINT_INET, ENDPOINT_INET6 };

/* A parsed listening or connecting address. host is NULL for "any"
 * (inet:PORT with no @HOST). */
struct endpoint {
	enum endpoint_family family;
	char path[108]; /* ENDPOINT_UNIX */
	char host[256]; /* ENDPOINT_INET/INET6; "" = any address */
	unsigned port;
};

/* endpoint_parse_milter - parse the libmilter spelling:
 * "unix:/path", "local:/path", "inet:PORT@HOST", "inet:PORT",
 * "inet6:PORT@HOST". Returns 0, or -1 with *err_r set to a static
 * explanation. */
int endpoint_parse_milter(const char *spec, struct endpoint *ep, const char **err_r);

/* endpoint_parse_hostport - parse "HOST:PORT", "[IPV6]:PORT" or
 * "[IPV4]:PORT" (brackets: no name lookup), with default_port used when
 * no ":PORT" is given (0 = port is required). *literal_r says whether
 * the host was bracketed. */
int endpoint_parse_hostport(const char *spec, unsigned default_port, struct endpoint *ep,
			    bool *literal_r, const char **err_r);

/* endpoint_unix_alive - true if a process accepts connections on the
 * unix socket at path */
bool endpoint_unix_alive(const char *path);

/* endpoint_format - "unix:/p", "inet:25@127.0.0.1", into buf */
void endpoint_format(const struct endpoint *ep, char *buf, size_t size);

/* endpoint_listen - socket(), bind() and listen() on ep. A unix socket
 * left by an earlier run is removed first, but only if nothing answers on
 * it. Returns the file descriptor (non-blocking, close-on-exec) or -1 with
 * *err_r (static or strerror text). */
int endpoint_listen(const struct endpoint *ep, int backlog, const char **err_r);

#endif
