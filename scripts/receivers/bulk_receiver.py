#!/usr/bin/env python3
"""A receiver like seed 000's: FastAPI + uvicorn, POST /bulk_upload with a multipart `file`,
each file stored in --dir. It honours Idempotency-Key (a key seen before is answered 200 and
not stored again) and can misbehave on purpose, for Sluice's export tests:

  --fail-rate P      answer 500 before storing
  --throttle-rate P  answer 429 with Retry-After: 1
  --slow-rate P      sleep --slow-seconds before answering (past the client's timeout)
  --refuse-every N   answer 422 to batches whose number (from the key sluice-<n>-...) is a multiple of N
  --delay S          sleep S seconds in every request (to kill an exporter mid-run)
"""
import argparse, asyncio, os, random, re, uuid

import uvicorn
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--fail-rate", type=float, default=0)
ap.add_argument("--throttle-rate", type=float, default=0)
ap.add_argument("--slow-rate", type=float, default=0)
ap.add_argument("--slow-seconds", type=float, default=3)
ap.add_argument("--refuse-every", type=int, default=0)
ap.add_argument("--delay", type=float, default=0)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
os.makedirs(a.dir, exist_ok=True)
rng = random.Random(a.seed)
app = FastAPI()
seen = set(n.split(".")[0] for n in os.listdir(a.dir))


@app.post("/bulk_upload")
async def bulk_upload(request: Request, file: UploadFile = File(...)):
    key = request.headers.get("idempotency-key")
    if a.delay:
        await asyncio.sleep(a.delay)
    if a.refuse_every and key:
        m = re.match(r"sluice-(\d+)-", key)
        if m and int(m.group(1)) % a.refuse_every == 0:
            return JSONResponse({"detail": "refused on purpose"}, status_code=422)
    r = rng.random()
    if r < a.fail_rate:
        return JSONResponse({"detail": "failing on purpose"}, status_code=500)
    r -= a.fail_rate
    if r < a.throttle_rate:
        return JSONResponse({"detail": "slow down"}, status_code=429, headers={"Retry-After": "1"})
    r -= a.throttle_rate
    if r < a.slow_rate:
        await asyncio.sleep(a.slow_seconds)
    data = await file.read()
    name = key or str(uuid.uuid4())
    if name in seen:
        return {"status": "duplicate", "key": name}
    path = os.path.join(a.dir, name + ".part")
    with open(path, "wb") as f:
        f.write(data)
    os.rename(path, os.path.join(a.dir, name + "." + (file.filename or "x").rsplit(".", 1)[-1]))
    seen.add(name)
    return {"status": "stored", "key": name, "bytes": len(data)}


@app.get("/healthz")
async def healthz():
    return {"ok": True}


uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")
