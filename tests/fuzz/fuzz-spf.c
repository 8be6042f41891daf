/* fuzz-spf - whole SPF evaluations (policy/spf.c on libspf2) with DNS
 * answers made of arbitrary octets, then the Received-SPF and
 * Authentication-Results values of the outcome (policy/spf_header.c):
 * nothing may crash, leak, or break a header value (folding is fine), and
 * libspf2 must never reach its own error handler (which it follows with
 * abort(); spf.c turns it into temperror, and this target into a crash so
 * that such inputs are found).
 *
 * fuzz-sources: policy/spf.c policy/spf_header.c lib/strbuf.c lib/dns_wait.c lib/log.c lib/xalloc.c -lspf2
 * fuzz-pkg: libunbound
 * Build and run: tests/fuzz/run.sh tests/fuzz/fuzz-spf.c 300
 *
 * The input: byte 0 picks the client address (clients[]), byte 1 holds
 * flags (below), then come slices, each a 2-octet big-endian length and
 * that many octets, in this order (missing ones are empty):
 *   sender, HELO name (text, up to a NUL),
 *   TXT 0, TXT 1, TXT 2 (each one TXT rdata in wire format, as is: its
 *     character-strings may be broken),
 *   A (4-octet records; a shorter tail is a broken record),
 *   AAAA (16-octet records, likewise),
 *   MX, PTR (records, each a 1-octet length and that rdata).
 * Every query of a type is answered from its slice, whatever the name:
 * TXT for the identity's own domain with TXT 0, other names (include:,
 * redirect=, exp=) with TXT 1 or 2 by a hash of the name; an empty slice
 * is "no such name". Flags: bits 0-4 make A, AAAA, MX, PTR, TXT answers
 * for about half of the names (by hash) "no such name" instead, bit 5
 * adds the other TXT slice as a second record, bit 6 makes about one name
 * in five fail temporarily, bit 7 checks with no HELO name. */
#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/dns_wait.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/spf.h"

enum { S_SENDER, S_HELO, S_TXT0, S_TXT1, S_TXT2, S_A, S_AAAA, S_MX, S_PTR, S_COUNT };

struct input {
	const uint8_t *slice[S_COUNT];
	size_t len[S_COUNT];
	unsigned flags;
	const char *own_domain; /* answered with TXT 0 */
};

static const char *const clients[] = {
	"192.0.2.1", "198.51.100.7", "2001:db8::1", "::ffff:192.0.2.1",
	"203.0.113.200", "2001:db8:ffff::25", "10.0.0.1", "127.0.0.1",
};

static struct input in;

/* name_hash - FNV-1a of the name, case folded */
static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name != '\0'; name++) {
		unsigned char c = (unsigned char)*name;
		h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 16777619u;
	}
	return h;
}

/* add - one record of len octets to ans (dns_wait_answer layout) */
static void add(struct dns_wait_answer *ans, const uint8_t *d, size_t len)
{
	ans->rdata = xrealloc(ans->rdata, (ans->n + 1) * sizeof(*ans->rdata));
	ans->len = xrealloc(ans->len, (ans->n + 1) * sizeof(*ans->len));
	ans->rdata[ans->n] = xmalloc(len + 1);
	memcpy(ans->rdata[ans->n], d, len);
	ans->rdata[ans->n][len] = '\0';
	ans->len[ans->n++] = len;
}

/* add_fixed - a slice cut into size-octet records */
static void add_fixed(struct dns_wait_answer *ans, const uint8_t *d, size_t len, size_t size)
{
	for (size_t o = 0; o < len; o += size)
		add(ans, d + o, len - o < size ? len - o : size);
}

/* add_counted - a slice of (1-octet length, rdata) records */
static void add_counted(struct dns_wait_answer *ans, const uint8_t *d, size_t len)
{
	size_t o = 0;

	while (o < len) {
		size_t l = d[o++];
		if (l > len - o)
			l = len - o;
		add(ans, d + o, l);
		o += l;
	}
}

/* fuzz_lookup - the engine's spf_lookup_fn: answers from the input */
static enum dns_wait_result fuzz_lookup(void *ctx, const char *name, int rrtype,
					struct dns_wait_answer *ans)
{
	uint32_t h = name_hash(name);
	int bit = -1, txt;

	(void)ctx;
	memset(ans, 0, sizeof(*ans));
	if ((in.flags & 0x40) && h % 5 == 0)
		return DNS_WAIT_TEMPFAIL;
	switch (rrtype) {
	case 1: bit = 0; break;
	case 28: bit = 1; break;
	case 15: bit = 2; break;
	case 12: bit = 3; break;
	case 16: bit = 4; break;
	default: return DNS_WAIT_NONE;
	}
	if ((in.flags & (1u << bit)) && (h >> 8) % 2 == 0)
		return DNS_WAIT_NONE;
	switch (rrtype) {
	case 1: add_fixed(ans, in.slice[S_A], in.len[S_A], 4); break;
	case 28: add_fixed(ans, in.slice[S_AAAA], in.len[S_AAAA], 16); break;
	case 15: add_counted(ans, in.slice[S_MX], in.len[S_MX]); break;
	case 12: add_counted(ans, in.slice[S_PTR], in.len[S_PTR]); break;
	default:
		txt = in.own_domain != NULL && strcasecmp(name, in.own_domain) == 0
			      ? S_TXT0
			      : S_TXT1 + (int)(h % 2);
		if (in.len[txt] > 0)
			add(ans, in.slice[txt], in.len[txt]);
		if ((in.flags & 0x20) && in.len[txt == S_TXT2 ? S_TXT1 : S_TXT2] > 0) {
			int other = txt == S_TXT2 ? S_TXT1 : S_TXT2;
			add(ans, in.slice[other], in.len[other]);
		}
		break;
	}
	ans->ttl = 60;
	if (ans->n == 0) {
		dns_wait_answer_free(ans);
		return DNS_WAIT_NONE;
	}
	return DNS_WAIT_OK;
}

/* on_log - libspf2 reached its error handler: make the input a crash */
static void on_log(enum log_level level, const char *line)
{
	if (level == LOG_LEVEL_ERROR && strstr(line, "libspf2") != NULL)
		abort();
}

/* no_break - a header value may be folded ("\n" then a space or tab)
 * but never broken: no CR, no line that starts a new header */
static void no_break(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if (*s == '\r' || (*s == '\n' && s[1] != ' ' && s[1] != '\t'))
			abort();
}

/* use - the outcome's invariants, and its header values */
static void use(struct spf_outcome *o, const char *ip, const char *helo, const char *sender,
		const char *identity)
{
	char *v;

	if (o->result_name == NULL || strcmp(o->result_name, spf_result_name(o->result)) != 0 ||
	    o->reason == NULL)
		abort();
	v = spf_received_value(o, "receiver.fuzz.test", ip, helo, sender, identity);
	no_break(v);
	free(v);
	v = spf_ar_entry(o, helo, sender, identity);
	no_break(v);
	free(v);
	spf_outcome_free(o);
}

/* parse - cut data into in; the slices point into data */
static void parse(const uint8_t *data, size_t size)
{
	size_t o = 2;

	memset(&in, 0, sizeof(in));
	for (int i = 0; i < S_COUNT; i++)
		in.slice[i] = (const uint8_t *)"";
	in.flags = size > 1 ? data[1] : 0;
	for (int i = 0; i < S_COUNT && o + 2 <= size; i++) {
		size_t l = (size_t)data[o] << 8 | data[o + 1];
		o += 2;
		if (l > size - o)
			l = size - o;
		in.slice[i] = data + o;
		in.len[i] = l;
		o += l;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spf_engine *engine;
	const char *err = NULL, *ip, *at;
	char *sender, *helo, dom[256];
	struct spf_outcome o;

	if (engine == NULL) {
		log_set_level(LOG_LEVEL_ERROR); /* libspf2's warnings are still formatted */
		log_set_hook(on_log);
		engine = spf_engine_new_lookup(fuzz_lookup, NULL, &err);
		if (engine == NULL)
			abort();
		spf_engine_set_receiver(engine, "receiver.fuzz.test");
	}
	if (size < 2)
		return 0;
	parse(data, size);
	ip = clients[data[0] % (sizeof(clients) / sizeof(clients[0]))];
	sender = xstrndup((const char *)in.slice[S_SENDER], in.len[S_SENDER]);
	helo = xstrndup((const char *)in.slice[S_HELO], in.len[S_HELO]);
	if (in.flags & 0x80)
		helo[0] = '\0';

	at = strrchr(sender, '@');
	in.own_domain = at != NULL ? at + 1 : *sender != '\0' ? sender : helo;
	if (spf_check(engine, ip, helo, sender, &o) != 0)
		abort(); /* every client address in the table is valid */
	use(&o, ip, helo, sender, *sender != '\0' ? "mailfrom" : "helo");

	in.own_domain = helo;
	if (spf_check_helo(engine, ip, helo, &o) != 0)
		abort();
	use(&o, ip, helo, NULL, "helo");

	(void)spf_domain_of(sender, helo, dom, sizeof(dom));
	free(sender);
	free(helo);
	return 0;
}
