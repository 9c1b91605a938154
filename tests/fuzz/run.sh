#!/bin/sh
# tests/fuzz/run.sh — builds the libFuzzer harnesses (make fuzz-build) and
# runs each for FUZZ_SECONDS (default 30) seconds on a copy of the fixtures
# in tests/data/, then prints one line per harness (executions, corpus,
# crashes) and "N passed, N failed". Run from the repository root; a crash,
# leak or sanitizer report fails that harness and leaves its input in
# build-fuzz/artifacts/.
set -u
seconds=${FUZZ_SECONDS:-30}
dir=build-fuzz
readers="npz npy pt safetensors csv json"
passed=0
failed=0
mkdir -p "$dir"
# Several `make test` runs may share this tree: one at a time builds and
# fuzzes, the others wait (a rebuilt harness must not replace a running one).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9
fi
if ! make --no-print-directory -s fuzz-build >"$dir/build.log" 2>&1; then
  cat "$dir/build.log"
  echo "fuzz: could not build the harnesses (clang and libclang-rt-14-dev?)"
  echo "0 passed, 6 failed"
  exit 1
fi
mkdir -p "$dir/artifacts"
for r in $readers; do
  corpus="$dir/corpus/$r"
  mkdir -p "$corpus"
  # Every fixture seeds every reader: a file of another format is a fine
  # start for mutations, and the reader's own files come first.
  cp tests/data/good* tests/data/bad* tests/data/bomb* tests/data/legacy* \
     tests/data/user* \
     "$corpus/" 2>/dev/null
  log="$dir/fuzz_$r.log"
  "$dir/fuzz_$r" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -dict="tests/fuzz/$r.dict" \
    -artifact_prefix="$dir/artifacts/$r-" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz_$r: ok, ${execs:-?} executions in ${seconds}s, $cov"
  else
    failed=$((failed + 1))
    echo "fuzz_$r: FAILED (exit $rc) after ${execs:-?} executions; log $log:"
    grep -aE 'ERROR|SUMMARY|Test unit written' "$log" | head -n 10
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
