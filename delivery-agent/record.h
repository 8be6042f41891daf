/* record - what weir-agent writes down and looks up beside relaying: the
 * outcome log (a row for each answer to the MTA about a recipient), the
 * suppression check before a RCPT goes upstream, webhooks, and the state
 * of a configuration they need (bounce rules, the suppression store).
 * Event loop only. */
#ifndef WEIR_AGENT_RECORD_H
#define WEIR_AGENT_RECORD_H

#include <stdbool.h>
#include <sys/types.h>

struct agent;
struct client;
struct dest;
struct evbuffer;
struct weir_config;
struct bounce_rules;
struct suppress;

/* record_prepare - as root, before dropping privileges: the directories
 * of outcome.db and suppression.db, and their files given to uid:gid */
void record_prepare(const struct weir_config *cfg, uid_t uid, gid_t gid);
/* record_start - open the outcome log, start the webhook thread (a
 * failure is logged; the agent relays without them) */
void record_start(struct agent *a, const struct weir_config *cfg);
/* record_reload - a new configuration: reopen what changed */
void record_reload(struct agent *a, const struct weir_config *old, const struct weir_config *cfg);
/* record_stop - write what is queued, stop the webhook thread */
void record_stop(struct agent *a);

/* record_rules - cfg's bounce rules, loaded at first use (NULL when the
 * file cannot be read: logged once, every reason is then "undefined") */
const struct bounce_rules *record_rules(struct weir_config *cfg);
/* record_store - cfg's suppression store, opened at first use; NULL
 * with *err_r (caller frees) */
struct suppress *record_store(struct weir_config *cfg, char **err_r);
/* record_bounce_domain - is the recipient's domain one of bounce.domains */
bool record_bounce_domain(const struct weir_config *cfg, const char *rcpt);

/* record_answer - the outcome row for the answer line the MTA got about
 * rcpt (d: its destination, or NULL) */
void record_answer(struct client *c, const char *rcpt, const struct dest *d, const char *line);
/* record_suppressed - suppression.agent: is pending_rcpt suppressed for
 * this sender? Then it is answered (550 5.1.1, as weir-milter's),
 * logged and recorded here, and true is returned. A store failure never
 * refuses mail. */
bool record_suppressed(struct client *c);
/* record_queue_id - the MTA's queue id from the message's first Received
 * header ("... with ESMTP id QUEUEID"), or NULL; caller frees */
char *record_queue_id(struct evbuffer *msg);
/* record_webhook - queue a webhook event (the agent's webhook thread) */
void record_webhook(void *agent, const char *type, const char *json);

#endif
