#!/usr/bin/env bash
# A throwaway PostgreSQL for the postgres-marked tests.
#
#   eval "$(bash .ci/postgres.sh)"     # sets LLMSPEC_TEST_POSTGRES_URL
#
# Installs Debian's postgresql if no server binaries are present, runs a private cluster
# under /tmp as a non-root user on a local port (password auth over TCP, so tests can
# check what a wrong password does), and creates a user and a database. Idempotent: a
# second run reuses the running cluster. Only the export line goes to stdout.
set -euo pipefail

PORT="${LLMSPEC_PG_PORT:-54329}"
ROOT="${LLMSPEC_PG_DIR:-/tmp/llmspec-pg}"
DATA="$ROOT/data"
SOCK="$ROOT/sock"
DB_USER=llmspec
DB_PASS=llmspec-test-pw
DB_NAME=llmspec_test

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
        log "need root (or sudo) to run: $*"; exit 1; fi
}

if ! BIN=$(find_bin); then
    log "installing postgresql from the Debian packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin) || { log "postgresql installed but initdb not found"; exit 1; }
fi

# The server refuses to run as root: use the postgres account when we are root.
if [ "$(id -u)" = 0 ]; then
    RUN_AS=postgres
    id "$RUN_AS" >/dev/null 2>&1 || useradd --system --home-dir "$ROOT" --shell /bin/sh "$RUN_AS"
    run() { su -s /bin/sh "$RUN_AS" -c "$(printf '%q ' "$@")"; }
else
    RUN_AS=$(id -un)
    run() { "$@"; }
fi

mkdir -p "$ROOT" "$SOCK"
if [ "$(id -u)" = 0 ]; then chown -R "$RUN_AS" "$ROOT"; fi
chmod 700 "$ROOT" "$SOCK"

if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    PWFILE="$ROOT/superuser.pw"
    echo "postgres-superuser-pw" > "$PWFILE"
    if [ "$(id -u)" = 0 ]; then chown "$RUN_AS" "$PWFILE"; fi
    # Local socket connections (only this user can reach the socket folder) are trusted for
    # setup; TCP needs the password, so tests can see what a wrong one does.
    for locale in C.UTF-8 C; do
        rm -rf "$DATA"
        if run "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$PWFILE" --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 --locale="$locale" >&2; then break; fi
    done
    [ -s "$DATA/PG_VERSION" ] || { log "initdb failed"; exit 1; }
fi

if ! run "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "starting on 127.0.0.1:$PORT"
    run "$BIN/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -w -t 60 \
        -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >&2
fi

psql_su() { run "$BIN/psql" -X -q -h "$SOCK" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

if [ "$(psql_su -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    psql_su -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS'" >&2
fi
if [ "$(psql_su -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    psql_su -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi

echo "export LLMSPEC_TEST_POSTGRES_URL=postgresql://$DB_USER:$DB_PASS@127.0.0.1:$PORT/$DB_NAME"
