#!/usr/bin/env python3
"""Foundation benchmark: Sluice vs the sqlite3 shell on seed 000's table shape.

Measures, each over several runs (medians printed, the machine is shared and noisy):
  dry run   sluice load --dry-run (read + coerce every field, apply to the table and roll
            back for exact would-be counts; before issue 19 it only parsed, ~0.25 s here)
  load      into an empty keyed table
  changes   a change file (50% updates, 10% deletes, 40% new keys, some keys twice)
            merged on top of the loaded table
The baseline is the sqlite3 command-line shell: `.import` into a staging table, then
INSERT ... ON CONFLICT DO UPDATE and DELETE, keeping the last row per key (without that
step the recipe gives wrong results on this file). Both tables are compared row by row
after each run, and Sluice's counts are checked against the generator's expected figures.
"""
import argparse, hashlib, json, os, shutil, sqlite3, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def run(cmd, stdin=None, cwd=None):
    """Runs a command; returns (seconds, peak RSS in MiB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    if stdin:
        p.stdin.write(stdin.encode()); p.stdin.close()
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), err.decode()))
    return secs, ru.ru_maxrss / 1024, out.decode()

def table_digest(db):
    c = sqlite3.connect(db)
    h = hashlib.sha256()
    for row in c.execute("SELECT id, valor, referencia, category FROM registros ORDER BY id"):
        h.update(repr(row).encode())
    c.close()
    return h.hexdigest()

def compare(sluice_db, baseline_db):
    """Rows where the baseline differs from Sluice, and how many of those differ only in
    the last bits of `valor` (the sqlite3 shell's text-to-REAL cast is not always
    correctly rounded; Sluice's is, which the exact digests prove)."""
    a, b = sqlite3.connect(sluice_db), sqlite3.connect(baseline_db)
    q = "SELECT id, valor, referencia, category FROM registros ORDER BY id"
    diff = ulp = 0
    for x, y in zip(a.execute(q), b.execute(q)):
        if x != y:
            diff += 1
            if x[0] == y[0] and x[2:] == y[2:] and abs(x[1] - y[1]) <= 2 * abs(x[1]) * 2.0 ** -52:
                ulp += 1
    na = a.execute("SELECT count(*) FROM registros").fetchone()[0]
    nb = b.execute("SELECT count(*) FROM registros").fetchone()[0]
    return na == nb and diff == ulp, ulp

BASELINE_DDL = "CREATE TABLE registros (id INTEGER NOT NULL PRIMARY KEY, valor REAL, referencia TEXT, category TEXT) STRICT;"
PRAGMAS = "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\n"

def baseline_load(db, csv):
    return PRAGMAS + BASELINE_DDL + """
CREATE TEMP TABLE stage (id TEXT, valor TEXT, referencia TEXT, category TEXT);
.import --csv --skip 1 %s stage
BEGIN;
INSERT INTO registros SELECT CAST(id AS INTEGER), CAST(valor AS REAL), referencia, category FROM stage WHERE true
  ON CONFLICT(id) DO UPDATE SET valor = excluded.valor, referencia = excluded.referencia, category = excluded.category;
COMMIT;
""" % csv

def baseline_changes(db, csv):
    return PRAGMAS + """
CREATE TEMP TABLE stage (id TEXT, valor TEXT, referencia TEXT, category TEXT, op TEXT);
.import --csv --skip 1 %s stage
BEGIN;
CREATE TEMP TABLE last AS SELECT max(rowid) AS rid FROM stage GROUP BY id;
INSERT INTO registros SELECT CAST(id AS INTEGER), CAST(valor AS REAL), referencia, category FROM stage
  WHERE rowid IN (SELECT rid FROM last) AND op <> 'D'
  ON CONFLICT(id) DO UPDATE SET valor = excluded.valor, referencia = excluded.referencia, category = excluded.category;
DELETE FROM registros WHERE id IN (SELECT CAST(id AS INTEGER) FROM stage WHERE rowid IN (SELECT rid FROM last) AND op = 'D');
COMMIT;
""" % csv

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big-rows", type=int, default=10_000_000, help="rows of the memory test file (0 to skip)")
    ap.add_argument("--sluice", default=os.path.join(ROOT, ".build/release/sluice"))
    a = ap.parse_args()
    out = os.path.join(ROOT, "bench/out")
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(out, "rows-%d" % a.rows)
    if not os.path.exists(os.path.join(data, "expected.json")):
        print("generating %d-row files..." % a.rows, flush=True)
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", str(a.rows), "--out", data])
    base, changes = os.path.join(data, "base.csv"), os.path.join(data, "changes.csv")
    expected = json.load(open(os.path.join(data, "expected.json")))
    mb = os.path.getsize(base) / 1e6

    results = {k: [] for k in ["parse", "parse_core", "s_load", "b_load", "s_chg", "b_chg"]}
    rss = {"s_load": 0, "s_chg": 0}
    for i in range(a.runs):
        # Parse only.
        secs, _, o = run([a.sluice, "load", base, "--into", "registros", "--key", "id", "--dry-run", "--json", "--quiet"], cwd=work)
        results["parse"].append(secs)
        results["parse_core"].append(json.loads(o)["seconds"])
        # Load into an empty table.
        sdb, bdb = os.path.join(work, "sluice.db"), os.path.join(work, "baseline.db")
        for f in [sdb, bdb]:
            for suffix in ["", "-wal", "-shm"]:
                if os.path.exists(f + suffix): os.remove(f + suffix)
        shutil.rmtree(os.path.join(work, ".sluice"), ignore_errors=True)
        secs, r, o = run([a.sluice, "load", base, "--into", "registros", "--key", "id", "--json", "--quiet", "--database", sdb], cwd=work)
        results["s_load"].append(secs); rss["s_load"] = max(rss["s_load"], r)
        st = json.loads(o)["stats"]
        assert st["inserted"] == expected["base_rows"] and st["read"] == expected["base_rows"], st
        secs, _, _ = run(["sqlite3", bdb], stdin=baseline_load(bdb, base))
        results["b_load"].append(secs)
        assert table_digest(sdb) == expected["base_digest"], "sluice's table differs from the file"
        same, misrounded = compare(sdb, bdb)
        assert same, "baseline table differs beyond float rounding"
        # Changes on top.
        secs, r, o = run([a.sluice, "load", changes, "--into", "registros", "--json", "--quiet", "--database", sdb], cwd=work)
        results["s_chg"].append(secs); rss["s_chg"] = max(rss["s_chg"], r)
        st = json.loads(o)["stats"]
        exp = expected["changes"]
        for k in ["read", "inserted", "updated", "deleted", "rejected", "skipped"]:
            assert st[k] == exp[k], "count %s: sluice %s, expected %s" % (k, st[k], exp[k])
        secs, _, _ = run(["sqlite3", bdb], stdin=baseline_changes(bdb, changes))
        results["b_chg"].append(secs)
        assert table_digest(sdb) == expected["changes_digest"], "sluice's merged table differs from the expected one"
        same, misrounded2 = compare(sdb, bdb)
        assert same, "baseline merged table differs beyond float rounding"
        print("run %d/%d done" % (i + 1, a.runs), flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    rows = a.rows
    print()
    print("Sluice foundation benchmark: %d rows (%.1f MB base file), median of %d runs" % (rows, mb, a.runs))
    print("%-34s %10s %12s %12s %10s" % ("case", "seconds", "rows/s", "MB/s", "ratio"))
    print("%-34s %10.3f %12s %12.0f %10s" % ("dry run (in-process time)", med["parse_core"], "{:,.0f}".format(rows / med["parse_core"]), mb / med["parse_core"], ""))
    print("%-34s %10.3f %12s %12.0f %10s" % ("dry run (whole command)", med["parse"], "{:,.0f}".format(rows / med["parse"]), mb / med["parse"], ""))
    print("%-34s %10.3f %12s %12s %10s" % ("load empty: sqlite3 .import+upsert", med["b_load"], "{:,.0f}".format(rows / med["b_load"]), "", "1.00"))
    print("%-34s %10.3f %12s %12s %10.2f" % ("load empty: sluice load", med["s_load"], "{:,.0f}".format(rows / med["s_load"]), "", med["s_load"] / med["b_load"]))
    crow = expected["changes"]["read"]
    print("%-34s %10.3f %12s %12s %10s" % ("changes: sqlite3 .import+dedupe+merge", med["b_chg"], "{:,.0f}".format(crow / med["b_chg"]), "", "1.00"))
    print("%-34s %10.3f %12s %12s %10.2f" % ("changes: sluice load (merge)", med["s_chg"], "{:,.0f}".format(crow / med["s_chg"]), "", med["s_chg"] / med["b_chg"]))
    print("peak RSS: sluice load %.0f MiB, sluice changes %.0f MiB" % (rss["s_load"], rss["s_chg"]))
    print("checked: Sluice's counts equal the generator's and its tables are bit-identical to the expected ones;")
    print("         the sqlite3 baseline misrounds %d (load) and %d (changes) float values by an ulp" % (misrounded, misrounded2))

    if a.big_rows:
        big = os.path.join(out, "rows-%d" % a.big_rows)
        if not os.path.exists(os.path.join(big, "base.csv")):
            print("generating %d-row file..." % a.big_rows, flush=True)
            subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", str(a.big_rows), "--out", big, "--base-only"])
        bdb = os.path.join(work, "big.db")
        for suffix in ["", "-wal", "-shm"]:
            if os.path.exists(bdb + suffix): os.remove(bdb + suffix)
        secs, r, o = run([a.sluice, "load", os.path.join(big, "base.csv"), "--into", "registros", "--key", "id", "--json", "--quiet", "--database", bdb], cwd=work)
        st = json.loads(o)["stats"]
        assert st["inserted"] == a.big_rows, st
        print("memory: %d rows (%.0f MB) loaded in %.1f s, peak RSS %.0f MiB (1M rows: %.0f MiB)" %
              (a.big_rows, os.path.getsize(os.path.join(big, "base.csv")) / 1e6, secs, r, rss["s_load"]))
        os.remove(bdb)

if __name__ == "__main__":
    main()
