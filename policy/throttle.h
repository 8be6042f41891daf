/* throttle - weir-agent's shaping per destination (weir.conf group
 * throttle): which limiters a recipient passes, GCRA reservations, the
 * sessions each limiter holds, the adaptive back-off rules and the state
 * weirctl throttle show prints.
 *
 * The configuration part (struct throttle_config, parsed with weir.conf)
 * is read-only once loaded. The runtime part (struct throttle) belongs to
 * one thread (weir-agent's event loop): nothing in it locks. Every
 * function that depends on time takes now_ms (wall clock, ms), so tests
 * run on a fake clock. Waiting itself (timers, FIFO of waiters) is the
 * agent's (delivery-agent/throttle.c); this file only says how long. */
#ifndef WEIR_POLICY_THROTTLE_H
#define WEIR_POLICY_THROTTLE_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct weir_config;
struct config_errors;

/* What one limiter allows; 0 in a field: that dimension is unlimited */
struct throttle_limits {
	long long n, period_ms; /* rate: n messages per period_ms (n = 0: none) */
	long long burst;        /* messages back to back; >= 1 */
	int sessions;           /* transactions in progress at once */
	int messages_per_session; /* mx routes: messages per upstream session */
	int recipients;         /* RCPTs per transaction */
};

/* A provider group: recipient domains and/or MX host suffixes */
struct throttle_group {
	char *name;
	char **domains; size_t ndomains; /* lowercased; ".d" = d and below */
	char **mx; size_t nmx;           /* lowercased, leading "." removed: suffixes */
	struct throttle_limits lim;
	const char *file; int line;
};

/* A limiter keyed by a route name or a sender domain */
struct throttle_named {
	char *name; /* route name; or sender domain, ".d" = d and below */
	struct throttle_limits lim;
	const char *file; int line;
};

enum throttle_action { THROTTLE_SUSPEND, THROTTLE_SLOW };

struct throttle_rule {
	char *name;
	char *code;   /* reply code prefix ("421", "45", "4") or NULL; several joined by "|" */
	char *status; /* enhanced status prefix ("4.7.") or NULL; several joined by "|" */
	char *text;   /* the regex as written, or NULL; tried on the text, then on "STATUS TEXT" */
	regex_t re;   /* compiled REG_EXTENDED|REG_ICASE|REG_NOSUB when text */
	int threshold;        /* >= 1 */
	long long window_ms;  /* matches counted within this */
	enum throttle_action action;
	double factor;        /* slow: 0 < factor < 1 */
	long long duration_ms;
	int recover;          /* slow: back to normal after this many successes; 0: duration only */
};

enum throttle_backend { THROTTLE_MEMORY, THROTTLE_REDIS };

/* cfg->throttle */
struct throttle_config {
	long wait;          /* seconds a RCPT may wait for its turn */
	long max_waiting;   /* RCPTs waiting on one limiter at once (long: a SETTING_INT) */
	int backend;        /* enum throttle_backend */
	long fleet_size;    /* >= 1 (long: a SETTING_INT) */
	char *state_file;   /* "" none */
	bool has_domains;   /* throttle.domains set: each other domain limited */
	struct throttle_limits domains;
	struct throttle_group *groups; size_t ngroups;
	struct throttle_named *routes; size_t nroutes;
	struct throttle_named *senders; size_t nsenders;
	struct throttle_rule *rules; size_t nrules; /* the defaults when not written */
	bool rules_written;
};

/* For the settings table (settings.c): throttle.domains, throttle.groups,
 * throttle.routes, throttle.senders, throttle.rules (custom settings);
 * errors with file:line. format: the value as weirctl defaults shows it
 * (caller frees). */
void throttle_domains_parse(struct weir_config *cfg, void *node, const char *file,
                            struct config_errors *errs);
char *throttle_domains_format(const struct weir_config *cfg);
void throttle_domains_free(struct weir_config *cfg);
void throttle_groups_parse(struct weir_config *cfg, void *node, const char *file,
                           struct config_errors *errs);
char *throttle_groups_format(const struct weir_config *cfg);
void throttle_groups_free(struct weir_config *cfg);
void throttle_routes_parse(struct weir_config *cfg, void *node, const char *file,
                           struct config_errors *errs);
char *throttle_routes_format(const struct weir_config *cfg);
void throttle_routes_free(struct weir_config *cfg);
void throttle_senders_parse(struct weir_config *cfg, void *node, const char *file,
                            struct config_errors *errs);
char *throttle_senders_format(const struct weir_config *cfg);
void throttle_senders_free(struct weir_config *cfg);
void throttle_rules_parse(struct weir_config *cfg, void *node, const char *file,
                          struct config_errors *errs);
char *throttle_rules_format(const struct weir_config *cfg);
void throttle_rules_free(struct weir_config *cfg);
/* throttle_finish - after the whole file: the default rules when
 * throttle.rules was not written; checks across settings (a route
 * limiter naming no route: error) */
void throttle_finish(struct weir_config *cfg, struct config_errors *errs);

/* throttle_active - cfg limits anything at all (else the agent skips it) */
bool throttle_active(const struct weir_config *cfg);
/* throttle_needs_mx - some group matches by MX host */
bool throttle_needs_mx(const struct weir_config *cfg);

/* ---- runtime ---- */

struct throttle;
/* One limiter's state, keyed "group:NAME", "domain:D", "route:NAME" or
 * "sender:DOMAIN" (for senders: the sender's own domain). Idle limiters
 * are freed (at most once a minute, inside throttle_reserve and
 * throttle_state_write): the pointer stays valid while the limiter holds
 * a session or a waiter, and for at least 10 minutes after its last
 * throttle_match, charge, reply or success; a throttle_reserve call never
 * frees the limiters of its own match. */
struct throttle_limiter;

/* throttle_new - runtime state for cfg (holds a reference to it) */
struct throttle *throttle_new(struct weir_config *cfg);
/* throttle_reconfigure - a reload: limits from cfg, state kept by key */
void throttle_reconfigure(struct throttle *t, struct weir_config *cfg);
void throttle_free(struct throttle *t);

/* The limiters of one recipient, at most one of each kind (in this order:
 * destination, route, sender) */
#define THROTTLE_KINDS 3
struct throttle_match {
	struct throttle_limiter *l[THROTTLE_KINDS];
	size_t n;
};
/* throttle_match - for recipient domain rdom (lowercased), its MX host
 * names (NULL/0: unknown or not looked up), the route's name and the
 * sender domain (NULL for the null sender) */
void throttle_match(struct throttle *t, const char *rdom, const char *const *mx, size_t nmx,
                    const char *route, const char *sdom, struct throttle_match *m);

const char *throttle_limiter_key(const struct throttle_limiter *l);
/* throttle_limiter_limits - the limits in force at now (slow applied) */
struct throttle_limits throttle_limiter_limits(const struct throttle_limiter *l, long long now_ms);

enum throttle_verdict {
	THROTTLE_GO,        /* now (or after *delay_ms_r: wait, then go) */
	THROTTLE_RATE,      /* over the rate by more than the wait allows */
	THROTTLE_SUSPENDED, /* a rule suspended it: *until_ms_r */
	THROTTLE_BACKEND,   /* fleet: Redis failed and the local share said no */
};
/* throttle_reserve - one message slot on each of m's limiters that has a
 * rate, all or none: THROTTLE_GO with *delay_ms_r (0: at once; else the
 * reservation is committed and the caller waits that long), or the
 * verdict of the first limiter that refuses (*which_r its index) with
 * nothing committed. max_delay_ms: how long the caller may still wait.
 * Suspension is checked first. */
enum throttle_verdict throttle_reserve(struct throttle *t, const struct throttle_match *m,
                                       long long now_ms, long long max_delay_ms,
                                       long long *delay_ms_r, size_t *which_r,
                                       long long *until_ms_r);

/* Sessions: transactions in progress holding a limiter */
bool throttle_session_free(const struct throttle_limiter *l, long long now_ms);
void throttle_session_take(struct throttle_limiter *l);
void throttle_session_release(struct throttle_limiter *l);
/* RCPTs waiting on the limiter (for max_waiting and the state file) */
int throttle_waiting(const struct throttle_limiter *l);
void throttle_waiting_add(struct throttle_limiter *l, int delta);
/* throttle_deferred - one more 451 given for the limiter (state file) */
void throttle_deferred(struct throttle_limiter *l);

/* throttle_reply - an upstream reply (code, enhanced status or NULL, text
 * or NULL) met by mail for limiter l: the rules count it; a state change
 * is logged and returned true */
bool throttle_reply(struct throttle *t, struct throttle_limiter *l, int code, const char *status,
                    const char *text, long long now_ms);
/* throttle_success - a message delivered (DATA 2xx) for limiter l */
void throttle_success(struct throttle *t, struct throttle_limiter *l, long long now_ms);
/* throttle_suspended_until - > now when suspended; why_r: the reply that
 * caused it (borrowed) */
long long throttle_suspended_until(const struct throttle_limiter *l, long long now_ms,
                                   const char **why_r);

/* throttle_rate_text - the limit for a 451's text: the rate ("20/s",
 * "300/m", "2.5/s" for a slowed one) when lim has one, else "N sessions",
 * else "unlimited" */
void throttle_rate_text(const struct throttle_limits *lim, char *buf, size_t size);

/* throttle_state_write - the state file (path; atomically), one line per
 * active limiter; 0, or -1 with *err_r (caller frees) */
int throttle_state_write(struct throttle *t, const char *path, long long now_ms, char **err_r);
/* throttle_state_changed - something the state file shows changed since
 * the last throttle_state_write; also true while what it shows changes
 * with time alone (an observed rate, a state running out, a limiter
 * about to go idle), so a writer calling it once a second keeps the
 * file current. True before the first write. */
bool throttle_state_changed(const struct throttle *t);
/* What throttle_foreach_active shows of one limiter (strings borrowed
 * for the call) */
struct throttle_limiter_info {
	const char *key;
	const char *state; /* "normal", "suspended", "slow" */
	char rate[32];     /* "20/s", "-" when unlimited (slow applied) */
	double observed;   /* messages per second over the last minute */
	int sessions, max_sessions; /* max 0: unlimited */
	int waiting;
	unsigned long long deferred;
	long long until_ms;   /* end of a suspended or slow state, else 0 */
	const char *rule;     /* what started the state, or NULL */
	const char *reply;    /* the reply that did, or NULL */
};
/* throttle_foreach_active - fn for each limiter the state file would
 * show (metrics, the dashboard), sorted by key; same thread as the rest */
void throttle_foreach_active(struct throttle *t, long long now_ms,
                             void (*fn)(void *ctx, const struct throttle_limiter_info *li),
                             void *ctx);
/* throttle_state_print - weirctl throttle show: the file as a table */
int throttle_state_print(const char *path, FILE *out, char **err_r);

#endif
