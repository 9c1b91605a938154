#!/bin/sh
# tests/deploy/docs.sh — the documentation agrees with the code: the
# configuration of doc/configuration.md and doc/lsmi.1 with
# `lsmi serve --help`, the flags of doc/cli.md and doc/lsmi.1 with
# `lsmi fit --help`, and the links and paths of README.md and doc/*.md with
# the tree (tests/deploy/docs.py says what exactly). Needs $LSMI_BUILD/lsmi
# (default build/lsmi) and python3. Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$root" && realpath "${LSMI_BUILD:-build}/lsmi")
exec python3 "$root/tests/deploy/docs.py" "$root" "$bin"
