#!/usr/bin/env python3
"""Delta tables (issue 17). Reading into SQLite: seed 000's registros_gold (1M rows: id, valor,
referencia, category) written by delta-rs as a 10-file table, loaded by `sluice load
delta:PATH --key id` against the Python path a user of the seed would write (deltalake →
pyarrow → sqlite3, same table and key), and against Sluice loading the same ten Parquet files
without the log (what the log costs). Exporting the same table to seed 000's receiver (10,000-row
CSV batches) by `sluice export --from delta:PATH` against exporting the same rows from a SQLite
table (the mirror load is part of the Delta figure). Medians of --runs, each a fresh database
and ledger.

  python3 bench/delta_bench.py [--rows 1000000] [--files 10] [--runs 3]
"""
import argparse, glob, os, shutil, sqlite3, statistics, subprocess, sys, tempfile, time

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, ".build/release/sluice")


def generate(path, rows, files):
    per = rows // files
    for k in range(files):
        ids = pa.array(range(k * per, (k + 1) * per), pa.int64())
        t = pa.table({
            "id": ids,
            "valor": pa.compute.divide(pa.compute.cast(pa.compute.multiply(ids, 37), pa.float64()), 100.0),
            "referencia": pa.array([f"ref-{i:08d}" for i in range(k * per, (k + 1) * per)]),
            "category": pa.array(["ABCDE"[i % 5] for i in range(k * per, (k + 1) * per)]),
        })
        write_deltalake(path, t, mode="append")


def python_path(table, db):
    t = DeltaTable(table).to_pyarrow_table()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE registros (id INTEGER PRIMARY KEY, valor REAL, referencia TEXT, category TEXT)")
    cols = [t.column(n).to_pylist() for n in ("id", "valor", "referencia", "category")]
    con.executemany("INSERT INTO registros VALUES (?, ?, ?, ?)", zip(*cols))
    con.commit()
    n = con.execute("SELECT count(*) FROM registros").fetchone()[0]
    con.close()
    return n


def sluice(args, work):
    r = subprocess.run([SLUICE, "load", *args, "--into", "registros", "--key", "id", "--quiet"], cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return sqlite3.connect(os.path.join(work, "sluice.db")).execute("SELECT count(*) FROM registros").fetchone()[0]


def receiver(port, folder):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "receivers", "bulk_receiver.py"), "--port", str(port), "--dir", folder],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:%d/healthz" % port]).returncode == 0:
            return p
        time.sleep(0.1)
    raise SystemExit("receiver did not start")


def received(folder):
    ids = set()
    n = 0
    for f in glob.glob(os.path.join(folder, "*.csv")):
        with open(f) as fh:
            next(fh)
            for line in fh:
                ids.add(int(line.split(",", 1)[0]))
                n += 1
    return n, len(ids)


def export(source, work, url):
    r = subprocess.run([SLUICE, "export", "--from", source, "--key", "id", "--to", url, "--batch-size", "10000", "--json"],
                       cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"sluice export exited {r.returncode}: {r.stdout}{r.stderr}")


def timed(fn):
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-delta-bench-")
    try:
        table = os.path.join(tmp, "registros_gold")
        generate(table, a.rows, a.files)
        parquet = sorted(os.path.join(table, f) for f in os.listdir(table) if f.endswith(".parquet"))
        print(f"{a.rows:,} rows in {len(parquet)} files, {sum(os.path.getsize(p) for p in parquet) / 1e6:.1f} MB of Parquet")
        times = {"sluice delta": [], "sluice parquet (no log)": [], "deltalake+pyarrow+sqlite3": []}
        for run in range(a.runs):
            for k, name in enumerate(times):
                work = os.path.join(tmp, f"w-{run}-{k}")
                os.makedirs(work)
                if name == "sluice delta":
                    s, n = timed(lambda: sluice(["delta:" + table], work))
                elif name.startswith("sluice parquet"):
                    s, n = timed(lambda: sluice(parquet, work))
                else:
                    s, n = timed(lambda: python_path(table, os.path.join(work, "py.db")))
                assert n == a.rows, (name, n)
                times[name].append(s)
                shutil.rmtree(work)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            print(f"{k:28s} median {med[k]:6.2f} s  runs {' '.join(f'{x:.2f}' for x in v)}")
        print(f"Sluice vs the Python path: {med['deltalake+pyarrow+sqlite3'] / med['sluice delta']:.2f}x faster (target >= 1.5x)")
        print(f"the log's cost: delta / plain Parquet = {med['sluice delta'] / med['sluice parquet (no log)']:.3f} (target < 1.05)")

        # Export: from the Delta table vs from the same rows in a SQLite table.
        base = os.path.join(tmp, "base")
        os.makedirs(base)
        sluice(["delta:" + table], base)
        port, folder = 27_100, os.path.join(tmp, "received")
        url = "http://127.0.0.1:%d/bulk_upload" % port
        ex = {"export from SQLite table": [], "export from delta:": []}
        for run in range(a.runs):
            for k, name in enumerate(ex):
                work = os.path.join(tmp, f"x-{run}-{k}")
                os.makedirs(work)
                if k == 0:
                    shutil.copy(os.path.join(base, "sluice.db"), os.path.join(work, "sluice.db"))
                rx = receiver(port, folder)
                try:
                    t = time.perf_counter()
                    export("registros" if k == 0 else "delta:" + table, work, url)
                    ex[name].append(time.perf_counter() - t)
                finally:
                    rx.kill()
                    rx.wait()
                assert received(folder) == (a.rows, a.rows), received(folder)
                shutil.rmtree(work)
        emed = {k: statistics.median(v) for k, v in ex.items()}
        for k, v in ex.items():
            print(f"{k:28s} median {emed[k]:6.2f} s  runs {' '.join(f'{x:.2f}' for x in v)}")
        print(f"export from Delta / from SQLite: {emed['export from delta:'] / emed['export from SQLite table']:.2f} (target <= 1.2)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)  # delta-rs's runtime can abort at interpreter exit


if __name__ == "__main__":
    main()
