/* bounce_dsn - the machine-readable parts of bounces and complaints:
 * RFC 3464 message/delivery-status (per-recipient Final-Recipient,
 * Original-Recipient, Action, Status, Diagnostic-Code, Remote-MTA) and
 * RFC 5965 message/feedback-report (Feedback-Type, Original-Rcpt-To,
 * Original-Mail-From), both read as header-style fields. */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "policy/bounce_int.h"

#define MAX_FIELDS 20000
#define MAX_REPORT_RCPTS 10000

static void fields_push(struct bounce_fields *f, char *name, char *value, size_t *alloc)
{
	if (f->n == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 32;
		f->v = xrealloc(f->v, *alloc * sizeof(*f->v));
	}
	f->v[f->n].name = name;
	f->v[f->n].value = value;
	f->n++;
}

void bounce_fields_parse(const char *s, size_t n, struct bounce_fields *out)
{
	size_t alloc = 0, i = 0;
	bool last_blank = true;

	memset(out, 0, sizeof(*out));
	while (i < n && out->n < MAX_FIELDS) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t le = nl ? (size_t)(nl - s) : n, colon, ve;

		if (le == i || strspn(s + i, " \t\r") >= le - i) {
			if (!last_blank)
				fields_push(out, NULL, NULL, &alloc);
			last_blank = true;
			i = le + 1;
			continue;
		}
		for (colon = i; colon < le && s[colon] != ':' && s[colon] > ' ' && s[colon] < 127;
		     colon++)
			;
		if (colon == i || colon >= le || s[colon] != ':') {
			/* not a field (a stray line): skip it */
			i = le + 1;
			continue;
		}
		/* the value, with continuation lines */
		ve = le;
		while (ve + 1 < n && (s[ve + 1] == ' ' || s[ve + 1] == '\t')) {
			const char *nl2 = memchr(s + ve + 1, '\n', n - ve - 1);

			ve = nl2 ? (size_t)(nl2 - s) : n;
		}
		fields_push(out, xstrndup(s + i, colon - i),
			    bounce_collapse(s + colon + 1, ve - colon - 1), &alloc);
		last_blank = false;
		i = ve + 1;
	}
}

void bounce_fields_free(struct bounce_fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].name);
		free(f->v[i].value);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}

const char *bounce_fields_get(const struct bounce_fields *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].name != NULL && strcasecmp(f->v[i].name, name) == 0)
			return f->v[i].value;
	return NULL;
}

struct bounce_rcpt *bounce_report_add(struct bounce_report *rep, const char *recipient,
				      const char *status, int code, const char *diag)
{
	struct bounce_rcpt *rc;

	if (rep->nrcpts >= MAX_REPORT_RCPTS)
		return NULL;
	rep->rcpts = xrealloc(rep->rcpts, (rep->nrcpts + 1) * sizeof(*rep->rcpts));
	rc = &rep->rcpts[rep->nrcpts++];
	memset(rc, 0, sizeof(*rc));
	rc->recipient = xstrdup(recipient);
	rc->status = status != NULL && status[0] != '\0' ? xstrdup(status) : NULL;
	rc->code = code;
	rc->diagnostic = diag != NULL && diag[0] != '\0' ? xstrdup(diag) : NULL;
	rc->cls.reason = "undefined";
	return rc;
}

/* One per-recipient group being read */
struct group {
	const char *final, *original, *action, *status, *diag, *remote;
	bool several; /* the report has more than one recipient */
};

/* strip_type - "rfc822; a@b" → "a@b", "smtp; 550 ..." → "550 ..." */
static const char *strip_type(const char *v)
{
	const char *semi = strchr(v, ';');

	if (semi == NULL)
		return v;
	for (const char *p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != ' ')
			return v;
	semi++;
	while (*semi == ' ')
		semi++;
	return semi;
}

/* status_of - the Status field's code ("5.1.1 (comment)" → "5.1.1") */
static void status_of(const char *v, char out[16])
{
	int code;

	out[0] = '\0';
	if (v == NULL)
		return;
	bounce_text_codes(v, &code, out);
}

static void group_flush(const struct bounce_rules *r, struct group *g,
			const struct bounce_text *text, struct bounce_report *rep)
{
	const char *who = g->final ? g->final : g->original;
	char *addr, status[16], dstatus[16];
	const char *diag = g->diag ? strip_type(g->diag) : NULL, *alt = NULL;
	struct bounce_rcpt *rc;
	int code = 0;
	bool several;

	if (who == NULL || (addr = bounce_addr_normalize(who, strlen(who))) == NULL)
		goto done;
	/* delivered, relayed, expanded: not failures */
	if (g->action != NULL && strncasecmp(g->action, "failed", 6) != 0 &&
	    strncasecmp(g->action, "delayed", 7) != 0) {
		free(addr);
		goto done;
	}
	status_of(g->status, status);
	if (g->action == NULL && status[0] != '4' && status[0] != '5' && diag == NULL) {
		free(addr);
		goto done;
	}
	for (size_t i = 0; text != NULL && i < text->n; i++)
		if (strcasecmp(text->v[i].addr, addr) == 0) {
			if (diag == NULL || diag[0] == '\0')
				diag = text->v[i].block;
			else
				alt = text->v[i].block;
			break;
		}
	if (diag != NULL) {
		bounce_text_codes(diag, &code, dstatus);
		/* a generic Status yields to the diagnostic's specific one */
		if (status[0] == '\0' || (dstatus[0] != '\0' && strcmp(status + 1, ".0.0") == 0 &&
					  dstatus[0] == status[0]))
			memcpy(status, dstatus, sizeof(status));
	}
	if ((rc = bounce_report_add(rep, addr, status, code, diag)) != NULL) {
		char *both = NULL;
		const char *after;

		/* the bounce's words as a whole explain this recipient only
		 * when it is the only one */
		if (g->several)
			;
		else if (alt == NULL && text != NULL)
			alt = text->section;
		else if (alt != NULL && text != NULL && text->section != NULL)
			alt = both = xasprintf("%s %s", alt, text->section);
		if ((after = bounce_text_command(diag)) == NULL)
			after = bounce_text_command(alt);
		bounce_classify_alt(r, after, code, rc->status, diag, alt, &rc->cls);
		/* a delay notice that gives no reason: still waiting in a
		 * queue, Sisimai's expired */
		if (g->action != NULL && strncasecmp(g->action, "delayed", 7) == 0 &&
		    strcmp(rc->cls.reason, "undefined") == 0) {
			rc->cls.reason = "expired";
			rc->cls.hard = false;
		}
		free(both);
	}
	free(addr);
done:
	several = g->several;
	memset(g, 0, sizeof(*g));
	g->several = several;
}

void bounce_dsn_read(const struct bounce_rules *r, const struct bounce_fields *f,
		     const struct bounce_text *text, struct bounce_report *rep)
{
	struct group g = {0};
	size_t finals = 0;

	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].name != NULL && strcasecmp(f->v[i].name, "Final-Recipient") == 0)
			finals++;
	g.several = finals > 1;
	for (size_t i = 0; i < f->n; i++) {
		const char *name = f->v[i].name, *v = f->v[i].value;

		if (name == NULL) {
			group_flush(r, &g, text, rep);
			continue;
		}
		if (strcasecmp(name, "Final-Recipient") == 0) {
			if (g.final != NULL)
				group_flush(r, &g, text, rep);
			g.final = v;
		} else if (strcasecmp(name, "Original-Recipient") == 0) {
			/* it may come before or after Final-Recipient in a group:
			 * only a second one starts the next group */
			if (g.original != NULL)
				group_flush(r, &g, text, rep);
			g.original = v;
		} else if (strcasecmp(name, "Action") == 0) {
			g.action = v;
		} else if (strcasecmp(name, "Status") == 0) {
			g.status = v;
		} else if (strcasecmp(name, "Diagnostic-Code") == 0) {
			g.diag = v;
		} else if (strcasecmp(name, "Remote-MTA") == 0) {
			g.remote = v;
		}
	}
	group_flush(r, &g, text, rep);
	(void)g.remote;
}

void bounce_arf_read(const struct bounce_fields *f, struct bounce_report *rep)
{
	const char *type = bounce_fields_get(f, "Feedback-Type");
	const char *from = bounce_fields_get(f, "Original-Mail-From");
	char *addr;

	rep->kind = BOUNCE_COMPLAINT;
	if (type != NULL && rep->feedback_type == NULL) {
		size_t k = strcspn(type, " ;");

		rep->feedback_type = xstrndup(type, k);
		for (char *p = rep->feedback_type; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	/* the envelope sender beats the attached copy's From: */
	if (from != NULL && (addr = bounce_addr_normalize(from, strlen(from))) != NULL) {
		free(rep->original_from);
		rep->original_from = addr;
	}
	/* each Original-Rcpt-To (RFC 6591 allows several), else the
	 * Removal-Recipient */
	for (int pass = 0; pass < 2 && rep->nrcpts == 0; pass++) {
		const char *want = pass == 0 ? "Original-Rcpt-To" : "Removal-Recipient";

		for (size_t i = 0; i < f->n; i++) {
			struct bounce_rcpt *rc;

			if (f->v[i].name == NULL || strcasecmp(f->v[i].name, want) != 0 ||
			    (addr = bounce_addr_normalize(f->v[i].value, strlen(f->v[i].value))) ==
				NULL)
				continue;
			if ((rc = bounce_report_add(rep, addr, NULL, 0, NULL)) != NULL)
				rc->cls.reason = "feedback";
			free(addr);
		}
	}
}
