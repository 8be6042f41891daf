/* suppress_csv - the suppression list as CSV (weirctl suppression
 * export / import)
 *
 *   address,scope,reason,hard,source,created,expires
 *
 * RFC 4180 fields: quoted ("...", a quote doubled) when they hold a
 * comma, a quote, a line break or leading/trailing space; records end
 * with LF on output, LF or CRLF on input. hard is true or false; times
 * are ISO 8601 UTC (2026-11-22T10:00:00Z), expires empty for never; scope
 * empty for global. Export writes every row, expired ones too (a
 * backup). Import reads a header naming its columns (any order; only
 * address is required; scope "" , reason "import", hard false, source
 * "import", created the time of the import and expires never when a
 * column is absent or empty) and writes all rows in one transaction: a
 * bad line is reported as FILE:LINE and nothing is imported. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/xalloc.h"
#include "policy/suppress_int.h"

#define FIELD_MAX  1024 /* longest field accepted */
#define FIELDS_MAX 16   /* most columns */
#define ERRORS_MAX 20   /* bad lines reported before giving up */

enum column {
	COL_ADDRESS,
	COL_SCOPE,
	COL_REASON,
	COL_HARD,
	COL_SOURCE,
	COL_CREATED,
	COL_EXPIRES,
	COL_N
};
static const char *const column_names[COL_N] = {"address", "scope",   "reason", "hard",
                                                "source",  "created", "expires"};

/* Export */

static void put_field(FILE *out, const char *v, bool last)
{
	size_t n = strlen(v);
	bool quote = n > 0 && (strpbrk(v, ",\"\r\n") != NULL || v[0] == ' ' || v[n - 1] == ' ');

	if (quote) {
		fputc('"', out);
		for (; *v != '\0'; v++) {
			if (*v == '"')
				fputc('"', out);
			fputc(*v, out);
		}
		fputc('"', out);
	} else {
		fputs(v, out);
	}
	fputc(last ? '\n' : ',', out);
}

static void put_row(FILE *out, const struct suppress_entry *e)
{
	char created[32], expires[32];

	supp_iso_time(e->created, created, sizeof(created));
	if (e->expires != 0)
		supp_iso_time(e->expires, expires, sizeof(expires));
	else
		expires[0] = '\0';
	put_field(out, e->address, false);
	put_field(out, e->scope, false);
	put_field(out, e->reason, false);
	put_field(out, e->hard ? "true" : "false", false);
	put_field(out, e->source, false);
	put_field(out, created, false);
	put_field(out, expires, true);
}

static void export_one(void *ctx, const struct suppress_entry *e)
{
	put_row(ctx, e);
}

int suppress_export_csv(struct suppress *s, FILE *out, char **err_r)
{
	fputs("address,scope,reason,hard,source,created,expires\n", out);
	if (suppress_list(s, NULL, true, 0, export_one, out, err_r) < 0)
		return -1;
	if (fflush(out) != 0 || ferror(out)) {
		*err_r = xstrdup("cannot write the output");
		return -1;
	}
	return 0;
}

/* Import: reading records */

struct record {
	char *f[FIELDS_MAX];
	size_t n;
	long line; /* where the record starts */
};

struct reader {
	FILE *in;
	long line; /* current line, from 1 */
	char buf[FIELD_MAX + 1];
};

static void record_clear(struct record *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->f[i]);
	r->n = 0;
}

/* read_record - the next record: 1, 0 at the end, -1 with *err_r (static;
 * the reader is then at the next line) */
static int read_record(struct reader *rd, struct record *r, const char **err_r)
{
	int ch = getc(rd->in);
	size_t len = 0;
	bool quoted = false, was_quoted = false;

	record_clear(r);
	if (ch == EOF)
		return 0;
	r->line = rd->line;
	for (;; ch = getc(rd->in)) {
		if (quoted) {
			if (ch == EOF) {
				*err_r = "a quoted field does not end";
				return -1;
			}
			if (ch == '"') {
				int next = getc(rd->in);
				if (next != '"') {
					quoted = false;
					ungetc(next, rd->in);
					continue;
				}
			}
			if (ch == '\n')
				rd->line++;
		} else if (ch == '"' && len == 0 && !was_quoted) {
			quoted = was_quoted = true;
			continue;
		} else if (ch == ',' || ch == '\n' || ch == EOF || ch == '\r') {
			if (ch == '\r') {
				int next = getc(rd->in);
				if (next != '\n' && next != EOF) {
					*err_r = "a carriage return outside quotes";
					goto skip_line;
				}
				ch = '\n';
			}
			if (r->n == FIELDS_MAX) {
				*err_r = "too many fields";
				goto skip;
			}
			rd->buf[len] = '\0';
			r->f[r->n++] = xstrdup(rd->buf);
			len = 0;
			was_quoted = false;
			if (ch == ',')
				continue;
			if (ch == '\n')
				rd->line++;
			return 1;
		} else if (was_quoted) {
			*err_r = "text after a quoted field's closing quote";
			goto skip;
		}
		if (len == FIELD_MAX) {
			*err_r = "field too long";
			goto skip;
		}
		rd->buf[len++] = (char)ch;
	}
skip: /* go on after this line, to report the next errors */
	while (ch != '\n' && ch != EOF)
		ch = getc(rd->in);
skip_line:
	rd->line++;
	return -1;
}

/* Import: values */

/* parse_time - ISO 8601 UTC: 2026-11-22, 2026-11-22T10:00[:00], with
 * 'T' or a space, optionally Z, +00:00 or " UTC"; -1 if not one */
static int parse_time(const char *v, long long *t_r)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	struct tm tm = {0}, back;
	const char *rest;
	time_t t;

	if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	rest = v + n;
	if (*rest == 'T' || *rest == ' ') {
		int m = 0;
		if (sscanf(rest + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5)
			return -1;
		rest += 1 + m;
		if (*rest == ':') {
			if (sscanf(rest + 1, "%2d%n", &sec, &m) != 1 || m != 2)
				return -1;
			rest += 3;
		}
	}
	if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0 && strcmp(rest, " UTC") != 0 &&
	    strcmp(rest, "") != 0)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_mday != d ||
	    back.tm_mon != mo - 1 || back.tm_hour != h || back.tm_min != mi || back.tm_sec != sec)
		return -1;
	*t_r = (long long)t;
	return 0;
}

static int parse_bool(const char *v, bool *b_r)
{
	static const char *const yes[] = {"true", "1", "yes", "hard"};
	static const char *const no[] = {"false", "0", "no", "soft", ""};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcasecmp(v, yes[i]) == 0)
			return *b_r = true, 0;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcasecmp(v, no[i]) == 0)
			return *b_r = false, 0;
	return -1;
}

/* header - map each column of the header record to enum column; -1
 * with *err_r (caller frees) */
static int header(const struct record *r, int *cols, char **err_r)
{
	bool seen[COL_N] = {false};

	for (size_t i = 0; i < r->n; i++) {
		const char *name = r->f[i];
		size_t k;
		while (*name == ' ')
			name++;
		for (k = 0; k < COL_N; k++)
			if (strncasecmp(name, column_names[k], strlen(column_names[k])) == 0 &&
			    strspn(name + strlen(column_names[k]), " ") ==
			        strlen(name + strlen(column_names[k])))
				break;
		if (k == COL_N) {
			*err_r = xasprintf("unknown column \"%s\" (columns: address,scope,reason,"
			                   "hard,source,created,expires)",
			                   r->f[i]);
			return -1;
		}
		if (seen[k]) {
			*err_r = xasprintf("column %s twice", column_names[k]);
			return -1;
		}
		seen[k] = true;
		cols[i] = (int)k;
	}
	if (!seen[COL_ADDRESS]) {
		*err_r = xstrdup("the first line must name the columns "
		                 "(address,scope,reason,hard,source,created,expires): no address");
		return -1;
	}
	return 0;
}

/* entry - the entry of one record; -1 with *err_r (caller frees) */
static int entry(const struct record *r, const int *cols, size_t ncols, long long now,
                 struct suppress_entry *e, char *key, char **err_r)
{
	const char *v[COL_N] = {NULL};
	const char *bad;

	if (r->n != ncols) {
		*err_r =
		    xasprintf("%zu field%s, the header has %zu", r->n, r->n == 1 ? "" : "s", ncols);
		return -1;
	}
	for (size_t i = 0; i < ncols; i++)
		v[cols[i]] = r->f[i];
	memset(e, 0, sizeof(*e));
	if (supp_address(v[COL_ADDRESS], e->address, key, &bad) < 0 ||
	    supp_scope(v[COL_SCOPE], e->scope, &bad) < 0) {
		*err_r = xasprintf("\"%s\": %s", v[COL_ADDRESS], bad);
		return -1;
	}
	if (v[COL_REASON] == NULL || v[COL_REASON][0] == '\0')
		v[COL_REASON] = "import";
	if (v[COL_SOURCE] == NULL || v[COL_SOURCE][0] == '\0')
		v[COL_SOURCE] = "import";
	if (!supp_text_ok(v[COL_REASON], SUPP_REASON_MAX)) {
		*err_r = xasprintf("reason: at most %zu characters, no control characters",
		                   SUPP_REASON_MAX);
		return -1;
	}
	if (!supp_text_ok(v[COL_SOURCE], SUPP_SOURCE_MAX)) {
		*err_r = xasprintf("source: at most %zu characters, no control characters",
		                   SUPP_SOURCE_MAX);
		return -1;
	}
	snprintf(e->reason, sizeof(e->reason), "%s", v[COL_REASON]);
	snprintf(e->source, sizeof(e->source), "%s", v[COL_SOURCE]);
	if (v[COL_HARD] != NULL && parse_bool(v[COL_HARD], &e->hard) < 0) {
		*err_r = xasprintf("hard: \"%s\" is not true or false", v[COL_HARD]);
		return -1;
	}
	e->created = now;
	if (v[COL_CREATED] != NULL && v[COL_CREATED][0] != '\0' &&
	    parse_time(v[COL_CREATED], &e->created) < 0) {
		*err_r = xasprintf("created: \"%s\" is not an ISO 8601 UTC time "
		                   "(2026-11-22T10:00:00Z)",
		                   v[COL_CREATED]);
		return -1;
	}
	if (v[COL_EXPIRES] != NULL && v[COL_EXPIRES][0] != '\0' &&
	    parse_time(v[COL_EXPIRES], &e->expires) < 0) {
		*err_r = xasprintf("expires: \"%s\" is not an ISO 8601 UTC time "
		                   "(2026-11-22T10:00:00Z), or empty for never",
		                   v[COL_EXPIRES]);
		return -1;
	}
	e->count = 1;
	return 0;
}

/* blank - a record of one empty field (an empty line) */
static bool blank(const struct record *r)
{
	return r->n == 1 && r->f[0][0] == '\0';
}

/* add_error - one more "NAME:LINE: text" line in *errs */
static void add_error(char **errs, size_t *nerrs, const char *name, long line, const char *text)
{
	char *e = xasprintf("%s%s%s:%ld: %s", *errs != NULL ? *errs : "", *errs != NULL ? "\n" : "",
	                    name, line, text);

	free(*errs);
	*errs = e;
	(*nerrs)++;
}

long suppress_import_csv(struct suppress *s, FILE *in, const char *name, char **err_r)
{
	struct reader *rd = xcalloc(1, sizeof(*rd));
	struct record r = {0};
	struct suppress_entry e;
	struct supp_conn *c = NULL;
	char key[SUPP_ADDR_MAX + 1], *errs = NULL, *msg;
	const char *bad;
	int cols[FIELDS_MAX], rc;
	size_t ncols = 0, nerrs = 0;
	long long now = (long long)time(NULL);
	long n = 0;

	rd->in = in;
	rd->line = 1;
	if (s->readonly) {
		*err_r = xasprintf("%s: opened for lookups only", s->path);
		free(rd);
		return -1;
	}
	/* the header, skipping empty lines before it */
	while ((rc = read_record(rd, &r, &bad)) == 1 && blank(&r))
		;
	if (rc <= 0) {
		add_error(&errs, &nerrs, name, rc == 0 ? rd->line : r.line,
		          rc == 0 ? "empty file: no header line" : bad);
		goto out;
	}
	if (header(&r, cols, &msg) < 0) {
		add_error(&errs, &nerrs, name, r.line, msg);
		free(msg);
		goto out;
	}
	ncols = r.n;
	if ((c = supp_get(s, err_r)) == NULL || supp_exec(s, c, "BEGIN IMMEDIATE", err_r) < 0) {
		supp_put(s, c);
		record_clear(&r);
		free(rd);
		return -1;
	}
	for (;;) {
		long at = rd->line;
		rc = read_record(rd, &r, &bad);
		if (rc == 0)
			break;
		if (rc < 0) {
			add_error(&errs, &nerrs, name, at, bad);
		} else if (blank(&r)) {
			continue;
		} else if (entry(&r, cols, ncols, now, &e, key, &msg) < 0) {
			add_error(&errs, &nerrs, name, r.line, msg);
			free(msg);
		} else if (nerrs == 0) {
			if (supp_put_entry(s, c, key, &e, &msg) < 0) {
				add_error(&errs, &nerrs, name, r.line, msg);
				free(msg);
				break; /* the store failed: no point going on */
			}
			n++;
		}
		if (nerrs >= ERRORS_MAX) {
			add_error(&errs, &nerrs, name, rd->line, "too many errors; stopped here");
			break;
		}
	}
	if (nerrs == 0 && supp_exec(s, c, "COMMIT", &msg) < 0) {
		add_error(&errs, &nerrs, name, rd->line, msg);
		free(msg);
	}
out:
	supp_put(s, c); /* rolls back unless committed */
	record_clear(&r);
	free(rd);
	if (nerrs > 0) {
		*err_r = xasprintf("%s\nnothing imported", errs);
		free(errs);
		return -1;
	}
	return n;
}
