#!/bin/sh
# docker-entrypoint.sh — the container image's entrypoint: makes sure an
# exposed `lsmi serve` has a bearer token, then becomes the command (exec, so
# the daemon is PID 1 and gets SIGTERM itself).
#
# The image listens on 0.0.0.0, where the daemon refuses to run an open API.
# When the command is `lsmi serve` and no token is configured (no LSMI_TOKENS,
# no LSMI_TOKENS_FILE, no --tokens-file), a random token for tenant "default"
# is generated once into the data volume ($LSMI_DATA_DIR/tokens, mode 0600)
# and used from then on; read it with
#   docker exec CONTAINER cat /var/lib/lsmi/tokens
# The token itself is never logged. Configure tokens explicitly to skip this.
set -eu

generate=no
if [ "${1:-}" = lsmi ] && [ "${2:-}" = serve ] &&
   [ -z "${LSMI_TOKENS:-}" ] && [ -z "${LSMI_TOKENS_FILE:-}" ]; then
  generate=yes
  for arg in "$@"; do
    case $arg in --tokens-file | --tokens-file=*) generate=no ;; esac
  done
fi

if [ "$generate" = yes ]; then
  file="${LSMI_DATA_DIR:-/var/lib/lsmi}/tokens"
  if [ ! -s "$file" ]; then
    umask 077
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    if ! printf '%s default\n' "$token" >"$file.tmp" || ! mv -f "$file.tmp" "$file"; then
      echo "{\"level\":\"error\",\"event\":\"tokens\",\"message\":\"no token configured and cannot write $file; set LSMI_TOKENS or LSMI_TOKENS_FILE\"}" >&2
      exit 1
    fi
    echo "{\"level\":\"warn\",\"event\":\"tokens\",\"message\":\"no token configured: generated one for tenant default in $file\"}" >&2
  fi
  LSMI_TOKENS_FILE=$file
  export LSMI_TOKENS_FILE
fi

exec "$@"
