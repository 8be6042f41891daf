/* tls - weir-agent's TLS client contexts (OpenSSL 3) for smart hosts */
#ifndef WEIR_AGENT_TLS_H
#define WEIR_AGENT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;

/* tls_client_new - a client SSL for one session to host (a name or an IP
 * address), from the context for (ca_file, verify), made on first use
 * and kept: ca_file NULL or "" means the system store. With verify:
 * SSL_VERIFY_PEER and the certificate must name host
 * (X509_VERIFY_PARAM_set1_host, or _set1_ip_asc for an address). SNI is
 * sent for names. Returns NULL with a reason in err (a CA file that
 * cannot be read). The caller owns the SSL (a bufferevent made with
 * BEV_OPT_CLOSE_ON_FREE frees it). */
SSL *tls_client_new(const char *ca_file, bool verify, const char *host, char *err, size_t errsize);

/* tls_failure - why the handshake on bev (whose SSL is ssl) failed: the
 * certificate check's verdict when there was one, else OpenSSL's error,
 * else what, into buf */
const char *tls_failure(struct bufferevent *bev, SSL *ssl, const char *what, char *buf,
                        size_t size);

/* tls_contexts_free - free the kept contexts (exit, tests); sessions
 * still open keep theirs alive (SSL_CTX is reference counted) */
void tls_contexts_free(void);

#endif
