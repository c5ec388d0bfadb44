#!/usr/bin/env python3
"""A local reverse geocoder answering like Nominatim's /reverse?format=jsonv2&lat=..&lon=..,
for tests and benchmarks: deterministic addresses, a call counter, and faults on request.

  geocoder.py --port 8090 [--fail-rate 0.1] [--throttle-rate 0.1] [--slow-rate 0.05 --slow-seconds 2]

GET /stats -> {"calls": N, "max_per_second": M}: M is the most calls started in any one
second (to check a client's rate limit). Latitudes outside [-90, 90] answer 400.
"""
import argparse, bisect, json, random, threading, time
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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle: otherwise headers and body go out as two segments
    # and the client's delayed ACK adds ~40 ms to every keep-alive request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/stats":
            with lock:
                return self.send(200, {"calls": len(calls), "max_per_second": max_per_second()})
        if u.path == "/healthz":
            return self.send(200, {"ok": True})
        if u.path != "/reverse":
            return self.send(404, {"error": "not found"})
        with lock:
            bisect.insort(calls, time.monotonic())
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        r = random.random()
        if r < A.throttle_rate:
            return self.send(429, {"error": "slow down"}, [("Retry-After", "0")])
        if r < A.throttle_rate + A.fail_rate:
            return self.send(503, {"error": "try again"})
        if r < A.throttle_rate + A.fail_rate + A.slow_rate:
            time.sleep(A.slow_seconds)
        try:
            lat, lon = float(q["lat"]), float(q["lon"])
        except (KeyError, ValueError):
            return self.send(400, {"error": "lat and lon are required"})
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            return self.send(400, {"error": "coordinates out of range"})
        n = int(abs(lat) * 1000 + abs(lon) * 10) % 997
        city = ["São Paulo", "Recife", "Curitiba", "Belém", "Natal"][n % 5]
        self.send(200, {"place_id": n, "lat": q["lat"], "lon": q["lon"], "display_name": "Rua %d, %s, Brasil" % (n, city),
                        "address": {"road": "Rua %d" % n, "city": city, "state": "UF%d" % (n % 27), "postcode": "%05d-000" % n, "country": "Brasil"}})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--throttle-rate", type=float, default=0.0)
    ap.add_argument("--slow-rate", type=float, default=0.0)
    ap.add_argument("--slow-seconds", type=float, default=2.0)
    A = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((A.host, A.port), Handler).serve_forever()
