#!/usr/bin/env python3
"""Opens Parquet files with the readers Sluice's users pick: pyarrow, DuckDB, polars, pandas
and Spark (local, one thread). Prints one JSON object: for each file, for each reader, the
row count and the first row's values as text, or the reader's error.

  readers.py FILE.parquet [FILE.parquet ...]
"""
import json, os, sys


def text(v):
    return None if v is None else str(v)


def first_row(names, row):
    return {n: text(v) for n, v in zip(names, row)}


def read_all(path):
    out = {}
    try:
        import pyarrow.parquet as pq
        t = pq.read_table(path)
        out["pyarrow"] = {"rows": t.num_rows, "first": first_row(t.column_names, [c[0].as_py() for c in t.columns])}
    except Exception as e:
        out["pyarrow"] = {"error": str(e).splitlines()[0]}
    try:
        import duckdb
        con = duckdb.connect()
        con.execute("SET threads = 1")
        rel = con.execute(f"SELECT * FROM read_parquet('{path}')")
        names = [d[0] for d in rel.description]
        rows = rel.fetchall()
        out["duckdb"] = {"rows": len(rows), "first": first_row(names, rows[0])}
    except Exception as e:
        out["duckdb"] = {"error": str(e).splitlines()[0]}
    try:
        import polars as pl
        df = pl.read_parquet(path)
        out["polars"] = {"rows": df.height, "first": first_row(df.columns, df.row(0))}
    except Exception as e:
        out["polars"] = {"error": str(e).splitlines()[0]}
    try:
        import pandas as pd
        df = pd.read_parquet(path)
        out["pandas"] = {"rows": len(df), "first": first_row(df.columns, [None if (v is None or v != v) else v for v in df.iloc[0].tolist()])}
    except Exception as e:
        out["pandas"] = {"error": str(e).splitlines()[0]}
    return out


def main():
    files = sys.argv[1:]
    result = {f: read_all(f) for f in files}
    try:
        from pyspark.sql import SparkSession
        spark = (SparkSession.builder.master("local[1]").appName("sluice-oracle")
                 .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
                 .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1").getOrCreate())
        spark.sparkContext.setLogLevel("OFF")
        for f in files:
            try:
                df = spark.read.parquet(f)
                rows = df.collect()
                result[f]["spark"] = {"rows": len(rows), "first": first_row(df.columns, list(rows[0]))}
            except Exception as e:
                result[f]["spark"] = {"error": str(e).strip().splitlines()[0][:300]}
        spark.stop()
    except Exception as e:
        for f in files:
            result[f]["spark"] = {"error": "Spark did not start: " + str(e).splitlines()[0]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
