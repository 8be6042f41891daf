/* test-settings-doc - every setting in the table is documented in
 * weir.conf(5) and shown in contrib/weir.conf, and nothing is documented
 * that does not exist (Postfix's check-postconf-undocumented idea) */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/config.h"
#include "tests/testlib.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return xstrdup("");
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc((size_t)n + 1);
	buf[fread(buf, 1, (size_t)n, f)] = '\0';
	fclose(f);
	return buf;
}

/* man_name - a setting as written in the man page (".B agent.x" with
 * groff's hyphen escaping) */
static char *man_name(const char *name)
{
	char *out = xmalloc(strlen(name) * 2 + 8), *p;

	p = out + sprintf(out, ".B ");
	for (; *name; name++) {
		if (*name == '-')
			*p++ = '\\';
		*p++ = *name;
	}
	*p = '\0';
	return out;
}

int main(void)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	char *path = xasprintf("%s/doc/weir.conf.5", srcdir);
	char *man = slurp(path), *example;

	test_begin("every setting in weir.conf(5)");
	for (size_t i = 0; i < weir_settings_count; i++) {
		char *want = man_name(weir_settings[i].name);
		char *line = xasprintf("%s\n", want);
		if (strstr(man, line) == NULL) {
			fprintf(stderr, "  %s is not documented (no line \"%s\")\n",
				weir_settings[i].name, want);
			test_assert(!"undocumented setting");
		}
		free(want);
		free(line);
	}
	test_end();

	test_begin("nothing documented that does not exist");
	for (char *p = strstr(man, "\n.TP\n.B "); p; p = strstr(p + 1, "\n.TP\n.B ")) {
		char name[128];
		size_t n = 0;
		for (char *q = p + 8; *q && *q != '\n' && n < sizeof(name) - 1; q++)
			if (*q != '\\')
				name[n++] = *q;
		name[n] = '\0';
		if (setting_find(name) == NULL) {
			fprintf(stderr, "  weir.conf(5) documents unknown setting %s\n", name);
			test_assert(!"documented setting does not exist");
		}
	}
	test_end();

	test_begin("every setting in contrib/weir.conf");
	free(path);
	path = xasprintf("%s/contrib/weir.conf", srcdir);
	example = slurp(path);
	for (size_t i = 0; i < weir_settings_count; i++) {
		const char *name = weir_settings[i].name;
		const char *leaf = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
		char *want = xasprintf("%s =", leaf);
		if (strstr(example, want) == NULL) {
			fprintf(stderr, "  %s is not in contrib/weir.conf\n", name);
			test_assert(!"setting missing from the example");
		}
		free(want);
	}
	test_end();
	test_begin("contrib/weir.conf checks clean");
	struct config_errors errs;
	config_errors_init(&errs);
	struct weir_config *cfg = config_load(path, CONFIG_FOR_ALL, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "  %s\n", errs.list.v[i]);
	test_assert(cfg != NULL);
	config_unref(cfg);
	config_errors_free(&errs);
	test_end();
	free(example);
	free(man);
	free(path);
	return test_exit_status();
}
