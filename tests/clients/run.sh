#!/bin/sh
# tests/clients/run.sh — the Python client (clients/python) against a real
# daemon ($LSMI_BUILD/lsmi serve), with Debian's Python, which has NumPy and
# pandas (deploy/install-deps.sh --test installs python3-numpy and
# python3-pandas; the pyenv python3 on a developer's PATH may have neither).
# Its last line is "N passed, N failed".
set -u
here=$(dirname "$0")
: "${LSMI_BUILD:=build}"
export LSMI_BUILD
py=${CLIENT_PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import numpy, pandas' 2>/dev/null; then
  echo "clients: $py lacks numpy or pandas (apt-get install python3-numpy python3-pandas)"
  echo "0 passed, 1 failed"
  exit 1
fi
exec "$py" "$here/test_client.py" "$@"
