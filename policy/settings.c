/* settings - every setting of weir.conf, declared once
 *
 * The loader (config.c), `weirctl check`/`weirctl defaults` and the test
 * that every setting is documented in weir.conf(5) all read this table. */
#include "autoconf.h"

#include <stddef.h>
#include <string.h>

#include "lib/endpoint.h"
#include "lib/log.h"
#include "policy/config.h"

#define OFF(field) offsetof(struct weir_config, field)
#define NOLIMIT 0, 0

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};

static int check_milter_socket(const char *v, const char **err_r)
{
	struct endpoint ep;

	return endpoint_parse_milter(v, &ep, err_r);
}

static int check_hostport(const char *v, const char **err_r)
{
	struct endpoint ep;
	bool literal;

	if (v[0] == '\0')
		return 0; /* unset; required_by reports it where needed */
	return endpoint_parse_hostport(v, 25, &ep, &literal, err_r);
}

static int check_facility(const char *v, const char **err_r)
{
	if (log_facility_valid(v))
		return 0;
	*err_r = "unknown syslog facility (mail, daemon, user, local0 ... local7)";
	return -1;
}

/* check_resolver - "system" or a list of IP[@PORT] separated by spaces */
static int check_resolver(const char *v, const char **err_r)
{
	const char *p = v;

	if (strcmp(v, "system") == 0)
		return 0;
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*err_r = "expected \"system\" or addresses like \"127.0.0.1@5353 ::1\"";
		return -1;
	}
	for (; *p; p++) {
		char c = *p;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
		      c == '.' || c == ':' || c == '@' || c == ' ')) {
			*err_r = "expected \"system\" or addresses like \"127.0.0.1@5353 ::1\"";
			return -1;
		}
	}
	return 0;
}

static int check_user(const char *v, const char **err_r)
{
	if (v[0] == '\0' || strlen(v) > 32 || strchr(v, ':') || strchr(v, '/')) {
		*err_r = "not a valid user name";
		return -1;
	}
	return 0;
}

const struct setting weir_settings[] = {
	/* top level */
	{"user", SETTING_STRING, OFF(user), "weir", NOLIMIT, NULL, check_user, 0,
	 "Account the daemons switch to after opening their sockets when started as root."},
	{"hostname", SETTING_STRING, OFF(hostname), NULL, NOLIMIT, NULL, NULL, 0,
	 "Host name used in greetings and logs; default: the system host name."},
	{"resolver", SETTING_STRING, OFF(resolver), "system", NOLIMIT, NULL, check_resolver, 0,
	 "DNS servers weir asks itself (libunbound): \"system\" for /etc/resolv.conf, or "
	 "addresses with optional @PORT, e.g. \"127.0.0.1@5353\"."},
	{"resolver_timeout", SETTING_DURATION, OFF(resolver_timeout), "10s", 1, 300, NULL, NULL, 0,
	 "Longest time one DNS lookup may take."},
	{"log_facility", SETTING_STRING, OFF(log_facility), "mail", NOLIMIT, NULL, check_facility, 0,
	 "Syslog facility (daemons in the foreground log to stderr instead)."},
	{"log_level", SETTING_ENUM, OFF(log_level), "info", NOLIMIT, log_levels, NULL, 0,
	 "Least severe level logged: error, warning, info or debug."},

	/* weir-milter */
	{"milter.socket", SETTING_STRING, OFF(milter.socket), "unix:/run/weir/milter.sock", NOLIMIT,
	 NULL, check_milter_socket, 0,
	 "Where weir-milter listens: unix:/path, inet:PORT@HOST or inet6:PORT@HOST."},
	{"milter.pid_file", SETTING_STRING, OFF(milter.pid_file), "/run/weir/weir-milter.pid",
	 NOLIMIT, NULL, NULL, 0, "PID file of weir-milter; \"\" for none."},
	{"milter.socket_mode", SETTING_MODE, OFF(milter.socket_mode), "0660", 0, 0777, NULL, NULL, 0,
	 "Permissions of a unix socket (owned by user and its group)."},
	{"milter.timeout", SETTING_DURATION, OFF(milter.timeout), "300s", 1, 3600, NULL, NULL, 0,
	 "How long libmilter waits for the MTA."},

	/* weir-agent */
	{"agent.lmtp_listen", SETTING_STRLIST, OFF(agent.lmtp_listen), "(\"unix:/run/weir/agent.lmtp\")",
	 NOLIMIT, NULL, check_milter_socket, 0,
	 "Addresses where weir-agent speaks LMTP: unix:/path or inet:PORT@HOST."},
	{"agent.smtp_listen", SETTING_STRLIST, OFF(agent.smtp_listen), "()", NOLIMIT, NULL,
	 check_milter_socket, 0, "Addresses where weir-agent speaks ESMTP."},
	{"agent.pid_file", SETTING_STRING, OFF(agent.pid_file), "/run/weir/weir-agent.pid", NOLIMIT,
	 NULL, NULL, 0, "PID file of weir-agent; \"\" for none."},
	{"agent.socket_mode", SETTING_MODE, OFF(agent.socket_mode), "0660", 0, 0777, NULL, NULL, 0,
	 "Permissions of unix listening sockets (owned by user and its group)."},
	{"agent.smarthost", SETTING_STRING, OFF(agent.smarthost), "", NOLIMIT, NULL, check_hostport,
	 CONFIG_FOR_AGENT,
	 "Smart host all mail is relayed to: HOST[:PORT] or [IP]:PORT (port 25 by default)."},
	{"agent.helo_name", SETTING_STRING, OFF(agent.helo_name), NULL, NOLIMIT, NULL, NULL, 0,
	 "Name weir-agent gives in EHLO to the smart host; default: hostname."},
	{"agent.connect_timeout", SETTING_DURATION, OFF(agent.connect_timeout), "30s", 1, 600, NULL,
	 NULL, 0, "Time allowed to connect to the smart host and read its greeting."},
	{"agent.command_timeout", SETTING_DURATION, OFF(agent.command_timeout), "300s", 1, 3600, NULL,
	 NULL, 0, "Time allowed for the smart host's reply to one command."},
	{"agent.data_timeout", SETTING_DURATION, OFF(agent.data_timeout), "600s", 1, 3600, NULL, NULL,
	 0, "Time allowed for the smart host's reply after the message data."},
	{"agent.idle_timeout", SETTING_DURATION, OFF(agent.idle_timeout), "300s", 1, 3600, NULL, NULL,
	 0, "A client connection silent this long is closed with 421."},
	{"agent.shutdown_timeout", SETTING_DURATION, OFF(agent.shutdown_timeout), "60s", 0, 3600,
	 NULL, NULL, 0,
	 "On SIGTERM, how long transactions in flight may take to finish before weir-agent exits."},
	{"agent.max_message_size", SETTING_SIZE, OFF(agent.max_message_size), "50M", 1024,
	 (long long)1 << 34, NULL, NULL, 0, "Largest message accepted (advertised as SIZE)."},
	{"agent.max_recipients", SETTING_INT, OFF(agent.max_recipients), "1000", 1, 100000, NULL,
	 NULL, 0, "Most recipients in one transaction; more get 452 4.5.3."},
	{"agent.max_clients", SETTING_INT, OFF(agent.max_clients), "100", 1, 100000, NULL, NULL, 0,
	 "Most simultaneous client connections; more are answered 421 and closed."},
	{"agent.max_errors", SETTING_INT, OFF(agent.max_errors), "10", 1, 1000, NULL, NULL, 0,
	 "Protocol errors tolerated from one client before it is disconnected."},
};

const size_t weir_settings_count = sizeof(weir_settings) / sizeof(weir_settings[0]);

const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < weir_settings_count; i++)
		if (strcmp(weir_settings[i].name, name) == 0)
			return &weir_settings[i];
	return NULL;
}
