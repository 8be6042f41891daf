/* harness - what the weir-agent scenario tests share (harness.c): start
 * weir-agent (env WEIR_AGENT, default delivery-agent/weir-agent) in the
 * foreground with a generated configuration, fake smart hosts
 * (fake-smarthost.py), LMTP commands and replies. Include after
 * tests/testlib.h: the inline helpers at the end count failures in the
 * including test's counters. */
#ifndef WEIR_TESTS_AGENT_HARNESS_H
#define WEIR_TESTS_AGENT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

struct env {
	char dir[64], conf[128], msgfile[128];
	int lmtp_port, up_port;
	pid_t fake, agent;
};

/* More fake upstreams (routes, failover, weights, MX) */
struct fake {
	pid_t pid;
	char listen[48]; /* ADDR:PORT */
	char msgfile[160];
};

/* top-level settings of the next agent started ("" none) */
extern const char *top_extra;

/* free_port - a loopback TCP port nobody listens on right now */
int free_port(void);
/* tcp_connect - connect to 127.0.0.1:port, tries times 100 ms apart */
int tcp_connect(int port, int tries);
/* start_fake - the fake smart host on e->up_port in mode */
void start_fake(struct env *e, const char *mode);
/* start_agent - write the configuration (agent group plus extra) and
 * start weir-agent -f; its log is DIR/agent.log */
void start_agent(struct env *e, const char *extra);
/* env_init - a fresh directory and ports; nothing started */
void env_init(struct env *e);
/* setup - env_init, the fake in mode (NULL = none), the agent */
void setup(struct env *e, const char *mode, const char *extra);
/* wait_exit - waitpid with a limit; the exit status or -1 */
int wait_exit(pid_t pid, int secs);
/* agent_stop - SIGTERM to the agent, stop the fake: the agent's status */
int agent_stop(struct env *e);
/* env_remove - remove the directory (its agent log to stderr first
 * when show_log) */
void env_remove(struct env *e, bool show_log);
/* reply - read one complete reply (last line into buf, 5 s limit) */
const char *reply(int fd, char *buf, size_t size);
/* cmd - send a line, read the reply */
const char *cmd(int fd, const char *line, char *buf, size_t size);
/* fake_start - one more fake upstream on listen ("ADDR:PORT" or a port)
 * in mode; its files are DIR/name, DIR/name.cmds, DIR/name.log */
void fake_start(struct env *e, struct fake *f, const char *listen, const char *mode,
                const char *name);
void fake_stop(struct fake *f);
/* count_lines - lines of path that start with prefix (0 if no file) */
int count_lines(const char *path, const char *prefix);
/* file_has - does the file at path (plus suffix) contain text */
bool file_has(const char *path, const char *suffix, const char *text);
/* send_one - a whole LMTP transaction with one recipient; returns the
 * reply after the data in b */
const char *send_one(int fd, const char *from, const char *to, char *b, size_t size);
/* prefix_ok - got starts with want; else says so (with line, test) */
bool prefix_ok(const char *got, const char *want, int line, const char *test);
/* lmtp_session - connect, greeting, LHLO; -1 when not as expected */
int lmtp_session(struct env *e, const char *test);

#ifdef WEIR_TESTLIB_H /* in the tests themselves */
#define PREFIX(got, want)                                                                   \
	do {                                                                                \
		if (!prefix_ok((got), (want), __LINE__, test_case_name)) {                  \
			test_failures_case++;                                               \
			test_failures_total++;                                              \
		}                                                                           \
	} while (0)

/* session - lmtp_session, counted as a failure of the test when it fails */
static inline int session(struct env *e)
{
	int fd = lmtp_session(e, test_case_name);

	test_assert(fd >= 0);
	return fd;
}

/* teardown - stop both; the agent must exit 0 on SIGTERM; the agent's
 * log is shown when the test failed */
static inline void teardown(struct env *e)
{
	test_assert(agent_stop(e) == 0);
	env_remove(e, test_failures_case > 0);
}

/* send_raw - write text as it is, in one write (a pipelined group) */
static inline void send_raw(int fd, const char *text)
{
	test_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
}
#endif

#endif
