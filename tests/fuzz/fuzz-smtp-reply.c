/* fuzz-smtp-reply - libFuzzer target for lib/smtp_reply.c
 *
 * fuzz-sources: lib/smtp_reply.c lib/xalloc.c lib/log.c
 * Build and run (from the top of the tree, after ./configure):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -I/work/main \
 *	tests/fuzz/fuzz-smtp-reply.c lib/smtp_reply.c lib/xalloc.c lib/log.c \
 *	-o /tmp/fuzz-smtp-reply
 *   /tmp/fuzz-smtp-reply -max_total_time=30 tests/fuzz/corpus/fuzz-smtp-reply
 *
 * The input is split into lines at LF (a trailing CR is dropped, as the
 * upstream reader does) and fed until the reply completes or fails. */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	const char *p = (const char *)data, *end = p + size, *err;
	char buf[16];

	smtp_reply_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t len = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
		int ret = smtp_reply_feed(&r, p, len, &err);

		if (ret == 1) {
			char *line = smtp_reply_oneline(&r, 300);
			smtp_reply_enhanced(&r, buf, sizeof(buf));
			if (r.code < 200 || r.code > 599 || strlen(line) < 3)
				abort();
			free(line);
			smtp_reply_clear(&r);
		} else if (ret < 0) {
			smtp_reply_clear(&r);
		}
		p += n + (nl ? 1 : 0);
	}
	smtp_reply_clear(&r);
	return 0;
}
