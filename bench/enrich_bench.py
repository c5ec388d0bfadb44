#!/usr/bin/env python3
"""Enrich benchmark (issue 8): coordinates through parse -> reverse geocode (the local
geocoder, scripts/receivers/geocoder.py) -> merge into a table, side by side in the same run:

  python     seed 004's services in one process: a reader thread, a queue, N requests-based
             geocoding threads with a dict cache, a loader doing SQLite upserts
  sluice x1  `sluice run geo` (enrich step, cache in the control plane, bounded concurrency)
  sluice x4  four `sluice run` processes on four folders at once, sharing one control plane
             (cache and rate limit)
  staged xN  one `staged: true` run over the queue: `sluice run --workers 0` queues the files,
             one `sluice worker --stage extract --stage load` and N `sluice worker --stage
             enrich` processes share the batches (seed 004's `scale transformer=N`)
  geocoder   its own capacity alone: wrk against /reverse

--rows coordinates (half of them repeating a point), medians of --runs runs. Each Sluice run
starts from an empty database (an empty cache); every run checks the table holds every row.
"""
import argparse, json, os, queue, random, shutil, sqlite3, statistics, subprocess, sys, threading, time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, ".build", "release", "sluice")
PORT = 28090
URL = "http://127.0.0.1:%d/reverse?format=jsonv2&lat=%s&lon=%s"


def make_files(out, rows, parts):
    rng = random.Random(8)
    points = [(round(rng.uniform(-33.7, 5.2), 5), round(rng.uniform(-73.9, -34.8), 5)) for _ in range(rows // 2)]
    for p in range(parts):
        os.makedirs(os.path.join(out, "in%d" % p), exist_ok=True)
    n = 0
    files = [open(os.path.join(out, "in%d" % p, "points.csv"), "w") for p in range(parts)]
    for f in files:
        f.write("id,lat,lon\n")
    for i in range(rows):
        lat, lon = points[i // 2] if i % 2 == 0 else points[rng.randrange(len(points))]
        files[i % parts].write("%d,%s,%s\n" % (i, lat, lon))
    for f in files:
        f.close()


def yml(source, rate, concurrency=16, staged=False, batch_rows=2000):
    return """
entities:
  places:
    primary_key: [id]
    columns: {id: int64, lat: float64, lon: float64, address: text, city: text}
worker:
  poll_seconds: 0.1
pipelines:
  geo:
    source: %s
    staged: %s
    batch_rows: %d
    steps:
      - cast: {id: int, lat: float, lon: float}
      - enrich:
          url: "http://127.0.0.1:%d/reverse?format=jsonv2&lat={lat}&lon={lon}"
          adapter: nominatim
          concurrency: %d
          rate: %d
      - select: [id, lat, lon, address, city]
    into: places
""" % (source, "true" if staged else "false", batch_rows, PORT, concurrency, rate)


def python_rendition(out, rows, threads):
    """Seed 004 in one process: extractor -> queue -> transformer threads (requests + dict cache) -> loader."""
    db = os.path.join(out, "python.db")
    if os.path.exists(db):
        os.remove(db)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE places (id INTEGER PRIMARY KEY, lat REAL, lon REAL, address TEXT, city TEXT)")
    todo, done = queue.Queue(maxsize=10000), queue.Queue(maxsize=10000)
    cache, lock = {}, threading.Lock()

    def extractor():
        for p in sorted(os.listdir(out)):
            if p.startswith("in"):
                with open(os.path.join(out, p, "points.csv")) as f:
                    next(f)
                    for line in f:
                        i, lat, lon = line.strip().split(",")
                        todo.put((int(i), lat, lon))
        for _ in range(threads):
            todo.put(None)

    def transformer():
        s = requests.Session()
        while True:
            item = todo.get()
            if item is None:
                done.put(None)
                return
            i, lat, lon = item
            key = (lat, lon)
            with lock:
                hit = cache.get(key)
            if hit is None:
                for attempt in range(5):
                    r = s.get(URL % (PORT, lat, lon), timeout=10)
                    if r.status_code == 200:
                        hit = r.json()
                        break
                    time.sleep(0.1 * 2 ** attempt)
                with lock:
                    cache[key] = hit
            done.put((i, float(lat), float(lon), hit["display_name"], hit["address"]["city"]))

    ts = [threading.Thread(target=extractor)] + [threading.Thread(target=transformer) for _ in range(threads)]
    for t in ts:
        t.start()
    finished, batch = 0, []
    while finished < threads:
        item = done.get()
        if item is None:
            finished += 1
            continue
        batch.append(item)
        if len(batch) >= 1000:
            con.executemany("INSERT INTO places VALUES (?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET address = excluded.address, city = excluded.city", batch)
            con.commit()
            batch = []
    con.executemany("INSERT INTO places VALUES (?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET address = excluded.address, city = excluded.city", batch)
    con.commit()
    for t in ts:
        t.join()
    n = con.execute("SELECT count(*) FROM places").fetchone()[0]
    assert n == rows, "python loaded %d of %d" % (n, rows)


def sluice(out, rows, workers, rate, concurrency):
    d = os.path.join(out, "sluice%d" % workers)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    parts = sorted(p for p in os.listdir(out) if p.startswith("in"))
    groups = [parts[i::workers] for i in range(workers)]
    procs = []
    for w, g in enumerate(groups):
        src = os.path.join(d, "src%d" % w)
        os.makedirs(src)
        for p in g:
            os.link(os.path.join(out, p, "points.csv"), os.path.join(src, p + ".csv"))  # hard links: symlinks out of a folder are refused
        with open(os.path.join(d, "w%d.yml" % w), "w") as f:
            f.write(yml(src, rate, concurrency))
        procs.append(subprocess.Popen([SLUICE, "run", "geo", "--config", "w%d.yml" % w, "--database", "sluice.db", "--quiet"], cwd=d,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        assert p.wait() == 0, "sluice run failed (see %s)" % d
    n = sqlite3.connect(os.path.join(d, "sluice.db")).execute("SELECT count(*), count(city) FROM places").fetchone()
    assert n == (rows, rows), "sluice loaded %s of %d" % (n, rows)


def sluice_staged(out, rows, workers, rate, concurrency, batch_rows=2000, jobs_per_worker=2):
    d = os.path.join(out, "staged%d" % workers)
    shutil.rmtree(d, ignore_errors=True)
    src = os.path.join(d, "src")
    os.makedirs(src)
    for p in sorted(p for p in os.listdir(out) if p.startswith("in")):
        os.link(os.path.join(out, p, "points.csv"), os.path.join(src, p + ".csv"))
    with open(os.path.join(d, "sluice.yml"), "w") as f:
        f.write(yml(src, rate, concurrency, staged=True, batch_rows=batch_rows))
    quiet = dict(cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([SLUICE, "migrate"], check=True, **quiet)
    run = subprocess.Popen([SLUICE, "run", "geo", "--workers", "0", "--quiet"], **quiet)
    procs = [subprocess.Popen([SLUICE, "worker", "--stage", "extract", "--stage", "load", "--concurrency", "2"], **quiet)]
    procs += [subprocess.Popen([SLUICE, "worker", "--stage", "enrich", "--concurrency", str(jobs_per_worker)], **quiet) for _ in range(workers)]
    t0 = time.perf_counter()
    code = run.wait()
    took = time.perf_counter() - t0  # the run, from its start to its end (not the workers' shutdown)
    for p in procs:
        p.terminate()
        p.wait()
    assert code == 0, "sluice run (staged) failed (see %s)" % d
    n = sqlite3.connect(os.path.join(d, "sluice.db")).execute("SELECT count(*), count(city) FROM places").fetchone()
    assert n == (rows, rows), "sluice loaded %s of %d" % (n, rows)
    return took


def stats():
    return requests.get("http://127.0.0.1:%d/stats" % PORT).json()


def geocoder(*args):
    g = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "receivers", "geocoder.py"), "--port", str(PORT), *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            stats()
            return g
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("the geocoder did not start")


def latency_scaling(a):
    """Issue 20: stages that scale where the API is the bottleneck. A geocoder answering each
    request after 50 ms using no CPU (asyncio); 1, 2 and 4 staged enrich workers, each with
    16 requests in flight (one batch at a time); then 4 workers under `rate: 200`."""
    out = os.path.join(a.out, "latency")
    os.makedirs(out)
    make_files(out, a.latency_rows, 8)
    counts = (1, 2, 4)
    wall = {w: [] for w in counts}
    rps = {w: [] for w in counts}
    py = []
    for run in range(a.runs):
        for w in counts:
            g = geocoder("--latency", str(a.latency))
            wall[w].append(sluice_staged(out, a.latency_rows, w, 5000, 16, batch_rows=a.latency_batch, jobs_per_worker=1))
            s = stats()
            rps[w].append(s["calls"] / (s["last"] - s["first"]))
            g.kill()
            g.wait()
        g = geocoder("--latency", str(a.latency))
        t0 = time.perf_counter()
        python_rendition(out, a.latency_rows, 16)
        py.append(time.perf_counter() - t0)
        g.kill()
        g.wait()
        print("latency run %d: " % (run + 1) + ", ".join("%d worker%s %.2f s (%.0f req/s)" % (w, "" if w == 1 else "s", wall[w][-1], rps[w][-1]) for w in counts)
              + ", python 16 threads %.2f s" % py[-1], flush=True)
    med = {w: statistics.median(wall[w]) for w in counts}
    medr = {w: statistics.median(rps[w]) for w in counts}
    print()
    print("fixed latency %.0f ms, %d rows (%d distinct points), batches of %d rows, 16 requests in flight per worker" % (
        a.latency * 1000, a.latency_rows, a.latency_rows // 2, a.latency_batch))
    print("%-34s %9s %9s %14s %12s" % ("", "seconds", "req/s", "scaling(wall)", "scaling(req/s)"))
    for w in counts:
        print("%-34s %9.2f %9.0f %13.2fx %13.2fx" % ("staged, %d enrich worker%s" % (w, "" if w == 1 else "s"), med[w], medr[w], med[1] / med[w], medr[w] / medr[1]))
    print("%-34s %9.2f" % ("python rendition (16 threads)", statistics.median(py)))
    print("targets: 2 workers >= 1.9x, 4 workers >= 3.6x over one")


def shared_rate(a):
    """The shared rate limit under the same latency: 4 staged enrich workers, `rate: 200`."""
    out = os.path.join(a.out, "rate")
    os.makedirs(out)
    make_files(out, a.rate_rows, 8)
    peaks, averages = [], []
    for run in range(a.runs):
        g = geocoder("--latency", str(a.latency))
        sluice_staged(out, a.rate_rows, 4, 200, 16, batch_rows=a.latency_batch, jobs_per_worker=1)
        s = stats()
        peaks.append(s["max_per_second"])
        averages.append(s["calls"] / (s["last"] - s["first"]))
        g.kill()
        g.wait()
    print("rate 200, 4 workers: peak requests in any second %d (max of %d runs, target <= 200), average %.1f/s (min %.1f, target >= 190)" % (
        max(peaks), a.runs, statistics.median(averages), min(averages)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=16, help="geocoding threads in the python rendition")
    ap.add_argument("--rate", type=int, default=100_000, help="sluice's shared rate limit (requests/s)")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight per sluice worker")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "enrich"))
    ap.add_argument("--part", choices=("cpu", "latency", "rate", "all"), default="all",
                    help="cpu: the CPU-bound geocoder vs seed 004's rendition; latency: scaling over a 50 ms geocoder; rate: its shared rate limit")
    ap.add_argument("--latency", type=float, default=0.05, help="the latency geocoder's answer time (s)")
    ap.add_argument("--latency-rows", type=int, default=12_000)
    ap.add_argument("--latency-batch", type=int, default=500)
    ap.add_argument("--rate-rows", type=int, default=8_000)
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    if a.part in ("latency", "all"):
        latency_scaling(a)
    if a.part in ("latency", "rate", "all"):
        shared_rate(a)
    if a.part != "all" and a.part != "cpu":
        return
    print()
    make_files(a.out, a.rows, 8)
    names = ("python", "sluice1", "sluice4", "staged1", "staged4")
    times = {k: [] for k in names}
    peaks = {k: [] for k in names[1:]}
    calls = {}
    for run in range(a.runs):
        for name in names:
            g = geocoder()
            t0 = time.perf_counter()
            if name == "python":
                python_rendition(a.out, a.rows, a.threads)
                took = time.perf_counter() - t0
            elif name.startswith("staged"):
                took = sluice_staged(a.out, a.rows, int(name[-1]), a.rate, a.concurrency)
            else:
                sluice(a.out, a.rows, 1 if name == "sluice1" else 4, a.rate, a.concurrency)
                took = time.perf_counter() - t0
            times[name].append(took)
            s = stats()
            calls[name] = s["calls"]
            if name != "python":
                peaks[name].append(s["max_per_second"])
            g.kill()
            g.wait()
        print("run %d: " % (run + 1) + ", ".join("%s %.2f s" % (k, times[k][-1]) for k in names), flush=True)
    # The geocoder alone.
    g = geocoder()
    out = subprocess.run(["wrk", "-t2", "-c16", "-d5s", URL % (PORT, "-10.5", "-40.25")], capture_output=True, text=True).stdout
    g.kill()
    capacity = float(next(l for l in out.splitlines() if l.startswith("Requests/sec")).split()[1])
    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print("%-40s %9s %11s %10s %9s" % ("", "seconds", "rows/s", "requests", "req/s"))
    for k, label in (("python", "python rendition of seed 004 (%d threads)" % a.threads), ("sluice1", "sluice run, 1 process"),
                     ("sluice4", "sluice run, 4 processes (4 folders)"), ("staged1", "staged, 1 enrich worker"), ("staged4", "staged, 4 enrich workers")):
        print("%-40s %9.2f %11.0f %10d %9.0f" % (label, med[k], a.rows / med[k], calls[k], calls[k] / med[k]))
    print("%-40s %9s %11s %10s %9.0f" % ("geocoder alone (wrk, 16 connections)", "", "", "", capacity))
    print()
    print("vs python: " + ", ".join("%s %.2fx" % (k, med["python"] / med[k]) for k in names[1:]) + " (target >= 5x)")
    print("request rate / geocoder capacity: " + ", ".join("%s %.2f" % (k, (calls[k] / med[k]) / capacity) for k in ("sluice4", "staged4")) + " (target >= 0.9)")
    print("peak requests in any second: " + ", ".join("%s %s" % (k, max(peaks[k])) for k in names[1:]) + " (rate limit %d)" % a.rate)
    print("medians of %d runs, %d rows, half repeating a point" % (a.runs, a.rows))


if __name__ == "__main__":
    main()
