#!/usr/bin/env python3
"""A raw gRPC client (grpcio, not Volley's code) that calls
`volley.v1.RunControl/SubmitRun` with a scenario of a given size, to check the
coordinator's message limit from the outside.

The request is hand-encoded protobuf: field 1 (`scenario_toml`, a string) and
nothing else; the scenario is not valid TOML, so a request under the limit is
refused as bad input, never run. Prints one JSON object per size given:
{"size": BYTES, "code": "OUT_OF_RANGE", "details": "..."} ("OK" for a call
that ended without an error).

usage: oversize_submit.py 127.0.0.1:PORT SIZE [SIZE ...]
"""

import json
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def submit_request(size):
    # Invalid TOML of exactly `size` bytes: '[' opens a table never closed.
    toml = b"[" + b"x" * (size - 1)
    return b"\x0a" + varint(len(toml)) + toml


def main():
    addr = sys.argv[1]
    # No client-side cap: the coordinator alone decides.
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(addr, options=options) as channel:
        call = channel.unary_stream(
            "/volley.v1.RunControl/SubmitRun",
            request_serializer=None,
            response_deserializer=None,
        )
        for size in map(int, sys.argv[2:]):
            code, details = "OK", ""
            try:
                for _ in call(submit_request(size), timeout=30):
                    pass
            except grpc.RpcError as e:
                code, details = e.code().name, e.details() or ""
            print(json.dumps({"size": size, "code": code, "details": details}), flush=True)


if __name__ == "__main__":
    main()
