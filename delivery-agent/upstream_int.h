/* upstream_int - the inside of an upstream session, shared by upstream.c
 * (connection, replies, commands) and upstream_secure.c (STARTTLS, TLS,
 * AUTH: the steps between the first EHLO and ready). No other file
 * includes it. Everything here runs on the agent's event loop thread. */
#ifndef WEIR_AGENT_UPSTREAM_INT_H
#define WEIR_AGENT_UPSTREAM_INT_H

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "delivery-agent/auth.h"
#include "delivery-agent/ehlo.h"
#include "delivery-agent/upstream.h"
#include "lib/dns.h"
#include "lib/smtp_reply.h"
#include "policy/routes.h"

enum up_state {
	UP_IDLE, /* not connected */
	UP_RESOLVING,
	UP_CONNECTING,
	UP_TLS, /* handshake (implicit TLS, or after STARTTLS) */
	UP_GREETING,
	UP_EHLO,
	UP_HELO,
	UP_STARTTLS, /* waiting for 220 to STARTTLS */
	UP_AUTH,     /* waiting for 334/235 */
	UP_READY,    /* between commands */
	UP_COMMAND,
	UP_DATA_CMD, /* waiting for 354 */
	UP_DATA_END, /* waiting for the reply to the final dot */
};

struct upstream {
	struct event_base *base;
	struct dns *dns;
	struct weir_config *cfg;
	const struct route_host *host;
	struct route_host legacy; /* upstream_new: agent.smarthost */
	struct bufferevent *bev;
	bool bev_owns_fd; /* false while a plain connection waits for implicit TLS */
	SSL *ssl;         /* the bufferevent's, once TLS started */
	struct event *timer;
	struct event *kick; /* starts a connection from the event loop */
	struct dns_query *query;
	enum up_state state;
	enum upstream_failure failure;
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs, next_addr;
	char name[320];
	char address[INET6_ADDRSTRLEN + 10]; /* "ip:port", "[ip6]:port" */
	char last_err[160];
	char what[16]; /* command being answered, for messages */
	struct smtp_reply reply;
	struct smtp_reply ehlo; /* the last EHLO/HELO reply, for upstream_open's caller */
	struct smtp_reply refusal; /* the server's refusal of the session (greeting, EHLO) */
	struct ehlo_caps caps;
	bool helo_only; /* HELO was answered, EHLO was not */
	bool tls_active, tls_verified;
	bool tls_fallback;     /* "may": the handshake failed, this connection is clear */
	bool ehlo_after_tls;   /* the EHLO that follows STARTTLS */
	const char *clear_why; /* why this session has no TLS, for the AUTH refusal */
	char tls_proto[24], tls_cipher[80];
	struct auth_client auth;
	enum auth_mech auth_used; /* of this session, for the log */
	char *auth_token;         /* XOAUTH2 bearer token: a copy, wiped when freed */
	const char *auth_err;     /* our reason for cancelling the exchange ("*") */
	struct evbuffer *msg;
	bool in_txn;
	upstream_cb *cb; /* waits for the reply being read */
	void *ctx;
	/* Commands after the one cb waits for, in order: with PIPELINING
	 * already written, without it written when the reply before them
	 * has come. */
	struct up_cmd {
		upstream_cb *cb;
		void *ctx;
		char what[16];
		char *line; /* not yet written, or NULL */
	} *queue;
	size_t nqueue, queue_size;
	struct event *more; /* replies left in the input: read them from the loop */
};
/* upstream.c */
/* up_arm - (re)start the step timer */
void up_arm(struct upstream *up, long secs);
/* up_host - the host as configured, for messages */
const char *up_host(const struct upstream *up);
/* up_forget_auth - wipe the secrets of the last AUTH exchange */
void up_forget_auth(struct upstream *up);
/* up_close - drop the connection (no QUIT) */
void up_close(struct upstream *up);
/* up_deliver - hand a result to the waiting caller, which may free up */
void up_deliver(struct upstream *up, struct smtp_reply *reply, const char *fail);
/* up_fail - close and report a 4xx line; kind recorded while opening */
void up_fail(struct upstream *up, enum upstream_failure kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* up_quoted - the current reply as one line; caller frees */
char *up_quoted(struct upstream *up);
/* up_try_connect - connect to the next address, or give up */
void up_try_connect(struct upstream *up);
/* up_send_line - write a command; shown replaces it in the debug log */
void up_send_line(struct upstream *up, const char *line, const char *shown, enum up_state st,
                  long secs);
/* up_send_ehlo - EHLO or HELO with the host's name */
void up_send_ehlo(struct upstream *up, const char *verb, enum up_state st);
void up_read_cb(struct bufferevent *bev, void *arg);
void up_event_cb(struct bufferevent *bev, short what, void *arg);

/* upstream_secure.c */
/* up_after_ehlo - STARTTLS when the host's tls asks for it, else AUTH,
 * else ready */
void up_after_ehlo(struct upstream *up);
/* up_starttls_reply - the reply to STARTTLS */
void up_starttls_reply(struct upstream *up);
/* up_start_tls - the connection is established (implicit) or STARTTLS
 * was accepted: start the handshake */
void up_start_tls(struct upstream *up);
/* up_tls_done - the handshake succeeded */
void up_tls_done(struct upstream *up);
/* up_tls_failed - the handshake failed for reason */
void up_tls_failed(struct upstream *up, const char *reason);
/* up_auth_reply - a reply during the AUTH exchange */
void up_auth_reply(struct upstream *up);
/* up_verified_word - "yes", "no" or "not-required" */
const char *up_verified_word(const struct upstream *up);

#endif
