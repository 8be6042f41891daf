/* test-relay - scenario tests: weir-agent against a fake smart host
 *
 * Starts the built weir-agent (env WEIR_AGENT, default
 * delivery-agent/weir-agent) in the foreground with a generated
 * configuration, against tests/delivery-agent/fake-smarthost.py (found
 * through $srcdir) which misbehaves on purpose, and checks the LMTP
 * replies per recipient. Loopback only; ports are picked at run time. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"

struct env {
	char dir[64], conf[128], msgfile[128];
	int lmtp_port, up_port;
	pid_t fake, agent;
};

/* free_port - a loopback TCP port nobody listens on right now */
static int free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		perror("bind");
		exit(1);
	}
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* tcp_connect - connect to 127.0.0.1:port, retrying for up to 10 s */
static int tcp_connect(int port, int tries)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < tries; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			return fd;
		close(fd);
		usleep(100000);
	}
	return -1;
}

/* start_fake - the fake smart host in mode; waits until it accepts */
static void start_fake(struct env *e, const char *mode)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	char script[512], port[16];
	int fd;

	snprintf(script, sizeof(script), "%s/tests/delivery-agent/fake-smarthost.py", srcdir);
	snprintf(port, sizeof(port), "%d", e->up_port);
	e->fake = fork();
	if (e->fake == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl("/usr/bin/python3", "python3", script, port, mode, e->msgfile, (char *)NULL);
		_exit(127);
	}
	fd = tcp_connect(e->up_port, 100);
	if (fd < 0)
		fprintf(stderr, "fake smart host did not start\n");
	else
		close(fd);
}

/* start_agent - write the configuration and start weir-agent -f */
static void start_agent(struct env *e, const char *extra)
{
	const char *bin = getenv("WEIR_AGENT") ? getenv("WEIR_AGENT") : "delivery-agent/weir-agent";
	FILE *f = fopen(e->conf, "w");
	int fd;

	fprintf(f,
		"user = \"nobody\";\nhostname = \"agent.test\";\nlog_level = \"debug\";\n"
		"agent = {\n lmtp_listen = (\"inet:%d@127.0.0.1\");\n pid_file = \"\";\n"
		" smarthost = \"[127.0.0.1]:%d\";\n connect_timeout = \"2s\";\n"
		" command_timeout = \"2s\";\n data_timeout = \"2s\";\n %s\n};\n",
		e->lmtp_port, e->up_port, extra ? extra : "");
	fclose(f);
	e->agent = fork();
	if (e->agent == 0) {
		char log[160];
		snprintf(log, sizeof(log), "%s/agent.log", e->dir);
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(lfd, 2);
		execl(bin, "weir-agent", "-f", "-c", e->conf, (char *)NULL);
		_exit(127);
	}
	fd = tcp_connect(e->lmtp_port, 100);
	if (fd >= 0)
		close(fd); /* the agent logs a connect and disconnect: harmless */
}

/* setup - fresh directory, ports; fake in mode (NULL = none) */
static void setup(struct env *e, const char *mode, const char *extra)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/weir-test-relay.XXXXXX");
	if (mkdtemp(e->dir) == NULL)
		exit(1);
	snprintf(e->conf, sizeof(e->conf), "%s/weir.conf", e->dir);
	snprintf(e->msgfile, sizeof(e->msgfile), "%s/msg", e->dir);
	e->lmtp_port = free_port();
	e->up_port = free_port();
	if (mode != NULL)
		start_fake(e, mode);
	start_agent(e, extra);
}

/* wait_exit - waitpid with a limit; returns the exit status or -1 */
static int wait_exit(pid_t pid, int secs)
{
	int st;

	for (int i = 0; i < secs * 10; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* teardown - stop both; the agent must exit 0 on SIGTERM */
static void teardown(struct env *e)
{
	char cmd[200];

	kill(e->agent, SIGTERM);
	test_assert(wait_exit(e->agent, 10) == 0);
	if (e->fake > 0) {
		kill(e->fake, SIGKILL);
		waitpid(e->fake, NULL, 0);
	}
	if (test_failures_case) {
		snprintf(cmd, sizeof(cmd), "cat %s/agent.log >&2", e->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "(no agent log)\n");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", e->dir);
}

/* reply - read one complete reply (last line into buf, 5 s limit) */
static const char *reply(int fd, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char c;
		if (poll(&p, 1, 5000) <= 0 || read(fd, &c, 1) != 1)
			return n ? buf : "(closed)";
		if (c == '\n') {
			buf[n > 0 && buf[n - 1] == '\r' ? n - 1 : n] = '\0';
			if (n < 4 || buf[3] != '-')
				return buf;
			n = 0;
			continue;
		}
		if (n + 1 < size)
			buf[n++] = c;
	}
}

/* cmd - send a line, read the reply */
static const char *cmd(int fd, const char *line, char *buf, size_t size)
{
	if (write(fd, line, strlen(line)) < 0 || write(fd, "\r\n", 2) < 0)
		return "(write failed)";
	return reply(fd, buf, size);
}

#define PREFIX(got, want) test_assert_prefix(got, want, __LINE__)
static void test_assert_prefix(const char *got, const char *want, int line)
{
	if (strncmp(got, want, strlen(want)) != 0) {
		fprintf(stderr, "line %d: %s: got \"%s\", want \"%s...\"\n", line, test_case_name,
			got, want);
		test_failures_case++;
		test_failures_total++;
	}
}

/* session - connect, greeting and LHLO */
static int session(struct env *e)
{
	char b[1024];
	int fd = tcp_connect(e->lmtp_port, 50);

	PREFIX(reply(fd, b, sizeof(b)), "220 agent.test LMTP");
	PREFIX(cmd(fd, "LHLO mta.test", b, sizeof(b)), "250 ENHANCEDSTATUSCODES");
	return fd;
}

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
	return test_exit_status();
}
