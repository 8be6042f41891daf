#!/usr/bin/python3
"""fake-dns - a tiny DNS server for test-relay's MX scenarios.

usage: fake-dns.py PORT ZONEFILE
ZONEFILE lines: NAME TYPE VALUE, TYPE one of A, AAAA, MX ("PREF TARGET",
TARGET "." for a null MX), FAIL (every query of NAME gets SERVFAIL) or
REFER NSNAME (a referral: no answer, an NS record in the authority
section, as an authoritative server gives for a delegated name).
A name that has no record at all is NXDOMAIN; a name with records of
other types only answers NOERROR without data. UDP on 127.0.0.1, answers
with RA set (weir's resolver forwards to it). Prints "ready" once bound."""
import socket
import struct
import sys

TYPES = {"A": 1, "MX": 15, "AAAA": 28}


def load(path):
    zone = {}
    with open(path) as f:
        for line in f:
            parts = line.split(None, 2)
            if len(parts) < 3:
                continue
            name, rtype, value = parts[0].lower().rstrip("."), parts[1].upper(), parts[2].strip()
            zone.setdefault(name, []).append((rtype, value))
    return zone


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def parse_question(data):
    pos, labels = 12, []
    while data[pos] != 0:
        n = data[pos]
        labels.append(data[pos + 1:pos + 1 + n].decode("latin-1"))
        pos += n + 1
    qtype, qclass = struct.unpack("!HH", data[pos + 1:pos + 5])
    return ".".join(labels).lower(), qtype, qclass, data[12:pos + 5]


def rdata(rtype, value):
    if rtype == "A":
        return socket.inet_pton(socket.AF_INET, value)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    pref, target = value.split()
    return struct.pack("!H", int(pref)) + encode_name("" if target == "." else target)


def answer(zone, data):
    qid, flags = struct.unpack("!HH", data[:4])
    name, qtype, _, question = parse_question(data)
    records = zone.get(name)
    rcode, answers, authority = 0, [], []
    if records is None:
        rcode = 3
    elif any(t == "FAIL" for t, _ in records):
        rcode = 2
    elif any(t == "REFER" for t, _ in records):
        ns = encode_name([v for t, v in records if t == "REFER"][0])
        authority.append(b"\xc0\x0c" + struct.pack("!HHIH", 2, 1, 60, len(ns)) + ns)
    else:
        for rtype, value in records:
            if TYPES.get(rtype) == qtype:
                rd = rdata(rtype, value)
                answers.append(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(rd)) + rd)
    rflags = 0x8000 | (0 if authority else 0x0400) | (flags & 0x0100) | 0x0080 | rcode
    head = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), len(authority), 0)
    return head + question + b"".join(answers) + b"".join(authority)


def main():
    port, zone = int(sys.argv[1]), load(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(zone, data), peer)
        except Exception as e:  # a query we cannot parse: no answer
            print("bad query:", e, file=sys.stderr, flush=True)


main()
