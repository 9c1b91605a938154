#!/bin/sh
# tests/api/run.sh — the API suite: starts the real daemon ($LSMI_BUILD/lsmi
# serve) on free loopback ports and drives it over HTTP. Its last line is
# "N passed, N failed".
set -u
here=$(dirname "$0")
: "${LSMI_BUILD:=build}"
export LSMI_BUILD
exec "${PYTHON:-python3}" "$here/test_api.py" "$@"
