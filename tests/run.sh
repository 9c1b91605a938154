#!/bin/sh
# tests/run.sh — runs the test suites listed in the given files and adds up
# their results.
#
# Each line of a suites file is "BUILD_DIR EXECUTABLE": a cmocka binary, or a
# script that prints "N passed, N failed" (its last such line counts). Every
# suite runs with LSMI_BUILD=BUILD_DIR in its environment, so scripts find
# the binary of their build at $LSMI_BUILD/lsmi. A suite that exits non-zero
# without reporting a failure counts as one failure. Logs go to
# BUILD_DIR/test-logs/. The last line is "lsmi: N passed, N failed".
set -u
passed=0
failed=0
bad=""
for list in "$@"; do
  [ -f "$list" ] || { echo "run.sh: no suites file $list" >&2; failed=$((failed + 1)); continue; }
  while read -r build exe; do
    [ -n "$exe" ] || continue
    mkdir -p "$build/test-logs"
    log="$build/test-logs/$(echo "$exe" | tr '/' '_').log"
    echo "=== $build: $exe"
    LSMI_BUILD="$build" "$exe" >"$log" 2>&1 </dev/null
    rc=$?
    # cmocka: "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s), listed below:"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    if [ -z "$p$f" ]; then
      line=$(grep -E '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
      p=$(echo "$line" | sed -n 's/^.*\b\([0-9][0-9]*\) passed.*/\1/p')
      f=$(echo "$line" | sed -n 's/^.*passed, \([0-9][0-9]*\) failed.*/\1/p')
    fi
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
      bad="$bad $build:$exe"
      echo "--- FAILED (exit $rc), last lines of $log:"
      tail -n 40 "$log"
    else
      echo "    $p passed"
    fi
  done <"$list"
done
[ -z "$bad" ] || echo "failing suites:$bad"
echo "lsmi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
