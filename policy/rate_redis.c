/* rate_redis - the Redis backend of rate_store: several gateways share
 * rate limits and quotas through one Redis server.
 *
 * State: one hash per state key, <rate.redis_prefix><NAME:VALUE>, with
 * the fields tat (GCRA theoretical arrival time, ms), qwin (start of the
 * quota window, ms) and qcount (charged in that window), plus the
 * parameters last charged with (t = GCRA emission interval, cap = GCRA
 * capacity, qn = quota, qw = quota window; all ms) so that rate show can
 * say what remains without knowing the limit. Each hash carries a PEXPIRE
 * that ends when the GCRA state has drained and the quota window is over:
 * idle keys vanish by themselves.
 *
 * Decision: one Lua script (CHARGE_SCRIPT) per rate_redis_charge, over
 * all items at once, so a decision is atomic across the fleet. Its clock
 * is the Redis server's (TIME), so gateways with skewed clocks agree. It
 * is loaded with SCRIPT LOAD when a connection is made and called with
 * EVALSHA; NOSCRIPT (Redis restarted, SCRIPT FLUSH) loads it again.
 *
 * Connections: one per thread (weir-milter decides in libmilter's
 * threads), kept under a pthread key; they are synchronous hiredis
 * contexts with rate.redis_timeout_ms as connect and command timeout, so
 * no decision waits longer than that (twice when a connection found dead
 * is remade at once). A thread that could not connect tries again at most
 * once a second (sooner when another thread has reached Redis since).
 * Settings changed by a reload are picked up by each thread at its next
 * decision (it reconnects).
 *
 * Failure: Redis unreachable, timing out or answering with an error makes
 * the decision rate.fail_mode's (open: allowed; closed: denied), with
 * backend_down set. The first failure of an outage is logged at warning,
 * the end of the outage at info; every failed decision is counted
 * (rate_redis_failures). The password (rate.redis_password_file) is read
 * when the store is opened or reconfigured, sent with AUTH, and never
 * logged. Redis Cluster is not supported (the keys of one decision may
 * live in different slots). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_redis.h"

/* Wait this long before a thread tries to connect again */
#define RECONNECT_MS 1000
/* Largest password file accepted */
#define PASSWORD_MAX 1024

/* KEYS[i]: the hash of item i. ARGV[1]: "1" to commit even if denied
 * (force); then 6 numbers per item: period_ms n burst quota_period_ms
 * quota_n cost. Returns {now, then per item: allowed, retry_after_ms,
 * resets_at_ms, quota (1: the denial is the quota's), remaining}.
 * Algorithms as in rate_store.h / issue 6's contract; an item's charge is
 * applied to the state the next item with the same key sees. */
static const char CHARGE_SCRIPT[] =
	"if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local force = ARGV[1] == '1'\n"
	"local st, order, out, all = {}, {}, {now}, true\n"
	"local function num(x) return string.format('%.0f', x) end\n"
	"for i, key in ipairs(KEYS) do\n"
	"  local a = 1 + (i - 1) * 6\n"
	"  local per, n, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n"
	"  local qper, qn, cost = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])\n"
	"  local s = st[key]\n"
	"  if not s then\n"
	"    local h = redis.call('HMGET', key, 'tat', 'qwin', 'qcount')\n"
	"    s = {tat = tonumber(h[1]) or 0, qwin = tonumber(h[2]) or -1,\n"
	"         qcount = tonumber(h[3]) or 0, f = {}, exp = now + 1}\n"
	"    st[key] = s\n"
	"    order[#order + 1] = key\n"
	"  end\n"
	"  local rok, rretry, rrem = true, 0, nil\n"
	"  local qok, qretry, qrem, qend = true, 0, nil, 0\n"
	"  if n > 0 then\n"
	"    local T = math.max(math.floor(per / n), 1)\n"
	"    local cap = burst * T\n"
	"    local base = math.max(s.tat, now)\n"
	"    local newtat = base + cost * T\n"
	"    rrem = math.floor((cap - (base - now)) / T)\n"
	"    if newtat - now > cap then rok = false; rretry = newtat - now - cap end\n"
	"    s.tat = newtat\n"
	"    s.f.tat = num(newtat); s.f.t = num(T); s.f.cap = num(cap)\n"
	"    s.exp = math.max(s.exp, newtat)\n"
	"  end\n"
	"  if qn > 0 then\n"
	"    local wstart = math.floor(now / qper) * qper\n"
	"    if s.qwin ~= wstart then s.qwin = wstart; s.qcount = 0 end\n"
	"    qrem = qn - s.qcount\n"
	"    qend = wstart + qper\n"
	"    if s.qcount + cost > qn then qok = false; qretry = qend - now end\n"
	"    s.qcount = s.qcount + cost\n"
	"    s.f.qwin = num(wstart); s.f.qcount = num(s.qcount)\n"
	"    s.f.qn = num(qn); s.f.qw = num(qper)\n"
	"    s.exp = math.max(s.exp, qend)\n"
	"  end\n"
	"  local ok, retry, resets, isq, rem = 1, 0, 0, 0, 0\n"
	"  if not rok or not qok then\n"
	"    ok = 0; all = false\n"
	"    if not qok and (rok or qretry >= rretry) then\n"
	"      retry, resets, isq, rem = qretry, qend, 1, qrem\n"
	"    else\n"
	"      retry, rem = rretry, rrem\n"
	"    end\n"
	"  elseif rrem and qrem then rem = math.min(rrem, qrem)\n"
	"  else rem = rrem or qrem or 0 end\n"
	"  if rem < 0 then rem = 0 end\n"
	"  out[#out + 1] = ok; out[#out + 1] = retry; out[#out + 1] = resets\n"
	"  out[#out + 1] = isq; out[#out + 1] = rem\n"
	"end\n"
	"if all or force then\n"
	"  for _, key in ipairs(order) do\n"
	"    local s, args = st[key], {}\n"
	"    for k, v in pairs(s.f) do args[#args + 1] = k; args[#args + 1] = v end\n"
	"    if #args > 0 then\n"
	"      redis.call('HMSET', key, unpack(args))\n"
	"      redis.call('PEXPIRE', key, num(math.max(s.exp - now, 1)))\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n";

/* Item fields per item in the script's answer */
#define REPLY_PER_ITEM 5

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
	unsigned gen;           /* r->gen that set was taken at */
	redisContext *c;        /* NULL: not connected */
	char sha[48];           /* of CHARGE_SCRIPT, from SCRIPT LOAD */
	long long retry_at;     /* monotonic ms: no connection attempt before */
	unsigned up_epoch;      /* r->up_epoch when the last attempt failed */
	char err[256];          /* why the last attempt failed */
	struct rr_conn *prev, *next;
};

struct rate_redis {
	pthread_key_t key;
	pthread_mutex_t lock; /* set, conns */
	struct rr_settings *set;
	atomic_uint gen;      /* bumped by reconfigure */
	atomic_uint up_epoch; /* bumped when Redis is reached after an outage */
	atomic_bool down;     /* in an outage (logged) */
	atomic_ulong outage_failures;
	struct rr_conn *conns;
};

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

static void conn_disconnect(struct rr_conn *conn)
{
	if (conn->c != NULL) {
		redisFree(conn->c);
		conn->c = NULL;
	}
}

static void conn_free(struct rr_conn *conn)
{
	conn_disconnect(conn);
	settings_unref(conn->set);
	free(conn);
}

/* conn_destroy - pthread key destructor: the thread ends */
static void conn_destroy(void *p)
{
	struct rr_conn *conn = p;
	struct rate_redis *r = conn->r;

	pthread_mutex_lock(&r->lock);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		r->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	pthread_mutex_unlock(&r->lock);
	conn_free(conn);
}

/* SIGPIPE: hiredis writes with write(2); a server gone away would kill a
 * process that has not ignored SIGPIPE. Block it in this thread around
 * our I/O and discard one we caused. */
struct pipe_guard {
	sigset_t old;
	bool pending;
};

static void pipe_guard_on(struct pipe_guard *g)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pend);
	g->pending = sigismember(&pend, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void pipe_guard_off(struct pipe_guard *g)
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

/* note_error - keep why a command failed in conn->err: the error reply,
 * or the connection's error (a timeout said as one) */
static void note_error(struct rr_conn *conn, const char *what, const redisReply *reply)
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
	const char *argv[3] = {"SCRIPT", "LOAD", CHARGE_SCRIPT};
	redisReply *reply = redisCommandArgv(conn->c, 3, argv, NULL);

	if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(conn->sha)) {
		note_error(conn, "SCRIPT LOAD", reply);
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
		conn_disconnect(conn);
		return -1;
	}
	if (redisSetTimeout(conn->c, tv) != REDIS_OK) {
		snprintf(conn->err, sizeof(conn->err), "setting the timeout: %s", conn->c->errstr);
		conn_disconnect(conn);
		return -1;
	}
	if (set->password != NULL) {
		const char *argv[2] = {"AUTH", set->password};
		reply = redisCommandArgv(conn->c, 2, argv, NULL);
		if (reply == NULL || reply->type != REDIS_REPLY_STATUS) {
			note_error(conn, "AUTH", reply);
			freeReplyObject(reply);
			conn_disconnect(conn);
			return -1;
		}
		freeReplyObject(reply);
	}
	if (load_script(conn) < 0) {
		conn_disconnect(conn);
		return -1;
	}
	return 0;
}

/* conn_get - this thread's connection, connected if it can be: NULL only
 * if r's key cannot hold one (then *conn_r is NULL too) */
static struct rr_conn *conn_get(struct rate_redis *r)
{
	struct rr_conn *conn = pthread_getspecific(r->key);
	unsigned gen = atomic_load(&r->gen);

	if (conn == NULL) {
		conn = xcalloc(1, sizeof(*conn));
		conn->r = r;
		pthread_mutex_lock(&r->lock);
		conn->set = settings_ref(r->set);
		conn->gen = gen;
		conn->next = r->conns;
		if (r->conns != NULL)
			r->conns->prev = conn;
		r->conns = conn;
		pthread_mutex_unlock(&r->lock);
		if (pthread_setspecific(r->key, conn) != 0) {
			conn_destroy(conn);
			return NULL;
		}
	} else if (conn->gen != gen) {
		struct rr_settings *old = conn->set;
		conn_disconnect(conn);
		pthread_mutex_lock(&r->lock);
		conn->set = settings_ref(r->set);
		conn->gen = atomic_load(&r->gen);
		pthread_mutex_unlock(&r->lock);
		settings_unref(old);
		conn->retry_at = 0;
	}
	return conn;
}

/* conn_ready - make sure conn is connected; false with conn->err */
static bool conn_ready(struct rr_conn *conn)
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

/* conn_command - send argv; when the connection had died, once more over
 * a new one; NOSCRIPT makes it load the script and send again. The reply
 * (caller frees), or NULL with conn->err and the connection dropped. */
static redisReply *conn_command(struct rr_conn *conn, int argc, const char **argv,
				const size_t *argvlen)
{
	struct pipe_guard g;
	redisReply *reply = NULL;
	bool resent = false, reloaded = false;

	pipe_guard_on(&g);
	for (;;) {
		if (!conn_ready(conn))
			break;
		reply = redisCommandArgv(conn->c, argc, argv, argvlen);
		if (reply == NULL) {
			bool dead = dead_connection(conn->c);
			note_error(conn, argv[0], NULL);
			conn_disconnect(conn);
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
				conn_disconnect(conn);
				break;
			}
			continue;
		}
		break;
	}
	pipe_guard_off(&g);
	return reply;
}

static const char *fail_mode_name(const struct rr_settings *set)
{
	return set->fail_open ? "open" : "closed";
}

/* backend_failed - a decision Redis could not make: count it, log the
 * start of an outage, decide by fail_mode */
static void backend_failed(struct rr_conn *conn, struct rate_verdict *v)
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
		log_warning("rule=rate backend=redis %s: no decision from Redis; rate limits are %s "
			    "until it answers again",
			    kv_str(&kv),
			    conn->set->fail_open ? "not enforced" : "refusing every charge");
		kv_free(&kv);
	}
	memset(v, 0, sizeof(*v));
	v->allowed = conn->set->fail_open;
	v->backend_down = true;
}

static void backend_ok(struct rr_conn *conn)
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
	r = xcalloc(1, sizeof(*r));
	if (pthread_key_create(&r->key, conn_destroy) != 0) {
		*err_r = xasprintf("rate: no thread-specific key left: %s", strerror(errno));
		settings_unref(set);
		free(r);
		return NULL;
	}
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

/* rate_redis_close - free r and every thread's connection. No thread may
 * use r any more, nor end while this runs (its key destructor would race). */
void rate_redis_close(struct rate_redis *r)
{
	struct rr_conn *conn, *next;

	if (r == NULL)
		return;
	pthread_key_delete(r->key);
	for (conn = r->conns; conn != NULL; conn = next) {
		next = conn->next;
		conn_free(conn);
	}
	settings_unref(r->set);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* strictness - rank of an action among denying items (higher wins) */
static int strictness(int action)
{
	switch (action) {
	case ACTION_REJECT: return 4;
	case ACTION_TEMPFAIL: return 3;
	case ACTION_HOLD: return 2;
	case ACTION_LOG: return 1;
	default: return 0;
	}
}

/* verdict_from_reply - fill v from the script's answer; -1 if malformed */
static int verdict_from_reply(const redisReply *reply, const struct rate_item *items, size_t n,
			      struct rate_verdict *v)
{
	long long remaining_min = -1;
	int best = -1;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 + REPLY_PER_ITEM * n)
		return -1;
	for (size_t i = 0; i < reply->elements; i++)
		if (reply->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	memset(v, 0, sizeof(*v));
	v->allowed = true;
	for (size_t i = 0; i < n; i++) {
		redisReply **e = reply->element + 1 + REPLY_PER_ITEM * i;
		long long remaining = e[4]->integer;
		if (e[0]->integer == 0) {
			int rank = strictness(items[i].action);
			v->allowed = false;
			if (rank > best) {
				best = rank;
				v->denied = i;
				v->retry_after_ms = e[1]->integer;
				v->resets_at_ms = e[2]->integer;
				v->quota = e[3]->integer != 0;
				v->remaining = remaining;
			}
		} else if (remaining_min < 0 || remaining < remaining_min) {
			remaining_min = remaining;
		}
	}
	if (v->allowed)
		v->remaining = remaining_min < 0 ? 0 : remaining_min;
	return 0;
}

/* charge_argv - EVALSHA's arguments for items; *buf_r holds the numbers
 * (caller frees it and the two arrays) */
static int charge_argv(const struct rr_conn *conn, const struct rate_item *items, size_t n,
		       bool force, const char ***argv_r, size_t **lens_r, char **buf_r)
{
	size_t argc = 4 + n + 6 * n, k = 0, pos = 0;
	const size_t numw = 24;
	const char **argv = xcalloc(argc, sizeof(*argv));
	size_t *lens = xcalloc(argc, sizeof(*lens));
	char *buf = xmalloc(numw * (1 + 6 * n) + 1);
	const char *prefix = conn->set->prefix;

	argv[k++] = "EVALSHA";
	argv[k++] = conn->sha;
	argv[k++] = buf + pos;
	pos += (size_t)snprintf(buf + pos, numw, "%zu", n) + 1;
	for (size_t i = 0; i < n; i++)
		argv[k++] = xasprintf("%s%s", prefix, items[i].state_key);
	argv[k++] = force ? "1" : "0";
	for (size_t i = 0; i < n; i++) {
		const struct rate_item *it = &items[i];
		long long nums[6] = {it->period_ms, it->n, it->burst, it->quota_period_ms,
				     it->quota_n, (long long)it->cost};
		if (it->n > 0 && it->period_ms <= 0)
			nums[1] = 0;
		if (it->quota_n > 0 && it->quota_period_ms <= 0)
			nums[4] = 0;
		for (int j = 0; j < 6; j++) {
			argv[k++] = buf + pos;
			pos += (size_t)snprintf(buf + pos, numw, "%lld", nums[j]) + 1;
		}
	}
	for (size_t i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	*argv_r = argv;
	*lens_r = lens;
	*buf_r = buf;
	return (int)argc;
}

int rate_redis_charge(struct rate_redis *r, const struct rate_item *items, size_t n, bool force,
		      struct rate_verdict *v)
{
	struct rr_conn *conn;
	redisReply *reply;
	const char **argv;
	size_t *lens;
	char *buf;
	int argc, ret = 0;

	memset(v, 0, sizeof(*v));
	v->allowed = true;
	if (n == 0)
		return 0;
	conn = conn_get(r);
	if (conn == NULL) {
		/* no thread-specific slot: behave as an outage, without a conn */
		atomic_fetch_add(&failures_total, 1);
		v->allowed = r->set->fail_open;
		v->backend_down = true;
		return -1;
	}
	if (!conn_ready(conn)) {
		backend_failed(conn, v);
		return 0;
	}
	argc = charge_argv(conn, items, n, force, &argv, &lens, &buf);
	reply = conn_command(conn, argc, argv, lens);
	/* argv[1] is conn->sha, which a reconnection or NOSCRIPT reload
	 * writes again with the same value (the script's SHA1) */
	for (size_t i = 0; i < n; i++)
		free((char *)argv[3 + i]);
	free(argv);
	free(lens);
	free(buf);
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		if (reply != NULL)
			note_error(conn, "EVALSHA", reply);
		freeReplyObject(reply);
		backend_failed(conn, v);
		return 0;
	}
	if (verdict_from_reply(reply, items, n, v) < 0) {
		snprintf(conn->err, sizeof(conn->err), "EVALSHA: malformed answer");
		backend_failed(conn, v);
		ret = -1;
	} else {
		backend_ok(conn);
	}
	freeReplyObject(reply);
	return ret;
}

/* The state of one key as rate show reads it */
struct key_state {
	long long tat, t, cap, qwin, qcount, qn, qw;
};

static void iso_time(long long ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&secs, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", ms);
}

/* key_state_parse - HGETALL's answer into ks; false if it is no hash */
static bool key_state_parse(const redisReply *reply, struct key_state *ks)
{
	static const char *const names[] = {"tat", "t", "cap", "qwin", "qcount", "qn", "qw"};
	long long *fields[] = {&ks->tat, &ks->t, &ks->cap, &ks->qwin,
			       &ks->qcount, &ks->qn, &ks->qw};

	memset(ks, 0, sizeof(*ks));
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
		return false;
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		const redisReply *k = reply->element[i], *val = reply->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
			return false;
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (strcmp(k->str, names[j]) == 0)
				*fields[j] = strtoll(val->str, NULL, 10);
	}
	return true;
}

/* key_state_line - one line of rate show for a key (caller frees):
 * what remains of the rate (and when a charge is possible again if
 * nothing does), what is used and remains of the quota and when its
 * window ends; times ISO-8601 UTC */
static char *key_state_line(const char *state_key, const struct key_state *ks, long long now)
{
	struct kvline kv;
	char when[40], *line;

	kv_init(&kv);
	if (ks->t > 0) {
		long long used = ks->tat > now ? ks->tat - now : 0;
		long long rem = ks->cap >= used ? (ks->cap - used) / ks->t : 0;
		kv_addf(&kv, "rate_remaining", "%lld", rem);
		if (rem == 0) {
			iso_time(ks->tat + ks->t - ks->cap, when, sizeof(when));
			kv_add(&kv, "rate_retry_at", when);
		}
		iso_time(ks->tat > now ? ks->tat : now, when, sizeof(when));
		kv_add(&kv, "rate_full_at", when);
	}
	if (ks->qw > 0 && ks->qn > 0) {
		long long wstart = now / ks->qw * ks->qw;
		long long used = ks->qwin == wstart ? ks->qcount : 0;
		kv_addf(&kv, "quota_used", "%lld", used);
		kv_addf(&kv, "quota_remaining", "%lld", used < ks->qn ? ks->qn - used : 0);
		iso_time(wstart + ks->qw, when, sizeof(when));
		kv_add(&kv, "quota_resets_at", when);
	}
	if (kv.len == 0)
		kv_add(&kv, "state", "none");
	line = xasprintf("%s %s", state_key, kv_str(&kv));
	kv_free(&kv);
	return line;
}

/* redis_now - the server's clock in ms, or -1 */
static long long redis_now(struct rr_conn *conn)
{
	const char *argv[] = {"TIME"};
	redisReply *reply = conn_command(conn, 1, argv, NULL);
	long long now = -1;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    reply->element[1]->type == REDIS_REPLY_STRING)
		now = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
		      strtoll(reply->element[1]->str, NULL, 10) / 1000;
	else if (reply != NULL)
		note_error(conn, "TIME", reply);
	freeReplyObject(reply);
	return now;
}

static int show_failed(struct rr_conn *conn, char **err_r)
{
	*err_r = xasprintf("redis %s: %s", conn->set->addr, conn->err);
	return -1;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* glob_escape - s with the characters SCAN MATCH treats specially escaped,
 * then "*" (caller frees) */
static char *glob_match_prefix(const char *s)
{
	char *out = xmalloc(2 * strlen(s) + 2), *o = out;

	for (; *s != '\0'; s++) {
		if (strchr("*?[]\\^-", *s) != NULL)
			*o++ = '\\';
		*o++ = *s;
	}
	*o++ = '*';
	*o = '\0';
	return out;
}

/* show_page - HGETALL every key of one SCAN page (pipelined), appending a
 * line per key to *lines_r; -1 with conn->err */
static int show_page(struct rr_conn *conn, const redisReply *keys, long long now, char ***lines_r,
		     size_t *n_r, size_t *size_r)
{
	size_t plen = strlen(conn->set->prefix);
	struct pipe_guard g;
	int ret = 0;

	pipe_guard_on(&g);
	for (size_t i = 0; i < keys->elements; i++) {
		const char *argv[2] = {"HGETALL", keys->element[i]->str};
		size_t lens[2] = {7, keys->element[i]->len};
		redisAppendCommandArgv(conn->c, 2, argv, lens);
	}
	for (size_t i = 0; i < keys->elements; i++) {
		redisReply *reply = NULL;
		struct key_state ks;
		if (redisGetReply(conn->c, (void **)&reply) != REDIS_OK) {
			note_error(conn, "HGETALL", NULL);
			conn_disconnect(conn);
			ret = -1;
			break;
		}
		if (key_state_parse(reply, &ks) && reply->elements > 0 &&
		    keys->element[i]->len >= plen) {
			if (*n_r == *size_r) {
				*size_r = *size_r ? 2 * *size_r : 256;
				*lines_r = xrealloc(*lines_r, *size_r * sizeof(**lines_r));
			}
			(*lines_r)[(*n_r)++] =
				key_state_line(keys->element[i]->str + plen, &ks, now);
		}
		freeReplyObject(reply);
	}
	pipe_guard_off(&g);
	return ret;
}

/* show_all - every key under the prefix, sorted (SCAN: no KEYS, which
 * would stop the server for the whole keyspace) */
static int show_all(struct rr_conn *conn, long long now, FILE *out, char **err_r)
{
	char *match = glob_match_prefix(conn->set->prefix), cursor[32] = "0", **lines = NULL;
	size_t n = 0, size = 0;
	int ret = 0;

	do {
		const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
		redisReply *reply = conn_command(conn, 6, argv, NULL);
		if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[1]->type != REDIS_REPLY_ARRAY ||
		    reply->element[0]->len >= sizeof(cursor)) {
			if (reply != NULL)
				note_error(conn, "SCAN", reply);
			freeReplyObject(reply);
			ret = show_failed(conn, err_r);
			break;
		}
		memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
		if (show_page(conn, reply->element[1], now, &lines, &n, &size) < 0)
			ret = show_failed(conn, err_r);
		freeReplyObject(reply);
	} while (ret == 0 && strcmp(cursor, "0") != 0);
	if (ret == 0 && n > 0) {
		qsort(lines, n, sizeof(*lines), cmp_lines);
		for (size_t i = 1; i < n; i++) /* SCAN may return a key twice */
			if (strcmp(lines[i], lines[i - 1]) == 0)
				lines[i - 1][0] = '\0';
		for (size_t i = 0; i < n; i++)
			if (lines[i][0] != '\0')
				fprintf(out, "%s\n", lines[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(match);
	return ret;
}

int rate_redis_show(struct rate_redis *r, const char *state_key, FILE *out, char **err_r)
{
	struct rr_conn *conn = conn_get(r);
	struct key_state ks;
	long long now;
	redisReply *reply;
	char *key;
	int ret = 0;

	if (conn == NULL) {
		*err_r = xstrdup("rate: no thread-specific slot for a Redis connection");
		return -1;
	}
	now = redis_now(conn);
	if (now < 0)
		return show_failed(conn, err_r);
	if (state_key == NULL)
		return show_all(conn, now, out, err_r);
	key = xasprintf("%s%s", conn->set->prefix, state_key);
	reply = conn_command(conn, 2, (const char *[]){"HGETALL", key}, NULL);
	if (reply == NULL || !key_state_parse(reply, &ks)) {
		if (reply != NULL)
			note_error(conn, "HGETALL", reply);
		ret = show_failed(conn, err_r);
	} else if (reply->elements == 0) {
		fprintf(out, "%s state=none\n", state_key);
	} else {
		char *line = key_state_line(state_key, &ks, now);
		fprintf(out, "%s\n", line);
		free(line);
	}
	freeReplyObject(reply);
	free(key);
	return ret;
}

/* rate_redis_reset - forget a key's state (fleet-wide at once); a key
 * with no state is not an error */
int rate_redis_reset(struct rate_redis *r, const char *state_key, char **err_r)
{
	struct rr_conn *conn = conn_get(r);
	redisReply *reply;
	char *key;
	int ret = 0;

	if (conn == NULL) {
		*err_r = xstrdup("rate: no thread-specific slot for a Redis connection");
		return -1;
	}
	key = xasprintf("%s%s", conn->set->prefix, state_key);
	reply = conn_command(conn, 2, (const char *[]){"DEL", key}, NULL);
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		if (reply != NULL)
			note_error(conn, "DEL", reply);
		ret = show_failed(conn, err_r);
	}
	freeReplyObject(reply);
	free(key);
	return ret;
}
