/* config - load and validate weir.conf (libconfig syntax)
 *
 * Loading never stops at the first semantic error: every setting is
 * checked and each problem is reported as file:line: text, so an
 * administrator fixes a file in one pass. */
#include "autoconf.h"

#include <errno.h>
#include <libconfig.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

const char *config_default_path(void)
{
	return SYSCONFDIR "/weir/weir.conf";
}

/* errors */

static void strlist_add(struct strlist *l, char *s)
{
	l->v = xrealloc(l->v, (l->n + 2) * sizeof(*l->v));
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
}

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void config_errors_init(struct config_errors *errs)
{
	errs->list.v = NULL;
	errs->list.n = 0;
}

void config_errors_free(struct config_errors *errs)
{
	strlist_free(&errs->list);
}

void config_errors_add(struct config_errors *errs, const char *file, int line, const char *fmt,
		       ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (line > 0)
		strlist_add(&errs->list, xasprintf("%s:%d: %s", file, line, msg ? msg : "?"));
	else
		strlist_add(&errs->list, xasprintf("%s: %s", file, msg ? msg : "?"));
	free(msg);
}

/* value parsers */

static int parse_scaled(const char *s, long long *v_r, const char *units, const long long *mult,
			const char **err_r)
{
	char *end;
	long long v;

	errno = 0;
	if (s[0] < '0' || s[0] > '9') {
		*err_r = "not a number";
		return -1;
	}
	v = strtoll(s, &end, 10);
	if (errno != 0) {
		*err_r = "number out of range";
		return -1;
	}
	if (*end != '\0') {
		const char *u = strchr(units, *end);
		if (u == NULL || end[1] != '\0') {
			*err_r = "unknown unit";
			return -1;
		}
		long long m = mult[u - units];
		if (v > LLONG_MAX / m) {
			*err_r = "number out of range";
			return -1;
		}
		v *= m;
	}
	*v_r = v;
	return 0;
}

int config_parse_duration(const char *s, long long *secs_r, const char **err_r)
{
	static const long long mult[] = {1, 60, 3600, 86400, 604800};

	if (parse_scaled(s, secs_r, "smhdw", mult, err_r) < 0) {
		*err_r = "expected a duration: seconds, or a number with s, m, h, d or w";
		return -1;
	}
	return 0;
}

int config_parse_size(const char *s, long long *bytes_r, const char **err_r)
{
	static const long long mult[] = {1024, 1024, 1048576, 1048576, 1073741824, 1073741824};

	if (parse_scaled(s, bytes_r, "kKmMgG", mult, err_r) < 0) {
		*err_r = "expected a size: bytes, or a number with k, M or G";
		return -1;
	}
	return 0;
}

/* Where a value came from, for messages. */
struct origin {
	const char *file;
	int line;
};

#define FIELD(cfg, s, type) ((type *)((char *)(cfg) + (s)->offset))

/* store_text - set s from its text form (defaults, and string-typed
 * values in the file). Returns -1 with *err_r. */
static int store_text(struct weir_config *cfg, const struct setting *s, const char *text,
		      const char **err_r)
{
	long long v = 0;
	char *end;

	switch (s->type) {
	case SETTING_STRING:
		if (s->check && s->check(text, err_r) < 0)
			return -1;
		free(*FIELD(cfg, s, char *));
		*FIELD(cfg, s, char *) = xstrdup(text);
		return 0;
	case SETTING_INT:
		errno = 0;
		v = strtoll(text, &end, 10);
		if (errno || *end || end == text) {
			*err_r = "not a number";
			return -1;
		}
		break;
	case SETTING_BOOL:
		if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0)
			*FIELD(cfg, s, bool) = true;
		else if (strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0)
			*FIELD(cfg, s, bool) = false;
		else {
			*err_r = "expected true or false";
			return -1;
		}
		return 0;
	case SETTING_DURATION:
		if (config_parse_duration(text, &v, err_r) < 0)
			return -1;
		break;
	case SETTING_SIZE:
		if (config_parse_size(text, &v, err_r) < 0)
			return -1;
		break;
	case SETTING_MODE:
		errno = 0;
		v = strtoll(text, &end, 8);
		if (errno || *end || end == text || text[0] != '0') {
			*err_r = "expected an octal mode such as \"0660\"";
			return -1;
		}
		break;
	case SETTING_ENUM:
		for (size_t i = 0; s->choices[i]; i++) {
			if (strcasecmp(text, s->choices[i]) == 0) {
				*FIELD(cfg, s, int) = (int)i;
				return 0;
			}
		}
		*err_r = "not one of the allowed values";
		return -1;
	case SETTING_STRLIST:
	case SETTING_CUSTOM:
		/* text form only for defaults, handled by the caller through
		 * libconfig */
		*err_r = "internal: list from text";
		return -1;
	}
	if (v < s->min || v > s->max) {
		*err_r = "out of range";
		return -1;
	}
	if (s->type == SETTING_SIZE)
		*FIELD(cfg, s, long long) = v;
	else
		*FIELD(cfg, s, long) = (long)v;
	return 0;
}

static void report_range(struct config_errors *errs, const struct origin *o,
			 const struct setting *s, const char *err)
{
	if (strcmp(err, "out of range") == 0 && s->type == SETTING_SIZE)
		config_errors_add(errs, o->file, o->line, "%s: out of range (%lld to %lld bytes)",
				  s->name, s->min, s->max);
	else if (strcmp(err, "out of range") == 0 && s->type == SETTING_DURATION)
		config_errors_add(errs, o->file, o->line, "%s: out of range (%llds to %llds)",
				  s->name, s->min, s->max);
	else if (strcmp(err, "out of range") == 0 && s->type == SETTING_MODE)
		config_errors_add(errs, o->file, o->line, "%s: out of range (0 to 0777)", s->name);
	else if (strcmp(err, "out of range") == 0)
		config_errors_add(errs, o->file, o->line, "%s: out of range (%lld to %lld)",
				  s->name, s->min, s->max);
	else if (s->type == SETTING_ENUM) {
		char allowed[256] = "";
		for (size_t i = 0; s->choices[i]; i++) {
			strncat(allowed, i ? ", " : "", sizeof(allowed) - strlen(allowed) - 1);
			strncat(allowed, s->choices[i], sizeof(allowed) - strlen(allowed) - 1);
		}
		config_errors_add(errs, o->file, o->line, "%s: %s (%s)", s->name, err, allowed);
	} else
		config_errors_add(errs, o->file, o->line, "%s: %s", s->name, err);
}

static const char *type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "a number";
	case CONFIG_TYPE_FLOAT: return "a decimal number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "true/false";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "something else";
	}
}

static void store_list(struct weir_config *cfg, const struct setting *s, config_setting_t *node,
		       const struct origin *o, struct config_errors *errs)
{
	struct strlist *l = FIELD(cfg, s, struct strlist);
	const char *err;

	strlist_free(l);
	if (config_setting_type(node) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(node);
		if (s->check && s->check(v, &err) < 0)
			config_errors_add(errs, o->file, o->line, "%s: %s: %s", s->name, v, err);
		else
			strlist_add(l, xstrdup(v));
		return;
	}
	if (!config_setting_is_aggregate(node) || config_setting_is_group(node)) {
		config_errors_add(errs, o->file, o->line, "%s: expected a string or a list of strings",
				  s->name);
		return;
	}
	for (int i = 0; i < config_setting_length(node); i++) {
		config_setting_t *el = config_setting_get_elem(node, (unsigned)i);
		const char *v = config_setting_get_string(el);
		int line = config_setting_source_line(el) ? (int)config_setting_source_line(el) : o->line;

		if (v == NULL) {
			config_errors_add(errs, o->file, line, "%s: element %d: expected a string, got %s",
					  s->name, i + 1, type_name(config_setting_type(el)));
		} else if (s->check && s->check(v, &err) < 0) {
			config_errors_add(errs, o->file, line, "%s: %s: %s", s->name, v, err);
		} else {
			strlist_add(l, xstrdup(v));
		}
	}
}

/* store_node - set s from a value in the file */
static void store_node(struct weir_config *cfg, const struct setting *s, config_setting_t *node,
		       const struct origin *o, struct config_errors *errs)
{
	int t = config_setting_type(node);
	const char *err = NULL;
	char num[32];
	const char *text;

	if (s->type == SETTING_STRLIST) {
		store_list(cfg, s, node, o, errs);
		return;
	}
	if (s->type == SETTING_CUSTOM) {
		s->parse(cfg, node, o->file, errs);
		return;
	}
	switch (t) {
	case CONFIG_TYPE_STRING:
		text = config_setting_get_string(node);
		if (s->type == SETTING_INT || s->type == SETTING_BOOL) {
			config_errors_add(errs, o->file, o->line, "%s: expected %s, got a string",
					  s->name, s->type == SETTING_INT ? "a number" : "true/false");
			return;
		}
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (s->type == SETTING_STRING || s->type == SETTING_ENUM ||
		    s->type == SETTING_BOOL || s->type == SETTING_MODE) {
			config_errors_add(errs, o->file, o->line, "%s: expected %s, got a number",
					  s->name,
					  s->type == SETTING_BOOL   ? "true/false"
					  : s->type == SETTING_MODE ? "an octal string such as \"0660\""
								    : "a string");
			return;
		}
		snprintf(num, sizeof(num), "%lld", config_setting_get_int64(node));
		text = num;
		break;
	case CONFIG_TYPE_BOOL:
		if (s->type != SETTING_BOOL) {
			config_errors_add(errs, o->file, o->line, "%s: got true/false, which it is not",
					  s->name);
			return;
		}
		text = config_setting_get_bool(node) ? "true" : "false";
		break;
	default:
		config_errors_add(errs, o->file, o->line, "%s: unexpected %s", s->name, type_name(t));
		return;
	}
	if (store_text(cfg, s, text, &err) < 0)
		report_range(errs, o, s, err);
}

/* closest_setting - a known name within edit distance 3 of name, or NULL */
static const char *closest_setting(const char *name)
{
	const char *best = NULL;
	size_t best_d = 4;

	for (size_t k = 0; k < weir_settings_count; k++) {
		const char *t = weir_settings[k].name;
		size_t n = strlen(name), m = strlen(t);
		size_t prev[128], cur[128];

		if (n >= 127 || m >= 127)
			continue;
		for (size_t j = 0; j <= m; j++)
			prev[j] = j;
		for (size_t i = 1; i <= n; i++) {
			cur[0] = i;
			for (size_t j = 1; j <= m; j++) {
				size_t c = prev[j - 1] + (name[i - 1] != t[j - 1]);
				if (prev[j] + 1 < c)
					c = prev[j] + 1;
				if (cur[j - 1] + 1 < c)
					c = cur[j - 1] + 1;
				cur[j] = c;
			}
			memcpy(prev, cur, (m + 1) * sizeof(size_t));
		}
		if (prev[m] < best_d) {
			best_d = prev[m];
			best = t;
		}
	}
	return best;
}

static bool is_group_prefix(const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < weir_settings_count; i++)
		if (strncmp(weir_settings[i].name, path, n) == 0 && weir_settings[i].name[n] == '.')
			return true;
	return false;
}

/* source_file - the file a node came from, as a path an administrator
 * can open: libconfig names @included files as written, relative to the
 * include directory (the main file's directory). Caller frees. */
static char *source_file(const char *f, const char *main_file)
{
	char *dir, *path;

	if (f == NULL || f[0] == '/' || strcmp(f, main_file) == 0)
		return xstrdup(f ? f : main_file);
	dir = xstrdup(main_file);
	path = xasprintf("%s/%s", dirname(dir), f);
	free(dir);
	return path;
}

/* walk - check every node under group, recursively */
static void walk(struct weir_config *cfg, config_setting_t *group, const char *prefix,
		 const char *main_file, bool *seen, struct config_errors *errs)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		config_setting_t *node = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(node);
		struct origin o;
		char *path;

		char *file = source_file(config_setting_source_file(node), main_file);
		o.file = file;
		o.line = config_setting_source_line(node);
		path = prefix[0] ? xasprintf("%s.%s", prefix, name) : xstrdup(name);
		const struct setting *s = setting_find(path);
		if (s != NULL) {
			seen[s - weir_settings] = true;
			store_node(cfg, s, node, &o, errs);
		} else if (config_setting_is_group(node) && is_group_prefix(path)) {
			walk(cfg, node, path, main_file, seen, errs);
		} else {
			const char *near = closest_setting(path);
			if (near)
				config_errors_add(errs, o.file, o.line,
						  "unknown setting '%s' (did you mean '%s'?)", path,
						  near);
			else
				config_errors_add(errs, o.file, o.line, "unknown setting '%s'", path);
		}
		free(path);
		free(file);
	}
}

static void set_defaults(struct weir_config *cfg)
{
	for (size_t i = 0; i < weir_settings_count; i++) {
		const struct setting *s = &weir_settings[i];
		const char *err;

		if (s->def == NULL)
			continue;
		if (s->type == SETTING_CUSTOM) {
			continue; /* empty by default */
		} else if (s->type == SETTING_STRLIST) {
			/* Defaults are written as libconfig lists. */
			config_t c;
			char *src = xasprintf("x = %s;", s->def);
			config_init(&c);
			if (config_read_string(&c, src) != CONFIG_TRUE)
				log_panic("bad built-in default for %s", s->name);
			struct config_errors none;
			struct origin o = {"(default)", 0};
			config_errors_init(&none);
			store_list(cfg, s, config_lookup(&c, "x"), &o, &none);
			if (none.list.n)
				log_panic("bad built-in default for %s", s->name);
			config_errors_free(&none);
			config_destroy(&c);
			free(src);
		} else if (store_text(cfg, s, s->def, &err) < 0) {
			log_panic("bad built-in default for %s", s->name);
		}
	}
}

/* check_required - settings a program needs; one given with a bad value
 * was reported already (seen) */
static void check_required(struct weir_config *cfg, enum config_user who, const char *file,
			   const bool *seen, struct config_errors *errs)
{
	for (size_t i = 0; i < weir_settings_count; i++) {
		const struct setting *s = &weir_settings[i];
		if (!(s->required_by & who) || (seen[i] && errs->list.n > 0))
			continue;
		if (s->type == SETTING_STRING) {
			const char *v = *FIELD(cfg, s, char *);
			if (v == NULL || v[0] == '\0')
				config_errors_add(errs, file, 0, "%s must be set", s->name);
		} else if (s->type == SETTING_STRLIST && FIELD(cfg, s, struct strlist)->n == 0) {
			config_errors_add(errs, file, 0, "%s must be set", s->name);
		}
	}
	if (who & CONFIG_FOR_AGENT && cfg->agent.nroutes == 0 &&
	    !seen[setting_find("agent.routes") - weir_settings] &&
	    (cfg->agent.smarthost == NULL || cfg->agent.smarthost[0] == '\0'))
		config_errors_add(errs, file, 0, "agent.smarthost must be set (or agent.routes)");
	if (who & CONFIG_FOR_AGENT && cfg->agent.lmtp_listen.n + cfg->agent.smtp_listen.n == 0)
		config_errors_add(errs, file, 0,
				  "weir-agent needs agent.lmtp_listen or agent.smtp_listen");
}

static void fill_derived(struct weir_config *cfg)
{
	if (cfg->hostname == NULL) {
		char h[256];
		if (gethostname(h, sizeof(h)) < 0)
			snprintf(h, sizeof(h), "localhost");
		h[sizeof(h) - 1] = '\0';
		cfg->hostname = xstrdup(h);
	}
	if (cfg->agent.helo_name == NULL)
		cfg->agent.helo_name = xstrdup(cfg->hostname);
	if (cfg->dkim.authserv_id == NULL)
		cfg->dkim.authserv_id = xstrdup(cfg->hostname);
}

/* load - read the file path, or the text when text is not NULL (path
 * then only names it in messages) */
static struct weir_config *load(const char *path, const char *text, enum config_user who,
				struct config_errors *errs)
{
	struct weir_config *cfg = xcalloc(1, sizeof(*cfg));
	size_t errors_before = errs->list.n;
	char *dir = xstrdup(path);
	bool *seen;
	config_t c;
	int ok;

	atomic_init(&cfg->refs, 1);
	cfg->file = xstrdup(path);
	set_defaults(cfg);

	config_init(&c);
	config_set_include_dir(&c, dirname(dir));
	if (text == NULL && access(path, R_OK) != 0) {
		config_errors_add(errs, path, 0, "cannot read: %s", strerror(errno));
		goto done;
	}
	ok = text ? config_read_string(&c, text) : config_read_file(&c, path);
	if (ok != CONFIG_TRUE) {
		char *f = source_file(config_error_file(&c), path);
		config_errors_add(errs, f, config_error_line(&c), "%s", config_error_text(&c));
		free(f);
		goto done;
	}
	seen = xcalloc(weir_settings_count, sizeof(*seen));
	walk(cfg, config_root_setting(&c), "", path, seen, errs);
	check_required(cfg, who, path, seen, errs);
	free(seen);
	if (errs->list.n == errors_before)
		settings_compile(cfg, errs);
done:
	config_destroy(&c);
	free(dir);
	fill_derived(cfg);
	if (errs->list.n > errors_before) {
		config_unref(cfg);
		return NULL;
	}
	return cfg;
}

struct weir_config *config_load(const char *path, enum config_user who, struct config_errors *errs)
{
	return load(path, NULL, who, errs);
}

struct weir_config *config_load_string(const char *name, const char *text, enum config_user who,
				       struct config_errors *errs)
{
	return load(name, text, who, errs);
}

struct weir_config *config_load_reported(const char *path, enum config_user who, bool to_stderr,
					 size_t *nerrors_r)
{
	struct config_errors errs;
	struct weir_config *cfg;

	config_errors_init(&errs);
	cfg = config_load(path, who, &errs);
	for (size_t i = 0; i < errs.list.n; i++) {
		if (to_stderr)
			fprintf(stderr, "%s\n", errs.list.v[i]);
		else
			log_error("%s", errs.list.v[i]);
	}
	if (nerrors_r != NULL)
		*nerrors_r = errs.list.n;
	config_errors_free(&errs);
	return cfg;
}

struct weir_config *config_ref(struct weir_config *cfg)
{
	atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

void config_unref(struct weir_config *cfg)
{
	if (cfg == NULL || atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	if (cfg->daemon_state != NULL && cfg->daemon_state_free != NULL)
		cfg->daemon_state_free(cfg->daemon_state);
	settings_free_compiled(cfg);
	for (size_t i = 0; i < weir_settings_count; i++) {
		const struct setting *s = &weir_settings[i];
		if (s->type == SETTING_STRING)
			free(*FIELD(cfg, s, char *));
		else if (s->type == SETTING_STRLIST)
			strlist_free(FIELD(cfg, s, struct strlist));
		else if (s->type == SETTING_CUSTOM && s->free)
			s->free(cfg);
	}
	free(cfg->file);
	free(cfg);
}

bool config_group_keys_ok(void *group, const char *const *names, const char *what,
			  const char *file, struct config_errors *errs)
{
	config_setting_t *g = group;
	bool ok = true;

	for (int i = 0; i < config_setting_length(g); i++) {
		config_setting_t *el = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(el);
		size_t k = 0;

		while (names[k] && strcmp(names[k], name) != 0)
			k++;
		if (names[k] == NULL) {
			config_errors_add(errs, file, (int)config_setting_source_line(el),
					  "%s: unknown key '%s'", what, name);
			ok = false;
		}
	}
	return ok;
}

/* the running configuration */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weir_config *current;

struct weir_config *config_current(void)
{
	struct weir_config *cfg;

	pthread_mutex_lock(&current_lock);
	cfg = current ? config_ref(current) : NULL;
	pthread_mutex_unlock(&current_lock);
	return cfg;
}

void config_set_current(struct weir_config *cfg)
{
	struct weir_config *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = cfg;
	pthread_mutex_unlock(&current_lock);
	config_unref(old);
}

char *setting_format(const struct setting *s, const struct weir_config *cfg)
{
	const struct weir_config *c = cfg;
	char *out, *tmp;

	switch (s->type) {
	case SETTING_STRING: {
		const char *v = *FIELD(c, s, char *const);
		return xasprintf("\"%s\"", v ? v : "");
	}
	case SETTING_INT:
		return xasprintf("%ld", *FIELD(c, s, const long));
	case SETTING_BOOL:
		return xstrdup(*FIELD(c, s, const bool) ? "true" : "false");
	case SETTING_DURATION:
		return xasprintf("\"%lds\"", *FIELD(c, s, const long));
	case SETTING_SIZE:
		return xasprintf("%lld", *FIELD(c, s, const long long));
	case SETTING_MODE:
		return xasprintf("\"0%lo\"", (unsigned long)*FIELD(c, s, const long));
	case SETTING_ENUM:
		return xasprintf("\"%s\"", s->choices[*FIELD(c, s, const int)]);
	case SETTING_CUSTOM:
		return s->format(c);
	case SETTING_STRLIST: {
		const struct strlist *l = FIELD(c, s, const struct strlist);
		out = xstrdup("(");
		for (size_t i = 0; i < l->n; i++) {
			tmp = xasprintf("%s%s\"%s\"", out, i ? ", " : "", l->v[i]);
			free(out);
			out = tmp;
		}
		tmp = xasprintf("%s)", out);
		free(out);
		return tmp;
	}
	}
	return xstrdup("?");
}
