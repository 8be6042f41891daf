#!/usr/bin/python3
"""verify.py FILE [--dns-port P] [--dns-host H] - verify every DKIM-Signature
of a stored message with dkimpy, public keys from the test DNS server.

Lines that the test sink puts first (X-Sink-*: envelope lines) are removed
before verifying. Prints one line per signature, top to bottom:

    sig N d=DOMAIN s=SELECTOR a=ALGORITHM result=pass|fail [why]

Exit status: 0 when there is at least one signature and every one passes;
1 when one fails or there is none; 2 on usage or I/O errors.
Keys are fetched over UDP (TCP when truncated) from H:P (default
127.0.0.1:53), never from a file or the system resolver.
Needs Debian's python3-dkim and python3-dnspython (run with /usr/bin/python3).
"""
import argparse
import logging
import re
import sys

try:
    import dkim
except ImportError:
    sys.stderr.write("verify.py: python3-dkim (dkimpy) is not installed for %s\n" % sys.executable)
    sys.exit(2)
try:
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
except ImportError:
    sys.stderr.write("verify.py: python3-dnspython is not installed for %s\n" % sys.executable)
    sys.exit(2)


def strip_sink_lines(raw):
    """Remove the sink's leading X-Sink-* envelope lines."""
    lines = raw.split(b"\n")
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-Sink-"):
        i += 1
    return b"\n".join(lines[i:])


def make_dnsfunc(host, port, log):
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        q = dns.message.make_query(name, dns.rdatatype.TXT)
        try:
            r = dns.query.udp(q, host, port=port, timeout=timeout)
            if r.flags & dns.flags.TC:
                r = dns.query.tcp(q, host, port=port, timeout=timeout)
        except Exception as e:  # timeout, refused: dkimpy sees no key
            log.append("dns %s: %s" % (name, e))
            return None
        if r.rcode() != dns.rcode.NOERROR:
            log.append("dns %s: %s" % (name, dns.rcode.to_text(r.rcode())))
            return None
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rd in rrset:
                    return b"".join(rd.strings)
        log.append("dns %s: no TXT record" % name)
        return None
    return dnsfunc


class ListHandler(logging.Handler):
    """Keeps what dkimpy logs (it logs why a signature fails)."""
    def __init__(self, sink):
        logging.Handler.__init__(self, logging.DEBUG)
        self.sink = sink

    def emit(self, record):
        self.sink.append(record.getMessage())


def sig_tags(value):
    """Tags of a DKIM-Signature header value (whitespace removed)."""
    tags = {}
    for part in value.split(b";"):
        if b"=" in part:
            k, v = part.split(b"=", 1)
            tags[k.strip().decode("ascii", "replace")] = re.sub(rb"\s+", b"", v).decode("ascii", "replace")
    return tags


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--dns-port", type=int, default=53)
    ap.add_argument("--dns-host", default="127.0.0.1")
    args = ap.parse_args()
    try:
        raw = open(args.file, "rb").read()
    except OSError as e:
        sys.stderr.write("verify.py: %s\n" % e)
        return 2
    msg = strip_sink_lines(raw)
    log = []
    logger = logging.getLogger("verify.py")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(ListHandler(log))
    dnsfunc = make_dnsfunc(args.dns_host, args.dns_port, log)
    d = dkim.DKIM(msg)
    sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
    if not sigs:
        print("no DKIM-Signature header")
        return 1
    ok = True
    for i, v in enumerate(sigs):
        t = sig_tags(v)
        del log[:]
        why = ""
        try:
            # a fresh object per signature: verify() keeps state
            res = dkim.DKIM(msg, logger=logger).verify(idx=i, dnsfunc=dnsfunc)
        except Exception as e:
            res = False
            why = "exception %s: %s" % (type(e).__name__, e)
        if not res and not why:
            why = "; ".join(l for l in log if l)
        print("sig %d d=%s s=%s a=%s result=%s%s" % (
            i, t.get("d", "?"), t.get("s", "?"), t.get("a", "?"),
            "pass" if res else "fail", (" (" + why + ")") if why else ""))
        ok = ok and bool(res)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
