/* test-throttle - scenario tests of weir-agent's throttle
 * (delivery-agent/throttle.c): the built agent against the fake smart
 * host (harness.c), several LMTP connections at once, the timing of the
 * RCPTs the fake receives, the 451/452 answers, back-off rules, the
 * state file. Loopback only. */
#include "autoconf.h"

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "tests/delivery-agent/harness.h"

static char top[2048];

/* now_s - a monotonic clock in seconds */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* start - env, the fake in mode, the agent with throttle group body
 * (its state file is DIR/throttle-state) */
static void start(struct env *e, const char *mode, const char *throttle)
{
	env_init(e);
	start_fake(e, mode);
	snprintf(top, sizeof(top), "throttle = {\n state_file = \"%s/throttle-state\";\n %s\n};",
	         e->dir, throttle);
	top_extra = top;
	start_agent(e, NULL);
	top_extra = "";
}

/* quiet - nothing to read on fd for ms */
static bool quiet(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 0;
}

/* path_in - DIR/name */
static const char *path_in(const struct env *e, const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	return path;
}

/* rcpt_times - the times the fake received RCPTs (stamp), sorted */
static int rcpt_times(const struct env *e, double *t, int max)
{
	char name[200], line[512];
	FILE *f;
	int n = 0;

	snprintf(name, sizeof(name), "%s.times", e->msgfile);
	if ((f = fopen(name, "r")) == NULL)
		return 0;
	while (n < max && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "RCPT ", 5) == 0)
			t[n++] = atof(line + 5);
	fclose(f);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
			double x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return n;
}

/* state_line - the state file's line for key (into buf), or "" */
static const char *state_line(const struct env *e, const char *key, char *buf, size_t size)
{
	FILE *f = fopen(path_in(e, "throttle-state"), "r");
	size_t klen = strlen(key);

	buf[0] = '\0';
	if (f == NULL)
		return buf;
	while (fgets(buf, (int)size, f) != NULL)
		if (strncmp(buf, key, klen) == 0 && buf[klen] == ' ')
			break;
		else
			buf[0] = '\0';
	fclose(f);
	return buf;
}

/* sender - a child sending n messages to y.test; exit 0 when every one
 * got 250 */
static void sender(struct env *e, int id, int n)
{
	char b[1024], to[64];
	int fd = lmtp_session(e, "sender"), bad = 0;

	for (int i = 0; i < n; i++) {
		snprintf(to, sizeof(to), "c%dm%d@y.test", id, i);
		if (strncmp(send_one(fd, "a@x.test", to, b, sizeof(b)), "250 2.0.0", 9) != 0) {
			fprintf(stderr, "sender %d: %s: %s\n", id, to, b);
			bad++;
		}
	}
	close(fd);
	_exit(bad ? 1 : 0);
}

static void test_rate_smooth(void)
{
	static const int share[] = {4, 3, 3};
	struct env e;
	pid_t kids[3];
	double t[16];
	int n, st;

	test_begin("rate 5/s burst 1: 10 messages from 3 connections spaced >= 200 ms, none deferred");
	start(&e, "ok,stamp",
	      "wait = \"3s\"; groups = ( { name = \"y\"; domains = (\"y.test\"); rate = \"5/s\";"
	      " burst = 1; } );");
	for (int i = 0; i < 3; i++)
		if ((kids[i] = fork()) == 0)
			sender(&e, i, share[i]);
	for (int i = 0; i < 3; i++) {
		test_assert(waitpid(kids[i], &st, 0) == kids[i]);
		test_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	n = rcpt_times(&e, t, 16);
	test_assert(n == 10);
	test_assert(count_lines(path_in(&e, "msg.log"), "MESSAGE ") == 10);
	for (int i = 1; i < n; i++)
		if (t[i] - t[i - 1] < 0.17) {
			fprintf(stderr, "RCPT %d came %.3f s after the one before\n", i,
			        t[i] - t[i - 1]);
			test_assert(t[i] - t[i - 1] >= 0.17);
		}
	test_assert(n < 2 || t[n - 1] - t[0] >= 1.7);
	test_assert(!file_has(path_in(&e, "agent.log"), "", "status=deferred"));
	teardown(&e);
	test_end();
}

static void test_rate_over_wait(void)
{
	struct env e;
	char b[1024], st[512];
	int fd;

	test_begin("rate: over the wait -> 451 4.7.0 throttled, logged, counted in the state file");
	start(&e, "ok", "wait = \"1s\"; groups = ( { name = \"y\"; domains = (\"y.test\");"
	                " rate = \"6/1m\"; } );");
	fd = session(&e);
	PREFIX(send_one(fd, "a@x.test", "a@y.test", b, sizeof(b)), "250 2.0.0 <a@y.test>");
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	test_assert_str(cmd(fd, "RCPT TO:<b@y.test>", b, sizeof(b)),
	                "451 4.7.0 <b@y.test>: throttled: group:y at 6/m, retry");
	/* another domain is not held up */
	PREFIX(cmd(fd, "RCPT TO:<c@z.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <c@z.test>");
	test_assert(file_has(path_in(&e, "agent.log"), "",
	                     "throttle=group:y status=deferred reason=rate rcpt=<b@y.test>"));
	usleep(1300000); /* the state file: once a second when changed */
	state_line(&e, "group:y", st, sizeof(st));
	test_assert(strstr(st, "deferred=1 ") != NULL);
	test_assert(strstr(st, "sessions=0") != NULL);
	test_assert(strstr(st, "state=normal") != NULL);
	if (test_failures_case)
		fprintf(stderr, "state line: %s\n", st);
	close(fd);
	teardown(&e);
	test_end();
}

static void test_sessions(void)
{
	struct env e;
	char b[1024];
	int a, bb, c;
	double t0;

	test_begin("sessions = 1: the second transaction waits for the first, else 451; max_waiting");
	start(&e, "ok", "wait = \"1s\"; max_waiting = 1; groups = ( { name = \"y\";"
	                " domains = (\"y.test\"); sessions = 1; } );");
	a = session(&e);
	bb = session(&e);
	c = session(&e);
	PREFIX(cmd(a, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(a, "RCPT TO:<a1@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(bb, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	send_raw(bb, "RCPT TO:<b1@y.test>\r\n");
	test_assert(quiet(bb, 300)); /* waits for a's session */
	/* a third one: max_waiting = 1 already waits -> at once */
	PREFIX(cmd(c, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	test_assert_str(cmd(c, "RCPT TO:<c1@y.test>", b, sizeof(b)),
	                "451 4.7.0 <c1@y.test>: throttled: group:y busy, 1 waiting, retry");
	test_assert(file_has(path_in(&e, "agent.log"), "",
	                     "throttle=group:y status=deferred reason=waiting rcpt=<c1@y.test>"));
	PREFIX(cmd(c, "RSET", b, sizeof(b)), "250");
	PREFIX(cmd(a, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(a, "x\r\n.", b, sizeof(b)), "250 2.0.0 <a1@y.test>");
	PREFIX(reply(bb, b, sizeof(b)), "250 2.1.5"); /* a's session is b's now */
	/* now b holds it longer than the wait: a gets 451 after 1 s */
	PREFIX(cmd(a, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	t0 = now_s();
	test_assert_str(cmd(a, "RCPT TO:<a2@y.test>", b, sizeof(b)),
	                "451 4.7.0 <a2@y.test>: throttled: group:y at 1 session, retry");
	test_assert(now_s() - t0 >= 0.9 && now_s() - t0 < 2.5);
	PREFIX(cmd(bb, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(bb, "x\r\n.", b, sizeof(b)), "250 2.0.0 <b1@y.test>");
	PREFIX(cmd(a, "RCPT TO:<a3@y.test>", b, sizeof(b)), "250 2.1.5");
	close(a);
	close(bb);
	close(c);
	teardown(&e);
	test_end();
}

static void test_recipients(void)
{
	struct env e;
	char b[1024];
	int fd;

	test_begin("recipients = 2: the third RCPT 452 4.5.3, the others relayed");
	start(&e, "ok", "groups = ( { name = \"y\"; domains = (\"y.test\"); recipients = 2; } );");
	fd = session(&e);
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<r1@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "RCPT TO:<r2@y.test>", b, sizeof(b)), "250 2.1.5");
	test_assert_str(cmd(fd, "RCPT TO:<r3@y.test>", b, sizeof(b)),
	                "452 4.5.3 <r3@y.test>: too many recipients for group:y in one transaction");
	PREFIX(cmd(fd, "RCPT TO:<r4@z.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(fd, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <r1@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <r2@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <r4@z.test>");
	/* a new transaction counts afresh */
	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(fd, "RCPT TO:<r3@y.test>", b, sizeof(b)), "250 2.1.5");
	close(fd);
	teardown(&e);
	test_end();
}

/* one_rcpt - MAIL, RCPT to, RSET: the RCPT's reply in b */
static const char *one_rcpt(int fd, const char *to, char *b, size_t size)
{
	char line[300], r[1024];

	PREFIX(cmd(fd, "MAIL FROM:<a@x.test>", r, sizeof(r)), "250");
	snprintf(line, sizeof(line), "RCPT TO:<%s>", to);
	cmd(fd, line, b, size);
	PREFIX(cmd(fd, "RSET", r, sizeof(r)), "250");
	return b;
}

static void test_suspend(void)
{
	struct env e;
	char b[1024], st[512];
	int fd;

	test_begin("rule: 2 x 421 suspend the group for 2 s without asking upstream, then recover");
	start(&e, "ok", "groups = ( { name = \"ya\"; domains = (\"ya.test\"); } );\n"
	                " rules = ( { name = \"ts\"; code = \"421\"; text = \"try (again )?later\";"
	                " threshold = 2; window = \"60s\"; action = \"suspend\"; duration = \"2s\"; } );");
	fd = session(&e);
	PREFIX(one_rcpt(fd, "y421a@ya.test", b, sizeof(b)), "451 4.7.0 <y421a@ya.test>: smart host");
	PREFIX(one_rcpt(fd, "other@zz.test", b, sizeof(b)), "250 2.1.5");
	PREFIX(one_rcpt(fd, "y421b@ya.test", b, sizeof(b)), "451 4.7.0 <y421b@ya.test>: smart host");
	PREFIX(one_rcpt(fd, "ok@ya.test", b, sizeof(b)),
	       "451 4.7.0 <ok@ya.test>: throttled: group:ya suspended until 20");
	test_assert(strstr(b, " after \"421 4.7.0 [TS01] try again later\", retry") != NULL);
	test_assert(!file_has(e.msgfile, ".cmds", "RCPT TO:<ok@ya.test>"));
	test_assert(file_has(path_in(&e, "agent.log"), "", "throttle=group:ya state=suspended"));
	test_assert(file_has(path_in(&e, "agent.log"), "",
	                     "throttle=group:ya status=deferred reason=suspended rcpt=<ok@ya.test>"));
	/* other domains go on */
	PREFIX(one_rcpt(fd, "other2@zz.test", b, sizeof(b)), "250 2.1.5");
	usleep(1200000);
	state_line(&e, "group:ya", st, sizeof(st));
	test_assert(strstr(st, "state=suspended") != NULL);
	if (test_failures_case)
		fprintf(stderr, "state line: %s\n", st);
	usleep(1000000);
	PREFIX(one_rcpt(fd, "ok2@ya.test", b, sizeof(b)), "250 2.1.5");
	test_assert(file_has(e.msgfile, ".cmds", "RCPT TO:<ok2@ya.test>"));
	close(fd);
	teardown(&e);
	test_end();
}

static void test_greeting(void)
{
	struct env e;
	char b[1024], extra[512];
	int fd;

	test_begin("rule: a smart host refusing the session with 421 at its greeting counts too");
	env_init(&e);
	start_fake(&e, "greet421");
	snprintf(top, sizeof(top),
	         "throttle = {\n state_file = \"%s/throttle-state\";\n"
	         " groups = ( { name = \"ya\"; domains = (\"ya.test\"); } );\n"
	         " rules = ( { name = \"greet\"; code = \"421\"; threshold = 1; window = \"60s\";"
	         " action = \"suspend\"; duration = \"30s\"; } );\n};",
	         e.dir);
	top_extra = top;
	/* routed by recipient domain: the session opens at RCPT */
	snprintf(extra, sizeof(extra),
	         " routes = ( { name = \"ra\"; rcpt_domains = (\"ya.test\");\n"
	         "   hosts = ( { host = \"127.0.0.1\"; port = %d; } ); },\n"
	         " { name = \"rest\"; hosts = ( { host = \"127.0.0.1\"; port = %d; } ); } );",
	         e.up_port, e.up_port);
	start_agent(&e, extra);
	top_extra = "";
	fd = session(&e);
	PREFIX(one_rcpt(fd, "a@ya.test", b, sizeof(b)), "451 4.4.0");
	PREFIX(one_rcpt(fd, "b@ya.test", b, sizeof(b)),
	       "451 4.7.0 <b@ya.test>: throttled: group:ya suspended until 20");
	test_assert(strstr(b, "421 4.3.2 fake: service not available") != NULL);
	test_assert(file_has(path_in(&e, "agent.log"), "", "throttle=group:ya state=suspended"));
	close(fd);
	teardown(&e);
	test_end();
}

static void test_hot_cold(void)
{
	struct env e;
	char b[1024];
	int hot[3], cold;
	double t0;

	test_begin("a hot domain at 1/s with waiting RCPTs does not delay a cold one");
	start(&e, "ok", "wait = \"5s\"; groups = ( { name = \"hot\"; domains = (\"hot.test\");"
	                " rate = \"1/s\"; } );");
	for (int i = 0; i < 3; i++) {
		char line[200];
		hot[i] = session(&e);
		snprintf(line, sizeof(line), "MAIL FROM:<a@x.test>\r\nRCPT TO:<h%d@hot.test>\r\n", i);
		send_raw(hot[i], line);
		PREFIX(reply(hot[i], b, sizeof(b)), "250 2.1.0");
	}
	PREFIX(reply(hot[0], b, sizeof(b)), "250 2.1.5"); /* the first goes at once */
	cold = session(&e);
	t0 = now_s();
	PREFIX(send_one(cold, "a@x.test", "c@cold.test", b, sizeof(b)), "250 2.0.0 <c@cold.test>");
	test_assert(now_s() - t0 < 0.5);
	test_assert(quiet(hot[1], 0) || quiet(hot[2], 0)); /* at most one of them is through */
	t0 = now_s();
	PREFIX(reply(hot[1], b, sizeof(b)), "250 2.1.5");
	PREFIX(reply(hot[2], b, sizeof(b)), "250 2.1.5");
	test_assert(now_s() - t0 >= 0.8);
	for (int i = 0; i < 3; i++) {
		PREFIX(cmd(hot[i], "DATA", b, sizeof(b)), "354");
		PREFIX(cmd(hot[i], "x\r\n.", b, sizeof(b)), "250 2.0.0");
		close(hot[i]);
	}
	close(cold);
	teardown(&e);
	test_end();
}

static void test_disconnect(void)
{
	struct env e;
	char b[1024], st[512];
	int a, w, r1, r2;
	double t0;

	test_begin("a client leaves while its RCPT waits (session, rate): nothing stays held");
	start(&e, "ok", "wait = \"3s\"; groups = ( { name = \"y\"; domains = (\"y.test\");"
	                " sessions = 1; }, { name = \"r\"; domains = (\"r.test\"); rate = \"1/s\"; } );");
	a = session(&e);
	w = session(&e);
	PREFIX(cmd(a, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	PREFIX(cmd(a, "RCPT TO:<a1@y.test>", b, sizeof(b)), "250 2.1.5");
	PREFIX(cmd(w, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	send_raw(w, "RCPT TO:<w1@y.test>\r\n");
	test_assert(quiet(w, 300));
	close(w); /* gone while waiting for a's session */
	usleep(200000);
	PREFIX(cmd(a, "DATA", b, sizeof(b)), "354");
	PREFIX(cmd(a, "x\r\n.", b, sizeof(b)), "250 2.0.0 <a1@y.test>");
	/* the session was not handed to the client that left */
	PREFIX(cmd(a, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	t0 = now_s();
	PREFIX(cmd(a, "RCPT TO:<a2@y.test>", b, sizeof(b)), "250 2.1.5");
	test_assert(now_s() - t0 < 0.5);
	PREFIX(cmd(a, "RSET", b, sizeof(b)), "250");
	/* the same while waiting for a rate slot */
	r1 = session(&e);
	r2 = session(&e);
	PREFIX(send_one(r1, "a@x.test", "q1@r.test", b, sizeof(b)), "250 2.0.0");
	PREFIX(cmd(r2, "MAIL FROM:<a@x.test>", b, sizeof(b)), "250");
	send_raw(r2, "RCPT TO:<q2@r.test>\r\n");
	test_assert(quiet(r2, 200));
	close(r2);
	usleep(1500000);
	state_line(&e, "group:y", st, sizeof(st));
	test_assert(strstr(st, "sessions=0/1 waiting=0 ") != NULL);
	if (test_failures_case)
		fprintf(stderr, "state line: %s\n", st);
	state_line(&e, "group:r", st, sizeof(st));
	test_assert(strstr(st, "waiting=0 ") != NULL);
	if (test_failures_case)
		fprintf(stderr, "state line: %s\n", st);
	PREFIX(send_one(r1, "a@x.test", "q3@r.test", b, sizeof(b)), "250 2.0.0");
	close(r1);
	close(a);
	teardown(&e);
	test_end();
}

static void test_pipelined(void)
{
	struct env e;
	char b[1024];
	int fd;
	double t0;

	test_begin("pipelined RCPTs: one that must wait waits for the flight, replies in order");
	start(&e, "ok,slowrcpt", "wait = \"3s\"; groups = ( { name = \"y\"; domains = (\"y.test\");"
	                         " rate = \"1/s\"; } );");
	fd = session(&e);
	PREFIX(send_one(fd, "a@x.test", "first@y.test", b, sizeof(b)), "250 2.0.0");
	t0 = now_s();
	send_raw(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<p1@z.test>\r\nRCPT TO:<p2@y.test>\r\n"
	             "RCPT TO:<p3@z.test>\r\nDATA\r\n");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.0");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5"); /* p1 */
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5"); /* p2, after its slot */
	test_assert(now_s() - t0 >= 0.7);
	PREFIX(reply(fd, b, sizeof(b)), "250 2.1.5"); /* p3 */
	PREFIX(reply(fd, b, sizeof(b)), "354");
	PREFIX(cmd(fd, "x\r\n.", b, sizeof(b)), "250 2.0.0 <p1@z.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <p2@y.test>");
	PREFIX(reply(fd, b, sizeof(b)), "250 2.0.0 <p3@z.test>");
	test_assert(file_has(e.msgfile, ".pipe", "RCPT p1@z.test"));
	close(fd);
	teardown(&e);
	test_end();
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_rate_smooth();
	test_rate_over_wait();
	test_sessions();
	test_recipients();
	test_suspend();
	test_greeting();
	test_hot_cold();
	test_disconnect();
	test_pipelined();
	return test_exit_status();
}
