/* weirctl_suppress - weirctl suppression: the suppression list
 * (suppression.db) for the administrator
 *
 *	list [--scope DOMAIN] [--all]	active entries (--all: expired too)
 *	add ADDRESS [--scope DOMAIN] [--reason TEXT] [--expires DURATION]
 *	remove ADDRESS [--scope DOMAIN]	without --scope: from every scope
 *	import FILE.csv			all or nothing ("-": standard input)
 *	export [FILE]			CSV, every entry (standard output)
 *
 * weirctl runs as root or as the daemons' user. As root, the file it
 * creates or writes (and SQLite's -wal and -shm files) is given to the
 * user of weir.conf afterwards, so weir-milter and weir-agent can still
 * open it. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/suppress.h"
#include "policy/weirctl_suppress.h"

static const char usage_text[] =
    "usage: weirctl suppression list [-c FILE] [--scope DOMAIN] [--all]\n"
    "       weirctl suppression add [-c FILE] ADDRESS [--scope DOMAIN] [--reason TEXT]\n"
    "               [--expires DURATION]\n"
    "       weirctl suppression remove [-c FILE] ADDRESS [--scope DOMAIN]\n"
    "       weirctl suppression import [-c FILE] FILE.csv\n"
    "       weirctl suppression export [-c FILE] [FILE.csv]\n"
    "Without --scope an entry is global (every sender); remove without --scope\n"
    "removes the address from every scope. DURATION: 30d, 12h, ... (0: never).\n"
    "CSV columns: address,scope,reason,hard,source,created,expires.\n";

struct opts {
	const char *conf;
	const char *scope; /* NULL: not given */
	const char *reason;
	const char *expires;
	bool all;
	int first; /* index of the first operand */
};

/* parse - the options after "suppression SUB"; -1 after the usage */
static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"scope", required_argument, NULL, 's'},
	    {"reason", required_argument, NULL, 'r'},
	    {"expires", required_argument, NULL, 'e'},
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 0; /* glibc: start again on this argv */
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->conf = optarg; break;
		case 's': o->scope = optarg; break;
		case 'r': o->reason = optarg; break;
		case 'e': o->expires = optarg; break;
		case 'a': o->all = true; break;
		case 'h': fputs(usage_text, stdout); return -1;
		default: fputs(usage_text, stderr); return -1;
		}
	}
	o->first = optind;
	return 0;
}

/* A store opened for one command, as root handing the files back */
struct ctl {
	struct weir_config *cfg;
	struct suppress *s;
	uid_t uid;
	gid_t gid;
	bool chown; /* root, and the daemons' user exists */
};

/* ctl_open - load the configuration and open the store (created when
 * create); *missing_r (may be NULL) set when it does not exist and may
 * not be created. 0, or 1 after the error is printed. */
static int ctl_open(const char *conf, bool create, struct ctl *x, bool *missing_r)
{
	char *err = NULL;

	memset(x, 0, sizeof(*x));
	if ((x->cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return 1;
	x->chown = geteuid() == 0 && daemon_lookup_user(x->cfg->user, &x->uid, &x->gid) == 0;
	if (!create && access(x->cfg->suppression.db, F_OK) < 0 && errno == ENOENT &&
	    missing_r != NULL) {
		*missing_r = true;
		return 0;
	}
	if (x->chown && create)
		suppress_prepare_db(x->cfg, x->uid, x->gid); /* the directory */
	if ((x->s = suppress_open(x->cfg, create, &err)) == NULL) {
		fprintf(stderr, "weirctl suppression: %s\n", err);
		free(err);
		config_unref(x->cfg);
		return 1;
	}
	return 0;
}

static void ctl_close(struct ctl *x)
{
	suppress_close(x->s);
	if (x->s != NULL && x->chown)
		suppress_prepare_db(x->cfg, x->uid, x->gid);
	else if (x->s != NULL)
		daemon_db_give_back(x->cfg->suppression.db);
	config_unref(x->cfg);
}

/* List */

static void when(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "%lld", t);
}

struct list_ctx {
	long long now;
	long n;
};

static void list_one(void *ctx, const struct suppress_entry *e)
{
	struct list_ctx *l = ctx;
	char created[32], expires[32];

	when(e->created, created, sizeof(created));
	if (e->expires == 0)
		snprintf(expires, sizeof(expires), "never");
	else
		when(e->expires, expires, sizeof(expires));
	printf("%-40s %-20s %-5s %-9s %-20s %-20s %5d %s%s\n", e->address,
	       e->scope[0] != '\0' ? e->scope : "global", e->hard ? "hard" : "soft", e->source,
	       created, expires, e->count, e->reason,
	       e->expires != 0 && e->expires <= l->now ? " [expired]" : "");
	l->n++;
}

static int list_cmd(struct opts *o, int argc, char **argv)
{
	struct list_ctx l = {(long long)time(NULL), 0};
	bool missing = false;
	char *err = NULL;
	struct ctl x;
	int rc;

	if (argc - o->first != 0 || o->reason != NULL || o->expires != NULL) {
		fputs(usage_text, stderr);
		return 2;
	}
	(void)argv;
	if ((rc = ctl_open(o->conf, false, &x, &missing)) != 0)
		return rc;
	printf("%-40s %-20s %-5s %-9s %-20s %-20s %5s %s\n", "ADDRESS", "SCOPE", "KIND", "SOURCE",
	       "CREATED", "EXPIRES", "COUNT", "REASON");
	if (!missing && suppress_list(x.s, o->scope, o->all, l.now, list_one, &l, &err) < 0) {
		fprintf(stderr, "weirctl suppression list: %s\n", err);
		free(err);
		rc = 1;
	}
	if (missing)
		fprintf(stderr, "weirctl suppression list: %s does not exist yet: no entries\n",
		        x.cfg->suppression.db);
	ctl_close(&x);
	return rc;
}

/* Add, remove */

static int add_cmd(struct opts *o, int argc, char **argv)
{
	struct suppress_entry e = {0};
	long long now = (long long)time(NULL), secs = 0;
	char *err = NULL, exp[32];
	const char *bad;
	struct ctl x;
	int rc;

	if (argc - o->first != 1 || o->all) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (o->expires != NULL && config_parse_duration(o->expires, &secs, &bad) < 0) {
		fprintf(stderr, "weirctl suppression add: --expires %s: %s\n", o->expires, bad);
		return 2;
	}
	if (snprintf(e.address, sizeof(e.address), "%s", argv[o->first]) >=
	        (int)sizeof(e.address) ||
	    snprintf(e.scope, sizeof(e.scope), "%s", o->scope ? o->scope : "") >=
	        (int)sizeof(e.scope) ||
	    snprintf(e.reason, sizeof(e.reason), "%s", o->reason ? o->reason : "manual") >=
	        (int)sizeof(e.reason)) {
		fprintf(stderr,
		        "weirctl suppression add: address (%zu), scope (%zu) or reason "
		        "(%zu characters) too long\n",
		        sizeof(e.address) - 1, sizeof(e.scope) - 1, sizeof(e.reason) - 1);
		return 2;
	}
	snprintf(e.source, sizeof(e.source), "manual");
	e.hard = true; /* the administrator's word: not a soft condition */
	e.created = now;
	e.expires = secs > 0 ? now + secs : 0;
	e.count = 1;
	if ((rc = ctl_open(o->conf, true, &x, NULL)) != 0)
		return rc;
	if (suppress_add(x.s, &e, &err) < 0) {
		fprintf(stderr, "weirctl suppression add: %s\n", err);
		free(err);
		rc = 1;
	} else {
		if (e.expires != 0)
			when(e.expires, exp, sizeof(exp));
		else
			snprintf(exp, sizeof(exp), "never");
		printf("%s: suppressed %s%s, expires %s\n", argv[o->first],
		       e.scope[0] ? "for mail from " : "for every sender", e.scope, exp);
	}
	ctl_close(&x);
	return rc;
}

static int remove_cmd(struct opts *o, int argc, char **argv)
{
	bool missing = false;
	char *err = NULL;
	struct ctl x;
	int rc;

	if (argc - o->first != 1 || o->all || o->reason != NULL || o->expires != NULL) {
		fputs(usage_text, stderr);
		return 2;
	}
	if ((rc = ctl_open(o->conf, false, &x, &missing)) != 0)
		return rc;
	rc = missing ? 0 : suppress_remove(x.s, argv[o->first], o->scope, &err);
	if (rc < 0) {
		fprintf(stderr, "weirctl suppression remove: %s\n", err);
		free(err);
		rc = 1;
	} else if (rc == 0) {
		fprintf(stderr, "weirctl suppression remove: %s is not on the list%s%s\n",
		        argv[o->first], o->scope != NULL ? " for " : "",
		        o->scope == NULL ? ""
		        : o->scope[0]    ? o->scope
		                         : "every sender (global)");
		rc = 1;
	} else {
		printf("%s: removed\n", argv[o->first]);
		rc = 0;
	}
	ctl_close(&x);
	return rc;
}

/* Import, export */

static int import_cmd(struct opts *o, int argc, char **argv)
{
	const char *name;
	char *err = NULL;
	struct ctl x;
	FILE *in;
	long n;
	int rc;

	if (argc - o->first != 1 || o->all || o->scope || o->reason || o->expires) {
		fputs(usage_text, stderr);
		return 2;
	}
	name = argv[o->first];
	in = strcmp(name, "-") == 0 ? stdin : fopen(name, "r");
	if (in == NULL) {
		fprintf(stderr, "weirctl suppression import: %s: %s\n", name, strerror(errno));
		return 1;
	}
	if ((rc = ctl_open(o->conf, true, &x, NULL)) != 0) {
		if (in != stdin)
			fclose(in);
		return rc;
	}
	n = suppress_import_csv(x.s, in, strcmp(name, "-") == 0 ? "(stdin)" : name, &err);
	if (n < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		rc = 1;
	} else {
		printf("%s: %ld entr%s imported\n", name, n, n == 1 ? "y" : "ies");
	}
	if (in != stdin)
		fclose(in);
	ctl_close(&x);
	return rc;
}

static int export_cmd(struct opts *o, int argc, char **argv)
{
	bool missing = false;
	const char *name = NULL;
	char *err = NULL;
	FILE *out = stdout;
	struct ctl x;
	int rc, fd;

	if (argc - o->first > 1 || o->all || o->scope || o->reason || o->expires) {
		fputs(usage_text, stderr);
		return 2;
	}
	if ((rc = ctl_open(o->conf, false, &x, &missing)) != 0)
		return rc;
	if (argc - o->first == 1 && strcmp(argv[o->first], "-") != 0) {
		name = argv[o->first];
		/* addresses: not for everyone's eyes */
		fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (fd < 0 || (out = fdopen(fd, "w")) == NULL) {
			fprintf(stderr, "weirctl suppression export: %s: %s\n", name,
			        strerror(errno));
			if (fd >= 0)
				close(fd);
			ctl_close(&x);
			return 1;
		}
	}
	if (missing)
		fputs("address,scope,reason,hard,source,created,expires\n", out);
	else if (suppress_export_csv(x.s, out, &err) < 0) {
		fprintf(stderr, "weirctl suppression export: %s\n", err);
		free(err);
		rc = 1;
	}
	if (out != stdout && fclose(out) != 0) {
		fprintf(stderr, "weirctl suppression export: %s: %s\n", name, strerror(errno));
		rc = 1;
	} else if (out == stdout && fflush(stdout) != 0) {
		rc = 1;
	}
	ctl_close(&x);
	return rc;
}

int weirctl_suppression(const char *conf, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(struct opts *o, int argc, char **argv);
	} subs[] = {
	    {"list", list_cmd},     {"add", add_cmd},       {"remove", remove_cmd},
	    {"import", import_cmd}, {"export", export_cmd},
	};
	struct opts o = {.conf = conf};

	if (argc >= 2) {
		for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
			if (strcmp(argv[1], subs[i].name) != 0)
				continue;
			if (parse(argc - 1, argv + 1, &o) < 0)
				return 2;
			return subs[i].run(&o, argc - 1, argv + 1);
		}
	}
	fputs(usage_text, stderr);
	return 2;
}
