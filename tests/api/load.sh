#!/bin/sh
# tests/api/load.sh — load test of `lsmi serve` with wrk (not part of
# `make test`; run it with `make api-load` or directly).
#
# Starts the daemon on a free loopback port, uploads the gaussian demo
# (2000 samples), finishes one quick job for its results, then starts two
# long fits so that both workers are busy, and points wrk at the job status
# and at a sorted results page for DURATION seconds each. Prints wrk's
# latency distribution and a summary line with the p99 of each endpoint;
# fails when wrk saw a socket error or a non-2xx answer.
#
#   LSMI_BUILD=build DURATION=10 CONNECTIONS=16 tests/api/load.sh
set -eu
: "${LSMI_BUILD:=build}"
: "${DURATION:=10}"
: "${CONNECTIONS:=16}"
: "${THREADS:=2}"
LSMI="$LSMI_BUILD/lsmi"
command -v wrk >/dev/null || { echo "load.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d /tmp/lsmi-load-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$LSMI" synth gaussian --out "$work/g.npz" --n 2000 >/dev/null 2>&1
"$LSMI" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --quiet \
  --workers 2 --shutdown-timeout 1 --max-connections-per-ip 0 \
  >"$work/daemon.log" 2>&1 &
pid=$!
i=0
until curl -fs "$base/healthz" >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 200 ] || { echo "daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.05
done

field() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
ds=$(curl -fs -X POST --data-binary @"$work/g.npz" "$base/v1/datasets" | field "['id']")
submit() {
  curl -fs -X POST -H 'Content-Type: application/json' \
    -d "{\"dataset_id\":\"$ds\",\"params\":$1}" "$base/v1/jobs" | field "['id']"
}
done_job=$(submit '{"epochs_discriminator":3,"epochs_entropy":3}')
until [ "$(curl -fs "$base/v1/jobs/$done_job" | field "['state']")" = succeeded ]; do sleep 0.1; done
long='{"epochs_discriminator":10000,"epochs_entropy":10000}'
fit1=$(submit "$long")
fit2=$(submit "$long")
sleep 1
running=$(curl -fs "$base/v1/jobs?state=running" | field "['total']")
echo "fits running during the load: $running"

run_wrk() { # name url
  echo "=== $1: $2"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2" | tee "$work/$1.txt"
  if grep -q -e "Socket errors" -e "Non-2xx" "$work/$1.txt"; then
    echo "load.sh: $1 saw errors" >&2
    bad=1
  fi
}
bad=0
run_wrk status "$base/v1/jobs/$fit1"
run_wrk results "$base/v1/jobs/$done_job/results?limit=100&sort=-s"
p99() { awk '$1 == "99%" { print $2 }' "$work/$1.txt"; }
rps() { awk '/Requests\/sec/ { print $2 }' "$work/$1.txt"; }
state1=$(curl -fs "$base/v1/jobs/$fit1" | field "['state']")
echo "fits still running after the load: $state1"
echo "p99: status $(p99 status) ($(rps status) req/s), results $(p99 results) ($(rps results) req/s), $CONNECTIONS connections, 2 fits running"
curl -fs -X DELETE "$base/v1/jobs/$fit1" >/dev/null
curl -fs -X DELETE "$base/v1/jobs/$fit2" >/dev/null
exit $bad
