/* throttle_state - the throttle's state file (throttle.state_file),
 * written by weir-agent and printed by `weirctl throttle show`.
 *
 * One line per active limiter (charged in the last 10 minutes, sessions
 * in use, RCPTs waiting, or not normal), sorted by key:
 *
 *   KEY rate=20/s observed=12.4/s sessions=3/10 waiting=0 deferred=17
 *       state=normal|suspended|slow [until=ISO] [factor=0.5] [rule=NAME]
 *       [reply="..."]
 *
 * (one line; "-" for a dimension that is not limited). The reply holds
 * no quotes (throttle_backoff.c replaced them), so it ends at the last
 * quote of the line. Written to a temporary file in the same directory,
 * then renamed: a reader sees the old file or the new one. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/strmap.h"
#include "lib/xalloc.h"
#include "policy/throttle.h"
#include "policy/throttle_int.h"

/* throttle_limiter_active - l has state the state file shows */
bool throttle_limiter_active(const struct throttle_limiter *l, long long now_ms)
{
	return (l->last_charge_ms > 0 && now_ms - l->last_charge_ms < THROTTLE_IDLE_MS) ||
	       l->sessions > 0 || l->waiting > 0 ||
	       (l->state != LIMITER_NORMAL && l->until_ms > now_ms);
}

/* The limiters one write shows */
struct collect {
	struct throttle_limiter **v;
	size_t n, size;
	long long now_ms;
	struct throttle *t;
};

/* collect_one - l, when active (after ending a state past its time) */
static void collect_one(const char *key, void *value, void *ctx)
{
	struct collect *c = ctx;
	struct throttle_limiter *l = value;

	(void)key;
	throttle_expire(c->t, l, c->now_ms);
	if (!throttle_limiter_active(l, c->now_ms))
		return;
	if (c->n == c->size) {
		c->size = c->size ? 2 * c->size : 16;
		c->v = xrealloc(c->v, c->size * sizeof(*c->v));
	}
	c->v[c->n++] = l;
}

static int by_key(const void *a, const void *b)
{
	return strcmp((*(struct throttle_limiter *const *)a)->key,
	              (*(struct throttle_limiter *const *)b)->key);
}

/* state_line - l's line (with "\n") into f; true when what it shows
 * changes with time alone (an observed rate, a state that runs out, a
 * line that goes once the limiter is idle) */
static bool state_line(FILE *f, const struct throttle_limiter *l, long long now_ms)
{
	struct throttle_limits lim = throttle_limiter_limits(l, now_ms);
	double observed = throttle_observed(l, now_ms);
	char rate[32] = "-", sessions[16] = "-", until[32];
	static const char *const states[] = {"normal", "suspended", "slow"};

	if (lim.n > 0)
		throttle_rate_text(
		    &(struct throttle_limits){.n = lim.n, .period_ms = lim.period_ms}, rate,
		    sizeof(rate));
	if (lim.sessions > 0)
		snprintf(sessions, sizeof(sessions), "%d", lim.sessions);
	fprintf(f, "%s rate=%s observed=%.1f/s sessions=%d/%s waiting=%d deferred=%llu state=%s",
	        l->key, rate, observed, l->sessions, sessions, l->waiting, l->deferred,
	        states[l->state]);
	if (l->state != LIMITER_NORMAL) {
		throttle_iso(l->until_ms, until, sizeof(until));
		fprintf(f, " until=%s", until);
		if (l->state == LIMITER_SLOW)
			fprintf(f, " factor=%g", l->factor);
		fprintf(f, " rule=%s reply=\"%s\"", l->rule ? l->rule : "-",
		        l->reply ? l->reply : "");
	}
	fputc('\n', f);
	return observed > 0 || l->state != LIMITER_NORMAL || (l->sessions == 0 && l->waiting == 0);
}

/* write_lines - the lines of c into a new temporary file next to path,
 * renamed over it; 0 or -1 with *err_r */
static int write_lines(const char *path, const struct collect *c, bool *timed_r, char **err_r)
{
	char *tmp = xasprintf("%s.XXXXXX", path);
	int fd = mkstemp(tmp), e;
	FILE *f;

	*timed_r = false;
	if (fd < 0 || fchmod(fd, 0644) < 0 || (f = fdopen(fd, "w")) == NULL) {
		e = errno;
		*err_r = xasprintf("%s: %s", fd < 0 ? path : tmp, strerror(e));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		free(tmp);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		*timed_r |= state_line(f, c->v[i], c->now_ms);
	if (ferror(f) | (fclose(f) != 0) || rename(tmp, path) < 0) {
		e = errno;
		*err_r = xasprintf("%s: %s", tmp, strerror(e ? e : EIO));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* throttle_state_write - the state file, atomically */
int throttle_state_write(struct throttle *t, const char *path, long long now_ms, char **err_r)
{
	struct collect c = {.now_ms = now_ms, .t = t};
	bool timed;
	int rc;

	if (now_ms > t->clock_ms)
		t->clock_ms = now_ms;
	throttle_gc(t, now_ms, NULL);
	strmap_foreach(t->limiters, collect_one, &c);
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), by_key);
	rc = write_lines(path, &c, &timed, err_r);
	free(c.v);
	if (rc < 0)
		return -1;
	t->dirty = false;
	t->timed = timed;
	return 0;
}

/* throttle_foreach_active - the limiters a state file write would show */
void throttle_foreach_active(struct throttle *t, long long now_ms,
                             void (*fn)(void *ctx, const struct throttle_limiter_info *li),
                             void *ctx)
{
	static const char *const states[] = {"normal", "suspended", "slow"};
	struct collect c = {.now_ms = now_ms, .t = t};

	strmap_foreach(t->limiters, collect_one, &c);
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), by_key);
	for (size_t i = 0; i < c.n; i++) {
		const struct throttle_limiter *l = c.v[i];
		struct throttle_limits lim = throttle_limiter_limits(l, now_ms);
		struct throttle_limiter_info li = {
		    .key = l->key,
		    .state = states[l->state],
		    .rate = "-",
		    .observed = throttle_observed(l, now_ms),
		    .sessions = l->sessions,
		    .max_sessions = lim.sessions,
		    .waiting = l->waiting,
		    .deferred = l->deferred,
		    .until_ms = l->state != LIMITER_NORMAL ? l->until_ms : 0,
		    .rule = l->state != LIMITER_NORMAL ? l->rule : NULL,
		    .reply = l->state != LIMITER_NORMAL ? l->reply : NULL,
		};
		if (lim.n > 0)
			throttle_rate_text(
			    &(struct throttle_limits){.n = lim.n, .period_ms = lim.period_ms},
			    li.rate, sizeof(li.rate));
		fn(ctx, &li);
	}
	free(c.v);
}

/* throttle_state_changed - something the file shows changed since the
 * last write, or may have (what it shows changes with time alone) */
bool throttle_state_changed(const struct throttle *t)
{
	return t->dirty || t->timed;
}

/* ---- weirctl throttle show ---- */

#define COLUMNS 9

static const char *const headers[COLUMNS] = {"LIMITER",  "RATE",  "OBSERVED", "SESSIONS", "WAITING",
                                             "DEFERRED", "STATE", "UNTIL",    "WHY"};

/* field - the value of " name=" in line up to the next space; "-" */
static char *field(const char *line, const char *name)
{
	char *pat = xasprintf(" %s=", name);
	const char *p = strstr(line, pat);

	free(pat);
	if (p == NULL)
		return xstrdup("-");
	p += strlen(name) + 2;
	return xstrndup(p, strcspn(p, " \n"));
}

/* why - "RULE: \"reply\"" or "RULE (factor F): \"reply\""; "-" */
static char *why(const char *line)
{
	char *rule = field(line, "rule"), *factor = field(line, "factor"), *out;
	const char *r = strstr(line, " reply=\""), *end = strrchr(line, '"');
	char *reply = r && end > r + 8 ? xstrndup(r + 8, (size_t)(end - r - 8)) : xstrdup("");

	if (strcmp(rule, "-") == 0)
		out = xstrdup("-");
	else if (strcmp(factor, "-") != 0)
		out = xasprintf("%s (factor %s): \"%s\"", rule, factor, reply);
	else
		out = xasprintf("%s: \"%s\"", rule, reply);
	free(rule);
	free(factor);
	free(reply);
	return out;
}

/* parse_row - the columns of one state line; false for a blank line */
static bool parse_row(const char *line, char *cols[COLUMNS])
{
	static const char *const names[] = {"rate",     "observed", "sessions", "waiting",
	                                    "deferred", "state",    "until"};
	size_t n = strcspn(line, " \n");

	if (n == 0)
		return false;
	cols[0] = xstrndup(line, n);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cols[i + 1] = field(line, names[i]);
	cols[COLUMNS - 1] = why(line);
	return true;
}

/* print_row - one row, each column but the last padded to w */
static void print_row(FILE *out, const char *const *cols, const size_t *w)
{
	for (int c = 0; c < COLUMNS - 1; c++)
		fprintf(out, "%-*s  ", (int)w[c], cols[c]);
	fprintf(out, "%s\n", cols[COLUMNS - 1]);
}

/* print_table - rows under the header, columns aligned */
static void print_table(FILE *out, char *(*rows)[COLUMNS], size_t n)
{
	size_t w[COLUMNS];

	for (int c = 0; c < COLUMNS; c++) {
		w[c] = strlen(headers[c]);
		for (size_t r = 0; r < n; r++)
			if (strlen(rows[r][c]) > w[c])
				w[c] = strlen(rows[r][c]);
	}
	print_row(out, headers, w);
	for (size_t r = 0; r < n; r++)
		print_row(out, (const char *const *)rows[r], w);
}

/* throttle_state_print - the file at path as a table on out */
int throttle_state_print(const char *path, FILE *out, char **err_r)
{
	char *(*rows)[COLUMNS] = NULL, *line = NULL;
	size_t n = 0, cap = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		*err_r = errno == ENOENT ? xasprintf("%s: weir-agent has not written it yet (is "
		                                     "throttle configured and weir-agent running?)",
		                                     path)
		                         : xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		char *cols[COLUMNS];
		if (!parse_row(line, cols))
			continue;
		rows = xrealloc(rows, (n + 1) * sizeof(*rows));
		memcpy(rows[n++], cols, sizeof(cols));
	}
	free(line);
	fclose(f);
	print_table(out, rows, n);
	for (size_t r = 0; r < n; r++)
		for (int c = 0; c < COLUMNS; c++)
			free(rows[r][c]);
	free(rows);
	return 0;
}
