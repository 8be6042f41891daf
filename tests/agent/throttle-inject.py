#!/usr/bin/python3
"""throttle-inject.py - mail for the throttling tests (issue 8): into
Postfix over SMTP (noting each queue id), or straight into weir-agent over
LMTP as a load generator. Standard library only.

  throttle-inject.py smtp --port P --out FILE --to DOMAIN:COUNT [--to ...]
        [--sessions S] [--interval SECS] [--prefix PFX] [--from ADDR]
      COUNT messages to TOKEN@DOMAIN (TOKEN = PFX-LABEL-I, LABEL the first
      label of DOMAIN, I = 1..COUNT) for each --to, the
      domains interleaved (a, b, a, b, ...), over S parallel sessions
      (default 4); with --interval one session sends one message every
      SECS seconds. One JSON line per message to FILE (appended):
        {"token", "rcpt", "dom", "qid", "t", "code", "reply"}
      t: time.monotonic() when Postfix answered the final dot. Exit 0 when
      Postfix queued them all.

  throttle-inject.py lmtp --port P --out FILE --to DOMAIN [--to ...]
        --seconds S [--conns N] [--from ADDR] [--prefix PFX] [--pause SECS]
      For S seconds, N connections per --to domain (default 3) send one
      message after another (LHLO, MAIL, one RCPT, DATA). A RCPT answered
      4xx/5xx is followed by RSET and a pause (default 0.05 s), then the
      next message. One JSON line per attempt:
        {"token", "dom", "t", "rcpt_code", "rcpt_reply", "data_code",
         "t_rcpt"}  (t_rcpt: when the RCPT reply came)
      Prints "sent=N deferred=N errors=N" and exits 0.

Message: X-Weir-Token and Subject "weir throttle TOKEN" (what
tests/agent/throttle-sink.py records).
"""

import argparse
import json
import smtplib
import socket
import sys
import threading
import time

LOCK = threading.Lock()


def message(frm, to, token):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: weir throttle %s\r\nX-Weir-Token: %s\r\n"
            "Message-ID: <%s@client.weir.test>\r\nDate: %s\r\n\r\nthrottle test %s\r\n"
            % (frm, to, token, token, token,
               time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), token)).encode()


def record(out, obj):
    with LOCK:
        out.write(json.dumps(obj, sort_keys=True) + "\n")
        out.flush()


def do_smtp(a, out):
    plan = []
    lists = []
    for spec in a.to:
        dom, n = spec.rsplit(":", 1)
        lists.append([(dom, i) for i in range(1, int(n) + 1)])
    while any(lists):
        for li in lists:
            if li:
                plan.append(li.pop(0))
    todo = list(reversed(plan))
    fails = []

    def one(s, dom, i):
        tok = "%s-%s-%d" % (a.prefix, dom.split(".")[0], i)
        rcpt = "%s@%s" % (tok, dom)
        s.mail(a.frm)
        code, resp = s.rcpt(rcpt)
        if code != 250:
            s.rset()
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, resp)})
        code, resp = s.data(message(a.frm, rcpt, tok))
        t = time.monotonic()
        resp = resp.decode("utf-8", "replace")
        qid = resp.rsplit("queued as ", 1)[-1].split()[0] if "queued as " in resp else ""
        record(out, {"token": tok, "rcpt": rcpt, "dom": dom, "qid": qid, "t": t,
                     "code": code, "reply": resp})
        if code != 250:
            raise smtplib.SMTPDataError(code, resp)

    def worker(interval):
        s = None
        nxt = time.monotonic()
        while True:
            with LOCK:
                if not todo:
                    break
                dom, i = todo.pop()
            if interval:
                d = nxt - time.monotonic()
                if d > 0:
                    time.sleep(d)
                nxt += interval
            for attempt in range(3):
                try:
                    if s is None:
                        s = smtplib.SMTP(a.host, a.port, local_hostname="client.weir.test", timeout=60)
                    one(s, dom, i)
                    break
                except (smtplib.SMTPException, OSError) as e:
                    try:
                        if s is not None:
                            s.close()
                    except Exception:
                        pass
                    s = None
                    if attempt == 2:
                        with LOCK:
                            fails.append("%s:%d: %s" % (dom, i, e))
        if s is not None:
            try:
                s.quit()
            except Exception:
                pass

    n = 1 if a.interval else a.sessions
    th = [threading.Thread(target=worker, args=(a.interval,)) for _ in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for f in fails:
        print("refused: " + f, file=sys.stderr)
    return 1 if fails else 0


class Lmtp:
    """A plain LMTP client: one command, one reply (no pipelining)"""

    def __init__(self, host, port, timeout):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.f = self.s.makefile("rb")

    def reply(self):
        last = ""
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("connection closed")
            last = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(last) < 4 or last[3] != "-":
                break
        return int(last[:3]) if last[:3].isdigit() else 0, last

    def cmd(self, line):
        self.s.sendall((line + "\r\n").encode())
        return self.reply()

    def close(self):
        try:
            self.s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.s.close()


def do_lmtp(a, out):
    stats = {"sent": 0, "deferred": 0, "errors": 0}
    deadline = time.monotonic() + a.seconds
    seq = [0]

    def worker(dom, w):
        c = None
        while time.monotonic() < deadline:
            with LOCK:
                seq[0] += 1
                n = seq[0]
            tok = "%s-%s-%d" % (a.prefix, dom.split(".")[0], n)
            rcpt = "%s@%s" % (tok, dom)
            rec = {"token": tok, "dom": dom, "rcpt_code": 0, "data_code": 0}
            try:
                if c is None:
                    c = Lmtp(a.host, a.port, 30)
                    code, _ = c.reply()
                    if code != 220:
                        raise OSError("greeting %d" % code)
                    code, _ = c.cmd("LHLO client.weir.test")
                    if code != 250:
                        raise OSError("LHLO %d" % code)
                code, r = c.cmd("MAIL FROM:<%s>" % a.frm)
                if code != 250:
                    raise OSError("MAIL: " + r)
                code, r = c.cmd("RCPT TO:<%s>" % rcpt)
                rec.update(rcpt_code=code, rcpt_reply=r, t_rcpt=time.monotonic())
                if code == 421:
                    raise OSError("RCPT: " + r)
                if code != 250:
                    c.cmd("RSET")
                    rec["t"] = time.monotonic()
                    record(out, rec)
                    with LOCK:
                        stats["deferred"] += 1
                    time.sleep(a.pause)
                    continue
                code, r = c.cmd("DATA")
                if code != 354:
                    raise OSError("DATA: " + r)
                c.s.sendall(message(a.frm, rcpt, tok) + b".\r\n")
                code, r = c.reply()
                rec.update(data_code=code, data_reply=r, t=time.monotonic())
                record(out, rec)
                with LOCK:
                    stats["sent" if code == 250 else "errors"] += 1
            except (OSError, EOFError) as e:
                rec.update(error=str(e), t=time.monotonic())
                record(out, rec)
                with LOCK:
                    stats["errors"] += 1
                if c is not None:
                    try:
                        c.s.close()
                    except OSError:
                        pass
                c = None
                time.sleep(0.1)
        if c is not None:
            c.close()

    th = [threading.Thread(target=worker, args=(dom, w)) for dom in a.to for w in range(a.conns)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    print("sent=%(sent)d deferred=%(deferred)d errors=%(errors)d" % stats)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("smtp", "lmtp"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--interval", type=float, default=0)
    p.add_argument("--prefix", default="t%d" % 0)
    p.add_argument("--from", dest="frm", default="throttle@client.weir.test")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--conns", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.05)
    a = p.parse_args()
    with open(a.out, "a") as out:
        return do_smtp(a, out) if a.mode == "smtp" else do_lmtp(a, out)


if __name__ == "__main__":
    sys.exit(main())
