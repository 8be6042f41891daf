/* strbuf - a growing NUL-terminated string */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "lib/strbuf.h"
#include "lib/xalloc.h"

void strbuf_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->size) {
		b->size = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->size);
	}
	if (n > 0)
		memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void strbuf_adds(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

char *strbuf_take(struct strbuf *b)
{
	char *s = b->len > 0 ? b->s : NULL;

	if (s == NULL)
		free(b->s);
	memset(b, 0, sizeof(*b));
	return s;
}
