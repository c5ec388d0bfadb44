#!/usr/bin/env python3
"""Seed 000's registros_gold (id, valor, referencia, category) as a Delta table, written by
delta-rs (the `deltalake` package), as the seed's Spark job would find it in the lake.

  python3 generate.py                  # a new table of 1,000,000 rows in 10 files
  python3 generate.py --append 50000   # 50,000 more rows with new ids, as a new version
"""
import argparse, os

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

ap = argparse.ArgumentParser()
ap.add_argument("--table", default="registros_gold")
ap.add_argument("--rows", type=int, default=1_000_000)
ap.add_argument("--files", type=int, default=10)
ap.add_argument("--append", type=int)
a = ap.parse_args()


def rows(start, n):
    ids = range(start, start + n)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "valor": pa.array([round(i * 0.37 % 10000, 2) for i in ids]),
        "referencia": pa.array([f"ref-{i:08d}" for i in ids]),
        "category": pa.array(["ABCDE"[i % 5] for i in ids]),
    })


if a.append:
    first = DeltaTable(a.table).to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    start = max(first) + 1
    write_deltalake(a.table, rows(start, a.append), mode="append")
    print(f"appended ids {start}..{start + a.append - 1}; {a.table} is at version {DeltaTable(a.table).version()}")
else:
    per = a.rows // a.files
    for k in range(a.files):
        write_deltalake(a.table, rows(1 + k * per, per), mode="append")
    print(f"{a.table}: {a.rows:,} rows in {a.files} files, version {DeltaTable(a.table).version()}")
os._exit(0)  # delta-rs's runtime can abort at interpreter exit
