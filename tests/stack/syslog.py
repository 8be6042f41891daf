#!/usr/bin/python3
"""syslog.py SOCKET LOGFILE - a minimal syslog receiver for the test stack.

Sendmail logs only through syslog(3), and these machines run no syslog
daemon. The stack's private Sendmail runs in a mount namespace whose
/dev/log is a symbolic link to SOCKET (see tests/stack/sendmail); this
program binds SOCKET (a unix datagram socket) and appends each message to
LOGFILE as one line, "Mon DD HH:MM:SS TAG[PID]: text", the priority
prefix removed, flushed at once so that tests can wait for a line. It runs
until SIGTERM.
"""

import os
import signal
import socket
import sys


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: syslog.py SOCKET LOGFILE\n")
        return 2
    path, logfile = sys.argv[1], sys.argv[2]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(logfile, "ab", buffering=0) as out:
        while True:
            data = sock.recv(65536)
            # "<PRI>Mon DD HH:MM:SS tag[pid]: text" (glibc's format)
            if data.startswith(b"<"):
                end = data.find(b">")
                if 0 < end < 5:
                    data = data[end + 1:]
            out.write(data.rstrip(b"\0\r\n").replace(b"\n", b" ") + b"\n")


if __name__ == "__main__":
    sys.exit(main())
