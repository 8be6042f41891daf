/* dkim - DKIM signing of outgoing mail and verification of mail from
 * outside (libopendkim), and weir's Authentication-Results header */
#ifndef WEIR_MILTER_DKIM_H
#define WEIR_MILTER_DKIM_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/log.h"
#include "milter/mlfi.h"

struct conn;
struct msg;
struct dkim_msg;
struct dkim_state;
struct dns_wait;
struct weir_config;

/* dkim_state_new - libopendkim set up for cfg, resolving through dns
 * (not owned; may be NULL: verification then gives temperror) */
struct dkim_state *dkim_state_new(struct weir_config *cfg, struct dns_wait *dns);
void dkim_state_free(struct dkim_state *st);

/* dkim_msg_start - at end of headers: decide whether to sign (and with which
 * keys) or to verify; feed the headers. Never fails the message: DKIM
 * trouble is logged and the message goes on unsigned. */
void dkim_msg_start(struct conn *c, struct msg *m);
/* dkim_msg_body - a body chunk */
void dkim_msg_body(struct msg *m, const unsigned char *data, size_t len);
/* dkim_msg_finish - at end of message: add the signatures (outgoing
 * mail) and check alignment, or finish verifying (mail from outside):
 * then *ar_r gets the dkim= entries of Authentication-Results, one per
 * line, no separators (caller frees; left alone when verification is off).
 * Returns MLFI_TEMPFAIL when dkim.alignment says so, else CONTINUE.
 * Appends key=value pairs for the message's log line to kv. */
enum mlfi_status dkim_msg_finish(struct conn *c, const struct mlfi_io *io, struct msg *m,
				 struct kvline *kv, char **ar_r);
/* dkim_msg_free - release a message's DKIM state (any path) */
void dkim_msg_free(struct dkim_msg *d);

#endif
