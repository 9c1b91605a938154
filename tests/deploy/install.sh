#!/bin/sh
# tests/deploy/install.sh — `make install` / `make uninstall` with DESTDIR and
# PREFIX: the binary, the systemd unit and the man page land where they
# should and go away again, leaving no file behind; the installed unit passes
# `systemd-analyze verify` (with its ExecStart and its man page resolvable,
# from an install under a temporary PREFIX) and the man page renders without
# groff warnings. Last line: "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$tmp/log" ] && sed 's/^/     /' "$tmp/log" | tail -n 20; }
# Run make on this tree as a fresh top-level make (not part of the caller's
# jobserver).
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$root" "$@" >"$tmp/log" 2>&1; }

dest="$tmp/dest"
if mk install DESTDIR="$dest" PREFIX=/usr; then ok "make install DESTDIR PREFIX=/usr"; else bad "make install DESTDIR PREFIX=/usr"; fi
[ -x "$dest/usr/bin/lsmi" ] && ok "binary in \$DESTDIR/usr/bin" || bad "binary in \$DESTDIR/usr/bin"
[ -f "$dest/usr/share/man/man1/lsmi.1" ] && ok "man page in \$DESTDIR/usr/share/man/man1" || bad "man page in \$DESTDIR/usr/share/man/man1"
unit="$dest/usr/lib/systemd/system/lsmi.service"
[ -f "$unit" ] && ok "unit in \$DESTDIR/usr/lib/systemd/system" || bad "unit in \$DESTDIR/usr/lib/systemd/system"
grep -qx 'ExecStart=/usr/bin/lsmi serve' "$unit" 2>/dev/null && ok "unit ExecStart follows BINDIR" || bad "unit ExecStart follows BINDIR"
if mk uninstall DESTDIR="$dest" PREFIX=/usr; then ok "make uninstall"; else bad "make uninstall"; fi
left=$(find "$dest" ! -type d 2>/dev/null)
[ -z "$left" ] && ok "uninstall leaves no file" || { echo "$left" >"$tmp/log"; bad "uninstall leaves no file"; }

# Under a real PREFIX, so that ExecStart and man:lsmi(1) resolve for verify.
prefix="$tmp/prefix"
if mk install PREFIX="$prefix"; then ok "make install PREFIX=tmp"; else bad "make install PREFIX=tmp"; fi
if command -v systemd-analyze >/dev/null 2>&1; then
  if MANPATH="$prefix/share/man" SYSTEMD_LOG_LEVEL=notice \
     systemd-analyze verify "$prefix/lib/systemd/system/lsmi.service" >"$tmp/log" 2>&1 &&
     ! grep -q . "$tmp/log"; then
    ok "systemd-analyze verify (ExecStart and man page resolved)"
  else
    bad "systemd-analyze verify"
  fi
else
  echo "systemd-analyze missing: deploy/install-deps.sh --test installs systemd" >"$tmp/log"
  bad "systemd-analyze verify"
fi
if command -v groff >/dev/null 2>&1; then
  if groff -man -ww -z -Tutf8 "$root/doc/lsmi.1" >"$tmp/log" 2>&1 && ! grep -q . "$tmp/log"; then
    ok "man page renders without groff warnings"
  else
    bad "man page renders without groff warnings"
  fi
  if MANPATH="$prefix/share/man" man -w lsmi >"$tmp/log" 2>&1; then ok "man -w lsmi finds the installed page"; else bad "man -w lsmi finds the installed page"; fi
else
  echo "groff missing: deploy/install-deps.sh --test installs groff-base" >"$tmp/log"
  bad "man page renders without groff warnings"
fi
"$prefix/bin/lsmi" probe --help >/dev/null 2>&1 && ok "installed binary runs" || bad "installed binary runs"
mk uninstall PREFIX="$prefix" && ok "make uninstall PREFIX=tmp" || bad "make uninstall PREFIX=tmp"
left=$(find "$prefix" ! -type d 2>/dev/null)
[ -z "$left" ] && ok "uninstall PREFIX=tmp leaves no file" || { echo "$left" >"$tmp/log"; bad "uninstall PREFIX=tmp leaves no file"; }

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
