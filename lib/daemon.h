/* daemon - the basics every weir daemon shares */
#ifndef WEIR_DAEMON_H
#define WEIR_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

/* daemon_detach - fork, setsid, chdir("/"), stdio to /dev/null. Call
 * before any thread is started. Returns 0 in the child (-1 on failure);
 * the parent waits and exits 0 once the child calls daemon_ready, or 1 if
 * the child dies before that, so an init script sees startup failures. */
int daemon_detach(void);
/* daemon_ready - sockets bound, pid file written: release the parent */
void daemon_ready(void);

/* daemon_pidfile_write - write our pid to path. Refuses (-1, *err_r
 * says why) when the file names a live process. The file is created mode
 * 0644 and chowned to uid/gid so the daemon can remove it after dropping
 * root (pass (uid_t)-1 to keep the owner). */
int daemon_pidfile_write(const char *path, uid_t uid, gid_t gid, const char **err_r);
/* daemon_pidfile_remove - unlink path if it still names this process */
void daemon_pidfile_remove(const char *path);

/* daemon_lookup_user - uid/gid of a user name. -1 if unknown. */
int daemon_lookup_user(const char *user, uid_t *uid_r, gid_t *gid_r);

/* daemon_drop_privileges - when running as root, become user (its
 * primary group and supplementary groups) for good, and verify that root
 * cannot be regained. Not root: nothing to do, returns 0. Returns -1 with
 * *err_r on failure; the caller must then exit. */
/* daemon_prepare_db - as root, before dropping privileges: make the
 * directory of an SQLite file the daemon keeps (path; "" or NULL: none)
 * if missing (mode 0750, owned by uid:gid), and give an existing file
 * and its -wal and -shm files to uid:gid. (uid_t)-1 leaves owners
 * alone. what names the file in log lines; errors are logged, never
 * fatal. */
void daemon_prepare_db(const char *path, uid_t uid, gid_t gid, const char *what);
/* daemon_db_give_back - run as root by a reader of such a file (weirctl):
 * the -wal and -shm files SQLite may have made go to the file's owner,
 * so that the daemon running as that user can still write it */
void daemon_db_give_back(const char *path);
int daemon_drop_privileges(const char *user, const char **err_r);

#endif
