#!/usr/bin/env python3
"""Queue benchmark (issue 20): enqueue no-op jobs, then W workers claim (up to 10 at a time)
and complete them. `sluice bench queue` runs Sluice's own control-plane drivers (SQLite and
PostgreSQL; completions job by job, as a stage worker does today, and a claim's batch in one
call); the peer is the textbook PostgreSQL queue in Python (psycopg 3, `FOR UPDATE SKIP
LOCKED` claims of 10, one thread per worker) on the same server. Each figure is a median of
--runs, each run on a fresh database. Targets: PostgreSQL >= 5,000 jobs/s, SQLite >= 2,000.

  python3 bench/queue_bench.py [--jobs 100000] [--runs 3]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_bench import fresh_db, postgres_env  # noqa: E402 (the private cluster, as the other benchmarks start it)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, ".build/release/sluice")
BATCH = 10


def sluice(database, jobs, workers, together):
    args = [SLUICE, "bench", "queue", "--database", database, "--jobs", str(jobs), "--workers", str(workers), "--batch", str(BATCH), "--json"]
    if together:
        args.append("--batch-completions")
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["completed"] == jobs, r
    return r


def python_peer(url, jobs, workers):
    """The textbook SKIP LOCKED queue: jobs(id, state, payload), claims of 10, each job
    completed by its own UPDATE (as a worker finishing jobs one at a time does)."""
    import psycopg
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE jobs (id bigserial PRIMARY KEY, state text NOT NULL DEFAULT 'queued', payload jsonb NOT NULL,"
                  " attempts int NOT NULL DEFAULT 0, worker text, created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz)")
        c.execute("CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued'")
    t = time.perf_counter()

    def produce(n):
        with psycopg.connect(url, autocommit=True) as c:
            for _ in range(n):
                c.execute("INSERT INTO jobs (payload) VALUES (%s)", ('{"source": "bench:noop"}',))
    ts = [threading.Thread(target=produce, args=(jobs // 4 + (1 if i < jobs % 4 else 0),)) for i in range(4)]
    [x.start() for x in ts]; [x.join() for x in ts]
    enqueue = time.perf_counter() - t
    claims, done = [], [0]
    lock = threading.Lock()

    def work(w):
        mine, n = [], 0
        with psycopg.connect(url, autocommit=True) as c:
            while True:
                s = time.perf_counter()
                got = c.execute("UPDATE jobs SET state = 'processing', attempts = attempts + 1, worker = %s WHERE id IN"
                                " (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
                                (f"w{w}", BATCH)).fetchall()
                mine.append(time.perf_counter() - s)
                if not got:
                    break
                for (i,) in got:
                    c.execute("UPDATE jobs SET state = 'complete', finished_at = now() WHERE id = %s AND state = 'processing'", (i,))
                    n += 1
        with lock:
            claims.extend(mine); done[0] += n
    t = time.perf_counter()
    ts = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    [x.start() for x in ts]; [x.join() for x in ts]
    drain = time.perf_counter() - t
    assert done[0] == jobs, done
    claims.sort()
    return {"enqueue_per_s": jobs / enqueue, "jobs_per_s": jobs / drain, "claim_p50_ms": claims[len(claims) // 2] * 1000,
            "claim_p99_ms": claims[min(len(claims) - 1, int(len(claims) * 0.99))] * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    env = postgres_env()
    admin = env["SLUICE_TEST_POSTGRES_URL"]
    cases = []
    for workers in (1, 4):
        cases.append((f"SQLite, {workers} worker(s), one by one", "sqlite", workers, False))
        cases.append((f"SQLite, {workers} worker(s), a claim at a time", "sqlite", workers, True))
        cases.append((f"PostgreSQL, {workers} worker(s), one by one", "pg", workers, False))
        cases.append((f"PostgreSQL, {workers} worker(s), a claim at a time", "pg", workers, True))
        cases.append((f"Python SKIP LOCKED peer, {workers} thread(s)", "peer", workers, False))
    results = {c[0]: [] for c in cases}
    for run in range(a.runs):
        for name, kind, workers, together in cases:  # in turn, so that the machine's moods spread over all
            if kind == "sqlite":
                d = tempfile.mkdtemp(prefix="sluice-queue-bench-")
                r = sluice(os.path.join(d, "queue.db"), a.jobs, workers, together)
                shutil.rmtree(d, ignore_errors=True)
            elif kind == "pg":
                r = sluice(fresh_db(admin, "qbench"), a.jobs, workers, together)
            else:
                r = python_peer(fresh_db(admin, "qpeer"), a.jobs, workers)
            results[name].append(r)
        print(f"run {run + 1}/{a.runs} done", flush=True)
    med = lambda name, k: statistics.median(r[k] for r in results[name])
    print(f"\nqueue: {a.jobs:,} no-op jobs, claims of up to {BATCH}, median of {a.runs}")
    print(f"{'':52} {'enqueue/s':>10} {'jobs/s':>9} {'claim p50':>10} {'claim p99':>10}")
    for name, *_ in cases:
        print(f"{name:52} {med(name, 'enqueue_per_s'):10.0f} {med(name, 'jobs_per_s'):9.0f} {med(name, 'claim_p50_ms'):8.2f}ms {med(name, 'claim_p99_ms'):8.2f}ms")


if __name__ == "__main__":
    main()
