/* rate_redis_conn - the rate store's Redis backend's connections: one per
 * thread and store (policy/redis_conn.h does the connecting), and outages
 * decided by rate.fail_mode. Internal to rate_redis*.c. */
#ifndef WEIR_POLICY_RATE_REDIS_CONN_H
#define WEIR_POLICY_RATE_REDIS_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "policy/rate_redis.h"
#include "policy/redis_conn.h"

/* One thread's connection */
struct rr_conn {
	struct redis_conn link; /* settings, context, script SHA1, error */
	struct rate_redis *r;
	unsigned gen; /* r->gen link.set was taken at */
	/* under rate_redis_conn.c's registry_lock: */
	struct rr_conn *prev, *next; /* the store's connections */
	struct rr_thread *thread;    /* the thread's */
	struct rr_conn *thread_next;
};

struct rate_redis {
	pthread_mutex_t lock; /* set */
	struct redis_settings *set;
	atomic_bool fail_open; /* rate.fail_mode */
	atomic_uint gen;       /* bumped by reconfigure */
	atomic_uint up_epoch;  /* bumped when Redis is reached after an outage */
	atomic_bool down;      /* in an outage (logged) */
	atomic_ulong outage_failures;
	struct rr_conn *conns; /* under registry_lock */
};

/* The charge script (rate_redis.c), loaded on every new connection */
extern const char rr_charge_script[];

/* rr_conn_get - this thread's connection to r (made on first use, taking
 * new settings after a reconfigure), not necessarily connected */
struct rr_conn *rr_conn_get(struct rate_redis *r);
/* rr_backend_failed - a decision Redis could not make: counted, the start
 * of an outage logged, *v decided by fail_mode */
void rr_backend_failed(struct rr_conn *conn, struct rate_verdict *v);
/* rr_backend_ok - Redis decided: ends an outage (logged) */
void rr_backend_ok(struct rr_conn *conn);

#endif
