/* intake - taking in one bounce or complaint that came back (weir-agent's
 * LMTP intake for bounce.domains, `weirctl bounce intake` for a pipe
 * transport): parse it (bounce.h), record each failed recipient in the
 * suppression list and the outcome log, and hand webhook events on.
 * Shared by both so that they do exactly the same. */
#ifndef WEIR_POLICY_INTAKE_H
#define WEIR_POLICY_INTAKE_H

#include <stddef.h>

#include "policy/bounce.h"

struct weir_config;
struct suppress;
struct outcome_log;

struct intake_env {
	const struct weir_config *cfg;
	const struct bounce_rules *rules; /* NULL: every reason "undefined" */
	struct suppress *store;           /* required */
	struct outcome_log *outcome;      /* NULL: no outcome rows */
	/* a webhook event (type "bounce" or "complaint", the JSON object),
	 * called only once everything is recorded; may be NULL */
	void (*event)(void *ctx, const char *type, const char *json);
	/* each recipient recorded (metrics): the report's kind, the
	 * reason and hard flag recorded; may be NULL */
	void (*recorded)(void *ctx, enum bounce_kind kind, const char *reason, bool hard);
	void *ctx;
};

struct intake_result {
	enum bounce_kind kind;
	size_t recorded;   /* recipients recorded */
	size_t suppressed; /* of them, now suppressed */
};

/* intake_message - one message (not dot-stuffed; any line endings), as
 * received for the envelope recipient env_rcpt (a VERP address names the
 * bounced recipient when the report does not; may be NULL). 0 when done
 * (also for a message that is no bounce: nothing is recorded then), -1
 * with *err_r (caller frees) when a store failed: the caller answers
 * with a temporary failure so that the message comes again. */
int intake_message(const struct intake_env *env, const char *msg, size_t len, const char *env_rcpt,
                   struct intake_result *res, char **err_r);

/* intake_kind_name - "dsn", "text", "complaint", "autoreply", "none" */
const char *intake_kind_name(enum bounce_kind kind);

#endif
