/* log - syslog or stderr logging, one line per event */
#ifndef WEIR_LOG_H
#define WEIR_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* log_open - start logging as ident; to stderr when to_stderr, else to
 * syslog with the given facility name ("mail", "local0", ...). Returns -1
 * for an unknown facility name. May be called again (reload). */
int log_open(const char *ident, bool to_stderr, const char *facility);
/* log_facility_valid - true if name is a syslog facility log_open accepts */
bool log_facility_valid(const char *name);
void log_set_level(enum log_level level);
/* log_set_hook - also pass every logged line to fn (tests capture logs
 * this way); NULL removes it. Not for use while other threads log. */
void log_set_hook(void (*fn)(enum log_level level, const char *line));
bool log_level_enabled(enum log_level level);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_fatal - the environment is broken: log and exit(1) */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* log_panic - a bug: log and abort() */
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Key=value lines. A kvline is a caller-owned buffer that grows: kv_add*
 * appends " key=value", quoting the value ("...") when it holds a space,
 * a quote, '=' or a control character, with \" \\ and \xNN escapes so
 * that one event is always one parseable line. */
struct kvline {
	char *buf;
	size_t len, size;
};

void kv_init(struct kvline *kv);
void kv_add(struct kvline *kv, const char *key, const char *value);
void kv_addn(struct kvline *kv, const char *key, const char *value, size_t n);
void kv_addf(struct kvline *kv, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* kv_append - append pairs already formatted (another kvline's kv_str) */
void kv_append(struct kvline *kv, const char *pairs);
/* kv_str - the line so far, without the leading space ("" when empty) */
const char *kv_str(const struct kvline *kv);
void kv_free(struct kvline *kv);

#endif
