# tests/tally.sh — the count of the shell suites, sourced (POSIX sh): `ok
# WHAT` and `bad WHAT` count a check and print it; `tally` prints the last
# line that tests/run.sh reads, "N passed, N failed", and returns nonzero
# when a check failed.
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
tally() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
