#!/usr/bin/env bash
# Several "hosts" on one machine, for issue 21's fault tests: Linux network namespaces joined
# by veth pairs to a bridge, with addresses that exist only inside them (the root namespace
# has none on the bridge, so nothing listens outside the namespaces). Needs root.
#
#   scripts/hosts.sh up N       sl-db (10.77.0.2: PostgreSQL 15 on :5432), sl-api (10.77.0.3),
#                               sl-s3 (10.77.0.4: moto S3 on :9000), sl-api2 (10.77.0.5: a
#                               second serve replica's host) and sl-w1..sl-wN
#                               (10.77.0.11...); prints
#                               export lines (SLUICE_HOSTS_DB_URL, SLUICE_HOSTS_S3, ...)
#   scripts/hosts.sh run NAME CMD...   runs CMD inside sl-NAME
#   scripts/hosts.sh cut NAME   takes sl-NAME's link down (its processes keep running)
#   scripts/hosts.sh restore NAME
#   scripts/hosts.sh down       kills every process in the namespaces and removes all it made
set -euo pipefail
STATE=/tmp/sluice-hosts
BRIDGE=slbr0
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
[ "$(id -u)" = 0 ] || { echo "error: network namespaces need root" >&2; exit 1; }

ns() { echo "sl-$1"; }

add_host() {  # name address
  local n; n=$(ns "$1")
  ip netns add "$n"
  ip link add "slv-$1" type veth peer name eth0 netns "$n"
  ip link set "slv-$1" master "$BRIDGE" up
  ip netns exec "$n" ip addr add "$2/24" dev eth0
  ip netns exec "$n" ip link set eth0 up
  ip netns exec "$n" ip link set lo up
}

case "${1:-}" in
up)
  workers="${2:-2}"
  [ -d "$STATE" ] && { echo "error: hosts are up already ($STATE); run 'scripts/hosts.sh down' first" >&2; exit 1; }
  mkdir -p "$STATE"; chmod 755 "$STATE"
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  add_host db 10.77.0.2
  add_host api 10.77.0.3
  add_host s3 10.77.0.4
  add_host api2 10.77.0.5
  for i in $(seq 1 "$workers"); do add_host "w$i" "10.77.0.$((10 + i))"; done
  # PostgreSQL inside sl-db, reachable from the other namespaces only.
  data="$STATE/pg"
  mkdir -p "$data"; chown postgres "$data"
  su postgres -s /bin/bash -c "'$PGBIN/initdb' -D '$data' -U sluice -A trust -E UTF8 --locale=C.UTF-8" >/dev/null
  cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '10.77.0.2'
port = 5432
unix_socket_directories = '$data'
max_connections = 200
CONF
  echo "host all all 10.77.0.0/24 trust" >> "$data/pg_hba.conf"
  ip netns exec "$(ns db)" su postgres -s /bin/bash -c "'$PGBIN/pg_ctl' -D '$data' -l '$data/postgres.log' -w start" >/dev/null
  # The S3-compatible server on a host of its own.
  ip netns exec "$(ns s3)" setsid python3 -m moto.server -H 10.77.0.4 -p 9000 >"$STATE/moto.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    ip netns exec "$(ns api)" curl -sf -o /dev/null http://10.77.0.4:9000/ && break
    sleep 0.2
  done
  echo "export SLUICE_HOSTS_DB_URL=postgres://sluice@10.77.0.2:5432/postgres"
  echo "export SLUICE_HOSTS_S3=http://10.77.0.4:9000"
  echo "export SLUICE_HOSTS_API=10.77.0.3"
  echo "export SLUICE_HOSTS_API2=10.77.0.5"
  echo "export SLUICE_HOSTS_WORKERS=$workers"
  ;;
run)
  name="$2"; shift 2
  exec ip netns exec "$(ns "$name")" "$@"
  ;;
cut) ip link set "slv-$2" down ;;
restore) ip link set "slv-$2" up ;;
down)
  for n in $(ip netns list | awk '{print $1}' | grep '^sl-' || true); do
    pids=$(ip netns pids "$n" || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$n"
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  # A namespace's veth can outlive it for a moment (its processes were still exiting).
  for _ in $(seq 1 50); do
    left=$(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^slv-' || true)
    [ -z "$left" ] && break
    for l in $left; do ip link del "$l" 2>/dev/null || true; done
    sleep 0.1
  done
  rm -rf "$STATE"
  ;;
*) echo "usage: scripts/hosts.sh up N | run NAME CMD... | cut NAME | restore NAME | down" >&2; exit 2 ;;
esac
