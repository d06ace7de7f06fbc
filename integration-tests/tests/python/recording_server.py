#!/usr/bin/env python3
"""An independent HTTP/1.1 server that records every request (stdlib only).

Used by the template and check tests (tests/templates.rs): it is not Volley's
built-in target, so what it logs is what went over the wire.

- Binds --listen (default 127.0.0.1:0) and prints
  "recording server listening on 127.0.0.1:PORT" once it accepts connections.
- HTTP/1.1 with keep-alive: every answer has a Content-Length, and the request
  body is read by Content-Length (or chunked transfer coding).
- Appends one JSON line per request to --log FILE:
  {"n": arrival number (1-based), "method", "path" (the request target as sent),
   "headers": {lower-case name: value}, "body": the body as text (bytes decoded
   as Latin-1, so every byte maps to one character)}.
  The line is written (and flushed) before the answer is sent.
- Answers `200 {"status":"ok"}` (content-type application/json). With
  --error-every N, the Nth, 2Nth, ... request to arrive (counted over all
  connections, in arrival order) gets `{"status":"error"}` instead, still with
  the same status. --status CODE answers every request with CODE.

Stops on SIGTERM or SIGINT.
"""

import argparse
import json
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OK = b'{"status":"ok"}'
ERROR = b'{"status":"error"}'


class Recorder:
    def __init__(self, log_path, error_every, status):
        self.log = open(log_path, "a", encoding="utf-8")
        self.error_every = error_every
        self.status = status
        self.lock = threading.Lock()
        self.n = 0

    def record(self, method, path, headers, body):
        """Numbers the request, logs it, and returns (status, body) to answer."""
        with self.lock:
            self.n += 1
            n = self.n
            line = {
                "n": n,
                "method": method,
                "path": path,
                "headers": headers,
                "body": body.decode("latin-1"),
            }
            self.log.write(json.dumps(line, separators=(",", ":")) + "\n")
            self.log.flush()
        bad = self.error_every and n % self.error_every == 0
        return self.status, ERROR if bad else OK


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "recording-server"
    sys_version = ""

    def log_message(self, *_):
        pass  # no per-request stderr lines

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers, up to the blank line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()  # CRLF after the chunk
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self):
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = self.server.recorder.record(self.command, self.path, headers, body)
        # One write per answer (head and body together): two small writes
        # on a keep-alive connection meet Nagle's algorithm and the peer's
        # delayed ACK, a 40 ms stall per request.
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer)}\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"
        out = (head + "\r\n").encode("latin-1")
        if self.command != "HEAD":
            out += answer
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default listen backlog (5) refuses bursts of new connections


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--log", required=True, metavar="FILE", help="JSON lines, one per request")
    p.add_argument("--error-every", type=int, default=0, metavar="N",
                   help='answer {"status":"error"} to every Nth request (0: never)')
    p.add_argument("--status", type=int, default=200, metavar="CODE",
                   help="the HTTP status of every answer (default 200)")
    args = p.parse_args()
    if args.error_every < 0:
        p.error("--error-every must be 0 (never) or more")
    if not 200 <= args.status <= 599:
        p.error("--status must be 200..599")

    host, port = args.listen.rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    server.recorder = Recorder(args.log, args.error_every, args.status)
    bound = server.server_address
    print(f"recording server listening on {bound[0]}:{bound[1]}", flush=True)

    def stop(*_):
        # shutdown() waits for serve_forever(), which runs in the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    server.serve_forever(poll_interval=0.2)
    server.recorder.log.flush()


if __name__ == "__main__":
    main()
