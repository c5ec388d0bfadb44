#!/usr/bin/env python3
"""Delta tables (issue 17). Reading into SQLite: seed 000's registros_gold (1M rows: id, valor,
referencia, category) written by delta-rs as a 10-file table, loaded by `sluice load
delta:PATH --key id` against the Python path a user of the seed would write (deltalake →
pyarrow → sqlite3, same table and key), and against Sluice loading the same ten Parquet files
without the log (what the log costs). Exporting the same table to seed 000's receiver (10,000-row
CSV batches) by `sluice export --from delta:PATH` against exporting the same rows from a SQLite
table (the export reads the Delta table itself). Writing the same 1M rows (from one Parquet
file) to a new Delta table by `sluice convert x.parquet delta:PATH` against pyarrow +
`write_deltalake`, and merging 100,000 changed rows (half updates spread over every file, half
new keys) into a 1M-row, 20-file table by `sluice load --into delta:PATH --key id` against
delta-rs's `merge` (update all when matched, insert all when not), both pinned to one core with
taskset. Medians of --runs, each a fresh database, ledger or table copy.

  python3 bench/delta_bench.py [--rows 1000000] [--files 10] [--runs 3]
"""
import argparse, os, shutil, sqlite3, statistics, subprocess, sys, tempfile, time

import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet  # noqa: F401 (pa.parquet)
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_bench import check, receiver  # noqa: E402 (seed 000's receiver, started and checked the same way)

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


def export(source, work, url):
    r = subprocess.run([SLUICE, "export", "--from", source, "--key", "id", "--to", url, "--batch-size", "10000", "--json"],
                       cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"sluice export exited {r.returncode}: {r.stdout}{r.stderr}")


PY_WRITE = """
import sys, os, pyarrow.parquet as pq
from deltalake import write_deltalake
write_deltalake(sys.argv[2], pq.read_table(sys.argv[1]))
os._exit(0)
"""

PY_MERGE = """
import sys, os, pyarrow.parquet as pq
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[2])
m = dt.merge(pq.read_table(sys.argv[1]), predicate="t.id = s.id", source_alias="s", target_alias="t")
print(m.when_matched_update_all().when_not_matched_insert_all().execute())
os._exit(0)
"""


def pinned(args, cwd=None):
    r = subprocess.run(["taskset", "-c", "0", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{args[0]} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def medians(times):
    """Prints each contender's median and runs; returns the medians."""
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:28s} median {med[k]:6.2f} s  runs {' '.join(f'{x:.2f}' for x in v)}")
    return med


def query(table, sql):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts/oracles/delta_tables.py"), "query", table, sql], capture_output=True, text=True).stdout.strip()


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
        med = medians(times)
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
                check(folder, a.rows)
                shutil.rmtree(work)
        emed = medians(ex)
        print(f"export from Delta / from SQLite: {emed['export from delta:'] / emed['export from SQLite table']:.2f} (target <= 1.2)")

        # Write: the same rows from one Parquet file into a new table.
        src = os.path.join(tmp, "src.parquet")
        subprocess.run([SLUICE, "convert", "delta:" + table, src], check=True, capture_output=True)
        w = {"sluice convert → delta": [], "write_deltalake": []}
        for run in range(a.runs):
            for k, name in enumerate(w):
                out = os.path.join(tmp, f"wt-{run}-{k}")
                t = time.perf_counter()
                if k == 0:
                    pinned([SLUICE, "convert", src, "delta:" + out])
                else:
                    pinned([sys.executable, "-c", PY_WRITE, src, out])
                w[name].append(time.perf_counter() - t)
                assert query(out, "select count(*) from t") == str(a.rows), name
                shutil.rmtree(out)
        wmed = medians(w)
        print(f"write speed Sluice / delta-rs: {wmed['write_deltalake'] / wmed['sluice convert → delta']:.2f} (target >= 0.8)")

        # Merge: 100,000 changes into a 1M-row, 20-file table.
        target = os.path.join(tmp, "merge-base")
        per = a.rows // 20
        for k in range(20):
            ids = pa.array(range(k * per, (k + 1) * per), pa.int64())
            write_deltalake(target, pa.table({"id": ids, "valor": pa.compute.cast(ids, pa.float64()),
                                              "referencia": pa.array([f"ref-{i:08d}" for i in range(k * per, (k + 1) * per)]),
                                              "category": pa.array(["ABCDE"[i % 5] for i in range(k * per, (k + 1) * per)])}), mode="append")
        n = a.rows // 10
        upd = list(range(0, a.rows, a.rows // (n // 2)))[: n // 2]
        new = list(range(a.rows, a.rows + n - len(upd)))
        ch_ids = upd + new
        changes = pa.table({"id": pa.array(ch_ids, pa.int64()), "valor": pa.array([float(-i) for i in ch_ids]),
                            "referencia": pa.array([f"chg-{i}" for i in ch_ids]), "category": pa.array(["Z"] * len(ch_ids))})
        ch = os.path.join(tmp, "changes.parquet")
        pa.parquet.write_table(changes, ch)
        mg = {"sluice merge": [], "delta-rs merge": []}
        rewritten = ""
        for run in range(a.runs):
            for k, name in enumerate(mg):
                copy = os.path.join(tmp, f"mg-{run}-{k}")
                shutil.copytree(target, copy)
                t = time.perf_counter()
                if k == 0:
                    rewritten = pinned([SLUICE, "load", ch, "--into", "delta:" + copy, "--key", "id"], cwd=tmp).strip()
                else:
                    said = pinned([sys.executable, "-c", PY_MERGE, ch, copy])
                mg[name].append(time.perf_counter() - t)
                got = query(copy, "select count(*) || '|' || sum(case when referencia like 'chg-%' then 1 else 0 end) from t")
                assert got == f"{a.rows + len(new)}|{n}", (name, got)
                shutil.rmtree(copy)
        mmed = medians(mg)
        print("sluice:", rewritten.split(": ", 1)[-1])
        print("delta-rs:", said.strip()[:300])
        print(f"merge time Sluice / delta-rs: {mmed['sluice merge'] / mmed['delta-rs merge']:.2f} (target <= 1.5)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)  # delta-rs's runtime can abort at interpreter exit


if __name__ == "__main__":
    main()
