#!/usr/bin/env python3
"""An independent OTLP metrics receiver for the OpenTelemetry tests.

Built from the OpenTelemetry protocol's published protobufs (the PyPI
package opentelemetry-proto, its generated *_pb2 and *_pb2_grpc modules)
with grpcio: an OTLP MetricsService gRPC server and an HTTP handler for
POST /v1/metrics (application/x-protobuf), both on 127.0.0.1:0.

Every export request received is decoded and appended to --out as JSON
(rewritten atomically after each one):

    {"exports": [{"transport": "grpc"|"http", "received_unix_s": float,
                  "points": [{"metric", "kind", "unit", "attributes",
                              "value" | "count", "sum", "bounds",
                              "bucket_counts", "temporality",
                              "time_unix_nano"}]}]}

Prints "otlp receiver grpc 127.0.0.1:PORT http 127.0.0.1:PORT" once both
accept.
"""

import argparse
import http.server
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def points(request):
    out = []
    for rm in request.resource_metrics:
        resource = {a.key: any_value(a.value) for a in rm.resource.attributes}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                for p in data.data_points:
                    pt = {
                        "metric": m.name,
                        "kind": kind,
                        "unit": m.unit,
                        "scope": sm.scope.name,
                        "service": resource.get("service.name"),
                        "attributes": {a.key: any_value(a.value) for a in p.attributes},
                        "time_unix_nano": p.time_unix_nano,
                    }
                    if kind == "histogram":
                        pt["count"] = p.count
                        pt["sum"] = p.sum
                        pt["bounds"] = list(p.explicit_bounds)
                        pt["bucket_counts"] = list(p.bucket_counts)
                        pt["temporality"] = data.aggregation_temporality
                    elif kind in ("sum", "gauge"):
                        pt["value"] = (
                            p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        )
                        if kind == "sum":
                            pt["temporality"] = data.aggregation_temporality
                            pt["monotonic"] = data.is_monotonic
                    out.append(pt)
    return out


class Store:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.exports = []
        self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"exports": self.exports}, f)
        os.replace(tmp, self.path)

    def add(self, transport, request):
        with self.lock:
            self.exports.append(
                {
                    "transport": transport,
                    "received_unix_s": time.time(),
                    "points": points(request),
                }
            )
            self.write()


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store):
        self.store = store

    def Export(self, request, context):
        self.store.add("grpc", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def http_handler(store):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/metrics":
                self.reply(404, b"")
                return
            if self.headers.get("Content-Type") != "application/x-protobuf":
                self.reply(415, b"")
                return
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            store.add("http", request)
            self.reply(200, metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())

        def reply(self, code, body):
            self.send_response(code)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    store = Store(args.out)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(store), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http_handler(store))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"otlp receiver grpc 127.0.0.1:{grpc_port} http 127.0.0.1:{httpd.server_address[1]}",
        flush=True,
    )
    stop.wait()
    httpd.shutdown()
    server.stop(0)
    sys.exit(0)


if __name__ == "__main__":
    main()
