#!/usr/bin/env python3
"""One day's sales file, like seed 003's daily drop: incoming/sales-YYYY-MM-DD.csv with a few
bad rows (negative amounts, text in numbers, a duplicate order).

  generate.py --day 2026-11-01 [--rows 1000]
  generate.py --day 2026-11-01 --drive FOLDER_ID    # dropped in a Drive folder instead (the
                                                    # emulator at $SLUICE_GDRIVE_ENDPOINT)
"""
import argparse, datetime, io, json, os, random, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--day", required=True)
ap.add_argument("--rows", type=int, default=1000)
ap.add_argument("--out", default="incoming")
ap.add_argument("--drive", help="a Drive folder id: the file is created there, at noon of its day")
a = ap.parse_args()
day = datetime.date.fromisoformat(a.day)
rng = random.Random(day.toordinal())
path = os.path.join(a.out, "sales-%s.csv" % day.isoformat())
base = day.toordinal() % 1000 * 100000
f = io.StringIO()
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
# The file "lands" at noon of its day (UTC), so runs pick it up by its time.
noon = datetime.datetime(day.year, day.month, day.day, 12, tzinfo=datetime.timezone.utc)
if a.drive:
    # What a person dropping the file in Drive does, through the emulator's set-up API.
    body = json.dumps([{"name": os.path.basename(path), "content": f.getvalue(), "parents": [a.drive], "mimeType": "text/csv",
                        "createdTime": noon.strftime("%Y-%m-%dT%H:%M:%S.000Z")}]).encode()
    endpoint = os.environ.get("SLUICE_GDRIVE_ENDPOINT", "http://127.0.0.1:8093")
    urllib.request.urlopen(urllib.request.Request(endpoint + "/_admin/drive/files", data=body, headers={"Content-Type": "application/json"}))
    print("gdrive://%s/%s" % (a.drive, os.path.basename(path)))
else:
    os.makedirs(a.out, exist_ok=True)
    with open(path, "w") as out:
        out.write(f.getvalue())
    os.utime(path, (noon.timestamp(), noon.timestamp()))
    print(path)
