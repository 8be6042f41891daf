/* senders - who may send as what: SMTP AUTH login -> allowed addresses
 *
 * Forms of an allowed address (case-insensitive):
 *	alice@example.com	that address
 *	@example.com		any address in that domain
 *	@.example.com		that domain and its subdomains
 *	*-noreply@example.com	a glob (* and ?) over the whole address
 * With a plus separator ("+"), alice+tag@example.com counts as
 * alice@example.com. Entries come from weir.conf (senders.map), a table
 * file (senders.table) and an SQLite database (senders.sqlite); all are
 * read into memory when the configuration loads, so a lookup never
 * touches a file and a map may be shared by any number of threads once
 * built (it is never changed after). */
#ifndef WEIR_POLICY_SENDERS_H
#define WEIR_POLICY_SENDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct config_errors;
struct sender_map;

/* sender_map_new - an empty map; separators for plus-addressing ("" =
 * off). Free with sender_map_free. */
struct sender_map *sender_map_new(const char *plus_separators);
void sender_map_free(struct sender_map *m);

/* sender_map_add - allow login to use pattern. -1 with *err_r (static)
 * for a pattern that is none of the forms above. */
int sender_map_add(struct sender_map *m, const char *login, const char *pattern,
		   const char **err_r);

/* sender_map_load_table - add the lines of a table file:
 *	LOGIN ADDRESS[, ADDRESS ...]	('#' starts a comment)
 * Every bad line is reported as path:line: text. Returns the number of
 * errors (0 = all good). */
size_t sender_map_load_table(struct sender_map *m, const char *path, struct config_errors *errs);

/* sender_map_load_stream - the same from an open stream, named name in
 * messages */
size_t sender_map_load_stream(struct sender_map *m, FILE *f, const char *name,
			      struct config_errors *errs);

/* sender_map_load_sqlite - add every row of SELECT login, address FROM
 * senders. -1 with *err_r (new memory, caller frees) on failure. */
int sender_map_load_sqlite(struct sender_map *m, const char *path, char **err_r);

/* sender_map_allows - may login send as addr (a canonical, lowercased
 * address as address_parse gives it)? */
bool sender_map_allows(const struct sender_map *m, const char *login, const char *addr);
/* sender_map_has_login - does the map know login at all? */
bool sender_map_has_login(const struct sender_map *m, const char *login);

size_t sender_map_logins(const struct sender_map *m);
size_t sender_map_entries(const struct sender_map *m);

#endif
