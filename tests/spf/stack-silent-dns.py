#!/usr/bin/python3
"""stack-silent-dns.py PORT LIFETIME - a DNS server that never answers.

Binds 127.0.0.1:PORT over UDP (and TCP, so a client falling back to TCP
finds no answer there either), reads every query and drops it, and keeps
accepted TCP connections open without a word. Prints "ready" once bound
and "query udp|tcp" for each query it drops. Exits by itself after LIFETIME
seconds (at most 600) so a test that dies cannot leave it behind; the test
stops it earlier by its PID. Loopback only. Used by
tests/integration/251-spf-temperror.sh (weir's resolver pointed here with
WEIR_STACK_RESOLVER: every SPF lookup must end in temperror within
spf.timeout).
"""
import select
import socket
import sys
import time


def main():
    port = int(sys.argv[1])
    lifetime = min(float(sys.argv[2]), 600.0)
    deadline = time.monotonic() + lifetime
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    print("ready", flush=True)
    conns, queries = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([udp, tcp] + conns, [], [], min(left, 1.0))
        for s in r:
            if s is udp:
                udp.recvfrom(65535)
                queries += 1
                print("query udp", flush=True)
            elif s is tcp:
                c, _ = tcp.accept()
                conns.append(c)
            else:
                try:
                    data = s.recv(65535)
                except OSError:
                    data = b""
                if data:
                    queries += 1
                    print("query tcp", flush=True)
                else:
                    conns.remove(s)
                    s.close()
    print("queries %d" % queries, flush=True)


if __name__ == "__main__":
    main()
