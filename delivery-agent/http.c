/* http - weir-agent's HTTP endpoint (see http.h)
 *
 *   GET /metrics           Prometheus text format (stats.c's registry)
 *   GET /                  agent.dashboard_dir/index.html
 *   GET /assets/NAME       agent.dashboard_dir/NAME, NAME of [A-Za-z0-9._-]
 *                          only (no '/', not starting with '.'): nothing
 *                          outside the directory can be named
 *   GET /api/summary?since=24h   summary.c
 *
 * THREADS. The handler runs on lib/httpd's thread. It reads only what
 * is safe there: the registry (locked), the stats snapshot (copied under
 * its mutex), the configuration through config_current() (reference
 * counted) and the outcome log through a read-only SQLite connection of
 * its own. The struct agent_http is made and freed on the event loop;
 * its strings are fixed while the server runs (a change restarts it).
 *
 * SECURITY. Basic auth (agent.http_auth_file) is checked by lib/httpd
 * before the handler runs; a listen address that is not loopback needs
 * it (a configuration error otherwise, settings.c). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery-agent/agent.h"
#include "delivery-agent/http.h"
#include "delivery-agent/stats.h"
#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "policy/config.h"

#define ASSET_MAX      (8 * 1024 * 1024) /* octets of one dashboard file */
#define ASSET_NAME_MAX 100
#define SINCE_DEFAULT  (24LL * 3600)
#define SINCE_MAX      (366LL * 24 * 3600)

struct agent_http {
	struct httpd *h;
	struct agent_stats *stats;
	char *listen, *auth, *dashboard_dir; /* as started */
};

/* set_text - a short text answer */
static void set_text(struct httpd_response *resp, int status, const char *text)
{
	resp->status = status;
	resp->content_type = "text/plain; charset=utf-8";
	resp->body = xstrdup(text);
	resp->cache_control = "no-store";
}

/* content_type - by the file name's extension */
static const char *content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".html", "text/html; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".json", "application/json"},
	    {".map", "application/json"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	    {".ico", "image/x-icon"},
	    {".txt", "text/plain; charset=utf-8"},
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/* asset_name_ok - a plain file name: [A-Za-z0-9._-], not starting with
 * '.' (so neither "..", nor hidden files), at most ASSET_NAME_MAX */
static bool asset_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > ASSET_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* serve_file - dir/name (name checked by the caller) */
static void serve_file(const struct agent_http *ah, const char *name, struct httpd_response *resp)
{
	char *path = xasprintf("%s/%s", ah->dashboard_dir, name), *buf;
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ASSET_MAX) {
		if (fd < 0 && errno != ENOENT)
			log_warning("http: %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
		set_text(resp, 404, "not found\n");
		return;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		log_warning("http: %s: short read", path);
		free(buf);
		free(path);
		set_text(resp, 500, "cannot read the file\n");
		return;
	}
	free(path);
	buf[got] = '\0';
	resp->body = buf;
	resp->body_len = got;
	if (got == 0) { /* body_len 0 means strlen: an empty file stays empty */
		free(buf);
		resp->body = NULL;
	}
	resp->content_type = content_type(name);
	resp->cache_control = "no-cache";
}

/* parse_since - the since= parameter ("24h", "90m", "7d"; default 24h)
 * in seconds, or -1 */
static long long parse_since(const char *query)
{
	char *v = httpd_query_get(query, "since");
	const char *err;
	long long secs = SINCE_DEFAULT;

	if (v != NULL &&
	    (config_parse_duration(v, &secs, &err) < 0 || secs <= 0 || secs > SINCE_MAX))
		secs = -1;
	free(v);
	return secs;
}

/* handle - the request router (lib/httpd's thread) */
static void handle(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct agent_http *ah = ctx;

	if (strcmp(req->path, "/metrics") == 0) {
		resp->body = metrics_render(stats_registry(ah->stats));
		resp->content_type = METRICS_CONTENT_TYPE;
		resp->cache_control = "no-store";
	} else if (strcmp(req->path, "/") == 0 || strcmp(req->path, "/index.html") == 0) {
		serve_file(ah, "index.html", resp);
	} else if (strncmp(req->path, "/assets/", 8) == 0) {
		if (asset_name_ok(req->path + 8))
			serve_file(ah, req->path + 8, resp);
		else
			set_text(resp, 404, "not found\n");
	} else if (strcmp(req->path, "/api/summary") == 0) {
		long long since = parse_since(req->query);
		if (since < 0) {
			set_text(resp, 400,
			         "since: a duration such as 1h, 24h or 7d (at most 366d)\n");
			return;
		}
		resp->body = summary_json(ah->stats, since * 1000);
		resp->content_type = "application/json";
		resp->cache_control = "no-store";
	} else {
		set_text(resp, 404, "not found\n");
	}
}

/* same - two settings' strings are equal (NULL as "") */
static bool same(const char *x, const char *y)
{
	return strcmp(x ? x : "", y ? y : "") == 0;
}

static void ah_free(struct agent_http *ah)
{
	if (ah == NULL)
		return;
	httpd_stop(ah->h);
	free(ah->listen);
	if (ah->auth != NULL) {
		explicit_bzero(ah->auth, strlen(ah->auth));
		free(ah->auth);
	}
	free(ah->dashboard_dir);
	free(ah);
}

void http_start(struct agent *a, const struct weir_config *cfg)
{
	const char *listen = cfg->agent.http_listen, *err = NULL;
	struct agent_http *ah;

	if (listen == NULL || listen[0] == '\0')
		return;
	ah = xcalloc(1, sizeof(*ah));
	ah->stats = a->stats;
	ah->listen = xstrdup(listen);
	ah->auth = cfg->agent.http_auth ? xstrdup(cfg->agent.http_auth) : NULL;
	ah->dashboard_dir = xstrdup(cfg->agent.dashboard_dir ? cfg->agent.dashboard_dir : "");
	ah->h = httpd_start(listen, ah->auth, handle, ah, &err);
	if (ah->h == NULL) {
		log_warning("http endpoint %s: %s; running without metrics and dashboard", listen,
		            err ? err : "cannot listen");
		ah_free(ah);
		return;
	}
	a->http = ah;
	log_info("http endpoint listen=%s port=%u auth=%s dashboard=%s", listen, httpd_port(ah->h),
	         ah->auth ? "basic" : "none", ah->dashboard_dir);
}

void http_reload(struct agent *a, const struct weir_config *cfg)
{
	struct agent_http *ah = a->http;

	if (ah != NULL && same(ah->listen, cfg->agent.http_listen) &&
	    same(ah->auth, cfg->agent.http_auth) &&
	    same(ah->dashboard_dir, cfg->agent.dashboard_dir))
		return;
	if (ah == NULL && (cfg->agent.http_listen == NULL || cfg->agent.http_listen[0] == '\0'))
		return;
	http_stop(a);
	http_start(a, cfg);
}

void http_stop(struct agent *a)
{
	ah_free(a->http);
	a->http = NULL;
}
