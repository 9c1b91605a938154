#!/bin/bash
# tests/cluster/run.sh — test_pgstore of $LSMI_BUILD (default build)
# against a throwaway PostgreSQL (tests/cluster/pg.sh, which reports the
# suite skipped when no server is installed). cmocka's summary is the
# result.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$root" && realpath "${LSMI_BUILD:-build}")
exec "$root/tests/cluster/pg.sh" "$build/tests/cluster/test_pgstore"
