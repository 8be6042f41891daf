/* mlfi - libmilter callbacks: translate SMFICTX into session calls
 *
 * This is the only file that includes libmilter/mfapi.h besides main.c.
 * libmilter runs each connection's callbacks in one thread at a time, but
 * different connections in parallel: all shared state lives in the
 * configuration (immutable, reference counted) and in thread-safe logs.
 * Each stage's time is observed here (milter/metrics.c). */
#include "autoconf.h"

#include <libmilter/mfapi.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "milter/mlfi.h"
#include "milter/metrics.h"
#include "milter/session.h"

static const char *io_getsymval(void *h, const char *name)
{
	return smfi_getsymval(h, (char *)name);
}

static int io_setreply(void *h, const char *code, const char *enhanced, const char *text)
{
	/* libmilter treats '%' in the text as a format character. */
	char safe[512];
	size_t j = 0;

	for (size_t i = 0; text[i] && j + 2 < sizeof(safe); i++) {
		if (text[i] == '%')
			safe[j++] = '%';
		safe[j++] = text[i] == '\r' || text[i] == '\n' ? ' ' : text[i];
	}
	safe[j] = '\0';
	return smfi_setreply(h, (char *)code, (char *)enhanced, safe) == MI_SUCCESS ? 0 : -1;
}

static int io_addheader(void *h, const char *name, const char *value)
{
	return smfi_addheader(h, (char *)name, (char *)value) == MI_SUCCESS ? 0 : -1;
}

static int io_quarantine(void *h, const char *reason)
{
	return smfi_quarantine(h, (char *)reason) == MI_SUCCESS ? 0 : -1;
}

static int io_insheader(void *h, int index, const char *name, const char *value)
{
	return smfi_insheader(h, index, (char *)name, (char *)value) == MI_SUCCESS ? 0 : -1;
}

static int io_delheader(void *h, const char *name, int index)
{
	return smfi_chgheader(h, (char *)name, index, NULL) == MI_SUCCESS ? 0 : -1;
}

static struct mlfi_io io_for(SMFICTX *ctx)
{
	struct mlfi_io io = {ctx,	   io_getsymval, io_setreply, io_addheader, io_quarantine,
			     io_insheader, io_delheader};

	return io;
}

static sfsistat to_sfsistat(enum mlfi_status st)
{
	switch (st) {
	case MLFI_CONTINUE: return SMFIS_CONTINUE;
	case MLFI_ACCEPT: return SMFIS_ACCEPT;
	case MLFI_REJECT: return SMFIS_REJECT;
	case MLFI_TEMPFAIL: return SMFIS_TEMPFAIL;
	case MLFI_DISCARD: return SMFIS_DISCARD;
	}
	return SMFIS_TEMPFAIL;
}

/* tempfail_no_context - a stage ran without a connection context: the
 * only safe answer is a temporary failure. */
static sfsistat tempfail_no_context(SMFICTX *ctx, const char *stage)
{
	log_error("%s: no connection context; answering 451 4.3.0", stage);
	smfi_setreply(ctx, "451", "4.3.0", "weir-milter: internal error, try again later");
	return SMFIS_TEMPFAIL;
}

static sfsistat mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			       unsigned long f2, unsigned long f3, unsigned long *pf0,
			       unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	/* Actions later stages will use; ask only for those offered. */
	const unsigned long want_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE |
					   SMFIF_SETSYMLIST;
	/* Stages weir does not need: the MTA skips them. Header values
	 * with their leading whitespace, so DKIM sees the header as sent.
	 * No reply to HELO, each header and each body chunk (weir never
	 * refuses there): a round trip less for each. */
	const unsigned long noreply = SMFIP_NR_HELO | SMFIP_NR_HDR | SMFIP_NR_BODY;
	const unsigned long steps = SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_HDR_LEADSPC | noreply;
	struct conn *old = smfi_getpriv(ctx);

	(void)f2;
	(void)f3;
	*pf0 = f0 & want_actions;
	*pf1 = f1 & steps;
	session_close(old);
	smfi_setpriv(ctx, session_negotiated((*pf1 & SMFIP_HDR_LEADSPC) != 0, *pf1 & noreply));
	*pf2 = 0;
	*pf3 = 0;
	if (f0 & SMFIF_SETSYMLIST) {
		smfi_setsymlist(ctx, SMFIM_CONNECT, (char *)session_macros_connect);
		smfi_setsymlist(ctx, SMFIM_HELO, (char *)session_macros_helo);
		smfi_setsymlist(ctx, SMFIM_ENVFROM, (char *)session_macros_envfrom);
		smfi_setsymlist(ctx, SMFIM_ENVRCPT, (char *)session_macros_envrcpt);
		smfi_setsymlist(ctx, SMFIM_EOM, (char *)session_macros_eom);
	}
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	double start = mm_now();
	struct weir_config *cfg = config_current();
	struct conn *c;

	if (cfg == NULL)
		return tempfail_no_context(ctx, "connect");
	c = session_connect_after(smfi_getpriv(ctx), cfg, hostname, hostaddr);
	config_unref(cfg);
	if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
		session_close(c);
		return tempfail_no_context(ctx, "connect");
	}
	mm_stage("connect", start);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_helo(SMFICTX *ctx, char *helo)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlfi_io io = io_for(ctx);

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "helo");
	session_helo(c, &io, helo);
	return c->noreply & SMFIP_NR_HELO ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlfi_io io = io_for(ctx);
	double start = mm_now();
	sfsistat st;

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "mail");
	st = to_sfsistat(session_mail(c, &io, argv));
	mm_stage("mail", start);
	return st;
}

static sfsistat mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlfi_io io = io_for(ctx);
	double start = mm_now();
	sfsistat st;

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "rcpt");
	st = to_sfsistat(session_rcpt(c, &io, argv));
	mm_stage("rcpt", start);
	return st;
}

static sfsistat mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "header");
	session_header(c, name, value);
	return c->noreply & SMFIP_NR_HDR ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat mlfi_eoh(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlfi_io io = io_for(ctx);

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "end of headers");
	return to_sfsistat(session_eoh(c, &io));
}

static sfsistat mlfi_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "body");
	session_body(c, data, len);
	return c->noreply & SMFIP_NR_BODY ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat mlfi_eom(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlfi_io io = io_for(ctx);
	double start = mm_now();
	sfsistat st;

	if (c == NULL || c->cfg == NULL)
		return tempfail_no_context(ctx, "end of message");
	st = to_sfsistat(session_eom(c, &io));
	mm_stage("eom", start);
	return st;
}

static sfsistat mlfi_abort(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	struct mlfi_io io = io_for(ctx);

	if (c != NULL && c->cfg != NULL)
		session_abort(c, &io);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	smfi_setpriv(ctx, NULL);
	session_close(c);
	return SMFIS_CONTINUE;
}

int mlfi_register(void)
{
	struct smfiDesc desc;

	memset(&desc, 0, sizeof(desc));
	desc.xxfi_name = (char *)"weir-milter";
	desc.xxfi_version = SMFI_VERSION;
	desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST;
	desc.xxfi_connect = mlfi_connect;
	desc.xxfi_helo = mlfi_helo;
	desc.xxfi_envfrom = mlfi_envfrom;
	desc.xxfi_envrcpt = mlfi_envrcpt;
	desc.xxfi_header = mlfi_header;
	desc.xxfi_eoh = mlfi_eoh;
	desc.xxfi_body = mlfi_body;
	desc.xxfi_eom = mlfi_eom;
	desc.xxfi_abort = mlfi_abort;
	desc.xxfi_close = mlfi_close;
	desc.xxfi_negotiate = mlfi_negotiate;
	return smfi_register(desc) == MI_SUCCESS ? 0 : -1;
}
