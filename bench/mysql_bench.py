#!/usr/bin/env python3
"""MySQL / MariaDB benchmark (issue 23), on a private MariaDB 10.11 (scripts/mariadb.sh) with
default durability, the same files as the foundation benchmark, medians of several runs:

  recipe   the server's own bulk recipe through the `mariadb` client: LOAD DATA LOCAL INFILE
           into a staging table, last row per key (ROW_NUMBER), INSERT ... ON DUPLICATE KEY
           UPDATE, DELETE ... JOIN for the deletes
  sluice   sluice load --target mysql://... (LOAD DATA LOCAL stream -> stage -> counted apply)
  pandas   seed 004's language: pandas.read_csv + PyMySQL executemany of INSERT ... ON
           DUPLICATE KEY UPDATE in 10,000-row batches, then the deletes (a process of its own)
Every Sluice table is checked against the generator's digest of the exact expected table.
"""
import argparse, hashlib, json, os, statistics, subprocess, sys, time
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench/out")
DDL = "CREATE TABLE registros (id BIGINT PRIMARY KEY, valor DOUBLE, referencia LONGTEXT, category LONGTEXT)"


def run_rss(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out = p.stdout.read(); err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), err.decode()[-2000:]))
    return time.perf_counter() - t0, ru.ru_maxrss / 1024, out.decode()


class Server:
    def __init__(self, url):
        u = urlparse(url)
        self.url, self.host, self.port, self.user, self.pw = url, u.hostname, u.port, u.username, u.password

    def client(self, db=None):
        return ["mariadb", "--no-defaults", "--local-infile=1", "-h", self.host, "-P", str(self.port), "-u", self.user,
                "-p" + self.pw, "-N", "-B"] + ([db] if db else [])

    def sql(self, db, text):
        p = subprocess.run(self.client(db), input=text.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            sys.exit("mariadb failed: " + p.stderr.decode()[-2000:])
        return p.stdout.decode()

    def fresh(self, name):
        self.sql(None, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" % (name, name))
        return "mysql://%s:%s@%s:%d/%s?tls=disable" % (self.user, self.pw, self.host, self.port, name)

    def digest(self, db):
        h = hashlib.sha256()
        p = subprocess.Popen(self.client(db) + ["-e", "SELECT id, valor, referencia, category FROM registros ORDER BY id"], stdout=subprocess.PIPE)
        for line in p.stdout:
            i, v, r, c = line.decode().rstrip("\n").split("\t")
            h.update(repr((int(i), float(v), r, c)).encode())
        p.wait()
        return h.hexdigest()


def recipe(csv, with_op):
    cols = "id, valor, referencia, category" + (", op" if with_op else "")
    return """
CREATE TEMPORARY TABLE stage (id BIGINT, valor DOUBLE, referencia LONGTEXT, category LONGTEXT, op VARCHAR(1), line BIGINT AUTO_INCREMENT PRIMARY KEY);
LOAD DATA LOCAL INFILE '%s' INTO TABLE stage CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' LINES TERMINATED BY '\\n' IGNORE 1 LINES (%s);
CREATE TEMPORARY TABLE final SELECT id, valor, referencia, category, op FROM (SELECT s.*, ROW_NUMBER() OVER (PARTITION BY id ORDER BY line DESC) AS rn FROM stage s) x WHERE rn = 1;
START TRANSACTION;
INSERT INTO registros (id, valor, referencia, category) SELECT id, valor, referencia, category FROM final WHERE op IS NULL OR op <> 'D'
  ON DUPLICATE KEY UPDATE valor = VALUES(valor), referencia = VALUES(referencia), category = VALUES(category);
DELETE r FROM registros r JOIN final f ON r.id = f.id WHERE f.op = 'D';
COMMIT;
""" % (csv, cols)


def pandas_load(url, csv):
    """Seed 004's way, as its own process: `mysql_bench.py --pandas-load URL CSV`."""
    import pandas, pymysql
    u = urlparse(url)
    conn = pymysql.connect(host=u.hostname, port=u.port, user=u.username, password=u.password, database=u.path.lstrip("/"), autocommit=False)
    cur = conn.cursor()
    df = pandas.read_csv(csv, dtype={"referencia": str, "category": str})
    if "op" in df.columns:
        last = df.drop_duplicates("id", keep="last")
        ups, dels = last[last.op != "D"], last[last.op == "D"]
    else:
        ups, dels = df, df.iloc[0:0]
    sql = ("INSERT INTO registros (id, valor, referencia, category) VALUES (%s, %s, %s, %s) "
           "ON DUPLICATE KEY UPDATE valor = VALUES(valor), referencia = VALUES(referencia), category = VALUES(category)")
    rows = list(ups[["id", "valor", "referencia", "category"]].itertuples(index=False, name=None))
    for i in range(0, len(rows), 10_000):
        cur.executemany(sql, rows[i:i + 10_000])
    ids = [int(x) for x in dels["id"]]
    for i in range(0, len(ids), 10_000):
        part = ids[i:i + 10_000]
        cur.execute("DELETE FROM registros WHERE id IN (%s)" % ",".join(["%s"] * len(part)), part)
    conn.commit()
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pandas-runs", type=int, default=1, help="pandas is slow: fewer runs of it")
    ap.add_argument("--sluice", default=os.environ.get("SLUICE_BIN") or os.path.join(ROOT, ".build/release/sluice"))
    ap.add_argument("--pandas-load", nargs=2, metavar=("URL", "CSV"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pandas_load:
        return pandas_load(*a.pandas_load)
    data = os.path.join(OUT, "rows-%d" % a.rows)
    if not os.path.exists(os.path.join(data, "expected.json")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench/gen.py"), "--rows", str(a.rows), "--out", data])
    base, changes = os.path.join(data, "base.csv"), os.path.join(data, "changes.csv")
    expected = json.load(open(os.path.join(data, "expected.json")))
    env = {}
    for line in subprocess.run([os.path.join(ROOT, "scripts/mariadb.sh")], check=True, stdout=subprocess.PIPE).stdout.decode().splitlines():
        k, v = line[len("export "):].split("=", 1); env[k] = v
    server = Server(env["SLUICE_TEST_MYSQL_URL"])
    work = os.path.join(OUT, "mysqlwork"); os.makedirs(work, exist_ok=True)
    R = {k: [] for k in ["re_base", "re_chg", "sl_base", "sl_chg", "pd_base", "pd_chg"]}
    rss = 0
    try:
        for run in range(a.runs):
            server.fresh("bench_recipe")
            server.sql("bench_recipe", DDL)
            for key, csv, op in [("re_base", base, False), ("re_chg", changes, True)]:
                t0 = time.perf_counter(); server.sql("bench_recipe", recipe(csv, op)); R[key].append(time.perf_counter() - t0)
            assert server.sql("bench_recipe", "SELECT COUNT(*) FROM registros").strip() == str(expected["changes"]["rows_after"])
            url = server.fresh("bench_sluice")
            secs, r, out = run_rss([a.sluice, "load", base, "--into", "registros", "--key", "id", "--quiet", "--json", "--target", url], cwd=work)
            R["sl_base"].append(secs); rss = max(rss, r)
            assert json.loads(out)["stats"]["inserted"] == expected["base_rows"]
            assert server.digest("bench_sluice") == expected["base_digest"], "sluice base table differs"
            secs, r, out = run_rss([a.sluice, "load", changes, "--into", "registros", "--quiet", "--json", "--target", url], cwd=work)
            R["sl_chg"].append(secs); rss = max(rss, r)
            st = json.loads(out)["stats"]
            for k in ["read", "inserted", "updated", "deleted", "rejected", "skipped"]:
                assert st[k] == expected["changes"][k], (k, st[k], expected["changes"][k])
            assert server.digest("bench_sluice") == expected["changes_digest"], "sluice merged table differs"
            if run < a.pandas_runs:
                purl = server.fresh("bench_pandas")
                server.sql("bench_pandas", DDL)
                for key, csv in [("pd_base", base), ("pd_chg", changes)]:
                    secs, _, _ = run_rss([sys.executable, os.path.abspath(__file__), "--pandas-load", purl, csv])
                    R[key].append(secs)
                assert server.sql("bench_pandas", "SELECT COUNT(*) FROM registros").strip() == str(expected["changes"]["rows_after"])
            print("run %d/%d: recipe %.2f/%.2f s, sluice %.2f/%.2f s" % (run + 1, a.runs, R["re_base"][-1], R["re_chg"][-1], R["sl_base"][-1], R["sl_chg"][-1]), flush=True)
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/mariadb.sh"), "stop", env["SLUICE_TEST_MYSQL_DIR"]])
    m = {k: statistics.median(v) for k, v in R.items() if v}
    rows, crows = a.rows, expected["changes"]["read"]
    print()
    print("Sluice MySQL benchmark: %d-row base file, %d-row change file, MariaDB 10.11, median of %d runs (pandas: %d)" % (rows, crows, a.runs, a.pandas_runs))
    print("%-62s %9s %12s %8s" % ("case", "seconds", "rows/s", "ratio"))
    for label, key, ref, n in [
        ("load empty: recipe (LOAD DATA stage + dedupe + upsert)", "re_base", "re_base", rows),
        ("load empty: sluice load", "sl_base", "re_base", rows),
        ("load empty: pandas + PyMySQL executemany", "pd_base", "re_base", rows),
        ("changes: recipe (+ DELETE ... JOIN)", "re_chg", "re_chg", crows),
        ("changes: sluice load (counted merge)", "sl_chg", "re_chg", crows),
        ("changes: pandas + PyMySQL", "pd_chg", "re_chg", crows),
    ]:
        if key in m:
            print("%-62s %9.2f %12s %8.2f" % (label, m[key], "{:,.0f}".format(n / m[key]), m[key] / m[ref]))
    if "pd_base" in m:
        print("sluice vs pandas: %.1fx faster (empty), %.1fx faster (changes)" % (m["pd_base"] / m["sl_base"], m["pd_chg"] / m["sl_chg"]))
    print("peak RSS: sluice load %.0f MiB" % rss)
    print("checked: Sluice's counts equal the generator's; its tables match the expected digests")


if __name__ == "__main__":
    main()
