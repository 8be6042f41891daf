/* upstream - one SMTP client session to a smart host (or an MX host) */
#ifndef WEIR_AGENT_UPSTREAM_H
#define WEIR_AGENT_UPSTREAM_H

#include <stdbool.h>

#include "lib/smtp_reply.h"

struct event_base;
struct evbuffer;
struct dns;
struct weir_config;
struct route_host;
struct upstream;

/* Result of one step. Either reply is the smart host's complete reply
 * (any code), or reply is NULL and fail is a complete 4xx reply line for
 * the client ("451 4.4.1 smart host x unreachable: ..."): the session is
 * then closed. Called from the event loop only, never from inside the
 * call that started the step; the callee may free the upstream. */
typedef void upstream_cb(void *ctx, const struct smtp_reply *reply, const char *fail);

/* upstream_new - a session object for agent.smarthost (TLS "may", no
 * AUTH), not yet connected; holds a reference to cfg and dns. */
struct upstream *upstream_new(struct event_base *base, struct dns *dns, struct weir_config *cfg);
/* upstream_new_host - the same for one host of a route: its port, TLS
 * mode, verification, CA file, AUTH mechanism, credentials and EHLO name.
 * host is borrowed and must outlive the upstream (the pool keeps it
 * with the configuration the upstream holds a reference to). */
struct upstream *upstream_new_host(struct event_base *base, struct dns *dns,
                                   struct weir_config *cfg, const struct route_host *host);
/* upstream_free - close (sending QUIT when idle) and free; pending
 * callbacks are dropped. NULL is ok. */
void upstream_free(struct upstream *up);

/* upstream_ready - connected, greeted and between commands */
bool upstream_ready(const struct upstream *up);
/* upstream_connected - ready, or waiting for the replies to commands */
bool upstream_connected(const struct upstream *up);
/* upstream_open - connect (each address in turn), read the greeting,
 * EHLO (HELO on 5xx), STARTTLS as the host's tls says (then EHLO again),
 * AUTH as its auth says; with tls "implicit" TLS comes first. On success
 * cb gets the last EHLO/HELO reply (2xx). On failure it gets fail (a
 * 451 line: 4.4.x connection, 4.7.5 TLS, 4.7.8 AUTH) and
 * upstream_failure says which step failed; except that an AUTH refusal
 * (535 or 5.7.8) with agent.auth_failure = reject is handed up as the
 * server's own 5xx reply (reply set, fail NULL, the session closed). */
void upstream_open(struct upstream *up, upstream_cb *cb, void *ctx);
/* upstream_command - send one line (no CRLF), wait for the reply. May be
 * called again before the reply comes (ready or waiting for a command's
 * reply, never in DATA): with PIPELINING the line is written at once,
 * without it when the replies before it have come; each caller gets its
 * own reply, in order. When the session fails or closes (421) only the
 * caller waiting at that moment is told; the commands queued after it
 * are dropped and their callers must take the first one's answer. */
void upstream_command(struct upstream *up, const char *line, upstream_cb *cb, void *ctx);
/* upstream_data - DATA, then on 354 the message (CRLF lines, already
 * dot-stuffed) and ".": cb gets the final reply, or the DATA reply when
 * that was not 354. msg is drained. */
void upstream_data(struct upstream *up, struct evbuffer *msg, upstream_cb *cb, void *ctx);

/* Which step of the last upstream_open failed: the pool marks the host
 * down for CONNECT (refused, timed out, no address), GREETING (4xx, or
 * none) and TLS; AUTH is answered as agent.auth_failure says. */
enum upstream_failure {
	UPF_NONE,
	UPF_CONNECT,
	UPF_GREETING,
	UPF_TLS,
	UPF_AUTH,
	UPF_PROTOCOL, /* EHLO/HELO refused, a bad reply, a timeout or a lost connection later */
};
enum upstream_failure upstream_failure(const struct upstream *up);

/* upstream_refusal - the server's own reply when it refused the session
 * at the greeting or EHLO in the last upstream_open (for the throttle's
 * back-off rules), else NULL */
const struct smtp_reply *upstream_refusal(const struct upstream *up);

/* Session facts: the extensions of the last EHLO (false after HELO). */
bool upstream_has_8bitmime(const struct upstream *up);
bool upstream_has_size(const struct upstream *up);
bool upstream_has_pipelining(const struct upstream *up);
bool upstream_has_smtputf8(const struct upstream *up);
bool upstream_has_dsn(const struct upstream *up);
/* upstream_size_limit - SIZE's value: -1 without SIZE, 0 for no limit */
long long upstream_size_limit(const struct upstream *up);

/* The session's TLS, for log lines. */
struct upstream_tls {
	bool active;
	const char *protocol; /* "TLSv1.3", or "none" */
	const char *cipher;   /* "TLS_AES_256_GCM_SHA384", or "none" */
	const char *verified; /* "yes", "no" (verify = false), "not-required" (may, none) */
};
void upstream_tls_info(const struct upstream *up, struct upstream_tls *info);
/* upstream_auth_mech - "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2" or "none" */
const char *upstream_auth_mech(const struct upstream *up);

/* upstream_in_txn - MAIL was accepted and no DATA/RSET ended it yet */
bool upstream_in_txn(const struct upstream *up);
void upstream_set_in_txn(struct upstream *up, bool on);
/* upstream_name - "host[ip]:port" of the connected (or last tried) address */
const char *upstream_name(const struct upstream *up);
/* upstream_host_name - the host's name as configured ("smtp.example.com") */
const char *upstream_host_name(const struct upstream *up);

#endif
