#!/usr/bin/env python3
"""Console benchmark (issue 18): how long `sluice serve`'s pages take over a control plane that
holds 100,000 jobs (90% complete, 5% failed, 5% queued, over 10 entities), on SQLite and on
PostgreSQL. Each job is a copy of one real job the server loaded, so every page parses real
specs and results. Each figure is the median of --requests requests (one client, keep-alive
off: a whole request each), the target < 50 ms for the jobs list's first page.
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench/out/console")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def serve(sluice, work, workers):
    port = free_port()
    p = subprocess.Popen([sluice, "serve", "--no-auth", "--port", str(port)] + ([] if workers else ["--no-workers"]), cwd=work,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "a"))
    for _ in range(200):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1); return p, port
        except Exception:
            time.sleep(0.05)
    sys.exit("sluice serve did not start: see %s/serve.log" % work)

def stop(p):
    p.send_signal(signal.SIGTERM)
    try: p.wait(10)
    except subprocess.TimeoutExpired: p.kill(); p.wait()

def fill(backend, work, url, jobs):
    """Copies job 1 (a real, completed load) until the control plane holds `jobs` jobs."""
    cols = "entity, state, spec, priority, attempts, max_attempts, lease_token, run_after, created_at, started_at, finished_at, progress_bytes, progress_rows, result, error"
    pick = ("'e' || (i % 10), CASE WHEN i % 20 = 0 THEN 'error' WHEN i % 20 = 1 THEN 'queued' ELSE 'complete' END, spec, priority, attempts, "
            "max_attempts, lease_token, run_after, created_at, started_at, finished_at, progress_bytes, progress_rows, result, "
            "CASE WHEN i % 20 = 0 THEN 'line ' || i || ': not a number' ELSE NULL END")
    n = jobs - 1
    if backend == "sqlite":
        sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
               "INSERT INTO sluice_jobs (%s) SELECT %s FROM n, sluice_jobs t WHERE t.id = 1;" % (n, cols, pick))
        subprocess.run(["sqlite3", os.path.join(work, "sluice.db")], input=sql.encode(), check=True)
    else:
        sql = "INSERT INTO sluice.jobs (%s) SELECT %s FROM generate_series(1, %d) i, sluice.jobs t WHERE t.id = 1; ANALYZE sluice.jobs;" % (cols, pick, n)
        subprocess.run(["psql", url, "-qX", "-v", "ON_ERROR_STOP=1"], input=sql.encode(), check=True)

def timed_get(url):
    t0 = time.perf_counter()
    body = urllib.request.urlopen(url, timeout=30).read()
    return (time.perf_counter() - t0) * 1000, body

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--sluice", default=os.path.join(ROOT, ".build/release/sluice"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pg_bench import postgres_env
    env = postgres_env()
    admin = env["SLUICE_TEST_POSTGRES_URL"]
    subprocess.run(["psql", admin, "-qX", "-c", "DROP DATABASE IF EXISTS bench_console"], check=True)
    subprocess.run(["psql", admin, "-qX", "-c", "CREATE DATABASE bench_console"], check=True)
    pg_url = admin.rsplit("/", 1)[0] + "/bench_console"
    results = {}
    try:
        for backend, database in [("sqlite", "sluice.db"), ("postgresql", pg_url)]:
            work = os.path.join(OUT, backend)
            shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
            with open(os.path.join(work, "sluice.yml"), "w") as f:
                f.write("database: %s\nworker:\n  poll_seconds: 0.1\nentities:\n  registros:\n    primary_key: [id]\n" % database)
            with open(os.path.join(work, "one.csv"), "w") as f:
                f.write("id,valor\n1,1.5\n2,2.5\n")
            p, port = serve(a.sluice, work, True)
            req = urllib.request.Request("http://127.0.0.1:%d/registros/_bulk" % port, data=open(os.path.join(work, "one.csv"), "rb").read(),
                                         headers={"Content-Type": "text/csv"}, method="POST")
            job = json.loads(urllib.request.urlopen(req).read())
            while json.loads(urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, job["status_url"])).read())["state"] != "complete":
                time.sleep(0.05)
            stop(p)
            fill(backend, work, pg_url, a.jobs)
            p, port = serve(a.sluice, work, False)
            base = "http://127.0.0.1:%d" % port
            _, first = timed_get(base + "/ui/jobs")
            marker = first.decode().split("&after=")[1].split('"')[0] if "&after=" in first.decode() else ""
            pages = [("overview /", "/"), ("jobs, first page", "/ui/jobs"), ("jobs, next page", "/ui/jobs?after=" + marker),
                     ("failed jobs", "/ui/jobs?state=error"), ("one entity's jobs", "/ui/jobs?entity=e3"),
                     ("a job", "/ui/jobs/%d" % (a.jobs // 2)), ("GET /jobs (JSON API)", "/jobs")]
            for label, path in pages:
                timed_get(base + path)  # warm
                ms = [timed_get(base + path)[0] for _ in range(a.requests)]
                results[(backend, label)] = statistics.median(ms)
            total = first.decode().count("<tr>") - 1
            stop(p)
            print("%s: %d jobs; the first page lists %d" % (backend, a.jobs, total), flush=True)
    finally:
        subprocess.run(["psql", admin, "-qX", "-c", "DROP DATABASE IF EXISTS bench_console"])
        subprocess.run([os.path.join(ROOT, "scripts/postgres.sh"), "stop", env["SLUICE_TEST_PGDATA"]], stdout=subprocess.DEVNULL)
    print()
    print("console pages over %d jobs, median of %d requests each (ms; target: jobs' first page < 50)" % (a.jobs, a.requests))
    print("%-24s %10s %12s" % ("page", "SQLite", "PostgreSQL"))
    for label, _ in pages:
        print("%-24s %10.1f %12.1f" % (label, results[("sqlite", label)], results[("postgresql", label)]))

if __name__ == "__main__":
    main()
