/* bounce_text - reading the human-readable part of a bounce: the
 * recipients a non-standard bounce names and the explanation given for
 * each (Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo, ...),
 * and small address and reply-code helpers the other bounce_*.c files
 * share.
 *
 * The formats differ in wording but agree in shape: the bounce's own
 * words come first, a recipient stands at the start of a line (bare,
 * in <>, or followed by ':' or '...'), the reply or reason follows it
 * up to the next recipient, and a copy of the original message (marked
 * by a dashed line or starting with its Received: header) ends it. */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/bounce_int.h"

#define MAX_TEXT_RCPTS 1000

char *bounce_collapse(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	bool space = false;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			space = o != out;
			continue;
		}
		if (c == '\0')
			continue;
		if (space)
			*o++ = ' ';
		space = false;
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

static bool local_char(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL;
}

static bool domain_char(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* find_addr - the next address in s[0..n) at or after *pos: its start and
 * length; false when there is none */
static bool find_addr(const char *s, size_t n, size_t *pos, size_t *start_r, size_t *len_r)
{
	for (size_t i = *pos; i < n; i++) {
		size_t b = i, e = i + 1;

		if (s[i] != '@')
			continue;
		while (b > 0 && local_char((unsigned char)s[b - 1]))
			b--;
		while (e < n && domain_char((unsigned char)s[e]))
			e++;
		while (e > i + 1 && (s[e - 1] == '.' || s[e - 1] == '-'))
			e--;
		while (b < i && s[b] == '.')
			b++;
		*pos = e > i + 1 ? e : i + 1;
		if (b == i || e - i < 4 || memchr(s + i + 1, '.', e - i - 1) == NULL)
			continue;
		*start_r = b;
		*len_r = e - b;
		return true;
	}
	return false;
}

char *bounce_addr_normalize(const char *s, size_t n)
{
	size_t pos = 0, b, len;
	char *a;

	if (!find_addr(s, n, &pos, &b, &len))
		return NULL;
	a = xstrndup(s + b, len);
	for (char *d = strrchr(a, '@'); *d; d++)
		*d = (char)tolower((unsigned char)*d);
	return a;
}

void bounce_text_codes(const char *s, int *code_r, char status_r[16])
{
	*code_r = 0;
	status_r[0] = '\0';
	for (const char *p = s; *p; p++) {
		unsigned char prev = p == s ? ' ' : (unsigned char)p[-1];

		if (isdigit(prev) || prev == '.' || isalpha(prev) || prev == '-' || prev == '/')
			continue;
		if (status_r[0] == '\0' && (p[0] == '2' || p[0] == '4' || p[0] == '5') && p[1] == '.') {
			size_t a = strspn(p + 2, "0123456789"), b;

			if (a >= 1 && a <= 3 && p[2 + a] == '.' &&
			    (b = strspn(p + 3 + a, "0123456789")) >= 1 && b <= 3 &&
			    !isdigit((unsigned char)p[3 + a + b]) &&
			    !(p[3 + a + b] == '.' && isdigit((unsigned char)p[4 + a + b])))
				memcpy(status_r, p, 3 + a + b), status_r[3 + a + b] = '\0';
		}
		if (*code_r == 0 && (p[0] == '4' || p[0] == '5') && isdigit((unsigned char)p[1]) &&
		    isdigit((unsigned char)p[2]) &&
		    (p[3] == ' ' || p[3] == '-' || p[3] == '\0' || p[3] == '\n' || p[3] == ')' ||
		     p[3] == ']' || p[3] == ',') &&
		    p[1] <= '5')
			*code_r = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	}
}

const char *bounce_text_command(const char *text)
{
	static const struct {
		const char *words, *command;
	} stages[] = {
	    {"end of data", "DATA"},     {"after data", "DATA"},  {"reply to data", "DATA"},
	    {"data command", "DATA"},    {"rcpt to", "RCPT"},     {"after rcpt", "RCPT"},
	    {"reply to rcpt", "RCPT"},   {"mail from", "MAIL"},   {"reply to mail", "MAIL"},
	    {"reply to helo", "HELO"},   {"reply to ehlo", "HELO"}, {"after helo", "HELO"},
	    {"after ehlo", "HELO"},      {"after initial connection", "CONNECT"},
	    {"greeting", "CONNECT"},
	    /* a session transcript (Sendmail, Courier): the command sent */
	    {">>> data", "DATA"},        {">>> rcpt", "RCPT"},     {">>> mail", "MAIL"},
	    {">>> helo", "HELO"},        {">>> ehlo", "HELO"},
	};
	const char *found = NULL;
	size_t first = (size_t)-1;

	/* the first the text mentions */
	for (size_t i = 0; text != NULL && i < sizeof(stages) / sizeof(stages[0]); i++) {
		const char *p = strcasestr(text, stages[i].words);

		if (p != NULL && (size_t)(p - text) < first) {
			first = (size_t)(p - text);
			found = stages[i].command;
		}
	}
	return found;
}

/* Lines that start the copy of the original message */
static const char *const copy_markers[] = {
    "message", "header", "copy of", NULL,
};
static const char *const not_copy_markers[] = {
    "transcript", "error", "reason", "fail", "diagnostic", "delivery report", NULL,
};
static const char *const header_starts[] = {
    "Received: ", "Return-Path:", "Return-path:", "DKIM-Signature:", "X-Received:",
    "ARC-Seal:", "Authentication-Results:", NULL,
};

/* copy_starts - the line [l, l+n) begins the copy of the original */
static bool copy_starts(const char *l, size_t n)
{
	char buf[200];
	size_t k = 0;
	bool dashed;

	for (size_t i = 0; header_starts[i] != NULL; i++)
		if (n >= strlen(header_starts[i]) &&
		    strncmp(l, header_starts[i], strlen(header_starts[i])) == 0)
			return true;
	while (k < n && (l[k] == ' ' || l[k] == '\t'))
		k++;
	dashed = k + 2 < n && strchr("-=_*", l[k]) != NULL && l[k + 1] == l[k];
	if (n - k > sizeof(buf) - 1)
		n = k + sizeof(buf) - 1;
	memcpy(buf, l + k, n - k);
	buf[n - k] = '\0';
	for (char *p = buf; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (strncmp(buf, "message headers follow", 22) == 0 ||
	    strstr(buf, "below this line is a copy") != NULL ||
	    strncmp(buf, "original message headers", 24) == 0)
		return true;
	if (!dashed)
		return false;
	for (size_t i = 0; not_copy_markers[i] != NULL; i++)
		if (strstr(buf, not_copy_markers[i]) != NULL)
			return false;
	for (size_t i = 0; copy_markers[i] != NULL; i++)
		if (strstr(buf, copy_markers[i]) != NULL)
			return true;
	return false;
}

bool bounce_text_looks_bounced(const char *text)
{
	static const char *const words[] = {
	    "mail delivery software", "qmail-send program", "transcript of session follows",
	    "the mail system", "delivery has failed", "delivery to the following recipient",
	    "could not be delivered", "couldn't be delivered", "undeliverable",
	    "unable to deliver", "delivery failed", "delivery status notification",
	    "returned mail", "permanent error", "mail agent", "mail system error",
	    "following address", "following recipient", "failed recipient",
	    "not delivered", "message was not sent", "delivery failure", "was rejected",
	    "could not deliver", "failure reasons", "message you sent", NULL,
	};
	char *low = xstrdup(text);
	bool found = false;

	for (char *p = low; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; words[i] != NULL && !found; i++)
		found = strstr(low, words[i]) != NULL;
	free(low);
	return found;
}

static bool excluded(const char *a, const char *const *exclude)
{
	for (size_t i = 0; exclude != NULL && exclude[i] != NULL; i++)
		if (strcasecmp(a, exclude[i]) == 0)
			return true;
	return false;
}

/* A recipient candidate: the address and the offset of its line */
struct cand {
	char *addr;
	size_t line;
};

/* line_start_addr - the line [l, l+n) starts with an address (bare, in
 * <>, or after "RCPT TO:"-less punctuation): its start and length */
static bool line_start_addr(const char *l, size_t n, size_t *b_r, size_t *len_r)
{
	size_t k = 0, pos;

	while (k < n && (l[k] == ' ' || l[k] == '\t' || l[k] == '<' || l[k] == '"' || l[k] == '*'))
		k++;
	pos = k;
	if (!find_addr(l, n, &pos, b_r, len_r) || *b_r != k)
		return false;
	/* what follows must end the address: '>', ':', ' ', '.', ',', ';', '(' */
	k = *b_r + *len_r;
	return k >= n || strchr(">:., ;(\t\"", l[k]) != NULL;
}

/* collect - the candidates of one class: 0 line-start addresses, 1 <addr>
 * anywhere, 2 any address */
static size_t collect(const char *s, size_t n, int cls, const char *const *exclude,
		      struct cand **v_r)
{
	struct cand *v = NULL;
	size_t nv = 0;

	for (size_t ls = 0; ls < n && nv < MAX_TEXT_RCPTS;) {
		const char *nl = memchr(s + ls, '\n', n - ls);
		size_t le = nl ? (size_t)(nl - s) : n, b, len, pos = ls;

		while (nv < MAX_TEXT_RCPTS) {
			char *a;

			if (cls == 0) {
				if (pos != ls || !line_start_addr(s + ls, le - ls, &b, &len))
					break;
				b += ls;
				pos = le;
			} else if (!find_addr(s, le, &pos, &b, &len)) {
				break;
			}
			if (cls == 1 && (b == 0 || s[b - 1] != '<' || b + len >= n || s[b + len] != '>'))
				continue;
			a = bounce_addr_normalize(s + b, len);
			if (a == NULL)
				continue;
			bool dup = excluded(a, exclude);
			for (size_t i = 0; i < nv && !dup; i++)
				dup = strcasecmp(v[i].addr, a) == 0;
			if (dup) {
				free(a);
				continue;
			}
			v = xrealloc(v, (nv + 1) * sizeof(*v));
			v[nv].addr = a;
			v[nv].line = ls;
			nv++;
		}
		ls = le + 1;
	}
	*v_r = v;
	return nv;
}

void bounce_text_scan(const char *text, const char *const *exclude, struct bounce_text *out)
{
	size_t n = 0, ls = 0, nv = 0;
	struct cand *v = NULL;
	bool seen_text = false;

	memset(out, 0, sizeof(*out));
	/* the bounce's own words end where the copy of the message starts */
	while (text[ls] != '\0') {
		const char *nl = strchr(text + ls, '\n');
		size_t le = nl ? (size_t)(nl - text) : strlen(text);

		if (seen_text && copy_starts(text + ls, le - ls))
			break;
		for (size_t i = ls; i < le; i++)
			if (!isspace((unsigned char)text[i]))
				seen_text = true;
		ls = nl ? le + 1 : le;
	}
	n = ls;
	out->section = bounce_collapse(text, n);
	for (int cls = 0; cls < 3 && nv == 0; cls++)
		nv = collect(text, n, cls, exclude, &v);
	if (nv == 0)
		return;
	out->v = xcalloc(nv, sizeof(*out->v));
	out->n = nv;
	for (size_t i = 0; i < nv; i++) {
		size_t end = n;

		/* up to the next recipient on a later line */
		for (size_t j = i + 1; j < nv; j++)
			if (v[j].line > v[i].line) {
				end = v[j].line;
				break;
			}
		out->v[i].addr = v[i].addr;
		out->v[i].block = bounce_collapse(text + v[i].line, end - v[i].line);
	}
	free(v);
}

void bounce_text_free(struct bounce_text *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].addr);
		free(t->v[i].block);
	}
	free(t->v);
	free(t->section);
	memset(t, 0, sizeof(*t));
}
