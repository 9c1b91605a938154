#!/bin/sh
# tests/deploy/probe.sh — `lsmi probe`, the image's HEALTHCHECK, against a
# throwaway HTTP server (python3 -m http.server): exit 0 on 2xx, 1 on another
# status, a refused connection or a silent server (within --timeout), 2 on
# bad usage; the default address comes from LSMI_LISTEN.
# Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
lsmi=$(cd "$root" && realpath "${LSMI_BUILD:-build}/lsmi")
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
passed=0
failed=0
# expect NAME WANTED_EXIT COMMAND...
expect() {
  name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>&1
  got=$?
  if [ "$got" -eq "$want" ]; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name: exit $got, wanted $want"; sed 's/^/     /' "$tmp/out"
  fi
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mkdir -p "$tmp/www" && echo ok >"$tmp/www/healthz"
port=$(free_port)
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
  sleep 0.1
done

expect "2xx exits 0" 0 "$lsmi" probe "http://127.0.0.1:$port/healthz"
expect "404 exits 1" 1 "$lsmi" probe "http://127.0.0.1:$port/missing"
expect "localhost name resolves" 0 "$lsmi" probe "http://localhost:$port/healthz"
expect "default URL from LSMI_LISTEN (wildcard host -> loopback)" 0 \
  env LSMI_LISTEN="0.0.0.0:$port" "$lsmi" probe
expect "a /PATH on the LSMI_LISTEN address" 1 \
  env LSMI_LISTEN="127.0.0.1:$port" "$lsmi" probe /missing
closed=$(free_port)
expect "refused connection exits 1" 1 "$lsmi" probe "http://127.0.0.1:$closed/healthz"
expect "https is refused as usage" 2 "$lsmi" probe "https://127.0.0.1:$port/"
expect "bad timeout is usage" 2 "$lsmi" probe --timeout 0 "http://127.0.0.1:$port/"
expect "unknown option is usage" 2 "$lsmi" probe --nope
expect "--help exits 0" 0 "$lsmi" probe --help

# A server that accepts and never answers: the probe gives up at --timeout.
silent=$(free_port)
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $silent)); s.listen(8); time.sleep(30)" &
pids="$pids $!"
sleep 0.5
start=$(date +%s)
expect "silent server exits 1" 1 "$lsmi" probe --timeout 1 "http://127.0.0.1:$silent/healthz"
took=$(( $(date +%s) - start ))
if [ "$took" -le 3 ]; then
  passed=$((passed + 1)); echo "ok   silent server: gave up in ${took}s"
else
  failed=$((failed + 1)); echo "FAIL silent server: took ${took}s for --timeout 1"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
