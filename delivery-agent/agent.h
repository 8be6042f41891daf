/* agent - weir-agent's shared structures: the daemon, client sessions */
#ifndef WEIR_AGENT_AGENT_H
#define WEIR_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "delivery-agent/smtp_cmd.h"
#include "lib/endpoint.h"

struct event_base;
struct event;
struct evbuffer;
struct bufferevent;
struct evconnlistener;
struct weir_config;
struct dns;
struct upstream;
struct smtp_reply;
struct pool;
struct dest;
struct route;
struct throttle_agent;
struct throttle_txn;
struct throttle_limiter;
struct outcome_log;
struct webhook;
struct agent_stats;
struct agent_http;

struct listener {
	struct agent *agent;
	struct evconnlistener *l;
	struct endpoint ep;
	bool lmtp;
	char *spec;
};

/* The daemon: one per process. */
struct agent {
	struct event_base *base;
	struct dns *dns; /* for the resolver settings below */
	struct pool *pool; /* upstream sessions and host health */
	struct throttle_agent *throttle; /* throttle.c; NULL: nothing throttled */
	struct outcome_log *outcome; /* record.c; NULL: no outcome log */
	struct webhook *webhook;     /* record.c; NULL: no webhooks */
	struct agent_stats *stats;   /* stats.c: metrics and the snapshot */
	struct agent_http *http;     /* http.c; NULL: agent.http_listen off */
	char *dns_servers;
	long dns_timeout;
	struct listener **listeners;
	size_t nlisteners;
	struct client *clients;
	size_t nclients;
	unsigned long next_id;
	bool stopping;
	struct event *stop_timer, *kill_timer;
};

enum client_state {
	CL_START, /* no HELO/EHLO/LHLO yet */
	CL_READY, /* greeted, no transaction */
	CL_MAIL,  /* MAIL accepted */
	CL_DATA,  /* reading the message */
};

/* One recipient we answered 2xx at RCPT */
struct rcpt {
	char *addr;
	struct smtp_rcpt params; /* NOTIFY=, ORCPT= as received */
	struct dest *dest;       /* NULL while provisional (routes by login) */
	bool upstream_ok;        /* the destination accepted its RCPT */
	struct throttle_limiter *lim; /* its destination limiter, or NULL */
	int code;                /* final answer, once known */
	char *line;
	bool intake;             /* bounce.domains: taken in here (intake.c) */
};

/* One mail transaction (MAIL .. end of DATA). */
struct txn {
	char *from;
	struct smtp_mail mail; /* the MAIL parameters */
	char *sender_domain;   /* NULL for the null sender */
	struct rcpt *rcpts;    /* answered 2xx, in order */
	size_t nrcpts;
	size_t nrequested; /* RCPT commands seen, for max_recipients */
	struct dest **dests; /* where the recipients go */
	size_t ndests;
	size_t pending;      /* destinations still busy after DATA */
	bool early;          /* one destination, chosen at MAIL */
	bool provisional;    /* routes by login: routed at end of DATA */
	unsigned long long sig; /* SMTP + provisional: recipients' route signature */
	char *sig_domain;
	long long mail_ms;   /* stats_now_ms() when MAIL was accepted */
	char *login;         /* from agent.login_header */
	char *queue_id;      /* the MTA's, from the Received header (record.c) */
	char *smtp_line;     /* SMTP: the answer after DATA when no recipient's is */
	struct throttle_txn *throttle; /* limiters held (throttle.c), or NULL */
	struct evbuffer *msg; /* CRLF lines, still dot-stuffed */
	size_t msg_size;
	bool too_big;
	bool at_bol; /* next data byte starts a line */
};

/* One connection from the MTA. Holds a configuration reference taken at
 * accept, so a reload does not change a session in flight. */
struct client {
	struct agent *agent;
	struct weir_config *cfg;
	struct bufferevent *bev;
	struct event *idle;
	unsigned long id;
	bool lmtp;
	char peer[80];
	enum client_state state;
	bool busy;    /* waiting for the smart host: input waits */
	bool closing; /* last reply written: free once it is sent */
	bool skip_line; /* discarding the rest of an over-long line */
	int errors;
	struct txn txn;
	struct smtp_mail pending_mail;
	struct smtp_rcpt pending_rcpt;
	struct dest *rcpt_dest; /* the destination pending_rcpt waits for */
	struct throttle_limiter *rcpt_lim; /* pending_rcpt's destination limiter */
	/* RCPTs sent on to a PIPELINING upstream and not answered yet, in
	 * order (relay.c). While there are any, only RCPT commands are read
	 * and replies that are ready at once wait in "after" of the last one,
	 * so the MTA gets every reply in the order of its commands. */
	struct flight {
		struct smtp_rcpt rcpt;
		struct dest *dest;
		struct throttle_limiter *lim; /* the recipient's destination limiter */
		char *after; /* CRLF lines for the commands read after this one */
	} *flight;
	size_t nflight, flight_size;
	bool flight_reply;  /* writing a flight's own reply */
	bool rcpt_deferred; /* pending_rcpt waits until the flight is answered */
	struct client *prev, *next;
};

/* server.c */
void client_accept(struct agent *a, int fd, const struct sockaddr *sa, bool lmtp);
/* client_reply - write one reply line (CRLF added) */
void client_reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* client_done - the command waiting for the smart host is answered:
 * continue with pipelined input */
void client_done(struct client *c);
/* client_next_is_rcpt - a complete RCPT command line is in the input */
bool client_next_is_rcpt(struct client *c);
/* client_close - write line (if not NULL) and close once it is sent */
void client_close(struct client *c, const char *line);
void client_free(struct client *c);
void txn_reset(struct client *c);
/* client_shutdown - SIGTERM: close idle sessions now, others after their
 * transaction; force = close all now */
void client_shutdown(struct client *c, bool force);

/* relay.c: the commands that involve the smart host */
void relay_mail(struct client *c);
void relay_rcpt(struct client *c);
void relay_data(struct client *c);
void relay_rset(struct client *c);
/* RCPTs in flight at most (each a pipelined upstream command) */
#define RELAY_FLIGHT_MAX 100
/* relay_txn_end - the transaction is over (answered, reset or the client
 * left): give the destinations' sessions back to the pool */
void relay_txn_end(struct client *c);
/* relay_log - one key=value line for a recipient or transaction */
void relay_log(struct client *c, const char *rcpt, const char *status, const char *reply);
/* relay_quote - "550 5.1.1 <who>: smart host NAME said: 550 5.1.1 text"
 * for a non-2xx reply; caller frees */
char *relay_quote(const struct smtp_reply *r, const char *who, const char *relay);

/* main.c */
void agent_client_gone(struct agent *a);

#endif
