#!/usr/bin/env python3
"""Write Parquet files with pyarrow and Avro files with fastavro, each with the values the
reference library reads back, in a canonical JSON form Sluice's tests compare cell by cell.

usage: gen_oracles.py OUT_DIR [--big-rows N]
       gen_oracles.py --dump FILE OUT_JSON   (how pyarrow / fastavro read FILE)

OUT_DIR/manifest.json lists {"file", "format", "columns", "rows"}; each cell is canonical:
NULL -> null, ints -> ints, floats -> floats ("NaN", "Infinity", "-Infinity" as strings),
decimals -> their plain text, text -> text, bytes -> base64, dates -> YYYY-MM-DD, times ->
HH:MM:SS.ffffff, timestamps -> "YYYY-MM-DD HH:MM:SS.ffffff" (+"Z" when UTC-adjusted),
uuids -> lowercase text, nested values -> JSON structures of the same.
"""
import argparse, base64, datetime, decimal, json, math, os, random, sys, uuid

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

UTC = datetime.timezone.utc
decimal.getcontext().prec = 100  # the default 28 digits would round the 38- and 50-digit values


def canon(v):
    if v is None or isinstance(v, bool) or isinstance(v, int) or isinstance(v, str):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "Z"
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, datetime.time):
        return v.strftime("%H:%M:%S.%f")
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dict):
        return {str(k): canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    raise TypeError("no canonical form for %r" % (v,))


def micros_text(us, utc):
    dt = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=us)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f") + ("Z" if utc else "")


def table_rows(table, overrides=None):
    """Rows of a pyarrow table as canonical cells; `overrides` maps a column to its cells."""
    overrides = overrides or {}
    cols = []
    for name in table.column_names:
        if name in overrides:
            cols.append(overrides[name])
            continue
        col = table.column(name)
        t = col.type
        if pa.types.is_map(t):
            cols.append([None if m is None else {str(k): canon(v) for k, v in m} for m in col.to_pylist()])
        elif isinstance(t, pa.ExtensionType):
            vals = col.to_pylist()
            if "json" in str(t):
                cols.append([None if x is None else json.loads(x) for x in vals])
            elif str(t).startswith("extension<arrow.uuid"):
                cols.append([None if x is None else str(uuid.UUID(bytes=x) if isinstance(x, bytes) else x) for x in vals])
            else:
                cols.append([canon(x) for x in vals])
        else:
            cols.append([canon(x) for x in col.to_pylist()])
    return [list(r) for r in zip(*cols)] if cols else []


def ns_cells(arr, utc):
    """Nanosecond timestamps as Sluice reads them: floored to microseconds."""
    ints = arr.cast(pa.int64()).to_pylist()
    return [None if x is None else micros_text(x // 1000, utc) for x in ints]


def types_table(n, rng):
    def maybe(f, i):
        return None if i % 7 == 3 else f(i)
    strings = ["", "a", "héllo", "日本語", "tab\there", "quote\"d", "line\nbreak", "x" * 300]
    cols = {
        "i8": pa.array([maybe(lambda i: rng.randint(-128, 127), i) for i in range(n)], pa.int8()),
        "i16": pa.array([maybe(lambda i: rng.randint(-32768, 32767), i) for i in range(n)], pa.int16()),
        "i32": pa.array([maybe(lambda i: rng.randint(-2**31, 2**31 - 1), i) for i in range(n)], pa.int32()),
        "i64": pa.array([maybe(lambda i: rng.randint(-2**63, 2**63 - 1), i) for i in range(n)], pa.int64()),
        "u8": pa.array([maybe(lambda i: rng.randint(0, 255), i) for i in range(n)], pa.uint8()),
        "u16": pa.array([maybe(lambda i: rng.randint(0, 65535), i) for i in range(n)], pa.uint16()),
        "u32": pa.array([maybe(lambda i: rng.randint(0, 2**32 - 1), i) for i in range(n)], pa.uint32()),
        "u64": pa.array([maybe(lambda i: rng.randint(0, 2**64 - 1), i) for i in range(n)], pa.uint64()),
        "f32": pa.array([maybe(lambda i: [1.5, -0.25, float("nan"), float("inf"), 3.0e38][i % 5], i) for i in range(n)], pa.float32()),
        "f64": pa.array([maybe(lambda i: [rng.random() * 1e6, -0.0, float("nan"), float("-inf"), 1e-310, 1e300][i % 6], i) for i in range(n)], pa.float64()),
        "b": pa.array([maybe(lambda i: i % 3 == 0, i) for i in range(n)], pa.bool_()),
        "s": pa.array([maybe(lambda i: strings[i % len(strings)] + str(i % 50), i) for i in range(n)], pa.string()),
        "ls": pa.array([maybe(lambda i: "large-" + str(i), i) for i in range(n)], pa.large_string()),
        "bin": pa.array([maybe(lambda i: bytes([i % 256, 0, 255]) * (i % 4), i) for i in range(n)], pa.binary()),
        "fsb": pa.array([maybe(lambda i: bytes([i % 256] * 5), i) for i in range(n)], pa.binary(5)),
        "d9": pa.array([maybe(lambda i: decimal.Decimal(rng.randint(-10**9 + 1, 10**9 - 1)).scaleb(-2), i) for i in range(n)], pa.decimal128(9, 2)),
        "d18": pa.array([maybe(lambda i: decimal.Decimal(rng.randint(-10**18 + 1, 10**18 - 1)).scaleb(-4), i) for i in range(n)], pa.decimal128(18, 4)),
        "d38": pa.array([maybe(lambda i: decimal.Decimal(rng.randint(-10**38 + 1, 10**38 - 1)).scaleb(-10), i) for i in range(n)], pa.decimal128(38, 10)),
        "d50": pa.array([maybe(lambda i: decimal.Decimal(rng.randint(-10**50 + 1, 10**50 - 1)).scaleb(-5), i) for i in range(n)], pa.decimal256(50, 5)),
        "date": pa.array([maybe(lambda i: datetime.date(1900, 1, 1) + datetime.timedelta(days=rng.randint(0, 80000)), i) for i in range(n)], pa.date32()),
        "t_ms": pa.array([maybe(lambda i: datetime.time(i % 24, i % 60, i % 60, (i * 1000) % 1000000), i) for i in range(n)], pa.time32("ms")),
        "t_us": pa.array([maybe(lambda i: datetime.time(23, 59, 59, 999999 - i % 1000), i) for i in range(n)], pa.time64("us")),
        "ts_s": pa.array([maybe(lambda i: datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=rng.randint(-10**9, 10**9)), i) for i in range(n)], pa.timestamp("s")),
        "ts_ms": pa.array([maybe(lambda i: datetime.datetime(1960, 1, 1) + datetime.timedelta(milliseconds=rng.randint(0, 10**12)), i) for i in range(n)], pa.timestamp("ms")),
        "ts_us_utc": pa.array([maybe(lambda i: datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(microseconds=rng.randint(-10**15, 10**15)), i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "ts_ns": pa.array([maybe(lambda i: rng.randint(-10**18, 10**18), i) for i in range(n)], pa.int64()).cast(pa.timestamp("ns")),
        "ts_ns_tz": pa.array([maybe(lambda i: rng.randint(-10**18, 10**18), i) for i in range(n)], pa.int64()).cast(pa.timestamp("ns", tz="America/Sao_Paulo")),
        "dict_s": pa.array([maybe(lambda i: "cat" + str(i % 4), i) for i in range(n)], pa.string()).dictionary_encode(),
        "f16": pa.array([maybe(lambda i: [0.5, -2.0, 65504.0, 0.0][i % 4], i) for i in range(n)], pa.float16()) if hasattr(pa, "float16") else None,
        "uuid": pa.array([maybe(lambda i: uuid.UUID(int=rng.getrandbits(128)).bytes, i) for i in range(n)], pa.uuid()) if hasattr(pa, "uuid") else None,
        "js": pa.array([maybe(lambda i: json.dumps({"k": i, "v": [1, "x"]}), i) for i in range(n)], pa.json_()) if hasattr(pa, "json_") else None,
    }
    cols = {k: v for k, v in cols.items() if v is not None}
    table = pa.table(cols)
    overrides = {
        "ts_ns": ns_cells(table.column("ts_ns"), False),
        "ts_ns_tz": ns_cells(table.column("ts_ns_tz"), True),
        "dict_s": [canon(x) for x in table.column("dict_s").cast(pa.string()).to_pylist()],
    }
    if "js" in cols:
        overrides["js"] = [None if x is None else json.loads(x) for x in table.column("js").cast(pa.string()).to_pylist()]
    if "f16" in cols:
        overrides["f16"] = [canon(None if x is None else float(x)) for x in table.column("f16").cast(pa.float32()).to_pylist()]
    return table, overrides


def nested_table(n, rng):
    def maybe(f, i):
        return None if i % 5 == 4 else f(i)
    li = [maybe(lambda i: [rng.randint(-5, 5) if i % 3 else None for _ in range(i % 4)], i) for i in range(n)]
    ls = [maybe(lambda i: [{"x": j, "y": None if j % 2 else "s%d" % j} for j in range(i % 3)], i) for i in range(n)]
    mp = [maybe(lambda i: [("k%d" % j, None if j == 1 else j * 1.5) for j in range(i % 3)], i) for i in range(n)]
    st = [maybe(lambda i: {"a": None if i % 2 else i, "inner": None if i % 3 == 0 else {"b": "v%d" % i, "c": [i, i + 1]}}, i) for i in range(n)]
    ll = [maybe(lambda i: [[("w%d" % k) for k in range(j)] if j != 1 else None for j in range(i % 4)], i) for i in range(n)]
    table = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "li": pa.array(li, pa.list_(pa.int32())),
        "ls": pa.array(ls, pa.list_(pa.struct([("x", pa.int64()), ("y", pa.string())]))),
        "mp": pa.array(mp, pa.map_(pa.string(), pa.float64())),
        "st": pa.array(st, pa.struct([("a", pa.int64()), ("inner", pa.struct([("b", pa.string()), ("c", pa.list_(pa.int16()))]))])),
        "ll": pa.array(ll, pa.list_(pa.list_(pa.string()))),
        "req": pa.array(["r%d" % i for i in range(n)], pa.string()),
    })
    table = table.cast(pa.schema([f if f.name != "req" else pa.field("req", pa.string(), nullable=False) for f in table.schema]))
    overrides = {"mp": [None if m is None else {k: canon(v) for k, v in m} for m in mp]}
    return table, overrides


def parquet_fixtures(out, big_rows):
    rng = random.Random(7)
    entries = []

    def add(name, table, overrides=None, **kw):
        path = os.path.join(out, name + ".parquet")
        pq.write_table(table, path, **kw)
        entries.append({"file": name + ".parquet", "format": "parquet", "columns": table.column_names, "rows": table_rows(table, overrides)})

    types, ov = types_table(700, rng)
    codecs = ["none", "snappy", "gzip", "zstd", "lz4", "brotli"]
    for codec in codecs:
        for dictionary in (True, False):
            for version in ("1.0", "2.0"):
                add("types_%s_%s_v%s" % (codec, "dict" if dictionary else "plain", version[0]), types, ov, compression=codec,
                    use_dictionary=dictionary, data_page_version=version, data_page_size=4096, row_group_size=300)
    # INT96 keeps no time zone: only the naive timestamp columns are compared.
    add("types_int96", types.drop_columns(["ts_ns", "ts_ns_tz", "ts_us_utc"]), ov, use_deprecated_int96_timestamps=True)
    add("types_v1_format", types.select(["i32", "i64", "s", "d18", "date", "ts_ms"]), ov, version="1.0")
    add("types_decimal_ints", types.select(["d9", "d18", "d38"]), ov, store_decimal_as_integer=True)
    plain_cols = [c for c in types.column_names if c not in ("dict_s", "b")]
    ints = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "d9", "d18", "date", "t_ms", "t_us", "ts_s", "ts_ms", "ts_us_utc", "ts_ns"]
    add("types_delta", types.select(plain_cols), ov, use_dictionary=False, data_page_version="2.0", data_page_size=2048,
        store_decimal_as_integer=True,
        column_encoding={**{c: "DELTA_BINARY_PACKED" for c in ints}, "s": "DELTA_BYTE_ARRAY", "ls": "DELTA_LENGTH_BYTE_ARRAY",
                         "bin": "DELTA_LENGTH_BYTE_ARRAY", "f32": "BYTE_STREAM_SPLIT", "f64": "BYTE_STREAM_SPLIT"})
    add("types_bss_ints", types.select(["i32", "i64", "fsb", "d38"]), ov, use_dictionary=False,
        column_encoding={"i32": "BYTE_STREAM_SPLIT", "i64": "BYTE_STREAM_SPLIT", "fsb": "BYTE_STREAM_SPLIT", "d38": "BYTE_STREAM_SPLIT"})

    nested, nov = nested_table(600, rng)
    for version in ("1.0", "2.0"):
        add("nested_v%s" % version[0], nested, nov, data_page_version=version, data_page_size=1024, row_group_size=250)
    add("nested_plain_zstd", nested, nov, use_dictionary=False, compression="zstd")

    big_text = pa.table({"id": pa.array(range(40), pa.int64()),
                         "blob": pa.array([("%d:" % i) + "é" * (50_000 + i * 1000) for i in range(40)], pa.string())})
    add("large_strings", big_text, compression="snappy")

    many = pa.table({"id": pa.array(range(5000), pa.int64()), "v": pa.array([None if i % 11 == 0 else i * 0.5 for i in range(5000)])})
    add("many_row_groups", many, row_group_size=37)

    empty = pa.table({"id": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    add("empty", empty)

    nulls = pa.table({"a": pa.array([None] * 100, pa.int64()), "b": pa.array([None] * 100, pa.string())})
    add("all_nulls", nulls)

    n = big_rows
    big = pa.table({"id": pa.array(range(n), pa.int64()),
                    "cat": pa.array(["ABCDE"[i % 5] for i in range(n)]),
                    "val": pa.array([None if i % 13 == 0 else (i * 7919) % 100003 / 7.0 for i in range(n)])})
    add("big", big, row_group_size=n // 3 + 1)
    return entries


def avro_fixtures(out):
    rng = random.Random(11)
    entries = []
    schema = {
        "type": "record", "name": "Row", "namespace": "test.ns",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "i", "type": ["null", "int"]},
            {"name": "i_rev", "type": ["int", "null"]},
            {"name": "f", "type": "float"},
            {"name": "d", "type": ["null", "double"]},
            {"name": "b", "type": "boolean"},
            {"name": "s", "type": ["null", "string"]},
            {"name": "by", "type": "bytes"},
            {"name": "fx", "type": {"type": "fixed", "name": "F4", "size": 4}},
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
            {"name": "dec", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3}]},
            {"name": "decf", "type": {"type": "fixed", "name": "DF", "size": 9, "logicalType": "decimal", "precision": 20, "scale": 2}},
            {"name": "dt", "type": {"type": "int", "logicalType": "date"}},
            {"name": "tms", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "tus", "type": {"type": "long", "logicalType": "time-micros"}},
            {"name": "tsms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tsus", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
            {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
            {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "arr", "type": {"type": "array", "items": "int"}},
            {"name": "mp", "type": {"type": "map", "values": ["null", "string"]}},
            {"name": "rec", "type": ["null", {"type": "record", "name": "Inner", "fields": [
                {"name": "x", "type": "int"}, {"name": "tags", "type": {"type": "array", "items": "string"}},
                {"name": "c", "type": "Color"}]}]},
            {"name": "un", "type": ["null", "int", "string"]},
            {"name": "node", "type": {"type": "record", "name": "Node", "fields": [
                {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}},
        ],
    }
    rows = []
    for i in range(1500):
        depth = i % 4
        node = None
        for k in range(depth + 1):
            node = {"v": k, "next": node}
        rows.append({
            "id": i * 1_000_003 - 2**40,
            "i": None if i % 5 == 0 else rng.randint(-2**31, 2**31 - 1),
            "i_rev": None if i % 4 == 0 else i,
            "f": [1.25, -3.5, float("inf"), 0.0][i % 4],
            "d": None if i % 6 == 0 else rng.random() * 10 ** rng.randint(-5, 5),
            "b": i % 2 == 0,
            "s": None if i % 9 == 0 else ["", "plain", "ünïcødé", "a,b\"c\n"][i % 4] + str(i),
            "by": bytes(rng.getrandbits(8) for _ in range(i % 6)),
            "fx": bytes([i % 256, 1, 2, 3]),
            "e": ["RED", "GREEN", "BLUE"][i % 3],
            "dec": None if i % 8 == 0 else decimal.Decimal(rng.randint(-10**12 + 1, 10**12 - 1)).scaleb(-3),
            "decf": decimal.Decimal(rng.randint(-10**20 + 1, 10**20 - 1)).scaleb(-2),
            "dt": datetime.date(1970, 1, 1) + datetime.timedelta(days=rng.randint(-30000, 30000)),
            "tms": datetime.time(i % 24, (i * 7) % 60, (i * 13) % 60, (i % 1000) * 1000),
            "tus": datetime.time(i % 24, 59, 58, 123456),
            "tsms": datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(milliseconds=rng.randint(-10**12, 10**12)),
            "tsus": None if i % 10 == 0 else datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(microseconds=rng.randint(-10**15, 10**15)),
            "lts": datetime.datetime(2001, 2, 3, 4, 5, 6, i),
            "u": uuid.UUID(int=rng.getrandbits(128)),
            "arr": list(range(i % 5)),
            "mp": {("k%d" % j): (None if j == 2 else "v%d" % j) for j in range(i % 4)},
            "rec": None if i % 3 == 0 else {"x": i, "tags": ["t%d" % j for j in range(i % 3)], "c": "BLUE"},
            "un": [None, i, "str%d" % i][i % 3],
            "node": node,
        })
    parsed = fastavro.parse_schema(schema)
    codecs = ["null", "deflate", "snappy", "zstandard"]
    for codec in codecs:
        name = "avro_%s.avro" % codec
        with open(os.path.join(out, name), "wb") as f:
            fastavro.writer(f, parsed, rows, codec=codec, sync_interval=4000)
        with open(os.path.join(out, name), "rb") as f:
            back = list(fastavro.reader(f))
        cols = [fl["name"] for fl in schema["fields"]]
        entries.append({"file": name, "format": "avro", "columns": cols, "rows": [[canon(r[c]) for c in cols] for r in back]})
    small = {"type": "record", "name": "S", "fields": [{"name": "a", "type": "long"}]}
    with open(os.path.join(out, "avro_empty.avro"), "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(small), [])
    entries.append({"file": "avro_empty.avro", "format": "avro", "columns": ["a"], "rows": []})
    return entries


def dump(path, out):
    if path.endswith(".avro"):
        with open(path, "rb") as f:
            r = fastavro.reader(f)
            names = [fl["name"] for fl in r.writer_schema["fields"]]
            rows = [[canon(rec[c]) for c in names] for rec in r]
        doc = {"columns": names, "rows": rows}
    else:
        t = pq.read_table(path, use_threads=False)
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        overrides = {}
        for i, name in enumerate(t.column_names):
            if str(pf.schema.column(i).logical_type) == "JSON" and not isinstance(t.column(name).type, pa.ExtensionType):
                overrides[name] = [None if x is None else json.loads(x) for x in t.column(name).to_pylist()]
        stats = []
        for c in range(meta.num_columns):
            col = []
            for g in range(meta.num_row_groups):
                s = meta.row_group(g).column(c).statistics
                col.append(None if s is None or not s.has_min_max else [canon(s.min), canon(s.max), s.null_count])
            stats.append(col)
        doc = {"columns": t.column_names, "rows": table_rows(t, overrides), "row_groups": meta.num_row_groups, "stats": stats}
    with open(out, "w") as f:
        json.dump(doc, f, allow_nan=False)


def corpus(out):
    """Small seed files for the fuzzers (committed under Tests/SluiceFormatsTests/Fixtures/corpus)."""
    rng = random.Random(3)
    os.makedirs(os.path.join(out, "parquet"), exist_ok=True)
    os.makedirs(os.path.join(out, "avro"), exist_ok=True)
    types, _ = types_table(12, rng)
    nested, _ = nested_table(12, rng)
    flat = types.select(["i32", "i64", "u64", "f64", "b", "s", "bin", "fsb", "d9", "d38", "date", "t_us", "ts_us_utc", "dict_s"])
    for name, t, kw in [
        ("flat_snappy_dict", flat, dict(compression="snappy")),
        ("flat_plain_v2", flat, dict(use_dictionary=False, data_page_version="2.0", compression="none")),
        ("flat_gzip", flat.select(["i64", "s", "d38"]), dict(compression="gzip", row_group_size=5)),
        ("flat_zstd", flat.select(["f64", "b", "date"]), dict(compression="zstd")),
        ("delta", flat.select(["i32", "i64", "s", "bin", "f64"]), dict(use_dictionary=False, compression="none", data_page_version="2.0",
                                                                       column_encoding={"i32": "DELTA_BINARY_PACKED", "i64": "DELTA_BINARY_PACKED", "s": "DELTA_BYTE_ARRAY",
                                                                                        "bin": "DELTA_LENGTH_BYTE_ARRAY", "f64": "BYTE_STREAM_SPLIT"})),
        ("nested", nested, dict(compression="none")),
        ("nested_v2_snappy", nested, dict(data_page_version="2.0")),
        ("int96", types.select(["ts_ms"]), dict(use_deprecated_int96_timestamps=True, compression="none")),
    ]:
        pq.write_table(t, os.path.join(out, "parquet", name + ".parquet"), store_schema=False, **kw)
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "id", "type": "long"}, {"name": "s", "type": ["null", "string"]}, {"name": "f", "type": "double"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "arr", "type": {"type": "array", "items": "int"}}, {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "u", "type": ["null", "int", "string"]}, {"name": "fx", "type": {"type": "fixed", "name": "F", "size": 3}},
        {"name": "node", "type": {"type": "record", "name": "N", "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "N"]}]}},
    ]}
    rows = [{"id": i, "s": None if i % 3 == 0 else "s%d" % i, "f": i / 3, "e": "AB"[i % 2], "dec": decimal.Decimal(i).scaleb(-2),
             "ts": datetime.datetime(2020, 1, 1, tzinfo=UTC), "arr": list(range(i % 3)), "m": {"k": "v"} if i % 2 else {},
             "u": [None, i, "x"][i % 3], "fx": b"abc", "node": {"v": i, "next": {"v": 0, "next": None} if i % 2 else None}} for i in range(10)]
    for codec in ["null", "deflate", "snappy"]:
        with open(os.path.join(out, "avro", "records_%s.avro" % codec), "wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), rows, codec=codec, sync_interval=200)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        corpus(sys.argv[2])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--dump":
        dump(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--big-rows", type=int, default=100_000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    entries = parquet_fixtures(a.out, a.big_rows) + avro_fixtures(a.out)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"pyarrow": pa.__version__, "fastavro": fastavro.__version__, "files": entries}, f, allow_nan=False)


if __name__ == "__main__":
    main()
