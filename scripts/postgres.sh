#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster on 127.0.0.1 (a free port, a temporary data
# folder, trust auth for user `sluice`), installing postgresql-15 from apt if it is absent.
# Prints shell `export` lines for SLUICE_TEST_POSTGRES_URL, SLUICE_TEST_PGDATA, SLUICE_TEST_PGBIN
# `scripts/postgres.sh restart DATADIR` restarts it (fault tests); `pause DATADIR` stops it and
# keeps its data (restart starts it again); `scripts/postgres.sh stop DATADIR` stops it and
# removes the folder.
# Never touches other clusters on the machine.
set -euo pipefail
# The server started below must not inherit our caller's descriptors (a pipe it held open
# would keep the caller waiting for EOF, or for our exit, forever).
for fd in $(ls /proc/$$/fd); do
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

run_as_pg() {
  # initdb and postgres refuse to run as root; use the postgres OS user then.
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

if [ "${1:-}" = restart ]; then
  data="$2"
  run_as_pg "'$PGBIN/pg_ctl' -D '$data' -m fast -w -l '$(dirname "$data")/postgres.log' restart" >/dev/null
  exit 0
fi

if [ "${1:-}" = pause ]; then
  # Stopped, data kept: `restart DATADIR` starts it again (tests of a database that is away).
  data="$2"
  run_as_pg "'$PGBIN/pg_ctl' -D '$data' -m fast -w stop" >/dev/null 2>&1 || true
  exit 0
fi

if [ "${1:-}" = stop ]; then
  data="$2"
  run_as_pg "'$PGBIN/pg_ctl' -D '$data' -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$(dirname "$data")"
  exit 0
fi

if [ ! -x "$PGBIN/initdb" ]; then
  $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15 >&2
fi
[ -x "$PGBIN/initdb" ] || { echo "error: PostgreSQL 15 is not available at $PGBIN" >&2; exit 1; }

root=$(mktemp -d /tmp/sluice-pg.XXXXXX)
chmod 755 "$root"
data="$root/data"
[ "$(id -u)" = 0 ] && chown postgres "$root"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run_as_pg "'$PGBIN/initdb' -D '$data' -U sluice -A trust -E UTF8 --locale=C.UTF-8" >/dev/null
cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root'
max_connections = 200
shared_buffers = 256MB
max_wal_size = 4GB
CONF
run_as_pg "'$PGBIN/pg_ctl' -D '$data' -l '$root/postgres.log' -w start" >/dev/null
echo "export SLUICE_TEST_POSTGRES_URL=postgres://sluice@127.0.0.1:$port/postgres"
echo "export SLUICE_TEST_PGDATA=$data"
echo "export SLUICE_TEST_PGBIN=$PGBIN"
