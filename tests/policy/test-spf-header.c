/* test-spf-header - Received-SPF and Authentication-Results text from
 * hostile identities: quoting, escaping, no line breaks, no over-long
 * values (policy/spf_header.c) */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "policy/spf.h"
#include "tests/testlib.h"

static struct spf_outcome outcome(enum spf_result r, const char *reason)
{
	struct spf_outcome o = {0};

	o.result = r;
	o.result_name = spf_result_name(r);
	o.reason = (char *)reason;
	return o;
}

/* no_breaks - only the folds weir makes itself ("\n\t") */
static int no_breaks(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\r')
			return 0;
		if (*p == '\n' && p[1] != '\t')
			return 0;
	}
	return 1;
}

int main(void)
{
	struct spf_outcome o;
	char *v, dom[256], big[600];

	test_begin("pass, mailfrom: RFC 7208 9.1 layout");
	o = outcome(SPF_RES_PASS, NULL);
	v = spf_received_value(&o, "relay.example", "192.0.2.1", "mx.example.org",
			       "alice@example.org", "mailfrom");
	test_assert_str(v, "pass (relay.example: domain of alice@example.org designates 192.0.2.1 "
			   "as permitted sender)\n\tclient-ip=192.0.2.1;\n\tenvelope-from=\"alice@"
			   "example.org\";\n\thelo=mx.example.org;\n\treceiver=relay.example;\n\t"
			   "identity=mailfrom;");
	free(v);
	v = spf_ar_entry(&o, "mx.example.org", "alice@example.org", "mailfrom");
	test_assert_str(v, "spf=pass smtp.mailfrom=alice@example.org");
	free(v);
	test_end();

	test_begin("IPv6 client address is quoted (not a dot-atom)");
	o = outcome(SPF_RES_FAIL, NULL);
	v = spf_received_value(&o, "relay.example", "2001:db8::1", "h.example", "a@example.org",
			       "mailfrom");
	test_assert(strstr(v, "client-ip=\"2001:db8::1\";") != NULL);
	test_assert(strstr(v, "does not designate 2001:db8::1 as permitted sender") != NULL);
	free(v);
	test_end();

	test_begin("null sender: the HELO identity");
	o = outcome(SPF_RES_NONE, NULL);
	v = spf_received_value(&o, "relay.example", "192.0.2.1", "mx.example.org", "", "helo");
	test_assert(strstr(v, "domain of postmaster@mx.example.org does not designate") != NULL);
	test_assert(strstr(v, "envelope-from") == NULL);
	test_assert(strstr(v, "identity=helo;") != NULL);
	free(v);
	v = spf_ar_entry(&o, "mx.example.org", "", "helo");
	test_assert_str(v, "spf=none smtp.helo=mx.example.org");
	free(v);
	test_end();

	test_begin("hostile sender: quoted, escaped, no header break");
	o = outcome(SPF_RES_PERMERROR, "bad (mechanism)\r\nX-Evil: 1");
	v = spf_received_value(&o, "relay.example", "192.0.2.1", "evil\r\nX-Injected: yes",
			       "\"a;b\\\"c\"@example.org", "mailfrom");
	test_assert(no_breaks(v));
	test_assert(strstr(v, "envelope-from=\"\\\"a;b\\\\\\\"c\\\"@example.org\";") != NULL);
	test_assert(strstr(v, "helo=\"evil??X-Injected: yes\";") != NULL);
	test_assert(strstr(v, "bad [mechanism]??X-Evil: 1") != NULL);
	free(v);
	v = spf_ar_entry(&o, "h", "\"a b\"@example.org", "mailfrom");
	test_assert(no_breaks(v));
	test_assert_str(v, "spf=permerror (bad [mechanism]??X-Evil: 1) smtp.mailfrom="
			   "\"\\\"a b\\\"@example.org\"");
	free(v);
	test_end();

	test_begin("over-long values are left out, not cut");
	memset(big, 'a', 500);
	strcpy(big + 500, "@example.org");
	o = outcome(SPF_RES_NEUTRAL, NULL);
	v = spf_received_value(&o, "relay.example", "192.0.2.1", "h.example", big, "mailfrom");
	test_assert(strstr(v, "envelope-from") == NULL);
	test_assert(strlen(v) < 900);
	free(v);
	v = spf_ar_entry(&o, "h.example", big, "mailfrom");
	test_assert_str(v, "spf=neutral");
	free(v);
	test_end();

	test_begin("HELO identity with a sender (spf.helo = all)");
	o = outcome(SPF_RES_FAIL, NULL);
	v = spf_received_value(&o, "r", "192.0.2.1", "h.example", "a@example.org", "helo");
	test_assert(strstr(v, "domain of postmaster@h.example does not designate") != NULL);
	test_assert(strstr(v, "envelope-from=\"a@example.org\";") != NULL);
	free(v);
	v = spf_ar_entry(&o, "h.example", "a@example.org", "helo");
	test_assert_str(v, "spf=fail smtp.helo=h.example");
	free(v);
	test_end();

	test_begin("spf_domain_of");
	test_assert_str(spf_domain_of("a@b.example", "h", dom, sizeof(dom)), "b.example");
	test_assert_str(spf_domain_of("", "h.example", dom, sizeof(dom)), "h.example");
	test_assert_str(spf_domain_of(NULL, "h.example", dom, sizeof(dom)), "h.example");
	test_assert_str(spf_domain_of("\"x@y\"@z.example", "h", dom, sizeof(dom)), "z.example");
	test_end();
	return test_exit_status();
}
