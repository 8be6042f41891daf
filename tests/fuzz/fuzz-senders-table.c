/* fuzz-senders-table - the senders.table parser and the sender map with
 * arbitrary text; then a few lookups against what was loaded.
 *
 * fuzz-sources: @config
 * fuzz-pkg: @config
 * Build and run: tests/fuzz/run.sh tests/fuzz/fuzz-senders-table.c 60 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy/config.h"
#include "policy/senders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const probes[][2] = {
		{"alice", "alice@example.com"},
		{"alice", "alice+x@example.com"},
		{"bob", "x@sub.example.org"},
		{"app", "billing-noreply@example.com"},
	};
	struct config_errors errs;
	struct sender_map *m;
	FILE *f;

	if (size == 0)
		return 0;
	f = fmemopen((void *)data, size, "r");
	if (f == NULL)
		return 0;
	m = sender_map_new("+-");
	config_errors_init(&errs);
	sender_map_load_stream(m, f, "fuzz.table", &errs);
	fclose(f);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		(void)sender_map_allows(m, probes[i][0], probes[i][1]);
	config_errors_free(&errs);
	sender_map_free(m);
	return 0;
}
