#!/usr/bin/env bash
# Before and after: two builds of Cairn, measured in the same run on the same disk, so that a
# change's cost is read beside its reference and not beside a figure from another day. For each
# of BENCH_RUNS rounds (at least 2), interleaved so that drift hits both alike: `cairn server`
# from OLD, then from NEW, then a loopback cluster (3 data nodes, gateway R=2 W=2) from OLD,
# then from NEW; each store fresh and empty in its own directory, stopped (by PID) after its
# run. The load is the `large`, `range` and `small` workloads of NEW's `cairn bench` (the same
# client for both). Prints each figure's median for OLD and NEW and their ratio. Not run by CI.
#
#   bench/compare.sh OLD_CAIRN NEW_CAIRN
#
# e.g. build the previous commit in a worktree, then
#   bench/compare.sh ../prev/target/release/cairn target/release/cairn
#
# Environment:
#   BENCH_RUNS   rounds (default 3, at least 2)
#   BENCH_DIR    where the stores write (default target/)
#   BENCH_ARGS   extra `cairn bench` flags (default "--large-size 512MiB --small-ops 2000")
#   BENCH_WORKLOADS  the workloads, in order (default "large range small"; range reads large's
#                object)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ne 2 ]; then
    echo "usage: bench/compare.sh OLD_CAIRN NEW_CAIRN" >&2
    exit 2
fi
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
old="$(abs "$1")"
new="$(abs "$2")"
runs="${BENCH_RUNS:-3}"
if [ "$runs" -lt 2 ]; then
    echo "BENCH_RUNS must be at least 2" >&2
    exit 2
fi
read -r -a bench_args <<<"${BENCH_ARGS:---large-size 512MiB --small-ops 2000}"
read -r -a workloads <<<"${BENCH_WORKLOADS:-large range small}"
base="${BENCH_DIR:-$repo/target}"
bucket="cairn-bench"

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

mkdir -p "$base"
work="$(mktemp -d "$base/cairn-compare.XXXXXX")"
results="$work/results"
mkdir -p "$results"

# The load: NEW's client against whichever store is up. Errors are counted in the JSON lines.
load() {
    local out="$1" workload
    for workload in "${workloads[@]}"; do
        AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" "$new" bench \
            --endpoint "$endpoint" --bucket "$bucket" "${bench_args[@]}" "$workload" >>"$out" ||
            echo "cairn bench $workload against $endpoint failed" >&2
    done
}

for run in $(seq 1 "$runs"); do
    for target in server cluster; do
        for build in old new; do
            if [ "$build" = old ]; then cairn="$old"; else cairn="$new"; fi
            dir="$work/$target-$build-$run"
            echo "== run $run: $target, $build ($cairn)"
            if [ "$target" = server ]; then
                start_server "$dir"
                load "$results/$target-$build-$run.jsonl"
                stop_pid "$server_pid"
            else
                start_cluster "$dir"
                load "$results/$target-$build-$run.jsonl"
                stop_cluster
            fi
            rm -rf "$dir"
        done
    done
done

echo
echo "old: $old (built $(date -u -r "$old" '+%Y-%m-%d %H:%M'))"
echo "new: $new (built $(date -u -r "$new" '+%Y-%m-%d %H:%M'))"
echo "machine: $(nproc) CPU, $(df --output=source,fstype "$base" | tail -n 1 | tr -s ' ')"
python3 - "$results" "$runs" <<'PY'
import json, os, statistics, sys

results, runs = sys.argv[1], int(sys.argv[2])
data = {}  # (target, build, workload, field) -> [values]
errors = 0
for name in sorted(os.listdir(results)):
    target, build, _ = name.removesuffix(".jsonl").split("-")
    with open(os.path.join(results, name)) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            errors += record.get("errors") or 0
            for field, value in record.items():
                if field.endswith(("_mib_s", "_ops_s", "_ms")) and value is not None:
                    data.setdefault((target, build, record["workload"], field), []).append(value)

print(f"\nMedians of {runs} runs; `_ms` figures are better lower, all others higher; errors: {errors}.\n")
print("| store | workload | figure | old | new | new / old |")
print("|---|---|---|---|---|---|")
for (target, build, workload, field), values in sorted(data.items()):
    if build != "old":
        continue
    o = statistics.median(values)
    n_values = data.get((target, "new", workload, field))
    n = statistics.median(n_values) if n_values else None
    ratio = f"{n / o:.2f}" if n is not None and o else "—"
    print(f"| {target} | {workload} | {field} | {o:.1f} | {'—' if n is None else f'{n:.1f}'} | {ratio} |")
PY
