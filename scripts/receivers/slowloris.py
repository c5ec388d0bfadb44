#!/usr/bin/env python3
"""A slowloris client for the connection-guard test (loopback only, bounded in time).

    slowloris.py PORT TOKEN SECONDS [CONNECTIONS=1100] [REOPENS_PER_SECOND=200]

Holds CONNECTIONS sockets against 127.0.0.1:PORT, of four kinds: heads sent a few bytes at a
time, nothing sent at all, bodies trickled at a byte a second, and idle keep-alive after one
request. Each socket the server closes is opened again, up to REOPENS_PER_SECOND (slowhttptest,
the usual slowloris tool, opens 50 a second by default). Meanwhile it times GET /healthz
every 0.25 s and a small authenticated upload every second on fresh connections. Prints one JSON
line: the slowest health check and upload, how many failed, and how many attacking sockets the
server closed.
"""
import json, resource, selectors, socket, sys, time, http.client

port, token, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
count = int(sys.argv[4]) if len(sys.argv) > 4 else 1100
reopen_rate = float(sys.argv[5]) if len(sys.argv) > 5 else 200
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))

sel = selectors.DefaultSelector()
kinds = ["head", "silent", "body", "idle"]
state = {}  # sock -> [kind, step]
closed_by_server = 0
opened = 0
waiting = []  # kinds of closed sockets to open again, at most reopen_rate a second


def open_one(kind):
    global opened
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return
    opened += 1
    state[s] = [kind, 0]
    sel.register(s, selectors.EVENT_READ)


def send(s, data):
    try:
        s.send(data)
        return True
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False


def advance(s):
    """One more step of this socket's attack (called about every second)."""
    kind, step = state[s]
    state[s][1] = step + 1
    if kind == "head":
        piece = b"POST /uploads HTTP/1.1\r\nHost: x\r\n" if step == 0 else b"X-a%d: b\r\n" % step
        return send(s, piece)
    if kind == "body":
        if step == 0:
            return send(s, b"POST /uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: 10000000\r\n\r\n" % token.encode())
        return send(s, b"a")
    if kind == "idle" and step == 0:
        return send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return True


def timed(fn):
    t0 = time.monotonic()
    try:
        ok = fn()
    except Exception:
        ok = False
    return time.monotonic() - t0, ok


def health():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/healthz")
    ok = c.getresponse().status == 200
    c.close()
    return ok


def upload():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/uploads", body=b"id,v\n1,a\n", headers={"Authorization": "Bearer " + token, "Content-Type": "text/csv"})
    ok = c.getresponse().status in (200, 201, 202)
    c.close()
    return ok


for i in range(count):
    open_one(kinds[i % len(kinds)])

worst = {"health": 0.0, "upload": 0.0}
times = {"health": [], "upload": []}
failed = {"health": 0, "upload": 0}
checks = {"health": 0, "upload": 0}
end = time.monotonic() + seconds
next_step = next_health = next_upload = last_refill = time.monotonic()
budget = 0.0
while time.monotonic() < end:
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            data = b""
        if not data:  # the server closed it: open another of the same kind
            kind = state.pop(s)[0]
            sel.unregister(s)
            s.close()
            closed_by_server += 1
            waiting.append(kind)
    now = time.monotonic()
    budget = min(reopen_rate, budget + (now - last_refill) * reopen_rate)
    last_refill = now
    while waiting and budget >= 1:
        open_one(waiting.pop(0))
        budget -= 1
    if now >= next_step:
        next_step = now + 1
        for s in list(state):
            if not advance(s):
                kind = state.pop(s)[0]
                sel.unregister(s)
                s.close()
                closed_by_server += 1
                waiting.append(kind)
    for name, fn, every in (("health", health, 0.25), ("upload", upload, 1.0)):
        due = next_health if name == "health" else next_upload
        if now >= due:
            d, ok = timed(fn)
            checks[name] += 1
            worst[name] = max(worst[name], d)
            times[name].append(d)
            if not ok:
                failed[name] += 1
            if name == "health":
                next_health = time.monotonic() + every
            else:
                next_upload = time.monotonic() + every

for s in list(state):
    s.close()
def p95(xs):
    return round(sorted(xs)[int(0.95 * (len(xs) - 1))], 3) if xs else 0.0


print(json.dumps({"worst_health": round(worst["health"], 3), "worst_upload": round(worst["upload"], 3),
                  "p95_health": p95(times["health"]), "p95_upload": p95(times["upload"]),
                  "failed_health": failed["health"], "failed_upload": failed["upload"],
                  "health_checks": checks["health"], "uploads": checks["upload"],
                  "opened": opened, "closed_by_server": closed_by_server}))
