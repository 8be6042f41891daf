/* verp - VERP for routes with verp = "bounce.domain": the message goes
 * to each recipient in a transaction of its own with MAIL FROM
 * bounce.verp_prefix+LOCAL=DOMAIN@bounce.domain, so that a bounce names
 * its recipient by the address it comes back to */
#ifndef WEIR_AGENT_VERP_H
#define WEIR_AGENT_VERP_H

#include <stdbool.h>

struct client;
struct dest;
struct route;

/* verp_applies - does route r send this transaction with VERP (a VERP
 * route, and not the null sender) */
bool verp_applies(const struct client *c, const struct route *r);
/* verp_dest_new - dest_new, with the VERP MAIL FROM for rcpt when r is a
 * VERP route (such a destination carries rcpt only) */
struct dest *verp_dest_new(struct client *c, const struct route *r, const char *domain,
                           const char *rcpt);

#endif
