/* weirctl_bounce - weirctl bounce classify|parse: read bounce messages
 * from files and print what policy/bounce.c makes of them.
 *
 *	weirctl bounce classify [--rules FILE] FILE...
 *		one line per failed recipient:
 *		FILE<TAB>INDEX<TAB>RECIPIENT<TAB>STATUS<TAB>REASON<TAB>hard|soft
 *		(complaints: REASON "feedback"; auto-replies and other mail:
 *		nothing). Exit 1 when a file could not be read.
 *	weirctl bounce parse [--rules FILE] FILE
 *		the whole report, for administrators
 *
 * The rules come from --rules, else from bounce.rules in weir.conf. */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "policy/bounce.h"
#include "policy/config.h"
#include "policy/weirctl_bounce.h"

static const char bounce_usage[] =
    "usage: weirctl bounce classify [-c FILE] [--rules FILE] MESSAGE...\n"
    "       weirctl bounce parse [-c FILE] [--rules FILE] MESSAGE\n";

#define MAX_MESSAGE (10 * 1024 * 1024)

/* read_file - a whole file (at most MAX_MESSAGE + 1 octets: more is "too
 * large" to bounce_parse); NULL with errno */
static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = xmalloc(MAX_MESSAGE + 2);
	n = fread(buf, 1, MAX_MESSAGE + 1, f);
	if (ferror(f)) {
		int e = errno;

		fclose(f);
		free(buf);
		errno = e ? e : EIO;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len_r = n;
	return buf;
}

/* load_rules - --rules, else bounce.rules of the configuration */
static struct bounce_rules *load_rules(const char *conf, const char *rules_path)
{
	struct bounce_rules *r;
	struct weir_config *cfg = NULL;
	char *err = NULL;

	if (rules_path == NULL) {
		if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
			return NULL;
		rules_path = cfg->bounce.rules;
	}
	if ((r = bounce_rules_load(rules_path, &err)) == NULL) {
		fprintf(stderr, "weirctl bounce: %s\n", err);
		free(err);
	}
	if (cfg != NULL)
		config_unref(cfg);
	return r;
}

static const char *kind_name(enum bounce_kind k)
{
	switch (k) {
	case BOUNCE_DSN: return "dsn";
	case BOUNCE_TEXT: return "text";
	case BOUNCE_COMPLAINT: return "complaint";
	case BOUNCE_AUTOREPLY: return "autoreply";
	case BOUNCE_NONE: break;
	}
	return "none";
}

/* show - one file's report, as classify or parse prints it */
static int show(const struct bounce_rules *r, const char *path, bool full)
{
	struct bounce_report rep;
	size_t len;
	char *msg = read_file(path, &len);

	if (msg == NULL) {
		fprintf(stderr, "weirctl bounce: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (bounce_parse(r, msg, len, &rep) < 0) {
		fprintf(stderr, "weirctl bounce: %s: larger than %d octets, not read\n", path,
			MAX_MESSAGE);
		free(msg);
		return 1;
	}
	free(msg);
	if (full) {
		printf("kind: %s\n", kind_name(rep.kind));
		if (rep.feedback_type)
			printf("feedback-type: %s\n", rep.feedback_type);
		if (rep.original_from)
			printf("original-from: %s\n", rep.original_from);
		if (rep.original_msgid)
			printf("original-message-id: %s\n", rep.original_msgid);
		if (rep.original_to)
			printf("original-to: %s\n", rep.original_to);
	}
	for (size_t i = 0; i < rep.nrcpts; i++) {
		const struct bounce_rcpt *rc = &rep.rcpts[i];

		if (!full) {
			printf("%s\t%zu\t%s\t%s\t%s\t%s\n", path, i + 1, rc->recipient,
			       rc->status ? rc->status : "", rc->cls.reason,
			       rc->cls.hard ? "hard" : "soft");
			continue;
		}
		printf("recipient %zu: %s\n", i + 1, rc->recipient);
		printf("  status: %s\n", rc->status ? rc->status : "");
		if (rc->code)
			printf("  code: %d\n", rc->code);
		else
			printf("  code:\n");
		printf("  diagnostic: %s\n", rc->diagnostic ? rc->diagnostic : "");
		printf("  reason: %s\n", rc->cls.reason);
		printf("  hard: %s\n", rc->cls.hard ? "yes" : "no");
	}
	bounce_report_free(&rep);
	return 0;
}

int weirctl_bounce(const char *conf, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"rules", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *rules_path = NULL;
	struct bounce_rules *r;
	bool full;
	int c, rc = 0;

	if (argc < 2 || (strcmp(argv[1], "classify") != 0 && strcmp(argv[1], "parse") != 0)) {
		fputs(bounce_usage, stderr);
		return 2;
	}
	full = strcmp(argv[1], "parse") == 0;
	argc--, argv++;
	optind = 0; /* glibc: start again on this argv */
	while ((c = getopt_long(argc, argv, "c:r:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'r': rules_path = optarg; break;
		case 'h': fputs(bounce_usage, stdout); return 0;
		default: fputs(bounce_usage, stderr); return 2;
		}
	}
	if (optind >= argc || (full && argc - optind != 1)) {
		fputs(bounce_usage, stderr);
		return 2;
	}
	if ((r = load_rules(conf, rules_path)) == NULL)
		return 1;
	for (int i = optind; i < argc; i++)
		if (show(r, argv[i], full) != 0)
			rc = 1;
	bounce_rules_free(r);
	return rc;
}
