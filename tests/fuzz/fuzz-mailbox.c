/* fuzz-mailbox - From / Sender header values with arbitrary octets:
 * mailbox_list_parse and mailbox_display_hides_address must never crash,
 * leak, or return a mailbox without an address.
 *
 * fuzz-sources: policy/mailbox.c policy/address.c lib/strbuf.c lib/xalloc.c lib/log.c
 * Build and run: tests/fuzz/run.sh tests/fuzz/fuzz-mailbox.c 60 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	struct mailbox_list l;
	const char *err = NULL;

	if (mailbox_list_parse(text, &l, &err) == 0) {
		for (size_t i = 0; i < l.n; i++) {
			const struct mailbox *m = &l.v[i];

			if (m->addr == NULL || m->domain == NULL || strchr(m->addr, '@') == NULL ||
			    (m->display == NULL) != (m->display_raw == NULL))
				abort();
			(void)mailbox_display_hides_address(m);
		}
		mailbox_list_free(&l);
	} else if (err == NULL || l.n != 0 || l.v != NULL) {
		abort();
	}
	free(text);
	return 0;
}
