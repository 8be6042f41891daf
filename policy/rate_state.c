/* rate_state - the algorithms of rate limits, for the memory backend
 * (the Redis backend runs the same in its Lua script), and the line
 * `weirctl rate show` prints for a key
 *
 * GCRA for rates: T = period / n (at least 1), capacity = burst * T; a
 * charge of cost c at now moves the theoretical arrival time tat to
 * max(tat, now) + c * T and is allowed while that is at most capacity
 * ahead of now: smooth, and no burst at any window's edge. Quotas count in
 * fixed windows aligned to the epoch, so to UTC hours and days. All
 * times are ms. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/rate_mem.h"

long long rate_floordiv(long long a, long long b)
{
	long long q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void rate_state_charge(struct rate_state *s, const struct rate_item *it, long long now,
                       struct rate_outcome *o)
{
	bool has_rate = it->n > 0 && it->period_ms > 0;
	bool has_quota = it->quota_n > 0 && it->quota_period_ms > 0;
	bool rok = true, qok = true;
	long long rretry = 0, rrem = 0, qretry = 0, qrem = 0, qend = 0, cost = it->cost;

	if (has_rate) {
		long long t = it->period_ms / it->n > 1 ? it->period_ms / it->n : 1;
		long long cap = it->burst * t;
		long long base = s->tat > now ? s->tat : now;
		long long newtat = base + cost * t;

		rrem = rate_floordiv(cap - (base - now), t);
		if (newtat - now > cap) {
			rok = false;
			rretry = newtat - now - cap;
		}
		s->tat = newtat;
		s->t = t;
		s->cap = cap;
	}
	if (has_quota) {
		long long w = it->quota_period_ms, wstart = rate_floordiv(now, w) * w;

		if (s->qwin != wstart) {
			s->qwin = wstart;
			s->qcount = 0;
		}
		qrem = it->quota_n - s->qcount;
		qend = wstart + w;
		if (s->qcount + cost > it->quota_n) {
			qok = false;
			qretry = qend - now;
		}
		s->qcount += cost;
		s->qn = it->quota_n;
		s->qw = w;
	}
	memset(o, 0, sizeof(*o));
	o->ok = rok && qok;
	if (!qok && (rok || qretry >= rretry)) {
		/* the quota's denial: it lasts longer */
		o->retry_after_ms = qretry;
		o->resets_at_ms = qend;
		o->quota = true;
		o->remaining = qrem;
	} else if (!rok) {
		o->retry_after_ms = rretry;
		o->remaining = rrem;
	} else if (has_rate && has_quota) {
		o->remaining = rrem < qrem ? rrem : qrem;
	} else {
		o->remaining = has_rate ? rrem : has_quota ? qrem : 0;
	}
	if (o->remaining < 0)
		o->remaining = 0;
}

bool rate_state_idle(const struct rate_state *st, long long now)
{
	return st->tat <= now && (st->qw <= 0 || st->qwin < 0 || st->qwin + st->qw <= now);
}

long long rate_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_time(long long ms, char *buf, size_t size)
{
	time_t secs = (time_t)rate_floordiv(ms, 1000);
	struct tm tm;

	if (gmtime_r(&secs, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", ms);
}

char *rate_state_format(const char *state_key, const struct rate_state *st, long long now)
{
	const char *colon = strchr(state_key, ':');
	struct kvline kv;
	char when[40], *line;

	kv_init(&kv);
	if (colon != NULL) {
		kv_addn(&kv, "limit", state_key, (size_t)(colon - state_key));
		kv_add(&kv, "value", colon + 1);
	}
	if (st->t > 0) {
		long long used = st->tat > now ? st->tat - now : 0;
		long long rem = st->cap >= used ? (st->cap - used) / st->t : 0;

		kv_addf(&kv, "rate_remaining", "%lld", rem);
		if (rem == 0) {
			/* a charge of one is allowed again at tat + T - capacity */
			long long at = st->tat + st->t - st->cap;
			iso_time(at, when, sizeof(when));
			kv_add(&kv, "rate_retry_at", when);
			kv_addf(&kv, "rate_retry_after", "%llds", (at - now + 999) / 1000);
		}
		iso_time(st->tat > now ? st->tat : now, when, sizeof(when));
		kv_add(&kv, "rate_full_at", when);
	}
	if (st->qw > 0 && st->qn > 0) {
		long long wstart = rate_floordiv(now, st->qw) * st->qw;
		long long used = st->qwin == wstart ? st->qcount : 0;

		kv_addf(&kv, "quota_used", "%lld", used);
		kv_addf(&kv, "quota_limit", "%lld", st->qn);
		kv_addf(&kv, "quota_remaining", "%lld", used < st->qn ? st->qn - used : 0);
		iso_time(wstart + st->qw, when, sizeof(when));
		kv_add(&kv, "quota_resets_at", when);
	}
	if (st->t <= 0 && (st->qw <= 0 || st->qn <= 0))
		kv_add(&kv, "state", "none");
	line = xasprintf("%s %s", state_key, kv_str(&kv));
	kv_free(&kv);
	return line;
}
