/* address - RFC 5321 paths (MAIL FROM / RCPT TO) and domain matching
 *
 * The milter receives a path as the MTA passes it: normally "<...>" as the
 * client sent it (Postfix and Sendmail may already have dropped a source
 * route), sometimes without brackets. The grammar is RFC 5321 4.1.2 with
 * SMTPUTF8 (RFC 6531: octets >= 0x80 in atoms, quoted strings and domain
 * labels). Leniency, where real MTAs are lenient: surrounding spaces, missing
 * brackets, empty atoms in an unquoted local part ("a..b", "a.@d", as sent by
 * some mobile carriers and accepted by Postfix), a path without '@'
 * ("<postmaster>"). Everything that decides where mail goes is strict, and
 * every routing form is recorded in the tricks bits. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "policy/address.h"

#define LOCAL_MAX  64
#define DOMAIN_MAX 255
#define PATH_MAX_  256
#define LABEL_MAX  63

/* is_atext - RFC 5321 atext, plus UTF8-non-ascii octets (RFC 6531) */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* is_ctl - ASCII control character (RFC 5234 CTL) */
static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* lower - ASCII lowercase, independent of the locale */
static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* str_lower - lowercase s in place (ASCII) */
static void str_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = lower(*s);
}

/* char_error - the error for an octet that may not appear where it is */
static const char *char_error(unsigned char c, const char *what)
{
	if (is_ctl(c))
		return "control character in address";
	if (c == '<' || c == '>')
		return "unbalanced angle brackets";
	if (c == '"')
		return "a quoted string must be the whole local part";
	if (c == ' ')
		return "space in address";
	return what;
}

char *address_quote_local(const char *local)
{
	size_t n = 0;
	bool plain = local[0] != '\0';
	char *out, *w;

	for (const char *p = local; *p != '\0'; p++) {
		if (!is_atext((unsigned char)*p) && *p != '.')
			plain = false;
		n += *p == '"' || *p == '\\' ? 2 : 1;
	}
	if (plain)
		return xstrdup(local);
	w = out = xmalloc(n + 3);
	*w++ = '"';
	for (const char *p = local; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			*w++ = '\\';
		*w++ = *p;
	}
	*w++ = '"';
	*w = '\0';
	return out;
}

/* domain_check - validate len octets of a domain name (no trailing dot) */
static const char *domain_check(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0)
		return "empty domain";
	if (len > DOMAIN_MAX)
		return "domain longer than 255 octets";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return "empty label in domain";
			label = 0;
			continue;
		}
		if (c < 0x80 && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '-' && c != '_')
			return char_error(c, "invalid character in domain");
		if (++label > LABEL_MAX)
			return "domain label longer than 63 octets";
	}
	return label == 0 ? "empty label in domain" : NULL;
}

char *domain_normalize(const char *domain, const char **err_r)
{
	size_t len = strlen(domain);
	const char *err;
	char *out;

	if (len > 1 && domain[len - 1] == '.' && domain[len - 2] != '.')
		len--;
	if ((err = domain_check(domain, len)) != NULL) {
		*err_r = err;
		return NULL;
	}
	out = xstrndup(domain, len);
	str_lower(out);
	return out;
}

/* literal_valid - RFC 5321 4.1.3 address literal without its brackets:
 * IPv4, "IPv6:" address, or General-address-literal (Ldh-str ":" dcontent) */
static bool literal_valid(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *colon;

	if (strncasecmp(s, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, s + 5, buf) == 1;
	if ((colon = strchr(s, ':')) == NULL)
		return inet_pton(AF_INET, s, buf) == 1;
	if (colon == s || colon[-1] == '-')
		return false;
	for (const char *p = s; p < colon; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '-')
			return false;
	if (colon[1] == '\0')
		return false;
	for (const char *p = colon + 1; *p != '\0'; p++)
		if (*p < 33 || *p > 126 || *p == '[' || *p == '\\' || *p == ']')
			return false;
	return true;
}

/* parse_domain - domain or address literal in [s, end); new memory (lowercased,
 * normalized) in *out_r, or an error string */
static const char *parse_domain(const char *s, const char *end, unsigned *tricks, char **out_r)
{
	size_t len = (size_t)(end - s);
	const char *err = NULL;
	char *tmp;

	*out_r = NULL;
	if (len == 0)
		return "missing domain after @";
	if (len > DOMAIN_MAX)
		return "domain longer than 255 octets";
	tmp = xstrndup(s, len);
	if (tmp[0] == '[') {
		if (len < 2 || tmp[len - 1] != ']' || memchr(tmp + 1, ']', len - 2) != NULL ||
		    memchr(tmp + 1, '[', len - 1) != NULL) {
			err = "unbalanced square brackets in address literal";
		} else {
			tmp[len - 1] = '\0';
			if (!literal_valid(tmp + 1)) {
				err = "invalid address literal";
			} else {
				tmp[len - 1] = ']';
				str_lower(tmp);
				*tricks |= ADDR_IP_LITERAL;
				*out_r = tmp;
				return NULL;
			}
		}
	} else if (memchr(tmp, ']', len) != NULL) {
		err = "unbalanced square brackets in address literal";
	} else {
		*out_r = domain_normalize(tmp, &err);
	}
	free(tmp);
	return err;
}

/* skip_route - skip an RFC 5321 source route "@a,@b:" at *pp (which points
 * at '@'); each hop must be a valid domain or address literal */
static const char *skip_route(const char **pp, const char *end)
{
	const char *p = *pp;

	for (;;) {
		const char *hop;
		unsigned ignored = 0;
		char *dom;
		const char *err;

		if (p == end || *p != '@')
			return "invalid source route";
		hop = ++p;
		if (p < end && *p == '[')
			while (p < end && *p != ']')
				p++;
		while (p < end && *p != ',' && *p != ':')
			p++;
		if ((err = parse_domain(hop, p, &ignored, &dom)) != NULL)
			return err;
		free(dom);
		if (p == end)
			return "source route without ':'";
		if (*p++ == ':')
			break;
	}
	*pp = p;
	return NULL;
}

/* parse_local - local part at *pp up to '@' or end; unescaped copy in *out_r */
static const char *parse_local(const char **pp, const char *end, unsigned *tricks, char **out_r)
{
	const char *p = *pp, *start = p;
	char *out, *w;

	w = out = xmalloc((size_t)(end - p) + 1);
	*out_r = out;
	if (p < end && *p == '"') {
		for (p++;; p++) {
			if (p == end)
				return "unbalanced quotes";
			if (*p == '"')
				break;
			if (*p == '\\' && p + 1 < end)
				p++;
			if (is_ctl((unsigned char)*p))
				return "control character in address";
			if (*p == '@')
				*tricks |= ADDR_QUOTED_AT;
			*w++ = *p;
		}
		p++;
		if (p < end && *p != '@')
			return char_error((unsigned char)*p, "text after quoted local part");
	} else {
		for (; p < end && *p != '@'; p++) {
			if (!is_atext((unsigned char)*p) && *p != '.')
				return char_error((unsigned char)*p,
				                  "invalid character in local part");
			*w++ = *p;
		}
		if (p == start)
			return "empty local part";
	}
	*w = '\0';
	if (strchr(out, '%') != NULL)
		*tricks |= ADDR_PERCENT;
	if (strchr(out, '!') != NULL)
		*tricks |= ADDR_BANG;
	if (p - start > LOCAL_MAX)
		return "local part longer than 64 octets";
	*pp = p;
	return NULL;
}

/* trim - shrink [*s, *e) past spaces and tabs at both ends */
static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* parse_mailbox - [route] local ["@" domain] in [p, end) into a */
static const char *parse_mailbox(const char *p, const char *end, struct address *a)
{
	const char *err;

	if (p < end && *p == '@') {
		a->tricks |= ADDR_SOURCE_ROUTE;
		if ((err = skip_route(&p, end)) != NULL)
			return err;
		if (p == end)
			return "source route without a mailbox";
	}
	if ((err = parse_local(&p, end, &a->tricks, &a->local)) != NULL)
		return err;
	if (p == end)
		return NULL;
	p++;
	if (p < end && *p != '[' && memchr(p, '@', (size_t)(end - p)) != NULL)
		return "more than one @ in address";
	return parse_domain(p, end, &a->tricks, &a->domain);
}

int address_parse(const char *arg, struct address *a, const char **err_r)
{
	size_t len = strnlen(arg, PATH_MAX_ * 4);
	const char *s = arg, *e = arg + len, *err;
	bool bracketed = false;
	char *q;

	memset(a, 0, sizeof(*a));
	if (arg[len] != '\0') {
		*err_r = "path longer than 256 octets";
		return -1;
	}
	trim(&s, &e);
	if (s < e && *s == '<') {
		if (e - s < 2 || e[-1] != '>') {
			*err_r = "unbalanced angle brackets";
			return -1;
		}
		bracketed = true;
		s++, e--;
		trim(&s, &e);
	} else if (s < e && e[-1] == '>') {
		*err_r = "unbalanced angle brackets";
		return -1;
	}
	if (e - s > PATH_MAX_ - 2) {
		*err_r = "path longer than 256 octets";
		return -1;
	}
	if (s == e) {
		if (!bracketed) {
			*err_r = "empty address";
			return -1;
		}
		a->null = true;
		a->canonical = xstrdup("");
		return 0;
	}
	if ((err = parse_mailbox(s, e, a)) != NULL) {
		address_free(a);
		*err_r = err;
		return -1;
	}
	q = address_quote_local(a->local);
	a->canonical = a->domain ? xasprintf("%s@%s", q, a->domain) : xstrdup(q);
	free(q);
	str_lower(a->canonical);
	return 0;
}

void address_free(struct address *a)
{
	free(a->local);
	free(a->domain);
	free(a->canonical);
	memset(a, 0, sizeof(*a));
}

char *address_strip_plus(const char *canonical, const char *separators)
{
	const char *at = strchr(canonical, '@');
	size_t local_len = at ? (size_t)(at - canonical) : strlen(canonical);
	size_t cut;

	if (separators == NULL || *separators == '\0' || canonical[0] == '"')
		return xstrdup(canonical);
	cut = strcspn(canonical, separators);
	if (cut == 0 || cut >= local_len)
		return xstrdup(canonical);
	return xasprintf("%.*s%s", (int)cut, canonical, at ? at : "");
}

bool domain_in_list(const char *domain, char *const *entries, size_t n)
{
	size_t dlen;

	if (domain == NULL)
		return false;
	dlen = strlen(domain);
	for (size_t i = 0; i < n; i++) {
		const char *e = entries[i];
		size_t elen;

		if (e[0] != '.') {
			if (strcasecmp(domain, e) == 0)
				return true;
			continue;
		}
		elen = strlen(e);
		if (strcasecmp(domain, e + 1) == 0)
			return true;
		if (dlen > elen && strcasecmp(domain + dlen - elen, e) == 0)
			return true;
	}
	return false;
}

bool address_glob(const char *pattern, const char *addr)
{
	const char *p = pattern, *s = addr, *star = NULL, *resume = NULL;

	/* Iterative with one backtrack point: O(len(p) * len(s)), never
	 * exponential, whatever the pattern. */
	while (*s != '\0') {
		if (*p == '*') {
			star = p++;
			resume = s;
		} else if (*p != '\0' && (*p == '?' || lower(*p) == lower(*s))) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

char *domain_pattern_normalize(const char *pattern, const char **err_r)
{
	bool dot = pattern[0] == '.';
	char *d = domain_normalize(pattern + dot, err_r), *r;

	if (d == NULL)
		return NULL;
	r = dot ? xasprintf(".%s", d) : xstrdup(d);
	free(d);
	return r;
}
