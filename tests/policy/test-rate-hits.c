/* test-rate-hits - policy/rate_hits.c: rows in outcome.db's rate_hits,
 * the top list for weirctl report, expiry, and failures that never reach
 * the caller (logged at most once a minute) */
#include "autoconf.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_hits.h"
#include "tests/testlib.h"

static char got[1024];
static int warnings;

static void collect(void *ctx, const char *login, const char *limit, long count)
{
	size_t n = strlen(got);

	(void)ctx;
	snprintf(got + n, sizeof(got) - n, "%s/%s=%ld;", login, limit, count);
}

static void hook(enum log_level level, const char *line)
{
	if (level == LOG_LEVEL_WARNING && strstr(line, "rate hits:") != NULL)
		warnings++;
}

static long rows(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long n = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM rate_hits", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = (long)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/weir-test-rate-hits.XXXXXX", *path, *err = NULL;
	struct weir_config cfg;
	const long long t0 = 1800000000000LL; /* ms */

	if (mkdtemp(dir) == NULL)
		return 99;
	path = xasprintf("%s/outcome.db", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.outcome.db = path;
	cfg.outcome.retention = 86400;
	log_open("test", true, "mail");
	log_set_hook(hook);

	test_begin("nothing recorded yet: an empty top list");
	got[0] = '\0';
	test_assert(rate_hits_top(&cfg, 0, 10, collect, NULL, &err) == 0);
	test_assert_str(got, "");
	test_end();

	test_begin("hits recorded and ranked");
	rate_hits_record(&cfg, "bob", "m", t0);
	rate_hits_record(&cfg, "bob", "m", t0 + 1);
	rate_hits_record(&cfg, "bob", "m", t0 + 2);
	rate_hits_record(&cfg, "alice", "x", t0 + 3);
	rate_hits_record(&cfg, "bob", "other", t0 + 4);
	rate_hits_record(&cfg, NULL, "x", t0 + 5);
	rate_hits_record(&cfg, "alice", "x", t0 + 6);
	test_assert(rows(path) == 7);
	got[0] = '\0';
	test_assert(rate_hits_top(&cfg, 0, 10, collect, NULL, &err) == 0);
	test_assert_str(got, "bob/m=3;alice/x=2;/x=1;bob/other=1;");
	got[0] = '\0';
	test_assert(rate_hits_top(&cfg, 0, 2, collect, NULL, &err) == 0);
	test_assert_str(got, "bob/m=3;alice/x=2;");
	got[0] = '\0';
	test_assert(rate_hits_top(&cfg, t0 + 3, 10, collect, NULL, &err) == 0);
	test_assert_str(got, "alice/x=2;/x=1;bob/other=1;");
	test_end();

	test_begin("rows past outcome.retention go (hourly)");
	rate_hits_record(&cfg, "carol", "m", t0 + 86400000LL + 3600000LL + 10);
	test_assert(rows(path) == 1);
	test_end();

	test_begin("a file that cannot be written: no failure to the caller, one warning a minute");
	rate_hits_close();
	free(path);
	path = xasprintf("%s/no/such/dir/outcome.db", dir);
	cfg.outcome.db = path;
	warnings = 0;
	rate_hits_record(&cfg, "bob", "m", t0);
	rate_hits_record(&cfg, "bob", "m", t0 + 1000);
	test_assert(warnings == 1);
	rate_hits_record(&cfg, "bob", "m", t0 + 61000);
	test_assert(warnings == 2);
	got[0] = '\0';
	test_assert(rate_hits_top(&cfg, 0, 10, collect, NULL, &err) == 0);
	test_assert_str(got, "");
	cfg.outcome.db = (char *)"";
	rate_hits_record(&cfg, "bob", "m", t0 + 200000); /* outcome.db "": nothing */
	test_assert(warnings == 2);
	test_end();

	rate_hits_close();
	log_set_hook(NULL);
	free(path);
	path = xasprintf("rm -rf '%s'", dir);
	if (system(path) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(path);
	return test_exit_status();
}
