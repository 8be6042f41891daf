/* senders - who may send as what: SMTP AUTH login -> allowed addresses
 *
 * Exact addresses live in one hash set keyed "login\naddress", so a
 * lookup costs one hash probe whatever the number of users; domain and
 * glob forms are kept per login (a login rarely has more than a few). */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strmap.h"
#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/senders.h"

struct login_rules {
	char **domains; /* normalized; ".d" = d and its subdomains */
	size_t ndomains;
	char **globs; /* lowercased */
	size_t nglobs;
};

struct sender_map {
	struct strmap *logins; /* lowercased login -> struct login_rules */
	struct strmap *exact;  /* "login\naddress" -> (void *)1 */
	char *plus;
	size_t entries;
};

static char *lower_dup(const char *s)
{
	char *p = xstrdup(s);

	for (char *q = p; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

static void rules_free(void *v)
{
	struct login_rules *r = v;

	for (size_t i = 0; i < r->ndomains; i++)
		free(r->domains[i]);
	for (size_t i = 0; i < r->nglobs; i++)
		free(r->globs[i]);
	free(r->domains);
	free(r->globs);
	free(r);
}

struct sender_map *sender_map_new(const char *plus_separators)
{
	struct sender_map *m = xcalloc(1, sizeof(*m));

	m->logins = strmap_new();
	m->exact = strmap_new();
	m->plus = xstrdup(plus_separators ? plus_separators : "");
	return m;
}

void sender_map_free(struct sender_map *m)
{
	if (m == NULL)
		return;
	strmap_free(m->logins, rules_free);
	strmap_free(m->exact, NULL);
	free(m->plus);
	free(m);
}

static struct login_rules *rules_for(struct sender_map *m, const char *login)
{
	struct login_rules *r = strmap_get(m->logins, login);

	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		strmap_put(m->logins, login, r);
	}
	return r;
}

static void push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

/* add_domain - "@example.com" or "@.example.com" */
static int add_domain(struct login_rules *r, const char *d, const char **err_r)
{
	bool sub = d[0] == '.';
	char *norm = domain_normalize(d + sub, err_r);

	if (norm == NULL)
		return -1;
	if (sub) {
		char *dotted = xasprintf(".%s", norm);
		free(norm);
		norm = dotted;
	}
	push(&r->domains, &r->ndomains, norm);
	return 0;
}

int sender_map_add(struct sender_map *m, const char *login, const char *pattern,
		   const char **err_r)
{
	char *l = lower_dup(login), *p = lower_dup(pattern), *at;
	int ret = 0;

	if (l[0] == '\0' || strpbrk(l, " \t\r\n") != NULL) {
		*err_r = "bad login name";
		ret = -1;
	} else if (p[0] == '@') {
		ret = add_domain(rules_for(m, l), p + 1, err_r);
	} else if (strpbrk(p, "*?") != NULL) {
		if (strchr(p, '@') == NULL) {
			*err_r = "a pattern must hold '@' (e.g. *-noreply@example.com)";
			ret = -1;
		} else {
			struct login_rules *r = rules_for(m, l);
			push(&r->globs, &r->nglobs, p);
			p = NULL;
		}
	} else if ((at = strrchr(p, '@')) == NULL || at == p || at[1] == '\0' ||
		   strpbrk(p, " \t\r\n<>") != NULL) {
		*err_r = "expected user@domain, @domain, @.domain or a pattern with * or ?";
		ret = -1;
	} else {
		char *dom = domain_normalize(at + 1, err_r);
		if (dom == NULL) {
			ret = -1;
		} else {
			char *key = xasprintf("%s\n%.*s@%s", l, (int)(at - p), p, dom);
			rules_for(m, l);
			strmap_put(m->exact, key, (void *)1);
			free(key);
			free(dom);
		}
	}
	if (ret == 0)
		m->entries++;
	free(l);
	free(p);
	return ret;
}

/* exact_has - login\naddr in the exact set */
static bool exact_has(const struct sender_map *m, const char *login, const char *addr)
{
	char stack[512], *key = stack;
	size_t ll = strlen(login), al = strlen(addr);
	bool found;

	if (ll + al + 2 > sizeof(stack))
		key = xmalloc(ll + al + 2);
	memcpy(key, login, ll);
	key[ll] = '\n';
	memcpy(key + ll + 1, addr, al + 1);
	found = strmap_get(m->exact, key) != NULL;
	if (key != stack)
		free(key);
	return found;
}

/* allows_one - addr (lowercased) against one login's rules */
static bool allows_one(const struct sender_map *m, const struct login_rules *r, const char *login,
		       const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (exact_has(m, login, addr))
		return true;
	if (at != NULL && domain_in_list(at + 1, r->domains, r->ndomains))
		return true;
	for (size_t i = 0; i < r->nglobs; i++)
		if (address_glob(r->globs[i], addr))
			return true;
	return false;
}

bool sender_map_allows(const struct sender_map *m, const char *login, const char *addr)
{
	char lbuf[256], *l = lbuf;
	const struct login_rules *r;
	bool ok = false;
	size_t n = strlen(login);

	if (n >= sizeof(lbuf))
		l = xmalloc(n + 1);
	for (size_t i = 0; i <= n; i++)
		l[i] = (char)tolower((unsigned char)login[i]);
	r = strmap_get(m->logins, l);
	if (r != NULL) {
		ok = allows_one(m, r, l, addr);
		if (!ok && m->plus[0] != '\0') {
			char *plain = address_strip_plus(addr, m->plus);
			if (strcmp(plain, addr) != 0)
				ok = allows_one(m, r, l, plain);
			free(plain);
		}
	}
	if (l != lbuf)
		free(l);
	return ok;
}

bool sender_map_has_login(const struct sender_map *m, const char *login)
{
	char *l = lower_dup(login);
	bool has = strmap_get(m->logins, l) != NULL;

	free(l);
	return has;
}

size_t sender_map_logins(const struct sender_map *m)
{
	return strmap_count(m->logins);
}

size_t sender_map_entries(const struct sender_map *m)
{
	return m->entries;
}

/* table_line - one line of a table file; 0 or 1 error reported */
static size_t table_line(struct sender_map *m, char *line, const char *path, int lineno,
			 struct config_errors *errs)
{
	char *hash = strchr(line, '#'), *login, *rest, *tok, *save = NULL;
	const char *err;
	size_t n = 0;

	if (hash != NULL)
		*hash = '\0';
	login = strtok_r(line, " \t\r\n", &save);
	if (login == NULL)
		return 0;
	rest = strtok_r(NULL, "", &save);
	if (rest == NULL || strspn(rest, " \t\r\n,") == strlen(rest)) {
		config_errors_add(errs, path, lineno, "login %s has no addresses", login);
		return 1;
	}
	for (tok = strtok_r(rest, " \t\r\n,", &save); tok; tok = strtok_r(NULL, " \t\r\n,", &save)) {
		if (sender_map_add(m, login, tok, &err) < 0) {
			config_errors_add(errs, path, lineno, "%s: %s", tok, err);
			n++;
		}
	}
	return n;
}

size_t sender_map_load_stream(struct sender_map *m, FILE *f, const char *name,
			      struct config_errors *errs)
{
	char *line = NULL;
	size_t cap = 0, nerr = 0;
	int lineno = 0;

	while (getline(&line, &cap, f) > 0)
		nerr += table_line(m, line, name, ++lineno, errs);
	free(line);
	return nerr;
}

size_t sender_map_load_table(struct sender_map *m, const char *path, struct config_errors *errs)
{
	FILE *f = fopen(path, "r");
	size_t nerr;

	if (f == NULL) {
		config_errors_add(errs, path, 0, "cannot read: %s", strerror(errno));
		return 1;
	}
	nerr = sender_map_load_stream(m, f, path, errs);
	fclose(f);
	return nerr;
}

int sender_map_load_sqlite(struct sender_map *m, const char *path, char **err_r)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *err;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		*err_r = xasprintf("cannot open: %s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_prepare_v2(db, "SELECT login, address FROM senders", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		*err_r = xasprintf("%s (expected a table senders(login, address))",
				   sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *login = (const char *)sqlite3_column_text(st, 0);
		const char *addr = (const char *)sqlite3_column_text(st, 1);
		if (login == NULL || addr == NULL ||
		    sender_map_add(m, login, addr, &err) < 0) {
			*err_r = xasprintf("row login=%s address=%s: %s", login ? login : "NULL",
					   addr ? addr : "NULL",
					   login && addr ? err : "NULL value");
			sqlite3_finalize(st);
			sqlite3_close(db);
			return -1;
		}
	}
	if (rc != SQLITE_DONE) {
		*err_r = xasprintf("%s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}
