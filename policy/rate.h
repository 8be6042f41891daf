/* rate - rate limits and quotas (weir.conf group rate): which limits a
 * message is charged against, with which key and parameters.
 *
 * The limits are parsed from rate.limits (a custom setting, see
 * settings.c) into struct weir_config; rate_plan turns one SMTP stage of
 * one message into charges (struct rate_item) that a rate store
 * (rate_store.h) decides atomically. */
#ifndef WEIR_POLICY_RATE_H
#define WEIR_POLICY_RATE_H

#include <stdbool.h>
#include <stddef.h>

struct weir_config;
struct config_errors;
struct cidr;

/* The parts a limit's key is made of (key = "login+rcpt_domain") */
enum rate_key_part {
	RATE_KEY_LOGIN,
	RATE_KEY_CLIENT,        /* masked to ipv4_prefix / ipv6_prefix */
	RATE_KEY_SENDER,        /* the whole envelope sender, lowercased */
	RATE_KEY_SENDER_DOMAIN,
	RATE_KEY_RCPT_DOMAIN,
};
#define RATE_KEY_PARTS 5

/* A rate (n per period_ms with burst; n = 0: none) and/or a quota
 * (quota_n per fixed window of quota_period_ms; quota_n = 0: none) */
struct rate_params {
	long long period_ms, n, burst;
	long long quota_period_ms, quota_n;
};

/* One entry of a limit's overrides: every match given must hold (login,
 * sender domain, recipient domain, client network); then the values it
 * sets replace the limit's */
struct rate_override {
	char *login;       /* lowercased; NULL: any */
	char *domain;      /* sender domain, normalized; ".d" = d and subdomains */
	char *rcpt_domain; /* the same for the recipient domain */
	struct cidr *network;
	bool set_rate, set_burst, set_quota, unlimited;
	struct rate_params params; /* the fields set_* say */
};

/* One compiled limit of rate.limits (cfg->rate.limits; owned by the
 * configuration, read-only once loaded) */
struct rate_limit {
	char *name;
	enum rate_key_part parts[RATE_KEY_PARTS]; /* in the order written */
	size_t nparts;
	bool recipients;  /* count = "recipients" */
	struct rate_params params;
	int action;       /* enum policy_action */
	unsigned identities; /* enum identity_class bits */
	unsigned ipv4_prefix, ipv6_prefix;
	struct rate_override *overrides;
	size_t noverrides;
};

/* For the settings table (settings.c): rate.limits */
void rate_limits_parse(struct weir_config *cfg, void *node, const char *file,
		       struct config_errors *errs);
char *rate_limits_format(const struct weir_config *cfg);
void rate_limits_free(struct weir_config *cfg);

/* rate_parse_rate - "N/PERIOD" ("100/1h", "30/10m", "5/s") into *n_r and
 * *period_ms_r; -1 with *err_r (static) */
int rate_parse_rate(const char *s, long long *n_r, long long *period_ms_r, const char **err_r);

/* rate_limit_find - the limit of cfg called name, or NULL */
const struct rate_limit *rate_limit_find(const struct weir_config *cfg, const char *name);

enum rate_when { RATE_AT_MAIL, RATE_AT_RCPT };

/* What weir-milter knows at a stage; any string may be NULL (unknown) */
struct rate_context {
	const char *login;
	const char *client_ip;
	const char *sender; /* "" for the null sender */
	const char *rcpt;   /* RATE_AT_RCPT: this recipient */
	unsigned identity_class; /* enum identity_class bit (config.h) */
	/* RATE_AT_RCPT: recipient domains already charged in this
	 * transaction (lowercased), for per-domain message counts */
	char *const *seen_domains;
	size_t n_seen_domains;
};

/* One charge against one limit */
struct rate_item {
	char *state_key;        /* "NAME:VALUE" (owned) */
	const char *limit_name; /* the limit's name (the configuration's) */
	long long period_ms, n, burst;      /* rate; n = 0: none */
	long long quota_period_ms, quota_n; /* quota; quota_n = 0: none */
	unsigned cost;
	int action; /* enum policy_action: ACTION_TEMPFAIL, REJECT, HOLD or LOG */
};

/* rate_plan - the charges cfg's limits make at this stage; *items_r
 * (free with rate_items_free) holds the returned number of items. A
 * limit overridden with unlimited = true makes no charge. */
size_t rate_plan(const struct weir_config *cfg, enum rate_when when,
		 const struct rate_context *ctx, struct rate_item **items_r);
void rate_items_free(struct rate_item *items, size_t n);

/* rate_item_value - the VALUE part of an item's state key */
const char *rate_item_value(const struct rate_item *it);

#endif
