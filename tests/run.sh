#!/bin/bash
# tests/run.sh — runs the test suites listed in the given files and adds up
# their results, honestly: every test a suite reports is counted once, as
# passed, failed or skipped.
#
# Each line of a suites file is "BUILD_DIR EXECUTABLE": a cmocka binary, or a
# script whose last result line reads "N passed, N failed" or "N passed,
# N failed, N skipped" (an optional "name: " prefix is allowed). A cmocka
# binary may run several groups; the summary lines of every group are added.
# Every suite runs with LSMI_BUILD=BUILD_DIR in its environment, so scripts
# find the binary of their build at $LSMI_BUILD/lsmi. Logs go to
# BUILD_DIR/test-logs/.
#
# A suite counts as one more failure when it exits non-zero without
# reporting a failure, or when it reports no result at all. With CI=true
# (set by .ci/run) a skipped test is a failure: everything is meant to run
# there, and a skip would hide that it did not.
#
# TEST_JOBS=N (default 1) runs up to N suites at once; each still writes
# its own log, and the results are reported in the order of the lists.
#
# The last line is "lsmi: N passed, N failed, N skipped".
set -u
jobs=${TEST_JOBS:-1}
passed=0
failed=0
skipped=0
bad=""
start_all=$(date +%s)
# Runs one suite: its output to its log, its exit status and seconds to
# the log's .rc file.
run_one() {
  local build=$1 exe=$2 log=$3 t0 rc
  t0=$(date +%s)
  LSMI_BUILD="$build" "$exe" >"$log" 2>&1 </dev/null
  rc=$?
  echo "$rc $(($(date +%s) - t0))" >"$log.rc"
}

# cmocka, once per group: "[  PASSED  ] N test(s)." and, when there are
# any, "[  FAILED  ] N test(s), listed below:" and "[  SKIPPED ] N test(s),
# listed below:". The per-test lines ("[  FAILED  ] name") have no count and
# do not match.
sum() { sed -n "s/^\[  $1 *\] \([0-9][0-9]*\) test.*/\1/p" "$2" | awk '{s += $1} END {print s + 0}'; }

# Reports one finished suite and adds its counts.
report() {
  local build=$1 exe=$2 log=$3 rc secs p f s line why=""
  read -r rc secs <"$log.rc"
  echo "=== $build: $exe"
  if grep -q '^\[==========\] Running' "$log"; then
    p=$(sum PASSED "$log")
    f=$(sum FAILED "$log")
    s=$(sum SKIPPED "$log")
  else
    line=$(grep -E '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -n 's/^\(.*: \)\{0,1\}\([0-9][0-9]*\) passed.*/\2/p')
    f=$(echo "$line" | sed -n 's/^.* passed, \([0-9][0-9]*\) failed.*/\1/p')
    s=$(echo "$line" | sed -n 's/^.* failed, \([0-9][0-9]*\) skipped.*/\1/p')
  fi
  p=${p:-0}
  f=${f:-0}
  s=${s:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    why="exit $rc without a reported failure"
  elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
    f=1
    why="no result reported"
  fi
  if [ "${CI:-}" = true ] && [ "$s" -ne 0 ]; then
    f=$((f + s))
    why="${why:+$why; }$s skipped under CI=true"
    s=0
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [ "$f" -ne 0 ]; then
    bad="$bad $build:$exe"
    echo "--- FAILED (exit $rc${why:+; $why}), last lines of $log:"
    tail -n 40 "$log"
  elif [ "$s" -ne 0 ]; then
    echo "    $p passed, $s skipped (${secs}s)"
  else
    echo "    $p passed (${secs}s)"
  fi
}

suites=()
for list in "$@"; do
  [ -f "$list" ] || { echo "run.sh: no suites file $list" >&2; failed=$((failed + 1)); continue; }
  while read -r build exe; do
    [ -n "$exe" ] && suites+=("$build $exe")
  done <"$list"
done

logof() { echo "$1/test-logs/$(echo "$2" | tr '/' '_').log"; }
running=0
for entry in "${suites[@]}"; do
  read -r build exe <<<"$entry"
  mkdir -p "$build/test-logs"
  log=$(logof "$build" "$exe")
  rm -f "$log.rc"
  if [ "$jobs" -le 1 ]; then
    run_one "$build" "$exe" "$log"
    report "$build" "$exe" "$log"
    continue
  fi
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  run_one "$build" "$exe" "$log" &
  running=$((running + 1))
done
if [ "$jobs" -gt 1 ]; then
  wait
  for entry in "${suites[@]}"; do
    read -r build exe <<<"$entry"
    report "$build" "$exe" "$(logof "$build" "$exe")"
  done
fi
[ -z "$bad" ] || echo "failing suites:$bad"
echo "ran the suites in $(($(date +%s) - start_all)) s"
echo "lsmi: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
