/* test-upstream - upstream sessions with TLS and AUTH against real smart
 * hosts (run by test-upstream-tls.sh, which starts them and sets the
 * environment: PORT_STARTTLS, PORT_IMPLICIT, PORT_PLAIN, PORT_PLAINAUTH, PORT_BROKEN,
 * PORT_WRONGNAME, PORT_CLOSED, CA_FILE, CREDS, TOKEN, BADTOKEN, SECRETS).
 *
 * Each case fills a struct route_host as policy/routes.c would, opens a
 * session with upstream_new_host and checks the outcome: the callback's
 * reply or failure line, upstream_failure, the TLS facts and the AUTH
 * mechanism; sessions that open send one message. Every log line (debug
 * level) is kept, and none may hold a secret or its base64. */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery-agent/auth.h"
#include "delivery-agent/tls.h"
#include "delivery-agent/upstream.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"
#include "tests/testlib.h"

static struct event_base *base;
static struct dns *dns;
static char **logs;
static size_t nlogs;

/* log_hook - keep every line */
static void log_hook(enum log_level level, const char *line)
{
	(void)level;
	logs = xrealloc(logs, (nlogs + 1) * sizeof(*logs));
	logs[nlogs++] = xstrdup(line);
}

/* logged - some line since mark contains s */
static bool logged(size_t mark, const char *s)
{
	for (size_t i = mark; i < nlogs; i++)
		if (strstr(logs[i], s) != NULL)
			return true;
	return false;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL) {
		fprintf(stderr, "%s is not set: run test-upstream-tls.sh\n", name);
		exit(1);
	}
	return v;
}

/* One step's outcome */
struct result {
	bool done;
	int code;
	char *text; /* the reply's one-line form, or the failure line */
	bool failed;
};

static void step_cb(void *arg, const struct smtp_reply *r, const char *fail)
{
	struct result *res = arg;

	res->done = true;
	free(res->text);
	if (r != NULL) {
		res->code = r->code;
		res->text = smtp_reply_oneline(r, 500);
		res->failed = false;
	} else {
		res->code = atoi(fail);
		res->text = xstrdup(fail);
		res->failed = true;
	}
	event_base_loopbreak(base);
}

/* give_up - a step took longer than the test allows */
static void give_up(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
	event_base_loopbreak(base);
}

/* wait_result - run the loop until the step answered (20 s at most) */
static void wait_result(struct result *res)
{
	struct timeval tv = {20, 0};
	bool expired = false;
	struct event *t = evtimer_new(base, give_up, &expired);

	evtimer_add(t, &tv);
	while (!res->done && !expired)
		if (event_base_loop(base, EVLOOP_ONCE) < 0)
			break;
	event_free(t);
	if (!res->done) {
		fprintf(stderr, "  step timed out\n");
		res->text = xstrdup("(timeout)");
		res->failed = true;
	}
}

static void open_session(struct upstream *up, struct result *res)
{
	memset(res, 0, sizeof(*res));
	upstream_open(up, step_cb, res);
	wait_result(res);
}

static int command(struct upstream *up, const char *line)
{
	struct result res = {0};

	upstream_command(up, line, step_cb, &res);
	wait_result(&res);
	free(res.text);
	return res.failed ? -1 : res.code;
}

/* send_message - MAIL, RCPT, DATA: the final reply's code */
static int send_message(struct upstream *up, const char *what)
{
	struct evbuffer *msg = evbuffer_new();
	struct result res = {0};

	if (command(up, "MAIL FROM:<app@example.com>") != 250 ||
	    command(up, "RCPT TO:<someone@example.net>") != 250) {
		evbuffer_free(msg);
		return -1;
	}
	evbuffer_add_printf(msg, "Subject: %s\r\n\r\nsent by test-upstream\r\n", what);
	upstream_data(up, msg, step_cb, &res);
	wait_result(&res);
	evbuffer_free(msg);
	free(res.text);
	return res.failed ? -1 : res.code;
}

/* host - a route host as routes.c would fill it */
static struct route_host host(const char *name, const char *port_env, enum route_tls tls,
                              enum route_auth auth, const char *cred)
{
	struct route_host h = {0};

	h.host = (char *)name;
	h.port = atoi(env(port_env));
	h.tls = tls;
	h.verify = true;
	h.ca_file = (char *)env("CA_FILE");
	h.auth = auth;
	h.credentials = (char *)cred;
	h.weight = 1;
	h.id = (char *)"test";
	return h;
}

struct expect {
	bool ok;              /* the session opens */
	const char *prefix;   /* the failure line starts with this (when !ok) */
	const char *contains; /* ... and contains this (optional) */
	enum upstream_failure failure;
	const char *verified; /* when ok */
	const char *mech;     /* when ok */
	bool tls;             /* when ok */
	const char *log;      /* some log line holds this (optional) */
};

/* run_case - open a session to h and check it against want */
static void run_case(const char *name, struct weir_config *cfg, const struct route_host *h,
                     const struct expect *want)
{
	struct upstream *up = upstream_new_host(base, dns, cfg, h);
	size_t mark = nlogs;
	struct result res;
	struct upstream_tls ti;

	test_begin(name);
	open_session(up, &res);
	printf("  -> %s\n", res.text ? res.text : "(nothing)");
	if (want->ok) {
		test_assert(res.done && !res.failed && res.code / 100 == 2);
		test_assert(upstream_ready(up));
		test_assert(upstream_failure(up) == UPF_NONE);
		upstream_tls_info(up, &ti);
		test_assert(ti.active == want->tls);
		test_assert_str(ti.verified, want->verified);
		test_assert_str(upstream_auth_mech(up), want->mech);
		if (upstream_ready(up))
			test_assert(send_message(up, name) == 250);
		test_assert(logged(mark, "upstream session host="));
	} else {
		test_assert(res.done && res.failed);
		test_assert(res.text != NULL &&
		            strncmp(res.text, want->prefix, strlen(want->prefix)) == 0);
		if (want->contains != NULL)
			test_assert(res.text != NULL && strstr(res.text, want->contains) != NULL);
		test_assert(upstream_failure(up) == want->failure);
		test_assert(!upstream_ready(up));
	}
	if (want->log != NULL)
		test_assert(logged(mark, want->log));
	free(res.text);
	upstream_free(up);
	test_end();
}

/* load - the configuration the sessions use */
static struct weir_config *load(bool reject)
{
	struct config_errors errs;
	struct weir_config *cfg;
	char *text = xasprintf("user = \"root\";\nagent = {\n credentials_file = \"%s\";\n"
	                       " auth_failure = \"%s\";\n connect_timeout = 5;\n"
	                       " command_timeout = 5;\n smarthost = \"127.0.0.1:%s\";\n};\n",
	                       env("CREDS"), reject ? "reject" : "tempfail", env("PORT_PLAIN"));

	config_errors_init(&errs);
	cfg = config_load_string("test.conf", text, CONFIG_FOR_MILTER, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "config: %s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	if (cfg == NULL)
		exit(1);
	return cfg;
}

static void test_tls_auth(struct weir_config *cfg)
{
	struct route_host h;

	h = host("localhost", "PORT_STARTTLS", ROUTE_TLS_STARTTLS, ROUTE_AUTH_ANY, "good");
	run_case("STARTTLS verified, AUTH any -> CRAM-MD5", cfg, &h,
	         &(struct expect){.ok = true,
	                          .tls = true,
	                          .verified = "yes",
	                          .mech = "CRAM-MD5",
	                          .log = "verified=yes auth=CRAM-MD5"});
	h.auth = ROUTE_AUTH_PLAIN;
	run_case("STARTTLS verified, AUTH PLAIN", cfg, &h,
	         &(struct expect){.ok = true,
	                          .tls = true,
	                          .verified = "yes",
	                          .mech = "PLAIN",
	                          .log = "> AUTH PLAIN <hidden>"});
	h.auth = ROUTE_AUTH_LOGIN;
	run_case("STARTTLS verified, AUTH LOGIN", cfg, &h,
	         &(struct expect){.ok = true, .tls = true, .verified = "yes", .mech = "LOGIN"});
	h.auth = ROUTE_AUTH_XOAUTH2;
	h.oauth2_token_file = (char *)env("TOKEN");
	run_case("STARTTLS verified, AUTH XOAUTH2 (token file)", cfg, &h,
	         &(struct expect){.ok = true, .tls = true, .verified = "yes", .mech = "XOAUTH2"});
	h.auth = ROUTE_AUTH_ANY; /* a token file makes "any" XOAUTH2 */
	run_case("AUTH any with a token file -> XOAUTH2", cfg, &h,
	         &(struct expect){.ok = true, .tls = true, .verified = "yes", .mech = "XOAUTH2"});
	h.oauth2_token_file = (char *)env("BADTOKEN");
	run_case("XOAUTH2 token refused -> 451 4.7.8", cfg, &h,
	         &(struct expect){.prefix =
	                              "451 4.7.8 smart host localhost refused weir's "
	                              "credentials (good in agent.credentials_file): fix them",
	                          .failure = UPF_AUTH});
	h.oauth2_token_file = NULL;

	h = host("localhost", "PORT_IMPLICIT", ROUTE_TLS_IMPLICIT, ROUTE_AUTH_PLAIN, "good");
	run_case("implicit TLS (465-style) verified, AUTH PLAIN", cfg, &h,
	         &(struct expect){.ok = true, .tls = true, .verified = "yes", .mech = "PLAIN"});
}

static void test_failures(struct weir_config *cfg, struct weir_config *cfg_reject)
{
	struct route_host h;
	struct upstream *up;
	struct result res;

	h = host("localhost", "PORT_STARTTLS", ROUTE_TLS_STARTTLS, ROUTE_AUTH_PLAIN, "bad");
	run_case("wrong password -> 451 4.7.8 (auth_failure tempfail)", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.8 smart host localhost refused weir's "
	                                    "credentials (bad in agent.credentials_file): fix them",
	                          .failure = UPF_AUTH,
	                          .log = "535"});
	h.auth = ROUTE_AUTH_CRAM_MD5;
	run_case("wrong password, CRAM-MD5 -> 451 4.7.8", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.8 smart host localhost refused weir's",
	                          .failure = UPF_AUTH});

	test_begin("wrong password, auth_failure reject: the server's 535 handed up");
	h.auth = ROUTE_AUTH_PLAIN;
	up = upstream_new_host(base, dns, cfg_reject, &h);
	open_session(up, &res);
	printf("  -> %s\n", res.text ? res.text : "(nothing)");
	test_assert(res.done && !res.failed && res.code == 535);
	test_assert(upstream_failure(up) == UPF_AUTH && !upstream_ready(up));
	free(res.text);
	upstream_free(up);
	test_end();

	h = host("localhost", "PORT_WRONGNAME", ROUTE_TLS_STARTTLS, ROUTE_AUTH_PLAIN, "good");
	run_case("certificate for another name -> 451 4.7.5", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.5 TLS with smart host localhost failed: ",
	                          .contains = "hostname mismatch",
	                          .failure = UPF_TLS});
	h = host("127.0.0.1", "PORT_STARTTLS", ROUTE_TLS_STARTTLS, ROUTE_AUTH_PLAIN, "good");
	run_case("IP address not in the certificate -> 451 4.7.5", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.5 TLS with smart host 127.0.0.1 failed: ",
	                          .contains = "IP address mismatch",
	                          .failure = UPF_TLS});
	h = host("localhost", "PORT_STARTTLS", ROUTE_TLS_STARTTLS, ROUTE_AUTH_PLAIN, "good");
	h.ca_file = NULL; /* the system store does not know the test CA */
	run_case("unknown CA -> 451 4.7.5", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.5 TLS with smart host localhost failed: ",
	                          .contains = "certificate verification failed",
	                          .failure = UPF_TLS});
	h = host("localhost", "PORT_WRONGNAME", ROUTE_TLS_STARTTLS, ROUTE_AUTH_PLAIN, "good");
	h.verify = false;
	run_case(
	    "verify = false: session opens, logged NOT verified", cfg, &h,
	    &(struct expect){
	        .ok = true, .tls = true, .verified = "no", .mech = "PLAIN", .log = "NOT verified"});
	h = host("localhost", "PORT_PLAIN", ROUTE_TLS_STARTTLS, ROUTE_AUTH_NONE, NULL);
	run_case("STARTTLS required, not offered -> 451 4.7.5", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.5 TLS with smart host localhost failed: ",
	                          .contains = "does not offer STARTTLS",
	                          .failure = UPF_TLS});
	h = host("localhost", "PORT_PLAIN", ROUTE_TLS_MAY, ROUTE_AUTH_PLAIN, "good");
	run_case("\"may\" without STARTTLS and credentials: no AUTH in clear -> 451 4.7.8", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.8 smart host localhost: weir sends AUTH only "
	                                    "over TLS",
	                          .failure = UPF_AUTH});
	h = host("localhost", "PORT_PLAINAUTH", ROUTE_TLS_MAY, ROUTE_AUTH_PLAIN, "good");
	run_case("\"may\", AUTH offered in clear: still no AUTH in clear -> 451 4.7.8", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.8 smart host localhost: weir sends AUTH only "
	                                    "over TLS",
	                          .failure = UPF_AUTH});
	h.tls = ROUTE_TLS_NONE;
	run_case("tls = \"none\" written: AUTH in clear allowed", cfg, &h,
	         &(struct expect){
	             .ok = true, .tls = false, .verified = "not-required", .mech = "PLAIN"});
	h = host("localhost", "PORT_STARTTLS", ROUTE_TLS_STARTTLS, ROUTE_AUTH_PLAIN, "nosuch");
	run_case("credentials NAME missing -> 451 4.7.8", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.8 smart host localhost: no credentials nosuch",
	                          .failure = UPF_AUTH});
	h = host("localhost", "PORT_CLOSED", ROUTE_TLS_STARTTLS, ROUTE_AUTH_NONE, NULL);
	run_case("connection refused -> 451 4.4.1, UPF_CONNECT", cfg, &h,
	         &(struct expect){.prefix = "451 4.4.1 smart host localhost unreachable",
	                          .failure = UPF_CONNECT});
	h = host("127.0.0.1", "PORT_PLAIN", ROUTE_TLS_IMPLICIT, ROUTE_AUTH_NONE, NULL);
	run_case("implicit TLS to a plain server -> 451 4.7.5", cfg, &h,
	         &(struct expect){.prefix = "451 4.7.5 TLS with smart host 127.0.0.1 failed: ",
	                          .failure = UPF_TLS});
}

static void test_may(struct weir_config *cfg)
{
	struct route_host h;
	struct upstream *up;
	struct result res;
	size_t mark;

	h = host("localhost", "PORT_PLAIN", ROUTE_TLS_MAY, ROUTE_AUTH_NONE, NULL);
	run_case("\"may\", server without STARTTLS: clear", cfg, &h,
	         &(struct expect){.ok = true,
	                          .tls = false,
	                          .verified = "not-required",
	                          .mech = "none",
	                          .log = "tls=none verified=not-required auth=none"});
	h = host("localhost", "PORT_STARTTLS", ROUTE_TLS_MAY, ROUTE_AUTH_PLAIN, "good");
	h.ca_file = NULL; /* "may" does not verify: an unknown CA is fine */
	run_case(
	    "\"may\" with STARTTLS offered: TLS, not verified, AUTH", cfg, &h,
	    &(struct expect){.ok = true, .tls = true, .verified = "not-required", .mech = "PLAIN"});
	h = host("127.0.0.1", "PORT_BROKEN", ROUTE_TLS_MAY, ROUTE_AUTH_NONE, NULL);
	run_case("\"may\", failed handshake: once more in clear, logged", cfg, &h,
	         &(struct expect){.ok = true,
	                          .tls = false,
	                          .verified = "not-required",
	                          .mech = "none",
	                          .log = "connecting again without TLS"});

	test_begin("legacy upstream_new: agent.smarthost, tls may, no AUTH");
	mark = nlogs;
	up = upstream_new(base, dns, cfg);
	open_session(up, &res);
	test_assert(res.done && !res.failed && res.code == 250);
	test_assert_str(upstream_auth_mech(up), "none");
	test_assert(upstream_has_8bitmime(up) && upstream_has_smtputf8(up));
	test_assert(upstream_size_limit(up) > 0);
	test_assert(send_message(up, "legacy") == 250);
	test_assert(logged(mark, "upstream session host=127.0.0.1"));
	free(res.text);
	upstream_free(up);
	test_end();
}

/* test_no_secret - no log line holds a secret or its base64 forms */
static void test_no_secret(void)
{
	char *secrets = xstrdup(env("SECRETS")), *save = NULL;

	test_begin("no secret in any log line");
	for (char *s = strtok_r(secrets, " ", &save); s != NULL; s = strtok_r(NULL, " ", &save)) {
		char *b64 = auth_base64(s, strlen(s));
		char *plain = auth_plain("tim@example.com", s);
		char *xo = auth_xoauth2("tim@example.com", s);
		/* the middle of an encoding, whatever the alignment */
		char mid[9];
		snprintf(mid, sizeof(mid), "%.8s", plain + 12);
		for (size_t i = 0; i < nlogs; i++) {
			bool leak = strstr(logs[i], s) || strstr(logs[i], b64) ||
			            strstr(logs[i], plain) || strstr(logs[i], xo) ||
			            strstr(logs[i], mid);
			if (leak)
				fprintf(stderr, "  leaked: %s\n", logs[i]);
			test_assert(!leak);
		}
		free(b64);
		auth_secret_free(plain);
		auth_secret_free(xo);
	}
	free(secrets);
	test_assert(nlogs > 20);
	test_end();
}

int main(void)
{
	struct weir_config *cfg, *cfg_reject;
	const char *err;

	signal(SIGPIPE, SIG_IGN); /* as weir-agent: a peer gone is an error, not a signal */
	log_open("test-upstream", true, "mail");
	log_set_level(LOG_LEVEL_DEBUG);
	log_set_hook(log_hook);
	base = event_base_new();
	dns = dns_new(base, "system", 5, &err);
	if (dns == NULL) {
		fprintf(stderr, "dns_new: %s\n", err);
		return 1;
	}
	cfg = load(false);
	cfg_reject = load(true);
	test_tls_auth(cfg);
	test_failures(cfg, cfg_reject);
	test_may(cfg);
	test_no_secret();
	config_unref(cfg);
	config_unref(cfg_reject);
	dns_unref(dns);
	event_base_free(base);
	tls_contexts_free();
	auth_token_cache_free();
	log_set_hook(NULL);
	for (size_t i = 0; i < nlogs; i++)
		free(logs[i]);
	free(logs);
	return test_exit_status();
}
