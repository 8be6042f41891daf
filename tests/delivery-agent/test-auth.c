/* test-auth - SMTP AUTH client encodings (delivery-agent/auth.c), the
 * EHLO capability parser (ehlo.c) and agent.credentials_file
 * (policy/credentials.c)
 *
 * Reference values: RFC 2195's CRAM-MD5 example, RFC 4616's PLAIN
 * layout, Google's documented XOAUTH2 example string. */
#include "autoconf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery-agent/auth.h"
#include "delivery-agent/ehlo.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"
#include "tests/testlib.h"

static char dir[64];

/* write_file - dir/name with text and mode; returns the path (static) */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

static void test_base64(void)
{
	size_t n;
	char *s;
	unsigned char *d;

	test_begin("base64 both ways (RFC 4648 vectors)");
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
	                                  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		s = auth_base64(plain[i], strlen(plain[i]));
		test_assert_str(s, enc[i]);
		free(s);
		d = auth_unbase64(enc[i], strlen(enc[i]), &n);
		test_assert(d != NULL && n == strlen(plain[i]) && memcmp(d, plain[i], n) == 0);
		free(d);
	}
	test_assert(auth_unbase64("Zm9v!", 5, &n) == NULL);
	test_assert(auth_unbase64("Z", 1, &n) == NULL);
	test_assert(auth_unbase64("Zg=", 3, &n) == NULL);
	d = auth_unbase64("Zg", 2, &n); /* unpadded is accepted */
	test_assert(d != NULL && n == 1 && d[0] == 'f');
	free(d);
	test_end();
}

static void test_plain(void)
{
	struct auth_client a = {
	    .mech = AUTH_MECH_PLAIN, .user = "tim", .secret = "tanstaaftanstaaf"};
	const char *err;
	char *s;

	test_begin("PLAIN: \\0user\\0secret in the AUTH line (RFC 4616)");
	s = auth_plain("tim", "tanstaaftanstaaf");
	test_assert_str(s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	auth_secret_free(s);
	s = auth_start(&a);
	test_assert_str(s, "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	auth_secret_free(s);
	/* a server that wants the response after an empty challenge */
	s = auth_continue(&a, "", &err);
	test_assert_str(s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	auth_secret_free(s);
	s = auth_continue(&a, "", &err);
	test_assert(s == NULL);
	test_end();
}

static void test_login(void)
{
	struct auth_client a = {.mech = AUTH_MECH_LOGIN, .user = "tim", .secret = "pw d"};
	const char *err = NULL;
	char *s;

	test_begin("LOGIN: user, then password, whatever the prompts say");
	s = auth_start(&a);
	test_assert_str(s, "AUTH LOGIN");
	free(s);
	s = auth_continue(&a, "VXNlcm5hbWU6", &err);
	test_assert_str(s, "dGlt");
	free(s);
	s = auth_continue(&a, "UGFzc3dvcmQA", &err); /* aiosmtpd's "Password\0" */
	test_assert_str(s, "cHcgZA==");
	auth_secret_free(s);
	s = auth_continue(&a, "VXNlcm5hbWU6", &err);
	test_assert(s == NULL && err != NULL);
	test_end();
}

static void test_cram_md5(void)
{
	struct auth_client a = {
	    .mech = AUTH_MECH_CRAM_MD5, .user = "tim", .secret = "tanstaaftanstaaf"};
	const char *ch = "<1896.697170952@postoffice.reston.mci.net>", *err = NULL;
	char *s;

	test_begin("CRAM-MD5: RFC 2195's example");
	s = auth_cram_md5("tim", "tanstaaftanstaaf", (const unsigned char *)ch, strlen(ch));
	/* base64("tim b913a602c7eda7a495b4e6e7334d3890") */
	test_assert_str(s, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
	auth_secret_free(s);
	s = auth_start(&a);
	test_assert_str(s, "AUTH CRAM-MD5");
	free(s);
	s = auth_continue(&a, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", &err);
	test_assert_str(s, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
	auth_secret_free(s);
	a.step = 0;
	s = auth_continue(&a, "not base64!", &err);
	test_assert(s == NULL && err != NULL && strstr(err, "base64") != NULL);
	test_end();
}

static void test_xoauth2(void)
{
	struct auth_client a = {.mech = AUTH_MECH_XOAUTH2,
	                        .user = "someuser@example.com",
	                        .secret = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"};
	const char *err = NULL;
	char *s;

	test_begin("XOAUTH2: user=U^Aauth=Bearer T^A^A (Google's example)");
	s = auth_start(&a);
	test_assert_str(s, "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5"
	                   "LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
	auth_secret_free(s);
	/* an error report as 334: answered with an empty line */
	s = auth_continue(&a, "eyJzdGF0dXMiOiI0MDEifQ==", &err);
	test_assert_str(s, "");
	free(s);
	test_end();
}

static void test_choose(void)
{
	const char *err = NULL;
	unsigned all = AUTH_MECH_PLAIN | AUTH_MECH_LOGIN | AUTH_MECH_CRAM_MD5 | AUTH_MECH_XOAUTH2;

	test_begin("choosing the mechanism");
	test_assert(auth_choose(ROUTE_AUTH_ANY, all, false, &err) == AUTH_MECH_CRAM_MD5);
	test_assert(auth_choose(ROUTE_AUTH_ANY, all, true, &err) == AUTH_MECH_XOAUTH2);
	test_assert(auth_choose(ROUTE_AUTH_ANY, AUTH_MECH_PLAIN | AUTH_MECH_LOGIN, false, &err) ==
	            AUTH_MECH_PLAIN);
	test_assert(auth_choose(ROUTE_AUTH_ANY, AUTH_MECH_LOGIN, false, &err) == AUTH_MECH_LOGIN);
	test_assert(auth_choose(ROUTE_AUTH_ANY, AUTH_MECH_XOAUTH2, false, &err) == AUTH_MECH_NONE);
	test_assert(auth_choose(ROUTE_AUTH_ANY, AUTH_MECH_PLAIN, true, &err) == AUTH_MECH_NONE);
	test_assert(auth_choose(ROUTE_AUTH_LOGIN, all, false, &err) == AUTH_MECH_LOGIN);
	test_assert(auth_choose(ROUTE_AUTH_PLAIN, AUTH_MECH_LOGIN, false, &err) == AUTH_MECH_NONE);
	test_assert(auth_choose(ROUTE_AUTH_XOAUTH2, all, false, &err) == AUTH_MECH_NONE);
	test_assert(auth_choose(ROUTE_AUTH_XOAUTH2, all, true, &err) == AUTH_MECH_XOAUTH2);
	err = NULL;
	test_assert(auth_choose(ROUTE_AUTH_ANY, 0, false, &err) == AUTH_MECH_NONE);
	test_assert(err != NULL && strstr(err, "no AUTH") != NULL);
	test_end();
}

static void test_redact(void)
{
	struct auth_client a = {.mech = AUTH_MECH_PLAIN, .user = "tim", .secret = "s3cret"};
	char buf[64], *s = auth_start(&a);

	test_begin("AUTH lines are logged without the response");
	test_assert_str(auth_redact(s, buf, sizeof(buf)), "AUTH PLAIN <hidden>");
	test_assert_str(auth_redact("AUTH LOGIN", buf, sizeof(buf)), "AUTH LOGIN");
	test_assert_str(auth_redact("dGlt", buf, sizeof(buf)), "<hidden>");
	auth_secret_free(s);
	test_end();
}

static void test_token_file(void)
{
	char err[256];
	const char *path, *tok;
	struct timespec ts[2] = {{0, 0}, {0, 0}};

	test_begin("XOAUTH2 token file: first line, re-read on change, mode 600");
	path = write_file("token", "  ya29.first  \nsecond line\n", 0600);
	tok = auth_token(path, err, sizeof(err));
	test_assert_str(tok, "ya29.first");
	tok = auth_token(path, err, sizeof(err));
	test_assert_str(tok, "ya29.first");
	/* replaced by a refresher: same size, another mtime */
	write_file("token", "ya29.secnd\n", 0600);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) + 5;
	utimensat(AT_FDCWD, path, ts, 0);
	tok = auth_token(path, err, sizeof(err));
	test_assert_str(tok, "ya29.secnd");
	chmod(path, 0640);
	tok = auth_token(path, err, sizeof(err));
	test_assert(tok == NULL);
	test_assert(strstr(err, "readable by group or others: run chmod 600") != NULL);
	test_assert(strstr(err, "ya29") == NULL);
	write_file("token", "\n\n", 0600);
	test_assert(auth_token(path, err, sizeof(err)) == NULL);
	test_assert(strstr(err, "no token") != NULL);
	snprintf(err, sizeof(err), "%s/none", dir);
	test_assert(auth_token(err, err, sizeof(err)) == NULL);
	auth_token_cache_free();
	test_end();
}

static void test_ehlo(void)
{
	struct ehlo_caps c;

	test_begin("EHLO capabilities");
	ehlo_parse("mx.example greets you PIPELINING SIZE\nPIPELINING\nsize 35882577\n8BITMIME\n"
	           "SMTPUTF8\nDSN\nSTARTTLS\nAUTH LOGIN PLAIN XOAUTH2 "
	           "GSSAPI\nCHUNKING\nENHANCEDSTATUSCODES",
	           &c);
	test_assert(c.pipelining && c.eightbitmime && c.smtputf8 && c.dsn && c.starttls &&
	            c.chunking && c.has_size && c.size == 35882577);
	test_assert(c.auth == (AUTH_MECH_LOGIN | AUTH_MECH_PLAIN | AUTH_MECH_XOAUTH2));
	/* the first line is the server's name: its words are no keywords */
	ehlo_parse("STARTTLS\nAUTH=CRAM-MD5\nSIZE\n8BITMIMEX\nDSNX", &c);
	test_assert(!c.starttls && !c.eightbitmime && !c.dsn);
	test_assert(c.auth == AUTH_MECH_CRAM_MD5 && c.has_size && c.size == 0);
	ehlo_parse("x\nSIZE 99999999999999999999\nSIZE -1", &c);
	test_assert(c.has_size && c.size == 0);
	ehlo_parse("x\nSIZE 12ab", &c);
	test_assert(c.has_size && c.size == 0);
	ehlo_parse("x\nAUTH  plain   cram-md5 ", &c);
	test_assert(c.auth == (AUTH_MECH_PLAIN | AUTH_MECH_CRAM_MD5));
	ehlo_parse("only a name", &c);
	test_assert(!c.pipelining && !c.has_size && c.auth == 0);
	ehlo_parse("", &c);
	ehlo_parse(NULL, &c);
	test_assert(c.auth == 0);
	test_end();
}

static struct config_errors errs;

/* load_creds - a configuration whose credentials file holds text */
static struct weir_config *load_creds(const char *text, mode_t mode)
{
	const char *path = write_file("creds", text, mode);
	char *conf = xasprintf("user = \"root\";\nagent = { credentials_file = \"%s\"; };\n", path);
	struct weir_config *cfg;

	config_errors_free(&errs);
	config_errors_init(&errs);
	cfg = config_load_string("t.conf", conf, CONFIG_FOR_MILTER, &errs);
	free(conf);
	return cfg;
}

/* errors_have - some error contains want, and none contains secret */
static bool errors_have(const char *want, const char *secret)
{
	bool found = false;

	for (size_t i = 0; i < errs.list.n; i++) {
		if (strstr(errs.list.v[i], want) != NULL)
			found = true;
		if (secret != NULL && strstr(errs.list.v[i], secret) != NULL) {
			fprintf(stderr, "  secret in error: %s\n", errs.list.v[i]);
			return false;
		}
	}
	if (!found) {
		fprintf(stderr, "  no error containing \"%s\"; errors were:\n", want);
		for (size_t i = 0; i < errs.list.n; i++)
			fprintf(stderr, "    %s\n", errs.list.v[i]);
	}
	return found;
}

static void test_credentials(void)
{
	struct weir_config *cfg;
	const struct credential *c;
	char want[200];

	test_begin("credentials file: NAME USER SECRET");
	cfg = load_creds("# smart hosts\n\nm365 alice@example.com pa ss w0rd  \n"
	                 "  ses\tAKIAEXAMPLE\tsecret#not-a-comment\r\n",
	                 0600);
	test_assert(cfg != NULL);
	if (cfg != NULL) {
		test_assert(cfg->agent.ncredentials == 2);
		c = credential_find(cfg, "m365");
		test_assert(c != NULL && strcmp(c->user, "alice@example.com") == 0 &&
		            strcmp(c->secret, "pa ss w0rd") == 0);
		c = credential_find(cfg, "ses");
		test_assert(c != NULL && strcmp(c->user, "AKIAEXAMPLE") == 0 &&
		            strcmp(c->secret, "secret#not-a-comment") == 0);
		test_assert(credential_find(cfg, "none") == NULL);
		test_assert(credential_find(cfg, NULL) == NULL);
	}
	config_unref(cfg);
	test_end();

	test_begin("credentials file: errors with file:line, never the secret");
	cfg = load_creds("ok u p4ss\nbad only-two\nok u2 s3cret-dup\nb@d u hunter2\n", 0600);
	test_assert(cfg == NULL);
	snprintf(want, sizeof(want), "%s/creds:2: expected NAME USER SECRET", dir);
	test_assert(errors_have(want, NULL));
	snprintf(want, sizeof(want), "%s/creds:3: credential ok defined twice", dir);
	test_assert(errors_have(want, "s3cret-dup"));
	snprintf(want, sizeof(want), "%s/creds:4: credential name", dir);
	test_assert(errors_have(want, "hunter2"));
	test_end();

	test_begin("credentials file: refused when group or world readable");
	cfg = load_creds("m u p\n", 0644);
	test_assert(cfg == NULL);
	snprintf(want, sizeof(want),
	         "%s/creds: readable by group or others: run chmod 600 %s/creds", dir, dir);
	test_assert(errors_have(want, NULL));
	cfg = load_creds("m u p\n", 0640);
	test_assert(cfg == NULL);
	test_assert(errors_have("run chmod 600", NULL));
	test_end();

	test_begin("credentials file: missing");
	config_errors_free(&errs);
	config_errors_init(&errs);
	cfg = config_load_string("t.conf", "agent = { credentials_file = \"/nonexistent/c\"; };\n",
	                         CONFIG_FOR_MILTER, &errs);
	test_assert(cfg == NULL);
	test_assert(errors_have("/nonexistent/c: cannot read", NULL));
	test_end();
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-auth.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_base64();
	test_plain();
	test_login();
	test_cram_md5();
	test_xoauth2();
	test_choose();
	test_redact();
	test_token_file();
	test_ehlo();
	test_credentials();
	config_errors_free(&errs);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return test_exit_status();
}
