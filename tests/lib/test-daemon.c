/* test-daemon - pid files (refuse a live owner, replace a stale one,
 * remove only our own) and user lookup */
#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "tests/testlib.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

int main(void)
{
	char dir[] = "/tmp/weir-test-daemon-XXXXXX";
	char path[256], buf[64];
	const char *err;
	uid_t uid;
	gid_t gid;
	pid_t child;
	FILE *f;

	test_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/x.pid", dir);

	test_begin("pid file written with our pid");
	test_assert(daemon_pidfile_write(path, (uid_t)-1, (gid_t)-1, &err) == 0);
	f = fopen(path, "r");
	test_assert(f != NULL && fgets(buf, sizeof(buf), f) != NULL);
	if (f)
		fclose(f);
	test_assert(atol(buf) == (long)getpid());
	test_end();

	test_begin("a live process in the pid file refuses the start");
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	snprintf(buf, sizeof(buf), "%ld\n", (long)child);
	write_file(path, buf);
	test_assert(daemon_pidfile_write(path, (uid_t)-1, (gid_t)-1, &err) < 0);
	test_assert(err != NULL && strstr(err, "running") != NULL);
	daemon_pidfile_remove(path); /* not ours: stays */
	test_assert(access(path, F_OK) == 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	test_end();

	test_begin("a stale pid file is replaced; remove takes only ours");
	test_assert(daemon_pidfile_write(path, (uid_t)-1, (gid_t)-1, &err) == 0);
	daemon_pidfile_remove(path);
	test_assert(access(path, F_OK) != 0);
	write_file(path, "garbage\n");
	test_assert(daemon_pidfile_write(path, (uid_t)-1, (gid_t)-1, &err) == 0);
	daemon_pidfile_remove(path);
	test_end();

	test_begin("a pid file in a missing directory is an error");
	test_assert(daemon_pidfile_write("/nonexistent/dir/x.pid", (uid_t)-1, (gid_t)-1, &err) < 0);
	test_end();

	test_begin("user lookup");
	test_assert(daemon_lookup_user("root", &uid, &gid) == 0 && uid == 0);
	test_assert(daemon_lookup_user("no-such-user-weir-test", &uid, &gid) < 0);
	test_end();

	test_begin("refuse to 'drop' to root");
	if (geteuid() == 0) {
		test_assert(daemon_drop_privileges("root", &err) < 0);
		test_assert(strstr(err, "refusing to run as root") != NULL);
		test_assert(daemon_drop_privileges("no-such-user-weir-test", &err) < 0);
	} else {
		test_assert(daemon_drop_privileges("anything", &err) == 0);
	}
	test_end();
	rmdir(dir);
	return test_exit_status();
}
