#!/usr/bin/env python3
"""File conversion and parsing threads (issue 20, items 1 and 2), medians of --runs, Sluice and
its peer interleaved in the same run:

  convert  the same 1M rows as CSV, NDJSON and a JSON array, each to Parquet: `sluice convert`
           on one thread (--threads 1) and with its defaults (a parsing thread beside the writer,
           and on two cores two parsing threads), against DuckDB's
           COPY (SELECT * FROM read_csv/read_json(...)) TO 'x.parquet' with SET threads=1,
           whole process each (DuckDB from PyPI: Python's start-up is in its time).
  loads    (--loads) sluice load of the CSV and the NDJSON into a new SQLite table and a new
           PostgreSQL table (a private cluster, scripts/postgres.sh) with --parse-threads 1
           and 2: whether cutting one file for two parsing threads pays where a sink waits.

  python3 bench/convert_bench.py [--runs 5] [--loads]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, ".build/release/sluice")
DATA = os.path.join(ROOT, "bench/out/rows-1000000")

DUCK = {
    "csv": "read_csv('{src}')",
    "ndjson": "read_json('{src}', format='newline_delimited')",
    "json": "read_json('{src}', format='array')",
}


def inputs():
    """base.csv (bench/gen.py), and the same rows as NDJSON and as one JSON array."""
    csv = os.path.join(DATA, "base.csv")
    if not os.path.exists(csv):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", "1000000", "--out", DATA])
    nd, arr = os.path.join(DATA, "base.ndjson"), os.path.join(DATA, "base.json")
    if not (os.path.exists(nd) and os.path.exists(arr)):
        import csv as csvmod
        with open(csv, newline="") as f, open(nd + ".tmp", "w") as n, open(arr + ".tmp", "w") as a:
            a.write("[\n")
            for i, r in enumerate(csvmod.DictReader(f)):
                line = json.dumps({"id": int(r["id"]), "valor": float(r["valor"]), "referencia": r["referencia"], "category": r["category"]},
                                  separators=(",", ":"))
                n.write(line + "\n")
                a.write(("" if i == 0 else ",\n") + line)
            a.write("\n]\n")
        os.replace(nd + ".tmp", nd)
        os.replace(arr + ".tmp", arr)
    return {"csv": csv, "ndjson": nd, "json": arr}


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return time.perf_counter() - t


def rows_in(parquet):
    import pyarrow.parquet as pq
    return pq.ParquetFile(parquet).metadata.num_rows


def convert(a, files, work):
    cases = {}
    for fmt, src in files.items():
        out = os.path.join(work, fmt + ".parquet")
        duck = "import duckdb; c = duckdb.connect(); c.execute('SET threads=1'); c.execute(\"COPY (SELECT * FROM %s) TO '%s' (FORMAT parquet)\")" % (
            DUCK[fmt].format(src=src), out)
        runs = {"sluice, 1 thread": [SLUICE, "convert", src, out, "--threads", "1"],
                "sluice, default threads": [SLUICE, "convert", src, out],
                "duckdb, 1 thread": [sys.executable, "-c", duck]}
        times = {k: [] for k in runs}
        for i in range(a.runs):
            for name, cmd in (list(runs.items()) if i % 2 == 0 else list(runs.items())[::-1]):
                if os.path.exists(out): os.remove(out)
                times[name].append(timed(cmd))
                assert rows_in(out) == 1_000_000, (name, fmt)
        cases[fmt] = {k: statistics.median(v) for k, v in times.items()}
        print("%s: %s" % (fmt, ", ".join("%s %.3f s" % kv for kv in cases[fmt].items())), flush=True)
    print("\nconvert 1M rows to Parquet, median of %d runs" % a.runs)
    print("%-8s %18s %24s %18s %10s %10s" % ("input", "sluice 1 thread", "sluice default threads", "duckdb 1 thread", "1t/duck", "dflt/duck"))
    for fmt, c in cases.items():
        d = c["duckdb, 1 thread"]
        print("%-8s %16.3f s %22.3f s %16.3f s %10.2f %10.2f" % (fmt, c["sluice, 1 thread"], c["sluice, default threads"], d,
                                                              c["sluice, 1 thread"] / d, c["sluice, default threads"] / d))


def loads(a, files, work):
    env = {}
    out = subprocess.run([os.path.join(ROOT, "scripts/postgres.sh")], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        k, v = line[len("export "):].split("=", 1)
        env[k] = v
    url = env["SLUICE_TEST_POSTGRES_URL"]
    try:
        results = {}
        for fmt in ("csv", "ndjson"):
            for target in ("sqlite", "postgres"):
                times = {1: [], 2: []}
                for i in range(a.runs):
                    for p in ((1, 2) if i % 2 == 0 else (2, 1)):
                        if target == "sqlite":
                            db = os.path.join(work, "t.db")
                            for f in (db, db + "-wal", db + "-shm"):
                                if os.path.exists(f): os.remove(f)
                        else:
                            db = url
                            subprocess.run(["psql", url, "-qAtX", "-c", "DROP TABLE IF EXISTS registros"], check=True, capture_output=True)
                        times[p].append(timed([SLUICE, "load", files[fmt], "--into", "registros", "--key", "id", "--quiet",
                                               "--database", db, "--parse-threads", str(p)], cwd=work))
                results[(fmt, target)] = (statistics.median(times[1]), statistics.median(times[2]))
                print("%s into %s: 1 thread %.3f s, 2 threads %.3f s" % (fmt, target, *results[(fmt, target)]), flush=True)
        print("\nsluice load of 1M rows into a new table, --parse-threads 1 vs 2, median of %d runs" % a.runs)
        print("%-8s %-10s %12s %12s %8s" % ("input", "target", "1 thread", "2 threads", "2t/1t"))
        for (fmt, target), (one, two) in results.items():
            print("%-8s %-10s %10.3f s %10.3f s %8.2f" % (fmt, target, one, two, two / one))
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/postgres.sh"), "stop", env["SLUICE_TEST_PGDATA"]], capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--loads", action="store_true", help="also loads into SQLite and PostgreSQL with 1 and 2 parsing threads")
    a = ap.parse_args()
    files = inputs()
    work = tempfile.mkdtemp(prefix="sluice-convert-bench-")
    try:
        convert(a, files, work)
        if a.loads:
            loads(a, files, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
