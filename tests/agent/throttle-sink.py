#!/usr/bin/python3
"""throttle-sink.py - an SMTP sink that records WHEN mail arrives, for the
throttling tests (tests/integration/4NN-throttle-*.sh, issue 8) and
bench/throttle-e2e.sh. Python 3 standard library only (asyncio).

  throttle-sink.py --port P --events FILE [--host 127.0.0.1] [--pidfile F]
                   [--reply DOMAIN:N:REPLY]... [--rules FILE]
                   [--delay DOMAIN:SECONDS]... [--keep-after-421]

Nothing is stored but one JSON object per line in FILE (appended, flushed
at once, so a test reads it while the sink runs). Times "t" are
time.monotonic() seconds (CLOCK_MONOTONIC: the same clock as the test's
injectors and tests/agent/throttle-check.py now). Events:

  {"ev": "conn", "t", "conn": C, "peer": "127.0.0.1:port"}
  {"ev": "rcpt", "t", "conn", "from", "helo", "rcpt", "dom", "code", "reply",
                 "conc"}          one per RCPT TO, whatever the answer;
                 conc: transactions holding dom at this moment, this one
                 included (accepted RCPTs only; else 0)
  {"ev": "msg",  "t", "conn", "from", "helo", "rcpts": [...], "doms": [...],
                 "t_rcpt": {dom: t of the first accepted RCPT of dom},
                 "conc": {dom: conc at that RCPT}, "token", "size"}
                 one per message accepted after DATA (t: the final dot)
  {"ev": "end",  "t", "conn", "doms": [...], "why": data|rset|mail|quit|lost|421}
                 a transaction that held domains is over
  {"ev": "start"|"stop", "t", "port"}

A transaction "holds" a recipient domain from its first accepted RCPT for
that domain until it ends (the reply after DATA, RSET, a new MAIL, QUIT,
the connection lost or closed after a 421): "conc" counts, per domain,
the transactions holding it at once, i.e. what throttle sessions limit.

The token of a message: the value of its X-Weir-Token header, else the
last word of its Subject ("weir inject TOKEN", "weir throttle TOKEN").

Replies by recipient domain (--reply, repeatable, or lines "DOMAIN N
REPLY..." in --rules FILE, which is read again whenever it changes; a
change starts its counts afresh): the first N RCPTs to DOMAIN (N = 0: all
of them) are answered REPLY (a whole reply line, e.g. "421 4.7.0 try again
later") instead of 250. DOMAIN "*" matches any; ".d" matches d and below.
After a 421 the sink closes the connection (RFC 5321 3.8) unless
--keep-after-421. --delay DOMAIN:SECONDS holds the reply after DATA of a
transaction holding DOMAIN that long (the transaction holds it meanwhile).
"""

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time


def domain_of(addr):
    addr = addr.strip()
    if addr.startswith("<"):
        addr = addr[1:]
    addr = addr.split(">", 1)[0]
    return addr.rsplit("@", 1)[-1].lower().rstrip(".") if "@" in addr else ""


def dom_match(pattern, dom):
    if pattern == "*":
        return True
    if pattern.startswith("."):
        return dom == pattern[1:] or dom.endswith(pattern)
    return dom == pattern


class Rule:
    def __init__(self, dom, n, reply):
        self.dom = dom.lower()
        self.n = n
        self.reply = reply
        self.used = 0

    @classmethod
    def parse_arg(cls, s):
        dom, n, reply = s.split(":", 2)
        return cls(dom, int(n), reply)


class Sink:
    def __init__(self, a):
        self.a = a
        self.ev = open(a.events, "a", buffering=1)
        self.conns = 0
        self.active = {}  # dom -> transactions holding it
        self.arg_rules = [Rule.parse_arg(r) for r in a.reply or []]
        self.file_rules = []
        self.rules_stamp = None
        self.delays = []
        for d in a.delay or []:
            dom, secs = d.rsplit(":", 1)
            self.delays.append((dom.lower(), float(secs)))

    def emit(self, **kv):
        kv = dict(kv)
        kv.setdefault("t", time.monotonic())
        self.ev.write(json.dumps(kv, sort_keys=True) + "\n")

    def rules(self):
        if self.a.rules:
            try:
                st = os.stat(self.a.rules)
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                stamp = None
            if stamp != self.rules_stamp:
                self.rules_stamp = stamp
                self.file_rules = []
                if stamp is not None:
                    for line in open(self.a.rules):
                        line = line.strip()
                        if not line or line.startswith("#"):
                            continue
                        dom, n, reply = line.split(None, 2)
                        self.file_rules.append(Rule(dom, int(n), reply))
        return self.arg_rules + self.file_rules

    def reply_for(self, dom):
        for r in self.rules():
            if dom_match(r.dom, dom) and (r.n == 0 or r.used < r.n):
                r.used += 1
                return r.reply
        return None

    def delay_for(self, doms):
        d = 0.0
        for pat, secs in self.delays:
            if any(dom_match(pat, x) for x in doms):
                d = max(d, secs)
        return d


class Txn:
    def __init__(self, sender):
        self.sender = sender
        self.rcpts = []
        self.held = {}  # dom -> (t of first accepted rcpt, conc then)


async def handle(sink, reader, writer):
    sink.conns += 1
    cid = sink.conns
    peer = writer.get_extra_info("peername")
    sink.emit(ev="conn", conn=cid, peer="%s:%s" % (peer[0], peer[1]) if peer else "?")
    helo = ""
    txn = None

    def end(why):
        nonlocal txn
        if txn is not None and txn.held:
            for d in txn.held:
                sink.active[d] = sink.active.get(d, 1) - 1
            sink.emit(ev="end", conn=cid, doms=sorted(txn.held), why=why)
        txn = None

    async def say(line):
        writer.write((line + "\r\n").encode())
        await writer.drain()

    try:
        await say("220 tsink.weir.test ESMTP throttle-sink")
        while True:
            raw = await reader.readline()
            if not raw:
                end("lost")
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb):].strip()
            if verb in ("EHLO", "HELO", "LHLO"):
                end("rset")
                helo = arg
                if verb == "HELO":
                    await say("250 tsink.weir.test")
                else:
                    await say("250-tsink.weir.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                              "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 104857600\r\n"
                              "250 DSN")
            elif verb == "MAIL":
                end("mail")
                m = re.match(r"(?i)FROM:\s*(<[^>]*>|\S+)", arg)
                if not m:
                    await say("501 5.5.4 syntax: MAIL FROM:<address>")
                    continue
                txn = Txn(m.group(1).strip("<>"))
                await say("250 2.1.0 OK")
            elif verb == "RCPT":
                m = re.match(r"(?i)TO:\s*(<[^>]*>|\S+)", arg)
                if txn is None:
                    await say("503 5.5.1 MAIL first")
                    continue
                if not m:
                    await say("501 5.5.4 syntax: RCPT TO:<address>")
                    continue
                rcpt = m.group(1).strip("<>")
                dom = domain_of(rcpt)
                reply = sink.reply_for(dom)
                conc = 0
                if reply is None:
                    reply = "250 2.1.5 OK"
                    txn.rcpts.append(rcpt)
                    if dom not in txn.held:
                        sink.active[dom] = sink.active.get(dom, 0) + 1
                        txn.held[dom] = (time.monotonic(), sink.active[dom])
                    conc = sink.active[dom]
                sink.emit(ev="rcpt", conn=cid, rcpt=rcpt, dom=dom, code=int(reply[:3]),
                          reply=reply, conc=conc, helo=helo, **{"from": txn.sender})
                await say(reply)
                if reply.startswith("421") and not sink.a.keep_after_421:
                    end("421")
                    writer.close()
                    return
            elif verb == "DATA":
                if txn is None or not txn.rcpts:
                    await say("503 5.5.1 no valid recipients")
                    continue
                await say("354 go ahead")
                body = []
                size = 0
                while True:
                    raw = await reader.readline()
                    if not raw:
                        end("lost")
                        return
                    if raw in (b".\r\n", b".\n"):
                        break
                    if raw.startswith(b"."):
                        raw = raw[1:]
                    size += len(raw)
                    body.append(raw)
                t_dot = time.monotonic()
                token = None
                subject = None
                for h in body:
                    if h in (b"\r\n", b"\n"):
                        break
                    hl = h.decode("utf-8", "replace").rstrip("\r\n")
                    low = hl.lower()
                    if low.startswith("x-weir-token:"):
                        token = hl.split(":", 1)[1].strip()
                    elif low.startswith("subject:") and subject is None:
                        subject = hl.split(":", 1)[1].strip()
                if token is None and subject:
                    token = subject.split()[-1]
                doms = sorted({domain_of(r) for r in txn.rcpts})
                sink.emit(ev="msg", t=t_dot, conn=cid, rcpts=txn.rcpts, doms=doms, helo=helo,
                          t_rcpt={d: v[0] for d, v in txn.held.items()},
                          conc={d: v[1] for d, v in txn.held.items()},
                          token=token, size=size, **{"from": txn.sender})
                d = sink.delay_for(doms)
                if d > 0:
                    await asyncio.sleep(d)
                end("data")  # released before the reply goes out
                await say("250 2.0.0 OK stored")
            elif verb == "RSET":
                end("rset")
                await say("250 2.0.0 OK")
            elif verb == "NOOP":
                await say("250 2.0.0 OK")
            elif verb == "QUIT":
                end("quit")
                await say("221 2.0.0 bye")
                writer.close()
                return
            else:
                await say("502 5.5.2 command not implemented")
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        end("lost")
    finally:
        if txn is not None:
            end("lost")
        try:
            writer.close()
        except Exception:
            pass


async def main_async(a):
    sink = Sink(a)
    server = await asyncio.start_server(lambda r, w: handle(sink, r, w), a.host, a.port,
                                        limit=1 << 20, reuse_address=True, backlog=256)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    sink.emit(ev="start", port=a.port)
    print("throttle-sink: listening on %s:%d, events to %s" % (a.host, a.port, a.events), flush=True)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(1))
    await stop
    server.close()
    sink.emit(ev="stop", port=a.port)
    print("throttle-sink: stopped", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--pidfile")
    p.add_argument("--reply", action="append", metavar="DOMAIN:N:REPLY")
    p.add_argument("--rules", metavar="FILE")
    p.add_argument("--delay", action="append", metavar="DOMAIN:SECONDS")
    p.add_argument("--keep-after-421", action="store_true")
    a = p.parse_args()
    for r in a.reply or []:
        try:
            rr = Rule.parse_arg(r)
            assert rr.reply[:3].isdigit()
        except Exception:
            p.error("bad --reply %r: DOMAIN:N:REPLY with a 3-digit code" % r)
    asyncio.run(main_async(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
