/* daemon - the basics every weir daemon shares */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* Write end of the pipe to the waiting parent; -1 when not detached. */
static int ready_fd = -1;

int daemon_detach(void)
{
	int pipefd[2], fd;
	pid_t pid;
	char c;

	if (pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		/* Parent: exit 0 when the child reports ready, 1 if it dies
		 * (the pipe closes) before that. */
		close(pipefd[1]);
		ssize_t n = read(pipefd[0], &c, 1);
		_exit(n == 1 ? 0 : 1);
	}
	close(pipefd[0]);
	fcntl(pipefd[1], F_SETFD, FD_CLOEXEC);
	ready_fd = pipefd[1];
	if (setsid() < 0 || chdir("/") < 0)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return 0;
}

void daemon_ready(void)
{
	char c = 'r';

	if (ready_fd < 0)
		return;
	if (write(ready_fd, &c, 1) != 1) {
		/* The parent is gone; nothing to tell. */
	}
	close(ready_fd);
	ready_fd = -1;
}

static pid_t pidfile_read(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long pid;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

int daemon_pidfile_write(const char *path, uid_t uid, gid_t gid, const char **err_r)
{
	char buf[32];
	pid_t old = pidfile_read(path);
	int fd, n;

	if (old > 0 && old != getpid() && (kill(old, 0) == 0 || errno == EPERM)) {
		*err_r = "pid file names a running process (already running?)";
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		*err_r = strerror(errno);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		*err_r = strerror(errno);
		close(fd);
		return -1;
	}
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) {
		*err_r = strerror(errno);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void daemon_pidfile_remove(const char *path)
{
	if (path != NULL && path[0] != '\0' && pidfile_read(path) == getpid())
		unlink(path);
}

int daemon_lookup_user(const char *user, uid_t *uid_r, gid_t *gid_r)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL)
		return -1;
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int daemon_drop_privileges(const char *user, const char **err_r)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		*err_r = "no such user";
		return -1;
	}
	if (pw->pw_uid == 0) {
		*err_r = "refusing to run as root: set 'user' to an unprivileged account";
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		*err_r = strerror(errno);
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		*err_r = "root privileges could be regained after setuid";
		return -1;
	}
	return 0;
}

/* chown_if_file - chown path to uid:gid if it is a regular file */
static void chown_if_file(const char *path, uid_t uid, gid_t gid, const char *what)
{
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if ((st.st_uid != uid || st.st_gid != gid) && chown(path, uid, gid) < 0)
		log_error("%s: chown %s: %s", what, path, strerror(errno));
}

/* An SQLite file and the files SQLite keeps beside it (WAL mode) */
static const char *const db_suffix[] = {"", "-wal", "-shm"};

void daemon_prepare_db(const char *path, uid_t uid, gid_t gid, const char *what)
{
	const char *slash;
	struct stat st;
	char *dir;

	if (path == NULL || path[0] == '\0')
		return;
	slash = strrchr(path, '/');
	dir = slash == NULL ? xstrdup(".")
	      : slash == path ? xstrdup("/")
			      : xstrndup(path, (size_t)(slash - path));
	if (stat(dir, &st) < 0 && errno == ENOENT) {
		if (mkdir(dir, 0750) < 0)
			log_error("%s: cannot create %s: %s", what, dir, strerror(errno));
		else if (uid != (uid_t)-1 && chown(dir, uid, gid) < 0)
			log_error("%s: chown %s: %s", what, dir, strerror(errno));
		else
			chmod(dir, 0750); /* whatever the umask */
	} else if (!S_ISDIR(st.st_mode)) {
		log_error("%s: %s is not a directory", what, dir);
	} else if (uid != (uid_t)-1 && uid != 0 && !(st.st_uid == uid && (st.st_mode & S_IWUSR)) &&
		   !(st.st_gid == gid && (st.st_mode & S_IWGRP)) && !(st.st_mode & S_IWOTH)) {
		/* SQLite makes its -wal and -shm files next to the db */
		log_warning("%s: directory %s may not be writable by uid %u (%s)", what, dir,
			    (unsigned)uid, path);
	}
	free(dir);
	if (uid == (uid_t)-1)
		return;
	for (size_t i = 0; i < 3; i++) {
		char *f = xasprintf("%s%s", path, db_suffix[i]);
		chown_if_file(f, uid, gid, what);
		free(f);
	}
}

void daemon_db_give_back(const char *path)
{
	struct stat st;

	if (geteuid() != 0 || stat(path, &st) < 0)
		return;
	for (size_t i = 1; i < 3; i++) {
		char *f = xasprintf("%s%s", path, db_suffix[i]);
		chown_if_file(f, st.st_uid, st.st_gid, path);
		free(f);
	}
}
