/* config_entry - errors and typed members for list settings' parsers */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/config_entry.h"

void config_entry_error(struct config_entry_ctx *pc, int line, const char *fmt, ...)
{
	char *msg;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (pc->entry[0] != '\0')
		config_errors_add(pc->errs, pc->file, line, "%s: %s: %s", pc->what, pc->entry,
		                  msg ? msg : "?");
	else
		config_errors_add(pc->errs, pc->file, line, "%s: %s", pc->what, msg ? msg : "?");
	free(msg);
	pc->bad = true;
}

const char *config_entry_string(struct config_entry_ctx *pc, config_setting_t *g,
                                const char *name)
{
	config_setting_t *m = config_setting_get_member(g, name);

	if (m == NULL)
		return NULL;
	if (config_setting_type(m) != CONFIG_TYPE_STRING) {
		config_entry_report(pc, m, "%s: expected a string", name);
		return NULL;
	}
	return config_setting_get_string(m);
}

int config_entry_int(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                     long long min, long long max, long long *v_r)
{
	config_setting_t *m = config_setting_get_member(g, name);
	long long v;

	if (m == NULL)
		return 0;
	if (config_setting_type(m) != CONFIG_TYPE_INT && config_setting_type(m) != CONFIG_TYPE_INT64) {
		config_entry_report(pc, m, "%s: expected a number", name);
		return -1;
	}
	v = config_setting_get_int64(m);
	if (v < min || v > max) {
		config_entry_report(pc, m, "%s: out of range (%lld to %lld)", name, min, max);
		return -1;
	}
	*v_r = v;
	return 1;
}

char **config_entry_list(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                         char *(*conv)(const char *, const char **), size_t *n_r)
{
	config_setting_t *m = config_setting_get_member(g, name);
	bool scalar;
	char **v;
	int n;

	*n_r = 0;
	if (m == NULL)
		return NULL;
	scalar = config_setting_type(m) == CONFIG_TYPE_STRING;
	if (!scalar && !config_setting_is_list(m) && !config_setting_is_array(m)) {
		config_entry_report(pc, m, "%s: expected a string or a list of strings", name);
		return NULL;
	}
	n = scalar ? 1 : config_setting_length(m);
	v = xcalloc((size_t)n + 1, sizeof(*v));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = scalar ? m : config_setting_get_elem(m, (unsigned)i);
		const char *s = config_setting_get_string(e), *err = NULL;
		char *c;

		if (s == NULL) {
			config_entry_report(pc, e, "%s: element %d: expected a string", name, i + 1);
			continue;
		}
		if ((c = conv(s, &err)) == NULL) {
			config_entry_report(pc, e, "%s: \"%s\": %s", name, s, err);
			continue;
		}
		v[(*n_r)++] = c;
	}
	return v;
}
