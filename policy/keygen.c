/* keygen - `weirctl keygen`: make a DKIM key pair, write the private key
 * with safe permissions and print the DNS TXT record
 *
 *	weirctl keygen --domain D --selector S [--algorithm rsa|ed25519]
 *		[--bits N] [--output FILE]
 *
 * The record's p= value is split into strings of at most 255 bytes (a
 * TXT character-string's limit, RFC 1035 3.3.14). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "policy/address.h"
#include "policy/keygen.h"

/* public_key_b64 - the p= value: base64 of the DER SubjectPublicKeyInfo
 * for RSA, of the raw 32-byte key for Ed25519 (RFC 8463). Caller frees. */
static char *public_key_b64(EVP_PKEY *pk, bool ed)
{
	unsigned char *der = NULL, raw[64];
	size_t rawlen = sizeof(raw);
	int n;
	char *b64;

	if (ed) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1)
			return NULL;
		der = raw;
		n = (int)rawlen;
	} else if ((n = i2d_PUBKEY(pk, &der)) <= 0) {
		return NULL;
	}
	b64 = xmalloc((size_t)(4 * ((n + 2) / 3) + 1));
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	if (!ed)
		OPENSSL_free(der);
	return b64;
}

/* print_record - the TXT record with strings of at most 255 bytes */
static void print_record(const char *selector, const char *domain, bool ed, const char *p)
{
	char *value = xasprintf("v=DKIM1; k=%s; p=%s", ed ? "ed25519" : "rsa", p);
	size_t len = strlen(value);

	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (size_t off = 0; off < len; off += 255)
		printf(" \"%.*s\"", (int)(len - off > 255 ? 255 : len - off), value + off);
	printf(" )\n");
	free(value);
}

/* write_private - PEM (PKCS#8) to a new file, mode 0600 */
static int write_private(EVP_PKEY *pk, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f;
	int ok;

	if (fd < 0) {
		fprintf(stderr, "weirctl keygen: %s: %s%s\n", path, strerror(errno),
			errno == EEXIST ? " (refusing to overwrite a key)" : "");
		return -1;
	}
	f = fdopen(fd, "w");
	ok = f != NULL && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;
	if (f == NULL || fclose(f) != 0 || !ok) {
		fprintf(stderr, "weirctl keygen: cannot write %s\n", path);
		unlink(path);
		return -1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: weirctl keygen --domain D --selector S [--algorithm rsa|ed25519] "
			"[--bits N] [--output FILE]\n");
	return 2;
}

int keygen_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"domain", required_argument, NULL, 'd'},   {"selector", required_argument, NULL, 's'},
		{"algorithm", required_argument, NULL, 'a'}, {"bits", required_argument, NULL, 'b'},
		{"output", required_argument, NULL, 'o'},   {NULL, 0, NULL, 0},
	};
	const char *domain = NULL, *selector = NULL, *alg = "rsa", *output = NULL, *err;
	long bits = 2048;
	char *dom, *path, *p;
	EVP_PKEY *pk;
	bool ed;
	int c, rc = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': domain = optarg; break;
		case 's': selector = optarg; break;
		case 'a': alg = optarg; break;
		case 'b': bits = strtol(optarg, NULL, 10); break;
		case 'o': output = optarg; break;
		default: return usage();
		}
	}
	if (domain == NULL || selector == NULL || optind != argc)
		return usage();
	if ((dom = domain_normalize(domain, &err)) == NULL) {
		fprintf(stderr, "weirctl keygen: --domain %s: %s\n", domain, err);
		return 2;
	}
	if (selector[0] == '\0' || strspn(selector, "abcdefghijklmnopqrstuvwxyz"
						"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") !=
					   strlen(selector)) {
		fprintf(stderr, "weirctl keygen: --selector: letters, digits, '-', '.', '_' only\n");
		free(dom);
		return 2;
	}
	ed = strcmp(alg, "ed25519") == 0;
	if (!ed && strcmp(alg, "rsa") != 0) {
		fprintf(stderr, "weirctl keygen: --algorithm must be rsa or ed25519\n");
		free(dom);
		return 2;
	}
	if (!ed && (bits < 1024 || bits > 8192)) {
		fprintf(stderr, "weirctl keygen: --bits must be 1024 to 8192 (2048 advised)\n");
		free(dom);
		return 2;
	}
	pk = ed ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
		: EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	path = output ? xstrdup(output) : xasprintf("%s.%s.pem", dom, selector);
	if (pk == NULL) {
		fprintf(stderr, "weirctl keygen: key generation failed\n");
	} else if (write_private(pk, path) == 0 && (p = public_key_b64(pk, ed)) != NULL) {
		fprintf(stderr, "weirctl keygen: private key written to %s (mode 600; chown it to "
				"the user weir runs as)\n",
			path);
		print_record(selector, dom, ed, p);
		free(p);
		rc = 0;
	}
	EVP_PKEY_free(pk);
	free(path);
	free(dom);
	return rc;
}
