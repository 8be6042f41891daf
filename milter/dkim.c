/* dkim - DKIM for weir-milter: sign what leaves, verify what arrives
 *
 * Signing: a message is signed only when its sender was authorized for
 * the header From (rule 3 passed without a match, or a trusted network
 * with a From in the signing table); one signature per key of the From
 * domain (or of dkim.fallback_domain). Verification: mail from outside
 * clients, every signature up to dkim.max_signatures, keys fetched
 * through weir's own resolver with a time bound; the result goes into
 * one Authentication-Results header, and headers that forge weir's
 * authserv-id are removed.
 *
 * libopendkim's options (signed and oversigned headers, x=, timeouts)
 * live in a DKIM_LIB, so each configuration gets its own, built the
 * first time a message needs it and freed with the configuration. */
#include "autoconf.h"

#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/dns_wait.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/dkim.h"
#include "milter/metrics.h"
#include "milter/session.h"
#include "milter/state.h"
#include "policy/address.h"
#include "policy/dkim_keys.h"
#include "policy/mailbox.h"

#define MAX_SIGN_KEYS 8

/* What a configuration needs for DKIM; see config.h daemon_state. */
struct dkim_state {
	DKIM_LIB *lib;
	struct dns_wait *dns; /* not owned (milter_state) */
	const char **signhdrs;
	const char **oversign;
	long max_signatures;
};

struct dkim_msg {
	struct dkim_state *st;
	DKIM *sign[MAX_SIGN_KEYS];
	const struct dkim_key *keys[MAX_SIGN_KEYS];
	size_t nsign;
	char *sign_domain;
	DKIM *verify;
	bool verify_nosig;
	const char *unverified_reason; /* outside mail not verified: why */
	char *from_domain;
	const char *unsigned_reason;
};

static const char **strlist_array(const struct strlist *l)
{
	const char **v = xcalloc(l->n + 1, sizeof(*v));

	for (size_t i = 0; i < l->n; i++)
		v[i] = l->v[i];
	return v;
}

void dkim_state_free(struct dkim_state *st)
{
	if (st == NULL)
		return;
	if (st->lib)
		dkim_close(st->lib);
	free(st->signhdrs);
	free(st->oversign);
	free(st);
}

/* key_lookup - libopendkim asks for selector._domainkey.domain */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkim_state *st = dkim_get_user_context(dkim);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	char *name, **recs;
	size_t n;
	enum dns_wait_result r;

	if (st == NULL || st->dns == NULL || sel == NULL || dom == NULL)
		return DKIM_CBSTAT_ERROR;
	name = xasprintf("%s._domainkey.%s", sel, dom);
	r = dns_wait_txt(st->dns, name, &recs, &n);
	free(name);
	if (r != DNS_WAIT_OK) {
		dns_records_free(recs, n);
		return r == DNS_WAIT_NONE ? DKIM_CBSTAT_NOTFOUND : DKIM_CBSTAT_TRYAGAIN;
	}
	snprintf((char *)buf, buflen, "%s", recs[0]);
	dns_records_free(recs, n);
	return DKIM_CBSTAT_CONTINUE;
}

/* prescreen - verify at most max_signatures signatures */
static DKIM_CBSTAT prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	struct dkim_state *st = dkim_get_user_context(dkim);

	for (int i = 0; st != NULL && i < nsigs; i++)
		if (i >= st->max_signatures)
			dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

struct dkim_state *dkim_state_new(struct weir_config *cfg, struct dns_wait *dns)
{
	struct dkim_state *st = xcalloc(1, sizeof(*st));
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
	unsigned int timeout = (unsigned int)cfg->resolver_timeout;
	uint64_t ttl = (uint64_t)cfg->dkim.expire;

	st->max_signatures = cfg->dkim.max_signatures;
	st->lib = dkim_init(NULL, NULL);
	st->dns = dns;
	if (st->lib == NULL) {
		log_error("DKIM: dkim_init failed; messages are neither signed nor verified");
		return st;
	}
	st->signhdrs = strlist_array(&cfg->dkim.headers);
	st->oversign = strlist_array(&cfg->dkim.oversign);
	dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags));
	dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT, &timeout, sizeof(timeout));
	dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, st->signhdrs,
		     sizeof(st->signhdrs));
	dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, st->oversign,
		     sizeof(st->oversign));
	if (ttl > 0)
		dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNATURETTL, &ttl, sizeof(ttl));
	dkim_set_key_lookup(st->lib, key_lookup);
	dkim_set_prescreen(st->lib, prescreen);
	return st;
}


/* from_domain - the domain of the one mailbox of the one From header;
 * NULL (with *why_r) when there is not exactly one, or it hides another */
static char *from_domain(const struct msg *m, const char **why_r)
{
	struct mailbox_list l = {0};
	const char *err;
	char *d = NULL;

	if (m->n_from != 1 || m->from[0][0] == '\x01' ||
	    mailbox_list_parse(m->from[0], &l, &err) < 0 || l.n != 1 ||
	    mailbox_display_hides_address(&l.v[0]) || l.v[0].domain == NULL ||
	    l.v[0].domain[0] == '[') {
		*why_r = "From header missing or ambiguous";
	} else {
		d = xstrdup(l.v[0].domain);
	}
	mailbox_list_free(&l);
	return d;
}

static int canon(int which, int setting)
{
	/* relaxed/relaxed, simple/simple, relaxed/simple, simple/relaxed */
	static const int head[] = {DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED,
				   DKIM_CANON_SIMPLE};
	static const int body[] = {DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE,
				   DKIM_CANON_RELAXED};
	return which == 0 ? head[setting] : body[setting];
}

/* header_line - "Name:value" as it was on the wire: the MTA hands folded
 * values over with bare LF, libopendkim hashes what it is given (its
 * FIXCRLF flag mends only the body), so every LF gets its CR back.
 * Caller frees. */
static char *header_line(const struct conn *c, const struct header *hd)
{
	size_t n = strlen(hd->value), o;
	char *line = xmalloc(strlen(hd->name) + 2 * n + 3);

	o = (size_t)sprintf(line, "%s:%s", hd->name, c->leadspc ? "" : " ");
	for (size_t i = 0; i < n; i++) {
		if (hd->value[i] == '\n' && (i == 0 || hd->value[i - 1] != '\r'))
			line[o++] = '\r';
		line[o++] = hd->value[i];
	}
	line[o] = '\0';
	return line;
}

/* feed_headers - the stored headers into handle h, then end of headers */
static DKIM_STAT feed_headers(const struct conn *c, const struct msg *m, DKIM *h)
{
	for (size_t i = 0; i < m->nheaders; i++) {
		char *line = header_line(c, &m->headers[i]);
		DKIM_STAT s = dkim_header(h, (u_char *)line, strlen(line));
		free(line);
		if (s != DKIM_STAT_OK)
			return s;
	}
	return dkim_eoh(h);
}

/* start_signing - one handle per key of the signing domain */
static void start_signing(struct conn *c, struct msg *m, struct dkim_msg *d)
{
	const struct weir_config *cfg = c->cfg;
	const struct dkim_domain *dom;
	const char *why = NULL;

	d->from_domain = from_domain(m, &why);
	if (d->from_domain == NULL) {
		d->unsigned_reason = why;
		return;
	}
	if (m->identity != ID_TRUSTED && !m->from_ok) {
		d->unsigned_reason = "From not allowed for login";
		return;
	}
	dom = dkim_domain_find(cfg->dkim.domains, cfg->dkim.ndomains, d->from_domain);
	if (dom == NULL && cfg->dkim.fallback_domain[0] != '\0')
		dom = dkim_domain_find(cfg->dkim.domains, cfg->dkim.ndomains,
				       cfg->dkim.fallback_domain);
	if (dom == NULL) {
		d->unsigned_reason = "no key for the From domain";
		return;
	}
	for (size_t i = 0; i < dom->nkeys && d->nsign < MAX_SIGN_KEYS; i++) {
		const struct dkim_key *k = &dom->keys[i];
		DKIM_STAT s;
		DKIM *h = dkim_sign(d->st->lib, (u_char *)(m->queue_id ? m->queue_id : "NOQUEUE"),
				    NULL, (u_char *)k->pem, (u_char *)k->selector, (u_char *)dom->domain,
				    canon(0, cfg->dkim.canonicalization),
				    canon(1, cfg->dkim.canonicalization),
				    k->alg == DKIM_ALG_ED25519_SHA256 ? DKIM_SIGN_ED25519SHA256
								     : DKIM_SIGN_RSASHA256,
				    -1, &s);
		if (h == NULL || feed_headers(c, m, h) != DKIM_STAT_OK) {
			log_error("conn=%lu queue_id=%s DKIM: cannot sign with %s (selector %s): %s",
				  c->id, m->queue_id ? m->queue_id : "NOQUEUE", k->file, k->selector,
				  h && dkim_geterror(h) ? dkim_geterror(h) : dkim_getresultstr(s));
			if (h)
				dkim_free(h);
			continue;
		}
		/* With simple header canonicalization the signature header is
		 * hashed as libopendkim first writes it, unfolded; it must be
		 * inserted the same way. */
		if (canon(0, cfg->dkim.canonicalization) == DKIM_CANON_SIMPLE)
			dkim_set_margin(h, 0);
		d->keys[d->nsign] = k;
		d->sign[d->nsign++] = h;
	}
	if (d->nsign > 0)
		d->sign_domain = xstrdup(dom->domain);
	else
		d->unsigned_reason = "signing failed";
}

/* start_verifying - one verification handle over the stored headers */
static void start_verifying(struct conn *c, struct msg *m, struct dkim_msg *d)
{
	DKIM_STAT s;
	DKIM *h = dkim_verify(d->st->lib, (u_char *)(m->queue_id ? m->queue_id : "NOQUEUE"), NULL,
			      &s);

	if (h == NULL) {
		log_error("conn=%lu DKIM: cannot start verification: %s", c->id,
			  dkim_getresultstr(s));
		d->unverified_reason = "verification could not start";
		return;
	}
	dkim_set_user_context(h, d->st);
	s = feed_headers(c, m, h);
	if (s == DKIM_STAT_NOSIG)
		d->verify_nosig = true;
	d->verify = h;
}

void dkim_msg_start(struct conn *c, struct msg *m)
{
	struct dkim_msg *d = xcalloc(1, sizeof(*d));

	m->dkim = d;
	d->st = milter_state_of(c->cfg)->dkim;
	if (d->st->lib == NULL) {
		d->unsigned_reason = d->unverified_reason = "DKIM library unavailable";
		return;
	}
	if (m->headers_overflow) {
		d->unsigned_reason = d->unverified_reason = "too many or too large headers";
		return;
	}
	if (m->identity == ID_OUTSIDE) {
		d->unsigned_reason = "identity outside";
		if (c->cfg->dkim.verify)
			start_verifying(c, m, d);
		return;
	}
	start_signing(c, m, d);
}

void dkim_msg_body(struct msg *m, const unsigned char *data, size_t len)
{
	struct dkim_msg *d = m->dkim;

	for (size_t i = 0; i < d->nsign; i++)
		dkim_body(d->sign[i], (u_char *)data, len);
	if (d->verify != NULL && !d->verify_nosig)
		dkim_body(d->verify, (u_char *)data, len);

}

/* sig_result - RFC 8601 result of one verified signature */
static const char *sig_result(DKIM_SIGINFO *sig)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);

	if (flags & DKIM_SIGFLAG_IGNORE)
		return "policy";
	if ((flags & DKIM_SIGFLAG_PASSED) && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH)
		return "pass";
	/* A key lookup that failed for a temporary reason leaves no error of
	 * its own on the signature, only no key. */
	if (err == DKIM_SIGERROR_UNKNOWN && !(flags & DKIM_SIGFLAG_KEYLOADED))
		return "temperror";
	switch (err) {
	case DKIM_SIGERROR_KEYFAIL:
		return "temperror";
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_TOOLARGE_L:
		return "fail";
	default:
		return "permerror";
	}
}

/* sanitize - a tag value as it may appear in a header: printable, no ';' */
static void add_value(struct kvline *out, const char *key, const char *v)
{
	char buf[256];
	size_t j = 0;

	for (size_t i = 0; v && v[i] && j + 1 < sizeof(buf); i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch > ' ' && ch < 0x7f && ch != ';' && ch != '"' && ch != '(' && ch != ')')
			buf[j++] = (char)ch;
	}
	buf[j] = '\0';
	kv_add(out, key, buf);
}

/* finish_verify - the dkim= entries of the Authentication-Results header
 * for outside mail, one per line, into *ar_r (left alone when
 * verification is off) */
static void finish_verify(struct conn *c, struct dkim_msg *d, struct kvline *kv, char **ar_r)
{
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	char *ar = NULL, *tmp;

	if (!d->verify_nosig && d->verify != NULL) {
		dkim_eom(d->verify, NULL);
		if (dkim_getsiglist(d->verify, &sigs, &nsigs) != DKIM_STAT_OK)
			nsigs = 0;
	}
	ar = xstrdup("");
	for (int i = 0; i < nsigs; i++) {
		const char *res = sig_result(sigs[i]);
		struct kvline one;
		unsigned char b[16];
		size_t blen = 9;
		dkim_alg_t alg = DKIM_SIGN_RSASHA256;

		kv_init(&one);
		if (dkim_get_sigsubstring(d->verify, sigs[i], (char *)b, &blen) != DKIM_STAT_OK)
			blen = 0;
		b[blen < sizeof(b) ? blen : sizeof(b) - 1] = '\0';
		dkim_sig_getsignalg(sigs[i], &alg);
		add_value(&one, "header.d", (const char *)dkim_sig_getdomain(sigs[i]));
		add_value(&one, "header.s", (const char *)dkim_sig_getselector(sigs[i]));
		kv_add(&one, "header.a",
		       alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256"
		       : alg == DKIM_SIGN_RSASHA1     ? "rsa-sha1"
						      : "rsa-sha256");
		add_value(&one, "header.b", (const char *)b);
		tmp = xasprintf("%s%sdkim=%s %s", ar, ar[0] ? "\n" : "", res, kv_str(&one));
		free(ar);
		ar = tmp;
		kv_add(kv, "dkim_verify", res);
		add_value(kv, "d", (const char *)dkim_sig_getdomain(sigs[i]));
		add_value(kv, "s", (const char *)dkim_sig_getselector(sigs[i]));
		if (strcmp(res, "pass") != 0)
			log_debug("conn=%lu DKIM signature d=%s s=%s: %s%s", c->id,
				  (const char *)dkim_sig_getdomain(sigs[i]),
				  (const char *)dkim_sig_getselector(sigs[i]),
				  dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i]))
					  ? dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i]))
					  : "key lookup failed",
				  dkim_sig_getbh(sigs[i]) == DKIM_SIGBH_MISMATCH
					  ? " (body hash differs)"
					  : "");
		kv_free(&one);
	}
	if (nsigs == 0 && d->verify == NULL) {
		tmp = xasprintf("dkim=none (not verified: %s)",
				d->unverified_reason ? d->unverified_reason : "off");
		free(ar);
		ar = tmp;
		kv_add(kv, "dkim_verify", "skipped");
	} else if (nsigs == 0) {
		tmp = xstrdup("dkim=none");
		free(ar);
		ar = tmp;
		kv_add(kv, "dkim_verify", "none");
	}
	if (c->cfg->dkim.verify)
		*ar_r = ar;
	else
		free(ar);
}

/* crlf_to_lf - libopendkim folds with CRLF; the MTA wants LF inside
 * header values it is given */
static void crlf_to_lf(char *s)
{
	char *o = s;

	for (; *s; s++)
		if (!(s[0] == '\r' && s[1] == '\n'))
			*o++ = *s;
	*o = '\0';
}

/* finish_signing - insert one DKIM-Signature per handle, in key order */
static size_t finish_signing(struct conn *c, const struct mlfi_io *io, struct msg *m,
			     struct dkim_msg *d, char *selectors, size_t size)
{
	char *values[MAX_SIGN_KEYS] = {0};
	bool ok[MAX_SIGN_KEYS] = {0};
	size_t done = 0, used = 0;

	for (size_t i = 0; i < d->nsign; i++) {
		u_char *hdr = NULL;
		size_t len = 0;
		DKIM_STAT s = dkim_eom(d->sign[i], NULL);

		if (s == DKIM_STAT_OK)
			s = dkim_getsighdr_d(d->sign[i], strlen("DKIM-Signature: "), &hdr, &len);
		if (s != DKIM_STAT_OK) {
			log_error("conn=%lu queue_id=%s DKIM: signing with selector %s failed: %s",
				  c->id, m->queue_id ? m->queue_id : "NOQUEUE", d->keys[i]->selector,
				  dkim_geterror(d->sign[i]) ? dkim_geterror(d->sign[i])
							    : dkim_getresultstr(s));
			continue;
		}
		values[i] = xstrndup((const char *)hdr, len);
		crlf_to_lf(values[i]);
	}
	/* Inserted at the top one by one: the last key first. An MTA that
	 * passes leading whitespace (SMFIP_HDR_LEADSPC) also takes it. */
	for (size_t i = d->nsign; i > 0; i--) {
		char *v;

		if (values[i - 1] == NULL)
			continue;
		v = xasprintf("%s%s", c->leadspc ? " " : "", values[i - 1]);
		free(values[i - 1]);
		values[i - 1] = v;
		if (io->insheader(io->handle, 0, "DKIM-Signature", values[i - 1]) == 0) {
			done++;
			ok[i - 1] = true;
		}
		else
			log_warning("conn=%lu could not add a DKIM-Signature", c->id);
		free(values[i - 1]);
	}
	for (size_t i = 0; i < d->nsign && used < size; i++)
		if (ok[i])
			used += (size_t)snprintf(selectors + used, size - used, "%s%s",
						 used ? "," : "", d->keys[i]->selector);
	return done;
}

/* aligned - relaxed alignment of d= with the From domain */
static bool aligned(const char *from, const char *d)
{
	size_t fl, dl;

	if (from == NULL || d == NULL)
		return false;
	fl = strlen(from);
	dl = strlen(d);
	return strcasecmp(from, d) == 0 ||
	       (fl > dl && from[fl - dl - 1] == '.' && strcasecmp(from + fl - dl, d) == 0);
}

enum mlfi_status dkim_msg_finish(struct conn *c, const struct mlfi_io *io, struct msg *m,
				 struct kvline *kv, char **ar_r)
{
	struct dkim_msg *d = m->dkim;
	char selectors[256] = "";
	size_t signed_n = 0;

	if (d == NULL)
		return MLFI_CONTINUE;
	if (m->identity == ID_OUTSIDE) {
		kv_add(kv, "dkim", "unsigned");
		kv_add(kv, "dkim_reason", "identity outside");
		finish_verify(c, d, kv, ar_r);
		return MLFI_CONTINUE;
	}
	if (d->nsign > 0)
		signed_n = finish_signing(c, io, m, d, selectors, sizeof(selectors));
	if (signed_n > 0) {
		mm_dkim_signed();
		kv_add(kv, "dkim", "signed");
		kv_add(kv, "d", d->sign_domain);
		kv_add(kv, "s", selectors);
	} else {
		kv_add(kv, "dkim", "unsigned");
		kv_add(kv, "dkim_reason", d->unsigned_reason ? d->unsigned_reason : "signing failed");
	}
	if (d->from_domain != NULL && signed_n > 0 && aligned(d->from_domain, d->sign_domain))
		return MLFI_CONTINUE;
	kv_add(kv, "dkim_alignment", "fail");
	if (c->cfg->dkim.alignment == 1) {
		log_warning("queue_id=%s conn=%lu DKIM signature does not align with From domain "
			    "%s",
			    m->queue_id ? m->queue_id : "NOQUEUE", c->id,
			    d->from_domain ? d->from_domain : "(none)");
	} else if (c->cfg->dkim.alignment == 2 && c->cfg->policy.dry_run) {
		kv_add(kv, "dkim_alignment_action", "would tempfail (dry_run)");
	} else if (c->cfg->dkim.alignment == 2) {
		char text[400];
		snprintf(text, sizeof(text),
			 "DKIM signature does not align with From domain <%.200s>: add a key for it",
			 d->from_domain ? d->from_domain : "");
		io->setreply(io->handle, "451", "4.7.1", text);
		return MLFI_TEMPFAIL;
	}
	return MLFI_CONTINUE;
}

void dkim_msg_free(struct dkim_msg *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nsign; i++)
		dkim_free(d->sign[i]);
	if (d->verify)
		dkim_free(d->verify);
	free(d->sign_domain);
	free(d->from_domain);
	free(d);
}
