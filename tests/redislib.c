/* redislib - throwaway redis-server instances for the Redis tests (see
 * redislib.h); as /work/shared/field-notes.md says: --save '' and
 * --appendonly no, so nothing outlives the test but its directory. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "tests/redislib.h"

long long test_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void test_sleep_ms(long long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool redis_server_installed(void)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	bool found = false;

	copy = xstrdup(path ? path : "/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/redis-server", dir);
		found = access(p, X_OK) == 0;
		free(p);
	}
	free(copy);
	return found;
}

int redis_free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		perror("redis_free_port");
		exit(1);
	}
	p = ntohs(sin.sin_port);
	close(fd);
	return p;
}

redisContext *redis_admin(int port, const char *password)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

	if (c == NULL || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (password != NULL) {
		redisReply *r = redisCommand(c, "AUTH %s", password);
		freeReplyObject(r);
	}
	return c;
}

pid_t redis_server_start(const char *dir, int port, const char *password)
{
	char portstr[16];
	pid_t pid;

	snprintf(portstr, sizeof(portstr), "%d", port);
	pid = fork();
	if (pid == 0) {
		char *logf = xasprintf("%s/redis-%d.log", dir, port);
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (password != NULL)
			execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port",
			       portstr, "--save", "", "--appendonly", "no", "--dir", dir,
			       "--requirepass", password, (char *)NULL);
		else
			execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port",
			       portstr, "--save", "", "--appendonly", "no", "--dir", dir,
			       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		redisContext *c = redis_admin(port, password);
		if (c != NULL) {
			redisReply *r = redisCommand(c, "PING");
			bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
			redisFree(c);
			if (ok)
				return pid;
		}
		test_sleep_ms(50);
	}
	fprintf(stderr, "redis-server on port %d did not start (see %s)\n", port, dir);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	exit(1);
}

void redis_server_stop(pid_t *pid, int sig)
{
	if (*pid > 0) {
		kill(*pid, sig);
		waitpid(*pid, NULL, 0);
		*pid = 0;
	}
}

void redis_test_cleanup(const char *dir, pid_t *pids, size_t n)
{
	char *cmd;

	for (size_t i = 0; i < n; i++) {
		if (pids[i] > 0)
			kill(pids[i], SIGCONT);
		redis_server_stop(&pids[i], SIGKILL);
	}
	cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
}
