#!/usr/bin/env python3
"""One day's sales file, like seed 003's daily drop: incoming/sales-YYYY-MM-DD.csv with a few
bad rows (negative amounts, text in numbers, a duplicate order).

  generate.py --day 2026-11-01 [--rows 1000]
"""
import argparse, datetime, os, random

ap = argparse.ArgumentParser()
ap.add_argument("--day", required=True)
ap.add_argument("--rows", type=int, default=1000)
ap.add_argument("--out", default="incoming")
a = ap.parse_args()
day = datetime.date.fromisoformat(a.day)
rng = random.Random(day.toordinal())
os.makedirs(a.out, exist_ok=True)
path = os.path.join(a.out, "sales-%s.csv" % day.isoformat())
base = day.toordinal() % 1000 * 100000
with open(path, "w") as f:
    f.write("order_id,day,store,amount,qty\n")
    for i in range(a.rows):
        amount = "%.2f" % rng.uniform(5, 500)
        r = rng.random()
        if r < 0.02:
            amount = "-1.00"
        elif r < 0.03:
            amount = "n/a"
        f.write("%d,%s, %s ,%s,%d\n" % (base + i, day.isoformat(), rng.choice(["centro", "norte", "sul"]), amount, rng.randint(1, 5)))
    f.write("%d,%s,centro,10.00,1\n" % (base, day.isoformat()))  # a duplicate order id
# The file "lands" at noon of its day (UTC), so runs pick it up by modification time.
t = datetime.datetime(day.year, day.month, day.day, 12, tzinfo=datetime.timezone.utc).timestamp()
os.utime(path, (t, t))
print(path)
