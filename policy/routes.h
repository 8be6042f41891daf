/* routes - weir-agent's routes (weir.conf agent.routes): which smart
 * hosts (or direct MX delivery) a message goes to, and how each host is
 * spoken to (TLS, AUTH, pool sizes). Parsed with the configuration;
 * read-only afterwards. See /work/spec: doc/weir.conf.5, ROUTES. */
#ifndef WEIR_POLICY_ROUTES_H
#define WEIR_POLICY_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

struct weir_config;
struct config_errors;

enum route_tls {
	ROUTE_TLS_NONE,     /* never (AUTH allowed only because it was written) */
	ROUTE_TLS_MAY,      /* STARTTLS when offered, not verified; clear otherwise */
	ROUTE_TLS_STARTTLS, /* STARTTLS required, verified */
	ROUTE_TLS_IMPLICIT, /* TLS from the start (port 465), verified */
};

enum route_auth {
	ROUTE_AUTH_NONE,
	ROUTE_AUTH_ANY, /* best offered: CRAM-MD5 > PLAIN > LOGIN (XOAUTH2 with a token file) */
	ROUTE_AUTH_PLAIN,
	ROUTE_AUTH_LOGIN,
	ROUTE_AUTH_CRAM_MD5,
	ROUTE_AUTH_XOAUTH2,
};

/* One smart host of a route */
struct route_host {
	char *host;  /* name or IP literal (brackets removed) */
	int port;
	enum route_tls tls;
	bool verify;
	char *ca_file;     /* NULL: agent.tls_ca_file, then the system store */
	enum route_auth auth;
	char *credentials; /* NAME in agent.credentials_file, or NULL */
	char *oauth2_token_file;
	char *helo;        /* NULL: agent.helo_name / hostname */
	int weight;        /* >= 1 */
	int priority;      /* lower first */
	int max_connections, max_messages; /* 0: the agent's defaults */
	char *id;          /* "host:port" (+ "/tls" ...) : the pool and health key */
};

struct route {
	char *name;
	char **sender_domains; size_t nsender_domains; /* normalized; ".d" = d and below */
	char **rcpt_domains; size_t nrcpt_domains;
	char **logins; size_t nlogins; /* globs */
	bool mx; /* direct delivery to the recipient domain's MX hosts */
	char *verp; /* VERP bounce domain (normalized), or NULL: MAIL FROM is then
	             * bounce.verp_prefix+LOCAL=DOMAIN@verp, one recipient each */
	struct route_host *hosts; size_t nhosts;
	bool is_default; /* no match list */
	const char *file; int line; /* where it was written */
};

/* One credential of agent.credentials_file */
struct credential {
	char *name, *user, *secret;
};

/* routes_find - the route for a message: sender domain, recipient
 * domain and login (any may be NULL), first match wins, else the default
 * route; NULL when there is none (no routes and no smarthost) */
const struct route *routes_find(const struct weir_config *cfg, const char *sender_domain,
				const char *rcpt_domain, const char *login);
/* routes_use_login - some route matches by login (the route is then
 * chosen at end of DATA, from the login header) */
bool routes_use_login(const struct weir_config *cfg);
/* credential_find - NAME's entry of the credentials file, or NULL */
const struct credential *credential_find(const struct weir_config *cfg, const char *name);

struct config_errors;
/* credentials_load - read agent.credentials_file into
 * cfg->agent.credentials (errors as file:line; a file readable by group
 * or others is refused) and check that every route host's credentials
 * NAME is there. Called by settings_compile, after agent.routes. */
void credentials_load(struct weir_config *cfg, struct config_errors *errs);
/* credentials_free - wipe and free what credentials_load stored */
void credentials_free(struct weir_config *cfg);

/* Parsing (SETTING_CUSTOM agent.routes, settings.c) */
void routes_parse(struct weir_config *cfg, void *node, const char *file,
		  struct config_errors *errs);
char *routes_format(const struct weir_config *cfg);
void routes_free(struct weir_config *cfg);
/* routes_compile - once every setting is read (settings_compile): the
 * default route from agent.smarthost when agent.routes is empty, and the
 * checks that involve other settings */
void routes_compile(struct weir_config *cfg, struct config_errors *errs);

/* route_tls_name, route_auth_name - the words weir.conf uses */
const char *route_tls_name(enum route_tls t);
const char *route_auth_name(enum route_auth a);
/* routes_signature - bit i set when route i could take a recipient of
 * rcpt_domain whatever the login (for grouping recipients when the route
 * is only chosen at end of DATA) */
unsigned long long routes_signature(const struct weir_config *cfg, const char *sender_domain,
				    const char *rcpt_domain);
/* routes_depend_on_rcpt - may two recipients of one message go to
 * different destinations (rcpt_domains, logins or mx routes exist) */
bool routes_depend_on_rcpt(const struct weir_config *cfg);
/* routes_any_mx - some route is mx */
bool routes_any_mx(const struct weir_config *cfg);
/* routes_verp_in - some route of signature sig (routes_signature) is a
 * VERP route */
bool routes_verp_in(const struct weir_config *cfg, unsigned long long sig);

#endif
