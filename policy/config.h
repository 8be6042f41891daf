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

struct strlist {
	char **v;
	size_t n;
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

	struct {
		char *socket;
		char *pid_file;
		long socket_mode;
		long timeout;
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
	} agent;
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
};

extern const struct setting weir_settings[];
extern const size_t weir_settings_count;

/* setting_find - the setting called name, or NULL */
const struct setting *setting_find(const char *name);
/* setting_format - the value of s in cfg as text; caller frees */
char *setting_format(const struct setting *s, const struct weir_config *cfg);

/* Parsers shared with weirctl and tests. -1 with *err_r on bad input. */
int config_parse_duration(const char *s, long long *secs_r, const char **err_r);
int config_parse_size(const char *s, long long *bytes_r, const char **err_r);

#endif
