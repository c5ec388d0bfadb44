#!/usr/bin/env python3
"""Coordinate files like seed 004's: `id,lat,lon` rows, half of them repeating a point
already seen (so the geocoder cache has work to do).

  generate.py --files 4 --rows 500 --out drops [--first 0]
"""
import argparse, os, random

ap = argparse.ArgumentParser()
ap.add_argument("--files", type=int, default=4)
ap.add_argument("--rows", type=int, default=500)
ap.add_argument("--first", type=int, default=0)
ap.add_argument("--out", default="drops")
ap.add_argument("--seed", type=int, default=4)
a = ap.parse_args()
rng = random.Random(a.seed)
os.makedirs(a.out, exist_ok=True)
points = [(round(rng.uniform(-33.7, 5.2), 5), round(rng.uniform(-73.9, -34.8), 5)) for _ in range(a.files * a.rows // 2)]
n = a.first * a.rows
for f in range(a.first, a.first + a.files):
    with open(os.path.join(a.out, "points-%04d.csv" % f), "w") as fh:
        fh.write("id,lat,lon\n")
        for _ in range(a.rows):
            lat, lon = rng.choice(points)
            fh.write("%d,%s,%s\n" % (n, lat, lon))
            n += 1
print("wrote %d files of %d rows into %s/" % (a.files, a.rows, a.out))
