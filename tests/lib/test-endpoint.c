/* test-endpoint - socket addresses written as text */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/endpoint.h"
#include "tests/testlib.h"

static int milter(const char *spec, struct endpoint *ep)
{
	const char *err;

	return endpoint_parse_milter(spec, ep, &err);
}

static int hostport(const char *spec, struct endpoint *ep, bool *lit)
{
	const char *err;

	return endpoint_parse_hostport(spec, 25, ep, lit, &err);
}

int main(void)
{
	struct endpoint ep;
	bool lit;
	char buf[200];

	test_begin("milter socket spellings");
	test_assert(milter("unix:/run/weir/m.sock", &ep) == 0 && ep.family == ENDPOINT_UNIX);
	test_assert_str(ep.path, "/run/weir/m.sock");
	test_assert(milter("local:/x", &ep) == 0 && ep.family == ENDPOINT_UNIX);
	test_assert(milter("inet:8891@127.0.0.1", &ep) == 0 && ep.port == 8891);
	test_assert_str(ep.host, "127.0.0.1");
	endpoint_format(&ep, buf, sizeof(buf));
	test_assert_str(buf, "inet:8891@127.0.0.1");
	test_assert(milter("inet:8891", &ep) == 0 && ep.host[0] == '\0');
	test_assert(milter("inet6:10025@::1", &ep) == 0 && ep.family == ENDPOINT_INET6);
	test_assert(milter("unix:relative", &ep) < 0);
	test_assert(milter("inet:0@h", &ep) < 0);
	test_assert(milter("inet:65536@h", &ep) < 0);
	test_assert(milter("inet:12x@h", &ep) < 0);
	test_assert(milter("inet:25@", &ep) < 0);
	test_assert(milter("inet:25@a b", &ep) < 0);
	test_assert(milter("tcp:25", &ep) < 0);
	test_assert(milter("", &ep) < 0);
	char longpath[300] = "unix:/";
	memset(longpath + 6, 'a', 200);
	longpath[206] = '\0';
	test_assert(milter(longpath, &ep) < 0);
	test_end();

	test_begin("smart host spellings");
	test_assert(hostport("relay.example", &ep, &lit) == 0 && ep.port == 25 && !lit);
	test_assert(hostport("relay.example:587", &ep, &lit) == 0 && ep.port == 587);
	test_assert_str(ep.host, "relay.example");
	test_assert(hostport("[192.0.2.1]:2525", &ep, &lit) == 0 && lit && ep.port == 2525 &&
		    ep.family == ENDPOINT_INET);
	test_assert(hostport("[2001:db8::1]:465", &ep, &lit) == 0 && ep.family == ENDPOINT_INET6);
	test_assert_str(ep.host, "2001:db8::1");
	test_assert(hostport("2001:db8::1", &ep, &lit) < 0);
	test_assert(hostport("[relay.example]:25", &ep, &lit) < 0);
	test_assert(hostport("[192.0.2.1", &ep, &lit) < 0);
	test_assert(hostport("[192.0.2.1]x", &ep, &lit) < 0);
	test_assert(hostport("relay.example:", &ep, &lit) < 0);
	test_assert(hostport(":25", &ep, &lit) < 0);
	test_end();

	test_begin("listen on a unix socket, twice, and a stale one");
	char path[] = "/tmp/weir-test-ep-XXXXXX";
	test_assert(mkdtemp(path) != NULL);
	snprintf(buf, sizeof(buf), "unix:%s/s", path);
	test_assert(milter(buf, &ep) == 0);
	const char *err;
	int fd = endpoint_listen(&ep, 5, &err);
	test_assert(fd >= 0);
	test_assert(endpoint_listen(&ep, 5, &err) < 0); /* live: refused */
	close(fd);                                      /* now stale */
	fd = endpoint_listen(&ep, 5, &err);
	test_assert(fd >= 0);
	close(fd);
	unlink(ep.path);
	rmdir(path);
	test_end();
	return test_exit_status();
}
