#!/usr/bin/python3
"""stack-headers.py - check the SPF headers of a message stored by the
test stack's sink (tests/integration/25N-spf-*.sh).

  stack-headers.py received-spf FILE            print each Received-SPF
        header parsed (one line each: result=R comment=(...) key=value ...),
        exit 1 if one does not parse as RFC 7208 9.1 says
  stack-headers.py received-spf-is FILE IDENTITY KEY=VALUE...
        exactly one Received-SPF header has identity=IDENTITY; it parses
        (result, optional comment, key=value pairs whose values are
        dot-atoms or quoted-strings) and has every KEY=VALUE (the key
        "result" is the result word; values compared after unquoting;
        result and identity ignoring case)
  stack-headers.py received-spf-count FILE      print the number of
        Received-SPF headers
  stack-headers.py ar-is FILE AUTHSERV REGEX... exactly one
        Authentication-Results header has the authserv-id AUTHSERV (any
        letter case, optional version); its value, unfolded (runs of white
        space made one space), matches every Python REGEX (re.search)
  stack-headers.py ar-count FILE AUTHSERV       print how many
        Authentication-Results headers have the authserv-id AUTHSERV

The sink's own X-Sink-* lines at the top of FILE are skipped.
Exit status: 0 ok, 1 check failed (reason printed), 2 usage.
"""
import email.parser
import email.policy
import re
import sys

ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
DOT_ATOM = re.compile(r"%s+(?:\.%s+)*" % (ATEXT, ATEXT))


def headers(path, name):
    raw = open(path, "rb").read()
    lines = raw.split(b"\n")
    while lines and lines[0].startswith(b"X-Sink-"):
        lines.pop(0)
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        b"\n".join(lines))
    out = []
    for v in msg.get_all(name) or []:
        v = str(v).replace("\r", "")
        out.append(re.sub(r"\n[ \t]", " ", v).strip())
    return out


class ParseError(Exception):
    pass


def skip_cfws(s, i):
    """skip white space and comments; return (index, [comments])"""
    comments = []
    while i < len(s):
        if s[i] in " \t":
            i += 1
        elif s[i] == "(":
            depth, j, start = 0, i, i
            while j < len(s):
                c = s[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(s):
                raise ParseError("unterminated comment at %d" % start)
            comments.append(s[start:j + 1])
            i = j + 1
        else:
            break
    return i, comments


def parse_received_spf(v):
    """(result, comment, {key: value}) of a Received-SPF value"""
    i, _ = skip_cfws(v, 0)
    m = re.compile(r"[A-Za-z]+").match(v, i)
    if not m:
        raise ParseError("no result word")
    result = m.group(0)
    i = m.end()
    if i < len(v) and v[i] not in " \t(":
        raise ParseError("junk after the result word: %r" % v[i:])
    i, comments = skip_cfws(v, i)
    comment = comments[0] if comments else ""
    kv = {}
    while i < len(v):
        m = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)[ \t]*=[ \t]*").match(v, i)
        if not m:
            raise ParseError("expected key=value at %r" % v[i:])
        key = m.group(1).lower()
        i = m.end()
        if i < len(v) and v[i] == '"':
            j, val = i + 1, []
            while j < len(v) and v[j] != '"':
                if v[j] == "\\" and j + 1 < len(v):
                    j += 1
                val.append(v[j])
                j += 1
            if j >= len(v):
                raise ParseError("unterminated quoted value of %s" % key)
            value = "".join(val)
            i = j + 1
        else:
            m = DOT_ATOM.match(v, i)
            if not m:
                raise ParseError("value of %s is neither a dot-atom nor a quoted-string: %r"
                                 % (key, v[i:]))
            value = m.group(0)
            i = m.end()
        if key in kv:
            raise ParseError("key %s twice" % key)
        kv[key] = value
        i, _ = skip_cfws(v, i)
        if i < len(v):
            if v[i] != ";":
                raise ParseError("expected ';' after %s=%s, got %r" % (key, value, v[i:]))
            i, _ = skip_cfws(v, i + 1)
    return result, comment, kv


def fmt(result, comment, kv):
    return "result=%s comment=%s %s" % (result, comment or "-",
                                         " ".join("%s=%s" % p for p in kv.items()))


def ar_id(v):
    """the authserv-id of an A-R value (lower case) or None"""
    m = re.match(r'\s*(?:\([^)]*\)\s*)*("(?:[^"\\]|\\.)*"|[^\s;()]+)', v)
    if not m:
        return None
    a = m.group(1)
    if a.startswith('"'):
        a = a[1:-1]
    return a.rstrip(".").lower()


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    cmd, path = argv[1], argv[2]
    if cmd == "received-spf":
        bad = 0
        for v in headers(path, "Received-SPF"):
            try:
                print(fmt(*parse_received_spf(v)))
            except ParseError as e:
                print("UNPARSABLE (%s): %s" % (e, v))
                bad = 1
        return bad
    if cmd == "received-spf-count":
        print(len(headers(path, "Received-SPF")))
        return 0
    if cmd == "received-spf-is":
        if len(argv) < 4:
            return 2
        ident, want = argv[3].lower(), argv[4:]
        found = []
        for v in headers(path, "Received-SPF"):
            try:
                r, c, kv = parse_received_spf(v)
            except ParseError as e:
                print("    Received-SPF does not parse (%s): %s" % (e, v))
                return 1
            if kv.get("identity", "").lower() == ident:
                found.append((v, r, c, kv))
        if len(found) != 1:
            print("    want exactly 1 Received-SPF with identity=%s in %s, found %d; all of them:"
                  % (ident, path, len(found)))
            for v in headers(path, "Received-SPF"):
                print("      Received-SPF: %s" % v)
            return 1
        v, r, c, kv = found[0]
        bad = 0
        for w in want:
            k, _, val = w.partition("=")
            k = k.lower()
            got = r if k == "result" else kv.get(k)
            ok = got is not None and (got.lower() == val.lower() if k in ("result", "identity")
                                      else got == val)
            if not ok:
                print("    Received-SPF (identity=%s): want %s=%s, got %s" % (ident, k, val, got))
                bad = 1
        if bad:
            print("      Received-SPF: %s" % v)
        return bad
    if cmd in ("ar-is", "ar-count"):
        if len(argv) < 4:
            return 2
        want_id = argv[3].rstrip(".").lower()
        ours = [v for v in headers(path, "Authentication-Results") if ar_id(v) == want_id]
        if cmd == "ar-count":
            print(len(ours))
            return 0
        if len(ours) != 1:
            print("    want exactly 1 Authentication-Results: %s; ... in %s, found %d; all A-R:"
                  % (argv[3], path, len(ours)))
            for v in headers(path, "Authentication-Results"):
                print("      Authentication-Results: %s" % v)
            return 1
        v = re.sub(r"\s+", " ", ours[0])
        bad = 0
        for rx in argv[4:]:
            if not re.search(rx, v):
                print("    Authentication-Results does not match /%s/: %s" % (rx, v))
                bad = 1
        return bad
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
