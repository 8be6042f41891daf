#!/usr/bin/python3
"""sink.py - the test smart host: an SMTP server that stores what it accepts.

Every accepted message becomes one file in the spool directory, named in
arrival order (000001.eml, 000002.eml, ...), written to a hidden temporary
name first and renamed, so a reader never sees a partial file:

    X-Sink-Mail-From: <sender>
    X-Sink-Rcpt-To: <rcpt>          (one per accepted recipient)
    X-Sink-Peer: 127.0.0.1
    <the message exactly as received, after dot-unstuffing>

Faults by recipient local part (case-insensitive prefix):
    reject...  550 5.1.1 <addr>: Recipient address rejected: User unknown
    defer...   450 4.2.0 <addr>: Recipient address temporarily rejected
    slow...    250, but only after WEIR_SINK_SLOW seconds (default 5)

Needs /usr/bin/python3 (Debian's python3-aiosmtpd).
"""

import argparse
import asyncio
import logging
import os
import re
import signal
import sys

from aiosmtpd.smtp import SMTP


def local_part(addr):
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    return addr.rsplit("@", 1)[0].lower()


class SinkHandler:
    def __init__(self, spool, slow):
        self.spool = spool
        self.slow = slow
        self.seq = 0
        for name in os.listdir(spool):
            m = re.match(r"^(\d+)\.eml$", name)
            if m:
                self.seq = max(self.seq, int(m.group(1)))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # aiosmtpd reads commands one line at a time, so pipelined commands
        # work; it just does not advertise it. Insert before the final line.
        responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lp = local_part(address)
        peer = session.peer[0] if session.peer else "?"
        if lp.startswith("reject"):
            logging.info("peer=%s rcpt=<%s> result=550", peer, address)
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if lp.startswith("defer"):
            logging.info("peer=%s rcpt=<%s> result=450", peer, address)
            return "450 4.2.0 <%s>: Recipient address temporarily rejected" % address
        if lp.startswith("slow"):
            logging.info("peer=%s rcpt=<%s> sleeping=%ss", peer, address, self.slow)
            await asyncio.sleep(self.slow)
        envelope.rcpt_tos.append(address)
        logging.info("peer=%s rcpt=<%s> result=250", peer, address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        name = "%06d.eml" % self.seq
        peer = session.peer[0] if session.peer else "?"
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""
        head = ["X-Sink-Mail-From: <%s>" % mail_from]
        head += ["X-Sink-Rcpt-To: <%s>" % r for r in envelope.rcpt_tos]
        head.append("X-Sink-Peer: %s" % peer)
        data = "\r\n".join(head).encode("utf-8", "surrogateescape") + b"\r\n"
        content = envelope.original_content
        if content is None:
            content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        tmp = os.path.join(self.spool, ".tmp-%s" % name)
        with open(tmp, "wb") as f:
            f.write(data)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.spool, name))
        logging.info("peer=%s stored=%s from=<%s> rcpts=%d size=%d", peer, name,
                     envelope.mail_from, len(envelope.rcpt_tos), len(content))
        return "250 2.0.0 Ok: stored as %s" % name


async def serve(args):
    handler = SinkHandler(args.dir, args.slow)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(handler, hostname="sink.weir.test", decode_data=False,
                    enable_SMTPUTF8=True, data_size_limit=args.size_limit,
                    loop=loop)

    server = await loop.create_server(factory, host=args.host, port=args.port,
                                      reuse_address=True, backlog=128)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.pidfile + ".tmp", args.pidfile)
    logging.info("listening on %s:%d spool=%s slow=%ss", args.host, args.port,
                 args.dir, args.slow)
    await stop.wait()
    logging.info("stopping")
    server.close()
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--pidfile")
    p.add_argument("--slow", type=float,
                   default=float(os.environ.get("WEIR_SINK_SLOW", "5")))
    p.add_argument("--size-limit", type=int, default=52428800)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s sink[%(process)d]: %(message)s")
    # aiosmtpd logs every command at INFO under "mail.log": keep it, it is
    # the transcript a failing test wants to see.
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
