/* test-spf - policy/spf.c without a DNS server: input limits, bad
 * arguments, and a resolver nobody answers (temperror). The RFC 7208
 * suite against a real DNS server is tests/spf/rfc7208.sh. */
#include "autoconf.h"

#include <string.h>

#include "lib/dns_wait.h"
#include "policy/spf.h"
#include "tests/testlib.h"

int main(void)
{
	const char *err = NULL;
	/* port 9 on loopback: nothing listens, queries are refused at once */
	struct dns_wait *dns = dns_wait_new("127.0.0.1@9", 1, &err);
	struct spf_engine *e;
	struct spf_outcome o;
	char big[400];

	test_begin("engine");
	test_assert(dns != NULL);
	test_assert(spf_engine_new(NULL, &err) == NULL);
	e = spf_engine_new(dns, &err);
	test_assert(e != NULL);
	test_end();
	if (e == NULL)
		return 1;

	test_begin("bad client address");
	test_assert(spf_check(e, "not-an-ip", "mx.example.com", "a@example.com", &o) == -1);
	test_assert_str(o.result_name, "permerror");
	spf_outcome_free(&o);
	test_end();

	test_begin("local part over 64 octets: permerror, no lookup");
	memset(big, 'a', 65);
	strcpy(big + 65, "@example.com");
	test_assert(spf_check(e, "192.0.2.1", "mx.example.com", big, &o) == 0);
	test_assert_str(o.result_name, "permerror");
	test_assert(o.reason != NULL && strstr(o.reason, "64") != NULL);
	spf_outcome_free(&o);
	test_end();

	test_begin("domain over 253 octets: none");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[3] = '@';
	for (size_t i = 50; i < sizeof(big) - 1; i += 50)
		big[i] = '.';
	test_assert(spf_check(e, "192.0.2.1", "mx.example.com", big, &o) == 0);
	test_assert_str(o.result_name, "none");
	spf_outcome_free(&o);
	test_assert(spf_check_helo(e, "192.0.2.1", big + 4, &o) == 0);
	test_assert_str(o.result_name, "none");
	spf_outcome_free(&o);
	test_end();

	test_begin("control character in sender: permerror");
	test_assert(spf_check(e, "192.0.2.1", "mx.example.com", "a\001b@example.com", &o) == 0);
	test_assert_str(o.result_name, "permerror");
	spf_outcome_free(&o);
	test_end();

	test_begin("resolver unreachable: temperror");
	test_assert(spf_check(e, "192.0.2.1", "mx.example.com", "a@example.com", &o) == 0);
	test_assert_str(o.result_name, "temperror");
	spf_outcome_free(&o);
	test_assert(spf_check(e, "2001:db8::1", "mx.example.com", "", &o) == 0);
	test_assert_str(o.result_name, "temperror");
	spf_outcome_free(&o);
	test_end();

	test_begin("result names");
	test_assert_str(spf_result_name(SPF_RES_SOFTFAIL), "softfail");
	test_assert_str(spf_result_name((enum spf_result)99), "permerror");
	test_end();

	spf_engine_free(e);
	dns_wait_free(dns);
	return test_exit_status();
}
