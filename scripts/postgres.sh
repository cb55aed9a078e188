#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests on 127.0.0.1 (Debian's server
# binaries; initdb refuses root, so it runs as the postgres user). Idempotent: a server
# already answering is left alone. Prints the connection URL.
#   scripts/postgres.sh status   exit 0 when that server answers, non-zero when not
#   scripts/postgres.sh stop     stop it (the test run stops the server it started)
set -euo pipefail
PORT="${GRIDX_TEST_PG_PORT:-55432}"
DIR="${GRIDX_TEST_PG_DIR:-/tmp/gridx-test-pg}"
URL="postgres://gridx@127.0.0.1:${PORT}/gridx_test"
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

log() { printf 'postgres: %s\n' "$*" >&2; }
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian's postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  else
    log "no PostgreSQL server binaries; install Debian's postgresql"; exit 1
  fi
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-start}" in
  status) exec "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" ;;
  stop)
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then as_pg "$BIN/pg_ctl" -D "$DIR" -w -t 30 -m fast stop >/dev/null; fi
    exit 0 ;;
  start) ;;
  *) log "usage: scripts/postgres.sh [start|status|stop]"; exit 2 ;;
esac

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -f "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $PORT -k /tmp -c fsync=off -c max_connections=200" start >/dev/null
fi
psql=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
"${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='gridx'" | grep -q 1 || "${psql[@]}" -c "CREATE ROLE gridx LOGIN SUPERUSER"
"${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='gridx_test'" | grep -q 1 || "${psql[@]}" -c "CREATE DATABASE gridx_test OWNER gridx"
echo "$URL"
