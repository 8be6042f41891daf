#!/usr/bin/python3
"""sigs.py FILE - list the DKIM-Signature headers of a stored message.

One line per signature, top to bottom (the sink's X-Sink-* lines skipped):

    sig N d=D s=S a=A c=HEADER/BODY l=L|- t=yes|- x=yes|- xt=X-T|- bh=yes|- b=yes|- hfrom=K h=h1:h2:...

c= is normalized (absent = simple/simple, "relaxed" = relaxed/simple);
h= is lower-cased without spaces; hfrom is how many times From is in h=.
Exit 1 when there is no DKIM-Signature.
"""
import email.parser
import email.policy
import re
import sys


def main():
    raw = open(sys.argv[1], "rb").read()
    lines = raw.split(b"\n")
    while lines and lines[0].startswith(b"X-Sink-"):
        lines.pop(0)
    raw = b"\n".join(lines)
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    vals = msg.get_all("DKIM-Signature") or []
    if not vals:
        print("no DKIM-Signature header")
        return 1
    for n, v in enumerate(vals):
        v = re.sub(r"\s+", "", str(v))
        tags = {}
        for part in v.split(";"):
            if "=" in part:
                k, x = part.split("=", 1)
                tags[k] = x
        c = tags.get("c", "simple/simple")
        if "/" not in c:
            c += "/simple"
        h = tags.get("h", "").lower()
        xt = "-"
        if tags.get("x", "").isdigit() and tags.get("t", "").isdigit():
            xt = str(int(tags["x"]) - int(tags["t"]))
        print("sig %d d=%s s=%s a=%s c=%s l=%s t=%s x=%s xt=%s bh=%s b=%s hfrom=%d h=%s" % (
            n, tags.get("d", "-"), tags.get("s", "-"), tags.get("a", "-"), c,
            tags.get("l", "-"), "yes" if tags.get("t") else "-",
            "yes" if tags.get("x") else "-", xt, "yes" if tags.get("bh") else "-",
            "yes" if tags.get("b") else "-", h.split(":").count("from"), h))
    return 0


if __name__ == "__main__":
    sys.exit(main())
