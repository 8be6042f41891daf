#!/usr/bin/python3
"""agent_client.py - drive weir-agent's LMTP and SMTP listeners directly.

usage: agent_client.py SCENARIO PORT SINK_DIR TOKEN lmtp|smtp
Prints one line per check ("ok - ..." / "NOT OK - ...") and exits 1 if any
check failed. Scenarios: lmtp-rcpts, smtp-basic, garbage, longline,
drop-in-data, after-drop.
"""
import glob
import socket
import sys
import time


class Session:
    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.s.makefile("rb")
        self.transcript = []

    def reply(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("connection closed by the agent")
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            self.transcript.append("<- " + line)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
        return code, lines

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        shown = data if len(data) < 200 else data[:60] + b"...(%d bytes)" % len(data)
        self.transcript.append("-> " + shown.decode("utf-8", "replace").rstrip("\r\n"))
        self.s.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


FAILS = 0


def check(desc, ok, sess=None, detail=""):
    global FAILS
    print(("ok - " if ok else "NOT OK - ") + desc + ("" if ok or not detail else ": " + detail))
    if not ok:
        FAILS += 1
        if sess:
            print("  transcript:\n    " + "\n    ".join(sess.transcript[-30:]))


def sink_with(sink, token):
    out = []
    for p in sorted(glob.glob(sink + "/*.eml")):
        with open(p, "rb") as f:
            if token.encode() in f.read():
                out.append(p)
    return out


def wait_sink(sink, token, n=1, secs=30):
    end = time.time() + secs
    while time.time() < end:
        if len(sink_with(sink, token)) >= n:
            return sink_with(sink, token)
        time.sleep(0.2)
    return sink_with(sink, token)


def message(token, rcpts):
    return ("From: <direct@client.weir.test>\r\nTo: %s\r\nSubject: direct %s\r\n"
            "Message-ID: <%s@client.weir.test>\r\n\r\nbody %s\r\n..leading dot %s\r\n"
            % (", ".join(rcpts), token, token, token, token))


MODE_LMTP = True


def greet(s, lmtp=None):
    lmtp = MODE_LMTP if lmtp is None else lmtp
    code, _ = s.reply()
    check("220 greeting", code == 220, s, str(code))
    code, lines = s.cmd(("LHLO" if lmtp else "EHLO") + " client.weir.test")
    check(("LHLO" if lmtp else "EHLO") + " answered 250", code == 250, s, str(lines))


def lmtp_rcpts(port, sink, token):
    s = Session(port)
    greet(s)
    good, rej, dfr = ("good-%s@example.weir.test" % token[-6:], "reject-x@example.weir.test",
                      "defer-y@example.weir.test")
    code, _ = s.cmd("MAIL FROM:<direct@client.weir.test>")
    check("MAIL FROM 250", code == 250, s)
    final = {}
    accepted = []
    for r in (good, rej, dfr):
        code, lines = s.cmd("RCPT TO:<%s>" % r)
        if code // 100 == 2:
            accepted.append(r)
        else:
            final[r] = (code, lines[-1])
    if accepted:
        code, _ = s.cmd("DATA")
        check("DATA 354", code == 354, s, str(code))
        s.send(message(token, [good, rej, dfr]) + ".\r\n")
        for r in accepted:  # LMTP: one reply per accepted recipient, in order
            code, lines = s.reply()
            final[r] = (code, lines[-1])
    for r, cls, what in ((good, 2, "2xx"), (rej, 5, "5xx"), (dfr, 4, "4xx")):
        code, text = final.get(r, (0, "no reply"))
        check("LMTP final reply for <%s> is %s (%s)" % (r, what, text), code // 100 == cls, s)
    check("LMTP reject reply carries an enhanced status code 5.x.x",
          final.get(rej, (0, ""))[1][4:6] == "5.", s, final.get(rej, (0, ""))[1])
    code, _ = s.cmd("QUIT")
    check("QUIT 221", code == 221, s, str(code))
    s.close()
    files = wait_sink(sink, token)
    check("the sink got the message once", len(files) == 1, None, str(files))
    if files:
        data = open(files[0], "rb").read().decode("utf-8", "replace")
        rcpts = [l for l in data.splitlines() if l.startswith("X-Sink-Rcpt-To:")]
        check("the sink's copy is for the good recipient only", rcpts == ["X-Sink-Rcpt-To: <%s>" % good],
              None, str(rcpts))
        check("dot-stuffed line arrives as '.leading dot'", "\r\n.leading dot %s\r\n" % token in data)


def smtp_basic(port, sink, token):
    s = Session(port)
    greet(s, False)
    good = "smtp-%s@example.weir.test" % token[-6:]
    code, _ = s.cmd("MAIL FROM:<direct@client.weir.test>")
    check("MAIL FROM 250", code == 250, s)
    code, _ = s.cmd("RCPT TO:<%s>" % good)
    check("RCPT good 250", code == 250, s, str(code))
    code, _ = s.cmd("DATA")
    check("DATA 354", code == 354, s, str(code))
    s.send(message(token, [good]) + ".\r\n")
    code, lines = s.reply()
    check("end of DATA 250 (one reply in SMTP mode)", code == 250, s, str(lines))
    # a recipient the smart host rejects: 5xx at RCPT or at end of DATA
    code, _ = s.cmd("MAIL FROM:<direct@client.weir.test>")
    check("second MAIL FROM 250", code == 250, s, str(code))
    code, lines = s.cmd("RCPT TO:<reject-smtp@example.weir.test>")
    if code // 100 == 2:
        s.cmd("DATA")
        s.send(message(token + "-rej", ["reject-smtp@example.weir.test"]) + ".\r\n")
        code, lines = s.reply()
    check("SMTP: a recipient the smart host rejects gets a 5xx", code // 100 == 5, s, str(lines))
    code, _ = s.cmd("QUIT")
    check("QUIT 221", code == 221, s, str(code))
    s.close()
    files = wait_sink(sink, token)
    check("the sink got the SMTP-mode message once", len(sink_with(sink, token + "\r\n")) == 1,
          None, str(files))


def garbage(port, sink, token):
    s = Session(port)
    greet(s)
    for bad in ("FOOBAR baz", "MAIL", "RCPT TO:<x@example.weir.test>", "\x01\x02\x03", "DATA"):
        code, lines = s.cmd(bad)
        check("%r gets a 5xx" % bad, code // 100 == 5, s, str(lines))
    code, _ = s.cmd("NOOP")
    check("the session continues (NOOP 250)", code == 250, s, str(code))
    code, _ = s.cmd("QUIT")
    check("QUIT 221", code == 221, s, str(code))
    s.close()


def longline(port, sink, token):
    s = Session(port)
    greet(s)
    code, lines = s.cmd("NOOP " + "x" * 5000)
    check("a 5000-byte command line gets 500 5.5.2", lines[-1].startswith("500 5.5.2"), s, str(lines))
    code, _ = s.cmd("NOOP")
    check("the session continues (NOOP 250)", code == 250, s, str(code))
    code, lines = s.cmd("MAIL FROM:<%s@client.weir.test>" % ("y" * 5000))
    check("a 5000-byte MAIL FROM line gets 500 5.5.2", lines[-1].startswith("500 5.5.2"), s, str(lines))
    code, _ = s.cmd("RSET")
    check("the session continues (RSET 250)", code == 250, s, str(code))
    code, _ = s.cmd("QUIT")
    check("QUIT 221", code == 221, s, str(code))
    s.close()


def drop_in_data(port, sink, token):
    s = Session(port)
    greet(s)
    code, _ = s.cmd("MAIL FROM:<direct@client.weir.test>")
    code2, _ = s.cmd("RCPT TO:<drop@example.weir.test>")
    code3, _ = s.cmd("DATA")
    check("transaction up to DATA 354", (code, code2, code3) == (250, 250, 354), s,
          str((code, code2, code3)))
    s.send(message(token, ["drop@example.weir.test"]) + "more text, then the client vanishes\r\n")
    time.sleep(0.5)
    s.s.shutdown(socket.SHUT_RDWR)
    s.close()
    time.sleep(5)
    files = sink_with(sink, token)
    check("nothing from the dropped transaction reached the sink", not files, None, str(files))


def main():
    global MODE_LMTP
    scen, port, sink, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    MODE_LMTP = sys.argv[5] == "lmtp"
    fn = {"lmtp-rcpts": lmtp_rcpts, "smtp-basic": smtp_basic, "garbage": garbage,
          "longline": longline, "drop-in-data": drop_in_data, "after-drop": lmtp_rcpts}[scen]
    try:
        fn(port, sink, token)
    except (OSError, EOFError, ValueError) as e:
        check("%s: session error" % scen, False, None, repr(e))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
