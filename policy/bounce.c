/* bounce - reading one bounce, complaint or auto-reply (bounce_parse).
 *
 * GMime gives the MIME structure; the parts that matter are
 * message/delivery-status (RFC 3464), message/feedback-report (RFC
 * 5965), the attached original (message/rfc822 or text/rfc822-headers)
 * and the human-readable text, which is all a non-standard bounce has.
 * The order of trust: a delivery-status part, then a feedback report,
 * then RFC 3834 auto-reply marks, then the text of a message that looks
 * like a bounce (from MAILER-DAEMON or postmaster, or in a known MTA's
 * words).
 *
 * Line endings are made LF before GMime sees the message. GMime is
 * initialised once (pthread_once) and each call uses its own objects,
 * so threads may parse at the same time. */
#include "autoconf.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/bounce.h"
#include "policy/bounce_int.h"

#define BOUNCE_MAX_SIZE (10 * 1024 * 1024)
#define MAX_DEPTH 20

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_setup(void)
{
	g_mime_init();
}

/* What the walk over the MIME tree found */
struct found {
	struct strbuf dsn;	/* delivery-status bodies, blank-line separated */
	struct strbuf arf;	/* the feedback-report body */
	struct strbuf text;	/* the text/plain parts outside the original */
	struct strbuf html;	/* text/html when there is no text/plain */
	GMimeMessage *original; /* the attached original (borrowed) */
	struct strbuf orig_headers; /* text/rfc822-headers */
};

/* part_bytes - a leaf part's decoded content, appended to b */
static void part_bytes(GMimePart *part, struct strbuf *b)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem;
	GByteArray *arr;

	if (w == NULL)
		return;
	mem = g_mime_stream_mem_new();
	if (g_mime_data_wrapper_write_to_stream(w, mem) >= 0) {
		arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
		if (arr != NULL && arr->len > 0)
			strbuf_add(b, (const char *)arr->data, arr->len);
	}
	g_object_unref(mem);
	strbuf_add(b, "\n", 1);
}

/* text_bytes - a text part in UTF-8 when its charset converts, else as is */
static void text_bytes(GMimeObject *o, struct strbuf *b)
{
	char *t = GMIME_IS_TEXT_PART(o) ? g_mime_text_part_get_text(GMIME_TEXT_PART(o)) : NULL;

	if (t == NULL) {
		part_bytes(GMIME_PART(o), b);
		return;
	}
	strbuf_adds(b, t);
	strbuf_add(b, "\n", 1);
	g_free(t);
}

static bool is(GMimeObject *o, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

static void walk(GMimeObject *o, struct found *f, int depth)
{
	if (o == NULL || depth > MAX_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		int n = g_mime_multipart_get_count(GMIME_MULTIPART(o));

		for (int i = 0; i < n; i++)
			walk(g_mime_multipart_get_part(GMIME_MULTIPART(o), i), f, depth + 1);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(o)) {
		/* the original: its headers only; do not read its text as ours */
		if (f->original == NULL)
			f->original = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		return;
	}
	if (!GMIME_IS_PART(o))
		return;
	if (is(o, "message", "delivery-status") || is(o, "message", "global-delivery-status")) {
		part_bytes(GMIME_PART(o), &f->dsn);
		strbuf_add(&f->dsn, "\n", 1);
	} else if (is(o, "message", "feedback-report")) {
		part_bytes(GMIME_PART(o), &f->arf);
	} else if (is(o, "text", "rfc822-headers") || is(o, "message", "rfc822-headers")) {
		if (f->orig_headers.len == 0)
			part_bytes(GMIME_PART(o), &f->orig_headers);
	} else if (is(o, "text", "plain")) {
		text_bytes(o, &f->text);
	} else if (is(o, "text", "html")) {
		text_bytes(o, &f->html);
	}
}

/* strip_html - the text of an HTML body (tags dropped, <br>/<p> as lines) */
static char *strip_html(const char *h)
{
	struct strbuf b = {0};

	for (const char *p = h; *p;) {
		if (*p == '<') {
			const char *e = strchr(p, '>');

			if (e == NULL)
				break;
			if (strncasecmp(p, "<br", 3) == 0 || strncasecmp(p, "<p", 2) == 0 ||
			    strncasecmp(p, "</p", 3) == 0 || strncasecmp(p, "<div", 4) == 0 ||
			    strncasecmp(p, "<tr", 3) == 0 || strncasecmp(p, "<li", 3) == 0)
				strbuf_add(&b, "\n", 1);
			p = e + 1;
		} else if (strncmp(p, "&lt;", 4) == 0) {
			strbuf_add(&b, "<", 1), p += 4;
		} else if (strncmp(p, "&gt;", 4) == 0) {
			strbuf_add(&b, ">", 1), p += 4;
		} else if (strncmp(p, "&nbsp;", 6) == 0) {
			strbuf_add(&b, " ", 1), p += 6;
		} else if (strncmp(p, "&amp;", 5) == 0) {
			strbuf_add(&b, "&", 1), p += 5;
		} else {
			strbuf_add(&b, p, 1), p++;
		}
	}
	return b.s ? strbuf_take(&b) : xstrdup("");
}

/* rewalk_body - a multipart whose declared boundary occurs nowhere in
 * its body (seen in the wild, e.g. after the boundary was rewritten in
 * the header only) has no parts for GMime: parse the body again with
 * the boundary its first "--" line uses, and walk that. body (LF line
 * endings) is the message after its header. The parts found are kept
 * alive by *keep_r (caller unrefs). */
static void rewalk_body(const char *body, struct found *f, GMimeMessage **keep_r)
{
	const char *p = body, *e;
	GMimeStream *stream;
	GMimeParser *parser;
	char *fake;
	size_t n;

	*keep_r = NULL;
	while (*p != '\0' && strncmp(p, "--", 2) != 0) {
		p = strchr(p, '\n');
		if (p == NULL)
			return;
		p++;
	}
	if (*p == '\0')
		return;
	e = p + 2 + strcspn(p + 2, "\n");
	while (e > p + 2 && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - p - 2);
	if (n == 0 || n > 200 || memchr(p + 2, '"', n) != NULL)
		return;
	fake = xasprintf("Content-Type: multipart/mixed; boundary=\"%.*s\"\n\n%s", (int)n,
			 p + 2, body);
	stream = g_mime_stream_mem_new_with_buffer(fake, strlen(fake));
	free(fake);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	*keep_r = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (*keep_r != NULL)
		walk(g_mime_message_get_mime_part(*keep_r), f, 0);
}

/* normalize - msg with LF line endings and without an mbox "From " line */
static char *normalize(const char *msg, size_t len, size_t *len_r)
{
	char *out = xmalloc(len + 1);
	size_t o = 0, i = 0;

	if (len > 5 && memcmp(msg, "From ", 5) == 0) {
		const char *nl = memchr(msg, '\n', len);
		const char *cr = memchr(msg, '\r', len);

		const char *eol = nl != NULL && (cr == NULL || nl < cr) ? nl : cr;

		/* past the line's end (CR LF counts as one) */
		i = eol == NULL ? len : (size_t)(eol - msg) + 1;
		if (eol == cr && i < len && msg[i] == '\n')
			i++;
	}
	for (; i < len; i++) {
		if (msg[i] == '\r') {
			out[o++] = '\n';
			if (i + 1 < len && msg[i + 1] == '\n')
				i++;
		} else {
			out[o++] = msg[i];
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

static char *header_addr(GMimeObject *o, const char *name)
{
	const char *v = g_mime_object_get_header(o, name);

	return v != NULL ? bounce_addr_normalize(v, strlen(v)) : NULL;
}

/* is_autoreply - RFC 3834 marks, or a vacation subject */
static bool is_autoreply(GMimeObject *top, const char *subject)
{
	static const char *const subjects[] = {
	    "auto:", "autoreply", "auto-reply", "auto reply", "automatic reply", "autorespon",
	    "auto response", "away from", "away until", "abwesend",
	    "automatische antwort", "out of office", "out of the office", "vacation",
	    "abwesenheit", "absence", "r\xc3\xa9ponse automatique", "respuesta autom", NULL,
	};
	const char *v;

	if ((v = g_mime_object_get_header(top, "Auto-Submitted")) != NULL &&
	    strncasecmp(v + strspn(v, " \t"), "auto-replied", 12) == 0)
		return true;
	if (g_mime_object_get_header(top, "X-Autoreply") != NULL ||
	    g_mime_object_get_header(top, "X-Autorespond") != NULL ||
	    g_mime_object_get_header(top, "X-Autoresponder") != NULL)
		return true;
	if ((v = g_mime_object_get_header(top, "Precedence")) != NULL &&
	    strncasecmp(v + strspn(v, " \t"), "auto_reply", 10) == 0)
		return true;
	for (size_t i = 0; subject != NULL && subjects[i] != NULL; i++) {
		const char *s = subject + strspn(subject, " \t");

		if (strncasecmp(s, subjects[i], strlen(subjects[i])) == 0)
			return true;
	}
	return false;
}

/* from_daemon - the message comes from a mail system, not a person */
static bool from_daemon(GMimeObject *top, const char *subject)
{
	static const char *const senders[] = {"mailer-daemon", "postmaster", "mail delivery",
					      "mail administrator", "mailadmin", "mail_daemon",
					      "maildelivery", "microsoftexchange", NULL};
	static const char *const subjects[] = {"undeliver", "returned mail", "delivery",
					       "failure notice", "mail system error",
					       "failed", "nondeliverable", "non-deliver", NULL};
	const char *from = g_mime_object_get_header(top, "From");
	const char *rp = g_mime_object_get_header(top, "Return-Path");
	char low[256];
	size_t n;

	if (rp != NULL && strcmp(rp + strspn(rp, " \t"), "<>") == 0)
		return true;
	for (int k = 0; k < 2; k++) {
		const char *v = k == 0 ? from : subject;

		if (v == NULL)
			continue;
		n = strlen(v) < sizeof(low) - 1 ? strlen(v) : sizeof(low) - 1;
		for (size_t i = 0; i < n; i++)
			low[i] = (char)tolower((unsigned char)v[i]);
		low[n] = '\0';
		for (const char *const *w = k == 0 ? senders : subjects; *w != NULL; w++)
			if (strstr(low, *w) != NULL)
				return true;
	}
	return false;
}

/* original_from_text - From: and Message-ID: of an inline copy of the
 * original (headers after the bounce's own words) */
static void original_from_fields(const struct bounce_fields *h, struct bounce_report *rep)
{
	const char *v;

	if (rep->original_from == NULL &&
	    ((v = bounce_fields_get(h, "Return-Path")) != NULL ||
	     (v = bounce_fields_get(h, "From")) != NULL))
		rep->original_from = bounce_addr_normalize(v, strlen(v));
	if (rep->original_msgid == NULL && (v = bounce_fields_get(h, "Message-ID")) != NULL) {
		size_t b = strspn(v, " <"), e = strcspn(v + b, "> ");

		if (e > 0)
			rep->original_msgid = xstrndup(v + b, e);
	}
	if (rep->original_to == NULL && (v = bounce_fields_get(h, "To")) != NULL)
		rep->original_to = bounce_addr_normalize(v, strlen(v));
}

static void read_original(struct found *f, struct bounce_report *rep)
{
	if (f->original != NULL) {
		GMimeObject *o = GMIME_OBJECT(f->original);
		const char *id = g_mime_message_get_message_id(f->original);

		rep->original_from = header_addr(o, "Return-Path");
		if (rep->original_from == NULL)
			rep->original_from = header_addr(o, "From");
		if (id != NULL && id[0] != '\0')
			rep->original_msgid = xstrdup(id);
		rep->original_to = header_addr(o, "To");
	}
	if (f->orig_headers.len > 0) {
		struct bounce_fields h;

		bounce_fields_parse(f->orig_headers.s, f->orig_headers.len, &h);
		original_from_fields(&h, rep);
		bounce_fields_free(&h);
	}
}

/* read_text_bounce - the recipients of a non-standard bounce */
static void read_text_bounce(const struct bounce_rules *r, const struct bounce_text *t,
			     struct bounce_report *rep)
{
	for (size_t i = 0; i < t->n; i++) {
		struct bounce_rcpt *rc;
		char status[16];
		int code;

		bounce_text_codes(t->v[i].block, &code, status);
		rc = bounce_report_add(rep, t->v[i].addr, status, code, t->v[i].block);
		if (rc != NULL)
			/* the whole text explains a recipient only when it is the
			 * only one the bounce names */
			bounce_classify_alt(r, bounce_text_command(t->v[i].block), code, rc->status,
					    t->v[i].block, t->n == 1 ? t->section : NULL,
					    &rc->cls);
	}
}

/* failed_recipients - X-Failed-Recipients: (Exim, Google Groups) when
 * the text names no recipient; the whole text explains each */
static void failed_recipients(GMimeObject *top, struct bounce_text *t)
{
	const char *v = g_mime_object_get_header(top, "X-Failed-Recipients");

	while (v != NULL && *v != '\0' && t->n < 100) {
		size_t len = strcspn(v, ",");
		char *a = bounce_addr_normalize(v, len);

		if (a != NULL) {
			t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
			t->v[t->n].addr = a;
			t->v[t->n].block = xstrdup(t->section);
			t->n++;
		}
		v += len + (v[len] == ',');
	}
}

/* examine - decide the kind of message and fill rep */
static void examine(const struct bounce_rules *r, GMimeMessage *m, struct found *f,
		    struct bounce_report *rep)
{
	GMimeObject *top = GMIME_OBJECT(m);
	const char *subject = g_mime_message_get_subject(m);
	char *self[3] = {header_addr(top, "From"), header_addr(top, "To"), NULL};
	const char *exclude[4] = {self[0] ? self[0] : "", self[1] ? self[1] : "", NULL, NULL};
	struct bounce_text t;
	char *text;

	read_original(f, rep);
	if (rep->original_from != NULL)
		exclude[2] = rep->original_from;
	if (f->text.len > 0)
		text = xstrdup(f->text.s);
	else if (f->html.len > 0)
		text = strip_html(f->html.s);
	else
		text = xstrdup("");
	bounce_text_scan(text, exclude, &t);
	if (t.n == 0)
		failed_recipients(top, &t);
	if (f->dsn.len > 0) {
		struct bounce_fields fl;

		bounce_fields_parse(f->dsn.s, f->dsn.len, &fl);
		bounce_dsn_read(r, &fl, &t, rep);
		bounce_fields_free(&fl);
		rep->kind = BOUNCE_DSN;
	} else if (f->arf.len > 0) {
		struct bounce_fields fl;

		bounce_fields_parse(f->arf.s, f->arf.len, &fl);
		bounce_arf_read(&fl, rep);
		bounce_fields_free(&fl);
		if (rep->nrcpts == 0 && rep->original_to != NULL) {
			struct bounce_rcpt *rc = bounce_report_add(rep, rep->original_to, NULL, 0, NULL);

			if (rc != NULL)
				rc->cls.reason = "feedback";
		}
	} else if (t.n > 0 && (g_mime_object_get_header(top, "X-Failed-Recipients") != NULL ||
			       (from_daemon(top, subject) && bounce_text_looks_bounced(t.section)))) {
		/* some MTAs (Exim) mark their bounces Auto-Submitted: auto-replied */
		rep->kind = BOUNCE_TEXT;
		read_text_bounce(r, &t, rep);
	} else if (is_autoreply(top, subject)) {
		rep->kind = BOUNCE_AUTOREPLY;
	} else if (t.n > 0 && (from_daemon(top, subject) || bounce_text_looks_bounced(t.section))) {
		rep->kind = BOUNCE_TEXT;
		read_text_bounce(r, &t, rep);
	}
	bounce_text_free(&t);
	free(text);
	free(self[0]);
	free(self[1]);
}

int bounce_parse(const struct bounce_rules *r, const char *msg, size_t len,
		 struct bounce_report *rep)
{
	struct found f = {0};
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *m, *again = NULL;
	GMimeObject *top;
	size_t n;
	char *norm;

	memset(rep, 0, sizeof(*rep));
	rep->kind = BOUNCE_NONE;
	if (len > BOUNCE_MAX_SIZE)
		return -1;
	pthread_once(&gmime_once, gmime_setup);
	norm = normalize(msg, len, &n);
	stream = g_mime_stream_mem_new_with_buffer(norm, n);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (m == NULL) {
		free(norm);
		return 0;
	}
	top = g_mime_message_get_mime_part(m);
	walk(top, &f, 0);
	if (GMIME_IS_MULTIPART(top) && g_mime_multipart_get_count(GMIME_MULTIPART(top)) == 0) {
		const char *body = strstr(norm, "\n\n");

		if (body != NULL)
			rewalk_body(body + 2, &f, &again);
	}
	free(norm);
	examine(r, m, &f, rep);
	if (rep->kind == BOUNCE_AUTOREPLY || rep->kind == BOUNCE_NONE) {
		for (size_t i = 0; i < rep->nrcpts; i++) {
			free(rep->rcpts[i].recipient);
			free(rep->rcpts[i].status);
			free(rep->rcpts[i].diagnostic);
		}
		free(rep->rcpts);
		rep->rcpts = NULL;
		rep->nrcpts = 0;
	}
	g_object_unref(m);
	if (again != NULL)
		g_object_unref(again);
	free(f.dsn.s);
	free(f.arf.s);
	free(f.text.s);
	free(f.html.s);
	free(f.orig_headers.s);
	return 0;
}

void bounce_report_free(struct bounce_report *rep)
{
	for (size_t i = 0; i < rep->nrcpts; i++) {
		free(rep->rcpts[i].recipient);
		free(rep->rcpts[i].status);
		free(rep->rcpts[i].diagnostic);
	}
	free(rep->rcpts);
	free(rep->feedback_type);
	free(rep->original_from);
	free(rep->original_msgid);
	free(rep->original_to);
	memset(rep, 0, sizeof(*rep));
}
