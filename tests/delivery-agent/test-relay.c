/* test-relay - scenario tests: weir-agent against a fake smart host
 *
 * Starts the built weir-agent in the foreground with a generated
 * configuration (harness.c), against tests/delivery-agent/fake-smarthost.py
 * which misbehaves on purpose, and checks the LMTP replies per
 * recipient. Loopback only; ports are picked at run time. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "tests/delivery-agent/harness.h"

static void test_recipients(void)
{
	struct env e;
	char b[1024], want[256], msg[256] = "";
	int fd;
	FILE *f;

	test_begin("recipients: 250, 450, 550 quoted; data relayed stuffed");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test> SIZE=50", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<ok@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<t450@y.test>", b, sizeof(b)), "450 4.2.0 <t450@y.test>: smart host");
	snprintf(want, sizeof(want),
		 "550 5.1.1 <r550@y.test>: smart host 127.0.0.1[127.0.0.1]:%d said: 550 5.1.1 "
		 "<r550@y.test>: Recipient address rejected",
		 e.up_port);
	test_assert_str(cmd(fd, "RCPT TO:<r550@y.test>", b, sizeof(b)), want);
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "Subject: t\r\n\r\n..dot\nbare\rcr\r\n.", b, sizeof(b)),
	       "250 2.0.0 <ok@y.test> relayed");
	f = fopen(e.msgfile, "r");
	test_assert(f != NULL);
	if (f != NULL) {
		msg[fread(msg, 1, sizeof(msg) - 1, f)] = '\0';
		fclose(f);
	}
	test_assert_str(msg, "Subject: t\r\n\r\n..dot\r\nbarecr\r\n");
	/* a second transaction reuses the session */
	PREFIX(cmd(fd, "MAIL FROM:<>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<bob@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<postmaster>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <bob@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <postmaster>");
	PREFIX(cmd(fd, "QUIT", b, sizeof(b)), "221");
	close(fd);
	teardown(&e);
	test_end();
}

static void test_refused(void)
{
	struct env e;
	char b[1024];
	int fd;

	test_begin("smart host refuses connections: 451 4.4.1");
	setup(&e, NULL, NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)),
	       "451 4.4.1 smart host 127.0.0.1 unreachable: Connection refused");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "503 5.5.1");
	close(fd);
	teardown(&e);
	test_end();
}

static void test_greet421(void)
{
	struct env e;
	char b[1024];
	int fd;

	test_begin("smart host greets 421: 451 4.4.0 quoted");
	setup(&e, "greet421", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "451 4.4.0 smart host");
	test_assert(strstr(b, "421 4.3.2 fake: service not available") != NULL);
	close(fd);
	teardown(&e);
	test_end();
}

/* data_failure - two recipients accepted, then the data fails: each
 * recipient must get the same 4xx (the MTA keeps the mail) */
static void data_failure(const char *mode, const char *name)
{
	struct env e;
	char b[1024];
	int fd;

	test_begin(name);
	setup(&e, mode, NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<c@y.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "hello\r\n.", b, sizeof(b)), "451 4.4.2");
	PREFIX(reply(fd, b, sizeof(b)), "451 4.4.2");
	/* the next transaction reconnects */
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	close(fd);
	teardown(&e);
	test_end();
}

static void test_silent(void)
{
	struct env e;
	char b[1024];
	int fd;

	test_begin("smart host never greets: 451 4.4.2 after connect_timeout");
	setup(&e, "silent", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "451 4.4.2");
	close(fd);
	teardown(&e);
	test_end();
}

static void test_client_abort(void)
{
	struct env e;
	char b[1024];
	struct stat st;
	int fd;

	test_begin("client disconnects in DATA: nothing relayed, agent lives");
	setup(&e, "ok", NULL);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	if (write(fd, "partial\r\n", 9) != 9)
		test_assert(0);
	close(fd);
	usleep(300000);
	test_assert(stat(e.msgfile, &st) < 0);
	fd = session(&e);
	PREFIX(cmd(fd, "NOOP", b, sizeof(b)), "250");
	close(fd);
	teardown(&e);
	test_end();
}

static void test_protocol(void)
{
	struct env e;
	char b[4096], longline[3000];
	int fd;

	test_begin("protocol errors");
	setup(&e, "ok", "max_recipients = 1;");
	fd = tcp_connect(e.lmtp_port, 50);
	PREFIX(reply(fd, b, sizeof(b)), "220");
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "503 5.5.1");
	PREFIX(cmd(fd, "EHLO mta.test", b, sizeof(b)), "500 5.5.1");
	PREFIX(cmd(fd, "LHLO mta.test", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "503 5.5.1");
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test> FOO=1", b, sizeof(b)), "555 5.5.4");
	PREFIX(cmd(fd, "MAIL FROM:<a@@x.test>", b, sizeof(b)), "501 5.1.7");
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test> SIZE=999999999999", b, sizeof(b)), "552 5.3.4");
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<b y@y.test>", b, sizeof(b)), "501 5.1.3");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "554 5.5.1");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<c@y.test>", b, sizeof(b)), "452 4.5.3");
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	PREFIX(cmd(fd, longline, b, sizeof(b)), "500 5.5.2");
	PREFIX(cmd(fd, "VRFY x", b, sizeof(b)), "252 2.5.0");
	PREFIX(cmd(fd, "RSET", b, sizeof(b)), "250");
	/* pipelined: replies in order */
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<r550@y.test>\r\nRSET\r\nNOOP", b,
		   sizeof(b)),
	       "250 2.1.0");
	PREFIX(reply(fd, b, sizeof(b)), "550 5.1.1");
	PREFIX(reply(fd, b, sizeof(b)), "250");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0");
	close(fd);
	teardown(&e);
	test_end();
}

static void test_shutdown(void)
{
	struct env e;
	char b[1024];
	int busy, idle;

	test_begin("SIGTERM: idle gets 421, transaction in flight finishes");
	setup(&e, "ok", NULL);
	busy = session(&e);
	idle = session(&e);
	PREFIX(cmd(busy, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(busy, "RCPT TO:<b@y.test>", b, sizeof(b)), "250");
	kill(e.agent, SIGTERM);
	PREFIX(reply(idle, b, sizeof(b)), "421 4.3.2");
	PREFIX(cmd(busy, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(busy, "x\r\n.", b, sizeof(b)), "250 2.0.0");
	PREFIX(reply(busy, b, sizeof(b)), "421 4.3.2");
	test_assert(wait_exit(e.agent, 10) == 0);
	e.agent = getpid(); /* already reaped; teardown's kill is harmless */
	close(busy);
	close(idle);
	kill(e.fake, SIGKILL);
	waitpid(e.fake, NULL, 0);
	e.fake = 0;
	if (test_failures_case == 0) {
		snprintf(b, sizeof(b), "rm -rf %s", e.dir);
		if (system(b) != 0)
			test_assert(0);
	}
	test_end();
}


static void test_failover(void)
{
	struct env e;
	struct fake ok, g;
	char b[1024], extra[1024], want[256], state[256], l1[32], l2[32];
	int dead = free_port(), okport, gport, fd;

	test_begin("failover: a refusing host is marked down, the next one used");
	env_init(&e);
	okport = free_port();
	snprintf(l1, sizeof(l1), "127.0.0.1:%d", okport);
	fake_start(&e, &ok, l1, "ok", "ok");
	snprintf(extra, sizeof(extra),
		 " routes = ( { name = \"main\"; hosts = (\n"
		 "   { host = \"127.0.0.1\"; port = %d; },\n"
		 "   { host = \"127.0.0.1\"; port = %d; priority = 1; } ); } );",
		 dead, okport);
	start_agent(&e, extra);
	fd = session(&e);
	snprintf(want, sizeof(want), "250 2.0.0 <b@y.test> relayed to 127.0.0.1[127.0.0.1]:%d",
		 okport);
	PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), want);
	PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), want);
	snprintf(state, sizeof(state), "%s.log", ok.msgfile);
	test_assert(count_lines(state, "MESSAGE") == 2);
	/* health: the refusing host is down, in the state file */
	snprintf(state, sizeof(state), "%s/state", e.dir);
	snprintf(want, sizeof(want), "id=127.0.0.1:%d state=down", dead);
	test_assert(file_has(state, "", want));
	snprintf(want, sizeof(want), "id=127.0.0.1:%d state=up", okport);
	test_assert(file_has(state, "", want));
	{
		/* weirctl route show reads it */
		const char *ctl = getenv("WEIRCTL") ? getenv("WEIRCTL") : "policy/weirctl";
		char run[512], out[256];
		snprintf(out, sizeof(out), "%s/route-show", e.dir);
		snprintf(run, sizeof(run), "%s -c %s route show > %s 2>&1", ctl, e.conf, out);
		test_assert(system(run) == 0);
		test_assert(file_has(out, "", "route main (default)"));
		snprintf(want, sizeof(want), "127.0.0.1:%d", dead);
		test_assert(file_has(out, "", want));
		test_assert(file_has(out, "", "down until"));
		test_assert(file_has(out, "", "failures=1"));
		test_assert(file_has(out, "", "last error: 451 4.4.1"));
		test_assert(file_has(out, "", "messages sent="));
	}
	PREFIX(cmd(fd, "QUIT", b, sizeof(b)), "221");
	close(fd);
	fake_stop(&ok);
	teardown(&e);
	test_end();

	test_begin("failover: a host greeting 421 is skipped; all down: still tried");
	env_init(&e);
	gport = free_port();
	snprintf(l1, sizeof(l1), "127.0.0.1:%d", gport);
	fake_start(&e, &g, l1, "greet421", "g");
	okport = free_port();
	snprintf(l2, sizeof(l2), "127.0.0.1:%d", okport);
	fake_start(&e, &ok, l2, "ok", "ok");
	snprintf(extra, sizeof(extra),
		 " routes = ( { name = \"two\"; hosts = (\n"
		 "   { host = \"127.0.0.1\"; port = %d; },\n"
		 "   { host = \"127.0.0.1\"; port = %d; priority = 1; } ); } );",
		 gport, okport);
	start_agent(&e, extra);
	fd = session(&e);
	snprintf(want, sizeof(want), "250 2.0.0 <b@y.test> relayed to 127.0.0.1[127.0.0.1]:%d",
		 okport);
	PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), want);
	/* the good one goes away too: both down, both tried, 4xx */
	fake_stop(&ok);
	PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), "451 4.4.");
	/* it is back: the host that recovers first is tried anyway */
	fake_start(&e, &ok, l2, "ok", "ok");
	PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), "250 2.0.0");
	close(fd);
	fake_stop(&g);
	fake_stop(&ok);
	teardown(&e);
	test_end();
}

static void test_weights(void)
{
	struct env e;
	struct fake a, b2;
	char b[1024], extra[1024], la[32], lb[32], path[200];
	int fd, pa = free_port(), pb, na, nb;

	test_begin("weights 3:1 over 1000 messages: 750:250 within 2%");
	env_init(&e);
	snprintf(la, sizeof(la), "127.0.0.1:%d", pa);
	fake_start(&e, &a, la, "ok", "a");
	pb = free_port();
	snprintf(lb, sizeof(lb), "127.0.0.1:%d", pb);
	fake_start(&e, &b2, lb, "ok", "b");
	snprintf(extra, sizeof(extra),
		 " routes = ( { name = \"bal\"; hosts = (\n"
		 "   { host = \"127.0.0.1\"; port = %d; weight = 3; },\n"
		 "   { host = \"127.0.0.1\"; port = %d; weight = 1; } ); } );",
		 pa, pb);
	start_agent(&e, extra);
	fd = session(&e);
	for (int i = 0; i < 1000; i++)
		PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), "250 2.0.0");
	close(fd);
	snprintf(path, sizeof(path), "%s.log", a.msgfile);
	na = count_lines(path, "MESSAGE");
	snprintf(path, sizeof(path), "%s.log", b2.msgfile);
	nb = count_lines(path, "MESSAGE");
	fprintf(stderr, "weights 3:1: %d:%d\n", na, nb);
	test_assert(na + nb == 1000);
	test_assert(na >= 730 && na <= 770);
	fake_stop(&a);
	fake_stop(&b2);
	teardown(&e);
	test_end();
}

/* two_fakes - env with fakes A and B and the agent configured by extra
 * (a format with %d for A's port then B's) */
static void two_fakes(struct env *e, struct fake *a, const char *mode_a, struct fake *bb,
		      const char *mode_b, const char *fmt, int smtp_port)
{
	char extra[2048], la[32], lb[32], smtp[96] = "";
	int pa = free_port(), pb;

	env_init(e);
	snprintf(la, sizeof(la), "127.0.0.1:%d", pa);
	fake_start(e, a, la, mode_a, "a");
	pb = free_port();
	snprintf(lb, sizeof(lb), "127.0.0.1:%d", pb);
	fake_start(e, bb, lb, mode_b, "b");
	if (smtp_port > 0)
		snprintf(smtp, sizeof(smtp), " smtp_listen = (\"inet:%d@127.0.0.1\");\n", smtp_port);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	{
		int n = snprintf(extra, sizeof(extra), "%s", smtp);
		snprintf(extra + n, sizeof(extra) - (size_t)n, fmt, pa, pb);
	}
#pragma GCC diagnostic pop
	start_agent(e, extra);
}

static const char split_routes[] =
	" routes = ( { name = \"ra\"; rcpt_domains = (\"a.test\");\n"
	"   hosts = ( { host = \"127.0.0.1\"; port = %d; } ); },\n"
	" { name = \"rb\"; hosts = ( { host = \"127.0.0.1\"; port = %d; } ); } );";

static void test_split(void)
{
	struct env e;
	struct fake a, bb;
	char b[1024], path[200];
	int fd;

	test_begin("LMTP: recipients split per destination, each its own answer");
	two_fakes(&e, &a, "ok", &bb, "ok", split_routes, 0);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@a.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<y@b.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<r550@a.test>", b, sizeof(b)), "550 5.1.1 <r550@a.test>: smart host");
	PREFIX(cmd(fd, "RCPT TO:<t450@b.test>", b, sizeof(b)), "450 4.2.0 <t450@b.test>");
	PREFIX(cmd(fd, "RCPT TO:<z@a.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "Subject: s\r\n\r\nbody\r\n.", b, sizeof(b)), "250 2.0.0 <x@a.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <y@b.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <z@a.test> relayed");
	snprintf(path, sizeof(path), "%s.log", a.msgfile);
	test_assert(count_lines(path, "MESSAGE x@a.test z@a.test") == 1);
	snprintf(path, sizeof(path), "%s.log", bb.msgfile);
	test_assert(count_lines(path, "MESSAGE y@b.test") == 1);
	close(fd);
	fake_stop(&a);
	fake_stop(&bb);
	teardown(&e);
	test_end();

	test_begin("LMTP pipelined: recipients of two destinations interleaved, replies in order");
	two_fakes(&e, &a, "ok,slowrcpt", &bb, "ok", split_routes, 0);
	fd = session(&e);
	send_raw(fd, "MAIL FROM:<s@x.test>\r\nRCPT TO:<x@a.test>\r\nRCPT TO:<w@a.test>\r\n"
		     "RCPT TO:<y@b.test>\r\nRCPT TO:<r550@a.test>\r\nRCPT TO:<z@a.test>\r\n"
		     "DATA\r\n");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.0");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "550 5.1.1 <r550@a.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <x@a.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <w@a.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <y@b.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <z@a.test> relayed");
	snprintf(path, sizeof(path), "%s.log", a.msgfile);
	test_assert(count_lines(path, "MESSAGE x@a.test w@a.test z@a.test") == 1);
	test_assert(file_has(a.msgfile, ".pipe", "RCPT x@a.test ahead"));
	close(fd);
	fake_stop(&a);
	fake_stop(&bb);
	teardown(&e);
	test_end();

	test_begin("MAIL refused by a destination: its recipients get the refusal quoted");
	two_fakes(&e, &a, "ok", &bb, "ok", split_routes, 0);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<m550@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@a.test>", b, sizeof(b)), "550 5.7.1 <x@a.test>: smart host");
	test_assert(strstr(b, "said: 550 5.7.1 <m550@x.test>: Sender address rejected") != NULL);
	PREFIX(cmd(fd, "RCPT TO:<z@a.test>", b, sizeof(b)), "550 5.7.1 <z@a.test>: smart host");
	test_assert(strstr(b, "Sender address rejected") != NULL);
	close(fd);
	fake_stop(&a);
	fake_stop(&bb);
	teardown(&e);
	test_end();

	test_begin("LMTP: one destination fails after the data, the other does not");
	two_fakes(&e, &a, "data451", &bb, "ok", split_routes, 0);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@a.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<y@b.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "451 4.3.0 <x@a.test>: smart host");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <y@b.test> relayed");
	close(fd);
	fake_stop(&a);
	fake_stop(&bb);
	teardown(&e);
	test_end();

	test_begin("SMTP: one destination per transaction, 452 4.5.3 for another");
	{
		int sp = free_port();
		two_fakes(&e, &a, "ok", &bb, "ok", split_routes, sp);
		fd = tcp_connect(sp, 50);
		PREFIX(reply(fd, b, sizeof(b)), "220 agent.test ESMTP");
		PREFIX(cmd(fd, "EHLO mta.test", b, sizeof(b)), "250 ENHANCEDSTATUSCODES");
		PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
		PREFIX(cmd(fd, "RCPT TO:<x@a.test>", b, sizeof(b)), "250 2.1.5");
		PREFIX(cmd(fd, "RCPT TO:<y@b.test>", b, sizeof(b)),
		       "452 4.5.3 <y@b.test>: recipients for another destination");
		PREFIX(cmd(fd, "RCPT TO:<z@a.test>", b, sizeof(b)), "250 2.1.5");
		PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
		PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 relayed to");
		PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
		PREFIX(cmd(fd, "RCPT TO:<y@b.test>", b, sizeof(b)), "250 2.1.5");
		PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
		PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 relayed to");
		close(fd);
		fake_stop(&a);
		fake_stop(&bb);
		teardown(&e);
	}
	test_end();
}

static void test_dsn_8bit(void)
{
	struct env e;
	struct fake a, bb;
	char b[1024];
	int fd;

	test_begin("DSN parameters passed to an upstream with DSN, dropped otherwise");
	two_fakes(&e, &a, "ok,dsn", &bb, "ok,no8bit", split_routes, 0);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test> RET=HDRS ENVID=QQ+2B1", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@a.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@a.test", b,
		   sizeof(b)),
	       "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<y@b.test> NOTIFY=NEVER", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <x@a.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <y@b.test>");
	test_assert(file_has(a.msgfile, ".cmds", "MAIL FROM:<s@x.test> RET=HDRS ENVID=QQ+2B1"));
	test_assert(file_has(a.msgfile, ".cmds",
			     "RCPT TO:<x@a.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@a.test"));
	test_assert(file_has(bb.msgfile, ".cmds", "MAIL FROM:<s@x.test>\n"));
	test_assert(file_has(bb.msgfile, ".cmds", "RCPT TO:<y@b.test>\n"));
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test> RET=BOGUS", b, sizeof(b)), "501 5.5.4");
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<x@a.test> NOTIFY=SOMETIMES", b, sizeof(b)), "501 5.5.4");
	PREFIX(cmd(fd, "RSET", b, sizeof(b)), "250");
	test_end();

	test_begin("8-bit and SMTPUTF8 mail to upstreams without them: 550 5.6.3, 553 5.6.7");
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test> BODY=8BITMIME", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<y@b.test>", b, sizeof(b)),
	       "550 5.6.3 smart host 127.0.0.1 does not accept 8-bit mail");
	PREFIX(cmd(fd, "RCPT TO:<x@a.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RSET", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test> SMTPUTF8", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<y@b.test>", b, sizeof(b)),
	       "553 5.6.7 smart host 127.0.0.1 does not accept SMTPUTF8 mail");
	PREFIX(cmd(fd, "RCPT TO:<j\xc3\xbcrgen@a.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <j\xc3\xbcrgen@a.test>");
	test_assert(file_has(a.msgfile, ".cmds", "MAIL FROM:<s@x.test> SMTPUTF8"));
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<j\xc3\xbcrgen@a.test>", b, sizeof(b)), "501 5.1.3");
	close(fd);
	fake_stop(&a);
	fake_stop(&bb);
	teardown(&e);
	test_end();
}

static void test_login(void)
{
	struct env e;
	struct fake a, bb;
	char b[1024], path[200];
	int fd;

	test_begin("routes by login: routed at end of DATA, the login header removed");
	two_fakes(&e, &a, "ok", &bb, "ok",
		  " login_header = \"X-Weir-Login\";\n"
		  " routes = ( { name = \"apps\"; logins = (\"app-*\");\n"
		  "   hosts = ( { host = \"127.0.0.1\"; port = %d; } ); },\n"
		  " { name = \"rest\"; hosts = ( { host = \"127.0.0.1\"; port = %d; } ); } );",
		  0);
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@y.test>", b, sizeof(b)), "250 2.1.5 Ok, queued for routing");
	PREFIX(cmd(fd, "RCPT TO:<r550@y.test>", b, sizeof(b)), "250 2.1.5 Ok, queued for routing");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "X-Weir-Login: app-web\r\nSubject: s\r\n\r\nbody\r\n.", b, sizeof(b)),
	       "250 2.0.0 <x@y.test> relayed");
	PREFIX(reply(fd, b, sizeof(b)), "550 5.1.1 <r550@y.test>: smart host");
	snprintf(path, sizeof(path), "%s.log", a.msgfile);
	test_assert(count_lines(path, "MESSAGE x@y.test") == 1);
	test_assert(!file_has(a.msgfile, "", "X-Weir-Login"));
	test_assert(file_has(a.msgfile, "", "Subject: s\r\n\r\nbody"));
	/* another login (or none) takes the default route */
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<x@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x-weir-login:\r\n  bob\r\nSubject: s\r\n\r\nbody\r\n.", b, sizeof(b)),
	       "250 2.0.0 <x@y.test> relayed");
	snprintf(path, sizeof(path), "%s.log", bb.msgfile);
	test_assert(count_lines(path, "MESSAGE x@y.test") == 1);
	test_assert(!file_has(bb.msgfile, "", "bob"));
	close(fd);
	fake_stop(&a);
	fake_stop(&bb);
	teardown(&e);
	test_end();

	test_begin("routes by login over SMTP: one answer, nothing sent when some are refused");
	{
		int sp = free_port();
		two_fakes(&e, &a, "ok", &bb, "ok",
			  " login_header = \"X-Weir-Login\";\n"
			  " routes = ( { name = \"apps\"; logins = (\"app-*\");\n"
			  "   hosts = ( { host = \"127.0.0.1\"; port = %1$d; } ); },\n"
			  " { name = \"p\"; rcpt_domains = \"p.test\";\n"
			  "   hosts = ( { host = \"127.0.0.1\"; port = %2$d; } ); },\n"
			  " { name = \"rest\"; hosts = ( { host = \"127.0.0.1\"; port = %2$d; } ); } );",
			  sp);
		fd = tcp_connect(sp, 50);
		PREFIX(reply(fd, b, sizeof(b)), "220");
		PREFIX(cmd(fd, "EHLO mta.test", b, sizeof(b)), "250 ENHANCEDSTATUSCODES");
		PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
		PREFIX(cmd(fd, "RCPT TO:<x@y.test>", b, sizeof(b)), "250 2.1.5");
		PREFIX(cmd(fd, "RCPT TO:<r550@y.test>", b, sizeof(b)), "250 2.1.5");
		/* p.test may go elsewhere whatever the login: another transaction */
		PREFIX(cmd(fd, "RCPT TO:<q@p.test>", b, sizeof(b)), "452 4.5.3");
		PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
		PREFIX(cmd(fd, "X-Weir-Login: app-1\r\n\r\nbody\r\n.", b, sizeof(b)),
		       "451 4.5.3");
		test_assert(strstr(b, "550 5.1.1 <r550@y.test>") != NULL);
		snprintf(path, sizeof(path), "%s.log", a.msgfile);
		test_assert(count_lines(path, "MESSAGE") == 0);
		PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
		PREFIX(cmd(fd, "RCPT TO:<x@y.test>", b, sizeof(b)), "250 2.1.5");
		PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
		PREFIX(cmd(fd, "X-Weir-Login: app-1\r\n\r\nbody\r\n.", b, sizeof(b)),
		       "250 2.0.0 relayed to");
		test_assert(count_lines(path, "MESSAGE x@y.test") == 1);
		close(fd);
		fake_stop(&a);
		fake_stop(&bb);
		teardown(&e);
	}
	test_end();
}

/* can_bind25 - may we listen on addr:25 (root, nothing there) */
static bool can_bind25(const char *addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(25)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	bool ok;

	inet_pton(AF_INET, addr, &sin.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

static void test_mx(void)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	struct env e;
	struct fake m1, m2;
	char b[1024], zone[200], script[512], top[128], path[200], port[16];
	int fd, dport = free_port();
	pid_t dns;
	FILE *f;

	test_begin("mx route: MX order, no MX, null MX, NXDOMAIN, DNS failure");
	if (!can_bind25("127.0.0.2") || !can_bind25("127.0.0.3")) {
		fprintf(stderr, "skipped: cannot listen on 127.0.0.2:25 (not root?)\n");
		test_end();
		return;
	}
	env_init(&e);
	snprintf(zone, sizeof(zone), "%s/zone", e.dir);
	f = fopen(zone, "w");
	fprintf(f, "d1.test MX 20 mx2.d1.test\n"
		   "d1.test MX 10 mx1.d1.test\n"
		   "mx1.d1.test A 127.0.0.2\n"
		   "mx2.d1.test A 127.0.0.3\n"
		   "d2.test A 127.0.0.3\n"
		   "d3.test MX 10 dead.d3.test\n"
		   "d3.test MX 20 mx1.d1.test\n"
		   "dead.d3.test A 127.0.0.4\n"
		   "null.test MX 0 .\n"
		   "fail.test FAIL x\n"
		   "refer.test REFER ns.nowhere.invalid\n");
	fclose(f);
	snprintf(script, sizeof(script), "%s/tests/delivery-agent/fake-dns.py", srcdir);
	snprintf(port, sizeof(port), "%d", dport);
	dns = fork();
	if (dns == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl("/usr/bin/python3", "python3", script, port, zone, (char *)NULL);
		_exit(127);
	}
	fake_start(&e, &m1, "127.0.0.2:25", "ok", "m1");
	fake_start(&e, &m2, "127.0.0.3:25", "ok", "m2");
	snprintf(top, sizeof(top), "resolver = \"127.0.0.1@%d\";\nresolver_timeout = \"3s\";",
		 dport);
	top_extra = top;
	start_agent(&e, " routes = ( { name = \"direct\"; mx = true; } );");
	top_extra = "";
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<s@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<a@d1.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<b@d2.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<c@null.test>", b, sizeof(b)),
	       "556 5.1.10 <c@null.test>: domain does not accept mail (null MX)");
	PREFIX(cmd(fd, "RCPT TO:<d@nx.test>", b, sizeof(b)), "550 5.1.2 <d@nx.test>: domain not found");
	PREFIX(cmd(fd, "RCPT TO:<e@fail.test>", b, sizeof(b)), "451 4.4.3 <e@fail.test>");
	PREFIX(cmd(fd, "RCPT TO:<h@refer.test>", b, sizeof(b)), "451 4.4.3 <h@refer.test>");
	PREFIX(cmd(fd, "RCPT TO:<f@d3.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<g@d1.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "Subject: mx\r\n\r\nbody\r\n.", b, sizeof(b)),
	       "250 2.0.0 <a@d1.test> relayed to mx1.d1.test[127.0.0.2]:25");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <b@d2.test> relayed to d2.test[127.0.0.3]:25");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <f@d3.test> relayed to mx1.d1.test[127.0.0.2]:25");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <g@d1.test> relayed");
	snprintf(path, sizeof(path), "%s.log", m1.msgfile);
	test_assert(count_lines(path, "MESSAGE a@d1.test g@d1.test") == 1);
	test_assert(count_lines(path, "MESSAGE f@d3.test") == 1);
	snprintf(path, sizeof(path), "%s.log", m2.msgfile);
	test_assert(count_lines(path, "MESSAGE b@d2.test") == 1);
	close(fd);
	fake_stop(&m1);
	fake_stop(&m2);
	teardown(&e);
	kill(dns, SIGKILL);
	waitpid(dns, NULL, 0);
	test_end();
}

static void test_pool(void)
{
	struct env e;
	char b[1024], cmds[200];
	int fd, fd2;

	test_begin("pool: max_connections (wait, then 451 4.4.5), max_messages, session_idle");
	setup(&e, "ok", "max_connections = 1; max_messages = 2; session_idle = \"1s\";");
	fd = session(&e);
	fd2 = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250 2.1.0");
	/* the one session is busy: the second client waits connect_timeout */
	PREFIX(cmd(fd2, "MAIL FROM:<a@x.test>", b, sizeof(b)), "451 4.4.5");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0");
	/* free again: the second client gets the same session */
	PREFIX(send_one(fd2, "a@x.test", "c@y.test", b, sizeof(b)), "250 2.0.0");
	snprintf(cmds, sizeof(cmds), "%s.cmds", e.msgfile);
	test_assert(count_lines(cmds, "EHLO") == 1);
	/* two messages per session: the third opens a new one */
	PREFIX(send_one(fd, "a@x.test", "d@y.test", b, sizeof(b)), "250 2.0.0");
	test_assert(count_lines(cmds, "EHLO") == 2);
	test_assert(count_lines(cmds, "QUIT") == 1);
	/* idle for session_idle: QUIT */
	usleep(1600000);
	test_assert(count_lines(cmds, "QUIT") == 2);
	/* a session left in a transaction is reset before its next use */
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250 2.1.0");
	PREFIX(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RSET", b, sizeof(b)), "250");
	PREFIX(send_one(fd2, "a@x.test", "e@y.test", b, sizeof(b)), "250 2.0.0");
	test_assert(count_lines(cmds, "RSET") == 1);
	close(fd);
	close(fd2);
	teardown(&e);
	test_end();

	test_begin("pool: a session the server closed while idle is not used again");
	setup(&e, "ok,closeafter", NULL);
	fd = session(&e);
	PREFIX(send_one(fd, "a@x.test", "b@y.test", b, sizeof(b)), "250 2.0.0");
	PREFIX(send_one(fd, "a@x.test", "c@y.test", b, sizeof(b)), "250 2.0.0");
	usleep(100000);
	PREFIX(send_one(fd, "a@x.test", "d@y.test", b, sizeof(b)), "250 2.0.0");
	snprintf(cmds, sizeof(cmds), "%s.log", e.msgfile);
	test_assert(count_lines(cmds, "MESSAGE") == 3);
	close(fd);
	teardown(&e);
	test_end();
}


/* pipelined_group - MAIL, five RCPTs (one a syntax error answered by the
 * agent itself) and DATA in one write; every reply in order */
static void pipelined_group(int fd, const char *rcpt3)
{
	char b[1024], want[128];

	send_raw(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<ok1@y.test>\r\n"
		     "RCPT TO:<t450@y.test>\r\nRCPT TO:<broken\r\n");
	snprintf(want, sizeof(want), "RCPT TO:<%s>\r\nRCPT TO:<ok2@y.test>\r\nDATA\r\n", rcpt3);
	send_raw(fd, want);
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.0");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "450 4.2.0 <t450@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "501 5.5.4");
}

static void test_pipelining(void)
{
	struct env e;
	char b[1024], pipe[200];
	int fd;

	test_begin("PIPELINING: RCPTs go on without waiting, replies in order");
	setup(&e, "ok,slowrcpt", NULL);
	snprintf(pipe, sizeof(pipe), "%s.pipe", e.msgfile);
	fd = session(&e);
	pipelined_group(fd, "r550@y.test");
	PREFIX(reply(fd, b, sizeof(b)), "550 5.1.1 <r550@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <ok1@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <ok2@y.test>");
	/* the agent did not wait for the first RCPT's reply */
	test_assert(file_has(e.msgfile, ".pipe", "RCPT ok1@y.test ahead"));
	test_assert(file_has(e.msgfile, ".log", "MESSAGE ok1@y.test ok2@y.test"));
	close(fd);
	teardown(&e);
	test_end();

	test_begin("no PIPELINING upstream: one RCPT at a time, same replies");
	setup(&e, "ok,slowrcpt,nopipe", NULL);
	snprintf(pipe, sizeof(pipe), "%s.pipe", e.msgfile);
	fd = session(&e);
	pipelined_group(fd, "r550@y.test");
	PREFIX(reply(fd, b, sizeof(b)), "550 5.1.1 <r550@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(fd, b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <ok1@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <ok2@y.test>");
	test_assert(count_lines(pipe, "RCPT") == 4);
	test_assert(count_lines(pipe, "RCPT ok1@y.test waited") == 1);
	test_assert(!file_has(e.msgfile, ".pipe", "ahead"));
	close(fd);
	teardown(&e);
	test_end();

	test_begin("PIPELINING: 421 in the middle, the RCPTs after it get 4xx, nothing sent");
	setup(&e, "ok,slowrcpt", NULL);
	fd = session(&e);
	pipelined_group(fd, "c421@y.test");
	PREFIX(reply(fd, b, sizeof(b)), "451 4.3.0 <c421@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "451 4.4.2 <ok2@y.test>: connection to");
	PREFIX(reply(fd, b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "451 4.4.2");
	test_assert(!file_has(e.msgfile, ".log", "MESSAGE"));
	/* the next transaction gets a fresh session */
	PREFIX(send_one(fd, "a@x.test", "ok3@y.test", b, sizeof(b)), "250 2.0.0 <ok3@y.test>");
	close(fd);
	teardown(&e);
	test_end();
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_recipients();
	test_refused();
	test_greet421();
	data_failure("dropdata", "smart host drops the connection after the data: 451 each");
	data_failure("silentdata", "smart host silent after the data: 451 each");
	test_silent();
	test_client_abort();
	test_protocol();
	test_shutdown();
	test_failover();
	test_pool();
	test_weights();
	test_split();
	test_dsn_8bit();
	test_login();
	test_mx();
	test_pipelining();
	return test_exit_status();
}
