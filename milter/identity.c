/* identity - who is sending: SMTP AUTH login, TLS client certificate,
 * trusted network, or an outside client (in that order) */
#include "autoconf.h"

#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "milter/session.h"

/* cert_login - the login senders.certificates gives the client's
 * certificate, or NULL */
static const char *cert_login(const struct conn *c)
{
	const struct weir_config *cfg = c->cfg;

	for (size_t i = 0; i < cfg->senders.ncerts; i++) {
		const struct cert_identity *ci = &cfg->senders.certs[i];
		if (ci->subject && c->cert_subject && strcmp(ci->subject, c->cert_subject) == 0)
			return ci->login;
		if (ci->fingerprint && c->cert_fingerprint &&
		    strcmp(ci->fingerprint, c->cert_fingerprint) == 0)
			return ci->login;
	}
	return NULL;
}

void identity_decide(struct conn *c, const struct mlfi_io *io, struct msg *m)
{
	const char *auth = io->getsymval(io->handle, "{auth_authen}");
	const char *login;

	if (auth != NULL && auth[0] != '\0') {
		m->identity = ID_AUTHENTICATED;
		m->login = xstrdup(auth);
	} else if ((login = cert_login(c)) != NULL) {
		m->identity = ID_CERTIFICATE;
		m->login = xstrdup(login);
	} else {
		m->identity = c->trusted ? ID_TRUSTED : ID_OUTSIDE;
	}
}

const char *identity_name(enum identity id)
{
	switch (id) {
	case ID_OUTSIDE: return "outside";
	case ID_TRUSTED: return "trusted";
	case ID_AUTHENTICATED: return "authenticated";
	case ID_CERTIFICATE: return "certificate";
	}
	return "?";
}

const char *identity_who(const struct conn *c)
{
	if (c->msg != NULL && c->msg->login != NULL)
		return c->msg->login;
	return c->client_addr ? c->client_addr : c->client_name;
}
