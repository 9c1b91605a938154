#!/bin/sh
# tests/robust/run.sh — the attack suite (tests/robust/attack.py) on the
# daemon of $LSMI_BUILD. Its last line is "N passed, N failed, N skipped".
set -u
here=$(dirname "$0")
: "${LSMI_BUILD:=build}"
export LSMI_BUILD
exec "${PYTHON:-python3}" "$here/attack.py" "$@"
