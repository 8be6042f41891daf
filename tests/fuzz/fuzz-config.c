/* fuzz-config - weir.conf loading with arbitrary text: libconfig's parser
 * and weir's validation of every setting must never crash or leak.
 *
 * fuzz-sources: @config
 * fuzz-pkg: @config
 * Build and run: tests/fuzz/run.sh tests/fuzz/fuzz-config.c 60 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"

static void quiet(enum log_level level, const char *line)
{
	(void)level;
	(void)line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text;

	/* No @include of real files from fuzzed text. */
	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	text = xstrndup((const char *)data, size);
	log_set_hook(quiet);
	config_errors_init(&errs);
	cfg = config_load_string("fuzz.conf", text, CONFIG_FOR_ALL, &errs);
	if (cfg != NULL) {
		for (size_t i = 0; i < weir_settings_count; i++)
			free(setting_format(&weir_settings[i], cfg));
		config_unref(cfg);
	}
	config_errors_free(&errs);
	free(text);
	return 0;
}
