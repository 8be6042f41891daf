/* dest - one destination of a transaction: a route's smart host (chosen
 * by the pool) or, for an mx route, the recipient domain's MX hosts; its
 * upstream session carries MAIL, the RCPTs of its recipients and DATA.
 * Every callback runs from the event loop, never from inside the call
 * that started the step. */
#ifndef WEIR_AGENT_DEST_H
#define WEIR_AGENT_DEST_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/smtp_reply.h"

struct client;
struct route;
struct rcpt;
struct evbuffer;

enum dest_state {
	D_NEW,
	D_RESOLVING, /* MX lookup */
	D_OPENING,   /* pool_open */
	D_MAIL,      /* MAIL sent */
	D_OPEN,      /* MAIL accepted: RCPTs may follow */
	D_FAILED,    /* see dest_fail_line */
	D_DATA,      /* DATA sent */
	D_DONE,      /* answered after DATA */
};

typedef void dest_open_cb(struct dest *d);
typedef void dest_reply_cb(struct dest *d, const struct smtp_reply *reply, const char *fail);

/* dest_new - a destination of c for route r (domain: the recipient
 * domain of an mx route, else NULL) */
struct dest *dest_new(struct client *c, const struct route *r, const char *domain);
/* dest_free - give the session back (or close it when a command is
 * pending); cancel lookups. NULL is ok. */
void dest_free(struct dest *d);
/* dest_is - d is the destination of route r (and domain); never for a
 * destination with a MAIL FROM of its own (VERP: one recipient each) */
bool dest_is(const struct dest *d, const struct route *r, const char *domain);
/* dest_mail_from - before dest_open: MAIL FROM addr instead of the
 * transaction's sender (VERP); copied */
void dest_mail_from(struct dest *d, const char *addr);
enum dest_state dest_state(const struct dest *d);

/* dest_open - session, MAIL FROM with its parameters; then done runs
 * with the state D_OPEN or D_FAILED */
void dest_open(struct dest *d, dest_open_cb *done);
/* dest_fail_line - the answer for rcpt (an address, or NULL for the
 * whole transaction) of a failed destination; caller frees */
char *dest_fail_line(const struct dest *d, const char *rcpt);
/* dest_fail_code - its code */
int dest_fail_code(const struct dest *d);
/* dest_fail_reply - the upstream's own reply that made it fail (MAIL
 * refused, a greeting or other refusal while the session was opened),
 * or NULL; valid while d is */
const struct smtp_reply *dest_fail_reply(const struct dest *d);
/* dest_max_messages - before dest_open: a new session to the MX host
 * carries at most n messages (throttle messages_per_session; 0: the
 * route's max_messages only) */
void dest_max_messages(struct dest *d, int n);
/* dest_rcpt - RCPT TO (with NOTIFY/ORCPT when the upstream has DSN).
 * May be called again before done ran (PIPELINING, see upstream_command):
 * done runs once per RCPT, in order, except that after a reply with the
 * session gone (dest_connected false) no more come for the RCPTs sent
 * after it. */
void dest_rcpt(struct dest *d, const struct rcpt *r, dest_reply_cb *done);
/* dest_data - DATA and the message (not drained: each destination sends
 * its own reference); done gets the final reply */
void dest_data(struct dest *d, struct evbuffer *msg, dest_reply_cb *done);
/* dest_connected - the session is there (ready or waiting for replies) */
bool dest_connected(const struct dest *d);
/* dest_pipelining - the upstream offered PIPELINING */
bool dest_pipelining(const struct dest *d);
/* dest_name - "host[ip]:port" of the session, or the route's name */
const char *dest_name(const struct dest *d);
/* dest_client - the client session it belongs to */
struct client *dest_client(const struct dest *d);
/* dest_route - the route */
const struct route *dest_route(const struct dest *d);

/* For the relay logic: work lists per destination */
struct dest_work {
	size_t *rcpts; /* indexes into the transaction's recipients */
	size_t n, next; /* recipients; the next one to be answered */
	size_t sent;    /* RCPTs sent */
	size_t accepted;
	int code; /* final code after DATA */
};
struct dest_work *dest_work(struct dest *d);

#endif
