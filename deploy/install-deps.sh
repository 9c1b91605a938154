#!/bin/sh
# deploy/install-deps.sh — installs the Debian 12 packages lsmi needs.
#   deploy/install-deps.sh          to build and run the service
#   deploy/install-deps.sh --test   also what the tests need
set -eu
RUN="pkg-config make gcc libmicrohttpd-dev libjansson-dev libopenblas-dev libuv1-dev libsqlite3-dev zlib1g-dev libpq-dev"
TEST="libcmocka-dev postgresql python3 python3-numpy python3-pandas curl clang libclang-rt-14-dev python3-yaml systemd jq groff-base man-db docker-compose podman podman-compose runc debootstrap chromium"
pkgs=$RUN
[ "${1:-}" = "--test" ] && pkgs="$RUN $TEST"
# The browser and contract tests run node and npm (tests/browser,
# tests/contract); Debian's when the machine has none of its own.
[ "${1:-}" = "--test" ] && ! command -v npm >/dev/null 2>&1 && pkgs="$pkgs nodejs npm"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $pkgs
