#!/bin/sh
# tests/deploy/manifests.sh — the compose file and the Kubernetes manifests
# parse as YAML, and every deployment file names the port, paths and LSMI_*
# variables the code uses (tests/deploy/manifests.py). Needs PyYAML (Debian's
# python3-yaml, installed by deploy/install-deps.sh --test).
# Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$root" && realpath "${LSMI_BUILD:-build}/lsmi")
# A python3 early in PATH (pyenv, venv) may lack PyYAML; Debian's has it.
py=python3
$py -c 'import yaml' 2>/dev/null || py=/usr/bin/python3
if ! $py -c 'import yaml' 2>/dev/null; then
  echo "PyYAML missing: deploy/install-deps.sh --test installs python3-yaml"
  echo "0 passed, 1 failed"
  exit 1
fi
exec $py "$root/tests/deploy/manifests.py" "$root" "$bin"
