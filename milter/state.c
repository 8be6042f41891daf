/* state - weir-milter's per-configuration state (see state.h) */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "lib/dns_wait.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/dkim.h"
#include "milter/state.h"
#include "policy/preflight.h"
#include "policy/spf.h"
#include "policy/suppress.h"

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;

static void state_free(void *p)
{
	struct milter_state *s = p;

	suppress_close(s->suppress);
	pthread_mutex_destroy(&s->suppress_lock);
	preflight_free(s->preflight);
	spf_engine_free(s->spf);
	dkim_state_free(s->dkim);
	dns_wait_free(s->dns);
	free(s);
}

static struct milter_state *state_new(struct weir_config *cfg)
{
	struct milter_state *s = xcalloc(1, sizeof(*s));
	const char *err = NULL;

	s->dns = dns_wait_new(cfg->resolver, cfg->resolver_timeout, &err);
	if (s->dns == NULL)
		log_error("resolver %s: %s; DKIM and SPF checks give temperror", cfg->resolver,
			  err);
	s->dkim = dkim_state_new(cfg, s->dns);
	if (s->dns != NULL && (s->spf = spf_engine_new(s->dns, &err)) == NULL)
		log_error("SPF: %s; SPF checks give temperror", err);
	if (s->spf != NULL) {
		spf_engine_set_receiver(s->spf, cfg->hostname);
		spf_engine_set_timeout(s->spf, cfg->spf.timeout);
		s->preflight = preflight_new(cfg, s->spf, s->dns);
	}
	pthread_mutex_init(&s->suppress_lock, NULL);
	return s;
}

static long long monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec;
}

struct suppress *milter_state_suppress(struct milter_state *s, const struct weir_config *cfg,
				       char **err_r)
{
	struct suppress *store;

	*err_r = NULL;
	pthread_mutex_lock(&s->suppress_lock);
	if (s->suppress == NULL && monotonic_now() >= s->suppress_retry) {
		/* created here when missing (weir-milter runs as the user
		 * that owns the directory), then looked up read-only */
		s->suppress = suppress_open_flags(cfg, SUPPRESS_CREATE | SUPPRESS_READONLY, err_r);
		if (s->suppress == NULL)
			s->suppress_retry = monotonic_now() + 60;
	}
	store = s->suppress;
	pthread_mutex_unlock(&s->suppress_lock);
	return store;
}

struct milter_state *milter_state_of(struct weir_config *cfg)
{
	struct milter_state *s;

	pthread_mutex_lock(&state_lock);
	if (cfg->daemon_state == NULL) {
		cfg->daemon_state = state_new(cfg);
		cfg->daemon_state_free = state_free;
	}
	s = cfg->daemon_state;
	pthread_mutex_unlock(&state_lock);
	return s;
}
