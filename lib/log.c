/* log - syslog or stderr logging, one line per event
 *
 * Thread safe: syslog(3) is, and stderr lines are written with one
 * fprintf under the stdio lock. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

static const struct {
	const char *name;
	int facility;
} facilities[] = {
	{"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
	{"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
	{"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
	{"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

static bool use_stderr = true;
static enum log_level max_level = LOG_LEVEL_INFO;
static char log_ident[64] = "weir";
static void (*log_hook)(enum log_level, const char *);

static int facility_code(const char *name)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcasecmp(name, facilities[i].name) == 0)
			return facilities[i].facility;
	return -1;
}

bool log_facility_valid(const char *name)
{
	return facility_code(name) >= 0;
}

int log_open(const char *ident, bool to_stderr, const char *facility)
{
	int code = facility_code(facility ? facility : "mail");

	if (code < 0)
		return -1;
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	use_stderr = to_stderr;
	if (!to_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, code);
	return 0;
}

void log_set_hook(void (*fn)(enum log_level level, const char *line))
{
	log_hook = fn;
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

bool log_level_enabled(enum log_level level)
{
	return level <= max_level;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	static const char *const tag[] = {"error: ", "warning: ", "", "debug: "};
	char line[8192];

	if (level > max_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_hook != NULL)
		log_hook(level, line);
	if (use_stderr)
		fprintf(stderr, "%s[%ld]: %s%s\n", log_ident, (long)getpid(), tag[level], line);
	else
		syslog(prio[level], "%s%s", tag[level], line);
}

#define DEFINE_LOG(name, level)                                                \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		vlog(level, fmt, ap);                                          \
		va_end(ap);                                                    \
	}

DEFINE_LOG(log_error, LOG_LEVEL_ERROR)
DEFINE_LOG(log_warning, LOG_LEVEL_WARNING)
DEFINE_LOG(log_info, LOG_LEVEL_INFO)
DEFINE_LOG(log_debug, LOG_LEVEL_DEBUG)

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	char line[8192];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_error("fatal: %s", line);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;
	char line[8192];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_error("panic: %s", line);
	abort();
}

/* kvline */

static void kv_reserve(struct kvline *kv, size_t more)
{
	if (kv->len + more + 1 <= kv->size)
		return;
	while (kv->len + more + 1 > kv->size)
		kv->size = kv->size ? kv->size * 2 : 128;
	kv->buf = xrealloc(kv->buf, kv->size);
}

static void kv_putc(struct kvline *kv, char c)
{
	kv_reserve(kv, 1);
	kv->buf[kv->len++] = c;
	kv->buf[kv->len] = '\0';
}

void kv_init(struct kvline *kv)
{
	kv->buf = NULL;
	kv->len = kv->size = 0;
}

void kv_addn(struct kvline *kv, const char *key, const char *value, size_t n)
{
	bool quote = (n == 0);

	if (value == NULL) {
		value = "";
		n = 0;
		quote = true;
	}
	for (size_t i = 0; i < n && !quote; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			quote = true;
	}
	if (kv->len > 0)
		kv_putc(kv, ' ');
	for (const char *k = key; *k; k++)
		kv_putc(kv, *k);
	kv_putc(kv, '=');
	if (quote)
		kv_putc(kv, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '"' || c == '\\') {
			kv_putc(kv, '\\');
			kv_putc(kv, (char)c);
		} else if (c < ' ' || c == 0x7f) {
			char hex[5];
			snprintf(hex, sizeof(hex), "\\x%02x", c);
			for (int j = 0; j < 4; j++)
				kv_putc(kv, hex[j]);
		} else {
			kv_putc(kv, (char)c);
		}
	}
	if (quote)
		kv_putc(kv, '"');
}

void kv_add(struct kvline *kv, const char *key, const char *value)
{
	kv_addn(kv, key, value, value ? strlen(value) : 0);
}

void kv_addf(struct kvline *kv, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_fatal("out of memory formatting a log line");
	kv_addn(kv, key, s, (size_t)n);
	free(s);
}

void kv_append(struct kvline *kv, const char *pairs)
{
	if (pairs == NULL || pairs[0] == '\0')
		return;
	if (kv->len > 0)
		kv_putc(kv, ' ');
	for (; *pairs; pairs++)
		kv_putc(kv, *pairs);
}

const char *kv_str(const struct kvline *kv)
{
	return kv->buf ? kv->buf : "";
}

void kv_free(struct kvline *kv)
{
	free(kv->buf);
	kv_init(kv);
}
