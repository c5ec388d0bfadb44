#!/usr/bin/env bash
# Issue 21's scale measurement on scripts/hosts.sh's namespaces: the same work on 1, 2 and 4
# worker hosts (each `sluice worker --concurrency 1`, a folder of its own; PostgreSQL, moto and
# the geocoder on the db host):
#   load     a ROWS-row CSV posted to the API host (kept in storage:), loaded in 8 MB chunks
#   enrich   a staged pipeline over POINTS coordinates in 8 files in the bucket, reverse-geocoded
#            by a server that answers each request after 50 ms and uses no CPU (4 requests at
#            once per enrich job); `sluice run geo --workers 0` on the API host coordinates
# Prints rows/s per host count and the speed-up over one host.
#   scripts/hosts-scale.sh [ROWS (default 2000000)] [POINTS (default 8000)]
# Needs root and a release build (or SLUICE_BIN=path).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-2000000}"
POINTS="${2:-8000}"
SLUICE="${SLUICE_BIN:-$PWD/.build/release/sluice}"
[ -x "$SLUICE" ] || { echo "error: build $SLUICE first" >&2; exit 1; }
H="$PWD/scripts/hosts.sh"
WORK=/tmp/sluice-hosts-scale
trap '$H down >/dev/null 2>&1 || true' EXIT
rm -rf "$WORK"; mkdir -p "$WORK/points"
python3 bench/gen.py --rows "$ROWS" --out "$WORK/data" --base-only >/dev/null
python3 - "$WORK/points" "$POINTS" <<'PY'
import random, sys
out, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(8)
points = [(round(rng.uniform(-33.7, 5.2), 5), round(rng.uniform(-73.9, -34.8), 5)) for _ in range(rows)]
files = [open("%s/p%d.csv" % (out, p), "w") for p in range(8)]
for f in files: f.write("id,lat,lon\n")
for i, (lat, lon) in enumerate(points): files[i % 8].write("%d,%s,%s\n" % (i, lat, lon))
for f in files: f.close()
PY
export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1
now() { python3 -c 'import time; print(time.time())'; }
results=()
for n in 1 2 4; do
  $H down >/dev/null 2>&1 || true
  eval "$($H up "$n")"
  export AWS_ENDPOINT_URL_S3="$SLUICE_HOSTS_S3"
  DB="$SLUICE_HOSTS_DB_URL"; API="http://$SLUICE_HOSTS_API:8080"
  sql() { $H run api psql "$DB" -qAtc "$1"; }
  api() { $H run api curl -sf -H "Authorization: Bearer hosts" "$@"; }
  $H run api python3 -c "
import boto3, glob, os
s3 = boto3.client('s3', endpoint_url='$SLUICE_HOSTS_S3')
s3.create_bucket(Bucket='hosts')
for f in glob.glob('$WORK/points/*.csv'): s3.upload_file(f, 'hosts', 'in/' + os.path.basename(f))"
  (exec $H run db python3 scripts/receivers/geocoder.py --host 10.77.0.2 --port 8090 --slow-rate 1 --slow-seconds 0.05 > "$WORK/geocoder.log" 2>&1) &
  for h in api $(seq -f "w%g" 1 "$n"); do
    rm -rf "${WORK:?}/$h"; mkdir -p "$WORK/$h"
    cat > "$WORK/$h/sluice.yml" <<YML
database: $DB
storage: s3://hosts/sluice/
server:
  tokens: [hosts]
worker:
  lease_seconds: 10
  poll_seconds: 0.1
entities:
  registros:
    primary_key: [id]
    columns: {id: int64, valor: float64, referencia: text, category: text}
  places:
    primary_key: [id]
    columns: {id: int64, lat: float64, lon: float64, address: text, city: text}
pipelines:
  geo:
    source: s3://hosts/in/
    staged: true
    batch_rows: 250
    steps:
      - cast: {id: int, lat: float, lon: float}
      - enrich:
          url: "http://10.77.0.2:8090/reverse?format=jsonv2&lat={lat}&lon={lon}"
          adapter: nominatim
          concurrency: 4
      - select: [id, lat, lon, address, city]
    into: places
YML
  done
  (cd "$WORK/api" && exec $H run api "$SLUICE" serve --no-workers --host "$SLUICE_HOSTS_API" --port 8080 > serve.log 2>&1) &
  for _ in $(seq 1 100); do api -o /dev/null "$API/healthz" 2>/dev/null && break; sleep 0.2; done
  for i in $(seq 1 "$n"); do
    (cd "$WORK/w$i" && exec $H run "w$i" "$SLUICE" worker --id "w$i" --concurrency 1 > worker.log 2>&1) &
  done
  sleep 1
  t0=$(now)
  id=$(api -X POST -H "Content-Type: text/csv" --data-binary "@$WORK/data/base.csv" "$API/registros/_bulk?chunk_mb=8&filename=base.csv" \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  for _ in $(seq 1 3000); do
    s=$(sql "SELECT state FROM sluice.jobs WHERE id = $id"); case "$s" in complete|error) break ;; esac; sleep 0.1
  done
  t1=$(now)
  [ "$s" = complete ] || { echo "FAIL: load job $id ended $s" >&2; exit 1; }
  load=$(python3 -c "print('%.0f' % ($ROWS / ($t1 - $t0)))")
  t0=$(now)
  (cd "$WORK/api" && $H run api "$SLUICE" run geo --workers 0 --quiet > run.log 2>&1)
  t1=$(now)
  got=$(sql "SELECT count(*) FROM public.places WHERE address IS NOT NULL")
  [ "$got" = "$POINTS" ] || { echo "FAIL: places holds $got enriched rows, not $POINTS" >&2; tail -5 "$WORK/api/run.log" >&2; exit 1; }
  enrich=$(python3 -c "print('%.0f' % ($POINTS / ($t1 - $t0)))")
  echo "$n worker host(s): load $load rows/s, enrich $enrich rows/s"
  results+=("$n $load $enrich")
  pkill -f "scripts/receivers/geocoder.py --host 10.77.0.2" || true
done
python3 - "${results[@]}" <<'PY'
import sys
rows = [tuple(map(float, a.split())) for a in sys.argv[1:]]
base = rows[0]
print("hosts | load rows/s | × one host | enrich rows/s | × one host")
for n, l, e in rows:
    print("%5d | %11.0f | %10.2f | %13.0f | %10.2f" % (n, l, l / base[1], e, e / base[2]))
PY
