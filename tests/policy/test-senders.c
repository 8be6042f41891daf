/* test-senders - the sender map: every address form, plus-addressing,
 * case, table files with file:line errors, SQLite */
#include "autoconf.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/senders.h"
#include "tests/testlib.h"

static bool has_error(const struct config_errors *errs, const char *want)
{
	for (size_t i = 0; i < errs->list.n; i++)
		if (strstr(errs->list.v[i], want))
			return true;
	fprintf(stderr, "  no error holds \"%s\"\n", want);
	for (size_t i = 0; i < errs->list.n; i++)
		fprintf(stderr, "    %s\n", errs->list.v[i]);
	return false;
}

static void test_forms(void)
{
	struct sender_map *m = sender_map_new("+");
	const char *err;

	test_begin("exact, domain, subdomain and glob forms");
	test_assert(sender_map_add(m, "Alice", "Alice@Example.COM", &err) == 0);
	test_assert(sender_map_add(m, "alice", "@sales.example.com", &err) == 0);
	test_assert(sender_map_add(m, "alice", "@.corp.example", &err) == 0);
	test_assert(sender_map_add(m, "app", "*-noreply@example.com", &err) == 0);
	test_assert(sender_map_add(m, "app", "app?@example.net", &err) == 0);
	test_assert(sender_map_allows(m, "alice", "alice@example.com"));
	test_assert(sender_map_allows(m, "ALICE", "alice@example.com"));
	test_assert(sender_map_allows(m, "alice", "alice+tag@example.com"));
	test_assert(!sender_map_allows(m, "alice", "alice-tag@example.com"));
	test_assert(!sender_map_allows(m, "alice", "bob@example.com"));
	test_assert(!sender_map_allows(m, "alice", "alice@example.com.evil"));
	test_assert(sender_map_allows(m, "alice", "x@sales.example.com"));
	test_assert(!sender_map_allows(m, "alice", "x@a.sales.example.com"));
	test_assert(sender_map_allows(m, "alice", "x@corp.example"));
	test_assert(sender_map_allows(m, "alice", "x@a.b.corp.example"));
	test_assert(!sender_map_allows(m, "alice", "x@evilcorp.example"));
	test_assert(sender_map_allows(m, "app", "billing-noreply@example.com"));
	test_assert(!sender_map_allows(m, "app", "billing@example.com"));
	test_assert(sender_map_allows(m, "app", "app1@example.net"));
	test_assert(!sender_map_allows(m, "app", "app12@example.net"));
	test_assert(!sender_map_allows(m, "nobody", "alice@example.com"));
	test_assert(!sender_map_allows(m, "app", "alice@example.com"));
	test_assert(sender_map_has_login(m, "APP"));
	test_assert(sender_map_logins(m) == 2 && sender_map_entries(m) == 5);
	test_end();

	test_begin("bad entries are refused");
	test_assert(sender_map_add(m, "x", "no-at-sign", &err) < 0);
	test_assert(sender_map_add(m, "x", "@", &err) < 0);
	test_assert(sender_map_add(m, "x", "@bad..domain", &err) < 0);
	test_assert(sender_map_add(m, "x", "user@", &err) < 0);
	test_assert(sender_map_add(m, "x", "*noat", &err) < 0);
	test_assert(sender_map_add(m, "", "a@b.example", &err) < 0);
	test_assert(sender_map_add(m, "x y", "a@b.example", &err) < 0);
	test_end();
	sender_map_free(m);

	test_begin("plus-addressing off");
	m = sender_map_new("");
	test_assert(sender_map_add(m, "alice", "alice@example.com", &err) == 0);
	test_assert(!sender_map_allows(m, "alice", "alice+tag@example.com"));
	sender_map_free(m);
	test_end();
}

static void test_table(void)
{
	char dir[] = "/tmp/weir-test-senders-XXXXXX";
	struct config_errors errs;
	struct sender_map *m = sender_map_new("+");
	char *path;
	FILE *f;

	test_begin("table file, with every bad line reported as file:line");
	test_assert(mkdtemp(dir) != NULL);
	path = xasprintf("%s/senders", dir);
	f = fopen(path, "w");
	fputs("# login addresses\n"
	      "alice alice@example.com, @sales.example.com\n"
	      "\n"
	      "bob\tbob@example.com bob2@example.com # trailing comment\n"
	      "carol\n"
	      "alice alice.second@example.com\n"
	      "dave not-an-address, dave@example.com\n",
	      f);
	fclose(f);
	config_errors_init(&errs);
	test_assert(sender_map_load_table(m, path, &errs) == 2);
	char *want = xasprintf("%s:5: login carol has no addresses", path);
	test_assert(has_error(&errs, want));
	free(want);
	want = xasprintf("%s:7: not-an-address: ", path);
	test_assert(has_error(&errs, want));
	free(want);
	test_assert(sender_map_allows(m, "alice", "alice.second@example.com"));
	test_assert(sender_map_allows(m, "alice", "x@sales.example.com"));
	test_assert(sender_map_allows(m, "bob", "bob2@example.com"));
	test_assert(sender_map_allows(m, "dave", "dave@example.com"));
	test_assert(sender_map_load_table(m, "/nonexistent/senders", &errs) == 1);
	test_assert(has_error(&errs, "/nonexistent/senders: cannot read"));
	config_errors_free(&errs);
	unlink(path);
	free(path);
	sender_map_free(m);
	test_end();

	test_begin("SQLite table senders(login, address)");
	path = xasprintf("%s/senders.db", dir);
	sqlite3 *db;
	test_assert(sqlite3_open(path, &db) == SQLITE_OK);
	test_assert(sqlite3_exec(db,
				 "CREATE TABLE senders(login TEXT, address TEXT);"
				 "INSERT INTO senders VALUES('erin', 'erin@example.com');"
				 "INSERT INTO senders VALUES('erin', '@erin.example');",
				 NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	m = sender_map_new("+");
	char *err = NULL;
	test_assert(sender_map_load_sqlite(m, path, &err) == 0);
	test_assert(sender_map_allows(m, "erin", "erin+x@example.com"));
	test_assert(sender_map_allows(m, "erin", "a@erin.example"));
	test_assert(!sender_map_allows(m, "erin", "a@example.com"));
	sender_map_free(m);
	m = sender_map_new("+");
	test_assert(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_exec(db, "INSERT INTO senders VALUES('frank', 'garbage');", NULL, NULL, NULL);
	sqlite3_close(db);
	test_assert(sender_map_load_sqlite(m, path, &err) < 0);
	test_assert(err != NULL && strstr(err, "row login=frank address=garbage") != NULL);
	free(err);
	err = NULL;
	test_assert(sender_map_load_sqlite(m, "/nonexistent/x.db", &err) < 0);
	free(err);
	sender_map_free(m);
	unlink(path);
	free(path);
	rmdir(dir);
	test_end();
}

int main(void)
{
	test_forms();
	test_table();
	return test_exit_status();
}
