#!/bin/bash
# tests/deploy/cluster-compose.sh — brings deploy/docker-compose.cluster.yml
# up with podman-compose and checks the cluster it makes.
#
# tests/deploy/podman.sh makes the set-up and builds the lsmi image from the
# Dockerfile (container.sh's image, from the same cache). With no registry,
# postgres:15-bookworm is replaced by tests/deploy/postgres/, Debian's
# PostgreSQL 15 behind an entrypoint that keeps the official image's
# contract as far as the compose file uses it. The test runs a copy of the
# compose file that differs only where this machine needs it, and prints
# each difference: the two local images instead of the pull and the build,
# free loopback ports instead of 8081-8083, the tokens file in a temporary
# directory instead of deploy/tokens, and the ulimits inside the hard
# limits: nofile capped when the hard limit is lower than 65536 (raising it
# needs CAP_SYS_RESOURCE), and nproc set to podman_setup's default, which
# podman drops for the container as soon as the service sets any ulimit.
#
# The checks, against the three nodes: each ready on /readyz and healthy by
# its HEALTHCHECK (PostgreSQL's too); an upload through node 1 listed by
# node 2; demo-size jobs submitted through node 2 all succeed, their
# results readable through node 3, run by more than one node (the nodes'
# "unit" log lines name the node); `podman stop` of a node running a unit of
# a second batch: it exits 0 and every job still succeeds; and the tear-down
# leaves no container, network or volume of the project (the images stay
# cached, as container.sh's do). A trap tears down on failure too.
#
# Needs root, or podman and podman-compose already installed; a few minutes
# the first time, about a minute after. Last line: "N passed, N failed" (or
# "..., 1 skipped" where it cannot run, a failure under CI=true).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$root" && realpath "${LSMI_BUILD:-build}")
. "$root/tests/tally.sh" # ok, bad, tally
# ok or bad by a status ($1), which it returns.
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; return 1; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

if ! command -v podman-compose >/dev/null 2>&1 ||
   { [ "$(id -u)" -ne 0 ] && ! command -v podman >/dev/null 2>&1; }; then
  echo "no podman-compose (deploy/install-deps.sh --test installs it), or not root and no podman"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
. "$root/tests/deploy/podman.sh"
podman_setup || { echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d)
proj=lsmi-cc-$$
pg_image=localhost/lsmi-test-postgres:15
label="label=io.podman.compose.project=$proj"
teardown() {
  local ids
  ids=$(podman ps -aq --filter "$label" 2>/dev/null)
  [ -z "$ids" ] || podman rm -f -v -t 0 $ids >/dev/null 2>&1
  podman network rm -f "${proj}_default" >/dev/null 2>&1
  ids=$(podman volume ls -q --filter "$label" 2>/dev/null)
  [ -z "$ids" ] || podman volume rm -f $ids >/dev/null 2>&1
}
cleanup() { teardown; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

t0=$(date +%s)
podman_build_lsmi "$tmp/build.log"
check $? "the lsmi image builds ($(($(date +%s) - t0))s)" || { tail -n 40 "$tmp/build.log"; finish; }
t0=$(date +%s)
timeout 1200 podman build --pull=never -t "$pg_image" "$root/tests/deploy/postgres" \
  >"$tmp/pg-build.log" 2>&1
check $? "the PostgreSQL 15 stand-in image builds ($(($(date +%s) - t0))s)" ||
  { tail -n 40 "$tmp/pg-build.log"; finish; }

ports="$(free_port) $(free_port) $(free_port)"
read -r p1 p2 p3 <<<"$ports"
TOKEN="compose-token-$$-$RANDOM$RANDOM"
echo "$TOKEN lab" >"$tmp/tokens"
chmod 0644 "$tmp/tokens"
export POSTGRES_PASSWORD="pw-$$-$RANDOM$RANDOM"
compose=$tmp/docker-compose.cluster.yml
# The copy of the compose file, and what it changes.
python3 - "$root/deploy/docker-compose.cluster.yml" "$compose" "$LSMI_IMAGE" "$pg_image" \
  "$tmp/tokens" "$nf" "$np" $ports <<'EOF'
import sys, yaml
src, dst, lsmi, pg, tokens, nofile, nproc = sys.argv[1:8]
ports = sys.argv[8:]
c = yaml.safe_load(open(src))
def change(what, old, new):
    print("  test copy: %s: %s -> %s" % (what, old, new))
    return new
s = c["services"]
s["postgres"]["image"] = change("postgres image", s["postgres"]["image"], pg)
for i, name in enumerate(["lsmi-1", "lsmi-2", "lsmi-3"]):
    d = s[name]
    d.pop("build")
    d["image"] = change(name + " image (no build)", d["image"], lsmi)
    d["ports"] = change(name + " ports", d["ports"],
                        ["127.0.0.1:%s:8080" % ports[i]])
    u = d.get("ulimits")
    if u:
        n = u.get("nofile")
        if isinstance(n, int) and nofile.isdigit() and n > int(nofile):
            u["nofile"] = change(name + " ulimits nofile", n, int(nofile))
        if "nproc" not in u:
            u["nproc"] = change(name + " ulimits nproc", "(podman's)", int(nproc))
c["secrets"]["lsmi_tokens"]["file"] = change(
    "lsmi_tokens", c["secrets"]["lsmi_tokens"]["file"], tokens)
yaml.safe_dump(c, open(dst, "w"), sort_keys=False)
EOF
[ -s "$compose" ] || { bad "the test copy of the compose file"; finish; }

pc() { timeout 300 podman-compose -p "$proj" -f "$compose" "$@"; }
t0=$(date +%s)
pc up -d >"$tmp/up.log" 2>&1
up=$?
n=$(podman ps -q --filter "$label" | wc -l)
[ "$up" = 0 ] && [ "$n" = 4 ]
check $? "podman-compose up: PostgreSQL and three nodes running ($n containers)" ||
  tail -n 30 "$tmp/up.log"

node() { echo "${proj}_lsmi-$1_1"; }
url() { case $1 in 1) echo "http://127.0.0.1:$p1" ;; 2) echo "http://127.0.0.1:$p2" ;; *) echo "http://127.0.0.1:$p3" ;; esac; }
api() { curl -sS -m 30 -H "Authorization: Bearer $TOKEN" "$@"; }
end=$((t0 + 150))
for i in 1 2 3; do
  while :; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$(url $i)/readyz")
    [ "$code" = 200 ] || [ "$(date +%s)" -ge "$end" ] && break
    sleep 1
  done
  [ "$code" = 200 ]
  check $? "lsmi-$i ready on /readyz ($(($(date +%s) - t0))s after up, restarts: $(podman inspect "$(node $i)" --format '{{.RestartCount}}' 2>/dev/null))" ||
    podman logs "$(node $i)" 2>&1 | tail -n 10
done
# No systemd timers here: each HEALTHCHECK is run by hand, as the engine would.
sick=""
for c in "${proj}_postgres_1" "$(node 1)" "$(node 2)" "$(node 3)"; do
  good=no
  for _ in $(seq 10); do
    podman healthcheck run "$c" >/dev/null 2>&1 && { good=yes; break; }
    sleep 2
  done
  [ "$good" = yes ] || sick="$sick $c"
done
[ -z "$sick" ]
check $? "healthchecks pass: pg_isready and each node's lsmi probe${sick:+ (not:$sick)}"

"$build/lsmi" synth gaussian --n 2000 --seed 1 --out "$tmp/demo.npz" >/dev/null 2>&1
ds=$(api -H 'Content-Type: application/octet-stream' --data-binary @"$tmp/demo.npz" \
  "$(url 1)/v1/datasets" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null)
listed=$(api "$(url 2)/v1/datasets" | python3 -c '
import json, sys
print(" ".join(d["id"] for d in json.load(sys.stdin)["datasets"]))' 2>/dev/null)
[ -n "$ds" ] && [[ " $listed " == *" $ds "* ]]
check $? "an upload through lsmi-1 is listed by lsmi-2"

# Submits $3 jobs of params $2 through node $1; prints their ids.
submit() {
  local i body
  for i in $(seq "$3"); do
    body=$(printf '{"dataset_id": "%s", "params": {"seed": %d%s}}' "$ds" "$i" "$2")
    api -H 'Content-Type: application/json' -d "$body" "$(url "$1")/v1/jobs" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null
  done
}
# Waits (up to $1 s) until every job of $3 is finished, asking node $2;
# prints "job state attempts" lines.
wait_jobs() {
  local end=$(($(date +%s) + $1)) j out
  while :; do
    out=""
    for j in $3; do
      out="$out$(api "$(url "$2")/v1/jobs/$j" | python3 -c '
import json, sys
j = json.load(sys.stdin); print(j["id"], j["state"], j.get("attempts"))' 2>/dev/null)
"
    done
    if ! echo "$out" | grep -qvE ' (succeeded|failed|cancelled) |^$' || [ "$(date +%s)" -ge "$end" ]; then
      printf '%s' "$out"
      return
    fi
    sleep 0.5
  done
}
all_succeeded() { [ -n "$2" ] && [ "$(echo "$1" | grep -c ' succeeded ')" = "$(echo "$2" | wc -w)" ]; }
# The nodes whose "unit" log lines (on stderr) show a unit of the jobs $2
# ending "succeeded" ($1 = succeeded), or running now ($1 = open: its last
# line is "running" or a wait for the store); or ($1 = ends, $3 = a node)
# how that node's units of the jobs ended, as "state:count" words.
unit_nodes() {
  local i
  for i in 1 2 3; do podman logs "$(node "$i")" 2>&1; done | python3 -c '
import json, sys
want, jobs = sys.argv[1], set(sys.argv[2].split())
last, done = {}, set()
for line in sys.stdin:
    if line.startswith("{") and "\"event\":\"unit\"" in line:
        e = json.loads(line)
        if e.get("job") in jobs:
            last[(e["node"], e["job"], e["member"], e["attempt"])] = e["state"]
            if e["state"] == "succeeded":
                done.add(e["node"])
if want == "open":
    done = {k[0] for k, v in last.items()
            if v in ("running", "store_wait", "store_back")}
elif want == "ends":
    ends = [v for k, v in last.items() if k[0] == sys.argv[3]]
    done = {"%s:%d" % (v, ends.count(v)) for v in ends}
print(" ".join(sorted(done)))' "$1" "$2" "${3:-}"
}

t0=$(date +%s)
jobs=$(submit 2 "" 6 | tr '\n' ' ')
st=$(wait_jobs 180 2 "$jobs")
all_succeeded "$st" "$jobs"
check $? "6 demo jobs through lsmi-2 all succeed ($(($(date +%s) - t0))s)" || echo "$st"
nres=0
for j in $jobs; do
  code=$(curl -s -o /dev/null -m 30 -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "$(url 3)/v1/jobs/$j/results?split=all&format=csv")
  [ "$code" = 200 ] && nres=$((nres + 1))
done
[ "$nres" = 6 ]
check $? "their results readable through lsmi-3 ($nres of 6)"
ran=$(unit_nodes succeeded "$jobs")
[ "$(echo "$ran" | wc -w)" -ge 2 ]
check $? "the work was spread: the jobs ran on $ran"

# A second batch, of fits of a few seconds; lsmi-3 (or, when it runs
# none, lsmi-1) is stopped while it runs one.
t0=$(date +%s)
jobs2=$(submit 2 ', "epochs_discriminator": 1500, "epochs_entropy": 1500, "threads": 1' 8 | tr '\n' ' ')
victim=""
while [ "$(date +%s)" -lt $((t0 + 60)) ]; do
  running=$(unit_nodes open "$jobs2")
  case " $running " in
    *" lsmi-3 "*) victim=3 ;;
    *" lsmi-1 "*) victim=1 ;;
  esac
  [ -n "$victim" ] && break
done
if [ -n "$victim" ]; then
  s0=$(date +%s)
  podman stop -t 60 "$(node "$victim")" >/dev/null 2>&1
  erc=$(podman inspect "$(node "$victim")" --format '{{.State.ExitCode}}' 2>/dev/null)
  took=$(($(date +%s) - s0))
  [ "$erc" = 0 ]
  check $? "podman stop of lsmi-$victim while it runs a unit: exit $erc in ${took}s (its units: $(unit_nodes ends "$jobs2" "lsmi-$victim"))"
else
  bad "podman stop of a node mid-batch: neither lsmi-1 nor lsmi-3 ran a unit (running: $running)"
fi
st=$(wait_jobs 300 2 "$jobs2")
again=$(echo "$st" | awk '$3 > 1' | wc -l)
all_succeeded "$st" "$jobs2"
check $? "all 8 jobs of the batch succeed ($again run again after the stop; $(($(date +%s) - t0))s)" ||
  echo "$st"

teardown
left="$(podman ps -aq --filter "$label")$(podman volume ls -q --filter "$label")"
podman network exists "${proj}_default" 2>/dev/null && left="$left network"
[ -z "$left" ]
check $? "torn down: no container, volume or network of the project left"
finish
