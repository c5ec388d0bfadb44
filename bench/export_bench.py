#!/usr/bin/env python3
"""Export benchmark: deliver the 1,000,000-row benchmark table to a FastAPI receiver like seed
000's, in 10,000-row CSV batches, 8 requests in flight, side by side in the same run:

  sluice     `sluice export --from registros --key id --to URL` (ledger, spool, idempotency keys)
  seed 000   the seed's approach in Python: anti-join against a ledger of sent ids, pandas
             batches -> CSV files -> aiohttp concurrent multipart POSTs -> append sent ids
  ceiling    the receiver alone: the same pre-made batch files posted by a tight aiohttp client

Each run starts from an empty receiver folder and an empty ledger; the figures are medians of
--runs runs. Every run checks that the receiver stored each id exactly once.
"""
import argparse, asyncio, glob, json, os, resource, shutil, sqlite3, statistics, subprocess, sys, time

import aiohttp
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, ".build", "release", "sluice")


def receiver(port, folder):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "receivers", "bulk_receiver.py"), "--port", str(port), "--dir", folder],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            subprocess.run(["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:%d/healthz" % port], check=True)
            return p
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    raise SystemExit("receiver did not start")


def check(folder, n):
    seen = 0
    ids = set()
    for f in glob.glob(os.path.join(folder, "*.csv")):
        with open(f) as fh:
            next(fh)
            for line in fh:
                ids.add(int(line.split(",", 1)[0]))
                seen += 1
    assert seen == n and len(ids) == n, "receiver holds %d rows, %d distinct, expected %d" % (seen, len(ids), n)


async def post_all(url, files, concurrency):
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as s:
        async def one(path):
            async with sem:
                form = aiohttp.FormData()
                form.add_field("file", open(path, "rb"), filename=os.path.basename(path), content_type="text/csv")
                async with s.post(url, data=form, headers={"Idempotency-Key": os.path.basename(path)}) as r:
                    await r.read()
                    return r.status == 200, path
        return await asyncio.gather(*(one(p) for p in files))


def seed000(db, url, work, batch, concurrency):
    """Seed 000 in Python: anti-join with the ledger, pandas batches to CSV, concurrent POSTs, ledger append."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS seed_sent (id INTEGER PRIMARY KEY)")
    df = pd.read_sql_query("SELECT * FROM registros WHERE id NOT IN (SELECT id FROM seed_sent) ORDER BY id", con)
    files = []
    for i, start in enumerate(range(0, len(df), batch)):
        path = os.path.join(work, "seed-%d.csv" % i)
        df.iloc[start:start + batch].to_csv(path, index=False)
        files.append((path, df["id"].iloc[start:start + batch]))
    results = asyncio.run(post_all(url, [p for p, _ in files], concurrency))
    ok = {p for good, p in results if good}
    for path, ids in files:
        if path in ok:
            con.executemany("INSERT INTO seed_sent (id) VALUES (?)", ((int(x),) for x in ids))
    con.commit()
    con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "export"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    db = os.path.join(a.out, "sluice.db")
    if not os.path.exists(db):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen.py"), "--rows", str(a.rows), "--out", a.out, "--base-only"], check=True)
        subprocess.run([SLUICE, "load", os.path.join(a.out, "base.csv"), "--into", "registros", "--key", "id", "--database", db, "--quiet"],
                       check=True, cwd=a.out, stdout=subprocess.DEVNULL)
    port = 27_000
    url = "http://127.0.0.1:%d/bulk_upload" % port
    folder = os.path.join(a.out, "received")
    times = {"sluice": [], "seed000": [], "ceiling": []}
    rss = []
    for run in range(a.runs):
        # Sluice.
        rx = receiver(port, folder)
        con = sqlite3.connect(db)
        con.execute("DROP TABLE IF EXISTS sluice_export_keys")
        con.execute("DROP TABLE IF EXISTS sluice_export_batches")
        con.commit()
        con.close()
        shutil.rmtree(os.path.join(a.out, ".sluice", "exports"), ignore_errors=True)
        t0 = time.perf_counter()
        code = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); " \
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        out = subprocess.run([sys.executable, "-c", code, SLUICE, "export", "--from", "registros", "--key", "id", "--to", url,
                              "--batch-size", str(a.batch), "--concurrency", str(a.concurrency), "--database", db],
                             check=True, capture_output=True, text=True, cwd=a.out).stdout
        times["sluice"].append(time.perf_counter() - t0)
        rss.append(int(out.strip()) / 1024)
        rx.kill()
        check(folder, a.rows)
        # Seed 000's approach.
        rx = receiver(port, folder)
        con = sqlite3.connect(db)
        con.execute("DROP TABLE IF EXISTS seed_sent")
        con.commit()
        con.close()
        t0 = time.perf_counter()
        seed000(db, url, os.path.join(a.out, "seed_files"), a.batch, a.concurrency)
        times["seed000"].append(time.perf_counter() - t0)
        rx.kill()
        check(folder, a.rows)
        # Ceiling: the same files, pre-made, posted by a tight client.
        rx = receiver(port, folder)
        files = sorted(glob.glob(os.path.join(a.out, "seed_files", "*.csv")))
        t0 = time.perf_counter()
        asyncio.run(post_all(url, files, a.concurrency))
        times["ceiling"].append(time.perf_counter() - t0)
        rx.kill()
        check(folder, a.rows)
    m = {k: statistics.median(v) for k, v in times.items()}
    print("\n%-34s %10s %12s %10s" % ("", "seconds", "rows/s", "ratio"))
    print("%-34s %10.2f %12.0f %9.2fx" % ("sluice export", m["sluice"], a.rows / m["sluice"], 1.0))
    print("%-34s %10.2f %12.0f %9.2fx" % ("seed 000 approach (pandas+aiohttp)", m["seed000"], a.rows / m["seed000"], m["seed000"] / m["sluice"]))
    print("%-34s %10.2f %12.0f %9.2fx" % ("receiver ceiling (pre-made files)", m["ceiling"], a.rows / m["ceiling"], m["ceiling"] / m["sluice"]))
    print("\nsluice vs seed 000: %.2fx faster (target 3x); sluice / ceiling throughput: %.2f (target 0.8)" % (
        m["seed000"] / m["sluice"], m["ceiling"] / m["sluice"]))
    print("sluice peak RSS %.0f MiB; medians of %d runs, %d rows, %d-row batches, %d in flight" % (max(rss), a.runs, a.rows, a.batch, a.concurrency))


if __name__ == "__main__":
    main()
