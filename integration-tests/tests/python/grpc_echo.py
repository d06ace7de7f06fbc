#!/usr/bin/env python3
"""An independent gRPC server for the protocol tests (grpcio, not Volley).

Answers every unary method of every service by echoing the request message
bytes back (no protobuf schema: the bytes pass through untouched), counts the
calls it answered, and with --error-every N fails every Nth call with
UNAVAILABLE (or the status named by --error-code, e.g. NOT_FOUND). The counts are kept in --stats FILE as JSON, rewritten
atomically after every call, so the test can compare them with its report.

Prints "grpc echo listening on 127.0.0.1:PORT" once it accepts calls.
"""

import argparse
import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc


class Echo(grpc.GenericRpcHandler):
    def __init__(self, error_every, stats_path, error_code=grpc.StatusCode.UNAVAILABLE):
        self.error_every = error_every
        self.error_code = error_code
        self.stats_path = stats_path
        self.lock = threading.Lock()
        self.calls = 0
        self.ok = 0
        self.errors = 0
        self.bytes_in = 0
        self.methods = {}
        self.write_stats()

    def write_stats(self):
        if self.stats_path is None:
            return
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                {
                    "calls": self.calls,
                    "ok": self.ok,
                    "errors": self.errors,
                    "bytes_in": self.bytes_in,
                    "methods": self.methods,
                },
                f,
            )
        os.replace(tmp, self.stats_path)

    def service(self, handler_call_details):
        method = handler_call_details.method

        def call(request, context):
            # request is the raw message (no deserializer).
            with self.lock:
                self.calls += 1
                fail = self.error_every and self.calls % self.error_every == 0
                if fail:
                    self.errors += 1
                else:
                    self.ok += 1
                self.bytes_in += len(request)
                self.methods[method] = self.methods.get(method, 0) + 1
                self.write_stats()
            if fail:
                context.abort(self.error_code, "injected by --error-every")
            return request

        return grpc.unary_unary_rpc_method_handler(call)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--error-every", type=int, default=0, metavar="N")
    p.add_argument("--error-code", default="UNAVAILABLE", metavar="NAME",
                   help="the status of the failed calls (a grpc.StatusCode name; default UNAVAILABLE)")
    p.add_argument("--stats", metavar="FILE")
    p.add_argument("--workers", type=int, default=32)
    args = p.parse_args()
    if args.error_every < 0:
        p.error("--error-every must be 0 (never) or more")
    code = getattr(grpc.StatusCode, args.error_code.upper(), None)
    if code is None or code == grpc.StatusCode.OK:
        p.error(f"--error-code: not a failing grpc.StatusCode name: {args.error_code}")

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        handlers=[Echo(args.error_every, args.stats, code)],
        options=[("grpc.max_concurrent_streams", 1000)],
    )
    port = server.add_insecure_port(args.listen)
    if port == 0:
        print(f"grpc echo: cannot listen on {args.listen}", file=sys.stderr)
        sys.exit(1)
    server.start()
    host = args.listen.rsplit(":", 1)[0]
    print(f"grpc echo listening on {host}:{port}", flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
