#!/bin/sh
# tests/browser/run.sh — the dashboard in headless Chromium (tests/browser/
# test_browser.mjs): installs puppeteer-core from the committed lockfile
# into tests/browser/node_modules when it is missing (npm ci; the npm
# registry must be reachable once), then walks through the page against
# $LSMI_BUILD/lsmi. Needs node, npm and Debian's chromium
# (deploy/install-deps.sh --test). Last line: "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${LSMI_BUILD:=build}"
export LSMI_BUILD
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "FAIL $tool is not installed (deploy/install-deps.sh --test)"
    echo "0 passed, 1 failed"
    exit 1
  }
done
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "FAIL no chromium at ${CHROMIUM:-/usr/bin/chromium} (deploy/install-deps.sh --test)"
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -d "$here/node_modules/puppeteer-core" ]; then
  # --ignore-scripts: puppeteer-core downloads no browser anyway; Debian's is used.
  (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts >npm.log 2>&1) || {
    cat "$here/npm.log"
    echo "FAIL npm ci in tests/browser"
    echo "0 passed, 1 failed"
    exit 1
  }
fi
cd "$root" && exec node "$here/test_browser.mjs"
