/* rate_limits - rate.limits of weir.conf: parsing and checking
 *
 *   limits = ( { name; key; count; rate; burst; quota; action; identities;
 *                ipv4_prefix; ipv6_prefix; overrides = ( {...}, ... ); } );
 *
 * Every problem is reported with the file:line of the member at fault,
 * and parsing goes on, so `weirctl check` lists them all at once. A
 * limit with an error is left out (the load fails anyway). */
#include "autoconf.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/config_entry.h"
#include "policy/rate.h"

#define WHAT            "rate.limits"
#define NAME_MAX_LEN    64
#define RATE_N_MAX      1000000000LL
#define RATE_PERIOD_MAX (366LL * 86400 * 1000) /* ms */
#define BURST_MAX       1000000

static const char *const key_part_names[RATE_KEY_PARTS] = {
    "login", "client", "sender", "sender_domain", "rcpt_domain",
};

/* the four actions a limit can take */
static const struct {
	const char *name;
	int action;
} limit_actions[] = {
    {"tempfail", ACTION_TEMPFAIL},
    {"reject", ACTION_REJECT},
    {"hold", ACTION_HOLD},
    {"log", ACTION_LOG},
};

#define report(pc, node, ...) config_entry_report(pc, node, __VA_ARGS__)

int rate_parse_rate(const char *s, long long *n_r, long long *period_ms_r, const char **err_r)
{
	const char *slash = strchr(s, '/'), *p, *per;
	long long n = 0, secs;
	char period[32];

	*err_r = "expected N/PERIOD, such as \"100/1h\", \"30/10m\" or \"5/s\"";
	if (slash == NULL || slash == s)
		return -1;
	for (p = s; p < slash; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		if (n > RATE_N_MAX)
			break;
		n = n * 10 + (*p - '0');
	}
	if (n < 1 || n > RATE_N_MAX) {
		*err_r = "N must be from 1 to 1000000000";
		return -1;
	}
	/* "s", "m", "h", "d", "w" alone: one of that unit */
	per = slash + 1;
	if (per[0] != '\0' && per[1] == '\0' && strchr("smhdw", per[0]) != NULL)
		snprintf(period, sizeof(period), "1%s", per);
	else if (snprintf(period, sizeof(period), "%s", per) >= (int)sizeof(period))
		return -1;
	if (config_parse_duration(period, &secs, err_r) < 0) {
		*err_r = "PERIOD must be s, m, h, d or a number with a unit (\"10m\")";
		return -1;
	}
	if (secs < 1 || secs * 1000 > RATE_PERIOD_MAX) {
		*err_r = "PERIOD must be from 1s to 366d";
		return -1;
	}
	*n_r = n;
	*period_ms_r = secs * 1000;
	return 0;
}

/* member_int - config_entry_int */
#define member_int config_entry_int

/* member_rate - member name ("rate" or "quota") as N/PERIOD: 1, 0
 * when absent, -1 (reported) when bad */
static int member_rate(struct config_entry_ctx *pc, config_setting_t *g, const char *name, long long *n_r,
                       long long *period_ms_r)
{
	config_setting_t *m = config_setting_get_member(g, name);
	const char *v = config_entry_string(pc, g, name), *err;

	if (m == NULL)
		return 0;
	if (v == NULL)
		return -1;
	if (rate_parse_rate(v, n_r, period_ms_r, &err) < 0) {
		report(pc, m, "%s: \"%s\": %s", name, v, err);
		return -1;
	}
	return 1;
}

/* parse_key - "login", "client+rcpt_domain", ... */
static void parse_key(struct config_entry_ctx *pc, config_setting_t *g, struct rate_limit *l)
{
	config_setting_t *m = config_setting_get_member(g, "key");
	const char *v = config_entry_string(pc, g, "key");
	char *copy, *tok, *save = NULL;

	if (m == NULL) {
		report(pc, g,
		       "key is required (login, client, sender, sender_domain, "
		       "rcpt_domain, or several joined by +)");
		return;
	}
	if (v == NULL)
		return;
	copy = xstrdup(v);
	for (tok = strtok_r(copy, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
		size_t k = 0;
		while (k < RATE_KEY_PARTS && strcmp(key_part_names[k], tok) != 0)
			k++;
		if (k == RATE_KEY_PARTS) {
			report(pc, m,
			       "key: unknown part '%s' (login, client, sender, "
			       "sender_domain, rcpt_domain)",
			       tok);
			continue;
		}
		for (size_t i = 0; i < l->nparts; i++)
			if (l->parts[i] == (enum rate_key_part)k) {
				report(pc, m, "key: '%s' given twice", tok);
				k = RATE_KEY_PARTS;
				break;
			}
		if (k < RATE_KEY_PARTS)
			l->parts[l->nparts++] = (enum rate_key_part)k;
	}
	if (l->nparts == 0 && !pc->bad)
		report(pc, m, "key: empty");
	free(copy);
}

static bool has_part(const struct rate_limit *l, enum rate_key_part p)
{
	for (size_t i = 0; i < l->nparts; i++)
		if (l->parts[i] == p)
			return true;
	return false;
}

static void parse_action(struct config_entry_ctx *pc, config_setting_t *g, struct rate_limit *l)
{
	const char *v = config_entry_string(pc, g, "action");

	l->action = ACTION_TEMPFAIL;
	if (v == NULL)
		return;
	for (size_t i = 0; i < sizeof(limit_actions) / sizeof(limit_actions[0]); i++)
		if (strcmp(v, limit_actions[i].name) == 0) {
			l->action = limit_actions[i].action;
			return;
		}
	report(pc, config_setting_get_member(g, "action"),
	       "action: \"%s\": expected tempfail, reject, hold or log", v);
}

static void parse_identities(struct config_entry_ctx *pc, config_setting_t *g, struct rate_limit *l)
{
	config_setting_t *m = config_setting_get_member(g, "identities");
	int n;

	l->identities = IDENTITY_AUTHENTICATED | IDENTITY_TRUSTED | IDENTITY_OUTSIDE;
	if (m == NULL)
		return;
	l->identities = 0;
	n = config_setting_type(m) == CONFIG_TYPE_STRING ? 1 : config_setting_length(m);
	if (config_setting_is_group(m) ||
	    (n == 0 && config_setting_type(m) != CONFIG_TYPE_STRING)) {
		report(pc, m,
		       "identities: expected a list of \"authenticated\", \"trusted\", "
		       "\"outside\"");
		return;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_type(m) == CONFIG_TYPE_STRING
		                          ? m
		                          : config_setting_get_elem(m, (unsigned)i);
		const char *v = config_setting_get_string(e);

		if (v != NULL && strcmp(v, "authenticated") == 0)
			l->identities |= IDENTITY_AUTHENTICATED;
		else if (v != NULL && strcmp(v, "trusted") == 0)
			l->identities |= IDENTITY_TRUSTED;
		else if (v != NULL && strcmp(v, "outside") == 0)
			l->identities |= IDENTITY_OUTSIDE;
		else
			report(pc, e,
			       "identities: expected \"authenticated\", \"trusted\" or "
			       "\"outside\"");
	}
}

/* parse_prefixes - ipv4_prefix and ipv6_prefix, for keys with client */
static void parse_prefixes(struct config_entry_ctx *pc, config_setting_t *g, struct rate_limit *l)
{
	long long v4 = 32, v6 = 64;
	int r4 = member_int(pc, g, "ipv4_prefix", 0, 32, &v4);
	int r6 = member_int(pc, g, "ipv6_prefix", 0, 128, &v6);

	l->ipv4_prefix = (unsigned)v4;
	l->ipv6_prefix = (unsigned)v6;
	if ((r4 > 0 || r6 > 0) && !has_part(l, RATE_KEY_CLIENT))
		report(pc, config_setting_get_member(g, r4 > 0 ? "ipv4_prefix" : "ipv6_prefix"),
		       "%s: only for keys with client", r4 > 0 ? "ipv4_prefix" : "ipv6_prefix");
}

/* match_domain - an override's domain or rcpt_domain, normalized */
static char *match_domain(struct config_entry_ctx *pc, config_setting_t *o, const char *name)
{
	const char *v = config_entry_string(pc, o, name), *err;
	char *n;

	if (v == NULL)
		return NULL;
	if ((n = domain_normalize(v + (v[0] == '.'), &err)) == NULL) {
		report(pc, config_setting_get_member(o, name), "overrides: %s \"%s\": %s", name, v,
		       err);
		return NULL;
	}
	if (v[0] == '.') {
		char *d = xasprintf(".%s", n);
		free(n);
		n = d;
	}
	return n;
}

/* parse_override_match - what an override applies to */
static void parse_override_match(struct config_entry_ctx *pc, config_setting_t *o,
                                 const struct rate_limit *l, struct rate_override *ov)
{
	const char *login = config_entry_string(pc, o, "login");
	const char *net = config_entry_string(pc, o, "network"), *err;

	if (login != NULL) {
		if (login[0] == '\0')
			report(pc, config_setting_get_member(o, "login"), "overrides: empty login");
		ov->login = xstrdup(login);
		for (char *p = ov->login; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	ov->domain = match_domain(pc, o, "domain");
	ov->rcpt_domain = match_domain(pc, o, "rcpt_domain");
	if (net != NULL) {
		ov->network = xcalloc(1, sizeof(*ov->network));
		if (cidr_parse(net, ov->network, &err) < 0)
			report(pc, config_setting_get_member(o, "network"),
			       "overrides: network \"%s\": %s", net, err);
	}
	if (config_setting_get_member(o, "login") == NULL &&
	    config_setting_get_member(o, "domain") == NULL &&
	    config_setting_get_member(o, "rcpt_domain") == NULL &&
	    config_setting_get_member(o, "network") == NULL)
		report(pc, o, "overrides: each needs login, domain, rcpt_domain or network");
	/* a recipient is known only at RCPT */
	if (config_setting_get_member(o, "rcpt_domain") != NULL && !l->recipients &&
	    !has_part(l, RATE_KEY_RCPT_DOMAIN))
		report(pc, config_setting_get_member(o, "rcpt_domain"),
		       "overrides: rcpt_domain needs a limit charged per recipient "
		       "(count = \"recipients\", or a key with rcpt_domain)");
}

/* parse_override - one { login|domain|rcpt_domain|network; rate; burst;
 * quota; unlimited; } */
static void parse_override(struct config_entry_ctx *pc, config_setting_t *o, const struct rate_limit *l,
                           struct rate_override *ov)
{
	static const char *const keys[] = {"login", "domain", "rcpt_domain", "network", "rate",
	                                   "burst", "quota",  "unlimited",   NULL};
	config_setting_t *u = config_setting_get_member(o, "unlimited");
	char *what = xasprintf(WHAT ": %s: overrides", pc->entry);
	long long burst = 0;
	int r;

	if (!config_group_keys_ok(o, keys, what, pc->file, pc->errs))
		pc->bad = true;
	free(what);
	parse_override_match(pc, o, l, ov);
	if (u != NULL && config_setting_type(u) != CONFIG_TYPE_BOOL)
		report(pc, u, "overrides: unlimited: expected true or false");
	ov->unlimited =
	    u != NULL && config_setting_type(u) == CONFIG_TYPE_BOOL && config_setting_get_bool(u);
	r = member_rate(pc, o, "rate", &ov->params.n, &ov->params.period_ms);
	ov->set_rate = r > 0;
	r = member_int(pc, o, "burst", 1, BURST_MAX, &burst);
	ov->set_burst = r > 0;
	ov->params.burst = r > 0 ? burst : 0;
	r = member_rate(pc, o, "quota", &ov->params.quota_n, &ov->params.quota_period_ms);
	ov->set_quota = r > 0;
	if (ov->unlimited && (ov->set_rate || ov->set_burst || ov->set_quota))
		report(pc, o,
		       "overrides: unlimited = true leaves no room for rate, burst or quota");
	else if (!ov->unlimited && !ov->set_rate && !ov->set_burst && !ov->set_quota &&
	         config_setting_get_member(o, "rate") == NULL &&
	         config_setting_get_member(o, "burst") == NULL &&
	         config_setting_get_member(o, "quota") == NULL)
		report(pc, o, "overrides: each sets rate, burst, quota or unlimited = true");
	else if (ov->set_burst && !ov->set_rate && l->params.n == 0)
		report(pc, o, "overrides: burst without a rate (the limit has none)");
}

static void parse_overrides(struct config_entry_ctx *pc, config_setting_t *g, struct rate_limit *l)
{
	config_setting_t *m = config_setting_get_member(g, "overrides");

	if (m == NULL)
		return;
	if (!config_setting_is_list(m) && !config_setting_is_array(m)) {
		report(pc, m, "overrides: expected a list of { login = ...; rate = ...; }");
		return;
	}
	l->overrides = xcalloc((size_t)config_setting_length(m) + 1, sizeof(*l->overrides));
	for (int i = 0; i < config_setting_length(m); i++) {
		config_setting_t *o = config_setting_get_elem(m, (unsigned)i);

		if (!config_setting_is_group(o)) {
			report(pc, o, "overrides: entry %d is not a group { }", i + 1);
			continue;
		}
		parse_override(pc, o, l, &l->overrides[l->noverrides++]);
	}
}

static void override_free(struct rate_override *o)
{
	free(o->login);
	free(o->domain);
	free(o->rcpt_domain);
	free(o->network);
}

static void limit_free(struct rate_limit *l)
{
	for (size_t i = 0; i < l->noverrides; i++)
		override_free(&l->overrides[i]);
	free(l->overrides);
	free(l->name);
}

static bool valid_name(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	return strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* parse_name - name: [A-Za-z0-9_.-]+, unique among cfg's limits */
static void parse_name(struct config_entry_ctx *pc, struct weir_config *cfg, config_setting_t *g,
                       struct rate_limit *l)
{
	const char *v = config_entry_string(pc, g, "name");

	if (config_setting_get_member(g, "name") == NULL) {
		report(pc, g, "name is required");
		return;
	}
	if (v == NULL)
		return;
	if (!valid_name(v)) {
		report(pc, config_setting_get_member(g, "name"),
		       "name \"%s\": letters, digits, '_', '.' and '-' only (1 to %d)", v,
		       NAME_MAX_LEN);
		return;
	}
	l->name = xstrdup(v);
	snprintf(pc->entry, sizeof(pc->entry), "%s", l->name);
	if (rate_limit_find(cfg, v) != NULL)
		report(pc, config_setting_get_member(g, "name"), "name given to two limits");
}

static void parse_count(struct config_entry_ctx *pc, config_setting_t *g, struct rate_limit *l)
{
	const char *v = config_entry_string(pc, g, "count");

	if (v == NULL || strcmp(v, "messages") == 0)
		return;
	if (strcmp(v, "recipients") == 0)
		l->recipients = true;
	else
		report(pc, config_setting_get_member(g, "count"),
		       "count: \"%s\": expected \"messages\" or \"recipients\"", v);
}

/* parse_limit - one entry of rate.limits; added to cfg when clean */
static void parse_limit(struct weir_config *cfg, config_setting_t *g, int index, const char *file,
                        struct config_errors *errs)
{
	static const char *const keys[] = {"name",        "key",         "count",     "rate",
	                                   "burst",       "quota",       "action",    "identities",
	                                   "ipv4_prefix", "ipv6_prefix", "overrides", NULL};
	struct config_entry_ctx pc = {.what = WHAT, .file = file, .errs = errs};
	struct rate_limit l = {0};
	char *what;
	int r, q;

	snprintf(pc.entry, sizeof(pc.entry), "entry %d", index + 1);
	parse_name(&pc, cfg, g, &l);
	what = xasprintf(WHAT ": %s", pc.entry);
	if (!config_group_keys_ok(g, keys, what, file, errs))
		pc.bad = true;
	free(what);
	parse_key(&pc, g, &l);
	parse_count(&pc, g, &l);
	r = member_rate(&pc, g, "rate", &l.params.n, &l.params.period_ms);
	l.params.burst = 1;
	if (member_int(&pc, g, "burst", 1, BURST_MAX, &l.params.burst) > 0 && r == 0)
		report(&pc, config_setting_get_member(g, "burst"), "burst without rate");
	q = member_rate(&pc, g, "quota", &l.params.quota_n, &l.params.quota_period_ms);
	if (r == 0 && q == 0)
		report(&pc, g, "needs rate or quota (or both)");
	parse_action(&pc, g, &l);
	parse_identities(&pc, g, &l);
	parse_prefixes(&pc, g, &l);
	parse_overrides(&pc, g, &l);
	if (pc.bad) {
		limit_free(&l);
		return;
	}
	cfg->rate.limits = xrealloc(cfg->rate.limits, (cfg->rate.nlimits + 1) * sizeof(l));
	cfg->rate.limits[cfg->rate.nlimits++] = l;
}

void rate_limits_parse(struct weir_config *cfg, void *node, const char *file,
                       struct config_errors *errs)
{
	config_setting_t *list = node;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
		                  WHAT
		                  ": expected a list of { name = ...; key = ...; rate = ...; }");
		return;
	}
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);

		if (!config_setting_is_group(g)) {
			config_errors_add(errs, file, (int)config_setting_source_line(g),
			                  WHAT ": entry %d is not a group { }", i + 1);
			continue;
		}
		parse_limit(cfg, g, i, file, errs);
	}
}

char *rate_limits_format(const struct weir_config *cfg)
{
	return xasprintf("(%zu limits)", cfg->rate.nlimits);
}

void rate_limits_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->rate.nlimits; i++)
		limit_free(&cfg->rate.limits[i]);
	free(cfg->rate.limits);
	cfg->rate.limits = NULL;
	cfg->rate.nlimits = 0;
}

const struct rate_limit *rate_limit_find(const struct weir_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->rate.nlimits; i++)
		if (strcmp(cfg->rate.limits[i].name, name) == 0)
			return &cfg->rate.limits[i];
	return NULL;
}
