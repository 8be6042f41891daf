/* dkim_keys - DKIM private keys: loading with the permission checks an
 * administrator expects, and the dkim.sign part of weir.conf */
#ifndef WEIR_POLICY_DKIM_KEYS_H
#define WEIR_POLICY_DKIM_KEYS_H

#include <stdbool.h>
#include <stddef.h>

struct weir_config;
struct config_errors;

enum dkim_alg { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };

/* One signing key of a domain, loaded when the configuration loads (and
 * again on every reload). pem is the key file's text. */
struct dkim_key {
	char *selector;
	enum dkim_alg alg;
	char *file;
	char *pem;
};

struct dkim_domain {
	char *domain; /* normalized */
	bool subdomains;
	struct dkim_key *keys;
	size_t nkeys;
};

/* dkim_key_load - read a private key file for alg. Refused (-1 with
 * *err_r, new memory, caller frees): a file group or others may access
 * (with the chmod that fixes it), an unreadable file, anything that is
 * not a PEM private key of the algorithm (RSA of 1024 bits or more, or
 * Ed25519). On success *pem_r holds the file's text (caller frees). */
int dkim_key_load(const char *path, enum dkim_alg alg, char **pem_r, char **err_r);

/* dkim_domain_find - the signing domain for a header From domain:
 * equal, or a parent with subdomains = true (the longest wins); NULL */
const struct dkim_domain *dkim_domain_find(const struct dkim_domain *v, size_t n,
					   const char *from_domain);

/* For the settings table (settings.c). */
void dkim_sign_parse(struct weir_config *cfg, void *node, const char *file,
		     struct config_errors *errs);
char *dkim_sign_format(const struct weir_config *cfg);
void dkim_sign_free(struct weir_config *cfg);
const char *dkim_alg_name(enum dkim_alg alg);

#endif
