#!/usr/bin/python3
"""fake-smarthost - an SMTP server for test-relay that misbehaves on purpose.

usage: fake-smarthost.py [ADDR:]PORT MODE[,FLAG...] [MSGFILE]
MODE: ok       normal server
      greet421 answers the greeting with 421 and closes
      dropdata closes the connection after reading the message, no reply
      silent   accepts the connection and never says anything
      silentdata  never answers the final dot
      data451  answers the final dot with 451
FLAG: dsn      advertises DSN and SMTPUTF8
      closeafter  closes the connection right after answering the data
      no8bit   does not advertise 8BITMIME
      nopipe   does not advertise PIPELINING
      slowrcpt waits 0.2 s before answering each RCPT, then notes in
               MSGFILE.pipe "RCPT <addr> ahead" when the client's next
               command had already arrived (it did not wait for the
               reply: pipelining), else "RCPT <addr> waited"
      stamp    appends "RCPT <unix time> <addr>" per RCPT and "MESSAGE
               <unix time>" per message to MSGFILE.times
Per recipient (local part): t450* -> 450 4.2.0, r550* -> 550 5.1.1,
c421* -> 421 4.3.0 and the connection closed, y421* -> 421 4.7.0
[TS01] try again later (the connection kept);
per sender: m550* -> 550 5.7.1 at MAIL.
Prints "ready" on stdout once listening; writes each received message
(still dot-stuffed, as sent) to MSGFILE, and appends every command line
it receives to MSGFILE.cmds (one per line) and one line per message
("MESSAGE <rcpts>") to MSGFILE.log."""
import socket
import sys
import threading
import time


lock = threading.Lock()


def note(suffix, line):
    if len(sys.argv) > 3:
        with lock, open(sys.argv[3] + suffix, "a") as out:
            out.write(line + "\n")


def session(conn, mode, flags):
    f = conn.makefile("rwb")
    rcpts = []

    def say(line):
        f.write((line + "\r\n").encode())
        f.flush()

    def ahead():
        conn.settimeout(0.0)
        try:
            return len(f.peek(1)) > 0
        except BlockingIOError:
            return False
        finally:
            conn.settimeout(None)

    if mode == "silent":
        conn.recv(1)
        return
    if mode == "greet421":
        say("421 4.3.2 fake: service not available")
        return
    say("220 fake.test ESMTP")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.decode("utf-8", "replace").rstrip("\r\n")
        verb = cmd[:4].upper()
        note(".cmds", cmd)
        if verb == "EHLO":
            say("250-fake.test")
            if "nopipe" not in flags:
                say("250-PIPELINING")
            if "no8bit" not in flags:
                say("250-8BITMIME")
            if "dsn" in flags:
                say("250-DSN")
                say("250-SMTPUTF8")
            say("250 SIZE 10000000")
        elif verb == "HELO":
            say("250 fake.test")
        elif verb == "MAIL":
            rcpts = []
            if cmd[cmd.find("<") + 1:].startswith("m550"):
                say("550 5.7.1 <%s>: Sender address rejected" % cmd[cmd.find("<") + 1:cmd.find(">")])
            else:
                say("250 2.1.0 Ok")
        elif verb == "RCPT":
            addr = cmd[cmd.find("<") + 1:cmd.rfind(">")]
            if "stamp" in flags:
                note(".times", "RCPT %.6f %s" % (time.time(), addr))
            if "slowrcpt" in flags:
                time.sleep(0.2)
                note(".pipe", "RCPT %s %s" % (addr, "ahead" if ahead() else "waited"))
            if addr.startswith("c421"):
                say("421 4.3.0 fake: closing")
                return
            if addr.startswith("y421"):
                say("421 4.7.0 [TS01] try again later")
            elif addr.startswith("t450"):
                say("450 4.2.0 <%s>: Recipient address rejected: try later" % addr)
            elif addr.startswith("r550"):
                say("550 5.1.1 <%s>: Recipient address rejected" % addr)
            else:
                rcpts.append(addr)
                say("250 2.1.5 Ok")
        elif verb == "DATA":
            say("354 go ahead")
            data = b""
            while True:
                line = f.readline()
                if not line:
                    return
                if line == b".\r\n":
                    break
                data += line
            if len(sys.argv) > 3:
                with open(sys.argv[3], "wb") as out:
                    out.write(data)
            if mode == "dropdata":
                return
            if mode == "silentdata":
                conn.recv(1)
                return
            if mode == "data451":
                say("451 4.3.0 fake: try again later")
                continue
            note(".log", "MESSAGE " + " ".join(rcpts))
            if "stamp" in flags:
                note(".times", "MESSAGE %.6f" % time.time())
            say("250 2.0.0 Ok: queued as FAKE1")
            if "closeafter" in flags:
                return
        elif verb == "RSET" or verb == "NOOP":
            say("250 2.0.0 Ok")
        elif verb == "QUIT":
            say("221 2.0.0 Bye")
            return
        else:
            say("502 5.5.2 what")


def main():
    addr, _, port = sys.argv[1].rpartition(":")
    port = int(port)
    modes = sys.argv[2].split(",")
    mode, flags = modes[0], set(modes[1:])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr or "127.0.0.1", port))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        t = threading.Thread(target=lambda c=conn: (session(c, mode, flags), c.close()),
                             daemon=True)
        t.start()


main()
