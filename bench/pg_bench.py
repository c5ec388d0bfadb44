#!/usr/bin/env python3
"""PostgreSQL benchmark (issue 4), on a private PostgreSQL 15 cluster with default durability,
the same files as the foundation benchmark, medians of several runs:

  limit     psql \\copy into an unlogged staging table + DISTINCT ON dedupe + one MERGE
  sluice    sluice load (a new table: COPY straight in, key built once; else COPY -> temp stage ->
            insert or counted MERGE; exact counts)
  pgloader  the peer users know (empty-table load only: it has no merge with deletes)
  chunks    one 10,000,000-row file loaded through the job queue by 1, 2 and 4 worker
            processes, in chunks (submit -> complete)
Every Sluice table is checked against the generator's digest of the exact expected table.

  --metrics-overhead   only the chunked load by 2 workers, in turn with everything off
                       (SLUICE_METRICS=off), metrics on (workers serve --metrics-port), and
                       metrics plus traces sent to an OTLP receiver; prints each against off
"""
import argparse, hashlib, json, os, re, shutil, signal, socket, statistics, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench/out")

def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw).stdout.decode()

def timed(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out, err = p.communicate()
    _, status, ru = os.wait4(p.pid, 0) if p.returncode is None else (0, 0, None)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), err.decode()[-2000:]))
    return secs, out.decode()

def run_rss(cmd, **kw):
    """Runs a command, returns (seconds, peak RSS MiB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out = p.stdout.read(); err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), err.decode()[-2000:]))
    return time.perf_counter() - t0, ru.ru_maxrss / 1024, out.decode()

def psql(url, sql):
    return sh(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql])

def fresh_db(admin, name):
    psql(admin, "DROP DATABASE IF EXISTS %s" % name)
    psql(admin, "CREATE DATABASE %s" % name)
    return admin.rsplit("/", 1)[0] + "/" + name

def digest(url):
    h = hashlib.sha256()
    p = subprocess.Popen(["psql", url, "-qAtX", "-c", "COPY (SELECT id, valor, referencia, category FROM registros ORDER BY id) TO STDOUT"],
                         stdout=subprocess.PIPE)
    for line in p.stdout:
        i, v, r, c = line.decode().rstrip("\n").split("\t")
        h.update(repr((int(i), float(v), r, c)).encode())
    p.wait()
    return h.hexdigest()

DDL = "CREATE TABLE registros (id bigint PRIMARY KEY, valor double precision, referencia text, category text)"

def limit_sql(csv, with_op):
    cols = "id, valor, referencia, category" + (", op" if with_op else "")
    return """
CREATE UNLOGGED TABLE stage (id bigint, valor double precision, referencia text, category text, op text, line bigserial);
\\copy stage (%s) FROM '%s' WITH (FORMAT csv, HEADER true)
MERGE INTO registros t USING (SELECT DISTINCT ON (id) * FROM stage ORDER BY id, line DESC) s ON t.id = s.id
  WHEN MATCHED AND s.op = 'D' THEN DELETE
  WHEN MATCHED THEN UPDATE SET valor = s.valor, referencia = s.referencia, category = s.category
  WHEN NOT MATCHED AND s.op IS DISTINCT FROM 'D' THEN INSERT VALUES (s.id, s.valor, s.referencia, s.category);
DROP TABLE stage;
""" % (cols, csv)

def postgres_env():
    """Starts the private PostgreSQL cluster (scripts/postgres.sh); returns its variables."""
    env = {}
    for line in sh([os.path.join(ROOT, "scripts/postgres.sh")]).splitlines():
        k, v = line[len("export "):].split("=", 1); env[k] = v
    return env

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def chunked(sluice, admin, name, csv, rows, workers, chunk_mb, work, metrics=False, otlp=None):
    """Submits `csv` in chunks and waits for the job. `metrics`: the workers record and serve
    Prometheus metrics (`--metrics-port`) and so does `serve`; else every process runs with
    SLUICE_METRICS=off and the workers without a port (every recording a no-op). `otlp`: an
    OTLP/HTTP endpoint every process sends its traces to."""
    url = fresh_db(admin, name)
    shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
    with open(os.path.join(work, "sluice.yml"), "w") as f:
        f.write("database: %s\nserver:\n  tokens: [bench]\n  file_roots: [%s]\nworker:\n  poll_seconds: 0.1\n  lease_seconds: 30\n"
                "entities:\n  registros:\n    primary_key: [id]\n    columns: {id: int64, valor: float64, referencia: text, category: text}\n"
                % (url, os.path.dirname(csv)))
    port = free_port()
    log = open(os.path.join(work, "serve.log"), "w")
    env = dict(os.environ, SLUICE_METRICS="on" if metrics else "off")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if otlp: env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
    procs = [subprocess.Popen([sluice, "serve", "--no-workers", "--port", str(port)], cwd=work, stdout=subprocess.DEVNULL, stderr=log, env=env)]
    for w in range(workers):
        extra = ["--metrics-port", str(free_port())] if metrics else []
        procs.append(subprocess.Popen([sluice, "worker", "--concurrency", "1", "--id", "w%d" % w] + extra, cwd=work, env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "w%d.log" % w), "w")))
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1); break
        except Exception:
            time.sleep(0.1)
    def call(method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method, data=body,
                                     headers={"Authorization": "Bearer bench", "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())
    t0 = time.perf_counter()
    job = call("PUT", "/registros/_bulk", json.dumps({"url": "file://" + csv, "chunk_mb": chunk_mb}).encode())
    while True:
        st = call("GET", job["status_url"])
        if st["state"] in ("complete", "error", "cancelled"): break
        time.sleep(0.1)
    secs = time.perf_counter() - t0
    rss = 0
    for p in procs:
        try:
            rss = max(rss, int(open("/proc/%d/status" % p.pid).read().split("VmHWM:")[1].split()[0]) / 1024)
        except Exception:
            pass
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try: p.wait(10)
        except subprocess.TimeoutExpired: p.kill()
    assert st["state"] == "complete", st
    assert st["stats"]["inserted"] == rows, st["stats"]
    assert psql(url, "SELECT count(*) FROM registros").strip() == str(rows)
    psql(admin, "DROP DATABASE %s" % name)
    return secs, rss

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk-mb", type=int, default=32)
    ap.add_argument("--sluice", default=os.path.join(ROOT, ".build/release/sluice"))
    ap.add_argument("--metrics-overhead", action="store_true",
                    help="only the chunked load by 2 workers, with metrics on and off alternately (same run), and the ratio")
    a = ap.parse_args()
    if a.metrics_overhead:
        return metrics_overhead(a)
    data = os.path.join(OUT, "rows-%d" % a.rows)
    if not os.path.exists(os.path.join(data, "expected.json")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", str(a.rows), "--out", data])
    big = os.path.join(OUT, "rows-%d" % a.big_rows)
    if a.big_rows and not os.path.exists(os.path.join(big, "base.csv")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", str(a.big_rows), "--out", big, "--base-only"])
    base, changes = os.path.join(data, "base.csv"), os.path.join(data, "changes.csv")
    expected = json.load(open(os.path.join(data, "expected.json")))

    env = postgres_env()
    admin = env["SLUICE_TEST_POSTGRES_URL"]
    work = os.path.join(OUT, "pgwork"); os.makedirs(work, exist_ok=True)
    R = {k: [] for k in ["limit_base", "limit_chg", "sl_base", "sl_chg", "pgloader"]}
    rss = 0
    try:
        for run in range(a.runs):
            # The limit.
            url = fresh_db(admin, "bench_limit")
            psql(url, DDL)
            R["limit_base"].append(_psql_script(url, limit_sql(base, False)))
            R["limit_chg"].append(_psql_script(url, limit_sql(changes, True)))
            assert psql(url, "SELECT count(*) FROM registros").strip() == str(expected["changes"]["rows_after"])
            # Sluice.
            url = fresh_db(admin, "bench_sluice")
            secs, r, out = run_rss([a.sluice, "load", base, "--into", "registros", "--key", "id", "--quiet", "--json", "--database", url], cwd=work)
            R["sl_base"].append(secs); rss = max(rss, r)
            assert json.loads(out)["stats"]["inserted"] == expected["base_rows"]
            assert digest(url) == expected["base_digest"], "sluice base table differs"
            secs, r, out = run_rss([a.sluice, "load", changes, "--into", "registros", "--quiet", "--json", "--database", url], cwd=work)
            R["sl_chg"].append(secs); rss = max(rss, r)
            st = json.loads(out)["stats"]
            for k in ["read", "inserted", "updated", "deleted", "rejected", "skipped"]:
                assert st[k] == expected["changes"][k], (k, st[k], expected["changes"][k])
            assert digest(url) == expected["changes_digest"], "sluice merged table differs"
            # pgloader, empty table.
            url = fresh_db(admin, "bench_pgloader")
            psql(url, DDL)
            secs, _ = timed(["pgloader", "--type", "csv", "--field", "id,valor,referencia,category", "--with", "skip header = 1",
                             "--with", "fields terminated by ','", base, url + "?tablename=registros"])
            R["pgloader"].append(secs)
            assert psql(url, "SELECT count(*) FROM registros").strip() == str(expected["base_rows"])
            print("run %d/%d done" % (run + 1, a.runs), flush=True)
        C = {}
        if a.big_rows:
            big_csv = os.path.join(big, "base.csv")
            B = {k: [] for k in ["limit", 1, 2, 4]}
            rss_c = {n: 0 for n in [1, 2, 4]}
            for run in range(a.runs):
                url = fresh_db(admin, "bench_big_limit")
                psql(url, DDL)
                B["limit"].append(_psql_script(url, limit_sql(big_csv, False)))
                psql(admin, "DROP DATABASE bench_big_limit")
                for n in [1, 2, 4]:
                    secs, r = chunked(a.sluice, admin, "bench_chunks", big_csv, a.big_rows, n, a.chunk_mb, os.path.join(work, "chunks"))
                    B[n].append(secs); rss_c[n] = max(rss_c[n], r)
                print("big run %d/%d: limit %.1f s, chunks by 1/2/4 workers %.1f/%.1f/%.1f s"
                      % (run + 1, a.runs, B["limit"][-1], B[1][-1], B[2][-1], B[4][-1]), flush=True)
            C = {n: (statistics.median(B[n]), rss_c[n]) for n in [1, 2, 4]}
            C["limit"] = statistics.median(B["limit"])
    finally:
        sh([os.path.join(ROOT, "scripts/postgres.sh"), "stop", env["SLUICE_TEST_PGDATA"]])

    m = {k: statistics.median(v) for k, v in R.items()}
    rows, crows = a.rows, expected["changes"]["read"]
    print()
    print("Sluice PostgreSQL benchmark: %d-row base file, %d-row change file, PostgreSQL 15, median of %d runs" % (rows, crows, a.runs))
    print("%-58s %9s %12s %8s" % ("case", "seconds", "rows/s", "ratio"))
    print("%-58s %9.2f %12s %8s" % ("load empty: limit (\\copy unlogged stage + dedupe + MERGE)", m["limit_base"], "{:,.0f}".format(rows / m["limit_base"]), "1.00"))
    print("%-58s %9.2f %12s %8.2f" % ("load empty: sluice load", m["sl_base"], "{:,.0f}".format(rows / m["sl_base"]), m["sl_base"] / m["limit_base"]))
    print("%-58s %9.2f %12s %8.2f" % ("load empty: pgloader", m["pgloader"], "{:,.0f}".format(rows / m["pgloader"]), m["pgloader"] / m["limit_base"]))
    print("%-58s %9.2f %12s %8s" % ("changes: limit (\\copy + dedupe + MERGE)", m["limit_chg"], "{:,.0f}".format(crows / m["limit_chg"]), "1.00"))
    print("%-58s %9.2f %12s %8.2f" % ("changes: sluice load (counted MERGE)", m["sl_chg"], "{:,.0f}".format(crows / m["sl_chg"]), m["sl_chg"] / m["limit_chg"]))
    if C:
        lim = C["limit"]
        print("%-58s %9.2f %12s %8s" % ("%d,000,000 rows: limit (\\copy + dedupe + MERGE), one psql" % (a.big_rows // 1_000_000), lim, "{:,.0f}".format(a.big_rows / lim), "1.00"))
        for n in [1, 2, 4]:
            secs = C[n][0]
            print("%-58s %9.2f %12s %8.2f" % ("%d,000,000 rows via API in %d MB chunks, %d worker process%s" % (a.big_rows // 1_000_000, a.chunk_mb, n, "" if n == 1 else "es"),
                                            secs, "{:,.0f}".format(a.big_rows / secs), secs / lim))
    print("peak RSS: sluice load %.0f MiB; chunked workers %s MiB" % (rss, ", ".join("%.0f" % C[n][1] for n in [1, 2, 4] if n in C)))
    print("checked: Sluice's counts equal the generator's; its tables match the expected digests")

def otlp_receiver(work):
    """The tests' OTLP/HTTP receiver on a free port, decoding every request but writing only
    its span count (see spans_received): (process, endpoint, spans file)."""
    port, spans = free_port(), os.path.join(work, "spans.jsonl")
    if os.path.exists(spans): os.remove(spans)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts/receivers/otlp_receiver.py"), "--port", str(port), "--out", spans, "--count-only"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/spans" % port, timeout=1); break
        except Exception:
            time.sleep(0.1)
    return p, "http://127.0.0.1:%d" % port, spans

def spans_received(path):
    """How many spans the receiver decoded (one {"spans": n} line per request)."""
    with open(path) as f:
        return sum(json.loads(line)["spans"] for line in f if line.strip())

def metrics_overhead(a):
    """Issue 18's overhead check: the same chunked load with everything off, with metrics, and
    with metrics and traces, in rotating order."""
    big = os.path.join(OUT, "rows-%d" % a.big_rows)
    if not os.path.exists(os.path.join(big, "base.csv")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", str(a.big_rows), "--out", big, "--base-only"])
    env = postgres_env()
    admin = env["SLUICE_TEST_POSTGRES_URL"]
    work = os.path.join(OUT, "pgwork"); os.makedirs(work, exist_ok=True)
    receiver, endpoint, spans = otlp_receiver(work)
    modes = {"off": (False, None), "metrics": (True, None), "metrics+traces": (True, endpoint)}
    T = {m: [] for m in modes}
    try:
        for run in range(a.runs):
            order = list(modes)[run % 3:] + list(modes)[:run % 3]
            for m in order:
                secs, _ = chunked(a.sluice, admin, "bench_metrics", os.path.join(big, "base.csv"), a.big_rows, 2, a.chunk_mb,
                                  os.path.join(work, "metrics"), metrics=modes[m][0], otlp=modes[m][1])
                T[m].append(secs)
            print("run %d/%d: %s" % (run + 1, a.runs, ", ".join("%s %.2f s" % (m, T[m][-1]) for m in modes)), flush=True)
    finally:
        receiver.kill()
        sh([os.path.join(ROOT, "scripts/postgres.sh"), "stop", env["SLUICE_TEST_PGDATA"]])
    n = spans_received(spans)
    assert n > 0, "no spans reached the receiver"
    med = {m: statistics.median(T[m]) for m in modes}
    print()
    print("%d rows via the API in %d MB chunks, 2 worker processes, median of %d runs" % (a.big_rows, a.chunk_mb, a.runs))
    for m in modes:
        print("%-16s %.2f s  %s" % (m, med[m], "" if m == "off" else "/off %.3f (target <= 1.03)" % (med[m] / med["off"])))
    print("the receiver decoded %d spans" % n)


def _psql_script(url, script):
    t0 = time.perf_counter()
    p = subprocess.run(["psql", url, "-qX", "-v", "ON_ERROR_STOP=1"], input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("limit recipe failed: " + p.stderr.decode())
    return time.perf_counter() - t0

if __name__ == "__main__":
    main()
