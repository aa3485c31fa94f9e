#!/usr/bin/env bash
# Side-by-side benchmark on this machine: the disk itself (dd), `cairn server`, a loopback cluster
# (3 `cairn datanode` + 1 `cairn gateway --replicas 2 --write-quorum 2`) and Garage (single node,
# replication factor 1, region us-east-1), all driven by the same `cairn bench all` workloads,
# interleaved (dd, server, cluster, Garage; then again), BENCH_RUNS times (at least 2). Every store
# starts empty in its own directory under the work directory and is stopped (by PID) after its
# run; its peak RSS (VmHWM) is read just before. Prints medians and ratios, plots the large and
# small workloads with bench/plot.py (matplotlib, pip-installed if missing; without it, no plot),
# and records them with date, commit, machine and the plot (docs/bench/STAMP.png) in
# docs/BENCHMARKS.md, in place of the previous run's section (between its run.sh markers; the
# history stays in git). Not run by CI.
#
#   bench/run.sh [PATH/TO/cairn]     (default: cargo build --release, then target/release/cairn)
#
# Environment:
#   BENCH_RUNS     runs per target (default 2, at least 2)
#   BENCH_DIR      where the stores and dd write (default target/; the disk under test)
#   BENCH_ARGS     extra `cairn bench` flags, e.g. "--large-size 64MiB" for a quick try
#   DD_SIZE_MIB    size of the dd reference (default 1024)
#   GARAGE_BIN     the garage binary (default: `garage` on PATH); Garage is skipped without one.
#                  This script never installs it: `cargo install garage --locked` takes very long.
#   GARAGE_FSYNC   "true" to run Garage with metadata_fsync and data_fsync (default: Garage's own
#                  defaults, which do not fsync; Cairn always does)
#   BENCH_RECORD   "0" to print the results (and plot them in the results directory) without
#                  recording them in docs/BENCHMARKS.md
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
runs="${BENCH_RUNS:-2}"
if [ "$runs" -lt 2 ]; then
    echo "BENCH_RUNS must be at least 2" >&2
    exit 2
fi
dd_mib="${DD_SIZE_MIB:-1024}"
read -r -a bench_args <<<"${BENCH_ARGS:-}"
base="${BENCH_DIR:-$repo/target}"
bucket="cairn-bench"

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

# The commit a result is filed under is the one the binary was built from: build it here unless a
# binary is named, and then say when that binary was built.
if [ -n "${1:-${CAIRN_BIN:-}}" ]; then
    cairn="${1:-$CAIRN_BIN}"
    case "$cairn" in /*) ;; *) cairn="$PWD/$cairn" ;; esac
    commit="$(commit_label "$repo" "$cairn")"
else
    cairn="$repo/target/release/cairn"
    echo "cargo build --release"
    (cd "$repo" && cargo build --release --quiet)
    commit="$(commit_label "$repo")"
fi

garage="${GARAGE_BIN:-$(command -v garage || true)}"
garage_note=""
if [ -z "$garage" ]; then
    garage_note="Garage skipped: no garage binary on PATH and GARAGE_BIN unset (install it with \`cargo install garage --locked\`, which this script does not do: it takes very long on 2 cores)."
elif [ ! -x "$garage" ]; then
    garage_note="Garage skipped: GARAGE_BIN=$garage is not executable."
    garage=""
fi
garage_fsync="${GARAGE_FSYNC:-false}"

mkdir -p "$base"
work="$(mktemp -d "$base/cairn-bench-run.XXXXXX")"
stamp="$(date -u '+%Y%m%dT%H%M%SZ')"
results="$base/bench-results/$stamp"
mkdir -p "$results"

mib_per_s() { python3 -c 'import sys; print(round(float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2])), 1))' "$1" "$2" "$3"; }

# Retries a tiny workload until the endpoint serves it: the store is up, the key works and
# (for a cluster) the gateway sees its data nodes.
warm_up() {
    local endpoint="$1" key="$2" secret="$3" deadline=$((SECONDS + 60))
    until AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" "$cairn" bench \
        --endpoint "$endpoint" --bucket "$bucket" --small-ops 4 --concurrency 1 small \
        >/dev/null 2>"$work/warm-up.log"; do
        if [ "$SECONDS" -gt "$deadline" ]; then
            echo "$endpoint never served a warm-up run:" >&2
            cat "$work/warm-up.log" >&2
            return 1
        fi
        sleep 0.5
    done
}

# `cairn bench all` against ENDPOINT; its JSON lines go to OUT, its summary to the terminal.
run_bench() {
    local endpoint="$1" key="$2" secret="$3" out="$4"
    warm_up "$endpoint" "$key" "$secret"
    # A failed run still leaves its JSON lines (with their error counts) for the report.
    if ! AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" "$cairn" bench \
        --endpoint "$endpoint" --bucket "$bucket" "${bench_args[@]}" all >"$out"; then
        echo "cairn bench against $endpoint failed" >&2
    fi
}

measure_dd() {
    local run="$1" file="$work/dd.bin" t0 t1 write read twice
    echo "== run $run: dd, $dd_mib MiB"
    t0=$(now)
    dd if=/dev/zero of="$file" bs=1M count="$dd_mib" conv=fsync status=none
    t1=$(now)
    write=$(mib_per_s "$dd_mib" "$t0" "$t1")
    # O_DIRECT, so the read comes from the disk and not from the page cache dd just filled.
    t0=$(now)
    dd if="$file" of=/dev/null bs=1M iflag=direct status=none
    t1=$(now)
    read=$(mib_per_s "$dd_mib" "$t0" "$t1")
    rm -f "$file"
    # Twice the size: what the cluster (R=2) writes for one object, past the disk's first burst.
    t0=$(now)
    dd if=/dev/zero of="$file" bs=1M count=$((2 * dd_mib)) conv=fsync status=none
    t1=$(now)
    twice=$(mib_per_s $((2 * dd_mib)) "$t0" "$t1")
    rm -f "$file"
    echo "dd write (conv=fsync) $write MiB/s, read (O_DIRECT) $read MiB/s, write of twice the size $twice MiB/s"
    printf '{"workload":"dd","write_mib_s":%s,"read_mib_s":%s,"write_twice_mib_s":%s}\n' \
        "$write" "$read" "$twice" >"$results/dd-$run.jsonl"
    # The CPU reference: one core's MD5, which a single-stream PUT cannot outrun.
    if ! "$cairn" bench md5 >>"$results/dd-$run.jsonl"; then
        echo "cairn bench md5 failed: no MD5 reference for run $run" >&2
    fi
    # OpenSSL's assembly MD5 as a second opinion: the reference is the faster of the two, so a
    # slow MD5 of our own cannot lower the bar.
    local openssl_kb
    if command -v openssl >/dev/null; then
        openssl_kb="$(openssl speed -seconds 3 -bytes 16384 md5 2>/dev/null |
            awk '$1 == "md5" { sub(/k$/, "", $2); print $2 }')"
        if [ -n "$openssl_kb" ]; then
            echo "openssl speed md5: ${openssl_kb} kB/s"
            printf '{"workload":"openssl_md5","md5_mib_s":%s}\n' \
                "$(python3 -c 'import sys; print(round(float(sys.argv[1]) * 1000 / 1048576, 1))' "$openssl_kb")" \
                >>"$results/dd-$run.jsonl"
        fi
    fi
}

measure_server() {
    local run="$1"
    local dir="$work/server-$run"
    echo "== run $run: cairn server"
    start_server "$dir"
    run_bench "$endpoint" "$key" "$secret" "$results/server-$run.jsonl"
    printf '{"workload":"rss","server_mib":%s}\n' "$(peak_rss_mib "$server_pid")" \
        >>"$results/server-$run.jsonl"
    stop_pid "$server_pid"
    rm -rf "$dir"
}

measure_cluster() {
    local run="$1"
    local dir="$work/cluster-$run"
    echo "== run $run: cairn cluster (3 data nodes, gateway R=2 W=2)"
    start_cluster "$dir"
    run_bench "$endpoint" "$key" "$secret" "$results/cluster-$run.jsonl"
    printf '{"workload":"rss","gateway_mib":%s,"datanode1_mib":%s,"datanode2_mib":%s,"datanode3_mib":%s}\n' \
        "$(peak_rss_mib "$gateway_pid")" "$(peak_rss_mib "${node_pids[0]}")" \
        "$(peak_rss_mib "${node_pids[1]}")" "$(peak_rss_mib "${node_pids[2]}")" \
        >>"$results/cluster-$run.jsonl"
    stop_cluster
    rm -rf "$dir"
}

measure_garage() {
    local run="$1"
    local dir="$work/garage-$run" rpc_port s3_port pid node out key secret
    echo "== run $run: Garage ($("$garage" --version 2>/dev/null | head -n 1 || echo "version unknown"))"
    mkdir -p "$dir"
    rpc_port="$(free_port)"
    s3_port="$(free_port)"
    cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
metadata_fsync = $garage_fsync
data_fsync = $garage_fsync
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(random_key)$(random_key)"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
EOF
    local g=("$garage" -c "$dir/garage.toml")
    RUST_LOG=garage=warn "${g[@]}" server >"$dir/garage.log" 2>&1 &
    pid=$!
    started_pids+=("$pid")
    local deadline=$((SECONDS + 60))
    # `node id` reads the node's key from its metadata directory, so it can answer before the
    # server listens for RPC; `status` goes through RPC, as the layout commands below do.
    until node="$("${g[@]}" node id -q 2>/dev/null)" && "${g[@]}" status >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -gt "$deadline" ]; then
            echo "Garage did not start:" >&2
            tail -n 30 "$dir/garage.log" >&2
            return 1
        fi
        sleep 0.2
    done
    "${g[@]}" layout assign -z dc1 -c 100G "${node%%@*}" >/dev/null
    "${g[@]}" layout apply --version 1 >/dev/null
    out="$("${g[@]}" key create bench-key)"
    key="$(awk -F': *' 'tolower($1) ~ /key id/ { print $2; exit }' <<<"$out")"
    secret="$(awk -F': *' 'tolower($1) ~ /secret key/ { print $2; exit }' <<<"$out")"
    if [ -z "$key" ] || [ -z "$secret" ]; then
        echo "cannot read the key from \`garage key create\`" >&2
        return 1
    fi
    "${g[@]}" bucket create "$bucket" >/dev/null
    "${g[@]}" bucket allow --read --write --owner "$bucket" --key bench-key >/dev/null
    run_bench "http://127.0.0.1:$s3_port" "$key" "$secret" "$results/garage-$run.jsonl"
    printf '{"workload":"rss","garage_mib":%s}\n' "$(peak_rss_mib "$pid")" \
        >>"$results/garage-$run.jsonl"
    stop_pid "$pid"
    rm -rf "$dir"
}

echo "work directory: $work ($(df --output=source,fstype "$work" | tail -n 1 | tr -s ' '))"
echo "results: $results"
[ -n "$garage_note" ] && echo "$garage_note"
for run in $(seq 1 "$runs"); do
    measure_dd "$run"
    measure_server "$run"
    measure_cluster "$run"
    if [ -n "$garage" ]; then measure_garage "$run"; fi
done

cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
ram_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
disk="$(df --output=source,fstype "$base" | tail -n 1 | tr -s ' ' | sed 's/^ //')"
machine="$(nproc) CPU (${cpu:-unknown}), ${ram_gib} GiB RAM, $disk, Linux $(uname -r)"
garage_version=""
if [ -n "$garage" ]; then
    garage_version="$("$garage" --version 2>/dev/null | head -n 1 || true)"
fi

report="$results/report.md"
python3 - "$results" "$runs" >"$report" <<'EOF'
import json, os, statistics, sys

results, runs = sys.argv[1], int(sys.argv[2])
targets = ["dd", "server", "cluster", "garage"]
data = {}  # target -> workload -> field -> [values per run]
for target in targets:
    for run in range(1, runs + 1):
        path = os.path.join(results, f"{target}-{run}.jsonl")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                fields = data.setdefault(target, {}).setdefault(record["workload"], {})
                # A failed figure is null: it has no value to take the median of.
                for name, value in record.items():
                    if name != "workload" and value is not None:
                        fields.setdefault(name, []).append(value)

def median(target, workload, field):
    values = data.get(target, {}).get(workload, {}).get(field)
    return statistics.median(values) if values else None

def fmt(x):
    if x is None:
        return "—"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"

def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "—"

def units(field):
    return field.endswith(("_mib_s", "_ops_s", "_ms"))

errors = sum(
    sum(fields.get("errors", []))
    for workloads in data.values()
    for fields in workloads.values()
)
print(f"dd (physical reference, median of {runs}): write with conv=fsync "
      f"{fmt(median('dd', 'dd', 'write_mib_s'))} MiB/s, read with O_DIRECT "
      f"{fmt(median('dd', 'dd', 'read_mib_s'))} MiB/s; write of twice that size "
      f"{fmt(median('dd', 'dd', 'write_twice_mib_s'))} MiB/s. One core's MD5: "
      f"{fmt(median('dd', 'md5', 'md5_mib_s'))} MiB/s (`cairn bench md5`), "
      f"{fmt(median('dd', 'openssl_md5', 'md5_mib_s'))} MiB/s (`openssl speed md5`).")
print()
print(f"Medians of {runs} runs; `_ms` figures are better lower, all others higher.")
print()
print("| workload | figure | cairn server | cluster R=2 | Garage | server / Garage | cluster / server |")
print("|---|---|---|---|---|---|---|")
for workload in ["large", "range", "small", "list"]:
    fields = data.get("server", {}).get(workload, {})
    for field in fields:
        if not units(field):
            continue
        s = median("server", workload, field)
        c = median("cluster", workload, field)
        g = median("garage", workload, field)
        print(f"| {workload} | {field} | {fmt(s)} | {fmt(c)} | {fmt(g)} | {ratio(s, g)} | {ratio(c, s)} |")
print()
print("Peak RSS (VmHWM, MiB; median / max over runs):")
print()
print("| process | median | max |")
print("|---|---|---|")
labels = {"server": "cairn server", "cluster": "cluster", "garage": "Garage"}
for target in ["server", "cluster", "garage"]:
    for field, values in data.get(target, {}).get("rss", {}).items():
        name = field.removesuffix("_mib")
        label = labels[target] if name == target else f"{labels[target]} {name}"
        print(f"| {label} | {fmt(statistics.median(values))} | {fmt(max(values))} |")
print()

# Each target of the performance issue, judged on the medians above.
def m(target, workload, field):
    return median(target, workload, field)

rows = []
def target_row(name, value, bound, ok, note=""):
    if value is None:
        rows.append(f"| {name} | — | {bound:.2f} | not measured | {note} |")
        return
    rows.append(f"| {name} | {value:.3f} | {bound:.2f} | {'met' if ok else 'MISSED'} | {note} |")

def vs_garage(name, workload, field, at_least):
    s, g = m("server", workload, field), m("garage", workload, field)
    target_row(name, s / g if s is not None and g else None, at_least,
               s is not None and g and s / g >= at_least)

vs_garage("large PUT / Garage", "large", "put_mib_s", 1.5)
vs_garage("multipart PUT / Garage", "large", "multipart_put_mib_s", 1.5)
vs_garage("GET / Garage", "large", "get_mib_s", 1.3)
vs_garage("ranged GET / Garage", "large", "ranged_get_mib_s", 1.3)
dd_write = m("dd", "dd", "write_mib_s")
# One core's MD5 rate: the faster of ours and OpenSSL's.
md5 = max((r for r in [m("dd", "md5", "md5_mib_s"), m("dd", "openssl_md5", "md5_mib_s")]
           if r is not None), default=None)
put = m("server", "large", "put_mib_s")
if dd_write and md5 and put is not None:
    lower = min(dd_write, md5)
    target_row("single PUT / min(dd write, one core's MD5)", put / lower, 0.8, put / lower >= 0.8,
               f"dd {fmt(dd_write)}, MD5 {fmt(md5)} MiB/s")
else:
    target_row("single PUT / min(dd write, one core's MD5)", None, 0.8, False)
vs_garage("64 KiB reads c=1 / Garage", "range", "c1_ops_s", 3.0)
vs_garage("64 KiB reads c=16 / Garage", "range", "c16_ops_s", 3.0)
p99 = m("server", "range", "c1_p99_ms")
# The one bound that is a ceiling: the p99 must stay under it.
target_row("64 KiB reads c=1 p99, ms (under the bound)", p99, 10.0, p99 is not None and p99 < 10.0)
vs_garage("small PUT / Garage", "small", "put_ops_s", 2.0)
vs_garage("small GET / Garage", "small", "get_ops_s", 4.0)
for field in ["flat_ms", "delimiter_ms", "prefix_ms"]:
    s, g = m("server", "list", field), m("garage", "list", field)
    # Time: Garage's over ours, so that 1.00 or more is "no slower".
    target_row(f"LIST {field.removesuffix('_ms')}: Garage time / ours", g / s if s and g else None,
               1.0, s is not None and g is not None and s <= g)
dd_twice = m("dd", "dd", "write_twice_mib_s")
for field in ["put_mib_s", "multipart_put_mib_s", "get_mib_s", "ranged_get_mib_s"]:
    s, c = m("server", "large", field), m("cluster", "large", field)
    note = ""
    if "put" in field and dd_twice and s:
        # The cluster writes every byte twice on this one disk. dd writes through the page cache
        # and Cairn's large chunks do not, so half dd's rate is a reference, not a bound.
        note = (f"dd reference: (dd write of 2 objects / 2) / server = {dd_twice / 2 / s:.2f}; "
                f"cluster / that = {c / (dd_twice / 2):.2f}" if c is not None else "")
    target_row(f"cluster / server, {field}", c / s if c is not None and s else None, 0.6,
               c is not None and s and c / s >= 0.6, note)
print("Targets (medians; for LIST, higher is better here too):")
print()
print("| target | measured | bound | verdict | note |")
print("|---|---|---|---|---|")
for row in rows:
    print(row)
print()
print(f"Errors over all runs: {errors}.")
EOF

# The plot is an extra: without matplotlib, or if drawing fails, the run goes on without it.
plot=""
if python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib; then
    if python3 "$repo/bench/plot.py" "$results" "$runs" "$results/plot.png"; then
        plot="$results/plot.png"
    else
        echo "bench/plot.py failed: no plot" >&2
    fi
else
    echo "matplotlib is missing and \`pip install matplotlib\` failed: no plot" >&2
fi

{
    echo
    echo "### $(date -u '+%Y-%m-%d %H:%M') UTC — commit $commit"
    echo
    echo "Machine: $machine. Runs: $runs per target, interleaved (dd, server, cluster, Garage)."
    echo "\`cairn bench all\` with default sizes${BENCH_ARGS:+ and \`$BENCH_ARGS\`}."
    if [ -n "$garage" ]; then
        echo "Garage: $garage_version, single node, replication factor 1, LMDB, metadata_fsync = data_fsync = $garage_fsync."
    else
        echo "$garage_note"
    fi
    echo
    cat "$report"
    if [ -n "$plot" ] && [ "${BENCH_RECORD:-1}" != "0" ]; then
        echo
        echo "![large and small workloads](bench/$stamp.png)"
    fi
} >"$results/section.md"

echo
cat "$results/section.md"
if [ "${BENCH_RECORD:-1}" != "0" ]; then
    if [ -n "$plot" ]; then
        mkdir -p "$repo/docs/bench"
        cp "$plot" "$repo/docs/bench/$stamp.png"
    fi
    python3 - "$repo/docs/BENCHMARKS.md" "$results/section.md" <<'PY'
import sys
doc, section = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
begin, end = "<!-- run.sh:begin -->\n", "<!-- run.sh:end -->"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + section.rstrip("\n") + "\n" + end + tail)
PY
    echo
    echo "recorded in docs/BENCHMARKS.md${plot:+ (plot: docs/bench/$stamp.png)}; raw JSON lines in $results"
fi
if grep -q '"errors":[1-9]' "$results"/*.jsonl; then
    echo "some requests failed or read wrong data; see the JSON lines in $results" >&2
    exit 1
fi
