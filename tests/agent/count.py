#!/usr/bin/python3
"""count.py - where did the injected messages end up?

  count.py TOKENS_FILE SPOOL [SPOOL...]

Reads every stored message (*.eml) of the spools, skipping bounces (null
sender), takes the token from "Subject: weir inject TOKEN" and prints:

  total=N missing=N duplicated=N extra_copies=N SPOOL=N SPOOL=N ...

then one line per missing token ("missing TOKEN") and per token stored
more than once ("dup TOKEN xK in SPOOL,SPOOL"), at most 20 of each.
Exit 0 always (the test decides what is acceptable).
"""

import glob
import os
import re
import sys

SUBJ = re.compile(rb"^Subject: weir inject (\S+)\r?$", re.M)


def main():
    tokens = [t for t in open(sys.argv[1]).read().split() if t]
    want = set(tokens)
    seen = {}
    per_spool = {}
    for spool in sys.argv[2:]:
        n = 0
        for f in sorted(glob.glob(os.path.join(spool, "*.eml"))):
            raw = open(f, "rb").read()
            if raw.startswith(b"X-Sink-Mail-From: <>"):
                continue
            head = raw.split(b"\r\n\r\n", 1)[0]
            m = SUBJ.search(head)
            if not m:
                continue
            tok = m.group(1).decode()
            if tok not in want:
                continue
            n += 1
            seen.setdefault(tok, []).append(os.path.basename(spool.rstrip("/")))
        per_spool[os.path.basename(spool.rstrip("/"))] = n
    missing = [t for t in tokens if t not in seen]
    dups = {t: v for t, v in seen.items() if len(v) > 1}
    extra = sum(len(v) - 1 for v in dups.values())
    print("total=%d missing=%d duplicated=%d extra_copies=%d %s" % (
        len(tokens), len(missing), len(dups), extra,
        " ".join("%s=%d" % kv for kv in per_spool.items())))
    for t in missing[:20]:
        print("missing %s" % t)
    for t, v in list(dups.items())[:20]:
        print("dup %s x%d in %s" % (t, len(v), ",".join(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
