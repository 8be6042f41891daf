/* json - writing JSON text (see json.h) */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "lib/json.h"

/* utf8_len - length of the valid UTF-8 sequence at s (RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), 0 when invalid */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

void json_string(struct strbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		strbuf_adds(b, "null");
		return;
	}
	strbuf_add(b, "\"", 1);
	while (*p != '\0') {
		size_t n = utf8_len(p);
		char esc[8];
		if (n == 0) {
			strbuf_adds(b, "\xef\xbf\xbd"); /* U+FFFD */
			p++;
			continue;
		}
		if (n > 1) {
			strbuf_add(b, (const char *)p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '"': strbuf_adds(b, "\\\""); break;
		case '\\': strbuf_adds(b, "\\\\"); break;
		case '\n': strbuf_adds(b, "\\n"); break;
		case '\r': strbuf_adds(b, "\\r"); break;
		case '\t': strbuf_adds(b, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				strbuf_adds(b, esc);
			} else {
				strbuf_add(b, (const char *)p, 1);
			}
		}
		p++;
	}
	strbuf_add(b, "\"", 1);
}

void json_key(struct strbuf *b, const char *key)
{
	if (b->len > 0 && b->s[b->len - 1] != '{')
		strbuf_add(b, ",", 1);
	json_string(b, key);
	strbuf_add(b, ":", 1);
}

void json_member_str(struct strbuf *b, const char *key, const char *value)
{
	json_key(b, key);
	json_string(b, value);
}

void json_member_int(struct strbuf *b, const char *key, long long value)
{
	char num[32];

	json_key(b, key);
	snprintf(num, sizeof(num), "%lld", value);
	strbuf_adds(b, num);
}

void json_member_bool(struct strbuf *b, const char *key, bool value)
{
	json_key(b, key);
	strbuf_adds(b, value ? "true" : "false");
}
