/* bounce_rules - the classification rules file (bounce.rules) and the
 * classification of one failure by them.
 *
 * One rule a line: REASON HARD [status=PREFIX] [code=PREFIX] [after=COMMAND]
 * [text=/ERE/].
 * HARD is hard, soft, or status (hard when the status or reply code is
 * permanent). Rules are tried in order; the first whose every criterion
 * holds wins. contrib/bounce/rules.conf documents the format for
 * administrators. Loaded rules are read-only: threads may share them. */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/bounce.h"
#include "policy/bounce_int.h"

enum rule_hard { RULE_SOFT, RULE_HARD, RULE_BY_STATUS };

struct bounce_rule {
	char *reason;
	enum rule_hard hard;
	char *status; /* prefix of the enhanced status, or NULL */
	char *code;   /* prefix of the reply code's digits, or NULL */
	char *after;  /* the SMTP command replied to ("DATA"), or NULL */
	bool has_text;
	regex_t text;
};

struct bounce_rules {
	struct bounce_rule *v;
	size_t n;
};

#define MAX_RULE_LINE 4096

/* valid_reason - a reason name: lowercase letters and digits */
static bool valid_reason(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s))
			return false;
	return true;
}

/* valid_prefix - digits and dots, starting with a digit */
static bool valid_prefix(const char *s)
{
	if (!isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && *s != '.')
			return false;
	return true;
}

/* valid_command - an SMTP stage after= may name */
static bool valid_command(const char *s)
{
	static const char *const commands[] = {"CONNECT", "HELO", "MAIL", "RCPT", "DATA", NULL};

	for (size_t i = 0; commands[i] != NULL; i++)
		if (strcmp(s, commands[i]) == 0)
			return true;
	return false;
}

static void rule_free(struct bounce_rule *rl)
{
	free(rl->reason);
	free(rl->status);
	free(rl->code);
	free(rl->after);
	if (rl->has_text)
		regfree(&rl->text);
}

/* next_word - the next blank-separated word of *p (NUL-terminated in
 * place), or NULL at the end of the line */
static char *next_word(char **p)
{
	char *s = *p, *w;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return NULL;
	w = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*p = s;
	return w;
}

/* parse_rule - one non-comment line into rl; NULL, or what is wrong */
static const char *parse_rule(char *line, struct bounce_rule *rl, char *errbuf, size_t errsize)
{
	char *p = line, *w;

	memset(rl, 0, sizeof(*rl));
	w = next_word(&p);
	if (!valid_reason(w))
		return "the reason must be a name of lowercase letters and digits";
	rl->reason = xstrdup(w);
	if ((w = next_word(&p)) == NULL)
		return "hard, soft or status expected after the reason";
	if (strcmp(w, "hard") == 0)
		rl->hard = RULE_HARD;
	else if (strcmp(w, "soft") == 0)
		rl->hard = RULE_SOFT;
	else if (strcmp(w, "status") == 0)
		rl->hard = RULE_BY_STATUS;
	else
		return "hard, soft or status expected after the reason";
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return NULL;
		if (strncmp(p, "text=/", 6) == 0) {
			/* the pattern runs to the last '/' of the line */
			char *re = p + 6, *end = strrchr(re, '/');
			int rc;

			if (end == NULL || end[strspn(end + 1, " \t") + 1] != '\0')
				return "text=/ERE/ must end the line with '/'";
			if (rl->has_text)
				return "text= given twice";
			*end = '\0';
			if ((rc = regcomp(&rl->text, re, REG_EXTENDED | REG_ICASE | REG_NOSUB)) != 0) {
				char what[200];

				regerror(rc, &rl->text, what, sizeof(what));
				snprintf(errbuf, errsize, "bad regular expression: %s", what);
				return errbuf;
			}
			rl->has_text = true;
			return NULL;
		}
		w = next_word(&p);
		if (strncmp(w, "status=", 7) == 0 && rl->status == NULL && valid_prefix(w + 7))
			rl->status = xstrdup(w + 7);
		else if (strncmp(w, "code=", 5) == 0 && rl->code == NULL && valid_prefix(w + 5) &&
			 strchr(w + 5, '.') == NULL)
			rl->code = xstrdup(w + 5);
		else if (strncmp(w, "after=", 6) == 0 && rl->after == NULL && valid_command(w + 6))
			rl->after = xstrdup(w + 6);
		else {
			snprintf(errbuf, errsize,
				 "'%.80s': expected status=PREFIX, code=PREFIX, after=COMMAND or "
				 "text=/ERE/ "
				 "(each once)", w);
			return errbuf;
		}
	}
}

struct bounce_rules *bounce_rules_load(const char *path, char **err_r)
{
	struct bounce_rules *r;
	char line[MAX_RULE_LINE + 2], errbuf[300];
	size_t alloc = 0;
	unsigned lineno = 0;
	FILE *f;

	*err_r = NULL;
	if ((f = fopen(path, "r")) == NULL) {
		*err_r = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		const char *what;
		char *s = line;

		lineno++;
		if (len > MAX_RULE_LINE && line[len - 1] != '\n') {
			*err_r = xasprintf("%s:%u: line longer than %d octets", path, lineno,
					   MAX_RULE_LINE);
			break;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
				   line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (r->n == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			r->v = xrealloc(r->v, alloc * sizeof(*r->v));
		}
		if ((what = parse_rule(s, &r->v[r->n], errbuf, sizeof(errbuf))) != NULL) {
			rule_free(&r->v[r->n]);
			*err_r = xasprintf("%s:%u: %s", path, lineno, what);
			break;
		}
		r->n++;
	}
	if (*err_r == NULL && ferror(f))
		*err_r = xasprintf("%s: read error", path);
	fclose(f);
	if (*err_r != NULL) {
		bounce_rules_free(r);
		return NULL;
	}
	return r;
}

void bounce_rules_free(struct bounce_rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_free(&r->v[i]);
	free(r->v);
	free(r);
}

/* permanent - the failure is a 5xx one by its status or code */
static bool permanent(int code, const char *status)
{
	if (status != NULL && status[0] != '\0')
		return status[0] == '5';
	return code >= 500 && code < 600;
}

/* rule_matches - every criterion of rl holds (text NULL counts as "") */
static bool rule_matches(const struct bounce_rule *rl, const char *codestr, const char *status,
			 const char *after, const char *text)
{
	if (rl->after != NULL && (after == NULL || strcmp(after, rl->after) != 0))
		return false;
	if (rl->status != NULL &&
	    (status == NULL || strncmp(status, rl->status, strlen(rl->status)) != 0))
		return false;
	if (rl->code != NULL && strncmp(codestr, rl->code, strlen(rl->code)) != 0)
		return false;
	if (rl->has_text && regexec(&rl->text, text ? text : "", 0, NULL, 0) != 0)
		return false;
	return true;
}

/* find - the first of the first limit rules that matches; with
 * text_only, only rules that have a text= pattern are tried */
static const struct bounce_rule *find(const struct bounce_rules *r, size_t limit,
				      const char *codestr, const char *status, const char *after,
				      const char *text, bool text_only)
{
	for (size_t i = 0; r != NULL && i < r->n && i < limit; i++)
		if ((!text_only || r->v[i].has_text) && rule_matches(&r->v[i], codestr, status, after, text))
			return &r->v[i];
	return NULL;
}

void bounce_classify_alt(const struct bounce_rules *r, const char *after, int code,
			 const char *status, const char *text, const char *alt,
			 struct bounce_class *out)
{
	const struct bounce_rule *rl;
	char codestr[16] = "";

	if (status != NULL && status[0] == '\0')
		status = NULL;
	if (code > 0 && code < 1000)
		snprintf(codestr, sizeof(codestr), "%d", code);
	rl = find(r, (size_t)-1, codestr, status, after, text, false);
	/* a rule without text= (codes alone) yields to a text rule above it
	 * that the whole bounce's words match; rules below it do not: a
	 * specific status code placed high is not overruled by what the
	 * bounce says about other things */
	if ((rl == NULL || !rl->has_text) && alt != NULL && alt != text) {
		size_t limit = rl == NULL ? (size_t)-1 : (size_t)(rl - r->v);
		const struct bounce_rule *by_alt =
		    find(r, limit, codestr, status, after, alt, true);

		if (by_alt != NULL)
			rl = by_alt;
	}
	if (rl == NULL) {
		/* no rules, or none matched: Sisimai's name for it */
		out->reason = "undefined";
		out->hard = false;
		return;
	}
	out->reason = rl->reason;
	out->hard = rl->hard == RULE_HARD || (rl->hard == RULE_BY_STATUS && permanent(code, status));
}

void bounce_classify_reply(const struct bounce_rules *r, int code, const char *status,
			   const char *text, struct bounce_class *out)
{
	bounce_classify_alt(r, NULL, code, status, text, NULL, out);
}

void bounce_classify_reply_after(const struct bounce_rules *r, const char *after, int code,
				 const char *status, const char *text, struct bounce_class *out)
{
	bounce_classify_alt(r, after, code, status, text, NULL, out);
}

int bounce_rules_check(const char *path, const char **err_r)
{
	static _Thread_local char buf[512];
	struct bounce_rules *r;
	char *err = NULL;

	/* the shipped default may be absent where weir is not installed */
	if (strcmp(path, BOUNCE_RULES_DEFAULT) == 0 && access(path, F_OK) != 0)
		return 0;
	if ((r = bounce_rules_load(path, &err)) == NULL) {
		snprintf(buf, sizeof(buf), "%s", err);
		free(err);
		*err_r = buf;
		return -1;
	}
	bounce_rules_free(r);
	return 0;
}
