/* ehlo - the service extensions of an EHLO reply
 *
 * Input comes from the network: every keyword is matched with its
 * length, nothing is copied, numbers are checked for overflow. */
#include "autoconf.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "delivery-agent/ehlo.h"

/* word_is - the n bytes at p are the keyword kw (any case) */
static bool word_is(const char *p, size_t n, const char *kw)
{
	return n == strlen(kw) && strncasecmp(p, kw, n) == 0;
}

/* parse_size - RFC 1870's SIZE parameter: digits only, else no limit */
static long long parse_size(const char *p, size_t n)
{
	long long v = 0;

	if (n == 0 || n > 18) /* 18 digits cannot overflow a long long */
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* mech_bit - the mechanism named by the n bytes at p, 0 for others */
static unsigned mech_bit(const char *p, size_t n)
{
	if (word_is(p, n, "PLAIN"))
		return AUTH_MECH_PLAIN;
	if (word_is(p, n, "LOGIN"))
		return AUTH_MECH_LOGIN;
	if (word_is(p, n, "CRAM-MD5"))
		return AUTH_MECH_CRAM_MD5;
	if (word_is(p, n, "XOAUTH2"))
		return AUTH_MECH_XOAUTH2;
	return 0;
}

/* parse_auth - the mechanisms after AUTH (space separated) */
static unsigned parse_auth(const char *p, size_t n)
{
	unsigned bits = 0;
	size_t i = 0;

	while (i < n) {
		size_t start, len;
		while (i < n && p[i] == ' ')
			i++;
		start = i;
		while (i < n && p[i] != ' ')
			i++;
		len = i - start;
		if (len > 0)
			bits |= mech_bit(p + start, len);
	}
	return bits;
}

/* parse_line - one extension line: keyword, then parameters */
static void parse_line(const char *p, size_t n, struct ehlo_caps *caps)
{
	size_t kw = 0;
	const char *params;
	size_t np;

	while (kw < n && p[kw] != ' ' && p[kw] != '=')
		kw++;
	params = p + kw + (kw < n ? 1 : 0);
	np = kw < n ? n - kw - 1 : 0;
	if (word_is(p, kw, "PIPELINING"))
		caps->pipelining = true;
	else if (word_is(p, kw, "8BITMIME"))
		caps->eightbitmime = true;
	else if (word_is(p, kw, "SMTPUTF8"))
		caps->smtputf8 = true;
	else if (word_is(p, kw, "DSN"))
		caps->dsn = true;
	else if (word_is(p, kw, "STARTTLS"))
		caps->starttls = true;
	else if (word_is(p, kw, "CHUNKING"))
		caps->chunking = true;
	else if (word_is(p, kw, "SIZE")) {
		caps->has_size = true;
		caps->size = parse_size(params, np);
	} else if (word_is(p, kw, "AUTH")) {
		/* "AUTH PLAIN LOGIN", and the pre-standard "AUTH=PLAIN LOGIN"
		 * that old servers send as well */
		caps->auth |= parse_auth(params, np);
	}
}

void ehlo_parse(const char *text, struct ehlo_caps *caps)
{
	const char *p = text;
	bool first = true;

	memset(caps, 0, sizeof(*caps));
	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, "\n");
		if (!first) {
			/* leading blanks are tolerated: some servers indent */
			size_t lead = 0;
			while (lead < n && (p[lead] == ' ' || p[lead] == '\t'))
				lead++;
			parse_line(p + lead, n - lead, caps);
		}
		first = false;
		p += n;
		if (*p == '\n')
			p++;
	}
}
