/* weirctl_outcome - weirctl outcome show: the outcome log (outcome.db)
 *
 *	show [--since DURATION] [--rcpt ADDR] [--result R] [--limit N] [--json]
 *
 * Newest first; one line per row, tab separated, with a header line
 * (empty fields are "-"), or with --json an array of objects. --since
 * 24h: the rows of the last 24 hours (default: all). --result:
 * delivered, deferred, bounced, complaint or suppressed. Reads with a
 * read-only connection while weir-agent writes. */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/daemon.h"
#include "lib/json.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/outcome.h"
#include "policy/weirctl_outcome.h"

static const char usage_text[] =
    "usage: weirctl outcome show [-c FILE] [--since DURATION] [--rcpt ADDRESS]\n"
    "               [--result delivered|deferred|bounced|complaint|suppressed]\n"
    "               [--limit N] [--json]\n"
    "Newest first. DURATION: 30m, 24h, 7d, ... (default: every row kept).\n";

struct show {
	FILE *out;
	bool json;
	long n;
};

static void iso_time(long long ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", ms);
}

/* field - a value for a tab-separated line: "-" when empty, tabs and
 * line ends (which would break the columns) as spaces */
static void field(FILE *out, const char *s, bool last)
{
	if (s == NULL || s[0] == '\0') {
		fputc('-', out);
	} else {
		for (const char *p = s; *p; p++)
			fputc(*p == '\t' || *p == '\n' || *p == '\r' ? ' ' : *p, out);
	}
	fputc(last ? '\n' : '\t', out);
}

static const char header[] = "TIME\tQUEUE_ID\tSENDER\tRECIPIENT\tRESULT\tCODE\tSTATUS\tREASON"
                             "\tHARD\tROUTE\tUPSTREAM\tLOGIN\tSOURCE\tREPLY\n";

static void print_row(void *ctx, long long id, const struct outcome_rec *r)
{
	struct show *s = ctx;
	char when[32], code[16];

	iso_time(r->time_ms, when, sizeof(when));
	snprintf(code, sizeof(code), "%d", r->code);
	if (s->json) {
		struct strbuf b = {0};
		char *line;
		strbuf_adds(&b, "{");
		json_member_int(&b, "id", id);
		json_member_str(&b, "time", when);
		json_member_str(&b, "queue_id", r->queue_id);
		json_member_str(&b, "sender", r->sender);
		json_member_str(&b, "recipient", r->recipient);
		json_member_str(&b, "result", outcome_result_name(r->result));
		json_member_int(&b, "code", r->code);
		json_member_str(&b, "status", r->status);
		json_member_str(&b, "reason", r->reason);
		json_member_bool(&b, "hard", r->hard);
		json_member_str(&b, "route", r->route);
		json_member_str(&b, "upstream", r->upstream);
		json_member_str(&b, "login", r->login);
		json_member_str(&b, "source", r->source);
		json_member_str(&b, "reply", r->reply);
		strbuf_adds(&b, "}");
		line = strbuf_take(&b);
		fprintf(s->out, "%s%s", s->n > 0 ? ",\n" : "", line);
		free(line);
	} else {
		field(s->out, when, false);
		field(s->out, r->queue_id, false);
		field(s->out, r->sender, false);
		field(s->out, r->recipient, false);
		field(s->out, outcome_result_name(r->result), false);
		field(s->out, r->code ? code : NULL, false);
		field(s->out, r->status, false);
		field(s->out, r->reason, false);
		field(s->out,
		      r->result == OUTCOME_DELIVERED ? NULL
		      : r->hard                      ? "hard"
		                                     : "soft",
		      false);
		field(s->out, r->route, false);
		field(s->out, r->upstream, false);
		field(s->out, r->login, false);
		field(s->out, r->source, false);
		field(s->out, r->reply, true);
	}
	s->n++;
}

/* parse - the options of "outcome show"; 0 to go on, -1 after --help,
 * else the exit status */
static int parse(int argc, char **argv, const char **conf, struct outcome_filter *f, bool *json)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'}, {"since", required_argument, NULL, 's'},
	    {"rcpt", required_argument, NULL, 'r'},   {"result", required_argument, NULL, 'R'},
	    {"limit", required_argument, NULL, 'l'},  {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	long long secs;
	const char *err;
	char *end;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': *conf = optarg; break;
		case 's':
			if (config_parse_duration(optarg, &secs, &err) < 0) {
				fprintf(stderr, "weirctl outcome show: --since %s: %s\n", optarg,
				        err);
				return 2;
			}
			f->since_ms = (long long)time(NULL) * 1000 - secs * 1000;
			break;
		case 'r': f->rcpt = optarg; break;
		case 'R':
			if ((f->result = outcome_result_parse(optarg)) < 0) {
				fprintf(stderr, "weirctl outcome show: --result %s: unknown\n",
				        optarg);
				return 2;
			}
			break;
		case 'l':
			f->limit = strtol(optarg, &end, 10);
			if (*end != '\0' || f->limit <= 0) {
				fprintf(stderr, "weirctl outcome show: --limit %s: a number > 0\n",
				        optarg);
				return 2;
			}
			break;
		case 'j': *json = true; break;
		case 'h': fputs(usage_text, stdout); return -1;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	return 0;
}

static int show(const char *conf, int argc, char **argv)
{
	struct outcome_filter f = {.result = -1};
	struct show s = {.out = stdout};
	struct weir_config *cfg;
	char *err = NULL;
	int rc;

	if ((rc = parse(argc, argv, &conf, &f, &s.json)) != 0)
		return rc < 0 ? 0 : rc;
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	if (s.json)
		fputs("[", stdout);
	else
		fputs(header, stdout);
	rc = outcome_query(cfg, &f, print_row, &s, &err);
	if (s.json)
		fputs(s.n > 0 ? "\n]\n" : "]\n", stdout);
	if (rc < 0) {
		fprintf(stderr, "weirctl outcome show: %s\n", err);
		free(err);
	} else {
		daemon_db_give_back(cfg->outcome.db);
	}
	config_unref(cfg);
	return rc < 0 ? 1 : 0;
}

int weirctl_outcome(const char *conf, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return show(conf, argc - 1, argv + 1);
	fputs(usage_text, stderr);
	return 2;
}
