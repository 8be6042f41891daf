/* intake - weir-agent's bounce intake: recipients in bounce.domains (the
 * MTA routes bounces and complaints for them to weir-agent over LMTP)
 * are answered here, not relayed; at the end of DATA the message is
 * taken in (policy/intake.c: suppression list, outcome log, webhooks)
 * and each of them gets 250 only once that is on disk, 451 4.3.0 when a
 * store failed (the MTA keeps the message and tries again). */
#ifndef WEIR_AGENT_INTAKE_H
#define WEIR_AGENT_INTAKE_H

#include <stdbool.h>

struct client;

/* intake_rcpt - pending_rcpt is for a bounce domain: answered (or
 * deferred behind RCPTs in flight) here, true; else false */
bool intake_rcpt(struct client *c);
/* intake_in_txn - the transaction has an intake recipient */
bool intake_in_txn(const struct client *c);
/* intake_data - end of DATA: take the message in; every intake
 * recipient gets its line and code */
void intake_data(struct client *c);

#endif
