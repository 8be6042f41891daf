/* throttle_config - the group throttle of weir.conf: parsing and checking
 *
 *   domains = { rate; burst; sessions; messages_per_session; recipients; };
 *   groups  = ( { name; domains; mx; rate; burst; sessions;
 *                 messages_per_session; recipients; } );
 *   routes  = ( { route; rate; burst; sessions; } );
 *   senders = ( { domain; rate; burst; sessions; } );
 *   rules   = ( { name; code; status; text; threshold; window; action;
 *                 factor; duration; recover; } );
 *
 * The plain settings (wait, max_waiting, backend, fleet_size, state_file)
 * are in settings.c's table. Every problem is reported with the file:line
 * of the member at fault and parsing goes on, so `weirctl check` lists
 * them all; an entry with an error is left out (the load fails anyway).
 * When throttle.rules is not written, throttle_finish installs the
 * built-in rules (weir.conf(5), THROTTLING). */
#include "autoconf.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/config_entry.h"
#include "policy/rate.h"
#include "policy/routes.h"
#include "policy/throttle.h"

#define NAME_MAX_LEN 64
#define BURST_MAX    1000000
#define SESSIONS_MAX 100000
#define MESSAGES_MAX 1000000

#define report(pc, node, ...) config_entry_report(pc, node, __VA_ARGS__)

/* member_int - the integer member name of g within [min, max]; def
 * when absent or wrong (reported) */
static long long member_int(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                            long long def, long long min, long long max)
{
	long long v;

	return config_entry_int(pc, g, name, min, max, &v) == 1 ? v : def;
}

/* parse_limits - the limit members of g into *lim (burst 1 when absent);
 * with_dest: also messages_per_session and recipients */
static void parse_limits(struct config_entry_ctx *pc, config_setting_t *g, struct throttle_limits *lim,
                         bool with_dest)
{
	config_setting_t *m = config_setting_get_member(g, "rate");
	const char *v = config_entry_string(pc, g, "rate"), *err;

	memset(lim, 0, sizeof(*lim));
	if (v != NULL && v[0] != '\0' && rate_parse_rate(v, &lim->n, &lim->period_ms, &err) < 0) {
		report(pc, m, "rate: \"%s\": %s", v, err);
		lim->n = lim->period_ms = 0;
	}
	lim->burst = member_int(pc, g, "burst", 1, 1, BURST_MAX);
	lim->sessions = (int)member_int(pc, g, "sessions", 0, 0, SESSIONS_MAX);
	if (!with_dest)
		return;
	lim->messages_per_session =
	    (int)member_int(pc, g, "messages_per_session", 0, 0, MESSAGES_MAX);
	lim->recipients = (int)member_int(pc, g, "recipients", 0, 0, SESSIONS_MAX);
}

/* limits_any - some dimension of lim is limited */
static bool limits_any(const struct throttle_limits *lim)
{
	return lim->n > 0 || lim->sessions > 0 || lim->messages_per_session > 0 ||
	       lim->recipients > 0;
}

/* valid_name - [A-Za-z0-9_.-]+, 64 at most */
static bool valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n > 0 && s[n] == '\0' && n <= NAME_MAX_LEN;
}

/* entry_name - the member key of g as the entry's name (reported when
 * absent or bad); NULL then */
static const char *entry_name(struct config_entry_ctx *pc, config_setting_t *g, const char *key)
{
	const char *name = config_entry_string(pc, g, key);

	if (name == NULL) {
		if (config_setting_get_member(g, key) == NULL)
			report(pc, g, "needs %s", key);
		return NULL;
	}
	if (!valid_name(name)) {
		report(pc, config_setting_get_member(g, key),
		       "%s \"%s\": letters, digits, '_', '.' and '-' only (64 at most)", key, name);
		return NULL;
	}
	snprintf(pc->entry, sizeof(pc->entry), "%s", name);
	return name;
}

/* norm_suffix - an MX host suffix: leading "." optional, removed */
static char *norm_suffix(const char *s, const char **err_r)
{
	return domain_normalize(s + (s[0] == '.'), err_r);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* expect_list - node is a list (or array) of groups; else reported */
static bool expect_list(config_setting_t *node, const char *what, const char *file,
                        struct config_errors *errs)
{
	if (config_setting_is_list(node) || config_setting_is_array(node))
		return true;
	config_errors_add(errs, file, (int)config_setting_source_line(node),
	                  "%s: expected a list of { ... } entries", what);
	return false;
}

/* start_entry - the checks every list entry begins with; false when g
 * is not a group */
static bool start_entry(struct config_entry_ctx *pc, config_setting_t *g, int i, const char *const *keys)
{
	snprintf(pc->entry, sizeof(pc->entry), "entry %d", i + 1);
	if (!config_setting_is_group(g)) {
		report(pc, g, "each entry is a group { ... }");
		return false;
	}
	if (!config_group_keys_ok(g, keys, pc->what, pc->file, pc->errs))
		pc->bad = true;
	return true;
}

/* throttle_domains_parse - throttle.domains = { limits } */
void throttle_domains_parse(struct weir_config *cfg, void *node, const char *file,
                            struct config_errors *errs)
{
	static const char *const keys[] = {
	    "rate", "burst", "sessions", "messages_per_session", "recipients", NULL};
	struct config_entry_ctx pc = {.what = "throttle.domains", .file = file, .errs = errs};
	config_setting_t *g = node;

	if (!config_setting_is_group(g)) {
		report(&pc, g, "expected a group { rate = ...; sessions = ...; }");
		return;
	}
	config_group_keys_ok(g, keys, pc.what, file, errs);
	parse_limits(&pc, g, &cfg->throttle.domains, true);
	cfg->throttle.has_domains = limits_any(&cfg->throttle.domains);
}

/* limits_text - "rate=20/s burst=1 sessions=10 ..." for weirctl
 * settings; caller frees */
static char *limits_text(const struct throttle_limits *lim)
{
	char rate[32] = "none";

	if (lim->n > 0)
		throttle_rate_text(lim, rate, sizeof(rate));
	return xasprintf("rate=%s burst=%lld sessions=%d messages_per_session=%d recipients=%d",
	                 rate, lim->burst, lim->sessions, lim->messages_per_session,
	                 lim->recipients);
}

char *throttle_domains_format(const struct weir_config *cfg)
{
	char *l, *out;

	if (!cfg->throttle.has_domains)
		return xstrdup("{ }");
	l = limits_text(&cfg->throttle.domains);
	out = xasprintf("{ %s }", l);
	free(l);
	return out;
}

void throttle_domains_free(struct weir_config *cfg)
{
	memset(&cfg->throttle.domains, 0, sizeof(cfg->throttle.domains));
	cfg->throttle.has_domains = false;
}

/* parse_group - one entry of throttle.groups, appended when usable */
static void parse_group(struct weir_config *cfg, config_setting_t *g, int i, const char *file,
                        struct config_errors *errs)
{
	static const char *const keys[] = {
	    "name",       "domains", "mx", "rate", "burst", "sessions", "messages_per_session",
	    "recipients", NULL};
	struct config_entry_ctx pc = {.what = "throttle.groups", .file = file, .errs = errs};
	struct throttle_config *tc = &cfg->throttle;
	struct throttle_group gr;
	const char *name;

	memset(&gr, 0, sizeof(gr));
	if (!start_entry(&pc, g, i, keys))
		return;
	name = entry_name(&pc, g, "name");
	for (size_t k = 0; name != NULL && k < tc->ngroups; k++)
		if (strcmp(tc->groups[k].name, name) == 0)
			report(&pc, g, "a second group called %s (the first is at line %d)", name,
			       tc->groups[k].line);
	gr.domains = config_entry_list(&pc, g, "domains", domain_pattern_normalize, &gr.ndomains);
	gr.mx = config_entry_list(&pc, g, "mx", norm_suffix, &gr.nmx);
	if (gr.ndomains == 0 && gr.nmx == 0 && !pc.bad)
		report(&pc, g, "needs domains or mx (or both)");
	parse_limits(&pc, g, &gr.lim, true);
	if (pc.bad) {
		strv_free(gr.domains, gr.ndomains);
		strv_free(gr.mx, gr.nmx);
		return;
	}
	gr.name = xstrdup(name);
	gr.file = xstrdup(file);
	gr.line = (int)config_setting_source_line(g);
	tc->groups = xrealloc(tc->groups, (tc->ngroups + 1) * sizeof(gr));
	tc->groups[tc->ngroups++] = gr;
}

void throttle_groups_parse(struct weir_config *cfg, void *node, const char *file,
                           struct config_errors *errs)
{
	if (!expect_list(node, "throttle.groups", file, errs))
		return;
	for (int i = 0; i < config_setting_length(node); i++)
		parse_group(cfg, config_setting_get_elem(node, (unsigned)i), i, file, errs);
}

/* append - *out += text, freeing the old *out */
static void append(char **out, const char *text)
{
	char *t = xasprintf("%s%s", *out, text);

	free(*out);
	*out = t;
}

char *throttle_groups_format(const struct weir_config *cfg)
{
	char *out = xstrdup("(");

	for (size_t i = 0; i < cfg->throttle.ngroups; i++) {
		const struct throttle_group *g = &cfg->throttle.groups[i];
		char *l = limits_text(&g->lim);
		append(&out, i ? ", " : "");
		append(&out, g->name);
		append(&out, ":");
		for (size_t j = 0; j < g->ndomains; j++) {
			append(&out, " ");
			append(&out, g->domains[j]);
		}
		for (size_t j = 0; j < g->nmx; j++) {
			append(&out, " mx=");
			append(&out, g->mx[j]);
		}
		append(&out, " ");
		append(&out, l);
		free(l);
	}
	append(&out, ")");
	return out;
}

void throttle_groups_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->throttle.ngroups; i++) {
		struct throttle_group *g = &cfg->throttle.groups[i];
		free(g->name);
		strv_free(g->domains, g->ndomains);
		strv_free(g->mx, g->nmx);
		free((char *)g->file);
	}
	free(cfg->throttle.groups);
	cfg->throttle.groups = NULL;
	cfg->throttle.ngroups = 0;
}

/* parse_named - one entry of throttle.routes (key "route") or
 * throttle.senders (key "domain") appended to *v */
static void parse_named(struct config_entry_ctx *pc, config_setting_t *g, int i, const char *key,
                        struct throttle_named **v, size_t *n)
{
	static const char *const route_keys[] = {"route", "rate", "burst", "sessions", NULL};
	static const char *const sender_keys[] = {"domain", "rate", "burst", "sessions", NULL};
	bool is_route = strcmp(key, "route") == 0;
	struct throttle_named e;
	const char *v_name, *err;
	char *name = NULL;

	memset(&e, 0, sizeof(e));
	pc->bad = false;
	if (!start_entry(pc, g, i, is_route ? route_keys : sender_keys))
		return;
	if (is_route) {
		if ((v_name = entry_name(pc, g, key)) != NULL)
			name = xstrdup(v_name);
	} else if ((v_name = config_entry_string(pc, g, key)) == NULL) {
		if (config_setting_get_member(g, key) == NULL)
			report(pc, g, "needs domain");
	} else if ((name = domain_pattern_normalize(v_name, &err)) == NULL) {
		report(pc, config_setting_get_member(g, key), "domain \"%s\": %s", v_name, err);
	} else {
		snprintf(pc->entry, sizeof(pc->entry), "%s", name);
	}
	for (size_t k = 0; name != NULL && k < *n; k++)
		if (strcmp((*v)[k].name, name) == 0)
			report(pc, g, "%s %s is listed twice (the first at line %d)", key, name,
			       (*v)[k].line);
	parse_limits(pc, g, &e.lim, false);
	if (pc->bad) {
		free(name);
		return;
	}
	e.name = name;
	e.file = xstrdup(pc->file);
	e.line = (int)config_setting_source_line(g);
	*v = xrealloc(*v, (*n + 1) * sizeof(e));
	(*v)[(*n)++] = e;
}

void throttle_routes_parse(struct weir_config *cfg, void *node, const char *file,
                           struct config_errors *errs)
{
	struct config_entry_ctx pc = {.what = "throttle.routes", .file = file, .errs = errs};

	if (!expect_list(node, pc.what, file, errs))
		return;
	for (int i = 0; i < config_setting_length(node); i++)
		parse_named(&pc, config_setting_get_elem(node, (unsigned)i), i, "route",
		            &cfg->throttle.routes, &cfg->throttle.nroutes);
}

void throttle_senders_parse(struct weir_config *cfg, void *node, const char *file,
                            struct config_errors *errs)
{
	struct config_entry_ctx pc = {.what = "throttle.senders", .file = file, .errs = errs};

	if (!expect_list(node, pc.what, file, errs))
		return;
	for (int i = 0; i < config_setting_length(node); i++)
		parse_named(&pc, config_setting_get_elem(node, (unsigned)i), i, "domain",
		            &cfg->throttle.senders, &cfg->throttle.nsenders);
}

/* named_format - "(name: limits, ...)" */
static char *named_format(const struct throttle_named *v, size_t n)
{
	char *out = xstrdup("(");

	for (size_t i = 0; i < n; i++) {
		char *l = limits_text(&v[i].lim);
		append(&out, i ? ", " : "");
		append(&out, v[i].name);
		append(&out, ": ");
		append(&out, l);
		free(l);
	}
	append(&out, ")");
	return out;
}

char *throttle_routes_format(const struct weir_config *cfg)
{
	return named_format(cfg->throttle.routes, cfg->throttle.nroutes);
}

char *throttle_senders_format(const struct weir_config *cfg)
{
	return named_format(cfg->throttle.senders, cfg->throttle.nsenders);
}

/* named_free - the entries of throttle.routes or throttle.senders */
static void named_free(struct throttle_named **v, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free((*v)[i].name);
		free((char *)(*v)[i].file);
	}
	free(*v);
	*v = NULL;
	*n = 0;
}

void throttle_routes_free(struct weir_config *cfg)
{
	named_free(&cfg->throttle.routes, &cfg->throttle.nroutes);
}

void throttle_senders_free(struct weir_config *cfg)
{
	named_free(&cfg->throttle.senders, &cfg->throttle.nsenders);
}

/* per_unit - "%.3g" or a whole number, into buf */
static void per_unit(double v, const char *unit, char *buf, size_t size)
{
	if (v >= 100)
		snprintf(buf, size, "%.0f/%s", v, unit);
	else
		snprintf(buf, size, "%.3g/%s", v, unit);
}

/* throttle_rate_text - the rate ("20/s", "300/m", "2.5/s") when lim has
 * one, else "N sessions", else "unlimited" */
void throttle_rate_text(const struct throttle_limits *lim, char *buf, size_t size)
{
	static const struct {
		long long ms;
		const char *unit;
	} units[] = {{1000, "s"}, {60000, "m"}, {3600000, "h"}, {86400000, "d"}};
	double per_s;

	if (lim->n == 0) {
		if (lim->sessions > 0)
			snprintf(buf, size, "%d session%s", lim->sessions,
			         lim->sessions == 1 ? "" : "s");
		else
			snprintf(buf, size, "unlimited");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (lim->period_ms == units[i].ms) {
			snprintf(buf, size, "%lld/%s", lim->n, units[i].unit);
			return;
		}
	per_s = (double)lim->n * 1000.0 / (double)lim->period_ms;
	if (per_s >= 1)
		per_unit(per_s, "s", buf, size);
	else if (per_s * 60 >= 1)
		per_unit(per_s * 60, "m", buf, size);
	else
		per_unit(per_s * 3600, "h", buf, size);
}
