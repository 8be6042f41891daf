/* upstream - one SMTP client session to the smart host */
#ifndef WEIR_AGENT_UPSTREAM_H
#define WEIR_AGENT_UPSTREAM_H

#include <stdbool.h>

#include "lib/smtp_reply.h"

struct event_base;
struct evbuffer;
struct dns;
struct weir_config;
struct upstream;

/* Result of one step. Either reply is the smart host's complete reply
 * (any code), or reply is NULL and fail is a complete 4xx reply line for
 * the client ("451 4.4.1 smart host x unreachable: ..."): the session is
 * then closed. Called from the event loop only, never from inside the
 * call that started the step; the callee may free the upstream. */
typedef void upstream_cb(void *ctx, const struct smtp_reply *reply, const char *fail);

/* upstream_new - a session object, not yet connected; holds a reference
 * to cfg and dns. */
struct upstream *upstream_new(struct event_base *base, struct dns *dns, struct weir_config *cfg);
/* upstream_free - close (sending QUIT when idle) and free; pending
 * callbacks are dropped. NULL is ok. */
void upstream_free(struct upstream *up);

/* upstream_ready - connected, greeted and between commands */
bool upstream_ready(const struct upstream *up);
/* upstream_open - connect, read the greeting, EHLO (HELO on 5xx); on
 * success cb gets the EHLO/HELO reply (2xx). */
void upstream_open(struct upstream *up, upstream_cb *cb, void *ctx);
/* upstream_command - send one line (no CRLF), wait for the reply */
void upstream_command(struct upstream *up, const char *line, upstream_cb *cb, void *ctx);
/* upstream_data - DATA, then on 354 the message (CRLF lines, already
 * dot-stuffed) and ".": cb gets the final reply, or the DATA reply when
 * that was not 354. msg is drained. */
void upstream_data(struct upstream *up, struct evbuffer *msg, upstream_cb *cb, void *ctx);

/* Session facts for the relay logic. */
bool upstream_has_8bitmime(const struct upstream *up);
bool upstream_has_size(const struct upstream *up);
/* upstream_in_txn - MAIL was accepted and no DATA/RSET ended it yet */
bool upstream_in_txn(const struct upstream *up);
void upstream_set_in_txn(struct upstream *up, bool on);
/* upstream_name - "host[ip]:port" of the connected (or last tried) address */
const char *upstream_name(const struct upstream *up);

#endif
