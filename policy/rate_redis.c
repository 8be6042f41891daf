/* rate_redis - the Redis backend of rate_store: several gateways share
 * rate limits and quotas through one Redis server.
 *
 * State: one hash per state key, <rate.redis_prefix><NAME:VALUE>, with
 * the fields tat (GCRA theoretical arrival time, ms), qwin (start of the
 * quota window, ms) and qcount (charged in that window), plus the
 * parameters last charged with (t = GCRA emission interval, cap = GCRA
 * capacity, qn = quota, qw = quota window; all ms) so that rate show can
 * say what remains without knowing the limit: struct rate_state, as the
 * memory backend keeps it, and shown by the same rate_state_format. Each
 * hash carries a PEXPIRE that ends when the GCRA state has drained and
 * the quota window is over: idle keys vanish by themselves.
 *
 * Decision: one Lua script (rr_charge_script) per rate_redis_charge, over
 * all items at once, so a decision is atomic across the fleet. Its clock
 * is the Redis server's (TIME), so gateways with skewed clocks agree. It
 * is loaded with SCRIPT LOAD when a connection is made and called with
 * EVALSHA; NOSCRIPT (Redis restarted, SCRIPT FLUSH) loads it again.
 * Connections, timeouts and the password: redis_conn.c; connections per
 * thread and outages (rate.fail_mode):
 * rate_redis_conn.c. Redis Cluster is not supported (the keys of one
 * decision may live in different slots). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_redis_conn.h"

/* KEYS[i]: the hash of item i. ARGV[1]: "1" to commit even if denied
 * (force); then 6 numbers per item: period_ms n burst quota_period_ms
 * quota_n cost. Returns {now, then per item: allowed, retry_after_ms,
 * resets_at_ms, quota (1: the denial is the quota's), remaining}.
 * Algorithms as in rate_store.h / issue 6's contract; an item's charge is
 * applied to the state the next item with the same key sees. */
/* clang-format off */
const char rr_charge_script[] =
	"if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local force = ARGV[1] == '1'\n"
	"local st, order, out, all = {}, {}, {now}, true\n"
	"local function num(x) return string.format('%.0f', x) end\n"
	"for i, key in ipairs(KEYS) do\n"
	"  local a = 1 + (i - 1) * 6\n"
	"  local per, n, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n"
	"  local qper, qn, cost = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])\n"
	"  local s = st[key]\n"
	"  if not s then\n"
	"    local h = redis.call('HMGET', key, 'tat', 'qwin', 'qcount')\n"
	"    s = {tat = tonumber(h[1]) or 0, qwin = tonumber(h[2]) or -1,\n"
	"         qcount = tonumber(h[3]) or 0, f = {}, exp = now + 1}\n"
	"    st[key] = s\n"
	"    order[#order + 1] = key\n"
	"  end\n"
	"  local rok, rretry, rrem = true, 0, nil\n"
	"  local qok, qretry, qrem, qend = true, 0, nil, 0\n"
	"  if n > 0 then\n"
	"    local T = math.max(math.floor(per / n), 1)\n"
	"    local cap = burst * T\n"
	"    local base = math.max(s.tat, now)\n"
	"    local newtat = base + cost * T\n"
	"    rrem = math.floor((cap - (base - now)) / T)\n"
	"    if newtat - now > cap then rok = false; rretry = newtat - now - cap end\n"
	"    s.tat = newtat\n"
	"    s.f.tat = num(newtat); s.f.t = num(T); s.f.cap = num(cap)\n"
	"    s.exp = math.max(s.exp, newtat)\n"
	"  end\n"
	"  if qn > 0 then\n"
	"    local wstart = math.floor(now / qper) * qper\n"
	"    if s.qwin ~= wstart then s.qwin = wstart; s.qcount = 0 end\n"
	"    qrem = qn - s.qcount\n"
	"    qend = wstart + qper\n"
	"    if s.qcount + cost > qn then qok = false; qretry = qend - now end\n"
	"    s.qcount = s.qcount + cost\n"
	"    s.f.qwin = num(wstart); s.f.qcount = num(s.qcount)\n"
	"    s.f.qn = num(qn); s.f.qw = num(qper)\n"
	"    s.exp = math.max(s.exp, qend)\n"
	"  end\n"
	"  local ok, retry, resets, isq, rem = 1, 0, 0, 0, 0\n"
	"  if not rok or not qok then\n"
	"    ok = 0; all = false\n"
	"    if not qok and (rok or qretry >= rretry) then\n"
	"      retry, resets, isq, rem = qretry, qend, 1, qrem\n"
	"    else\n"
	"      retry, rem = rretry, rrem\n"
	"    end\n"
	"  elseif rrem and qrem then rem = math.min(rrem, qrem)\n"
	"  else rem = rrem or qrem or 0 end\n"
	"  if rem < 0 then rem = 0 end\n"
	"  out[#out + 1] = ok; out[#out + 1] = retry; out[#out + 1] = resets\n"
	"  out[#out + 1] = isq; out[#out + 1] = rem\n"
	"end\n"
	"if all or force then\n"
	"  for _, key in ipairs(order) do\n"
	"    local s, args = st[key], {}\n"
	"    for k, v in pairs(s.f) do args[#args + 1] = k; args[#args + 1] = v end\n"
	"    if #args > 0 then\n"
	"      redis.call('HMSET', key, unpack(args))\n"
	"      redis.call('PEXPIRE', key, num(math.max(s.exp - now, 1)))\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n";
/* clang-format on */

/* Fields per item in the script's answer */
#define REPLY_PER_ITEM 5

/* strictness - rank of an action among denying items (higher wins) */
static int strictness(int action)
{
	switch (action) {
	case ACTION_REJECT: return 4;
	case ACTION_TEMPFAIL: return 3;
	case ACTION_HOLD: return 2;
	case ACTION_LOG: return 1;
	default: return 0;
	}
}

/* verdict_from_reply - fill v from the script's answer; -1 if malformed */
static int verdict_from_reply(const redisReply *reply, const struct rate_item *items, size_t n,
                              struct rate_verdict *v)
{
	long long remaining_min = -1;
	int best = -1;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 + REPLY_PER_ITEM * n)
		return -1;
	for (size_t i = 0; i < reply->elements; i++)
		if (reply->element[i]->type != REDIS_REPLY_INTEGER)
			return -1;
	memset(v, 0, sizeof(*v));
	v->allowed = true;
	for (size_t i = 0; i < n; i++) {
		redisReply **e = reply->element + 1 + REPLY_PER_ITEM * i;
		long long remaining = e[4]->integer;
		if (e[0]->integer == 0) {
			int rank = strictness(items[i].action);
			v->allowed = false;
			if (rank > best) {
				best = rank;
				v->denied = i;
				v->retry_after_ms = e[1]->integer;
				v->resets_at_ms = e[2]->integer;
				v->quota = e[3]->integer != 0;
				v->remaining = remaining;
			}
		} else if (remaining_min < 0 || remaining < remaining_min) {
			remaining_min = remaining;
		}
	}
	if (v->allowed)
		v->remaining = remaining_min < 0 ? 0 : remaining_min;
	return 0;
}

/* charge_argv - EVALSHA's arguments for items; *buf_r holds the numbers
 * (caller frees it and the two arrays) */
static int charge_argv(const struct rr_conn *conn, const struct rate_item *items, size_t n,
                       bool force, const char ***argv_r, size_t **lens_r, char **buf_r)
{
	size_t argc = 4 + n + 6 * n, k = 0, pos = 0;
	const size_t numw = 24;
	const char **argv = xcalloc(argc, sizeof(*argv));
	size_t *lens = xcalloc(argc, sizeof(*lens));
	char *buf = xmalloc(numw * (1 + 6 * n) + 1);
	const char *prefix = conn->link.set->prefix;

	argv[k++] = "EVALSHA";
	argv[k++] = conn->link.sha;
	argv[k++] = buf + pos;
	pos += (size_t)snprintf(buf + pos, numw, "%zu", n) + 1;
	for (size_t i = 0; i < n; i++)
		argv[k++] = xasprintf("%s%s", prefix, items[i].state_key);
	argv[k++] = force ? "1" : "0";
	for (size_t i = 0; i < n; i++) {
		const struct rate_item *it = &items[i];
		long long nums[6] = {it->period_ms,       it->n,       it->burst,
		                     it->quota_period_ms, it->quota_n, (long long)it->cost};
		if (it->n > 0 && it->period_ms <= 0)
			nums[1] = 0;
		if (it->quota_n > 0 && it->quota_period_ms <= 0)
			nums[4] = 0;
		for (int j = 0; j < 6; j++) {
			argv[k++] = buf + pos;
			pos += (size_t)snprintf(buf + pos, numw, "%lld", nums[j]) + 1;
		}
	}
	for (size_t i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	*argv_r = argv;
	*lens_r = lens;
	*buf_r = buf;
	return (int)argc;
}

int rate_redis_charge(struct rate_redis *r, const struct rate_item *items, size_t n, bool force,
                      struct rate_verdict *v)
{
	struct rr_conn *conn;
	redisReply *reply;
	const char **argv;
	size_t *lens;
	char *buf;
	long long deadline;
	int argc, ret = 0;

	memset(v, 0, sizeof(*v));
	v->allowed = true;
	if (n == 0)
		return 0;
	conn = rr_conn_get(r);
	deadline = redis_conn_deadline(&conn->link);
	if (!redis_conn_ready(&conn->link, deadline)) {
		rr_backend_failed(conn, v);
		return 0;
	}
	argc = charge_argv(conn, items, n, force, &argv, &lens, &buf);
	reply = redis_conn_command(&conn->link, deadline, argc, argv, lens);
	/* argv[1] is conn->link.sha, which a reconnection or NOSCRIPT reload
	 * writes again with the same value (the script's SHA1) */
	for (size_t i = 0; i < n; i++)
		free((char *)argv[3 + i]);
	free(argv);
	free(lens);
	free(buf);
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		if (reply != NULL)
			redis_conn_note_error(&conn->link, "EVALSHA", reply);
		freeReplyObject(reply);
		rr_backend_failed(conn, v);
		return 0;
	}
	if (verdict_from_reply(reply, items, n, v) < 0) {
		snprintf(conn->link.err, sizeof(conn->link.err), "EVALSHA: malformed answer");
		rr_backend_failed(conn, v);
		ret = -1;
	} else {
		rr_backend_ok(conn);
	}
	freeReplyObject(reply);
	return ret;
}

/* state_parse - HGETALL's answer into st; false if it is no hash */
static bool state_parse(const redisReply *reply, struct rate_state *st)
{
	static const char *const names[] = {"tat", "t", "cap", "qwin", "qcount", "qn", "qw"};
	long long *fields[] = {&st->tat,    &st->t,  &st->cap, &st->qwin,
	                       &st->qcount, &st->qn, &st->qw};

	memset(st, 0, sizeof(*st));
	st->qwin = -1;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
		return false;
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		const redisReply *k = reply->element[i], *val = reply->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
			return false;
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (strcmp(k->str, names[j]) == 0)
				*fields[j] = strtoll(val->str, NULL, 10);
	}
	return true;
}

/* redis_now - the server's clock in ms, or -1 */
static long long redis_now(struct rr_conn *conn)
{
	const char *argv[] = {"TIME"};
	redisReply *reply = redis_conn_command(&conn->link, 0, 1, argv, NULL);
	long long now = -1;

	if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    reply->element[1]->type == REDIS_REPLY_STRING)
		now = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
		      strtoll(reply->element[1]->str, NULL, 10) / 1000;
	else if (reply != NULL)
		redis_conn_note_error(&conn->link, "TIME", reply);
	freeReplyObject(reply);
	return now;
}

static int show_failed(struct rr_conn *conn, char **err_r)
{
	*err_r = xasprintf("redis %s: %s", conn->link.set->addr, conn->link.err);
	return -1;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* glob_escape - s with the characters SCAN MATCH treats specially escaped,
 * then "*" (caller frees) */
static char *glob_match_prefix(const char *s)
{
	char *out = xmalloc(2 * strlen(s) + 2), *o = out;

	for (; *s != '\0'; s++) {
		if (strchr("*?[]\\^-", *s) != NULL)
			*o++ = '\\';
		*o++ = *s;
	}
	*o++ = '*';
	*o = '\0';
	return out;
}

/* show_page - HGETALL every key of one SCAN page (pipelined), appending a
 * line per key to *lines_r; -1 with conn->link.err */
static int show_page(struct rr_conn *conn, const redisReply *keys, long long now, char ***lines_r,
                     size_t *n_r, size_t *size_r)
{
	size_t plen = strlen(conn->link.set->prefix);
	struct redis_pipe_guard g;
	int ret = 0;

	/* one page (up to 1000 keys) within one timeout */
	if (keys->elements > 0 && !redis_conn_arm(&conn->link, 0))
		return -1;
	redis_pipe_guard_on(&g);
	for (size_t i = 0; i < keys->elements; i++) {
		const char *argv[2] = {"HGETALL", keys->element[i]->str};
		size_t lens[2] = {7, keys->element[i]->len};
		redisAppendCommandArgv(conn->link.c, 2, argv, lens);
	}
	for (size_t i = 0; i < keys->elements; i++) {
		redisReply *reply = NULL;
		struct rate_state st;
		if (redisGetReply(conn->link.c, (void **)&reply) != REDIS_OK) {
			redis_conn_note_error(&conn->link, "HGETALL", NULL);
			redis_conn_disconnect(&conn->link);
			ret = -1;
			break;
		}
		if (state_parse(reply, &st) && reply->elements > 0 &&
		    keys->element[i]->len >= plen) {
			if (*n_r == *size_r) {
				*size_r = *size_r ? 2 * *size_r : 256;
				*lines_r = xrealloc(*lines_r, *size_r * sizeof(**lines_r));
			}
			(*lines_r)[(*n_r)++] =
			    rate_state_format(keys->element[i]->str + plen, &st, now);
		}
		freeReplyObject(reply);
	}
	redis_pipe_guard_off(&g);
	return ret;
}

/* show_all - every key under the prefix, sorted (SCAN: no KEYS, which
 * would stop the server for the whole keyspace) */
static int show_all(struct rr_conn *conn, long long now, FILE *out, char **err_r)
{
	char *match = glob_match_prefix(conn->link.set->prefix), cursor[32] = "0", **lines = NULL;
	size_t n = 0, size = 0;
	int ret = 0;

	do {
		const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
		redisReply *reply = redis_conn_command(&conn->link, 0, 6, argv, NULL);
		if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    reply->element[1]->type != REDIS_REPLY_ARRAY ||
		    reply->element[0]->len >= sizeof(cursor)) {
			if (reply != NULL)
				redis_conn_note_error(&conn->link, "SCAN", reply);
			freeReplyObject(reply);
			ret = show_failed(conn, err_r);
			break;
		}
		memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
		if (show_page(conn, reply->element[1], now, &lines, &n, &size) < 0)
			ret = show_failed(conn, err_r);
		freeReplyObject(reply);
	} while (ret == 0 && strcmp(cursor, "0") != 0);
	if (ret == 0 && n > 0) {
		qsort(lines, n, sizeof(*lines), cmp_lines);
		for (size_t i = 1; i < n; i++) /* SCAN may return a key twice */
			if (strcmp(lines[i], lines[i - 1]) == 0)
				lines[i - 1][0] = '\0';
		for (size_t i = 0; i < n; i++)
			if (lines[i][0] != '\0')
				fprintf(out, "%s\n", lines[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(match);
	return ret;
}

int rate_redis_show(struct rate_redis *r, const char *state_key, FILE *out, char **err_r)
{
	struct rr_conn *conn = rr_conn_get(r);
	struct rate_state st;
	long long now;
	redisReply *reply;
	char *key;
	int ret = 0;

	now = redis_now(conn);
	if (now < 0)
		return show_failed(conn, err_r);
	if (state_key == NULL)
		return show_all(conn, now, out, err_r);
	key = xasprintf("%s%s", conn->link.set->prefix, state_key);
	reply = redis_conn_command(&conn->link, 0, 2, (const char *[]){"HGETALL", key}, NULL);
	if (reply == NULL || !state_parse(reply, &st)) {
		if (reply != NULL)
			redis_conn_note_error(&conn->link, "HGETALL", reply);
		ret = show_failed(conn, err_r);
	} else if (reply->elements == 0) {
		fprintf(out, "%s state=none\n", state_key);
	} else {
		char *line = rate_state_format(state_key, &st, now);
		fprintf(out, "%s\n", line);
		free(line);
	}
	freeReplyObject(reply);
	free(key);
	return ret;
}

/* rate_redis_reset - forget a key's state (fleet-wide at once); a key
 * with no state is not an error */
int rate_redis_reset(struct rate_redis *r, const char *state_key, char **err_r)
{
	struct rr_conn *conn = rr_conn_get(r);
	redisReply *reply;
	char *key;
	int ret = 0;

	key = xasprintf("%s%s", conn->link.set->prefix, state_key);
	reply = redis_conn_command(&conn->link, 0, 2, (const char *[]){"DEL", key}, NULL);
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		if (reply != NULL)
			redis_conn_note_error(&conn->link, "DEL", reply);
		ret = show_failed(conn, err_r);
	}
	freeReplyObject(reply);
	free(key);
	return ret;
}
