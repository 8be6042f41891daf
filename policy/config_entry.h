/* config_entry - for the parsers of list settings (agent.routes,
 * rate.limits, throttle.*, bounce.webhooks): where an error goes
 * ("FILE:LINE: WHAT: ENTRY: text") and typed members of an entry's
 * group, each reporting what is wrong with it. Only policy/'s setting
 * parsers include it (it needs libconfig). */
#ifndef WEIR_POLICY_CONFIG_ENTRY_H
#define WEIR_POLICY_CONFIG_ENTRY_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

struct config_errors;

struct config_entry_ctx {
	const char *what; /* the setting: "agent.routes" */
	const char *file;
	char entry[160];  /* the entry being parsed: its name, or "entry N"; "" none */
	struct config_errors *errs;
	bool bad;         /* an error was reported */
};

/* config_entry_error - one error at line of pc's file */
void config_entry_error(struct config_entry_ctx *pc, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* config_entry_report - the same at node's line */
#define config_entry_report(pc, node, ...)                                                       \
	config_entry_error(pc, (int)config_setting_source_line(node), __VA_ARGS__)

/* config_entry_string - member name of g as a string; NULL when absent
 * (not an error) or, reported, when it is not a string */
const char *config_entry_string(struct config_entry_ctx *pc, config_setting_t *g,
                                const char *name);
/* config_entry_int - integer member name of g within [min, max]: 1 with
 * *v_r, 0 when absent, -1 (reported) when not a number or out of range */
int config_entry_int(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                     long long min, long long max, long long *v_r);

/* config_entry_list - member name of g: a string or a list of strings,
 * each through conv (new memory, or NULL with *err_r: reported); the
 * vector (NULL-terminated, free each and it) and *n_r entries; NULL
 * when absent */
char **config_entry_list(struct config_entry_ctx *pc, config_setting_t *g, const char *name,
                         char *(*conv)(const char *, const char **), size_t *n_r);

#endif
