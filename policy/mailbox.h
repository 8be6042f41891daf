/* mailbox - RFC 5322 From / Sender header values as lists of mailboxes
 *
 * All strings are new memory owned by the list; mailbox_list_free releases
 * them. Errors are static strings. */
#ifndef WEIR_POLICY_MAILBOX_H
#define WEIR_POLICY_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

/* Longest header value mailbox_list_parse accepts (octets, folded). */
#define MAILBOX_VALUE_MAX 65536

struct mailbox {
	char *display;     /* display name with quotes removed and RFC 2047 encoded words
	                      decoded to UTF-8 (charsets utf-8, us-ascii, iso-8859-1; others
	                      are left encoded); control characters that decoding produced
	                      are shown as '?'; NULL if there is none */
	char *display_raw; /* the same before RFC 2047 decoding; NULL if none */
	char *comment;     /* text of the comments around the mailbox, joined by spaces,
	                      undecoded (some readers show it when there is no display
	                      name); NULL if none */
	char *addr;        /* canonical address as address_parse makes it (lowercased) */
	char *domain;      /* lowercased domain (an address literal keeps its brackets) */
	unsigned tricks;   /* enum address_trick bits (policy/address.h) */
};

struct mailbox_list {
	struct mailbox *v;
	size_t n;
};

/* mailbox_list_parse - parse an address-list header value as the milter
 * passes it (folded with CRLF or LF + WSP, or unfolded). Groups count as
 * their members ("undisclosed-recipients:;" gives n = 0); comments (nested)
 * are skipped; obsolete forms tolerated: obs-route in angle addresses,
 * CFWS around '.' and '@', empty list elements, a missing ';' at the end of
 * a group. An unquoted display name may hold '@' ("bob@evil.com <a@b>"): it
 * parses, and mailbox_display_hides_address reports it. Fills *out and
 * returns 0 (n may be 0 only for empty groups), or -1 with *err_r set and
 * *out empty. */
int mailbox_list_parse(const char *value, struct mailbox_list *out, const char **err_r);
/* mailbox_list_free - free every mailbox and the array; l is emptied */
void mailbox_list_free(struct mailbox_list *l);

/* mailbox_display_hides_address - true if the display name (raw and RFC 2047
 * decoded) holds something that looks like an address (local@domain.tld,
 * with or without <>) other than m->addr (ASCII case ignored); or if encoded
 * words decode to CR, LF, NUL, or to text with '<', '@', '>' in that order.
 * The comments are checked the same way (readers show them as the name when
 * there is none, and no honest From needs another address there). */
bool mailbox_display_hides_address(const struct mailbox *m);

#endif
