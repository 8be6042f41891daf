/* test-session - weir-milter's stage logic driven without an MTA, through
 * a fake mlfi_io: identities, relay control, envelope sender, From and
 * Sender headers, spoofing, actions (reject, tempfail, hold, log,
 * dry-run), the per-message and per-decision log lines, the suppression
 * list at RCPT, and freeing on every path */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "milter/session.h"
#include "policy/suppress.h"
#include "tests/testlib.h"

struct fake {
	const char *macros[8][2];
	char reply[1024];
	char held[1024];
	char added[8][4096]; /* "Name: value" of inserted headers */
	int nadded;
	int deleted[8]; /* indexes of deleted Authentication-Results */
	int ndeleted;
};

static const char *fake_getsymval(void *h, const char *name)
{
	struct fake *f = h;

	for (int i = 0; i < 8 && f->macros[i][0]; i++)
		if (strcmp(f->macros[i][0], name) == 0)
			return f->macros[i][1];
	return NULL;
}

static int fake_setreply(void *h, const char *code, const char *enh, const char *text)
{
	struct fake *f = h;

	snprintf(f->reply, sizeof(f->reply), "%s %s %s", code, enh, text);
	return 0;
}

static int fake_quarantine(void *h, const char *reason)
{
	struct fake *f = h;

	snprintf(f->held, sizeof(f->held), "%s", reason);
	return 0;
}

static int fake_insheader(void *h, int index, const char *name, const char *value)
{
	struct fake *f = h;

	(void)index;
	if (f->nadded < 8)
		snprintf(f->added[f->nadded++], sizeof(f->added[0]), "%s: %s", name, value);
	return 0;
}

static int fake_addheader(void *h, const char *name, const char *value)
{
	return fake_insheader(h, -1, name, value);
}

static int fake_delheader(void *h, const char *name, int index)
{
	struct fake *f = h;

	(void)name;
	if (f->ndeleted < 8)
		f->deleted[f->ndeleted++] = index;
	return 0;
}

static char lines[16][4096];
static int nlines;

static void capture(enum log_level level, const char *line)
{
	(void)level;
	if (nlines < 16)
		snprintf(lines[nlines], sizeof(lines[0]), "%s", line);
	nlines++;
}

static bool logged(const char *want)
{
	for (int i = 0; i < nlines && i < 16; i++)
		if (strstr(lines[i], want) != NULL)
			return true;
	fprintf(stderr, "  no log line holds: %s\n", want);
	for (int i = 0; i < nlines && i < 16; i++)
		fprintf(stderr, "    %s\n", lines[i]);
	return false;
}

/* No DNS in unit tests: a resolver nobody answers, SPF off (the SPF stage
 * is tested through the real stack, tests/integration/25x-spf-*) */
static const char base_conf[] =
	"resolver = \"127.0.0.1@9\";\nresolver_timeout = 1;\n"
	"spf = { verify = false; preflight = \"off\"; };\n"
	"trusted_networks = (\"192.0.2.0/24\", \"2001:db8::/32\");\n"
	"local_domains = (\"example.com\", \".corp.example\");\n";
#define SENDER_MAP                                                                          \
	"map = (\n"                                                                         \
	"  { login = \"alice\"; addresses = (\"alice@example.com\", \"@sales.example.com\"); },\n" \
	"  { login = \"app\"; addresses = (\"*-noreply@example.com\"); }\n"                    \
	");\n"

/* config - base_conf and extra; extra may give its own senders group
 * (it then holds the map too) */
static struct weir_config *config(const char *extra)
{
	struct config_errors errs;
	struct weir_config *cfg;
	/* the suppression list only where a test gives one (no file in
	 * /var/lib/weir from unit tests) */
	const char *supp = strstr(extra, "suppression") == NULL
				   ? "suppression = { milter = false; };\n"
				   : "";
	char *text = strncmp(extra, "senders", 7) == 0
			     ? xasprintf("%s%s%s", base_conf, supp, extra)
			     : xasprintf("%s%ssenders = { %s };\n%s", base_conf, supp, SENDER_MAP,
					 extra);

	config_errors_init(&errs);
	cfg = config_load_string("t.conf", text, 0, &errs);
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "config: %s\n", errs.list.v[i]);
	config_errors_free(&errs);
	free(text);
	return cfg;
}

/* A client session: address (NULL = none), login (NULL = no AUTH). */
struct run {
	struct fake f;
	struct mlfi_io io;
	struct conn *c;
};

static void start(struct run *r, const char *extra, const char *ip, const char *login)
{
	struct weir_config *cfg = config(extra);
	struct sockaddr_in sin = {0};
	struct sockaddr_in6 sin6 = {0};
	const struct sockaddr *sa = NULL;

	memset(r, 0, sizeof(*r));
	r->f.macros[0][0] = "i";
	r->f.macros[0][1] = "QID1";
	if (login) {
		r->f.macros[1][0] = "{auth_authen}";
		r->f.macros[1][1] = login;
	}
	r->io = (struct mlfi_io){&r->f,		  fake_getsymval, fake_setreply, fake_addheader,
				 fake_quarantine, fake_insheader, fake_delheader};
	if (ip && strchr(ip, ':')) {
		sin6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &sin6.sin6_addr);
		sa = (struct sockaddr *)&sin6;
	} else if (ip) {
		sin.sin_family = AF_INET;
		inet_pton(AF_INET, ip, &sin.sin_addr);
		sa = (struct sockaddr *)&sin;
	}
	r->c = session_connect(cfg, "client.example", sa);
	config_unref(cfg);
	session_helo(r->c, &r->io, "client.example");
	nlines = 0;
}

static enum mlfi_status mail(struct run *r, const char *from)
{
	char *argv[] = {(char *)from, NULL};

	r->f.reply[0] = '\0';
	return session_mail(r->c, &r->io, argv);
}

static enum mlfi_status rcpt(struct run *r, const char *to)
{
	char *argv[] = {(char *)to, NULL};

	r->f.reply[0] = '\0';
	return session_rcpt(r->c, &r->io, argv);
}

static enum mlfi_status eom(struct run *r, const char *const *headers)
{
	static const unsigned char body[] = "hello\r\n";
	enum mlfi_status st;

	for (size_t i = 0; headers && headers[i]; i += 2)
		session_header(r->c, headers[i], headers[i + 1]);
	r->f.reply[0] = '\0';
	st = session_eoh(r->c, &r->io);
	if (st != MLFI_CONTINUE)
		return st;
	session_body(r->c, body, sizeof(body) - 1);
	return session_eom(r->c, &r->io);
}

static void test_relay(void)
{
	struct run r;
	static const char *const tricks[] = {
		"<user%other.example@example.com>", "<other.example!user@example.com>",
		"<\"user@other.example\"@example.com>", "<@example.com:user@other.example>",
		"<user@[192.0.2.9]>", NULL};

	test_begin("relay: outside client may only send to local domains");
	start(&r, "", "198.51.100.7", NULL);
	test_assert(mail(&r, "<someone@outside.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<Bob@EXAMPLE.COM.>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<x@a.corp.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<postmaster>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@other.example>") == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 <bob@other.example>: relay access denied: "
				   "authenticate with SMTP AUTH or send from a trusted network");
	test_assert(rcpt(&r, "<bob@example.com.other.example>") == MLFI_REJECT);
	for (int i = 0; tricks[i]; i++) {
		if (rcpt(&r, tricks[i]) != MLFI_REJECT) {
			fprintf(stderr, "  trick passed: %s\n", tricks[i]);
			test_assert(!"address trick accepted as local");
		}
		test_assert(strstr(r.f.reply, "address routing") != NULL);
	}
	test_assert(logged("rule=relay action=reject"));
	test_assert(eom(&r, (const char *const[]){"From", "someone@outside.example", NULL}) ==
		    MLFI_CONTINUE);
	test_assert(logged("nrcpt=4 decision=accept"));
	session_close(r.c);
	test_end();

	test_begin("relay: trusted networks and logins may relay");
	start(&r, "", "192.0.2.10", NULL);
	test_assert(mail(&r, "<app@somewhere.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@other.example>") == MLFI_CONTINUE);
	session_close(r.c);
	start(&r, "", "2001:db8::5", NULL);
	test_assert(mail(&r, "<app@somewhere.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@other.example>") == MLFI_CONTINUE);
	session_close(r.c);
	start(&r, "", "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@other.example>") == MLFI_CONTINUE);
	session_close(r.c);
	test_end();

	test_begin("relay: every recipient refused is logged as a rejected message");
	start(&r, "", "198.51.100.7", NULL);
	mail(&r, "<a@outside.example>");
	rcpt(&r, "<b@other.example>");
	session_abort(r.c, &r.io);
	test_assert(logged("decision=reject reason=\"every recipient was refused\""));
	session_close(r.c);
	test_end();
}

static void test_envelope(void)
{
	struct run r;

	test_begin("envelope sender: a login sends as its own addresses only");
	start(&r, "", "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(mail(&r, "<ALICE@Example.COM>") == MLFI_CONTINUE);
	test_assert(mail(&r, "<alice+news@example.com>") == MLFI_CONTINUE);
	test_assert(mail(&r, "<anyone@sales.example.com>") == MLFI_CONTINUE);
	test_assert(mail(&r, "<bob@example.com>") == MLFI_REJECT);
	test_assert_str(r.f.reply,
			"550 5.7.1 alice may not send as <bob@example.com>: use one of your own addresses");
	test_assert(logged("identity=authenticated login=alice rule=envelope_sender action=reject"));
	test_assert(logged("decision=reject reason=\"sender refused\""));
	test_assert(mail(&r, "<alice@example.com.evil.example>") == MLFI_REJECT);
	test_assert(mail(&r, "<>") == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 alice may not use the null sender <>");
	session_close(r.c);
	test_end();

	test_begin("envelope sender: globs, unknown logins");
	start(&r, "", NULL, "app");
	test_assert(mail(&r, "<billing-noreply@example.com>") == MLFI_CONTINUE);
	test_assert(mail(&r, "<billing@example.com>") == MLFI_REJECT);
	session_close(r.c);
	start(&r, "", NULL, "mallory");
	test_assert(mail(&r, "<mallory@example.com>") == MLFI_REJECT);
	session_close(r.c);
	test_end();

	test_begin("null sender where policy allows it");
	start(&r, "policy = { null_sender_allowed = (\"authenticated\"); };", NULL, "alice");
	test_assert(mail(&r, "<>") == MLFI_CONTINUE);
	session_close(r.c);
	start(&r, "", "198.51.100.7", NULL); /* default: outside may (bounces) */
	test_assert(mail(&r, "<>") == MLFI_CONTINUE);
	session_close(r.c);
	test_end();

	test_begin("spoofing: outside client with a local sender");
	start(&r, "", "198.51.100.7", NULL);
	test_assert(mail(&r, "<ceo@Example.com>") == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 <ceo@Example.com> is a local address: authenticate "
				   "with SMTP AUTH to send as it");
	test_assert(mail(&r, "<ceo@outside.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@example.com>") == MLFI_CONTINUE);
	test_assert(eom(&r, (const char *const[]){"From", " CEO <ceo@example.com>", NULL}) ==
		    MLFI_REJECT);
	test_assert(strstr(r.f.reply, "<ceo@example.com> is a local address") != NULL);
	session_close(r.c);
	test_end();
}

static enum mlfi_status alice_message(const char *extra, const char *const *headers,
				      struct run *r)
{
	start(r, extra, "198.51.100.7", "alice");
	mail(r, "<alice@example.com>");
	rcpt(r, "<bob@other.example>");
	return eom(r, headers);
}

static void test_headers(void)
{
	struct run r;

	test_begin("header From: allowed, other users, counts, hidden addresses");
	test_assert(alice_message("", (const char *const[]){"From", " Alice <alice@example.com>",
							      NULL}, &r) == MLFI_CONTINUE);
	session_close(r.c);
	test_assert(alice_message("", (const char *const[]){"From", " bob@example.com", NULL},
				  &r) == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 alice may not send as <bob@example.com> (header From)");
	session_close(r.c);
	test_assert(alice_message("", (const char *const[]){"From", "alice@example.com", "From",
							      "alice@example.com", NULL}, &r) ==
		    MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 message has 2 From headers; exactly one is required");
	session_close(r.c);
	test_assert(alice_message("", (const char *const[]){"Subject", "x", NULL}, &r) ==
		    MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 message has no From header; exactly one is required");
	session_close(r.c);
	test_assert(alice_message("", (const char *const[]){"From",
							      "alice@example.com, bob@example.com",
							      NULL}, &r) == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 From header holds 2 mailboxes; exactly one is required");
	session_close(r.c);
	test_assert(alice_message("", (const char *const[]){"From",
							      "\"bob@evil.example\" <alice@example.com>",
							      NULL}, &r) == MLFI_REJECT);
	test_assert(strstr(r.f.reply, "display name holds an address other than <alice@example.com>"));
	session_close(r.c);
	test_assert(alice_message("", (const char *const[]){"From", "<<<", NULL}, &r) == MLFI_REJECT);
	test_assert(strstr(r.f.reply, "550 5.7.1 From header cannot be parsed: ") == r.f.reply);
	session_close(r.c);
	test_end();

	test_begin("Sender header checked the same way");
	test_assert(alice_message("", (const char *const[]){"From", "alice@example.com", "Sender",
							      "bob@example.com", NULL}, &r) ==
		    MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 alice may not send as <bob@example.com> (header Sender)");
	session_close(r.c);
	test_end();

	test_begin("trusted networks: any From, or local only when asked");
	start(&r, "", "192.0.2.1", NULL);
	mail(&r, "<x@elsewhere.example>");
	rcpt(&r, "<bob@other.example>");
	test_assert(eom(&r, (const char *const[]){"From", "x@elsewhere.example", NULL}) ==
		    MLFI_CONTINUE);
	session_close(r.c);
	start(&r, "policy = { trusted_header_from = \"local\"; };", "192.0.2.1", NULL);
	mail(&r, "<x@elsewhere.example>");
	rcpt(&r, "<bob@other.example>");
	test_assert(eom(&r, (const char *const[]){"From", "x@elsewhere.example", NULL}) ==
		    MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.7.1 header From <x@elsewhere.example> is not in a local domain");
	session_close(r.c);
	test_end();
}

static void test_actions(void)
{
	struct run r;

	test_begin("tempfail answers 451 4.7.1");
	start(&r, "policy = { envelope_sender = \"tempfail\"; };", NULL, "alice");
	test_assert(mail(&r, "<bob@example.com>") == MLFI_TEMPFAIL);
	test_assert(strncmp(r.f.reply, "451 4.7.1 alice may not send as", 31) == 0);
	session_close(r.c);
	test_end();

	test_begin("hold accepts and quarantines at end of message");
	start(&r, "policy = { relay = \"hold\"; };", "198.51.100.7", NULL);
	mail(&r, "<a@outside.example>");
	test_assert(rcpt(&r, "<b@other.example>") == MLFI_CONTINUE);
	test_assert(eom(&r, (const char *const[]){"From", "a@outside.example", NULL}) ==
		    MLFI_CONTINUE);
	test_assert(strstr(r.f.held, "weir relay: <b@other.example>: relay access denied") ==
		    r.f.held);
	test_assert(logged("decision=hold"));
	session_close(r.c);
	test_end();

	test_begin("log and dry-run refuse nothing, and say what they would do");
	start(&r, "policy = { envelope_sender = \"log\"; };", NULL, "alice");
	test_assert(mail(&r, "<bob@example.com>") == MLFI_CONTINUE);
	test_assert(logged("rule=envelope_sender action=log reply=\"would reject: 550 5.7.1 alice may not send as"));
	session_close(r.c);
	start(&r, "policy = { dry_run = true; header_from = \"hold\"; };", "198.51.100.7", "alice");
	test_assert(mail(&r, "<bob@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<x@other.example>") == MLFI_CONTINUE);
	test_assert(eom(&r, (const char *const[]){"From", "bob@example.com", NULL}) ==
		    MLFI_CONTINUE);
	test_assert(r.f.held[0] == '\0');
	test_assert(logged("rule=envelope_sender action=reject dry_run=yes reply=\"would reject: 550 5.7.1 "));
	test_assert(logged("rule=header_from action=hold dry_run=yes reply=\"would hold: alice may not"));
	test_assert(logged("decision=accept"));
	session_close(r.c);
	test_end();
}

static void test_certificate(void)
{
	struct run r;
	static const char certs[] =
		"senders = { " SENDER_MAP "certificates = (\n"
		"  { subject = \"CN=app1,O=Example\"; login = \"app\"; },\n"
		"  { fingerprint = \"AB:CD:EF:01\"; login = \"alice\"; }\n"
		"); };\n";

	test_begin("TLS client certificate identifies a login, by subject or fingerprint");
	start(&r, certs, "198.51.100.7", NULL);
	r.f.macros[1][0] = "{cert_subject}";
	r.f.macros[1][1] = "CN=app1,O=Example";
	session_helo(r.c, &r.io, "app.example");
	test_assert(mail(&r, "<billing-noreply@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<x@other.example>") == MLFI_CONTINUE); /* may relay */
	test_assert(mail(&r, "<alice@example.com>") == MLFI_REJECT);
	test_assert(logged("identity=certificate login=app rule=envelope_sender"));
	session_close(r.c);

	start(&r, certs, "198.51.100.7", NULL);
	r.f.macros[1][0] = "{cert_md5}";
	r.f.macros[1][1] = "ab:cd:ef:01";
	session_helo(r.c, &r.io, "alice.example");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	session_close(r.c);

	start(&r, certs, "198.51.100.7", NULL);
	r.f.macros[1][0] = "{cert_subject}";
	r.f.macros[1][1] = "CN=someone-else";
	session_helo(r.c, &r.io, "x.example");
	test_assert(mail(&r, "<x@outside.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<x@other.example>") == MLFI_REJECT); /* outside */
	session_close(r.c);
	test_end();
}

static void test_review_findings(void)
{
	struct run r;
	const char *many[20];

	test_begin("spoofing: unparseable or ninth From naming a local domain, source routes");
	start(&r, "", "198.51.100.7", NULL);
	mail(&r, "<x@outside.example>");
	rcpt(&r, "<bob@example.com>");
	test_assert(eom(&r, (const char *const[]){"From", " CEO <ceo@example.com> (unclosed",
						  NULL}) == MLFI_REJECT);
	session_close(r.c);
	start(&r, "", "198.51.100.7", NULL);
	mail(&r, "<x@outside.example>");
	rcpt(&r, "<bob@example.com>");
	for (int i = 0; i < 18; i += 2) {
		many[i] = "From";
		many[i + 1] = i < 16 ? " a@outside.example" : " ceo@example.com";
	}
	many[18] = NULL;
	test_assert(eom(&r, many) == MLFI_REJECT);
	session_close(r.c);
	start(&r, "", "198.51.100.7", NULL);
	test_assert(mail(&r, "<@hop.example:ceo@example.com>") == MLFI_REJECT);
	session_close(r.c);
	test_end();

	test_begin("forged Authentication-Results removed in every spelling, verified or not");
	static const char *const forged[] = {
		"Authentication-Results", " relay.test; dkim=pass",
		"Authentication-Results", " \"relay.test\"; dkim=pass",
		"Authentication-Results", " (comment (nested)) RELAY.TEST.; dkim=pass",
		"Authentication-Results", " other.example; dkim=pass",
		"From", " x@outside.example",
		NULL};
	start(&r, "dkim = { authserv_id = \"relay.test\"; };", "198.51.100.7", NULL);
	mail(&r, "<x@outside.example>");
	rcpt(&r, "<bob@example.com>");
	test_assert(eom(&r, forged) == MLFI_CONTINUE);
	test_assert(r.f.ndeleted == 3 && r.f.deleted[0] == 3 && r.f.deleted[1] == 2 &&
		    r.f.deleted[2] == 1);
	test_assert(r.f.nadded == 1 && strstr(r.f.added[0], "relay.test; dkim=none") != NULL);
	session_close(r.c);
	start(&r, "dkim = { authserv_id = \"relay.test\"; verify = false; };", "198.51.100.7",
	      NULL);
	mail(&r, "<x@outside.example>");
	rcpt(&r, "<bob@example.com>");
	test_assert(eom(&r, forged) == MLFI_CONTINUE);
	test_assert(r.f.ndeleted == 3 && r.f.nadded == 0);
	session_close(r.c);
	test_end();

	test_begin("dry_run covers the DKIM alignment tempfail");
	start(&r, "policy = { dry_run = true; }; dkim = { alignment = \"tempfail\"; };",
	      "192.0.2.1", NULL);
	mail(&r, "<x@elsewhere.example>");
	rcpt(&r, "<bob@other.example>");
	test_assert(eom(&r, (const char *const[]){"From", " x@elsewhere.example", NULL}) ==
		    MLFI_CONTINUE);
	test_assert(logged("dkim_alignment=fail"));
	session_close(r.c);
	start(&r, "dkim = { alignment = \"tempfail\"; };", "192.0.2.1", NULL);
	mail(&r, "<x@elsewhere.example>");
	rcpt(&r, "<bob@other.example>");
	test_assert(eom(&r, (const char *const[]){"From", " x@elsewhere.example", NULL}) ==
		    MLFI_TEMPFAIL);
	session_close(r.c);
	test_end();

	test_begin("an unverified certificate ({verify} not OK) identifies nobody");
	start(&r, "senders = { " SENDER_MAP "certificates = ({ subject = \"CN=app\"; login = \"app\"; }); };",
	      "198.51.100.7", NULL);
	r.f.macros[1][0] = "{cert_subject}";
	r.f.macros[1][1] = "CN=app";
	r.f.macros[2][0] = "{verify}";
	r.f.macros[2][1] = "FAIL";
	session_helo(r.c, &r.io, "app.example");
	test_assert(mail(&r, "<x@outside.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<x@other.example>") == MLFI_REJECT); /* outside: no relay */
	session_close(r.c);
	test_end();
}

static void test_message_line(void)
{
	struct run r;

	test_begin("one line per message with queue id, identity, login, envelope");
	start(&r, "", "192.0.2.7", "alice");
	mail(&r, "<alice@example.com>");
	rcpt(&r, "<bob@example.net>");
	rcpt(&r, "<carol@example.org>");
	eom(&r, (const char *const[]){"From", "alice@example.com", NULL});
	test_assert(logged("queue_id=QID1 conn="));
	test_assert(logged(" client=client.example[192.0.2.7] identity=authenticated login=alice "
			   "helo=client.example auth=alice from=<alice@example.com> "
			   "rcpts=<bob@example.net>,<carol@example.org> nrcpt=2 decision=accept"));
	test_end();

	test_begin("close with a message in progress frees it");
	mail(&r, "<alice@example.com>");
	rcpt(&r, "<x@example.net>");
	session_close(r.c); /* leak checkers see a leak if not */
	test_end();
}

/* milter.login_header: the login for weir-agent's routes; a forged one
 * never survives */
static void test_login_header(void)
{
	static const char conf[] = "milter = { login_header = \"X-Weir-Login\"; };\n";
	struct run r;

	test_begin("login header: a login's mail carries it, the client's own is removed");
	start(&r, conf, "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@elsewhere.example>") == MLFI_CONTINUE);
	test_assert(eom(&r, (const char *const[]){"From", "alice@example.com", "X-Weir-Login",
						  "mallory", "x-weir-login", "eve", NULL}) ==
		    MLFI_CONTINUE);
	test_assert(r.f.ndeleted == 2 && r.f.deleted[0] == 2 && r.f.deleted[1] == 1);
	test_assert(r.f.nadded == 1 && strcmp(r.f.added[0], "X-Weir-Login: alice") == 0);
	session_close(r.c);
	test_end();

	test_begin("login header: none for a trusted network, a forged one still removed");
	start(&r, conf, "192.0.2.7", NULL);
	test_assert(mail(&r, "<x@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@elsewhere.example>") == MLFI_CONTINUE);
	test_assert(eom(&r, (const char *const[]){"From", "x@example.com", "X-Weir-Login",
						  "alice", NULL}) == MLFI_CONTINUE);
	test_assert(r.f.ndeleted == 1 && r.f.deleted[0] == 1);
	test_assert(r.f.nadded == 0);
	session_close(r.c);
	test_end();
}

/* test_suppression - the suppression list at RCPT (suppression.c) */
static void test_suppression(void)
{
	char dir[] = "/tmp/weir-test-session.XXXXXX", *conf, *dry, *err = NULL, *cmd;
	struct suppress_entry e = {0};
	struct weir_config *cfg;
	struct suppress *s;
	struct run r;

	test_begin("suppression: a listed recipient of outgoing mail gets 550 5.1.1");
	test_assert(mkdtemp(dir) != NULL);
	conf = xasprintf("suppression = { db = \"%s/s.db\"; };\n", dir);
	cfg = config(conf);
	s = suppress_open(cfg, true, &err);
	test_assert(s != NULL);
	snprintf(e.address, sizeof(e.address), "Bob@Gone.example");
	snprintf(e.reason, sizeof(e.reason), "userunknown");
	snprintf(e.source, sizeof(e.source), "bounce");
	e.hard = true;
	e.created = 1795000000; /* 2026-11-18 */
	test_assert(suppress_add(s, &e, &err) == 0);
	test_assert(suppress_complaint(s, "dave@x.example", "example.com", "abuse", 1795000000,
				       &err) == 1);
	test_assert(suppress_add(s, &(struct suppress_entry){"bob@example.com", "", "manual",
							     false, "manual", 1795000000, 0, 1},
				 &err) == 0);
	suppress_close(s);
	config_unref(cfg);

	start(&r, conf, "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@gone.example>") == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.1.1 <bob@gone.example>: suppressed since 2026-11-18: "
				   "userunknown");
	test_assert(logged("login=alice rule=suppression action=reject rcpt=<bob@gone.example> "
			   "suppressed=userunknown suppressed_scope=global suppressed_source=bounce "
			   "reply=\"550 5.1.1 <bob@gone.example>: suppressed since 2026-11-18: "
			   "userunknown\""));
	test_assert(rcpt(&r, "<carol@gone.example>") == MLFI_CONTINUE);
	/* a complaint about mail from example.com: alice's domain */
	test_assert(rcpt(&r, "<DAVE@x.example>") == MLFI_REJECT);
	test_assert_str(r.f.reply, "550 5.1.1 <DAVE@x.example>: suppressed since 2026-11-18: "
				   "complaint (abuse)");
	test_assert(eom(&r, (const char *const[]){"From", "alice@example.com", NULL}) ==
		    MLFI_CONTINUE);
	test_assert(logged("rcpts=<carol@gone.example> nrcpt=1 decision=accept"));
	session_close(r.c);
	test_end();

	test_begin("suppression: other senders' scopes, inbound mail, milter = false");
	start(&r, conf, "192.0.2.10", NULL); /* trusted network, another domain */
	test_assert(mail(&r, "<app@shop.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<dave@x.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@gone.example>") == MLFI_REJECT);
	session_close(r.c);
	/* mail from outside to a local address is not outgoing: not checked */
	start(&r, conf, "198.51.100.7", NULL);
	test_assert(mail(&r, "<someone@outside.example>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@example.com>") == MLFI_CONTINUE);
	session_close(r.c);
	free(conf);
	conf = xasprintf("suppression = { db = \"%s/s.db\"; milter = false; };\n", dir);
	start(&r, conf, "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@gone.example>") == MLFI_CONTINUE);
	session_close(r.c);
	test_end();

	test_begin("suppression: dry_run logs the refusal and accepts");
	dry = xasprintf("policy = { dry_run = true; };\nsuppression = { db = \"%s/s.db\"; };\n",
			dir);
	start(&r, dry, "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@gone.example>") == MLFI_CONTINUE);
	test_assert(r.f.reply[0] == '\0');
	test_assert(logged("rule=suppression action=reject rcpt=<bob@gone.example> "
			   "suppressed=userunknown suppressed_scope=global suppressed_source=bounce "
			   "dry_run=yes reply=\"would reject: 550 5.1.1 <bob@gone.example>: "
			   "suppressed since 2026-11-18: userunknown\""));
	session_close(r.c);
	free(dry);
	test_end();

	test_begin("suppression: a list that cannot be opened accepts, and says so");
	free(conf);
	conf = xasprintf("suppression = { db = \"%s/missing/dir/s.db\"; };\n", dir);
	start(&r, conf, "198.51.100.7", "alice");
	test_assert(mail(&r, "<alice@example.com>") == MLFI_CONTINUE);
	test_assert(rcpt(&r, "<bob@gone.example>") == MLFI_CONTINUE);
	test_assert(logged("suppression list: "));
	test_assert(logged("recipients are accepted without the check"));
	nlines = 0;
	test_assert(rcpt(&r, "<bob@gone.example>") == MLFI_CONTINUE);
	test_assert(nlines == 0); /* not again within the minute */
	session_close(r.c);
	free(conf);
	cmd = xasprintf("rm -rf '%s'", dir);
	test_assert(system(cmd) == 0);
	free(cmd);
	test_end();
}

int main(void)
{
	log_open("test-session", true, "mail");
	log_set_hook(capture);
	test_relay();
	test_envelope();
	test_headers();
	test_actions();
	test_certificate();
	test_review_findings();
	test_message_line();
	test_login_header();
	test_suppression();
	return test_exit_status();
}
