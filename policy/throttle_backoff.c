/* throttle_backoff - the adaptive back-off of destination limiters:
 * upstream replies counted by throttle.rules, suspension and slow state,
 * and the way back to normal (after the duration, or after `recover`
 * deliveries in slow state). Each change is one log line:
 *
 *   throttle=KEY state=suspended until=ISO rule=NAME reply="..."
 *   throttle=KEY state=slow factor=F until=ISO rule=NAME reply="..."
 *   throttle=KEY state=normal after=duration|successes
 *
 * Route and sender limiters are not subject to rules. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/throttle.h"
#include "policy/throttle_int.h"

/* reply_text - "CODE STATUS TEXT" as printable ASCII without quotes or
 * backslashes (for the log and the state file), at most
 * THROTTLE_REPLY_MAX characters; caller frees */
static char *reply_text(int code, const char *status, const char *text)
{
	char *s = xasprintf("%d%s%s%s%s", code, status ? " " : "", status ? status : "",
	                    text ? " " : "", text ? text : "");
	size_t n = strlen(s);

	for (char *p = s; *p; p++)
		if (*p < ' ' || *p > '~')
			*p = ' ';
		else if (*p == '"' || *p == '\\')
			*p = '\'';
	if (n > THROTTLE_REPLY_MAX)
		strcpy(s + THROTTLE_REPLY_MAX - 3, "...");
	return s;
}

/* log_state - the line for l's new state */
static void log_state(const struct throttle_limiter *l, const char *after)
{
	struct kvline kv;
	char until[32];

	kv_init(&kv);
	kv_add(&kv, "throttle", l->key);
	if (l->state == LIMITER_NORMAL) {
		kv_add(&kv, "state", "normal");
		kv_add(&kv, "after", after);
		log_info("%s", kv_str(&kv));
		kv_free(&kv);
		return;
	}
	throttle_iso(l->until_ms, until, sizeof(until));
	kv_add(&kv, "state", l->state == LIMITER_SUSPENDED ? "suspended" : "slow");
	if (l->state == LIMITER_SLOW)
		kv_addf(&kv, "factor", "%g", l->factor);
	kv_add(&kv, "until", until);
	kv_add(&kv, "rule", l->rule);
	kv_add(&kv, "reply", l->reply);
	log_warning("%s", kv_str(&kv));
	kv_free(&kv);
}

/* to_normal - l back to normal (after: "duration" or "successes") */
static void to_normal(struct throttle_limiter *l, const char *after)
{
	l->state = LIMITER_NORMAL;
	l->until_ms = 0;
	l->factor = 0;
	l->recover = l->successes = 0;
	free(l->rule);
	free(l->reply);
	l->rule = l->reply = NULL;
	l->owner->dirty = true;
	log_state(l, after);
}

/* throttle_expire - a suspension or slow state past its time ends */
void throttle_expire(struct throttle *t, struct throttle_limiter *l, long long now_ms)
{
	(void)t;
	if (l->state != LIMITER_NORMAL && now_ms >= l->until_ms)
		to_normal(l, "duration");
}

/* hit - one more match of rule r at now; true when r's threshold is
 * reached within its window (the count then starts again) */
static bool hit(struct rule_hits *h, const struct throttle_rule *r, long long now_ms)
{
	long long oldest;

	h->times[h->next] = now_ms;
	h->next = (h->next + 1) % r->threshold;
	if (h->n < r->threshold)
		h->n++;
	if (h->n < r->threshold)
		return false;
	oldest = h->times[h->next]; /* the ring is full: next is the oldest */
	if (now_ms - oldest > r->window_ms)
		return false;
	h->n = h->next = 0;
	return true;
}

/* set_cause - the rule and reply l's state is now due to */
static void set_cause(struct throttle_limiter *l, const struct throttle_rule *r, const char *reply)
{
	free(l->rule);
	free(l->reply);
	l->rule = xstrdup(r->name);
	l->reply = xstrdup(reply);
}

/* start_action - r's action for l; true when l's state changed (a
 * suspension or slow state started, got longer or slower) */
static bool start_action(struct throttle_limiter *l, const struct throttle_rule *r,
                         const char *reply, long long now_ms)
{
	long long until = now_ms + r->duration_ms;

	if (r->action == THROTTLE_SUSPEND) {
		if (l->state == LIMITER_SUSPENDED && l->until_ms >= until)
			return false;
		if (l->state != LIMITER_SUSPENDED || until > l->until_ms)
			l->until_ms = until;
		l->state = LIMITER_SUSPENDED;
	} else {
		if (l->state == LIMITER_SUSPENDED) /* the stronger state stays */
			return false;
		if (l->state == LIMITER_SLOW && l->until_ms >= until && l->factor <= r->factor)
			return false;
		if (l->state != LIMITER_SLOW || r->factor < l->factor)
			l->factor = r->factor;
		if (l->state != LIMITER_SLOW || until > l->until_ms)
			l->until_ms = until;
		l->state = LIMITER_SLOW;
		l->recover = r->recover;
		l->successes = 0;
	}
	set_cause(l, r, reply);
	l->owner->dirty = true;
	log_state(l, NULL);
	return true;
}

/* throttle_reply - an upstream reply met by mail for l: rules count it */
bool throttle_reply(struct throttle *t, struct throttle_limiter *l, int code, const char *status,
                    const char *text, long long now_ms)
{
	const struct throttle_config *tc = &t->cfg->throttle;
	bool changed = false;
	char *reply = NULL;

	if (now_ms > t->clock_ms)
		t->clock_ms = now_ms;
	l->last_used_ms = now_ms;
	throttle_expire(t, l, now_ms);
	if (!l->dest)
		return false;
	for (size_t i = 0; i < tc->nrules && i < l->nhits; i++) {
		const struct throttle_rule *r = &tc->rules[i];
		if (!throttle_rule_matches(r, code, status, text) || !hit(&l->hits[i], r, now_ms))
			continue;
		if (reply == NULL)
			reply = reply_text(code, status, text);
		changed |= start_action(l, r, reply, now_ms);
	}
	free(reply);
	return changed;
}

/* throttle_success - a message delivered (DATA 2xx) for l */
void throttle_success(struct throttle *t, struct throttle_limiter *l, long long now_ms)
{
	if (now_ms > t->clock_ms)
		t->clock_ms = now_ms;
	l->last_used_ms = now_ms;
	throttle_expire(t, l, now_ms);
	if (l->state != LIMITER_SLOW)
		return;
	l->successes++;
	if (l->recover > 0 && l->successes >= l->recover)
		to_normal(l, "successes");
}
