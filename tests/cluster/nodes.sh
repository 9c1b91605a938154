#!/bin/bash
# tests/cluster/nodes.sh — the cluster mode with real daemons
# (tests/cluster/test_nodes.py) against a throwaway PostgreSQL
# (tests/cluster/pg.sh, which reports the suite skipped when no server is
# installed). On an ASan build, the tests that check the daemon's memory.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${LSMI_BUILD:=build}"
export LSMI_BUILD
exec "$root/tests/cluster/pg.sh" "${PYTHON:-python3}" "$root/tests/cluster/test_nodes.py" "$@"
