#!/usr/bin/env bash
# The chaos test of tests/chaos.rs run longer: 5 data nodes, R=3, W=2, 2 gateways, 5 client
# workers over 40 keys, data nodes and gateways SIGKILLed and restarted and bits flipped in chunk
# files for SECONDS (default 600), then convergence and the check of every key.
#
#   bench/chaos.sh [SECONDS] [sqlite|postgres]      (default: 600 sqlite)
#
# PostgreSQL needs CAIRN_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres).
# CAIRN_CHAOS_SEED replays a run's choices; CAIRN_CHAOS_CONVERGE_SECONDS bounds the convergence
# (300 s here: a longer run leaves a longer backlog of garbage to collect). Prints the chaos log and the figures (acked writes and
# deletes, reads verified and unavailable, 500s, kills, bit flips, time to converge); exits
# non-zero when the check fails. Not run by CI (CI runs 60 s per store through cargo test).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-600}"
store="${2:-sqlite}"
case "$store" in sqlite | postgres) ;; *)
    echo "usage: $0 [SECONDS] [sqlite|postgres]" >&2
    exit 2
    ;;
esac

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit-dirty"
fi
echo "chaos: commit $commit, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"

cd "$repo"
start="$(date +%s)"
CAIRN_CHAOS_SECONDS="$seconds" CAIRN_CHAOS_CONVERGE_SECONDS="${CAIRN_CHAOS_CONVERGE_SECONDS:-300}" \
    cargo test --release --test chaos -- --nocapture --exact \
    "$store::chaos_under_load"
echo "chaos: wall time $(($(date +%s) - start)) s"
