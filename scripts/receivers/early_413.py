#!/usr/bin/env python3
"""Posts a body over the server's limit with the clients users have, and prints what each saw.

    early_413.py PORT TOKEN BYTES

Python's urllib and aiohttp send the whole body before reading the answer, so they see the 413
only if the server reads (drains) the body; curl sends `Expect: 100-continue` and must get the
413 without sending it. One JSON line: per client, the status (0 when it got none) and seconds.
"""
import asyncio, json, subprocess, sys, tempfile, time, urllib.error, urllib.request

import aiohttp

port, token, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
url = f"http://127.0.0.1:{port}/uploads"
headers = {"Authorization": "Bearer " + token, "Content-Type": "text/csv"}
body = b"x" * size
out = {}

t0 = time.monotonic()
try:
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST", headers=headers), timeout=30)
    out["urllib"] = [200, 0]
except urllib.error.HTTPError as e:
    out["urllib"] = [e.code, round(time.monotonic() - t0, 3)]
except Exception as e:
    out["urllib"] = [0, round(time.monotonic() - t0, 3), repr(e)]


async def post():
    t0 = time.monotonic()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as r:
                await r.read()
                out["aiohttp"] = [r.status, round(time.monotonic() - t0, 3)]
    except Exception as e:
        out["aiohttp"] = [0, round(time.monotonic() - t0, 3), repr(e)]

asyncio.run(post())

with tempfile.NamedTemporaryFile() as f:
    f.write(body)
    f.flush()
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
                        "-H", "Authorization: Bearer " + token, "--data-binary", "@" + f.name, url], capture_output=True, text=True)
    out["curl"] = [int(r.stdout or 0), round(time.monotonic() - t0, 3)]
print(json.dumps(out))
