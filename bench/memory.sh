#!/usr/bin/env bash
# Peak resident memory of `cairn server` under load, for the two memory targets of the
# performance issue. Every case starts a fresh `cairn server --chunk-size 64MiB` (the default) on
# 127.0.0.1 with its data in a temporary directory under the work directory, drives it with
# `cairn bench large`, reads its peak RSS (VmHWM in /proc/PID/status) just before stopping it (by
# PID), and deletes its data:
#
#   1. MEMORY_STREAMS (8) `cairn bench large --large-size MEMORY_SIZE` (1 GiB) at once, each in its
#      own bucket memory-N, so their single-stream PutObjects start together (each then does a
#      multipart upload of 64 MiB parts, 4 in flight, and its GETs); VmRSS is also sampled every
#      0.2 s while they run. Target: peak RSS under 256 MiB.
#   2. One `cairn bench large` of MEMORY_SIZE (1 GiB), then, on another fresh server, one of
#      MEMORY_LARGE (10 GiB); MEMORY_RUNS times, alternating. Target: the median peak RSS of the
#      larger object within ±10 % of the smaller's (one size alone varies by about as much from
#      run to run, so single pairs say little).
#
# Prints a summary and a Markdown table row per case (date, commit, case, peak RSS, target, met?);
# the JSON lines of every `cairn bench` are kept under BENCH_DIR/bench-results/memory-DATE/.
# A benchmark, not a test: not run by CI.
#
#   bench/memory.sh [PATH/TO/cairn]     (default: target/release/cairn, built beforehand with
#                                        `cargo build --release`; this script does not build)
#
# Environment:
#   BENCH_DIR       where the stores write (default target/; the disk under test). Needs free space
#                   for the larger case: MEMORY_STREAMS × 2 × MEMORY_SIZE (each bench's object
#                   plus its multipart copy, which is deleted only at the end and kept on disk for
#                   the server's 5 min --gc-grace) or 2 × MEMORY_LARGE, plus 1 GiB; checked first.
#   MEMORY_SIZE     object size of case 1 and the smaller object of case 2 (default 1GiB)
#   MEMORY_LARGE    the larger object of case 2 (default 10GiB)
#   MEMORY_STREAMS  concurrent `cairn bench large` processes in case 1 (default 8)
#   MEMORY_RUNS     runs of each size in case 2 (default 5: single peaks of either size spread
#                   over about 26 to 30 MiB on one VM, and medians of 3 missed the band once)
#
# Exit status: 0 when every bench succeeded and both targets were met, 1 when a bench or the
# server failed, 3 when everything ran but a target was missed, 2 on bad arguments.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
base="${BENCH_DIR:-$repo/target}"
size="${MEMORY_SIZE:-1GiB}"
large="${MEMORY_LARGE:-10GiB}"
streams="${MEMORY_STREAMS:-8}"
runs="${MEMORY_RUNS:-5}"
rss_target_mib=256
flat_tolerance_pct=10

cairn="${1:-$repo/target/release/cairn}"
case "$cairn" in /*) ;; *) cairn="$PWD/$cairn" ;; esac
if [ ! -x "$cairn" ]; then
    echo "no cairn binary at $cairn: run \`cargo build --release\` or name one as the first argument" >&2
    exit 2
fi
if ! [[ "$streams" =~ ^[1-9][0-9]*$ ]]; then
    echo "MEMORY_STREAMS must be a positive integer, not \"$streams\"" >&2
    exit 2
fi
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "MEMORY_RUNS must be a positive integer, not \"$runs\"" >&2
    exit 2
fi

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
commit="$(commit_label "$repo" "$cairn")"
date_utc="$(date -u '+%Y-%m-%d %H:%M')"

# Bytes in a size as `cairn` parses it (src/config.rs): digits, then B, KiB/K/k, MiB/M, GiB/G,
# TiB/T, KB/kB, MB, GB or TB.
to_bytes() {
    local s="$1" digits unit mult
    if ! [[ "$s" =~ ^([0-9]+)\ *([A-Za-z]*)$ ]]; then
        echo "invalid size \"$s\"" >&2
        return 1
    fi
    digits="${BASH_REMATCH[1]}"
    unit="${BASH_REMATCH[2]}"
    case "$unit" in
        "" | B) mult=1 ;;
        KiB | K | k) mult=$((1 << 10)) ;;
        MiB | M) mult=$((1 << 20)) ;;
        GiB | G) mult=$((1 << 30)) ;;
        TiB | T) mult=$((1 << 40)) ;;
        KB | kB) mult=1000 ;;
        MB) mult=1000000 ;;
        GB) mult=1000000000 ;;
        TB) mult=1000000000000 ;;
        *)
            echo "unknown size unit \"$unit\" in \"$s\"" >&2
            return 1
            ;;
    esac
    echo $((10#$digits * mult))
}
gib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1073741824 }'; }

size_bytes="$(to_bytes "$size")" || exit 2
large_bytes="$(to_bytes "$large")" || exit 2

# Disk space: the larger of the two cases (each case's data is deleted before the next starts).
mkdir -p "$base"
case1_bytes=$((streams * 2 * size_bytes))
case2_bytes=$((2 * large_bytes))
margin_bytes=$((1 << 30))
need_bytes=$(((case1_bytes > case2_bytes ? case1_bytes : case2_bytes) + margin_bytes))
avail_bytes="$(df --output=avail -B1 "$base" | tail -n 1 | tr -d ' ')"
if [ "$avail_bytes" -lt "$need_bytes" ]; then
    cat >&2 <<EOF
not enough free disk space under $base: $(gib "$avail_bytes") GiB free, $(gib "$need_bytes") GiB needed
  case 1: $streams × 2 × $size = $(gib "$case1_bytes") GiB (each bench's object and its multipart copy)
  case 2: 2 × $large = $(gib "$case2_bytes") GiB (the object and its multipart copy)
  plus 1 GiB of margin. Free some space, point BENCH_DIR at a larger disk, or lower
  MEMORY_SIZE, MEMORY_LARGE or MEMORY_STREAMS.
EOF
    exit 1
fi

work="$(mktemp -d "$base/cairn-bench-memory.XXXXXX")"
results="$base/bench-results/memory-$(date -u '+%Y%m%dT%H%M%SZ')"
mkdir -p "$results"

current_rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# Sets rss_kib to PID's VmRSS in KiB (0 if unreadable), without starting a process.
rss_kib=0
read_rss_kib() {
    local key value _unit
    rss_kib=0
    while read -r key value _unit; do
        if [ "$key" = "VmRSS:" ]; then
            rss_kib="$value"
            return 0
        fi
    done <"/proc/$1/status" || true
}

any_alive() {
    local pid
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then return 0; fi
    done
    return 1
}

# Reads the server's VmHWM into server_peak; fails (with its log) if the server is gone.
server_peak=""
read_server_peak() {
    local dir="$1"
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "cairn server (PID $server_pid) is no longer running:" >&2
        tail -n 30 "$dir/server.log" >&2
        return 1
    fi
    server_peak="$(peak_rss_mib "$server_pid")"
}

# `cairn bench large` of SIZE in BUCKET against the current server; JSON line to OUT, summary to
# LOG. Only for a background job (`bench_large ... &`): it execs, so the job's PID is the bench's.
bench_large() {
    local bucket="$1" object_size="$2" out="$3" log="$4"
    # --generate-ahead 0: every size streams its generated bytes the same way, and eight clients
    # do not each hold a 1 GiB object in memory.
    AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" exec "$cairn" bench \
        --endpoint "$endpoint" --bucket "$bucket" --large-size "$object_size" \
        --generate-ahead 0 large \
        >"$out" 2>"$log"
}

# Sum of FIELD over the JSON lines of FILES (a failed figure, JSON null, counts 0).
sum_field() {
    python3 - "$@" <<'EOF'
import json, sys
field, total = sys.argv[1], 0.0
for path in sys.argv[2:]:
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                total += float(json.loads(line).get(field) or 0)
print(f"{total:.1f}")
EOF
}

failed=0

# Case 1: MEMORY_STREAMS concurrent `cairn bench large` against one server.
case1_peak="" case1_sample="" case1_idle="" case1_put="" case1_multipart="" case1_secs=""
case1_ok=0
run_case1() {
    local dir="$work/case1" pids=() outs=() i pid rc t0 t1 max_kib=0 samples=0 errors=0
    echo "== case 1: $streams × cairn bench large --large-size $size at once (64 MiB chunks)"
    start_server "$dir" --chunk-size 64MiB
    case1_idle="$(current_rss_mib "$server_pid")"
    echo "server $endpoint (PID $server_pid), idle RSS $case1_idle MiB"
    t0=$(now)
    for i in $(seq 1 "$streams"); do
        bench_large "memory-$i" "$size" "$results/case1-$i.jsonl" "$dir/bench-$i.log" &
        pid=$!
        pids+=("$pid")
        started_pids+=("$pid")
        outs+=("$results/case1-$i.jsonl")
    done
    # Sample the server's VmRSS every 0.2 s while any bench runs.
    while any_alive "${pids[@]}"; do
        read_rss_kib "$server_pid"
        if [ "$rss_kib" -gt "$max_kib" ]; then max_kib="$rss_kib"; fi
        samples=$((samples + 1))
        sleep 0.2
    done
    t1=$(now)
    case1_secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then rc=0; else rc=$?; fi
        if [ "$rc" -ne 0 ]; then
            errors=$((errors + 1))
            echo "bench memory-$((i + 1)) exited $rc:" >&2
            tail -n 10 "$dir/bench-$((i + 1)).log" >&2
        fi
    done
    read_server_peak "$dir"
    case1_peak="$server_peak"
    case1_sample="$(awk -v k="$max_kib" 'BEGIN { printf "%.1f", k / 1024 }')"
    case1_put="$(sum_field put_mib_s "${outs[@]}")"
    case1_multipart="$(sum_field multipart_put_mib_s "${outs[@]}")"
    stop_pid "$server_pid"
    rm -rf "$dir"
    echo "benches: $((streams - errors)) of $streams exited 0, all done in $case1_secs s"
    echo "peak RSS (VmHWM) $case1_peak MiB; max of $samples VmRSS samples $case1_sample MiB"
    echo "aggregate PUT $case1_put MiB/s, multipart PUT $case1_multipart MiB/s (sums over the $streams JSON lines)"
    if [ "$errors" -eq 0 ]; then case1_ok=1; fi
}

# Case 2: one `cairn bench large` of SIZE against a fresh server; sets server_peak, and single_rc
# to the bench's exit status.
single_rc=0
run_single() {
    local label="$1" object_size="$2" dir="$work/$1" pid rc
    echo "== case 2: cairn bench large --large-size $object_size"
    start_server "$dir" --chunk-size 64MiB
    echo "server $endpoint (PID $server_pid), idle RSS $(current_rss_mib "$server_pid") MiB"
    bench_large memory "$object_size" "$results/$label.jsonl" "$dir/bench.log" &
    pid=$!
    started_pids+=("$pid")
    if wait "$pid"; then
        rc=0
    else
        rc=$?
    fi
    # The bench's summary, without its progress lines.
    grep -vE ': (started|done in .*)$' "$dir/bench.log" || true
    if [ "$rc" -ne 0 ]; then
        echo "cairn bench large --large-size $object_size exited $rc" >&2
    fi
    read_server_peak "$dir"
    stop_pid "$server_pid"
    rm -rf "$dir"
    echo "peak RSS (VmHWM) $server_peak MiB"
    single_rc="$rc"
}

echo "work directory: $work ($(df --output=source,fstype "$work" | tail -n 1 | tr -s ' '))"
echo "free: $(gib "$avail_bytes") GiB, needed: $(gib "$need_bytes") GiB"
echo "binary: $cairn; commit $commit"

# A server that does not start or dies stops the script (set -e); a failed bench is reported.
run_case1
if [ "$case1_ok" != 1 ]; then failed=1; fi

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

case2_small="" case2_large="" case2_ratio="" case2_ok=1
small_peaks=() large_peaks=()
for run in $(seq 1 "$runs"); do
    run_single "case2-small-$run" "$size"
    if [ "$single_rc" -ne 0 ]; then case2_ok=0; break; fi
    small_peaks+=("$server_peak")
    run_single "case2-large-$run" "$large"
    if [ "$single_rc" -ne 0 ]; then case2_ok=0; break; fi
    large_peaks+=("$server_peak")
done
if [ "$case2_ok" = 1 ]; then
    case2_small="$(median "${small_peaks[@]}")"
    case2_large="$(median "${large_peaks[@]}")"
    case2_ratio="$(awk -v a="$case2_large" -v b="$case2_small" 'BEGIN { printf "%.3f", a / b }')"
else
    failed=1
fi

# Verdicts: only for cases whose benches all succeeded.
verdict() { if [ "$1" = 1 ]; then echo yes; else echo no; fi; }
case1_met="—" case2_met="—"
missed=0
if [ "$case1_ok" = 1 ]; then
    case1_met="$(verdict "$(awk -v p="$case1_peak" -v t="$rss_target_mib" 'BEGIN { print (p < t) ? 1 : 0 }')")"
    if [ "$case1_met" != yes ]; then missed=1; fi
fi
if [ "$case2_ok" = 1 ]; then
    case2_met="$(verdict "$(awk -v r="$case2_ratio" -v t="$flat_tolerance_pct" \
        'BEGIN { d = (r - 1) * 100; if (d < 0) d = -d; print (d <= t) ? 1 : 0 }')")"
    if [ "$case2_met" != yes ]; then missed=1; fi
fi
pass_fail() {
    case "$1" in yes) echo PASS ;; no) echo FAIL ;; *) echo "not measured (a bench failed)" ;; esac
}

echo
echo "== summary ($date_utc UTC, commit $commit)"
echo "case 1: $streams × $size concurrent: peak RSS ${case1_peak:-—} MiB (max 0.2 s sample ${case1_sample:-—} MiB, idle ${case1_idle:-—} MiB);"
echo "        target < $rss_target_mib MiB: $(pass_fail "$case1_met")"
echo "        aggregate PUT ${case1_put:-—} MiB/s, multipart PUT ${case1_multipart:-—} MiB/s, ${case1_secs:-—} s in all"
echo "case 2: $size object: peak RSS ${small_peaks[*]:-—} MiB, median ${case2_small:-—};"
echo "        $large object: peak RSS ${large_peaks[*]:-—} MiB, median ${case2_large:-—};"
echo "        ratio of medians $large / $size ${case2_ratio:-—}, target within ±$flat_tolerance_pct %: $(pass_fail "$case2_met")"
echo "JSON lines: $results"
echo
echo "| date (UTC) | commit | case | peak RSS MiB | target | met? |"
echo "|---|---|---|---|---|---|"
echo "| $date_utc | $commit | $streams × \`cairn bench large\` of $size at once, 64 MiB chunks (max 0.2 s sample ${case1_sample:-—}; PUT ${case1_put:-—} MiB/s aggregate) | ${case1_peak:-—} | < $rss_target_mib MiB | $case1_met |"
echo "| $date_utc | $commit | one \`cairn bench large\` of $size, median of $runs (${small_peaks[*]:-—}) | ${case2_small:-—} | (reference for the next row) | — |"
echo "| $date_utc | $commit | one \`cairn bench large\` of $large, median of $runs (${large_peaks[*]:-—}; ratio to $size: ${case2_ratio:-—}) | ${case2_large:-—} | within ±$flat_tolerance_pct % of the $size row | $case2_met |"

if [ "$failed" -ne 0 ]; then
    echo "a bench or the server failed; see the messages above" >&2
    exit 1
fi
if [ "$missed" -ne 0 ]; then exit 3; fi
