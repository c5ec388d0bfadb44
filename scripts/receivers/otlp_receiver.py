#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver for the tests (what an OpenTelemetry Collector's otlphttp
receiver accepts): POST /v1/traces with an ExportTraceServiceRequest as protobuf
(application/x-protobuf) or as OTLP JSON (application/json: trace and span ids in hex, as the
OTLP spec says, not protobuf's base64), optionally gzip-encoded (each span line says which).
Anything else is refused as a collector would (404, 405, 415, 400). Each span received is
appended to --out as one JSON line: trace and span ids in hex, parent, name, kind,
attributes, status, times and the resource's service.name. GET /spans returns them all.
With --count-only (the benchmarks) each request is still decoded and its ids checked, but only
its span count is written, as {"spans": n}: a benchmark sharing two cores with this receiver
then measures Sluice, not Python building a dictionary per span.
"""
import argparse
import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
lock = threading.Lock()


def value(v):
    """An AnyValue as a plain Python value."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which) if which else None


def hex_ids_to_base64(doc):
    """OTLP/JSON spells ids in hex; protobuf's JSON mapping reads bytes as base64. A collector
    converts them; an id that is not hex is refused, as a collector refuses it."""
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for holder in [s] + s.get("links", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if holder.get(key):
                            holder[key] = base64.b64encode(bytes.fromhex(holder[key])).decode()
    return doc


def spans_of(request):
    for rs in request.resource_spans:
        resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                if len(s.trace_id) != 16 or len(s.span_id) != 8 or s.trace_id == bytes(16):
                    raise ValueError("invalid trace or span id")
                yield {
                    "service": resource.get("service.name"),
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": KINDS.get(s.kind, str(s.kind)),
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": {kv.key: value(kv.value) for kv in s.attributes},
                    "status": {0: "unset", 1: "ok", 2: "error"}.get(s.status.code, "?"),
                    "status_message": s.status.message,
                    "trace_state": s.trace_state,
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano,
                                "attributes": {kv.key: value(kv.value) for kv in e.attributes}} for e in s.events],
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(), "trace_state": l.trace_state,
                               "attributes": {kv.key: value(kv.value) for kv in l.attributes}} for l in s.links],
                }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection, as a collector does (every reply has a length)
    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/x-protobuf"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/spans":
            return self.reply(404)
        with open(self.server.out, "rb") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        self.reply(200, json.dumps(lines).encode(), "application/json")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))  # read first: the connection is kept
        if self.path != "/v1/traces":
            return self.reply(404)
        with lock:
            busy = self.server.fail_first > 0
            self.server.fail_first -= busy
        if busy:  # --fail-first: a collector that is overloaded for a moment
            return self.reply(503, b"busy", "text/plain")
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            if ctype == "application/x-protobuf":
                request.ParseFromString(body)
            elif ctype == "application/json":
                json_format.ParseDict(hex_ids_to_base64(json.loads(body)), request)
            else:
                return self.reply(415, b"unsupported content type", "text/plain")
            if self.server.count_only:
                n = 0
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        for sp in ss.spans:
                            if len(sp.trace_id) != 16 or len(sp.span_id) != 8:
                                raise ValueError("invalid trace or span id")
                            n += 1
                spans = [{"spans": n}]
            else:
                spans = list(spans_of(request))
                for s in spans:
                    s["encoding"] = self.headers.get("Content-Encoding", "")
        except Exception as e:  # a collector answers 400 to a body it cannot decode
            return self.reply(400, str(e).encode(), "text/plain")
        with lock, open(self.server.out, "a") as f:
            for s in spans:
                f.write(json.dumps(s) + "\n")
        response = trace_service_pb2.ExportTraceServiceResponse()
        if ctype == "application/json":
            self.reply(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self.reply(200, response.SerializeToString())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count-only", action="store_true")
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first N exports 503")
    a = ap.parse_args()
    open(a.out, "a").close()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.out = a.out
    server.count_only = a.count_only
    server.fail_first = a.fail_first
    print("listening on 127.0.0.1:%d" % a.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
