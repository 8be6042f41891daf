#!/usr/bin/python3
"""sign.py --key PEM --domain D --selector S [options] IN [OUT]

Sign the message IN with dkimpy (the reference signer of the inbound
tests) and write it, DKIM-Signature first, to OUT (default stdout).
Line ends of IN are made CRLF first (what goes over SMTP).

  --algorithm rsa-sha256 (default) | ed25519-sha256
  --canon relaxed/relaxed (default) | simple/simple | relaxed/simple | simple/relaxed
  --headers from,to,subject,...  headers to sign (default dkimpy's choice)
  --length                       add l= (body length)

The key is a PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8,
as `openssl genpkey -algorithm ed25519` or `weirctl keygen` write it).
Needs Debian's python3-dkim and python3-nacl (run with /usr/bin/python3).
"""
import argparse
import base64
import re
import sys

try:
    import dkim
except ImportError:
    sys.stderr.write("sign.py: python3-dkim (dkimpy) is not installed for %s\n" % sys.executable)
    sys.exit(2)


def pem_der(pem):
    m = re.search(rb"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", pem, re.S)
    if not m:
        raise ValueError("not a PEM file")
    return m.group(1).decode(), base64.b64decode(b"".join(m.group(2).split()))


# PKCS#8 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows
ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--selector", required=True)
    ap.add_argument("--algorithm", default="rsa-sha256", choices=["rsa-sha256", "ed25519-sha256", "rsa-sha1"])
    ap.add_argument("--canon", default="relaxed/relaxed")
    ap.add_argument("--headers")
    ap.add_argument("--length", action="store_true")
    ap.add_argument("infile")
    ap.add_argument("outfile", nargs="?")
    a = ap.parse_args()

    msg = open(a.infile, "rb").read()
    msg = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    pem = open(a.key, "rb").read()
    if a.algorithm.startswith("ed25519"):
        kind, der = pem_der(pem)
        if kind != "PRIVATE KEY" or not der.startswith(ED25519_PKCS8) or len(der) != 48:
            sys.stderr.write("sign.py: %s is not a PKCS#8 Ed25519 private key\n" % a.key)
            return 2
        key = base64.b64encode(der[16:])
    else:
        key = pem
    hc, _, bc = a.canon.partition("/")
    canon = (hc.encode(), (bc or "simple").encode())
    include = None
    if a.headers:
        include = [h.strip().encode() for h in a.headers.split(",") if h.strip()]
    sig = dkim.sign(msg, a.selector.encode(), a.domain.encode(), key,
                    canonicalize=canon, include_headers=include,
                    signature_algorithm=a.algorithm.encode(), length=a.length)
    out = sig + msg
    if a.outfile:
        with open(a.outfile, "wb") as f:
            f.write(out)
    else:
        sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
