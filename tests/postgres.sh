# Sourced by tests/all.sh. The PostgreSQL tests need an admin URL in CAIRN_TEST_POSTGRES_URL
# (a role that may CREATE DATABASE; each test makes and drops its own database). When it is not
# set, this starts a throwaway server from Debian's postgresql package (installing it if
# missing) on a free loopback port, in a temporary directory, and stops it on exit.

pg_dir=""
pg_bin=""

stop_throwaway_postgres() {
    if [ -n "$pg_dir" ] && [ -n "$pg_bin" ]; then
        run_as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
        pg_dir=""
    fi
}

# initdb and postgres refuse to run as root: run them as the postgres user when we are root.
run_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_throwaway_postgres() {
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$pg_bin" ]; then
        apt_install postgresql
        pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pg_dir=$(mktemp -d /tmp/cairn-pg.XXXXXX)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$pg_dir"
    fi
    run_as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust >"$pg_dir/initdb.log" 2>&1
    run_as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
        -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    export CAIRN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "started a throwaway PostgreSQL at $CAIRN_TEST_POSTGRES_URL"
}

ensure_postgres() {
    if [ -n "${CAIRN_TEST_POSTGRES_URL:-}" ]; then
        echo "PostgreSQL tests use CAIRN_TEST_POSTGRES_URL"
        return
    fi
    start_throwaway_postgres
}
