/* envelope - MAIL and RCPT: envelope sender, null sender, spoofing of
 * local domains from outside, and relay control (spec rules 1, 2, 4);
 * at RCPT then the suppression list (suppression.c) and the rate limits */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/session.h"
#include "policy/address.h"
#include "policy/senders.h"

/* strip_brackets - "<a@b>" -> "a@b", new memory: addresses are logged
 * and quoted in replies as the client wrote them */
static char *strip_brackets(const char *arg)
{
	size_t n = strlen(arg);

	while (n > 0 && (*arg == ' ' || *arg == '\t')) {
		arg++;
		n--;
	}
	if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>')
		return xstrndup(arg + 1, n - 2);
	return xstrdup(arg);
}

static bool is_local_domain(const struct weir_config *cfg, const char *domain)
{
	return domain_in_list(domain, cfg->local, cfg->nlocal);
}

static unsigned identity_class(enum identity id)
{
	switch (id) {
	case ID_AUTHENTICATED:
	case ID_CERTIFICATE: return IDENTITY_AUTHENTICATED;
	case ID_TRUSTED: return IDENTITY_TRUSTED;
	case ID_OUTSIDE: return IDENTITY_OUTSIDE;
	}
	return IDENTITY_OUTSIDE;
}

/* check_sender - rules on MAIL FROM for the message's identity */
static enum mlfi_status check_sender(struct conn *c, const struct mlfi_io *io,
				     const struct address *a, bool parsed)
{
	struct msg *m = c->msg;
	char text[1024];

	if (parsed && a->null) {
		if (c->cfg->null_sender_mask & identity_class(m->identity))
			return MLFI_CONTINUE;
		snprintf(text, sizeof(text), "%s may not use the null sender <>", identity_who(c));
		return decide(c, io, RULE_NULL_SENDER, text);
	}
	if (m->login != NULL) {
		if (parsed && sender_map_allows(c->cfg->sender_map, m->login, a->canonical))
			return MLFI_CONTINUE;
		snprintf(text, sizeof(text), "%.256s may not send as <%.300s>: use one of your own addresses",
			 m->login, m->sender);
		return decide(c, io, RULE_ENVELOPE_SENDER, text);
	}
	/* a->domain is where the address finally leads, source route or not
	 * (the MTA itself drops a source route and delivers to it) */
	if (m->identity == ID_OUTSIDE && parsed && a->domain != NULL &&
	    is_local_domain(c->cfg, a->domain)) {
		snprintf(text, sizeof(text),
			 "<%.300s> is a local address: authenticate with SMTP AUTH to send as it",
			 m->sender);
		return decide(c, io, RULE_SPOOFING, text);
	}
	return MLFI_CONTINUE;
}

enum mlfi_status session_mail(struct conn *c, const struct mlfi_io *io, char **argv)
{
	const char *arg = argv && argv[0] ? argv[0] : "<>";
	const char *v, *err;
	struct address a;
	enum mlfi_status st;
	struct msg *m;
	bool parsed;

	msg_free(c->msg);
	m = c->msg = xcalloc(1, sizeof(*c->msg));
	c->n_msgs++;
	v = io->getsymval(io->handle, "i");
	m->queue_id = v && v[0] ? xstrdup(v) : NULL;
	identity_decide(c, io, m);
	parsed = address_parse(arg, &a, &err) == 0;
	m->sender = strip_brackets(arg);
	if (!parsed)
		log_debug("conn=%lu MAIL FROM %s: %s", c->id, arg, err);
	st = check_sender(c, io, &a, parsed);
	if (st != MLFI_REJECT && st != MLFI_TEMPFAIL) {
		/* SPF checks the mailbox the MTA delivers to: no source route */
		const char *spf_sender = !parsed ? m->sender
					 : a.null ? ""
					 : (a.tricks & ADDR_SOURCE_ROUTE) ? a.canonical
									 : m->sender;
		st = spf_mail(c, io, spf_sender);
	}
	if (st != MLFI_REJECT && st != MLFI_TEMPFAIL)
		st = rate_mail(c, io);
	if (parsed)
		address_free(&a);
	if (st == MLFI_REJECT || st == MLFI_TEMPFAIL) {
		/* The transaction ends here: the message line now. */
		log_message(c, st == MLFI_REJECT ? "reject" : "tempfail", "sender refused", NULL);
		msg_free(c->msg);
		c->msg = NULL;
	}
	return st;
}

/* relay_check - an outside client may only send to local domains, and
 * never through an address that routes elsewhere */
static enum mlfi_status relay_check(struct conn *c, const struct mlfi_io *io, const char *arg)
{
	char *shown = strip_brackets(arg), text[600];
	enum mlfi_status st = MLFI_CONTINUE;
	struct address a;
	const char *err;
	bool parsed = address_parse(arg, &a, &err) == 0;

	if (parsed && a.tricks != 0) {
		snprintf(text, sizeof(text),
			 "<%.300s>: address routing (%%, !, source route, quoted @, IP literal) is "
			 "not accepted",
			 shown);
		st = decide(c, io, RULE_RELAY, text);
	} else if (!parsed || (a.domain == NULL ? strcasecmp(a.local, "postmaster") != 0
						: !is_local_domain(c->cfg, a.domain))) {
		/* RFC 5321 4.5.1: <postmaster> without a domain is local. */
		snprintf(text, sizeof(text),
			 "<%.300s>: relay access denied: authenticate with SMTP AUTH or send from a "
			 "trusted network",
			 shown);
		st = decide(c, io, RULE_RELAY, text);
	}
	if (parsed)
		address_free(&a);
	free(shown);
	return st;
}

enum mlfi_status session_rcpt(struct conn *c, const struct mlfi_io *io, char **argv)
{
	struct msg *m = c->msg;
	enum mlfi_status st = MLFI_CONTINUE;
	const char *arg;

	if (m == NULL || argv == NULL || argv[0] == NULL)
		return MLFI_CONTINUE;
	arg = argv[0];
	if (m->identity == ID_OUTSIDE)
		st = relay_check(c, io, arg);
	if (st != MLFI_REJECT && st != MLFI_TEMPFAIL) {
		char *rcpt = strip_brackets(arg);
		/* before the rate limits: a refused recipient spends no budget */
		st = suppression_rcpt(c, io, rcpt);
		if (st != MLFI_REJECT && st != MLFI_TEMPFAIL)
			st = rate_rcpt(c, io, rcpt);
		free(rcpt);
	}
	if (st == MLFI_REJECT || st == MLFI_TEMPFAIL) {
		m->n_refused++;
		return st;
	}
	m->rcpts = xrealloc(m->rcpts, (m->n_rcpts + 1) * sizeof(*m->rcpts));
	m->rcpts[m->n_rcpts++] = strip_brackets(arg);
	return st;
}
