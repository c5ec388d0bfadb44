#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (idempotently),
# then builds once and runs every test. Under CI=true a missing peer is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# Debian packages: the sqlite3 shell (to read what Sluice wrote), gzip, curl (HTTP tests), vsftpd.
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v gzip >/dev/null || missing+=(gzip)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
command -v psql >/dev/null || missing+=(postgresql-client-15)
[ -x /usr/sbin/vsftpd ] || missing+=(vsftpd)   # the FTP server of the FTP source tests
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server mariadb-client)   # the MySQL target's server
command -v openssl >/dev/null || missing+=(openssl)   # the MariaDB test server's certificate
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)   # Spark, a Parquet reader the tests open Sluice's files with
command -v chromium >/dev/null || missing+=(chromium)   # the console's pages, rendered headless
command -v systemd-analyze >/dev/null || missing+=(systemd)   # scripts/check-deploy.sh checks the unit file
command -v ip >/dev/null || missing+=(iproute2)   # scripts/hosts.sh: network namespaces as hosts
command -v faketime >/dev/null || missing+=(faketime)   # a worker whose clock is off (leases judged on the server's clock)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python peers: aiohttp is seed 000's HTTP client (the tests post with it as that client does);
# pyarrow and fastavro are the format oracles (cramjam and backports.zstd give fastavro its
# snappy and zstandard codecs); fastapi + uvicorn (+ python-multipart) run the export receivers
# and the fake of Google's APIs (cryptography verifies the JWTs Sluice signs); moto's server
# mode is the S3-compatible server, boto3 the client that checks what Sluice wrote; duckdb,
# polars, pandas and pyspark are the other readers Sluice's Parquet files must open in;
# deltalake (delta-rs) writes and reads the Delta tables Sluice's reader and writer are checked
# against, pyroaring serializes the deletion vectors the oracle adds by hand, and
# opentelemetry-proto decodes the spans the OTLP receiver is sent.
pymods=(aiohttp pyarrow fastavro cramjam backports.zstd fastapi uvicorn multipart cryptography moto.server boto3 duckdb polars pandas pyspark deltalake pyroaring opentelemetry.proto)
pips=()
pipname() { case "$1" in multipart) echo python-multipart ;; moto.server) echo "moto[server]" ;; opentelemetry.proto) echo opentelemetry-proto ;; *) echo "$1" ;; esac; }
for m in "${pymods[@]}"; do python3 -c "import $m" 2>/dev/null || pips+=("$(pipname "$m")"); done
if [ ${#pips[@]} -gt 0 ]; then
  echo "installing: ${pips[*]} (pip)"
  python3 -m pip install -q "${pips[@]}" 2>&1 | grep -v "WARNING: Running pip as" || true
fi

for tool in sqlite3 gzip curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required by the tests and could not be installed" >&2; exit 1; }
done
for m in "${pymods[@]}"; do
  python3 -c "import $m" || { echo "error: python3 module $m is required by the tests" >&2; exit 1; }
done

# Peers this script starts are stopped when it exits.
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT

# A throwaway PostgreSQL 15 cluster on 127.0.0.1 for the PostgreSQL tests (stopped on exit).
if [ -z "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  eval "$(scripts/postgres.sh)"
  cleanup+=("scripts/postgres.sh stop '$SLUICE_TEST_PGDATA'")
fi
export SLUICE_TEST_POSTGRES_URL SLUICE_TEST_PGDATA SLUICE_TEST_PGBIN
psql "$SLUICE_TEST_POSTGRES_URL" -qAtc "SELECT 1" >/dev/null || { echo "error: PostgreSQL did not start" >&2; exit 1; }

# An S3-compatible server (moto) on 127.0.0.1 for the object-storage tests (stopped on exit).
if [ -z "${SLUICE_TEST_S3_ENDPOINT:-}" ]; then
  eval "$(scripts/s3server.sh)"
  cleanup+=("scripts/s3server.sh stop $SLUICE_TEST_S3_PID")
fi
export SLUICE_TEST_S3_ENDPOINT
curl -sf -o /dev/null "$SLUICE_TEST_S3_ENDPOINT/moto-api/" || { echo "error: the S3 server did not start" >&2; exit 1; }

# A throwaway MariaDB 10.11 server on 127.0.0.1 for the MySQL target tests (stopped on exit).
if [ -z "${SLUICE_TEST_MYSQL_URL:-}" ]; then
  eval "$(scripts/mariadb.sh)"
  cleanup+=("scripts/mariadb.sh stop '$SLUICE_TEST_MYSQL_DIR'")
fi
export SLUICE_TEST_MYSQL_URL SLUICE_TEST_MYSQL_DIR

# vsftpd on 127.0.0.1 with a local user, for the FTP source tests (stopped on exit).
if [ -z "${SLUICE_TEST_FTP_URL:-}" ]; then
  eval "$(scripts/ftpserver.sh)"
  cleanup+=("scripts/ftpserver.sh stop $SLUICE_TEST_FTP_PID")
fi
export SLUICE_TEST_FTP_URL SLUICE_TEST_FTP_ROOT

swift build --build-tests
swift test --skip-build "$@"
