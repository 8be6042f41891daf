/* suppression - the suppression list at RCPT (issue 9)
 *
 * Outgoing mail only (logins, certificates, trusted networks): a
 * recipient on the list, globally or for the envelope sender's domain, is
 * refused with "550 5.1.1 <rcpt>: suppressed since DAY: REASON", so the
 * sending application learns at once. Checked after relay control and
 * before the rate limits, so a refused recipient spends no rate budget.
 * policy.dry_run logs the refusal and accepts (decide_action).
 *
 * The list failing (file missing and not creatable, locked, broken)
 * never refuses mail: the recipient is accepted and the failure logged,
 * at most once a minute. */
#include "autoconf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "milter/metrics.h"
#include "milter/session.h"
#include "milter/state.h"
#include "policy/suppress.h"

#define FAIL_LOG_INTERVAL 60 /* seconds between two lines about a failing list */

static atomic_llong fail_logged; /* monotonic seconds of the last such line */

/* store_failed - log why the list could not be read, once a minute */
static void store_failed(const char *why)
{
	struct timespec ts;
	long long now, last;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (long long)ts.tv_sec + FAIL_LOG_INTERVAL; /* never 0 */
	last = atomic_load(&fail_logged);
	if (last != 0 && now - last < FAIL_LOG_INTERVAL)
		return;
	if (!atomic_compare_exchange_strong(&fail_logged, &last, now))
		return; /* another thread logs it */
	log_error("suppression list: %s; recipients are accepted without the check "
	          "(said at most once a minute)",
	          why);
}

/* sender_domain - the domain of the envelope sender; NULL for <> */
static const char *sender_domain(const struct msg *m)
{
	const char *at = m->sender != NULL ? strrchr(m->sender, '@') : NULL;

	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

enum mlfi_status suppression_rcpt(struct conn *c, const struct mlfi_io *io, const char *rcpt)
{
	struct msg *m = c->msg;
	struct suppress_entry e;
	struct suppress *s;
	struct kvline kv;
	enum mlfi_status st;
	char text[600], *err = NULL;
	const char *domain;
	int rc;

	if (!c->cfg->suppression.milter || m->identity == ID_OUTSIDE)
		return MLFI_CONTINUE;
	s = milter_state_suppress(milter_state_of(c->cfg), c->cfg, &err);
	if (s == NULL) {
		if (err != NULL)
			store_failed(err);
		free(err);
		return MLFI_CONTINUE;
	}
	domain = sender_domain(m);
	rc = suppress_lookup(s, rcpt, domain, (long long)time(NULL), &e, &err);
	if (rc < 0) {
		store_failed(err);
		free(err);
		return MLFI_CONTINUE;
	}
	if (rc == 0)
		return MLFI_CONTINUE;
	mm_suppressed();
	suppress_reply_text(&e, rcpt, text, sizeof(text));
	kv_init(&kv);
	kv_addf(&kv, "rcpt", "<%s>", rcpt);
	kv_add(&kv, "suppressed", e.reason);
	kv_add(&kv, "suppressed_scope", e.scope[0] != '\0' ? e.scope : "global");
	kv_add(&kv, "suppressed_source", e.source);
	st =
	    decide_action(c, io, "suppression", ACTION_REJECT, "5.1.1", "4.7.1", text, kv_str(&kv));
	kv_free(&kv);
	return st;
}
