#!/bin/bash
# tests/deploy/systemd.sh — the hardened unit really runs the daemon.
#
# `systemd-analyze verify` (install.sh) only reads the unit. Here the tree is
# installed with `make install DESTDIR=… PREFIX=/usr/local` into a throwaway
# Debian image with systemd as PID 1 (podman --systemd=always, --privileged so
# that systemd may build the sandbox: namespaces, seccomp, DynamicUser), and
# the unit is driven for real: it starts, a dataset is uploaded and a short
# job succeeds under DynamicUser, ProtectSystem=strict and the system-call
# filter; `systemctl reload` reloads it in place (ExecReload); a SIGKILL is
# restarted (Restart=on-failure); `systemctl stop` ends it with status 0.
#
# The podman set-up is tests/deploy/podman.sh's (shared with container.sh).
# Needs root, or podman already installed. Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/tally.sh" # ok, bad, tally

if [ "$(id -u)" -ne 0 ] && ! command -v podman >/dev/null 2>&1; then
  echo "not root and no podman: the systemd test cannot run here"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
. "$root/tests/deploy/podman.sh"
if ! podman_setup; then
  echo "0 passed, 1 failed"
  exit 1
fi

tmp=$(mktemp -d)
name="lsmi-systemd-$$"
img="localhost/lsmi-systemd-test:$$"
cleanup() {
  podman rm -f -t 0 "$name" >/dev/null 2>&1
  podman rmi -f "$img" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

mkdir -p "$tmp/ctx"
if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$root" \
     install DESTDIR="$tmp/ctx/root" PREFIX=/usr/local >"$tmp/install.log" 2>&1; then
  ok "make install DESTDIR into the image's tree"
else
  bad "make install DESTDIR into the image's tree"; tail -n 20 "$tmp/install.log"
fi
cat >"$tmp/ctx/Dockerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends systemd systemd-sysv curl jq libmicrohttpd12 \
      libjansson4 libopenblas0-pthread libuv1 libsqlite3-0 zlib1g \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY root/ /
RUN systemctl enable lsmi
CMD ["/sbin/init"]
EOF
if timeout 900 podman build --format docker --pull=never -t "$img" "$tmp/ctx" >"$tmp/build.log" 2>&1; then
  ok "image with systemd and the installed tree builds"
else
  bad "image with systemd and the installed tree builds"; tail -n 20 "$tmp/build.log"
  echo "$passed passed, $failed failed"; exit 1
fi

podman run -d --name "$name" --privileged --systemd=always "$img" >/dev/null
state=""
for _ in $(seq 60); do
  state=$(podman exec "$name" systemctl is-system-running 2>/dev/null)
  case $state in running | degraded) break ;; esac
  sleep 1
done
ex() { podman exec "$name" "$@"; }
for _ in $(seq 30); do
  ex curl -fsS -m 2 http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
[ "$(ex systemctl is-active lsmi 2>/dev/null)" = active ] && ok "lsmi.service active at boot (enabled by the [Install] section)" \
  || { bad "lsmi.service active at boot"; ex journalctl -u lsmi --no-pager 2>&1 | tail -n 20; }
[ "$(ex systemctl show lsmi -p DynamicUser --value 2>/dev/null)" = yes ] && ok "runs under DynamicUser" || bad "runs under DynamicUser"

# A whole workflow through the sandbox.
ex sh -c 'cd /tmp && lsmi synth gaussian --n 400 --out demo.npz' >/dev/null 2>&1
out=$(ex sh -c '
  L=http://127.0.0.1:8080
  DS=$(curl -sS -H "Content-Type: application/octet-stream" --data-binary @/tmp/demo.npz $L/v1/datasets | jq -r .id)
  JOB=$(curl -sS -H "Content-Type: application/json" \
        -d "{\"dataset_id\": \"$DS\", \"params\": {\"epochs_discriminator\": 2, \"epochs_entropy\": 2}}" \
        $L/v1/jobs | jq -r .id)
  for i in $(seq 120); do
    s=$(curl -sS $L/v1/jobs/$JOB | jq -r .state)
    case $s in succeeded|failed|cancelled) break ;; esac
    sleep 0.5
  done
  echo "state=$s"
  curl -sS "$L/v1/jobs/$JOB/results?split=val&sort=-s&limit=3" | jq -r ".rows | length"' 2>&1)
case $out in *"state=succeeded"*3) ok "upload, job and results under the hardened unit" ;;
  *) bad "upload, job and results under the hardened unit: $out"; ex journalctl -u lsmi --no-pager 2>&1 | tail -n 20 ;; esac
owner=$(ex stat -c %u /var/lib/private/lsmi 2>/dev/null)
[ -n "$owner" ] && [ "$owner" != 0 ] && ok "StateDirectory /var/lib/lsmi owned by the dynamic user ($owner)" \
  || bad "StateDirectory /var/lib/lsmi owned by the dynamic user ('$owner')"

# systemctl reload (ExecReload: SIGHUP): the same process reads its tokens
# again and says so.
pid=$(ex systemctl show lsmi -p MainPID --value 2>/dev/null)
ex systemctl reload lsmi >/dev/null 2>&1
reloaded=no
for _ in $(seq 20); do
  if ex journalctl -u lsmi --no-pager -o cat 2>/dev/null | grep -q '"event":"reload"'; then reloaded=yes; break; fi
  sleep 0.5
done
[ "$reloaded" = yes ] && [ "$(ex systemctl show lsmi -p MainPID --value 2>/dev/null)" = "$pid" ] &&
  ex curl -fsS -m 2 http://127.0.0.1:8080/readyz >/dev/null 2>&1 \
  && ok "systemctl reload: SIGHUP reloads the tokens, the daemon lives on" \
  || { bad "systemctl reload"; ex journalctl -u lsmi --no-pager 2>&1 | tail -n 20; }

# Restart=on-failure: a SIGKILL brings it back.
pid=$(ex systemctl show lsmi -p MainPID --value 2>/dev/null)
ex sh -c "kill -KILL $pid" 2>/dev/null
back=no
for _ in $(seq 40); do
  sleep 0.5
  npid=$(ex systemctl show lsmi -p MainPID --value 2>/dev/null)
  if [ -n "$npid" ] && [ "$npid" != 0 ] && [ "$npid" != "$pid" ] &&
     ex curl -fsS -m 2 http://127.0.0.1:8080/readyz >/dev/null 2>&1; then back=yes; break; fi
done
[ "$back" = yes ] && ok "restarted after SIGKILL (Restart=on-failure)" || bad "restarted after SIGKILL"

# systemctl stop: SIGTERM, clean exit.
ex systemctl stop lsmi >/dev/null 2>&1
res=$(ex systemctl show lsmi -p Result --value 2>/dev/null)
st=$(ex systemctl show lsmi -p ExecMainStatus --value 2>/dev/null)
[ "$res" = success ] && [ "$st" = 0 ] && ok "systemctl stop: exit status 0" \
  || { bad "systemctl stop: exit status 0 (Result=$res, status=$st)"; ex journalctl -u lsmi --no-pager 2>&1 | tail -n 10; }
if ex journalctl -u lsmi --no-pager 2>/dev/null | grep -qE 'code=killed, status=(31|SYS)|Bad system call'; then
  bad "no process killed by the system-call filter"
else
  ok "no process killed by the system-call filter"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
