/* pool - upstream sessions per host, host health and balancing
 *
 * One pool per weir-agent process. A host (struct route_host, keyed by
 * its id: host:port, TLS mode, credentials) has at most max_connections
 * sessions; a session that finished a transaction waits idle for the
 * next one (RSET first when the last one did not end cleanly) until
 * max_messages or session_idle. A host that refuses connections, fails
 * TLS or greets with 4xx is down for agent.host_backoff, doubled per
 * consecutive failure up to 10 minutes; any success clears it. Health is
 * written to agent.state_file every 5 s and on each change, for
 * `weirctl route show`. Everything runs in the event loop's thread. */
#ifndef WEIR_AGENT_POOL_H
#define WEIR_AGENT_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct dns;
struct weir_config;
struct route;
struct route_host;
struct upstream;
struct smtp_reply;
struct pool;
struct pool_req;
struct pool_session;

/* Result of pool_open: a ready session (s), or s == NULL and fail is
 * the 4xx line for the client (the last host's failure), or s == NULL
 * and reply is a 5xx the upstream gave while the session was opened
 * (AUTH refused with agent.auth_failure = reject); with fail, reply is
 * the last host's own refusal of the session at its greeting or EHLO
 * (for the throttle's back-off rules; the answer is fail) or NULL; host
 * names the host
 * tried last (NULL when none was). Never called from
 * inside pool_open. */
typedef void pool_cb(void *ctx, struct pool_session *s, const struct smtp_reply *reply,
                     const char *fail, const char *host);

struct pool *pool_new(struct event_base *base);
/* pool_free - close idle sessions (QUIT) and free; every session handed
 * out must have been given back or discarded first */
void pool_free(struct pool *p);
/* pool_flush_idle - close every idle session (after a reload) */
void pool_flush_idle(struct pool *p);

/* pool_open - a ready session to one of hosts[0..n): a route's hosts,
 * balanced (smooth weighted round robin among the up hosts of the
 * lowest priority), or when ordered (MX hosts) the first up one in
 * order; a host that fails is marked down and the next one tried; when
 * all are down the one that recovers first is tried anyway. route names
 * the route in the state file. cfg and hosts must stay valid until cb
 * has run (the caller holds the configuration). max_messages (0: none):
 * the session carries at most that many messages in all, below the
 * host's own max_messages (a new session is capped; an idle one that
 * carried as many is closed instead of reused). */
struct pool_req *pool_open(struct pool *p, struct dns *dns, struct weir_config *cfg,
                           const struct route *route, const struct route_host *hosts, size_t n,
                           bool ordered, unsigned max_messages, pool_cb *cb, void *ctx);
/* pool_cancel - forget req; its callback will not run */
void pool_cancel(struct pool_req *req);

/* pool_session_upstream - the session's SMTP client */
struct upstream *pool_session_upstream(struct pool_session *s);
/* pool_session_host - its host's id ("relay.example:25") */
const char *pool_session_host(const struct pool_session *s);
/* pool_session_sent - a message went over s (DATA answered 2xx) */
void pool_session_sent(struct pool_session *s);
/* pool_session_reused - s carried a transaction before this one */
bool pool_session_reused(const struct pool_session *s);
/* pool_session_used - a transaction was sent over s (DATA): counts
 * towards max_messages */
void pool_session_used(struct pool_session *s);
/* pool_release - give s back: it becomes idle when its upstream is ready
 * between commands, else it is closed; NULL is ok */
void pool_release(struct pool_session *s);
/* pool_discard - close s (a command may be pending); NULL is ok */
void pool_discard(struct pool_session *s);

/* What pool_foreach_host shows of one host (strings borrowed for the call) */
struct pool_host_info {
	const char *route, *id;
	bool up;
	long long down_until; /* seconds since the epoch; 0 when up */
	int failures;         /* consecutive */
	unsigned open, sent;  /* sessions open, messages sent */
	size_t idle;          /* idle sessions */
	const char *error;    /* the last failure, or NULL */
};
/* pool_foreach_host - fn for each host of cfg's routes (and the MX hosts
 * met for mx routes), as the state file lists them */
void pool_foreach_host(struct pool *p, const struct weir_config *cfg,
                       void (*fn)(void *ctx, const struct pool_host_info *hi), void *ctx);

/* pool_write_state - write agent.state_file of cfg now */
void pool_write_state(struct pool *p, const struct weir_config *cfg);

#endif
