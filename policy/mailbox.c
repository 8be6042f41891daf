/* mailbox - RFC 5322 From / Sender header values as lists of mailboxes
 *
 * Three passes over a private copy of the value: unfold (RFC 5322 2.2.3),
 * cut into tokens (atoms, quoted strings unescaped in place, domain
 * literals, comments, specials), then parse the address-list grammar of
 * RFC 5322 3.4 over the tokens. Each addr-spec is rebuilt in its plain form
 * and handed to address_parse, so header addresses are canonical exactly as
 * envelope addresses are. Display names are decoded from RFC 2047 encoded
 * words the way mail readers show them: also inside quoted strings and
 * between other characters, which RFC 2047 does not allow but readers do,
 * and which is what a spoofed display name relies on. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/mailbox.h"

enum tok_type { TOK_ATOM, TOK_QUOTED, TOK_LITERAL, TOK_COMMENT, TOK_SPECIAL };

struct token {
	enum tok_type type;
	bool ws_before; /* white space or a comment came before it */
	const char *s;  /* into the working copy: atom, unescaped content of a quoted
	                   string or comment, literal with brackets, special */
	size_t len;
};

struct tokens {
	struct token *v;
	size_t n, alloc;
};

/* is_ctl - ASCII control character (RFC 5234 CTL) */
static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* is_atext - RFC 5322 atext, plus UTF-8 octets (RFC 6532) */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* unfold - copy of value without folding (CRLF or LF before WSP); a line
 * break at the very end is dropped; any other CR or LF, and control
 * characters other than HTAB, are errors. New memory or NULL. */
static char *unfold(const char *value, const char **err_r)
{
	char *out = xmalloc(strlen(value) + 1), *w = out;

	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n') {
			const char *q = p[0] == '\r' && p[1] == '\n' ? p + 1 : p;

			if (q[1] == ' ' || q[1] == '\t' || q[1] == '\0') {
				p = q;
				continue;
			}
			*err_r = "line break without folding white space";
			free(out);
			return NULL;
		}
		if (is_ctl((unsigned char)*p) && *p != '\t') {
			*err_r = "control character in header";
			free(out);
			return NULL;
		}
		*w++ = *p;
	}
	*w = '\0';
	return out;
}

/* scan_quoted - quoted string or comment starting at *pp (the opening '"' or
 * '('); the content is unescaped in place and becomes the token text */
static const char *scan_quoted(char **pp, struct token *tok)
{
	char *p = *pp, *w = p + 1;
	char open = *p, close = open == '"' ? '"' : ')';
	int depth = 1;

	tok->type = open == '"' ? TOK_QUOTED : TOK_COMMENT;
	tok->s = w;
	for (p++;; p++) {
		if (*p == '\0')
			return open == '"' ? "unbalanced quotes" : "unbalanced parentheses";
		if (*p == '\\' && p[1] != '\0') {
			*w++ = *++p;
			continue;
		}
		if (*p == close && --depth == 0)
			break;
		if (open == '(' && *p == '(')
			depth++;
		*w++ = *p;
	}
	tok->len = (size_t)(w - tok->s);
	*pp = p + 1;
	return NULL;
}

/* scan_literal - domain literal "[...]" at *pp, kept with its brackets */
static const char *scan_literal(char **pp, struct token *tok)
{
	char *p = *pp + 1;

	while (*p != '\0' && *p != ']' && *p != '[')
		p++;
	if (*p != ']')
		return "unbalanced square brackets";
	tok->type = TOK_LITERAL;
	tok->s = *pp;
	tok->len = (size_t)(p + 1 - *pp);
	*pp = p + 1;
	return NULL;
}

/* tokenize - cut the unfolded text s (modified in place) into t */
static const char *tokenize(char *s, struct tokens *t)
{
	bool ws = false;
	const char *err = NULL;

	for (char *p = s; *p != '\0';) {
		struct token tok = {.type = TOK_SPECIAL, .ws_before = ws, .s = p, .len = 1};

		ws = false;
		if (*p == ' ' || *p == '\t') {
			ws = true;
			p++;
			continue;
		} else if (*p == '"' || *p == '(') {
			ws = *p == '(';
			err = scan_quoted(&p, &tok);
		} else if (*p == '[') {
			err = scan_literal(&p, &tok);
		} else if (*p == ')') {
			err = "unbalanced parentheses";
		} else if (*p == ']') {
			err = "unbalanced square brackets";
		} else if (*p == '\\') {
			err = "backslash outside a quoted string";
		} else if (strchr("<>:;@,.", *p) != NULL) {
			p++;
		} else {
			tok.type = TOK_ATOM;
			while (is_atext((unsigned char)*p))
				p++;
			tok.len = (size_t)(p - tok.s);
		}
		if (err != NULL)
			return err;
		if (t->n == t->alloc) {
			t->alloc = t->alloc ? t->alloc * 2 : 16;
			t->v = xrealloc(t->v, t->alloc * sizeof(*t->v));
		}
		t->v[t->n++] = tok;
	}
	return NULL;
}

/* hexval - value of a hex digit, -1 if c is not one */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* b64val - value of a base64 character, -1 if c is not one */
static int b64val(char c)
{
	static const char set[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != '\0' ? strchr(set, c) : NULL;

	return p ? (int)(p - set) : -1;
}

/* ew_text - decode the B or Q text [s, e) into out; false if malformed */
static bool ew_text(char enc, const char *s, const char *e, struct strbuf *out)
{
	unsigned acc = 0;
	int bits = 0;

	for (; s < e; s++) {
		char c = *s;

		if (enc == 'Q') {
			if (c == '=') {
				if (e - s < 3 || hexval(s[1]) < 0 || hexval(s[2]) < 0)
					return false;
				c = (char)(hexval(s[1]) * 16 + hexval(s[2]));
				s += 2;
			} else if (c == '_') {
				c = ' ';
			}
			strbuf_add(out, &c, 1);
		} else if (c != '=') {
			if (b64val(c) < 0)
				return false;
			acc = (acc << 6 | (unsigned)b64val(c)) & 0xffffff;
			if ((bits += 6) >= 8) {
				bits -= 8;
				c = (char)(acc >> bits & 0xff);
				strbuf_add(out, &c, 1);
			}
		}
	}
	return true;
}

/* ew_decode - decode the encoded word at s ("=?charset?E?text?=", RFC 2047
 * 2; an RFC 2231 language suffix "*en" is ignored) and append it to out as
 * UTF-8. Returns the length of the encoded word in s, or 0 (out unchanged)
 * if s does not start one or its charset is not one we convert. */
static size_t ew_decode(const char *s, struct strbuf *out, bool *suspect_r)
{
	const char *cs = s + 2, *q1 = cs, *text, *end;
	struct strbuf raw = {0};
	bool latin1;
	size_t cslen;

	while (*q1 != '\0' && *q1 != '?' && *q1 != ' ' && *q1 != '\t')
		q1++;
	if (*q1 != '?' || strchr("BbQq", q1[1]) == NULL || q1[1] == '\0' || q1[2] != '?')
		return 0;
	cslen = strcspn(cs, "*?");
	latin1 = cslen == 10 && strncasecmp(cs, "iso-8859-1", 10) == 0;
	if (!latin1 && !(cslen == 5 && strncasecmp(cs, "utf-8", 5) == 0) &&
	    !(cslen == 4 && strncasecmp(cs, "utf8", 4) == 0) &&
	    !(cslen == 8 && strncasecmp(cs, "us-ascii", 8) == 0))
		return 0;
	text = end = q1 + 3;
	while (*end != '\0' && *end != '?' && *end != ' ' && *end != '\t')
		end++;
	if (end[0] != '?' || end[1] != '=' || !ew_text((char)(q1[1] & ~0x20), text, end, &raw)) {
		free(raw.s);
		return 0;
	}
	for (size_t i = 0; i < raw.len; i++) {
		unsigned char c = (unsigned char)raw.s[i];
		char u[2] = {(char)(0xc0 | c >> 6), (char)(0x80 | (c & 0x3f))};

		if (c == '\0' || c == '\r' || c == '\n')
			*suspect_r = true;
		if (is_ctl(c))
			strbuf_add(out, "?", 1);
		else if (latin1 && c >= 0x80)
			strbuf_add(out, u, 2);
		else
			strbuf_add(out, (const char *)&c, 1);
	}
	free(raw.s);
	return (size_t)(end + 2 - s);
}

/* has_angle_at - true if s holds '<', then '@', then '>' */
static bool has_angle_at(const char *s)
{
	const char *lt = strchr(s, '<'), *at = lt ? strchr(lt, '@') : NULL;

	return at != NULL && strchr(at, '>') != NULL;
}

/* decode_2047 - s with its encoded words decoded (white space between two
 * adjacent encoded words dropped, RFC 2047 6.2). *suspect_r is set when an
 * encoded word decodes to CR, LF or NUL, or when decoding made text with
 * '<', '@', '>'. New memory. */
static char *decode_2047(const char *s, bool *suspect_r)
{
	struct strbuf out = {0}, word = {0};
	size_t ew_end = 0;
	bool after_ew = false, decoded = false;
	char *r;

	strbuf_add(&out, "", 0);
	while (*s != '\0') {
		size_t n = s[0] == '=' && s[1] == '?' ? ew_decode(s, &word, suspect_r) : 0;

		if (n > 0) {
			if (after_ew)
				out.len = ew_end;
			strbuf_add(&out, word.s, word.len);
			word.len = 0;
			ew_end = out.len;
			after_ew = decoded = true;
			s += n;
			continue;
		}
		if (*s != ' ' && *s != '\t')
			after_ew = false;
		strbuf_add(&out, s++, 1);
	}
	free(word.s);
	r = out.s;
	if (decoded && has_angle_at(r))
		*suspect_r = true;
	return r;
}

/* is_local_scan - octet that may be part of a local part in free text */
static bool is_local_scan(char c)
{
	return c == '.' || ((unsigned char)c < 0x80 && is_atext((unsigned char)c));
}

/* is_domain_scan - octet that may be part of a domain in free text */
static bool is_domain_scan(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || (unsigned char)c >= 0x80;
}

/* same_address - true if the candidate [l, r) is addr, ignoring ASCII case
 * and punctuation that free text puts before an address ("'", "=", ...) */
static bool same_address(const char *l, const char *r, const char *addr)
{
	size_t alen = strlen(addr);

	if ((size_t)(r - l) == alen && strncasecmp(l, addr, alen) == 0)
		return true;
	while (l < r &&
	       !((*l >= 'a' && *l <= 'z') || (*l >= 'A' && *l <= 'Z') || (*l >= '0' && *l <= '9')))
		l++;
	return (size_t)(r - l) == alen && strncasecmp(l, addr, alen) == 0;
}

/* other_address - true if text holds local@domain.tld (or local@[literal])
 * that is not addr */
static bool other_address(const char *text, const char *addr)
{
	for (const char *at = strchr(text, '@'); at != NULL; at = strchr(at + 1, '@')) {
		const char *l = at, *r = at + 1, *dot;

		while (l > text && is_local_scan(l[-1]))
			l--;
		if (*r == '[') {
			if ((r = strchr(r, ']')) == NULL)
				continue;
			r++;
		} else {
			while (is_domain_scan(*r))
				r++;
			while (r > at + 1 && (r[-1] == '.' || r[-1] == '-'))
				r--;
			dot = memchr(at + 1, '.', (size_t)(r - at - 1));
			if (dot == NULL || dot == at + 1)
				continue;
		}
		/* "bob<U+200B>@evil.com": no ASCII local part, but something
		 * shown before the '@' */
		if (l == at && l > text && (unsigned char)l[-1] >= 0x80)
			return true;
		if (l < at && !same_address(l, r, addr))
			return true;
	}
	return false;
}

/* text_hides - other_address on text as it is and RFC 2047 decoded */
static bool text_hides(const char *text, const char *addr)
{
	bool suspect = false, hides;
	char *dec;

	if (other_address(text, addr))
		return true;
	dec = decode_2047(text, &suspect);
	hides = suspect || other_address(dec, addr);
	free(dec);
	return hides;
}

bool mailbox_display_hides_address(const struct mailbox *m)
{
	const char *addr = m->addr ? m->addr : "";

	return (m->display_raw != NULL && text_hides(m->display_raw, addr)) ||
	       (m->display != NULL && text_hides(m->display, addr)) ||
	       (m->comment != NULL && text_hides(m->comment, addr));
}

/* The address-list grammar over tokens. */

struct parser {
	const struct token *v;
	size_t n;
	struct mailbox_list *out;
};

/* is_sp - token is the special character c */
static bool is_sp(const struct token *t, char c)
{
	return t->type == TOK_SPECIAL && t->s[0] == c;
}

/* join - text of the non-comment tokens in [a, b) as written, one space
 * where white space or a comment was; NULL if empty */
static char *join(const struct parser *p, size_t a, size_t b)
{
	struct strbuf out = {0};

	for (size_t i = a; i < b; i++) {
		if (p->v[i].type == TOK_COMMENT)
			continue;
		if (p->v[i].ws_before && out.len > 0)
			strbuf_add(&out, " ", 1);
		strbuf_add(&out, p->v[i].s, p->v[i].len);
	}
	return strbuf_take(&out);
}

/* join_comments - the comments in [a, b), joined by spaces; NULL if none */
static char *join_comments(const struct parser *p, size_t a, size_t b)
{
	struct strbuf out = {0};

	for (size_t i = a; i < b; i++) {
		if (p->v[i].type != TOK_COMMENT || p->v[i].len == 0)
			continue;
		if (out.len > 0)
			strbuf_add(&out, " ", 1);
		strbuf_add(&out, p->v[i].s, p->v[i].len);
	}
	return strbuf_take(&out);
}

/* spec_local - local part of the addr-spec at *ip, up to '@': words and
 * dots (obs-local-part); the unescaped text goes to local */
static const char *spec_local(const struct parser *p, size_t *ip, size_t b, struct strbuf *local)
{
	bool word = false, any = false;
	size_t i;

	strbuf_add(local, "", 0);
	for (i = *ip; i < b && !is_sp(&p->v[i], '@'); i++) {
		const struct token *t = &p->v[i];

		if (t->type == TOK_COMMENT)
			continue;
		if (t->type == TOK_ATOM || t->type == TOK_QUOTED) {
			if (word)
				return "invalid local part (words without '.')";
			word = any = true;
		} else if (is_sp(t, '.')) {
			word = false;
		} else if (is_sp(t, '<') || is_sp(t, '>')) {
			return "unbalanced angle brackets";
		} else {
			return "invalid local part";
		}
		strbuf_add(local, t->s, t->len);
	}
	if (!any)
		return i == b ? "empty address" : "empty local part";
	if (i == b)
		return "address has no @";
	*ip = i + 1;
	return NULL;
}

/* spec_domain - domain of the addr-spec in [i, b): atoms and dots, or one
 * domain literal */
static const char *spec_domain(const struct parser *p, size_t i, size_t b, struct strbuf *dom)
{
	bool literal = false;

	strbuf_add(dom, "", 0);
	for (; i < b; i++) {
		const struct token *t = &p->v[i];

		if (t->type == TOK_COMMENT)
			continue;
		if (literal || (t->type == TOK_LITERAL && dom->len > 0))
			return "invalid domain";
		if (t->type == TOK_LITERAL)
			literal = true;
		else if (t->type != TOK_ATOM && !is_sp(t, '.'))
			return is_sp(t, '@') ? "more than one @ in address" : "invalid domain";
		strbuf_add(dom, t->s, t->len);
	}
	return dom->len == 0 ? "missing domain after @" : NULL;
}

/* add_mailbox - append the mailbox whose addr-spec is the tokens [a, b),
 * display name [da, db) (da == db: none) and comments in [ca, cb) */
static const char *add_mailbox(struct parser *p, size_t a, size_t b, size_t da, size_t db,
                               size_t ca, size_t cb)
{
	struct strbuf local = {0}, dom = {0};
	struct address addr = {0};
	struct mailbox *m;
	const char *err;
	char *q, *path;
	bool suspect = false;

	if ((err = spec_local(p, &a, b, &local)) == NULL &&
	    (err = spec_domain(p, a, b, &dom)) == NULL) {
		q = address_quote_local(local.s);
		path = xasprintf("<%s@%s>", q, dom.s);
		address_parse(path, &addr, &err);
		free(q);
		free(path);
	}
	free(local.s);
	free(dom.s);
	if (err != NULL)
		return err;
	p->out->v = xrealloc(p->out->v, (p->out->n + 1) * sizeof(*p->out->v));
	m = &p->out->v[p->out->n++];
	m->addr = addr.canonical;
	m->domain = addr.domain;
	m->tricks = addr.tricks;
	free(addr.local);
	m->display_raw = join(p, da, db);
	m->display = m->display_raw ? decode_2047(m->display_raw, &suspect) : NULL;
	m->comment = join_comments(p, ca, cb);
	return NULL;
}

/* angle_addr - the name-addr whose display name is [head, lt) and whose
 * '<' is at lt; on success *ip is past '>' and the comments after it */
static const char *angle_addr(struct parser *p, size_t head, size_t lt, size_t *ip)
{
	size_t a = lt + 1, gt = a, end;
	bool route = false;
	const char *err;

	while (gt < p->n && !is_sp(&p->v[gt], '>')) {
		if (is_sp(&p->v[gt], '<'))
			return "unbalanced angle brackets";
		gt++;
	}
	if (gt == p->n)
		return "unbalanced angle brackets";
	while (a < gt && p->v[a].type == TOK_COMMENT)
		a++;
	if (a < gt && is_sp(&p->v[a], '@')) {
		/* obs-route (RFC 5322 4.4): "@a,@b:" before the addr-spec */
		while (a < gt && !is_sp(&p->v[a], ':'))
			a++;
		if (a++ == gt)
			return "invalid route in angle address";
		route = true;
	}
	for (end = gt + 1; end < p->n && p->v[end].type == TOK_COMMENT; end++)
		;
	if ((err = add_mailbox(p, a, gt, head, lt, head, end)) != NULL)
		return err;
	if (route)
		p->out->v[p->out->n - 1].tricks |= ADDR_SOURCE_ROUTE;
	*ip = end;
	return NULL;
}

/* group_name - true if [a, b) is a phrase: words and dots, at least a word */
static bool group_name(const struct parser *p, size_t a, size_t b)
{
	bool word = false;

	for (size_t i = a; i < b; i++) {
		const struct token *t = &p->v[i];

		if (t->type == TOK_ATOM || t->type == TOK_QUOTED)
			word = true;
		else if (t->type != TOK_COMMENT && !is_sp(t, '.'))
			return false;
	}
	return word;
}

/* only_comments - true if [a, b) holds nothing but comments */
static bool only_comments(const struct parser *p, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		if (p->v[i].type != TOK_COMMENT)
			return false;
	return true;
}

/* parse_list - the address-list; groups are flattened into their members */
static const char *parse_list(struct parser *p, bool *group_seen)
{
	bool in_group = false;
	const char *err = NULL;

	for (size_t i = 0; i < p->n;) {
		size_t j = i;

		while (j < p->n && !(p->v[j].type == TOK_SPECIAL && strchr("<>:,;", p->v[j].s[0])))
			j++;
		if (j < p->n && is_sp(&p->v[j], '<')) {
			err = angle_addr(p, i, j, &j);
		} else if (j < p->n && is_sp(&p->v[j], ':')) {
			if (in_group)
				return "group inside a group";
			if (!group_name(p, i, j))
				return "invalid group name";
			in_group = *group_seen = true;
			i = j + 1;
			continue;
		} else if (j < p->n && is_sp(&p->v[j], '>')) {
			return "unbalanced angle brackets";
		} else if (!only_comments(p, i, j)) {
			err = add_mailbox(p, i, j, i, i, i, j);
		}
		if (err != NULL)
			return err;
		if (j < p->n && is_sp(&p->v[j], ';')) {
			if (!in_group)
				return "';' outside a group";
			in_group = false;
			for (j++; j < p->n && p->v[j].type == TOK_COMMENT; j++)
				;
		}
		if (j < p->n && !is_sp(&p->v[j], ','))
			return "text after address";
		i = j + 1;
	}
	return NULL;
}

int mailbox_list_parse(const char *value, struct mailbox_list *out, const char **err_r)
{
	struct tokens toks = {0};
	struct parser p = {.out = out};
	bool group_seen = false;
	const char *err = NULL;
	char *text = NULL;

	out->v = NULL;
	out->n = 0;
	if (strnlen(value, MAILBOX_VALUE_MAX + 1) > MAILBOX_VALUE_MAX)
		err = "header value longer than 64 KB";
	else if ((text = unfold(value, &err)) != NULL && (err = tokenize(text, &toks)) == NULL) {
		p.v = toks.v;
		p.n = toks.n;
		err = parse_list(&p, &group_seen);
	}
	if (err == NULL && out->n == 0 && !group_seen)
		err = "no mailbox";
	free(toks.v);
	free(text);
	if (err != NULL) {
		mailbox_list_free(out);
		*err_r = err;
		return -1;
	}
	return 0;
}

void mailbox_list_free(struct mailbox_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].display);
		free(l->v[i].display_raw);
		free(l->v[i].comment);
		free(l->v[i].addr);
		free(l->v[i].domain);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
