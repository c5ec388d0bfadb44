"""Delta tables written by delta-rs (the `deltalake` package) and polars, and the values
delta-rs reads from each version: the oracle for Sluice's Delta reader.

  delta_tables.py make DIR      writes the tables under DIR and prints {table: [versions]}
  delta_tables.py gold TABLE N START   appends seed 000's registros_gold rows START..START+N
  delta_tables.py query TABLE SQL   prints the first value SQL gives over table `t`
  delta_tables.py compare DIR   compares DIR/out/<table>@v<N>.ndjson (Sluice's reads) with
                                delta-rs's read of that version, cell by cell

Deletion vectors: delta-rs does not write them, so two tables get them by hand, as the
protocol describes (pyroaring's portable 64-bit Roaring bitmaps, Z85 inline or in a file with
its size and CRC-32); delta-rs reading the same table is still the oracle.
"""
import datetime, decimal, json, os, shutil, struct, sys, uuid, zlib

import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from pyroaring import BitMap64

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
UTC = datetime.timezone.utc


def z85(data: bytes) -> str:
    data = data + b"\0" * (-len(data) % 4)
    out = []
    for i in range(0, len(data), 4):
        v = struct.unpack(">I", data[i:i + 4])[0]
        chunk = []
        for _ in range(5):
            chunk.append(Z85[v % 85])
            v //= 85
        out.append("".join(reversed(chunk)))
    return "".join(out)


def rows(n, start=0, extra=False):
    ids = list(range(start, start + n))
    cols = {
        "id": pa.array(ids, pa.int64()),
        "small": pa.array([i % 100 for i in ids], pa.int32()),
        "valor": pa.array([None if i % 7 == 3 else decimal.Decimal(i * 37 % 100000) / 100 for i in ids], pa.decimal128(12, 2)),
        "f": pa.array([i / 8 for i in ids], pa.float64()),
        "name": pa.array([None if i % 11 == 0 else f"nome {i} ção" for i in ids], pa.string()),
        "flag": pa.array([i % 2 == 0 for i in ids], pa.bool_()),
        "ts": pa.array([datetime.datetime(2024, 1, 1, tzinfo=UTC) + datetime.timedelta(seconds=i * 3601, microseconds=i) for i in ids], pa.timestamp("us", tz="UTC")),
        "cat": pa.array([None if i % 13 == 5 else "ABC"[i % 3] for i in ids], pa.string()),
        "day": pa.array([datetime.date(2024, 1, 1 + i % 3) for i in ids], pa.date32()),
        "st": pa.array([{"a": i, "tags": [f"t{i % 3}", "x"]} for i in ids], pa.struct([("a", pa.int64()), ("tags", pa.list_(pa.string()))])),
    }
    if extra:
        cols["extra"] = pa.array([f"e{i}" for i in ids], pa.string())
    return pa.table(cols)


def add_dv_commit(path, version, dvs):
    """Commits `remove` + `add` with a deletion vector for each (file action, rows, how)."""
    lines = [json.dumps({"commitInfo": {"timestamp": 1_800_000_000_000 + version, "operation": "DELETE"}})]
    files_blob = bytearray(b"\x01")
    dv_uuid = uuid.uuid4()
    added = []
    for add, deleted, how in dvs:
        bm = BitMap64(deleted)
        bm.run_optimize()
        bitmap = struct.pack("<I", 1681511377) + bm.serialize()
        if how == "inline":
            desc = {"storageType": "i", "pathOrInlineDv": z85(bitmap), "sizeInBytes": len(bitmap), "cardinality": len(deleted)}
        else:
            offset = len(files_blob)
            files_blob += struct.pack(">I", len(bitmap)) + bitmap + struct.pack(">I", zlib.crc32(bitmap) & 0xFFFFFFFF)
            desc = {"storageType": "u", "pathOrInlineDv": "ab" + z85(dv_uuid.bytes), "offset": offset, "sizeInBytes": len(bitmap), "cardinality": len(deleted)}
        stats = json.loads(add["stats"]) if add.get("stats") else {}
        lines.append(json.dumps({"remove": {"path": add["path"], "dataChange": True, "deletionTimestamp": 1, "partitionValues": add["partitionValues"], "size": add["size"],
                                            "deletionVector": add.get("deletionVector")}}))
        new = dict(add, deletionVector=desc, dataChange=True, stats=json.dumps(dict(stats, tightBounds=False)))
        lines.append(json.dumps({"add": new}))
        added.append(new)
    if len(files_blob) > 1:
        os.makedirs(os.path.join(path, "ab"), exist_ok=True)
        with open(os.path.join(path, "ab", f"deletion_vector_{dv_uuid}.bin"), "wb") as f:
            f.write(files_blob)
    with open(os.path.join(path, "_delta_log", f"{version:020d}.json"), "x") as f:
        f.write("\n".join(lines) + "\n")
    return added


def adds(path, version):
    out = []
    with open(os.path.join(path, "_delta_log", f"{version:020d}.json")) as f:
        for line in f:
            a = json.loads(line)
            if "add" in a:
                out.append(a["add"])
    return out


def make(root):
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    tables = {}

    # Partitioned by a string (with NULLs) and a date; append, delete, update, checkpoint,
    # overwrite, then an append that adds a column (schema evolution).
    p = os.path.join(root, "part")
    write_deltalake(p, rows(300), partition_by=["cat", "day"])
    write_deltalake(p, rows(200, 300), mode="append")
    dt = DeltaTable(p)
    dt.delete("id % 5 = 0")
    dt.update({"name": "'changed'"}, predicate="id > 450")
    DeltaTable(p).create_checkpoint()
    fresh = rows(120, 1000)
    write_deltalake(p, fresh.filter(pa.compute.equal(fresh["cat"], "A")), mode="overwrite", predicate="cat = 'A'")
    write_deltalake(p, rows(50, 2000, extra=True), mode="append", schema_mode="merge")
    tables["part"] = list(range(DeltaTable(p).version() + 1))

    # Column mapping by name: physical names in the files and in partition values.
    c = os.path.join(root, "colmap")
    write_deltalake(c, rows(100), partition_by=["cat"], configuration={"delta.columnMapping.mode": "name"})
    write_deltalake(c, rows(100, 100), mode="append")
    DeltaTable(c).delete("id < 20")
    tables["colmap"] = list(range(DeltaTable(c).version() + 1))

    # The same table in column mapping's id mode, its physical names made useless (but the
    # partition column's, which partition values are keyed by): columns must be found by the
    # files' field ids. delta-rs reads the name-mode original as the oracle.
    ci = os.path.join(root, "colmap_id")
    shutil.copytree(c, ci)
    for name in os.listdir(os.path.join(ci, "_delta_log")):
        if not name.endswith(".json"):
            continue
        path = os.path.join(ci, "_delta_log", name)
        out = []
        for line in open(path):
            a = json.loads(line)
            if "metaData" in a:
                a["metaData"]["configuration"]["delta.columnMapping.mode"] = "id"
                schema = json.loads(a["metaData"]["schemaString"])
                for f in schema["fields"]:
                    if f["name"] != "cat":
                        f["metadata"]["delta.columnMapping.physicalName"] += "-not-in-the-files"
                a["metaData"]["schemaString"] = json.dumps(schema)
            out.append(json.dumps(a))
        open(path, "w").write("\n".join(out) + "\n")
    tables["colmap_id"] = tables["colmap"]

    # 25 commits, delta-rs checkpointing every 10 commits (at versions 9 and 19).
    m = os.path.join(root, "many")
    write_deltalake(m, rows(10), configuration={"delta.checkpointInterval": "10"})
    for k in range(1, 25):
        write_deltalake(m, rows(10, k * 10), mode="append")
    tables["many"] = [0, 9, 10, 15, 19, 20, 24]

    # The same table with version 19's checkpoint cut in two parts (a multi-part checkpoint),
    # and the commits before it cleaned away: only the parts can give the files.
    mp = os.path.join(root, "multipart")
    shutil.copytree(m, mp)
    log = os.path.join(mp, "_delta_log")
    cp = pq.read_table(os.path.join(log, f"{19:020d}.checkpoint.parquet"))
    half = cp.num_rows // 2
    pq.write_table(cp.slice(0, half), os.path.join(log, f"{19:020d}.checkpoint.0000000001.0000000002.parquet"))
    pq.write_table(cp.slice(half), os.path.join(log, f"{19:020d}.checkpoint.0000000002.0000000002.parquet"))
    for name in os.listdir(log):
        if name.endswith(".checkpoint.parquet") or (name.endswith(".json") and int(name[:20]) <= 19) or name == "_last_checkpoint" or name.endswith(".crc"):
            os.remove(os.path.join(log, name))
    tables["multipart"] = [19, 24]

    # Change data feed on: updates write _change_data files the snapshot must not read.
    f = os.path.join(root, "cdf")
    write_deltalake(f, rows(60), configuration={"delta.enableChangeDataFeed": "true"})
    DeltaTable(f).update({"flag": "true"}, predicate="id < 30")
    DeltaTable(f).delete("id >= 50")
    tables["cdf"] = [0, 1, 2]

    # Deletion vectors, inline and in a file, on a table whose protocol lists them: an array
    # container, a bitmap container (4,500 rows of one 65,536-row block) and run containers.
    d = os.path.join(root, "dv")
    write_deltalake(d, rows(9000), configuration={"delta.enableDeletionVectors": "true"})
    write_deltalake(d, rows(300, 9000), mode="append")
    write_deltalake(d, rows(300, 9300), mode="append")
    big, small, runs = adds(d, 0)[0], adds(d, 1)[0], adds(d, 2)[0]
    small3 = add_dv_commit(d, 3, [(small, [0, 3, 4, 7, 200, 299], "inline"), (big, list(range(0, 9000, 2)), "file"), (runs, list(range(50, 250)), "file")])[0]
    # The same file's deletion vector replaced: remove with the old one, add with the new.
    add_dv_commit(d, 4, [(small3, [0, 3, 4, 7, 200, 299] + list(range(10, 290, 3)), "file")])
    tables["dv"] = [0, 2, 3, 4]

    # Written by polars (its write_delta), appended to once.
    import polars as pl
    pol = os.path.join(root, "polars")
    pl.from_arrow(rows(80).select(["id", "small", "valor", "name", "flag", "ts", "cat", "day"])).write_delta(pol)
    pl.from_arrow(rows(20, 80).select(["id", "small", "valor", "name", "flag", "ts", "cat", "day"])).write_delta(pol, mode="append")
    tables["polars"] = [0, 1]

    # Partitioned by a timestamp and an integer (typed partition values).
    t = os.path.join(root, "tspart")
    tt = rows(40).select(["id", "small", "ts", "name"])
    tt = tt.set_column(2, "ts", pa.array([datetime.datetime(2024, 3, 1, 12, i % 2, tzinfo=UTC) for i in range(40)], pa.timestamp("us", tz="UTC")))
    tt = tt.set_column(1, "small", pa.array([None if i % 9 == 0 else i % 4 for i in range(40)], pa.int32()))
    write_deltalake(t, tt, partition_by=["ts", "small"])
    tables["tspart"] = [0]
    print(json.dumps(tables))


def normal(v):
    """A value as both sides can be compared: decimals and dates as text, JSON parsed."""
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") if v.tzinfo else v.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, float) and v == int(v):
        return int(v)
    if isinstance(v, dict):
        return {k: normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normal(x) for x in v]
    return v


def sluice_value(v, want):
    if isinstance(want, (dict, list)) and isinstance(v, str):
        return normal(json.loads(v))
    if isinstance(want, str) and isinstance(v, str) and len(want) == 26 and want[10] == "T":
        t = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return normal(t)
    if isinstance(v, float) and v == int(v):
        return int(v)
    if isinstance(want, str) and isinstance(v, (int, float)):
        return str(decimal.Decimal(str(v)).quantize(decimal.Decimal(want))) if "." in want else str(v)
    return v


# Tables delta-rs does not read, and the table it reads for them.
ORACLE = {"colmap_id": "colmap"}


def compare(root):
    bad = 0
    checked = 0
    out = os.path.join(root, "out")
    for name in sorted(os.listdir(out)):
        table, version = name[:-len(".ndjson")].split("@v")
        # delta-rs's query engine (its pyarrow dataset reads column-mapped tables as NULLs
        # and refuses deletion vectors).
        dt = DeltaTable(os.path.join(root, ORACLE.get(table, table)), version=int(version))
        expected = pa.table(QueryBuilder().register("t", dt).execute("select * from t").read_all()).to_pylist()
        expected = sorted((json.dumps({k: normal(v) for k, v in r.items()}, sort_keys=True) for r in expected))
        got = []
        with open(os.path.join(out, name)) as f:
            for line in f:
                r = json.loads(line)
                got.append(r)
        exp_rows = [json.loads(e) for e in expected]
        by_id = {}
        for r in exp_rows:
            by_id.setdefault(r["id"], []).append(r)
        norm_got = []
        for r in got:
            want = by_id.get(r.get("id"), [{}])[0]
            norm_got.append(json.dumps({k: sluice_value(v, want.get(k)) for k, v in r.items()}, sort_keys=True))
        norm_got.sort()
        checked += 1
        if norm_got != expected:
            bad += 1
            missing = sorted(set(expected) - set(norm_got))[:3]
            extra = sorted(set(norm_got) - set(expected))[:3]
            print(f"{name}: {len(norm_got)} rows read, delta-rs has {len(expected)}; only delta-rs: {missing}; only Sluice: {extra}")
    print(f"compared {checked} versions, {bad} differ")
    sys.stdout.flush()
    os._exit(1 if bad else 0)  # os._exit: delta-rs's runtime can abort at interpreter exit


def count(path, sql="select count(*) from t"):
    """Prints the first value of `sql` over the table at `path` (delta-rs's query engine)."""
    r = pa.table(QueryBuilder().register("t", DeltaTable(path)).execute(sql).read_all())
    print(r.column(0)[0].as_py())


def gold(path, n, start):
    """Appends seed 000's registros_gold rows (id, valor, referencia, category) start..start+n."""
    ids = range(start, start + n)
    write_deltalake(path, pa.table({"id": pa.array(ids, pa.int64()), "valor": pa.array([i * 1.25 for i in ids]),
                                    "referencia": pa.array([f"ref-{i}" for i in ids]), "category": pa.array(["ABC"[i % 3] for i in ids])}), mode="append")


if __name__ == "__main__":
    if sys.argv[1] == "gold":
        gold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        os._exit(0)
    if sys.argv[1] == "query":
        count(sys.argv[2], sys.argv[3])
        sys.stdout.flush()
        os._exit(0)
    {"make": make, "compare": compare}[sys.argv[1]](sys.argv[2])
    sys.stdout.flush()
    os._exit(0)
