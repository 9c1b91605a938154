#!/bin/sh
# tests/api/valgrind.sh — valgrind's leak check over one full daemon cycle:
# start, upload, fit, results, metrics, SIGTERM. Prints valgrind's heap
# summary; fails on any memory error or definite/indirect leak. Not part of
# `make test` (the ASan API suite runs LeakSanitizer there); run it with
# `make api-valgrind`. OpenBLAS is pinned to AVX2 kernels, which valgrind
# can decode.
set -eu
: "${LSMI_BUILD:=build}"
LSMI="$LSMI_BUILD/lsmi"
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d /tmp/lsmi-vg-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
"$LSMI" synth gaussian --out "$work/g.npz" --n 400 >/dev/null 2>&1
OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 valgrind --trace-children=yes \
  --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  --log-file="$work/vg.%p.log" \
  "$LSMI" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --quiet \
  >"$work/daemon.log" 2>&1 &
pid=$!
i=0
until curl -fs "$base/healthz" >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "daemon did not start" >&2; exit 1; }
  sleep 0.2
done
field() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
ds=$(curl -fs -X POST --data-binary @"$work/g.npz" "$base/v1/datasets" | field "['id']")
job=$(curl -fs -X POST -H 'Content-Type: application/json' \
  -d "{\"dataset_id\":\"$ds\",\"params\":{\"epochs_discriminator\":2,\"epochs_entropy\":2,\"threads\":1}}" \
  "$base/v1/jobs" | field "['id']")
i=0
until [ "$(curl -fs "$base/v1/jobs/$job" | field "['state']")" = succeeded ]; do
  i=$((i + 1)); [ $i -lt 600 ] || { echo "job did not finish" >&2; exit 1; }
  sleep 0.2
done
curl -fs "$base/v1/jobs/$job/results?sort=-s&limit=5" >/dev/null
curl -fs "$base/v1/jobs/$job/results?format=csv" >/dev/null
curl -fs "$base/metrics" >/dev/null
curl -s "$base/v1/nope" >/dev/null
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
grep -h -A4 "HEAP SUMMARY" "$work"/vg.*.log
grep -h "ERROR SUMMARY" "$work"/vg.*.log
if [ "$rc" -eq 0 ]; then echo "valgrind: clean (exit 0)"; else echo "valgrind: exit $rc" >&2; fi
exit "$rc"
