#!/usr/bin/python3
"""tls-smarthost - a smart host with TLS and AUTH for weir-agent's tests.

usage: tls-smarthost.py MODE PORT [options]
MODE: starttls   STARTTLS offered and required before AUTH and MAIL (aiosmtpd)
      implicit   TLS from the first byte, as on port 465 (aiosmtpd)
      plain      no TLS, no AUTH (aiosmtpd)
      plainauth  no TLS, AUTH offered in clear (aiosmtpd)
      brokentls  offers STARTTLS, answers 220, then speaks garbage instead of
                 a TLS handshake; a connection that does not send STARTTLS
                 gets a plain working session (raw sockets)
options: --cert FILE --key FILE      server certificate (starttls, implicit)
         --user U --password P       AUTH PLAIN, LOGIN and CRAM-MD5 accept these
         --token T                   AUTH XOAUTH2 accepts user U with bearer token T
         --msgdir DIR                each message goes to DIR/N.eml
Prints "ready" on stdout once listening; runs until killed.
Needs Debian's python3-aiosmtpd (run with /usr/bin/python3)."""
import argparse
import base64
import hashlib
import hmac
import os
import socket
import ssl
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["starttls", "implicit", "plain", "plainauth", "brokentls"])
    p.add_argument("port", type=int)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--token", default="")
    p.add_argument("--msgdir")
    return p.parse_args()


ARGS = parse_args()
if os.environ.get("TLS_SMARTHOST_LOG"):
    # aiosmtpd's own log (every command, never AUTH responses) to stderr
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
COUNT = [0]


def store(data):
    COUNT[0] += 1
    if ARGS.msgdir:
        with open(os.path.join(ARGS.msgdir, "%d.eml" % COUNT[0]), "wb") as f:
            f.write(data)


def run_aiosmtpd():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    # AuthResult(handled=False) everywhere: aiosmtpd 1.4.3 defaults to
    # handled=True, which means "reply already sent" and sends no 535
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            store(envelope.original_content or envelope.content)
            return "250 2.0.0 stored as %d" % COUNT[0]

        async def auth_CRAM__MD5(self, server, args):
            challenge = ("<%d.%d@tls-smarthost.test>" % (os.getpid(), time.time_ns())).encode()
            resp = await server.challenge_auth(challenge)
            if not isinstance(resp, bytes) or b" " not in resp:
                return AuthResult(success=False, handled=False)
            user, digest = resp.rsplit(b" ", 1)
            want = hmac.new(ARGS.password.encode(), challenge, hashlib.md5).hexdigest()
            ok = user.decode() == ARGS.user and hmac.compare_digest(digest.decode(), want)
            return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user, b""))

        async def auth_XOAUTH2(self, server, args):
            if len(args) < 2:
                return AuthResult(success=False, handled=False)
            try:
                raw = base64.b64decode(args[1], validate=True).decode()
            except Exception:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
            fields = dict(kv.split("=", 1) for kv in raw.split("\x01") if "=" in kv)
            ok = (fields.get("user") == ARGS.user and ARGS.token != ""
                  and fields.get("auth") == "Bearer " + ARGS.token)
            if not ok:
                # Google and Microsoft send a JSON error as a challenge;
                # the client answers with an empty line, then gets 535
                await server.challenge_auth(b'{"status":"401","schemes":"bearer"}')
                return AuthResult(success=False, handled=False)
            return AuthResult(success=True, auth_data=LoginPassword(fields["user"].encode(), b""))

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == ARGS.user
              and auth_data.password.decode() == ARGS.password)
        return AuthResult(success=ok, handled=False)

    kwargs = {}
    if ARGS.mode in ("starttls", "implicit"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        auth = dict(authenticator=authenticator, auth_required=True)
        if ARGS.mode == "starttls":
            kwargs = dict(tls_context=ctx, require_starttls=True, auth_require_tls=True, **auth)
        else:
            # aiosmtpd 1.4.3 does not count implicit TLS as TLS for
            # auth_require_tls (AUTH would not be offered): the whole
            # connection is TLS anyway
            kwargs = dict(ssl_context=ctx, auth_require_tls=False, **auth)
    elif ARGS.mode == "plainauth":
        kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    ctl = Controller(Handler(), hostname="127.0.0.1", port=ARGS.port,
                     server_hostname="tls-smarthost.test", **kwargs)
    ctl.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        ctl.stop()


def broken_session(conn):
    f = conn.makefile("rwb")

    def say(line):
        f.write((line + "\r\n").encode())
        f.flush()

    say("220 broken.test ESMTP")
    data = []
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.decode("latin-1").rstrip("\r\n")
        verb = cmd[:4].upper()
        if verb == "EHLO":
            say("250-broken.test")
            say("250-PIPELINING")
            say("250 STARTTLS")
        elif verb == "STAR":
            say("220 2.0.0 go ahead")
            time.sleep(0.2)
            say("this is not TLS")
            time.sleep(0.2)
            return
        elif verb == "DATA":
            say("354 go on")
            while True:
                line = f.readline()
                if not line or line in (b".\r\n", b".\n"):
                    break
                data.append(line)
            store(b"".join(data))
            say("250 2.0.0 stored in clear")
        elif verb == "QUIT":
            say("221 bye")
            return
        else:
            say("250 2.0.0 ok")


def run_broken():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", ARGS.port))
    ls.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=lambda c=conn: (broken_session(c), c.close()), daemon=True).start()


if __name__ == "__main__":
    if ARGS.mode == "brokentls":
        run_broken()
    else:
        run_aiosmtpd()
    sys.exit(0)
