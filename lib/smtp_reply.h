/* smtp_reply - parse SMTP replies (RFC 5321 4.2) with RFC 3463 enhanced codes */
#ifndef WEIR_SMTP_REPLY_H
#define WEIR_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_MAX_LINE 2048 /* longest reply line accepted, without CRLF */
#define SMTP_REPLY_MAX_LINES 64  /* most lines in one reply */

/* A reply being read line by line. text holds every line's text (after
 * the code, the separator and the enhanced code when there is one),
 * joined with '\n'; it is owned by the reply and freed by
 * smtp_reply_clear. */
struct smtp_reply {
	int code;          /* 200..599 once the first line was read */
	char enhanced[16]; /* "5.1.1", or "" when the reply has none */
	char *text;
	size_t text_len;
	size_t lines;
	bool complete;
};

void smtp_reply_init(struct smtp_reply *r);
/* smtp_reply_clear - free the text and start over */
void smtp_reply_clear(struct smtp_reply *r);

/* smtp_reply_feed - add one line (without its CRLF). Returns 1 when
 * this was the last line, 0 when more lines are needed, -1 with *err_r
 * (static text) for a malformed line; the reply is then unusable until
 * smtp_reply_clear. */
int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, const char **err_r);

/* smtp_enhanced_parse - length of an enhanced status code "C.SSS.DDD" at
 * the start of s (followed by a space or the end), 0 if there is none.
 * *class_r gets C (2, 4 or 5). */
size_t smtp_enhanced_parse(const char *s, size_t len, int *class_r);

/* smtp_reply_oneline - the complete reply as one printable line,
 * "550 5.1.1 text; more text", control characters replaced by '?',
 * at most max_text bytes of text. Caller frees. */
char *smtp_reply_oneline(const struct smtp_reply *r, size_t max_text);

/* smtp_reply_enhanced - the reply's enhanced code, or "C.0.0" matching
 * its class when it has none; into buf */
const char *smtp_reply_enhanced(const struct smtp_reply *r, char *buf, size_t size);

#endif
