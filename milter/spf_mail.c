/* spf_mail - SPF at MAIL FROM
 *
 * Mail from outside clients: the SPF of the MAIL FROM identity (of the
 * HELO identity for the null sender, RFC 7208 2.4), and with spf.helo =
 * "all" of the HELO identity too, once per HELO name. Each result has an
 * action (spf.fail, spf.softfail, ...); of two checks the stricter action
 * applies. The results go into Received-SPF and Authentication-Results at
 * end of message (message.c) and into the message's log line.
 *
 * Everyone else (logins, certificates, trusted networks): the outbound
 * preflight, which evaluates the sender domain's SPF against the
 * addresses weir's mail leaves from (policy/preflight.c).
 *
 * A check runs in the libmilter thread of its connection and blocks it
 * for at most spf.timeout (the engine's deadline); the MTA waits that
 * long for the reply to MAIL FROM, no longer. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/metrics.h"
#include "milter/session.h"
#include "milter/state.h"
#include "policy/address.h"
#include "policy/preflight.h"
#include "policy/spf.h"

/* action_of - the configured action for a result */
static int action_of(const struct weir_config *cfg, enum spf_result r)
{
	switch (r) {
	case SPF_RES_FAIL: return cfg->spf.fail;
	case SPF_RES_SOFTFAIL: return cfg->spf.softfail;
	case SPF_RES_NEUTRAL: return cfg->spf.neutral;
	case SPF_RES_NONE: return cfg->spf.none;
	case SPF_RES_PERMERROR: return cfg->spf.permerror;
	case SPF_RES_TEMPERROR: return cfg->spf.temperror;
	case SPF_RES_PASS: return ACTION_ACCEPT;
	}
	return ACTION_ACCEPT;
}

/* strictness - of two actions the stricter applies */
static int strictness(int action)
{
	switch (action) {
	case ACTION_REJECT: return 3;
	case ACTION_TEMPFAIL: return 2;
	case ACTION_HOLD: return 1;
	default: return 0;
	}
}

/* enhanced status codes (RFC 7372 for SPF, RFC 3463 4.4.3 for DNS) */
static const char *esc_reject(enum spf_result r)
{
	return r == SPF_RES_FAIL || r == SPF_RES_SOFTFAIL ? "5.7.23"
	       : r == SPF_RES_PERMERROR			  ? "5.7.24"
								  : "5.7.1";
}

static const char *esc_tempfail(enum spf_result r)
{
	return r == SPF_RES_TEMPERROR				 ? "4.4.3"
	       : r == SPF_RES_PERMERROR			 ? "4.7.24"
	       : r == SPF_RES_FAIL || r == SPF_RES_SOFTFAIL ? "4.7.23"
							      : "4.7.1";
}

/* client_ip - the client address as SPF sees it: an IPv4-mapped IPv6
 * address is the IPv4 address (RFC 7208 5.6) */
static const char *client_ip(const struct conn *c)
{
	const char *ip = c->client_addr;

	if (ip != NULL && strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
		return ip + 7;
	return ip;
}

/* reply_text - what the client is told for a result that refuses */
static void reply_text(char *buf, size_t size, const struct spf_outcome *o, const char *ip,
		       const char *domain, bool helo_id)
{
	const char *what = helo_id ? "HELO name" : "domain";
	const char *exp = o->explanation != NULL && o->explanation[0] ? o->explanation : NULL;

	switch (o->result) {
	case SPF_RES_FAIL:
	case SPF_RES_SOFTFAIL:
		snprintf(buf, size, "SPF %s: %s %.253s does not allow %s to send its mail%s%.200s",
			 o->result_name, what, domain, ip, exp ? ": " : "", exp ? exp : "");
		break;
	case SPF_RES_PERMERROR:
		snprintf(buf, size,
			 "SPF permerror: the SPF record of %s %.253s is broken (client %s): %.150s",
			 what, domain, ip, o->reason ? o->reason : "");
		break;
	case SPF_RES_TEMPERROR:
		snprintf(buf, size,
			 "SPF temperror: cannot check the SPF record of %s %.253s for %s now "
			 "(%.100s); try again later",
			 what, domain, ip, o->reason ? o->reason : "DNS failure");
		break;
	default:
		snprintf(buf, size, "SPF %s for %s %.253s and client %s", o->result_name, what,
			 domain, ip);
		break;
	}
}

/* skip_reason - why SPF is not checked for this client, or NULL */
static const char *skip_reason(const struct conn *c, const char *ip)
{
	const struct weir_config *cfg = c->cfg;

	if (!cfg->spf.verify)
		return "off";
	if (ip == NULL)
		return "no_client_address";
	if (cidr_list_match_text(cfg->spf_allow, cfg->nspf_allow, ip))
		return "allow_networks";
	if (c->helo != NULL && c->helo[0] != '\0' &&
	    domain_in_list(c->helo, cfg->spf_allow_helo, cfg->nspf_allow_helo))
		return "allow_helo";
	if (c->client_name != NULL && c->client_name[0] != '[' &&
	    strcmp(c->client_name, "unknown") != 0 &&
	    domain_in_list(c->client_name, cfg->spf_allow_hosts, cfg->nspf_allow_hosts))
		return "allow_hosts";
	return NULL;
}

/* run - one check through cfg's engine; no engine (no resolver): temperror */
static void run(struct conn *c, const char *ip, const char *sender, struct spf_outcome *o)
{
	struct spf_engine *e = milter_state_of(c->cfg)->spf;
	const char *helo = c->helo != NULL ? c->helo : "";

	if (e == NULL) {
		memset(o, 0, sizeof(*o));
		o->result = SPF_RES_TEMPERROR;
		o->result_name = spf_result_name(o->result);
		o->reason = xstrdup("no resolver");
		return;
	}
	if (sender == NULL)
		spf_check_helo(e, ip, helo, o);
	else
		spf_check(e, ip, helo, sender, o);
}

/* helo_outcome - the HELO identity's outcome, checked once per HELO name */
static const struct spf_outcome *helo_outcome(struct conn *c, const char *ip)
{
	const char *helo = c->helo != NULL ? c->helo : "";

	if (c->spf_helo != NULL && c->spf_helo_name != NULL && strcmp(c->spf_helo_name, helo) == 0)
		return c->spf_helo;
	spf_conn_free(c);
	c->spf_helo = xcalloc(1, sizeof(*c->spf_helo));
	run(c, ip, NULL, c->spf_helo);
	c->spf_helo_name = xstrdup(helo);
	return c->spf_helo;
}

/* record - keep one identity's outcome for the headers and the log */
static void record(struct conn *c, const struct spf_outcome *o, const char *ip,
		   const char *sender, const char *identity, struct kvline *kv)
{
	struct msg *m = c->msg;
	const char *helo = c->helo != NULL ? c->helo : "";
	char dom[256];

	if (m->n_spf >= 2)
		return;
	m->spf_received[m->n_spf] =
		spf_received_value(o, c->cfg->hostname, ip, helo, sender, identity);
	m->spf_ar[m->n_spf] = spf_ar_entry(o, helo, sender, identity);
	m->n_spf++;
	if (strcmp(identity, "helo") == 0 && sender != NULL) {
		kv_add(kv, "spf_helo", o->result_name);
		return;
	}
	kv_add(kv, "spf", o->result_name);
	kv_add(kv, "spf_identity", identity);
	kv_add(kv, "spf_domain", spf_domain_of(sender, helo, dom, sizeof(dom)));
	if (o->result != SPF_RES_PASS && o->reason != NULL)
		kv_add(kv, "spf_reason", o->reason);
}

/* inbound - SPF of an outside client's message */
static enum mlfi_status inbound(struct conn *c, const struct mlfi_io *io, const char *sender)
{
	struct msg *m = c->msg;
	const char *ip = client_ip(c), *why = skip_reason(c, ip);
	const char *helo = c->helo != NULL ? c->helo : "";
	bool null = sender[0] == '\0';
	struct spf_outcome o;
	const struct spf_outcome *h = NULL, *worst;
	struct kvline kv;
	char text[700], dom[256];
	int action;
	enum mlfi_status st = MLFI_CONTINUE;

	kv_init(&kv);
	if (why != NULL) {
		kv_add(&kv, "spf", "skipped");
		kv_add(&kv, "spf_reason", why);
		m->spf_log = xstrdup(kv_str(&kv));
		kv_free(&kv);
		return MLFI_CONTINUE;
	}
	/* The null sender's identity is the HELO name: one check serves */
	run(c, ip, null ? NULL : sender, &o);
	mm_spf_result(o.result_name); /* the MAIL FROM identity's (HELO's for <>) */
	record(c, &o, ip, null ? NULL : sender, null ? "helo" : "mailfrom", &kv);
	worst = &o;
	action = action_of(c->cfg, o.result);
	if (!null && c->cfg->spf.helo == 1) {
		h = helo_outcome(c, ip);
		record(c, h, ip, sender, "helo", &kv);
		if (strictness(action_of(c->cfg, h->result)) > strictness(action)) {
			worst = h;
			action = action_of(c->cfg, h->result);
		}
	}
	m->spf_log = xstrdup(kv_str(&kv));
	kv_free(&kv);
	if (action != ACTION_ACCEPT) {
		bool helo_id = null || worst == h;
		reply_text(text, sizeof(text), worst, ip,
			   helo_id ? helo : spf_domain_of(sender, helo, dom, sizeof(dom)), helo_id);
		st = decide_action(c, io, "spf", action, esc_reject(worst->result),
				   esc_tempfail(worst->result), text, NULL);
	}
	spf_outcome_free(&o);
	return st;
}

/* outbound - the preflight of a login's or trusted network's sender */
static enum mlfi_status outbound(struct conn *c, const struct mlfi_io *io, const char *sender)
{
	struct msg *m = c->msg;
	struct preflight *p = milter_state_of(c->cfg)->preflight;
	struct preflight_result r = {0};
	enum mlfi_status st = MLFI_CONTINUE;
	struct kvline kv;
	char text[600];

	if (c->cfg->spf.preflight == 0 || sender[0] == '\0' || p == NULL)
		return MLFI_CONTINUE;
	if (preflight_check(p, sender, &r) < 0) {
		log_debug("conn=%lu SPF preflight of <%s> not done: %s", c->id, sender,
			  r.reason ? r.reason : "?");
		preflight_result_free(&r);
		return MLFI_CONTINUE;
	}
	kv_init(&kv);
	kv_add(&kv, "spf_preflight", spf_result_name(r.worst));
	if (r.worst != SPF_RES_PASS) {
		kv_add(&kv, "spf_preflight_ip", r.ip ? r.ip : "");
		log_warning("queue_id=%s conn=%lu SPF preflight: mail from <%s> leaving from %s "
			    "would get SPF %s at the receiver: %s; fix the SPF record of %s",
			    m->queue_id ? m->queue_id : "NOQUEUE", c->id, sender, r.ip ? r.ip : "?",
			    spf_result_name(r.worst), r.reason ? r.reason : "", r.domain ? r.domain : "");
	}
	m->spf_log = xstrdup(kv_str(&kv));
	kv_free(&kv);
	if (c->cfg->spf.preflight == 2 &&
	    (r.worst == SPF_RES_FAIL || r.worst == SPF_RES_PERMERROR)) {
		snprintf(text, sizeof(text),
			 "SPF of %.253s %s for %s, the address this mail leaves from: the domain's "
			 "SPF record must allow it",
			 r.domain ? r.domain : "", r.worst == SPF_RES_FAIL ? "fails" : "is broken",
			 r.ip ? r.ip : "?");
		st = decide_action(c, io, "spf_preflight", ACTION_TEMPFAIL, "5.7.23",
				   r.worst == SPF_RES_FAIL ? "4.7.23" : "4.7.24", text, NULL);
	}
	preflight_result_free(&r);
	return st;
}

enum mlfi_status spf_mail(struct conn *c, const struct mlfi_io *io, const char *sender)
{
	if (c->msg == NULL)
		return MLFI_CONTINUE;
	if (c->msg->identity == ID_OUTSIDE)
		return inbound(c, io, sender);
	return outbound(c, io, sender);
}

void spf_conn_free(struct conn *c)
{
	if (c->spf_helo != NULL) {
		spf_outcome_free(c->spf_helo);
		free(c->spf_helo);
		c->spf_helo = NULL;
	}
	free(c->spf_helo_name);
	c->spf_helo_name = NULL;
}
