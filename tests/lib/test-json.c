/* test-json - JSON strings (lib/json.c): escapes, control characters,
 * UTF-8 kept, invalid octets replaced, members */
#include "autoconf.h"

#include <stdlib.h>

#include "lib/json.h"
#include "tests/testlib.h"

/* str - json_string of s; caller frees */
static char *str(const char *s)
{
	struct strbuf b = {0};

	json_string(&b, s);
	return strbuf_take(&b);
}

static void check(const char *in, const char *want)
{
	char *got = str(in);

	test_assert_str(got, want);
	free(got);
}

int main(void)
{
	struct strbuf b = {0};
	char *o;

	test_begin("strings: escapes, control characters, UTF-8, invalid octets");
	check("plain", "\"plain\"");
	check("", "\"\"");
	check(NULL, "null");
	check("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	check("l1\r\nl2\tx", "\"l1\\r\\nl2\\tx\"");
	check("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
	check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* Latin-1, a lone continuation, overlong, a surrogate, past U+10FFFF,
	 * a sequence cut by the end */
	check("caf\xe9", "\"caf\xef\xbf\xbd\"");
	check("\x80x", "\"\xef\xbf\xbdx\"");
	check("\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	check("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	check("\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	check("\xe2\x82", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	test_end();

	test_begin("members: commas between, none after the brace");
	strbuf_adds(&b, "{");
	json_member_str(&b, "type", "bounce");
	json_member_int(&b, "code", 550);
	json_member_bool(&b, "hard", true);
	json_member_str(&b, "status", NULL);
	strbuf_adds(&b, "}");
	o = strbuf_take(&b);
	test_assert_str(o, "{\"type\":\"bounce\",\"code\":550,\"hard\":true,\"status\":null}");
	free(o);
	test_end();
	return test_exit_status();
}
