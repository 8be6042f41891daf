/* test-dkim-keys - key files: permissions refused with the fix, wrong
 * types and sizes refused, good keys loaded; signing-domain lookup */
#include "autoconf.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/dkim_keys.h"
#include "tests/testlib.h"

static char dir[] = "/tmp/weir-test-dkim-XXXXXX";

/* write_key - a fresh key of type ("RSA" with bits, or "ED25519") */
static char *write_key(const char *name, const char *type, size_t bits, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	EVP_PKEY *pk = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits)
						: EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f = fopen(path, "w");

	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(pk);
	chmod(path, mode);
	return path;
}

static bool loads(const char *path, enum dkim_alg alg, const char *want_err)
{
	char *pem = NULL, *err = NULL;
	int r = dkim_key_load(path, alg, &pem, &err);
	bool ok;

	if (want_err == NULL) {
		ok = r == 0 && pem != NULL && strstr(pem, "PRIVATE KEY") != NULL;
		if (!ok)
			fprintf(stderr, "  %s: %s\n", path, err ? err : "?");
	} else {
		ok = r < 0 && err != NULL && strstr(err, want_err) != NULL;
		if (!ok)
			fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", path, err ? err : "(none)",
				want_err);
	}
	free(pem);
	free(err);
	return ok;
}

int main(void)
{
	char *rsa, *ed, *loose, *group, *small, *junk;
	struct dkim_domain doms[2] = {{"example.com", true, NULL, 0}, {"mail.example.com", false, NULL, 0}};

	test_assert(mkdtemp(dir) != NULL);
	rsa = write_key("rsa.pem", "RSA", 2048, 0600);
	ed = write_key("ed.pem", "ED25519", 0, 0400);
	loose = write_key("loose.pem", "RSA", 2048, 0644);
	group = write_key("group.pem", "ED25519", 0, 0640);
	small = write_key("small.pem", "RSA", 512, 0600);
	junk = xasprintf("%s/junk.pem", dir);
	FILE *f = fopen(junk, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	chmod(junk, 0600);

	test_begin("good keys load");
	test_assert(loads(rsa, DKIM_ALG_RSA_SHA256, NULL));
	test_assert(loads(ed, DKIM_ALG_ED25519_SHA256, NULL));
	test_end();

	test_begin("loose permissions are refused with the fix");
	char *want = xasprintf("key file is readable by group or others (mode 0644); run: chmod 600 %s",
			       loose);
	test_assert(loads(loose, DKIM_ALG_RSA_SHA256, want));
	free(want);
	test_assert(loads(group, DKIM_ALG_ED25519_SHA256, "(mode 0640)"));
	test_end();

	test_begin("wrong type, too small, garbage, missing");
	test_assert(loads(rsa, DKIM_ALG_ED25519_SHA256, "not a PEM private key for ed25519-sha256: it is not an Ed25519 key"));
	test_assert(loads(ed, DKIM_ALG_RSA_SHA256, "not a PEM private key for rsa-sha256: it is not an RSA key"));
	test_assert(loads(small, DKIM_ALG_RSA_SHA256, "RSA key of 512 bits"));
	test_assert(loads(junk, DKIM_ALG_RSA_SHA256, "not a PEM private key for rsa-sha256"));
	test_assert(loads("/nonexistent/key.pem", DKIM_ALG_RSA_SHA256, "cannot read key"));
	test_assert(loads(dir, DKIM_ALG_RSA_SHA256, "not a regular file"));
	test_end();

	test_begin("signing domain lookup");
	test_assert(dkim_domain_find(doms, 2, "example.com") == &doms[0]);
	test_assert(dkim_domain_find(doms, 2, "EXAMPLE.com") == &doms[0]);
	test_assert(dkim_domain_find(doms, 2, "a.b.example.com") == &doms[0]);
	test_assert(dkim_domain_find(doms, 2, "mail.example.com") == &doms[1]);
	test_assert(dkim_domain_find(doms, 2, "x.mail.example.com") == &doms[0]);
	test_assert(dkim_domain_find(doms, 2, "badexample.com") == NULL);
	test_assert(dkim_domain_find(doms, 2, "example.org") == NULL);
	test_assert(dkim_domain_find(doms, 2, NULL) == NULL);
	test_end();

	unlink(rsa);
	unlink(ed);
	unlink(loose);
	unlink(group);
	unlink(small);
	unlink(junk);
	rmdir(dir);
	free(rsa);
	free(ed);
	free(loose);
	free(group);
	free(small);
	free(junk);
	return test_exit_status();
}
