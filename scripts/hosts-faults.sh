#!/usr/bin/env bash
# Issue 21's cross-host faults, on scripts/hosts.sh's namespaces (each host with a folder of its
# own; only PostgreSQL and the bucket are shared):
#   1. a file posted to the API host, which keeps it in `storage:` and is killed right after its
#      202; N worker hosts load it in chunks; w1's link is cut while it holds a chunk: its lease
#      expires, another host loads that chunk, and w1's late commit is refused by its token;
#      w2's disk (its .sluice folder) is wiped meanwhile;
#   2. the database host's link cut for CUT seconds (default 20) mid-load;
#   3. the S3 host's link cut for CUT seconds while the API host keeps an upload there;
#   4. two serve replicas (api, api2): the one polling a watch is killed, the other takes the
#      watch and the schedules over; each watched file loads once, each due run fires once;
#   5. `sluice gc`, then no orphan: every object in the storage is named by an upload record,
#      and no chunked load's stage is left in PostgreSQL.
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
held=""
for _ in $(seq 1 600); do
  held=$(sql "SELECT id FROM sluice.jobs WHERE worker LIKE 'w1%' AND state = 'processing' AND spec LIKE '%\"parent\"%' LIMIT 1")
  [ -n "$held" ] && break
  sleep 0.05
done
[ -n "$held" ] || { echo "FAIL: w1 never held a chunk" >&2; exit 1; }
$H cut w1
echo "cut w1's link while it held chunk job $held"
# Another worker host's disk wiped mid-load: whatever it was writing is gone, the job is not.
if [ "$WORKERS" -ge 2 ]; then
  for _ in $(seq 1 60); do
    [ -n "$(sql "SELECT id FROM sluice.jobs WHERE worker LIKE 'w2%' AND state = 'processing' LIMIT 1")" ] && break
    sleep 0.05
  done
  # The worker writes into it while it goes: rm can find a folder refilled under it, so try again.
  for _ in 1 2 3 4 5; do rm -rf "$WORK/w2/.sluice" 2>/dev/null && break; sleep 0.01; done
  echo "wiped w2's disk (its .sluice folder) while it loaded"
fi

wait_complete "$id" "$ROWS"
rescued=$(sql "SELECT rescues || ' rescue(s), attempts ' || attempts FROM sluice.jobs WHERE id = $held")
echo "complete in ${secs}s with w1 cut off: $counts rows/distinct ids; chunk $held: $rescued"

# Back online: w1 learns it lost the chunk; nothing it does lands.
$H restore w1
# Up to 60 s: under the whole suite's load its reconnects back off for longer than 30 s (seen once).
for _ in $(seq 1 300); do
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

# Two serve replicas over the same PostgreSQL and bucket, a watch on the bucket and a schedule:
# the one polling the watch is killed; the other takes the watch and the schedules over within
# a lease period (3 s), each watched file loads once and each due run fires once.
pkill -KILL -f "sluice serve --no-workers --host $SLUICE_HOSTS_API" || true
BASE=$((ROWS * 3))
mkdir -p "$WORK/api2"
for h in api api2; do
  cat > "$WORK/$h/sluice.yml" <<YML
database: $DB
storage: s3://hosts/sluice/
server:
  tokens: [hosts]
  lease_seconds: 3
entities:
  registros:
    primary_key: [id]
    columns: {id: int64, valor: float64, referencia: text, category: text}
watches:
  drops:
    source: s3://hosts/drops/
    into: registros
    interval: 0.5
pipelines:
  minutely:
    source: s3://hosts/in/
    schedule: "* * * * *"
    into: registros
YML
done
# Writes rows $2..$3 (ids above BASE) to s3://hosts/$1, from the API host.
put() {
  $H run api python3 - "$SLUICE_HOSTS_S3" "$1" "$2" "$3" <<'PY'
import boto3, sys
endpoint, key, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
body = "id,valor,referencia,category\n" + "".join("%d,%d.5,ref%d,W\n" % (i, i, i) for i in range(first, last + 1))
boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").put_object(Bucket="hosts", Key=key, Body=body.encode())
PY
}
# Rows above BASE: "rows distinct".
above() { sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.registros WHERE id > $BASE AND id <= $((BASE + $1))"; }
wait_above() {
  for _ in $(seq 1 600); do [ "$(above "$1")" = "$1 $1" ] && return 0; sleep 0.2; done
  echo "FAIL: the watched rows above $BASE are $(above "$1"), not $1 $1" >&2; tail -n 20 "$WORK"/api*/serve.log >&2; exit 1
}
(cd "$WORK/api" && exec $H run api "$SLUICE" serve --no-workers --host "$SLUICE_HOSTS_API" --port 8080 > serve.log 2>&1) &
(cd "$WORK/api2" && exec $H run api2 "$SLUICE" serve --no-workers --host "$SLUICE_HOSTS_API2" --port 8080 > serve.log 2>&1) &
holder() { sql "SELECT holder FROM sluice.leases WHERE name = '$1' AND expires_at > clock_timestamp()"; }
for _ in $(seq 1 300); do [ -n "$(holder schedules)" ] && [ -n "$(holder watch:drops)" ] && break; sleep 0.1; done
[ -n "$(holder watch:drops)" ] || { echo "FAIL: no replica took the watch" >&2; exit 1; }
put in/late.csv $((BASE + 100000)) $((BASE + 100000))
put drops/one.csv $((BASE + 1)) $((BASE + 100))
wait_above 100
victim=$(holder watch:drops | cut -d: -f2)
survivor=$(pgrep -f "sluice serve --no-workers --host" | grep -vx "$victim" | head -1)
killed=$(date +%s.%N)
kill -KILL "$victim"
for _ in $(seq 1 600); do
  [ "$(holder watch:drops | cut -d: -f2)" = "$survivor" ] && [ "$(holder schedules | cut -d: -f2)" = "$survivor" ] && break
  sleep 0.1
done
[ "$(holder watch:drops | cut -d: -f2)" = "$survivor" ] && [ "$(holder schedules | cut -d: -f2)" = "$survivor" ] \
  || { echo "FAIL: the other replica did not take the watch and the schedules over in 60 s" >&2; exit 1; }
echo "killed the replica polling the watch; the other holds the watch and the schedules $(python3 -c "import time; print('%.1f' % (time.time() - $killed))") s later (lease 3 s)"
put drops/two.csv $((BASE + 101)) $((BASE + 250))
wait_above 250
# A firing due after the kill runs on the survivor, once (up to a minute and a bit away).
for _ in $(seq 1 400); do
  fired=$(sql "SELECT count(*) FROM sluice.runs WHERE state = 'succeeded' AND scheduled_for > to_timestamp($killed)")
  [ "$fired" != 0 ] && break
  sleep 0.2
done
[ "$fired" != 0 ] || { echo "FAIL: no firing after the kill was run" >&2; exit 1; }
twice=$(sql "SELECT count(*) FROM (SELECT scheduled_for FROM sluice.runs GROUP BY scheduled_for HAVING count(*) > 1) d")
late=$(sql "SELECT count(*) FROM public.registros WHERE id = $((BASE + 100000))")
stuck=$(sql "SELECT count(*) FROM sluice.jobs WHERE state <> 'complete'")
[ "$twice" = 0 ] && [ "$late" = 1 ] && [ "$stuck" = 0 ] && [ "$(above 250)" = "250 250" ] \
  || { echo "FAIL: firings run twice: $twice; the scheduled file's row loaded $late time(s); $stuck job(s) not complete; watched rows $(above 250)" >&2; exit 1; }
echo "PASS: each watched file loaded once (250 rows), the firing due after the kill ran once, no job stuck"

# No orphan after `sluice gc` (on the surviving replica's host, orphans swept at once):
# every object in the storage is named by an upload record, no chunked load's stage is left.
echo "retention: {orphans_days: 0}" >> "$WORK/api2/sluice.yml"
gc=$(cd "$WORK/api2" && $H run api2 "$SLUICE" gc --json 2>/dev/null)
echo "sluice gc: $gc"
objects=$($H run api python3 -c "
import boto3
s3 = boto3.client('s3', endpoint_url='$SLUICE_HOSTS_S3', aws_access_key_id='x', aws_secret_access_key='x', region_name='us-east-1')
for page in s3.get_paginator('list_objects_v2').paginate(Bucket='hosts', Prefix='sluice/'):
    for o in page.get('Contents', []): print('s3://hosts/' + o['Key'])
" | sort)
recorded=$(sql "SELECT path FROM sluice.uploads WHERE path LIKE 's3://%'" | sort)
orphans=$(comm -23 <(echo "$objects") <(echo "$recorded") | grep -c . || true)
stages=$(sql "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'sluice' AND table_name ~ '^stage_[0-9]+\$'")
[ "$orphans" = 0 ] && [ "$stages" = 0 ] || { echo "FAIL: $orphans object(s) no upload names, $stages stage table(s) left" >&2; comm -23 <(echo "$objects") <(echo "$recorded") | head >&2; exit 1; }
echo "PASS: no orphan: $(echo "$objects" | grep -c . || true) object(s) in the storage, each an upload's; no stage left"
