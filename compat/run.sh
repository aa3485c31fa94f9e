#!/usr/bin/env bash
# Runs the client-compatibility suites (aws-cli, boto3) against one real `cairn server`.
#
#   compat/run.sh [PATH/TO/cairn]        (default: target/release/cairn, or $CAIRN_BIN)
#
# Starts the server with --chunk-size 1MiB on a free 127.0.0.1 port, a temporary data directory and
# credentials from the environment; waits on GET /_cairn/health; runs compat/awscli.sh and
# compat/boto3_test.py; stops the server with SIGTERM and checks that it exits 0. Every check of every
# suite is counted; the last line is `N passed, M failed` and the exit status is non-zero when M > 0.
# If $CAIRN_COMPAT_SUMMARY names a file, the two numbers are also written there ("N M").
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cairn="${1:-${CAIRN_BIN:-$repo/target/release/cairn}}"
case "$cairn" in /*) ;; *) cairn="$PWD/$cairn" ;; esac

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}
finish() {
    echo
    echo "compat: $passed passed, $failed failed"
    if [ -n "${CAIRN_COMPAT_SUMMARY:-}" ]; then echo "$passed $failed" >"$CAIRN_COMPAT_SUMMARY"; fi
    echo "$passed passed, $failed failed"
    if [ "$failed" -eq 0 ]; then exit 0; else exit 1; fi
}

if [ ! -x "$cairn" ]; then
    not_ok "cairn binary exists at $cairn (build it with: cargo build --release)"
    finish
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-compat.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:$port"
data="$work/data"
server_log="$work/server.log"

# Credentials made up per run: nothing from the caller's AWS setup may leak into the suites.
access_key="CAIRNCOMPAT$(python3 -c 'import secrets; print(secrets.token_hex(6).upper())')"
secret_key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')"

CAIRN_ACCESS_KEY_ID="$access_key" CAIRN_SECRET_ACCESS_KEY="$secret_key" \
    "$cairn" server --listen "127.0.0.1:$port" --data "$data" --chunk-size 1MiB >"$server_log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if curl -fsS -o /dev/null --max-time 2 "$endpoint/_cairn/health" 2>/dev/null; then
        ready=yes
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    not_ok "server answers GET /_cairn/health within 30 s" "$(tail -n 40 "$server_log")"
    finish
fi
ok "server answers GET /_cairn/health ($endpoint)"

health_body="$(curl -sS -D "$work/health.headers" --max-time 5 "$endpoint/_cairn/health" || true)"
if grep -qi '^HTTP/1.1 200' "$work/health.headers"; then
    ok "health probe needs no credentials (200)"
else
    not_ok "health probe needs no credentials (200)" "$(cat "$work/health.headers") $health_body"
fi

# A clean client environment: default settings apart from endpoint, credentials, region and
# path-style addressing (the endpoint is an IP address, so virtual-hosted style cannot work).
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL \
    AWS_ENDPOINT_URL_S3 AWS_CA_BUNDLE AWS_REQUEST_CHECKSUM_CALCULATION \
    AWS_RESPONSE_CHECKSUM_VALIDATION AWS_MAX_ATTEMPTS AWS_RETRY_MODE AWS_REGION
export AWS_ACCESS_KEY_ID="$access_key"
export AWS_SECRET_ACCESS_KEY="$secret_key"
export AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER=""
cat >"$AWS_CONFIG_FILE" <<'EOF'
[default]
s3 =
    addressing_style = path
EOF
: >"$AWS_SHARED_CREDENTIALS_FILE"

export CAIRN_ENDPOINT="$endpoint"
export CAIRN_BIN="$cairn"
export CAIRN_DATA="$data"

# Each suite appends "passed failed" to this file; a suite that dies without writing counts as one
# failure.
run_suite() {
    local name=$1
    shift
    local counts="$work/$name.counts"
    local dir="$work/$name"
    mkdir -p "$dir"
    echo
    echo "== $name"
    local rc=0
    CAIRN_COMPAT_COUNTS="$counts" CAIRN_COMPAT_WORK="$dir" timeout --kill-after=10 600 "$@" || rc=$?
    if [ -s "$counts" ]; then
        local p f
        read -r p f <"$counts"
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then not_ok "$name suite exits 0 (exit $rc)"; fi
    else
        not_ok "$name suite ran to the end (exit $rc, no counts written)"
    fi
    rm -rf "$dir"
}

run_suite awscli bash "$here/awscli.sh"
run_suite boto3 python3 "$here/boto3_test.py"

echo
echo "== server"
if kill -0 "$server_pid" 2>/dev/null; then
    ok "server is still running after the suites"
else
    not_ok "server is still running after the suites" "$(tail -n 40 "$server_log")"
fi

if grep -n -i 'panicked' "$server_log" >"$work/panics"; then
    not_ok "server log has no panic" "$(head -n 20 "$work/panics")"
else
    ok "server log has no panic"
fi

kill -TERM "$server_pid" 2>/dev/null || true
stopped=""
for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        stopped=yes
        break
    fi
    sleep 0.1
done
if [ -n "$stopped" ]; then
    status=0
    wait "$server_pid" || status=$?
    server_pid=""
    if [ "$status" -eq 0 ]; then
        ok "server exits 0 on SIGTERM"
    else
        not_ok "server exits 0 on SIGTERM (exit status $status)" "$(tail -n 20 "$server_log")"
    fi
else
    not_ok "server stops within 30 s of SIGTERM"
fi

finish
