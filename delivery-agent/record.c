/* record - outcome rows, the agent-side suppression check, webhooks and
 * the per-configuration state they need (see record.h)
 *
 * The outcome log and the webhook thread belong to the process (opened
 * at start, reopened on reload when their settings changed); the bounce
 * rules and the suppression store belong to a configuration (its
 * daemon_state, freed with it), so a session keeps the ones of the
 * configuration it started with. */
#include "autoconf.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/dest.h"
#include "delivery-agent/record.h"
#include "delivery-agent/stats.h"
#include "lib/daemon.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/bounce.h"
#include "policy/config.h"
#include "policy/outcome.h"
#include "policy/routes.h"
#include "policy/suppress.h"
#include "policy/webhook.h"

#define HEADER_SCAN     65536 /* the Received header is looked for in this much */
#define STORE_WARN_SECS 60    /* one store failure warning a minute */

/* What a configuration has loaded for the agent (cfg->daemon_state) */
struct cfg_state {
	struct bounce_rules *rules;
	bool rules_tried;
	struct suppress *store;
	time_t store_warned;
};

static void state_free(void *p)
{
	struct cfg_state *s = p;

	bounce_rules_free(s->rules);
	suppress_close(s->store);
	free(s);
}

static struct cfg_state *state_of(struct weir_config *cfg)
{
	if (cfg->daemon_state == NULL) {
		cfg->daemon_state = xcalloc(1, sizeof(struct cfg_state));
		cfg->daemon_state_free = state_free;
	}
	return cfg->daemon_state;
}

const struct bounce_rules *record_rules(struct weir_config *cfg)
{
	struct cfg_state *s = state_of(cfg);
	char *err = NULL;

	if (!s->rules_tried) {
		s->rules_tried = true;
		s->rules = bounce_rules_load(cfg->bounce.rules, &err);
		if (s->rules == NULL) {
			log_error("bounce.rules: %s; every failure is classified \"undefined\"",
			          err ? err : cfg->bounce.rules);
			free(err);
		}
	}
	return s->rules;
}

struct suppress *record_store(struct weir_config *cfg, char **err_r)
{
	struct cfg_state *s = state_of(cfg);

	if (s->store == NULL)
		s->store = suppress_open_flags(cfg, SUPPRESS_CREATE, err_r);
	return s->store;
}

bool record_bounce_domain(const struct weir_config *cfg, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	size_t n;

	if (at == NULL || cfg->bounce.domains.n == 0)
		return false;
	at++;
	n = strlen(at);
	if (n > 0 && at[n - 1] == '.')
		n--;
	for (size_t i = 0; i < cfg->bounce.domains.n; i++) {
		const char *d = cfg->bounce.domains.v[i];
		size_t dn = strlen(d);
		if (dn > 0 && d[dn - 1] == '.')
			dn--;
		if (dn == n && strncasecmp(d, at, n) == 0)
			return true;
	}
	return false;
}

void record_prepare(const struct weir_config *cfg, uid_t uid, gid_t gid)
{
	daemon_prepare_db(cfg->outcome.db, uid, gid, "outcome.db");
	if (cfg->suppression.agent || cfg->bounce.domains.n > 0)
		suppress_prepare_db(cfg, uid, gid);
}

/* open_outcome - the outcome log of cfg, or NULL ("" or a failure) */
static struct outcome_log *open_outcome(const struct weir_config *cfg)
{
	struct outcome_log *o;
	char *err = NULL;

	if (cfg->outcome.db[0] == '\0')
		return NULL;
	if ((o = outcome_open(cfg, &err)) == NULL) {
		log_error("outcome log: %s; outcomes are not recorded, bounce intake answers 451",
		          err ? err : "cannot open");
		free(err);
	}
	return o;
}

/* open_webhook - the webhook thread of cfg, or NULL */
static struct webhook *open_webhook(const struct weir_config *cfg)
{
	struct webhook *w;
	char *err = NULL;

	if ((w = webhook_start(cfg, &err)) == NULL && err != NULL) {
		log_error("webhooks: %s; no webhooks are sent", err);
		free(err);
	}
	return w;
}

void record_start(struct agent *a, const struct weir_config *cfg)
{
	a->outcome = open_outcome(cfg);
	a->webhook = open_webhook(cfg);
}

/* setting_changed - does the setting called name differ (a setting this
 * build does not have never does) */
static bool setting_changed(const struct weir_config *x, const struct weir_config *y,
                            const char *name)
{
	const struct setting *s = setting_find(name);
	char *u, *v;
	bool changed;

	if (s == NULL)
		return false;
	u = setting_format(s, x);
	v = setting_format(s, y);
	changed = (u == NULL) != (v == NULL) || (u != NULL && strcmp(u, v) != 0);
	free(u);
	free(v);
	return changed;
}

void record_reload(struct agent *a, const struct weir_config *old, const struct weir_config *cfg)
{
	static const char *const webhook_settings[] = {"outcome.db", "bounce.webhooks",
	                                               "bounce.webhook_timeout",
	                                               "bounce.webhook_retries", NULL};
	bool hooks = false;

	if (a->outcome == NULL || setting_changed(old, cfg, "outcome.db") ||
	    setting_changed(old, cfg, "outcome.retention") ||
	    setting_changed(old, cfg, "outcome.flush_interval")) {
		outcome_close(a->outcome);
		a->outcome = open_outcome(cfg);
	}
	for (size_t i = 0; webhook_settings[i] != NULL; i++)
		hooks = hooks || setting_changed(old, cfg, webhook_settings[i]);
	if (hooks || a->webhook == NULL) {
		/* events not sent yet stay in the outbox for the new thread */
		webhook_stop(a->webhook);
		a->webhook = open_webhook(cfg);
	}
}

void record_stop(struct agent *a)
{
	webhook_stop(a->webhook);
	a->webhook = NULL;
	outcome_close(a->outcome);
	a->outcome = NULL;
}

void record_webhook(void *agent, const char *type, const char *json)
{
	struct agent *a = agent;

	if (a->webhook != NULL)
		webhook_event(a->webhook, type, json);
}

/* parse_reply - "CODE X.Y.Z text" (or "CODE-..." / "CODE text"): the
 * code, the enhanced status (into status, "" when none) and where the
 * text starts */
static int parse_reply(const char *s, char *status, size_t size, const char **text_r)
{
	int code = 0;
	size_t n;

	status[0] = '\0';
	*text_r = s;
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    !isdigit((unsigned char)s[2]))
		return 0;
	code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	s += 3;
	if (*s == ' ' || *s == '-')
		s++;
	n = strspn(s, "0123456789.");
	if (n >= 5 && n < size && (s[n] == ' ' || s[n] == '\0') &&
	    s[0] == (char)('0' + code / 100) && s[1] == '.') {
		memcpy(status, s, n);
		status[n] = '\0';
		s += n;
		while (*s == ' ')
			s++;
	}
	*text_r = s;
	return code;
}

/* upstream_part - the upstream's own reply quoted in our answer line
 * ("... smart host X said: 550 5.1.1 ...", "... relayed to X: 250 ..."),
 * or the line itself when it is our own */
static const char *upstream_part(const char *line)
{
	const char *p = strstr(line, " said: ");

	if (p != NULL)
		return p + 7;
	if (line[0] == '2' && (p = strstr(line, " relayed to ")) != NULL &&
	    (p = strstr(p, ": ")) != NULL && isdigit((unsigned char)p[2]))
		return p + 2;
	return line;
}

/* count_answer - the metrics of one answer about a recipient */
static void count_answer(struct client *c, const struct dest *d, int ours)
{
	const char *route = d != NULL ? dest_route(d)->name : "none";

	stats_delivery(c->agent->stats,
	               ours / 100 == 2   ? "delivered"
	               : ours / 100 == 4 ? "deferred"
	                                 : "bounced",
	               route);
	if (c->txn.mail_ms > 0)
		stats_delivery_seconds(c->agent->stats, route,
		                       (double)(stats_now_ms() - c->txn.mail_ms) / 1000.0);
}

void record_answer(struct client *c, const char *rcpt, const struct dest *d, const char *line)
{
	struct outcome_log *o = c->agent->outcome;
	struct outcome_rec r;
	struct bounce_class cls = {NULL, false};
	char status[16];
	const char *text;
	int ours = atoi(line);

	if (record_bounce_domain(c->cfg, rcpt))
		return; /* intake recipients: counted and recorded by intake.c */
	if (d == NULL && c->txn.ndests > 0)
		d = c->txn.dests[0];
	count_answer(c, d, ours);
	if (o == NULL)
		return;
	memset(&r, 0, sizeof(r));
	r.code = parse_reply(upstream_part(line), status, sizeof(status), &text);
	r.status = status[0] ? status : NULL;
	r.reply = text[0] ? text : NULL;
	r.result = ours / 100 == 2   ? OUTCOME_DELIVERED
	           : ours / 100 == 4 ? OUTCOME_DEFERRED
	                             : OUTCOME_BOUNCED;
	if (r.result != OUTCOME_DELIVERED) {
		bounce_classify_reply(record_rules(c->cfg), r.code, r.status, r.reply, &cls);
		r.reason = cls.reason;
		r.hard = cls.hard;
	}
	r.queue_id = c->txn.queue_id;
	r.sender = c->txn.from ? c->txn.from : c->pending_mail.addr;
	r.login = c->txn.login;
	r.recipient = rcpt;
	r.route = d ? dest_route(d)->name : NULL;
	r.upstream = d ? dest_name(d) : NULL;
	r.source = "relay";
	outcome_add(o, &r);
}

/* log_suppressed - the key=value line for a recipient refused here */
static void log_suppressed(struct client *c, const char *rcpt, const char *line)
{
	struct kvline kv;

	kv_init(&kv);
	kv_addf(&kv, "conn", "%lu", c->id);
	kv_add(&kv, "proto", c->lmtp ? "lmtp" : "smtp");
	kv_addf(&kv, "from", "<%s>", c->txn.from ? c->txn.from : "");
	kv_addf(&kv, "to", "<%s>", rcpt);
	kv_add(&kv, "status", "suppressed");
	kv_add(&kv, "reply", line);
	log_info("%s", kv_str(&kv));
	kv_free(&kv);
}

bool record_suppressed(struct client *c)
{
	const char *rcpt = c->pending_rcpt.addr;
	struct cfg_state *st;
	struct suppress_entry e;
	struct suppress *s;
	char *err = NULL, line[512];
	int rc;

	if (!c->cfg->suppression.agent)
		return false;
	st = state_of(c->cfg);
	if ((s = record_store(c->cfg, &err)) != NULL)
		rc =
		    suppress_lookup(s, rcpt, c->txn.sender_domain, (long long)time(NULL), &e, &err);
	else
		rc = -1;
	if (rc < 0) {
		time_t now = time(NULL);
		if (now - st->store_warned >= STORE_WARN_SECS) {
			log_warning("conn=%lu suppression list not checked: %s", c->id,
			            err ? err : "?");
			st->store_warned = now;
		}
		free(err);
		return false;
	}
	if (rc == 0)
		return false;
	suppress_reply(&e, rcpt, line, sizeof(line));
	client_reply(c, "%s", line);
	log_suppressed(c, rcpt, line);
	stats_delivery(c->agent->stats, "suppressed", "none");
	if (c->agent->outcome != NULL) {
		struct outcome_rec r = {
		    .sender = c->txn.from,
		    .recipient = rcpt,
		    .code = 550,
		    .status = "5.1.1",
		    .reply = line + 10, /* after "550 5.1.1 " */
		    .reason = e.reason,
		    .hard = e.hard,
		    .result = OUTCOME_SUPPRESSED,
		    .source = "relay",
		};
		outcome_add(c->agent->outcome, &r);
	}
	return true;
}

/* received_id - the id in one unfolded Received field ("... with
 * ESMTPSA id 4Qx1y2Z3 for <x>; date"), or NULL */
static char *received_id(const char *f)
{
	const char *p = f;

	while ((p = strcasestr(p, "with ")) != NULL) {
		const char *q = p + 5, *id;
		size_t n;
		p = q;
		q += strspn(q, " ");
		q += strcspn(q, " ;"); /* the protocol: ESMTP, ESMTPSA, LMTP ... */
		q += strspn(q, " ");
		if (strncasecmp(q, "id ", 3) != 0)
			continue;
		id = q + 3;
		id += strspn(id, " ");
		n = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_");
		if (n > 0 && n <= 64 && (id[n] == '\0' || id[n] == ' ' || id[n] == ';'))
			return xstrndup(id, n);
	}
	return NULL;
}

char *record_queue_id(struct evbuffer *msg)
{
	size_t len = evbuffer_get_length(msg), pos = 0;
	char *buf, *id = NULL;

	if (len > HEADER_SCAN)
		len = HEADER_SCAN;
	buf = xmalloc(len + 1);
	evbuffer_copyout(msg, buf, len);
	buf[len] = '\0';
	while (pos < len && buf[pos] != '\r' && buf[pos] != '\n') {
		char *eol = strchr(buf + pos, '\n'), *f;
		size_t end = eol ? (size_t)(eol - buf) + 1 : len;
		while (end < len && (buf[end] == ' ' || buf[end] == '\t')) {
			char *e = strchr(buf + end, '\n');
			end = e ? (size_t)(e - buf) + 1 : len;
		}
		if (strncasecmp(buf + pos, "Received:", 9) == 0) {
			f = xstrndup(buf + pos + 9, end - pos - 9);
			for (char *q = f; *q; q++)
				if (*q == '\r' || *q == '\n' || *q == '\t')
					*q = ' ';
			id = received_id(f);
			free(f);
			break; /* the first one only: the MTA that handed it to us */
		}
		pos = end;
	}
	free(buf);
	return id;
}
