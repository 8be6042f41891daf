/* test-strmap - put, replace, get, growth over many keys, free */
#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strmap.h"
#include "lib/xalloc.h"
#include "tests/testlib.h"

static void count(const char *key, void *value, void *ctx)
{
	(void)key;
	(void)value;
	(*(size_t *)ctx)++;
}

int main(void)
{
	struct strmap *m = strmap_new();
	char key[32];
	size_t n = 0;
	bool all = true;

	test_begin("put and get 100 000 keys");
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		strmap_put(m, key, xstrdup(key));
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		char *v = strmap_get(m, key);
		if (v == NULL || strcmp(v, key) != 0)
			all = false;
	}
	test_assert(all);
	test_assert(strmap_get(m, "k100000") == NULL);
	test_assert(strmap_get(m, "") == NULL);
	test_assert(strmap_count(m) == 100000);
	strmap_foreach(m, count, &n);
	test_assert(n == 100000);
	test_end();

	test_begin("replace returns the old value");
	char *old = strmap_put(m, "k7", xstrdup("new"));
	test_assert_str(old, "k7");
	free(old);
	test_assert_str(strmap_get(m, "k7"), "new");
	test_assert(strmap_count(m) == 100000);
	strmap_free(m, free);
	test_end();
	return test_exit_status();
}
