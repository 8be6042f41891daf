/* harness - what the weir-agent scenario tests share (test-relay,
 * test-throttle): the agent started in the foreground with a generated
 * configuration, fake smart hosts (fake-smarthost.py, found through
 * $srcdir), LMTP commands and replies. Loopback only; ports are picked
 * at run time. See harness.h. */
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

#include "tests/delivery-agent/harness.h"

const char *top_extra = "";

/* free_port - a loopback TCP port nobody listens on right now */
int free_port(void)
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
int tcp_connect(int port, int tries)
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
void start_fake(struct env *e, const char *mode)
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
void start_agent(struct env *e, const char *extra)
{
	const char *bin = getenv("WEIR_AGENT") ? getenv("WEIR_AGENT") : "delivery-agent/weir-agent";
	FILE *f = fopen(e->conf, "w");
	/* the outcome log and the suppression list in the test's directory,
	 * unless the test writes those groups itself */
	bool own_outcome = strstr(top_extra, "outcome =") == NULL;
	bool own_supp = strstr(top_extra, "suppression =") == NULL;
	int fd;

	fprintf(f,
		"user = \"nobody\";\nhostname = \"agent.test\";\nlog_level = \"debug\";\n%s\n"
		"%s%s%s%s%s%s"
		"agent = {\n lmtp_listen = (\"inet:%d@127.0.0.1\");\n pid_file = \"\";\n"
		" state_file = \"%s/state\";\n"
		" smarthost = \"[127.0.0.1]:%d\";\n connect_timeout = \"2s\";\n"
		" command_timeout = \"2s\";\n data_timeout = \"2s\";\n %s\n};\n",
		top_extra, own_outcome ? "outcome = { db = \"" : "", own_outcome ? e->dir : "",
		own_outcome ? "/outcome.db\"; };\n" : "", own_supp ? "suppression = { db = \"" : "",
		own_supp ? e->dir : "", own_supp ? "/suppression.db\"; };\n" : "", e->lmtp_port,
		e->dir, e->up_port, extra ? extra : "");
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

/* env_init - a fresh directory and ports; nothing started */
void env_init(struct env *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/weir-test-relay.XXXXXX");
	if (mkdtemp(e->dir) == NULL)
		exit(1);
	chmod(e->dir, 0777); /* the agent writes its state file as nobody */
	snprintf(e->conf, sizeof(e->conf), "%s/weir.conf", e->dir);
	snprintf(e->msgfile, sizeof(e->msgfile), "%s/msg", e->dir);
	e->lmtp_port = free_port();
	e->up_port = free_port();
}

/* setup - fresh directory, ports; fake in mode (NULL = none) */
void setup(struct env *e, const char *mode, const char *extra)
{
	env_init(e);
	if (mode != NULL)
		start_fake(e, mode);
	start_agent(e, extra);
}

/* wait_exit - waitpid with a limit; returns the exit status or -1 */
int wait_exit(pid_t pid, int secs)
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

/* agent_stop - SIGTERM to the agent, then stop the fake; the agent's
 * exit status (-1: it had to be killed) */
int agent_stop(struct env *e)
{
	int st;

	kill(e->agent, SIGTERM);
	st = wait_exit(e->agent, 10);
	if (e->fake > 0) {
		kill(e->fake, SIGKILL);
		waitpid(e->fake, NULL, 0);
	}
	return st;
}

/* env_remove - the directory; its agent log first when show_log */
void env_remove(struct env *e, bool show_log)
{
	char cmd[200];

	if (show_log) {
		snprintf(cmd, sizeof(cmd), "cat %s/agent.log >&2", e->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "(no agent log)\n");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", e->dir);
}

/* reply - read one complete reply (last line into buf, 5 s limit) */
const char *reply(int fd, char *buf, size_t size)
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
const char *cmd(int fd, const char *line, char *buf, size_t size)
{
	size_t n = strlen(line);
	char *out = malloc(n + 2);

	/* one write: a separate CRLF would wait for a delayed ACK (Nagle) */
	memcpy(out, line, n);
	memcpy(out + n, "\r\n", 2);
	if (write(fd, out, n + 2) < 0) {
		free(out);
		return "(write failed)";
	}
	free(out);
	return reply(fd, buf, size);
}

/* fake_start - one more fake upstream on listen ("ADDR:PORT" or a port)
 * in mode; its files are DIR/name, DIR/name.cmds, DIR/name.log */
void fake_start(struct env *e, struct fake *f, const char *listen, const char *mode,
		       const char *name)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	char script[512], addr[48];
	int port;

	snprintf(script, sizeof(script), "%s/tests/delivery-agent/fake-smarthost.py", srcdir);
	snprintf(f->listen, sizeof(f->listen), "%s", listen);
	snprintf(f->msgfile, sizeof(f->msgfile), "%s/%s", e->dir, name);
	f->pid = fork();
	if (f->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl("/usr/bin/python3", "python3", script, f->listen, mode, f->msgfile,
		      (char *)NULL);
		_exit(127);
	}
	snprintf(addr, sizeof(addr), "%s", listen);
	port = atoi(strrchr(addr, ':') ? strrchr(addr, ':') + 1 : addr);
	if (strchr(addr, ':') != NULL && strncmp(addr, "127.0.0.1:", 10) != 0) {
		usleep(500000); /* not on 127.0.0.1: no probe, just wait */
		return;
	}
	int fd = tcp_connect(port, 100);
	if (fd < 0)
		fprintf(stderr, "fake %s did not start\n", listen);
	else
		close(fd);
}

void fake_stop(struct fake *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
}

/* count_lines - lines of path that start with prefix (0 if no file) */
int count_lines(const char *path, const char *prefix)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			n++;
	fclose(f);
	return n;
}

/* file_has - does the file at path (plus suffix) contain text */
bool file_has(const char *path, const char *suffix, const char *text)
{
	char name[256], buf[65536];
	FILE *f;
	size_t n;

	snprintf(name, sizeof(name), "%s%s", path, suffix);
	if ((f = fopen(name, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, text) != NULL;
}

/* send_one - a whole LMTP transaction with one recipient; returns the
 * reply after the data in b */
const char *send_one(int fd, const char *from, const char *to, char *b, size_t size)
{
	char line[600];

	snprintf(line, sizeof(line), "MAIL FROM:<%s>", from);
	if (strncmp(cmd(fd, line, b, size), "250", 3) != 0)
		return b;
	snprintf(line, sizeof(line), "RCPT TO:<%s>", to);
	if (strncmp(cmd(fd, line, b, size), "250", 3) != 0)
		return b;
	if (strncmp(cmd(fd, "DATA", b, size), "354", 3) != 0)
		return b;
	return cmd(fd, "Subject: t\r\n\r\nbody\r\n.", b, size);
}

/* prefix_ok - got starts with want; else says so on stderr */
bool prefix_ok(const char *got, const char *want, int line, const char *test)
{
	if (strncmp(got, want, strlen(want)) == 0)
		return true;
	fprintf(stderr, "line %d: %s: got \"%s\", want \"%s...\"\n", line, test, got, want);
	return false;
}

/* lmtp_session - connect, greeting and LHLO; -1 (said on stderr) when
 * either is not as expected */
int lmtp_session(struct env *e, const char *test)
{
	char b[1024];
	int fd = tcp_connect(e->lmtp_port, 50);
	bool ok;

	ok = prefix_ok(reply(fd, b, sizeof(b)), "220 agent.test LMTP", __LINE__, test);
	ok = prefix_ok(cmd(fd, "LHLO mta.test", b, sizeof(b)), "250 ENHANCEDSTATUSCODES", __LINE__,
	               test) && ok;
	if (!ok && fd >= 0) {
		close(fd);
		return -1;
	}
	return fd;
}
