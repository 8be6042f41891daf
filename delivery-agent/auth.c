/* auth - SMTP AUTH client mechanisms (RFC 4954): PLAIN (RFC 4616),
 * LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195) and XOAUTH2
 * (Google's and Microsoft's bearer-token mechanism).
 *
 * Everything that holds a secret is wiped before it is freed
 * (OPENSSL_cleanse, which the compiler may not optimize away). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery-agent/auth.h"
#include "lib/xalloc.h"

#define TOKEN_FILE_MAX 65536

const char *auth_mech_name(enum auth_mech mech)
{
	switch (mech) {
	case AUTH_MECH_PLAIN: return "PLAIN";
	case AUTH_MECH_LOGIN: return "LOGIN";
	case AUTH_MECH_CRAM_MD5: return "CRAM-MD5";
	case AUTH_MECH_XOAUTH2: return "XOAUTH2";
	default: return "none";
	}
}

enum auth_mech auth_choose(enum route_auth want, unsigned offered, bool have_token,
                           const char **err_r)
{
	enum auth_mech m;

	if (offered == 0) {
		*err_r = "the server offers no AUTH mechanism weir knows (PLAIN, LOGIN, CRAM-MD5, "
		         "XOAUTH2)";
		return AUTH_MECH_NONE;
	}
	switch (want) {
	case ROUTE_AUTH_NONE: *err_r = "AUTH is off for this host"; return AUTH_MECH_NONE;
	case ROUTE_AUTH_ANY:
		if (have_token) {
			if (offered & AUTH_MECH_XOAUTH2)
				return AUTH_MECH_XOAUTH2;
			*err_r = "an XOAUTH2 token file is set but the server does not offer "
			         "XOAUTH2";
			return AUTH_MECH_NONE;
		}
		if (offered & AUTH_MECH_CRAM_MD5)
			return AUTH_MECH_CRAM_MD5;
		if (offered & AUTH_MECH_PLAIN)
			return AUTH_MECH_PLAIN;
		if (offered & AUTH_MECH_LOGIN)
			return AUTH_MECH_LOGIN;
		*err_r = "the server offers only XOAUTH2 and no oauth2_token_file is set";
		return AUTH_MECH_NONE;
	case ROUTE_AUTH_PLAIN: m = AUTH_MECH_PLAIN; break;
	case ROUTE_AUTH_LOGIN: m = AUTH_MECH_LOGIN; break;
	case ROUTE_AUTH_CRAM_MD5: m = AUTH_MECH_CRAM_MD5; break;
	case ROUTE_AUTH_XOAUTH2:
		if (!have_token) {
			*err_r = "auth = \"xoauth2\" needs oauth2_token_file";
			return AUTH_MECH_NONE;
		}
		m = AUTH_MECH_XOAUTH2;
		break;
	default: *err_r = "unknown AUTH setting"; return AUTH_MECH_NONE;
	}
	if (!(offered & m)) {
		*err_r = "the server does not offer the configured mechanism";
		return AUTH_MECH_NONE;
	}
	return m;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *auth_base64(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = b64chars[(v >> 6) & 63];
		*o++ = b64chars[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* b64val - the value of one base64 character, -1 for others */
static int b64val(char c)
{
	const char *p = c != '\0' ? strchr(b64chars, c) : NULL;

	return p ? (int)(p - b64chars) : -1;
}

unsigned char *auth_unbase64(const char *s, size_t n, size_t *len_r)
{
	unsigned char *out;
	size_t o = 0, pad = 0;
	unsigned acc = 0;
	int bits = 0;

	while (pad < 2 && n > 0 && s[n - 1] == '=') {
		n--;
		pad++;
	}
	if (n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0))
		return NULL;
	out = xmalloc(n / 4 * 3 + 3);
	for (size_t i = 0; i < n; i++) {
		int v = b64val(s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

void auth_secret_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* b64_wiped - base64 of a buffer that holds a secret, then wipe it */
static char *b64_wiped(char *buf, size_t len)
{
	char *out = auth_base64(buf, len);

	OPENSSL_cleanse(buf, len);
	free(buf);
	return out;
}

char *auth_plain(const char *user, const char *secret)
{
	size_t ul = strlen(user), sl = strlen(secret), len = ul + sl + 2;
	char *buf = xmalloc(len);

	buf[0] = '\0';
	memcpy(buf + 1, user, ul);
	buf[ul + 1] = '\0';
	memcpy(buf + ul + 2, secret, sl);
	return b64_wiped(buf, len);
}

char *auth_xoauth2(const char *user, const char *token)
{
	char *buf = xasprintf("user=%s\001auth=Bearer %s\001\001", user, token);

	return b64_wiped(buf, strlen(buf));
}

/* hmac_md5 - RFC 2104 HMAC-MD5 through OpenSSL 3's EVP_MAC; 0 or -1 */
static int hmac_md5(const char *key, const unsigned char *data, size_t len, unsigned char out[16])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	size_t outlen = 0;
	int ok;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"MD5", 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = ctx != NULL &&
	     EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params) == 1 &&
	     EVP_MAC_update(ctx, data, len) == 1 && EVP_MAC_final(ctx, out, &outlen, 16) == 1 &&
	     outlen == 16;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok ? 0 : -1;
}

char *auth_cram_md5(const char *user, const char *secret, const unsigned char *challenge,
                    size_t len)
{
	unsigned char digest[16];
	char *buf;
	size_t ul = strlen(user), n;

	if (hmac_md5(secret, challenge, len, digest) < 0)
		return NULL;
	n = ul + 1 + 32;
	buf = xmalloc(n + 1);
	memcpy(buf, user, ul);
	buf[ul] = ' ';
	for (size_t i = 0; i < 16; i++)
		snprintf(buf + ul + 1 + 2 * i, 3, "%02x", digest[i]);
	OPENSSL_cleanse(digest, sizeof(digest));
	return b64_wiped(buf, n);
}

char *auth_start(struct auth_client *a)
{
	char *resp, *line;

	a->step = 0;
	switch (a->mech) {
	case AUTH_MECH_PLAIN: resp = auth_plain(a->user, a->secret); break;
	case AUTH_MECH_XOAUTH2: resp = auth_xoauth2(a->user, a->secret); break;
	default:
		/* LOGIN and CRAM-MD5 wait for the server's first challenge */
		return xasprintf("AUTH %s", auth_mech_name(a->mech));
	}
	line = xasprintf("AUTH %s %s", auth_mech_name(a->mech), resp);
	auth_secret_free(resp);
	return line;
}

char *auth_continue(struct auth_client *a, const char *challenge, const char **err_r)
{
	unsigned char *c;
	size_t len;
	char *resp;

	a->step++;
	switch (a->mech) {
	case AUTH_MECH_LOGIN:
		/* the prompts' texts vary ("Username:", "User Name\0"): go by order */
		if (a->step == 1)
			return auth_base64(a->user, strlen(a->user));
		if (a->step == 2)
			return auth_base64(a->secret, strlen(a->secret));
		break;
	case AUTH_MECH_CRAM_MD5:
		if (a->step != 1)
			break;
		c = auth_unbase64(challenge, strlen(challenge), &len);
		if (c == NULL || len == 0) {
			free(c);
			*err_r = "the CRAM-MD5 challenge is not base64";
			return NULL;
		}
		resp = auth_cram_md5(a->user, a->secret, c, len);
		free(c);
		if (resp == NULL)
			*err_r = "HMAC-MD5 is not available in this OpenSSL";
		return resp;
	case AUTH_MECH_PLAIN:
		/* a server that ignored the initial response asks again */
		if (a->step == 1 && (challenge[0] == '\0' || strcmp(challenge, "=") == 0))
			return auth_plain(a->user, a->secret);
		break;
	case AUTH_MECH_XOAUTH2:
		/* a JSON error report: the empty answer makes the server
		 * send its final (5xx) reply */
		if (a->step == 1)
			return xstrdup("");
		break;
	default: break;
	}
	*err_r = "unexpected AUTH challenge";
	return NULL;
}

const char *auth_redact(const char *line, char *buf, size_t size)
{
	size_t n;

	if (strncasecmp(line, "AUTH ", 5) != 0) {
		snprintf(buf, size, "<hidden>");
		return buf;
	}
	n = strcspn(line + 5, " ");
	if (line[5 + n] == '\0')
		snprintf(buf, size, "AUTH %.*s", (int)(n < 16 ? n : 16), line + 5);
	else
		snprintf(buf, size, "AUTH %.*s <hidden>", (int)(n < 16 ? n : 16), line + 5);
	return buf;
}

/* The XOAUTH2 token files read so far: re-read on change. */
struct token_cache {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char *token;
	struct token_cache *next;
};

static struct token_cache *tokens;

/* read_token - the first line of the open file fd, trimmed */
static char *read_token(int fd, off_t size, char *err, size_t errsize)
{
	char *buf = xmalloc((size_t)size + 1), *p, *e;
	ssize_t n = read(fd, buf, (size_t)size);

	if (n < 0 || n != size) {
		snprintf(err, errsize, "short read (the file changed while read?)");
		if (n > 0)
			OPENSSL_cleanse(buf, (size_t)n);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	p = buf + strspn(buf, " \t\r\n");
	e = p + strcspn(p, "\r\n");
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	if (*p == '\0') {
		snprintf(err, errsize, "the file holds no token");
		OPENSSL_cleanse(buf, (size_t)size);
		free(buf);
		return NULL;
	}
	memmove(buf, p, (size_t)(e - p) + 1);
	/* the rest of the file may hold more secrets: wipe it too */
	OPENSSL_cleanse(buf + (e - p) + 1, (size_t)(n - (e - p)));
	return buf;
}

const char *auth_token(const char *path, char *err, size_t errsize)
{
	struct token_cache *t;
	struct stat st;
	char *tok;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & 077) {
		snprintf(err, errsize, "%s: readable by group or others: run chmod 600 %s", path,
		         path);
		close(fd);
		return NULL;
	}
	for (t = tokens; t != NULL; t = t->next)
		if (strcmp(t->path, path) == 0)
			break;
	if (t != NULL && t->dev == st.st_dev && t->ino == st.st_ino && t->size == st.st_size &&
	    t->mtime.tv_sec == st.st_mtim.tv_sec && t->mtime.tv_nsec == st.st_mtim.tv_nsec) {
		close(fd);
		return t->token;
	}
	if (st.st_size > TOKEN_FILE_MAX) {
		snprintf(err, errsize, "%s: larger than %d bytes", path, TOKEN_FILE_MAX);
		close(fd);
		return NULL;
	}
	tok = read_token(fd, st.st_size, err, errsize);
	close(fd);
	if (tok == NULL)
		return NULL;
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		t->path = xstrdup(path);
		t->next = tokens;
		tokens = t;
	}
	auth_secret_free(t->token);
	t->token = tok;
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->size = st.st_size;
	t->mtime = st.st_mtim;
	return t->token;
}

void auth_token_cache_free(void)
{
	while (tokens != NULL) {
		struct token_cache *t = tokens;
		tokens = t->next;
		auth_secret_free(t->token);
		free(t->path);
		free(t);
	}
}
