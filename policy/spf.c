/* spf - SPF (RFC 7208) evaluation: libspf2 with weir's resolver
 *
 * libspf2 asks a stack of DNS layers (spf_dns.h). weir builds, per thread:
 *
 *   SPF_server_t -> void counter (ours) -> weir layer -> lookup function
 *                                                         |
 *                           dns_wait_query (libunbound), or the function
 *                           given to spf_engine_new_lookup (tests, fuzzing)
 *
 * The weir layer turns the lookup's rdata into SPF_dns_rr_t records and
 * DNS_WAIT_* results into h_errno values: NONE -> HOST_NOT_FOUND/NO_DATA,
 * TEMPFAIL and TIMEOUT -> TRY_AGAIN (libspf2 then says temperror).
 *
 * There is no libspf2 cache layer. SPF_dns_cache_new (1.2.10) keeps every
 * answer at least 30 s and failures (TRY_AGAIN included), TXT and reverse
 * answers at least 30 minutes: one resolver hiccup, or one check that ran
 * out of time, would have made every check of that domain in that thread
 * a temperror for half an hour, and a changed SPF record invisible as
 * long. libunbound caches underneath, by the records' own TTLs.
 *
 * Time bound (spf_engine_set_timeout): run_check notes when the check
 * started (monotonic clock, thread-local); once the bound has passed, the
 * weir layer answers TRY_AGAIN without asking and the outcome is
 * temperror. A lookup already under way is bounded by the resolver's own
 * limit, so a check can overrun the bound by at most one such lookup.
 *
 * libspf2's weak spots (CVE-2021-20314, CVE-2021-33912, CVE-2021-33913:
 * buffer overruns in macro expansion, SPF_record_expand_data) are reached
 * with long or odd input. Before libspf2 sees anything, weir
 *  - refuses a sender whose local part is over 64 octets or a sender or
 *    HELO domain over 253 (permerror / none, see check_inputs);
 *  - shortens a query name over 253 octets as RFC 7208 7.3 says, and
 *    answers "no such name" for a name with an empty or over-63-octet
 *    label, or with bytes outside printable ASCII;
 *  - drops DNS records whose names do not decode to printable ASCII;
 *  - replaces any TXT record that starts with "v=spf1" and is longer than
 *    SPF_MAX_RECORD with a record libspf2 rejects as a syntax error, so the
 *    domain gets permerror instead of a long record reaching the compiler;
 *  - escapes the spaces of other TXT records (explanations, exp_text),
 *    and replaces one whose compiled form would come near 511 octets
 *    with a text libspf2 refuses (EXP_COMPILED_MAX: its explanation
 *    compiler overruns a stack buffer there, and the stack protector
 *    aborts the process);
 *  - drops N from a macro "%{xN...}" whose value has N parts or fewer
 *    (fix_truncation: libspf2 then cuts a character off the result).
 * Explanations and libspf2's reasons leave as printable ASCII (copy_text):
 * they go into SMTP replies and headers.
 *
 * Void lookups: libspf2 1.2.10 does not count them; the counter layer does
 * (A, AAAA, MX, PTR answers with no records) and turns more than
 * SPF_MAX_VOID_LOOKUPS into permerror after the evaluation. RFC 7208 4.6.4
 * counts the lookups of terms only, so the lookups libspf2 makes to expand
 * the %{p} macro (SPF_dns_get_client_dom: a PTR lookup of the client
 * address, then A or AAAA lookups of the names it gave, in order, until
 * one holds the client address; all with should_cache false, which no
 * mechanism uses for PTR) are recognised by that pattern and not counted.
 *
 * libspf2's messages (spf_log.h): SPF_error_handler, SPF_warning_handler,
 * SPF_info_handler and SPF_debug_handler are process-wide function
 * pointers; the first engine sets them once (pthread_once) to functions
 * that log through lib/log.h ("libspf2 where=FILE:LINE msg=..."). After a
 * warning, info or debug message libspf2 goes on. After an error it does
 * not: SPF_errorx and SPF_errorv call the handler and then abort()
 * unconditionally (also when the pointer is NULL). In 1.2.10 the errors
 * are "cannot happen" checks made before the bad access: SPF_ASSERT_NOTNULL,
 * a DNS layer that returned NULL (SPF_dns_lookup), a macro expansion that
 * would not fit the length its first pass computed (SPF_record_expand_data),
 * gethostname or the built-in explanation failing (SPF_server_new_dns),
 * reason 2MX without a RCPT domain (weir never asks for 2MX). So while a
 * thread evaluates (query), weir's error handler logs and siglongjmps back
 * to query instead: that check is temperror, and the response libspf2 was
 * building is abandoned, not freed (its state is unknown; a few KB leak,
 * logged). libspf2 holds no lock then (there is no cache layer) and its
 * server is only read during a check, so the thread goes on using it.
 * Anywhere else the handler logs and aborts, as libspf2 would have.
 *
 * Thread safety: the libspf2 objects (server, layers) are made per
 * thread, on first use, and found again through a pthread key; only the
 * lookup function's context underneath is shared (struct dns_wait is
 * thread safe; a caller's function must be). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "lib/dns_wait.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/spf.h"

/* One thread's libspf2 objects */
struct spf_thread {
	struct spf_engine *engine;
	SPF_server_t *server;
	SPF_dns_server_t *top; /* our DNS layers: SPF_server_new_dns does not take them over */
	struct spf_thread *next, *prev;
};

struct spf_engine {
	spf_lookup_fn lookup;
	void *lookup_ctx;
	long timeout; /* seconds, 0: none */
	char *receiver;
	pthread_key_t key;
	pthread_mutex_t lock; /* guards threads */
	struct spf_thread *threads;
};

/* Names libspf2 validates for %{p}: SPF_MAX_DNS_PTR (spf_dns.c) */
#define P_NAMES 10

/* Per-check state of the calling thread: one check runs in one thread */
static _Thread_local struct {
	struct timespec start; /* CLOCK_MONOTONIC */
	bool timed_out;
	int voids;
	int client_af; /* AF_INET or AF_INET6, as libspf2 parsed it */
	unsigned char client[16];
	/* %{p} validation under way: names p_next..p_count-1 are still to
	 * be looked up (see count_lookup) */
	char p_names[P_NAMES][SPF_MAX_DOMAIN + 2];
	int p_next, p_count;
	/* RFC 7208 4.6.4, which libspf2 1.2.10 enforces per record only
	 * (an include starts a new count): DNS-querying terms of the whole
	 * check; the names of the last MX or ptr answer, whose address
	 * lookups follow and are not terms of their own */
	int terms;
	bool own_record_fetched;
	char host_names[SPF_MAX_TERMS][SPF_MAX_DOMAIN + 2];
	int host_next, host_count;
	const char *over_limit; /* why the check exceeded a limit, or NULL */
	sigjmp_buf *escape; /* set while libspf2 evaluates */
	const SPF_request_t *req; /* the check's request (fix_truncation) */
} check_state;

/* spf_result_name - RFC 7208 name of r (static) */
const char *spf_result_name(enum spf_result r)
{
	static const char *const names[] = {"none", "neutral", "pass", "fail",
					    "softfail", "temperror", "permerror"};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "permerror";
}

/* valid_query_name - a name weir lets libspf2 look up */
static bool valid_query_name(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_MAX_DOMAIN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (c <= 0x20 || c >= 0x7f || ++label > 63) {
			return false;
		}
	}
	return label > 0;
}

/* wire_name - the uncompressed wire-format name at d[off..len) as dotted
 * text into out (size >= 256); -1 if broken, compressed or not printable */
static int wire_name(const unsigned char *d, size_t len, size_t off, char *out)
{
	size_t o = 0;

	while (off < len) {
		size_t l = d[off++];
		if (l == 0) {
			if (o == 0)
				out[o++] = '.'; /* the root */
			out[o] = '\0';
			return 0;
		}
		if (l > 63 || l > len - off || o + l + 1 > 254)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			unsigned char c = d[off + i];
			if (c <= 0x20 || c >= 0x7f || c == '.')
				return -1;
			out[o++] = (char)c;
		}
		off += l;
	}
	return -1;
}

/* A record libspf2 compiles to a syntax error (permerror) */
static const char oversize_spf[] = "v=spf1 weir.refused:record-too-long";

/* is_spf_record - a TXT record libspf2 takes for an SPF record */
static bool is_spf_record(const char *txt)
{
	return strncasecmp(txt, "v=spf1", 6) == 0 && (txt[6] == ' ' || txt[6] == '\0');
}

/* exp_text - a TXT record that is not an SPF record (for libspf2, only
 * an exp= explanation is), made fit for libspf2's macro compiler, which
 * takes a space for a '%' (SPF_c_parse_macro, 1.2.10: "192.0.2.1%may%not"):
 * a space becomes "%_" (a macro-string's space, RFC 7208 7.1) and a '%'
 * that starts no macro "%%". Caller frees. */
static char *exp_text(const char *txt)
{
	char *out = xmalloc(2 * strlen(txt) + 1), *o = out;

	for (const char *p = txt; *p != '\0'; p++) {
		if (*p == ' ') {
			*o++ = '%';
			*o++ = '_';
		} else if (*p == '%' && p[1] != '\0' && strchr("%_-", p[1]) != NULL) {
			*o++ = *p++;
			*o++ = *p;
		} else if (*p == '%' && p[1] != '{') {
			*o++ = '%';
			*o++ = '%';
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* macro_value - what libspf2 will expand the macro letter c (lower
 * case) to in this check, as far as it is known when a record is fetched:
 * d is then the domain the record is fetched for (libspf2 sets cur_dom
 * first, for exp= too). NULL if not known (p before its validation; c, r
 * and t, which weir does not need). buf: room for i. */
static const char *macro_value(char c, char *buf, size_t size)
{
	const SPF_request_t *req = check_state.req;
	size_t o = 0;

	if (req == NULL)
		return NULL;
	switch (c) {
	case 'd': return req->cur_dom;
	case 'o': return req->env_from_dp;
	case 'l': return req->env_from_lp;
	case 's': return req->env_from;
	case 'h': return req->helo_dom;
	case 'p': return req->client_dom;
	case 'v': return req->client_ver == AF_INET ? "in-addr" : "ip6";
	case 'i':
		if (req->client_ver == AF_INET)
			return inet_ntop(AF_INET, &req->ipv4, buf, (socklen_t)size);
		for (int i = 0; i < 16 && o + 4 < size; i++)
			o += (size_t)snprintf(buf + o, size - o, "%x.%x.", req->ipv6.s6_addr[i] >> 4,
					      req->ipv6.s6_addr[i] & 0xf);
		if (o > 0)
			buf[o - 1] = '\0';
		return buf;
	default: return NULL;
	}
}

/* fix_truncation - libspf2 1.2.10 cuts the first character off a macro
 * truncated to its N rightmost parts when the value has N parts or fewer
 * (SPF_record_expand_data: "%{d2}" of example.com gives "xample.com",
 * "%{d2r}" of e.example "xample.e"). RFC 7208 7.3 says all parts are kept
 * then, which is what the macro without N gives, so that N is dropped.
 * txt: a TXT record fetched during a check. NULL when nothing changes;
 * otherwise a new string, caller frees. */
static char *fix_truncation(const char *txt)
{
	static const char delims[] = ".-+=|_"; /* libspf2's, SPF_c_parse_var */
	const char *copied = txt;
	char *out = NULL, buf[80];
	size_t o = 0;

	for (const char *p = txt; *p != '\0'; p++) {
		const char *digits = p + 3, *q = digits, *dl, *end, *value;
		size_t parts = 1, n = 0;

		if (*p != '%')
			continue;
		if (p[1] != '{' || p[2] == '\0') {
			p += p[1] != '\0'; /* "%%", "%_", "%-": no macro starts there */
			continue;
		}
		while (*q >= '0' && *q <= '9' && q - digits < 4)
			n = n * 10 + (size_t)(*q++ - '0');
		dl = q + (*q == 'r');
		for (end = dl; *end != '\0' && strchr(delims, *end) != NULL; end++)
			;
		if (n == 0 || *end != '}' ||
		    (value = macro_value((char)tolower((unsigned char)p[2]), buf, sizeof(buf))) ==
			    NULL)
			continue;
		for (const char *v = value; *v != '\0'; v++)
			if (end > dl ? memchr(dl, *v, (size_t)(end - dl)) != NULL : *v == '.')
				parts++;
		if (n < parts)
			continue;
		if (out == NULL)
			out = xmalloc(strlen(txt) + 1);
		memcpy(out + o, copied, (size_t)(digits - copied));
		o += (size_t)(digits - copied);
		copied = q; /* the digits are left out */
	}
	if (out != NULL)
		strcpy(out + o, copied);
	return out;
}

/* An explanation libspf2 fails to compile (unknown macro letter), so
 * there is none */
static const char refused_exp[] = "%{!}";

/* The most an explanation may take compiled. SPF_record_compile_macro
 * (1.2.10) compiles it into a stack buffer of 511 octets after a header,
 * and its length checks come after some writes: an explanation whose
 * compiled form nears 511 octets overruns that buffer (found by
 * fuzz-spf: "stack smashing detected", an abort in weir-milter for any
 * sender of a domain publishing such an exp=). Kept well below. */
#define EXP_COMPILED_MAX 400

/* exp_compiled_size - at least the size libspf2's macro compiler gives
 * text (as exp_text leaves it): literal runs of a 4-octet header and
 * their octets ("%-" is three), 4 octets a macro, each block aligned to 8
 * (more than libspf2 aligns to) */
static size_t exp_compiled_size(const char *text)
{
	size_t size = 0, lit = 0;

	for (const char *p = text; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == '{') {
			const char *end = strchr(p, '}');
			if (lit > 0)
				size += (4 + lit + 7) / 8 * 8;
			lit = 0;
			size += 8;
			if (end == NULL)
				break;
			p = end;
		} else if (p[0] == '%' && p[1] != '\0' && strchr("%_-", p[1]) != NULL) {
			lit += p[1] == '-' ? 3 : 1;
			p++;
		} else {
			lit++;
		}
	}
	if (lit > 0)
		size += (4 + lit + 7) / 8 * 8;
	return size + 8; /* the empty block libspf2 starts after the last one */
}

/* rr_add - append one record of len bytes at data to rr; -1 on failure */
static int rr_add(SPF_dns_rr_t *rr, const void *data, size_t len)
{
	if (SPF_dns_rr_buf_realloc(rr, rr->num_rr, len) != SPF_E_SUCCESS)
		return -1;
	memcpy(rr->rr[rr->num_rr], data, len);
	rr->num_rr++;
	return 0;
}

/* add_rdata - convert one rdata of type t into rr; records weir cannot
 * use (broken, or names that are not printable ASCII) are skipped */
static void add_rdata(SPF_dns_rr_t *rr, ns_type t, const unsigned char *d, size_t len)
{
	char name[256];

	switch (t) {
	case ns_t_a:
		if (len == 4)
			rr_add(rr, d, 4);
		break;
	case ns_t_aaaa:
		if (len == 16)
			rr_add(rr, d, 16);
		break;
	case ns_t_mx:
		if (len > 2 && wire_name(d, len, 2, name) == 0)
			rr_add(rr, name, strlen(name) + 1);
		break;
	case ns_t_ptr:
		if (wire_name(d, len, 0, name) == 0)
			rr_add(rr, name, strlen(name) + 1);
		break;
	case ns_t_txt: {
		char *txt = dns_txt_join(d, len), *exp, *fixed;
		if ((fixed = fix_truncation(txt)) != NULL) {
			free(txt);
			txt = fixed;
		}
		if (!is_spf_record(txt)) {
			exp = exp_text(txt);
			if (exp_compiled_size(exp) > EXP_COMPILED_MAX)
				rr_add(rr, refused_exp, sizeof(refused_exp));
			else
				rr_add(rr, exp, strlen(exp) + 1);
			free(exp);
		} else if (strlen(txt) > SPF_MAX_RECORD) {
			rr_add(rr, oversize_spf, sizeof(oversize_spf));
		} else {
			rr_add(rr, txt, strlen(txt) + 1);
		}
		free(txt);
		break;
	}
	default:
		break;
	}
}

/* no_explanation - a TXT answer without SPF record is, for libspf2, an
 * exp= explanation; it uses the first record. RFC 7208 6.2: more than
 * one record, or text that is not ASCII, is no explanation at all. */
static void no_explanation(SPF_dns_rr_t *rr)
{
	bool ascii = true;

	for (int i = 0; i < rr->num_rr; i++) {
		if (is_spf_record(rr->rr[i]->txt))
			return;
		for (const char *p = rr->rr[i]->txt; *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				ascii = false;
	}
	if (rr->num_rr > 1 || !ascii) {
		rr->num_rr = 0;
		rr->herrno = NO_DATA;
	}
}

/* query_name - RFC 7208 7.3: a name over 253 octets loses labels from
 * the left until it fits (libspf2 does not do this) */
static const char *query_name(const char *name)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	while (len > SPF_MAX_DOMAIN) {
		const char *dot = memchr(name, '.', len);
		if (dot == NULL)
			break;
		len -= (size_t)(dot + 1 - name);
		name = dot + 1;
	}
	return name;
}

/* past_deadline - whether this thread's check has run out of time */
static bool past_deadline(const struct spf_engine *e)
{
	struct timespec now;
	long long ms;

	if (e->timeout <= 0)
		return false;
	if (check_state.timed_out)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(now.tv_sec - check_state.start.tv_sec) * 1000 +
	     (now.tv_nsec - check_state.start.tv_nsec) / 1000000;
	if (ms >= (long long)e->timeout * 1000)
		check_state.timed_out = true;
	return check_state.timed_out;
}

/* weir_lookup - libspf2's DNS lookup through the engine's lookup
 * function. libspf2 frees the returned record; never NULL but when
 * memory runs out (libspf2 then calls its error handler). */
static SPF_dns_rr_t *weir_lookup(SPF_dns_server_t *layer, const char *domain, ns_type t,
				 int should_cache)
{
	struct spf_engine *e = layer->hook;
	struct dns_wait_answer ans;
	enum dns_wait_result r;
	SPF_dns_rr_t *rr;

	(void)should_cache;
	if (!valid_query_name(query_name(domain)))
		return SPF_dns_rr_new_init(layer, domain, t, 0, HOST_NOT_FOUND);
	if (t != ns_t_a && t != ns_t_aaaa && t != ns_t_mx && t != ns_t_txt && t != ns_t_ptr)
		return SPF_dns_rr_new_init(layer, domain, t, 0, NO_DATA); /* type SPF (99) */
	if (past_deadline(e))
		return SPF_dns_rr_new_init(layer, domain, t, 0, TRY_AGAIN);
	memset(&ans, 0, sizeof(ans));
	r = e->lookup(e->lookup_ctx, query_name(domain), (int)t, &ans);
	if (r != DNS_WAIT_OK) {
		dns_wait_answer_free(&ans);
		/* dns_wait does not tell NXDOMAIN from NODATA; libspf2 treats
		 * both alike for SPF purposes (no record, void lookup). */
		return SPF_dns_rr_new_init(layer, domain, t, 0,
					   r == DNS_WAIT_NONE ? HOST_NOT_FOUND : TRY_AGAIN);
	}
	rr = SPF_dns_rr_new_init(layer, domain, t, (int)ans.ttl, NETDB_SUCCESS);
	if (rr != NULL) {
		for (size_t i = 0; i < ans.n && i < 1000; i++)
			add_rdata(rr, t, ans.rdata[i], ans.len[i]);
		if (t == ns_t_txt)
			no_explanation(rr);
		if (rr->num_rr == 0)
			rr->herrno = NO_DATA;
	}
	dns_wait_answer_free(&ans);
	return rr;
}

/* has_client - whether an A or AAAA answer holds the client address */
static bool has_client(const SPF_dns_rr_t *rr)
{
	for (int i = 0; i < rr->num_rr; i++) {
		if (check_state.client_af == AF_INET && rr->rr_type == ns_t_a &&
		    memcmp(&rr->rr[i]->a, check_state.client, 4) == 0)
			return true;
		if (check_state.client_af == AF_INET6 && rr->rr_type == ns_t_aaaa &&
		    memcmp(&rr->rr[i]->aaaa, check_state.client, 16) == 0)
			return true;
	}
	return false;
}

/* p_macro_lookup - whether this lookup is one libspf2 makes to validate
 * the client's name for %{p} (SPF_dns_get_client_dom), tracking where
 * that validation is. Its PTR lookup is the only one with should_cache
 * false; the A or AAAA lookups follow it at once, one per PTR name, in
 * order (up to P_NAMES), until one holds the client address. */
static bool p_macro_lookup(const char *domain, ns_type t, int should_cache)
{
	ns_type want = check_state.client_af == AF_INET ? ns_t_a : ns_t_aaaa;

	if (t == ns_t_ptr && !should_cache)
		return true;
	if (check_state.p_next < check_state.p_count && !should_cache && t == want &&
	    strcasecmp(domain, check_state.p_names[check_state.p_next]) == 0) {
		check_state.p_next++;
		return true;
	}
	check_state.p_count = check_state.p_next = 0; /* that validation is over */
	return false;
}

/* p_macro_answer - note what a %{p} lookup found */
static void p_macro_answer(ns_type t, const SPF_dns_rr_t *rr)
{
	if (t != ns_t_ptr) {
		if (has_client(rr))
			check_state.p_count = check_state.p_next = 0;
		return;
	}
	check_state.p_count = check_state.p_next = 0;
	for (int i = 0; i < rr->num_rr && i < P_NAMES; i++) {
		const char *name = rr->rr[i]->ptr;
		if (strlen(name) >= sizeof(check_state.p_names[0]))
			break; /* cannot happen: weir_lookup made it */
		strcpy(check_state.p_names[check_state.p_count++], name);
	}
}

/* note_hosts - the names of an MX or ptr answer: their address lookups
 * come next, in order */
static void note_hosts(const SPF_dns_rr_t *rr)
{
	check_state.host_next = check_state.host_count = 0;
	for (int i = 0; i < rr->num_rr && i < SPF_MAX_TERMS; i++) {
		const char *name = rr->rr_type == ns_t_mx ? rr->rr[i]->mx : rr->rr[i]->ptr;
		if (strlen(name) >= sizeof(check_state.host_names[0]))
			break; /* cannot happen: weir_lookup made it */
		strcpy(check_state.host_names[check_state.host_count++], name);
	}
}

/* is_host_lookup - an address lookup of the next name of the last MX or
 * ptr answer (not a term); anything else ends that run */
static bool is_host_lookup(const char *domain, ns_type t)
{
	if ((t == ns_t_a || t == ns_t_aaaa) && check_state.host_next < check_state.host_count &&
	    strcasecmp(domain, check_state.host_names[check_state.host_next]) == 0) {
		check_state.host_next++;
		return true;
	}
	check_state.host_next = check_state.host_count = 0;
	return false;
}

/* is_spf_answer - a TXT answer holding an SPF record (an include or
 * redirect target; exp= texts are not) */
static bool is_spf_answer(const SPF_dns_rr_t *rr)
{
	for (int i = 0; rr->herrno == NETDB_SUCCESS && i < rr->num_rr; i++)
		if (strncasecmp(rr->rr[i]->txt, "v=spf1", 6) == 0 &&
		    strchr(" ", rr->rr[i]->txt[6]) != NULL) /* ' ' or the end */
			return true;
	return false;
}

/* over_limit - the check went past a limit: every further lookup fails
 * at once (libspf2 then stops), and the result is permerror */
static SPF_dns_rr_t *over_limit(SPF_dns_server_t *layer, const char *domain, ns_type t,
				const char *why)
{
	if (check_state.over_limit == NULL)
		check_state.over_limit = why;
	return SPF_dns_rr_new_init(layer, domain, t, 0, TRY_AGAIN);
}

/* count_lookup - the top layer: the limits of RFC 7208 4.6.4 over this
 * thread's current check. Void lookups: a, mx, ptr, exists terms (TXT
 * lookups are records' own, or exp=, which must not count; nor do those
 * made for %{p}). Terms: the MX lookup of mx, the PTR lookup of ptr, the
 * address lookup of a and exists, and each include or redirect (a TXT
 * lookup after the identity's own that finds an SPF record); more than
 * SPF_MAX_TERMS is permerror. More than 10 MX records is permerror; of
 * more than 10 PTR names the first 10 are used. */
static SPF_dns_rr_t *count_lookup(SPF_dns_server_t *layer, const char *domain, ns_type t,
				  int should_cache)
{
	bool p_macro = p_macro_lookup(domain, t, should_cache);
	bool term = false;
	SPF_dns_rr_t *rr;

	if (check_state.over_limit != NULL)
		return over_limit(layer, domain, t, NULL);
	if (!p_macro && t != ns_t_txt && !is_host_lookup(domain, t)) {
		term = true;
		if (++check_state.terms > SPF_MAX_TERMS)
			return over_limit(layer, domain, t,
					  "more than 10 DNS-querying terms (RFC 7208 4.6.4)");
	}
	rr = SPF_dns_lookup(layer->layer_below, domain, t, should_cache);
	if (rr == NULL)
		return NULL;
	if (p_macro) {
		p_macro_answer(t, rr);
		return rr;
	}
	if (t == ns_t_txt) {
		if (!check_state.own_record_fetched)
			check_state.own_record_fetched = true;
		else if (is_spf_answer(rr) && ++check_state.terms > SPF_MAX_TERMS) {
			SPF_dns_rr_free(rr);
			return over_limit(layer, domain, t,
					  "more than 10 DNS-querying terms (RFC 7208 4.6.4)");
		}
		return rr;
	}
	if (rr->herrno == HOST_NOT_FOUND || rr->herrno == NO_DATA ||
	    (rr->herrno == NETDB_SUCCESS && rr->num_rr == 0))
		check_state.voids++;
	if (term && t == ns_t_mx && rr->herrno == NETDB_SUCCESS) {
		if (rr->num_rr > SPF_MAX_TERMS) {
			SPF_dns_rr_free(rr);
			return over_limit(layer, domain, t,
					  "more than 10 MX records (RFC 7208 4.6.4)");
		}
		note_hosts(rr);
	} else if (term && t == ns_t_ptr && rr->herrno == NETDB_SUCCESS) {
		if (rr->num_rr > SPF_MAX_TERMS)
			rr->num_rr = SPF_MAX_TERMS; /* SPF_dns_rr_free frees all */
		note_hosts(rr);
	}
	return rr;
}

/* layer_destroy - SPF_dns_free calls this, then frees the layer below */
static void layer_destroy(SPF_dns_server_t *layer)
{
	free(layer);
}

/* layer_new - one of weir's DNS layers */
static SPF_dns_server_t *layer_new(SPF_dns_lookup_t lookup, SPF_dns_server_t *below,
				   const char *name, void *hook)
{
	SPF_dns_server_t *l = xcalloc(1, sizeof(*l));

	l->destroy = layer_destroy;
	l->lookup = lookup;
	l->layer_below = below;
	l->name = name;
	l->hook = hook;
	return l;
}

/* thread_server - this thread's libspf2 server, made on first use */
static SPF_server_t *thread_server(struct spf_engine *e)
{
	struct spf_thread *t = pthread_getspecific(e->key);
	SPF_dns_server_t *bottom, *top;
	SPF_response_t *resp = NULL;

	if (t != NULL)
		return t->server;
	bottom = layer_new(weir_lookup, NULL, "weir", e);
	top = layer_new(count_lookup, bottom, "void-count", NULL);
	t = xcalloc(1, sizeof(*t));
	t->engine = e;
	t->server = SPF_server_new_dns(top, 0);
	t->top = top;
	if (t->server == NULL) {
		SPF_dns_free(top);
		free(t);
		return NULL;
	}
	/* no explanation but the domain's own exp= (libspf2's default
	 * points at www.openspf.org, which is gone) */
	if (SPF_server_set_explanation(t->server, "", &resp) != SPF_E_SUCCESS)
		log_warning("spf cannot clear libspf2's default explanation");
	if (resp != NULL)
		SPF_response_free(resp);
	/* RFC 7208 4.6.4: 10 DNS-querying terms, 10 MX and PTR names each */
	SPF_server_set_max_dns_mech(t->server, 10);
	SPF_server_set_max_dns_mx(t->server, 10);
	SPF_server_set_max_dns_ptr(t->server, 10);
	if (e->receiver != NULL)
		SPF_server_set_rec_dom(t->server, e->receiver);
	pthread_mutex_lock(&e->lock);
	t->next = e->threads;
	if (t->next != NULL)
		t->next->prev = t;
	e->threads = t;
	pthread_mutex_unlock(&e->lock);
	pthread_setspecific(e->key, t);
	return t->server;
}

/* thread_free - unlink and free one thread's objects; lock held */
static void thread_free(struct spf_thread *t)
{
	struct spf_engine *e = t->engine;

	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		e->threads = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	SPF_server_free(t->server);
	SPF_dns_free(t->top);
	free(t);
}

/* thread_exit - pthread key destructor: a thread that ends frees its own */
static void thread_exit(void *arg)
{
	struct spf_thread *t = arg;
	struct spf_engine *e = t->engine;

	pthread_mutex_lock(&e->lock);
	thread_free(t);
	pthread_mutex_unlock(&e->lock);
}

/* libspf2_message - one of libspf2's messages, as a log line */
static void libspf2_message(enum log_level level, const char *file, int line, const char *msg)
{
	const char *base = file != NULL ? strrchr(file, '/') : NULL;
	struct kvline kv;

	kv_init(&kv);
	kv_addf(&kv, "where", "%s:%d", base != NULL ? base + 1 : file != NULL ? file : "?",
		line);
	kv_add(&kv, "msg", msg != NULL ? msg : "");
	switch (level) {
	case LOG_LEVEL_ERROR: log_error("libspf2 %s", kv_str(&kv)); break;
	case LOG_LEVEL_WARNING: log_warning("libspf2 %s", kv_str(&kv)); break;
	case LOG_LEVEL_INFO: log_info("libspf2 %s", kv_str(&kv)); break;
	default: log_debug("libspf2 %s", kv_str(&kv)); break;
	}
	kv_free(&kv);
}

/* libspf2_error - SPF_error_handler: libspf2 would abort() on return, so
 * leave the check instead when one is running (see the head comment) */
static __attribute__((noreturn)) void libspf2_error(const char *file, int line,
						      const char *msg)
{
	sigjmp_buf *escape = check_state.escape;

	libspf2_message(LOG_LEVEL_ERROR, file, line, msg);
	if (escape != NULL) {
		check_state.escape = NULL;
		siglongjmp(*escape, 1);
	}
	log_panic("libspf2 internal error outside an SPF check");
}

static void libspf2_warning(const char *file, int line, const char *msg)
{
	libspf2_message(LOG_LEVEL_WARNING, file, line, msg);
}

static void libspf2_info(const char *file, int line, const char *msg)
{
	libspf2_message(LOG_LEVEL_INFO, file, line, msg);
}

static void libspf2_debug(const char *file, int line, const char *msg)
{
	libspf2_message(LOG_LEVEL_DEBUG, file, line, msg);
}

/* set_handlers - once per process: libspf2's handlers are global */
static void set_handlers(void)
{
	SPF_error_handler = libspf2_error;
	SPF_warning_handler = libspf2_warning;
	SPF_info_handler = libspf2_info;
	SPF_debug_handler = libspf2_debug;
}

/* dns_lookup - spf_lookup_fn of an engine on a struct dns_wait */
static enum dns_wait_result dns_lookup(void *ctx, const char *name, int rrtype,
				       struct dns_wait_answer *ans)
{
	return dns_wait_query(ctx, name, rrtype, ans);
}

struct spf_engine *spf_engine_new_lookup(spf_lookup_fn fn, void *ctx, const char **err_r)
{
	static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;
	struct spf_engine *e;

	if (fn == NULL) {
		*err_r = "SPF needs a lookup function";
		return NULL;
	}
	pthread_once(&handlers_once, set_handlers);
	e = xcalloc(1, sizeof(*e));
	e->lookup = fn;
	e->lookup_ctx = ctx;
	if (pthread_key_create(&e->key, thread_exit) != 0) {
		*err_r = "cannot create a thread key";
		free(e);
		return NULL;
	}
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

struct spf_engine *spf_engine_new(struct dns_wait *dns, const char **err_r)
{
	if (dns == NULL) {
		*err_r = "SPF needs a resolver";
		return NULL;
	}
	return spf_engine_new_lookup(dns_lookup, dns, err_r);
}

void spf_engine_set_timeout(struct spf_engine *e, long secs)
{
	e->timeout = secs > 0 ? secs : 0;
}

void spf_engine_set_receiver(struct spf_engine *e, const char *name)
{
	free(e->receiver);
	e->receiver = name != NULL ? xstrdup(name) : NULL;
}

void spf_engine_free(struct spf_engine *e)
{
	if (e == NULL)
		return;
	pthread_key_delete(e->key); /* no destructor runs after this */
	pthread_mutex_lock(&e->lock);
	while (e->threads != NULL)
		thread_free(e->threads);
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_destroy(&e->lock);
	free(e->receiver);
	free(e);
}

void spf_outcome_free(struct spf_outcome *out)
{
	free(out->reason);
	free(out->explanation);
	free(out->received_spf);
	memset(out, 0, sizeof(*out));
}

static void set_outcome(struct spf_outcome *out, enum spf_result r, const char *reason)
{
	out->result = r;
	out->result_name = spf_result_name(r);
	free(out->reason);
	out->reason = reason != NULL ? xstrdup(reason) : NULL;
}

/* multi_label - a domain SPF can be checked for (RFC 7208 4.3): letters,
 * digits, '-' and '_' in two or more non-empty labels, one trailing dot
 * allowed; an address literal, a bare word or a U-label is none */
static bool multi_label(const char *d)
{
	size_t len = strlen(d), label = 0;
	int dots = 0;

	if (len > 0 && d[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			dots++;
		} else if (isalnum(c) || c == '-' || c == '_') {
			label++;
		} else {
			return false;
		}
	}
	return label > 0 && dots > 0;
}

/* check_inputs - weir's own limits on what reaches libspf2; -1 with *out
 * set when the identity is refused */
static int check_inputs(const char *helo, const char *sender, struct spf_outcome *out)
{
	const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
	const char *dom = sender != NULL && *sender != '\0' ? (at != NULL ? at + 1 : sender) : helo;

	if (dom == NULL || strlen(dom) <= SPF_MAX_DOMAIN) {
		if (dom == NULL || !multi_label(dom)) {
			set_outcome(out, SPF_RES_NONE,
				    "not a multi-label domain name (RFC 7208 4.3)");
			return -1;
		}
	}

	if (helo != NULL && strlen(helo) > SPF_MAX_DOMAIN) {
		set_outcome(out, SPF_RES_NONE, "HELO name longer than 253 octets");
		return -1;
	}
	if (sender == NULL || *sender == '\0')
		return 0;
	for (const char *p = sender; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
			set_outcome(out, SPF_RES_PERMERROR, "control character in sender");
			return -1;
		}
	}
	if (at != NULL && (size_t)(at - sender) > SPF_MAX_LOCALPART) {
		set_outcome(out, SPF_RES_PERMERROR, "sender local part longer than 64 octets");
		return -1;
	}
	if (strlen(at != NULL ? at + 1 : sender) > SPF_MAX_DOMAIN) {
		set_outcome(out, SPF_RES_NONE, "sender domain longer than 253 octets");
		return -1;
	}
	return 0;
}

static enum spf_result map_result(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS: return SPF_RES_PASS;
	case SPF_RESULT_FAIL: return SPF_RES_FAIL;
	case SPF_RESULT_SOFTFAIL: return SPF_RES_SOFTFAIL;
	case SPF_RESULT_NEUTRAL: return SPF_RES_NEUTRAL;
	case SPF_RESULT_NONE: return SPF_RES_NONE;
	case SPF_RESULT_TEMPERROR: return SPF_RES_TEMPERROR;
	default: return SPF_RES_PERMERROR; /* PERMERROR, INVALID */
	}
}

/* compile_error - whether libspf2 found a record but could not compile it
 * (it then reports "not SPF", which would read as none: RFC 7208 4.6
 * says permerror); the first such error's text into buf */
static bool compile_error(SPF_response_t *resp, char *buf, size_t size)
{
	for (int i = 0; i < SPF_response_messages(resp); i++) {
		SPF_error_t *m = SPF_response_message(resp, i);
		if (SPF_error_errorp(m) && SPF_error_code(m) != SPF_E_NOT_SPF &&
		    SPF_error_code(m) != SPF_E_DNS_ERROR) {
			snprintf(buf, size, "%s", SPF_error_message(m));
			return true;
		}
	}
	return false;
}

/* copy_text - a malloc'd copy of s, or NULL for NULL or "". The text
 * came from the DNS (exp= records, record fragments in libspf2's
 * messages) and goes into SMTP replies and headers: anything but
 * printable ASCII becomes '?'. */
static char *copy_text(const char *s)
{
	char *c;

	if (s == NULL || *s == '\0')
		return NULL;
	c = xstrdup(s);
	for (char *p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return c;
}

/* query_mailfrom - what SPF_request_query_mailfrom does, without its
 * "free ride" for loopback clients: libspf2 answers pass for any
 * 127.0.0.0/8 or ::1 client without looking at the record. weir decides
 * about local clients itself (trusted_networks, spf.allow_networks), and
 * a relay whose clients reach it over loopback (a local proxy, tests)
 * must get the domain's real answer. */
static SPF_errcode_t query_mailfrom(SPF_request_t *req, SPF_response_t **resp_r)
{
	SPF_record_t *record = NULL;
	SPF_errcode_t err;

	*resp_r = SPF_response_new(req);
	if (*resp_r == NULL)
		return SPF_E_NO_MEMORY;
	req->cur_dom = req->use_helo ? req->helo_dom : req->env_from_dp;
	err = SPF_server_get_record(req->spf_server, req, *resp_r, &record);
	if (err != SPF_E_SUCCESS) {
		if (record != NULL)
			SPF_record_free(record);
		return err;
	}
	(*resp_r)->spf_record_exp = record; /* for exp= while interpreting */
	err = SPF_record_interpret(record, req, *resp_r, 0);
	(*resp_r)->spf_record_exp = NULL;
	SPF_record_free(record);
	return err;
}

/* query - query_mailfrom; -1 when libspf2 gave up with an
 * internal error (see the head comment: *resp_r is then abandoned) */
static int query(SPF_request_t *req, SPF_response_t **resp_r, SPF_errcode_t *err_r)
{
	sigjmp_buf escape;

	*resp_r = NULL;
	if (sigsetjmp(escape, 0) != 0)
		return -1; /* libspf2_error cleared check_state.escape */
	check_state.escape = &escape;
	*err_r = query_mailfrom(req, resp_r);
	check_state.escape = NULL;
	return 0;
}

/* start_check - reset this thread's per-check state */
static void start_check(const char *client_ip)
{
	memset(&check_state, 0, sizeof(check_state));
	clock_gettime(CLOCK_MONOTONIC, &check_state.start);
	/* the order libspf2's request takes them in (run_check) */
	if (inet_pton(AF_INET, client_ip, check_state.client) == 1)
		check_state.client_af = AF_INET;
	else if (inet_pton(AF_INET6, client_ip, check_state.client) == 1)
		check_state.client_af = AF_INET6;
}

/* set_result - fill out from libspf2's response to one query */
static void set_result(struct spf_engine *e, SPF_response_t *resp, SPF_errcode_t err,
		       struct spf_outcome *out)
{
	char reason[160];

	reason[0] = '\0';
	out->result = map_result(SPF_response_result(resp));
	/* libspf2 1.2.10 leaves the result "invalid" when fetching the
	 * domain's own record fails (SPF_request_query_record): a temporary
	 * DNS failure there is temperror (RFC 7208 4.4), no record is none. */
	if (SPF_response_result(resp) == SPF_RESULT_INVALID) {
		if (err == SPF_E_DNS_ERROR)
			out->result = SPF_RES_TEMPERROR;
		else if (err == SPF_E_NOT_SPF)
			out->result = compile_error(resp, reason, sizeof(reason)) ? SPF_RES_PERMERROR
										  : SPF_RES_NONE;
	}
	if (reason[0] == '\0' && err != SPF_E_SUCCESS && out->result != SPF_RES_PASS)
		snprintf(reason, sizeof(reason), "%s", SPF_strerror(err));
	if (reason[0] == '\0')
		snprintf(reason, sizeof(reason), "%s", SPF_strreason(SPF_response_reason(resp)));
	if (check_state.timed_out) {
		/* every lookup after the bound failed; whatever libspf2 made
		 * of that (it ignores failures while validating %{p}), the
		 * check did not finish */
		out->result = SPF_RES_TEMPERROR;
		snprintf(reason, sizeof(reason), "SPF check not done within %ld s", e->timeout);
	} else if (check_state.over_limit != NULL) {
		out->result = SPF_RES_PERMERROR;
		snprintf(reason, sizeof(reason), "%s", check_state.over_limit);
	} else if (check_state.voids > SPF_MAX_VOID_LOOKUPS &&
		   out->result != SPF_RES_TEMPERROR && out->result != SPF_RES_PERMERROR) {
		out->result = SPF_RES_PERMERROR;
		snprintf(reason, sizeof(reason), "more than %d void DNS lookups (RFC 7208 4.6.4)",
			 SPF_MAX_VOID_LOOKUPS);
	} else {
		out->explanation = copy_text(SPF_response_get_explanation(resp));
		out->received_spf = copy_text(SPF_response_get_received_spf_value(resp));
	}
	out->result_name = spf_result_name(out->result);
	free(out->reason);
	out->reason = copy_text(reason);
	if (out->reason == NULL)
		out->reason = xstrdup("");
}

/* run_check - one evaluation; sender NULL: the HELO identity */
static int run_check(struct spf_engine *e, const char *client_ip, const char *helo,
		     const char *sender, struct spf_outcome *out)
{
	SPF_server_t *server;
	SPF_request_t *req;
	SPF_response_t *resp = NULL;
	SPF_errcode_t err = SPF_E_SUCCESS;

	memset(out, 0, sizeof(*out));
	set_outcome(out, SPF_RES_TEMPERROR, NULL);
	if (check_inputs(helo, sender, out) < 0)
		return 0;
	if (client_ip == NULL)
		client_ip = "";
	if ((server = thread_server(e)) == NULL || (req = SPF_request_new(server)) == NULL) {
		set_outcome(out, SPF_RES_TEMPERROR, "cannot set up libspf2");
		return 0;
	}
	if (SPF_request_set_ipv4_str(req, client_ip) != SPF_E_SUCCESS &&
	    SPF_request_set_ipv6_str(req, client_ip) != SPF_E_SUCCESS) {
		SPF_request_free(req);
		set_outcome(out, SPF_RES_PERMERROR, "client address is not an IP address");
		return -1;
	}
	if (helo != NULL && *helo != '\0')
		SPF_request_set_helo_dom(req, helo);
	/* "" with a HELO name set: postmaster@HELO (RFC 7208 2.4) */
	if (SPF_request_set_env_from(req, sender != NULL ? sender : helo != NULL ? helo : "") !=
	    0) {
		SPF_request_free(req);
		set_outcome(out, SPF_RES_NONE, "no usable identity to check");
		return 0;
	}
	start_check(client_ip);
	check_state.req = req;
	if (query(req, &resp, &err) < 0) {
		log_error("spf libspf2 gave up on this check (its memory is not freed)");
		set_outcome(out, SPF_RES_TEMPERROR, "internal error in libspf2");
	} else if (resp == NULL) {
		set_outcome(out, SPF_RES_TEMPERROR, SPF_strerror(err));
	} else {
		set_result(e, resp, err, out);
		SPF_response_free(resp);
	}
	SPF_request_free(req);
	return 0;
}

int spf_check(struct spf_engine *e, const char *client_ip, const char *helo,
	      const char *sender, struct spf_outcome *out)
{
	return run_check(e, client_ip, helo, sender != NULL ? sender : "", out);
}

int spf_check_helo(struct spf_engine *e, const char *client_ip, const char *helo,
		   struct spf_outcome *out)
{
	return run_check(e, client_ip, helo, NULL, out);
}
