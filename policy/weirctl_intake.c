/* weirctl_intake - weirctl bounce intake: one bounce or complaint on
 * standard input, for the MTA's pipe transport
 *
 *	bounce unix - n n - - pipe user=weir
 *	    argv=/usr/bin/weirctl bounce intake --recipient ${recipient}
 *
 * The same processing as weir-agent's intake (policy/intake.c): the
 * suppression list, the outcome log (written before we exit), webhook
 * events put in the outbox for the running weir-agent to send. Exit 0
 * when done (also for a message that is no bounce), 75 (EX_TEMPFAIL)
 * when anything failed that a later try may not find broken: the MTA
 * keeps the message and tries again. */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/daemon.h"
#include "lib/log.h"
#include "lib/strbuf.h"
#include "lib/xalloc.h"
#include "policy/bounce.h"
#include "policy/config.h"
#include "policy/intake.h"
#include "policy/outcome.h"
#include "policy/suppress.h"
#include "policy/webhook.h"
#include "policy/weirctl_outcome.h"

#define EX_TEMPFAIL 75

static const char usage_text[] =
    "usage: weirctl bounce intake [-c FILE] [--sender ADDRESS] [--recipient ADDRESS]\n"
    "Reads one bounce or complaint on standard input and records it; exit 75\n"
    "when it should be tried again. --recipient: the envelope recipient (a VERP\n"
    "address names the bounced recipient when the bounce does not).\n";

struct ctx {
	const struct weir_config *cfg;
};

/* enqueue - a webhook event into the outbox; a failure loses only the
 * event (the records are written), so it is logged, not retried */
static void enqueue(void *arg, const char *type, const char *json)
{
	struct ctx *x = arg;
	char *err = NULL;

	if (webhook_enqueue(x->cfg, type, json, &err) < 0) {
		log_error("bounce intake: webhook event not queued: %s", err ? err : "?");
		free(err);
	}
}

/* read_all - standard input, at most max octets; NULL when larger */
static char *read_all(long long max, size_t *len_r)
{
	struct strbuf b = {0};
	char buf[65536];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
		if ((long long)(b.len + n) > max) {
			free(b.s);
			return NULL;
		}
		strbuf_add(&b, buf, n);
	}
	*len_r = b.len;
	return b.s ? b.s : xstrdup("");
}

/* run - with the configuration loaded */
static int run(struct weir_config *cfg, const char *rcpt, const char *sender)
{
	struct ctx x = {cfg};
	struct intake_env env = {.cfg = cfg, .event = enqueue, .ctx = &x};
	struct bounce_rules *rules;
	struct intake_result res;
	char *msg, *err = NULL;
	size_t len = 0;
	int rc = EX_TEMPFAIL;

	if ((msg = read_all(cfg->agent.max_message_size, &len)) == NULL) {
		/* too large to be a bounce worth reading: accepted, logged */
		log_warning("bounce intake: message larger than agent.max_message_size ignored");
		return 0;
	}
	if ((rules = bounce_rules_load(cfg->bounce.rules, &err)) == NULL) {
		log_warning("bounce.rules: %s; failures classified \"undefined\"", err);
		free(err);
		err = NULL;
	}
	env.rules = rules;
	if ((env.store = suppress_open_flags(cfg, SUPPRESS_CREATE, &err)) == NULL)
		goto out;
	if (cfg->outcome.db[0] != '\0' && (env.outcome = outcome_open(cfg, &err)) == NULL)
		goto out;
	if (intake_message(&env, msg, len, rcpt, &res, &err) < 0)
		goto out;
	log_info("bounce intake from=<%s> to=<%s> kind=%s recorded=%zu suppressed=%zu",
	         sender ? sender : "", rcpt ? rcpt : "", intake_kind_name(res.kind), res.recorded,
	         res.suppressed);
	rc = 0;
out:
	if (rc != 0) {
		log_error("bounce intake: %s; the MTA will try again", err ? err : "failed");
		free(err);
	}
	outcome_close(env.outcome);
	suppress_close(env.store);
	bounce_rules_free(rules);
	free(msg);
	return rc;
}

int weirctl_bounce_intake(const char *conf, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"sender", required_argument, NULL, 's'},
	    {"recipient", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *rcpt = NULL, *sender = NULL;
	struct weir_config *cfg;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 's': sender = optarg; break;
		case 'r': rcpt = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return EX_TEMPFAIL;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return EX_TEMPFAIL;
	}
	if ((cfg = config_load_reported(conf, 0, true, NULL)) == NULL)
		return EX_TEMPFAIL; /* a configuration being fixed: keep the mail */
	rc = run(cfg, rcpt, sender);
	if (geteuid() == 0) {
		daemon_db_give_back(cfg->suppression.db);
		if (cfg->outcome.db[0] != '\0')
			daemon_db_give_back(cfg->outcome.db);
	}
	config_unref(cfg);
	return rc;
}
