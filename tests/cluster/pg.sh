#!/bin/bash
# tests/cluster/pg.sh — a throwaway PostgreSQL for the cluster tests and
# benchmarks: starts one, runs a command against it, and removes it.
#
#   tests/cluster/pg.sh [--tcp] [--fsync] COMMAND [ARG...]
#
# The cluster is initdb'd into a fresh temp directory and listens on a Unix
# socket in that directory (with --tcp also on a free port of 127.0.0.1,
# and the DSN uses it). It runs with fsync off unless --fsync is given: the
# tests need a real server, not durable throwaway data, while the
# benchmarks measure what a real deployment pays. postgres refuses to run
# as root, so under root (CI) the server runs as the system user
# "postgres" (Debian's package creates it), or "nobody" when there is none,
# which then owns the temp directory. Trust authentication: only the socket
# in a private directory, or loopback, reaches it.
#
# COMMAND sees, in its environment:
#   LSMI_TEST_PG_DSN    a libpq keyword/value DSN (superuser lsmi, database
#                       postgres); append " dbname=X" to reach another one
#   LSMI_TEST_PG_STOP   a shell command that stops the server (fast mode)
#   LSMI_TEST_PG_START  a shell command that starts it again
#   LSMI_TEST_PG_DIR    the temp directory (the server's log is pg.log)
# and runs under `timeout` (LSMI_PG_TIMEOUT seconds, default 900). The
# server is stopped and the directory removed on every way out (the
# command's end, a failure to start, INT, TERM, HUP); the exit status is
# the command's.
#
# When no PostgreSQL server is installed (deploy/install-deps.sh --test
# installs Debian's), it says so and reports "0 passed, 0 failed,
# 1 skipped" (a failure under CI=true, see tests/run.sh). Any other failure
# to start reports "0 passed, 1 failed" with the server's log.
set -u
tcp=0
fsync=off
while [ $# -gt 0 ]; do
  case $1 in
  --tcp) tcp=1 ;;
  --fsync) fsync=on ;;
  *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || { echo "usage: $0 [--tcp] [--fsync] COMMAND [ARG...]" >&2; exit 2; }

bin=${LSMI_PG_BIN:-}
if [ -z "$bin" ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg.sh: no PostgreSQL server (initdb) found; apt-get install postgresql, or set LSMI_PG_BIN"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi

# as CMD...: runs CMD as the server's user.
user=""
if [ "$(id -u)" -eq 0 ]; then
  if id postgres >/dev/null 2>&1; then user=postgres; else user=nobody; fi
fi
as() {
  if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

dir=$(mktemp -d /tmp/lsmi-pg.XXXXXX) || exit 1
data="$dir/data"
started=0
cleanup() {
  trap - EXIT INT TERM HUP
  if [ "$started" -eq 1 ]; then
    as "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1
    # A postmaster that pg_ctl could not stop (its data directory damaged
    # by hand, say) is killed by the pid it recorded.
    if [ -f "$data/postmaster.pid" ]; then
      pid=$(head -n 1 "$data/postmaster.pid")
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    fi
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fail() {
  echo "pg.sh: $1"
  [ -f "$dir/pg.log" ] && tail -n 30 "$dir/pg.log"
  [ -f "$dir/initdb.log" ] && tail -n 30 "$dir/initdb.log"
  echo "0 passed, 1 failed"
  exit 1
}

[ -n "$user" ] && chown "$user" "$dir"
chmod 700 "$dir"
as "$bin/initdb" -D "$data" -U lsmi --auth=trust -E UTF8 --locale=C \
  --no-sync --no-instructions >"$dir/initdb.log" 2>&1 || fail "initdb failed"

port=5432
listen="''"
if [ "$tcp" -eq 1 ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    fail "no free port"
  listen="'127.0.0.1'"
fi
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = $listen
port = $port
unix_socket_directories = '$dir'
fsync = $fsync
max_connections = 200
log_min_messages = warning
EOF

start_cmd="$(printf '%q ' as "$bin/pg_ctl" -D "$data" -l "$dir/pg.log" -w -t 60 start)"
stop_cmd="$(printf '%q ' as "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop)"
started=1
eval "$start_cmd" >/dev/null || fail "the server did not start"

if [ "$tcp" -eq 1 ]; then
  LSMI_TEST_PG_DSN="host=127.0.0.1 port=$port user=lsmi dbname=postgres"
else
  LSMI_TEST_PG_DSN="host=$dir port=$port user=lsmi dbname=postgres"
fi
# The start and stop commands run in a fresh shell, which needs `as`.
as_def="$(declare -f as); user=$(printf '%q' "$user")"
export LSMI_TEST_PG_DSN LSMI_TEST_PG_DIR="$dir"
export LSMI_TEST_PG_START="$as_def; $start_cmd >/dev/null"
export LSMI_TEST_PG_STOP="$as_def; $stop_cmd >/dev/null"

timeout -k 10 "${LSMI_PG_TIMEOUT:-900}" "$@"
rc=$?
[ "$rc" -eq 124 ] && echo "pg.sh: $1 timed out after ${LSMI_PG_TIMEOUT:-900} s"
exit "$rc"
