/* credentials - agent.credentials_file: the user names and secrets
 * weir-agent logs in to smart hosts with.
 *
 * Format: one credential a line, "NAME USER SECRET": NAME is what a
 * route's host names in `credentials`, USER the login, SECRET the rest
 * of the line (it may hold blanks; blanks at its end are dropped).
 * Lines starting with '#' and blank lines are skipped.
 *
 * Read when the configuration loads (start, reload, weirctl check), so a
 * broken or exposed file is a configuration error, never a message's.
 * The file must not be readable (or writable) by group or others, as
 * DKIM keys (dkim_keys.c); lib/secret_file.c makes the checks. Secrets
 * never go into an error message; they are wiped when the configuration
 * is freed. */
#include "autoconf.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/secret_file.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"

#define CREDENTIALS_FILE_MAX (1024 * 1024)

/* read_file - the whole file after the permission checks
 * (lib/secret_file.c), or NULL with the error added */
static char *read_file(const char *path, const char *user, struct config_errors *errs,
                       size_t *len_r)
{
	char *err = NULL;
	char *buf = secret_file_read(path, user, CREDENTIALS_FILE_MAX, len_r, &err);

	if (buf == NULL) {
		config_errors_add(errs, path, 0, "%s", err);
		free(err);
	}
	return buf;
}

/* name_ok - [A-Za-z0-9_.-]+, as route names */
static bool name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return n > 0;
}

/* field - the next blank-separated field of [*p, end): start and length */
static size_t field(const char **p, const char *end, const char **start_r)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	*start_r = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*p = s;
	return (size_t)(s - *start_r);
}

/* parse_line - one non-comment line; 0, or -1 with the error added */
static int parse_line(struct weir_config *cfg, const char *file, int lineno, const char *p,
                      const char *end, struct config_errors *errs)
{
	const char *name, *user, *secret;
	size_t nn = field(&p, end, &name), nu = field(&p, end, &user);
	struct credential *c;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	secret = p;
	while (end > secret && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (nn == 0 || nu == 0 || end == secret) {
		config_errors_add(errs, file, lineno, "expected NAME USER SECRET");
		return -1;
	}
	if (!name_ok(name, nn)) {
		config_errors_add(errs, file, lineno,
		                  "credential name may hold only letters, digits, '_', '.', '-'");
		return -1;
	}
	for (size_t i = 0; i < cfg->agent.ncredentials; i++) {
		if (strlen(cfg->agent.credentials[i].name) == nn &&
		    memcmp(cfg->agent.credentials[i].name, name, nn) == 0) {
			config_errors_add(errs, file, lineno, "credential %.*s defined twice",
			                  (int)nn, name);
			return -1;
		}
	}
	cfg->agent.credentials =
	    xrealloc(cfg->agent.credentials,
	             (cfg->agent.ncredentials + 1) * sizeof(*cfg->agent.credentials));
	c = &cfg->agent.credentials[cfg->agent.ncredentials++];
	c->name = xstrndup(name, nn);
	c->user = xstrndup(user, nu);
	c->secret = xstrndup(secret, (size_t)(end - secret));
	return 0;
}

/* check_routes - every credentials NAME a route's host gives exists */
static void check_routes(struct weir_config *cfg, struct config_errors *errs)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		for (size_t j = 0; j < r->nhosts; j++) {
			const char *name = r->hosts[j].credentials;
			if (name == NULL || credential_find(cfg, name) != NULL)
				continue;
			if (cfg->agent.credentials_file == NULL ||
			    cfg->agent.credentials_file[0] == '\0')
				config_errors_add(errs, r->file, r->line,
				                  "route %s, host %s: credentials \"%s\" need "
				                  "agent.credentials_file",
				                  r->name, r->hosts[j].host, name);
			else
				config_errors_add(errs, r->file, r->line,
				                  "route %s, host %s: no credentials \"%s\" in %s",
				                  r->name, r->hosts[j].host, name,
				                  cfg->agent.credentials_file);
		}
	}
}

void credentials_load(struct weir_config *cfg, struct config_errors *errs)
{
	const char *path = cfg->agent.credentials_file;
	char *buf;
	size_t len = 0;
	int lineno = 0;

	if (path != NULL && path[0] != '\0' &&
	    (buf = read_file(path, cfg->user, errs, &len)) != NULL) {
		const char *p = buf, *end = buf + len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *e = nl ? nl : end, *s = p;
			lineno++;
			if (e > p && e[-1] == '\r')
				e--;
			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
			if (s < e && *s != '#')
				parse_line(cfg, path, lineno, s, e, errs);
			p = nl ? nl + 1 : end;
		}
		secret_free(buf, len);
	}
	check_routes(cfg, errs);
}

const struct credential *credential_find(const struct weir_config *cfg, const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->agent.ncredentials; i++)
		if (strcmp(cfg->agent.credentials[i].name, name) == 0)
			return &cfg->agent.credentials[i];
	return NULL;
}

void credentials_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->agent.ncredentials; i++) {
		struct credential *c = &cfg->agent.credentials[i];
		OPENSSL_cleanse(c->secret, strlen(c->secret));
		free(c->secret);
		free(c->user);
		free(c->name);
	}
	free(cfg->agent.credentials);
	cfg->agent.credentials = NULL;
	cfg->agent.ncredentials = 0;
}
