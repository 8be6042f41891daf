/* smtp_reply - parse SMTP replies (RFC 5321 4.2) with RFC 3463 enhanced codes */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_reply.h"
#include "lib/xalloc.h"

/* smtp_reply_init - an empty reply */
void smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* smtp_reply_clear - free the text and start over */
void smtp_reply_clear(struct smtp_reply *r)
{
	free(r->text);
	smtp_reply_init(r);
}

/* digits - count of decimal digits at s, at most max */
static size_t digits(const char *s, size_t len, size_t max)
{
	size_t n = 0;

	while (n < len && n <= max && s[n] >= '0' && s[n] <= '9')
		n++;
	return n;
}

/* smtp_enhanced_parse - length of "C.SSS.DDD" at s, 0 if none */
size_t smtp_enhanced_parse(const char *s, size_t len, int *class_r)
{
	size_t i = 0, n;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	n = digits(s + i, len - i, 3);
	if (n == 0 || n > 3)
		return 0;
	i += n;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	n = digits(s + i, len - i, 3);
	if (n == 0 || n > 3)
		return 0;
	i += n;
	if (i < len && s[i] != ' ')
		return 0;
	*class_r = s[0] - '0';
	return i;
}

/* append_text - add one line's text to r->text */
static void append_text(struct smtp_reply *r, const char *s, size_t n)
{
	size_t need = r->text_len + n + 2;

	r->text = xrealloc(r->text, need);
	if (r->text_len > 0)
		r->text[r->text_len++] = '\n';
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	r->text[r->text_len] = '\0';
}

/* smtp_reply_feed - add one line; 1 = complete, 0 = more, -1 = bad */
int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, const char **err_r)
{
	int code, eclass = 0;
	bool last;
	size_t elen;

	if (r->complete) {
		*err_r = "reply already complete";
		return -1;
	}
	if (len > SMTP_REPLY_MAX_LINE) {
		*err_r = "reply line too long";
		return -1;
	}
	if (len < 3 || digits(line, 3, 3) != 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] > '5') {
		*err_r = "reply line does not start with a valid code";
		return -1;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*err_r = "reply code not followed by space or '-'";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->lines > 0 && code != r->code) {
		*err_r = "reply lines carry different codes";
		return -1;
	}
	if (r->lines >= SMTP_REPLY_MAX_LINES) {
		*err_r = "reply has too many lines";
		return -1;
	}
	last = len == 3 || line[3] == ' ';
	line += len > 3 ? 4 : 3;
	len -= len > 3 ? 4 : 3;
	elen = smtp_enhanced_parse(line, len, &eclass);
	if (elen > 0 && eclass == code / 100) {
		if (r->lines == 0)
			snprintf(r->enhanced, sizeof(r->enhanced), "%.*s", (int)elen, line);
		line += elen;
		len -= elen;
		while (len > 0 && *line == ' ') {
			line++;
			len--;
		}
	}
	r->code = code;
	r->lines++;
	append_text(r, line, len);
	r->complete = last;
	return last ? 1 : 0;
}

/* smtp_reply_oneline - the reply as one printable line; caller frees */
char *smtp_reply_oneline(const struct smtp_reply *r, size_t max_text)
{
	const char *t = r->text ? r->text : "";
	size_t n = r->text_len, out = 0;
	char *text = xmalloc(n * 2 + 1), *line;

	for (size_t i = 0; i < n && out < max_text; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '\n') {
			text[out++] = ';';
			text[out++] = ' ';
		} else {
			text[out++] = (c < ' ' || c >= 0x7f) ? '?' : (char)c;
		}
	}
	text[out] = '\0';
	line = xasprintf("%d%s%s%s%s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
			 out ? " " : "", text);
	free(text);
	return line;
}

/* smtp_reply_enhanced - the enhanced code, or "C.0.0" from the class */
const char *smtp_reply_enhanced(const struct smtp_reply *r, char *buf, size_t size)
{
	if (r->enhanced[0])
		snprintf(buf, size, "%s", r->enhanced);
	else
		snprintf(buf, size, "%d.0.0", r->code / 100);
	return buf;
}
