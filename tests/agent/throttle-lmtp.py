#!/usr/bin/python3
"""throttle-lmtp.py - one LMTP transaction with weir-agent, every reply
noted with its time, for the throttling tests (issue 8). Stdlib only.

  throttle-lmtp.py --port P [--host H] --from ADDR --rcpt ADDR [--rcpt ...]
                   [--no-data] [--timeout SECS]

LHLO, MAIL FROM, each RCPT TO in turn (waiting for each reply: a
throttled RCPT may be held up to throttle.wait), then, when some RCPT was
accepted and not --no-data, DATA and a short message (X-Weir-Token: the
first recipient's local part), one LMTP reply per accepted recipient;
QUIT. Prints one JSON object:

  {"t0": T, "mail": [CODE, TEXT],
   "rcpts": [[ADDR, CODE, TEXT, SECONDS_AFTER_T0], ...],
   "data": [[CODE, TEXT, SECONDS_AFTER_T0], ...], "error": "..."}

T0 is time.monotonic() at the start. Exit 0 unless the conversation broke.
"""

import argparse
import json
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--from", dest="frm", required=True)
    p.add_argument("--rcpt", action="append", required=True)
    p.add_argument("--no-data", action="store_true")
    p.add_argument("--timeout", type=float, default=30)
    a = p.parse_args()
    t0 = time.monotonic()
    out = {"t0": t0, "mail": None, "rcpts": [], "data": []}
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise EOFError("connection closed")
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]) if line[:3].isdigit() else 0, line

    def cmd(line):
        s.sendall((line + "\r\n").encode())
        return reply()

    rc = 0
    try:
        reply()
        cmd("LHLO client.weir.test")
        out["mail"] = list(cmd("MAIL FROM:<%s>" % a.frm))
        ok = 0
        for r in a.rcpt:
            code, text = cmd("RCPT TO:<%s>" % r)
            out["rcpts"].append([r, code, text, round(time.monotonic() - t0, 3)])
            ok += code == 250
        if ok and not a.no_data:
            code, text = cmd("DATA")
            if code == 354:
                tok = a.rcpt[0].split("@")[0]
                s.sendall(("From: <%s>\r\nSubject: weir throttle %s\r\nX-Weir-Token: %s\r\n\r\n"
                           "lmtp %s\r\n.\r\n" % (a.frm, tok, tok, tok)).encode())
                for _ in range(ok):
                    code, text = reply()
                    out["data"].append([code, text, round(time.monotonic() - t0, 3)])
            else:
                out["data"].append([code, text, round(time.monotonic() - t0, 3)])
        else:
            cmd("RSET")
        cmd("QUIT")
    except (OSError, EOFError) as e:
        out["error"] = str(e)
        rc = 1
    print(json.dumps(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
