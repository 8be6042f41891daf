#!/usr/bin/env python3
"""webhook-server - a webhook receiver for tests/policy/test-webhook.

    webhook-server.py PORTFILE LOGFILE SECRET

Listens on 127.0.0.1 (a free port, written to PORTFILE once listening)
and appends a line per POST to LOGFILE, tab separated:

    PATH  X-Weir-Event  X-Weir-Delivery  X-Weir-Signature  Content-Type
    SIGNATURE_OK(1|0)  NTH_REQUEST_FOR_PATH  BODY_AS_HEX

SIGNATURE_OK is this side's own check of the signature (Python's hmac,
independent of the OpenSSL code under test). The answer depends on the
path's first component: /fail2/... 500 to the first two requests for
that path, then 200; /fail/... always 500; /redirect/... 302 to /ok/;
/hang/... never answers (the request is logged first); anything else
200.
"""
import hashlib
import hmac
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

portfile, logfile, secret = sys.argv[1], sys.argv[2], sys.argv[3].encode()
lock = threading.Lock()
counts = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as most receivers

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = self.headers.get("X-Weir-Signature", "")
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        with lock:
            counts[self.path] = counts.get(self.path, 0) + 1
            nth = counts[self.path]
            fields = [self.path, self.headers.get("X-Weir-Event", ""),
                      self.headers.get("X-Weir-Delivery", ""), sig,
                      self.headers.get("Content-Type", ""),
                      "1" if hmac.compare_digest(sig, want) else "0", str(nth), body.hex()]
            with open(logfile, "a") as f:
                f.write("\t".join(fields) + "\n")
        kind = self.path.split("/")[1] if self.path.count("/") >= 1 else ""
        if kind == "hang":
            time.sleep(120)
            return
        headers = {}
        if (kind == "fail2" and nth <= 2) or kind == "fail":
            status = 500
        elif kind == "redirect":
            status, headers = 302, {"Location": "/ok/redirected"}
        else:
            status = 200
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, fmt, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
