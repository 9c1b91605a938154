#!/bin/bash
# tests/standalone.sh — the repository stands on its own.
#
# A clone is all a newcomer has: nothing in the build, the tests, the
# benchmarks or the docs may read or name a directory beside the
# repository. This copies the tracked tree (as a clone would have it) into
# a fresh directory with no siblings, builds the library and the unit tests
# there from scratch, and runs them; and it looks for paths that climb out
# of the tree in what is tracked. Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tests/tally.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
tree="$tmp/alone/lsmi"
mkdir -p "$tree"

# The tracked files, and the untracked ones git does not ignore (work in
# progress is checked too); without git, everything but the build output.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -C "$tree" -xf -
else
  (cd "$root" && tar --exclude='./build*' -cf - .) | tar -C "$tree" -xf -
fi
[ -f "$tree/Makefile" ] && ok "the tree copied alone into $tmp/alone" || bad "the tree copied"

# Paths that leave the repository: the sibling directory the project once
# read its fixtures and tools from, by path or by variable. (The pattern is
# built in two parts so that this file does not match it.)
sib="shared"
hits=$(cd "$tree" && grep -rnI -E "\.\./$sib|LSMI_${sib^^}" . 2>/dev/null | head -n 5)
[ -z "$hits" ] && ok "no file names a directory beside the repository" \
  || bad "files name a directory beside the repository: $hits"

unit=$(cd "$tree" && ls tests/core/test_*.c tests/server/test_*.c 2>/dev/null |
  sed 's#^\(.*\)\.c$#build/\1#' | tr '\n' ' ')
if (cd "$tree" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
      make --no-print-directory -j"$(nproc)" $unit) >"$tmp/build.log" 2>&1; then
  ok "the library and the unit tests build alone"
else
  bad "the library and the unit tests build alone"
  tail -n 30 "$tmp/build.log"
  tally
  exit 1
fi
for t in $unit; do
  # From the copy's top, as make test runs them; no environment that could
  # point back at this checkout.
  if (cd "$tree" && env -u LSMI_FIXTURES -u LSMI_BUILD "./$t") >"$tmp/unit.log" 2>&1; then
    ok "$t passes in the copy"
  else
    bad "$t passes in the copy"
    grep -E 'FAILED|ERROR|cannot' "$tmp/unit.log" | head -n 10
  fi
done

tally
