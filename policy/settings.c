/* settings - every setting of weir.conf, declared once
 *
 * The loader (config.c), `weirctl check`/`weirctl defaults` and the test
 * that every setting is documented in weir.conf(5) all read this table. */
#include "autoconf.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include <libconfig.h>
#include <stdlib.h>
#include <strings.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cidr.h"
#include "lib/daemon.h"
#include "lib/endpoint.h"
#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/secret_file.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/bounce.h"
#include "policy/config.h"
#include "policy/dkim_keys.h"
#include "policy/rate.h"
#include "policy/routes.h"
#include "policy/senders.h"
#include "policy/throttle.h"
#include "policy/webhook.h"

#define OFF(field) offsetof(struct weir_config, field)

/* agent.dashboard_dir: the installed assets (Makefile.am: $(pkgdatadir)) */
#ifndef PKGDATADIR
#define PKGDATADIR "/usr/share/weir"
#endif
#define DASHBOARD_DIR_DEFAULT PKGDATADIR "/dashboard"
#define HTTP_AUTH_MAX 4096 /* octets of agent.http_auth_file */
#define NOLIMIT 0, 0

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
/* in the order of enum policy_action */
static const char *const actions[] = {"accept", "reject", "tempfail", "hold", "log", NULL};
static const char *const header_from_modes[] = {"any", "local", NULL};
static const char *const canonicalizations[] = {"relaxed/relaxed", "simple/simple",
						"relaxed/simple", "simple/relaxed", NULL};
static const char *const alignment_modes[] = {"log", "warn", "tempfail", NULL};
/* SPF actions, indexes as in enum policy_action ("tag" = ACTION_ACCEPT) */
static const char *const spf_actions[] = {"tag", "reject", "tempfail", "hold", NULL};
static const char *const spf_helo_modes[] = {"null_sender", "all", NULL};
static const char *const preflight_modes[] = {"off", "log", "tempfail", NULL};
static const char *const auth_failure_modes[] = {"tempfail", "reject", NULL};
/* in the order of enum rate_backend and enum rate_fail_mode */
static const char *const rate_backends[] = {"memory", "redis", NULL};
static const char *const rate_fail_modes[] = {"open", "closed", NULL};

/* check_header_name - a header field name (RFC 5322 ftext) */
static int check_header_name(const char *v, const char **err_r)
{
	if (v[0] == '\0')
		goto bad;
	for (const char *p = v; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == ':')
			goto bad;
	return 0;
bad:
	*err_r = "not a header field name";
	return -1;
}

static int check_header_name_or_empty(const char *v, const char **err_r)
{
	return v[0] == '\0' ? 0 : check_header_name(v, err_r);
}

static int check_authserv_id(const char *v, const char **err_r)
{
	if (v[0] == '\0' || strpbrk(v, " \t;()\"\\") != NULL) {
		*err_r = "must be a name without spaces, ';', quotes or parentheses";
		return -1;
	}
	return 0;
}

static int check_cidr(const char *v, const char **err_r)
{
	struct cidr c;

	return cidr_parse(v, &c, err_r);
}

/* check_domain - a domain, or ".domain" for it and its subdomains */
static int check_domain(const char *v, const char **err_r)
{
	char *d = domain_normalize(v + (v[0] == '.'), err_r);

	free(d);
	return d ? 0 : -1;
}

/* check_verp_prefix - a dot-atom local part without '+' and '=' (the
 * VERP separators) */
static int check_verp_prefix(const char *v, const char **err_r)
{
	if (v[0] == '\0' || strlen(v) > 32 || v[0] == '.' || v[strlen(v) - 1] == '.')
		goto bad;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("-_.", *p) == NULL)
			goto bad;
	return 0;
bad:
	*err_r = "letters, digits, '-', '_' and '.' only (32 at most)";
	return -1;
}

/* check_ip - an IP address (v4 or v6), no prefix */
static int check_ip(const char *v, const char **err_r)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
		return 0;
	*err_r = "not an IPv4 or IPv6 address";
	return -1;
}

static int check_identity_class(const char *v, const char **err_r)
{
	if (strcmp(v, "authenticated") == 0 || strcmp(v, "trusted") == 0 ||
	    strcmp(v, "outside") == 0)
		return 0;
	*err_r = "expected \"authenticated\", \"trusted\" or \"outside\"";
	return -1;
}

static const char *group_string(config_setting_t *g, const char *name)
{
	const char *v = NULL;

	return config_setting_lookup_string(g, name, &v) == CONFIG_TRUE ? v : NULL;
}


/* parse_sender_map - senders.map = ( { login = "..."; addresses = (...); }, ... ) */
static void parse_sender_map(struct weir_config *cfg, void *node, const char *file,
			     struct config_errors *errs)
{
	static const char *const keys[] = {"login", "addresses", NULL};
	config_setting_t *list = node;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
				  "senders.map: expected a list of { login = ...; addresses = (...); }");
		return;
	}
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		int line = (int)config_setting_source_line(g);
		config_setting_t *addrs;
		const char *login;

		if (!config_setting_is_group(g)) {
			config_errors_add(errs, file, line, "senders.map: entry %d is not a group { }",
					  i + 1);
			continue;
		}
		if (!config_group_keys_ok(g, keys, "senders.map", file, errs))
			continue;
		login = group_string(g, "login");
		addrs = config_setting_get_member(g, "addresses");
		if (login == NULL || login[0] == '\0' || addrs == NULL) {
			config_errors_add(errs, file, line,
					  "senders.map: each entry needs login and addresses");
			continue;
		}
		for (int j = 0; j < (config_setting_is_scalar(addrs) ? 1 : config_setting_length(addrs)); j++) {
			config_setting_t *a = config_setting_is_scalar(addrs) ? addrs
						: config_setting_get_elem(addrs, (unsigned)j);
			const char *v = config_setting_get_string(a);
			struct sender_source *src;

			if (v == NULL) {
				config_errors_add(errs, file, (int)config_setting_source_line(a),
						  "senders.map: addresses of %s: expected strings", login);
				continue;
			}
			cfg->senders.map = xrealloc(cfg->senders.map,
						    (cfg->senders.nmap + 1) * sizeof(*cfg->senders.map));
			src = &cfg->senders.map[cfg->senders.nmap++];
			src->login = xstrdup(login);
			src->address = xstrdup(v);
			src->file = xstrdup(file);
			src->line = (int)config_setting_source_line(a);
		}
	}
}

static char *format_sender_map(const struct weir_config *cfg)
{
	return xasprintf("(%zu entries)", cfg->senders.nmap);
}

static void free_sender_map(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->senders.nmap; i++) {
		free(cfg->senders.map[i].login);
		free(cfg->senders.map[i].address);
		free(cfg->senders.map[i].file);
	}
	free(cfg->senders.map);
}

/* fingerprint_normalize - hex digits only, lowercased; NULL if not hex */
static char *fingerprint_normalize(const char *v)
{
	char *out = xmalloc(strlen(v) + 1), *o = out;

	for (; *v; v++) {
		if (*v == ':' || *v == ' ')
			continue;
		if (!isxdigit((unsigned char)*v)) {
			free(out);
			return NULL;
		}
		*o++ = (char)tolower((unsigned char)*v);
	}
	*o = '\0';
	if (o == out) {
		free(out);
		return NULL;
	}
	return out;
}

/* parse_certs - senders.certificates = ( { subject|fingerprint = ...; login = ...; } ) */
static void parse_certs(struct weir_config *cfg, void *node, const char *file,
			struct config_errors *errs)
{
	static const char *const keys[] = {"subject", "fingerprint", "login", NULL};
	config_setting_t *list = node;

	if (!config_setting_is_list(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
				  "senders.certificates: expected a list of { subject or fingerprint; login; }");
		return;
	}
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		int line = (int)config_setting_source_line(g);
		const char *subject, *fp, *login;
		struct cert_identity *c;
		char *fpn = NULL;

		if (!config_setting_is_group(g) ||
		    !config_group_keys_ok(g, keys, "senders.certificates", file, errs)) {
			if (!config_setting_is_group(g))
				config_errors_add(errs, file, line, "senders.certificates: entry %d is not a group { }", i + 1);
			continue;
		}
		subject = group_string(g, "subject");
		fp = group_string(g, "fingerprint");
		login = group_string(g, "login");
		if (login == NULL || (subject == NULL) == (fp == NULL)) {
			config_errors_add(errs, file, line,
					  "senders.certificates: each entry needs login and one of subject or fingerprint");
			continue;
		}
		if (fp != NULL && (fpn = fingerprint_normalize(fp)) == NULL) {
			config_errors_add(errs, file, line,
					  "senders.certificates: fingerprint must be hex digits (colons allowed)");
			continue;
		}
		cfg->senders.certs = xrealloc(cfg->senders.certs,
					      (cfg->senders.ncerts + 1) * sizeof(*cfg->senders.certs));
		c = &cfg->senders.certs[cfg->senders.ncerts++];
		c->subject = subject ? xstrdup(subject) : NULL;
		c->fingerprint = fpn;
		c->login = xstrdup(login);
	}
}

static char *format_certs(const struct weir_config *cfg)
{
	return xasprintf("(%zu entries)", cfg->senders.ncerts);
}

static void free_certs(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->senders.ncerts; i++) {
		free(cfg->senders.certs[i].subject);
		free(cfg->senders.certs[i].fingerprint);
		free(cfg->senders.certs[i].login);
	}
	free(cfg->senders.certs);
}

static int check_milter_socket(const char *v, const char **err_r)
{
	struct endpoint ep;

	return endpoint_parse_milter(v, &ep, err_r);
}

/* check_http_listen - "" (off), IPV4:PORT or [IPV6]:PORT (lib/httpd.c) */
static int check_http_listen(const char *v, const char **err_r)
{
	return v[0] == '\0' ? 0 : httpd_listen_check(v, err_r);
}

static int check_hostport(const char *v, const char **err_r)
{
	struct endpoint ep;
	bool literal;

	if (v[0] == '\0')
		return 0; /* unset; required_by reports it where needed */
	return endpoint_parse_hostport(v, 25, &ep, &literal, err_r);
}

/* check_redis - HOST:PORT, [IPv6]:PORT or unix:/path */
static int check_redis(const char *v, const char **err_r)
{
	struct endpoint ep;
	bool literal;

	if (strncmp(v, "unix:", 5) == 0) {
		if (v[5] != '/' || strlen(v + 5) >= sizeof(ep.path)) {
			*err_r = "unix: needs an absolute path (unix:/run/redis/redis.sock)";
			return -1;
		}
		return 0;
	}
	return endpoint_parse_hostport(v, 6379, &ep, &literal, err_r);
}

/* check_redis_prefix - printable, no spaces (keys are typed in redis-cli) */
static int check_redis_prefix(const char *v, const char **err_r)
{
	for (const char *p = v; *p; p++)
		if (*p <= ' ' || *p > '~') {
			*err_r = "printable characters without spaces only";
			return -1;
		}
	return 0;
}

static int check_facility(const char *v, const char **err_r)
{
	if (log_facility_valid(v))
		return 0;
	*err_r = "unknown syslog facility (mail, daemon, user, local0 ... local7)";
	return -1;
}

/* check_resolver - "system" or a list of IP[@PORT] separated by spaces */
static int check_resolver(const char *v, const char **err_r)
{
	const char *p = v;

	if (strcmp(v, "system") == 0)
		return 0;
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*err_r = "expected \"system\" or addresses like \"127.0.0.1@5353 ::1\"";
		return -1;
	}
	for (; *p; p++) {
		char c = *p;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
		      c == '.' || c == ':' || c == '@' || c == ' ')) {
			*err_r = "expected \"system\" or addresses like \"127.0.0.1@5353 ::1\"";
			return -1;
		}
	}
	return 0;
}

static int check_user(const char *v, const char **err_r)
{
	if (v[0] == '\0' || strlen(v) > 32 || strchr(v, ':') || strchr(v, '/')) {
		*err_r = "not a valid user name";
		return -1;
	}
	return 0;
}

const struct setting weir_settings[] = {
	/* top level */
	{"user", SETTING_STRING, OFF(user), "weir", NOLIMIT, NULL, check_user, 0,
	 "Account the daemons switch to after opening their sockets when started as root.", NULL, NULL, NULL},
	{"hostname", SETTING_STRING, OFF(hostname), NULL, NOLIMIT, NULL, NULL, 0,
	 "Host name used in greetings and logs; default: the system host name.", NULL, NULL, NULL},
	{"resolver", SETTING_STRING, OFF(resolver), "system", NOLIMIT, NULL, check_resolver, 0,
	 "DNS servers weir asks itself (libunbound): \"system\" for /etc/resolv.conf, or "
	 "addresses with optional @PORT, e.g. \"127.0.0.1@5353\".", NULL, NULL, NULL},
	{"resolver_timeout", SETTING_DURATION, OFF(resolver_timeout), "10s", 1, 300, NULL, NULL, 0,
	 "Longest time one DNS lookup may take.", NULL, NULL, NULL},
	{"log_facility", SETTING_STRING, OFF(log_facility), "mail", NOLIMIT, NULL, check_facility, 0,
	 "Syslog facility (daemons in the foreground log to stderr instead).", NULL, NULL, NULL},
	{"log_level", SETTING_ENUM, OFF(log_level), "info", NOLIMIT, log_levels, NULL, 0,
	 "Least severe level logged: error, warning, info or debug.", NULL, NULL, NULL},

	/* relay policy */
	{"trusted_networks", SETTING_STRLIST, OFF(trusted_networks), "(\"127.0.0.0/8\", \"::1/128\")",
	 NOLIMIT, NULL, check_cidr, 0,
	 "Networks (CIDR) whose clients may relay without SMTP AUTH.", NULL, NULL, NULL},
	{"local_domains", SETTING_STRLIST, OFF(local_domains), "()", NOLIMIT, NULL, check_domain, 0,
	 "Domains this relay receives mail for; \".example.com\" includes subdomains.", NULL, NULL, NULL},
	{"senders.map", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Login -> allowed sender addresses: ( { login = \"alice\"; addresses = (...); } ).",
	 parse_sender_map, format_sender_map, free_sender_map},
	{"senders.table", SETTING_STRING, OFF(senders.table), "", NOLIMIT, NULL, NULL, 0,
	 "Table file of login -> addresses, one login per line.", NULL, NULL, NULL},
	{"senders.sqlite", SETTING_STRING, OFF(senders.sqlite), "", NOLIMIT, NULL, NULL, 0,
	 "SQLite database with a table senders(login, address).", NULL, NULL, NULL},
	{"senders.plus_separator", SETTING_STRING, OFF(senders.plus_separator), "+", NOLIMIT, NULL,
	 NULL, 0, "alice+tag@ counts as alice@ (\"\" turns this off).", NULL, NULL, NULL},
	{"senders.certificates", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "TLS client certificates that identify a login, by subject or fingerprint.",
	 parse_certs, format_certs, free_certs},
	{"policy.dry_run", SETTING_BOOL, OFF(policy.dry_run), "false", NOLIMIT, NULL, NULL, 0,
	 "Log what each rule would do; refuse and hold nothing.", NULL, NULL, NULL},
	{"policy.relay", SETTING_ENUM, OFF(policy.relay), "reject", NOLIMIT, actions, NULL, 0,
	 "Action when an outside client sends to a domain that is not local.", NULL, NULL, NULL},
	{"policy.envelope_sender", SETTING_ENUM, OFF(policy.envelope_sender), "reject", NOLIMIT,
	 actions, NULL, 0, "Action when a login uses a MAIL FROM it may not use.", NULL, NULL, NULL},
	{"policy.null_sender", SETTING_ENUM, OFF(policy.null_sender), "reject", NOLIMIT, actions,
	 NULL, 0, "Action when the null sender <> is used where it is not allowed.", NULL, NULL, NULL},
	{"policy.header_from", SETTING_ENUM, OFF(policy.header_from), "reject", NOLIMIT, actions,
	 NULL, 0, "Action when the From (or Sender) header is missing, ambiguous or not allowed.", NULL, NULL, NULL},
	{"policy.spoofing", SETTING_ENUM, OFF(policy.spoofing), "reject", NOLIMIT, actions, NULL, 0,
	 "Action when an outside client uses a local domain as sender.", NULL, NULL, NULL},
	{"policy.null_sender_allowed", SETTING_STRLIST, OFF(policy.null_sender_allowed),
	 "(\"trusted\", \"outside\")", NOLIMIT, NULL, check_identity_class, 0,
	 "Who may use MAIL FROM:<>: authenticated, trusted, outside.", NULL, NULL, NULL},
	{"policy.trusted_header_from", SETTING_ENUM, OFF(policy.trusted_header_from), "any", NOLIMIT,
	 header_from_modes, NULL, 0,
	 "For trusted networks: any header From, or only local domains.", NULL, NULL, NULL},

	/* DKIM */
	{"dkim.authserv_id", SETTING_STRING, OFF(dkim.authserv_id), NULL, NOLIMIT, NULL,
	 check_authserv_id, 0,
	 "authserv-id of weir's Authentication-Results header; default: hostname.", NULL, NULL,
	 NULL},
	{"dkim.sign", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Signing table: ( { domain; subdomains; keys = ( { selector; algorithm; key; } ); } ).",
	 dkim_sign_parse, dkim_sign_format, dkim_sign_free},
	{"dkim.fallback_domain", SETTING_STRING, OFF(dkim.fallback_domain), "", NOLIMIT, NULL, NULL,
	 0, "Domain in dkim.sign whose keys sign mail whose From domain has none.", NULL, NULL,
	 NULL},
	{"dkim.canonicalization", SETTING_ENUM, OFF(dkim.canonicalization), "relaxed/relaxed",
	 NOLIMIT, canonicalizations, NULL, 0, "Header/body canonicalization of signatures.", NULL,
	 NULL, NULL},
	{"dkim.headers", SETTING_STRLIST, OFF(dkim.headers),
	 "(\"From\", \"Subject\", \"To\", \"Cc\", \"Date\", \"Message-ID\", \"Reply-To\", "
	 "\"In-Reply-To\", \"References\", \"List-Unsubscribe\", \"List-Unsubscribe-Post\", "
	 "\"MIME-Version\", \"Content-Type\", \"Content-Transfer-Encoding\", \"Sender\")",
	 NOLIMIT, NULL, check_header_name, 0, "Headers signed when present (From always).", NULL,
	 NULL, NULL},
	{"dkim.oversign", SETTING_STRLIST, OFF(dkim.oversign),
	 "(\"From\", \"Subject\", \"To\", \"Cc\", \"Reply-To\", \"List-Unsubscribe\", "
	 "\"List-Unsubscribe-Post\")",
	 NOLIMIT, NULL, check_header_name, 0,
	 "Headers signed once more than present, so that none can be added.", NULL, NULL, NULL},
	{"dkim.expire", SETTING_DURATION, OFF(dkim.expire), "0", 0, 31536000, NULL, NULL, 0,
	 "x= this long after t= (0: no x=).", NULL, NULL, NULL},
	{"dkim.alignment", SETTING_ENUM, OFF(dkim.alignment), "log", NOLIMIT, alignment_modes, NULL,
	 0, "Outgoing mail no signature of which aligns with From: log, warn or tempfail.", NULL,
	 NULL, NULL},
	{"dkim.verify", SETTING_BOOL, OFF(dkim.verify), "true", NOLIMIT, NULL, NULL, 0,
	 "Verify DKIM on mail from outside and add Authentication-Results.", NULL, NULL, NULL},
	{"dkim.max_signatures", SETTING_INT, OFF(dkim.max_signatures), "5", 1, 50, NULL, NULL, 0,
	 "Most signatures verified per message.", NULL, NULL, NULL},

	/* SPF */
	{"spf.verify", SETTING_BOOL, OFF(spf.verify), "true", NOLIMIT, NULL, NULL, 0,
	 "Check SPF of mail from outside clients (MAIL FROM, and HELO for the null sender).",
	 NULL, NULL, NULL},
	{"spf.fail", SETTING_ENUM, OFF(spf.fail), "reject", NOLIMIT, spf_actions, NULL, 0,
	 "Action for SPF fail: tag, reject (550 5.7.23), tempfail or hold.", NULL, NULL, NULL},
	{"spf.softfail", SETTING_ENUM, OFF(spf.softfail), "tag", NOLIMIT, spf_actions, NULL, 0,
	 "Action for SPF softfail.", NULL, NULL, NULL},
	{"spf.neutral", SETTING_ENUM, OFF(spf.neutral), "tag", NOLIMIT, spf_actions, NULL, 0,
	 "Action for SPF neutral.", NULL, NULL, NULL},
	{"spf.none", SETTING_ENUM, OFF(spf.none), "tag", NOLIMIT, spf_actions, NULL, 0,
	 "Action when the domain publishes no SPF record.", NULL, NULL, NULL},
	{"spf.permerror", SETTING_ENUM, OFF(spf.permerror), "tag", NOLIMIT, spf_actions, NULL, 0,
	 "Action for SPF permerror (broken record; reject answers 550 5.7.24).", NULL, NULL, NULL},
	{"spf.temperror", SETTING_ENUM, OFF(spf.temperror), "tempfail", NOLIMIT, spf_actions, NULL,
	 0, "Action for SPF temperror (DNS trouble; tempfail answers 451 4.4.3).", NULL, NULL,
	 NULL},
	{"spf.helo", SETTING_ENUM, OFF(spf.helo), "null_sender", NOLIMIT, spf_helo_modes, NULL, 0,
	 "When the HELO name is checked: null_sender (MAIL FROM:<> only) or all.", NULL, NULL,
	 NULL},
	{"spf.allow_networks", SETTING_STRLIST, OFF(spf.allow_networks), "()", NOLIMIT, NULL,
	 check_cidr, 0, "Clients (addresses, CIDR networks) whose mail skips SPF: forwarders.",
	 NULL, NULL, NULL},
	{"spf.allow_helo", SETTING_STRLIST, OFF(spf.allow_helo), "()", NOLIMIT, NULL, check_domain,
	 0, "HELO names whose mail skips SPF; \".example.com\" includes subdomains.", NULL, NULL,
	 NULL},
	{"spf.allow_hosts", SETTING_STRLIST, OFF(spf.allow_hosts), "()", NOLIMIT, NULL,
	 check_domain, 0,
	 "Verified client host names (as the MTA reports them) whose mail skips SPF.", NULL, NULL,
	 NULL},
	{"spf.timeout", SETTING_DURATION, OFF(spf.timeout), "20s", 1, 300, NULL, NULL, 0,
	 "Longest time one SPF check (all its DNS lookups) may take; then temperror.", NULL,
	 NULL, NULL},
	{"spf.received_spf", SETTING_BOOL, OFF(spf.received_spf), "true", NOLIMIT, NULL, NULL, 0,
	 "Add a Received-SPF header to checked mail.", NULL, NULL, NULL},
	{"spf.preflight", SETTING_ENUM, OFF(spf.preflight), "log", NOLIMIT, preflight_modes, NULL,
	 0,
	 "Outgoing mail whose sender domain's SPF fails for the egress addresses: off, log or "
	 "tempfail.",
	 NULL, NULL, NULL},
	{"spf.egress", SETTING_STRLIST, OFF(spf.egress), "()", NOLIMIT, NULL, check_ip, 0,
	 "Addresses outgoing mail leaves from; empty: those of agent.smarthost's host.", NULL,
	 NULL, NULL},
	{"spf.preflight_db", SETTING_STRING, OFF(spf.preflight_db),
	 "/var/lib/weir/spf-preflight.db", NOLIMIT, NULL, NULL, 0,
	 "SQLite file counting preflight findings (weirctl spf report); \"\" for none.", NULL,
	 NULL, NULL},

	/* rate limits and quotas */
	{"rate.backend", SETTING_ENUM, OFF(rate.backend), "memory", NOLIMIT, rate_backends, NULL, 0,
	 "Where counters live: memory (one gateway, persisted to rate.state_db) or redis (a "
	 "fleet).", NULL, NULL, NULL},
	{"rate.state_db", SETTING_STRING, OFF(rate.state_db), "/var/lib/weir/rate.db", NOLIMIT,
	 NULL, NULL, 0,
	 "memory backend: SQLite file the counters are written to; \"\" for none.", NULL, NULL,
	 NULL},
	{"rate.flush_interval", SETTING_DURATION, OFF(rate.flush_interval), "2s", 1, 300, NULL,
	 NULL, 0, "memory backend: how often changed counters are written to rate.state_db.",
	 NULL, NULL, NULL},
	{"rate.redis", SETTING_STRING, OFF(rate.redis), "127.0.0.1:6379", NOLIMIT, NULL,
	 check_redis, 0, "redis backend: HOST:PORT, [IPv6]:PORT or unix:/path.", NULL, NULL, NULL},
	{"rate.redis_password_file", SETTING_STRING, OFF(rate.redis_password_file), "", NOLIMIT,
	 NULL, NULL, 0, "redis backend: file holding the password (mode 0600 or 0640); \"\": none.",
	 NULL, NULL, NULL},
	{"rate.redis_prefix", SETTING_STRING, OFF(rate.redis_prefix), "weir:rate:", NOLIMIT, NULL,
	 check_redis_prefix, 0, "redis backend: prefix of every key weir writes.", NULL, NULL,
	 NULL},
	{"rate.redis_timeout_ms", SETTING_INT, OFF(rate.redis_timeout_ms), "500", 10, 60000, NULL,
	 NULL, 0, "redis backend: connect and command timeout in milliseconds.", NULL, NULL, NULL},
	{"rate.fail_mode", SETTING_ENUM, OFF(rate.fail_mode), "open", NOLIMIT, rate_fail_modes,
	 NULL, 0,
	 "Redis unreachable: open (allow, log, count) or closed (451 4.3.0).", NULL, NULL, NULL},
	{"rate.limits", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "The limits: ( { name; key; count; rate; burst; quota; action; identities; "
	 "overrides; } ).",
	 rate_limits_parse, rate_limits_format, rate_limits_free},

	/* the suppression list (policy/suppress*.c) */
	{"suppression.db", SETTING_STRING, OFF(suppression.db), "/var/lib/weir/suppression.db",
	 NOLIMIT, NULL, NULL, 0, "SQLite file of the suppression list.", NULL, NULL, NULL},
	{"suppression.soft_threshold", SETTING_INT, OFF(suppression.soft_threshold), "3", 1, 1000,
	 NULL, NULL, 0, "Soft bounces within suppression.soft_window that suppress a recipient.",
	 NULL, NULL, NULL},
	{"suppression.soft_window", SETTING_DURATION, OFF(suppression.soft_window), "7d", 1,
	 31622400, NULL, NULL, 0, "The window soft bounces are counted over.", NULL, NULL, NULL},
	{"suppression.hard_expiry", SETTING_DURATION, OFF(suppression.hard_expiry), "365d", 0,
	 315360000, NULL, NULL, 0, "How long a hard bounce suppresses; 0: for ever.", NULL, NULL,
	 NULL},
	{"suppression.soft_expiry", SETTING_DURATION, OFF(suppression.soft_expiry), "30d", 0,
	 315360000, NULL, NULL, 0, "How long repeated soft bounces suppress; 0: for ever.", NULL,
	 NULL, NULL},
	{"suppression.complaint_expiry", SETTING_DURATION, OFF(suppression.complaint_expiry), "0",
	 0, 315360000, NULL, NULL, 0,
	 "How long a complaint suppresses (for the sender domain); 0: for ever.", NULL, NULL,
	 NULL},
	{"suppression.milter", SETTING_BOOL, OFF(suppression.milter), "true", NOLIMIT, NULL, NULL,
	 0, "weir-milter refuses suppressed recipients of outgoing mail at RCPT.", NULL, NULL,
	 NULL},
	{"suppression.agent", SETTING_BOOL, OFF(suppression.agent), "true", NOLIMIT, NULL, NULL, 0,
	 "weir-agent refuses suppressed recipients before relaying.", NULL, NULL, NULL},

	/* bounce classification (policy/bounce*.c) */
	{"bounce.rules", SETTING_STRING, OFF(bounce.rules), BOUNCE_RULES_DEFAULT, NOLIMIT, NULL,
	 bounce_rules_check, 0,
	 "The bounce classification rules file (reason, hard/soft by status, code and text).",
	 NULL, NULL, NULL},
	{"bounce.domains", SETTING_STRLIST, OFF(bounce.domains), "()", NOLIMIT, NULL, check_domain,
	 0, "Recipient domains whose mail weir-agent takes in as bounces and complaints.", NULL,
	 NULL, NULL},
	{"bounce.verp_prefix", SETTING_STRING, OFF(bounce.verp_prefix), "bounces", NOLIMIT, NULL,
	 check_verp_prefix, 0, "Local part prefix of VERP bounce addresses (PREFIX+rcpt=domain@).",
	 NULL, NULL, NULL},
	{"bounce.webhooks", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "URLs told of each bounce and complaint (signed JSON POSTs): ( { url; secret_file; "
	 "events; } ).",
	 webhooks_parse, webhooks_format, webhooks_free},
	{"bounce.webhook_timeout", SETTING_DURATION, OFF(bounce.webhook_timeout), "10s", 1, 300,
	 NULL, NULL, 0, "Longest one webhook POST may take; then it is retried.", NULL, NULL,
	 NULL},
	{"bounce.webhook_retries", SETTING_INT, OFF(bounce.webhook_retries), "8", 0, 100, NULL,
	 NULL, 0,
	 "Retries of a failed webhook POST (5s, doubling, at most 1h apart) before the event is "
	 "dropped.",
	 NULL, NULL, NULL},

	/* the outcome log (policy/outcome.c) */
	{"outcome.db", SETTING_STRING, OFF(outcome.db), "/var/lib/weir/outcome.db", NOLIMIT, NULL,
	 NULL, 0, "SQLite file of the outcome log (and the webhook outbox); \"\": none.", NULL,
	 NULL, NULL},
	{"outcome.retention", SETTING_DURATION, OFF(outcome.retention), "30d", 3600, 315360000,
	 NULL, NULL, 0, "How long outcome rows are kept.", NULL, NULL, NULL},
	{"outcome.flush_interval", SETTING_DURATION, OFF(outcome.flush_interval), "1s", 1, 60, NULL,
	 NULL, 0, "How often queued outcome rows are written (one transaction).", NULL, NULL, NULL},

	/* weir-milter */
	{"milter.socket", SETTING_STRING, OFF(milter.socket), "unix:/run/weir/milter.sock", NOLIMIT,
	 NULL, check_milter_socket, 0,
	 "Where weir-milter listens: unix:/path, inet:PORT@HOST or inet6:PORT@HOST.", NULL, NULL, NULL},
	{"milter.pid_file", SETTING_STRING, OFF(milter.pid_file), "/run/weir/weir-milter.pid",
	 NOLIMIT, NULL, NULL, 0, "PID file of weir-milter; \"\" for none.", NULL, NULL, NULL},
	{"milter.socket_mode", SETTING_MODE, OFF(milter.socket_mode), "0660", 0, 0777, NULL, NULL, 0,
	 "Permissions of a unix socket (owned by user and its group).", NULL, NULL, NULL},
	{"milter.login_header", SETTING_STRING, OFF(milter.login_header), "", NOLIMIT, NULL,
	 check_header_name_or_empty, 0,
	 "Header weir-milter adds with the SMTP AUTH login (for weir-agent's routes); \"\": off.",
	 NULL, NULL, NULL},
	{"milter.timeout", SETTING_DURATION, OFF(milter.timeout), "300s", 1, 3600, NULL, NULL, 0,
	 "How long libmilter waits for the MTA.", NULL, NULL, NULL},
	{"milter.metrics_listen", SETTING_STRING, OFF(milter.metrics_listen), "127.0.0.1:9155",
	 NOLIMIT, NULL, check_http_listen, 0,
	 "Where weir-milter serves Prometheus metrics (/metrics): IPV4:PORT or [IPV6]:PORT; "
	 "\"\": off.",
	 NULL, NULL, NULL},

	/* weir-agent */
	{"agent.lmtp_listen", SETTING_STRLIST, OFF(agent.lmtp_listen), "(\"unix:/run/weir/agent.lmtp\")",
	 NOLIMIT, NULL, check_milter_socket, 0,
	 "Addresses where weir-agent speaks LMTP: unix:/path or inet:PORT@HOST.", NULL, NULL, NULL},
	{"agent.smtp_listen", SETTING_STRLIST, OFF(agent.smtp_listen), "()", NOLIMIT, NULL,
	 check_milter_socket, 0, "Addresses where weir-agent speaks ESMTP.", NULL, NULL, NULL},
	{"agent.pid_file", SETTING_STRING, OFF(agent.pid_file), "/run/weir/weir-agent.pid", NOLIMIT,
	 NULL, NULL, 0, "PID file of weir-agent; \"\" for none.", NULL, NULL, NULL},
	{"agent.socket_mode", SETTING_MODE, OFF(agent.socket_mode), "0660", 0, 0777, NULL, NULL, 0,
	 "Permissions of unix listening sockets (owned by user and its group).", NULL, NULL, NULL},
	{"agent.smarthost", SETTING_STRING, OFF(agent.smarthost), "", NOLIMIT, NULL, check_hostport,
	 0,
	 "Smart host all mail is relayed to when agent.routes is empty: HOST[:PORT] or [IP]:PORT "
	 "(port 25 by default).", NULL, NULL, NULL},
	{"agent.helo_name", SETTING_STRING, OFF(agent.helo_name), NULL, NOLIMIT, NULL, NULL, 0,
	 "Name weir-agent gives in EHLO to the smart host; default: hostname.", NULL, NULL, NULL},
	{"agent.connect_timeout", SETTING_DURATION, OFF(agent.connect_timeout), "30s", 1, 600, NULL,
	 NULL, 0, "Time allowed to connect to the smart host and read its greeting.", NULL, NULL, NULL},
	{"agent.command_timeout", SETTING_DURATION, OFF(agent.command_timeout), "300s", 1, 3600, NULL,
	 NULL, 0, "Time allowed for the smart host's reply to one command.", NULL, NULL, NULL},
	{"agent.data_timeout", SETTING_DURATION, OFF(agent.data_timeout), "600s", 1, 3600, NULL, NULL,
	 0, "Time allowed for the smart host's reply after the message data.", NULL, NULL, NULL},
	{"agent.idle_timeout", SETTING_DURATION, OFF(agent.idle_timeout), "300s", 1, 3600, NULL, NULL,
	 0, "A client connection silent this long is closed with 421.", NULL, NULL, NULL},
	{"agent.shutdown_timeout", SETTING_DURATION, OFF(agent.shutdown_timeout), "60s", 0, 3600,
	 NULL, NULL, 0,
	 "On SIGTERM, how long transactions in flight may take to finish before weir-agent exits.", NULL, NULL, NULL},
	{"agent.max_message_size", SETTING_SIZE, OFF(agent.max_message_size), "50M", 1024,
	 (long long)1 << 34, NULL, NULL, 0, "Largest message accepted (advertised as SIZE).", NULL, NULL, NULL},
	{"agent.max_recipients", SETTING_INT, OFF(agent.max_recipients), "1000", 1, 100000, NULL,
	 NULL, 0, "Most recipients in one transaction; more get 452 4.5.3.", NULL, NULL, NULL},
	{"agent.max_clients", SETTING_INT, OFF(agent.max_clients), "100", 1, 100000, NULL, NULL, 0,
	 "Most simultaneous client connections; more are answered 421 and closed.", NULL, NULL, NULL},
	{"agent.max_errors", SETTING_INT, OFF(agent.max_errors), "10", 1, 1000, NULL, NULL, 0,
	 "Protocol errors tolerated from one client before it is disconnected.", NULL, NULL, NULL},
	{"agent.credentials_file", SETTING_STRING, OFF(agent.credentials_file), "", NOLIMIT, NULL,
	 NULL, 0,
	 "Smart-host credentials, lines NAME USER SECRET; must not be group or world readable.",
	 NULL, NULL, NULL},
	{"agent.auth_failure", SETTING_ENUM, OFF(agent.auth_failure), "tempfail", NOLIMIT,
	 auth_failure_modes, NULL, 0,
	 "A smart host refusing weir's credentials (535 5.7.8): tempfail (451 4.7.8) or reject.",
	 NULL, NULL, NULL},
	{"agent.tls_ca_file", SETTING_STRING, OFF(agent.tls_ca_file), "", NOLIMIT, NULL, NULL, 0,
	 "CA certificates for verifying smart hosts; \"\": the system store.", NULL, NULL, NULL},
	{"agent.max_connections", SETTING_INT, OFF(agent.max_connections), "20", 1, 10000, NULL,
	 NULL, 0, "Most sessions to one upstream host at once.", NULL, NULL, NULL},
	{"agent.max_messages", SETTING_INT, OFF(agent.max_messages), "100", 1, 1000000, NULL, NULL,
	 0, "Messages sent over one upstream session before it is closed.", NULL, NULL, NULL},
	{"agent.session_idle", SETTING_DURATION, OFF(agent.session_idle), "30s", 1, 3600, NULL,
	 NULL, 0, "An idle pooled upstream session is closed after this long.", NULL, NULL, NULL},
	{"agent.host_backoff", SETTING_DURATION, OFF(agent.host_backoff), "60s", 1, 3600, NULL,
	 NULL, 0,
	 "How long a failed upstream host is skipped (doubling per failure, at most 10 min).",
	 NULL, NULL, NULL},
	{"agent.state_file", SETTING_STRING, OFF(agent.state_file), "/run/weir/agent-state",
	 NOLIMIT, NULL, NULL, 0,
	 "Where weir-agent writes host health for weirctl route show; \"\" for none.", NULL,
	 NULL, NULL},
	{"agent.login_header", SETTING_STRING, OFF(agent.login_header), "", NOLIMIT, NULL,
	 check_header_name_or_empty, 0,
	 "Header carrying the login from weir-milter (routes by login); removed before relaying.",
	 NULL, NULL, NULL},
	{"agent.http_listen", SETTING_STRING, OFF(agent.http_listen), "127.0.0.1:9154", NOLIMIT,
	 NULL, check_http_listen, 0,
	 "Where weir-agent serves Prometheus metrics (/metrics) and the dashboard: IPV4:PORT or "
	 "[IPV6]:PORT; \"\": off. Not loopback: agent.http_auth_file is required.",
	 NULL, NULL, NULL},
	{"agent.http_auth_file", SETTING_STRING, OFF(agent.http_auth_file), "", NOLIMIT, NULL, NULL,
	 0,
	 "File with one line user:password for HTTP basic auth of agent.http_listen; must not "
	 "be group or world readable; \"\": none.",
	 NULL, NULL, NULL},
	{"agent.dashboard_dir", SETTING_STRING, OFF(agent.dashboard_dir), DASHBOARD_DIR_DEFAULT,
	 NOLIMIT, NULL, NULL, 0, "Directory of the dashboard's files (index.html, assets).", NULL,
	 NULL, NULL},
	{"agent.routes", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Routes: ( { name; sender_domains; rcpt_domains; logins; mx; hosts = ( { host; port; "
	 "tls; auth; credentials; weight; priority; } ); } ).",
	 routes_parse, routes_format, routes_free},

	/* weir-agent's shaping per destination (policy/throttle*.c) */
	{"throttle.wait", SETTING_DURATION, OFF(throttle.wait), "3s", 0, 60, NULL, NULL, 0,
	 "Longest a RCPT waits for its turn under a limiter; then 451 4.7.0.", NULL, NULL, NULL},
	{"throttle.max_waiting", SETTING_INT, OFF(throttle.max_waiting), "4", 1, 10000, NULL, NULL,
	 0, "RCPTs waiting on one limiter at once; one more is answered 451 at once.", NULL, NULL,
	 NULL},
	{"throttle.backend", SETTING_ENUM, OFF(throttle.backend), "memory", NOLIMIT, rate_backends,
	 NULL, 0,
	 "Where rate reservations are made: memory (this instance) or redis (shared by a fleet, "
	 "rate.redis* settings).", NULL, NULL, NULL},
	{"throttle.fleet_size", SETTING_INT, OFF(throttle.fleet_size), "1", 1, 1000, NULL, NULL, 0,
	 "Instances sharing the rates; with Redis unreachable each uses rate/fleet_size.", NULL,
	 NULL, NULL},
	{"throttle.state_file", SETTING_STRING, OFF(throttle.state_file),
	 "/run/weir/throttle-state", NOLIMIT, NULL, NULL, 0,
	 "Where weir-agent writes the limiters' state for weirctl throttle show; \"\" for none.",
	 NULL, NULL, NULL},
	{"throttle.domains", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Limits for each recipient domain no group matches: { rate; burst; sessions; "
	 "messages_per_session; recipients; }.",
	 throttle_domains_parse, throttle_domains_format, throttle_domains_free},
	{"throttle.groups", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Provider groups: ( { name; domains; mx; rate; burst; sessions; messages_per_session; "
	 "recipients; } ).",
	 throttle_groups_parse, throttle_groups_format, throttle_groups_free},
	{"throttle.routes", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Limits per route of agent.routes: ( { route; rate; burst; sessions; } ).",
	 throttle_routes_parse, throttle_routes_format, throttle_routes_free},
	{"throttle.senders", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Limits per sender domain: ( { domain; rate; burst; sessions; } ).",
	 throttle_senders_parse, throttle_senders_format, throttle_senders_free},
	{"throttle.rules", SETTING_CUSTOM, 0, NULL, NOLIMIT, NULL, NULL, 0,
	 "Adaptive back-off on upstream replies: ( { name; code; status; text; threshold; window; "
	 "action; factor; duration; recover; } ); built-in rules when not set.",
	 throttle_rules_parse, throttle_rules_format, throttle_rules_free},
};

const size_t weir_settings_count = sizeof(weir_settings) / sizeof(weir_settings[0]);

/* compile_senders - the sender map from weir.conf, the table and SQLite */
static void compile_senders(struct weir_config *cfg, struct config_errors *errs)
{
	struct sender_map *m = sender_map_new(cfg->senders.plus_separator);
	const char *err;

	for (size_t i = 0; i < cfg->senders.nmap; i++) {
		const struct sender_source *src = &cfg->senders.map[i];
		if (sender_map_add(m, src->login, src->address, &err) < 0)
			config_errors_add(errs, src->file, src->line, "senders.map: %s: %s",
					  src->address, err);
	}
	if (cfg->senders.table[0] != '\0')
		sender_map_load_table(m, cfg->senders.table, errs);
	if (cfg->senders.sqlite[0] != '\0') {
		char *e;
		if (sender_map_load_sqlite(m, cfg->senders.sqlite, &e) < 0) {
			config_errors_add(errs, cfg->senders.sqlite, 0, "%s", e);
			free(e);
		}
	}
	cfg->sender_map = m;
}

/* check_key_owners - the daemons re-read the keys on reload as `user`:
 * a key only root can read would load at start and fail every reload.
 * Checked where it can be (running as root, the user exists). */
static void check_key_owners(struct weir_config *cfg, struct config_errors *errs)
{
	uid_t uid;
	gid_t gid;
	struct stat st;

	if (geteuid() != 0 || daemon_lookup_user(cfg->user, &uid, &gid) < 0)
		return;
	for (size_t i = 0; i < cfg->dkim.ndomains; i++) {
		for (size_t j = 0; j < cfg->dkim.domains[i].nkeys; j++) {
			const char *f = cfg->dkim.domains[i].keys[j].file;
			if (stat(f, &st) == 0 && st.st_uid != uid)
				config_errors_add(errs, f, 0,
						  "key file must belong to %s, the user weir runs "
						  "as (it is re-read on reload); run: chown %s %s",
						  cfg->user, cfg->user, f);
		}
	}
}

/* http_auth_load - agent.http_auth_file's "user:password" into
 * cfg->agent.http_auth (a secret file, as credentials); the file is
 * required when agent.http_listen is not a loopback address */
static void http_auth_load(struct weir_config *cfg, struct config_errors *errs)
{
	const char *path = cfg->agent.http_auth_file, *listen = cfg->agent.http_listen;
	char *buf, *err = NULL;
	size_t len = 0;

	if (path == NULL || path[0] == '\0') {
		if (listen != NULL && listen[0] != '\0' && !httpd_listen_is_loopback(listen))
			config_errors_add(errs, cfg->file, 0,
			                  "agent.http_listen %s is not a loopback address: "
			                  "agent.http_auth_file is required",
			                  listen);
		return;
	}
	if ((buf = secret_file_read(path, cfg->user, HTTP_AUTH_MAX, &len, &err)) == NULL) {
		config_errors_add(errs, path, 0, "%s", err);
		free(err);
		return;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\n', len) != NULL || buf[0] == ':' ||
	    memchr(buf, ':', len) == NULL || strlen(buf) != len) {
		config_errors_add(errs, path, 1, "expected one line user:password");
		secret_free(buf, len);
		return;
	}
	cfg->agent.http_auth = buf;
	cfg->agent.http_auth_len = len;
}

/* cidr_list_compile - a list of networks (checked by check_cidr) */
static struct cidr *cidr_list_compile(const struct strlist *l, size_t *n_r)
{
	struct cidr *v = xcalloc(l->n + 1, sizeof(*v));
	const char *err;

	for (size_t i = 0; i < l->n; i++)
		cidr_parse(l->v[i], &v[i], &err); /* checked when loaded */
	*n_r = l->n;
	return v;
}

/* domain_list_compile - a list of domains and ".domains" (checked by
 * check_domain) normalized for domain_in_list; *n_r entries */
static char **domain_list_compile(const struct strlist *l, size_t *n_r)
{
	char **v = xcalloc(l->n + 1, sizeof(*v));
	const char *err;

	for (size_t i = 0; i < l->n; i++) {
		const char *d = l->v[i];
		char *n = domain_normalize(d + (d[0] == '.'), &err);
		v[i] = d[0] == '.' ? xasprintf(".%s", n) : xstrdup(n);
		free(n);
	}
	*n_r = l->n;
	return v;
}

static void domain_list_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void settings_compile(struct weir_config *cfg, struct config_errors *errs)
{
	cfg->trusted = cidr_list_compile(&cfg->trusted_networks, &cfg->ntrusted);
	cfg->spf_allow = cidr_list_compile(&cfg->spf.allow_networks, &cfg->nspf_allow);
	cfg->local = domain_list_compile(&cfg->local_domains, &cfg->nlocal);
	cfg->spf_allow_helo = domain_list_compile(&cfg->spf.allow_helo, &cfg->nspf_allow_helo);
	cfg->spf_allow_hosts = domain_list_compile(&cfg->spf.allow_hosts, &cfg->nspf_allow_hosts);
	cfg->null_sender_mask = 0;
	for (size_t i = 0; i < cfg->policy.null_sender_allowed.n; i++) {
		const char *c = cfg->policy.null_sender_allowed.v[i];
		cfg->null_sender_mask |= strcmp(c, "authenticated") == 0 ? IDENTITY_AUTHENTICATED
					 : strcmp(c, "trusted") == 0	 ? IDENTITY_TRUSTED
									 : IDENTITY_OUTSIDE;
	}
	compile_senders(cfg, errs);
	routes_compile(cfg, errs);
	throttle_finish(cfg, errs);
	credentials_load(cfg, errs);
	http_auth_load(cfg, errs);
	webhooks_compile(cfg, errs);
	check_key_owners(cfg, errs);
	if (cfg->dkim.fallback_domain[0] != '\0' &&
	    dkim_domain_find(cfg->dkim.domains, cfg->dkim.ndomains, cfg->dkim.fallback_domain) ==
		    NULL)
		config_errors_add(errs, cfg->file, 0,
				  "dkim.fallback_domain %s has no keys in dkim.sign",
				  cfg->dkim.fallback_domain);
}

void settings_free_compiled(struct weir_config *cfg)
{
	free(cfg->trusted);
	free(cfg->spf_allow);
	domain_list_free(cfg->local, cfg->nlocal);
	domain_list_free(cfg->spf_allow_helo, cfg->nspf_allow_helo);
	domain_list_free(cfg->spf_allow_hosts, cfg->nspf_allow_hosts);
	sender_map_free(cfg->sender_map);
	credentials_free(cfg);
	secret_free(cfg->agent.http_auth, cfg->agent.http_auth_len);
	cfg->agent.http_auth = NULL;
}

const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < weir_settings_count; i++)
		if (strcmp(weir_settings[i].name, name) == 0)
			return &weir_settings[i];
	return NULL;
}
