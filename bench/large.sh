#!/usr/bin/env bash
# PUT and GET of one 1 GiB random object through aws-cli (default settings, so multipart in 8 MiB
# parts with 10 parallel requests) against a fresh `cairn server` with its default 64 MiB chunks.
#
#   bench/large.sh [PATH/TO/cairn]       (default: cargo build --release, then target/release/cairn)
#
# Reports MiB/s for the PUT and the GET beside `dd if=/dev/zero bs=1M count=1024 conv=fsync` on the
# same disk in the same run, and the server's peak resident memory (VmHWM at the end). The work
# directory (data, source file, download, dd file) is under target/ unless BENCH_DIR names another
# directory; BENCH_SIZE_MIB changes the object size (default 1024). Not run by CI.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
size_mib="${BENCH_SIZE_MIB:-1024}"
base="${BENCH_DIR:-$repo/target}"

# The commit a result is filed under is the one the binary was built from: build it here unless a
# binary is named, and then say when that binary was built.
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit-dirty"
fi
if [ -n "${1:-${CAIRN_BIN:-}}" ]; then
    cairn="${1:-$CAIRN_BIN}"
    case "$cairn" in /*) ;; *) cairn="$PWD/$cairn" ;; esac
    commit="$commit (work tree; binary built $(date -u -r "$cairn" '+%Y-%m-%d %H:%M'))"
else
    cairn="$repo/target/release/cairn"
    echo "cargo build --release"
    (cd "$repo" && cargo build --release --quiet)
fi

mkdir -p "$base"
work="$(mktemp -d "$base/cairn-bench.XXXXXX")"
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

now() { date +%s.%N; }
mib_per_s() { python3 -c 'import sys; print(f"{float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2])):.1f}")' "$size_mib" "$1" "$2"; }
seconds() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$1" "$2"; }

echo "work directory: $work ($(df --output=source,fstype "$work" | tail -n 1 | tr -s ' '))"

echo "writing $size_mib MiB of random data"
head -c "$((size_mib * 1048576))" /dev/urandom >"$work/source.bin"

echo "dd if=/dev/zero bs=1M count=$size_mib conv=fsync"
t0=$(now)
dd if=/dev/zero of="$work/dd.bin" bs=1M count="$size_mib" conv=fsync status=none
t1=$(now)
rm -f "$work/dd.bin"
dd_rate=$(mib_per_s "$t0" "$t1")

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:$port"
access_key="CAIRNBENCH$(python3 -c 'import secrets; print(secrets.token_hex(6).upper())')"
secret_key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')"
CAIRN_ACCESS_KEY_ID="$access_key" CAIRN_SECRET_ACCESS_KEY="$secret_key" \
    "$cairn" server --listen "127.0.0.1:$port" --data "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    if curl -fsS -o /dev/null --max-time 2 "$endpoint/_cairn/health" 2>/dev/null; then break; fi
    sleep 0.1
done
if ! curl -fsS -o /dev/null --max-time 2 "$endpoint/_cairn/health"; then
    echo "server did not become ready:" >&2
    tail -n 40 "$work/server.log" >&2
    exit 1
fi

unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_REGION
export AWS_ACCESS_KEY_ID="$access_key" AWS_SECRET_ACCESS_KEY="$secret_key" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
printf '[default]\ns3 =\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
aws_() { aws --endpoint-url "$endpoint" "$@"; }

aws_ s3 mb s3://bench >/dev/null

echo "PUT through aws s3 cp"
t0=$(now)
aws_ s3 cp --only-show-errors "$work/source.bin" s3://bench/large.bin
t1=$(now)
put_rate=$(mib_per_s "$t0" "$t1")
put_time=$(seconds "$t0" "$t1")

echo "GET through aws s3 cp"
t0=$(now)
aws_ s3 cp --only-show-errors s3://bench/large.bin "$work/download.bin"
t1=$(now)
get_rate=$(mib_per_s "$t0" "$t1")
get_time=$(seconds "$t0" "$t1")

if ! cmp -s "$work/source.bin" "$work/download.bin"; then
    echo "the downloaded object differs from the uploaded file" >&2
    exit 1
fi

peak_rss_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status")
peak_rss_mib=$((peak_rss_kib / 1024))

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if [ "$status" -ne 0 ]; then echo "warning: server exited with status $status on SIGTERM" >&2; fi

ram_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
disk="$(df --output=source,fstype "$work" | tail -n 1 | tr -s ' ' | sed 's/^ //')"
machine="$(nproc) CPU, ${ram_gib} GiB RAM, $disk"

cat <<EOF

object size            $size_mib MiB (random)
dd conv=fsync          $dd_rate MiB/s
PUT (aws s3 cp)        $put_rate MiB/s  ($put_time s)
GET (aws s3 cp)        $get_rate MiB/s  ($get_time s)
server peak RSS        $peak_rss_mib MiB
downloaded bytes       identical to the upload

| date (UTC) | commit | machine | size | dd MiB/s | PUT MiB/s | GET MiB/s | peak RSS MiB |
|---|---|---|---|---|---|---|---|
| $(date -u '+%Y-%m-%d %H:%M') | $commit | $machine | $size_mib MiB | $dd_rate | $put_rate | $get_rate | $peak_rss_mib |
EOF
