/* routes - agent.routes of weir.conf: parsing, checking, lookup
 *
 *   routes = ( { name; sender_domains; rcpt_domains; logins; mx; verp;
 *                hosts = ( { host; port; tls; verify; ca_file; auth;
 *                            credentials; oauth2_token_file; helo;
 *                            weight; priority; max_connections;
 *                            max_messages; } ); } );
 *
 * A route matches when every match list it has matches (sender domain,
 * recipient domain, login glob); the first matching route wins; a route
 * without match lists is the default, and there is exactly one. When
 * agent.routes is empty, agent.smarthost is the default route (one host,
 * tls "may", no AUTH). Every problem is reported with the file:line of
 * the member at fault and parsing goes on, so that `weirctl check` lists
 * them all. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/endpoint.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/config_entry.h"
#include "policy/routes.h"

#define WHAT           "agent.routes"
#define ROUTE_NAME_MAX 64
#define WEIGHT_MAX     10000
#define PRIORITY_MAX   1000

static const char *const tls_names[] = {"none", "may", "starttls", "implicit", NULL};
static const char *const auth_names[] = {"none",     "any",     "plain", "login",
                                         "cram-md5", "xoauth2", NULL};

#define report(pc, node, ...) config_entry_report(pc, node, __VA_ARGS__)

/* route_tls_name, route_auth_name - the words of weir.conf */
const char *route_tls_name(enum route_tls t)
{
	return tls_names[t];
}

const char *route_auth_name(enum route_auth a)
{
	return auth_names[a];
}

/* member_int - the integer member name of g within [min, max]; def when
 * absent or wrong (reported) */
static int member_int(struct config_entry_ctx *pc, config_setting_t *g, const char *name, int def,
                      int min, int max)
{
	long long v;

	return config_entry_int(pc, g, name, min, max, &v) == 1 ? (int)v : def;
}

/* member_bool - the boolean member name of g; def when absent or wrong */
static bool member_bool(struct config_entry_ctx *pc, config_setting_t *g, const char *name, bool def,
                        bool *given_r)
{
	config_setting_t *m = config_setting_get_member(g, name);

	if (given_r != NULL)
		*given_r = m != NULL;
	if (m == NULL)
		return def;
	if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
		report(pc, m, "%s: expected true or false", name);
		return def;
	}
	return config_setting_get_bool(m) != 0;
}

/* member_choice - index of a string member among names; def when absent */
static int member_choice(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                         const char *const *names, int def, bool *given_r)
{
	const char *v = config_entry_string(pc, g, name);
	char *expect;

	*given_r = false;
	if (v == NULL)
		return def;
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(v, names[i]) == 0) {
			*given_r = true;
			return i;
		}
	expect = xstrdup("");
	for (int i = 0; names[i] != NULL; i++) {
		char *t = xasprintf("%s%s\"%s\"", expect, i ? ", " : "", names[i]);
		free(expect);
		expect = t;
	}
	report(pc, config_setting_get_member(g, name), "%s: \"%s\": expected one of %s", name, v,
	       expect);
	free(expect);
	return def;
}

/* conv_login - a login glob: not empty, no spaces or control characters */
static char *conv_login(const char *s, const char **err_r)
{
	if (s[0] == '\0') {
		*err_r = "empty login";
		return NULL;
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			*err_r = "a login has no spaces or control characters";
			return NULL;
		}
	return xstrdup(s);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* host_name - "name", "[IP]" or a bare IP; brackets removed. -1 when bad */
static int host_name(const char *s, char **host_r, const char **err_r)
{
	unsigned char buf[16];
	size_t n = strlen(s);
	char *d;

	if (n > 2 && s[0] == '[' && s[n - 1] == ']') {
		char *ip = xstrndup(s + 1, n - 2);
		if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1) {
			free(ip);
			*err_r = "not an IP address in brackets";
			return -1;
		}
		*host_r = ip;
		return 0;
	}
	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1) {
		*host_r = xstrdup(s);
		return 0;
	}
	if ((d = domain_normalize(s, err_r)) == NULL)
		return -1;
	*host_r = d;
	return 0;
}

/* host_id - the pool and health key: host:port, plus the TLS mode and
 * the credentials when they differ from a plain relay */
static char *host_id(const struct route_host *h)
{
	bool v6 = strchr(h->host, ':') != NULL;
	char *id = xasprintf("%s%s%s:%d", v6 ? "[" : "", h->host, v6 ? "]" : "", h->port), *t;

	if (h->tls != ROUTE_TLS_MAY) {
		t = xasprintf("%s/%s", id, tls_names[h->tls]);
		free(id);
		id = t;
	}
	if (h->credentials != NULL) {
		t = xasprintf("%s/%s", id, h->credentials);
		free(id);
		id = t;
	}
	/* a session verified against one CA, or not verified at all, must
	 * never serve a host that trusts another: part of the pool key */
	if (!h->verify && h->tls != ROUTE_TLS_MAY && h->tls != ROUTE_TLS_NONE) {
		t = xasprintf("%s/noverify", id);
		free(id);
		id = t;
	}
	if (h->ca_file != NULL) {
		t = xasprintf("%s/ca=%s", id, h->ca_file);
		free(id);
		id = t;
	}
	return id;
}

static void host_free(struct route_host *h)
{
	free(h->host);
	free(h->ca_file);
	free(h->credentials);
	free(h->oauth2_token_file);
	free(h->helo);
	free(h->id);
}

/* optional_string - a string member, NULL when absent or "" */
static char *optional_string(struct config_entry_ctx *pc, config_setting_t *g, const char *name)
{
	const char *v = config_entry_string(pc, g, name);

	return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

/* host_auth - auth and credentials of h, checked */
static void host_auth(struct config_entry_ctx *pc, config_setting_t *g, struct route_host *h,
                      bool tls_given)
{
	bool given;
	int auth = member_choice(pc, g, "auth", auth_names, -1, &given);

	if (auth < 0)
		auth = h->credentials != NULL || h->oauth2_token_file != NULL ? ROUTE_AUTH_ANY
		                                                              : ROUTE_AUTH_NONE;
	h->auth = (enum route_auth)auth;
	if (h->auth != ROUTE_AUTH_NONE && h->credentials == NULL)
		report(pc, g,
		       "host %s: auth \"%s\" needs credentials (a NAME of "
		       "agent.credentials_file)",
		       h->host, auth_names[auth]);
	if (h->auth == ROUTE_AUTH_NONE && h->credentials != NULL)
		report(pc, g, "host %s: credentials given but auth is \"none\"", h->host);
	if (h->auth == ROUTE_AUTH_XOAUTH2 && h->oauth2_token_file == NULL)
		report(pc, g, "host %s: auth \"xoauth2\" needs oauth2_token_file", h->host);
	if (h->auth != ROUTE_AUTH_NONE && h->tls == ROUTE_TLS_NONE && tls_given && !pc->bad)
		log_warning("%s: route %s: host %s: AUTH without TLS (tls = \"none\" as written): "
		            "the password crosses the network in clear",
		            pc->file, pc->entry, h->host);
}

/* parse_host - one member of hosts; 0 when it is usable */
static int parse_host(struct config_entry_ctx *pc, config_setting_t *g, struct route_host *h)
{
	static const char *const keys[] = {
	    "host",         "port",   "tls",         "verify",
	    "ca_file",      "auth",   "credentials", "oauth2_token_file",
	    "helo",         "weight", "priority",    "max_connections",
	    "max_messages", NULL};
	const char *name, *err;
	bool tls_given, verify_given, bad_before = pc->bad;
	int tls;

	memset(h, 0, sizeof(*h));
	if (!config_setting_is_group(g)) {
		report(pc, g, "hosts: each entry is a group { host = ...; }");
		return -1;
	}
	if (!config_group_keys_ok(g, keys, WHAT " host", pc->file, pc->errs))
		pc->bad = true;
	name = config_entry_string(pc, g, "host");
	if (name == NULL) {
		report(pc, g, "hosts: an entry without host");
		return -1;
	}
	if (host_name(name, &h->host, &err) < 0) {
		report(pc, config_setting_get_member(g, "host"), "host \"%s\": %s", name, err);
		return -1;
	}
	h->credentials = optional_string(pc, g, "credentials");
	h->oauth2_token_file = optional_string(pc, g, "oauth2_token_file");
	h->ca_file = optional_string(pc, g, "ca_file");
	h->helo = optional_string(pc, g, "helo");
	h->port = member_int(pc, g, "port", 0, 1, 65535);
	tls = member_choice(pc, g, "tls", tls_names, -1, &tls_given);
	if (tls < 0)
		tls = h->port == 465           ? ROUTE_TLS_IMPLICIT
		      : h->credentials != NULL ? ROUTE_TLS_STARTTLS
		                               : ROUTE_TLS_MAY;
	h->tls = (enum route_tls)tls;
	if (h->port == 0)
		h->port = h->tls == ROUTE_TLS_IMPLICIT ? 465 : 25;
	h->verify = member_bool(pc, g, "verify", true, &verify_given);
	if (verify_given && !h->verify && !pc->bad)
		log_warning("%s: route %s: host %s: certificates are not verified (verify = "
		            "false): for a lab only",
		            pc->file, pc->entry, h->host);
	host_auth(pc, g, h, tls_given);
	h->weight = member_int(pc, g, "weight", 1, 1, WEIGHT_MAX);
	h->priority = member_int(pc, g, "priority", 0, 0, PRIORITY_MAX);
	h->max_connections = member_int(pc, g, "max_connections", 0, 0, 10000);
	h->max_messages = member_int(pc, g, "max_messages", 0, 0, 1000000);
	h->id = host_id(h);
	return pc->bad && !bad_before ? -1 : 0;
}

/* valid_name - [A-Za-z0-9_.-]+ */
static bool valid_name(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n > 0 && s[n] == '\0' && n <= ROUTE_NAME_MAX;
}

/* parse_hosts - the hosts list of route r */
static void parse_hosts(struct config_entry_ctx *pc, config_setting_t *g, struct route *r)
{
	config_setting_t *hosts = config_setting_get_member(g, "hosts");
	int n;

	if (hosts == NULL) {
		if (!r->mx)
			report(pc, g, "needs hosts = ( { host = ...; } ) or mx = true");
		return;
	}
	if (r->mx) {
		report(pc, hosts,
		       "an mx route delivers to the recipient domain's MX hosts: it "
		       "takes no hosts");
		return;
	}
	if (!config_setting_is_list(hosts) && !config_setting_is_array(hosts)) {
		report(pc, hosts, "hosts: expected a list of { host = ...; }");
		return;
	}
	n = config_setting_length(hosts);
	if (n == 0)
		report(pc, hosts, "hosts: empty");
	r->hosts = xcalloc((size_t)n + 1, sizeof(*r->hosts));
	for (int i = 0; i < n; i++) {
		struct route_host *h = &r->hosts[r->nhosts];
		if (parse_host(pc, config_setting_get_elem(hosts, (unsigned)i), h) < 0) {
			host_free(h);
			continue;
		}
		for (size_t j = 0; j < r->nhosts; j++)
			if (strcmp(r->hosts[j].id, h->id) == 0)
				report(pc, config_setting_get_elem(hosts, (unsigned)i),
				       "host %s is listed twice", h->id);
		r->nhosts++;
	}
}

/* parse_verp - verp = "bounce.domain": the route sends with VERP */
static void parse_verp(struct config_entry_ctx *pc, config_setting_t *g, struct route *r)
{
	const char *v = config_entry_string(pc, g, "verp"), *err;

	if (v == NULL || v[0] == '\0')
		return;
	if ((r->verp = domain_normalize(v, &err)) == NULL)
		report(pc, config_setting_get_member(g, "verp"), "verp \"%s\": %s", v, err);
}

static void route_free(struct route *r)
{
	free(r->name);
	free(r->verp);
	strv_free(r->sender_domains, r->nsender_domains);
	strv_free(r->rcpt_domains, r->nrcpt_domains);
	strv_free(r->logins, r->nlogins);
	for (size_t i = 0; i < r->nhosts; i++)
		host_free(&r->hosts[i]);
	free(r->hosts);
	free((char *)r->file);
}

/* has_member - g has a member name that is not an empty list */
static bool has_member(config_setting_t *g, const char *name)
{
	config_setting_t *m = config_setting_get_member(g, name);

	return m != NULL && (config_setting_is_scalar(m) || config_setting_length(m) > 0);
}

/* What routes_parse saw of each entry, usable or not, for the checks
 * across entries (names, the default route) */
struct seen {
	char *name;
	int line;
	bool is_default;
};

/* parse_route - one entry of agent.routes, appended when usable */
static void parse_route(struct weir_config *cfg, config_setting_t *g, int i, const char *file,
                        struct config_errors *errs, struct seen *seen)
{
	static const char *const keys[] = {"name", "sender_domains", "rcpt_domains", "logins",
	                                   "mx",   "verp",           "hosts",        NULL};
	struct config_entry_ctx pc = {.what = WHAT, .file = file, .errs = errs};
	struct route r;
	const char *name;

	memset(&r, 0, sizeof(r));
	snprintf(pc.entry, sizeof(pc.entry), "entry %d", i + 1);
	if (!config_setting_is_group(g)) {
		report(&pc, g, "each route is a group { name = ...; hosts = (...); }");
		return;
	}
	if (!config_group_keys_ok(g, keys, WHAT, file, errs))
		pc.bad = true;
	name = config_entry_string(&pc, g, "name");
	if (name == NULL)
		report(&pc, g, "needs a name");
	else if (!valid_name(name))
		report(&pc, config_setting_get_member(g, "name"),
		       "name \"%s\": letters, digits, '_', '.' and '-' only (64 at most)", name);
	else
		snprintf(pc.entry, sizeof(pc.entry), "%s", name);
	for (int k = 0; name != NULL && k < i; k++)
		if (seen[k].name != NULL && strcmp(seen[k].name, name) == 0) {
			report(&pc, g, "a second route called %s (the first is at line %d)", name,
			       seen[k].line);
			break;
		}
	seen[i].name = xstrdup(pc.entry); /* the name, or "entry N" */
	seen[i].line = (int)config_setting_source_line(g);
	r.name = xstrdup(name ? name : pc.entry);
	r.sender_domains = config_entry_list(&pc, g, "sender_domains", domain_pattern_normalize, &r.nsender_domains);
	r.rcpt_domains = config_entry_list(&pc, g, "rcpt_domains", domain_pattern_normalize, &r.nrcpt_domains);
	r.logins = config_entry_list(&pc, g, "logins", conv_login, &r.nlogins);
	r.mx = member_bool(&pc, g, "mx", false, NULL);
	parse_verp(&pc, g, &r);
	parse_hosts(&pc, g, &r);
	r.is_default = r.nsender_domains == 0 && r.nrcpt_domains == 0 && r.nlogins == 0;
	/* a match list written wrong still makes it no default */
	seen[i].is_default = r.is_default && !has_member(g, "sender_domains") &&
	                     !has_member(g, "rcpt_domains") && !has_member(g, "logins");
	r.file = xstrdup(file);
	r.line = (int)config_setting_source_line(g);
	if (pc.bad) {
		route_free(&r);
		return;
	}
	cfg->agent.routes = xrealloc(cfg->agent.routes, (cfg->agent.nroutes + 1) * sizeof(r));
	cfg->agent.routes[cfg->agent.nroutes++] = r;
}

/* routes_parse - agent.routes (SETTING_CUSTOM parse) */
void routes_parse(struct weir_config *cfg, void *node, const char *file, struct config_errors *errs)
{
	config_setting_t *list = node;
	const struct seen *def = NULL;
	struct seen *seen;
	int n;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
		                  WHAT ": expected a list of { name = ...; hosts = (...); }");
		return;
	}
	n = config_setting_length(list);
	seen = xcalloc((size_t)n + 1, sizeof(*seen));
	for (int i = 0; i < n; i++)
		parse_route(cfg, config_setting_get_elem(list, (unsigned)i), i, file, errs, seen);
	for (int i = 0; i < n; i++) {
		if (!seen[i].is_default)
			continue;
		if (def != NULL)
			config_errors_add(
			    errs, file, seen[i].line,
			    WHAT ": %s: a second default route (one without "
			         "sender_domains, rcpt_domains or logins); the first is %s "
			         "at line %d",
			    seen[i].name ? seen[i].name : "?", def->name ? def->name : "?",
			    def->line);
		else
			def = &seen[i];
	}
	if (n > 0 && def == NULL)
		config_errors_add(errs, file, (int)config_setting_source_line(list),
		                  WHAT ": no default route: one route must have no sender_domains, "
		                       "rcpt_domains or logins");
	for (int i = 0; i < n; i++)
		free(seen[i].name);
	free(seen);
}

/* routes_format - for weirctl settings */
char *routes_format(const struct weir_config *cfg)
{
	char *out = xstrdup("("), *t;

	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		t = xasprintf("%s%s%s%s:", out, i ? ", " : "", r->name, r->is_default ? "*" : "");
		free(out);
		out = t;
		if (r->mx) {
			t = xasprintf("%s mx", out);
			free(out);
			out = t;
		}
		if (r->verp != NULL) {
			t = xasprintf("%s verp=%s", out, r->verp);
			free(out);
			out = t;
		}
		for (size_t j = 0; j < r->nhosts; j++) {
			t = xasprintf("%s %s", out, r->hosts[j].id);
			free(out);
			out = t;
		}
	}
	t = xasprintf("%s)", out);
	free(out);
	return t;
}

/* routes_free - everything routes_parse and routes_compile stored */
void routes_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		route_free(&cfg->agent.routes[i]);
	free(cfg->agent.routes);
	cfg->agent.routes = NULL;
	cfg->agent.nroutes = 0;
}

/* smarthost_route - agent.smarthost as the one default route */
static void smarthost_route(struct weir_config *cfg)
{
	struct endpoint ep;
	struct route *r;
	const char *err;
	bool literal;

	if (endpoint_parse_hostport(cfg->agent.smarthost, 25, &ep, &literal, &err) < 0)
		return; /* reported by the setting's own check */
	r = cfg->agent.routes = xcalloc(1, sizeof(*r));
	cfg->agent.nroutes = 1;
	r->name = xstrdup("smarthost");
	r->is_default = true;
	r->file = xstrdup(cfg->file);
	r->hosts = xcalloc(1, sizeof(*r->hosts));
	r->nhosts = 1;
	r->hosts[0].host = xstrdup(ep.host);
	r->hosts[0].port = (int)ep.port;
	r->hosts[0].tls = ROUTE_TLS_MAY;
	r->hosts[0].verify = true;
	r->hosts[0].auth = ROUTE_AUTH_NONE;
	r->hosts[0].weight = 1;
	r->hosts[0].id = host_id(&r->hosts[0]);
}

/* routes_compile - after every setting is read: the smart host as the
 * default route, and checks that involve other settings */
void routes_compile(struct weir_config *cfg, struct config_errors *errs)
{
	if (cfg->agent.nroutes == 0 && cfg->agent.smarthost != NULL &&
	    cfg->agent.smarthost[0] != '\0')
		smarthost_route(cfg);
	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		if (r->nlogins > 0 && cfg->agent.login_header[0] == '\0')
			config_errors_add(errs, r->file, r->line,
			                  WHAT ": %s: routes by login need agent.login_header (and "
			                       "milter.login_header on weir-milter)",
			                  r->name);
	}
}

/* matches - every match list r has matches */
static bool matches(const struct route *r, const char *sender_domain, const char *rcpt_domain,
                    const char *login, bool ignore_login)
{
	if (r->nsender_domains > 0 &&
	    !domain_in_list(sender_domain, r->sender_domains, r->nsender_domains))
		return false;
	if (r->nrcpt_domains > 0 && !domain_in_list(rcpt_domain, r->rcpt_domains, r->nrcpt_domains))
		return false;
	if (r->nlogins > 0 && !ignore_login) {
		size_t i;
		if (login == NULL || login[0] == '\0')
			return false;
		for (i = 0; i < r->nlogins; i++)
			if (address_glob(r->logins[i], login))
				break;
		if (i == r->nlogins)
			return false;
	}
	return true;
}

/* routes_find - first match, else the default route */
const struct route *routes_find(const struct weir_config *cfg, const char *sender_domain,
                                const char *rcpt_domain, const char *login)
{
	const struct route *def = NULL;

	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		if (r->is_default) {
			if (def == NULL)
				def = r;
			continue;
		}
		if (matches(r, sender_domain, rcpt_domain, login, false))
			return r;
	}
	return def;
}

/* routes_use_login - does any route match by login */
bool routes_use_login(const struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		if (cfg->agent.routes[i].nlogins > 0)
			return true;
	return false;
}

/* routes_signature - which routes could take a recipient whatever the
 * login: two recipients with the same signature (and, when some route is
 * mx, the same domain) reach the same destination for any login. Bit i
 * is route i (routes past 63 share the last bit). */
unsigned long long routes_signature(const struct weir_config *cfg, const char *sender_domain,
                                    const char *rcpt_domain)
{
	unsigned long long sig = 0;

	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		if (matches(&cfg->agent.routes[i], sender_domain, rcpt_domain, NULL, true))
			sig |= 1ULL << (i < 63 ? i : 63);
	return sig;
}

/* routes_depend_on_rcpt - can the route (or the destination) of a
 * message depend on its recipient: some route matches recipient domains
 * or logins, or is mx, or sends with VERP (a MAIL FROM per recipient) */
bool routes_depend_on_rcpt(const struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++) {
		const struct route *r = &cfg->agent.routes[i];
		if (r->nrcpt_domains > 0 || r->nlogins > 0 || r->mx || r->verp != NULL)
			return true;
	}
	return false;
}

/* routes_any_mx - does some route deliver to MX hosts */
bool routes_any_mx(const struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		if (cfg->agent.routes[i].mx)
			return true;
	return false;
}

/* routes_verp_in - is a route of signature sig a VERP route */
bool routes_verp_in(const struct weir_config *cfg, unsigned long long sig)
{
	for (size_t i = 0; i < cfg->agent.nroutes; i++)
		if (cfg->agent.routes[i].verp != NULL && (sig & (1ULL << (i < 63 ? i : 63))) != 0)
			return true;
	return false;
}
