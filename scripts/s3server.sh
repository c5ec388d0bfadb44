#!/usr/bin/env bash
# Starts moto's S3-compatible server on 127.0.0.1 (a free port) for the tests and prints
# `export` lines: SLUICE_TEST_S3_ENDPOINT and SLUICE_TEST_S3_PID. `scripts/s3server.sh stop PID`
# stops it. moto keeps everything in memory; any access key is accepted.
set -euo pipefail
if [ "${1:-}" = stop ]; then
  kill -9 "$2" 2>/dev/null || true
  exit 0
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/sluice-moto.XXXXXX.log)
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 100); do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/"; then
    echo "export SLUICE_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
    echo "export SLUICE_TEST_S3_PID=$pid"
    exit 0
  fi
  sleep 0.1
done
echo "error: the S3 server (moto) did not start; see $log" >&2
exit 1
