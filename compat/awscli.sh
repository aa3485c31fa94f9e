#!/usr/bin/env bash
# aws-cli against a running Cairn: `aws s3` (mb/cp/ls/rm/sync/rb/presign) and `aws s3api` (ranges,
# metadata, listing pages, delete-objects, copy-object, upload-part-copy, conditional writes,
# multipart, errors, SigV2 and SigV4 presigned URLs), with the installed aws-cli at default settings.
# Started by compat/run.sh, over HTTP and over HTTPS, which provides the server and the environment:
#   CAIRN_ENDPOINT, CAIRN_BIN, CAIRN_DATA, CAIRN_COMPAT_WORK, CAIRN_COMPAT_COUNTS, AWS_* variables
#   (AWS_CA_BUNDLE and CURL_CA_BUNDLE name the test certificate over HTTPS).
# Every check runs in a `set -e` subshell, so its first failing command or assertion fails it and the
# suite goes on with the next check. Objects are cut into 1 MiB chunks by the server; aws-cli cuts
# files above 8 MiB into 8 MiB parts, so a 40 MiB file has 5 parts and 40 chunks.
set -euo pipefail

: "${CAIRN_ENDPOINT:?run through compat/run.sh}"
work="${CAIRN_COMPAT_WORK:?run through compat/run.sh}"
ep="$CAIRN_ENDPOINT"
readonly MiB=1048576
readonly bucket=cli-bucket
state="$work/state"
files="$work/files"
mkdir -p "$state" "$files" "$work/out"

# shellcheck source=compat/lib.sh
source "$(dirname "$0")/lib.sh"

# aws with a deadline, so a server that stops answering fails a check instead of hanging the suite.
aws_() { timeout --kill-after=5 300 aws --endpoint-url "$ep" "$@"; }
s3() { aws_ s3 "$@"; }
s3api() { aws_ s3api "$@"; }

# jget EXPR < JSON: evaluates a Python expression over the parsed JSON `d`; strings print raw.
jget() {
    python3 -c '
import json, sys
text = sys.stdin.read()
d = json.loads(text) if text.strip() else {}
v = eval(sys.argv[1], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}
md5_etag() { echo "\"$(md5sum "$1" | cut -d' ' -f1)\""; }
# The multipart ETag AWS defines: md5 of the concatenated binary part md5s, then -N.
multipart_etag() { # FILE PART_SIZE
    python3 - "$1" "$2" <<'EOF'
import hashlib, sys
digests, parts = b"", 0
with open(sys.argv[1], "rb") as f:
    while block := f.read(int(sys.argv[2])):
        digests += hashlib.md5(block).digest()
        parts += 1
print('"%s-%d"' % (hashlib.md5(digests).hexdigest(), parts))
EOF
}
crc32_b64() {
    python3 -c '
import base64, sys, zlib
with open(sys.argv[1], "rb") as f:
    print(base64.b64encode(zlib.crc32(f.read()).to_bytes(4, "big")).decode())' "$1"
}
slice() { # FILE START LENGTH OUT
    dd if="$1" of="$4" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

: >"$files/f0"
head -c 2048 /dev/urandom >"$files/f2k"
head -c $((5 * MiB)) /dev/urandom >"$files/f5m"
head -c $((40 * MiB)) /dev/urandom >"$files/f40m"

# ---------------------------------------------------------------------------------------- buckets

t_mb() {
    out=$(s3 mb "s3://$bucket")
    expect_contains "$out" "make_bucket: $bucket"
}
t_ls_buckets() {
    out=$(s3 ls)
    printf '%s\n' "$out" | grep -q " $bucket\$" || fail_with "bucket not listed: $out"
}
t_head_bucket() { s3api head-bucket --bucket "$bucket"; }
t_bucket_location() {
    loc=$(s3api get-bucket-location --bucket "$bucket" | jget 'd.get("LocationConstraint")')
    case "$loc" in null | "" | us-east-1) ;; *) fail_with "unexpected LocationConstraint $loc" ;; esac
}
t_bad_bucket_name() {
    out=$(expect_exit 255 s3api create-bucket --bucket Bad_Name)
    expect_contains "$out" InvalidBucketName
}
check "s3 mb creates a bucket" t_mb
check "s3 ls lists the bucket" t_ls_buckets
check "s3api head-bucket on an existing bucket" t_head_bucket
check "s3api get-bucket-location" t_bucket_location
check "s3api create-bucket with a bad name -> InvalidBucketName" t_bad_bucket_name

# ----------------------------------------------------------------------------- s3 cp round trips

t_cp_up() {
    out=$(s3 cp --no-progress "$files/$1" "s3://$bucket/cp/$1")
    expect_contains "$out" "upload:"
}
t_cp_down() {
    rm -f "$work/out/$1"
    s3 cp --no-progress "s3://$bucket/cp/$1" "$work/out/$1" >/dev/null
    cmp "$files/$1" "$work/out/$1"
}
t_ls_sizes() {
    out=$(s3 ls "s3://$bucket/cp/")
    for f in f0 f2k f5m f40m; do
        size=$(printf '%s\n' "$out" | awk -v k="$f" '$4 == k { print $3 }')
        expect_eq "$size" "$(stat -c %s "$files/$f")" "size of cp/$f in s3 ls"
    done
}
t_etag_single() {
    for f in f0 f2k f5m; do
        etag=$(s3api head-object --bucket "$bucket" --key "cp/$f" | jget 'd["ETag"]')
        expect_eq "$etag" "$(md5_etag "$files/$f")" "ETag of cp/$f"
    done
}
t_etag_multipart() {
    head=$(s3api head-object --bucket "$bucket" --key cp/f40m)
    expect_eq "$(jget 'd["ContentLength"]' <<<"$head")" $((40 * MiB)) ContentLength
    etag=$(jget 'd["ETag"]' <<<"$head")
    [[ "$etag" =~ ^\"[0-9a-f]{32}-5\"$ ]] || fail_with "multipart ETag $etag does not end with -5"
    expect_eq "$etag" "$(multipart_etag "$files/f40m" $((8 * MiB)))" "multipart ETag"
}
t_cp_stdout() { s3 cp "s3://$bucket/cp/f5m" - | cmp - "$files/f5m"; }
t_cp_stdin() { # FILE: aws-cli does not know the size, and goes multipart above 8 MiB
    s3 cp --no-progress - "s3://$bucket/stdin/$1" <"$files/$1" >/dev/null
    s3 cp "s3://$bucket/stdin/$1" - | cmp - "$files/$1"
}
for f in f0 f2k f5m f40m; do
    check "s3 cp upload $f" t_cp_up "$f"
    check "s3 cp download $f is byte-exact" t_cp_down "$f"
done
check "s3 ls shows the four sizes" t_ls_sizes
check "single-PUT ETags are the MD5 of the content" t_etag_single
check "40 MiB upload is multipart: ETag md5-of-md5s-5, ContentLength" t_etag_multipart
check "s3 cp to stdout is byte-exact" t_cp_stdout
check "s3 cp of 5 MiB from stdin round-trips" t_cp_stdin f5m
check "s3 cp of 40 MiB from stdin (multipart of unknown size) round-trips" t_cp_stdin f40m

# aws-cli (through s3transfer) HEADs the object, then fetches 8 MiB ranges in parallel, each with
# If-Match on the ETag the HEAD returned, so that a change mid-download fails instead of mixing two
# versions. The debug log shows the requests as sent.
t_cp_down_if_match() {
    rm -f "$work/out/f40m-if-match"
    timeout 300 aws --endpoint-url "$ep" --debug s3 cp --no-progress "s3://$bucket/cp/f40m" \
        "$work/out/f40m-if-match" >/dev/null 2>"$work/out/if-match.debug"
    cmp "$files/f40m" "$work/out/f40m-if-match"
    etag=$(s3api head-object --bucket "$bucket" --key cp/f40m | jget 'd["ETag"]')
    python3 - "$work/out/if-match.debug" "$etag" <<'EOF'
import re, sys
etag = sys.argv[2]
gets = [line for line in open(sys.argv[1], errors="replace")
        if "Sending http request" in line and "method=GET" in line]
starts = sorted(int(m.group(1)) for m in (re.search(r"'Range': b'bytes=(\d+)-", g) for g in gets) if m)
if len(gets) != 5 or starts != [i * 8 * 1048576 for i in range(5)]:
    sys.exit(f"expected 5 ranged GETs at 8 MiB steps, got {len(gets)} GETs with range starts {starts}")
without = [g[:300] for g in gets if f"'If-Match': b'{etag}'" not in g]
if without:
    sys.exit(f"ranged GETs without If-Match: {etag}: {without}")
EOF
}
check "s3 cp download of 40 MiB: 5 ranged GETs, each with If-Match on the ETag, byte-exact" \
    t_cp_down_if_match

# ----------------------------------------------------------------------------------- metadata

t_cp_metadata() {
    s3 cp --no-progress "$files/$1" "s3://$bucket/meta/$1" --content-type "$2" \
        --metadata "color=blue,Origin=compat" >/dev/null
    head=$(s3api head-object --bucket "$bucket" --key "meta/$1")
    expect_eq "$(jget 'd["ContentType"]' <<<"$head")" "$2" ContentType
    expect_eq "$(jget 'd["Metadata"]' <<<"$head")" '{"color": "blue", "origin": "compat"}' Metadata
    expect_eq "$(jget 'd["ContentLength"]' <<<"$head")" "$(stat -c %s "$files/$1")" ContentLength
}
t_put_object_headers() {
    out=$(s3api put-object --bucket "$bucket" --key meta/f2k-api --body "$files/f2k" \
        --content-type application/x-compat --metadata color=blue,shape=round \
        --cache-control max-age=60 --content-disposition 'attachment; filename="f2k.bin"' \
        --content-language en --expires 2030-01-01T00:00:00Z)
    expect_eq "$(jget 'd["ETag"]' <<<"$out")" "$(md5_etag "$files/f2k")" "put-object ETag"
}
t_head_object_headers() {
    head=$(s3api head-object --bucket "$bucket" --key meta/f2k-api)
    expect_eq "$(jget 'd["ContentLength"]' <<<"$head")" 2048 ContentLength
    expect_eq "$(jget 'd["ETag"]' <<<"$head")" "$(md5_etag "$files/f2k")" ETag
    expect_eq "$(jget 'd["ContentType"]' <<<"$head")" application/x-compat ContentType
    expect_eq "$(jget 'd["Metadata"]' <<<"$head")" '{"color": "blue", "shape": "round"}' Metadata
    expect_eq "$(jget 'd["CacheControl"]' <<<"$head")" max-age=60 CacheControl
    expect_eq "$(jget 'd["ContentDisposition"]' <<<"$head")" 'attachment; filename="f2k.bin"' \
        ContentDisposition
    expect_eq "$(jget 'd["ContentLanguage"]' <<<"$head")" en ContentLanguage
    expect_eq "$(jget 'd["AcceptRanges"]' <<<"$head")" bytes AcceptRanges
    expect_contains "$(jget 'd.get("Expires") or d.get("ExpiresString")' <<<"$head")" 2030
    [ "$(jget 'd.get("LastModified")' <<<"$head")" != null ] || fail_with "no LastModified"
}
t_checksum_mode() {
    head=$(s3api head-object --bucket "$bucket" --key meta/f2k-api --checksum-mode ENABLED)
    expect_eq "$(jget 'd.get("ChecksumCRC32")' <<<"$head")" "$(crc32_b64 "$files/f2k")" \
        "ChecksumCRC32 (aws-cli sends x-amz-checksum-crc32 by default)"
}
t_sha256_checksum() {
    s3api put-object --bucket "$bucket" --key meta/f2k-sha --body "$files/f2k" \
        --checksum-algorithm SHA256 >/dev/null
    want=$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1], "rb").read()).digest()).decode())' "$files/f2k")
    head=$(s3api head-object --bucket "$bucket" --key meta/f2k-sha --checksum-mode ENABLED)
    expect_eq "$(jget 'd.get("ChecksumSHA256")' <<<"$head")" "$want" ChecksumSHA256
}
t_response_overrides() {
    out=$(s3api get-object --bucket "$bucket" --key meta/f2k-api \
        --response-content-type text/plain --response-cache-control no-store "$work/out/override")
    expect_eq "$(jget 'd["ContentType"]' <<<"$out")" text/plain ContentType
    expect_eq "$(jget 'd["CacheControl"]' <<<"$out")" no-store CacheControl
    cmp "$files/f2k" "$work/out/override"
}
check "s3 cp --metadata --content-type (single PUT) shown by head-object" \
    t_cp_metadata f5m text/x-compat
check "s3 cp --metadata --content-type (multipart) shown by head-object" \
    t_cp_metadata f40m application/x-big
check "s3api put-object with metadata and content headers" t_put_object_headers
check "s3api head-object returns length, ETag, type, metadata and content headers" \
    t_head_object_headers
check "head-object --checksum-mode ENABLED returns the CRC32 aws-cli sent" t_checksum_mode
check "put-object --checksum-algorithm SHA256 stored and returned" t_sha256_checksum
check "get-object --response-content-type/--response-cache-control overrides" t_response_overrides

# ------------------------------------------------------------------------------ ranged reads

# t_range KEY LOCAL_FILE FIRST LAST(or empty for open-ended) | t_range KEY FILE -N (suffix)
t_range() {
    local key=$1 file=$2 spec=$3 size first last
    size=$(stat -c %s "$file")
    case "$spec" in
    -*) first=$((size + spec)); last=$((size - 1)) ;;
    *-) first=${spec%-}; last=$((size - 1)) ;;
    *) first=${spec%-*}; last=${spec#*-} ;;
    esac
    rm -f "$work/out/range"
    out=$(s3api get-object --bucket "$bucket" --key "$key" --range "bytes=$spec" "$work/out/range")
    slice "$file" "$first" $((last - first + 1)) "$work/out/range.want"
    cmp "$work/out/range.want" "$work/out/range"
    expect_eq "$(jget 'd["ContentRange"]' <<<"$out")" "bytes $first-$last/$size" ContentRange
    expect_eq "$(jget 'd["ContentLength"]' <<<"$out")" $((last - first + 1)) ContentLength
}
check "get-object --range inside one chunk (100-199)" t_range cp/f40m "$files/f40m" 100-199
check "get-object --range first byte only (0-0)" t_range cp/f40m "$files/f40m" 0-0
check "get-object --range across a 1 MiB chunk boundary" \
    t_range cp/f40m "$files/f40m" 1048000-1049999
check "get-object --range ending on a chunk's last byte" t_range cp/f40m "$files/f40m" 0-1048575
check "get-object --range starting on a chunk's first byte" \
    t_range cp/f40m "$files/f40m" 1048576-1048999
check "get-object --range spanning three chunk boundaries" \
    t_range cp/f40m "$files/f40m" 1000000-3500000
check "get-object --range across the 8 MiB part boundary" \
    t_range cp/f40m "$files/f40m" 8388000-8389999
check "get-object --range of the two bytes around the part boundary" \
    t_range cp/f40m "$files/f40m" 8388607-8388608
check "get-object --range across parts 2..5 (8 MiB+1 .. 40 MiB-2)" \
    t_range cp/f40m "$files/f40m" 8388609-41943038
check "get-object --range open-ended (a-)" t_range cp/f40m "$files/f40m" 41943000-
check "get-object --range suffix (-1000)" t_range cp/f40m "$files/f40m" -1000
check "get-object --range last byte" t_range cp/f40m "$files/f40m" 41943039-41943039
check "get-object --range across a chunk boundary of a single-PUT object" \
    t_range cp/f5m "$files/f5m" 1048575-2097152

t_range_416() {
    out=$(expect_exit 255 s3api get-object --bucket "$bucket" --key cp/f40m \
        --range "bytes=$((40 * MiB))-" "$work/out/range416")
    expect_contains "$out" InvalidRange
}
t_part_number() {
    out=$(s3api get-object --bucket "$bucket" --key cp/f40m --part-number 2 "$work/out/part2")
    slice "$files/f40m" $((8 * MiB)) $((8 * MiB)) "$work/out/part2.want"
    cmp "$work/out/part2.want" "$work/out/part2"
    expect_eq "$(jget 'd["PartsCount"]' <<<"$out")" 5 PartsCount
    expect_eq "$(jget 'd["ETag"]' <<<"$out")" "$(multipart_etag "$files/f40m" $((8 * MiB)))" \
        "ETag of a part GET is the whole object's"
}
check "get-object --range past the end -> InvalidRange (exit 255)" t_range_416
check "get-object --part-number 2 returns the second 8 MiB part" t_part_number

# -------------------------------------------------------------------------------------- sync

make_sync_tree() {
    rm -rf "$work/sync-src"
    mkdir -p "$work/sync-src/sub/deep"
    cp "$files/f2k" "$work/sync-src/a.bin"
    cp "$files/f5m" "$work/sync-src/sub/b.bin"
    cp "$files/f40m" "$work/sync-src/sub/deep/c.bin"
    printf 'hello from a file with spaces\n' >"$work/sync-src/name with spaces.txt"
    # Older than any upload, so that a second sync has nothing to do.
    find "$work/sync-src" -type f -exec touch -d '2020-01-01 00:00:00' {} +
}
t_sync_up() {
    out=$(s3 sync --no-progress "$work/sync-src" "s3://$bucket/sync/")
    expect_eq "$(grep -c '^upload:' <<<"$out")" 4 "uploads reported"
}
t_sync_noop() {
    out=$(s3 sync --no-progress "$work/sync-src" "s3://$bucket/sync/")
    expect_eq "$out" "" "output of a sync with nothing to do"
}
t_sync_down() {
    rm -rf "$work/sync-dst"
    s3 sync --no-progress "s3://$bucket/sync/" "$work/sync-dst" >/dev/null
    diff -r "$work/sync-src" "$work/sync-dst"
}
# botocore sends `Expect: 100-continue` on every PUT; if a zero-byte PUT is answered without an
# interim 100, botocore misreads the next response on that connection and waits out its 60 s read
# timeout before a retry. A tree with empty files must sync without any retry.
t_sync_empty_files() {
    rm -rf "$work/sync-empty"
    mkdir -p "$work/sync-empty"
    for i in 1 2 3 4 5 6; do
        : >"$work/sync-empty/empty$i"
        head -c 1000 /dev/urandom >"$work/sync-empty/small$i"
    done
    rc=0
    timeout 30 aws --endpoint-url "$ep" --debug s3 sync --no-progress "$work/sync-empty" \
        "s3://$bucket/sync-empty/" >"$work/out/sync-empty.out" 2>"$work/out/sync-empty.debug" || rc=$?
    [ "$rc" -ne 124 ] || fail_with "s3 sync of 12 tiny files did not finish within 30 s"
    expect_eq "$rc" 0 "exit status of s3 sync"
    expect_eq "$(grep -c '^upload:' "$work/out/sync-empty.out")" 12 "uploads reported"
    # botocore logs "No retry needed." after every response; only the other lines mean a retry.
    retries=$(grep -E 'botocore\.(endpoint|retryhandler) .*([Rr]etry needed|to retry|sleeping for)' \
        "$work/out/sync-empty.debug" | grep -v 'No retry needed\.' | head -n 5 || true)
    expect_eq "$retries" "" "retried requests"
    s3 rm --recursive --only-show-errors "s3://$bucket/sync-empty/"
}
t_sync_delete() {
    rm "$work/sync-src/a.bin"
    printf 'changed\n' >"$work/sync-src/sub/b.bin"
    out=$(s3 sync --no-progress --delete "$work/sync-src" "s3://$bucket/sync/")
    expect_contains "$out" "delete: s3://$bucket/sync/a.bin"
    expect_contains "$out" "upload: "
    expect_contains "$out" "sub/b.bin"
    listing=$(s3 ls --recursive "s3://$bucket/sync/")
    expect_eq "$(wc -l <<<"$listing")" 3 "objects left under sync/"
    expect_eq "$(awk '$4 == "sync/sub/b.bin" { print $3 }' <<<"$listing")" 8 "size of sync/sub/b.bin"
}
t_sync_down_delete() {
    s3 sync --no-progress --delete "s3://$bucket/sync/" "$work/sync-dst" >/dev/null
    diff -r "$work/sync-src" "$work/sync-dst"
}
make_sync_tree
check "s3 sync uploads a tree (4 files, one multipart)" t_sync_up
check "s3 sync again uploads nothing" t_sync_noop
check "s3 sync downloads the tree byte-exact" t_sync_down
check "s3 sync of 6 empty and 6 small files: no stall, no retry" t_sync_empty_files
check "s3 sync --delete removes and replaces objects" t_sync_delete
check "s3 sync --delete back down mirrors the bucket" t_sync_down_delete

# --------------------------------------------------------------------------------------- rm

t_rm_one() {
    out=$(s3 rm "s3://$bucket/cp/f2k")
    expect_contains "$out" "delete: s3://$bucket/cp/f2k"
    out=$(expect_exit 255 s3api head-object --bucket "$bucket" --key cp/f2k)
    expect_contains "$out" 404
}
t_rm_recursive() {
    out=$(s3 rm --recursive "s3://$bucket/sync/")
    expect_eq "$(grep -c '^delete:' <<<"$out")" 3 "deletes reported"
    count=$(s3api list-objects-v2 --bucket "$bucket" --prefix sync/ | jget 'd.get("KeyCount", 0)')
    expect_eq "$count" 0 "KeyCount under sync/"
}
t_delete_idempotent() { s3api delete-object --bucket "$bucket" --key cp/never-existed; }
check "s3 rm deletes one object" t_rm_one
check "s3 rm --recursive deletes a prefix" t_rm_recursive
check "s3api delete-object of a missing key succeeds" t_delete_idempotent

# ---------------------------------------------------------------------------------- listing

# 25 keys: list/x/k00..k09, list/y/k00..k09 and list/z0..list/z4 directly under list/.
mkdir -p "$work/list-src/x" "$work/list-src/y"
for i in 0 1 2 3 4 5 6 7 8 9; do
    echo "x$i" >"$work/list-src/x/k0$i"
    echo "y$i" >"$work/list-src/y/k0$i"
done
for i in 0 1 2 3 4; do echo "z$i" >"$work/list-src/z$i"; done
(cd "$work/list-src" && find . -type f | sed 's|^\./|list/|' | LC_ALL=C sort) >"$state/list-keys"
all_keys_json=$(python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read().split()))' \
    "$state/list-keys")

keys_of() { jget '[c["Key"] for c in d.get("Contents", [])]'; }
t_list_setup() {
    out=$(s3 sync --no-progress "$work/list-src" "s3://$bucket/list/")
    expect_eq "$(grep -c '^upload:' <<<"$out")" 25 "uploads reported"
}
t_list_pages() {
    out=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/ --page-size 4)
    expect_eq "$(keys_of <<<"$out")" "$all_keys_json" "keys over 7 pages of 4"
}
t_list_max_items() {
    first=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/ --page-size 3 --max-items 10)
    token=$(jget 'd.get("NextToken")' <<<"$first")
    [ "$token" != null ] || fail_with "no NextToken after --max-items 10: $first"
    rest=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/ --page-size 3 \
        --starting-token "$token")
    expect_eq "$(jget 'd.get("NextToken")' <<<"$rest")" null "NextToken after the last page"
    joined=$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1]) + json.loads(sys.argv[2])))' \
        "$(keys_of <<<"$first")" "$(keys_of <<<"$rest")")
    expect_eq "$joined" "$all_keys_json" "keys of --max-items 10 then --starting-token"
    expect_eq "$(keys_of <<<"$first" | jget 'len(d)')" 10 "keys in the first 10 items"
}
t_list_delimiter() {
    for page in 1000 2; do
        out=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/ --delimiter / \
            --page-size "$page")
        expect_eq "$(jget '[p["Prefix"] for p in d.get("CommonPrefixes", [])]' <<<"$out")" \
            '["list/x/", "list/y/"]' "CommonPrefixes (page size $page)"
        expect_eq "$(keys_of <<<"$out")" \
            '["list/z0", "list/z1", "list/z2", "list/z3", "list/z4"]' "Contents (page size $page)"
    done
}
t_list_start_after() {
    out=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/ --start-after list/x/k05)
    expect_eq "$(keys_of <<<"$out" | jget 'd[0]')" list/x/k06 "first key after list/x/k05"
    expect_eq "$(keys_of <<<"$out" | jget 'len(d)')" 19 "keys after list/x/k05"
}
t_list_exact_max_keys() {
    out=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/x/ --max-keys 10 --no-paginate)
    expect_eq "$(jget 'd["IsTruncated"]' <<<"$out")" false "IsTruncated with exactly max-keys left"
    expect_eq "$(jget 'd.get("NextContinuationToken")' <<<"$out")" null NextContinuationToken
    expect_eq "$(jget 'd["KeyCount"]' <<<"$out")" 10 KeyCount
    out=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/x/ --max-keys 9 --no-paginate)
    expect_eq "$(jget 'd["IsTruncated"]' <<<"$out")" true "IsTruncated with one key more"
    [ "$(jget 'd.get("NextContinuationToken")' <<<"$out")" != null ] ||
        fail_with "truncated page without NextContinuationToken"
}
t_list_v1_pages() {
    out=$(s3api list-objects --bucket "$bucket" --prefix list/ --page-size 4)
    expect_eq "$(keys_of <<<"$out")" "$all_keys_json" "ListObjects v1 keys over pages of 4"
}
t_s3_ls_prefixes() {
    out=$(s3 ls "s3://$bucket/list/")
    expect_contains "$out" "PRE x/"
    expect_contains "$out" "PRE y/"
    expect_eq "$(grep -vc ' PRE ' <<<"$out")" 5 "objects directly under list/"
}
check "s3 sync uploads 25 small keys for listing" t_list_setup
check "list-objects-v2 --page-size 4 returns all 25 keys in order" t_list_pages
check "list-objects-v2 --max-items 10 then --starting-token" t_list_max_items
check "list-objects-v2 --delimiter / gives CommonPrefixes and Contents" t_list_delimiter
check "list-objects-v2 --start-after" t_list_start_after
check "list-objects-v2 IsTruncated only when more keys exist" t_list_exact_max_keys
check "list-objects (v1) --page-size 4 pages by marker" t_list_v1_pages
check "s3 ls shows PRE lines and objects" t_s3_ls_prefixes

# ---------------------------------------------------------------------------- delete-objects

t_delete_objects() {
    out=$(s3api delete-objects --bucket "$bucket" --delete '{"Objects":[{"Key":"list/x/k00"},{"Key":"list/x/k01"},{"Key":"list/x/k02"},{"Key":"list/x/k03"},{"Key":"list/x/k04"},{"Key":"list/no-such-key"}],"Quiet":false}')
    expect_eq "$(jget 'sorted(o["Key"] for o in d.get("Deleted", []))' <<<"$out")" \
        '["list/no-such-key", "list/x/k00", "list/x/k01", "list/x/k02", "list/x/k03", "list/x/k04"]' \
        "Deleted"
    expect_eq "$(jget 'd.get("Errors", [])' <<<"$out")" '[]' Errors
    left=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/x/ | keys_of)
    expect_eq "$left" '["list/x/k05", "list/x/k06", "list/x/k07", "list/x/k08", "list/x/k09"]' \
        "keys left under list/x/"
}
t_delete_objects_quiet() {
    out=$(s3api delete-objects --bucket "$bucket" --delete '{"Objects":[{"Key":"list/x/k05"},{"Key":"list/x/k06"},{"Key":"list/x/k07"},{"Key":"list/x/k08"},{"Key":"list/x/k09"}],"Quiet":true}')
    expect_eq "$(jget 'd.get("Deleted", [])' <<<"$out")" '[]' "Deleted in quiet mode"
    count=$(s3api list-objects-v2 --bucket "$bucket" --prefix list/x/ | jget 'd.get("KeyCount", 0)')
    expect_eq "$count" 0 "KeyCount under list/x/"
}
check "delete-objects deletes 5 keys and reports a missing one as deleted" t_delete_objects
check "delete-objects in quiet mode" t_delete_objects_quiet

# ------------------------------------------------------------------------------- copy-object

t_copy_object() {
    out=$(s3api copy-object --bucket "$bucket" --key meta/f2k-copy --copy-source "$bucket/meta/f2k-api")
    expect_eq "$(jget 'd["CopyObjectResult"]["ETag"]' <<<"$out")" "$(md5_etag "$files/f2k")" \
        "CopyObjectResult ETag"
    head=$(s3api head-object --bucket "$bucket" --key meta/f2k-copy)
    expect_eq "$(jget 'd["ContentType"]' <<<"$head")" application/x-compat ContentType
    expect_eq "$(jget 'd["Metadata"]' <<<"$head")" '{"color": "blue", "shape": "round"}' Metadata
    s3api get-object --bucket "$bucket" --key meta/f2k-copy "$work/out/copy" >/dev/null
    cmp "$files/f2k" "$work/out/copy"
}
t_copy_replace() {
    s3api copy-object --bucket "$bucket" --key meta/f2k-replaced --copy-source "$bucket/meta/f2k-api" \
        --metadata-directive REPLACE --metadata fresh=yes --content-type text/x-replaced >/dev/null
    head=$(s3api head-object --bucket "$bucket" --key meta/f2k-replaced)
    expect_eq "$(jget 'd["ContentType"]' <<<"$head")" text/x-replaced ContentType
    expect_eq "$(jget 'd["Metadata"]' <<<"$head")" '{"fresh": "yes"}' Metadata
    expect_eq "$(jget 'd["ETag"]' <<<"$head")" "$(md5_etag "$files/f2k")" ETag
}
t_copy_encoded_source() {
    s3api put-object --bucket "$bucket" --key 'copy src/a b+c%d é.bin' --body "$files/f2k" >/dev/null
    s3api copy-object --bucket "$bucket" --key 'copy dst/x+y z.bin' \
        --copy-source "$bucket/copy src/a b+c%d é.bin" >/dev/null
    s3api get-object --bucket "$bucket" --key 'copy dst/x+y z.bin' "$work/out/copy2" >/dev/null
    cmp "$files/f2k" "$work/out/copy2"
}
t_copy_large() {
    out=$(s3api copy-object --bucket "$bucket" --key cp/f40m-copy --copy-source "$bucket/cp/f40m")
    etag=$(jget 'd["CopyObjectResult"]["ETag"]' <<<"$out")
    expect_eq "$(s3api head-object --bucket "$bucket" --key cp/f40m-copy | jget 'd["ETag"]')" "$etag" \
        "ETag of the copy"
    s3api get-object --bucket "$bucket" --key cp/f40m-copy "$work/out/copy40" >/dev/null
    cmp "$files/f40m" "$work/out/copy40"
    s3api delete-object --bucket "$bucket" --key cp/f40m-copy
}
t_copy_missing_source() {
    out=$(expect_exit 255 s3api copy-object --bucket "$bucket" --key meta/nothing \
        --copy-source "$bucket/meta/no-such-source")
    expect_contains "$out" NoSuchKey
}
check "copy-object keeps data, ETag and metadata (COPY directive)" t_copy_object
check "copy-object --metadata-directive REPLACE" t_copy_replace
check "copy-object with spaces, +, % and é in source and destination keys" t_copy_encoded_source
check "copy-object of a 40 MiB multipart object (40 chunks) is byte-exact" t_copy_large
check "copy-object of a missing source -> NoSuchKey" t_copy_missing_source

# ----------------------------------------------------------------- multipart copy (UploadPartCopy)

# Above 8 MiB, `s3 cp s3://... s3://...` copies through a multipart upload: one UploadPartCopy per
# 8 MiB with x-amz-copy-source-range. (aws-cli v1 does not carry content type and metadata over on
# this path; v2's --copy-props does.)
t_cp_s3_to_s3() {
    timeout 300 aws --endpoint-url "$ep" --debug s3 cp --no-progress "s3://$bucket/cp/f40m" \
        "s3://$bucket/copy/f40m" >/dev/null 2>"$work/out/part-copy.debug"
    copies=$(grep -c 'OperationModel(name=UploadPartCopy)' "$work/out/part-copy.debug" || true)
    expect_eq "$copies" 5 "UploadPartCopy requests"
    head=$(s3api head-object --bucket "$bucket" --key copy/f40m)
    expect_eq "$(jget 'd["ETag"]' <<<"$head")" "$(multipart_etag "$files/f40m" $((8 * MiB)))" \
        "ETag of the copy (md5 of the 5 copied parts' md5s)"
    expect_eq "$(jget 'd["ContentLength"]' <<<"$head")" $((40 * MiB)) ContentLength
    s3 cp "s3://$bucket/copy/f40m" - | cmp - "$files/f40m"
}
# Copied ranges that start and end inside 1 MiB chunks, around an uploaded part; only the last part
# may be smaller than 5 MiB.
t_upload_part_copy_ranges() {
    id=$(s3api create-multipart-upload --bucket "$bucket" --key copy/ranges | jget 'd["UploadId"]')
    e1=$(s3api upload-part-copy --bucket "$bucket" --key copy/ranges --upload-id "$id" \
        --part-number 1 --copy-source "$bucket/cp/f40m" --copy-source-range bytes=1000-5243879 |
        jget 'd["CopyPartResult"]["ETag"]')
    e2=$(s3api upload-part --bucket "$bucket" --key copy/ranges --upload-id "$id" --part-number 2 \
        --body "$files/f5m" | jget 'd["ETag"]')
    e3=$(s3api upload-part-copy --bucket "$bucket" --key copy/ranges --upload-id "$id" \
        --part-number 3 --copy-source "$bucket/cp/f40m" --copy-source-range bytes=40000000-41943039 |
        jget 'd["CopyPartResult"]["ETag"]')
    slice "$files/f40m" 1000 $((5 * MiB)) "$work/out/ranges.1"
    slice "$files/f40m" 40000000 1943040 "$work/out/ranges.3"
    cat "$work/out/ranges.1" "$files/f5m" "$work/out/ranges.3" >"$work/out/ranges.want"
    expect_eq "$e1" "$(md5_etag "$work/out/ranges.1")" "ETag of the first copied range"
    expect_eq "$e3" "$(md5_etag "$work/out/ranges.3")" "ETag of the second copied range"
    parts=$(python3 -c 'import json, sys; print(json.dumps({"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(sys.argv[1:])]}))' "$e1" "$e2" "$e3")
    out=$(s3api complete-multipart-upload --bucket "$bucket" --key copy/ranges --upload-id "$id" \
        --multipart-upload "$parts")
    # The parts are 5 MiB, 5 MiB and the rest, so the expected ETag is that of 5 MiB parts.
    expect_eq "$(jget 'd["ETag"]' <<<"$out")" "$(multipart_etag "$work/out/ranges.want" $((5 * MiB)))" \
        "completed ETag"
    s3api get-object --bucket "$bucket" --key copy/ranges "$work/out/ranges.got" >/dev/null
    cmp "$work/out/ranges.want" "$work/out/ranges.got"
}
# AWS answers 400 InvalidArgument ("Range specified is not valid for source object of size"); other
# stores answer 416 InvalidRange. Either way no part may be stored.
t_upload_part_copy_bad_range() {
    id=$(s3api create-multipart-upload --bucket "$bucket" --key copy/bad-range | jget 'd["UploadId"]')
    out=$(expect_exit 255 s3api upload-part-copy --bucket "$bucket" --key copy/bad-range \
        --upload-id "$id" --part-number 1 --copy-source "$bucket/meta/f2k-api" \
        --copy-source-range bytes=0-2048)
    case "$out" in *"(InvalidArgument)"* | *"(InvalidRange)"*) ;;
    *) fail_with "expected InvalidArgument or InvalidRange: $out" ;; esac
    parts=$(s3api list-parts --bucket "$bucket" --key copy/bad-range --upload-id "$id")
    expect_eq "$(jget 'd.get("Parts", [])' <<<"$parts")" '[]' "parts after the refused copy"
    s3api abort-multipart-upload --bucket "$bucket" --key copy/bad-range --upload-id "$id"
}
check "s3 cp s3:// s3:// of 40 MiB: 5 UploadPartCopy, multipart ETag, byte-exact" t_cp_s3_to_s3
check "upload-part-copy --copy-source-range off chunk boundaries, mixed with upload-part" \
    t_upload_part_copy_ranges
check "upload-part-copy with a range past the source's end is refused, no part stored" \
    t_upload_part_copy_bad_range

# ------------------------------------------------------------------------- conditional writes

t_put_if_none_match() {
    s3api put-object --bucket "$bucket" --key cond/obj --body "$files/f2k" --if-none-match '*' >/dev/null
    out=$(expect_exit 255 s3api put-object --bucket "$bucket" --key cond/obj --body "$files/f5m" \
        --if-none-match '*')
    expect_contains "$out" "(PreconditionFailed)"
    expect_eq "$(s3api head-object --bucket "$bucket" --key cond/obj | jget 'd["ETag"]')" \
        "$(md5_etag "$files/f2k")" "ETag after the refused overwrite"
}
t_put_if_match() {
    out=$(expect_exit 255 s3api put-object --bucket "$bucket" --key cond/obj --body "$files/f5m" \
        --if-match '"0123456789abcdef0123456789abcdef"')
    expect_contains "$out" "(PreconditionFailed)"
    s3api put-object --bucket "$bucket" --key cond/obj --body "$files/f5m" \
        --if-match "$(md5_etag "$files/f2k")" >/dev/null
    expect_eq "$(s3api head-object --bucket "$bucket" --key cond/obj | jget 'd["ETag"]')" \
        "$(md5_etag "$files/f5m")" "ETag after the conditional overwrite"
    out=$(expect_exit 255 s3api put-object --bucket "$bucket" --key cond/missing --body "$files/f2k" \
        --if-match "$(md5_etag "$files/f2k")")
    expect_contains "$out" "(NoSuchKey)"
    s3api delete-object --bucket "$bucket" --key cond/obj
}
check "put-object --if-none-match '*': stored once, then PreconditionFailed" t_put_if_none_match
check "put-object --if-match: wrong ETag -> PreconditionFailed, right one writes, missing -> NoSuchKey" \
    t_put_if_match

# -------------------------------------------------------------------------- multipart (s3api)

# 5 MiB + 5 MiB + (1 MiB + 123 B): parts that end on, and one that ends off, chunk boundaries.
head -c $((11 * MiB + 123)) /dev/urandom >"$files/mp"
slice "$files/mp" 0 $((5 * MiB)) "$files/mp.1"
slice "$files/mp" $((5 * MiB)) $((5 * MiB)) "$files/mp.2"
slice "$files/mp" $((10 * MiB)) $((MiB + 123)) "$files/mp.3"

upload_id() { cat "$state/mpu-id"; }
t_mpu_create() {
    out=$(s3api create-multipart-upload --bucket "$bucket" --key mp/obj \
        --content-type application/x-mpu --metadata kind=multipart)
    id=$(jget 'd["UploadId"]' <<<"$out")
    [ -n "$id" ] && [ "$id" != null ] || fail_with "no UploadId: $out"
    expect_eq "$(jget 'd["Key"]' <<<"$out")" mp/obj Key
    echo "$id" >"$state/mpu-id"
}
upload_part() { # NUMBER FILE -> prints the ETag
    s3api upload-part --bucket "$bucket" --key mp/obj --upload-id "$(upload_id)" \
        --part-number "$1" --body "$2" | jget 'd["ETag"]'
}
t_mpu_upload_parts() {
    # Part 2 goes up twice: first with the wrong bytes, which the second upload must replace.
    expect_eq "$(upload_part 2 "$files/f5m")" "$(md5_etag "$files/f5m")" "ETag of the first part 2"
    for n in 1 2 3; do
        expect_eq "$(upload_part "$n" "$files/mp.$n")" "$(md5_etag "$files/mp.$n")" "ETag of part $n"
    done
}
t_mpu_list_parts() {
    out=$(s3api list-parts --bucket "$bucket" --key mp/obj --upload-id "$(upload_id)")
    expect_eq "$(jget '[p["PartNumber"] for p in d["Parts"]]' <<<"$out")" '[1, 2, 3]' PartNumbers
    expect_eq "$(jget '[p["Size"] for p in d["Parts"]]' <<<"$out")" \
        "[$((5 * MiB)), $((5 * MiB)), $((MiB + 123))]" Sizes
    expect_eq "$(jget '" ".join(p["ETag"] for p in d["Parts"])' <<<"$out")" \
        "$(md5_etag "$files/mp.1") $(md5_etag "$files/mp.2") $(md5_etag "$files/mp.3")" ETags
}
t_mpu_list_uploads() {
    out=$(s3api list-multipart-uploads --bucket "$bucket")
    expect_contains "$(jget '[(u["Key"], u["UploadId"]) for u in d.get("Uploads", [])]' <<<"$out")" \
        "[\"mp/obj\", \"$(upload_id)\"]"
}
t_mpu_complete() {
    python3 - "$files" >"$state/mpu-parts.json" <<'EOF'
import hashlib, json, sys
parts = []
for n in (1, 2, 3):
    with open(f"{sys.argv[1]}/mp.{n}", "rb") as f:
        parts.append({"PartNumber": n, "ETag": '"%s"' % hashlib.md5(f.read()).hexdigest()})
print(json.dumps({"Parts": parts}))
EOF
    out=$(s3api complete-multipart-upload --bucket "$bucket" --key mp/obj \
        --upload-id "$(upload_id)" --multipart-upload "file://$state/mpu-parts.json")
    etag=$(jget 'd["ETag"]' <<<"$out")
    [[ "$etag" == *-3\" ]] || fail_with "ETag $etag does not end with -3"
    expect_eq "$etag" "$(multipart_etag "$files/mp" $((5 * MiB)))" "completed ETag"
}
t_mpu_read_back() {
    out=$(s3api get-object --bucket "$bucket" --key mp/obj "$work/out/mp")
    cmp "$files/mp" "$work/out/mp"
    expect_eq "$(jget 'd["ContentLength"]' <<<"$out")" $((11 * MiB + 123)) ContentLength
    expect_eq "$(jget 'd["ContentType"]' <<<"$out")" application/x-mpu ContentType
    expect_eq "$(jget 'd["Metadata"]' <<<"$out")" '{"kind": "multipart"}' Metadata
}
t_mpu_gone() {
    out=$(s3api list-multipart-uploads --bucket "$bucket")
    expect_not_contains "$out" "$(upload_id)"
}
t_mpu_abort() {
    id=$(s3api create-multipart-upload --bucket "$bucket" --key mp/aborted | jget 'd["UploadId"]')
    s3api upload-part --bucket "$bucket" --key mp/aborted --upload-id "$id" --part-number 1 \
        --body "$files/f5m" >/dev/null
    s3api abort-multipart-upload --bucket "$bucket" --key mp/aborted --upload-id "$id"
    out=$(expect_exit 255 s3api list-parts --bucket "$bucket" --key mp/aborted --upload-id "$id")
    expect_contains "$out" NoSuchUpload
    expect_exit 255 s3api head-object --bucket "$bucket" --key mp/aborted >/dev/null
    expect_not_contains "$(s3api list-multipart-uploads --bucket "$bucket")" "$id"
}
t_mpu_bad_completes() {
    id=$(s3api create-multipart-upload --bucket "$bucket" --key mp/bad | jget 'd["UploadId"]')
    e1=$(s3api upload-part --bucket "$bucket" --key mp/bad --upload-id "$id" --part-number 1 \
        --body "$files/f2k" | jget 'd["ETag"]')
    e2=$(s3api upload-part --bucket "$bucket" --key mp/bad --upload-id "$id" --part-number 2 \
        --body "$files/f2k" | jget 'd["ETag"]')
    out=$(expect_exit 255 s3api complete-multipart-upload --bucket "$bucket" --key mp/bad \
        --upload-id "$id" \
        --multipart-upload '{"Parts":[{"PartNumber":1,"ETag":"\"0123456789abcdef0123456789abcdef\""}]}')
    expect_contains "$out" InvalidPart
    parts=$(python3 -c 'import json, sys; print(json.dumps({"Parts": [{"PartNumber": 1, "ETag": sys.argv[1]}, {"PartNumber": 2, "ETag": sys.argv[2]}]}))' "$e1" "$e2")
    out=$(expect_exit 255 s3api complete-multipart-upload --bucket "$bucket" --key mp/bad \
        --upload-id "$id" --multipart-upload "$parts")
    expect_contains "$out" EntityTooSmall
    expect_exit 255 s3api head-object --bucket "$bucket" --key mp/bad >/dev/null
    s3api abort-multipart-upload --bucket "$bucket" --key mp/bad --upload-id "$id"
}
t_mpu_range() {
    t_range mp/obj "$files/mp" 5242000-5243999
    t_range mp/obj "$files/mp" 10485700-10485800
}
check "create-multipart-upload returns an UploadId" t_mpu_create
check "upload-part returns part MD5 ETags; re-uploading part 2 replaces it" t_mpu_upload_parts
check "list-parts shows 3 parts with sizes and ETags" t_mpu_list_parts
check "list-multipart-uploads shows the upload" t_mpu_list_uploads
check "complete-multipart-upload: ETag md5-of-md5s-3" t_mpu_complete
check "completed object reads back byte-exact with its metadata" t_mpu_read_back
check "completed upload leaves list-multipart-uploads" t_mpu_gone
check "get-object --range across the part boundaries of a 3-part object" t_mpu_range
check "abort-multipart-upload: upload gone (NoSuchUpload), no object" t_mpu_abort
check "complete-multipart-upload -> InvalidPart, EntityTooSmall; nothing visible" t_mpu_bad_completes

# ------------------------------------------------------------------------------------ errors

t_err_no_such_key() {
    out=$(expect_exit 255 s3api get-object --bucket "$bucket" --key does/not/exist "$work/out/x")
    expect_contains "$out" "(NoSuchKey)"
    expect_contains "$out" "GetObject operation"
}
t_err_head_missing() {
    out=$(expect_exit 255 s3api head-object --bucket "$bucket" --key does/not/exist)
    expect_contains "$out" "(404)"
}
t_err_cp_missing() {
    out=$(expect_exit nonzero s3 cp "s3://$bucket/does/not/exist" "$work/out/x")
    expect_contains "$out" 404
}
t_err_no_such_bucket() {
    out=$(expect_exit 255 s3api list-objects-v2 --bucket no-such-bucket-cairn)
    expect_contains "$out" "(NoSuchBucket)"
    out=$(expect_exit 255 s3api put-object --bucket no-such-bucket-cairn --key k --body "$files/f2k")
    expect_contains "$out" "(NoSuchBucket)"
    out=$(expect_exit nonzero s3 ls s3://no-such-bucket-cairn)
    expect_contains "$out" NoSuchBucket
}
t_err_bucket_not_empty() {
    out=$(expect_exit 255 s3api delete-bucket --bucket "$bucket")
    expect_contains "$out" "(BucketNotEmpty)"
    out=$(expect_exit nonzero s3 rb "s3://$bucket")
    expect_contains "$out" BucketNotEmpty
}
t_err_bad_secret() {
    out=$(AWS_SECRET_ACCESS_KEY=not-the-secret expect_exit 255 s3api list-buckets)
    expect_contains "$out" "(SignatureDoesNotMatch)"
}
t_err_unknown_key() {
    out=$(AWS_ACCESS_KEY_ID=AKIDUNKNOWNCAIRN expect_exit 255 s3api list-buckets)
    expect_contains "$out" "(InvalidAccessKeyId)"
}
t_err_anonymous() {
    code=$(curl -sS -o "$work/out/anon" -w '%{http_code}' "$ep/$bucket/cp/f5m")
    expect_eq "$code" 403 "status of an anonymous GET"
    expect_contains "$(cat "$work/out/anon")" "<Code>AccessDenied</Code>"
    out=$(expect_exit 255 s3api --no-sign-request list-objects-v2 --bucket "$bucket")
    expect_contains "$out" AccessDenied
}
# botocore retries BadDigest five times with back-off by design; one attempt shows the answer.
t_good_md5() {
    md5=$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.md5(open(sys.argv[1], "rb").read()).digest()).decode())' "$files/f2k")
    s3api put-object --bucket "$bucket" --key err/good-md5 --body "$files/f2k" --content-md5 "$md5" >/dev/null
    s3api get-object --bucket "$bucket" --key err/good-md5 "$work/out/good-md5" >/dev/null
    cmp "$files/f2k" "$work/out/good-md5"
}
t_err_bad_md5() {
    wrong=$(python3 -c 'import base64, hashlib; print(base64.b64encode(hashlib.md5(b"other").digest()).decode())')
    out=$(AWS_MAX_ATTEMPTS=1 expect_exit 255 s3api put-object --bucket "$bucket" --key err/bad-md5 \
        --body "$files/f2k" --content-md5 "$wrong")
    expect_contains "$out" "(BadDigest)"
    expect_exit 255 s3api head-object --bucket "$bucket" --key err/bad-md5 >/dev/null
}
t_err_bad_crc32() {
    out=$(AWS_MAX_ATTEMPTS=1 expect_exit 255 s3api put-object --bucket "$bucket" --key err/bad-crc \
        --body "$files/f2k" --checksum-crc32 AAAAAA==)
    case "$out" in *"(BadDigest)"* | *"(InvalidRequest)"*) ;;
    *) fail_with "expected BadDigest or InvalidRequest: $out" ;; esac
    expect_exit 255 s3api head-object --bucket "$bucket" --key err/bad-crc >/dev/null
}
t_err_key_too_long() {
    long=$(head -c 1025 /dev/zero | tr '\0' k)
    out=$(expect_exit 255 s3api put-object --bucket "$bucket" --key "$long" --body "$files/f2k")
    expect_contains "$out" "(KeyTooLongError)"
}
t_err_metadata_too_large() {
    big=$(head -c 2100 /dev/zero | tr '\0' v)
    out=$(expect_exit 255 s3api put-object --bucket "$bucket" --key err/meta --body "$files/f2k" \
        --metadata "big=$big")
    expect_contains "$out" "(MetadataTooLarge)"
}
check "get-object of a missing key -> NoSuchKey, exit 255" t_err_no_such_key
check "head-object of a missing key -> 404, exit 255" t_err_head_missing
check "s3 cp of a missing key fails with 404" t_err_cp_missing
check "missing bucket -> NoSuchBucket (list, put, s3 ls)" t_err_no_such_bucket
check "delete-bucket / s3 rb of a non-empty bucket -> BucketNotEmpty" t_err_bucket_not_empty
check "wrong secret -> SignatureDoesNotMatch" t_err_bad_secret
check "unknown access key -> InvalidAccessKeyId" t_err_unknown_key
check "anonymous requests -> 403 AccessDenied" t_err_anonymous
check "put-object with the right Content-MD5 is stored" t_good_md5
check "put-object with a wrong Content-MD5 -> BadDigest, nothing stored" t_err_bad_md5
check "put-object with a wrong x-amz-checksum-crc32 is refused, nothing stored" t_err_bad_crc32
check "put-object with a 1025-byte key -> KeyTooLongError" t_err_key_too_long
check "put-object with 2100 bytes of metadata -> MetadataTooLarge" t_err_metadata_too_large

# ----------------------------------------------------------------------------------- presign

# With default settings aws-cli v1 presigns with SigV2 in us-east-1 (botocore keeps that legacy
# default for regions that once accepted it); this config selects SigV4. Cairn verifies both.
cat >"$work/aws-config-sigv4" <<'EOF'
[default]
s3 =
    addressing_style = path
    signature_version = s3v4
EOF
presign() { AWS_CONFIG_FILE="$work/aws-config-sigv4" s3 presign "$@"; }
fetch() { # URL OUT [CURL ARGS...] -> prints the status code
    local url=$1 out=$2
    shift 2
    curl -sS -o "$out" -w '%{http_code}' "$@" "$url"
}
t_presign_get() {
    url=$(presign "s3://$bucket/cp/f5m" --expires-in 300)
    expect_contains "$url" "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    expect_eq "$(fetch "$url" "$work/out/presigned")" 200 "status of a presigned GET"
    cmp "$files/f5m" "$work/out/presigned"
    expect_eq "$(fetch "$url" "$work/out/presigned-range" -r 1048000-1049999)" 206 \
        "status of a ranged presigned GET"
    slice "$files/f5m" 1048000 2000 "$work/out/presigned-range.want"
    cmp "$work/out/presigned-range.want" "$work/out/presigned-range"
}
t_presign_hostile_key() {
    s3api put-object --bucket "$bucket" --key 'pre sign/a b+c%d é.bin' --body "$files/f2k" >/dev/null
    url=$(presign "s3://$bucket/pre sign/a b+c%d é.bin" --expires-in 300)
    expect_eq "$(fetch "$url" "$work/out/presigned-hostile")" 200 "status"
    cmp "$files/f2k" "$work/out/presigned-hostile"
}
t_presign_tampered() {
    url=$(presign "s3://$bucket/cp/f5m" --expires-in 300)
    sig=${url##*X-Amz-Signature=}
    sig=${sig%%&*}
    case "${sig: -1}" in 0) flip=1 ;; *) flip=0 ;; esac
    bad="${url/X-Amz-Signature=$sig/X-Amz-Signature=${sig%?}$flip}"
    expect_eq "$(fetch "$bad" "$work/out/tampered")" 403 "status with a changed signature"
    expect_contains "$(cat "$work/out/tampered")" SignatureDoesNotMatch
    other="${url/\/cp\/f5m?//cp/f40m?}"
    expect_eq "$(fetch "$other" "$work/out/tampered")" 403 "status with a changed key"
    longer="${url/X-Amz-Expires=300/X-Amz-Expires=600}"
    expect_eq "$(fetch "$longer" "$work/out/tampered")" 403 "status with a changed expiry"
}
t_presign_expired() {
    url=$(presign "s3://$bucket/cp/f5m" --expires-in 1)
    sleep 2
    expect_eq "$(fetch "$url" "$work/out/expired")" 403 "status of an expired URL"
    expect_contains "$(cat "$work/out/expired")" AccessDenied
}
# Default settings: aws-cli presigns with SigV2 (AWSAccessKeyId, Expires, Signature) in us-east-1.
t_presign_v2_get() {
    url=$(s3 presign "s3://$bucket/cp/f5m" --expires-in 300)
    expect_contains "$url" "AWSAccessKeyId=$AWS_ACCESS_KEY_ID"
    expect_contains "$url" "Signature="
    expect_not_contains "$url" "X-Amz-Algorithm"
    expect_eq "$(fetch "$url" "$work/out/presigned-v2")" 200 "status of a SigV2 presigned GET"
    cmp "$files/f5m" "$work/out/presigned-v2"
    expect_eq "$(fetch "$url" "$work/out/presigned-v2-range" -r 2097000-2098999)" 206 \
        "status of a ranged SigV2 presigned GET"
    slice "$files/f5m" 2097000 2000 "$work/out/presigned-v2-range.want"
    cmp "$work/out/presigned-v2-range.want" "$work/out/presigned-v2-range"
}
t_presign_v2_hostile_key() {
    url=$(s3 presign "s3://$bucket/pre sign/a b+c%d é.bin" --expires-in 300)
    expect_eq "$(fetch "$url" "$work/out/presigned-v2-hostile")" 200 "status"
    cmp "$files/f2k" "$work/out/presigned-v2-hostile"
}
t_presign_v2_refused() {
    url=$(s3 presign "s3://$bucket/cp/f5m" --expires-in 300)
    expires=${url##*Expires=}
    expires=${expires%%&*}
    longer="${url/Expires=$expires/Expires=$((expires + 60))}"
    expect_eq "$(fetch "$longer" "$work/out/tampered-v2")" 403 "status with a changed expiry"
    expect_contains "$(cat "$work/out/tampered-v2")" SignatureDoesNotMatch
    other="${url/\/cp\/f5m?//cp/f40m?}"
    expect_eq "$(fetch "$other" "$work/out/tampered-v2")" 403 "status with a changed key"
    forged=$(AWS_SECRET_ACCESS_KEY=not-the-secret s3 presign "s3://$bucket/cp/f5m")
    expect_eq "$(fetch "$forged" "$work/out/tampered-v2")" 403 "status with a wrong secret"
    expired=$(s3 presign "s3://$bucket/cp/f5m" --expires-in 1)
    sleep 2
    expect_eq "$(fetch "$expired" "$work/out/expired-v2")" 403 "status of an expired URL"
    expect_contains "$(cat "$work/out/expired-v2")" AccessDenied
}
check "s3 presign (SigV4) fetched with curl, whole and ranged, byte-exact" t_presign_get
check "s3 presign of a key with spaces, +, % and é" t_presign_hostile_key
check "tampered presigned URLs are refused with 403" t_presign_tampered
check "expired presigned URL is refused with 403 AccessDenied" t_presign_expired
check "s3 presign at default settings (SigV2) fetched with curl, whole and ranged, byte-exact" \
    t_presign_v2_get
check "s3 presign (SigV2) of a key with spaces, +, % and é" t_presign_v2_hostile_key
check "SigV2 presigned URLs: changed expiry or key, wrong secret, expired -> 403" t_presign_v2_refused

# -------------------------------------------------------------------------------- admin keys

admin() { timeout 60 "$CAIRN_BIN" admin --meta "sqlite://$CAIRN_DATA/meta.db" "$@"; }
t_key_create() {
    out=$(admin key create compat-extra)
    id=$(sed -n 's/^AccessKeyId: *//p' <<<"$out")
    secret=$(sed -n 's/^SecretAccessKey: *//p' <<<"$out")
    [ -n "$id" ] && [ -n "$secret" ] || fail_with "no AccessKeyId/SecretAccessKey lines: $out"
    printf '%s\n%s\n' "$id" "$secret" >"$state/extra-key"
    listing=$(AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" s3 ls)
    expect_contains "$listing" "$bucket"
}
t_key_list() {
    id=$(sed -n 1p "$state/extra-key")
    expect_contains "$(admin key list)" "$id"
}
t_key_delete() {
    id=$(sed -n 1p "$state/extra-key")
    secret=$(sed -n 2p "$state/extra-key")
    admin key delete "$id" >/dev/null
    expect_not_contains "$(admin key list)" "$id"
    # Gateways cache keys and notice a deletion within about a second: allow 5 s.
    for _ in 1 2 3 4 5; do
        if out=$(AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" s3api list-buckets 2>&1); then
            sleep 1
            continue
        fi
        expect_contains "$out" "(InvalidAccessKeyId)"
        return
    done
    fail_with "the deleted key still works after 5 s"
}
check "cairn admin key create: the new key works against the running server" t_key_create
check "cairn admin key list shows the new key" t_key_list
check "cairn admin key delete: the key stops working" t_key_delete

# ----------------------------------------------------------------------------------- cleanup

t_rb_force() {
    s3 rb --force "s3://$bucket" >/dev/null
    out=$(expect_exit 255 s3api head-bucket --bucket "$bucket")
    expect_contains "$out" 404
    listing=$(s3 ls)
    if grep -q " $bucket\$" <<<"$listing"; then fail_with "bucket still listed: $listing"; fi
}
check "s3 rb --force empties and removes the bucket" t_rb_force


# ============================================================ access control (issue 18) — begin
# Users and keys made with `cairn admin --json` on the server's metadata file; cli-alice owns both
# buckets. Covers s3api put/get-bucket-policy, get-bucket-policy-status, get-bucket-acl,
# put/get-object-acl, put/get-public-access-block, put/get-bucket-ownership-controls, an upload
# with --acl public-read served to anonymous curl (GET, HEAD, Range), a readonly key refused on
# PUT and DELETE, and a key limited to arn:aws:s3:::acl-b1/* refused on acl-b2.

readonly acl_b1=cli-acl-b1 acl_b2=cli-acl-b2
jadmin() { admin "$@" --json; }
# as_key NAME COMMAND...: runs the command with the key saved under $state/key-NAME.
as_key() {
    local name=$1
    shift
    AWS_ACCESS_KEY_ID="$(sed -n 1p "$state/key-$name")" \
        AWS_SECRET_ACCESS_KEY="$(sed -n 2p "$state/key-$name")" "$@"
}
save_key() { # NAME JSON
    jget 'd["access_key_id"]' <<<"$2" >"$state/key-$1"
    jget 'd["secret_access_key"]' <<<"$2" >>"$state/key-$1"
}
# anon_curl ARGS...: curl without credentials; prints the status line's code, then the body to
# $work/out/anon.
anon_curl() { curl -sS --max-time 30 -o "$work/out/anon" -w '%{http_code}' "$@"; }
anon_is() { [ "$(anon_curl "$2")" == "$1" ] || fail_with "anonymous GET $2: not $1"; } # CODE URL
# eventually COMMAND...: retries for up to 5 s, the time a change of access may take to apply.
eventually() {
    local deadline=$((SECONDS + 5)) out
    until out=$("$@" 2>&1); do
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf '%s\n' "$out"
            return 1
        fi
        sleep 0.1
    done
    printf '%s\n' "$out"
}
# public_put_refused CODE: cli-alice's upload with --acl public-read to acl-b2 fails with CODE.
public_put_refused() {
    local out
    out=$(as_key alice expect_exit nonzero s3api put-object --bucket "$acl_b2" --key p \
        --body "$files/f2k" --acl public-read)
    expect_contains "$out" "$1"
}

t_acl_setup() {
    user=$(jadmin user create cli-alice)
    jget 'd["id"]' <<<"$user" >"$state/alice-id"
    [ "$(wc -c <"$state/alice-id")" -eq 65 ] || fail_with "canonical id: $user"
    printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::%s/*"}]}' \
        "$acl_b1" >"$work/b1-objects.json"
    jadmin policy create cli-b1-objects "$work/b1-objects.json" >/dev/null
    save_key alice "$(jadmin key create cli-alice-full --user cli-alice)"
    save_key ro "$(jadmin key create cli-alice-ro --user cli-alice --policy readonly)"
    save_key b1 "$(jadmin key create cli-alice-b1 --user cli-alice --policy cli-b1-objects)"
    as_key alice s3api create-bucket --bucket "$acl_b1" >/dev/null
    as_key alice s3api create-bucket --bucket "$acl_b2" >/dev/null
    as_key alice s3api put-object --bucket "$acl_b1" --key obj --body "$files/f2k" >/dev/null
    as_key alice s3api put-object --bucket "$acl_b2" --key obj --body "$files/f2k" >/dev/null
    listing=$(as_key alice s3api list-buckets | jget '[b["Name"] for b in d["Buckets"]]')
    expect_eq "$listing" "[\"$acl_b1\", \"$acl_b2\"]" "cli-alice's ListBuckets"
}
t_acl_private() {
    expect_eq "$(anon_curl "$ep/$acl_b1/obj")" 403 "anonymous GET of a private object"
}
t_acl_bucket_policy() {
    out=$(as_key alice expect_exit nonzero s3api get-bucket-policy --bucket "$acl_b1")
    expect_contains "$out" NoSuchBucketPolicy
    policy=$(printf '{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s/*"}]}' "$acl_b1")
    as_key alice s3api put-bucket-policy --bucket "$acl_b1" --policy "$policy"
    got=$(as_key alice s3api get-bucket-policy --bucket "$acl_b1" | jget 'd["Policy"]')
    same=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1]) == json.loads(sys.argv[2]))' "$got" "$policy")
    expect_eq "$same" True "policy read back: $got"
    public=$(as_key alice s3api get-bucket-policy-status --bucket "$acl_b1" | jget 'd["PolicyStatus"]["IsPublic"]')
    expect_eq "$public" true "IsPublic"
    eventually anon_is 200 "$ep/$acl_b1/obj"
    cmp "$work/out/anon" "$files/f2k"
    expect_eq "$(anon_curl "$ep/$acl_b1")" 403 "anonymous listing (GetObject only)"
}
t_acl_bucket_acl() {
    acl=$(as_key alice s3api get-bucket-acl --bucket "$acl_b2")
    expect_eq "$(jget 'd["Owner"]["ID"]' <<<"$acl")" "$(cat "$state/alice-id")" "Owner ID"
    expect_eq "$(jget '[g["Permission"] for g in d["Grants"]]' <<<"$acl")" '["FULL_CONTROL"]' "grants"
}
t_acl_object_acl() {
    expect_eq "$(anon_curl "$ep/$acl_b2/obj")" 403 "anonymous GET before put-object-acl"
    as_key alice s3api put-object-acl --bucket "$acl_b2" --key obj --acl public-read
    grants=$(as_key alice s3api get-object-acl --bucket "$acl_b2" --key obj |
        jget '[(g["Grantee"].get("URI", ""), g["Permission"]) for g in d["Grants"]]')
    expect_contains "$grants" '["http://acs.amazonaws.com/groups/global/AllUsers", "READ"]'
    expect_eq "$(anon_curl "$ep/$acl_b2/obj")" 200 "anonymous GET after put-object-acl public-read"
    cmp "$work/out/anon" "$files/f2k"
    as_key alice s3api put-object-acl --bucket "$acl_b2" --key obj --acl private
    expect_eq "$(anon_curl "$ep/$acl_b2/obj")" 403 "anonymous GET once private again"
}
t_acl_public_upload() {
    as_key alice s3 cp "$files/f5m" "s3://$acl_b2/public.bin" --acl public-read >/dev/null
    expect_eq "$(anon_curl "$ep/$acl_b2/public.bin")" 200 "anonymous GET"
    cmp "$work/out/anon" "$files/f5m"
    expect_eq "$(anon_curl -I "$ep/$acl_b2/public.bin")" 200 "anonymous HEAD"
    expect_eq "$(anon_curl -r 1000-1999 "$ep/$acl_b2/public.bin")" 206 "anonymous Range"
    slice "$files/f5m" 1000 1000 "$work/out/want"
    cmp "$work/out/anon" "$work/out/want"
}
t_acl_public_access_block() {
    out=$(as_key alice expect_exit nonzero s3api get-public-access-block --bucket "$acl_b2")
    expect_contains "$out" NoSuchPublicAccessBlockConfiguration
    as_key alice s3api put-public-access-block --bucket "$acl_b2" --public-access-block-configuration \
        BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,RestrictPublicBuckets=false
    got=$(as_key alice s3api get-public-access-block --bucket "$acl_b2" |
        jget '[d["PublicAccessBlockConfiguration"][k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")]')
    expect_eq "$got" '[true, true, false, false]' "configuration read back"
    # IgnorePublicAcls: the public-read upload is no longer served; BlockPublicAcls: no new one.
    eventually anon_is 403 "$ep/$acl_b2/public.bin"
    public_put_refused AccessDenied
    as_key alice s3api delete-public-access-block --bucket "$acl_b2"
    eventually anon_is 200 "$ep/$acl_b2/public.bin"
}
t_acl_ownership_controls() {
    out=$(as_key alice expect_exit nonzero s3api get-bucket-ownership-controls --bucket "$acl_b2")
    expect_contains "$out" OwnershipControlsNotFoundError
    as_key alice s3api put-bucket-ownership-controls --bucket "$acl_b2" \
        --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
    got=$(as_key alice s3api get-bucket-ownership-controls --bucket "$acl_b2" |
        jget 'd["OwnershipControls"]["Rules"][0]["ObjectOwnership"]')
    expect_eq "$got" BucketOwnerEnforced "ObjectOwnership"
    eventually public_put_refused AccessControlListNotSupported
    as_key alice s3api delete-bucket-ownership-controls --bucket "$acl_b2"
}
t_acl_readonly_key() {
    as_key ro s3api get-object --bucket "$acl_b2" --key obj "$work/out/ro" >/dev/null
    cmp "$work/out/ro" "$files/f2k"
    out=$(as_key ro expect_exit nonzero s3api put-object --bucket "$acl_b2" --key ro --body "$files/f2k")
    expect_contains "$out" AccessDenied
    out=$(as_key ro expect_exit nonzero s3api delete-object --bucket "$acl_b2" --key obj)
    expect_contains "$out" AccessDenied
    as_key alice s3api head-object --bucket "$acl_b2" --key obj >/dev/null
}
t_acl_limited_key() {
    as_key b1 s3api put-object --bucket "$acl_b1" --key lim --body "$files/f2k" >/dev/null
    out=$(as_key b1 expect_exit nonzero s3api put-object --bucket "$acl_b2" --key lim --body "$files/f2k")
    expect_contains "$out" AccessDenied
    out=$(as_key b1 expect_exit nonzero s3api get-object --bucket "$acl_b2" --key obj "$work/out/lim")
    expect_contains "$out" AccessDenied
}
t_acl_cleanup() {
    as_key alice s3 rb --force "s3://$acl_b1" >/dev/null
    as_key alice s3 rb --force "s3://$acl_b2" >/dev/null
}
check "access: cairn admin --json makes cli-alice, her keys and two buckets" t_acl_setup
check "access: anonymous curl of a private object is 403" t_acl_private
check "access: s3api put-bucket-policy / get-bucket-policy / get-bucket-policy-status, then anonymous curl" t_acl_bucket_policy
check "access: s3api get-bucket-acl shows the owner with FULL_CONTROL" t_acl_bucket_acl
check "access: s3api put-object-acl / get-object-acl, anonymous curl follows" t_acl_object_acl
check "access: s3 cp --acl public-read served to anonymous curl (GET, HEAD, Range)" t_acl_public_upload
check "access: s3api put/get/delete-public-access-block (IgnorePublicAcls, BlockPublicAcls)" t_acl_public_access_block
check "access: s3api put/get/delete-bucket-ownership-controls (BucketOwnerEnforced)" t_acl_ownership_controls
check "access: a readonly key is refused on PUT and DELETE" t_acl_readonly_key
check "access: a key limited to arn:aws:s3:::$acl_b1/* is refused on $acl_b2" t_acl_limited_key
check "access: the access-control buckets are removed" t_acl_cleanup
# ============================================================ access control (issue 18) — end

report awscli
