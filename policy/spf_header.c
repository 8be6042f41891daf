/* spf_header - the Received-SPF header (RFC 7208 9.1) and the spf= entry
 * of Authentication-Results (RFC 8601) for an SPF outcome
 *
 * Everything here is built from outside input (the client's MAIL FROM
 * and HELO, the domain's DNS): values are quoted unless they are plain
 * dot-atoms or tokens, comments have their parentheses turned into
 * brackets and backslashes escaped, control characters become '?', and a value too long to be a
 * real address or host name is left out rather than cut, so no header
 * weir writes can be broken or carry a second header. */
#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strbuf.h"
#include "policy/spf.h"

/* Longest value written: a 64-octet local part, '@' and a 253-octet
 * domain, with room for quoting */
#define VALUE_MAX 330
/* Longest reason or explanation text written into a comment */
#define COMMENT_MAX 200

/* RFC 5322 atext */
static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_dot_atom - RFC 5322 dot-atom-text */
static bool is_dot_atom(const char *s)
{
	bool label = false;

	for (; *s; s++) {
		if (*s == '.') {
			if (!label)
				return false;
			label = false;
		} else if (is_atext((unsigned char)*s)) {
			label = true;
		} else {
			return false;
		}
	}
	return label;
}

/* is_ar_value - RFC 8601 propspec value without quoting: a dot-atom,
 * or local-part@domain of dot-atoms */
static bool is_ar_value(const char *s)
{
	const char *at = strrchr(s, '@');
	char local[VALUE_MAX];

	if (at == NULL)
		return is_dot_atom(s);
	if ((size_t)(at - s) >= sizeof(local))
		return false;
	memcpy(local, s, (size_t)(at - s));
	local[at - s] = '\0';
	return (local[0] == '\0' || is_dot_atom(local)) && is_dot_atom(at + 1);
}

/* safe_char - a byte as it may appear in a header: controls become '?';
 * UTF-8 is kept (a message with such an address came with SMTPUTF8) */
static char safe_char(unsigned char c)
{
	return c < 0x20 || c == 0x7f ? '?' : (char)c;
}

/* put_quoted - s as a quoted-string */
static void put_quoted(struct strbuf *b, const char *s)
{
	strbuf_add(b, "\"", 1);
	for (; *s; s++) {
		char c = safe_char((unsigned char)*s);
		if (c == '"' || c == '\\')
			strbuf_add(b, "\\", 1);
		strbuf_add(b, &c, 1);
	}
	strbuf_add(b, "\"", 1);
}

/* put_comment_text - s inside a comment, at most max bytes of it.
 * Parentheses become brackets rather than quoted-pairs: RFC 5322 allows
 * nested and escaped ones, but many header parsers do not. */
static void put_comment_text(struct strbuf *b, const char *s, size_t max)
{
	size_t n = 0;

	for (; *s && n < max; s++, n++) {
		char c = safe_char((unsigned char)*s);
		if (c == '(' || c == ')')
			c = c == '(' ? '[' : ']';
		if (c == '\\')
			strbuf_add(b, "\\", 1);
		strbuf_add(b, &c, 1);
	}
	if (*s)
		strbuf_adds(b, "...");
}

/* put_pair - "key=value; " with value a dot-atom or quoted; a missing,
 * empty or over-long value is left out */
static void put_pair(struct strbuf *b, const char *key, const char *value)
{
	if (value == NULL || value[0] == '\0' || strlen(value) > VALUE_MAX)
		return;
	strbuf_adds(b, "\n\t");
	strbuf_adds(b, key);
	strbuf_add(b, "=", 1);
	if (is_dot_atom(value))
		strbuf_adds(b, value);
	else
		put_quoted(b, value);
	strbuf_add(b, ";", 1);
}

const char *spf_domain_of(const char *sender, const char *helo, char *out, size_t size)
{
	const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
	const char *d = at != NULL ? at + 1 : sender != NULL && sender[0] ? sender : helo;

	snprintf(out, size, "%s", d != NULL ? d : "");
	return out;
}

/* who - what the comment says the identity is: "domain of ADDR" */
static void put_who(struct strbuf *b, const char *sender, const char *helo, bool helo_identity)
{
	const char *id = helo_identity ? helo : sender;

	strbuf_adds(b, helo_identity ? "domain of postmaster@" : "domain of ");
	put_comment_text(b, id != NULL ? id : "", VALUE_MAX);
}

char *spf_received_value(const struct spf_outcome *o, const char *receiver,
			 const char *client_ip, const char *helo, const char *sender,
			 const char *identity)
{
	bool no_sender = sender == NULL || sender[0] == '\0';
	bool helo_id = no_sender || strcmp(identity, "helo") == 0;
	const char *ip = client_ip != NULL ? client_ip : "";
	struct strbuf b = {0};

	strbuf_adds(&b, spf_result_name(o->result));
	strbuf_adds(&b, " (");
	if (receiver != NULL && receiver[0] != '\0') {
		put_comment_text(&b, receiver, VALUE_MAX);
		strbuf_adds(&b, ": ");
	}
	switch (o->result) {
	case SPF_RES_PASS:
		put_who(&b, sender, helo, helo_id);
		strbuf_adds(&b, " designates ");
		put_comment_text(&b, ip, 64);
		strbuf_adds(&b, " as permitted sender");
		break;
	case SPF_RES_FAIL:
	case SPF_RES_SOFTFAIL:
		if (o->result == SPF_RES_SOFTFAIL)
			strbuf_adds(&b, "transitioning ");
		put_who(&b, sender, helo, helo_id);
		strbuf_adds(&b, " does not designate ");
		put_comment_text(&b, ip, 64);
		strbuf_adds(&b, " as permitted sender");
		break;
	case SPF_RES_NEUTRAL:
		put_comment_text(&b, ip, 64);
		strbuf_adds(&b, " is neither permitted nor denied by ");
		put_who(&b, sender, helo, helo_id);
		break;
	case SPF_RES_NONE:
		put_who(&b, sender, helo, helo_id);
		strbuf_adds(&b, " does not designate permitted sender hosts");
		break;
	case SPF_RES_TEMPERROR:
	case SPF_RES_PERMERROR:
		strbuf_adds(&b, o->result == SPF_RES_TEMPERROR ? "temporary" : "permanent");
		strbuf_adds(&b, " error in processing ");
		put_who(&b, sender, helo, helo_id);
		if (o->reason != NULL && o->reason[0] != '\0') {
			strbuf_adds(&b, ": ");
			put_comment_text(&b, o->reason, COMMENT_MAX);
		}
		break;
	}
	strbuf_adds(&b, ")");
	put_pair(&b, "client-ip", ip);
	if (!no_sender)
		put_pair(&b, "envelope-from", sender);
	put_pair(&b, "helo", helo);
	put_pair(&b, "receiver", receiver);
	put_pair(&b, "identity", identity);
	return b.s;
}

char *spf_ar_entry(const struct spf_outcome *o, const char *helo, const char *sender,
		   const char *identity)
{
	bool helo_id = strcmp(identity, "helo") == 0 || sender == NULL || sender[0] == '\0';
	const char *v = helo_id ? helo : sender;
	struct strbuf b = {0};

	strbuf_adds(&b, "spf=");
	strbuf_adds(&b, spf_result_name(o->result));
	if ((o->result == SPF_RES_PERMERROR || o->result == SPF_RES_TEMPERROR) &&
	    o->reason != NULL && o->reason[0] != '\0') {
		strbuf_adds(&b, " (");
		put_comment_text(&b, o->reason, COMMENT_MAX);
		strbuf_adds(&b, ")");
	}
	if (v != NULL && v[0] != '\0' && strlen(v) <= VALUE_MAX) {
		strbuf_adds(&b, helo_id ? " smtp.helo=" : " smtp.mailfrom=");
		if (is_ar_value(v))
			strbuf_adds(&b, v);
		else
			put_quoted(&b, v);
	}
	return b.s;
}
