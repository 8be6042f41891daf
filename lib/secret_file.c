/* secret_file - read a file that holds a secret after checking its
 * permissions (the credentials file, webhook secrets, ...) */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/secret_file.h"
#include "lib/xalloc.h"

/* check - the permission and size checks on the open file; 0, or -1
 * with *err_r */
static int check(int fd, const char *path, const char *owner, size_t max, struct stat *st,
                 char **err_r)
{
	uid_t uid;
	gid_t gid;

	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		*err_r = xstrdup("not a regular file");
		return -1;
	}
	if (st->st_mode & 077) {
		*err_r = xasprintf("readable by group or others: run chmod 600 %s", path);
		return -1;
	}
	if (geteuid() == 0 && owner != NULL && daemon_lookup_user(owner, &uid, &gid) == 0 &&
	    st->st_uid != uid) {
		*err_r = xasprintf("must belong to %s, the user weir runs as (it is re-read on "
		                   "reload); run: chown %s %s",
		                   owner, owner, path);
		return -1;
	}
	if ((unsigned long long)st->st_size > max) {
		*err_r = xasprintf("larger than %zu bytes", max);
		return -1;
	}
	return 0;
}

char *secret_file_read(const char *path, const char *owner, size_t max, size_t *len_r, char **err_r)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		*err_r = xasprintf("cannot read: %s%s", strerror(errno),
		                   errno == EACCES ? " (it must be readable by the user weir runs "
		                                     "as: chown it to that user, mode 600)"
		                                   : "");
		return NULL;
	}
	if (check(fd, path, owner, max, &st, err_r) < 0) {
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len != (size_t)st.st_size) {
		*err_r = xstrdup("short read");
		secret_free(buf, len);
		return NULL;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

void secret_free(char *s, size_t len)
{
	if (s == NULL)
		return;
	explicit_bzero(s, len);
	free(s);
}
