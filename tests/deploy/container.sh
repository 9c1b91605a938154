#!/bin/bash
# tests/deploy/container.sh — builds the Dockerfile with podman and checks
# the image.
#
# tests/deploy/podman.sh makes the set-up (podman installed if needed, the
# debian:bookworm-slim base image made locally when no registry answers).
# Then: the image builds; a bare run (as a newcomer would start it: the
# image binds 0.0.0.0, where the daemon wants tokens, so the entrypoint
# generates one) answers /healthz on its published port and its HEALTHCHECK
# (`lsmi probe`) reports healthy; its size (printed), a non-root user, no
# compiler or -dev package; the daemon's own refusal of an open API on
# 0.0.0.0 (entrypoint bypassed); the generated token guarding the API; and
# with LSMI_TOKENS, PID 1 being `lsmi serve` with a clean exit on SIGTERM
# (`podman stop`) and a dataset surviving a restart on the data volume.
#
# Needs root, or podman already installed; takes minutes the first time.
# Last line: "N passed, N failed" (or "..., 1 skipped" where it cannot run,
# which tests/run.sh counts as a failure under CI=true).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$root" && realpath "${LSMI_BUILD:-build}")
. "$root/tests/tally.sh" # ok, bad, tally

if [ "$(id -u)" -ne 0 ] && ! command -v podman >/dev/null 2>&1; then
  echo "not root and no podman: the container test cannot run here"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
. "$root/tests/deploy/podman.sh"
if ! podman_setup; then
  echo "0 passed, 1 failed"
  exit 1
fi

tmp=$(mktemp -d)
img=$LSMI_IMAGE
names=""
cleanup() {
  for n in $names; do podman rm -f -v -t 0 "$n" >/dev/null 2>&1; done
  podman volume rm -f "lsmi-test-$$" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

wait_ready() {
  for _ in $(seq 60); do
    curl -fsS -m 2 "http://127.0.0.1:$port/${1:-readyz}" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
run() { timeout 120 podman run --rm --no-healthcheck "$@"; }

TOKEN="smoke-token-$$-$RANDOM$RANDOM"
start=$(date +%s)
if podman_build_lsmi "$tmp/build.log"; then
  ok "the image builds ($(( $(date +%s) - start ))s)"
else
  bad "the image builds"
  tail -n 40 "$tmp/build.log"
  echo "$passed passed, $failed failed"
  exit 1
fi
ver=$(run "$img" lsmi version 2>/dev/null)
case $ver in *lsmi*) ok "lsmi version runs in the image" ;; *) bad "lsmi version runs in the image: '$ver'" ;; esac

# A bare run: /healthz on the published port, the HEALTHCHECK, and the
# entrypoint's generated token guarding the API.
port=$(free_port)
gen="lsmi-gen-$$"
names="$gen"
podman run -d --name "$gen" -p "127.0.0.1:$port:8080" "$img" >/dev/null 2>"$tmp/run-gen.log"
wait_ready healthz && ok "bare run answers /healthz on the published port" \
  || { bad "bare run answers /healthz on the published port"; podman logs "$gen" 2>&1 | tail -n 10; }
hc=$(podman inspect "$gen" --format '{{.Config.Healthcheck}}' 2>/dev/null)
healthy=no
if [ -n "$hc" ] && [ "$hc" != "<nil>" ]; then
  # No systemd timers here: run the check by hand, as the engine would.
  for _ in $(seq 10); do
    podman healthcheck run "$gen" >/dev/null 2>&1 && { healthy=yes; break; }
    sleep 2
  done
fi
[ "$healthy" = yes ] && ok "HEALTHCHECK (lsmi probe) reports healthy" || bad "HEALTHCHECK reports healthy ('$hc')"
wait_ready && ok "bare run ready on /readyz" || bad "bare run ready on /readyz"
gtoken=$(podman exec "$gen" cat /var/lib/lsmi/tokens 2>/dev/null | cut -d' ' -f1)
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/datasets")
gcode=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $gtoken" "http://127.0.0.1:$port/v1/datasets")
[ -n "$gtoken" ] && [ "$code" = 401 ] && [ "$gcode" = 200 ] \
  && ok "bare run: generated token in the volume (401 without, 200 with)" \
  || bad "bare run: generated token in the volume (401 without: $code, 200 with: $gcode)"
if [ -n "$gtoken" ] && podman logs "$gen" 2>&1 | grep -q "$gtoken"; then
  bad "bare run: the token is not in the logs"
else
  ok "bare run: the token is not in the logs"
fi
podman rm -f -v -t 5 "$gen" >/dev/null 2>&1

size=$(podman image inspect "$img" --format '{{.Size}}' 2>/dev/null)
if [ -n "$size" ]; then
  echo "image size: $size bytes ($(( size / 1000000 )) MB)"
  [ "$size" -lt 250000000 ] && ok "image under 250 MB" || bad "image under 250 MB"
else
  bad "image size readable"
fi

uid=$(run "$img" id -u 2>/dev/null)
[ -n "$uid" ] && [ "$uid" != 0 ] && ok "runs as non-root (uid $uid)" || bad "runs as non-root (uid '$uid')"

pkgs=$(run "$img" dpkg-query -W -f '${Package}\n' 2>/dev/null)
extra=$(echo "$pkgs" | grep -E -- '-dev$|^(gcc|cpp|g\+\+)(-[0-9]+)?$|^make$|^curl$|^pkg-config$' | tr '\n' ' ')
[ -n "$pkgs" ] && [ -z "$extra" ] && ok "no compiler, -dev package or curl in the runtime image" \
  || bad "no compiler, -dev package or curl in the runtime image: $extra"

# The daemon itself (entrypoint bypassed) refuses an open API on 0.0.0.0.
names="$names lsmi-open-$$"
timeout 30 podman run --rm --no-healthcheck --name "lsmi-open-$$" --entrypoint lsmi "$img" serve \
  >"$tmp/open.log" 2>&1
orc=$?
[ "$orc" -ne 0 ] && [ "$orc" -ne 124 ] && ok "without tokens the daemon refuses to serve 0.0.0.0 (exit $orc)" \
  || { bad "without tokens the daemon refuses to serve 0.0.0.0 (exit $orc)"; tail -n 5 "$tmp/open.log"; }

# With LSMI_TOKENS: PID 1, SIGTERM and the data volume.
port=$(free_port)
name="lsmi-test-$$"
names="$names $name"
podman volume create "lsmi-test-$$" >/dev/null
podman run -d --name "$name" -p "127.0.0.1:$port:8080" -e "LSMI_TOKENS=$TOKEN=smoke" \
  -v "lsmi-test-$$:/var/lib/lsmi" "$img" >/dev/null 2>"$tmp/run.log"
wait_ready && ok "container ready on /readyz" || bad "container ready on /readyz"
pid1=$(podman exec "$name" cat /proc/1/cmdline 2>/dev/null | tr '\0' ' ')
case "$pid1" in
  lsmi\ serve*|*/lsmi\ serve*) ok "PID 1 is lsmi serve" ;;
  *) bad "PID 1 is lsmi serve (got '$pid1')" ;;
esac
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/datasets")
[ "$code" = 401 ] && ok "the API wants a token (401 without one)" || bad "the API wants a token (got $code)"

auth="Authorization: Bearer $TOKEN"
"$build/lsmi" synth gaussian --n 200 --out "$tmp/demo.npz" >/dev/null 2>&1
id=$(curl -sS -H "$auth" -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/demo.npz" \
  "http://127.0.0.1:$port/v1/datasets" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null)
[ -n "$id" ] && ok "upload with a token" || bad "upload with a token"

t0=$(date +%s)
podman stop -t 30 "$name" >/dev/null 2>&1
took=$(( $(date +%s) - t0 ))
erc=$(podman inspect "$name" --format '{{.State.ExitCode}}' 2>/dev/null)
[ "$erc" = 0 ] && [ "$took" -lt 30 ] && ok "SIGTERM: clean exit 0 in ${took}s" \
  || { bad "SIGTERM: clean exit (exit '$erc' after ${took}s)"; podman logs "$name" 2>&1 | tail -n 10; }

podman start "$name" >/dev/null 2>&1
wait_ready && ok "restarts on the same volume" || bad "restarts on the same volume"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "http://127.0.0.1:$port/v1/datasets/$id")
[ -n "$id" ] && [ "$code" = 200 ] && ok "the dataset survived the restart" || bad "the dataset survived the restart ($code)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
