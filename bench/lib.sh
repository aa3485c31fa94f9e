# shellcheck shell=bash
# Shared by the bench/ scripts (sourced, not run): process bookkeeping, a fresh `cairn server`,
# and the commit a result is filed under. Every process a script starts goes into started_pids,
# so that an interrupted run stops them all (by PID); the script's work directory, `work`, is
# removed on exit. The script sets `cairn` to the binary it measures.

started_pids=()
work=""
cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
random_key() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

# The commit of REPO a result is filed under (`-dirty` with uncommitted changes); with a BINARY,
# also when that binary was built.
commit_label() {
    local repo="$1" binary="${2:-}" commit
    commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit-dirty"
    fi
    if [ -n "$binary" ]; then
        commit="$commit (binary built $(date -u -r "$binary" '+%Y-%m-%d %H:%M'))"
    fi
    echo "$commit"
}

# Waits until FILE has a line matching REGEX while PID lives; prints the line.
wait_for_line() {
    local file="$1" regex="$2" pid="$3" deadline=$((SECONDS + 60)) line
    while :; do
        line="$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)"
        if [ -n "$line" ]; then
            echo "$line"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -gt "$deadline" ]; then
            echo "no line matching /$regex/ in $file:" >&2
            tail -n 30 "$file" >&2
            return 1
        fi
        sleep 0.1
    done
}

# SIGTERM, then SIGKILL if the process has not exited within 30 s.
stop_pid() {
    local pid="$1" deadline=$((SECONDS + 30))
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -gt "$deadline" ]; then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
}

# Starts `$cairn server` on a free 127.0.0.1 port with its data in DIR/data, its log in
# DIR/server.log and any further arguments; sets server_pid, endpoint, key and secret (random
# credentials, passed through the environment).
# shellcheck disable=SC2034  # read by the scripts that source this file
server_pid=""
endpoint=""
key=""
secret=""
start_server() {
    local dir="$1" line
    shift
    mkdir -p "$dir"
    key="CAIRNBENCH$(random_key | cut -c1-10)"
    secret="$(random_key)"
    # shellcheck disable=SC2154  # set by the sourcing script
    CAIRN_ACCESS_KEY_ID="$key" CAIRN_SECRET_ACCESS_KEY="$secret" \
        "$cairn" server --listen 127.0.0.1:0 --data "$dir/data" "$@" >"$dir/server.log" 2>&1 &
    server_pid=$!
    started_pids+=("$server_pid")
    line="$(wait_for_line "$dir/server.log" '^Cairn S3 endpoint: http://' "$server_pid")"
    # shellcheck disable=SC2034  # read by the sourcing script
    endpoint="${line#Cairn S3 endpoint: }"
}

# Starts a loopback cluster under DIR: 3 `$cairn datanode`s and one `$cairn gateway --replicas 2
# --write-quorum 2` over a SQLite metadata store, with random credentials and cluster secret
# (through the environment); sets gateway_pid, node_pids, endpoint, key and secret.
# shellcheck disable=SC2034  # read by the scripts that source this file
gateway_pid=""
node_pids=()
start_cluster() {
    local dir="$1" meta line pid i node_urls=()
    mkdir -p "$dir"
    node_pids=()
    key="CAIRNBENCH$(random_key | cut -c1-10)"
    secret="$(random_key)"
    meta="sqlite://$dir/meta.db"
    export CAIRN_CLUSTER_SECRET
    CAIRN_CLUSTER_SECRET="$(head -c 32 /dev/urandom | base64)"
    for i in 1 2 3; do
        "$cairn" datanode --listen 127.0.0.1:0 --data "$dir/node$i" >"$dir/node$i.log" 2>&1 &
        pid=$!
        node_pids+=("$pid")
        started_pids+=("$pid")
        line="$(wait_for_line "$dir/node$i.log" '^Cairn data node .* listening on http' "$pid")"
        node_urls+=("${line##* listening on }")
    done
    CAIRN_ACCESS_KEY_ID="$key" CAIRN_SECRET_ACCESS_KEY="$secret" \
        "$cairn" gateway --listen 127.0.0.1:0 --meta "$meta" --replicas 2 --write-quorum 2 \
        >"$dir/gateway.log" 2>&1 &
    gateway_pid=$!
    started_pids+=("$gateway_pid")
    line="$(wait_for_line "$dir/gateway.log" '^Cairn S3 endpoint: http' "$gateway_pid")"
    endpoint="${line#Cairn S3 endpoint: }"
    for i in 0 1 2; do
        "$cairn" admin --meta "$meta" node add "${node_urls[$i]}" >/dev/null
    done
}

# Stops what start_cluster started.
stop_cluster() {
    local pid
    stop_pid "$gateway_pid"
    for pid in "${node_pids[@]}"; do stop_pid "$pid"; done
    unset CAIRN_CLUSTER_SECRET
}
