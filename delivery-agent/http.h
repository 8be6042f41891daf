/* http - weir-agent's HTTP endpoint (agent.http_listen): /metrics, the
 * dashboard (/, /assets/NAME from agent.dashboard_dir) and its data
 * (/api/summary). Served on lib/httpd's thread; see http.c. */
#ifndef WEIR_AGENT_HTTP_H
#define WEIR_AGENT_HTTP_H

struct agent;
struct agent_stats;
struct weir_config;

/* http_start - serve cfg's agent.http_listen ("" : nothing); a bind
 * failure is a warning, the agent runs on without it */
void http_start(struct agent *a, const struct weir_config *cfg);
/* http_reload - restart when agent.http_listen, the credentials or
 * agent.dashboard_dir changed */
void http_reload(struct agent *a, const struct weir_config *cfg);
/* http_stop - stop serving and wait for the thread (before stats_free) */
void http_stop(struct agent *a);

/* summary_json - the /api/summary document for the window of since_ms
 * ms up to now (HTTP thread; reads the outcome log read-only and the
 * stats snapshot); caller frees */
char *summary_json(struct agent_stats *stats, long long since_ms);

#endif
