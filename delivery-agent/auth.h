/* auth - SMTP AUTH (RFC 4954) client side: choosing a mechanism and
 * building each mechanism's responses. No I/O except the XOAUTH2 token
 * file; upstream.c sends the lines.
 *
 * Secrets: every string these functions return that holds a secret (or
 * an encoding of one) must be released with auth_secret_free, which
 * wipes it; none of them is ever logged (upstream.c logs AUTH lines as
 * "AUTH MECH <hidden>"). */
#ifndef WEIR_AGENT_AUTH_H
#define WEIR_AGENT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "delivery-agent/ehlo.h"
#include "policy/routes.h"

/* auth_mech_name - "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", or "none" */
const char *auth_mech_name(enum auth_mech mech);

/* auth_choose - the mechanism for a host's setting want, given the
 * mechanisms the server offered (enum auth_mech bits) and whether an
 * XOAUTH2 token file is set. ROUTE_AUTH_ANY takes XOAUTH2 when a token
 * file is set, else the best of CRAM-MD5 > PLAIN > LOGIN. Returns
 * AUTH_MECH_NONE with *err_r (static text) when nothing fits. */
enum auth_mech auth_choose(enum route_auth want, unsigned offered, bool have_token,
                           const char **err_r);

/* auth_base64 - base64 (RFC 4648, padded) of len bytes; caller frees */
char *auth_base64(const void *data, size_t len);
/* auth_unbase64 - decode n chars of s (padding optional, no blanks):
 * returns the bytes NUL-terminated in new memory and their count in
 * *len_r, or NULL when s is not base64. Caller frees. */
unsigned char *auth_unbase64(const char *s, size_t n, size_t *len_r);

/* One AUTH exchange. user and secret (the password, or for XOAUTH2 the
 * bearer token) are borrowed and must outlive it. */
struct auth_client {
	enum auth_mech mech;
	const char *user, *secret;
	int step; /* 334 challenges answered so far */
};

/* auth_start - the AUTH command line (no CRLF), with the initial
 * response for PLAIN and XOAUTH2; free with auth_secret_free */
char *auth_start(struct auth_client *a);
/* auth_continue - the answer to a 334 challenge (text after "334 ",
 * still base64): the next line to send (free with auth_secret_free), or
 * NULL with *err_r (static text) when the challenge makes no sense; the
 * caller then sends "*" (RFC 4954 4: cancel). XOAUTH2's 334 carries an
 * error report and is answered with an empty line. */
char *auth_continue(struct auth_client *a, const char *challenge, const char **err_r);

/* auth_cram_md5 - RFC 2195's response to a decoded challenge:
 * base64("user hex(HMAC-MD5(secret, challenge))"); NULL if the HMAC
 * could not be computed. Free with auth_secret_free. */
char *auth_cram_md5(const char *user, const char *secret, const unsigned char *challenge,
                    size_t len);
/* auth_plain - base64("\0user\0secret") (RFC 4616) */
char *auth_plain(const char *user, const char *secret);
/* auth_xoauth2 - base64("user=U^Aauth=Bearer T^A^A") (Google's and
 * Microsoft's SASL XOAUTH2) */
char *auth_xoauth2(const char *user, const char *token);

/* auth_secret_free - wipe a string holding a secret and free it; NULL ok */
void auth_secret_free(char *s);

/* auth_token - the bearer token in path: the file's first line, without
 * surrounding blanks. The file is read again only when its mtime, size
 * or inode changed (a token refresher replaces it). Like the credentials
 * file it must not be readable by group or others. Returns a borrowed
 * string valid until the next call for the same path, or NULL with a
 * reason in err (never holding the token). */
const char *auth_token(const char *path, char *err, size_t errsize);
/* auth_token_cache_free - forget every cached token (exit, tests) */
void auth_token_cache_free(void);

/* auth_redact - a line auth_start or auth_continue made, for a log:
 * "AUTH MECH <hidden>" or "<hidden>" (the mechanism name is kept when it
 * is one weir knows). Into buf. */
const char *auth_redact(const char *line, char *buf, size_t size);

#endif
