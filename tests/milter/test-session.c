/* test-session - weir-milter's stage logic driven without an MTA, through
 * a fake mlfi_io: per-message log line, abort, and every path frees */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/session.h"
#include "tests/testlib.h"

struct fake {
	const char *macros[16][2];
};

static const char *fake_getsymval(void *h, const char *name)
{
	struct fake *f = h;

	for (int i = 0; i < 16 && f->macros[i][0]; i++)
		if (strcmp(f->macros[i][0], name) == 0)
			return f->macros[i][1];
	return NULL;
}

static char last_line[4096];
static int lines;

static void capture(enum log_level level, const char *line)
{
	(void)level;
	snprintf(last_line, sizeof(last_line), "%s", line);
	lines++;
}

static struct weir_config *config(void)
{
	struct config_errors errs;
	struct weir_config *cfg;

	config_errors_init(&errs);
	cfg = config_load_string("t.conf", "", 0, &errs);
	config_errors_free(&errs);
	return cfg;
}

static void test_one_message(void)
{
	struct fake f = {{{"i", "4XyZ1"}, {"{auth_authen}", "alice"}}};
	struct mlfi_io io = {&f, fake_getsymval, NULL, NULL, NULL};
	struct weir_config *cfg = config();
	struct sockaddr_in sin = {0};
	char *mail[] = {"<alice@example.com>", "SIZE=100", NULL};
	char *r1[] = {"<bob@example.net>", NULL};
	char *r2[] = {"<carol@example.org>", "NOTIFY=NEVER", NULL};
	struct conn *c;

	test_begin("one line per message, with queue id, client, login, envelope");
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	c = session_connect(cfg, "client.example", (struct sockaddr *)&sin);
	config_unref(cfg); /* the connection holds its own reference */
	test_assert(session_helo(c, "helo.example") == MLFI_CONTINUE);
	test_assert(session_mail(c, &io, mail) == MLFI_CONTINUE);
	test_assert(session_rcpt(c, &io, r1) == MLFI_CONTINUE);
	test_assert(session_rcpt(c, &io, r2) == MLFI_CONTINUE);
	lines = 0;
	test_assert(session_eom(c, &io) == MLFI_CONTINUE);
	test_assert(lines == 1);
	test_assert(strncmp(last_line, "queue_id=4XyZ1 conn=", 20) == 0);
	test_assert_str(strstr(last_line, " client="),
			" client=client.example[192.0.2.7] helo=helo.example auth=alice "
			"from=<alice@example.com> rcpts=<bob@example.net>,<carol@example.org> "
			"nrcpt=2 decision=accept");
	test_end();
	session_close(c);
}

static void test_line_content(void)
{
	struct fake f = {{{"i", "ABC"}}};
	struct mlfi_io io = {&f, fake_getsymval, NULL, NULL, NULL};
	struct weir_config *cfg = config();
	char *mail[] = {"<>", NULL};
	char *r1[] = {"<postmaster@example.net>", NULL};
	struct conn *c;
	const char *rest;

	test_begin("null sender, unauthenticated, local client");
	c = session_connect(cfg, NULL, NULL);
	config_unref(cfg);
	session_mail(c, &io, mail);
	session_rcpt(c, &io, r1);
	session_eom(c, &io);
	rest = strstr(last_line, " client=");
	test_assert(strncmp(last_line, "queue_id=ABC conn=", 18) == 0);
	test_assert_str(rest, " client=unknown[local] auth=- from=<> "
			      "rcpts=<postmaster@example.net> nrcpt=1 decision=accept");
	test_end();

	test_begin("abort logs the message as not delivered and frees it");
	lines = 0;
	session_mail(c, &io, mail);
	session_rcpt(c, &io, r1);
	session_abort(c, &io);
	test_assert(lines == 1);
	test_assert(strstr(last_line, "decision=none reason=\"aborted before end of message\"") !=
		    NULL);
	test_assert(c->msg == NULL);
	lines = 0;
	session_eom(c, &io); /* no message: nothing to log */
	test_assert(lines == 0);
	test_end();

	test_begin("close with a message in progress frees it");
	session_mail(c, &io, mail);
	session_rcpt(c, &io, r1);
	session_close(c); /* leak checkers see a leak if not */
	test_end();
}

static void test_many_recipients(void)
{
	struct fake f = {{{"i", "MANY"}}};
	struct mlfi_io io = {&f, fake_getsymval, NULL, NULL, NULL};
	struct weir_config *cfg = config();
	char *mail[] = {"<a@example.com>", NULL};
	struct conn *c = session_connect(cfg, "h", NULL);
	char addr[64];
	char *r[] = {addr, NULL};

	test_begin("the line stays bounded with 500 recipients");
	config_unref(cfg);
	session_mail(c, &io, mail);
	for (int i = 0; i < 500; i++) {
		snprintf(addr, sizeof(addr), "<user%03d@example.net>", i);
		session_rcpt(c, &io, r);
	}
	session_eom(c, &io);
	test_assert(strstr(last_line, "nrcpt=500 decision=accept") != NULL);
	test_assert(strstr(last_line, "<user019@example.net>,...") != NULL);
	test_assert(strstr(last_line, "user020") == NULL);
	session_close(c);
	test_end();
}

int main(void)
{
	log_open("test-session", true, "mail");
	log_set_hook(capture);
	test_one_message();
	test_line_content();
	test_many_recipients();
	return test_exit_status();
}
