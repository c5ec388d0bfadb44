#!/usr/bin/env bash
# Benchmarks. `bench/run.sh [load|pg|http|formats|convert|export|watch|enrich|mysql|text|delta|console|ledger|queue|all] [args...]`:
#   load  the foundation benchmark (sluice load vs the sqlite3 shell); args go to bench.py
#   pg    the PostgreSQL benchmark (vs psql \copy + MERGE, pgloader; chunked loads by 1/2/4 workers)
#   http  the bulk-API benchmark (uploads, jobs, status under wrk vs seed 000's FastAPI receiver)
#   formats  Parquet and Avro read/write vs pyarrow and fastavro
#   convert  CSV, NDJSON and JSON-array files to Parquet vs DuckDB on one thread; --loads: 1 vs 2 parsing threads into SQLite and PostgreSQL
#   export   sluice export vs seed 000's pandas+aiohttp exporter and the receiver's own ceiling
#   watch    sluice watch of 1,000 marketplace files in an S3 server vs a boto3 download loop
#   mysql    sluice load into MariaDB vs the server's LOAD DATA + upsert recipe and pandas + PyMySQL
#   text     seed 004's three-line text records through record: and a parse step vs a Python re extractor, two-pattern variant, DuckDB regexp_extract
#   delta    sluice load of a 1M-row Delta table into SQLite vs deltalake → pyarrow → sqlite3, and vs the same Parquet files without the log
#   ledger   the export ledger's size before and after sluice gc compacts it (SQLite, PostgreSQL)
#   console  the console's pages over 100,000 jobs on SQLite and PostgreSQL (target: the jobs list < 50 ms)
#   queue    no-op jobs claimed and completed through the control plane (SQLite, PostgreSQL) vs a Python SKIP LOCKED queue
#   enrich   a pipeline's enrich step (inline; staged with 1 and 4 enrich workers) vs a Python rendition of seed 004, and the geocoder alone
# Builds Sluice in release mode and installs the peers it compares with, if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-load}"
[ $# -gt 0 ] && shift
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v wrk >/dev/null || need+=(wrk)
command -v pgloader >/dev/null || need+=(pgloader)
command -v psql >/dev/null || need+=(postgresql-client-15)
if [ ${#need[@]} -gt 0 ]; then $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; fi
if [ "$which" = formats ] || [ "$which" = all ]; then
  python3 -c "import pyarrow, fastavro, numpy" 2>/dev/null || python3 -m pip install -q pyarrow fastavro numpy
fi
if [ "$which" = convert ] || [ "$which" = all ]; then
  python3 -c "import duckdb, pyarrow" 2>/dev/null || python3 -m pip install -q duckdb pyarrow
fi
if [ "$which" = export ] || [ "$which" = all ]; then
  python3 -c "import fastapi, uvicorn, multipart, aiohttp, pandas" 2>/dev/null || python3 -m pip install -q fastapi uvicorn python-multipart aiohttp pandas
fi
if [ "$which" = watch ] || [ "$which" = all ]; then
  python3 -c "import moto.server, boto3" 2>/dev/null || python3 -m pip install -q "moto[server]" boto3
fi
if [ "$which" = mysql ] || [ "$which" = all ]; then
  [ -x /usr/sbin/mariadbd ] || $SUDO apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  python3 -c "import pymysql, pandas" 2>/dev/null || python3 -m pip install -q pymysql pandas
fi
if [ "$which" = delta ] || [ "$which" = all ]; then
  python3 -c "import deltalake, pyarrow" 2>/dev/null || python3 -m pip install -q deltalake pyarrow
fi
if [ "$which" = queue ] || [ "$which" = all ]; then
  python3 -c "import psycopg" 2>/dev/null || python3 -m pip install -q "psycopg[binary]"
fi
if [ "$which" = http ] || [ "$which" = all ]; then
  python3 -c "import fastapi, uvicorn, multipart, aiohttp" 2>/dev/null || python3 -m pip install -q fastapi uvicorn python-multipart aiohttp
fi
swift build -c release --product sluice
case "$which" in
  load) exec python3 bench/bench.py "$@" ;;
  http) exec python3 bench/http_bench.py "$@" ;;
  pg) exec python3 bench/pg_bench.py "$@" ;;
  console) exec python3 bench/console_bench.py "$@" ;;
  ledger) exec python3 bench/ledger_bench.py "$@" ;;
  formats) exec python3 bench/formats_bench.py "$@" ;;
  convert) exec python3 bench/convert_bench.py "$@" ;;
  export) exec python3 bench/export_bench.py "$@" ;;
  watch) exec python3 bench/watch_bench.py "$@" ;;
  enrich) exec python3 bench/enrich_bench.py "$@" ;;
  mysql) exec python3 bench/mysql_bench.py "$@" ;;
  text) exec python3 bench/text_bench.py "$@" ;;
  delta) exec python3 bench/delta_bench.py "$@" ;;
  queue) exec python3 bench/queue_bench.py "$@" ;;
  all) python3 bench/bench.py && python3 bench/pg_bench.py && python3 bench/formats_bench.py && python3 bench/convert_bench.py --loads && python3 bench/export_bench.py && python3 bench/watch_bench.py && python3 bench/enrich_bench.py && python3 bench/mysql_bench.py && python3 bench/text_bench.py && python3 bench/delta_bench.py && python3 bench/console_bench.py && python3 bench/ledger_bench.py && python3 bench/queue_bench.py && exec python3 bench/http_bench.py ;;
  *) echo "usage: bench/run.sh [load|pg|http|formats|convert|export|watch|enrich|mysql|text|delta|console|ledger|queue|all] [args...]" >&2; exit 2 ;;
esac
