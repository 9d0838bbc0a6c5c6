#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver built on the official OpenTelemetry protobuf
definitions (PyPI `opentelemetry-proto`), for the trace tests: what mcpgate
exports is decoded exactly as a collector decodes it.

    .cache/venv/bin/python conformance/upstreams/otlp_receiver.py --port N \
        --record FILE [--hang]

`POST /v1/traces` with `Content-Type: application/x-protobuf`: the body is
parsed as `ExportTraceServiceRequest`; every span is appended to `--record`
as one JSON line, flushed at once:

    {"service": "...", "scope": "...", "trace_id": hex, "span_id": hex,
     "parent_span_id": hex or "", "name": ..., "kind": "SERVER" | "CLIENT" |
     "INTERNAL" | ..., "status": "OK" | "ERROR" | "UNSET",
     "attributes": {key: value}, "start_ns": int, "end_ns": int}

and the answer is an empty `ExportTraceServiceResponse` (200). A body that
does not parse gets 400. With `--hang` every request is read and then never
answered (an exporter's peer that is up but stuck). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

LOCK = threading.Lock()


def value_of(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def attributes(kvs) -> dict:
    return {kv.key: value_of(kv.value) for kv in kvs}


def spans_of(req: ExportTraceServiceRequest) -> list[dict]:
    out = []
    for rs in req.resource_spans:
        service = attributes(rs.resource.attributes).get("service.name", "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "service": service,
                    "scope": ss.scope.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                    "status": Status.StatusCode.Name(s.status.code).removeprefix("STATUS_CODE_"),
                    "attributes": attributes(s.attributes),
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                })
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--hang", action="store_true")
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if args.hang:
                time.sleep(3600)
                return
            if self.path != "/v1/traces":
                return self.answer(404, b"")
            req = ExportTraceServiceRequest()
            try:
                req.ParseFromString(body)
            except DecodeError:
                return self.answer(400, b"")
            with LOCK, open(args.record, "a") as f:
                for span in spans_of(req):
                    f.write(json.dumps(span) + "\n")
            self.answer(200, ExportTraceServiceResponse().SerializeToString())

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
