"""Posts files concurrently with aiohttp, as seed 000's sender does, and reports MB/s.

usage: client.py URL MODE CONCURRENCY FILE... (MODE: multipart | raw); prints JSON."""
import asyncio, json, os, sys, time
import aiohttp

async def main():
    url, mode, conc, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    token = os.environ.get("SLUICE_BENCH_TOKEN")
    headers = {"Authorization": "Bearer " + token} if token else {}
    sem = asyncio.Semaphore(conc)
    results = []
    async with aiohttp.ClientSession(headers=headers) as session:
        async def send(path):
            async with sem:
                with open(path, "rb") as f:
                    if mode == "multipart":
                        async with session.post(url, data={"file": f}) as r:
                            results.append((r.status, await r.json()))
                    else:
                        async with session.post(url, data=f, headers={"Content-Type": "text/csv"}) as r:
                            results.append((r.status, await r.json()))
        t0 = time.perf_counter()
        await asyncio.gather(*(send(p) for p in files))
        secs = time.perf_counter() - t0
    size = sum(os.path.getsize(p) for p in files)
    print(json.dumps({"seconds": secs, "bytes": size, "statuses": sorted({s for s, _ in results}),
                      "ids": [b.get("id") or b.get("job_id") for _, b in results]}))

asyncio.run(main())
