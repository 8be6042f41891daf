/* rate_redis_conn - connections to Redis for the rate store's Redis
 * backend.
 *
 * One connection per thread and store (weir-milter decides in libmilter's
 * threads), in a list per thread under a pthread key and in one per
 * store, so that both a thread's end and rate_redis_close free them.
 * Connecting, the password, timeouts (one rate.redis_timeout_ms budget per
 * decision) and the back-off after a failure are redis_conn.c's; a thread
 * whose attempt failed tries again at most once a second, sooner when
 * another thread has reached Redis since (up_epoch). Settings changed by
 * a reload are picked up by each thread at its next decision (it
 * reconnects).
 *
 * An outage (Redis unreachable, timing out or answering with an error):
 * its first failed decision is logged at warning, its end at info with
 * the number of decisions fail_mode made meanwhile; every such decision
 * is counted for the whole process (rate_redis_failures). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_redis_conn.h"

static atomic_ulong failures_total;

unsigned long rate_redis_failures(void)
{
	return atomic_load(&failures_total);
}

static void conn_free(struct rr_conn *conn)
{
	redis_conn_clear(&conn->link);
	free(conn);
}

/* Each thread's connections, to any number of stores, are a list under
 * one process-wide key. registry_lock guards these lists and the stores'
 * lists of connections, so that a thread ending and a store closing never
 * free the same connection nor touch one the other has freed. */
struct rr_thread {
	struct rr_conn *conns;
};

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static int thread_key_error;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static void unlink_from_store(struct rr_conn *conn)
{
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		conn->r->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
}

static void unlink_from_thread(struct rr_conn *conn)
{
	struct rr_conn **pp = &conn->thread->conns;

	while (*pp != NULL && *pp != conn)
		pp = &(*pp)->thread_next;
	if (*pp != NULL)
		*pp = conn->thread_next;
}

/* thread_end - key destructor: a thread ends, its connections go */
static void thread_end(void *p)
{
	struct rr_thread *t = p;
	struct rr_conn *conn;

	pthread_mutex_lock(&registry_lock);
	while ((conn = t->conns) != NULL) {
		t->conns = conn->thread_next;
		unlink_from_store(conn);
		conn_free(conn);
	}
	pthread_mutex_unlock(&registry_lock);
	free(t);
}

static void thread_key_make(void)
{
	thread_key_error = pthread_key_create(&thread_key, thread_end);
}

struct rr_conn *rr_conn_get(struct rate_redis *r)
{
	struct rr_thread *t = pthread_getspecific(thread_key);
	struct rr_conn *conn;

	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		/* fails only for want of memory, which xalloc treats the same */
		if (pthread_setspecific(thread_key, t) != 0)
			log_fatal("out of memory keeping a thread's Redis connections");
	}
	pthread_mutex_lock(&registry_lock);
	for (conn = t->conns; conn != NULL && conn->r != r; conn = conn->thread_next)
		;
	if (conn == NULL) {
		conn = xcalloc(1, sizeof(*conn));
		conn->r = r;
		conn->thread = t;
		conn->thread_next = t->conns;
		t->conns = conn;
		conn->next = r->conns;
		if (r->conns != NULL)
			r->conns->prev = conn;
		r->conns = conn;
		pthread_mutex_lock(&r->lock);
		redis_conn_init(&conn->link, r->set, rr_charge_script, &r->up_epoch);
		conn->gen = atomic_load(&r->gen);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&registry_lock);
	if (conn->gen != atomic_load(&r->gen)) {
		pthread_mutex_lock(&r->lock);
		redis_conn_use(&conn->link, r->set);
		conn->gen = atomic_load(&r->gen);
		pthread_mutex_unlock(&r->lock);
	}
	return conn;
}

static const char *fail_mode_name(bool fail_open)
{
	return fail_open ? "open" : "closed";
}

/* rr_backend_failed - a decision Redis could not make: count it, log the
 * start of an outage, decide by fail_mode */
void rr_backend_failed(struct rr_conn *conn, struct rate_verdict *v)
{
	struct rate_redis *r = conn->r;
	bool fail_open = atomic_load(&r->fail_open);

	atomic_fetch_add(&failures_total, 1);
	atomic_fetch_add(&r->outage_failures, 1);
	if (!atomic_exchange(&r->down, true)) {
		struct kvline kv;
		kv_init(&kv);
		kv_add(&kv, "redis", conn->link.set->addr);
		kv_add(&kv, "error", conn->link.err);
		kv_add(&kv, "fail_mode", fail_mode_name(fail_open));
		log_warning(
		    "rule=rate backend=redis %s: no decision from Redis; rate limits are %s "
		    "until it answers again",
		    kv_str(&kv), fail_open ? "not enforced" : "refusing every charge");
		kv_free(&kv);
	}
	memset(v, 0, sizeof(*v));
	v->allowed = fail_open;
	v->backend_down = true;
}

void rr_backend_ok(struct rr_conn *conn)
{
	struct rate_redis *r = conn->r;

	if (atomic_load(&r->down) && atomic_exchange(&r->down, false)) {
		atomic_fetch_add(&r->up_epoch, 1);
		log_info("rule=rate backend=redis redis=%s failed_decisions=%lu: Redis answers "
		         "again (those decisions were fail_mode=%s)",
		         conn->link.set->addr, atomic_exchange(&r->outage_failures, 0),
		         fail_mode_name(atomic_load(&r->fail_open)));
	}
}

struct rate_redis *rate_redis_open(const struct weir_config *cfg, char **err_r)
{
	struct rate_redis *r;
	struct redis_settings *set = redis_settings_new(cfg, err_r);

	if (set == NULL)
		return NULL;
	pthread_once(&thread_key_once, thread_key_make);
	if (thread_key_error != 0) {
		*err_r =
		    xasprintf("rate: no thread-specific key left: %s", strerror(thread_key_error));
		redis_settings_unref(set);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->set = set;
	atomic_init(&r->fail_open, cfg->rate.fail_mode == RATE_FAIL_OPEN);
	return r;
}

void rate_redis_reconfigure(struct rate_redis *r, const struct weir_config *cfg)
{
	char *err = NULL;
	struct redis_settings *set = redis_settings_new(cfg, &err), *old;

	if (set == NULL) {
		log_error("rule=rate backend=redis: %s; keeping the Redis settings in use", err);
		free(err);
		return;
	}
	pthread_mutex_lock(&r->lock);
	old = r->set;
	r->set = set;
	atomic_fetch_add(&r->gen, 1);
	pthread_mutex_unlock(&r->lock);
	atomic_store(&r->fail_open, cfg->rate.fail_mode == RATE_FAIL_OPEN);
	redis_settings_unref(old);
}

/* rate_redis_close - free r and every thread's connection to it. No
 * thread may be deciding with r (rate_store's lock sees to that); threads
 * may end meanwhile. */
void rate_redis_close(struct rate_redis *r)
{
	struct rr_conn *conn;

	if (r == NULL)
		return;
	pthread_mutex_lock(&registry_lock);
	while ((conn = r->conns) != NULL) {
		r->conns = conn->next;
		unlink_from_thread(conn);
		conn_free(conn);
	}
	pthread_mutex_unlock(&registry_lock);
	redis_settings_unref(r->set);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
