/* smtp_cmd - parse the SMTP/LMTP commands weir-agent receives (pure)
 *
 * No I/O and no allocation, so that tests and the fuzzer can call every
 * function here directly. Addresses follow RFC 5321 4.1.2, with UTF-8
 * octets allowed in a transaction that declared SMTPUTF8 (RFC 6531 3.3);
 * the DSN parameters of RFC 3461 are checked and kept as received. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "delivery-agent/smtp_cmd.h"

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{"HELO", CMD_HELO},	{"EHLO", CMD_EHLO},	{"LHLO", CMD_LHLO},
	{"MAIL", CMD_MAIL},	{"RCPT", CMD_RCPT},	{"DATA", CMD_DATA},
	{"RSET", CMD_RSET},	{"NOOP", CMD_NOOP},	{"QUIT", CMD_QUIT},
	{"VRFY", CMD_VRFY},	{"HELP", CMD_HELP},	{"EXPN", CMD_NOTIMPL},
	{"TURN", CMD_NOTIMPL}, {"ETRN", CMD_NOTIMPL}, {"BDAT", CMD_NOTIMPL},
	{"AUTH", CMD_NOTIMPL}, {"STARTTLS", CMD_NOTIMPL},
};

/* smtp_cmd_parse - split a command line into verb and argument */
void smtp_cmd_parse(const char *line, struct smtp_cmd *cmd)
{
	size_t n = strcspn(line, " ");

	cmd->verb = CMD_UNKNOWN;
	cmd->arg = line[n] == ' ' ? line + n + 1 : line + n;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0) {
			cmd->verb = verbs[i].verb;
			return;
		}
	}
}

/* utf8_ok - octets >= 0x80 count as atext and label characters: set
 * while a path of an SMTPUTF8 transaction is parsed (the parser is not
 * used from several threads) */
static bool utf8_ok;

/* is_atext - RFC 5322 atext (RFC 6531 UTF8-non-ascii when allowed) */
static bool is_atext(char c)
{
	if ((unsigned char)c >= 0x80)
		return utf8_ok;
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* local_part_len - length of a valid local part at s, 0 if invalid */
static size_t local_part_len(const char *s, size_t len)
{
	size_t i = 0;

	if (len > 0 && s[0] == '"') {
		for (i = 1; i < len && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '\\') {
				if (++i >= len || (unsigned char)s[i] < ' ' || (unsigned char)s[i] > '~')
					return 0;
			} else if (c < ' ' || c > '~') {
				return 0;
			}
		}
		return i < len && i > 1 ? i + 1 : 0;
	}
	for (; i < len && s[i] != '@'; i++) {
		if (s[i] == '.') {
			if (i == 0 || s[i - 1] == '.')
				return 0;
		} else if (!is_atext(s[i])) {
			return 0;
		}
	}
	if (i == 0 || s[i - 1] == '.')
		return 0;
	return i;
}

/* domain_valid - a host name or an address literal [...] */
static bool domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 255)
		return false;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return false;
		for (size_t i = 1; i < len - 1; i++)
			if (s[i] < '!' || s[i] > '~' || s[i] == '[' || s[i] == ']' || s[i] == '\\')
				return false;
		return true;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || (c == '-' && label > 0) ||
			   ((unsigned char)c >= 0x80 && utf8_ok)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

/* smtp_address_valid - local@domain, or Postmaster when allowed */
bool smtp_address_valid(const char *s, size_t len, bool allow_postmaster)
{
	size_t l;

	if (allow_postmaster && len == 10 && strncasecmp(s, "postmaster", 10) == 0)
		return true;
	l = local_part_len(s, len);
	if (l == 0 || l > 64 || l >= len || s[l] != '@')
		return false;
	return domain_valid(s + l + 1, len - l - 1);
}

/* parse_path - "<...>" at *p (after optional spaces), with an optional
 * source route "@a,@b:" dropped; copies the mailbox to addr. Returns 0,
 * -1 for bad syntax of the brackets, -2 for a bad address. */
static int parse_path(const char **p, char *addr, bool null_ok, bool postmaster_ok)
{
	const char *s = *p, *end, *mbox;
	size_t len;

	while (*s == ' ')
		s++;
	if (*s != '<')
		return -1;
	s++;
	end = s;
	/* find the closing bracket, skipping quoted strings */
	for (bool quoted = false; *end && (quoted || *end != '>'); end++) {
		if (*end == '\\' && quoted && end[1])
			end++;
		else if (*end == '"')
			quoted = !quoted;
	}
	if (*end != '>')
		return -1;
	len = (size_t)(end - s);
	*p = end + 1;
	mbox = s;
	if (len > 0 && s[0] == '@') {
		const char *colon = memchr(s, ':', len);
		if (colon == NULL)
			return -2;
		len -= (size_t)(colon + 1 - s);
		mbox = colon + 1;
	}
	if (len == 0 && null_ok) {
		addr[0] = '\0';
		return 0;
	}
	if (len > SMTP_PATH_MAX || !smtp_address_valid(mbox, len, postmaster_ok))
		return -2;
	memcpy(addr, mbox, len);
	addr[len] = '\0';
	return 0;
}

/* parse_size - decimal SIZE value */
static int parse_size(const char *v, size_t n, long long *size_r)
{
	long long x = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*size_r = x;
	return 0;
}

/* xtext_valid - RFC 3461 4: printable ASCII but '=' and space, '+'
 * followed by two upper-case hex digits; 1 to max octets */
static bool xtext_valid(const char *v, size_t n, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '!' || v[i] > '~' || v[i] == '=')
			return false;
		if (v[i] == '+') {
			if (i + 2 >= n)
				return false;
			if (strchr(hex, v[i + 1]) == NULL || strchr(hex, v[i + 2]) == NULL)
				return false;
			i += 2;
		}
	}
	return true;
}

/* param_fn - one parameter (p, n bytes: "KEY" or "KEY=VALUE") into ctx */
typedef int param_fn(const char *p, size_t n, void *ctx, const char **err_r);

/* each_param - the space-separated parameters after the path, each to fn;
 * anything but a space after the path is the syntax error given */
static int each_param(const char *p, param_fn *fn, void *ctx, const char *syntax,
                      const char **err_r)
{
	while (*p) {
		size_t n;
		if (*p != ' ') {
			*err_r = syntax;
			return -1;
		}
		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n > 0 && fn(p, n, ctx, err_r) < 0)
			return -1;
		p += n;
	}
	return 0;
}

/* mail_param - apply one "KEY=VALUE" of MAIL */
static int mail_param(const char *p, size_t n, void *ctx, const char **err_r)
{
	struct smtp_mail *m = ctx;
	const char *eq = memchr(p, '=', n);
	size_t klen = eq ? (size_t)(eq - p) : n, vlen = eq ? n - klen - 1 : 0;
	const char *v = eq ? eq + 1 : "";

	if (klen == 4 && strncasecmp(p, "SIZE", 4) == 0) {
		if (m->size >= 0 || parse_size(v, vlen, &m->size) < 0) {
			*err_r = "501 5.5.4 Bad SIZE parameter";
			return -1;
		}
		return 0;
	}
	if (klen == 4 && strncasecmp(p, "BODY", 4) == 0) {
		if (m->body == BODY_NONE && vlen == 4 && strncasecmp(v, "7BIT", 4) == 0)
			m->body = BODY_7BIT;
		else if (m->body == BODY_NONE && vlen == 8 && strncasecmp(v, "8BITMIME", 8) == 0)
			m->body = BODY_8BITMIME;
		else {
			*err_r = "501 5.5.4 Bad BODY parameter";
			return -1;
		}
		return 0;
	}
	if (klen == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0 && eq == NULL) {
		m->smtputf8 = true;
		return 0;
	}
	if (klen == 3 && strncasecmp(p, "RET", 3) == 0) {
		if (m->ret[0] != '\0' || vlen != 4 ||
		    (strncasecmp(v, "FULL", 4) != 0 && strncasecmp(v, "HDRS", 4) != 0)) {
			*err_r = "501 5.5.4 Bad RET parameter";
			return -1;
		}
		snprintf(m->ret, sizeof(m->ret), "%.4s", v);
		for (char *q = m->ret; *q; q++)
			*q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
		return 0;
	}
	if (klen == 5 && strncasecmp(p, "ENVID", 5) == 0) {
		if (m->envid[0] != '\0' || !xtext_valid(v, vlen, SMTP_ENVID_MAX)) {
			*err_r = "501 5.5.4 Bad ENVID parameter";
			return -1;
		}
		memcpy(m->envid, v, vlen);
		m->envid[vlen] = '\0';
		return 0;
	}
	*err_r = "555 5.5.4 Unsupported MAIL parameter";
	return -1;
}

/* smtp_parse_mail - "FROM:<addr> params" */
int smtp_parse_mail(const char *arg, struct smtp_mail *m, const char **err_r)
{
	const char *p = arg;
	int r;

	m->addr[0] = '\0';
	m->size = -1;
	m->body = BODY_NONE;
	m->smtputf8 = false;
	m->ret[0] = m->envid[0] = '\0';
	if (strncasecmp(p, "FROM:", 5) != 0) {
		*err_r = "501 5.5.4 Syntax: MAIL FROM:<address>";
		return -1;
	}
	p += 5;
	utf8_ok = true; /* checked below, once SMTPUTF8 is known */
	r = parse_path(&p, m->addr, true, false);
	utf8_ok = false;
	if (r < 0) {
		*err_r = r == -1 ? "501 5.5.4 Syntax: MAIL FROM:<address>"
				 : "501 5.1.7 Bad sender address syntax";
		return -1;
	}
	if (each_param(p, mail_param, m, "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]",
	               err_r) < 0)
		return -1;
	if (!m->smtputf8)
		for (const char *q = m->addr; *q; q++)
			if ((unsigned char)*q >= 0x80) {
				*err_r = "553 5.6.7 a non-ASCII address needs SMTPUTF8";
				return -1;
			}
	return 0;
}

/* rcpt_param - one NOTIFY= or ORCPT= of RCPT */
static int rcpt_param(const char *p, size_t n, void *ctx, const char **err_r)
{
	struct smtp_rcpt *r = ctx;
	const char *eq = memchr(p, '=', n);
	size_t klen = eq ? (size_t)(eq - p) : n, vlen = eq ? n - klen - 1 : 0;
	const char *v = eq ? eq + 1 : "";

	if (klen == 6 && strncasecmp(p, "NOTIFY", 6) == 0) {
		bool never = vlen == 5 && strncasecmp(v, "NEVER", 5) == 0;
		for (size_t i = 0; !never && i < vlen;) {
			size_t k = strcspn(v + i, ",");
			if (k > vlen - i)
				k = vlen - i;
			if (!((k == 7 && strncasecmp(v + i, "SUCCESS", 7) == 0) ||
			      (k == 7 && strncasecmp(v + i, "FAILURE", 7) == 0) ||
			      (k == 5 && strncasecmp(v + i, "DELAY", 5) == 0)))
				goto bad_notify;
			i += k + 1;
		}
		if (r->notify[0] != '\0' || vlen == 0 || vlen >= sizeof(r->notify))
			goto bad_notify;
		memcpy(r->notify, v, vlen);
		r->notify[vlen] = '\0';
		return 0;
bad_notify:
		*err_r = "501 5.5.4 Bad NOTIFY parameter";
		return -1;
	}
	if (klen == 5 && strncasecmp(p, "ORCPT", 5) == 0) {
		const char *semi = memchr(v, ';', vlen);
		if (r->orcpt[0] != '\0' || semi == NULL || semi == v ||
		    !xtext_valid(semi + 1, vlen - (size_t)(semi + 1 - v), SMTP_ORCPT_MAX) ||
		    vlen > SMTP_ORCPT_MAX) {
			*err_r = "501 5.5.4 Bad ORCPT parameter";
			return -1;
		}
		memcpy(r->orcpt, v, vlen);
		r->orcpt[vlen] = '\0';
		return 0;
	}
	*err_r = "555 5.5.4 Unsupported RCPT parameter";
	return -1;
}

/* smtp_parse_rcpt_params - "TO:<addr> [NOTIFY=...] [ORCPT=...]" */
int smtp_parse_rcpt_params(const char *arg, struct smtp_rcpt *rc, bool utf8, const char **err_r)
{
	const char *p = arg;
	int r;

	rc->addr[0] = rc->notify[0] = rc->orcpt[0] = '\0';
	if (strncasecmp(p, "TO:", 3) != 0) {
		*err_r = "501 5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	p += 3;
	utf8_ok = utf8;
	r = parse_path(&p, rc->addr, false, true);
	utf8_ok = false;
	if (r < 0) {
		*err_r = r == -1 ? "501 5.5.4 Syntax: RCPT TO:<address>"
				 : "501 5.1.3 Bad recipient address syntax";
		return -1;
	}
	return each_param(p, rcpt_param, rc, "501 5.5.4 Syntax: RCPT TO:<address> [parameters]",
	                  err_r);
}

/* smtp_parse_rcpt - "TO:<addr>"; no parameters are supported */
int smtp_parse_rcpt(const char *arg, char *addr_r, const char **err_r)
{
	const char *p = arg;
	int r;

	if (strncasecmp(p, "TO:", 3) != 0) {
		*err_r = "501 5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	p += 3;
	r = parse_path(&p, addr_r, false, true);
	if (r < 0) {
		*err_r = r == -1 ? "501 5.5.4 Syntax: RCPT TO:<address>"
				 : "501 5.1.3 Bad recipient address syntax";
		return -1;
	}
	while (*p == ' ')
		p++;
	if (*p != '\0') {
		*err_r = "555 5.5.4 Unsupported RCPT parameter";
		return -1;
	}
	return 0;
}
