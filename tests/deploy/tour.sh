#!/bin/bash
# tests/deploy/tour.sh — follows the README's tour literally.
#
# Extracts the ```sh blocks between <!-- section: tour --> and
# <!-- /section: tour --> of README.md and runs them, in order, in one bash
# (`set -euo pipefail`) against a fresh `lsmi serve` on a free loopback port
# with a temporary data directory. The tour addresses the daemon as $LSMI and
# the binary as ./build/lsmi, so it runs in a scratch folder whose build/ is
# a link to $LSMI_BUILD. Checks: each block exits 0, the tour's job
# succeeded, results were printed, and the daemon exits 0 on SIGTERM.
# Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$root" && realpath "${LSMI_BUILD:-build}")
lsmi="$build/lsmi"
tmp=$(mktemp -d)
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
. "$root/tests/tally.sh" # ok, bad, tally

# --- the tour's commands -----------------------------------------------------
python3 - "$root/README.md" "$tmp/tour.sh" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"<!-- section: tour -->(.*?)<!-- /section: tour -->", text, re.S)
blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```", m.group(1) if m else "",
                    re.S | re.M)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("set -euo pipefail\n")
    for i, b in enumerate(blocks, 1):
        out.write(f"echo '@@ block {i}' >&2\n{b}echo '@@ block {i} ok' >&2\n")

EOF
nblocks=$(grep -c '^echo .@@ block [0-9]* ok' "$tmp/tour.sh")
if [ "$nblocks" -ge 4 ]; then ok "README tour has $nblocks shell blocks"; else bad "README tour has shell blocks (found $nblocks)"; fi

# --- a fresh daemon ----------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LSMI="http://127.0.0.1:$port"
env -u LSMI_TOKENS -u LSMI_TOKENS_FILE -u LSMI_LISTEN -u LSMI_DATA_DIR \
  "$lsmi" serve --listen "127.0.0.1:$port" --data-dir "$tmp/data" --workers 1 \
  >"$tmp/daemon.log" 2>&1 &
daemon=$!
ready=no
for _ in $(seq 100); do
  if "$lsmi" probe --timeout 1 "$LSMI/readyz" >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" = yes ]; then
  ok "daemon ready on port $port"
else
  bad "daemon ready on port $port"
  tail -n 20 "$tmp/daemon.log"
fi

# --- the tour, literally -----------------------------------------------------
mkdir -p "$tmp/work" && ln -s "$build" "$tmp/work/build"
(cd "$tmp/work" && timeout 900 bash "$tmp/tour.sh") >"$tmp/out" 2>&1
rc=$?
echo "--- tour output (exit $rc):"
sed 's/^/    /' "$tmp/out" | tail -n 60
for i in $(seq "$nblocks"); do
  if grep -qx "@@ block $i ok" "$tmp/out"; then ok "tour block $i"; else bad "tour block $i"; fi
done
[ "$rc" -eq 0 ] && ok "tour exits 0" || bad "tour exits 0 (exit $rc)"

# What the tour should have achieved, asked of the daemon directly.
if curl -sS "$LSMI/v1/jobs" 2>/dev/null | python3 -c '
import json, sys
jobs = json.load(sys.stdin)["jobs"]
states = [j["state"] for j in jobs]
print("jobs:", states)
sys.exit(0 if states and all(s == "succeeded" for s in states) else 1)'; then
  ok "the tour's job succeeded"
else
  bad "the tour's job succeeded"
fi
rows=$(grep -c '"index":' "$tmp/out")
[ "$rows" -ge 5 ] && ok "the tour printed result rows ($rows)" || bad "the tour printed result rows ($rows)"
grep -q '^index,' "$tmp/out" && ok "the tour printed CSV with its header" || bad "the tour printed CSV with its header"

# --- SIGTERM: a clean exit ---------------------------------------------------
if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
  kill -TERM "$daemon"
  for _ in $(seq 150); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$daemon" 2>/dev/null; then
    bad "daemon exits within 30 s of SIGTERM"
  else
    wait "$daemon"
    drc=$?
    daemon=""
    [ "$drc" -eq 0 ] && ok "daemon exits 0 on SIGTERM" || bad "daemon exits 0 on SIGTERM (exit $drc)"
  fi
else
  bad "daemon still running after the tour"
fi
[ "$failed" -eq 0 ] || { echo "--- daemon log:"; tail -n 30 "$tmp/daemon.log"; }

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
