#!/usr/bin/python3
"""sink.py - the test smart host: an SMTP server that stores what it accepts.

Every accepted message becomes one file in the spool directory, named in
arrival order (000001.eml, 000002.eml, ...), written to a hidden temporary
name first and renamed, so a reader never sees a partial file:

    X-Sink-Mail-From: <sender>
    X-Sink-Rcpt-To: <rcpt>          (one per accepted recipient)
    X-Sink-Peer: 127.0.0.1
    X-Sink-Session: tls=TLSv1.3 auth=LOGIN:MECH helo=NAME
                    (tls=none without TLS; auth=- without AUTH)
    <the message exactly as received, after dot-unstuffing>

Faults by recipient local part (case-insensitive prefix). Written NAMEonce
(e.g. "hangonce-1@...") a fault hits only the first time this sink process
sees that address for that fault; afterwards the recipient is an ordinary
one, so a retry by the MTA gets through ("nothing lost" tests). Faults
after DATA apply when any recipient of the transaction asks for them.
    reject...    550 5.1.1 at RCPT
    defer...     450 4.2.0 at RCPT
    slow...      250 at RCPT, but only after WEIR_SINK_SLOW seconds (default 5)
    hangrcpt...  no answer to RCPT at all (until the client goes away)
    hang...      the data is read, the final dot never answered; not stored
    resetmid...  354, the first line of data read, then the TCP connection is
                 reset (RST); not stored
    reset...     the data is read, then the connection is reset without an
                 answer; not stored
    faildata...  554 5.6.0 after the final dot; not stored
    tempdata...  451 4.3.0 after the final dot; not stored
Each fault is logged: "fault=NAME rcpt=<addr>".

Connection-level faults (--control FILE, read at each new connection; a
missing or empty file means none; the first word counts):
    greet421     "421 4.3.2 sink.weir.test busy" as the greeting, then close
    silent       accept the connection, never say anything
TLS and AUTH (--tls, --auth, see --help): STARTTLS or implicit TLS with
the given certificate; AUTH PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 (token from
--xoauth2-token) checked against --auth USER:PASS; AUTH only after TLS
unless --auth-allow-clear; with --auth every MAIL needs AUTH first.
--starttls-broken: STARTTLS is offered and answered 220, then garbage is
sent and the connection closed (a failed handshake, for tls "may").
--ehlo-drop WORD removes a capability from the EHLO answer (8BITMIME,
SMTPUTF8, PIPELINING, ...).

Needs /usr/bin/python3 (Debian's python3-aiosmtpd).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import ssl
import struct
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, MISSING, syntax

RCPT_FAULTS = ("reject", "defer", "slow", "hangrcpt")
DATA_FAULTS = ("hang", "resetmid", "reset", "faildata", "tempdata")
# longest first, so that "hangrcpt" is not taken for "hang"
ALL_FAULTS = sorted(RCPT_FAULTS + DATA_FAULTS, key=len, reverse=True)


def local_part(addr):
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    return addr.rsplit("@", 1)[0].lower()


def peer_of(session):
    return session.peer[0] if session.peer else "?"


def tls_of(server):
    t = server.transport
    obj = t.get_extra_info("ssl_object") if t is not None else None
    if obj is None:
        return None
    return obj.version() or "tls"


def reset_connection(server):
    """RST the client's connection (SO_LINGER 0, then abort)."""
    raw = getattr(server, "_original_transport", None) or server.transport
    if raw is None:
        return
    sock = raw.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    raw.abort()
    if server.transport is not None and server.transport is not raw:
        server.transport.abort()


class SinkHandler:
    def __init__(self, args):
        self.args = args
        self.spool = args.dir
        self.slow = args.slow
        self.seq = 0
        self.seen = set()  # (fault, address) of the "once" faults already hit
        self.users = {}
        for up in args.auth or []:
            u, _, p = up.partition(":")
            self.users[u] = p
        for name in os.listdir(self.spool):
            m = re.match(r"^(\d+)\.eml$", name)
            if m:
                self.seq = max(self.seq, int(m.group(1)))

    # -- faults -----------------------------------------------------------
    def fault_of(self, address):
        """The fault ADDRESS asks for now, or None."""
        lp = local_part(address)
        for f in ALL_FAULTS:
            if lp.startswith(f + "once"):
                key = (f, address.lower())
                if key in self.seen:
                    return None
                self.seen.add(key)
                return f
            if lp.startswith(f):
                return f
        return None

    # -- EHLO ---------------------------------------------------------------
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # aiosmtpd reads commands one line at a time, so pipelined commands
        # work; it just does not advertise it. Insert before the final line.
        responses.insert(len(responses) - 1, "250-PIPELINING")
        if self.args.starttls_broken and not any("STARTTLS" in r for r in responses):
            responses.insert(len(responses) - 1, "250-STARTTLS")
        drop = [w.upper() for w in self.args.ehlo_drop or []]
        out = []
        for r in responses:
            word = r[4:].split(" ", 1)[0].upper()
            if word in drop:
                continue
            out.append(r)
        # the last line must be "250 " (the dropped one may have been last)
        if out and out[-1].startswith("250-"):
            out[-1] = "250 " + out[-1][4:]
        return out

    # -- AUTH ------------------------------------------------------------
    def authenticator(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = login in self.users and auth_data.password.decode("utf-8", "replace") == self.users[login]
        logging.info("peer=%s auth=%s login=%s result=%s tls=%s", peer_of(session), mechanism,
                     login, "ok" if ok else "fail", tls_of(server) or "none")
        if ok:
            session.auth_mech = mechanism
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    async def auth_CRAM__MD5(self, server, args):
        if len(args) != 1:
            await server.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = "<%d.%d@sink.weir.test>" % (os.getpid(), time.time_ns())
        resp = await server.challenge_auth(challenge)
        if resp is MISSING:
            return AuthResult(success=False, handled=True)
        try:
            login, digest = resp.decode().rsplit(" ", 1)
        except ValueError:
            await server.push("501 5.5.2 bad CRAM-MD5 response")
            return AuthResult(success=False, handled=True)
        pw = self.users.get(login)
        ok = pw is not None and hmac.compare_digest(
            hmac.new(pw.encode(), challenge.encode(), hashlib.md5).hexdigest(), digest.lower())
        logging.info("peer=%s auth=CRAM-MD5 login=%s result=%s tls=%s", peer_of(server.session),
                     login, "ok" if ok else "fail", tls_of(server) or "none")
        if ok:
            server.session.auth_mech = "CRAM-MD5"
            return AuthResult(success=True, auth_data=LoginPassword(login.encode(), b""))
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, server, args):
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except Exception:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        fields = {}
        for part in blob.split(b"\x01"):
            k, _, v = part.partition(b"=")
            if k:
                fields[k.decode("ascii", "replace")] = v.decode("utf-8", "replace")
        login = fields.get("user", "")
        bearer = fields.get("auth", "")
        token = bearer[7:] if bearer.startswith("Bearer ") else None
        want = self.args.xoauth2_token
        ok = login in self.users and want is not None and token == want
        logging.info("peer=%s auth=XOAUTH2 login=%s result=%s tls=%s", peer_of(server.session),
                     login, "ok" if ok else "fail", tls_of(server) or "none")
        if ok:
            server.session.auth_mech = "XOAUTH2"
            return AuthResult(success=True, auth_data=LoginPassword(login.encode(), b""))
        # RFC: an error challenge (JSON), the client answers with an empty line
        err = json.dumps({"status": "401", "schemes": "bearer", "scope": "smtp"})
        await server.challenge_auth(err)
        return AuthResult(success=False, handled=False)

    # -- RCPT / DATA ----------------------------------------------------------
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        peer = peer_of(session)
        f = self.fault_of(address)
        if f == "reject":
            logging.info("peer=%s rcpt=<%s> result=550 fault=reject", peer, address)
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if f == "defer":
            logging.info("peer=%s rcpt=<%s> result=450 fault=defer", peer, address)
            return "450 4.2.0 <%s>: Recipient address temporarily rejected" % address
        if f == "slow":
            logging.info("peer=%s rcpt=<%s> sleeping=%ss fault=slow", peer, address, self.slow)
            await asyncio.sleep(self.slow)
        if f == "hangrcpt":
            logging.info("peer=%s rcpt=<%s> fault=hangrcpt (no answer)", peer, address)
            await asyncio.sleep(86400)
        if f in DATA_FAULTS:
            envelope.sink_faults = getattr(envelope, "sink_faults", []) + [(f, address)]
        envelope.rcpt_tos.append(address)
        logging.info("peer=%s rcpt=<%s> result=250", peer, address)
        return "250 2.1.5 OK"

    def data_fault(self, envelope):
        for f in ("resetmid", "hang", "reset", "faildata", "tempdata"):
            for g, addr in getattr(envelope, "sink_faults", []):
                if g == f:
                    return f, addr
        return None, None

    async def handle_DATA(self, server, session, envelope):
        peer = peer_of(session)
        f, addr = self.data_fault(envelope)
        if f == "hang":
            logging.info("peer=%s fault=hang rcpt=<%s> (final dot never answered)", peer, addr)
            await asyncio.sleep(86400)
        if f == "reset":
            logging.info("peer=%s fault=reset rcpt=<%s> (reset after the final dot)", peer, addr)
            reset_connection(server)
            return "421 4.3.0 reset"  # never reaches the client
        if f == "faildata":
            logging.info("peer=%s fault=faildata rcpt=<%s> result=554", peer, addr)
            return "554 5.6.0 <%s>: message content rejected" % addr
        if f == "tempdata":
            logging.info("peer=%s fault=tempdata rcpt=<%s> result=451", peer, addr)
            return "451 4.3.0 <%s>: temporary trouble storing the message" % addr
        self.seq += 1
        name = "%06d.eml" % self.seq
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""
        tls = tls_of(server) or "none"
        auth = "-"
        if session.authenticated:
            login = getattr(session.auth_data, "login", None)
            if isinstance(login, bytes):
                login = login.decode("utf-8", "replace")
            auth = "%s:%s" % (login, getattr(session, "auth_mech", "?"))
        head = ["X-Sink-Mail-From: <%s>" % mail_from]
        head += ["X-Sink-Rcpt-To: <%s>" % r for r in envelope.rcpt_tos]
        head.append("X-Sink-Peer: %s" % peer)
        head.append("X-Sink-Session: tls=%s auth=%s helo=%s" % (tls, auth, session.host_name))
        data = "\r\n".join(head).encode("utf-8", "surrogateescape") + b"\r\n"
        content = envelope.original_content
        if content is None:
            content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        tmp = os.path.join(self.spool, ".tmp-%s" % name)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.write(content)
            fh.flush()
            if not self.args.no_fsync:
                os.fsync(fh.fileno())
        os.rename(tmp, os.path.join(self.spool, name))
        logging.info("peer=%s stored=%s from=<%s> rcpts=%d size=%d tls=%s auth=%s", peer, name,
                     envelope.mail_from, len(envelope.rcpt_tos), len(content), tls, auth)
        return "250 2.0.0 Ok: stored as %s" % name


class SinkSMTP(SMTP):
    """aiosmtpd's SMTP with the faults that need the protocol itself."""

    def __init__(self, handler, *a, **kw):
        self.sink = handler
        super().__init__(handler, *a, **kw)

    @syntax("DATA")
    async def smtp_DATA(self, arg):
        f, addr = self.sink.data_fault(self.envelope)
        if f == "resetmid" and self.envelope.rcpt_tos and not arg:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await self._reader.readuntil(b"\r\n")
            except Exception:
                pass
            logging.info("peer=%s fault=resetmid rcpt=<%s> (reset in the middle of the data)",
                         peer_of(self.session), addr)
            reset_connection(self)
            return
        return await super().smtp_DATA(arg)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg):
        if self.sink.args.starttls_broken:
            await self.push("220 Ready to start TLS")
            logging.info("peer=%s starttls=broken (garbage instead of a handshake)",
                         peer_of(self.session))
            self.transport.write(b"\x15\x03\x01\x00\x02\x02\x28 this is not TLS\r\n")
            await asyncio.sleep(0.05)
            self.transport.close()
            return
        return await super().smtp_STARTTLS(arg)


class FixedGreeting(asyncio.Protocol):
    """A connection-level fault: a fixed greeting (or none) and close."""

    def __init__(self, what):
        self.what = what
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        logging.info("peer=%s fault=%s", peer[0] if peer else "?", self.what)
        if self.what == "greet421":
            transport.write(b"421 4.3.2 sink.weir.test busy, try again later\r\n")
            transport.close()

    def data_received(self, data):
        pass


def control_word(path):
    if not path:
        return ""
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return ""
    return words[0] if words else ""


async def serve(args):
    handler = SinkHandler(args)
    loop = asyncio.get_running_loop()
    tls_ctx = None
    if args.tls != "none" or args.starttls_broken:
        if not (args.cert and args.key) and args.tls != "none":
            raise SystemExit("--tls %s needs --cert and --key" % args.tls)
        if args.cert:
            tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_ctx.load_cert_chain(args.cert, args.key)
    mechs = [m.upper() for m in (args.auth_mechs or "PLAIN LOGIN").replace(",", " ").split()]
    exclude = [m for m in ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2") if m not in mechs]

    def factory():
        word = control_word(args.control)
        if word in ("greet421", "silent"):
            return FixedGreeting(word)
        kw = dict(hostname=args.hostname, decode_data=False,
                  enable_SMTPUTF8="SMTPUTF8" not in [w.upper() for w in args.ehlo_drop or []],
                  data_size_limit=args.size_limit, loop=loop)
        if args.tls == "starttls" or (args.starttls_broken and args.tls == "none"):
            kw.update(tls_context=tls_ctx, require_starttls=args.require_tls)
        if args.auth:
            kw.update(authenticator=handler.authenticator, auth_required=True,
                      auth_require_tls=(args.tls == "starttls" and not args.auth_allow_clear),
                      auth_exclude_mechanism=exclude)
        return SinkSMTP(handler, **kw)

    server = await loop.create_server(factory, host=args.host, port=args.port,
                                      reuse_address=True, backlog=128,
                                      ssl=tls_ctx if args.tls == "implicit" else None)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.pidfile + ".tmp", args.pidfile)
    logging.info("listening on %s:%d spool=%s slow=%ss tls=%s%s auth=%s mechs=%s control=%s",
                 args.host, args.port, args.dir, args.slow, args.tls,
                 " (required)" if args.require_tls and args.tls == "starttls" else "",
                 ",".join(sorted(handler.users)) or "-", " ".join(mechs) if args.auth else "-",
                 args.control or "-")
    await stop.wait()
    logging.info("stopping")
    server.close()
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--pidfile")
    p.add_argument("--hostname", default="sink.weir.test", help="name in the greeting")
    p.add_argument("--slow", type=float,
                   default=float(os.environ.get("WEIR_SINK_SLOW", "5")))
    p.add_argument("--size-limit", type=int, default=52428800)
    p.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none")
    p.add_argument("--cert", help="server certificate chain (PEM)")
    p.add_argument("--key", help="its private key (PEM)")
    p.add_argument("--require-tls", action="store_true",
                   help="with --tls starttls: 530 to anything but EHLO/NOOP/QUIT before STARTTLS")
    p.add_argument("--starttls-broken", action="store_true",
                   help="offer STARTTLS but answer it with garbage (a failed handshake)")
    p.add_argument("--auth", action="append", metavar="USER:PASS",
                   help="accepted login (repeatable); MAIL then needs AUTH")
    p.add_argument("--auth-mechs", default="PLAIN LOGIN",
                   help="mechanisms offered: PLAIN LOGIN CRAM-MD5 XOAUTH2")
    p.add_argument("--auth-allow-clear", action="store_true",
                   help="offer AUTH without TLS too")
    p.add_argument("--xoauth2-token", help="the bearer token XOAUTH2 accepts")
    p.add_argument("--ehlo-drop", action="append", metavar="WORD",
                   help="leave this capability out of the EHLO answer (repeatable)")
    p.add_argument("--control", help="connection-level fault file (greet421, silent)")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync stored messages")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s sink[%(process)d]: %(message)s")
    # aiosmtpd logs every command at INFO under "mail.log": keep it, it is
    # the transcript a failing test wants to see.
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
