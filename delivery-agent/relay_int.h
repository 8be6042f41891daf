/* relay_int - what relay.c (MAIL, RCPT, RSET), relay_data.c (the end
 * of DATA) and intake.c (bounce intake) share; no other file includes it */
#ifndef WEIR_AGENT_RELAY_INT_H
#define WEIR_AGENT_RELAY_INT_H

#include "lib/smtp_reply.h"

struct client;
struct dest;
struct route;
struct rcpt;
struct smtp_rcpt;
struct txn;

/* relay_status_of - the log's status for a reply code: sent, deferred, bounced */
const char *relay_status_of(int code);
/* relay_log_line - one log line for a recipient (or the transaction: rcpt
 * NULL); for a recipient also its outcome row (record.c): call it once
 * per answer the MTA gets about a recipient */
void relay_log_line(struct client *c, const char *rcpt, const struct dest *d, const char *status,
                    const char *reply);
/* relay_outcome - the line for the client from an upstream reply (ok when
 * it is 2xx) or a failure line; *code_r its code; caller frees */
char *relay_outcome(const struct smtp_reply *r, const char *fail, const char *who, const char *ok,
                    const char *relay, int *code_r);
/* relay_domain_of - the lowercased domain of an address, or NULL; caller frees */
char *relay_domain_of(const char *addr);
void relay_add_dest(struct txn *t, struct dest *d);
/* relay_add_rcpt - a recipient answered 2xx (d: its destination, or NULL) */
struct rcpt *relay_add_rcpt(struct client *c, const struct smtp_rcpt *params, struct dest *d);
/* relay_find_dest - the transaction's destination for route r (and domain) */
struct dest *relay_find_dest(struct txn *t, const struct route *r, const char *domain);
struct client *relay_client_of(struct dest *d);

#endif
