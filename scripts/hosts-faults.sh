#!/usr/bin/env bash
# Issue 21's first cross-host fault, on scripts/hosts.sh's namespaces: one file posted to the
# API host is split into chunks loaded by N worker hosts over PostgreSQL; worker w1's link is
# cut while it holds a chunk. Its lease expires, another host loads that chunk, the counts are
# exact; when the link comes back, w1's late commit is refused by its fencing token.
#
#   scripts/hosts-faults.sh [ROWS (default 2000000)] [WORKERS (default 3)]
# Needs root and a release build (swift build -c release --product sluice). Exits non-zero
# on any mismatch; removes every namespace it made.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-2000000}"
WORKERS="${2:-3}"
SLUICE="$PWD/.build/release/sluice"
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

rm -rf "$WORK"; mkdir -p "$WORK"
python3 bench/gen.py --rows "$ROWS" --out "$WORK/data" --base-only >/dev/null
cat > "$WORK/sluice.yml" <<YML
database: $DB
server:
  tokens: [hosts]
  file_roots: [$WORK/data]
worker:
  lease_seconds: 4
  poll_seconds: 0.2
  retry_base_seconds: 0.5
entities:
  registros:
    primary_key: [id]
    columns: {id: int64, valor: float64, referencia: text, category: text}
YML

cd "$WORK"
$H run api "$SLUICE" serve --no-workers --host "$SLUICE_HOSTS_API" --port 8080 > serve.log 2>&1 &
for _ in $(seq 1 100); do api -o /dev/null "$API/healthz" 2>/dev/null && break; sleep 0.2; done
for i in $(seq 1 "$WORKERS"); do
  $H run "w$i" "$SLUICE" worker --id "w$i" --concurrency 1 > "w$i.log" 2>&1 &
done
started=$(date +%s.%N)
job=$(api -X PUT -H "Content-Type: application/json" --data "{\"url\": \"file://$WORK/data/base.csv\", \"chunk_mb\": 8}" "$API/registros/_bulk")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$job")
echo "job $id: $ROWS rows in 8 MB chunks over $WORKERS worker hosts"

# Cut w1 while it holds a chunk.
for _ in $(seq 1 600); do
  n=$(sql "SELECT count(*) FROM sluice.jobs WHERE worker LIKE 'w1%' AND state = 'processing' AND spec LIKE '%\"parent\"%'")
  [ "$n" -gt 0 ] && break
  sleep 0.05
done
[ "$n" -gt 0 ] || { echo "FAIL: w1 never held a chunk" >&2; exit 1; }
held=$(sql "SELECT id FROM sluice.jobs WHERE worker LIKE 'w1%' AND state = 'processing' LIMIT 1")
$H cut w1
echo "cut w1's link while it held chunk job $held"

state=""
for _ in $(seq 1 600); do
  state=$(api "$API/registros/_bulk/status/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  case "$state" in complete|error|cancelled) break ;; esac
  sleep 0.2
done
secs=$(python3 -c "import time; print('%.1f' % (time.time() - $started))")
[ "$state" = complete ] || { echo "FAIL: job $id ended $state" >&2; tail -20 serve.log >&2; exit 1; }
counts=$(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.registros")
[ "$counts" = "$ROWS $ROWS" ] || { echo "FAIL: table holds $counts (rows, distinct ids), not $ROWS" >&2; exit 1; }
rescued=$(sql "SELECT rescues || ' rescue(s), finished by ' || worker FROM sluice.jobs WHERE id = $held")
echo "complete in ${secs}s with w1 cut off: $counts rows/distinct ids; chunk $held: $rescued"

# Back online: w1 learns it lost the chunk; nothing it does lands.
$H restore w1
for _ in $(seq 1 150); do
  grep -qE "lease was lost|job stopped|lost its lease" w1.log && break
  sleep 0.2
done
grep -E "lease was lost|job stopped|lost its lease" w1.log | head -3 || { echo "FAIL: w1 never said it lost the chunk" >&2; tail -20 w1.log >&2; exit 1; }
sleep 2
after=$(sql "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.registros")
[ "$after" = "$ROWS $ROWS" ] || { echo "FAIL: after w1 came back the table holds $after" >&2; exit 1; }
echo "PASS: exact counts; w1's stale attempt wrote nothing"
