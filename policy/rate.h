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
