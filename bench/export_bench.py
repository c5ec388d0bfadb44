#!/usr/bin/env python3
"""Export benchmark: deliver the 1,000,000-row benchmark table to a FastAPI receiver like seed
000's, in 10,000-row CSV batches, 8 requests in flight, side by side in the same run:

  sluice     `sluice export --from registros --key id --to URL` (ledger, spool, idempotency keys)
  seed 000   the seed's approach in Python: anti-join against a ledger of sent ids, pandas
             batches -> CSV files -> aiohttp concurrent multipart POSTs -> append sent ids
  ceiling    the receiver alone: the same pre-made batch files posted by a tight aiohttp client
  floor      the database's own dump and a tight client at once: the sqlite3 shell (psql
             \copy on PostgreSQL) writes the rows into the same batch files, in key ranges
             planned beforehand, while the client posts each file as soon as it is complete
             (no ledger: what a send-once exporter cannot beat)

--target sqlite|postgres|both: PostgreSQL runs sluice export and the floor over the same table
in the private cluster (scripts/postgres.sh).

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


async def post_file(session, sem, url, path):
    """Posts one batch file as seed 000's receiver takes it; returns (ok, path)."""
    async with sem:
        form = aiohttp.FormData()
        form.add_field("file", open(path, "rb"), filename=os.path.basename(path), content_type="text/csv")
        async with session.post(url, data=form, headers={"Idempotency-Key": os.path.basename(path)}) as r:
            await r.read()
            return r.status == 200, path


async def post_all(url, files, concurrency):
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as s:
        return await asyncio.gather(*(post_file(s, sem, url, p) for p in files))


def key_ranges(ids, batch):
    """[lo, hi) key ranges of `batch` rows each over the sorted keys `ids`."""
    los = ids[::batch]
    return [(lo, los[i + 1] if i + 1 < len(los) else ids[-1] + 1) for i, lo in enumerate(los)]


def floor(dump_cmd, script, url, work, concurrency):
    """Runs the dump (`dump_cmd` reading `script`, which writes floor-0.csv, floor-1.csv, … in
    order) while posting each file once it is complete: when the next one exists, or the
    dump has ended. Returns the seconds from the dump's start to the last answer."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    t0 = time.perf_counter()
    dump = subprocess.Popen(dump_cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    dump.stdin.write(script.encode())
    dump.stdin.close()

    async def go():
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as s:
            tasks, n = [], 0
            while True:
                here = os.path.exists(os.path.join(work, "floor-%d.csv" % n))
                ended = dump.poll() is not None
                if here and (ended or os.path.exists(os.path.join(work, "floor-%d.csv" % (n + 1)))):
                    tasks.append(asyncio.create_task(post_file(s, sem, url, os.path.join(work, "floor-%d.csv" % n))))
                    n += 1
                elif ended and not here:
                    break
                else:
                    await asyncio.sleep(0.002)
            assert all(ok for ok, _ in await asyncio.gather(*tasks)), "a floor batch was refused"
    asyncio.run(go())
    assert dump.wait() == 0, "the dump failed"
    return time.perf_counter() - t0


def sqlite_floor(db, url, work, batch, concurrency):
    ids = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM registros ORDER BY id")]
    script = ".headers on\n.mode csv\n" + "".join(
        ".once %s\nSELECT * FROM registros WHERE id >= %d AND id < %d ORDER BY id;\n" % (os.path.join(work, "floor-%d.csv" % i), lo, hi)
        for i, (lo, hi) in enumerate(key_ranges(ids, batch)))
    return floor(["sqlite3", db], script, url, work, concurrency)


def postgres_floor(pg, url, work, batch, concurrency):
    out = subprocess.run(["psql", pg, "-qAtX", "-c", "SELECT id FROM registros ORDER BY id"], check=True, capture_output=True, text=True).stdout
    ids = [int(x) for x in out.split()]
    script = "".join(
        "\\copy (SELECT * FROM registros WHERE id >= %d AND id < %d ORDER BY id) TO '%s' WITH (FORMAT csv, HEADER true)\n"
        % (lo, hi, os.path.join(work, "floor-%d.csv" % i)) for i, (lo, hi) in enumerate(key_ranges(ids, batch)))
    return floor(["psql", pg, "-qX", "-v", "ON_ERROR_STOP=1"], script, url, work, concurrency)


def sluice_export(database, url, out, batch, concurrency):
    """`sluice export` from an empty ledger; returns (seconds, peak RSS MiB)."""
    shutil.rmtree(os.path.join(out, ".sluice", "exports"), ignore_errors=True)
    t0 = time.perf_counter()
    code = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); " \
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    rss = subprocess.run([sys.executable, "-c", code, SLUICE, "export", "--from", "registros", "--key", "id", "--to", url,
                          "--batch-size", str(batch), "--concurrency", str(concurrency), "--database", database],
                         check=True, capture_output=True, text=True, cwd=out).stdout
    return time.perf_counter() - t0, int(rss.strip()) / 1024


LEDGER = ("sluice_export_keys", "sluice_export_batches", "sluice_export_ranges", "sluice_export_destinations")


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
    ap.add_argument("--target", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "export"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    db = os.path.join(a.out, "sluice.db")
    if not os.path.exists(db):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen.py"), "--rows", str(a.rows), "--out", a.out, "--base-only"], check=True)
        subprocess.run([SLUICE, "load", os.path.join(a.out, "base.csv"), "--into", "registros", "--key", "id", "--database", db, "--quiet"],
                       check=True, cwd=a.out, stdout=subprocess.DEVNULL)
    pg = None
    if a.target != "sqlite":
        sys.path.insert(0, os.path.join(ROOT, "bench"))
        from pg_bench import postgres_env, fresh_db
        env = postgres_env()
        pg = fresh_db(env["SLUICE_TEST_POSTGRES_URL"], "export_bench")
        subprocess.run([SLUICE, "load", os.path.join(a.out, "base.csv"), "--into", "registros", "--key", "id", "--database", pg, "--quiet"],
                       check=True, cwd=a.out, stdout=subprocess.DEVNULL)
    port = 27_000
    url = "http://127.0.0.1:%d/bulk_upload" % port
    folder = os.path.join(a.out, "received")
    names = (["sluice", "floor", "seed000", "ceiling"] if a.target != "postgres" else []) + (["pg_sluice", "pg_floor"] if pg else [])
    times = {k: [] for k in names}
    rerun = {"sluice": [], "pg_sluice": []}  # a second run over the full ledger: nothing new to plan
    rss = []

    def timed(name, body):
        rx = receiver(port, folder)
        try:
            times[name].append(body())
        finally:
            rx.kill()
            rx.wait()
        check(folder, a.rows)

    def sqlite_sluice():
        con = sqlite3.connect(db)
        for t in LEDGER:
            con.execute("DROP TABLE IF EXISTS " + t)
        con.commit()
        con.close()
        secs, peak = sluice_export(db, url, a.out, a.batch, a.concurrency)
        rss.append(peak)
        rerun["sluice"].append(sluice_export(db, url, a.out, a.batch, a.concurrency)[0])
        return secs

    def pg_sluice():
        subprocess.run(["psql", pg, "-qAtX", "-c", "DROP TABLE IF EXISTS " + ", ".join(LEDGER)], check=True, capture_output=True)
        secs, peak = sluice_export(pg, url, a.out, a.batch, a.concurrency)
        rss.append(peak)
        rerun["pg_sluice"].append(sluice_export(pg, url, a.out, a.batch, a.concurrency)[0])
        return secs

    def seed():
        con = sqlite3.connect(db)
        con.execute("DROP TABLE IF EXISTS seed_sent")
        con.commit()
        con.close()
        t0 = time.perf_counter()
        seed000(db, url, os.path.join(a.out, "seed_files"), a.batch, a.concurrency)
        return time.perf_counter() - t0

    def ceiling():
        files = sorted(glob.glob(os.path.join(a.out, "seed_files", "*.csv")))
        t0 = time.perf_counter()
        asyncio.run(post_all(url, files, a.concurrency))
        return time.perf_counter() - t0

    bodies = {"sluice": sqlite_sluice, "floor": lambda: sqlite_floor(db, url, os.path.join(a.out, "floor"), a.batch, a.concurrency),
              "seed000": seed, "ceiling": ceiling, "pg_sluice": pg_sluice,
              "pg_floor": lambda: postgres_floor(pg, url, os.path.join(a.out, "floor"), a.batch, a.concurrency)}
    for run in range(a.runs):
        for name in names:
            timed(name, bodies[name])
        print("run %d: " % (run + 1) + ", ".join("%s %.2f s" % (k, times[k][-1]) for k in names), flush=True)
    m = {k: statistics.median(v) for k, v in times.items()}
    print("\n%-44s %10s %12s %10s" % ("", "seconds", "rows/s", "vs sluice"))
    labels = {"sluice": "sluice export (SQLite)", "floor": "floor: sqlite3 dump + tight client",
              "seed000": "seed 000 approach (pandas+aiohttp)", "ceiling": "receiver alone (pre-made files)",
              "pg_sluice": "sluice export (PostgreSQL)", "pg_floor": "floor: psql \\copy + tight client"}
    for k in names:
        base = m["pg_sluice"] if k.startswith("pg_") else m["sluice"]
        print("%-44s %10.2f %12.0f %9.2fx" % (labels[k], m[k], a.rows / m[k], m[k] / base))
    print()
    if "sluice" in m:
        print("SQLite: sluice / floor %.2f (target <= 1.25); vs seed 000 %.2fx faster (target 3x)" % (m["sluice"] / m["floor"], m["seed000"] / m["sluice"]))
    if "pg_sluice" in m:
        print("PostgreSQL: sluice / floor %.2f (target <= 1.25)" % (m["pg_sluice"] / m["pg_floor"]))
    for k, label in (("sluice", "SQLite"), ("pg_sluice", "PostgreSQL")):
        if rerun[k]:
            print("%s: a second run with nothing new (the ledger holds every row) %.2f s" % (label, statistics.median(rerun[k])))
    print("sluice peak RSS %.0f MiB; medians of %d runs, %d rows, %d-row batches, %d in flight" % (max(rss), a.runs, a.rows, a.batch, a.concurrency))


if __name__ == "__main__":
    main()
