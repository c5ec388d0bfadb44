#!/usr/bin/env python3
"""Watch benchmark (issue 6): marketplace order files landed in an S3 server (moto, on
127.0.0.1), ingested by `sluice watch` into the four tables of examples/marketplace, side by
side in the same run with the floor for fetching: a plain boto3 download loop of the same
objects.

  throughput  --files files (10-1,000 orders each) already in the bucket; the clock runs from
              starting the watcher to the four tables holding every row -> files/s, rows/s
  latency     with the watcher running (poll --interval), files are landed one at a time;
              landing-to-visible latency per file (its first order queryable) -> p50 / p99

Medians over --runs runs (a fresh database and bucket each).
"""
import argparse, json, os, shutil, sqlite3, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, ".build", "release", "sluice")
EXAMPLE = os.path.join(ROOT, "examples", "marketplace")


def start_s3():
    out = subprocess.run([os.path.join(ROOT, "scripts", "s3server.sh")], check=True, capture_output=True, text=True).stdout
    env = dict(line.split(" ", 1)[1].split("=", 1) for line in out.splitlines() if line.startswith("export "))
    return env["SLUICE_TEST_S3_ENDPOINT"], env["SLUICE_TEST_S3_PID"]


def client(endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")


def counts(db):
    try:
        con = sqlite3.connect(db, timeout=30)
        out = {t: con.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in ("orders", "products", "sellers", "shipments")}
        con.close()
        return out
    except sqlite3.OperationalError:
        return {}


def settled(db, files):
    """Cheap completion check (tiny control-plane tables, not a scan of the data): every file
    is queued in the ledger and every job is complete. A job completes in the transaction that
    writes its rows, so this is the moment the rows are visible."""
    try:
        con = sqlite3.connect(db, timeout=30)
        queued = con.execute("SELECT count(*) FROM sluice_watched_files WHERE state = 'queued'").fetchone()[0]
        pending = con.execute("SELECT count(*) FROM sluice_jobs WHERE state <> 'complete'").fetchone()[0]
        con.close()
        return queued == files and pending == 0
    except sqlite3.OperationalError:
        return False


def cpu_seconds(pid):
    """User + system CPU seconds a live process has used so far (Linux /proc)."""
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workdir(out, name):
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(EXAMPLE, "sluice.yml")) as f:
        yml = f.read().replace("database: marketplace.db", "database: sluice.db")
    with open(os.path.join(d, "sluice.yml"), "w") as f:
        f.write(yml)
    return d


def watcher(d, endpoint, bucket, interval, extra=()):
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    return subprocess.Popen([SLUICE, "watch", "s3://%s/" % bucket, "--glob", "input/*.json", "--into", "marketplace", "--name", "marketplace",
                             "--min-age", "0", "--interval", str(interval), *extra], cwd=d, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "watch.log"), "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--latency-files", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=2, help="in-process worker concurrency")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "watch"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    endpoint, pid = start_s3()
    s3 = client(endpoint)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    try:
        s3.create_bucket(Bucket="landing")
        gen = subprocess.run([sys.executable, os.path.join(EXAMPLE, "generate.py"), "--files", str(a.files), "--min-orders", "10", "--max-orders", "1000",
                              "--bucket", "landing", "--endpoint", endpoint], check=True, capture_output=True, text=True, env=env)
        expected = json.loads(gen.stdout)
        total_rows = sum(expected.values())
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="landing", Prefix="input/") for o in page.get("Contents", [])]
        size = sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="landing", Prefix="input/") for o in page.get("Contents", []))
        print("%d files, %.1f MB, rows expected %s" % (len(keys), size / 1e6, expected), flush=True)

        floor, sluice_t, cpu = [], [], []
        for run in range(a.runs):
            t0 = time.perf_counter()
            s3_cpu = cpu_seconds(pid)
            for k in keys:
                s3.get_object(Bucket="landing", Key=k)["Body"].read()
            floor.append(time.perf_counter() - t0)
            floor_s3_cpu = cpu_seconds(pid) - s3_cpu

            d = workdir(a.out, "run%d" % run)
            s3_cpu = cpu_seconds(pid)
            t0 = time.perf_counter()
            p = watcher(d, endpoint, "landing", 0.5, ["--concurrency", str(a.concurrency)])
            db = os.path.join(d, "sluice.db")
            # Polling the control plane, not count(*) over the growing tables: an observer
            # that scans millions of rows 20 times a second takes a core from the run it times.
            while not settled(db, len(keys)):
                if p.poll() is not None:
                    raise SystemExit("the watcher exited: see %s/watch.log" % d)
                time.sleep(0.05)
            sluice_t.append(time.perf_counter() - t0)
            cpu.append((cpu_seconds(p.pid), cpu_seconds(pid) - s3_cpu, floor_s3_cpu))
            got = counts(db)
            if got != expected:
                raise SystemExit("rows %s, expected %s: see %s/watch.log" % (got, expected, d))
            p.terminate()
            p.wait()
            print("run %d: download floor %.2f s, sluice watch %.2f s (CPU: sluice %.1f s, S3 server %.1f s; for the floor's loop %.1f s)"
                  % (run + 1, floor[-1], sluice_t[-1], *cpu[-1]), flush=True)

        # Latency: one file at a time into a fresh prefix, the watcher polling every --interval.
        s3.create_bucket(Bucket="latency")
        d = workdir(a.out, "latency")
        p = watcher(d, endpoint, "latency", a.interval, ["--concurrency", str(a.concurrency)])
        db = os.path.join(d, "sluice.db")
        lat = []
        for i in range(a.latency_files):
            body = json.dumps([{"txt_detl_idt_pedi_pgto": "LAT-%05d" % i, "dat_hor_tran": "2026-11-22T10:00:00Z", "stat_pedi": "aprovado",
                                "vlr_totl_pedi": 10.0, "cliente": {"idt_clie": "C"}, "vendedor": {"idt_venr": "V1", "nom_venr": "Loja", "nom_cida": "Recife", "sig_uf": "PE"},
                                "itens": [{"idt_prod": "SKU", "nom_prod": "x", "nom_cate": "casa", "qtd_item": 1, "vlr_unit": 10.0}],
                                "entrega": {"idt_rastr": "BR1", "nom_trsp": "Loggi", "dat_prev_entr": "2026-11-30", "stat_entr": "aguardando"}}]).encode()
            t0 = time.perf_counter()
            s3.put_object(Bucket="latency", Key="input/lat-%05d.json" % i, Body=body)
            while True:
                try:
                    con = sqlite3.connect(db, timeout=30)
                    seen = con.execute("SELECT 1 FROM orders WHERE txt_detl_idt_pedi_pgto = ?", ("LAT-%05d" % i,)).fetchone()
                    con.close()
                except sqlite3.OperationalError:
                    seen = None
                if seen:
                    break
                if time.perf_counter() - t0 > 60:
                    raise SystemExit("file %d never became visible" % i)
                time.sleep(0.01)
            lat.append(time.perf_counter() - t0)
            time.sleep(0.137 * (i % 7))  # land at varied points of the poll cycle
        p.terminate()
        p.wait()
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "s3server.sh"), "stop", pid])

    f, s = statistics.median(floor), statistics.median(sluice_t)
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print()
    print("%-44s %10s %10s %12s" % ("", "seconds", "files/s", "rows/s"))
    print("%-44s %10.2f %10.1f %12s" % ("boto3 download loop (floor for fetching)", f, len(keys) / f, "-"))
    print("%-44s %10.2f %10.1f %12.0f" % ("sluice watch -> 4 tables (in-process worker)", s, len(keys) / s, total_rows / s))
    print()
    print("end-to-end / download floor: %.2fx (target <= 2x)" % (s / f))
    print("landing-to-visible latency, poll every %.1f s: p50 %.2f s, p99 %.2f s (target p99 < %.1f s); %d files"
          % (a.interval, p50, p99, 2 * a.interval, len(lat)))
    print("CPU seconds (medians): sluice %.1f, S3 server serving it %.1f (serving the floor's loop %.1f); 2 cores"
          % tuple(statistics.median(c[i] for c in cpu) for i in range(3)))
    print("medians of %d runs; %d files, %d rows into orders/products/sellers/shipments" % (a.runs, len(keys), total_rows))


if __name__ == "__main__":
    main()
