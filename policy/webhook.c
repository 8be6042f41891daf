/* webhook - the webhook outbox and the thread that empties it (see
 * webhook.h; bounce.webhooks is parsed by webhook_config.c)
 *
 *   webhook_outbox(id, url, type, body, attempts, next_at, created,
 *                  last_error)
 *
 * lives in outcome.db (WAL), next to the outcome log; each side creates
 * its own tables if they are missing. An event becomes one row per URL
 * that wants its type, written by the caller (weir-agent's event loop:
 * one small insert; weirctl bounce intake: webhook_enqueue). The row
 * holds the URL itself, not its place in bounce.webhooks, so that a
 * reordered list never sends an event to another receiver with another
 * secret; rows whose URL is no longer configured are dropped with a
 * warning. The id (AUTOINCREMENT: never reused) is X-Weir-Delivery, the
 * same on every attempt, so a receiver can discard duplicates.
 *
 * The sender thread owns a connection of its own and a curl multi
 * handle: it POSTs the due rows of each URL in turn, never inside a
 * transaction, and waits on a condition variable (webhook_event wakes
 * it; it polls every second for rows other processes add). After a
 * failure the URL is left alone for the first back-off delay, so a dead
 * receiver costs one attempt per delay, not one per queued event, and
 * does not hold back the other URLs. webhook_stop wakes the multi
 * handle (curl_multi_wakeup), so a POST in flight is abandoned at once
 * and its row stays as it was.
 *
 * Secrets are read at webhook_start, held in memory wiped on free, and
 * never logged; logged URLs lose their user, password and query. */
#include "autoconf.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/secret_file.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/webhook.h"
#include "policy/webhook_int.h"

#define BUSY_MS        5000            /* the thread, weirctl */
#define EVENT_BUSY_MS  1000            /* webhook_event: the event loop waits */
#define POLL_MS        1000            /* rows added by other processes */
#define BACKOFF_MS     5000LL          /* first retry delay */
#define BACKOFF_MAX_MS (3600 * 1000LL) /* longest retry delay */
#define SWEEP_MS       (60 * 1000LL)   /* rows of URLs no longer configured */
#define SWEEP_AGE_MS   (3600 * 1000LL) /* ... queued at least this long ago */
#define BATCH          16              /* rows read at once */
#define STR_(x)        #x
#define STR(x)         STR_(x)
#define ERR_MAX        CURL_ERROR_SIZE /* last_error kept */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS webhook_outbox ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " url TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,"
    " created INTEGER NOT NULL, last_error TEXT);"
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (url, next_at);";

static const char insert_sql[] =
    "INSERT INTO webhook_outbox (url, type, body, attempts, next_at, created)"
    " VALUES (?1, ?2, ?3, 0, ?4, ?4)";

enum st { ST_DUE, ST_NEXT, ST_DONE, ST_RETRY, ST_URLS, ST_N };
static const char *const stmt_sql[ST_N] = {
    [ST_DUE] = "SELECT id, type, body, attempts FROM webhook_outbox"
               " WHERE url = ?1 AND next_at <= ?2 ORDER BY next_at, id LIMIT " STR(BATCH),
    [ST_NEXT] = "SELECT min(next_at) FROM webhook_outbox WHERE url = ?1",
    [ST_DONE] = "DELETE FROM webhook_outbox WHERE id = ?1",
    [ST_RETRY] = "UPDATE webhook_outbox SET attempts = ?2, next_at = ?3, last_error = ?4"
                 " WHERE id = ?1",
    [ST_URLS] = "SELECT url, count(*) FROM webhook_outbox WHERE created < ?1 GROUP BY url",
};

/* A URL of bounce.webhooks as the thread uses it */
struct target {
	char *url;
	char *log_url; /* without user, password, query */
	char *secret;
	size_t secret_len;
	unsigned events;
	long long hold_until; /* ms, wall clock: left alone after a failure */
};

/* One due row, copied out of the statement before the POST */
struct row {
	long long id;
	char *type, *body;
	long attempts;
};

struct webhook {
	struct target *t;
	size_t n;
	char *db_path;
	char *ca_file; /* agent.tls_ca_file, or NULL: curl's default store */
	long timeout_ms;
	long retries;
	long long backoff_ms;

	/* webhook_event's connection, used under ins_lock by any thread */
	pthread_mutex_t ins_lock;
	sqlite3 *ins_db;
	sqlite3_stmt *ins;

	/* the thread's */
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
	CURLM *multi;
	CURL *easy;

	pthread_mutex_t lock; /* woken */
	pthread_cond_t cond;
	bool woken;
	atomic_bool stop;
	pthread_t thread;
};

/* The result of one attempt */
enum post_result {
	POST_OK,
	POST_FAILED,
	POST_STOPPED,  /* webhook_stop came first: the row stays as it was */
	POST_UNWANTED, /* the URL no longer takes this type: dropped */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* outbox_open - a connection to path with the outbox table; NULL with
 * *err_r (caller frees) */
static sqlite3 *outbox_open(const char *path, int busy_ms, char **err_r)
{
	sqlite3 *db = NULL;
	const char *step = "cannot open";

	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, busy_ms);
		step = "cannot set up the webhook outbox in";
		if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) == SQLITE_OK &&
		    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) == SQLITE_OK &&
		    sqlite3_exec(db, schema, NULL, NULL, NULL) == SQLITE_OK)
			return db;
	}
	*err_r = xasprintf("%s %s: %s", step, path, db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close(db);
	return NULL;
}

/* outbox_insert - one row for each of the n urls, in one transaction,
 * through ins (insert_sql on db); 0 or -1 with *err_r */
static int outbox_insert(sqlite3 *db, sqlite3_stmt *ins, const char *const *urls, size_t n,
                         const char *type, const char *json, char **err_r)
{
	long long now = wall_ms();

	if (n == 0)
		return 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, urls[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, json, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, now);
		if (sqlite3_step(ins) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
fail:
	*err_r = xasprintf("cannot queue the event: %s", sqlite3_errmsg(db));
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* type_bit - the bit of a type we know, else 0 and an error (the type
 * goes into a header: nothing else may pass) */
static unsigned type_bit(const char *type, char **err_r)
{
	unsigned bit = webhook_event_bit(type);

	if (bit == 0)
		*err_r = xasprintf("unknown webhook event type \"%s\"", type ? type : "(null)");
	return bit;
}

int webhook_enqueue(const struct weir_config *cfg, const char *type, const char *json, char **err_r)
{
	const struct webhook_target *t = cfg->bounce.webhooks;
	const char **urls;
	size_t n = 0;
	unsigned bit;
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	int rc = -1;

	if ((bit = type_bit(type, err_r)) == 0)
		return -1;
	urls = xcalloc(cfg->bounce.nwebhooks + 1, sizeof(*urls));
	for (size_t i = 0; i < cfg->bounce.nwebhooks; i++)
		if (t[i].events & bit)
			urls[n++] = t[i].url;
	if (n == 0)
		rc = 0;
	else if (cfg->outcome.db == NULL || cfg->outcome.db[0] == '\0')
		*err_r = xstrdup("bounce.webhooks: the outbox is in outcome.db, which is \"\"");
	else if ((db = outbox_open(cfg->outcome.db, BUSY_MS, err_r)) == NULL)
		;
	else if (sqlite3_prepare_v2(db, insert_sql, -1, &ins, NULL) != SQLITE_OK)
		*err_r = xasprintf("%s: %s", cfg->outcome.db, sqlite3_errmsg(db));
	else
		rc = outbox_insert(db, ins, urls, n, type, json, err_r);
	sqlite3_finalize(ins);
	sqlite3_close(db);
	free(urls);
	return rc;
}

void webhook_event(struct webhook *w, const char *type, const char *json)
{
	const char *urls[WEBHOOKS_MAX];
	char *err = NULL;
	size_t n = 0;
	unsigned bit;
	int rc;

	if (w == NULL)
		return;
	if ((bit = type_bit(type, &err)) != 0) {
		for (size_t i = 0; i < w->n; i++)
			if (w->t[i].events & bit)
				urls[n++] = w->t[i].url;
		pthread_mutex_lock(&w->ins_lock);
		rc = outbox_insert(w->ins_db, w->ins, urls, n, type, json, &err);
		pthread_mutex_unlock(&w->ins_lock);
		if (rc == 0 && n == 0)
			return;
		if (rc == 0) {
			pthread_mutex_lock(&w->lock);
			w->woken = true;
			pthread_cond_signal(&w->cond);
			pthread_mutex_unlock(&w->lock);
			return;
		}
	}
	log_error("webhook: event type=%s lost: %s", type ? type : "(null)", err);
	free(err);
}

/* ---- the sender thread ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* sign - "sha256=" and the hex HMAC-SHA256 of body with t's secret */
static char *sign(const struct target *t, const char *body)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *out, *p;

	if (HMAC(EVP_sha256(), t->secret, (int)t->secret_len, (const unsigned char *)body,
	         strlen(body), md, &mdlen) == NULL)
		log_fatal("webhook: HMAC-SHA256 failed (OpenSSL)");
	out = xmalloc(7 + 2 * (size_t)mdlen + 1);
	p = out + sprintf(out, "sha256=");
	for (unsigned int i = 0; i < mdlen; i++)
		p += sprintf(p, "%02x", md[i]);
	return out;
}

/* headers - the request's header list (caller frees it) */
static struct curl_slist *headers(const struct target *t, const struct row *r)
{
	const char *fixed[] = {"Content-Type: application/json", "Expect:"};
	struct curl_slist *h = NULL, *n;
	char *sig = sign(t, r->body);
	char *v[3] = {xasprintf("X-Weir-Event: %s", r->type),
	              xasprintf("X-Weir-Delivery: %lld", r->id),
	              xasprintf("X-Weir-Signature: %s", sig)};

	for (size_t i = 0; i < 2 + 3; i++) {
		if ((n = curl_slist_append(h, i < 2 ? fixed[i] : v[i - 2])) == NULL)
			log_fatal("webhook: out of memory");
		h = n;
	}
	for (size_t i = 0; i < 3; i++)
		free(v[i]);
	free(sig);
	return h;
}

/* setup_easy - the options of one POST on w->easy */
static void setup_easy(struct webhook *w, const struct target *t, const struct row *r,
                       struct curl_slist *h, char *errbuf)
{
	CURL *e = w->easy;

	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "weir/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never from the environment */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	if (w->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, w->ca_file);
}

/* post - one attempt at r for t; on failure why (size ERR_MAX) says why */
static enum post_result post(struct webhook *w, const struct target *t, const struct row *r,
                             char *why)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = headers(t, r);
	enum post_result res = POST_STOPPED;
	CURLcode cc = CURLE_OK;
	CURLMsg *m;
	int running = 1, left;
	long status = 0;

	setup_easy(w, t, r, h, errbuf);
	curl_multi_add_handle(w->multi, w->easy);
	while (!atomic_load(&w->stop)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK || running == 0)
			break;
		curl_multi_poll(w->multi, NULL, 0, POLL_MS, NULL);
	}
	if (running == 0) {
		while ((m = curl_multi_info_read(w->multi, &left)) != NULL)
			if (m->msg == CURLMSG_DONE)
				cc = m->data.result;
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
		if (cc == CURLE_OK && status >= 200 && status <= 299) {
			res = POST_OK;
		} else {
			res = POST_FAILED;
			if (cc != CURLE_OK)
				snprintf(why, ERR_MAX, "%s",
				         errbuf[0] ? errbuf : curl_easy_strerror(cc));
			else
				snprintf(why, ERR_MAX, "HTTP status %ld", status);
		}
	} else if (!atomic_load(&w->stop)) {
		res = POST_FAILED;
		snprintf(why, ERR_MAX, "curl multi interface failed");
	}
	curl_multi_remove_handle(w->multi, w->easy);
	curl_slist_free_all(h);
	return res;
}

/* backoff - the delay after the attempts-th failure (1, 2, ...) */
static long long backoff(const struct webhook *w, long attempts)
{
	long long d = w->backoff_ms;

	for (long i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

/* finish - write down the result of one attempt at r */
static void finish(struct webhook *w, const struct target *t, const struct row *r,
                   enum post_result res, const char *why)
{
	long attempts = r->attempts + 1;
	sqlite3_stmt *st;
	struct kvline kv;

	kv_init(&kv);
	kv_addf(&kv, "delivery", "%lld", r->id);
	kv_add(&kv, "event", r->type);
	kv_add(&kv, "url", t->log_url);
	kv_addf(&kv, "attempts", "%ld", attempts);
	if (res == POST_OK) {
		log_info("webhook: delivered %s", kv_str(&kv));
	} else if (res == POST_UNWANTED) {
		log_warning("webhook: dropped, the url no longer takes this event type %s",
		            kv_str(&kv));
	} else if (attempts > w->retries) {
		kv_add(&kv, "error", why);
		log_warning("webhook: dropped, no retries left %s", kv_str(&kv));
	} else {
		long long delay = backoff(w, attempts);
		kv_add(&kv, "error", why);
		if (delay < 1000)
			kv_addf(&kv, "retry_in", "%lldms", delay);
		else
			kv_addf(&kv, "retry_in", "%llds", delay / 1000);
		log_info("webhook: failed %s", kv_str(&kv));
		st = w->st[ST_RETRY];
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_int64(st, 2, attempts);
		sqlite3_bind_int64(st, 3, wall_ms() + delay);
		sqlite3_bind_text(st, 4, why, -1, SQLITE_STATIC);
		goto step;
	}
	st = w->st[ST_DONE];
	sqlite3_bind_int64(st, 1, r->id);
step:
	if (sqlite3_step(st) != SQLITE_DONE)
		log_error("webhook: %s: cannot update the outbox: %s", w->db_path,
		          sqlite3_errmsg(w->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	kv_free(&kv);
}

/* due_rows - up to BATCH due rows of t, copied into rows; how many */
static size_t due_rows(struct webhook *w, const struct target *t, struct row *rows)
{
	sqlite3_stmt *st = w->st[ST_DUE];
	size_t n = 0;
	int rc;

	sqlite3_bind_text(st, 1, t->url, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, wall_ms());
	while (n < BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 1);
		const char *body = (const char *)sqlite3_column_text(st, 2);
		rows[n].id = sqlite3_column_int64(st, 0);
		rows[n].type = xstrdup(type ? type : "");
		rows[n].body = xstrdup(body ? body : "");
		rows[n].attempts = (long)sqlite3_column_int64(st, 3);
		n++;
	}
	if (n < BATCH && rc != SQLITE_DONE)
		log_error("webhook: %s: cannot read the outbox: %s", w->db_path,
		          sqlite3_errmsg(w->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return n;
}

/* send_due - POST the due rows of t until one fails or none is left */
static void send_due(struct webhook *w, struct target *t)
{
	struct row rows[BATCH];
	size_t n;
	bool failed = false;
	char why[ERR_MAX];

	if (t->hold_until > wall_ms())
		return;
	do {
		n = due_rows(w, t, rows);
		for (size_t i = 0; i < n; i++) {
			enum post_result res = POST_STOPPED;
			why[0] = '\0';
			if (!failed && !atomic_load(&w->stop)) {
				if (webhook_event_bit(rows[i].type) & t->events)
					res = post(w, t, &rows[i], why);
				else /* bounce.webhooks changed since it was queued */
					res = POST_UNWANTED;
				if (res != POST_STOPPED)
					finish(w, t, &rows[i], res, why);
				if (res == POST_FAILED) {
					failed = true;
					t->hold_until = wall_ms() + w->backoff_ms;
				}
			}
			free(rows[i].type);
			free(rows[i].body);
		}
	} while (n == BATCH && !failed && !atomic_load(&w->stop));
}

/* find_target - the target of url, or NULL */
static struct target *find_target(struct webhook *w, const char *url)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->t[i].url, url) == 0)
			return &w->t[i];
	return NULL;
}

/* sweep - drop the rows of URLs no longer in bounce.webhooks; only
 * old ones: weirctl may have queued rows with a newer weir.conf than
 * ours, which a reload is about to make ours */
static void sweep(struct webhook *w)
{
	sqlite3_stmt *st = w->st[ST_URLS];
	struct strlist gone = {NULL, 0};
	long long before = wall_ms() - SWEEP_AGE_MS;

	sqlite3_bind_int64(st, 1, before);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *url = (const char *)sqlite3_column_text(st, 0);
		if (url == NULL || find_target(w, url) != NULL)
			continue;
		char *log_url = webhook_url_for_log(url);
		log_warning("webhook: dropping %lld queued events for url=%s: no longer in "
		            "bounce.webhooks (queued over an hour ago)",
		            (long long)sqlite3_column_int64(st, 1), log_url);
		free(log_url);
		gone.v = xrealloc(gone.v, (gone.n + 1) * sizeof(*gone.v));
		gone.v[gone.n++] = xstrdup(url);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (size_t i = 0; i < gone.n; i++) {
		char *sql = sqlite3_mprintf("DELETE FROM webhook_outbox WHERE url = %Q AND "
		                            "created < %lld",
		                            gone.v[i], before);
		if (sql == NULL || sqlite3_exec(w->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			log_error("webhook: %s: cannot update the outbox: %s", w->db_path,
			          sqlite3_errmsg(w->db));
		sqlite3_free(sql);
		free(gone.v[i]);
	}
	free(gone.v);
}

/* next_due - ms (wall clock) when something may be sent next, at most
 * now + POLL_MS */
static long long next_due(struct webhook *w)
{
	long long now = wall_ms(), next = now + POLL_MS;
	sqlite3_stmt *st = w->st[ST_NEXT];

	for (size_t i = 0; i < w->n; i++) {
		sqlite3_bind_text(st, 1, w->t[i].url, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
			long long at = sqlite3_column_int64(st, 0);
			if (at < w->t[i].hold_until)
				at = w->t[i].hold_until;
			if (at < next)
				next = at;
		}
		sqlite3_reset(st);
	}
	return next;
}

/* wait_until - sleep until at (wall clock ms), webhook_event or stop */
static void wait_until(struct webhook *w, long long at)
{
	long long ms = at - wall_ms();
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->woken && !atomic_load(&w->stop))
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
			break;
	w->woken = false;
	pthread_mutex_unlock(&w->lock);
}

static void *sender_main(void *arg)
{
	struct webhook *w = arg;
	long long swept = 0;

	while (!atomic_load(&w->stop)) {
		if (wall_ms() - swept >= SWEEP_MS) {
			sweep(w);
			swept = wall_ms();
		}
		for (size_t i = 0; i < w->n && !atomic_load(&w->stop); i++)
			send_due(w, &w->t[i]);
		if (!atomic_load(&w->stop))
			wait_until(w, next_due(w));
	}
	return NULL;
}

/* ---- start and stop ---- */

/* webhook_free - everything webhook_start made; the thread is gone */
static void webhook_free(struct webhook *w)
{
	for (size_t i = 0; i < ST_N; i++)
		sqlite3_finalize(w->st[i]);
	sqlite3_finalize(w->ins);
	sqlite3_close(w->db);
	sqlite3_close(w->ins_db);
	if (w->easy != NULL)
		curl_easy_cleanup(w->easy);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	for (size_t i = 0; i < w->n; i++) {
		free(w->t[i].url);
		free(w->t[i].log_url);
		secret_free(w->t[i].secret, w->t[i].secret_len);
	}
	free(w->t);
	free(w->db_path);
	free(w->ca_file);
	pthread_mutex_destroy(&w->ins_lock);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

/* load_targets - the URLs and their secrets; -1 with *err_r */
static int load_targets(struct webhook *w, const struct weir_config *cfg, char **err_r)
{
	w->t = xcalloc(cfg->bounce.nwebhooks, sizeof(*w->t));
	for (size_t i = 0; i < cfg->bounce.nwebhooks; i++) {
		const struct webhook_target *c = &cfg->bounce.webhooks[i];
		struct target *t = &w->t[w->n];

		t->secret = webhook_secret_read(c, cfg->user, &t->secret_len, err_r);
		if (t->secret == NULL)
			return -1;
		t->url = xstrdup(c->url);
		t->log_url = webhook_url_for_log(c->url);
		t->events = c->events;
		w->n++;
	}
	return 0;
}

/* backoff_setting - BACKOFF_MS, or WEIR_WEBHOOK_BACKOFF_MS (tests) */
static long long backoff_setting(void)
{
	const char *v = getenv("WEIR_WEBHOOK_BACKOFF_MS");
	char *end;
	long long ms;

	if (v == NULL || v[0] == '\0')
		return BACKOFF_MS;
	ms = strtoll(v, &end, 10);
	if (*end != '\0' || ms < 1 || ms > BACKOFF_MAX_MS) {
		log_warning("webhook: WEIR_WEBHOOK_BACKOFF_MS=%s ignored (1 to %lld)", v,
		            BACKOFF_MAX_MS);
		return BACKOFF_MS;
	}
	return ms;
}

/* open_all - the connections, statements and curl handles; -1 with *err_r */
static int open_all(struct webhook *w, char **err_r)
{
	if ((w->ins_db = outbox_open(w->db_path, EVENT_BUSY_MS, err_r)) == NULL ||
	    (w->db = outbox_open(w->db_path, BUSY_MS, err_r)) == NULL)
		return -1;
	if (sqlite3_prepare_v3(w->ins_db, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->ins,
	                       NULL) != SQLITE_OK) {
		*err_r = xasprintf("%s: %s", w->db_path, sqlite3_errmsg(w->ins_db));
		return -1;
	}
	for (size_t i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(w->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &w->st[i],
		                       NULL) != SQLITE_OK) {
			*err_r = xasprintf("%s: %s", w->db_path, sqlite3_errmsg(w->db));
			return -1;
		}
	if ((w->multi = curl_multi_init()) == NULL || (w->easy = curl_easy_init()) == NULL) {
		*err_r = xstrdup("cannot set up libcurl");
		return -1;
	}
	return 0;
}

struct webhook *webhook_start(const struct weir_config *cfg, char **err_r)
{
	struct webhook *w;
	pthread_condattr_t ca;
	int rc;

	*err_r = NULL;
	if (cfg->bounce.nwebhooks == 0)
		return NULL;
	if (cfg->outcome.db == NULL || cfg->outcome.db[0] == '\0') {
		*err_r = xstrdup("bounce.webhooks: the outbox is in outcome.db, which is \"\"");
		return NULL;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		*err_r = xasprintf("libcurl: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->ins_lock, NULL);
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&w->stop, false);
	w->db_path = xstrdup(cfg->outcome.db);
	if (cfg->agent.tls_ca_file != NULL && cfg->agent.tls_ca_file[0] != '\0')
		w->ca_file = xstrdup(cfg->agent.tls_ca_file);
	w->timeout_ms = cfg->bounce.webhook_timeout * 1000;
	w->retries = cfg->bounce.webhook_retries;
	w->backoff_ms = backoff_setting();
	if (load_targets(w, cfg, err_r) < 0 || open_all(w, err_r) < 0) {
		webhook_free(w);
		return NULL;
	}
	if ((rc = pthread_create(&w->thread, NULL, sender_main, w)) != 0) {
		*err_r = xasprintf("cannot start the webhook thread: %s", strerror(rc));
		webhook_free(w);
		return NULL;
	}
	return w;
}

void webhook_stop(struct webhook *w)
{
	if (w == NULL)
		return;
	atomic_store(&w->stop, true);
	pthread_mutex_lock(&w->lock);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	webhook_free(w);
}
