/* bounce_verp - VERP return paths: PREFIX+LOCAL=DOMAIN@BOUNCE-DOMAIN.
 *
 * The recipient's '@' becomes the last '=' of the local part, so a
 * recipient whose local part has '=' or '+' of its own survives the
 * round trip: decoding splits at the first '+' (after the prefix, which
 * has none) and at the last '=' (a domain has none). */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "policy/bounce.h"

bool bounce_verp_decode(const char *addr, char *buf, size_t size)
{
	const char *at = strrchr(addr, '@'), *plus, *eq;
	size_t local, dom;

	if (at == NULL || (plus = memchr(addr, '+', (size_t)(at - addr))) == NULL ||
	    plus == addr)
		return false;
	eq = NULL;
	for (const char *p = plus + 1; p < at; p++)
		if (*p == '=')
			eq = p;
	if (eq == NULL || eq == plus + 1 || eq + 1 == at)
		return false;
	local = (size_t)(eq - plus - 1);
	dom = (size_t)(at - eq - 1);
	if (local + 1 + dom + 1 > size)
		return false;
	memcpy(buf, plus + 1, local);
	buf[local] = '@';
	for (size_t i = 0; i < dom; i++)
		buf[local + 1 + i] = (char)tolower((unsigned char)eq[1 + i]);
	buf[local + 1 + dom] = '\0';
	return true;
}

bool bounce_verp_encode(const char *rcpt, const char *prefix, const char *domain, char *buf,
			size_t size)
{
	const char *at = strrchr(rcpt, '@');
	int n;

	if (at == NULL || at == rcpt || at[1] == '\0' || strchr(prefix, '+') != NULL ||
	    prefix[0] == '\0' || domain[0] == '\0' || strchr(at + 1, '=') != NULL)
		return false;
	n = snprintf(buf, size, "%s+%.*s=%s@%s", prefix, (int)(at - rcpt), rcpt, at + 1, domain);
	return n > 0 && (size_t)n < size;
}
