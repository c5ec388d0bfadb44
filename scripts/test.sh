#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (idempotently),
# then builds once and runs every test. Under CI=true a missing peer is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Peers and tools the tests use: the sqlite3 shell (to read what Sluice wrote) and gzip.
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v gzip >/dev/null || missing+=(gzip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for tool in sqlite3 gzip; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool is required by the tests and could not be installed" >&2
    exit 1
  fi
done

swift build --build-tests
swift test --skip-build "$@"
