#!/usr/bin/env bash
# Runs the foundation benchmark: builds Sluice in release mode, installs the sqlite3 shell
# if missing, generates the files, and prints the table. Extra arguments go to bench.py
# (e.g. --rows 200000 --runs 3 --big-rows 0 for a quick pass).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sqlite3 >/dev/null; then
  apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null
fi
swift build -c release --product sluice
exec python3 bench/bench.py "$@"
