/* fuzz-bounce - arbitrary octets as a bounce message: bounce_parse must
 * never crash or leak, and every recipient it reports has an address and
 * a reason. The shipped rules are loaded once (from the source tree).
 *
 * fuzz-sources: policy/bounce.c policy/bounce_dsn.c policy/bounce_text.c policy/bounce_rules.c policy/bounce_verp.c lib/strbuf.c lib/xalloc.c lib/log.c
 * fuzz-pkg: gmime-3.0
 * Build and run: tests/fuzz/run.sh tests/fuzz/fuzz-bounce.c 60
 * Seeds: tests/fuzz/corpus/fuzz-bounce/ (a DSN, an ARF report, text bounces) */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/bounce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bounce_rules *rules;

static void load_rules(void)
{
	const char *path = getenv("WEIR_BOUNCE_RULES");
	char *err = NULL;

	/* run.sh runs the target in tests/results/fuzz */
	if (path == NULL)
		path = "../../../contrib/bounce/rules.conf";
	if ((rules = bounce_rules_load(path, &err)) == NULL) {
		fprintf(stderr, "fuzz-bounce: %s (set WEIR_BOUNCE_RULES)\n", err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounce_report rep;
	char verp[300];

	if (rules == NULL)
		load_rules();
	if (bounce_parse(rules, (const char *)data, size, &rep) == 0) {
		for (size_t i = 0; i < rep.nrcpts; i++) {
			const struct bounce_rcpt *rc = &rep.rcpts[i];

			if (rc->recipient == NULL || strchr(rc->recipient, '@') == NULL ||
			    rc->cls.reason == NULL)
				abort();
			(void)bounce_verp_encode(rc->recipient, "bounces", "b.example", verp,
						 sizeof(verp));
		}
		if ((rep.kind == BOUNCE_NONE || rep.kind == BOUNCE_AUTOREPLY) && rep.nrcpts != 0)
			abort();
	}
	bounce_report_free(&rep);
	return 0;
}
