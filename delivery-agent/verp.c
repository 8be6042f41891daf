/* verp - the VERP return path of a recipient (see verp.h) */
#include "autoconf.h"

#include <stdio.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/dest.h"
#include "delivery-agent/verp.h"
#include "lib/log.h"
#include "policy/bounce.h"
#include "policy/config.h"
#include "policy/routes.h"

bool verp_applies(const struct client *c, const struct route *r)
{
	return r->verp != NULL && c->txn.from != NULL && c->txn.from[0] != '\0';
}

struct dest *verp_dest_new(struct client *c, const struct route *r, const char *domain,
                           const char *rcpt)
{
	struct dest *d = dest_new(c, r, domain);
	char from[SMTP_PATH_MAX + 1];

	if (!verp_applies(c, r))
		return d;
	if (!bounce_verp_encode(rcpt, c->cfg->bounce.verp_prefix, r->verp, from, sizeof(from))) {
		/* still delivered, and still one recipient per transaction;
		 * its bounce goes to the sender as without VERP */
		log_warning("conn=%lu route=%s: <%s> cannot be VERP-encoded (too long, or '=' "
		            "in its domain): MAIL FROM <%s> kept",
		            c->id, r->name, rcpt, c->txn.from);
		snprintf(from, sizeof(from), "%s", c->txn.from);
	}
	dest_mail_from(d, from);
	return d;
}
