/* fuzz-smtp-command - libFuzzer target for delivery-agent/smtp_cmd.c
 *
 * fuzz-sources: delivery-agent/smtp_cmd.c
 * Build and run (from the top of the tree, after ./configure):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -I/work/main \
 *	tests/fuzz/fuzz-smtp-command.c delivery-agent/smtp_cmd.c \
 *	-o /tmp/fuzz-smtp-command
 *   /tmp/fuzz-smtp-command -max_total_time=30 tests/fuzz/corpus/fuzz-smtp-command
 *
 * The input is one command line (cut at the first NUL, at most the
 * server's line limit), parsed as the server does; a parsed address
 * must itself be valid (ASCII unless the MAIL said SMTPUTF8) and fit
 * the path limit, and the DSN parameters kept must fit theirs. */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line;
	struct smtp_cmd cmd;
	struct smtp_mail m;
	struct smtp_rcpt r;
	char addr[SMTP_PATH_MAX + 1];
	const char *err;

	if (size > SMTP_CMD_MAX_LINE)
		return 0;
	line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';
	smtp_cmd_parse(line, &cmd);
	if (smtp_parse_mail(cmd.arg, &m, &err) == 0) {
		size_t n = strlen(m.addr);
		if (n > SMTP_PATH_MAX ||
		    (n > 0 && !m.smtputf8 && !smtp_address_valid(m.addr, n, false)))
			abort();
		if (strlen(m.envid) > SMTP_ENVID_MAX || strlen(m.ret) > 4)
			abort();
	} else if (err == NULL || strlen(err) < 4) {
		abort();
	}
	if (smtp_parse_rcpt(cmd.arg, addr, &err) == 0) {
		size_t n = strlen(addr);
		if (n == 0 || n > SMTP_PATH_MAX || !smtp_address_valid(addr, n, true))
			abort();
	}
	for (int utf8 = 0; utf8 < 2; utf8++) {
		if (smtp_parse_rcpt_params(cmd.arg, &r, utf8, &err) == 0) {
			size_t n = strlen(r.addr);
			if (n == 0 || n > SMTP_PATH_MAX ||
			    (!utf8 && !smtp_address_valid(r.addr, n, true)) ||
			    strlen(r.orcpt) > SMTP_ORCPT_MAX || strlen(r.notify) >= sizeof(r.notify))
				abort();
		} else if (err == NULL || strlen(err) < 4) {
			abort();
		}
	}
	free(line);
	return 0;
}
