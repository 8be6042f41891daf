/* test-spf - policy/spf.c without a DNS server: input limits, bad
 * arguments, a resolver nobody answers (temperror), and, through
 * spf_engine_new_lookup, evaluations against a zone held in this file:
 * void lookups (and the %{p} lookups that must not count), the time
 * bound on a whole check, temporary failures, oversized records. The
 * RFC 7208 suite against a real DNS server is tests/spf/rfc7208.sh. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/dns_wait.h"
#include "policy/spf.h"
#include "tests/testlib.h"

/* One record of the test zone: data as in a zone file ("10 mx.example"
 * for MX); "TEMPFAIL" makes the lookup fail temporarily */
struct rec {
	const char *name;
	int type;
	const char *data;
};

struct zone {
	const struct rec *recs;
	size_t n;
	long sleep_ms; /* each lookup takes this long */
	int lookups;
};

#define T_A    1
#define T_PTR  12
#define T_MX   15
#define T_TXT  16
#define T_AAAA 28

/* put_name - dotted name as uncompressed wire format; the length */
static size_t put_name(unsigned char *out, const char *name)
{
	size_t o = 0;

	while (*name != '\0') {
		size_t l = strcspn(name, ".");
		out[o++] = (unsigned char)l;
		memcpy(out + o, name, l);
		o += l;
		name += l;
		if (*name == '.')
			name++;
	}
	out[o++] = 0;
	return o;
}

/* rdata - wire format of one record's data into out (>= 4096); length */
static size_t rdata(const struct rec *r, unsigned char *out)
{
	size_t len = 0, l;

	switch (r->type) {
	case T_A: inet_pton(AF_INET, r->data, out); return 4;
	case T_AAAA: inet_pton(AF_INET6, r->data, out); return 16;
	case T_PTR: return put_name(out, r->data);
	case T_MX:
		out[0] = 0;
		out[1] = (unsigned char)atoi(r->data);
		return 2 + put_name(out + 2, strchr(r->data, ' ') + 1);
	default:
		for (const char *s = r->data; len == 0 || *s != '\0'; s += l) {
			l = strlen(s) > 255 ? 255 : strlen(s);
			out[len++] = (unsigned char)l;
			memcpy(out + len, s, l);
			len += l;
			if (l == 0)
				break;
		}
		return len;
	}
}

/* zone_lookup - an spf_lookup_fn answering from struct zone */
static enum dns_wait_result zone_lookup(void *ctx, const char *name, int rrtype,
					struct dns_wait_answer *ans)
{
	struct zone *z = ctx;
	unsigned char buf[4096];
	struct timespec ts = {z->sleep_ms / 1000, (z->sleep_ms % 1000) * 1000000};

	z->lookups++;
	if (z->sleep_ms > 0)
		nanosleep(&ts, NULL);
	memset(ans, 0, sizeof(*ans));
	for (size_t i = 0; i < z->n; i++) {
		const struct rec *r = &z->recs[i];
		size_t len;
		if (r->type != rrtype || strcasecmp(r->name, name) != 0)
			continue;
		if (strcmp(r->data, "TEMPFAIL") == 0) {
			dns_wait_answer_free(ans);
			return DNS_WAIT_TEMPFAIL;
		}
		len = rdata(r, buf);
		ans->rdata = realloc(ans->rdata, (ans->n + 1) * sizeof(*ans->rdata));
		ans->len = realloc(ans->len, (ans->n + 1) * sizeof(*ans->len));
		ans->rdata[ans->n] = malloc(len + 1);
		memcpy(ans->rdata[ans->n], buf, len);
		ans->rdata[ans->n][len] = '\0';
		ans->len[ans->n++] = len;
	}
	ans->ttl = 300;
	return ans->n > 0 ? DNS_WAIT_OK : DNS_WAIT_NONE;
}

/* "%{l}a" 43 times: libspf2's macro compiler overran its stack buffer */
static char long_exp[43 * 5 + 1];

static const struct rec zone_recs[] = {
	{"example.com", T_TXT, "v=spf1 ip4:192.0.2.0/24 mx -all"},
	{"example.com", T_MX, "10 mx.example.com"},
	{"mx.example.com", T_A, "198.51.100.25"},
	{"voids2.example", T_TXT, "v=spf1 a:no1.example a:no2.example -all"},
	{"voids3.example", T_TXT, "v=spf1 a:no1.example a:no2.example a:no3.example -all"},
	/* %{p}: 192.0.2.9's names; only the last one resolves back to it */
	{"9.2.0.192.in-addr.arpa", T_PTR, "gone1.example"},
	{"9.2.0.192.in-addr.arpa", T_PTR, "gone2.example"},
	{"9.2.0.192.in-addr.arpa", T_PTR, "gone3.example"},
	{"9.2.0.192.in-addr.arpa", T_PTR, "host.p.example"},
	{"host.p.example", T_A, "192.0.2.9"},
	{"p.example", T_TXT, "v=spf1 exists:%{p}.ok.p.example -all"},
	{"host.p.example.ok.p.example", T_A, "127.0.0.2"},
	/* no name validates: %{p} is "unknown", one void lookup */
	{"10.2.0.192.in-addr.arpa", T_PTR, "gone1.example"},
	{"10.2.0.192.in-addr.arpa", T_PTR, "gone2.example"},
	{"10.2.0.192.in-addr.arpa", T_PTR, "gone3.example"},
	/* voids after %{p} still count */
	{"pv.example", T_TXT, "v=spf1 exists:%{p}.no.example a:no1.example a:no2.example -all"},
	/* ten lookups, none matching: for the time bound */
	{"slow.example", T_TXT,
	 "v=spf1 a:a.example a:b.example a:c.example a:d.example a:e.example a:f.example "
	 "a:g.example a:h.example a:i.example ?all"},
	{"a.example", T_A, "203.0.113.1"},
	{"b.example", T_A, "203.0.113.1"},
	{"c.example", T_A, "203.0.113.1"},
	{"d.example", T_A, "203.0.113.1"},
	{"e.example", T_A, "203.0.113.1"},
	{"f.example", T_A, "203.0.113.1"},
	{"g.example", T_A, "203.0.113.1"},
	{"h.example", T_A, "203.0.113.1"},
	{"i.example", T_A, "203.0.113.1"},
	{"temp.example", T_TXT, "v=spf1 a:down.example -all"},
	{"down.example", T_A, "TEMPFAIL"},
	{"txtdown.example", T_TXT, "TEMPFAIL"},
	{"helo.example", T_TXT, "v=spf1 ip6:2001:db8::/32 -all"},
	/* ten includes of the next level per record, four levels: 11110
	 * record lookups unless the term limit holds over the whole check
	 * (libspf2 counts per record) */
#define TEN(x) "v=spf1 " x " " x " " x " " x " " x " " x " " x " " x " " x " " x " -all"
	{"fan0.example", T_TXT, TEN("include:fan1.example")},
	{"fan1.example", T_TXT, TEN("include:fan2.example")},
	{"fan2.example", T_TXT, TEN("include:fan3.example")},
	{"fan3.example", T_TXT, TEN("include:fan4.example")},
	{"fan4.example", T_TXT, "v=spf1 -all"},
	/* truncation to as many parts as there are, or more (libspf2 1.2.10
	 * cut the first character off: "xample.ok.example") */
	{"d2.example", T_TXT, "v=spf1 exists:%{d2}.ok.example -all"},
	{"d2.example.ok.example", T_A, "127.0.0.2"},
	{"d2r.example", T_TXT, "v=spf1 exists:%{d3r}.ok.example -all"},
	{"example.d2r.ok.example", T_A, "127.0.0.2"},
	{"d2e.example", T_TXT, "v=spf1 -all exp=why.d2e.example"},
	{"why.d2e.example", T_TXT, "%{d2} %{l5} %{l1} %{i9} %{O2} %%{d2} %{l2-}"},
	{"longexp.example", T_TXT, "v=spf1 -all exp=why.longexp.example"},
	{"why.longexp.example", T_TXT, long_exp},
	{"exp.example", T_TXT, "v=spf1 -all exp=why.exp.example"},
	{"why.exp.example", T_TXT, "%{i} may not send\r\nX-Evil: \001 for %{d}, 100% sure"},
	{"exp8.example", T_TXT, "v=spf1 -all exp=why8.example"},
	{"why8.example", T_TXT, "caf\303\251"},
	{"exp2.example", T_TXT, "v=spf1 -all exp=why2.example"},
	{"why2.example", T_TXT, "one"},
	{"why2.example", T_TXT, "two"},
	/* RFC 7208 7.3: an expansion over 253 octets loses labels on the left */
	{"long.example", T_TXT, "v=spf1 -all exp=%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}."
				 "%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}."
				 "long.example"},
	{"long.example.long.example.long.example.long.example.long.example.long.example."
	 "long.example.long.example.long.example.long.example.long.example.long.example."
	 "long.example.long.example.long.example.long.example.long.example.long.example."
	 "long.example",
	 T_TXT, "shortened"},
};

/* check - one MAIL FROM check against the zone; the result name */
static const char *check(struct spf_engine *e, const char *ip, const char *sender,
			 struct spf_outcome *o)
{
	test_assert(spf_check(e, ip, "mx.client.example", sender, o) == 0);
	return o->result_name;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_zone(void)
{
	struct zone z = {zone_recs, sizeof(zone_recs) / sizeof(zone_recs[0]), 0, 0};
	const char *err = NULL;
	struct spf_engine *e;
	struct spf_outcome o;
	struct timespec t0;
	char big[3000];

	test_begin("lookup function engine");
	test_assert(spf_engine_new_lookup(NULL, NULL, &err) == NULL && err != NULL);
	e = spf_engine_new_lookup(zone_lookup, &z, &err);
	test_assert(e != NULL);
	test_end();
	if (e == NULL)
		return;
	spf_engine_set_receiver(e, "receiver.weir.test");

	test_begin("pass, fail, mx");
	test_assert_str(check(e, "192.0.2.1", "a@example.com", &o), "pass");
	test_assert(o.received_spf != NULL && strstr(o.received_spf, "receiver.weir.test"));
	spf_outcome_free(&o);
	test_assert_str(check(e, "198.51.100.25", "a@example.com", &o), "pass");
	spf_outcome_free(&o);
	test_assert_str(check(e, "198.51.100.26", "a@example.com", &o), "fail");
	test_assert(o.explanation == NULL); /* no exp=, and not libspf2's default */
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.1", "a@nothing.example", &o), "none");
	spf_outcome_free(&o);
	test_assert(spf_check_helo(e, "2001:db8::5", "helo.example", &o) == 0);
	test_assert_str(o.result_name, "pass");
	spf_outcome_free(&o);
	test_end();

	test_begin("exp= explanation: spaces kept, printable ASCII only");
	test_assert_str(check(e, "192.0.2.1", "a@exp.example", &o), "fail");
	test_assert_str(o.explanation,
			"192.0.2.1 may not send??X-Evil: ? for exp.example, 100% sure");
	spf_outcome_free(&o);
	test_end();

	test_begin("%{d2} of a two-label domain is the whole domain (RFC 7208 7.3)");
	test_assert_str(check(e, "192.0.2.1", "a@d2.example", &o), "pass");
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.1", "a@d2r.example", &o), "pass");
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.1", "x.y-z@d2e.example", &o), "fail");
	test_assert_str(o.explanation, "d2e.example x.y-z y-z 192.0.2.1 d2e.example %{d2} x.y.z");
	spf_outcome_free(&o);
	test_end();

	test_begin("exp= too long for libspf2's compiler: no explanation, no crash");
	for (int i = 0; i < 43; i++)
		memcpy(long_exp + 5 * i, "%{l}a", 5);
	test_assert_str(check(e, "192.0.2.1", "a@longexp.example", &o), "fail");
	test_assert(o.explanation == NULL);
	spf_outcome_free(&o);
	test_end();

	test_begin("exp= that is not ASCII, or two records: no explanation (RFC 7208 6.2)");
	test_assert_str(check(e, "192.0.2.1", "a@exp8.example", &o), "fail");
	test_assert(o.explanation == NULL);
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.1", "a@exp2.example", &o), "fail");
	test_assert(o.explanation == NULL);
	spf_outcome_free(&o);
	test_end();

	test_begin("name over 253 octets after expansion: shortened from the left");
	test_assert_str(check(e, "192.0.2.1", "a@long.example", &o), "fail");
	test_assert_str(o.explanation, "shortened");
	spf_outcome_free(&o);
	test_end();

	test_begin("void lookups: two allowed, the third is permerror");
	test_assert_str(check(e, "192.0.2.1", "a@voids2.example", &o), "fail");
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.1", "a@voids3.example", &o), "permerror");
	test_assert(o.reason != NULL && strstr(o.reason, "void") != NULL);
	spf_outcome_free(&o);
	test_end();

	test_begin("%{p}: its PTR and A lookups are not void lookups");
	test_assert_str(check(e, "192.0.2.9", "a@p.example", &o), "pass");
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.10", "a@p.example", &o), "fail");
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.11", "a@p.example", &o), "fail"); /* no PTR */
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.9", "a@pv.example", &o), "permerror");
	test_assert(o.reason != NULL && strstr(o.reason, "void") != NULL);
	spf_outcome_free(&o);
	test_end();

	test_begin("temporary failures: temperror");
	test_assert_str(check(e, "192.0.2.1", "a@temp.example", &o), "temperror");
	spf_outcome_free(&o);
	test_assert_str(check(e, "192.0.2.1", "a@txtdown.example", &o), "temperror");
	spf_outcome_free(&o);
	test_end();

	test_begin("time bound on a whole check");
	z.sleep_ms = 300; /* 10 lookups: 3 s */
	spf_engine_set_timeout(e, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	z.lookups = 0;
	test_assert_str(check(e, "192.0.2.1", "a@slow.example", &o), "temperror");
	test_assert(seconds_since(&t0) < 1.8);
	test_assert(z.lookups >= 3 && z.lookups <= 5);
	test_assert(o.reason != NULL && strstr(o.reason, "1 s") != NULL);
	spf_outcome_free(&o);
	/* nothing of the timed-out check stays behind */
	z.sleep_ms = 0;
	test_assert_str(check(e, "203.0.113.1", "a@slow.example", &o), "pass");
	spf_outcome_free(&o);
	spf_engine_set_timeout(e, 0);
	z.sleep_ms = 120;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_assert_str(check(e, "192.0.2.1", "a@slow.example", &o), "neutral");
	test_assert(seconds_since(&t0) >= 1.0);
	spf_outcome_free(&o);
	z.sleep_ms = 0;
	test_end();

	test_begin("include fan-out: the term limit holds over the whole check");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	z.lookups = 0;
	test_assert_str(check(e, "192.0.2.1", "a@fan0.example", &o), "permerror");
	test_assert(z.lookups <= 12);
	test_assert(seconds_since(&t0) < 1.0);
	spf_outcome_free(&o);
	test_end();

	test_begin("oversized SPF record: permerror");
	{
		struct rec r[1] = {{"big.example", T_TXT, big}};
		struct zone zb = {r, 1, 0, 0};
		struct spf_engine *eb = spf_engine_new_lookup(zone_lookup, &zb, &err);
		memcpy(big, "v=spf1 ", 7);
		memset(big + 7, 'a', sizeof(big) - 8);
		for (size_t i = 20; i < sizeof(big) - 1; i += 20)
			big[i] = ' ';
		big[sizeof(big) - 1] = '\0';
		test_assert(spf_check(eb, "192.0.2.1", "h.example", "a@big.example", &o) == 0);
		test_assert_str(o.result_name, "permerror");
		spf_outcome_free(&o);
		spf_engine_free(eb);
	}
	test_end();

	spf_engine_free(e);
}

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
	test_zone();
	return test_exit_status();
}
