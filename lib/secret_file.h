/* secret_file - read a file that holds a secret (a password, a shared
 * key) after checking that nobody else can read it */
#ifndef WEIR_SECRET_FILE_H
#define WEIR_SECRET_FILE_H

#include <stddef.h>

/* secret_file_read - the whole of path, NUL-terminated, its length in
 * *len_r; the caller releases it with secret_free. The file must be a
 * regular file of at most max bytes, neither readable nor writable by
 * group or others, and, when we run as root and owner names a known
 * user, belong to owner (daemons re-read such files after dropping
 * privileges, on reload). Else NULL with *err_r (caller frees): what is
 * wrong and how to fix it, without the path in front and never with
 * any of the file's contents. */
char *secret_file_read(const char *path, const char *owner, size_t max, size_t *len_r,
                       char **err_r);
/* secret_free - wipe the len bytes of s and free it; NULL is ok */
void secret_free(char *s, size_t len);

#endif
