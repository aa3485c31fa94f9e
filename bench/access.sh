#!/usr/bin/env bash
# What access control costs: the `small` workload on one `cairn server`, run as the admin key
# (no policy to evaluate) and as a key of another account that carries everything a decision can
# read: a key policy (`readwrite`), an attached identity policy with an Allow and a Deny, and a
# bucket policy with a condition on the bucket it writes to, which it does not own (so neither the
# admin nor the owner shortcut applies). Interleaved rounds; prints each figure's median for both
# and their ratio. Not run by CI.
#
#   bench/access.sh [CAIRN]            (default target/release/cairn)
#   BENCH_RUNS (default 3), BENCH_ARGS (default "--small-ops 4000")
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cairn="$(realpath "${1:-$repo/target/release/cairn}")"
runs="${BENCH_RUNS:-3}"
read -r -a bench_args <<<"${BENCH_ARGS:---small-ops 4000}"
base="${BENCH_DIR:-$repo/target}"

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

mkdir -p "$base"
work="$(mktemp -d "$base/cairn-access.XXXXXX")"
results="$work/results"
mkdir -p "$results"
dir="$work/server"
start_server "$dir"
admin_key="$key" admin_secret="$secret"
admin() { "$cairn" admin --meta "sqlite://$dir/data/meta.db" "$@"; }

admin user create owner --json >/dev/null
admin user create app --json >/dev/null
cat >"$work/identity.json" <<'JSON'
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::bench-shared", "arn:aws:s3:::bench-shared/*"]},
  {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}]}
JSON
admin policy create bench-app "$work/identity.json" >/dev/null
admin policy attach bench-app --user app >/dev/null
app_json="$(admin key create app-key --user app --policy readwrite --json)"
app_key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])' <<<"$app_json")"
app_secret="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret_access_key"])' <<<"$app_json")"
owner_json="$(admin key create owner-key --user owner --json)"
owner_key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])' <<<"$owner_json")"
owner_secret="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret_access_key"])' <<<"$owner_json")"

# The owner creates the shared bucket and lets the app account in through the bucket policy.
app_id="$(admin user list --json | python3 -c 'import json,sys; print([u["id"] for u in json.load(sys.stdin) if u["name"]=="app"][0])')"
python3 - "$endpoint" "$owner_key" "$owner_secret" "$app_id" <<'PY'
import json, sys, boto3
endpoint, key, secret, app = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key,
                  aws_secret_access_key=secret, region_name="us-east-1")
s3.create_bucket(Bucket="bench-shared")
s3.put_bucket_policy(Bucket="bench-shared", Policy=json.dumps({
    "Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [app]}, "Action": "s3:*",
        "Resource": ["arn:aws:s3:::bench-shared", "arn:aws:s3:::bench-shared/*"],
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}))
PY
sleep 2

for run in $(seq 1 "$runs"); do
    echo "== run $run"
    AWS_ACCESS_KEY_ID="$admin_key" AWS_SECRET_ACCESS_KEY="$admin_secret" "$cairn" bench \
        --endpoint "$endpoint" --bucket bench-admin "${bench_args[@]}" small >>"$results/admin-$run.jsonl"
    AWS_ACCESS_KEY_ID="$app_key" AWS_SECRET_ACCESS_KEY="$app_secret" "$cairn" bench \
        --endpoint "$endpoint" --bucket bench-shared "${bench_args[@]}" small >>"$results/policy-$run.jsonl"
done
stop_pid "$server_pid"

python3 - "$results" <<'PY'
import glob, json, statistics, sys
results = sys.argv[1]
def medians(kind):
    values = {}
    for path in glob.glob(f"{results}/{kind}-*.jsonl"):
        for line in open(path):
            row = json.loads(line)
            for name, value in row.items():
                if isinstance(value, (int, float)) and name.split("_")[0] in ("put", "get", "delete"):
                    values.setdefault(name, []).append(value)
    return {name: statistics.median(v) for name, v in values.items()}
admin, policy = medians("admin"), medians("policy")
print("\n| figure | admin key | policy-limited key, bucket policy | ratio |\n|---|---|---|---|")
for name in sorted(admin):
    if name in policy and admin[name]:
        print(f"| {name} | {admin[name]:.1f} | {policy[name]:.1f} | {policy[name] / admin[name]:.2f} |")
PY
rm -rf "$work"
