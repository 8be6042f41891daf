/* state - what weir-milter builds for one configuration: the resolver,
 * libopendkim's handle, the SPF engine, the outbound SPF preflight and
 * the suppression list.
 * Built the first time a message needs it, freed with the configuration
 * (config.h daemon_state), so a reload gets fresh ones and sessions in
 * flight keep theirs. */
#ifndef WEIR_MILTER_STATE_H
#define WEIR_MILTER_STATE_H

#include <pthread.h>

#include "policy/config.h"

struct dkim_state;

struct milter_state {
	struct dns_wait *dns;      /* NULL when the resolver could not be set up */
	struct dkim_state *dkim;   /* never NULL */
	struct spf_engine *spf;    /* NULL without a resolver */
	struct preflight *preflight; /* NULL without an SPF engine */
	/* the suppression list (suppression.milter): read-only lookups;
	 * opened with the state, tried again at most once a minute while it
	 * cannot be (milter_state_suppress) */
	pthread_mutex_t suppress_lock;
	struct suppress *suppress;
	long long suppress_retry; /* monotonic seconds */
};

/* milter_state_of - cfg's state, built on first use; never NULL */
struct milter_state *milter_state_of(struct weir_config *cfg);
/* milter_state_suppress - the suppression list of s (cfg's state); NULL
 * when it cannot be opened now, with *err_r (caller frees) when this
 * call tried and failed, NULL *err_r while waiting to try again */
struct suppress *milter_state_suppress(struct milter_state *s, const struct weir_config *cfg,
				       char **err_r);

#endif
