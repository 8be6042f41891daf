/* session - weir-milter's connection and message contexts
 *
 * The stage logic lives in identity.c, envelope.c, message.c and
 * decision.c; this file creates and frees the contexts. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/dkim.h"
#include "milter/session.h"

const char session_macros_connect[] = "j {daemon_name}";
const char session_macros_helo[] = "{tls_version} {cipher} {cert_subject} {cert_issuer} "
				   "{cert_fingerprint} {cert_md5} {verify}";
const char session_macros_envfrom[] = "i {auth_type} {auth_authen} {auth_ssf}";
const char session_macros_envrcpt[] = "{rcpt_addr}";
const char session_macros_eom[] = "i";

static atomic_ulong next_conn_id = 1;

/* format_addr - the text form of a client address, or NULL */
static char *format_addr(const struct sockaddr *sa)
{
	char buf[INET6_ADDRSTRLEN];

	if (sa == NULL)
		return NULL;
	if (sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
		      sizeof(buf)))
		return xstrdup(buf);
	if (sa->sa_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
		      sizeof(buf)))
		return xstrdup(buf);
	return NULL;
}

struct conn *session_connect(struct weir_config *cfg, const char *hostname,
			     const struct sockaddr *hostaddr)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->cfg = config_ref(cfg);
	c->id = atomic_fetch_add(&next_conn_id, 1);
	c->client_name = xstrdup(hostname ? hostname : "unknown");
	c->client_addr = format_addr(hostaddr);
	for (size_t i = 0; i < cfg->ntrusted && hostaddr; i++)
		if (cidr_match_sockaddr(&cfg->trusted[i], hostaddr))
			c->trusted = true;
	log_debug("conn=%lu connect client=%s[%s] trusted=%s", c->id, c->client_name,
		  c->client_addr ? c->client_addr : "local", c->trusted ? "yes" : "no");
	return c;
}

struct conn *session_negotiated(bool leadspc, unsigned long noreply)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->leadspc = leadspc;
	c->noreply = noreply;
	return c;
}

struct conn *session_connect_after(struct conn *negotiated, struct weir_config *cfg,
				   const char *hostname, const struct sockaddr *hostaddr)
{
	struct conn *c = session_connect(cfg, hostname, hostaddr);

	if (negotiated != NULL) {
		c->leadspc = negotiated->leadspc;
		c->noreply = negotiated->noreply;
		session_close(negotiated);
	}
	return c;
}

/* session_helo - HELO/EHLO; the TLS macros are current here */
enum mlfi_status session_helo(struct conn *c, const struct mlfi_io *io, const char *helo)
{
	const char *subject = io->getsymval(io->handle, "{cert_subject}");
	const char *fp = io->getsymval(io->handle, "{cert_fingerprint}");
	const char *verify = io->getsymval(io->handle, "{verify}");

	if (fp == NULL || fp[0] == '\0')
		fp = io->getsymval(io->handle, "{cert_md5}");
	/* Sendmail passes the certificate's subject whether or not it was
	 * verified, and says which in {verify}; Postfix passes it only for a
	 * verified certificate, and no {verify}. */
	if (verify != NULL && verify[0] != '\0' && strcmp(verify, "OK") != 0)
		subject = fp = NULL;
	free(c->helo);
	free(c->cert_subject);
	free(c->cert_fingerprint);
	c->helo = xstrdup(helo ? helo : "");
	c->cert_subject = subject && subject[0] ? xstrdup(subject) : NULL;
	c->cert_fingerprint = NULL;
	if (fp != NULL && fp[0] != '\0') {
		char *o = c->cert_fingerprint = xmalloc(strlen(fp) + 1);
		for (; *fp; fp++)
			if (*fp != ':' && *fp != ' ')
				*o++ = (char)(*fp >= 'A' && *fp <= 'F' ? *fp + 32 : *fp);
		*o = '\0';
	}
	return MLFI_CONTINUE;
}

void msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	free(m->queue_id);
	free(m->sender);
	free(m->login);
	free(m->hold);
	for (size_t i = 0; i < m->n_rcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	for (size_t i = 0; i < m->n_from && i < MSG_MAX_HEADERS; i++)
		free(m->from[i]);
	for (size_t i = 0; i < m->n_sender_hdr && i < MSG_MAX_HEADERS; i++)
		free(m->sender_hdr[i]);
	for (size_t i = 0; i < m->nheaders; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->headers);
	free(m->ar_ours);
	dkim_msg_free(m->dkim);
	for (size_t i = 0; i < m->n_spf; i++) {
		free(m->spf_received[i]);
		free(m->spf_ar[i]);
	}
	free(m->spf_log);
	free(m->rate_log);
	for (size_t i = 0; i < m->n_rate_domains; i++)
		free(m->rate_domains[i]);
	free(m->rate_domains);
	free(m);
}

void session_abort(struct conn *c, const struct mlfi_io *io)
{
	(void)io;
	if (c == NULL || c->msg == NULL)
		return;
	if (c->msg->n_rcpts == 0 && c->msg->n_refused > 0)
		log_message(c, "reject", "every recipient was refused", NULL);
	else
		log_message(c, "none", "aborted before end of message", NULL);
	msg_free(c->msg);
	c->msg = NULL;
}

void session_close(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->cfg != NULL)
		log_debug("conn=%lu disconnect messages=%u", c->id, c->n_msgs);
	msg_free(c->msg);
	free(c->client_name);
	free(c->client_addr);
	free(c->helo);
	free(c->cert_subject);
	free(c->cert_fingerprint);
	spf_conn_free(c);
	config_unref(c->cfg);
	free(c);
}
