/* test-routes - agent.routes: parsing with file:line errors, defaults,
 * the smart host as the default route, routes_find */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/routes.h"
#include "tests/testlib.h"
#include "tests/conftest.h"

static struct config_errors errs;

static struct weir_config *load(const char *text)
{
	return conf_load(&errs, text, CONFIG_FOR_AGENT);
}

#define has_error(want) conf_has_error(&errs, want)

/* load_with_credentials - agent = { credentials_file = F; body }, with
 * F naming m and p, mode 600, owned by whoever we are */
static struct weir_config *load_with_credentials(const char *body)
{
	char path[] = "/tmp/weir-test-routes.XXXXXX", *full;
	struct passwd *pw = getpwuid(geteuid());
	struct weir_config *cfg;
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, "m u1 s1\np u2 s2\n", 16) != 16)
		return NULL;
	close(fd);
	full = xasprintf("user = \"%s\";\nagent = {\n  credentials_file = \"%s\";\n%s",
	                 pw ? pw->pw_name : "root", path, body);
	cfg = load(full);
	unlink(path);
	free(full);
	return cfg;
}

static void test_smarthost(void)
{
	struct weir_config *cfg;
	const struct route *r;

	test_begin("agent.smarthost is the default route");
	cfg = load("agent = { smarthost = \"[192.0.2.1]:2525\"; };");
	test_assert(cfg != NULL);
	if (cfg != NULL) {
		test_assert(cfg->agent.nroutes == 1);
		r = routes_find(cfg, "a.test", "b.test", NULL);
		test_assert(r != NULL && r->is_default && !r->mx && r->nhosts == 1);
		if (r != NULL && r->nhosts == 1) {
			test_assert_str(r->hosts[0].host, "192.0.2.1");
			test_assert(r->hosts[0].port == 2525);
			test_assert(r->hosts[0].tls == ROUTE_TLS_MAY);
			test_assert(r->hosts[0].auth == ROUTE_AUTH_NONE);
			test_assert(r->hosts[0].weight == 1);
			test_assert_str(r->hosts[0].id, "192.0.2.1:2525");
		}
		test_assert(!routes_use_login(cfg));
		test_assert(!routes_depend_on_rcpt(cfg));
		config_unref(cfg);
	}
	cfg = load("agent = { smarthost = \"relay.example\"; };");
	test_assert(cfg != NULL && cfg->agent.routes[0].hosts[0].port == 25);
	config_unref(cfg);
	cfg = load("agent = { lmtp_listen = (\"inet:2000@127.0.0.1\"); };");
	test_assert(cfg == NULL);
	test_assert(has_error("agent.smarthost must be set (or agent.routes)"));
	test_end();
}

/* the inside of group agent, after credentials_file */
static const char routes_conf[] =
    "  login_header = \"X-Weir-Login\";\n"
    "  routes = (\n"
    "    { name = \"m365\"; sender_domains = (\"example.com\", \".example.org\");\n"
    "      hosts = ( { host = \"smtp.office365.com\"; port = 587; credentials = \"m\"; } ); },\n"
    "    { name = \"partner\"; rcpt_domains = \"partner.test\";\n"
    "      hosts = ( { host = \"[192.0.2.7]\"; port = 465; auth = \"plain\";\n"
    "                  credentials = \"p\"; } ); },\n"
    "    { name = \"apps\"; logins = (\"app-*\"); sender_domains = (\"apps.test\");\n"
    "      hosts = ( { host = \"a1.test\"; weight = 3; }, { host = \"a2.test\"; },\n"
    "                { host = \"a3.test\"; priority = 1; tls = \"none\"; } ); },\n"
    "    { name = \"direct\"; rcpt_domains = (\".direct.test\"); mx = true; },\n"
    "    { name = \"lab\"; sender_domains = \"lab.test\"; hosts = (\n"
    "      { host = \"smtp.office365.com\"; port = 587; credentials = \"m\"; verify = false; },\n"
    "      { host = \"smtp.office365.com\"; port = 25; tls = \"starttls\"; ca_file = \"/x.pem\"; } "
    "); },\n"
    "    { name = \"default\"; hosts = ( { host = \"relay.test\"; } ); }\n"
    "  );\n"
    "};\n";

static void test_parse(void)
{
	struct weir_config *cfg;
	const struct route *r;

	test_begin("routes parsed, defaults per host, routes_find");
	cfg = load_with_credentials(routes_conf);
	if (cfg == NULL) {
		for (size_t i = 0; i < errs.list.n; i++)
			fprintf(stderr, "  %s\n", errs.list.v[i]);
		test_assert(!"routes_conf loads");
		test_end();
		return;
	}
	test_assert(cfg->agent.nroutes == 6);
	/* verification is part of the pool key: an unverified session, or
	 * one verified against another CA, never serves a verifying host */
	test_assert_str(cfg->agent.routes[4].hosts[0].id,
	                "smtp.office365.com:587/starttls/m/noverify");
	test_assert_str(cfg->agent.routes[4].hosts[1].id,
	                "smtp.office365.com:25/starttls/ca=/x.pem");
	r = &cfg->agent.routes[0];
	test_assert_str(r->name, "m365");
	test_assert(r->hosts[0].tls == ROUTE_TLS_STARTTLS); /* credentials */
	test_assert(r->hosts[0].auth == ROUTE_AUTH_ANY);
	test_assert(r->hosts[0].verify);
	test_assert_str(r->hosts[0].id, "smtp.office365.com:587/starttls/m");
	r = &cfg->agent.routes[1];
	test_assert(r->hosts[0].tls == ROUTE_TLS_IMPLICIT && r->hosts[0].port == 465);
	test_assert_str(r->hosts[0].host, "192.0.2.7");
	test_assert(r->hosts[0].auth == ROUTE_AUTH_PLAIN);
	r = &cfg->agent.routes[2];
	test_assert(r->nhosts == 3 && r->hosts[0].weight == 3 && r->hosts[1].weight == 1);
	test_assert(r->hosts[2].priority == 1 && r->hosts[2].tls == ROUTE_TLS_NONE);
	test_assert(r->hosts[0].tls == ROUTE_TLS_MAY && r->hosts[0].port == 25);
	test_assert(cfg->agent.routes[3].mx && cfg->agent.routes[3].nhosts == 0);
	test_assert(cfg->agent.routes[5].is_default);
	test_assert(!cfg->agent.routes[0].is_default);

	test_assert_str(routes_find(cfg, "example.com", "x.test", NULL)->name, "m365");
	test_assert_str(routes_find(cfg, "sub.example.org", "x.test", NULL)->name, "m365");
	test_assert_str(routes_find(cfg, "example.org", "x.test", NULL)->name, "m365");
	test_assert_str(routes_find(cfg, "sub.example.com", "x.test", NULL)->name, "default");
	test_assert_str(routes_find(cfg, "x.test", "partner.test", NULL)->name, "partner");
	test_assert_str(routes_find(cfg, "x.test", "a.partner.test", NULL)->name, "default");
	/* the first match wins */
	test_assert_str(routes_find(cfg, "example.com", "partner.test", NULL)->name, "m365");
	/* every match list of a route must match */
	test_assert_str(routes_find(cfg, "apps.test", "x.test", "app-web")->name, "apps");
	test_assert_str(routes_find(cfg, "apps.test", "x.test", "APP-web")->name, "apps");
	test_assert_str(routes_find(cfg, "other.test", "x.test", "app-web")->name, "default");
	test_assert_str(routes_find(cfg, "apps.test", "x.test", "bob")->name, "default");
	test_assert_str(routes_find(cfg, "apps.test", "x.test", NULL)->name, "default");
	test_assert_str(routes_find(cfg, NULL, "b.direct.test", NULL)->name, "direct");
	test_assert_str(routes_find(cfg, NULL, "direct.test", NULL)->name, "direct");
	test_assert(routes_use_login(cfg));
	test_assert(routes_depend_on_rcpt(cfg));
	test_assert(routes_any_mx(cfg));
	/* the same signature: the same route for any login */
	test_assert(routes_signature(cfg, "apps.test", "x.test") ==
	            routes_signature(cfg, "apps.test", "y.test"));
	test_assert(routes_signature(cfg, "apps.test", "x.test") !=
	            routes_signature(cfg, "apps.test", "partner.test"));
	config_unref(cfg);
	test_end();
}

static void test_errors(void)
{
	struct weir_config *cfg;

	test_begin("errors with file:line");
	cfg = load(
	    "agent = {\n"                                                             /* 1 */
	    "  routes = (\n"                                                          /* 2 */
	    "    { name = \"a b\"; hosts = ( { host = \"x.test\"; } ); },\n"          /* 3 */
	    "    { name = \"r2\"; hosts = ( { host = \"x.test\"; port = 0; } ); },\n" /* 4 */
	    "    { name = \"r3\"; sender_domains = (\"a..b\");\n"                     /* 5 */
	    "      hosts = ( { host = \"y.test\"; tls = \"maybe\"; } ); },\n"         /* 6 */
	    "    { name = \"r4\"; rcpt_domains = \"d.test\"; mx = true;\n"            /* 7 */
	    "      hosts = ( { host = \"z.test\"; } ); },\n"                          /* 8 */
	    "    { name = \"r5\"; rcpt_domains = \"e.test\"; },\n"                    /* 9 */
	    "    { name = \"r6\"; rcpt_domains = \"f.test\";\n"                       /* 10 */
	    "      hosts = ( { host = \"h.test\"; auth = \"plain\"; },\n"             /* 11 */
	    "                { host = \"[1.2.3]\"; }, { port = 25; },\n"              /* 12 */
	    "                { host = \"w.test\"; weight = 0; bogus = 1; } ); },\n"   /* 13 */
	    "    { name = \"r6\"; logins = \"bob\"; hosts = ( { host = \"q.test\"; } ); },\n" /* 14
	                                                                                       */
	    "    { name = \"r8\"; hosts = ( { host = \"d2.test\"; } ); }\n" /* 15 */
	    "  );\n"                                                        /* 16 */
	    "};\n");
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:3: agent.routes: entry 1: name \"a b\": letters"));
	test_assert(has_error("t.conf:4: agent.routes: r2: port: out of range (1 to 65535)"));
	test_assert(has_error("t.conf:5: agent.routes: r3: sender_domains: \"a..b\": "));
	test_assert(has_error("t.conf:6: agent.routes: r3: tls: \"maybe\": expected one of "
	                      "\"none\", \"may\", \"starttls\", \"implicit\""));
	test_assert(has_error("t.conf:8: agent.routes: r4: an mx route"));
	test_assert(has_error("t.conf:9: agent.routes: r5: needs hosts"));
	test_assert(has_error("t.conf:11: agent.routes: r6: host h.test: auth \"plain\" needs "
	                      "credentials"));
	test_assert(has_error("t.conf:12: agent.routes: r6: host \"[1.2.3]\": not an IP"));
	test_assert(has_error("t.conf:12: agent.routes: r6: hosts: an entry without host"));
	test_assert(has_error("t.conf:13: agent.routes: r6: weight: out of range (1 to 10000)"));
	test_assert(has_error("t.conf:13: agent.routes host: unknown key 'bogus'"));
	test_assert(has_error("t.conf:14: agent.routes: r6: a second route called r6"));
	test_assert(has_error("t.conf:15: agent.routes: r8: a second default route"));
	test_end();

	test_begin("exactly one default route; logins need login_header");
	cfg = load("agent = { routes = ( { name = \"a\"; rcpt_domains = \"x.test\";\n"
	           "  hosts = ( { host = \"h.test\"; } ); } ); };\n");
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:1: agent.routes: no default route"));
	cfg = load("agent = { routes = (\n"
	           "  { name = \"a\"; logins = \"bob\"; hosts = ( { host = \"h.test\"; } ); },\n"
	           "  { name = \"b\"; hosts = ( { host = \"i.test\"; } ); } ); };\n");
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:2: agent.routes: a: routes by login need "
	                      "agent.login_header"));
	/* routes replace the smart host requirement */
	cfg = load("agent = { routes = ( { name = \"d\"; mx = true; } ); };\n");
	test_assert(cfg != NULL);
	if (cfg != NULL)
		test_assert(routes_find(cfg, NULL, "x.test", NULL)->mx);
	config_unref(cfg);
	test_end();
}

static void test_verp(void)
{
	struct weir_config *cfg;
	char *f;

	test_begin("verp: a bounce domain, normalized; shown by routes_format; errors");
	cfg = load("agent = { routes = (\n"
	           "  { name = \"news\"; sender_domains = \"shop.test\"; verp = \"Bounces.Test.\";\n"
	           "    hosts = ( { host = \"h.test\"; } ); },\n"
	           "  { name = \"d\"; hosts = ( { host = \"i.test\"; } ); } ); };\n");
	test_assert(cfg != NULL);
	if (cfg != NULL) {
		const struct route *r = routes_find(cfg, "shop.test", NULL, NULL);
		test_assert_str(r->verp, "bounces.test");
		test_assert(routes_find(cfg, "x.test", NULL, NULL)->verp == NULL);
		/* a VERP route sends each recipient on its own: never at MAIL */
		test_assert(routes_depend_on_rcpt(cfg));
		test_assert(routes_verp_in(cfg, routes_signature(cfg, "shop.test", "y.test")));
		test_assert(!routes_verp_in(cfg, routes_signature(cfg, "x.test", "y.test")));
		f = routes_format(cfg);
		test_assert(strstr(f, "news: verp=bounces.test h.test:25") != NULL);
		free(f);
	}
	config_unref(cfg);
	cfg = load("agent = { routes = (\n"
	           "  { name = \"d\"; verp = \"bad domain\"; hosts = ( { host = \"i.test\"; } ); } ); };\n");
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:2: agent.routes: d: verp \"bad domain\""));
	test_end();
}

int main(void)
{
	config_errors_init(&errs);
	test_smarthost();
	test_parse();
	test_errors();
	test_verp();
	config_errors_free(&errs);
	return test_exit_status();
}
