/* test-log - key=value lines: quoting and escaping keep one event on one
 * parseable line whatever the values hold */
#include "autoconf.h"

#include <string.h>

#include "lib/log.h"
#include "tests/testlib.h"

static char got[8192];

static void capture(enum log_level level, const char *line)
{
	(void)level;
	strncpy(got, line, sizeof(got) - 1);
}

int main(void)
{
	struct kvline kv;

	log_open("test-log", true, "mail");
	test_begin("plain values are bare, others quoted and escaped");
	kv_init(&kv);
	test_assert_str(kv_str(&kv), "");
	kv_add(&kv, "a", "plain");
	kv_add(&kv, "b", "two words");
	kv_add(&kv, "c", "");
	kv_add(&kv, "d", NULL);
	kv_add(&kv, "e", "say \"hi\"\\");
	kv_add(&kv, "f", "line\r\nbreak\x01");
	kv_add(&kv, "g", "k=v");
	kv_addf(&kv, "h", "%d<%s>", 42, "x@y");
	kv_addn(&kv, "i", "abcdef", 3);
	test_assert_str(kv_str(&kv), "a=plain b=\"two words\" c=\"\" d=\"\" e=\"say \\\"hi\\\"\\\\\" "
				     "f=\"line\\x0d\\x0abreak\\x01\" g=\"k=v\" h=42<x@y> i=abc");
	kv_free(&kv);
	test_end();

	test_begin("hook sees each line once; levels filter");
	log_set_hook(capture);
	log_set_level(LOG_LEVEL_INFO);
	got[0] = '\0';
	log_debug("hidden");
	test_assert_str(got, "");
	log_info("shown %d", 1);
	test_assert_str(got, "shown 1");
	test_assert(log_level_enabled(LOG_LEVEL_WARNING));
	test_assert(!log_level_enabled(LOG_LEVEL_DEBUG));
	test_assert(log_facility_valid("local3"));
	test_assert(!log_facility_valid("kern"));
	test_assert(log_open("x", true, "nonsense") < 0);
	test_end();
	return test_exit_status();
}
