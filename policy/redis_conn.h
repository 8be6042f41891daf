/* redis_conn - one synchronous connection to the Redis that rate.redis
 * names, shared by the Redis parts of the rate store (rate_redis*.c) and
 * of the throttle (throttle_redis.c): the rate.redis* settings and the
 * password file, connect + AUTH + SCRIPT LOAD, a time budget per
 * operation, the back-off after a failure, resending over a new
 * connection and reloading a flushed script. A struct redis_conn belongs
 * to one thread; its settings may be shared (reference counted). Internal
 * to policy/. */
#ifndef WEIR_POLICY_REDIS_CONN_H
#define WEIR_POLICY_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

struct weir_config;

/* The rate.redis* settings; a reload makes new ones */
struct redis_settings {
	atomic_int refs;
	char *addr; /* rate.redis as written, for messages */
	bool unix_socket;
	char *path_or_host;
	int port;
	char *password; /* NULL: no AUTH; never logged */
	char *prefix;   /* rate.redis_prefix */
	int timeout_ms; /* rate.redis_timeout_ms */
};

/* redis_settings_new - from cfg->rate (reads and checks the password
 * file); one reference, or NULL with *err_r (caller frees) */
struct redis_settings *redis_settings_new(const struct weir_config *cfg, char **err_r);
struct redis_settings *redis_settings_ref(struct redis_settings *set);
void redis_settings_unref(struct redis_settings *set);

struct redis_conn {
	struct redis_settings *set;  /* a reference (redis_conn_use) */
	const char *script;          /* SCRIPT LOADed on every connection, or NULL */
	const atomic_uint *up_epoch; /* optional: bumped by whoever ends an
	                              * outage; a change lifts the back-off */
	redisContext *c;             /* NULL: not connected */
	char sha[48];                /* of script, from SCRIPT LOAD */
	long long retry_at;          /* monotonic ms: no connection attempt before */
	unsigned up_seen;            /* *up_epoch when the last attempt was made */
	char err[256];               /* why the last operation failed; no secrets */
};

/* redis_conn_init - conn (not connected) with a reference to set; script
 * and up_epoch are borrowed and may be NULL */
void redis_conn_init(struct redis_conn *conn, struct redis_settings *set, const char *script,
                     const atomic_uint *up_epoch);
/* redis_conn_use - new settings (a reference is taken): the connection is
 * dropped and the next operation connects at once */
void redis_conn_use(struct redis_conn *conn, struct redis_settings *set);
/* redis_conn_clear - disconnect and drop the settings' reference */
void redis_conn_clear(struct redis_conn *conn);
void redis_conn_disconnect(struct redis_conn *conn);

/* redis_conn_deadline - the end of a budget of timeout_ms from now
 * (monotonic ms). Every function taking a deadline takes 0 for that. */
long long redis_conn_deadline(const struct redis_conn *conn);
/* redis_conn_ready - connected, or connected now within deadline unless
 * the last attempt failed less than a second ago; false with conn->err */
bool redis_conn_ready(struct redis_conn *conn, long long deadline);
/* redis_conn_arm - the socket's timeout set to what is left of deadline
 * (for callers using redisAppendCommand/redisGetReply themselves); false
 * with conn->err when nothing is left */
bool redis_conn_arm(struct redis_conn *conn, long long deadline);
/* redis_conn_command - argv sent, all within deadline; when the server
 * had closed the connection, once more over a new one; NOSCRIPT to an
 * EVALSHA loads the script and sends it again. The reply (caller frees
 * with freeReplyObject; may be an error reply), or NULL with conn->err
 * and the connection dropped. */
redisReply *redis_conn_command(struct redis_conn *conn, long long deadline, int argc,
                               const char **argv, const size_t *argvlen);
/* redis_conn_note_error - keep why what failed in conn->err: reply (an
 * error or unexpected answer), or the connection's error when NULL */
void redis_conn_note_error(struct redis_conn *conn, const char *what, const redisReply *reply);

/* SIGPIPE: hiredis writes with write(2); a server gone away would kill a
 * process that has not ignored SIGPIPE. Block it in this thread around
 * our I/O and discard one we caused. */
struct redis_pipe_guard {
	sigset_t old;
	bool pending;
};
void redis_pipe_guard_on(struct redis_pipe_guard *g);
void redis_pipe_guard_off(struct redis_pipe_guard *g);

#endif
