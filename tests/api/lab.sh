#!/bin/sh
# tests/api/lab.sh — the lab-service suite (tests/api/test_lab.py): deleting
# jobs, retention, quotas, a full disk, tokens and their reload, the log,
# the metrics and the store's schema, each against the real daemon
# ($LSMI_BUILD/lsmi serve) on free loopback ports. Its last line is
# "N passed, N failed, N skipped".
set -u
here=$(dirname "$0")
: "${LSMI_BUILD:=build}"
export LSMI_BUILD
exec "${PYTHON:-python3}" "$here/test_lab.py" "$@"
