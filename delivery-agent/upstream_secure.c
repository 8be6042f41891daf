/* upstream_secure - the secure half of opening an upstream session:
 * STARTTLS or implicit TLS (tls.c, libevent's bufferevent_openssl) and
 * AUTH (auth.c), between the first EHLO and ready (RFC 3207, RFC 4954).
 *
 * TLS per the host's tls: "none" never; "may" when offered, not
 * verified, and after a failed handshake once more without TLS;
 * "starttls" and "implicit" required and verified (unless verify =
 * false, logged per session as NOT verified). AUTH is never sent over a
 * connection without TLS unless tls = "none". Secrets are never logged:
 * AUTH lines go to the debug log as "AUTH MECH <hidden>". */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/tls.h"
#include "delivery-agent/upstream_int.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"

/* tls_required - STARTTLS or implicit: the certificate is checked
 * (unless verify = false), and no TLS means no session */
static bool tls_required(const struct upstream *up)
{
	return up->host->tls == ROUTE_TLS_STARTTLS || up->host->tls == ROUTE_TLS_IMPLICIT;
}

/* up_verified_word - verified= of the session log line */
const char *up_verified_word(const struct upstream *up)
{
	if (!up->tls_active || !tls_required(up))
		return "not-required";
	return up->tls_verified ? "yes" : "no";
}

/* log_session - the one line per opened session */
static void log_session(struct upstream *up)
{
	struct kvline kv;

	kv_init(&kv);
	kv_add(&kv, "host", up_host(up));
	kv_add(&kv, "address", up->address);
	if (up->tls_active)
		kv_addf(&kv, "tls", "%s/%s", up->tls_proto, up->tls_cipher);
	else
		kv_add(&kv, "tls", "none");
	kv_add(&kv, "verified", up_verified_word(up));
	kv_add(&kv, "auth", auth_mech_name(up->auth_used));
	log_info("upstream session %s", kv_str(&kv));
	kv_free(&kv);
}

/* session_ready - upstream_open succeeded: hand up the EHLO reply */
static void session_ready(struct upstream *up)
{
	up_forget_auth(up);
	evtimer_del(up->timer);
	up->state = UP_READY;
	log_session(up);
	up_deliver(up, &up->ehlo, NULL);
}

/* up_tls_failed - the handshake (or STARTTLS) failed: with "may" once more
 * to the same address without TLS, else the host failed */
void up_tls_failed(struct upstream *up, const char *reason)
{
	if (up->host->tls == ROUTE_TLS_MAY && !up->tls_fallback) {
		log_warning("upstream %s: TLS failed (%s): connecting again without TLS (tls = "
		            "\"may\")",
		            up->name, reason);
		up->tls_fallback = true;
		up->clear_why = "TLS failed and tls = \"may\" went on without it";
		up_close(up);
		up->next_addr--; /* the same address again */
		up_try_connect(up);
		return;
	}
	up_fail(up, UPF_TLS, "451 4.7.5 TLS with smart host %s failed: %s", up_host(up), reason);
}

/* up_start_tls - wrap the connection in TLS: a filter after STARTTLS, the
 * socket itself for implicit TLS */
void up_start_tls(struct upstream *up)
{
	const char *ca = up->host->ca_file && up->host->ca_file[0] ? up->host->ca_file
	                 : up->cfg->agent.tls_ca_file && up->cfg->agent.tls_ca_file[0]
	                     ? up->cfg->agent.tls_ca_file
	                     : NULL;
	bool verify = tls_required(up) && up->host->verify;
	struct bufferevent *bev;
	char err[256];
	SSL *ssl = tls_client_new(ca, verify, up_host(up), err, sizeof(err));

	if (ssl == NULL) {
		up_tls_failed(up, err);
		return;
	}
	evtimer_del(up->timer);
	if (up->host->tls == ROUTE_TLS_IMPLICIT) {
		/* the plain bufferevent only connected; the SSL one takes
		 * over its socket (it was made without BEV_OPT_CLOSE_ON_FREE) */
		evutil_socket_t fd = bufferevent_getfd(up->bev);
		bufferevent_free(up->bev);
		up->bev = NULL;
		bev = bufferevent_openssl_socket_new(up->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
		                                     BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			evutil_closesocket(fd);
	} else {
		bev = bufferevent_openssl_filter_new(
		    up->base, up->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (bev != NULL)
			up->bev = NULL; /* now owned by the filter */
	}
	up->bev_owns_fd = true;
	if (bev == NULL) {
		SSL_free(ssl);
		up_tls_failed(up, "cannot make a TLS bufferevent");
		return;
	}
	up->bev = bev;
	up->ssl = ssl;
	/* a server that closes without close_notify after QUIT is common */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setcb(bev, up_read_cb, NULL, up_event_cb, up);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	up->state = UP_TLS;
	snprintf(up->what, sizeof(up->what), "TLS handshake");
	up_arm(up, up->cfg->agent.connect_timeout);
}

/* up_tls_done - the handshake succeeded (and the certificate, when
 * verified, names the host) */
void up_tls_done(struct upstream *up)
{
	const char *cipher = SSL_get_cipher_name(up->ssl);

	up->tls_active = true;
	up->tls_verified = tls_required(up) && up->host->verify;
	snprintf(up->tls_proto, sizeof(up->tls_proto), "%s", SSL_get_version(up->ssl));
	snprintf(up->tls_cipher, sizeof(up->tls_cipher), "%s", cipher ? cipher : "?");
	if (tls_required(up) && !up->host->verify)
		log_warning("upstream %s: TLS certificate NOT verified (verify = false: for a lab "
		            "only)",
		            up->name);
	if (up->host->tls == ROUTE_TLS_IMPLICIT) {
		up->state = UP_GREETING;
		snprintf(up->what, sizeof(up->what), "greeting");
		up_arm(up, up->cfg->agent.connect_timeout);
		return;
	}
	/* RFC 3207 4.2: forget what was learnt before TLS, ask again */
	memset(&up->caps, 0, sizeof(up->caps));
	up->ehlo_after_tls = true;
	up_send_ehlo(up, "EHLO", UP_EHLO);
}

/* mech_list - the offered mechanisms weir knows, for messages */
static const char *mech_list(unsigned bits, char *buf, size_t size)
{
	static const enum auth_mech all[] = {AUTH_MECH_PLAIN, AUTH_MECH_LOGIN, AUTH_MECH_CRAM_MD5,
	                                     AUTH_MECH_XOAUTH2};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if ((bits & all[i]) && n < size)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "",
			                      auth_mech_name(all[i]));
	if (buf[0] == '\0')
		snprintf(buf, size, "none");
	return buf;
}

/* auth_wanted - the host logs in: an explicit mechanism, or "any" with
 * credentials or a token file */
static bool auth_wanted(const struct upstream *up)
{
	const struct route_host *h = up->host;

	if (h->auth == ROUTE_AUTH_NONE)
		return false;
	return h->auth != ROUTE_AUTH_ANY || h->credentials != NULL ||
	       (h->oauth2_token_file != NULL && h->oauth2_token_file[0] != '\0');
}

/* start_auth - AUTH with the host's credentials, or ready without */
static void start_auth(struct upstream *up)
{
	const struct route_host *h = up->host;
	const struct credential *cred;
	const char *err, *token = NULL;
	char buf[300], shown[64], *line;
	bool token_file = h->oauth2_token_file != NULL && h->oauth2_token_file[0] != '\0';
	enum auth_mech mech;

	if (!auth_wanted(up)) {
		session_ready(up);
		return;
	}
	if (!up->tls_active && h->tls != ROUTE_TLS_NONE) {
		up_fail(up, UPF_AUTH,
		        "451 4.7.8 smart host %s: weir sends AUTH only over TLS, and %s (%s)",
		        up_host(up), up->clear_why ? up->clear_why : "the session has no TLS",
		        up->name);
		return;
	}
	if (h->credentials == NULL) {
		up_fail(up, UPF_AUTH, "451 4.7.8 smart host %s: AUTH is set but no credentials",
		        up_host(up));
		return;
	}
	if ((cred = credential_find(up->cfg, h->credentials)) == NULL) {
		up_fail(up, UPF_AUTH,
		        "451 4.7.8 smart host %s: no credentials %s in agent.credentials_file",
		        up_host(up), h->credentials);
		return;
	}
	if (token_file && (h->auth == ROUTE_AUTH_ANY || h->auth == ROUTE_AUTH_XOAUTH2) &&
	    (token = auth_token(h->oauth2_token_file, buf, sizeof(buf))) == NULL) {
		up_fail(up, UPF_AUTH, "451 4.7.8 smart host %s: no XOAUTH2 token: %s", up_host(up),
		        buf);
		return;
	}
	mech = auth_choose(h->auth, up->caps.auth, token != NULL, &err);
	if (mech == AUTH_MECH_NONE) {
		up_fail(up, UPF_AUTH,
		        "451 4.7.8 smart host %s: no AUTH mechanism to use: %s (offered: %s)",
		        up_host(up), err, mech_list(up->caps.auth, buf, sizeof(buf)));
		return;
	}
	up->auth.mech = mech;
	up->auth.user = cred->user;
	if (mech == AUTH_MECH_XOAUTH2) {
		up->auth_token = xstrdup(token);
		up->auth.secret = up->auth_token;
	} else {
		up->auth.secret = cred->secret;
	}
	line = auth_start(&up->auth);
	snprintf(up->what, sizeof(up->what), "AUTH");
	up_send_line(up, line, auth_redact(line, shown, sizeof(shown)), UP_AUTH,
	             up->cfg->agent.command_timeout);
	auth_secret_free(line);
}

/* auth_refused - our credentials were refused (535, 5.7.8): 451 4.7.8
 * for the administrator to fix, or the server's 5xx as it is */
static void auth_refused(struct upstream *up)
{
	const struct route_host *h = up->host;
	char *q = up_quoted(up);

	log_warning("upstream %s: AUTH %s as credentials %s refused: %s", up->name,
	            auth_mech_name(up->auth.mech), h->credentials, q);
	free(q);
	if (up->cfg->agent.auth_failure == 1 && up->reply.code / 100 == 5) {
		struct smtp_reply r = up->reply;
		smtp_reply_init(&up->reply);
		up->failure = UPF_AUTH;
		up_forget_auth(up);
		up_close(up);
		up_deliver(up, &r, NULL);
		free(r.text);
		return;
	}
	up_fail(
	    up, UPF_AUTH,
	    "451 4.7.8 smart host %s refused weir's credentials (%s in agent.credentials_file): "
	    "fix them",
	    up_host(up), h->credentials);
}

/* up_auth_reply - a reply during the AUTH exchange */
void up_auth_reply(struct upstream *up)
{
	int code = up->reply.code;
	const char *err = NULL;
	char *resp, *q;

	if (code == 334 && up->auth_err == NULL) {
		resp = auth_continue(&up->auth, up->reply.text ? up->reply.text : "", &err);
		if (resp == NULL) {
			/* RFC 4954 4: "*" cancels; the server answers 501 */
			up->auth_err = err;
			up_send_line(up, "*", NULL, UP_AUTH, up->cfg->agent.command_timeout);
			return;
		}
		up_send_line(up, resp, "<hidden>", UP_AUTH, up->cfg->agent.command_timeout);
		auth_secret_free(resp);
		return;
	}
	if (code / 100 == 2 && up->auth_err == NULL) {
		up->auth_used = up->auth.mech;
		session_ready(up);
		return;
	}
	if (up->auth_err == NULL && (code == 535 || strcmp(up->reply.enhanced, "5.7.8") == 0)) {
		auth_refused(up);
		return;
	}
	q = up_quoted(up);
	up_fail(up, UPF_AUTH, "451 4.7.8 smart host %s: AUTH %s failed: %s%s%s said: %s",
	        up_host(up), auth_mech_name(up->auth.mech), up->auth_err ? up->auth_err : "",
	        up->auth_err ? "; " : "", up->name, q);
	free(q);
}

/* up_after_ehlo - STARTTLS when the host's tls asks for it, else AUTH */
void up_after_ehlo(struct upstream *up)
{
	enum route_tls t = up->host->tls;

	if (!up->tls_active && !up->tls_fallback &&
	    (t == ROUTE_TLS_MAY || t == ROUTE_TLS_STARTTLS)) {
		if (up->caps.starttls) {
			snprintf(up->what, sizeof(up->what), "STARTTLS");
			up_send_line(up, "STARTTLS", NULL, UP_STARTTLS,
			             up->cfg->agent.command_timeout);
			return;
		}
		if (t == ROUTE_TLS_STARTTLS) {
			up_fail(
			    up, UPF_TLS,
			    "451 4.7.5 TLS with smart host %s failed: %s does not offer STARTTLS",
			    up_host(up), up->name);
			return;
		}
		up->clear_why = "the server does not offer STARTTLS";
	}
	start_auth(up);
}

/* up_starttls_reply - 220: TLS; else go on in clear ("may") or fail */
void up_starttls_reply(struct upstream *up)
{
	char *q;

	if (up->reply.code == 220) {
		/* Anything after the 220 was sent before TLS by someone who
		 * wants it read as if protected (CVE-2011-0411's mirror). */
		if (evbuffer_get_length(bufferevent_get_input(up->bev)) > 0) {
			up_fail(
			    up, UPF_TLS,
			    "451 4.7.5 TLS with smart host %s failed: %s sent data after its 220 "
			    "to STARTTLS",
			    up_host(up), up->name);
			return;
		}
		up_start_tls(up);
		return;
	}
	q = up_quoted(up);
	if (up->host->tls == ROUTE_TLS_MAY) {
		log_info("upstream %s: STARTTLS refused (%s): going on without TLS", up->name, q);
		free(q);
		up->clear_why = "the server refused STARTTLS";
		start_auth(up);
		return;
	}
	up_fail(up, UPF_TLS,
	        "451 4.7.5 TLS with smart host %s failed: STARTTLS refused: %s said: %s",
	        up_host(up), up->name, q);
	free(q);
}
