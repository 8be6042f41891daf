/* rate_dispatch - rate_store.h's functions: to the memory backend
 * (rate_store.c) or the Redis backend (rate_redis.c) as rate.backend says
 *
 * A reload that changes rate.backend opens the new backend and swaps it
 * in under a write lock (decisions hold the read lock), then closes the
 * old one; the memory backend's counters stay in rate.state_db, they are
 * not copied into Redis. If the new backend cannot be set up, the old one
 * keeps deciding and the error is logged. */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_mem.h"
#include "policy/rate_redis.h"
#include "policy/rate_store.h"

struct rate_store {
	pthread_rwlock_t lock; /* backend, mem, redis: written by a backend change */
	int backend;           /* enum rate_backend */
	bool admin;
	struct rate_mem *mem;
	struct rate_redis *redis;
};

static const char *backend_name(int backend)
{
	return backend == RATE_BACKEND_REDIS ? "redis" : "memory";
}

/* open_backend - the backend cfg names into s (not yet shared) */
static int open_backend(struct rate_store *s, const struct weir_config *cfg, char **err_r)
{
	s->backend = cfg->rate.backend;
	s->mem = NULL;
	s->redis = NULL;
	if (s->backend == RATE_BACKEND_REDIS)
		s->redis = rate_redis_open(cfg, err_r);
	else
		s->mem = rate_mem_open(cfg, s->admin, err_r);
	return s->mem != NULL || s->redis != NULL ? 0 : -1;
}

static struct rate_store *store_open(const struct weir_config *cfg, bool admin, char **err_r)
{
	struct rate_store *s = xcalloc(1, sizeof(*s));

	s->admin = admin;
	if (open_backend(s, cfg, err_r) < 0) {
		free(s);
		return NULL;
	}
	pthread_rwlock_init(&s->lock, NULL);
	return s;
}

struct rate_store *rate_store_open(const struct weir_config *cfg, char **err_r)
{
	return store_open(cfg, false, err_r);
}

struct rate_store *rate_store_open_admin(const struct weir_config *cfg, char **err_r)
{
	return store_open(cfg, true, err_r);
}

static void close_backend(struct rate_store *s)
{
	rate_mem_close(s->mem);
	if (s->redis != NULL)
		rate_redis_close(s->redis);
}

void rate_store_reconfigure(struct rate_store *s, const struct weir_config *cfg)
{
	struct rate_store next = {.admin = s->admin}, old;
	char *err = NULL;

	if (cfg->rate.backend == s->backend) {
		if (s->mem != NULL)
			rate_mem_reconfigure(s->mem, cfg);
		else
			rate_redis_reconfigure(s->redis, cfg);
		return;
	}
	if (open_backend(&next, cfg, &err) < 0) {
		log_error("rate: cannot switch to the %s backend, %s goes on: %s",
		          backend_name(cfg->rate.backend), backend_name(s->backend), err);
		free(err);
		return;
	}
	pthread_rwlock_wrlock(&s->lock);
	old = *s;
	s->backend = next.backend;
	s->mem = next.mem;
	s->redis = next.redis;
	pthread_rwlock_unlock(&s->lock);
	close_backend(&old);
	log_info("rate: backend %s replaces %s", backend_name(next.backend),
	         backend_name(old.backend));
}

void rate_store_close(struct rate_store *s)
{
	if (s == NULL)
		return;
	close_backend(s);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

int rate_charge(struct rate_store *s, const struct rate_item *items, size_t n, bool force,
                long long now_ms, struct rate_verdict *v)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	if (s->mem != NULL)
		rc = rate_mem_charge(s->mem, items, n, force, now_ms, v);
	else
		rc = rate_redis_charge(s->redis, items, n, force, v);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int rate_store_show(struct rate_store *s, const char *state_key, FILE *out, char **err_r)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	if (s->mem != NULL)
		rc = rate_mem_show(s->mem, state_key, out, err_r);
	else
		rc = rate_redis_show(s->redis, state_key, out, err_r);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int rate_store_reset(struct rate_store *s, const char *state_key, char **err_r)
{
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	if (s->mem != NULL)
		rc = rate_mem_reset(s->mem, state_key, err_r);
	else
		rc = rate_redis_reset(s->redis, state_key, err_r);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int rate_store_flush(struct rate_store *s)
{
	int rc = 0;

	pthread_rwlock_rdlock(&s->lock);
	if (s->mem != NULL)
		rc = rate_mem_flush(s->mem);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}
