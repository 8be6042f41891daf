/* strbuf - a growing NUL-terminated string */
#ifndef WEIR_STRBUF_H
#define WEIR_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *s; /* NULL until something is added */
	size_t len, size;
};

/* strbuf_add - append n octets of s (xrealloc: never fails) */
void strbuf_add(struct strbuf *b, const char *s, size_t n);
/* strbuf_adds - append the string s */
void strbuf_adds(struct strbuf *b, const char *s);
/* strbuf_take - the string built (NULL if empty); b is emptied */
char *strbuf_take(struct strbuf *b);

#endif
