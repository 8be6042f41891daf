/* test-webhook - bounce.webhooks (policy/webhook*.c) against a real HTTP
 * receiver on 127.0.0.1 (tests/policy/webhook-server.py): parsing with
 * file:line errors, the request and its signature, retries with back-off
 * (WEIR_WEBHOOK_BACKOFF_MS shortens it), dropping after the last retry,
 * events queued without a thread (webhook_enqueue), a webhook_event that
 * never waits for a receiver, webhook_stop during a hanging POST, and
 * secret files others could read. */
#include "autoconf.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/webhook.h"
#include "tests/testlib.h"
#include "tests/conftest.h"

#define SECRET "s3cret-key-for-tests"

static char dir[64];
static char secret_path[128], db_path[128], req_path[128];
static int port;
static pid_t server;
static struct config_errors errs;
static bool expect_errors; /* load_hook: do not show them */

/* ---- what was logged (the sender thread logs too) ---- */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct strlist logged;

static void log_capture(enum log_level level, const char *line)
{
	(void)level;
	pthread_mutex_lock(&log_lock);
	logged.v = xrealloc(logged.v, (logged.n + 1) * sizeof(*logged.v));
	logged.v[logged.n++] = xstrdup(line);
	pthread_mutex_unlock(&log_lock);
}

/* log_has - some line logged holds every one of a and b (b may be NULL) */
static bool log_has(const char *a, const char *b)
{
	bool found = false;

	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < logged.n && !found; i++)
		found = strstr(logged.v[i], a) != NULL && (b == NULL || strstr(logged.v[i], b));
	pthread_mutex_unlock(&log_lock);
	return found;
}

static bool log_mentions_secret(void)
{
	return log_has(SECRET, NULL);
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < logged.n; i++)
		free(logged.v[i]);
	free(logged.v);
	logged.v = NULL;
	logged.n = 0;
	pthread_mutex_unlock(&log_lock);
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* ---- the receiver ---- */

struct req {
	char path[128], event[32], delivery[32], sig[80], ctype[64];
	bool sig_ok;
	int nth;
	char *body;
};

static char *hex_decode(const char *h)
{
	size_t n = strlen(h) / 2;
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (char)v;
	}
	out[n] = '\0';
	return out;
}

/* requests - the requests logged for path (all when NULL); *n_r of them */
static struct req *requests(const char *path, size_t *n_r)
{
	FILE *f = fopen(req_path, "r");
	char line[65536];
	struct req *v = NULL;

	*n_r = 0;
	if (f == NULL)
		return NULL;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *fld[8], *s = line;
		int k = 0;
		line[strcspn(line, "\n")] = '\0';
		while (k < 8 && s != NULL) { /* strtok would skip empty fields */
			fld[k++] = s;
			if ((s = strchr(s, '\t')) != NULL)
				*s++ = '\0';
		}
		if (k < 8 || (path != NULL && strcmp(fld[0], path) != 0))
			continue;
		v = xrealloc(v, (*n_r + 1) * sizeof(*v));
		struct req *r = &v[(*n_r)++];
		snprintf(r->path, sizeof(r->path), "%s", fld[0]);
		snprintf(r->event, sizeof(r->event), "%s", fld[1]);
		snprintf(r->delivery, sizeof(r->delivery), "%s", fld[2]);
		snprintf(r->sig, sizeof(r->sig), "%s", fld[3]);
		snprintf(r->ctype, sizeof(r->ctype), "%s", fld[4]);
		r->sig_ok = strcmp(fld[5], "1") == 0;
		r->nth = atoi(fld[6]);
		r->body = hex_decode(fld[7]);
	}
	fclose(f);
	return v;
}

static void requests_free(struct req *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].body);
	free(v);
}

/* wait_requests - until path has had n requests (limit ms); how many */
static size_t wait_requests(const char *path, size_t n, int limit_ms)
{
	long long end = mono_ms() + limit_ms;
	size_t got;

	for (;;) {
		struct req *r = requests(path, &got);
		requests_free(r, got);
		if (got >= n || mono_ms() > end)
			return got;
		sleep_ms(20);
	}
}

static void start_server(void)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	char *script = xasprintf("%s/tests/policy/webhook-server.py", srcdir);
	char *portfile = xasprintf("%s/port", dir);
	FILE *f;

	server = fork();
	if (server == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* even when the test crashes */
		execl("/usr/bin/python3", "python3", script, portfile, req_path, SECRET,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && port == 0; i++) {
		if ((f = fopen(portfile, "r")) != NULL) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (port == 0)
			sleep_ms(25);
	}
	free(script);
	free(portfile);
}

/* dead_port - a loopback port nobody listens on */
static int dead_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		p = ntohs(sa.sin_port);
	close(fd);
	return p;
}

/* ---- configuration and the outbox ---- */

#define has_error(want) conf_has_error(&errs, want)

/* load - a configuration with bounce = { BOUNCE } and outcome.db set
 * (with_db); the user is whoever we are (the owner check). Errors are
 * in errs. */
static struct weir_config *load(const char *bounce, bool with_db)
{
	struct passwd *pw = getpwuid(geteuid());
	char *text = xasprintf("user = \"%s\"; agent = { smarthost = \"127.0.0.1\"; };\n"
	                       "%s%s%s\nbounce = {\n%s\n};\n",
	                       pw ? pw->pw_name : "root", with_db ? "outcome = { db = \"" : "",
	                       with_db ? db_path : "", with_db ? "\"; };" : "", bounce);
	struct weir_config *cfg;

	cfg = conf_load(&errs, text, CONFIG_FOR_AGENT);
	free(text);
	return cfg;
}

static void show_errors(void)
{
	for (size_t i = 0; i < errs.list.n; i++)
		fprintf(stderr, "  %s\n", errs.list.v[i]);
}

/* load_hook - one webhook to url (path on the receiver, or a whole URL) */
static struct weir_config *load_hook(const char *url, const char *extra)
{
	char *full = url[0] == '/' ? xasprintf("http://127.0.0.1:%d%s", port, url) : xstrdup(url);
	char *b = xasprintf("webhooks = ( { url = \"%s\"; secret_file = \"%s\"; "
	                    "events = \"bounce\"; } );\n%s",
	                    full, secret_path, extra ? extra : "");
	struct weir_config *cfg = load(b, true);

	if (cfg == NULL && !expect_errors)
		show_errors();
	free(b);
	free(full);
	return cfg;
}

/* outbox_rows - rows in the outbox (where if not NULL: a WHERE clause) */
static int outbox_rows(const char *where)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *sql = xasprintf("SELECT count(*) FROM webhook_outbox%s%s", where ? " WHERE " : "",
	                      where ? where : "");
	int n = -1;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	free(sql);
	return n;
}

static void outbox_exec(const char *sql)
{
	sqlite3 *db;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fprintf(stderr, "  %s: %s\n", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* wait_outbox - until the outbox holds n rows (limit ms) */
static int wait_outbox(int n, int limit_ms)
{
	long long end = mono_ms() + limit_ms;
	int got;

	while ((got = outbox_rows(NULL)) != n && mono_ms() < end)
		sleep_ms(20);
	return got;
}

static bool wait_log(const char *a, const char *b, int limit_ms)
{
	long long end = mono_ms() + limit_ms;

	while (!log_has(a, b) && mono_ms() < end)
		sleep_ms(20);
	return log_has(a, b);
}

static struct webhook *start(const struct weir_config *cfg)
{
	char *err = NULL;
	struct webhook *w = webhook_start(cfg, &err);

	if (w == NULL)
		fprintf(stderr, "  webhook_start: %s\n", err ? err : "(no error)");
	free(err);
	return w;
}

/* hmac_hex - "sha256=" + hex HMAC-SHA256 of body, computed here */
static void hmac_hex(const char *body, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, strlen(body),
	     md, &n);
	out += sprintf(out, "sha256=");
	for (unsigned int i = 0; i < n; i++)
		out += sprintf(out, "%02x", md[i]);
}

/* ---- the cases ---- */

static void test_config(void)
{
	struct weir_config *cfg;
	char *b, *s;

	test_begin("bounce.webhooks: parsing and errors");
	b = xasprintf("webhooks = ( { url = \"https://u:pw@hooks.example/w?token=tt\"; "
	              "secret_file = \"%s\"; } );",
	              secret_path);
	cfg = load(b, true);
	test_assert(cfg != NULL);
	if (cfg == NULL)
		show_errors();
	if (cfg != NULL) {
		test_assert(cfg->bounce.nwebhooks == 1);
		test_assert(cfg->bounce.webhooks[0].events ==
		            (WEBHOOK_EVENT_BOUNCE | WEBHOOK_EVENT_COMPLAINT));
		test_assert(cfg->bounce.webhook_timeout == 10);
		test_assert(cfg->bounce.webhook_retries == 8);
		s = setting_format(setting_find("bounce.webhooks"), cfg);
		test_assert_str(s, "(https://hooks.example/w [bounce,complaint])");
		free(s);
	}
	config_unref(cfg);
	free(b);

	b = xasprintf("webhooks = ( { url = \"ftp://x.example/\"; secret_file = \"%s\"; },\n"
	              "  { url = \"http://a.example/\"; secret_file = \"%s\"; colour = 1; },\n"
	              "  { url = \"http://b.example/\"; },\n"
	              "  { url = \"http://c.example/\"; secret_file = \"%s\";"
	              " events = (\"bounce\", \"open\"); },\n"
	              "  { url = \"http://d.example/\"; secret_file = \"%s\"; },\n"
	              "  { url = \"http://d.example/\"; secret_file = \"%s\"; } );",
	              secret_path, secret_path, secret_path, secret_path, secret_path);
	cfg = load(b, true);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:4: bounce.webhooks: url \"ftp://x.example/\": must start "
	                      "with http:// or https://"));
	test_assert(has_error("t.conf:5: bounce.webhooks: unknown key 'colour'"));
	test_assert(has_error("t.conf:6: bounce.webhooks: entry 3: needs url and secret_file"));
	test_assert(has_error("t.conf:7: bounce.webhooks: events: \"open\": expected"));
	test_assert(has_error("t.conf:9: bounce.webhooks: url http://d.example/ given twice "
	                      "(line 8)"));
	config_unref(cfg);
	free(b);

	/* checked once the file parsed: the secret file and outcome.db */
	b = xasprintf("webhooks = ( { url = \"http://d.example/\"; secret_file = \"%s\"; },\n"
	              "  { url = \"http://e.example/\"; secret_file = \"%s/none\"; } );",
	              secret_path, dir);
	cfg = load(b, true);
	test_assert(cfg == NULL);
	test_assert(has_error("t.conf:5: bounce.webhooks: secret_file"));
	test_assert(has_error("/none: cannot read: No such file or directory"));
	config_unref(cfg);
	free(b);

	test_assert(load("webhook_timeout = \"0s\";", true) == NULL);
	test_assert(has_error("webhook_timeout"));
	test_assert(load("webhook_retries = 101;", true) == NULL);
	test_assert(has_error("webhook_retries"));

	b = xasprintf("webhooks = ( { url = \"http://a.example/\"; secret_file = \"%s\"; } );",
	              secret_path);
	config_unref(cfg = load(b, false)); /* outcome.db stays the default: fine */
	test_assert(cfg != NULL);
	free(b);
	b = xasprintf("agent = { smarthost = \"127.0.0.1\"; };\noutcome = { db = \"\"; };\n"
	              "bounce = { webhooks = ( { url = "
	              "\"http://a.example/\"; secret_file = \"%s\"; } ); };",
	              secret_path);
	config_errors_free(&errs);
	config_errors_init(&errs);
	cfg = config_load_string("t.conf", b, CONFIG_FOR_AGENT, &errs);
	test_assert(cfg == NULL);
	test_assert(has_error("the outbox is in outcome.db, which is \"\""));
	config_unref(cfg);
	free(b);
	test_end();
}

static void test_loose_secret(void)
{
	struct weir_config *cfg;
	struct webhook *w;
	char *err = NULL;

	test_begin("a secret file others can read is refused");
	chmod(secret_path, 0640);
	expect_errors = true;
	cfg = load_hook("/ok/loose", NULL);
	expect_errors = false;
	test_assert(cfg == NULL);
	test_assert(has_error("readable by group or others: run chmod 600"));
	for (size_t i = 0; i < errs.list.n; i++)
		test_assert(strstr(errs.list.v[i], SECRET) == NULL);
	chmod(secret_path, 0600);
	cfg = load_hook("/ok/loose", NULL);
	test_assert(cfg != NULL);
	chmod(secret_path, 0604); /* changed after the configuration loaded */
	w = cfg ? webhook_start(cfg, &err) : NULL;
	test_assert(w == NULL);
	test_assert(err != NULL && strstr(err, "chmod 600") != NULL &&
	            strstr(err, secret_path) != NULL && strstr(err, SECRET) == NULL);
	free(err);
	chmod(secret_path, 0600);
	webhook_stop(w);
	config_unref(cfg);
	test_end();
}

static void test_delivered(void)
{
	const char *json = "{\"type\":\"bounce\",\"id\":\"e1\",\"recipient\":\"a@example.com\","
	                   "\"reason\":\"userunknown\",\"hard\":true,\"code\":550}";
	struct weir_config *cfg = load_hook("/ok/1", NULL);
	struct webhook *w = cfg ? start(cfg) : NULL;
	struct req *r;
	size_t n;
	char want[80];

	test_begin("an event arrives, signed");
	test_assert(w != NULL);
	webhook_event(w, "complaint", "{\"type\":\"complaint\"}"); /* not wanted by this URL */
	webhook_event(w, "bounce", json);
	test_assert(wait_requests("/ok/1", 1, 5000) == 1);
	test_assert(wait_outbox(0, 3000) == 0);
	r = requests("/ok/1", &n);
	test_assert(n == 1);
	if (n == 1) {
		test_assert_str(r[0].event, "bounce");
		test_assert_str(r[0].ctype, "application/json");
		test_assert_str(r[0].body, json);
		test_assert(atoll(r[0].delivery) > 0);
		hmac_hex(json, want);
		test_assert_str(r[0].sig, want);
		test_assert(r[0].sig_ok);
	}
	requests_free(r, n);
	test_assert(log_has("webhook: delivered", "url=http://127.0.0.1"));
	webhook_stop(w);
	config_unref(cfg);
	test_end();
}

static void test_retry(void)
{
	const char *json = "{\"type\":\"bounce\",\"id\":\"e2\"}";
	struct weir_config *cfg = load_hook("/fail2/2", "webhook_retries = 3;");
	struct webhook *w = cfg ? start(cfg) : NULL;
	struct req *r;
	size_t n;

	test_begin("500, 500, then 200: delivered on the third attempt");
	log_clear();
	webhook_event(w, "bounce", json);
	test_assert(wait_requests("/fail2/2", 3, 5000) == 3);
	test_assert(wait_outbox(0, 3000) == 0);
	test_assert(wait_log("webhook: delivered", "attempts=3", 2000));
	test_assert(log_has("webhook: failed", "HTTP status 500"));
	r = requests("/fail2/2", &n);
	test_assert(n == 3);
	for (size_t i = 1; i < n; i++) {
		test_assert_str(r[i].delivery, r[0].delivery);
		test_assert(r[i].sig_ok);
	}
	requests_free(r, n);
	webhook_stop(w);
	config_unref(cfg);
	test_end();
}

static void test_dead(void)
{
	char *url = xasprintf("http://127.0.0.1:%d/dead", dead_port());
	struct weir_config *cfg = load_hook(url, "webhook_retries = 2;");
	struct webhook *w = cfg ? start(cfg) : NULL;

	test_begin("a dead URL: dropped after the retries, with a warning");
	log_clear();
	webhook_event(w, "bounce", "{\"type\":\"bounce\",\"id\":\"e3\"}");
	test_assert(wait_log("dropped, no retries left", "attempts=3", 5000));
	test_assert(log_has("dropped, no retries left", url));
	test_assert(log_has("dropped, no retries left", "delivery="));
	test_assert(wait_outbox(0, 1000) == 0);
	test_assert(!log_mentions_secret());
	webhook_stop(w);
	config_unref(cfg);
	free(url);
	test_end();

	test_begin("redirects are not followed");
	cfg = load_hook("/redirect/r", "webhook_retries = 0;");
	w = cfg ? start(cfg) : NULL;
	log_clear();
	webhook_event(w, "bounce", "{\"type\":\"bounce\",\"id\":\"e4\"}");
	test_assert(wait_log("dropped, no retries left", "HTTP status 302", 5000));
	test_assert(wait_requests("/ok/redirected", 1, 300) == 0);
	webhook_stop(w);
	config_unref(cfg);
	test_end();

	test_begin("no answer within webhook_timeout: a failure");
	cfg = load_hook("/hang/t", "webhook_retries = 0; webhook_timeout = \"1s\";");
	w = cfg ? start(cfg) : NULL;
	log_clear();
	webhook_event(w, "bounce", "{\"type\":\"bounce\",\"id\":\"e5\"}");
	test_assert(wait_log("dropped, no retries left", "timed out", 5000));
	test_assert(wait_outbox(0, 1000) == 0);
	webhook_stop(w);
	config_unref(cfg);
	test_end();
}

static void test_hang(void)
{
	struct weir_config *cfg = load_hook("/hang/h", NULL);
	struct webhook *w = cfg ? start(cfg) : NULL;
	long long t0, worst = 0;

	test_begin("a hanging receiver: webhook_event does not wait, webhook_stop is prompt");
	webhook_event(w, "bounce", "{\"type\":\"bounce\",\"id\":\"h0\"}");
	test_assert(wait_requests("/hang/h", 1, 5000) == 1); /* the POST is in flight */
	for (int i = 1; i <= 20; i++) {
		char json[64];
		snprintf(json, sizeof(json), "{\"type\":\"bounce\",\"id\":\"h%d\"}", i);
		t0 = mono_ms();
		webhook_event(w, "bounce", json);
		if (mono_ms() - t0 > worst)
			worst = mono_ms() - t0;
	}
	printf("     slowest webhook_event during a hanging POST: %lld ms\n", worst);
	test_assert(worst < 100);
	t0 = mono_ms();
	webhook_stop(w);
	printf("     webhook_stop during a hanging POST: %lld ms\n", mono_ms() - t0);
	test_assert(mono_ms() - t0 < 1500);
	/* nothing lost, and the abandoned attempt is not counted */
	test_assert(outbox_rows(NULL) == 21);
	test_assert(outbox_rows("attempts = 0") == 21);
	outbox_exec("DELETE FROM webhook_outbox");
	config_unref(cfg);
	test_end();
}

static void test_enqueue(void)
{
	const char *json = "{\"type\":\"bounce\",\"id\":\"q1\"}";
	struct weir_config *cfg = load_hook("/ok/q", NULL);
	struct webhook *w;
	char *err = NULL;

	test_begin("webhook_enqueue without a thread, sent by a later webhook_start");
	test_assert(cfg != NULL);
	test_assert(webhook_enqueue(cfg, "bounce", json, &err) == 0);
	test_assert(webhook_enqueue(cfg, "complaint", json, &err) == 0); /* nobody wants it */
	test_assert(webhook_enqueue(cfg, "open\r\nX-Evil: 1", json, &err) == -1);
	test_assert(err != NULL && strstr(err, "unknown webhook event type") != NULL);
	free(err);
	test_assert(outbox_rows(NULL) == 1);
	/* a row of a URL no longer configured: dropped once it is an hour old */
	outbox_exec("INSERT INTO webhook_outbox (url, type, body, attempts, next_at, created) "
	            "VALUES ('http://gone.example/', 'bounce', '{}', 0, 0, 0),"
	            " ('http://new.example/', 'bounce', '{}', 0, 0, 9999999999999)");
	sleep_ms(300);
	test_assert(wait_requests("/ok/q", 1, 200) == 0);
	w = start(cfg);
	test_assert(wait_requests("/ok/q", 1, 5000) == 1);
	test_assert(wait_outbox(1, 3000) == 1);
	test_assert(outbox_rows("url = 'http://new.example/'") == 1);
	test_assert(log_has("dropping 1 queued events", "url=http://gone.example/"));
	webhook_stop(w);
	outbox_exec("DELETE FROM webhook_outbox");
	config_unref(cfg);
	test_end();
}

static void setup(void)
{
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/weir-test-webhook.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(secret_path, sizeof(secret_path), "%s/secret", dir);
	snprintf(db_path, sizeof(db_path), "%s/outcome.db", dir);
	snprintf(req_path, sizeof(req_path), "%s/requests", dir);
	f = fopen(secret_path, "w");
	fputs(SECRET "\n", f); /* the line end is not part of the secret */
	fclose(f);
	chmod(secret_path, 0600);
	/* a proxy in the environment must not be used */
	setenv("http_proxy", "http://127.0.0.1:1", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:1", 1);
	setenv("WEIR_WEBHOOK_BACKOFF_MS", "100", 1);
	log_set_level(LOG_LEVEL_DEBUG);
	log_set_hook(log_capture);
	config_errors_init(&errs);
}

static void cleanup(void)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
	log_set_hook(NULL);
	log_clear();
	config_errors_free(&errs);
}

int main(void)
{
	if (access("/usr/bin/python3", X_OK) != 0) {
		printf("SKIP: no /usr/bin/python3\n");
		return 77;
	}
	setup();
	start_server();
	if (port == 0) {
		fprintf(stderr, "the test receiver did not start\n");
		cleanup();
		return 1;
	}
	test_config();
	test_loose_secret();
	test_delivered();
	test_retry();
	test_dead();
	test_hang();
	test_enqueue();
	cleanup();
	return test_exit_status();
}
