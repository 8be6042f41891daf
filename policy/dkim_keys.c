/* dkim_keys - DKIM private keys and the dkim.sign table of weir.conf
 *
 * Keys are read when the configuration loads, so a broken or exposed
 * key is an error of `weirctl check`, of start-up and of reload (the
 * running configuration then stays), never of a message in flight. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/config.h"
#include "policy/dkim_keys.h"

#define KEY_FILE_MAX 65536

const char *dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

/* read_key_file - the text of path after the permission checks */
static char *read_key_file(const char *path, char **err_r)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		*err_r = xasprintf("cannot read key: %s%s", strerror(errno),
				   errno == EACCES ? " (the key must be readable by the user weir "
						     "runs as: chown it to that user, mode 600)"
						   : "");
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err_r = xasprintf("not a regular file");
		close(fd);
		return NULL;
	}
	if (st.st_mode & 077) {
		*err_r = xasprintf("key file is readable by group or others (mode %04o); run: "
				   "chmod 600 %s",
				   (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	if (st.st_size > KEY_FILE_MAX) {
		*err_r = xasprintf("key file is larger than %d bytes", KEY_FILE_MAX);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		*err_r = xasprintf("cannot read key: short read");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

int dkim_key_load(const char *path, enum dkim_alg alg, char **pem_r, char **err_r)
{
	char *text = read_key_file(path, err_r);
	EVP_PKEY *pk = NULL;
	BIO *bio;
	int ok = 0;

	if (text == NULL)
		return -1;
	bio = BIO_new_mem_buf(text, -1);
	if (bio != NULL)
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (pk == NULL) {
		*err_r = xasprintf("not a PEM private key for %s (make one with weirctl keygen)",
				   dkim_alg_name(alg));
	} else if (alg == DKIM_ALG_RSA_SHA256 && EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
		*err_r = xasprintf("not a PEM private key for rsa-sha256: it is not an RSA key");
	} else if (alg == DKIM_ALG_RSA_SHA256 && EVP_PKEY_get_bits(pk) < 1024) {
		*err_r = xasprintf("RSA key of %d bits: DKIM needs 1024 or more (2048 advised)",
				   EVP_PKEY_get_bits(pk));
	} else if (alg == DKIM_ALG_ED25519_SHA256 && EVP_PKEY_base_id(pk) != EVP_PKEY_ED25519) {
		*err_r = xasprintf("not a PEM private key for ed25519-sha256: it is not an Ed25519 "
				   "key");
	} else {
		ok = 1;
	}
	if (ok) {
		/* Hand libopendkim the key as OpenSSL writes it: text around
		 * the PEM block (comments, "Bag Attributes") would make it read
		 * the key as base64 DER and fail at the first signature. */
		BIO *out = BIO_new(BIO_s_mem());
		char *data;
		long n;

		ok = out != NULL && PEM_write_bio_PrivateKey(out, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
		     (n = BIO_get_mem_data(out, &data)) > 0;
		if (ok) {
			*pem_r = xstrndup(data, (size_t)n);
			OPENSSL_cleanse(data, (size_t)n);
		} else {
			*err_r = xasprintf("cannot re-encode the key");
		}
		BIO_free(out);
	}
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return ok ? 0 : -1;
}

const struct dkim_domain *dkim_domain_find(const struct dkim_domain *v, size_t n,
					   const char *from_domain)
{
	const struct dkim_domain *best = NULL;
	size_t fl = from_domain ? strlen(from_domain) : 0;

	for (size_t i = 0; i < n && from_domain; i++) {
		size_t dl = strlen(v[i].domain);
		if (strcasecmp(v[i].domain, from_domain) == 0)
			return &v[i];
		if (v[i].subdomains && fl > dl && from_domain[fl - dl - 1] == '.' &&
		    strcasecmp(from_domain + fl - dl, v[i].domain) == 0 &&
		    (best == NULL || dl > strlen(best->domain)))
			best = &v[i];
	}
	return best;
}

static const char *str_member(config_setting_t *g, const char *name)
{
	const char *v = NULL;

	return config_setting_lookup_string(g, name, &v) == CONFIG_TRUE ? v : NULL;
}

/* parse_key - one { selector; algorithm; key; } of a domain */
static void parse_key(struct dkim_domain *d, config_setting_t *g, const char *file,
		      struct config_errors *errs)
{
	int line = (int)config_setting_source_line(g);
	const char *sel = str_member(g, "selector"), *alg = str_member(g, "algorithm");
	const char *path = str_member(g, "key");
	struct dkim_key k = {0};
	char *err = NULL;

	static const char *const names[] = {"selector", "algorithm", "key", NULL};

	config_group_keys_ok(g, names, "dkim.sign", file, errs);
	if (sel == NULL || path == NULL || sel[0] == '\0' || strpbrk(sel, " ;=\"") != NULL) {
		config_errors_add(errs, file, line, "dkim.sign: each key needs selector and key");
		return;
	}
	if (alg == NULL || strcmp(alg, "rsa-sha256") == 0) {
		k.alg = DKIM_ALG_RSA_SHA256;
	} else if (strcmp(alg, "ed25519-sha256") == 0) {
		k.alg = DKIM_ALG_ED25519_SHA256;
	} else {
		config_errors_add(errs, file, line,
				  "dkim.sign: algorithm must be rsa-sha256 or ed25519-sha256");
		return;
	}
	if (dkim_key_load(path, k.alg, &k.pem, &err) < 0) {
		config_errors_add(errs, file, line, "%s: %s", path, err);
		free(err);
		return;
	}
	k.selector = xstrdup(sel);
	k.file = xstrdup(path);
	d->keys = xrealloc(d->keys, (d->nkeys + 1) * sizeof(*d->keys));
	d->keys[d->nkeys++] = k;
}

/* parse_domain - one { domain; subdomains; keys = (...); } */
static void parse_domain(struct weir_config *cfg, config_setting_t *g, const char *file,
			 struct config_errors *errs)
{
	int line = (int)config_setting_source_line(g);
	const char *dom = str_member(g, "domain"), *err;
	config_setting_t *keys = config_setting_get_member(g, "keys");
	struct dkim_domain d = {0};
	int sub = 0;
	char *norm;

	static const char *const names[] = {"domain", "subdomains", "keys", NULL};

	config_group_keys_ok(g, names, "dkim.sign", file, errs);
	if (dom == NULL || keys == NULL || !config_setting_is_aggregate(keys) ||
	    config_setting_length(keys) == 0) {
		config_errors_add(errs, file, line, "dkim.sign: each entry needs domain and keys");
		return;
	}
	if ((norm = domain_normalize(dom, &err)) == NULL) {
		config_errors_add(errs, file, line, "dkim.sign: domain %s: %s", dom, err);
		return;
	}
	config_setting_lookup_bool(g, "subdomains", &sub);
	d.domain = norm;
	d.subdomains = sub != 0;
	for (int i = 0; i < config_setting_length(keys); i++) {
		config_setting_t *k = config_setting_get_elem(keys, (unsigned)i);
		if (config_setting_is_group(k))
			parse_key(&d, k, file, errs);
		else
			config_errors_add(errs, file, (int)config_setting_source_line(k),
					  "dkim.sign: keys of %s: expected { selector; algorithm; key; }",
					  dom);
	}
	cfg->dkim.domains = xrealloc(cfg->dkim.domains,
				     (cfg->dkim.ndomains + 1) * sizeof(*cfg->dkim.domains));
	cfg->dkim.domains[cfg->dkim.ndomains++] = d;
}

void dkim_sign_parse(struct weir_config *cfg, void *node, const char *file,
		     struct config_errors *errs)
{
	config_setting_t *list = node;

	if (!config_setting_is_list(list)) {
		config_errors_add(errs, file, (int)config_setting_source_line(list),
				  "dkim.sign: expected a list of { domain; keys = (...); }");
		return;
	}
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		if (config_setting_is_group(g))
			parse_domain(cfg, g, file, errs);
		else
			config_errors_add(errs, file, (int)config_setting_source_line(g),
					  "dkim.sign: entry %d is not a group { }", i + 1);
	}
}

char *dkim_sign_format(const struct weir_config *cfg)
{
	size_t nkeys = 0;

	for (size_t i = 0; i < cfg->dkim.ndomains; i++)
		nkeys += cfg->dkim.domains[i].nkeys;
	return xasprintf("(%zu domains, %zu keys)", cfg->dkim.ndomains, nkeys);
}

void dkim_sign_free(struct weir_config *cfg)
{
	for (size_t i = 0; i < cfg->dkim.ndomains; i++) {
		struct dkim_domain *d = &cfg->dkim.domains[i];
		for (size_t j = 0; j < d->nkeys; j++) {
			OPENSSL_cleanse(d->keys[j].pem, strlen(d->keys[j].pem));
			free(d->keys[j].pem);
			free(d->keys[j].selector);
			free(d->keys[j].file);
		}
		free(d->keys);
		free(d->domain);
	}
	free(cfg->dkim.domains);
}
