#!/usr/bin/env python3
"""Generate the benchmark files, shaped like seed 000's table.

base.csv     id (bigint), valor (double), referencia (10-char text), category (A-E)
changes.csv  the same plus `op`: 50% updates and 10% deletes of existing keys, 40% new
             keys, and 2% of the rows naming a key a second time (the later row wins).
expected.json  the exact counts a correct merge of changes.csv on top of base.csv gives, and
             SHA-256 digests of the exact tables (rows ordered by id) after each load.
"""

def digest(rows):
    """Digest of (id, valor, referencia, category) rows in id order, as bench.py reads them."""
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(row).encode())
    return h.hexdigest()
import argparse, hashlib, json, os, random

def ref(r):
    return "%010x" % r.getrandbits(40)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--base-only", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    r = random.Random(a.seed)
    n = a.rows
    cats = "ABCDE"
    keep = not a.base_only
    table = {}
    h = hashlib.sha256()
    with open(os.path.join(a.out, "base.csv"), "w") as f:
        f.write("id,valor,referencia,category\n")
        buf = []
        for i in range(n):
            row = (i, r.random() * 100, ref(r), cats[r.randrange(5)])
            h.update(repr(row).encode())
            if keep: table[i] = row
            buf.append("%d,%r,%s,%s\n" % row)
            if len(buf) >= 100_000:
                f.write("".join(buf)); buf.clear()
        f.write("".join(buf))
    base_digest = h.hexdigest()
    if a.base_only:
        with open(os.path.join(a.out, "expected.json"), "w") as f:
            json.dump({"base_rows": n, "base_digest": base_digest}, f, indent=1)
        return
    ids = r.sample(range(n), int(n * 0.6))
    updates = ids[: int(n * 0.5)]
    deletes = ids[int(n * 0.5):]
    new = list(range(n, n + int(n * 0.4)))
    rows = [(k, "U") for k in updates] + [(k, "D") for k in deletes] + [(k, "I") for k in new]
    r.shuffle(rows)
    # Some keys twice: a second row for 2% of the keys, placed later in the file.
    dup_count = int(n * 0.02)
    final = {}
    out = []
    for k, op in rows:
        out.append((k, op))
    for _ in range(dup_count):
        pos = r.randrange(len(out))
        k, _op = out[pos]
        op2 = r.choice("UUUD")
        out.insert(r.randrange(pos + 1, len(out) + 1), (k, op2))
    for k, op in out:
        final[k] = op
    existing = set(range(n))
    exp = {"read": len(out), "inserted": 0, "updated": 0, "deleted": 0, "rejected": 0}
    for k, op in final.items():
        if op == "D":
            if k in existing: exp["deleted"] += 1
        elif k in existing:
            exp["updated"] += 1
        else:
            exp["inserted"] += 1
    exp["skipped"] = exp["read"] - exp["inserted"] - exp["updated"] - exp["deleted"]
    exp["rows_after"] = n - exp["deleted"] + exp["inserted"]
    with open(os.path.join(a.out, "changes.csv"), "w") as f:
        f.write("id,valor,referencia,category,op\n")
        buf = []
        for k, op in out:
            if op == "D":
                buf.append("%d,,,,D\n" % k)
                table.pop(k, None)
            else:
                row = (k, r.random() * 100, ref(r), cats[r.randrange(5)])
                table[k] = row
                buf.append("%d,%r,%s,%s,%s\n" % (row + (op,)))
            if len(buf) >= 100_000:
                f.write("".join(buf)); buf.clear()
        f.write("".join(buf))
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump({"base_rows": n, "base_digest": base_digest, "changes": exp,
                   "changes_digest": digest(table[k] for k in sorted(table))}, f, indent=1)

if __name__ == "__main__":
    main()
