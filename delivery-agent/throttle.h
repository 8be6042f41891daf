/* throttle - weir-agent's side of the throttle (weir.conf group throttle):
 * admission of each RCPT before it goes upstream (MX lookups for groups
 * matched by MX, waiting for a session or a rate slot on libevent timers,
 * the 451/452 answers), the limiters a transaction holds, the upstream
 * replies fed to the back-off rules and the state file. The engine (what
 * a limiter allows, the rules) is policy/throttle.c. Everything runs in
 * the event loop's thread. */
#ifndef WEIR_AGENT_THROTTLE_H
#define WEIR_AGENT_THROTTLE_H

#include <stdbool.h>

struct agent;
struct client;
struct weir_config;
struct smtp_reply;
struct throttle_limiter;
struct throttle_agent;
struct throttle;

/* throttle_agent_start - at start: the engine when cfg throttles
 * anything, and the state file timer (a->throttle; NULL when not) */
void throttle_agent_start(struct agent *a, struct weir_config *cfg);
/* throttle_agent_reload - a reload: new limits, state kept by key; the
 * engine is made now when cfg is the first to throttle anything */
void throttle_agent_reload(struct agent *a, struct weir_config *cfg);
/* throttle_agent_engine - the engine (policy/throttle.h), NULL when
 * nothing was ever throttled; event loop only */
struct throttle *throttle_agent_engine(struct agent *a);
/* throttle_agent_stop - at exit, after every client was freed: the
 * state file once more, then free */
void throttle_agent_stop(struct agent *a);

enum admit {
	ADMIT_GO,      /* send the RCPT on now */
	ADMIT_REFUSED, /* answered (451/452) and logged; the RCPT is done */
	ADMIT_LATER,   /* would have to wait, which !may_wait forbids: nothing
	                * was committed; ask again later */
	ADMIT_WAIT,    /* waiting: done runs from the event loop */
};
/* admit_cb - the end of an ADMIT_WAIT: go (true) or answered (false) */
typedef void admit_cb(struct client *c, bool go);

/* throttle_admit - admission of c's RCPT rcpt (recipient domain rdom,
 * lowercased, NULL when none; route: the route's name, NULL when not
 * known yet) for c's transaction. On ADMIT_GO (also through done), the
 * transaction holds the recipient's limiters until it ends and
 * *dest_lim_r is the recipient's destination limiter (NULL when none),
 * for throttle_feed. At most one admission per client at a time. */
enum admit throttle_admit(struct client *c, const char *rcpt, const char *route, const char *rdom,
                          bool may_wait, admit_cb *done, struct throttle_limiter **dest_lim_r);
/* throttle_txn_end - c's transaction ended (answered, RSET, client
 * gone): cancel a waiting admission, release the sessions it held and
 * wake the RCPTs waiting for them */
void throttle_txn_end(struct client *c);

/* throttle_feed - an upstream reply met by mail for destination limiter
 * l (NULL: nothing to do): the back-off rules count it */
void throttle_feed(struct client *c, struct throttle_limiter *l, const struct smtp_reply *r);
/* throttle_delivered - a message for l was accepted after DATA */
void throttle_delivered(struct client *c, struct throttle_limiter *l);
/* throttle_messages_per_session - messages_per_session of limiter l (0:
 * no cap; NULL is ok) */
int throttle_messages_per_session(struct client *c, struct throttle_limiter *l);

#endif
