/* xalloc - allocation that never returns NULL */
#ifndef WEIR_XALLOC_H
#define WEIR_XALLOC_H

#include <stddef.h>

/* Each of these aborts the process (log_fatal) when memory runs out, so
 * callers need no NULL checks. Free the result with free(). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xasprintf - formatted string in new memory; caller frees */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
