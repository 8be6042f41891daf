/* config - weir.conf: the one configuration file every weir program reads
 *
 * The file uses libconfig syntax. Every setting is declared once, in
 * settings.c (name, type, default, bounds, documentation); the loader,
 * `weirctl check`, `weirctl defaults` and the documentation test all read
 * that table. Unknown settings are errors.
 *
 * A loaded configuration is immutable and reference counted: a daemon
 * takes a reference for each session (config_ref) so that a reload can
 * swap in a new one while sessions in flight keep theirs. */
#ifndef WEIR_POLICY_CONFIG_H
#define WEIR_POLICY_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/throttle.h"

struct strlist {
	char **v;
	size_t n;
};

struct cidr;
struct sender_map;
struct dkim_domain;
struct rate_limit;
struct webhook_target;

/* What a policy rule does when it matches (policy.* settings). */
enum policy_action { ACTION_ACCEPT, ACTION_REJECT, ACTION_TEMPFAIL, ACTION_HOLD, ACTION_LOG };

/* Identity classes, as bits for policy.null_sender_allowed. */
enum identity_class {
	IDENTITY_AUTHENTICATED = 1,
	IDENTITY_TRUSTED = 2,
	IDENTITY_OUTSIDE = 4,
};

/* rate.backend and rate.fail_mode */
enum rate_backend { RATE_BACKEND_MEMORY, RATE_BACKEND_REDIS };
enum rate_fail_mode { RATE_FAIL_OPEN, RATE_FAIL_CLOSED };

/* One senders.map entry as written in weir.conf. */
struct sender_source {
	char *login;
	char *address;
	char *file;
	int line;
};

/* A TLS client certificate that identifies a login (senders.certificates):
 * by subject, or by fingerprint (hex digits only, lowercased). */
struct cert_identity {
	char *subject;
	char *fingerprint;
	char *login;
};

struct weir_config {
	atomic_int refs;
	char *file; /* path it was loaded from */

	/* top level */
	char *user;
	char *hostname;
	char *resolver;
	long resolver_timeout;
	char *log_facility;
	int log_level; /* enum log_level */

	struct strlist trusted_networks;
	struct strlist local_domains;

	struct {
		struct sender_source *map;
		size_t nmap;
		char *table;
		char *sqlite;
		char *plus_separator;
		struct cert_identity *certs;
		size_t ncerts;
	} senders;

	struct {
		bool dry_run;
		int relay; /* enum policy_action */
		int envelope_sender;
		int null_sender;
		int header_from;
		int spoofing;
		struct strlist null_sender_allowed;
		int trusted_header_from; /* 0 any, 1 local */
	} policy;

	struct {
		char *authserv_id;
		struct dkim_domain *domains; /* dkim.sign, keys loaded */
		size_t ndomains;
		char *fallback_domain;
		int canonicalization; /* relaxed/relaxed, simple/simple, relaxed/simple,
					 simple/relaxed */
		struct strlist headers;
		struct strlist oversign;
		long expire;
		int alignment; /* 0 log, 1 warn, 2 tempfail */
		bool verify;
		long max_signatures;
	} dkim;

	struct {
		bool verify;
		/* enum policy_action per result (ACTION_ACCEPT: "tag") */
		int fail, softfail, neutral, none, permerror, temperror;
		int helo; /* 0 null_sender, 1 all */
		struct strlist allow_networks;
		struct strlist allow_helo;
		struct strlist allow_hosts;
		long timeout;
		bool received_spf;
		int preflight; /* 0 off, 1 log, 2 tempfail */
		struct strlist egress;
		char *preflight_db;
	} spf;

	struct {
		int backend; /* enum rate_backend */
		char *state_db; /* memory backend: SQLite file; "" = none */
		long flush_interval; /* seconds */
		char *redis; /* HOST:PORT, [IPv6]:PORT or unix:/path */
		char *redis_password_file;
		char *redis_prefix;
		long redis_timeout_ms;
		int fail_mode; /* enum rate_fail_mode */
		struct rate_limit *limits; /* rate.limits, compiled (rate.h) */
		size_t nlimits;
	} rate;

	/* group suppression: the suppression list (policy/suppress.h) */
	struct {
		char *db;              /* SQLite file */
		long soft_threshold;   /* soft bounces within soft_window ... */
		long soft_window;      /* seconds */
		long hard_expiry;      /* seconds; 0 = never */
		long soft_expiry;      /* seconds; 0 = never */
		long complaint_expiry; /* seconds; 0 = never */
		bool milter;           /* weir-milter refuses at RCPT */
		bool agent;            /* weir-agent refuses before relaying */
	} suppression;

	/* group outcome: the outcome log (policy/outcome.h) */
	struct {
		char *db;            /* SQLite file; "" = no outcome log */
		long retention;      /* seconds */
		long flush_interval; /* seconds */
	} outcome;

	/* group bounce: bounce classification (policy/bounce.h) */
	struct {
		char *rules; /* the rules file */
		struct strlist domains; /* bounce intake domains (weir-agent) */
		char *verp_prefix;      /* VERP local part prefix ("bounces") */
		/* bounce.webhooks (policy/webhook_config.c) */
		struct webhook_target *webhooks;
		size_t nwebhooks;
		long webhook_timeout; /* seconds */
		long webhook_retries; /* after the first attempt */
	} bounce;

	struct {
		char *socket;
		char *pid_file;
		long socket_mode;
		long timeout;
		char *login_header;
		char *metrics_listen; /* HOST:PORT of /metrics; "" off */
	} milter;

	struct {
		struct strlist lmtp_listen;
		struct strlist smtp_listen;
		char *pid_file;
		long socket_mode;
		char *smarthost;
		char *helo_name;
		long connect_timeout;
		long command_timeout;
		long data_timeout;
		long idle_timeout;
		long shutdown_timeout;
		long long max_message_size;
		long max_recipients;
		long max_clients;
		long max_errors;
		char *credentials_file;
		int auth_failure; /* 0 tempfail, 1 reject */
		char *tls_ca_file;
		long max_connections;
		long max_messages;
		long session_idle;
		long host_backoff;
		char *state_file;
		char *login_header;
		char *http_listen;    /* HOST:PORT of /metrics and the dashboard; "" off */
		char *http_auth_file; /* "user:password" for HTTP basic auth; "" none */
		char *dashboard_dir;  /* the dashboard's files */
		/* http_auth_file's line, read at load (wiped when freed); NULL: none */
		char *http_auth;
		size_t http_auth_len;
		/* agent.routes (policy/routes.c) and the credentials file
		 * (policy/credentials.c), compiled at load */
		struct route *routes;
		size_t nroutes;
		struct credential *credentials;
		size_t ncredentials;
	} agent;

	/* group throttle: weir-agent's shaping per destination
	 * (policy/throttle.h; parsed by throttle_config.c, throttle_rules.c) */
	struct throttle_config throttle;

	/* Compiled when the file loads (settings.c); read-only afterwards,
	 * so any number of sessions may share them. */
	struct cidr *trusted;
	size_t ntrusted;
	char **local; /* normalized local_domains */
	size_t nlocal;
	struct sender_map *sender_map;
	unsigned null_sender_mask; /* enum identity_class bits */
	struct cidr *spf_allow; /* spf.allow_networks */
	size_t nspf_allow;
	char **spf_allow_helo; /* normalized spf.allow_helo */
	size_t nspf_allow_helo;
	char **spf_allow_hosts; /* normalized spf.allow_hosts */
	size_t nspf_allow_hosts;

	/* State a daemon builds for this configuration (weir-milter: its
	 * DKIM library handle and resolver), freed with the configuration
	 * by daemon_state_free. Set once, under the daemon's own lock. */
	void *daemon_state;
	void (*daemon_state_free)(void *state);
};

/* Which program is loading: settings a program needs to run are only
 * required by that program (weirctl check requires all). */
enum config_user { CONFIG_FOR_MILTER = 1, CONFIG_FOR_AGENT = 2, CONFIG_FOR_ALL = 3 };

/* Error messages collected while loading, each "file:line: text". */
struct config_errors {
	struct strlist list;
};

void config_errors_init(struct config_errors *errs);
void config_errors_free(struct config_errors *errs);
void config_errors_add(struct config_errors *errs, const char *file, int line,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* config_load - read and validate path. Returns a configuration with one
 * reference, or NULL when there were errors; all errors found are appended
 * to errs (a syntax error stops libconfig, so it is reported alone). */
struct weir_config *config_load(const char *path, enum config_user who,
				struct config_errors *errs);

/* config_load_reported - config_load, with each error printed on stderr
 * (to_stderr) or logged at error level; *nerrors_r (may be NULL) gets
 * their number. For daemons and weirctl. */
struct weir_config *config_load_reported(const char *path, enum config_user who, bool to_stderr,
					 size_t *nerrors_r);

/* config_load_string - the same for text held in memory; name is used in
 * messages and for relative @include paths (tests, fuzzing) */
struct weir_config *config_load_string(const char *name, const char *text, enum config_user who,
				       struct config_errors *errs);

struct weir_config *config_ref(struct weir_config *cfg);
/* config_unref - drop one reference; the last one frees cfg. NULL is ok. */
void config_unref(struct weir_config *cfg);

/* The running configuration of a daemon, swapped atomically on reload.
 * config_current returns a new reference the caller must unref;
 * config_set_current takes over the caller's reference to cfg. */
struct weir_config *config_current(void);
void config_set_current(struct weir_config *cfg);

/* Default path of weir.conf (SYSCONFDIR/weir/weir.conf). */
const char *config_default_path(void);

/* The settings table, for weirctl and tests. */
enum setting_type {
	SETTING_STRING,
	SETTING_INT,
	SETTING_BOOL,
	SETTING_DURATION, /* seconds: 30, "30s", "5m", "2h", "1d" */
	SETTING_SIZE,     /* bytes: 1048576, "512k", "50M", "1G" */
	SETTING_STRLIST,  /* "x" or ("x", "y") or ["x", "y"] */
	SETTING_ENUM,     /* one of choices, stored as its index */
	SETTING_MODE,     /* file mode as octal string "0660" */
	SETTING_CUSTOM,   /* parsed by the setting's own parse function */
};

struct setting {
	const char *name; /* dotted path: "agent.smarthost" */
	enum setting_type type;
	size_t offset; /* into struct weir_config */
	const char *def; /* default, written as in the file; NULL = unset */
	long long min, max; /* INT, DURATION, SIZE */
	const char *const *choices; /* ENUM, NULL-terminated */
	/* extra validation of a STRING or each STRLIST element */
	int (*check)(const char *value, const char **err_r);
	enum config_user required_by; /* 0 = optional */
	const char *doc;
	/* CUSTOM: node is the libconfig setting (config_setting_t *);
	 * errors are added with file:line; format gives the text weirctl
	 * prints (caller frees); free releases what parse stored. */
	void (*parse)(struct weir_config *cfg, void *node, const char *file,
		      struct config_errors *errs);
	char *(*format)(const struct weir_config *cfg);
	void (*free)(struct weir_config *cfg);
};

/* settings_compile - build the structures a loaded configuration is
 * used through (networks, domains, sender map); errors are added to
 * errs with file:line where there is one */
void settings_compile(struct weir_config *cfg, struct config_errors *errs);
/* settings_free_compiled - release what settings_compile built */
void settings_free_compiled(struct weir_config *cfg);

extern const struct setting weir_settings[];
extern const size_t weir_settings_count;

/* setting_find - the setting called name, or NULL */
const struct setting *setting_find(const char *name);
/* setting_format - the value of s in cfg as text; caller frees */
char *setting_format(const struct setting *s, const struct weir_config *cfg);

/* config_group_keys_ok - for custom settings: every member of the
 * libconfig group (config_setting_t *) is one of names (NULL-terminated);
 * each other one is reported as "file:line: WHAT: unknown key 'x'" */
bool config_group_keys_ok(void *group, const char *const *names, const char *what,
			  const char *file, struct config_errors *errs);

/* Parsers shared with weirctl and tests. -1 with *err_r on bad input. */
int config_parse_duration(const char *s, long long *secs_r, const char **err_r);
int config_parse_size(const char *s, long long *bytes_r, const char **err_r);

#endif
