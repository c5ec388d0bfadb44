#!/usr/bin/env python3
"""Parquet and Avro benchmark: Sluice's own readers and writer against pyarrow and fastavro,
in the same run, on the 1,000,000-row benchmark table (id bigint, valor double,
referencia 10-char text, category A-E, as bench/gen.py shapes it).

  Parquet read   sluice (time inside its reader)  vs pyarrow.parquet.read_table(use_threads=False)
  Parquet write  sluice (time inside its writer)  vs pyarrow.parquet.write_table (both snappy + dictionary)
  Avro read      sluice (time inside its reader)  vs list(fastavro.reader(f))   (null and deflate codecs)
  Memory         peak RSS of `sluice convert` reading 1M and 4M rows in 131,072-row groups

Sluice's figures come from `sluice convert --json`, which times reading and writing apart
inside one fresh process per run; the baselines are timed the same way, around the library
call in a fresh Python process per run (after imports). pyarrow is also shown warm (called
repeatedly in one process), which is faster than its first call. Each figure is the median
of --runs runs. Ratios are throughput: baseline time / Sluice time (higher is better).
"""
import argparse, json, os, resource, statistics, subprocess, sys, time

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, ".build", "release", "sluice")


def table(n, seed=42):
    rng = np.random.default_rng(seed)
    refs = np.char.mod("%010x", rng.integers(0, 2**40, n))
    cats = np.array(list("ABCDE"))[rng.integers(0, 5, n)]
    return pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "valor": pa.array(rng.random(n) * 100),
                     "referencia": pa.array(refs.astype(object), pa.string()), "category": pa.array(cats.astype(object), pa.string())})


def convert(src, dst, *extra):
    out = subprocess.run([SLUICE, "convert", src, dst, "--json", *extra], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def peak_rss_mb(cmd):
    """Peak RSS of one child process, measured by a fresh Python so no earlier child counts."""
    code = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); " \
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    return int(subprocess.run([sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True).stdout) / 1024


def fresh(code):
    """Seconds a library call takes in a fresh Python process (timed inside it, after imports),
    as Sluice's own figures are: one file, one process."""
    out = subprocess.run([sys.executable, "-c", "import time, pyarrow.parquet as pq, fastavro\n" + code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def median(f, runs):
    return statistics.median(f() for _ in range(runs))


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "formats"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    p = lambda name: os.path.join(a.out, name)

    t = table(a.rows)
    pq.write_table(t, p("base.parquet"))  # pyarrow defaults: snappy, dictionary, one row group per 1M rows
    schema = {"type": "record", "name": "row", "fields": [
        {"name": "id", "type": "long"}, {"name": "valor", "type": "double"},
        {"name": "referencia", "type": "string"}, {"name": "category", "type": "string"}]}
    records = t.to_pylist()
    for codec in ("null", "deflate"):
        with open(p("base_%s.avro" % codec), "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), records, codec=codec)
    del records

    rows = []

    def row(name, sluice_s, base_s, baseline, target):
        ratio = base_s / sluice_s
        rows.append((name, sluice_s, base_s, baseline, ratio, target))

    # Parquet read.
    read_code = "t0 = time.perf_counter(); pq.read_table(%r, use_threads=False); print(time.perf_counter() - t0)" % p("base.parquet")
    s = median(lambda: convert(p("base.parquet"), p("read.csv"))["read_seconds"], a.runs)
    b = median(lambda: fresh(read_code), a.runs)
    row("Parquet read (snappy)", s, b, "pyarrow read_table, 1 thread", 0.7)
    warm = median(lambda: timed(lambda: pq.read_table(p("base.parquet"), use_threads=False)), a.runs)
    row("  vs warm pyarrow", s, warm, "same, 5th+ call in one process", 0.7)

    # Parquet write: the same table, snappy and dictionary on both sides.
    write_code = "t = pq.read_table(%r)\nt0 = time.perf_counter(); pq.write_table(t, %r); print(time.perf_counter() - t0)" % (p("base.parquet"), p("pyarrow.parquet"))
    s = median(lambda: convert(p("base.parquet"), p("sluice.parquet"))["write_seconds"], a.runs)
    b = median(lambda: fresh(write_code), a.runs)
    row("Parquet write (snappy)", s, b, "pyarrow write_table", 0.5)
    warm = median(lambda: timed(lambda: pq.write_table(t, p("pyarrow.parquet"))), a.runs)
    row("  vs warm pyarrow", s, warm, "same, 5th+ call in one process", 0.5)
    back = pq.read_table(p("sluice.parquet"))
    assert back.num_rows == a.rows and back.column("id").to_pylist()[-1] == a.rows - 1, "pyarrow cannot read Sluice's file back"

    # Avro read.
    for codec in ("null", "deflate"):
        code = "f = open(%r, 'rb')\nt0 = time.perf_counter(); list(fastavro.reader(f)); print(time.perf_counter() - t0)" % p("base_%s.avro" % codec)
        s = median(lambda: convert(p("base_%s.avro" % codec), p("read.csv"))["read_seconds"], a.runs)
        b = median(lambda: fresh(code), a.runs)
        row("Avro read (%s)" % codec, s, b, "fastavro reader", 2.0)

    # Memory: one row group at a time, so 4x the rows should not mean 4x the memory.
    rss = {}
    for n in (a.rows, a.rows * 4):
        path = p("rss_%d.parquet" % n)
        pq.write_table(table(n, seed=7), path, row_group_size=131_072)
        rss[n] = peak_rss_mb([SLUICE, "convert", path, p("rss.ndjson")])

    print("\n%-24s %12s %12s %8s %8s  %s" % ("", "Sluice s", "baseline s", "ratio", "target", "baseline"))
    for name, s, b, base, ratio, target in rows:
        print("%-24s %12.3f %12.3f %7.2fx %7.1fx  %s%s" % (name, s, b, ratio, target, base, "" if ratio >= target else "  (BELOW TARGET)"))
    print("\npeak RSS reading Parquet (131,072-row groups): " +
          ", ".join("%d rows %.0f MiB" % (n, m) for n, m in rss.items()))
    print("medians of %d runs, %d rows" % (a.runs, a.rows))


if __name__ == "__main__":
    main()
