/* bounce - reading bounces: RFC 3464 delivery status notifications, the
 * non-standard bounce formats of common MTAs and providers, RFC 5965 ARF
 * complaints and RFC 3834 auto-replies (not bounces); and classifying a
 * failure (an upstream's SMTP reply, or a DSN's status and diagnostic)
 * into a reason with Sisimai's names (userunknown, mailboxfull,
 * hostunknown, filtered, blocked, spamdetected, policyviolation, expired,
 * rejected, ...) and a hard/soft flag.
 *
 * The classification rules live in a data file (bounce.rules; the
 * shipped one is contrib/bounce/rules.conf) an administrator can extend.
 * Loaded rules are read-only and may be shared between threads. */
#ifndef WEIR_POLICY_BOUNCE_H
#define WEIR_POLICY_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

struct bounce_rules;

/* bounce_rules_load - read a rules file; NULL with *err_r ("FILE:LINE:
 * what", caller frees) when it cannot be read or has an error */
struct bounce_rules *bounce_rules_load(const char *path, char **err_r);
void bounce_rules_free(struct bounce_rules *r);

/* The installed rules (the default of bounce.rules) */
#define BOUNCE_RULES_DEFAULT "/usr/share/weir/bounce/rules.conf"

/* bounce_rules_check - the setting's check (weirctl check, config load):
 * -1 with *err_r (static, per thread) when path cannot be loaded; the
 * default path may be missing */
int bounce_rules_check(const char *path, const char **err_r);

/* A classification */
struct bounce_class {
	const char *reason; /* Sisimai's name; static or the rules' (lives with them) */
	bool hard;          /* the address will not work later either */
};

/* bounce_classify_reply - an SMTP reply: code (e.g. 550), enhanced status
 * ("5.1.1", or NULL) and text (or NULL) */
void bounce_classify_reply(const struct bounce_rules *r, int code, const char *status,
                           const char *text, struct bounce_class *out);

/* bounce_classify_reply_after - the same for a reply to a known SMTP
 * command (after: "CONNECT", "HELO", "MAIL", "RCPT" or "DATA"; NULL when
 * unknown), so rules with after= apply: a "user unknown" answer to DATA,
 * after RCPT was accepted, is a content filter's (filtered) */
void bounce_classify_reply_after(const struct bounce_rules *r, const char *after, int code,
				 const char *status, const char *text, struct bounce_class *out);

enum bounce_kind {
	BOUNCE_NONE,      /* not a bounce (nothing found) */
	BOUNCE_DSN,       /* RFC 3464 */
	BOUNCE_TEXT,      /* a non-standard bounce an MTA or provider wrote */
	BOUNCE_COMPLAINT, /* RFC 5965 ARF */
	BOUNCE_AUTOREPLY, /* RFC 3834 (vacation etc.): not a bounce */
};

/* One failed recipient (or the complained-about one) */
struct bounce_rcpt {
	char *recipient;  /* as found (Final-Recipient, or the text's), lowercased domain */
	char *status;     /* "5.1.1", or NULL */
	int code;         /* SMTP reply code, or 0 */
	char *diagnostic; /* the reply / diagnostic text, or NULL */
	struct bounce_class cls;
};

struct bounce_report {
	enum bounce_kind kind;
	struct bounce_rcpt *rcpts; /* in the order of the message; index = position + 1 */
	size_t nrcpts;
	char *feedback_type;   /* complaint: "abuse", ... */
	char *original_from;   /* the bounced/complained-about message's sender, if found */
	char *original_msgid;  /* its Message-ID, if found */
	char *original_to;     /* its envelope/header recipient when the report lacks one */
};

/* bounce_parse - read one message (LF, CRLF or CR line endings); 0, or
 * -1 only on a message too large to consider (then rep->kind is NONE).
 * Malformed input never crashes: it yields BOUNCE_NONE or what could be
 * read. */
int bounce_parse(const struct bounce_rules *r, const char *msg, size_t len,
                 struct bounce_report *rep);
void bounce_report_free(struct bounce_report *rep);

/* bounce_verp_decode - a VERP address "bounces+alice=example.com@b.example"
 * (local part prefix "bounces+", '=' for the recipient's '@') back to
 * the recipient, into buf; false when addr is not one */
bool bounce_verp_decode(const char *addr, char *buf, size_t size);
/* bounce_verp_encode - the other way: prefix (the local part before '+')
 * and the bounce domain; false when it does not fit */
bool bounce_verp_encode(const char *rcpt, const char *prefix, const char *domain, char *buf,
                        size_t size);

#endif
