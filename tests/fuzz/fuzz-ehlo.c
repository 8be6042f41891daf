/* fuzz-ehlo - libFuzzer target for the EHLO capability parser
 * (delivery-agent/ehlo.c) behind the reply reader (lib/smtp_reply.c)
 *
 * fuzz-sources: delivery-agent/ehlo.c lib/smtp_reply.c lib/xalloc.c lib/log.c
 * Run: tests/fuzz/run.sh tests/fuzz/fuzz-ehlo.c 60
 *
 * The input is split into lines at LF (a trailing CR is dropped, as the
 * upstream reader does) and fed as one reply, as an EHLO answer from the
 * network reaches upstream.c; each complete reply's text is parsed. The
 * raw input, NUL-terminated, is parsed too (text the reader would never
 * produce). */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/ehlo.h"
#include "lib/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check - what any input must give */
static void check(const struct ehlo_caps *c)
{
	unsigned known = AUTH_MECH_PLAIN | AUTH_MECH_LOGIN | AUTH_MECH_CRAM_MD5 | AUTH_MECH_XOAUTH2;

	if (c->size < 0 || (c->auth & ~known) != 0 || (c->size != 0 && !c->has_size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	struct ehlo_caps caps;
	const char *p = (const char *)data, *end = p + size, *err;
	char *text = malloc(size + 1);

	memcpy(text, data, size);
	text[size] = '\0';
	ehlo_parse(text, &caps);
	check(&caps);
	free(text);

	smtp_reply_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t len = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
		int ret = smtp_reply_feed(&r, p, len, &err);

		if (ret == 1) {
			ehlo_parse(r.text, &caps);
			check(&caps);
			smtp_reply_clear(&r);
		} else if (ret < 0) {
			smtp_reply_clear(&r);
		}
		p += n + (nl ? 1 : 0);
	}
	smtp_reply_clear(&r);
	return 0;
}
