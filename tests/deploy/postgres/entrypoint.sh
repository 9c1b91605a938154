#!/bin/sh
# tests/deploy/postgres/entrypoint.sh — the official postgres image's
# start-up, as much of it as deploy/docker-compose.cluster.yml relies on.
#
# Starts as root: makes the data and socket directories the postgres
# user's, and on an empty data directory runs initdb with POSTGRES_USER as
# the superuser (password POSTGRES_PASSWORD, required), lets every host in
# with a password (scram-sha-256) and listens on all addresses, then
# creates POSTGRES_DB (default: POSTGRES_USER). Then `exec postgres` as the
# postgres user, so the server is PID 1 and gets the stop signal.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
asuser() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
  chown postgres "$pw"
  asuser initdb -D "$PGDATA" --username="$user" --pwfile="$pw" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    asuser pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    asuser psql -q -v ON_ERROR_STOP=1 -U "$user" -d postgres \
      -c "CREATE DATABASE \"$db\""
    asuser pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
fi
[ "$1" = postgres ] && [ "$(id -u)" = 0 ] && exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
exec "$@"
