/* webhook - POST a JSON event to the URLs of bounce.webhooks when a
 * bounce or complaint is recorded: HMAC-SHA256 signature header,
 * retries with back-off, in a thread of its own through an outbox in
 * SQLite, so a slow or dead receiver never blocks delivery and an
 * event survives a restart. */
#ifndef WEIR_POLICY_WEBHOOK_H
#define WEIR_POLICY_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

struct weir_config;
struct webhook;
struct config_errors;

/* Event types, as bits of webhook_target.events */
enum webhook_event_type { WEBHOOK_EVENT_BOUNCE = 1, WEBHOOK_EVENT_COMPLAINT = 2 };

/* One entry of bounce.webhooks (policy/webhook_config.c) */
struct webhook_target {
	char *url;         /* http:// or https:// */
	char *secret_file; /* mode 600: the HMAC key */
	unsigned events;   /* enum webhook_event_type bits */
	char *file;        /* where it was written, for errors */
	int line;
};

/* webhook_start - the sender thread, when cfg has webhooks (else NULL
 * without error); NULL with *err_r on a bad setting (secret file).
 * Call it after the daemon has forked: a thread does not survive fork.
 * It copies what it needs of cfg. */
struct webhook *webhook_start(const struct weir_config *cfg, char **err_r);
/* webhook_event - queue one event for every URL that wants its type:
 * type "bounce" or "complaint"; json is the event object (the caller
 * builds it with the fields of the spec) */
void webhook_event(struct webhook *w, const char *type, const char *json);
/* webhook_enqueue - put the event in the outbox without a thread of
 * one's own (weirctl bounce intake): the running weir-agent sends it;
 * 0, or -1 with *err_r (caller frees) */
int webhook_enqueue(const struct weir_config *cfg, const char *type, const char *json,
                    char **err_r);
/* webhook_stop - stop the thread (pending events stay in the outbox);
 * returns within about a second even while a POST hangs. NULL is ok. */
void webhook_stop(struct webhook *w);

/* Retries: a failed POST (not 2xx, no answer within
 * bounce.webhook_timeout) is tried again after 5 s, then 10 s, 20 s, ...
 * at most 1 h apart, bounce.webhook_retries times after the first; then
 * the event is dropped with a warning. For tests only, the environment
 * variable WEIR_WEBHOOK_BACKOFF_MS replaces the first delay (5000 ms),
 * read by webhook_start. */

/* webhook_event_bit - the enum webhook_event_type bit of a type name
 * ("bounce", "complaint"), 0 for any other */
unsigned webhook_event_bit(const char *type);

/* Parsing (SETTING_CUSTOM bounce.webhooks, settings.c) */
void webhooks_parse(struct weir_config *cfg, void *node, const char *file,
                    struct config_errors *errs);
char *webhooks_format(const struct weir_config *cfg);
void webhooks_free(struct weir_config *cfg);
/* webhooks_compile - once every setting is read (settings_compile):
 * the outbox needs outcome.db, and each secret file must be readable,
 * not empty and not readable by group or others */
void webhooks_compile(struct weir_config *cfg, struct config_errors *errs);

#endif
