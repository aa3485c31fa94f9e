#!/usr/bin/env bash
# Every test of Cairn, in one command, on a fresh Debian machine with the Rust toolchain:
#
#   tests/all.sh
#
# Installs what is missing (a C compiler, curl, python3, openssl, rclone, s3cmd and iproute2 with
# apt-get; aws-cli and boto3 with pip into a virtual environment under target/ when they are not
# already importable),
# then runs, in order:
#   cargo fmt --check
#   cargo build --release
#   cargo clippy --release --all-targets -- -D warnings
#   cargo test --release          (unit tests, the Rust integration tests in tests/, the metadata
#                                  conformance suite and the cluster tests on SQLite and PostgreSQL:
#                                  CAIRN_TEST_POSTGRES_URL when set, else a throwaway server from
#                                  the postgresql package, installed if missing)
#   compat/run.sh                 (aws-cli, boto3, resumed transfers, conditional writes and rclone
#                                  against the release binary, over HTTP and over HTTPS)
# Every step runs even when an earlier one failed, except that the tests need the build. Prints a
# summary; the last line counts the compat checks: `N passed, M failed`. Exits non-zero on any
# failure.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# ------------------------------------------------------------------------------ prerequisites

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root to run: $*" >&2
        return 1
    fi
}
apt_updated=""
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: $* (no apt-get here; install them by hand)" >&2
        return 1
    fi
    say "installing with apt-get: $*"
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain first (https://rustup.rs)" >&2
    exit 1
fi
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v cmp >/dev/null 2>&1 || missing+=(diffutils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
# compat/s3cmd.sh: s3cmd setacl --acl-public followed by an anonymous curl.
command -v s3cmd >/dev/null 2>&1 || missing+=(s3cmd)
# tests/crash_consistency.rs: a disk that drops unsynced writes (loop devices, ext4, fsfreeze).
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || missing+=(mount)
command -v fsfreeze >/dev/null 2>&1 || missing+=(util-linux)
# tests/metadata_failover.rs runs a primary and a standby of its own from the package's binaries.
compgen -G '/usr/lib/postgresql/*/bin/pg_basebackup' >/dev/null || missing+=(postgresql)
# and its Patroni variant, a real HA manager with its leader lease in etcd.
command -v patroni >/dev/null 2>&1 || missing+=(patroni)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# ip and tc, for tests/partition.rs's network namespaces and link faults.
{ command -v ip && command -v tc; } >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

if command -v rustup >/dev/null 2>&1; then
    components=()
    cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
    if [ "${#components[@]}" -gt 0 ]; then rustup component add "${components[@]}"; fi
fi

# aws-cli and boto3: the installed ones when present; otherwise pip installs them into a virtual
# environment (Debian's own python refuses `pip install` outside one).
clients_present() { command -v aws >/dev/null 2>&1 && python3 -c 'import boto3' >/dev/null 2>&1; }
venv="$repo/target/compat-venv"
if ! clients_present; then
    if [ -x "$venv/bin/python3" ]; then export PATH="$venv/bin:$PATH"; fi
fi
if ! clients_present; then
    say "installing aws-cli and boto3 with pip into $venv"
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv python3-pip
    fi
    mkdir -p "$repo/target"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check awscli boto3
    export PATH="$venv/bin:$PATH"
    clients_present || {
        echo "aws-cli or boto3 still missing after pip install" >&2
        exit 1
    }
fi
echo "using $(aws --version 2>&1), boto3 $(python3 -c 'import boto3; print(boto3.__version__)')" \
    "and $(rclone version 2>/dev/null | head -n 1)"

# PostgreSQL for the tests that need it: CAIRN_TEST_POSTGRES_URL, or a throwaway server.
# shellcheck source=tests/postgres.sh
source "$repo/tests/postgres.sh"
ensure_postgres

# ---------------------------------------------------------------------------------------- steps

names=()
results=()
seconds=()
failures=0
step() { # NAME COMMAND...
    local name=$1
    shift
    say "$name"
    local start=$SECONDS
    if "$@"; then
        results+=(PASS)
    else
        results+=(FAIL)
        failures=$((failures + 1))
    fi
    names+=("$name")
    seconds+=($((SECONDS - start)))
}
skip() {
    say "$1: skipped ($2)"
    names+=("$1")
    results+=(SKIP)
    seconds+=(0)
    failures=$((failures + 1))
}

compat_summary="$(mktemp "${TMPDIR:-/tmp}/cairn-compat-summary.XXXXXX")"
trap 'rm -f "$compat_summary"; stop_throwaway_postgres' EXIT

compat_step="compat/run.sh (aws-cli, boto3, resume, conditional, rclone, boto3 access control, s3cmd; HTTP and HTTPS)"
step "cargo fmt --check" cargo fmt --check
step "cargo build --release" cargo build --release
build_ok="${results[-1]}"
step "cargo clippy --release --all-targets -- -D warnings" \
    cargo clippy --release --all-targets -- -D warnings
if [ "$build_ok" == PASS ]; then
    step "cargo test --release" cargo test --release --no-fail-fast
    step "$compat_step" \
        env CAIRN_COMPAT_SUMMARY="$compat_summary" bash "$repo/compat/run.sh" "$repo/target/release/cairn"
else
    skip "cargo test --release" "the build failed"
    skip "$compat_step" "the build failed"
fi

# -------------------------------------------------------------------------------------- summary

say "summary"
for i in "${!names[@]}"; do
    printf '  %-4s  %5ss  %s\n' "${results[$i]}" "${seconds[$i]}" "${names[$i]}"
done
compat_passed=0
compat_failed=0
if [ -s "$compat_summary" ]; then read -r compat_passed compat_failed <"$compat_summary"; fi
echo
if [ "$failures" -eq 0 ]; then
    echo "all steps passed"
else
    echo "$failures step(s) failed or were skipped"
fi
echo "compat checks:"
echo "$compat_passed passed, $compat_failed failed"
[ "$failures" -eq 0 ]
