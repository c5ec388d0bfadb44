#!/usr/bin/env python3
"""A local reverse geocoder answering like Nominatim's /reverse?format=jsonv2&lat=..&lon=..,
for tests and benchmarks: deterministic addresses, a call counter, and faults on request.

  geocoder.py --port 8090 [--fail-rate 0.1] [--throttle-rate 0.1] [--slow-rate 0.05 --slow-seconds 2]

  geocoder.py --port 8090 --latency 0.05   # asyncio: every answer after 50 ms, using no CPU

GET /stats -> {"calls": N, "max_per_second": M, "first": t0, "last": t1}: M is the most
calls started in any one second (to check a client's rate limit), t0/t1 the first and last
call's start (monotonic seconds). Latitudes outside [-90, 90] answer 400.
"""
import argparse, asyncio, bisect, json, random, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
calls = []  # start times


def max_per_second():
    best, j = 0, 0
    for i, t in enumerate(calls):
        while calls[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def stats():
    with lock:
        return {"calls": len(calls), "max_per_second": max_per_second(), "first": calls[0] if calls else None, "last": calls[-1] if calls else None}


def answer(path):
    """(status, body, headers, seconds to wait first) for a GET of `path`."""
    u = urlparse(path)
    if u.path == "/stats":
        return 200, stats(), (), 0
    if u.path == "/healthz":
        return 200, {"ok": True}, (), 0
    if u.path != "/reverse":
        return 404, {"error": "not found"}, (), 0
    with lock:
        bisect.insort(calls, time.monotonic())
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    r = random.random()
    if r < A.throttle_rate:
        return 429, {"error": "slow down"}, [("Retry-After", "0")], 0
    if r < A.throttle_rate + A.fail_rate:
        return 503, {"error": "try again"}, (), 0
    wait = A.latency + (A.slow_seconds if r < A.throttle_rate + A.fail_rate + A.slow_rate else 0)
    try:
        lat, lon = float(q["lat"]), float(q["lon"])
    except (KeyError, ValueError):
        return 400, {"error": "lat and lon are required"}, (), wait
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        return 400, {"error": "coordinates out of range"}, (), wait
    n = int(abs(lat) * 1000 + abs(lon) * 10) % 997
    city = ["São Paulo", "Recife", "Curitiba", "Belém", "Natal"][n % 5]
    return 200, {"place_id": n, "lat": q["lat"], "lon": q["lon"], "display_name": "Rua %d, %s, Brasil" % (n, city),
                 "address": {"road": "Rua %d" % n, "city": city, "state": "UF%d" % (n % 27), "postcode": "%05d-000" % n, "country": "Brasil"}}, (), wait


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle: otherwise headers and body go out as two segments
    # and the client's delayed ACK adds ~40 ms to every keep-alive request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def do_GET(self):
        status, body, headers, wait = answer(self.path)
        if wait:
            time.sleep(wait)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


async def serve_connection(reader, writer):
    """HTTP/1.1 keep-alive GETs, each answered after its wait without holding a thread."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:")), 0)
            if length:
                await reader.readexactly(length)
            status, body, headers, wait = answer(path) if method == "GET" else (405, {"error": "GET only"}, (), 0)
            if wait:
                await asyncio.sleep(wait)
            data = json.dumps(body).encode()
            extra = "".join("%s: %s\r\n" % h for h in headers)
            writer.write(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                          % (status, REASONS.get(status, "Error"), len(data), extra)).encode() + data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve_async():
    server = await asyncio.start_server(serve_connection, A.host, A.port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--throttle-rate", type=float, default=0.0)
    ap.add_argument("--slow-rate", type=float, default=0.0)
    ap.add_argument("--slow-seconds", type=float, default=2.0)
    ap.add_argument("--latency", type=float, default=0.0, help="every answer after this many seconds, served by asyncio (no thread per connection)")
    A = ap.parse_args()
    if A.latency > 0:
        asyncio.run(serve_async())
    else:
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer((A.host, A.port), Handler).serve_forever()
