/* webhook_config - bounce.webhooks of weir.conf: parsing and checks
 *
 *   webhooks = ( { url = "https://hooks.example.com/weir";
 *                  secret_file = "/etc/weir/webhook.secret";
 *                  events = ("bounce", "complaint"); } );
 *
 * url (http:// or https://) and secret_file are required; events
 * defaults to both. Every problem is reported with the file:line of the
 * entry and parsing goes on, so that `weirctl check` lists them all.
 * The secret files are read when the configuration loads only to check
 * them (a file anybody may read is a configuration error, as the
 * credentials file); webhook_start reads them again for its thread. */
#include "autoconf.h"

#include <curl/curl.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/secret_file.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/webhook.h"
#include "policy/webhook_int.h"

#define WHAT    "bounce.webhooks"
#define URL_MAX 2048

static const char *const event_names[] = {"bounce", "complaint", NULL};

unsigned webhook_event_bit(const char *type)
{
	for (int i = 0; type != NULL && event_names[i] != NULL; i++)
		if (strcmp(type, event_names[i]) == 0)
			return 1u << i;
	return 0;
}

/* check_url - http(s)://host...; NULL, or what is wrong */
static const char *check_url(const char *url)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL;
	const char *err = NULL;

	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return "must start with http:// or https://";
	if (strlen(url) > URL_MAX)
		return "longer than 2048 characters";
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "holds a blank or a control character";
	if ((u = curl_url()) == NULL)
		return "out of memory";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
		err = "not a valid URL";
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return err;
}

char *webhook_url_for_log(const char *url)
{
	CURLU *u = curl_url();
	char *out = NULL, *s;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
		out = xstrdup(s);
		curl_free(s);
	}
	curl_url_cleanup(u);
	return out != NULL ? out : xstrdup("(unparsable URL)");
}

char *webhook_secret_read(const struct webhook_target *t, const char *owner, size_t *len_r,
                          char **err_r)
{
	char *err = NULL, *s;
	size_t len = 0;

	s = secret_file_read(t->secret_file, owner, WEBHOOK_SECRET_MAX, &len, &err);
	if (s == NULL) {
		*err_r = xasprintf("%s: %s", t->secret_file, err);
		free(err);
		return NULL;
	}
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
	                   s[len - 1] == '\t'))
		s[--len] = '\0';
	if (len == 0) {
		*err_r =
		    xasprintf("%s: empty (it holds the webhook's shared secret)", t->secret_file);
		secret_free(s, 0);
		return NULL;
	}
	*len_r = len;
	return s;
}

/* string_member - the string member name of g, or NULL (reported when
 * present and not a string) */
static const char *string_member(config_setting_t *g, const char *name, const char *file,
                                 struct config_errors *errs, bool *bad)
{
	config_setting_t *m = config_setting_get_member(g, name);

	if (m == NULL)
		return NULL;
	if (config_setting_type(m) != CONFIG_TYPE_STRING) {
		config_errors_add(errs, file, (int)config_setting_source_line(m),
		                  WHAT ": %s: expected a string", name);
		*bad = true;
		return NULL;
	}
	return config_setting_get_string(m);
}

/* parse_events - the events member: a name or a list of names */
static unsigned parse_events(config_setting_t *g, const char *file, struct config_errors *errs,
                             bool *bad)
{
	config_setting_t *m = config_setting_get_member(g, "events");
	unsigned bits = 0;
	int n;

	if (m == NULL)
		return WEBHOOK_EVENT_BOUNCE | WEBHOOK_EVENT_COMPLAINT;
	if (!config_setting_is_scalar(m) && !config_setting_is_list(m) &&
	    !config_setting_is_array(m)) {
		config_errors_add(errs, file, (int)config_setting_source_line(m),
		                  WHAT ": events: expected \"bounce\", \"complaint\" or a list");
		*bad = true;
		return 0;
	}
	n = config_setting_is_scalar(m) ? 1 : config_setting_length(m);
	for (int i = 0; i < n; i++) {
		config_setting_t *e =
		    config_setting_is_scalar(m) ? m : config_setting_get_elem(m, (unsigned)i);
		const char *v = config_setting_get_string(e);
		unsigned bit = webhook_event_bit(v);

		if (bit == 0) {
			config_errors_add(errs, file, (int)config_setting_source_line(e),
			                  WHAT ": events: \"%s\": expected \"bounce\" or "
			                       "\"complaint\"",
			                  v ? v : "(not a string)");
			*bad = true;
		}
		bits |= bit;
	}
	if (n == 0) {
		config_errors_add(errs, file, (int)config_setting_source_line(m),
		                  WHAT ": events: empty (give \"bounce\", \"complaint\" or both)");
		*bad = true;
	}
	return bits;
}

/* parse_entry - one { url; secret_file; events; } */
static void parse_entry(struct weir_config *cfg, config_setting_t *g, int i, const char *file,
                        struct config_errors *errs)
{
	static const char *const keys[] = {"url", "secret_file", "events", NULL};
	int line = (int)config_setting_source_line(g);
	const char *url, *secret, *err;
	struct webhook_target *t;
	unsigned events;
	bool bad = false;

	if (!config_setting_is_group(g)) {
		config_errors_add(errs, file, line, WHAT ": entry %d is not a group { }", i + 1);
		return;
	}
	if (!config_group_keys_ok(g, keys, WHAT, file, errs))
		bad = true;
	url = string_member(g, "url", file, errs, &bad);
	secret = string_member(g, "secret_file", file, errs, &bad);
	events = parse_events(g, file, errs, &bad);
	if (url == NULL || secret == NULL || secret[0] == '\0') {
		config_errors_add(errs, file, line, WHAT ": entry %d: needs url and secret_file",
		                  i + 1);
		return;
	}
	if ((err = check_url(url)) != NULL) {
		config_errors_add(errs, file, line, WHAT ": url \"%s\": %s", url, err);
		return;
	}
	for (size_t j = 0; j < cfg->bounce.nwebhooks; j++)
		if (strcmp(cfg->bounce.webhooks[j].url, url) == 0) {
			config_errors_add(errs, file, line, WHAT ": url %s given twice (line %d)",
			                  url, cfg->bounce.webhooks[j].line);
			return;
		}
	if (cfg->bounce.nwebhooks == WEBHOOKS_MAX) {
		config_errors_add(errs, file, line, WHAT ": more than %d entries", WEBHOOKS_MAX);
		return;
	}
	if (bad)
		return;
	cfg->bounce.webhooks =
	    xrealloc(cfg->bounce.webhooks, (cfg->bounce.nwebhooks + 1) * sizeof(*t));
	t = &cfg->bounce.webhooks[cfg->bounce.nwebhooks++];
	t->url = xstrdup(url);
	t->secret_file = xstrdup(secret);
	t->events = events;
	t->file = xstrdup(file);
	t->line = line;
}

void webhooks_parse(struct weir_config *cfg, void *node, const char *file,
                    struct config_errors *errs)
{
	config_setting_t *list = node;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
		                  WHAT ": expected a list of { url = ...; secret_file = ...; "
		                       "events = (...); }");
		return;
	}
	for (int i = 0; i < config_setting_length(list); i++)
		parse_entry(cfg, config_setting_get_elem(list, (unsigned)i), i, file, errs);
}

char *webhooks_format(const struct weir_config *cfg)
{
	char *out = xstrdup("("), *t;

	for (size_t i = 0; i < cfg->bounce.nwebhooks; i++) {
		const struct webhook_target *w = &cfg->bounce.webhooks[i];
		char *url = webhook_url_for_log(w->url), *ev = xstrdup("");

		for (int j = 0; event_names[j] != NULL; j++)
			if (w->events & (1u << j)) {
				t = xasprintf("%s%s%s", ev, ev[0] ? "," : "", event_names[j]);
				free(ev);
				ev = t;
			}
		t = xasprintf("%s%s%s [%s]", out, i ? ", " : "", url, ev);
		free(out);
		free(url);
		free(ev);
		out = t;
	}
	t = xasprintf("%s)", out);
	free(out);
	return t;
}

void webhooks_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->bounce.nwebhooks; i++) {
		free(cfg->bounce.webhooks[i].url);
		free(cfg->bounce.webhooks[i].secret_file);
		free(cfg->bounce.webhooks[i].file);
	}
	free(cfg->bounce.webhooks);
	cfg->bounce.webhooks = NULL;
	cfg->bounce.nwebhooks = 0;
}

void webhooks_compile(struct weir_config *cfg, struct config_errors *errs)
{
	if (cfg->bounce.nwebhooks == 0)
		return;
	if (cfg->outcome.db == NULL || cfg->outcome.db[0] == '\0')
		config_errors_add(errs, cfg->bounce.webhooks[0].file, cfg->bounce.webhooks[0].line,
		                  WHAT ": the outbox is in outcome.db, which is \"\"");
	for (size_t i = 0; i < cfg->bounce.nwebhooks; i++) {
		const struct webhook_target *t = &cfg->bounce.webhooks[i];
		size_t len = 0;
		char *err = NULL, *s = webhook_secret_read(t, cfg->user, &len, &err);

		if (s == NULL) {
			config_errors_add(errs, t->file, t->line, WHAT ": secret_file %s", err);
			free(err);
		}
		secret_free(s, len);
	}
}
