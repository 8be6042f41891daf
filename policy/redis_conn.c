/* redis_conn - one synchronous connection to Redis (rate.redis), for the
 * rate store's and the throttle's Redis backends.
 *
 * A connection is a synchronous hiredis context. Each operation has a
 * budget of rate.redis_timeout_ms, counted from its start over every
 * step it takes (connect, AUTH, SCRIPT LOAD, the command, resending it
 * over a new connection): each step's socket timeout is what is left, so
 * no operation blocks longer than the budget. A failed attempt to connect
 * or a command without an answer makes the connection wait a second
 * before trying again (sooner when another connection of the same owner
 * has reached Redis since: up_epoch), so an outage costs one timeout a
 * second, not one per operation.
 *
 * The password is read from rate.redis_password_file when the settings
 * are made, from a file neither others may read nor group or others may
 * write; it is sent with AUTH only, wiped when the settings go, and never
 * put in conn->err (error replies to AUTH do not repeat it). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/endpoint.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/redis_conn.h"

/* Wait this long before connecting again after a failure */
#define RECONNECT_MS 1000
/* Largest password accepted */
#define PASSWORD_MAX 1024
/* Default rate.redis_timeout_ms */
#define DEFAULT_TIMEOUT_MS 500

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

void redis_settings_unref(struct redis_settings *set)
{
	if (set == NULL || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	free(set->addr);
	free(set->path_or_host);
	wipe_free(set->password);
	free(set->prefix);
	free(set);
}

struct redis_settings *redis_settings_ref(struct redis_settings *set)
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

struct redis_settings *redis_settings_new(const struct weir_config *cfg, char **err_r)
{
	struct redis_settings *set = xcalloc(1, sizeof(*set));
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
			redis_settings_unref(set);
			return NULL;
		}
		set->path_or_host = xstrdup(ep.host);
		set->port = (int)ep.port;
	}
	if (cfg->rate.redis_password_file != NULL && cfg->rate.redis_password_file[0] != '\0' &&
	    read_password(cfg->rate.redis_password_file, &set->password, err_r) < 0) {
		redis_settings_unref(set);
		return NULL;
	}
	set->prefix = xstrdup(cfg->rate.redis_prefix ? cfg->rate.redis_prefix : "");
	set->timeout_ms =
	    cfg->rate.redis_timeout_ms > 0 ? (int)cfg->rate.redis_timeout_ms : DEFAULT_TIMEOUT_MS;
	return set;
}

void redis_conn_init(struct redis_conn *conn, struct redis_settings *set, const char *script,
                     const atomic_uint *up_epoch)
{
	memset(conn, 0, sizeof(*conn));
	conn->set = redis_settings_ref(set);
	conn->script = script;
	conn->up_epoch = up_epoch;
}

void redis_conn_disconnect(struct redis_conn *conn)
{
	if (conn->c != NULL) {
		redisFree(conn->c);
		conn->c = NULL;
	}
}

void redis_conn_use(struct redis_conn *conn, struct redis_settings *set)
{
	struct redis_settings *old = conn->set;

	redis_conn_disconnect(conn);
	conn->set = redis_settings_ref(set);
	redis_settings_unref(old);
	conn->retry_at = 0;
}

void redis_conn_clear(struct redis_conn *conn)
{
	redis_conn_disconnect(conn);
	redis_settings_unref(conn->set);
	conn->set = NULL;
}

long long redis_conn_deadline(const struct redis_conn *conn)
{
	return mono_ms() + conn->set->timeout_ms;
}

/* time_left - what is left of deadline (0: a fresh budget) as a timeval;
 * false with conn->err when nothing is */
static bool time_left(struct redis_conn *conn, long long deadline, struct timeval *tv)
{
	long long left = (deadline != 0 ? deadline : redis_conn_deadline(conn)) - mono_ms();

	if (left <= 0) {
		snprintf(conn->err, sizeof(conn->err), "no answer within %d ms",
		         conn->set->timeout_ms);
		return false;
	}
	tv->tv_sec = (time_t)(left / 1000);
	tv->tv_usec = (suseconds_t)(left % 1000) * 1000;
	return true;
}

bool redis_conn_arm(struct redis_conn *conn, long long deadline)
{
	struct timeval tv;

	if (!time_left(conn, deadline, &tv))
		return false;
	if (redisSetTimeout(conn->c, tv) != REDIS_OK) {
		snprintf(conn->err, sizeof(conn->err), "setting the timeout: %s", conn->c->errstr);
		return false;
	}
	return true;
}

void redis_pipe_guard_on(struct redis_pipe_guard *g)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pend);
	g->pending = sigismember(&pend, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void redis_pipe_guard_off(struct redis_pipe_guard *g)
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

/* redis_conn_note_error - the error reply, or the connection's error (a
 * timeout said as one) */
void redis_conn_note_error(struct redis_conn *conn, const char *what, const redisReply *reply)
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

/* load_script - SCRIPT LOAD conn->script, keeping its SHA1; 0, or -1
 * with conn->err */
static int load_script(struct redis_conn *conn, long long deadline)
{
	const char *argv[3] = {"SCRIPT", "LOAD", conn->script};
	redisReply *reply;

	if (!redis_conn_arm(conn, deadline))
		return -1;
	reply = redisCommandArgv(conn->c, 3, argv, NULL);
	if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(conn->sha)) {
		redis_conn_note_error(conn, "SCRIPT LOAD", reply);
		freeReplyObject(reply);
		return -1;
	}
	memcpy(conn->sha, reply->str, reply->len);
	conn->sha[reply->len] = '\0';
	freeReplyObject(reply);
	return 0;
}

/* authenticate - AUTH with the password; 0, or -1 with conn->err */
static int authenticate(struct redis_conn *conn, long long deadline)
{
	const char *argv[2] = {"AUTH", conn->set->password};
	redisReply *reply;

	if (!redis_conn_arm(conn, deadline))
		return -1;
	reply = redisCommandArgv(conn->c, 2, argv, NULL);
	if (reply == NULL || reply->type != REDIS_REPLY_STATUS) {
		redis_conn_note_error(conn, "AUTH", reply);
		freeReplyObject(reply);
		return -1;
	}
	freeReplyObject(reply);
	return 0;
}

/* conn_connect - connect, AUTH, SCRIPT LOAD within deadline; 0, or -1
 * with conn->err (and no attempt before retry_at) */
static int conn_connect(struct redis_conn *conn, long long deadline)
{
	const struct redis_settings *set = conn->set;
	struct timeval tv;

	if (!time_left(conn, deadline, &tv))
		return -1;
	conn->retry_at = mono_ms() + RECONNECT_MS;
	if (conn->up_epoch != NULL)
		conn->up_seen = atomic_load(conn->up_epoch);
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
		redis_conn_disconnect(conn);
		return -1;
	}
	if ((set->password != NULL && authenticate(conn, deadline) < 0) ||
	    (conn->script != NULL && load_script(conn, deadline) < 0)) {
		redis_conn_disconnect(conn);
		return -1;
	}
	return 0;
}

bool redis_conn_ready(struct redis_conn *conn, long long deadline)
{
	struct redis_pipe_guard g;
	int ret;

	if (conn->c != NULL)
		return true;
	if (mono_ms() < conn->retry_at &&
	    (conn->up_epoch == NULL || conn->up_seen == atomic_load(conn->up_epoch)))
		return false; /* conn->err still says why */
	redis_pipe_guard_on(&g);
	ret = conn_connect(conn, deadline != 0 ? deadline : redis_conn_deadline(conn));
	redis_pipe_guard_off(&g);
	return ret == 0;
}

/* dead_connection - the server closed the connection before this command
 * (restarted, idle timeout): nothing was done, so it is safe to send the
 * command again over a new one. A timeout is not such a case. */
static bool dead_connection(const redisContext *c)
{
	return c->err == REDIS_ERR_EOF ||
	       (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

redisReply *redis_conn_command(struct redis_conn *conn, long long deadline, int argc,
                               const char **argv, const size_t *argvlen)
{
	struct redis_pipe_guard g;
	redisReply *reply = NULL;
	bool resent = false, reloaded = false;

	if (deadline == 0)
		deadline = redis_conn_deadline(conn);
	redis_pipe_guard_on(&g);
	for (;;) {
		if (!redis_conn_ready(conn, deadline))
			break;
		if (!redis_conn_arm(conn, deadline))
			break;
		reply = redisCommandArgv(conn->c, argc, argv, argvlen);
		if (reply == NULL) {
			bool dead = dead_connection(conn->c);
			redis_conn_note_error(conn, argv[0], NULL);
			redis_conn_disconnect(conn);
			if (dead && !resent) {
				resent = true;
				conn->retry_at = 0;
				continue;
			}
			conn->retry_at = mono_ms() + RECONNECT_MS;
			break;
		}
		if (reply->type == REDIS_REPLY_ERROR && !reloaded && conn->script != NULL &&
		    strncmp(reply->str, "NOSCRIPT", 8) == 0 && strcmp(argv[0], "EVALSHA") == 0) {
			freeReplyObject(reply);
			reply = NULL;
			reloaded = true;
			if (load_script(conn, deadline) < 0) {
				redis_conn_disconnect(conn);
				break;
			}
			continue;
		}
		break;
	}
	redis_pipe_guard_off(&g);
	return reply;
}
