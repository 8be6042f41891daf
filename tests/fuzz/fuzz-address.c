/* fuzz-address - RFC 5321 path parsing with arbitrary octets: address_parse,
 * domain_normalize, address_strip_plus, domain_in_list and address_glob must
 * never crash, leak, or break their own invariants.
 *
 * fuzz-sources: policy/address.c lib/xalloc.c lib/log.c
 * Build and run: tests/fuzz/run.sh tests/fuzz/fuzz-address.c 60
 *
 * The input is cut at its first LF: the part before is the path, the part
 * after is used as a glob pattern and as a domain list entry. */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size), *nl = strchr(text, '\n');
	const char *pattern = nl ? nl + 1 : "*", *err = NULL;
	char *entries[2], *s, *d;
	struct address a;

	if (nl != NULL)
		*nl = '\0';
	if (address_parse(text, &a, &err) == 0) {
		/* invariants: canonical is lowercase, a domain is normalized */
		for (const char *p = a.canonical; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		if (a.null != (a.local == NULL) || (a.null && a.canonical[0] != '\0'))
			abort();
		if (a.domain != NULL && a.domain[0] != '[') {
			d = domain_normalize(a.domain, &err);
			if (d == NULL || strcmp(d, a.domain) != 0)
				abort();
			free(d);
		}
		s = address_strip_plus(a.canonical, "+-");
		if (strlen(s) > strlen(a.canonical) || !address_glob(a.canonical, a.canonical))
			abort();
		entries[0] = (char *)pattern;
		entries[1] = a.domain ? a.domain : "";
		if (a.domain != NULL && !domain_in_list(a.domain, entries, 2))
			abort();
		(void)address_glob(pattern, s);
		free(s);
		address_free(&a);
	} else if (err == NULL || a.canonical != NULL) {
		abort();
	}
	d = domain_normalize(text, &err);
	free(d);
	(void)address_glob(pattern, text);
	free(text);
	return 0;
}
