/* state - what weir-milter builds for one configuration: the resolver,
 * libopendkim's handle, the SPF engine and the outbound SPF preflight.
 * Built the first time a message needs it, freed with the configuration
 * (config.h daemon_state), so a reload gets fresh ones and sessions in
 * flight keep theirs. */
#ifndef WEIR_MILTER_STATE_H
#define WEIR_MILTER_STATE_H

#include "policy/config.h"

struct dkim_state;

struct milter_state {
	struct dns_wait *dns;      /* NULL when the resolver could not be set up */
	struct dkim_state *dkim;   /* never NULL */
	struct spf_engine *spf;    /* NULL without a resolver */
	struct preflight *preflight; /* NULL without an SPF engine */
};

/* milter_state_of - cfg's state, built on first use; never NULL */
struct milter_state *milter_state_of(struct weir_config *cfg);

#endif
