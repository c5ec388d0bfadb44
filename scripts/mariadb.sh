#!/usr/bin/env bash
# Starts a throwaway MariaDB 10.11 server on 127.0.0.1 (a free port, a temporary datadir,
# a user `sluice` with password `sluice-pw`), installing mariadb-server from apt if it is
# absent. Prints shell `export` lines for SLUICE_TEST_MYSQL_URL and SLUICE_TEST_MYSQL_DIR.
# Generous timeouts: under the whole test suite a client's task may wait seconds for a thread.
# `scripts/mariadb.sh restart DIR` restarts it on the same port (fault tests);
# `scripts/mariadb.sh stop DIR` stops it and removes the folder. Never touches other servers.
set -euo pipefail
for fd in $(ls /proc/$$/fd); do
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
USER_OPT=""; [ "$(id -u)" = 0 ] && USER_OPT="--user=root"

start() {
  local root="$1" port="$2"
  /usr/sbin/mariadbd --no-defaults $USER_OPT --datadir="$root/data" --bind-address=127.0.0.1 --port="$port" \
    --socket="$root/mysqld.sock" --pid-file="$root/mysqld.pid" --log-error="$root/error.log" \
    --local-infile=1 --max-connections=200 --innodb-buffer-pool-size=512M --innodb-log-file-size=512M \
    --innodb-flush-log-at-trx-commit=1 --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
    --skip-name-resolve --connect-timeout=600 --net-read-timeout=600 --net-write-timeout=600 --max-connect-errors=1000000 \
    --ssl-cert="$root/cert.pem" --ssl-key="$root/key.pem" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 300); do
    mariadb --no-defaults -uroot --socket="$root/mysqld.sock" -e "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "error: MariaDB did not start; see $root/error.log" >&2
  tail -20 "$root/error.log" >&2 || true
  exit 1
}

stop() {
  local root="$1"
  if [ -f "$root/mysqld.pid" ]; then
    local pid; pid=$(cat "$root/mysqld.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

case "${1:-}" in
  restart) stop "$2"; start "$2" "$(cat "$2/port")"; exit 0 ;;
  stop) stop "$2"; rm -rf "$2"; exit 0 ;;
esac

if [ ! -x /usr/sbin/mariadbd ]; then
  $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mariadb-server mariadb-client >&2
fi
[ -x /usr/sbin/mariadbd ] || { echo "error: MariaDB is not available (mariadb-server)" >&2; exit 1; }

root=$(mktemp -d /tmp/sluice-mariadb.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "$port" > "$root/port"
# A self-signed certificate, so TLS (tls=require, tls=verify-full with ca=) can be tested.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$root/key.pem" -out "$root/cert.pem" -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
mariadb-install-db --no-defaults $USER_OPT --datadir="$root/data" --auth-root-authentication-method=normal \
  --skip-test-db >"$root/install.log" 2>&1 || { cat "$root/install.log" >&2; exit 1; }
start "$root" "$port"
mariadb --no-defaults -uroot --socket="$root/mysqld.sock" <<'SQL'
CREATE DATABASE sluice CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'sluice'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('sluice-pw');
GRANT ALL ON *.* TO 'sluice'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
echo "export SLUICE_TEST_MYSQL_URL=mysql://sluice:sluice-pw@127.0.0.1:$port/sluice"
echo "export SLUICE_TEST_MYSQL_DIR=$root"
