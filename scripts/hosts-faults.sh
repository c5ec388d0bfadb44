#!/usr/bin/env bash
# Issue 21's cross-host faults, on scripts/hosts.sh's namespaces (each host with a folder of its
# own; only PostgreSQL and the bucket are shared):
#   1. a file posted to the API host, which keeps it in `storage:` and is killed right after its
#      202; N worker hosts load it in chunks; w1's link is cut while it holds a chunk: its lease
#      expires, another host loads that chunk, and w1's late commit is refused by its token;
#   2. the database host's link cut for CUT seconds (default 20) mid-load;
#   3. the S3 host's link cut for CUT seconds while the API host keeps an upload there.
# Each ends with exact counts (every row once) and no job stuck.
#
#   scripts/hosts-faults.sh [ROWS (default 2000000)] [WORKERS (default 3)] [CHUNK_MB (default 8)]
# Needs root and a release build (swift build -c release --product sluice), or SLUICE_BIN=path.
# Exits non-zero on any mismatch; removes every namespace it made.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-2000000}"
WORKERS="${2:-3}"
CHUNK_MB="${3:-8}"
SLUICE="${SLUICE_BIN:-$PWD/.build/release/sluice}"
[ -x "$SLUICE" ] || { echo "error: build $SLUICE first" >&2; exit 1; }
WORK=/tmp/sluice-hosts-work
H="$PWD/scripts/hosts.sh"

cleanup() { $H down >/dev/null 2>&1 || true; }
trap cleanup EXIT
$H down >/dev/null 2>&1 || true
eval "$($H up "$WORKERS")"
DB="$SLUICE_HOSTS_DB_URL"
API="http://$SLUICE_HOSTS_API:8080"
sql() { $H run api psql "$DB" -qAtc "$1"; }
api() { $H run api curl -sf -H "Authorization: Bearer hosts" "$@"; }
# Writes $WORK/data/$1.csv: base.csv with every id moved up by $2 (new rows, same shape).
shifted() {
  python3 - "$WORK/data/base.csv" "$WORK/data/$1.csv" "$2" <<'PY'
import csv, sys
src, dst, shift = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, newline="") as f, open(dst, "w", newline="") as g:
    r, w = csv.reader(f), csv.writer(g)
    w.writerow(next(r))
    for row in r:
        row[0] = str(int(row[0]) + shift)
        w.writerow(row)
PY
}
# Waits for job $1 to end; fails unless it completed and the table holds $2 rows, each once.
# Sets secs (since $started) and counts.
wait_complete() {
  local state=""
  for _ in $(seq 1 1500); do
    state=$(sql "SELECT state FROM sluice.jobs WHERE id = $1")
    case "$state" in complete|error|cancelled) break ;; esac
    sleep 0.2
  done
  secs=$(python3 -c "import time; print('%.1f' % (time.time() - $started))")
  [ "$state" = complete ] || { echo "FAIL: job $1 ended $state: $(sql "SELECT error FROM sluice.jobs WHERE id = $1")" >&2; tail -n 5 w*.log >&2; exit 1; }
  counts=$(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.registros")
  [ "$counts" = "$2 $2" ] || { echo "FAIL: table holds $counts (rows, distinct ids), not $2" >&2; exit 1; }
}

rm -rf "$WORK"; mkdir -p "$WORK"
python3 bench/gen.py --rows "$ROWS" --out "$WORK/data" --base-only >/dev/null
$H run api python3 -c "import boto3; boto3.client('s3', endpoint_url='$SLUICE_HOSTS_S3', aws_access_key_id='x', aws_secret_access_key='x', region_name='us-east-1').create_bucket(Bucket='hosts')"
export AWS_ENDPOINT_URL_S3="$SLUICE_HOSTS_S3" AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1
# Each host has a folder of its own (its disk); they share only PostgreSQL and the bucket.
for h in api $(seq -f "w%g" 1 "$WORKERS"); do
  mkdir -p "$WORK/$h"
  cat > "$WORK/$h/sluice.yml" <<YML
database: $DB
storage: s3://hosts/sluice/
server:
  tokens: [hosts]
worker:
  lease_seconds: 4
  poll_seconds: 0.2
  retry_base_seconds: 0.5
entities:
  registros:
    primary_key: [id]
    columns: {id: int64, valor: float64, referencia: text, category: text}
YML
done

cd "$WORK"
(cd "$WORK/api" && exec $H run api "$SLUICE" serve --no-workers --host "$SLUICE_HOSTS_API" --port 8080 > serve.log 2>&1) &
for _ in $(seq 1 100); do api -o /dev/null "$API/healthz" 2>/dev/null && break; sleep 0.2; done
for i in $(seq 1 "$WORKERS"); do
  (cd "$WORK/w$i" && exec $H run "w$i" "$SLUICE" worker --id "w$i" --concurrency 1 > "../w$i.log" 2>&1) &
done
started=$(date +%s.%N)
job=$(api -X POST -H "Content-Type: text/csv" --data-binary "@$WORK/data/base.csv" "$API/registros/_bulk?chunk_mb=$CHUNK_MB&filename=base.csv")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$job")
echo "job $id: $ROWS rows posted to the API host, in $CHUNK_MB MB chunks over $WORKERS worker hosts"
# The API host dies right after its 202: the file is in the bucket, not on its disk.
pkill -KILL -f "sluice serve --no-workers --host $SLUICE_HOSTS_API" || true
left=$(find "$WORK/api" -type f -path '*uploads*' | wc -l)
[ "$left" = 0 ] || { echo "FAIL: $left upload file(s) stayed on the API host's disk" >&2; exit 1; }
echo "killed the API host after its 202"

# Cut w1 while it holds a chunk.
for _ in $(seq 1 600); do
  n=$(sql "SELECT count(*) FROM sluice.jobs WHERE worker LIKE 'w1%' AND state = 'processing' AND spec LIKE '%\"parent\"%'")
  [ "$n" -gt 0 ] && break
  sleep 0.05
done
[ "$n" -gt 0 ] || { echo "FAIL: w1 never held a chunk" >&2; exit 1; }
held=$(sql "SELECT id FROM sluice.jobs WHERE worker LIKE 'w1%' AND state = 'processing' AND spec LIKE '%\"parent\"%' LIMIT 1")
$H cut w1
echo "cut w1's link while it held chunk job $held"

wait_complete "$id" "$ROWS"
rescued=$(sql "SELECT rescues || ' rescue(s), attempts ' || attempts FROM sluice.jobs WHERE id = $held")
echo "complete in ${secs}s with w1 cut off: $counts rows/distinct ids; chunk $held: $rescued"

# Back online: w1 learns it lost the chunk; nothing it does lands.
$H restore w1
for _ in $(seq 1 150); do
  grep -qE "lease was lost|job stopped|lost its lease|attempt failed.* job=$held " w1.log && break
  sleep 0.2
done
# (It learns from its heartbeat, or its attempt fails first — the parent already dropped the
# shared stage — and its fenced report of that failure changes nothing.)
grep -E "lease was lost|job stopped|lost its lease|attempt failed.* job=$held " w1.log | head -3 || { echo "FAIL: w1 never said it lost the chunk" >&2; tail -20 w1.log >&2; exit 1; }
sleep 2
after=$(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.registros")
[ "$after" = "$ROWS $ROWS" ] || { echo "FAIL: after w1 came back the table holds $after" >&2; exit 1; }
echo "PASS: exact counts; w1's stale attempt wrote nothing"

# The database host's link cut for CUT seconds (20 by default) mid-load: workers and the API
# host wait or retry; nothing is lost or doubled.
CUT="${CUT:-20}"
shifted more "$ROWS"
(cd "$WORK/api" && exec $H run api "$SLUICE" serve --no-workers --host "$SLUICE_HOSTS_API" --port 8080 >> serve.log 2>&1) &
for _ in $(seq 1 100); do api -o /dev/null "$API/healthz" 2>/dev/null && break; sleep 0.2; done
job=$(api -X POST -H "Content-Type: text/csv" --data-binary "@$WORK/data/more.csv" "$API/registros/_bulk?chunk_mb=$CHUNK_MB&filename=more.csv")
id2=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$job")
for _ in $(seq 1 600); do
  n=$(sql "SELECT count(*) FROM sluice.jobs WHERE state = 'processing' AND spec LIKE '%\"parent\":$id2%'")
  [ "$n" -gt 0 ] && break
  sleep 0.05
done
$H cut db
echo "job $id2: cut the database host's link for ${CUT}s while $n chunk(s) were loading"
sleep "$CUT"
$H restore db
started=$(date +%s.%N)
wait_complete "$id2" $((ROWS * 2))
stuck=$(sql "SELECT count(*) FROM sluice.jobs WHERE state NOT IN ('complete')")
[ "$stuck" = 0 ] || { echo "FAIL: $stuck job(s) not complete" >&2; exit 1; }
echo "PASS: complete ${secs}s after the link came back: $counts rows/distinct ids; $(sql "SELECT coalesce(sum(rescues), 0) FROM sluice.jobs WHERE spec LIKE '%\"parent\":$id2%'") chunk rescue(s); no job stuck"

# The S3 host's link cut for CUT seconds while the API host puts an upload there: the client
# gets 202 and the upload loads, or an error and nothing is recorded — never an upload
# recorded without its object, nor a job without its upload.
uploads_before=$(sql "SELECT count(*) FROM sluice.uploads")
shifted third $((ROWS * 2))
$H run api curl -s -o "$WORK/third.out" -w "%{http_code}" -H "Authorization: Bearer hosts" -X POST -H "Content-Type: text/csv" \
  --data-binary "@$WORK/data/third.csv" "$API/registros/_bulk?chunk_mb=$CHUNK_MB&filename=third.csv" > "$WORK/third.code" &
post=$!
# Cut as the body has arrived and the API host starts putting it in the bucket.
for _ in $(seq 1 200); do
  ls "$WORK"/api/.sluice/uploads/*/* >/dev/null 2>&1 && break
  sleep 0.02
done
$H cut s3
echo "cut the S3 host's link for ${CUT}s while the API host was keeping an upload there"
sleep "$CUT"
$H restore s3
wait "$post" || true
code=$(cat "$WORK/third.code")
uploads=$(($(sql "SELECT count(*) FROM sluice.uploads") - uploads_before))
if [ "$code" = 202 ]; then
  id3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/third.out")
  started=$(date +%s.%N)
  wait_complete "$id3" $((ROWS * 3))
  echo "PASS: the upload completed (202) and loaded ${secs}s later: $counts rows/distinct ids"
else
  [ "$uploads" = 0 ] || { echo "FAIL: answered $code but $uploads upload(s) were recorded" >&2; exit 1; }
  echo "PASS: the upload failed cleanly ($code: $(head -c 200 "$WORK/third.out")); nothing recorded"
fi
