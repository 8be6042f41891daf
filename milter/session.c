/* session - weir-milter's stage logic, free of libmilter types
 *
 * For now weir-milter observes: it records the client, the SMTP AUTH
 * login, the envelope, and logs one key=value line per message with the
 * decision (accept). Policy checks (sender authentication, SPF, DKIM,
 * rates) hook into the stages below. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/session.h"

/* Most recipients named in the per-message log line; the count is
 * always logged in full. */
#define LOG_MAX_RCPTS 20

const char session_macros_connect[] = "j {daemon_name}";
const char session_macros_helo[] = "{tls_version} {cipher} {cert_subject} {cert_issuer}";
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
	log_debug("conn=%lu connect client=%s[%s]", c->id, c->client_name,
		  c->client_addr ? c->client_addr : "local");
	return c;
}

enum mlfi_status session_helo(struct conn *c, const char *helo)
{
	free(c->helo);
	c->helo = xstrdup(helo ? helo : "");
	return MLFI_CONTINUE;
}

static void msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	free(m->queue_id);
	free(m->auth_login);
	free(m->sender);
	for (size_t i = 0; i < m->n_rcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m);
}

/* strip_brackets - "<a@b>" -> "a@b", new memory */
static char *strip_brackets(const char *arg)
{
	size_t n = strlen(arg);

	if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>')
		return xstrndup(arg + 1, n - 2);
	return xstrdup(arg);
}

static char *macro_dup(const struct mlfi_io *io, const char *name)
{
	const char *v = io->getsymval(io->handle, name);

	return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

enum mlfi_status session_mail(struct conn *c, const struct mlfi_io *io, char **argv)
{
	msg_free(c->msg);
	c->msg = xcalloc(1, sizeof(*c->msg));
	c->msg->sender = strip_brackets(argv && argv[0] ? argv[0] : "");
	c->msg->auth_login = macro_dup(io, "{auth_authen}");
	c->msg->queue_id = macro_dup(io, "i");
	c->n_msgs++;
	return MLFI_CONTINUE;
}

enum mlfi_status session_rcpt(struct conn *c, const struct mlfi_io *io, char **argv)
{
	struct msg *m = c->msg;

	(void)io;
	if (m == NULL || argv == NULL || argv[0] == NULL)
		return MLFI_CONTINUE;
	m->rcpts = xrealloc(m->rcpts, (m->n_rcpts + 1) * sizeof(*m->rcpts));
	m->rcpts[m->n_rcpts++] = strip_brackets(argv[0]);
	return MLFI_CONTINUE;
}

/* log_message - the one key=value line per message */
static void log_message(struct conn *c, const char *decision, const char *reason)
{
	struct msg *m = c->msg;
	struct kvline kv;
	char *list = NULL;
	size_t len = 0;

	kv_init(&kv);
	kv_add(&kv, "queue_id", m->queue_id ? m->queue_id : "NOQUEUE");
	kv_addf(&kv, "conn", "%lu", c->id);
	kv_addf(&kv, "client", "%s[%s]", c->client_name, c->client_addr ? c->client_addr : "local");
	if (c->helo)
		kv_add(&kv, "helo", c->helo);
	kv_add(&kv, "auth", m->auth_login ? m->auth_login : "-");
	kv_addf(&kv, "from", "<%s>", m->sender);
	for (size_t i = 0; i < m->n_rcpts && i < LOG_MAX_RCPTS; i++) {
		size_t n = strlen(m->rcpts[i]);
		list = xrealloc(list, len + n + 4);
		len += (size_t)sprintf(list + len, "%s<%s>", i ? "," : "", m->rcpts[i]);
	}
	if (m->n_rcpts > LOG_MAX_RCPTS) {
		list = xrealloc(list, len + 5);
		strcpy(list + len, ",...");
	}
	kv_add(&kv, "rcpts", list ? list : "");
	kv_addf(&kv, "nrcpt", "%zu", m->n_rcpts);
	kv_add(&kv, "decision", decision);
	if (reason)
		kv_add(&kv, "reason", reason);
	log_info("%s", kv_str(&kv));
	kv_free(&kv);
	free(list);
}

enum mlfi_status session_eom(struct conn *c, const struct mlfi_io *io)
{
	if (c->msg == NULL)
		return MLFI_CONTINUE;
	if (c->msg->queue_id == NULL)
		c->msg->queue_id = macro_dup(io, "i");
	log_message(c, "accept", NULL);
	msg_free(c->msg);
	c->msg = NULL;
	return MLFI_CONTINUE;
}

void session_abort(struct conn *c, const struct mlfi_io *io)
{
	(void)io;
	if (c == NULL || c->msg == NULL)
		return;
	log_message(c, "none", "aborted before end of message");
	msg_free(c->msg);
	c->msg = NULL;
}

void session_close(struct conn *c)
{
	if (c == NULL)
		return;
	log_debug("conn=%lu disconnect messages=%u", c->id, c->n_msgs);
	msg_free(c->msg);
	free(c->client_name);
	free(c->client_addr);
	free(c->helo);
	config_unref(c->cfg);
	free(c);
}
