#!/usr/bin/python3
"""stackutil.py - small network helpers for the test stack (stdlib only).

  freeports N            print N distinct free TCP ports on 127.0.0.1 (all
                         held open at once while picking, so no duplicates;
                         the UDP port of the same number is checked free too)
  freeaddrs N PORT       print N distinct random loopback addresses
                         (127.X.Y.Z, X >= 100) where TCP PORT is free; the
                         test MX hosts listen on port 25 of such addresses
  waittcp PORT SECS      wait until 127.0.0.1:PORT accepts a connection
  waitbanner PORT SECS [ADDR] [tls]
                         wait until ADDR:PORT (default 127.0.0.1) answers
                         with a 220 line; "tls": after a TLS handshake
                         (implicit TLS, no certificate check)
  waitunix PATH SECS     wait until the unix socket PATH accepts a connection
  dns PORT NAME [TYPE]   query 127.0.0.1@PORT over UDP; print the answers
                         (A, MX, TXT), exit 0 if there was at least one
  waitdns PORT NAME SECS wait until NAME resolves (type A)
"""

import random
import socket
import struct
import sys
import time


def freeports(n):
    held, ports = [], []
    while len(ports) < n:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            u.close()
            continue
        held += [s, u]
        ports.append(port)
    for s in held:
        s.close()
    print(" ".join(str(p) for p in ports))


def freeaddrs(n, port):
    held, addrs = [], []
    tries = 0
    while len(addrs) < n and tries < 1000:
        tries += 1
        a = "127.%d.%d.%d" % (random.randint(100, 250), random.randint(1, 254), random.randint(2, 250))
        if a in addrs:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((a, port))
        except OSError:
            s.close()
            continue
        held.append(s)
        addrs.append(a)
    for s in held:
        s.close()
    if len(addrs) < n:
        return 1
    print(" ".join(addrs))
    return 0


def waittcp(port, secs, banner=False, addr="127.0.0.1", tls=False):
    deadline = time.time() + secs
    last = "no attempt"
    while time.time() < deadline:
        try:
            with socket.create_connection((addr, port), timeout=2) as s0:
                if not banner:
                    return 0
                s = s0
                if tls:
                    import ssl
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s = ctx.wrap_socket(s0)
                s.settimeout(max(1, deadline - time.time()))
                line = s.makefile("rb").readline()
                if line.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                    except OSError:
                        pass
                    return 0
                last = "banner %r" % line
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    print("%s:%d not answering after %ss (%s)" % (addr, port, secs, last), file=sys.stderr)
    return 1


def waitunix(path, secs):
    deadline = time.time() + secs
    last = "no attempt"
    while time.time() < deadline:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect(path)
            return 0
        except OSError as e:
            last = str(e)
        finally:
            s.close()
        time.sleep(0.1)
    print("%s not answering after %ss (%s)" % (path, secs, last), file=sys.stderr)
    return 1


TYPES = {"A": 1, "NS": 2, "CNAME": 5, "MX": 15, "TXT": 16, "AAAA": 28}


def _name(msg, off):
    labels, jumped, end = [], False, off
    while True:
        ln = msg[off]
        if ln & 0xC0 == 0xC0:
            ptr = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            if not jumped:
                end = off + 2
            jumped, off = True, ptr
            continue
        if ln == 0:
            if not jumped:
                end = off + 1
            break
        labels.append(msg[off + 1:off + 1 + ln].decode("ascii", "replace"))
        off += 1 + ln
    return ".".join(labels) + ".", end


def dns(port, name, qtype="A", quiet=False):
    t = TYPES[qtype.upper()]
    qid = random.randint(0, 65535)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", t, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(q, ("127.0.0.1", port))
        msg, _ = s.recvfrom(65535)
    except OSError as e:
        if not quiet:
            print("dns: %s" % e, file=sys.stderr)
        return 2
    finally:
        s.close()
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _name(msg, off)
        off += 4
    found = 0
    for _ in range(an):
        rname, off = _name(msg, off)
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + rdlen]
        if rtype == 1:
            val = socket.inet_ntoa(rd)
        elif rtype == 15:
            val = "%d %s" % (struct.unpack("!H", rd[:2])[0], _name(msg, off + 2)[0])
        elif rtype == 16:
            parts, i = [], 0
            while i < len(rd):
                parts.append(rd[i + 1:i + 1 + rd[i]].decode("utf-8", "replace"))
                i += 1 + rd[i]
            val = " ".join('"%s"' % p for p in parts)
        else:
            val = rd.hex()
        off += rdlen
        if rtype == t:
            found += 1
            if not quiet:
                print("%s %d %s %s" % (rname, ttl, qtype.upper(), val))
    if not quiet and not found:
        print("dns: no %s answer for %s (rcode %d)" % (qtype, name, flags & 0xF), file=sys.stderr)
    return 0 if found else 1


def waitdns(port, name, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        if dns(port, name, "A", quiet=True) == 0:
            return 0
        time.sleep(0.1)
    return dns(port, name, "A")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, a = argv[1], argv[2:]
    if cmd == "freeports":
        freeports(int(a[0]))
        return 0
    if cmd == "freeaddrs":
        return freeaddrs(int(a[0]), int(a[1]))
    if cmd == "waittcp":
        return waittcp(int(a[0]), float(a[1]))
    if cmd == "waitbanner":
        return waittcp(int(a[0]), float(a[1]), banner=True,
                       addr=a[2] if len(a) > 2 and a[2] else "127.0.0.1",
                       tls=len(a) > 3 and a[3] == "tls")
    if cmd == "waitunix":
        return waitunix(a[0], float(a[1]))
    if cmd == "dns":
        return dns(int(a[0]), a[1], a[2] if len(a) > 2 else "A")
    if cmd == "waitdns":
        return waitdns(int(a[0]), a[1], float(a[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
