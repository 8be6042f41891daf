/* bounce_int - what the bounce_*.c files share; not for other modules */
#ifndef WEIR_POLICY_BOUNCE_INT_H
#define WEIR_POLICY_BOUNCE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/bounce.h"

/* bounce_classify_alt - as bounce_classify_reply, but when no rule with a
 * text= pattern matches text, the text rules are tried against alt (the
 * whole human-readable part of a bounce) before a rule that matched on
 * codes alone is taken */
void bounce_classify_alt(const struct bounce_rules *r, const char *after, int code,
			 const char *status, const char *text, const char *alt,
			 struct bounce_class *out);

/* bounce_text_command - the SMTP command a bounce's text says the reply
 * answered ("DATA", "RCPT", "MAIL"), or NULL */
const char *bounce_text_command(const char *text);

/* A recipient block found in a bounce's human-readable text */
struct bounce_text_rcpt {
	char *addr;	  /* normalized (domain lowercased) */
	char *block;	  /* the text that belongs to it, whitespace collapsed */
};

struct bounce_text {
	struct bounce_text_rcpt *v;
	size_t n;
	char *section; /* the bounce's own words (the copy of the message cut off) */
};

/* bounce_text_scan - find recipients and their explanations in the text
 * of a non-standard bounce; exclude (NULL-terminated, may be NULL) lists
 * addresses that are not recipients (the bounce's own From/To). */
void bounce_text_scan(const char *text, const char *const *exclude, struct bounce_text *out);
void bounce_text_free(struct bounce_text *t);

/* bounce_text_codes - the first SMTP reply code and enhanced status code
 * in s (0 / "" when none); status_r has room for 16 octets */
void bounce_text_codes(const char *s, int *code_r, char status_r[16]);

/* bounce_addr_normalize - an address as found ("<a@B>", "rfc822; a@B")
 * as "a@b"-style (domain lowercased) in new memory, or NULL when it
 * is not one */
char *bounce_addr_normalize(const char *s, size_t n);

/* bounce_text_looks_bounced - text carries a known MTA's bounce wording */
bool bounce_text_looks_bounced(const char *text);

/* bounce_collapse - s with runs of white space as one space, trimmed
 * (new memory) */
char *bounce_collapse(const char *s, size_t n);

/* Header-style fields (a delivery-status or feedback-report body, or
 * text/rfc822-headers), unfolded; an entry with name NULL marks a blank
 * line (the end of a group) */
struct bounce_field {
	char *name;
	char *value;
};

struct bounce_fields {
	struct bounce_field *v;
	size_t n;
};

void bounce_fields_parse(const char *s, size_t n, struct bounce_fields *out);
void bounce_fields_free(struct bounce_fields *f);
/* bounce_fields_get - the first value of the field name, or NULL */
const char *bounce_fields_get(const struct bounce_fields *f, const char *name);

/* bounce_report_add - append a recipient (strings copied; status "" or
 * NULL means none) and return it */
struct bounce_rcpt *bounce_report_add(struct bounce_report *rep, const char *recipient,
				      const char *status, int code, const char *diag);

/* bounce_dsn_read - the per-recipient groups of a delivery-status body
 * into rep (failed and delayed ones); text (may be NULL) supplies a
 * recipient's explanation when the group has no Diagnostic-Code */
void bounce_dsn_read(const struct bounce_rules *r, const struct bounce_fields *f,
		     const struct bounce_text *text, struct bounce_report *rep);

/* bounce_arf_read - a feedback-report body into rep (kind COMPLAINT) */
void bounce_arf_read(const struct bounce_fields *f, struct bounce_report *rep);

#endif
