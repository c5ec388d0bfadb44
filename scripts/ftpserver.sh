#!/usr/bin/env bash
# Starts vsftpd on 127.0.0.1 (a free port, passive mode) with a local user for the tests and
# prints `export` lines: SLUICE_TEST_FTP_URL (ftp://user:password@127.0.0.1:PORT),
# SLUICE_TEST_FTP_ROOT (the user's folder, writable by the tests) and SLUICE_TEST_FTP_PID.
# `scripts/ftpserver.sh stop PID` stops it. Needs root (or sudo) for the user and the daemon.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ "${1:-}" = stop ]; then
  $SUDO kill -9 "$2" 2>/dev/null || true
  exit 0
fi
command -v vsftpd >/dev/null || [ -x /usr/sbin/vsftpd ] || { $SUDO apt-get install -y -qq vsftpd >/dev/null; }
user=sluiceftp
id "$user" >/dev/null 2>&1 || $SUDO useradd -m -s /bin/bash "$user"
echo "$user:$user" | $SUDO chpasswd
home=$(getent passwd "$user" | cut -d: -f6)
$SUDO mkdir -p /var/run/vsftpd/empty
dir=$(mktemp -d /tmp/sluice-ftp.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pasv=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$pasv
pasv_max_port=$((pasv + 20))
seccomp_sandbox=NO
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
use_localtime=NO
xferlog_enable=NO
vsftpd_log_file=$dir/vsftpd.log
CONF
$SUDO /usr/sbin/vsftpd "$dir/vsftpd.conf" >"$dir/out.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 50); do
  if python3 -c "import ftplib; f=ftplib.FTP(); f.connect('127.0.0.1', $port, timeout=2); f.login('$user', '$user'); f.quit()" 2>/dev/null; then
    echo "export SLUICE_TEST_FTP_URL=ftp://$user:$user@127.0.0.1:$port"
    echo "export SLUICE_TEST_FTP_ROOT=$home"
    echo "export SLUICE_TEST_FTP_PID=$pid"
    exit 0
  fi
  sleep 0.1
done
echo "error: vsftpd did not start; see $dir" >&2
exit 1
