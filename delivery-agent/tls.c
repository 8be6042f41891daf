/* tls - TLS client contexts for smart hosts
 *
 * One SSL_CTX per distinct (CA file, verify) pair, made when a session
 * first needs it and kept for the life of the process: loading the
 * system store costs milliseconds and every session would pay it. A CA
 * file that changed since (mtime, size) gets a fresh context; sessions
 * that hold the old one keep it through their SSL's reference.
 * weir-agent runs one event loop thread, so the list needs no lock. */
#include "autoconf.h"

#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "delivery-agent/tls.h"
#include "lib/xalloc.h"

struct tls_ctx {
	char *ca_file; /* "" = the system store */
	bool verify;
	struct timespec mtime;
	off_t size;
	SSL_CTX *ctx;
	struct tls_ctx *next;
};

static struct tls_ctx *contexts;

/* ssl_error - OpenSSL's latest error as text, into buf ("" if none) */
static const char *ssl_error(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	buf[0] = '\0';
	if (e != 0)
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

/* make_ctx - a new client context; NULL with err */
static SSL_CTX *make_ctx(const char *ca_file, bool verify, char *err, size_t errsize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char e[256];

	if (ctx == NULL) {
		snprintf(err, errsize, "cannot make a TLS context: %s", ssl_error(e, sizeof(e)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* no renegotiation, no compression: SMTP needs neither */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (verify) {
		int ok = ca_file[0] != '\0' ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
		                            : SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			snprintf(err, errsize, "cannot load the CA certificates from %s: %s",
			         ca_file[0] ? ca_file : "the system store",
			         ssl_error(e, sizeof(e)));
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

/* get_ctx - the kept context for (ca_file, verify); NULL with err */
static SSL_CTX *get_ctx(const char *ca_file, bool verify, char *err, size_t errsize)
{
	struct stat st = {0};
	struct tls_ctx *t;
	SSL_CTX *ctx;

	if (!verify)
		ca_file = ""; /* nothing is checked: one context serves all */
	if (ca_file[0] != '\0' && stat(ca_file, &st) < 0) {
		snprintf(err, errsize, "CA file %s: %s", ca_file, strerror(errno));
		return NULL;
	}
	for (t = contexts; t != NULL; t = t->next)
		if (t->verify == verify && strcmp(t->ca_file, ca_file) == 0)
			break;
	if (t != NULL && t->size == st.st_size && t->mtime.tv_sec == st.st_mtim.tv_sec &&
	    t->mtime.tv_nsec == st.st_mtim.tv_nsec)
		return t->ctx;
	if ((ctx = make_ctx(ca_file, verify, err, errsize)) == NULL)
		return NULL;
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		t->ca_file = xstrdup(ca_file);
		t->verify = verify;
		t->next = contexts;
		contexts = t;
	}
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	t->mtime = st.st_mtim;
	t->size = st.st_size;
	return ctx;
}

/* is_address - host is an IPv4 or IPv6 literal */
static bool is_address(const char *host)
{
	ASN1_OCTET_STRING *a = a2i_IPADDRESS(host);

	ASN1_OCTET_STRING_free(a);
	return a != NULL;
}

SSL *tls_client_new(const char *ca_file, bool verify, const char *host, char *err, size_t errsize)
{
	SSL_CTX *ctx = get_ctx(ca_file ? ca_file : "", verify, err, errsize);
	bool addr = is_address(host);
	SSL *ssl;
	char e[256];

	if (ctx == NULL)
		return NULL;
	if ((ssl = SSL_new(ctx)) == NULL) {
		snprintf(err, errsize, "cannot make a TLS session: %s", ssl_error(e, sizeof(e)));
		return NULL;
	}
	if (!addr && SSL_set_tlsext_host_name(ssl, host) != 1) {
		snprintf(err, errsize, "bad server name for SNI: %s", ssl_error(e, sizeof(e)));
		SSL_free(ssl);
		return NULL;
	}
	if (verify) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		int ok;
		/* no partial wildcards ("f*.example.com"), as RFC 6125 advises */
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = addr ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
		          : X509_VERIFY_PARAM_set1_host(param, host, 0);
		if (ok != 1) {
			snprintf(err, errsize, "cannot set the name to verify: %s",
			         ssl_error(e, sizeof(e)));
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

const char *tls_failure(struct bufferevent *bev, SSL *ssl, const char *what, char *buf, size_t size)
{
	unsigned long first = 0, e;
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	const char *reason;

	/* the first error is the root cause, the others its consequences */
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0)
			first = e;
	ERR_clear_error();
	if (ssl != NULL && v != X509_V_OK && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE)
		snprintf(buf, size, "certificate verification failed: %s",
		         X509_verify_cert_error_string(v));
	else if (first != 0 && (reason = ERR_reason_error_string(first)) != NULL)
		snprintf(buf, size, "%s", reason);
	else if (first != 0)
		ERR_error_string_n(first, buf, size);
	else
		snprintf(buf, size, "%s", what);
	return buf;
}

void tls_contexts_free(void)
{
	while (contexts != NULL) {
		struct tls_ctx *t = contexts;
		contexts = t->next;
		SSL_CTX_free(t->ctx);
		free(t->ca_file);
		free(t);
	}
}
