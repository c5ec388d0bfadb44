#!/usr/bin/env python3
"""Export-ledger size (issue 18): a table of --rows dense ids exported in batches of 10,000 to
the test receiver, on SQLite and on PostgreSQL; the ledger's size before and after `sluice gc`
(which keeps runs of consecutive keys of delivered batches as ranges), and the time gc took.
Then 1% new rows are added and exported again: exactly those are sent (checked).
SQLite sizes come from the dbstat virtual table, PostgreSQL's from pg_total_relation_size.
"""
import argparse, json, os, shutil, socket, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench/out/ledger")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def sluice(a, work, args):
    t0 = time.perf_counter()
    p = subprocess.run([a.sluice] + args, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("sluice %s failed: %s" % (" ".join(args), p.stderr.decode()[-2000:]))
    return time.perf_counter() - t0, p.stdout.decode()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sluice", default=os.path.join(ROOT, ".build/release/sluice"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pg_bench import postgres_env
    env = postgres_env()
    admin = env["SLUICE_TEST_POSTGRES_URL"]
    pg = admin.rsplit("/", 1)[0] + "/bench_ledger"
    def psql(url, sql):
        return subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, stdout=subprocess.PIPE).stdout.decode().strip()
    psql(admin, "DROP DATABASE IF EXISTS bench_ledger"); psql(admin, "CREATE DATABASE bench_ledger")
    port = free_port()
    shutil.rmtree(OUT, ignore_errors=True); os.makedirs(OUT)
    rx = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts/receivers/bulk_receiver.py"), "--port", str(port), "--dir", os.path.join(OUT, "rx")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    url = "http://127.0.0.1:%d/bulk_upload" % port
    results = []
    try:
        for backend in ["sqlite", "postgresql"]:
            work = os.path.join(OUT, backend); os.makedirs(work)
            n, more = a.rows, a.rows // 100
            if backend == "sqlite":
                db = os.path.join(work, "sluice.db")
                open(os.path.join(work, "sluice.yml"), "w").write("database: sluice.db\n")
                subprocess.run(["sqlite3", db], check=True, input=(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d) INSERT INTO t SELECT i, 'name ' || i FROM s;" % n).encode())
                size = lambda: int(subprocess.check_output(["sqlite3", db, "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'sluice_export_keys%' OR name LIKE 'sluice_export_ranges%'"]).decode().strip() or 0)
                add = lambda: subprocess.run(["sqlite3", db, "WITH RECURSIVE s(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM s WHERE i < %d) INSERT INTO t SELECT i, 'name ' || i FROM s" % (n + 1, n + more)], check=True)
            else:
                open(os.path.join(work, "sluice.yml"), "w").write("database: %s\n" % pg)
                psql(pg, "CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL); INSERT INTO t SELECT i, 'name ' || i FROM generate_series(1, %d) i" % n)
                size = lambda: int(psql(pg, "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relname IN ('sluice_export_keys', 'sluice_export_ranges') AND c.relkind = 'r'"))
                add = lambda: psql(pg, "INSERT INTO t SELECT i, 'name ' || i FROM generate_series(%d, %d) i" % (n + 1, n + more))
            export = ["export", "--from", "t", "--key", "id", "--to", url, "--batch-size", "10000", "--json"]
            secs, out = sluice(a, work, export)
            assert json.loads(out)["delivered_rows"] == n, out
            before = size()
            if backend == "postgresql": psql(pg, "VACUUM ANALYZE")
            gc_secs, out = sluice(a, work, ["gc", "--json"])
            report = json.loads(out)
            if backend == "postgresql": psql(pg, "VACUUM FULL sluice_export_keys"); psql(pg, "VACUUM FULL sluice_export_ranges")
            else: subprocess.run(["sqlite3", db, "VACUUM"], check=True)
            after = size()
            add()
            _, out = sluice(a, work, export)
            assert json.loads(out)["delivered_rows"] == more, out
            _, out = sluice(a, work, export)
            assert json.loads(out)["planned_rows"] == 0, out
            results.append((backend, n, secs, before, after, report["ledger_keys"], report["ledger_ranges"], gc_secs))
            print("%s done" % backend, flush=True)
    finally:
        rx.kill()
        psql(admin, "DROP DATABASE IF EXISTS bench_ledger")
        subprocess.run([os.path.join(ROOT, "scripts/postgres.sh"), "stop", env["SLUICE_TEST_PGDATA"]], stdout=subprocess.DEVNULL)
    print()
    print("%-11s %10s %10s %12s %12s %10s %8s %8s" % ("backend", "rows", "export s", "ledger MB", "after gc MB", "keys", "ranges", "gc s"))
    for b, n, s, before, after, keys, ranges, g in results:
        print("%-11s %10d %10.2f %12.1f %12.3f %10d %8d %8.2f" % (b, n, s, before / 1e6, after / 1e6, keys, ranges, g))
    print("checked: every row delivered once; after gc the 1% new rows were sent, and nothing else")

if __name__ == "__main__":
    main()
