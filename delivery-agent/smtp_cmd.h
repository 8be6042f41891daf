/* smtp_cmd - parse the SMTP/LMTP commands weir-agent receives (pure) */
#ifndef WEIR_AGENT_SMTP_CMD_H
#define WEIR_AGENT_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_CMD_MAX_LINE 2048 /* longest command line, without CRLF */
#define SMTP_PATH_MAX 256      /* RFC 5321 4.5.3.1.3 */

enum smtp_verb {
	CMD_UNKNOWN,
	CMD_NOTIMPL, /* a real SMTP command we do not implement: 502 */
	CMD_HELO,
	CMD_EHLO,
	CMD_LHLO,
	CMD_MAIL,
	CMD_RCPT,
	CMD_DATA,
	CMD_RSET,
	CMD_NOOP,
	CMD_QUIT,
	CMD_VRFY,
	CMD_HELP,
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg; /* into the line: text after the verb and one space, "" if none */
};

/* smtp_cmd_parse - split a command line (NUL terminated, no CRLF) */
void smtp_cmd_parse(const char *line, struct smtp_cmd *cmd);

enum smtp_body { BODY_NONE, BODY_7BIT, BODY_8BITMIME };

#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2 */

/* The MAIL arguments. addr is "" for the null sender. */
struct smtp_mail {
	char addr[SMTP_PATH_MAX + 1];
	long long size; /* -1 when not given */
	enum smtp_body body;
	bool smtputf8;               /* RFC 6531 */
	char ret[5];                 /* DSN RET: "FULL", "HDRS" or "" */
	char envid[SMTP_ENVID_MAX + 1]; /* DSN ENVID (xtext as received) or "" */
};

/* The RCPT arguments (RFC 3461 DSN parameters as received, "" if none) */
struct smtp_rcpt {
	char addr[SMTP_PATH_MAX + 1];
	char notify[32];
	char orcpt[SMTP_ORCPT_MAX + 1];
};

/* smtp_parse_mail - the argument of MAIL ("FROM:<a@b> SIZE=1 BODY=8BITMIME").
 * Returns 0, or -1 with *err_r set to the complete (static) reply line
 * to give the client. */
int smtp_parse_mail(const char *arg, struct smtp_mail *m, const char **err_r);

/* smtp_parse_rcpt - the argument of RCPT ("TO:<a@b>"); addr_r must hold
 * SMTP_PATH_MAX + 1 bytes. 0, or -1 with *err_r (reply line). */
int smtp_parse_rcpt(const char *arg, char *addr_r, const char **err_r);
/* smtp_parse_rcpt_params - the same with NOTIFY= and ORCPT=; utf8: the
 * transaction is SMTPUTF8, so non-ASCII addresses are allowed */
int smtp_parse_rcpt_params(const char *arg, struct smtp_rcpt *r, bool utf8, const char **err_r);

/* smtp_address_valid - is s (without brackets) a mailbox "local@domain"
 * with a dot-string or quoted local part and a domain or address literal?
 * "Postmaster" alone is valid when allow_postmaster. */
bool smtp_address_valid(const char *s, size_t len, bool allow_postmaster);

#endif
