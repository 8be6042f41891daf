/* rate - which limits of rate.limits one SMTP stage of a message is
 * charged against, with which state key and parameters
 *
 * Pure functions of the configuration and the context: no state, no
 * locks, no allocation the caller does not free (rate_items_free). The
 * charging itself is the rate store's (rate_store.h).
 *
 * When (issue 6): at MAIL, limits counting messages whose key has no
 * rcpt_domain; at each RCPT, limits counting recipients, and limits
 * counting messages whose key has rcpt_domain, the first time the
 * transaction sees that recipient domain. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lib/cidr.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/rate.h"

/* The key parts of one context, each lowercased; NULL when the message
 * does not have it */
struct parts {
	char *login;
	char *ip;     /* the client address as text, brackets and "IPv6:" removed */
	char *sender; /* the whole address */
	char *sender_domain;
	char *rcpt_domain;
};

static char *lowercase(const char *s)
{
	char *out = xstrdup(s);

	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

/* path_parts - the lowercased address and its domain of an SMTP path;
 * both NULL for the null sender or what is not an address */
static void path_parts(const char *path, char **addr_r, char **domain_r)
{
	struct address a;
	const char *err, *at;

	*addr_r = *domain_r = NULL;
	if (path == NULL || path[0] == '\0' || strcmp(path, "<>") == 0)
		return;
	if (address_parse(path, &a, &err) == 0) {
		if (!a.null) {
			*addr_r = xstrdup(a.canonical);
			*domain_r = a.domain ? xstrdup(a.domain) : NULL;
		}
		address_free(&a);
		return;
	}
	/* Not RFC 5321, yet the MTA let it through: count it as written */
	*addr_r = lowercase(path);
	at = strrchr(*addr_r, '@');
	*domain_r = at && at[1] ? xstrdup(at + 1) : NULL;
}

/* client_text - "192.0.2.1" from "192.0.2.1", "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]"; NULL when it is not an IP address */
static char *client_text(const char *ip)
{
	unsigned char buf[16];
	size_t n;
	char *s;

	if (ip == NULL)
		return NULL;
	n = strlen(ip);
	if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']')
		s = xstrndup(ip + 1, n - 2);
	else
		s = xstrdup(ip);
	if (strncasecmp(s, "IPv6:", 5) == 0)
		memmove(s, s + 5, strlen(s + 5) + 1);
	if (inet_pton(AF_INET, s, buf) != 1 && inet_pton(AF_INET6, s, buf) != 1) {
		free(s);
		return NULL;
	}
	return s;
}

static void parts_init(struct parts *p, const struct rate_context *ctx)
{
	char *rcpt_addr;

	memset(p, 0, sizeof(*p));
	if (ctx->login != NULL && ctx->login[0] != '\0')
		p->login = lowercase(ctx->login);
	p->ip = client_text(ctx->client_ip);
	path_parts(ctx->sender, &p->sender, &p->sender_domain);
	path_parts(ctx->rcpt, &rcpt_addr, &p->rcpt_domain);
	free(rcpt_addr);
}

static void parts_free(struct parts *p)
{
	free(p->login);
	free(p->ip);
	free(p->sender);
	free(p->sender_domain);
	free(p->rcpt_domain);
}

/* mask - keep the first prefix bits of len octets */
static void mask(unsigned char *a, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned bits = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
		a[i] &= (unsigned char)(0xff00u >> bits);
	}
}

/* client_value - the client part of a key: "192.0.2.0/24",
 * "2001:db8::/64"; an IPv4-mapped IPv6 address counts as IPv4 */
static char *client_value(const char *ip, const struct rate_limit *l)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (inet_pton(AF_INET, ip, a) == 1) {
	v4:
		mask(a, 4, l->ipv4_prefix);
		inet_ntop(AF_INET, a, text, sizeof(text));
		return xasprintf("%s/%u", text, l->ipv4_prefix);
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return NULL;
	if (memcmp(a, mapped, sizeof(mapped)) == 0) {
		memmove(a, a + 12, 4);
		goto v4;
	}
	mask(a, 16, l->ipv6_prefix);
	inet_ntop(AF_INET6, a, text, sizeof(text));
	return xasprintf("%s/%u", text, l->ipv6_prefix);
}

/* key_value - the VALUE of l's state key for p: the parts joined by '|';
 * NULL when a part is missing (the limit does not apply) */
static char *key_value(const struct rate_limit *l, const struct parts *p)
{
	char *out = NULL;

	for (size_t i = 0; i < l->nparts; i++) {
		char *v = NULL, *next;

		switch (l->parts[i]) {
		case RATE_KEY_LOGIN: v = p->login ? xstrdup(p->login) : NULL; break;
		case RATE_KEY_CLIENT: v = p->ip ? client_value(p->ip, l) : NULL; break;
		case RATE_KEY_SENDER: v = p->sender ? xstrdup(p->sender) : NULL; break;
		case RATE_KEY_SENDER_DOMAIN:
			v = p->sender_domain ? xstrdup(p->sender_domain) : NULL;
			break;
		case RATE_KEY_RCPT_DOMAIN:
			v = p->rcpt_domain ? xstrdup(p->rcpt_domain) : NULL;
			break;
		}
		if (v == NULL) {
			free(out);
			return NULL;
		}
		next = out ? xasprintf("%s|%s", out, v) : xstrdup(v);
		free(out);
		free(v);
		out = next;
	}
	/* one line in logs and in weirctl rate show, whatever the client sent */
	for (char *c = out; c && *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			*c = '?';
	return out;
}

static bool domain_matches(const char *entry, const char *domain)
{
	char *const v[1] = {(char *)entry};

	return domain != NULL && domain_in_list(domain, v, 1);
}

/* override_for - the first override of l that matches p, or NULL */
static const struct rate_override *override_for(const struct rate_limit *l, const struct parts *p)
{
	for (size_t i = 0; i < l->noverrides; i++) {
		const struct rate_override *o = &l->overrides[i];

		if (o->login && (p->login == NULL || strcmp(o->login, p->login) != 0))
			continue;
		if (o->domain && !domain_matches(o->domain, p->sender_domain))
			continue;
		if (o->rcpt_domain && !domain_matches(o->rcpt_domain, p->rcpt_domain))
			continue;
		if (o->network && (p->ip == NULL || !cidr_match_text(o->network, p->ip)))
			continue;
		return o;
	}
	return NULL;
}

static bool has_part(const struct rate_limit *l, enum rate_key_part part)
{
	for (size_t i = 0; i < l->nparts; i++)
		if (l->parts[i] == part)
			return true;
	return false;
}

static bool seen_domain(const struct rate_context *ctx, const char *domain)
{
	for (size_t i = 0; i < ctx->n_seen_domains; i++)
		if (ctx->seen_domains[i] != NULL && strcmp(ctx->seen_domains[i], domain) == 0)
			return true;
	return false;
}

/* charged_now - whether l is charged at this stage (before its key) */
static bool charged_now(const struct rate_limit *l, enum rate_when when,
                        const struct rate_context *ctx, const struct parts *p)
{
	bool per_domain = has_part(l, RATE_KEY_RCPT_DOMAIN);

	if (ctx->identity_class != 0 && !(l->identities & ctx->identity_class))
		return false;
	if (when == RATE_AT_MAIL)
		return !l->recipients && !per_domain;
	if (l->recipients)
		return true;
	/* messages per recipient domain: once per domain per transaction */
	return per_domain && p->rcpt_domain != NULL && !seen_domain(ctx, p->rcpt_domain);
}

size_t rate_plan(const struct weir_config *cfg, enum rate_when when, const struct rate_context *ctx,
                 struct rate_item **items_r)
{
	struct rate_item *items = NULL;
	size_t n = 0;
	struct parts p;

	*items_r = NULL;
	if (cfg->rate.nlimits == 0)
		return 0;
	parts_init(&p, ctx);
	if (when == RATE_AT_MAIL) {
		free(p.rcpt_domain); /* the recipient is not known at MAIL */
		p.rcpt_domain = NULL;
	}
	for (size_t i = 0; i < cfg->rate.nlimits; i++) {
		const struct rate_limit *l = &cfg->rate.limits[i];
		const struct rate_override *o;
		struct rate_params par = l->params;
		struct rate_item *it;
		char *value;

		if (!charged_now(l, when, ctx, &p) || (value = key_value(l, &p)) == NULL)
			continue;
		if ((o = override_for(l, &p)) != NULL) {
			if (o->unlimited) {
				free(value);
				continue;
			}
			if (o->set_rate) {
				par.n = o->params.n;
				par.period_ms = o->params.period_ms;
			}
			if (o->set_burst)
				par.burst = o->params.burst;
			if (o->set_quota) {
				par.quota_n = o->params.quota_n;
				par.quota_period_ms = o->params.quota_period_ms;
			}
		}
		items = xrealloc(items, (n + 1) * sizeof(*items));
		it = &items[n++];
		it->state_key = xasprintf("%s:%s", l->name, value);
		free(value);
		it->limit_name = l->name;
		it->period_ms = par.period_ms;
		it->n = par.n;
		it->burst = par.burst;
		it->quota_period_ms = par.quota_period_ms;
		it->quota_n = par.quota_n;
		it->cost = 1;
		it->action = l->action;
	}
	parts_free(&p);
	*items_r = items;
	return n;
}

void rate_items_free(struct rate_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].state_key);
	free(items);
}

const char *rate_item_value(const struct rate_item *it)
{
	const char *c = strchr(it->state_key, ':');

	return c ? c + 1 : it->state_key;
}
