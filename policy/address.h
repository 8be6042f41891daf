/* address - RFC 5321 paths (MAIL FROM / RCPT TO) and domain matching
 *
 * Nothing here allocates in a way the caller cannot see: every char * this
 * module returns or stores is new memory owned by the caller (free() it, or
 * address_free() for a struct address). Errors are static strings. */
#ifndef WEIR_POLICY_ADDRESS_H
#define WEIR_POLICY_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* Forms that route mail somewhere other than the domain after the '@'
 * (RFC 5321 3.6.1 and appendix C, the "percent hack", UUCP bang paths) or
 * to a host named by address. Relay control never treats such an address
 * as local (issue 3, rule 1). */
enum address_trick {
	ADDR_SOURCE_ROUTE = 1, /* <@a,@b:user@c> */
	ADDR_PERCENT = 2,      /* user%host@local, also inside quotes */
	ADDR_BANG = 4,         /* host!user@local, also inside quotes */
	ADDR_QUOTED_AT = 8,    /* "user@host"@local */
	ADDR_IP_LITERAL = 16,  /* user@[192.0.2.1], user@[IPv6:...], user@[tag:...] */
};

/* All strings are owned by the struct; release them with address_free. */
struct address {
	bool null;       /* the null path <> */
	char *local;     /* local part as given, quotes removed, quoted-pairs unescaped;
	                    NULL for <> */
	char *domain;    /* lowercased, one trailing dot removed; an address literal keeps its
	                    brackets ("[192.0.2.1]"); NULL for <> and for a path without '@' */
	char *canonical; /* the whole address lowercased: local part (quoted only where
	                    RFC 5321 needs it), '@', domain; source route dropped; "" for <> */
	unsigned tricks; /* enum address_trick bits */
};

/* address_parse - parse one SMTP path as the MTA passes it to a milter
 * ("<alice@example.com>", "<>", also without brackets, surrounding spaces
 * ignored). A source route is parsed and dropped (the effective address is
 * the mailbox after ':') and ADDR_SOURCE_ROUTE is set. Limits of RFC 5321
 * 4.5.3.1: local part 64 octets (as written, quotes included), domain 255,
 * path 256 including the brackets. Returns 0 and fills *a, or -1 with *err_r
 * set and *a zeroed. */
int address_parse(const char *arg, struct address *a, const char **err_r);
/* address_free - free the strings of a (not a itself); a is zeroed */
void address_free(struct address *a);

/* address_quote_local - local part in the form RFC 5321 4.1.2 asks for:
 * unchanged when it is a dot-string (empty atoms tolerated, as in
 * address_parse), else a quoted-string with '"' and '\' escaped. New memory. */
char *address_quote_local(const char *local);

/* address_strip_plus - "alice+tag@d" -> "alice@d": the local part of
 * canonical is cut at its first character that is in separators. Nothing is
 * cut when separators is NULL or "", when the cut would leave an empty local
 * part (as Postfix does), or when the local part is quoted. New memory. */
char *address_strip_plus(const char *canonical, const char *separators);

/* domain_normalize - lowercase (ASCII), drop one trailing dot, check the
 * labels: letters, digits, '-', '_' and octets >= 0x80 (SMTPUTF8), 1 to 63
 * octets each, 255 in all. New memory, or NULL with *err_r set. Address
 * literals are not domains here. */
char *domain_normalize(const char *domain, const char **err_r);
/* domain_pattern_normalize - "d" or ".d" (d and its subdomains), d
 * through domain_normalize; NULL with *err_r */
char *domain_pattern_normalize(const char *pattern, const char **err_r);

/* domain_in_list - true if domain (normalized) equals an entry, or an entry
 * begins with '.' and domain is that domain or a subdomain of it
 * (".example.com" matches example.com and a.example.com). Entries are
 * normalized already; comparison ignores ASCII case. NULL domain: false. */
bool domain_in_list(const char *domain, char *const *entries, size_t n);

/* address_glob - case-insensitive (ASCII) match of the whole addr against a
 * pattern where '*' is any run of octets and '?' exactly one octet */
bool address_glob(const char *pattern, const char *addr);

#endif
