#!/usr/bin/env bash
# The metadata failover under a real HA manager: a PostgreSQL primary and a synchronous standby
# managed by Patroni (leader lease in a one-member etcd, ttl 10 s, loop_wait 1 s), 3 data nodes
# and 2 gateways given libpq's multi-host URL with target_session_attrs=read-write, 6 clients
# writing and reading back. The primary's node (Patroni, the postmaster and its backends) is
# SIGKILLed; Patroni promotes the standby when the lease expires.
#
#   bench/ha.sh [RUNS]          (default 1)
#
# Each run prints the figures tests/metadata_failover.rs prints for the manual promotion: how
# long until a write was acknowledged again, the requests that failed (503) and the acknowledged
# writes lost, which must be 0 (the run fails otherwise, as it does on any 500 or a request
# longer than 12 s). Installs Patroni and etcd with apt-get when missing. CI runs the same test once
# (tests/all.sh); this runs it on its own, about 45 s per run.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-1}"

missing=()
command -v patroni >/dev/null 2>&1 || missing+=(patroni)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing with apt-get: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
echo "using $(patroni --version 2>&1), $(etcd --version | head -n 1)," \
    "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

cd "$repo"
for run in $(seq 1 "$runs"); do
    echo "run $run of $runs"
    cargo test --release --test metadata_failover -- --nocapture --test-threads 1 \
        gateways_follow_patroni 2>&1 | grep -E 'failover \(|test result|panicked|FAILED'
done
