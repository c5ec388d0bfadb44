#!/usr/bin/env python3
"""Text records through a parse step (issue 24): seed 004's data_points.txt shape, 1M records
of three lines, read by `sluice run` (record: starts_with, one parse step whose patterns the
records try in order, the to_number/dms helpers, loaded into SQLite) against a Python `re`
rendition of the seed's extractor writing the same rows with sqlite3; then both again without
the load (a last filter drops every row; Python skips the insert); then parse-only with two
patterns, as the issue words it (coordinates, then distance and bearing: two parse steps in
Sluice, two regexes in Python); and DuckDB's regexp_extract (RE2) over the same records, grouped
by three lines in SQL, on 2 threads as Sluice has (when the duckdb module is there). Medians of
--runs.

  python3 bench/text_bench.py [--records 1000000] [--runs 3]
"""
import argparse, os, random, re, shutil, sqlite3, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, ".build/release/sluice")


def dms(v, pos, neg):
    h = pos if v >= 0 else neg
    v = abs(v)
    d = int(v); m = int((v - d) * 60); s = int(round(((v - d) * 60 - m) * 60)) % 60
    return f"{d}°{m:02d}′{s:02d}″{h}"


def generate(path, n):
    rng = random.Random(4)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            lat = rng.uniform(-33, -29); lon = rng.uniform(-53, -49)
            f.write(f"Latitude: {dms(lat, 'N', 'S')}   {lat:.8f}\n")
            f.write(f"Longitude: {dms(lon, 'E', 'W')}   {lon:.8f}\n")
            f.write(f"Distance: {rng.uniform(0, 10):.4f} km Bearing: {rng.uniform(0, 360):.3f}°\n".replace(".", ",", 1).replace("Bearing: ", "Bearing: ").replace(".", ","))


YAML = r"""
pipelines:
  points:
    source: in
    glob: "*.txt"
    record: {starts_with: "Latitude:"}
    steps:
      - parse:
          line:
            - '^Latitude: (?<lat_dms>\S+) +(?<lat>-?\d+\.\d+)\nLongitude: (?<lon_dms>\S+) +(?<lon>-?\d+\.\d+)\nDistance: (?<km>[\d,]+) km Bearing: (?<bearing>[\d,]+)°'
      - derive:
          lat: to_number(lat)
          lon: to_number(lon)
          distance_km: to_number(km, ',')
          bearing: to_number(bearing, ',')
      - select: [lat, lon, distance_km, bearing]
    into: points
"""

# The same steps with every row dropped at the end: reading, grouping, the pattern and the
# helpers, without the load (what "parsed at N MB/s" measures).
PARSE_ONLY = YAML.replace("      - select: [lat, lon, distance_km, bearing]\n",
                          "      - select: [lat, lon, distance_km, bearing]\n      - filter: lat > 1000\n")
assert PARSE_ONLY != YAML

# Two patterns over each record: the coordinates from its start, distance and bearing from its
# third line (a line-start anchor, found by a search).
TWO_PATTERNS = PARSE_ONLY.replace(
    r"""\nDistance: (?<km>[\d,]+) km Bearing: (?<bearing>[\d,]+)°'""",
    r"""'
      - parse:
          line:
            - '^Distance: (?<km>[\d,]+) km Bearing: (?<bearing>[\d,]+)°'""")
assert TWO_PATTERNS != PARSE_ONLY

PATTERN = re.compile(r"^Latitude: (?P<lat_dms>\S+) +(?P<lat>-?\d+\.\d+)\nLongitude: (?P<lon_dms>\S+) +(?P<lon>-?\d+\.\d+)\nDistance: (?P<km>[\d,]+) km Bearing: (?P<bearing>[\d,]+)°")


COORDS = re.compile(r"^Latitude: (?P<lat_dms>\S+) +(?P<lat>-?\d+\.\d+)\nLongitude: (?P<lon_dms>\S+) +(?P<lon>-?\d+\.\d+)")
DISTANCE = re.compile(r"^Distance: (?P<km>[\d,]+) km Bearing: (?P<bearing>[\d,]+)°", re.M)


def records(path):
    """The seed extractor's reading: lines grouped into records at each "Latitude:", joined."""
    with open(path, encoding="utf-8") as f:
        record = []
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith("Latitude:"):
                if record:
                    yield "\n".join(record)
                record = []
            record.append(line)
        if record:
            yield "\n".join(record)


def python_two_patterns(path):
    """The parse-only rendition with two regexes per record (no insert)."""
    rows = 0
    for text in records(path):
        m, d = COORDS.match(text), DISTANCE.search(text)
        if m and d:
            (float(m["lat"]), float(m["lon"]), float(d["km"].replace(",", ".")), float(d["bearing"].replace(",", ".")))
            rows += 1
    return rows


DUCKDB_QUERY = r"""
WITH lines AS (
  SELECT line, row_number() OVER () AS n
  FROM read_csv(?, columns={'line': 'VARCHAR'}, header=false, delim=E'\x01', quote='', escape='', auto_detect=false)
), records AS (
  SELECT (n - 1) // 3 AS r, string_agg(line, E'\n' ORDER BY n) AS rec FROM lines GROUP BY r
), parsed AS (
  SELECT regexp_extract(rec, '^Latitude: (\S+) +(-?\d+\.\d+)\nLongitude: (\S+) +(-?\d+\.\d+)\nDistance: ([\d,]+) km Bearing: ([\d,]+)°',
                        ['lat_dms', 'lat', 'lon_dms', 'lon', 'km', 'bearing']) AS m FROM records
)
SELECT count(*) FROM parsed
WHERE m.lat <> '' AND CAST(m.lat AS DOUBLE) + CAST(m.lon AS DOUBLE) + CAST(replace(m.km, ',', '.') AS DOUBLE)
      + CAST(replace(m.bearing, ',', '.') AS DOUBLE) IS NOT NULL
"""


def duckdb_extractor(path):
    """DuckDB (2 threads) reading the lines, grouping them by three and extracting the fields."""
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads=2")
    con.execute("SET enable_progress_bar=false")
    return con.execute(DUCKDB_QUERY, [path]).fetchone()[0]


def python_extractor(path, db):
    con = sqlite3.connect(db) if db else None
    if con: con.execute("CREATE TABLE points (lat REAL, lon REAL, distance_km REAL, bearing REAL)")
    rows = []
    for text in records(path):
        m = PATTERN.match(text)
        if m:
            rows.append((float(m["lat"]), float(m["lon"]), float(m["km"].replace(",", ".")), float(m["bearing"].replace(",", "."))))
    if con:
        con.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", rows)
        con.commit()
    return len(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-text-bench-")
    os.makedirs(os.path.join(work, "in"))
    data = os.path.join(work, "in", "data_points.txt")
    generate(data, a.records)
    size = os.path.getsize(data)
    parse_dir = os.path.join(work, "parse-only")
    os.makedirs(parse_dir)
    os.symlink(os.path.join(work, "in"), os.path.join(parse_dir, "in"))
    two_dir = os.path.join(work, "two-patterns")
    os.makedirs(two_dir)
    os.symlink(os.path.join(work, "in"), os.path.join(two_dir, "in"))
    with open(os.path.join(two_dir, "sluice.yml"), "w") as f:
        f.write(TWO_PATTERNS)
    with open(os.path.join(work, "sluice.yml"), "w") as f:
        f.write(YAML)
    with open(os.path.join(parse_dir, "sluice.yml"), "w") as f:
        f.write(PARSE_ONLY)
    s_times, p_times, sp_times, pp_times, s2_times, p2_times, d_times = [], [], [], [], [], [], []
    try:
        import duckdb  # noqa: F401
        duck = True
    except ImportError:
        duck = False
    for i in range(a.runs):
        for name in ("sluice.db", ".sluice"):
            p = os.path.join(work, name)
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (os.path.exists(p) and os.remove(p))
        t = time.perf_counter()
        subprocess.run([SLUICE, "run", "points", "--quiet", "--reprocess"], cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s_times.append(time.perf_counter() - t)
        n = sqlite3.connect(os.path.join(work, "sluice.db")).execute("SELECT count(*) FROM points").fetchone()[0]
        assert n == a.records, n
        db = os.path.join(work, f"py{i}.db")
        t = time.perf_counter()
        assert python_extractor(data, db) == a.records
        p_times.append(time.perf_counter() - t)
        shutil.rmtree(os.path.join(parse_dir, ".sluice"), ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([SLUICE, "run", "points", "--quiet", "--reprocess"], cwd=parse_dir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sp_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert python_extractor(data, None) == a.records
        pp_times.append(time.perf_counter() - t)
        shutil.rmtree(os.path.join(two_dir, ".sluice"), ignore_errors=True)
        t = time.perf_counter()
        out = subprocess.run([SLUICE, "run", "points", "--quiet", "--reprocess", "--json"], cwd=two_dir, check=True, capture_output=True, text=True).stdout
        s2_times.append(time.perf_counter() - t)
        assert '"dropped":%d' % a.records in out and '"rejected":0' in out, out
        t = time.perf_counter()
        assert python_two_patterns(data) == a.records
        p2_times.append(time.perf_counter() - t)
        if duck:
            t = time.perf_counter()
            assert duckdb_extractor(data) == a.records
            d_times.append(time.perf_counter() - t)
        print(f"run {i + 1}/{a.runs} done", flush=True)
    s, p = statistics.median(s_times), statistics.median(p_times)
    sp, pp = statistics.median(sp_times), statistics.median(pp_times)
    print(f"\ntext records: {a.records:,} records ({a.records * 3:,} lines, {size / 1e6:.1f} MB), median of {a.runs}")
    print(f"sluice run (parse + helpers + load)   {s:7.2f} s  {size / 1e6 / s:6.1f} MB/s")
    print(f"python re extractor + sqlite3         {p:7.2f} s  {size / 1e6 / p:6.1f} MB/s")
    print(f"sluice / python = {s / p:.2f}")
    print(f"parse only (every row dropped by a last filter; python: no insert):")
    print(f"sluice run, parse + helpers           {sp:7.2f} s  {size / 1e6 / sp:6.1f} MB/s")
    print(f"python re extractor                   {pp:7.2f} s  {size / 1e6 / pp:6.1f} MB/s")
    print(f"sluice / python = {sp / pp:.2f}")
    s2, p2 = statistics.median(s2_times), statistics.median(p2_times)
    print(f"parse only, two patterns (coordinates; distance and bearing):")
    print(f"sluice run, two parse steps + helpers {s2:7.2f} s  {size / 1e6 / s2:6.1f} MB/s")
    print(f"python re, two regexes                {p2:7.2f} s  {size / 1e6 / p2:6.1f} MB/s")
    print(f"sluice / python = {s2 / p2:.2f}")
    if d_times:
        d = statistics.median(d_times)
        print(f"duckdb regexp_extract, 2 threads      {d:7.2f} s  {size / 1e6 / d:6.1f} MB/s  (parse only, one pattern: sluice / duckdb = {sp / d:.2f})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
