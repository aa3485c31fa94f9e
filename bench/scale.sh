#!/usr/bin/env bash
# Does a request's cost depend on the size of what it lands in? Two cases, each on a fresh
# `cairn server` (SQLite metadata, chunks on local disk) on 127.0.0.1, timed with
# `cairn bench probe` (one request at a time: HEAD, a 64 KiB ranged GET at the object's start and
# one at its end, a ListObjectsV2 page of 1000 keys starting after the object's key):
#
#   a. an object of SCALE_OBJECT (400MiB) with `--chunk-size 4KiB`: 102,400 chunks, written by a
#      single PutObject. Targets: the range at the end costs the same as at the start (±20 %),
#      HEAD under 5 ms.
#   b. a bucket of 1,000 objects, then one of SCALE_KEYS (1,000,000), probed at a 4 KiB object in
#      the middle of the key space. The other objects are created in bulk in the metadata store
#      (empty objects, one SQL statement, server stopped), not by PUTs. Target: every probe within
#      2x of the same probe on the 1,000-object bucket. A page listed from the middle of 1,000
#      keys holds 499 of them, against 1000 in the large bucket, so the listing is judged by its
#      time per key listed (its time per page is shown beside it).
#
# Prints the probes' p50/p99 and a Markdown table with the verdicts; the JSON lines stay under
# BENCH_DIR/bench-results/scale-DATE/. A benchmark, not a test: not run by CI.
#
#   bench/scale.sh [PATH/TO/cairn]     (default: target/release/cairn; this script does not build)
#
# Environment:
#   BENCH_DIR     where the stores write (default target/)
#   SCALE_OBJECT  size of case a's object (default 400MiB)
#   SCALE_KEYS    objects in case b's large bucket (default 1000000)
#   PROBE_OPS     requests of each kind per probe (default 200)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
base="${BENCH_DIR:-$repo/target}"
object="${SCALE_OBJECT:-400MiB}"
keys="${SCALE_KEYS:-1000000}"
probe_ops="${PROBE_OPS:-200}"
small_keys=1000
bucket="scale"

cairn="${1:-$repo/target/release/cairn}"
case "$cairn" in /*) ;; *) cairn="$PWD/$cairn" ;; esac
if [ ! -x "$cairn" ]; then
    echo "no cairn binary at $cairn: run \`cargo build --release\` or name one" >&2
    exit 2
fi
command -v sqlite3 >/dev/null || { echo "case b needs the sqlite3 command (apt-get install sqlite3)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
commit="$(commit_label "$repo" "$cairn")"
mkdir -p "$base"
work="$(mktemp -d "$base/cairn-bench-scale.XXXXXX")"
results="$base/bench-results/scale-$(date -u '+%Y%m%dT%H%M%SZ')"
mkdir -p "$results"

# `cairn bench probe` against the running server; its JSON line goes to OUT.
probe() {
    local out="$1"
    shift
    AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" "$cairn" bench \
        --endpoint "$endpoint" --bucket "$bucket" "$@" probe >"$out"
}

# FIELD of the JSON line in FILE.
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

echo "== a: one $object object of 4 KiB chunks"
start_server "$work/a" --chunk-size 4KiB
probe "$results/chunks.jsonl" --probe-key big/object --probe-size "$object" --probe-ops "$probe_ops"
chunks="$(sqlite3 "$work/a/data/meta.db" 'SELECT count(*) FROM chunks')"
stop_pid "$server_pid"
rm -rf "$work/a"

# Case b: N empty objects obj/0000000 .. spread evenly over the same key range, so the probe's
# object (4 KiB, written by the probe) sits in the middle: obj/0500000-probe.
probe_key="obj/0500000-probe"
bucket_of() {
    local n="$1" name="$2" dir="$work/$2" step
    echo "== b: a bucket of $n objects"
    start_server "$dir"
    # Creates the bucket and the probe's object, then stops so the bulk rows go in offline.
    probe "$results/$name-warm.jsonl" --probe-key "$probe_key" --probe-ops 1
    stop_pid "$server_pid"
    step=$((1000000 / n))
    sqlite3 "$dir/data/meta.db" <<EOF
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $n)
INSERT INTO objects (bucket, key, id, size, etag, last_modified_ms, headers)
SELECT '$bucket', printf('obj/%07d', i * $step), printf('00000000-0000-4000-8000-%012d', i), 0,
       'd41d8cd98f00b204e9800998ecf8427e', CAST(strftime('%s', 'now') AS INTEGER) * 1000, '{}'
FROM n;
EOF
    echo "objects in the bucket: $(sqlite3 "$dir/data/meta.db" "SELECT count(*) FROM objects WHERE bucket = '$bucket'")"
    mv "$dir/server.log" "$dir/server-before.log"
    start_server "$dir"
    probe "$results/$name.jsonl" --probe-key "$probe_key" --probe-ops "$probe_ops"
    stop_pid "$server_pid"
    rm -rf "$dir"
}
bucket_of "$small_keys" keys-small
bucket_of "$keys" keys-large

python3 - "$results" "$object" "$chunks" "$keys" "$commit" <<'EOF'
import json, sys, time

results, obj, chunks, keys, commit = sys.argv[1:]
load = lambda name: json.load(open(f"{results}/{name}.jsonl"))
a, small, large = load("chunks"), load("keys-small"), load("keys-large")
kinds = [("head", "HEAD"), ("first_range", "GET first 64 KiB"), ("last_range", "GET last 64 KiB"),
         ("list_after", "ListObjectsV2 page after the key")]
errors = a["errors"] + small["errors"] + large["errors"]
date = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
print(f"\n### {date} UTC — commit {commit}\n")
print(f"a. One {obj} object in {int(chunks):,} chunks of 4 KiB (single PutObject at "
      f"{a.get('put_mib_s', 0):.1f} MiB/s); {a['ops']} requests of each kind, one at a time:\n")
print("| request | p50 ms | p99 ms |")
print("|---|---|---|")
for kind, label in kinds[:3]:
    print(f"| {label} | {a[kind + '_p50_ms']:.2f} | {a[kind + '_p99_ms']:.2f} |")
ratio = a["last_range_p50_ms"] / a["first_range_p50_ms"]
print(f"\nEnd / start (p50): {ratio:.2f}, target 0.8–1.2: {'met' if 0.8 <= ratio <= 1.2 else 'MISSED'}. "
      f"HEAD p99 {a['head_p99_ms']:.2f} ms, target under 5 ms: {'met' if a['head_p99_ms'] < 5 else 'MISSED'}.\n")
print(f"b. The same probes at a 4 KiB object in the middle of a bucket of 1,000 objects and of "
      f"{int(keys):,} objects:\n")
print(f"| request | 1,000: p50 / p99 ms | {int(keys):,}: p50 / p99 ms | ratio (p50) | within 2x |")
print("|---|---|---|---|---|")
for kind, label in kinds:
    if kind == "last_range":
        continue
    s50, s99, l50, l99 = (d[f"{kind}_{p}_ms"] for d in (small, large) for p in ("p50", "p99"))
    r = l50 / s50
    shown = f"{r:.2f}"
    if kind == "list_after":
        # Per key listed: the pages hold different numbers of keys (see the header).
        per_page, r = r, r * small["list_keys"] / large["list_keys"]
        shown = f"{r:.2f} per key ({per_page:.2f} per page)"
    label = label.replace("first 64 KiB", "of the 4 KiB object")
    print(f"| {label} | {s50:.2f} / {s99:.2f} | {l50:.2f} / {l99:.2f} | {shown} | {'yes' if r <= 2 else 'NO'} |")
print(f"\nKeys per listed page: {small['list_keys']} (1,000-object bucket), {large['list_keys']} "
      f"({int(keys):,}). Errors: {errors}.")
EOF
echo "JSON lines: $results"
