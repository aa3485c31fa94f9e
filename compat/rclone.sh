#!/usr/bin/env bash
# rclone (Debian's package) against a running Cairn: mkdir, copy, sync, check, md5sum, cat with
# --offset/--count, lsf -R, size, copy back down, delete, rmdir, with a tree holding a 300 MiB random
# file, small files, an empty one and nested directories. The remote is configured the way a user
# would for an S3-compatible store: provider Other, path style, endpoint, keys, region us-east-1.
# Started by compat/run.sh, over HTTP and over HTTPS, which provides the server and the environment:
#   CAIRN_ENDPOINT, CAIRN_COMPAT_WORK, CAIRN_COMPAT_COUNTS, AWS_* variables, and over HTTPS
#   CAIRN_CA_BUNDLE (given to rclone as --ca-cert).
# rclone uploads files above --s3-upload-cutoff as multipart uploads of --s3-chunk-size parts: here
# 64 MiB and 32 MiB, so the 300 MiB file goes up as 10 parts (and the server cuts it into 300 chunks)
# while the others are single PUTs. A multipart ETag is no MD5, so rclone stores the MD5 as the
# X-Amz-Meta-Md5chksum metadata and `check` compares that.
set -euo pipefail

: "${CAIRN_ENDPOINT:?run through compat/run.sh}"
work="${CAIRN_COMPAT_WORK:?run through compat/run.sh}"
ep="$CAIRN_ENDPOINT"
readonly MiB=1048576
readonly remote=cairn:rclone-bucket
readonly big_size=$((300 * MiB))
src="$work/src"
mkdir -p "$work/out"

# shellcheck source=compat/lib.sh
source "$(dirname "$0")/lib.sh"

if ! command -v rclone >/dev/null 2>&1; then
    check "rclone is installed (tests/all.sh installs Debian's package)" false
    report rclone
    exit 1
fi

cat >"$work/rclone.conf" <<EOF
[cairn]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $ep
region = us-east-1
force_path_style = true
EOF

# rclone with a deadline and without retries: a server that answers correctly needs none, and a
# retried failure would go unnoticed. The AWS SDK inside rclone cannot use AWS_CA_BUNDLE with
# rclone's own HTTP transport ("LoadCustomCABundleError"), so the certificate goes in --ca-cert.
rclone_() {
    local tls=()
    if [ -n "${CAIRN_CA_BUNDLE:-}" ]; then tls=(--ca-cert "$CAIRN_CA_BUNDLE"); fi
    env -u AWS_CA_BUNDLE timeout --kill-after=5 300 rclone --config "$work/rclone.conf" \
        --retries 1 --low-level-retries 1 --s3-upload-cutoff 64M --s3-chunk-size 32M \
        "${tls[@]}" "$@"
}
aws_() { timeout --kill-after=5 120 aws --endpoint-url "$ep" "$@"; }
# The local tree as `rclone lsf -R` lists it: files, then directories with a trailing slash.
local_listing() {
    (cd "$1" && { find . -type f; find . -mindepth 1 -type d -printf '%p/\n'; }) | sed 's|^\./||' |
        LC_ALL=C sort
}
remote_listing() { rclone_ lsf -R "$1" | LC_ALL=C sort; }
local_md5s() { (cd "$1" && find . -type f -exec md5sum {} +) | sed 's|  \./|  |' | LC_ALL=C sort -k2; }
remote_md5s() { rclone_ md5sum "$1" | LC_ALL=C sort -k2; }
# Lines of an `rclone -v` log that report one kind of action ("Copied", "Deleted").
count_actions() { grep -c "INFO  : .*: $2" "$1" || true; }

mkdir -p "$src/sub/deep" "$src/other dir"
head -c "$big_size" /dev/urandom >"$src/big.bin"
head -c 300000 /dev/urandom >"$src/sub/b.bin"
head -c $((MiB + 17)) /dev/urandom >"$src/sub/deep/c.bin"
printf 'hello from rclone\n' >"$src/a.txt"
printf 'spaces and é\n' >"$src/other dir/name with é.txt"
: >"$src/empty.txt"
# Older than any upload, so that a sync sees no change until the test makes one.
find "$src" -type f -exec touch -d '2020-01-01 00:00:00' {} +

# Outputs are captured before they are searched: `rclone ... | grep -q` would fail under pipefail
# whenever grep matched and quit before rclone finished writing (SIGPIPE).
t_version() {
    out=$(rclone_ version)
    expect_contains "$out" "rclone v"
}
t_mkdir() {
    rclone_ mkdir "$remote"
    out=$(rclone_ lsd cairn:)
    grep -q ' rclone-bucket$' <<<"$out" || fail_with "bucket not listed by lsd: $out"
}
t_copy() {
    rclone_ copy -v "$src" "$remote/tree" 2>"$work/out/copy.log"
    expect_eq "$(count_actions "$work/out/copy.log" Copied)" 6 "files copied"
}
t_multipart() {
    head=$(aws_ s3api head-object --bucket rclone-bucket --key tree/big.bin)
    python3 - "$head" "$big_size" "$(md5sum "$src/big.bin" | cut -d' ' -f1)" <<'EOF'
import base64, json, sys
head, size, md5 = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if head["ContentLength"] != size:
    sys.exit(f"ContentLength {head['ContentLength']}, expected {size}")
if not head["ETag"].endswith('-10"'):
    sys.exit(f"ETag {head['ETag']} is not that of a 10-part upload")
stored = head.get("Metadata", {}).get("md5chksum", "")
if base64.b64decode(stored).hex() != md5:
    sys.exit(f"md5chksum metadata {stored!r} is not the file's MD5 {md5}")
EOF
    small=$(aws_ s3api head-object --bucket rclone-bucket --key tree/sub/deep/c.bin)
    expect_eq "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["ETag"])' "$small")" \
        "\"$(md5sum "$src/sub/deep/c.bin" | cut -d' ' -f1)\"" "ETag of a single-PUT file"
}
t_lsf() { expect_eq "$(remote_listing "$remote/tree")" "$(local_listing "$src")" "lsf -R"; }
t_md5sum() { expect_eq "$(remote_md5s "$remote/tree")" "$(local_md5s "$src")" "MD5s"; }
t_check() {
    rclone_ check "$src" "$remote/tree" 2>"$work/out/check.log"
    log=$(cat "$work/out/check.log")
    expect_contains "$log" "0 differences found"
    expect_contains "$log" "6 matching files"
    expect_not_contains "$log" "hashes could not be checked"
}
t_size() {
    out=$(rclone_ size --json "$remote/tree")
    got=$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["count"], d["bytes"])' "$out")
    expect_eq "$got" "6 $(find "$src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')" \
        "count and bytes"
}
t_cat() { # OFFSET COUNT
    rclone_ cat --offset "$1" --count "$2" "$remote/tree/big.bin" >"$work/out/cat"
    dd if="$src/big.bin" of="$work/out/cat.want" bs=1M iflag=skip_bytes,count_bytes \
        skip="$1" count="$2" status=none
    cmp "$work/out/cat.want" "$work/out/cat"
    expect_eq "$(stat -c %s "$work/out/cat")" "$(($1 + $2 > big_size ? big_size - $1 : $2))" "bytes read"
}
t_cat_small() {
    rclone_ cat "$remote/tree/other dir/name with é.txt" | cmp - "$src/other dir/name with é.txt"
}
t_copy_down() {
    rclone_ copy "$remote/tree" "$work/down"
    diff -r "$src" "$work/down"
    rm -rf "$work/down"
}
t_sync_noop() {
    rclone_ sync -v "$src" "$remote/tree" 2>"$work/out/sync0.log"
    expect_eq "$(count_actions "$work/out/sync0.log" Copied)" 0 "files copied by a sync with nothing to do"
    expect_eq "$(count_actions "$work/out/sync0.log" Deleted)" 0 "files deleted"
}
t_sync_changes() {
    printf 'changed, and longer than before\n' >"$src/a.txt"
    rm "$src/sub/b.bin"
    head -c 5000 /dev/urandom >"$src/sub/deep/new.bin"
    rclone_ sync -v "$src" "$remote/tree" 2>"$work/out/sync1.log"
    expect_eq "$(count_actions "$work/out/sync1.log" Copied)" 2 "files copied (a.txt, new.bin)"
    expect_eq "$(count_actions "$work/out/sync1.log" Deleted)" 1 "files deleted (b.bin)"
    expect_eq "$(remote_listing "$remote/tree")" "$(local_listing "$src")" "lsf -R after the sync"
    expect_eq "$(remote_md5s "$remote/tree")" "$(local_md5s "$src")" "MD5s after the sync"
    rclone_ cat "$remote/tree/a.txt" | cmp - "$src/a.txt"
}
t_delete() {
    rclone_ delete --include '*.txt' "$remote/tree"
    left=$(remote_listing "$remote/tree" | grep -v '/$' || true)
    expect_eq "$left" "$(printf 'big.bin\nsub/deep/c.bin\nsub/deep/new.bin')" \
        "files left after deleting *.txt"
    rclone_ delete "$remote"
    expect_eq "$(rclone_ lsf -R "$remote")" "" "listing after rclone delete"
    rclone_ rmdir "$remote"
    out=$(rclone_ lsd cairn:)
    if grep -q ' rclone-bucket$' <<<"$out"; then fail_with "bucket still listed after rmdir: $out"; fi
}

check "rclone version" t_version
check "rclone mkdir creates the bucket, lsd lists it" t_mkdir
check "rclone copy of a tree with a 300 MiB file, small, empty and nested files" t_copy
check "the 300 MiB file went up in 10 parts with its MD5 as metadata; small files are single PUTs" \
    t_multipart
check "rclone lsf -R lists the tree as it is locally" t_lsf
check "rclone md5sum: the MD5s of single-part and multipart objects are the files' MD5s" t_md5sum
check "rclone check: 0 differences, 6 matching files, hashes compared" t_check
check "rclone size --json: count and bytes" t_size
check "rclone cat --offset 0 --count 1" t_cat 0 1
check "rclone cat across a 1 MiB chunk boundary" t_cat $((MiB - 3)) 7
check "rclone cat across the 32 MiB part boundary" t_cat $((32 * MiB - 100000)) 200000
check "rclone cat of 70 MiB over three parts and many chunks" t_cat 123456789 $((70 * MiB))
check "rclone cat --count past the end stops at the end" t_cat $((big_size - 1000)) 5000
check "rclone cat of a small file with spaces and é in its name" t_cat_small
check "rclone copy back down (multi-thread ranged GETs for the big file): diff -r is clean" t_copy_down
check "rclone sync with nothing changed transfers nothing" t_sync_noop
check "rclone sync after a change, a delete and a new file: the remote follows" t_sync_changes
check "rclone delete --include, delete, rmdir" t_delete

report rclone
