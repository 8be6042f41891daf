#!/usr/bin/python3
"""inject.py - send N distinct messages to an SMTP server over S parallel
sessions (stdlib smtplib), each with its own token in the Subject and the
body, so that a test can find every one of them at the sink.

  inject.py --port P --count N --prefix PFX [--sessions S] [--size BYTES]
            [--from ADDR] [--to ADDR] [--tokens FILE] [--per-session M]

Token i is PFX-i (i = 1..N). Each session sends its share of the messages
as separate transactions (a new connection every --per-session messages,
default 50). Exit 0 when the server accepted all N, else 1 (with the
refused ones listed on stderr). --tokens writes the tokens, one a line.
"""

import argparse
import smtplib
import sys
import threading
import time


def message(frm, to, token, size):
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: weir inject %s\r\n"
            "Message-ID: <%s@client.weir.test>\r\nDate: %s\r\n\r\n"
            % (frm, to, token, token, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())))
    line = ("%s filler line for a message of about %d bytes ......................" % (token, size))[:76]
    body = "token %s\r\n" % token
    while len(head) + len(body) < size:
        body += line + "\r\n"
    return (head + body).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--from", dest="frm", default="inject@client.weir.test")
    p.add_argument("--to", default="inject@example.weir.test")
    p.add_argument("--tokens")
    p.add_argument("--per-session", type=int, default=50)
    a = p.parse_args()
    tokens = ["%s-%d" % (a.prefix, i) for i in range(1, a.count + 1)]
    if a.tokens:
        with open(a.tokens, "w") as f:
            f.write("\n".join(tokens) + "\n")
    lock = threading.Lock()
    todo = list(reversed(tokens))
    failed = []

    def worker():
        s = None
        sent = 0
        while True:
            with lock:
                if not todo:
                    break
                tok = todo.pop()
            for attempt in range(3):
                try:
                    if s is None:
                        s = smtplib.SMTP(a.host, a.port, local_hostname="client.weir.test", timeout=60)
                        sent = 0
                    s.sendmail(a.frm, [a.to], message(a.frm, a.to, tok, a.size))
                    sent += 1
                    if sent >= a.per_session:
                        s.quit()
                        s = None
                    break
                except (smtplib.SMTPException, OSError) as e:
                    try:
                        if s is not None:
                            s.close()
                    except Exception:
                        pass
                    s = None
                    if attempt == 2:
                        with lock:
                            failed.append((tok, str(e)))
                    time.sleep(0.2)
        if s is not None:
            try:
                s.quit()
            except Exception:
                pass

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    print("injected %d of %d in %.1fs (%.0f/s)" % (a.count - len(failed), a.count, dt,
                                                    (a.count - len(failed)) / dt if dt else 0))
    for tok, e in failed[:20]:
        print("refused %s: %s" % (tok, e), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
