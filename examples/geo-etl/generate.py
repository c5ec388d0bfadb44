#!/usr/bin/env python3
"""Coordinate files like seed 004's, half of the rows repeating a point already seen (so the
geocoder cache has work to do): `id,lat,lon` CSV, or with --text the operators' `.txt` drops
(three lines a point, degrees written both ways, Brazilian decimal commas):

  Latitude: 30°02′59″S   -30.04982864
  Longitude: 51°12′05″W   -51.20150245
  Distance: 2,2959 km Bearing: 137,352°

  generate.py --files 4 --rows 500 --out drops [--first 0] [--text]
"""
import argparse, os, random

ap = argparse.ArgumentParser()
ap.add_argument("--files", type=int, default=4)
ap.add_argument("--rows", type=int, default=500)
ap.add_argument("--first", type=int, default=0)
ap.add_argument("--out", default="drops")
ap.add_argument("--seed", type=int, default=4)
ap.add_argument("--text", action="store_true", help="write seed 004's .txt records instead of CSV")
a = ap.parse_args()
rng = random.Random(a.seed)
os.makedirs(a.out, exist_ok=True)
points = [(round(rng.uniform(-33.7, 5.2), 5), round(rng.uniform(-73.9, -34.8), 5)) for _ in range(a.files * a.rows // 2)]


def dms(v, pos, neg):
    h = pos if v >= 0 else neg
    v = abs(v)
    d = int(v); m = int((v - d) * 60); s = min(59, int(round(((v - d) * 60 - m) * 60)))
    return "%d°%02d′%02d″%s" % (d, m, s, h)


n = a.first * a.rows
for f in range(a.first, a.first + a.files):
    name = "points-%04d.%s" % (f, "txt" if a.text else "csv")
    with open(os.path.join(a.out, name), "w", encoding="utf-8") as fh:
        if not a.text:
            fh.write("id,lat,lon\n")
        for _ in range(a.rows):
            lat, lon = rng.choice(points)
            if a.text:
                fh.write("Latitude: %s   %.8f\r\n" % (dms(lat, "N", "S"), lat))
                fh.write("Longitude: %s   %.8f\r\n" % (dms(lon, "E", "W"), lon))
                fh.write(("Distance: %.4f km Bearing: %.3f°\r\n" % (rng.uniform(0, 10), rng.uniform(0, 360))).replace(".", ","))
            else:
                fh.write("%d,%s,%s\n" % (n, lat, lon))
            n += 1
print("wrote %d files of %d rows into %s/" % (a.files, a.rows, a.out))
