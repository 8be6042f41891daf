/* weirctl_report - weirctl report: the mail of a time window
 *
 *	report [-c FILE] [--since DURATION] [--top N] [--json]
 *
 * Totals, then per destination and per sender domain the recipients
 * delivered, deferred, bounced and suppressed (each counted once, by its
 * final state: policy/report.h), the delivery rate delivered /
 * (delivered + bounced) and the bounce rate, the top bounce reasons, the
 * logins weir-milter refused most for a rate limit, and the SPF preflight
 * findings of the window. --since: the window, ending now (default 24h);
 * --top: rows a table (default 10, 0 all). Text: aligned tables with
 * headings; --json: one object. Reads with read-only connections while
 * the daemons write. */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/daemon.h"
#include "lib/json.h"
#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/preflight.h"
#include "policy/report.h"
#include "policy/weirctl_report.h"

#define DEFAULT_TOP 10

static const char usage_text[] =
    "usage: weirctl report [-c FILE] [--since DURATION] [--top N] [--json]\n"
    "DURATION: 30m, 24h, 7d, ... (default 24h), the window ending now.\n"
    "N: rows a table (default 10; 0: all).\n";

static void iso_time(long long ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", ms);
}

/* shown - how many of n rows a table shows */
static size_t shown(size_t n, size_t top)
{
	return top > 0 && n > top ? top : n;
}

/* A text table: cells are owned copies, control characters made '?' */
struct table {
	size_t ncols, nrows;
	const char *const *heads;
	const char *align; /* 'l' or 'r' per column */
	char **cells;      /* nrows * ncols */
};

static void table_row(struct table *t, const char *const *v)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = xstrdup(v[i]);
		for (char *p = c; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		t->cells[t->nrows * t->ncols + i] = c;
	}
	t->nrows++;
}

/* table_print - the heads, then the rows, two spaces in from the left,
 * columns two apart; frees the cells */
static void table_print(FILE *out, struct table *t)
{
	size_t w[16] = {0};

	for (size_t i = 0; i < t->ncols && i < 16; i++) {
		w[i] = strlen(t->heads[i]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t l = strlen(t->cells[r * t->ncols + i]);
			w[i] = l > w[i] ? l : w[i];
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		fputs(" ", out);
		for (size_t i = 0; i < t->ncols && i < 16; i++) {
			const char *s = r == 0 ? t->heads[i] : t->cells[(r - 1) * t->ncols + i];
			bool last = i + 1 == t->ncols;
			if (t->align[i] == 'r')
				fprintf(out, " %*s", (int)w[i], s);
			else
				fprintf(out, " %-*s", last ? 0 : (int)w[i], s);
			fputs(last ? "\n" : " ", out);
		}
	}
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

static void rate_text(double v, char *buf, size_t size)
{
	if (v < 0)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.1f%%", v * 100);
}

static void more_line(FILE *out, size_t n, size_t top)
{
	if (shown(n, top) < n)
		fprintf(out, "  ... and %zu more (--top 0 shows all)\n", n - shown(n, top));
}

static void print_domains(FILE *out, const char *title, const struct report_domain *d, size_t n,
                          size_t top)
{
	static const char *const heads[] = {"DOMAIN",     "RECIPIENTS", "DELIVERED",
	                                    "DEFERRED",   "BOUNCED",    "SUPPRESSED",
	                                    "COMPLAINTS", "DELIVERY",   "BOUNCE"};
	struct table t = {9, 0, heads, "lrrrrrrrr", NULL};

	fprintf(out, "\n%s\n", title);
	if (n == 0) {
		fputs("  none\n", out);
		return;
	}
	for (size_t i = 0; i < shown(n, top); i++) {
		const struct report_counts *c = &d[i].c;
		char num[6][24], dr[16], br[16];
		long v[6] = {c->recipients, c->delivered,  c->deferred,
		             c->bounced,    c->suppressed, c->complaints};
		for (int k = 0; k < 6; k++)
			snprintf(num[k], sizeof(num[k]), "%ld", v[k]);
		rate_text(report_delivery_rate(c), dr, sizeof(dr));
		rate_text(report_bounce_rate(c), br, sizeof(br));
		table_row(&t, (const char *const[]){d[i].name, num[0], num[1], num[2], num[3],
		                                    num[4], num[5], dr, br});
	}
	table_print(out, &t);
	more_line(out, n, top);
}

static void print_totals(FILE *out, const struct report *r)
{
	const struct report_counts *c = &r->total;
	char dr[16], br[16];

	rate_text(report_delivery_rate(c), dr, sizeof(dr));
	rate_text(report_bounce_rate(c), br, sizeof(br));
	fprintf(out, "\nTotals\n");
	fprintf(out, "  %-22s %ld\n", "recipients", c->recipients);
	fprintf(out, "  %-22s %ld\n", "delivered", c->delivered);
	fprintf(out, "  %-22s %ld\n", "deferred", c->deferred);
	fprintf(out, "  %-22s %ld\n", "bounced", c->bounced);
	fprintf(out, "  %-22s %ld\n", "suppressed", c->suppressed);
	fprintf(out, "  %-22s %ld\n", "complaints", c->complaints);
	fprintf(out, "  %-22s %s\n", "delivery rate", dr);
	fprintf(out, "  %-22s %s\n", "bounce rate", br);
	fprintf(out, "  %-22s %ld\n", "outcome rows", r->rows);
	fprintf(out, "  %-22s %ld\n", "rate-limit refusals", r->rate_total);
	fprintf(out, "  %-22s %zu\n", "SPF preflight findings", r->nspf);
}

static void print_reasons(FILE *out, const struct report *r, size_t top)
{
	static const char *const heads[] = {"REASON", "KIND", "COUNT"};
	struct table t = {3, 0, heads, "llr", NULL};

	fprintf(out, "\nTop bounce reasons\n");
	if (r->nreasons == 0) {
		fputs("  none\n", out);
		return;
	}
	for (size_t i = 0; i < shown(r->nreasons, top); i++) {
		char num[24];
		snprintf(num, sizeof(num), "%ld", r->reasons[i].count);
		table_row(&t, (const char *const[]){r->reasons[i].reason,
		                                    r->reasons[i].hard ? "hard" : "soft", num});
	}
	table_print(out, &t);
	more_line(out, r->nreasons, top);
}

static void print_rate(FILE *out, const struct report *r, size_t top)
{
	static const char *const heads[] = {"LOGIN", "LIMIT", "REFUSALS"};
	struct table t = {3, 0, heads, "llr", NULL};

	fprintf(out, "\nTop rate-limited logins\n");
	if (r->rate_note != NULL || r->nrate == 0) {
		fprintf(out, "  %s\n",
		        r->rate_note != NULL ? r->rate_note : "no refusals recorded");
		return;
	}
	for (size_t i = 0; i < shown(r->nrate, top); i++) {
		char num[24];
		snprintf(num, sizeof(num), "%ld", r->rate[i].count);
		table_row(&t, (const char *const[]){r->rate[i].login[0] ? r->rate[i].login : "-",
		                                    r->rate[i].limit, num});
	}
	table_print(out, &t);
	more_line(out, r->nrate, top);
}

static void print_spf(FILE *out, const struct report *r, size_t top)
{
	static const char *const heads[] = {"DOMAIN", "RESULT",    "EGRESS",
	                                    "COUNT",  "LAST SEEN", "LAST REASON"};
	struct table t = {6, 0, heads, "lllrll", NULL};

	fprintf(out,
	        "\nSPF preflight findings (last seen in the window; counts since first seen)\n");
	if (r->spf_note != NULL || r->nspf == 0) {
		fprintf(out, "  %s\n", r->spf_note != NULL ? r->spf_note : "none");
		return;
	}
	for (size_t i = 0; i < shown(r->nspf, top); i++) {
		const struct preflight_finding *f = &r->spf[i];
		char num[24], last[32];
		snprintf(num, sizeof(num), "%lld", f->count);
		iso_time(f->last * 1000, last, sizeof(last));
		table_row(&t, (const char *const[]){f->domain, f->result, f->egress, num, last,
		                                    f->reason});
	}
	table_print(out, &t);
	more_line(out, r->nspf, top);
}

void report_print_text(FILE *out, const struct report *r, size_t top)
{
	char since[32], until[32];

	iso_time(r->since_ms, since, sizeof(since));
	iso_time(r->until_ms, until, sizeof(until));
	fprintf(out, "weir report, %s to %s\n", since, until);
	print_totals(out, r);
	print_domains(out, "By destination domain", r->dest, r->ndest, top);
	print_domains(out, "By sender domain", r->senders, r->nsenders, top);
	print_reasons(out, r, top);
	print_rate(out, r, top);
	print_spf(out, r, top);
}

/* JSON */

static void json_counts(struct strbuf *b, const struct report_counts *c)
{
	report_json_counts(b, c);
	report_json_rate(b, "delivery_rate", report_delivery_rate(c));
	report_json_rate(b, "bounce_rate", report_bounce_rate(c));
}

/* json_list_open - "key":[ ; each element then opens with json_elem */
static void json_list_open(struct strbuf *b, const char *key)
{
	json_key(b, key);
	strbuf_adds(b, "[");
}

static void json_elem(struct strbuf *b, size_t i)
{
	strbuf_adds(b, i > 0 ? ",{" : "{");
}

static void json_domains(struct strbuf *b, const char *key, const struct report_domain *d, size_t n,
                         size_t top)
{
	json_list_open(b, key);
	for (size_t i = 0; i < shown(n, top); i++) {
		json_elem(b, i);
		json_member_str(b, "domain", d[i].name);
		json_counts(b, &d[i].c);
		strbuf_adds(b, "}");
	}
	strbuf_adds(b, "]");
}

static void json_stores(struct strbuf *b, const struct report *r, size_t top)
{
	char when[32];

	json_list_open(b, "bounce_reasons");
	for (size_t i = 0; i < shown(r->nreasons, top); i++) {
		json_elem(b, i);
		json_member_str(b, "reason", r->reasons[i].reason);
		json_member_str(b, "kind", r->reasons[i].hard ? "hard" : "soft");
		json_member_int(b, "count", r->reasons[i].count);
		strbuf_adds(b, "}");
	}
	strbuf_adds(b, "]");
	json_list_open(b, "rate_limited");
	for (size_t i = 0; i < shown(r->nrate, top); i++) {
		json_elem(b, i);
		json_member_str(b, "login", r->rate[i].login);
		json_member_str(b, "limit", r->rate[i].limit);
		json_member_int(b, "refusals", r->rate[i].count);
		strbuf_adds(b, "}");
	}
	strbuf_adds(b, "]");
	json_member_str(b, "rate_limited_note", r->rate_note); /* or null */
	json_list_open(b, "spf_preflight");
	for (size_t i = 0; i < shown(r->nspf, top); i++) {
		const struct preflight_finding *f = &r->spf[i];
		json_elem(b, i);
		json_member_str(b, "domain", f->domain);
		json_member_str(b, "result", f->result);
		json_member_str(b, "egress", f->egress);
		json_member_int(b, "count", f->count);
		iso_time(f->first * 1000, when, sizeof(when));
		json_member_str(b, "first_seen", when);
		iso_time(f->last * 1000, when, sizeof(when));
		json_member_str(b, "last_seen", when);
		json_member_str(b, "last_reason", f->reason);
		strbuf_adds(b, "}");
	}
	strbuf_adds(b, "]");
	json_member_str(b, "spf_preflight_note", r->spf_note);
}

void report_print_json(FILE *out, const struct report *r, size_t top)
{
	struct strbuf b = {0};
	char since[32], until[32];
	char *s;

	iso_time(r->since_ms, since, sizeof(since));
	iso_time(r->until_ms, until, sizeof(until));
	strbuf_adds(&b, "{");
	json_member_str(&b, "since", since);
	json_member_str(&b, "until", until);
	json_key(&b, "totals");
	strbuf_adds(&b, "{");
	json_counts(&b, &r->total);
	json_member_int(&b, "outcome_rows", r->rows);
	json_member_int(&b, "rate_limit_refusals", r->rate_total);
	json_member_int(&b, "spf_preflight_findings", (long long)r->nspf);
	strbuf_adds(&b, "}");
	json_domains(&b, "destination_domains", r->dest, r->ndest, top);
	json_member_int(&b, "destination_domains_omitted",
	                (long long)(r->ndest - shown(r->ndest, top)));
	json_domains(&b, "sender_domains", r->senders, r->nsenders, top);
	json_member_int(&b, "sender_domains_omitted",
	                (long long)(r->nsenders - shown(r->nsenders, top)));
	json_stores(&b, r, top);
	strbuf_adds(&b, "}\n");
	s = strbuf_take(&b);
	fputs(s, out);
	free(s);
}

/* parse - the options; 0 to go on, -1 after --help, else the exit status */
static int parse(int argc, char **argv, const char **conf, long long *secs_r, size_t *top_r,
                 bool *json_r)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'}, {"since", required_argument, NULL, 's'},
	    {"top", required_argument, NULL, 't'},    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *err;
	char *end;
	long n;
	int c;

	optind = 0; /* glibc: start again on this argv */
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': *conf = optarg; break;
		case 's':
			if (config_parse_duration(optarg, secs_r, &err) < 0) {
				fprintf(stderr, "weirctl report: --since %s: %s\n", optarg, err);
				return 2;
			}
			if (*secs_r <= 0) {
				fprintf(stderr, "weirctl report: --since %s: a duration > 0\n",
				        optarg);
				return 2;
			}
			break;
		case 't':
			n = strtol(optarg, &end, 10);
			if (*end != '\0' || end == optarg || n < 0) {
				fprintf(stderr, "weirctl report: --top %s: a number >= 0\n",
				        optarg);
				return 2;
			}
			*top_r = (size_t)n;
			break;
		case 'j': *json_r = true; break;
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

int weirctl_report(const char *conf, int argc, char **argv)
{
	long long secs = 86400, now;
	struct timespec ts;
	size_t top = DEFAULT_TOP;
	bool json = false;
	struct weir_config *cfg;
	struct report *r;
	char *err = NULL;
	int rc;

	if ((rc = parse(argc, argv, &conf, &secs, &top, &json)) != 0)
		return rc < 0 ? 0 : rc;
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (report_build(cfg, now - secs * 1000, now, &r, &err) < 0) {
		fprintf(stderr, "weirctl report: %s\n", err);
		free(err);
		config_unref(cfg);
		return 1;
	}
	daemon_db_give_back(cfg->outcome.db);
	if (json)
		report_print_json(stdout, r, top);
	else
		report_print_text(stdout, r, top);
	report_free(r);
	config_unref(cfg);
	return 0;
}
