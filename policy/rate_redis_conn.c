/* rate_redis_conn - connections to Redis for the rate store's Redis
 * backend.
 *
 * One connection per thread and store (weir-milter decides in libmilter's
 * threads), in a list per thread under a pthread key and in one per
 * store, so that both a thread's end and rate_redis_close free them.
 * They are synchronous hiredis contexts with rate.redis_timeout_ms as
 * connect and command timeout, so no decision waits longer than that (twice when a connection found
 * dead is made again at once). Each new connection sends AUTH (when rate.redis_password_file is
 * set) and SCRIPT LOAD. A thread whose attempt failed tries again at most once a second (sooner
 * when another thread has reached Redis since). Settings changed by a reload are picked up by each
 * thread at its next decision (it reconnects).
 *
 * The password is read when the store is opened or reconfigured, from a
 * file neither others may read nor group or others may write; it is sent
 * with AUTH and never logged.
 *
 * An outage (Redis unreachable, timing out or answering with an error):
 * its first failed decision is logged at warning, its end at info with
 * the number of decisions fail_mode made meanwhile; every such decision
 * is counted for the whole process (rate_redis_failures). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_redis_conn.h"

/* Wait this long before a thread tries to connect again */
#define RECONNECT_MS 1000
/* Largest password accepted */
#define PASSWORD_MAX 1024

static atomic_ulong failures_total;

unsigned long rate_redis_failures(void)
{
	return atomic_load(&failures_total);
}

/* mono_ms - monotonic clock in ms */
static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void settings_unref(struct rr_settings *set)
{
	if (set == NULL || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	free(set->addr);
	free(set->path_or_host);
	wipe_free(set->password);
	free(set->prefix);
	free(set);
}

static struct rr_settings *settings_ref(struct rr_settings *set)
{
	atomic_fetch_add(&set->refs, 1);
	return set;
}

/* read_password - the first line of path, into *pw_r (caller frees,
 * wiping it). Refuses a file others may read or group/others may write:
 * the password would not be a secret, or not the administrator's. */
static int read_password(const char *path, char **pw_r, char **err_r)
{
	struct stat st;
	char buf[PASSWORD_MAX + 2];
	ssize_t len;
	size_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*err_r = xasprintf("rate.redis_password_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err_r = xasprintf("rate.redis_password_file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH | S_IROTH)) != 0) {
		*err_r = xasprintf("rate.redis_password_file %s: mode %04o lets %s; "
		                   "run: chmod 0640 %s (or 0600)",
		                   path, (unsigned)(st.st_mode & 07777),
		                   (st.st_mode & S_IROTH) ? "every user read the password"
		                                          : "others than its owner change it",
		                   path);
		close(fd);
		return -1;
	}
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0) {
		*err_r = xasprintf("rate.redis_password_file %s: %s", path, strerror(errno));
		return -1;
	}
	buf[len] = '\0';
	n = strcspn(buf, "\r\n");
	if (n == 0 || n > PASSWORD_MAX) {
		*err_r = xasprintf("rate.redis_password_file %s: %s", path,
		                   n == 0 ? "empty first line (the password goes there)"
		                          : "password longer than 1024 characters");
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	*pw_r = xstrndup(buf, n);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* settings_new - rr_settings from cfg->rate, or NULL with *err_r */
static struct rr_settings *settings_new(const struct weir_config *cfg, char **err_r)
{
	struct rr_settings *set = xcalloc(1, sizeof(*set));
	const char *addr = cfg->rate.redis;

	atomic_init(&set->refs, 1);
	set->addr = xstrdup(addr);
	if (strncmp(addr, "unix:", 5) == 0) {
		set->unix_socket = true;
		set->path_or_host = xstrdup(addr + 5);
	} else {
		struct endpoint ep;
		const char *err;
		bool literal;
		if (endpoint_parse_hostport(addr, 6379, &ep, &literal, &err) < 0) {
			*err_r = xasprintf("rate.redis %s: %s", addr, err);
			settings_unref(set);
			return NULL;
		}
		set->path_or_host = xstrdup(ep.host);
		set->port = (int)ep.port;
	}
	if (cfg->rate.redis_password_file != NULL && cfg->rate.redis_password_file[0] != '\0' &&
	    read_password(cfg->rate.redis_password_file, &set->password, err_r) < 0) {
		settings_unref(set);
		return NULL;
	}
	set->prefix = xstrdup(cfg->rate.redis_prefix ? cfg->rate.redis_prefix : "");
	set->timeout_ms = cfg->rate.redis_timeout_ms > 0 ? (int)cfg->rate.redis_timeout_ms : 500;
	set->fail_open = cfg->rate.fail_mode == RATE_FAIL_OPEN;
	return set;
}

void rr_disconnect(struct rr_conn *conn)
{
	if (conn->c != NULL) {
		redisFree(conn->c);
		conn->c = NULL;
	}
}

static void conn_free(struct rr_conn *conn)
{
	rr_disconnect(conn);
	settings_unref(conn->set);
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

void rr_pipe_guard_on(struct rr_pipe_guard *g)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pend);
	g->pending = sigismember(&pend, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void rr_pipe_guard_off(struct rr_pipe_guard *g)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1) {
		struct timespec zero = {0, 0};
		sigtimedwait(&set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* rr_note_error - keep why a command failed in conn->err: the error reply,
 * or the connection's error (a timeout said as one) */
void rr_note_error(struct rr_conn *conn, const char *what, const redisReply *reply)
{
	const redisContext *c = conn->c;

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
		snprintf(conn->err, sizeof(conn->err), "%s: %.*s", what, (int)reply->len,
		         reply->str);
	else if (reply != NULL)
		snprintf(conn->err, sizeof(conn->err), "%s: unexpected answer type %d", what,
		         reply->type);
	else if (c != NULL && c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
		snprintf(conn->err, sizeof(conn->err), "%s: no answer within %d ms", what,
		         conn->set->timeout_ms);
	else
		snprintf(conn->err, sizeof(conn->err), "%s: %s", what,
		         c != NULL && c->errstr[0] ? c->errstr : "no answer");
}

/* load_script - SCRIPT LOAD the charge script, keeping its SHA1 in conn;
 * 0, or -1 with conn->err */
static int load_script(struct rr_conn *conn)
{
	const char *argv[3] = {"SCRIPT", "LOAD", rr_charge_script};
	redisReply *reply = redisCommandArgv(conn->c, 3, argv, NULL);

	if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(conn->sha)) {
		rr_note_error(conn, "SCRIPT LOAD", reply);
		freeReplyObject(reply);
		return -1;
	}
	memcpy(conn->sha, reply->str, reply->len);
	conn->sha[reply->len] = '\0';
	freeReplyObject(reply);
	return 0;
}

/* conn_connect - connect, AUTH, SCRIPT LOAD. 0, or -1 with conn->err */
static int conn_connect(struct rr_conn *conn)
{
	const struct rr_settings *set = conn->set;
	struct timeval tv = {set->timeout_ms / 1000, (set->timeout_ms % 1000) * 1000};
	redisReply *reply;

	conn->retry_at = mono_ms() + RECONNECT_MS;
	conn->up_epoch = atomic_load(&conn->r->up_epoch);
	if (set->unix_socket)
		conn->c = redisConnectUnixWithTimeout(set->path_or_host, tv);
	else
		conn->c = redisConnectWithTimeout(set->path_or_host, set->port, tv);
	if (conn->c == NULL) {
		snprintf(conn->err, sizeof(conn->err), "connect: out of memory");
		return -1;
	}
	if (conn->c->err) {
		snprintf(conn->err, sizeof(conn->err), "connect: %s", conn->c->errstr);
		rr_disconnect(conn);
		return -1;
	}
	if (redisSetTimeout(conn->c, tv) != REDIS_OK) {
		snprintf(conn->err, sizeof(conn->err), "setting the timeout: %s", conn->c->errstr);
		rr_disconnect(conn);
		return -1;
	}
	if (set->password != NULL) {
		const char *argv[2] = {"AUTH", set->password};
		reply = redisCommandArgv(conn->c, 2, argv, NULL);
		if (reply == NULL || reply->type != REDIS_REPLY_STATUS) {
			rr_note_error(conn, "AUTH", reply);
			freeReplyObject(reply);
			rr_disconnect(conn);
			return -1;
		}
		freeReplyObject(reply);
	}
	if (load_script(conn) < 0) {
		rr_disconnect(conn);
		return -1;
	}
	return 0;
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
		conn->set = settings_ref(r->set);
		conn->gen = atomic_load(&r->gen);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&registry_lock);
	if (conn->gen != atomic_load(&r->gen)) {
		struct rr_settings *old = conn->set;
		rr_disconnect(conn);
		pthread_mutex_lock(&r->lock);
		conn->set = settings_ref(r->set);
		conn->gen = atomic_load(&r->gen);
		pthread_mutex_unlock(&r->lock);
		settings_unref(old);
		conn->retry_at = 0;
	}
	return conn;
}

bool rr_conn_ready(struct rr_conn *conn)
{
	if (conn->c != NULL)
		return true;
	if (mono_ms() < conn->retry_at && conn->up_epoch == atomic_load(&conn->r->up_epoch))
		return false; /* conn->err still says why */
	return conn_connect(conn) == 0;
}

/* dead_connection - the server closed the connection before this command
 * (restarted, idle timeout): nothing was done, so it is safe to send the
 * command again over a new one. A timeout is not such a case. */
static bool dead_connection(const redisContext *c)
{
	return c->err == REDIS_ERR_EOF ||
	       (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

/* rr_command - send argv; when the connection had died, once more over
 * a new one; NOSCRIPT makes it load the script and send again. The reply
 * (caller frees), or NULL with conn->err and the connection dropped. */
redisReply *rr_command(struct rr_conn *conn, int argc, const char **argv, const size_t *argvlen)
{
	struct rr_pipe_guard g;
	redisReply *reply = NULL;
	bool resent = false, reloaded = false;

	rr_pipe_guard_on(&g);
	for (;;) {
		if (!rr_conn_ready(conn))
			break;
		reply = redisCommandArgv(conn->c, argc, argv, argvlen);
		if (reply == NULL) {
			bool dead = dead_connection(conn->c);
			rr_note_error(conn, argv[0], NULL);
			rr_disconnect(conn);
			if (dead && !resent) {
				resent = true;
				conn->retry_at = 0;
				continue;
			}
			conn->retry_at = mono_ms() + RECONNECT_MS;
			break;
		}
		if (reply->type == REDIS_REPLY_ERROR && !reloaded &&
		    strncmp(reply->str, "NOSCRIPT", 8) == 0 && strcmp(argv[0], "EVALSHA") == 0) {
			freeReplyObject(reply);
			reply = NULL;
			reloaded = true;
			if (load_script(conn) < 0) {
				rr_disconnect(conn);
				break;
			}
			continue;
		}
		break;
	}
	rr_pipe_guard_off(&g);
	return reply;
}

static const char *fail_mode_name(const struct rr_settings *set)
{
	return set->fail_open ? "open" : "closed";
}

/* rr_backend_failed - a decision Redis could not make: count it, log the
 * start of an outage, decide by fail_mode */
void rr_backend_failed(struct rr_conn *conn, struct rate_verdict *v)
{
	struct rate_redis *r = conn->r;

	atomic_fetch_add(&failures_total, 1);
	atomic_fetch_add(&r->outage_failures, 1);
	if (!atomic_exchange(&r->down, true)) {
		struct kvline kv;
		kv_init(&kv);
		kv_add(&kv, "redis", conn->set->addr);
		kv_add(&kv, "error", conn->err);
		kv_add(&kv, "fail_mode", fail_mode_name(conn->set));
		log_warning(
		    "rule=rate backend=redis %s: no decision from Redis; rate limits are %s "
		    "until it answers again",
		    kv_str(&kv), conn->set->fail_open ? "not enforced" : "refusing every charge");
		kv_free(&kv);
	}
	memset(v, 0, sizeof(*v));
	v->allowed = conn->set->fail_open;
	v->backend_down = true;
}

void rr_backend_ok(struct rr_conn *conn)
{
	struct rate_redis *r = conn->r;

	if (atomic_load(&r->down) && atomic_exchange(&r->down, false)) {
		atomic_fetch_add(&r->up_epoch, 1);
		log_info("rule=rate backend=redis redis=%s failed_decisions=%lu: Redis answers "
		         "again (those decisions were fail_mode=%s)",
		         conn->set->addr, atomic_exchange(&r->outage_failures, 0),
		         fail_mode_name(conn->set));
	}
}

struct rate_redis *rate_redis_open(const struct weir_config *cfg, char **err_r)
{
	struct rate_redis *r;
	struct rr_settings *set = settings_new(cfg, err_r);

	if (set == NULL)
		return NULL;
	pthread_once(&thread_key_once, thread_key_make);
	if (thread_key_error != 0) {
		*err_r =
		    xasprintf("rate: no thread-specific key left: %s", strerror(thread_key_error));
		settings_unref(set);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->set = set;
	return r;
}

void rate_redis_reconfigure(struct rate_redis *r, const struct weir_config *cfg)
{
	char *err = NULL;
	struct rr_settings *set = settings_new(cfg, &err), *old;

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
	settings_unref(old);
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
	settings_unref(r->set);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
