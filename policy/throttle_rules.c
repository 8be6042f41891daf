/* throttle_rules - throttle.rules of weir.conf (the adaptive back-off):
 * parsing, the built-in rules, matching an upstream reply, and
 * throttle_finish (the checks once the whole file is read).
 *
 *   rules = ( { name; code; status; text; threshold; window;
 *               action = "suspend" | "slow"; factor; duration; recover; } );
 *
 * code and status are prefixes of the reply code ("421", "45", "4") and
 * of the enhanced status ("4.7."); several may be joined by "|"
 * ("421|45"). text is a POSIX extended regex, case-insensitive, tried on
 * the reply text and then on "STATUS TEXT" (so a rule's text may name an
 * enhanced status, as Outlook's 4.7.650 is). Every field given must
 * match. */
#include "autoconf.h"

#include <libconfig.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/config_entry.h"
#include "policy/routes.h"
#include "policy/throttle.h"
#include "policy/throttle_int.h"

#define WHAT          "throttle.rules"
#define NAME_MAX_LEN  64
#define THRESHOLD_MAX 1000
#define RECOVER_MAX   1000000
#define SECONDS_MAX   (7LL * 86400) /* a window or a duration */
#define RE_FLAGS      (REG_EXTENDED | REG_ICASE | REG_NOSUB)

/* The built-in rules, used when throttle.rules is not written */
static const struct default_rule {
	const char *name, *code, *status, *text;
	int threshold;
	long long window_s;
	enum throttle_action action;
	double factor;
	long long duration_s;
	int recover;
} default_rules[] = {
    {"try-again-later", "421|45", NULL,
     "try (again )?later|too many (connections|messages)|temporarily (deferred|rate limited)|"
     "rate limit",
     3, 60, THROTTLE_SUSPEND, 0, 300, 0},
    {"yahoo-ts", "4", NULL, "\\[TS0[1-4]\\]", 1, 60, THROTTLE_SUSPEND, 0, 900, 0},
    {"outlook-throttle", NULL, "4.7.",
     "(temporarily )?rate limited|exceeded.*(limit|rate)|IP prefix .* throttled|"
     "4\\.7\\.(500|650|651)",
     2, 60, THROTTLE_SLOW, 0.5, 600, 50},
    {"gmail-rate", "4|5", NULL, "unusual rate|^4\\.7\\.28( |$)", 1, 60, THROTTLE_SUSPEND, 0, 600,
     0},
};

#define report(pc, node, ...) config_entry_report(pc, node, __VA_ARGS__)

/* prefix_any - value begins with one of the "|"-separated prefixes */
static bool prefix_any(const char *prefixes, const char *value)
{
	const char *p = prefixes;

	for (;;) {
		size_t n = strcspn(p, "|");
		if (n > 0 && strncmp(value, p, n) == 0)
			return true;
		if (p[n] == '\0')
			return false;
		p += n + 1;
	}
}

/* throttle_rule_matches - every field r gives matches the reply */
bool throttle_rule_matches(const struct throttle_rule *r, int code, const char *status,
                           const char *text)
{
	char codebuf[16];
	char *both;
	bool ok;

	snprintf(codebuf, sizeof(codebuf), "%d", code);
	if (r->code != NULL && !prefix_any(r->code, codebuf))
		return false;
	if (r->status != NULL && (status == NULL || !prefix_any(r->status, status)))
		return false;
	if (r->text == NULL)
		return true;
	if (text != NULL && regexec(&r->re, text, 0, NULL, 0) == 0)
		return true;
	if (status == NULL)
		return false;
	both = xasprintf("%s %s", status, text ? text : "");
	ok = regexec(&r->re, both, 0, NULL, 0) == 0;
	free(both);
	return ok;
}

/* valid_prefixes - "421", "45|421", "4.7.": alternatives of digits
 * (and dots when dots) beginning with 2, 4 or 5 */
static bool valid_prefixes(const char *s, bool dots, size_t maxlen)
{
	const char *p = s;

	for (;;) {
		size_t n = strcspn(p, "|");
		if (n == 0 || n > maxlen || strchr("245", p[0]) == NULL)
			return false;
		if (strspn(p, dots ? "0123456789." : "0123456789") < n)
			return false;
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

/* member_prefixes - code or status, checked; NULL when absent or bad */
static char *member_prefixes(struct config_entry_ctx *pc, config_setting_t *g, const char *name, bool dots)
{
	config_setting_t *m = config_setting_get_member(g, name);
	char num[24];
	const char *v;

	if (m == NULL)
		return NULL;
	if (!dots && (config_setting_type(m) == CONFIG_TYPE_INT ||
	              config_setting_type(m) == CONFIG_TYPE_INT64)) {
		snprintf(num, sizeof(num), "%lld", config_setting_get_int64(m));
		v = num;
	} else if ((v = config_setting_get_string(m)) == NULL) {
		report(pc, m, "%s: expected a string", name);
		return NULL;
	}
	if (!valid_prefixes(v, dots, dots ? 11 : 3)) {
		report(pc, m,
		       dots ? "status \"%s\": expected an enhanced status prefix such as \"4.7.\" "
		              "(several joined by |)"
		            : "code \"%s\": expected a reply code prefix such as \"421\" or \"4\" "
		              "(several joined by |)",
		       v);
		return NULL;
	}
	return xstrdup(v);
}

/* compile_text - r->text into r->re; false with the error reported */
static bool compile_text(struct config_entry_ctx *pc, config_setting_t *m, struct throttle_rule *r)
{
	char buf[256];
	int rc = regcomp(&r->re, r->text, RE_FLAGS);

	if (rc == 0)
		return true;
	regerror(rc, &r->re, buf, sizeof(buf));
	report(pc, m, "text \"%s\": %s", r->text, buf);
	free(r->text);
	r->text = NULL;
	return false;
}

/* member_seconds - window or duration (number of seconds or "5m"), ms */
static long long member_seconds(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                                long long def_s)
{
	config_setting_t *m = config_setting_get_member(g, name);
	const char *err = "expected a duration such as \"60s\" or \"5m\"";
	long long s;

	if (m == NULL)
		return def_s * 1000;
	if (config_setting_type(m) == CONFIG_TYPE_INT ||
	    config_setting_type(m) == CONFIG_TYPE_INT64)
		s = config_setting_get_int64(m);
	else if (config_setting_type(m) != CONFIG_TYPE_STRING ||
	         config_parse_duration(config_setting_get_string(m), &s, &err) < 0) {
		report(pc, m, "%s: %s", name, err);
		return def_s * 1000;
	}
	if (s < 1 || s > SECONDS_MAX) {
		report(pc, m, "%s: out of range (1s to %llds)", name, SECONDS_MAX);
		return def_s * 1000;
	}
	return s * 1000;
}

/* member_int - an integer member within [min, max]; def when absent */
static int member_int(struct config_entry_ctx *pc, config_setting_t *g, const char *name, int def, int min,
                      int max)
{
	config_setting_t *m = config_setting_get_member(g, name);
	long long v;

	if (m == NULL)
		return def;
	if (config_setting_type(m) != CONFIG_TYPE_INT &&
	    config_setting_type(m) != CONFIG_TYPE_INT64) {
		report(pc, m, "%s: expected a number", name);
		return def;
	}
	v = config_setting_get_int64(m);
	if (v < min || v > max) {
		report(pc, m, "%s: out of range (%d to %d)", name, min, max);
		return def;
	}
	return (int)v;
}

/* parse_action - action, factor and recover of rule r */
static void parse_action(struct config_entry_ctx *pc, config_setting_t *g, struct throttle_rule *r)
{
	config_setting_t *a = config_setting_get_member(g, "action");
	config_setting_t *f = config_setting_get_member(g, "factor");
	const char *v = a ? config_setting_get_string(a) : NULL;

	if (a == NULL) {
		report(pc, g, "needs action (\"suspend\" or \"slow\")");
		return;
	}
	if (v == NULL || (strcmp(v, "suspend") != 0 && strcmp(v, "slow") != 0)) {
		report(pc, a, "action: expected \"suspend\" or \"slow\"");
		return;
	}
	r->action = strcmp(v, "slow") == 0 ? THROTTLE_SLOW : THROTTLE_SUSPEND;
	r->recover = member_int(pc, g, "recover", 0, 0, RECOVER_MAX);
	if (r->action == THROTTLE_SUSPEND) {
		if (f != NULL)
			report(pc, f, "factor: only for action \"slow\"");
		if (config_setting_get_member(g, "recover") != NULL)
			report(pc, config_setting_get_member(g, "recover"),
			       "recover: only for action \"slow\"");
		return;
	}
	if (f == NULL) {
		report(pc, g, "action \"slow\" needs factor (0 < factor < 1, such as 0.5)");
		return;
	}
	r->factor = config_setting_type(f) == CONFIG_TYPE_FLOAT ? config_setting_get_float(f) : -1;
	if (!(r->factor > 0 && r->factor < 1))
		report(pc, f, "factor: expected a decimal number between 0 and 1, such as 0.5");
}

static void rule_free(struct throttle_rule *r)
{
	free(r->name);
	free(r->code);
	free(r->status);
	if (r->text != NULL)
		regfree(&r->re);
	free(r->text);
}

/* parse_rule - one entry of throttle.rules, appended when usable */
static void parse_rule(struct weir_config *cfg, config_setting_t *g, int i, const char *file,
                       struct config_errors *errs)
{
	static const char *const keys[] = {"name",      "code",    "status", "text",
	                                   "threshold", "window",  "action", "factor",
	                                   "duration",  "recover", NULL};
	struct config_entry_ctx pc = {.what = WHAT, .file = file, .errs = errs};
	struct throttle_config *tc = &cfg->throttle;
	config_setting_t *m;
	struct throttle_rule r;
	const char *name;

	memset(&r, 0, sizeof(r));
	snprintf(pc.entry, sizeof(pc.entry), "entry %d", i + 1);
	if (!config_setting_is_group(g)) {
		report(&pc, g, "each rule is a group { name = ...; action = ...; }");
		return;
	}
	if (!config_group_keys_ok(g, keys, WHAT, file, errs))
		pc.bad = true;
	m = config_setting_get_member(g, "name");
	name = m ? config_setting_get_string(m) : NULL;
	if (name == NULL || name[0] == '\0' || strlen(name) > NAME_MAX_LEN ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
	        strlen(name))
		report(&pc, m ? m : g,
		       "needs a name: letters, digits, '_', '.' and '-' (64 at most)");
	else
		snprintf(pc.entry, sizeof(pc.entry), "%s", name);
	for (size_t k = 0; name != NULL && k < tc->nrules; k++)
		if (strcmp(tc->rules[k].name, name) == 0)
			report(&pc, g, "a second rule called %s", name);
	r.code = member_prefixes(&pc, g, "code", false);
	r.status = member_prefixes(&pc, g, "status", true);
	if ((m = config_setting_get_member(g, "text")) != NULL) {
		if (config_setting_get_string(m) == NULL || config_setting_get_string(m)[0] == '\0')
			report(&pc, m, "text: expected a regular expression");
		else {
			r.text = xstrdup(config_setting_get_string(m));
			compile_text(&pc, m, &r);
		}
	}
	if (r.code == NULL && r.status == NULL && r.text == NULL && !pc.bad)
		report(&pc, g, "needs code, status or text (what replies it counts)");
	r.threshold = member_int(&pc, g, "threshold", 1, 1, THRESHOLD_MAX);
	r.window_ms = member_seconds(&pc, g, "window", 60);
	parse_action(&pc, g, &r);
	if (config_setting_get_member(g, "duration") == NULL)
		report(&pc, g, "needs duration (how long the action lasts, such as \"5m\")");
	r.duration_ms = member_seconds(&pc, g, "duration", 300);
	if (pc.bad) {
		rule_free(&r);
		return;
	}
	r.name = xstrdup(name);
	tc->rules = xrealloc(tc->rules, (tc->nrules + 1) * sizeof(r));
	tc->rules[tc->nrules++] = r;
}

/* throttle_rules_parse - throttle.rules; "()" means no rules at all */
void throttle_rules_parse(struct weir_config *cfg, void *node, const char *file,
                          struct config_errors *errs)
{
	config_setting_t *list = node;

	cfg->throttle.rules_written = true;
	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
		                  WHAT ": expected a list of { name = ...; action = ...; }");
		return;
	}
	for (int i = 0; i < config_setting_length(list); i++)
		parse_rule(cfg, config_setting_get_elem(list, (unsigned)i), i, file, errs);
}

/* rule_text - one rule as weirctl shows it; caller frees */
static char *rule_text(const struct throttle_rule *r)
{
	char slow[64] = "";

	if (r->action == THROTTLE_SLOW)
		snprintf(slow, sizeof(slow), " factor=%g recover=%d", r->factor, r->recover);
	return xasprintf("%s: code=%s status=%s text=\"%s\" threshold=%d window=%llds "
	                 "action=%s%s duration=%llds",
	                 r->name, r->code ? r->code : "any", r->status ? r->status : "any",
	                 r->text ? r->text : "", r->threshold, r->window_ms / 1000,
	                 r->action == THROTTLE_SLOW ? "slow" : "suspend", slow,
	                 r->duration_ms / 1000);
}

char *throttle_rules_format(const struct weir_config *cfg)
{
	char *out = xstrdup("("), *t;

	for (size_t i = 0; i < cfg->throttle.nrules; i++) {
		char *r = rule_text(&cfg->throttle.rules[i]);
		t = xasprintf("%s%s%s", out, i ? ", " : "", r);
		free(out);
		free(r);
		out = t;
	}
	t = xasprintf("%s)", out);
	free(out);
	return t;
}

void throttle_rules_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->throttle.nrules; i++)
		rule_free(&cfg->throttle.rules[i]);
	free(cfg->throttle.rules);
	cfg->throttle.rules = NULL;
	cfg->throttle.nrules = 0;
	cfg->throttle.rules_written = false;
}

/* install_defaults - the built-in rules into cfg */
static void install_defaults(struct weir_config *cfg)
{
	size_t n = sizeof(default_rules) / sizeof(default_rules[0]);
	struct throttle_config *tc = &cfg->throttle;

	tc->rules = xcalloc(n, sizeof(*tc->rules));
	for (size_t i = 0; i < n; i++) {
		const struct default_rule *d = &default_rules[i];
		struct throttle_rule *r = &tc->rules[i];
		r->name = xstrdup(d->name);
		r->code = d->code ? xstrdup(d->code) : NULL;
		r->status = d->status ? xstrdup(d->status) : NULL;
		r->text = xstrdup(d->text);
		if (regcomp(&r->re, r->text, RE_FLAGS) != 0)
			log_panic("throttle: built-in rule %s: bad regex", d->name);
		r->threshold = d->threshold;
		r->window_ms = d->window_s * 1000;
		r->action = d->action;
		r->factor = d->factor;
		r->duration_ms = d->duration_s * 1000;
		r->recover = d->recover;
		tc->nrules++;
	}
}

/* route_exists - agent.routes (or the smart host's route) has name */
static bool route_exists(const struct weir_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		if (strcmp(cfg->agent.routes[i].name, name) == 0)
			return true;
	return false;
}

/* throttle_finish - after the whole file (and routes_compile) */
void throttle_finish(struct weir_config *cfg, struct config_errors *errs)
{
	if (!cfg->throttle.rules_written && cfg->throttle.nrules == 0)
		install_defaults(cfg);
	for (size_t i = 0; i < cfg->throttle.nroutes; i++) {
		const struct throttle_named *r = &cfg->throttle.routes[i];
		if (!route_exists(cfg, r->name))
			config_errors_add(
			    errs, r->file, r->line,
			    "throttle.routes: %s: no route of that name (agent.routes; "
			    "\"smarthost\" for agent.smarthost)",
			    r->name);
	}
}

/* throttle_active - something is limited: a destination, route or sender */
bool throttle_active(const struct weir_config *cfg)
{
	return cfg->throttle.has_domains || cfg->throttle.ngroups > 0 ||
	       cfg->throttle.nroutes > 0 || cfg->throttle.nsenders > 0;
}

/* throttle_needs_mx - some group matches by MX host */
bool throttle_needs_mx(const struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->throttle.ngroups; i++)
		if (cfg->throttle.groups[i].nmx > 0)
			return true;
	return false;
}
