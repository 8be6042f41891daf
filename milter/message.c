/* message - headers and end of message: the From and Sender headers
 * (spec rule 3), spoofing of local domains in From (rule 4), holding,
 * and the per-message log line */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/dkim.h"
#include "milter/metrics.h"
#include "milter/session.h"
#include "policy/address.h"
#include "policy/mailbox.h"
#include "policy/senders.h"

/* Longest header value kept for checking; a longer From is refused as
 * unparseable rather than cut. */
#define HEADER_VALUE_MAX 65536

static void keep(char **v, size_t *n, const char *value)
{
	if (*n < MSG_MAX_HEADERS)
		v[*n] = strlen(value) > HEADER_VALUE_MAX ? xstrdup("\x01too long")
							 : xstrdup(value);
	(*n)++;
}

/* claims_our_id - does an Authentication-Results value start with our
 * authserv-id (RFC 8601 2.2: CFWS, then the id, then ';' or CFWS)? */
static bool claims_our_id(const char *value, const char *ours)
{
	char id[256];
	size_t n = 0;
	int depth = 0;

	/* CFWS: white space and (nested) comments */
	for (; *value; value++) {
		if (*value == '(')
			depth++;
		else if (*value == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !strchr(" \t\r\n", *value))
			break;
	}
	/* the id: a token or a quoted-string (RFC 8601 2.2: value) */
	if (*value == '"') {
		for (value++; *value && *value != '"' && n < sizeof(id) - 1; value++) {
			if (*value == '\\' && value[1])
				value++;
			id[n++] = *value;
		}
	} else {
		for (; *value && !strchr(" \t\r\n;(", *value) && n < sizeof(id) - 1; value++)
			id[n++] = *value;
	}
	id[n] = '\0';
	if (n > 0 && id[n - 1] == '.') /* a trailing dot names the same host */
		id[--n] = '\0';
	return strcasecmp(id, ours) == 0;
}

/* keep_header - every header, in order, for DKIM (bounded) */
static void keep_header(struct msg *m, const char *name, const char *value)
{
	size_t size = strlen(name) + strlen(value);

	if (m->headers_overflow || m->nheaders >= MSG_MAX_ALL_HEADERS ||
	    m->header_bytes + size > MSG_MAX_HEADER_BYTES) {
		m->headers_overflow = true;
		return;
	}
	m->headers = xrealloc(m->headers, (m->nheaders + 1) * sizeof(*m->headers));
	m->headers[m->nheaders].name = xstrdup(name);
	m->headers[m->nheaders].value = xstrdup(value);
	m->nheaders++;
	m->header_bytes += size;
}

enum mlfi_status session_header(struct conn *c, const char *name, const char *value)
{
	struct msg *m = c->msg;

	if (m == NULL || name == NULL || value == NULL)
		return MLFI_CONTINUE;
	keep_header(m, name, value);
	if (strcasecmp(name, "From") == 0) {
		keep(m->from, &m->n_from, value);
	} else if (strcasecmp(name, "Sender") == 0) {
		keep(m->sender_hdr, &m->n_sender_hdr, value);
	} else if (c->cfg->milter.login_header[0] != '\0' &&
		   strcasecmp(name, c->cfg->milter.login_header) == 0) {
		m->n_login_hdr++;
	} else if (strcasecmp(name, "Authentication-Results") == 0) {
		m->n_ar++;
		if (m->n_ar_ours < MSG_MAX_ALL_HEADERS &&
		    claims_our_id(value, c->cfg->dkim.authserv_id)) {
			m->ar_ours = xrealloc(m->ar_ours, (m->n_ar_ours + 1) * sizeof(*m->ar_ours));
			m->ar_ours[m->n_ar_ours++] = m->n_ar;
		}
	}
	return MLFI_CONTINUE;
}

/* check_one_header - the From (or Sender) values of m: exactly one
 * header, one mailbox, no second address in the display name, and an
 * address the identity may use. Returns the stage status; *passed_r says
 * whether no rule matched at all (a "log" or dry-run match still lets the
 * message go on, but it is not authorized: it is never signed). */
static enum mlfi_status check_one_header(struct conn *c, const struct mlfi_io *io,
					 const char *hname, char **values, size_t n,
					 bool *passed_r)
{
	struct msg *m = c->msg;
	struct mailbox_list l = {0};
	const char *err;
	char text[700];
	enum mlfi_status st = MLFI_CONTINUE;

	*passed_r = false;
	if (n != 1) {
		if (n == 0)
			snprintf(text, sizeof(text), "message has no %s header; exactly one is required",
				 hname);
		else
			snprintf(text, sizeof(text), "message has %zu %s headers; exactly one is required",
				 n, hname);
		return decide(c, io, RULE_HEADER_FROM, text);
	}
	if (values[0][0] == '\x01' || mailbox_list_parse(values[0], &l, &err) < 0) {
		snprintf(text, sizeof(text), "%s header cannot be parsed: %s", hname,
			 values[0][0] == '\x01' ? "too long" : err);
		return decide(c, io, RULE_HEADER_FROM, text);
	}
	if (l.n != 1) {
		snprintf(text, sizeof(text), "%s header holds %zu mailboxes; exactly one is required",
			 hname, l.n);
		st = decide(c, io, RULE_HEADER_FROM, text);
	} else if (mailbox_display_hides_address(&l.v[0])) {
		snprintf(text, sizeof(text),
			 "%s header display name holds an address other than <%.300s>", hname,
			 l.v[0].addr);
		st = decide(c, io, RULE_HEADER_FROM, text);
	} else if (m->login != NULL &&
		   !sender_map_allows(c->cfg->sender_map, m->login, l.v[0].addr)) {
		snprintf(text, sizeof(text), "%.256s may not send as <%.300s> (header %s)", m->login,
			 l.v[0].addr, hname);
		st = decide(c, io, RULE_HEADER_FROM, text);
	} else if (m->login == NULL &&
		   !domain_in_list(l.v[0].domain, c->cfg->local, c->cfg->nlocal)) {
		snprintf(text, sizeof(text), "header %s <%.300s> is not in a local domain", hname,
			 l.v[0].addr);
		st = decide(c, io, RULE_HEADER_FROM, text);
	}
	else
		*passed_r = true;
	mailbox_list_free(&l);
	return st;
}

/* raw_names_local - does the raw text of a From value hold "@D" for a
 * local domain D (a label boundary after it)? For values the parser
 * cannot read: those must not slip past the spoofing rule. */
static bool raw_names_local(const struct weir_config *cfg, const char *v)
{
	for (const char *at = strchr(v, '@'); at; at = strchr(at + 1, '@')) {
		char dom[256];
		size_t n = 0;

		for (const char *p = at + 1; *p && n < sizeof(dom) - 1; p++) {
			char ch = *p;
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
				break;
			dom[n++] = ch;
		}
		while (n > 0 && dom[n - 1] == '.')
			n--;
		dom[n] = '\0';
		if (n > 0 && domain_in_list(dom, cfg->local, cfg->nlocal))
			return true;
	}
	return false;
}

/* check_spoofing - an outside client's From in one of our domains. Every
 * From header counts (all are kept in m->headers); one the parser cannot
 * read is scanned raw, and a message whose headers were too many to keep
 * cannot be cleared at all. */
static enum mlfi_status check_spoofing(struct conn *c, const struct mlfi_io *io)
{
	struct msg *m = c->msg;
	enum mlfi_status st = MLFI_CONTINUE;
	char text[600];

	for (size_t i = 0; i < m->nheaders && st == MLFI_CONTINUE; i++) {
		struct mailbox_list l = {0};
		const char *err, *v = m->headers[i].value;

		if (strcasecmp(m->headers[i].name, "From") != 0)
			continue;
		if (mailbox_list_parse(v, &l, &err) < 0) {
			if (raw_names_local(c->cfg, v)) {
				snprintf(text, sizeof(text),
					 "the From header names a local domain: authenticate with "
					 "SMTP AUTH to send as it");
				st = decide(c, io, RULE_SPOOFING, text);
			}
			continue;
		}
		for (size_t j = 0; j < l.n && st == MLFI_CONTINUE; j++) {
			if (!domain_in_list(l.v[j].domain, c->cfg->local, c->cfg->nlocal))
				continue;
			snprintf(text, sizeof(text),
				 "<%.300s> is a local address: authenticate with SMTP AUTH to send as it",
				 l.v[j].addr);
			st = decide(c, io, RULE_SPOOFING, text);
		}
		mailbox_list_free(&l);
	}
	if (st == MLFI_CONTINUE && m->headers_overflow)
		st = decide(c, io, RULE_SPOOFING,
			    "too many or too large headers to check the From header");
	return st;
}

/* check_headers - rule 3 for logins and (when asked) trusted networks,
 * rule 4 for outside clients */
static enum mlfi_status check_headers(struct conn *c, const struct mlfi_io *io)
{
	struct msg *m = c->msg;
	enum mlfi_status st;
	bool from_ok = false, sender_ok = true;

	if (m->identity == ID_OUTSIDE)
		return check_spoofing(c, io);
	if (m->identity == ID_TRUSTED && c->cfg->policy.trusted_header_from == 0)
		return MLFI_CONTINUE;
	st = check_one_header(c, io, "From", m->from, m->n_from, &from_ok);
	if (st == MLFI_CONTINUE && m->n_sender_hdr > 0)
		st = check_one_header(c, io, "Sender", m->sender_hdr, m->n_sender_hdr, &sender_ok);
	m->from_ok = from_ok && sender_ok;
	return st;
}

enum mlfi_status session_eoh(struct conn *c, const struct mlfi_io *io)
{
	struct msg *m = c->msg;
	enum mlfi_status st;

	if (m == NULL)
		return MLFI_CONTINUE;
	if (m->queue_id == NULL) {
		const char *v = io->getsymval(io->handle, "i");
		m->queue_id = v && v[0] ? xstrdup(v) : NULL;
	}
	st = check_headers(c, io);
	if (st == MLFI_REJECT || st == MLFI_TEMPFAIL) {
		log_message(c, st == MLFI_REJECT ? "reject" : "tempfail", "header refused", NULL);
		msg_free(c->msg);
		c->msg = NULL;
		return st;
	}
	dkim_msg_start(c, m);
	return MLFI_CONTINUE;
}

enum mlfi_status session_body(struct conn *c, const unsigned char *data, size_t len)
{
	if (c->msg != NULL && c->msg->dkim != NULL)
		dkim_msg_body(c->msg, data, len);
	return MLFI_CONTINUE;
}

/* add_auth_headers - mail from outside: remove Authentication-Results
 * headers that forge our authserv-id, then add ours (the SPF and DKIM
 * results, RFC 8601: "id; method=result ...;\n\tmethod=...") and the
 * Received-SPF headers, all at the top. dkim_ar: the dkim= entries, one
 * per line, or NULL. */
static void add_auth_headers(struct conn *c, const struct mlfi_io *io, struct msg *m,
			     const char *dkim_ar, struct kvline *kv)
{
	char *ar = xasprintf("%s%s", c->leadspc ? " " : "", c->cfg->dkim.authserv_id), *tmp;
	size_t n = 0;

	/* Forgeries of our authserv-id go, last first so indexes hold. */
	for (size_t i = m->n_ar_ours; i > 0; i--)
		if (io->delheader(io->handle, "Authentication-Results", (int)m->ar_ours[i - 1]) < 0)
			log_warning("conn=%lu could not remove a forged Authentication-Results",
				    c->id);
	if (m->n_ar_ours > 0)
		kv_addf(kv, "ar_removed", "%zu", m->n_ar_ours);
	/* Received-SPF below Authentication-Results: inserted first */
	for (size_t i = m->n_spf; c->cfg->spf.received_spf && i > 0; i--) {
		char *v = xasprintf("%s%s", c->leadspc ? " " : "", m->spf_received[i - 1]);
		if (io->insheader(io->handle, 0, "Received-SPF", v) < 0)
			log_warning("conn=%lu could not add Received-SPF", c->id);
		free(v);
	}
	for (size_t i = 0; i < m->n_spf; i++, n++) {
		tmp = xasprintf("%s%s%s", ar, n ? ";\n\t" : "; ", m->spf_ar[i]);
		free(ar);
		ar = tmp;
	}
	for (const char *p = dkim_ar; p != NULL && *p; n++) {
		size_t len = strcspn(p, "\n");
		tmp = xasprintf("%s%s%.*s", ar, n ? ";\n\t" : "; ", (int)len, p);
		free(ar);
		ar = tmp;
		p += len + (p[len] == '\n');
	}
	if (n > 0 && io->insheader(io->handle, 0, "Authentication-Results", ar) < 0)
		log_warning("conn=%lu could not add Authentication-Results", c->id);
	free(ar);
}

/* login_header - milter.login_header: whatever the client sent under
 * that name goes (last first, so indexes hold); authenticated mail gets
 * the login, for weir-agent's routes by login */
static void login_header(struct conn *c, const struct mlfi_io *io, struct msg *m)
{
	const char *name = c->cfg->milter.login_header;
	char *v;

	if (name[0] == '\0')
		return;
	for (size_t i = m->n_login_hdr; i > 0; i--)
		if (io->delheader(io->handle, name, (int)i) < 0)
			log_warning("conn=%lu could not remove a %s header", c->id, name);
	if (m->login == NULL ||
	    (m->identity != ID_AUTHENTICATED && m->identity != ID_CERTIFICATE))
		return;
	v = xasprintf("%s%s", c->leadspc ? " " : "", m->login);
	if (io->addheader(io->handle, name, v) < 0)
		log_warning("conn=%lu could not add the %s header", c->id, name);
	free(v);
}

enum mlfi_status session_eom(struct conn *c, const struct mlfi_io *io)
{
	struct msg *m = c->msg;
	enum mlfi_status st;
	const char *decision = "accept";
	struct kvline kv;
	char *dkim_ar = NULL;

	if (m == NULL)
		return MLFI_CONTINUE;
	kv_init(&kv);
	st = dkim_msg_finish(c, io, m, &kv, &dkim_ar);
	if (m->identity == ID_OUTSIDE)
		add_auth_headers(c, io, m, dkim_ar, &kv);
	free(dkim_ar);
	login_header(c, io, m);
	if (st == MLFI_TEMPFAIL) {
		decision = "tempfail";
		m->refused_by = mm_reason("dkim"); /* the only check at EOM that refuses */
	} else if (m->hold != NULL) {
		if (io->quarantine(io->handle, m->hold) == 0) {
			decision = "hold";
		} else {
			/* Holding failed: never let it through unchecked. */
			log_error("conn=%lu quarantine failed; answering 451 4.3.0", c->id);
			io->setreply(io->handle, "451", "4.3.0",
				     "weir-milter could not hold the message, try again later");
			decision = "tempfail";
			m->refused_by = mm_reason("internal");
			st = MLFI_TEMPFAIL;
		}
	}
	log_message(c, decision, m->hold && strcmp(decision, "hold") == 0 ? m->hold : NULL,
		    kv_str(&kv));
	kv_free(&kv);
	msg_free(c->msg);
	c->msg = NULL;
	return st;
}
