/* ehlo - the service extensions of an EHLO reply (RFC 5321 4.1.1.1) */
#ifndef WEIR_AGENT_EHLO_H
#define WEIR_AGENT_EHLO_H

#include <stdbool.h>

/* SASL mechanisms weir can use, as bits of ehlo_caps.auth */
enum auth_mech {
	AUTH_MECH_NONE = 0,
	AUTH_MECH_PLAIN = 1 << 0,
	AUTH_MECH_LOGIN = 1 << 1,
	AUTH_MECH_CRAM_MD5 = 1 << 2,
	AUTH_MECH_XOAUTH2 = 1 << 3,
};

/* What one EHLO reply offered. Parsed once per EHLO (after STARTTLS the
 * earlier answer is forgotten: RFC 3207 4.2). */
struct ehlo_caps {
	bool pipelining;   /* RFC 2920 */
	bool eightbitmime; /* RFC 6152 */
	bool smtputf8;     /* RFC 6531 */
	bool dsn;          /* RFC 3461 */
	bool starttls;     /* RFC 3207 */
	bool chunking;     /* RFC 3030: noted, not used */
	bool has_size;     /* RFC 1870 SIZE keyword seen */
	long long size;    /* its value: 0 = no fixed limit */
	unsigned auth;     /* enum auth_mech bits (AUTH and the old AUTH=) */
};

/* ehlo_parse - fill caps from the text of a 250 EHLO reply as
 * lib/smtp_reply keeps it (lines joined by '\n', the first one the
 * server's name and greeting, which is skipped). Keywords are case-
 * insensitive; unknown ones and bad parameters are ignored (a SIZE
 * that is not a number, or too big, counts as no limit). */
void ehlo_parse(const char *text, struct ehlo_caps *caps);

#endif
