/* rate_redis_conn - connections to Redis for the rate store's Redis
 * backend (rate_redis.c): settings, the password, per-thread connections
 * with timeouts and reconnection, outages. Internal to rate_redis*.c. */
#ifndef WEIR_POLICY_RATE_REDIS_CONN_H
#define WEIR_POLICY_RATE_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "policy/rate_redis.h"

/* The settings a connection is made with; shared by reference between
 * the store and its threads' connections (a reload makes new ones). */
struct rr_settings {
	atomic_int refs;
	char *addr; /* rate.redis as written, for messages */
	bool unix_socket;
	char *path_or_host;
	int port;
	char *password; /* NULL: no AUTH */
	char *prefix;
	int timeout_ms;
	bool fail_open;
};

/* One thread's connection */
struct rr_conn {
	struct rate_redis *r;
	struct rr_settings *set;
	unsigned gen;       /* r->gen that set was taken at */
	redisContext *c;    /* NULL: not connected */
	char sha[48];       /* of rr_charge_script, from SCRIPT LOAD */
	long long retry_at; /* monotonic ms: no connection attempt before */
	unsigned up_epoch;  /* r->up_epoch when the last attempt failed */
	char err[256];      /* why the last attempt failed */
	/* under rate_redis_conn.c's registry_lock: */
	struct rr_conn *prev, *next; /* the store's connections */
	struct rr_thread *thread;    /* the thread's */
	struct rr_conn *thread_next;
};

struct rate_redis {
	pthread_mutex_t lock; /* set */
	struct rr_settings *set;
	atomic_uint gen;      /* bumped by reconfigure */
	atomic_uint up_epoch; /* bumped when Redis is reached after an outage */
	atomic_bool down;     /* in an outage (logged) */
	atomic_ulong outage_failures;
	struct rr_conn *conns; /* under registry_lock */
};

/* The charge script (rate_redis.c), loaded on every new connection */
extern const char rr_charge_script[];

/* rr_conn_get - this thread's connection to r (made on first use, taking
 * new settings after a reconfigure), not necessarily connected */
struct rr_conn *rr_conn_get(struct rate_redis *r);
/* rr_conn_ready - connected (or connected now, unless a failed attempt
 * was less than a second ago); false with conn->err */
bool rr_conn_ready(struct rr_conn *conn);
/* rr_command - argv sent over conn (see rate_redis_conn.c for resending);
 * the reply (caller frees with freeReplyObject), or NULL with conn->err
 * and the connection dropped */
redisReply *rr_command(struct rr_conn *conn, int argc, const char **argv, const size_t *argvlen);
/* rr_note_error - keep why what failed in conn->err */
void rr_note_error(struct rr_conn *conn, const char *what, const redisReply *reply);
void rr_disconnect(struct rr_conn *conn);
/* rr_backend_failed - a decision Redis could not make: counted, the start
 * of an outage logged, *v decided by fail_mode */
void rr_backend_failed(struct rr_conn *conn, struct rate_verdict *v);
/* rr_backend_ok - Redis decided: ends an outage (logged) */
void rr_backend_ok(struct rr_conn *conn);

/* SIGPIPE: hiredis writes with write(2); a server gone away would kill a
 * process that has not ignored SIGPIPE. Block it in this thread around
 * our I/O and discard one we caused. */
struct rr_pipe_guard {
	sigset_t old;
	bool pending;
};
void rr_pipe_guard_on(struct rr_pipe_guard *g);
void rr_pipe_guard_off(struct rr_pipe_guard *g);

#endif
