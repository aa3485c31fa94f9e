#!/usr/bin/env bash
# Runs the client-compatibility suites against real `cairn server`s, in two passes: over plain HTTP,
# then over HTTPS with a self-signed certificate this script makes with openssl.
#
#   compat/run.sh [PATH/TO/cairn]        (default: target/release/cairn, or $CAIRN_BIN)
#
# Each pass starts its own server on 127.0.0.1:0 with --chunk-size 1MiB, a temporary data directory
# and credentials made up per run; waits on GET /_cairn/health; runs the suites; reads the
# aws-chunked counters of GET /_cairn/stats around them; stops the server with SIGTERM and checks
# that it exits 0.
#   http:  awscli.sh, boto3_test.py, resume_test.py, conditional_test.py, rclone.sh, acl_test.py
#          (boto3) and s3cmd.sh (access control, issue 18). Clients send
#          plain bodies over HTTP, so the STREAMING-UNSIGNED-PAYLOAD-TRAILER count must stay 0.
#          Then a restart on the same data directory with --upload-expiry 30s: an incomplete upload
#          left before the suites is aborted, one started after them resumes and completes.
#   https: the same suites; the clients trust the certificate through AWS_CA_BUNDLE (aws-cli, boto3),
#          CURL_CA_BUNDLE (curl), SSL_CERT_FILE (python's urllib/http.client) and --ca-cert (rclone),
#          with default settings otherwise. aws-cli and boto3 then stream uploads as aws-chunked
#          bodies with a CRC32 trailer: each of the two suites must raise that count.
# Every check of every suite is counted; the last line is `N passed, M failed` and the exit status is
# non-zero when M > 0. If $CAIRN_COMPAT_SUMMARY names a file, the two numbers are also written there
# ("N M"). While working on one suite, CAIRN_COMPAT_PASSES (default "http https") and
# CAIRN_COMPAT_SUITES (default "awscli boto3 resume conditional rclone acl s3cmd") narrow the run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cairn="${1:-${CAIRN_BIN:-$repo/target/release/cairn}}"
case "$cairn" in /*) ;; *) cairn="$PWD/$cairn" ;; esac
passes="${CAIRN_COMPAT_PASSES:-http https}"
suites="${CAIRN_COMPAT_SUITES:-awscli boto3 resume conditional rclone acl s3cmd}"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}
finish() {
    echo
    echo "compat: $passed passed, $failed failed"
    if [ -n "${CAIRN_COMPAT_SUMMARY:-}" ]; then echo "$passed $failed" >"$CAIRN_COMPAT_SUMMARY"; fi
    echo "$passed passed, $failed failed"
    if [ "$failed" -eq 0 ]; then exit 0; else exit 1; fi
}

if [ ! -x "$cairn" ]; then
    not_ok "cairn binary exists at $cairn (build it with: cargo build --release)"
    finish
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-compat.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Credentials made up per run: nothing from the caller's AWS setup may leak into the suites.
access_key="CAIRNCOMPAT$(python3 -c 'import secrets; print(secrets.token_hex(6).upper())')"
secret_key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')"

# A clean client environment: default settings apart from endpoint, credentials, region and
# path-style addressing (the endpoint is an IP address, so virtual-hosted style cannot work).
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL \
    AWS_ENDPOINT_URL_S3 AWS_CA_BUNDLE AWS_REQUEST_CHECKSUM_CALCULATION \
    AWS_RESPONSE_CHECKSUM_VALIDATION AWS_MAX_ATTEMPTS AWS_RETRY_MODE AWS_REGION \
    RCLONE_CONFIG RCLONE_CA_CERT
export AWS_ACCESS_KEY_ID="$access_key"
export AWS_SECRET_ACCESS_KEY="$secret_key"
export AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER=""
cat >"$AWS_CONFIG_FILE" <<'EOF'
[default]
s3 =
    addressing_style = path
EOF
: >"$AWS_SHARED_CREDENTIALS_FILE"
export CAIRN_BIN="$cairn"

# The self-signed certificate of the HTTPS pass: a P-256 key, valid for the address the server
# listens on (clients check the IP SAN, not the CN).
cert="$work/tls/cert.pem"
cert_key="$work/tls/key.pem"
make_certificate() {
    mkdir -p "$work/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=cairn compat" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$cert_key" -out "$cert" >"$work/tls/openssl.log" 2>&1
}

# start_server SCHEME LOG_NAME [SERVER FLAGS...]: sets server_pid, endpoint, data and server_log;
# returns 1 if the server does not answer its health probe within 30 s. The data directory is the
# pass's own: a second start finds what the first left.
start_server() {
    local scheme=$1 tls=()
    data="$work/$scheme/data"
    server_name=$2
    server_log="$work/$scheme/$2.log"
    shift 2
    mkdir -p "$work/$scheme"
    if [ "$scheme" == https ]; then tls=(--tls-cert "$cert" --tls-key "$cert_key"); fi
    CAIRN_ACCESS_KEY_ID="$access_key" CAIRN_SECRET_ACCESS_KEY="$secret_key" \
        "$cairn" server --listen 127.0.0.1:0 --data "$data" --chunk-size 1MiB "${tls[@]}" "$@" \
        >"$server_log" 2>&1 &
    server_pid=$!
    endpoint=""
    for _ in $(seq 1 300); do
        if ! kill -0 "$server_pid" 2>/dev/null; then return 1; fi
        # The server prints its endpoint once it has bound port 0.
        [ -n "$endpoint" ] || endpoint="$(sed -n '/^Cairn S3 endpoint: */{s///p;q}' "$server_log")"
        if [ -n "$endpoint" ] &&
            curl -fsS -o /dev/null --max-time 2 "$endpoint/_cairn/health" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# stop_server PASS: SIGTERM, then the exit status must be 0 within 30 s.
stop_server() {
    local pass="$1, $server_name" stopped="" status=0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            stopped=yes
            break
        fi
        sleep 0.1
    done
    if [ -z "$stopped" ]; then
        not_ok "[$pass] server stops within 30 s of SIGTERM" "$(tail -n 20 "$server_log")"
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        return
    fi
    wait "$server_pid" || status=$?
    server_pid=""
    if [ "$status" -eq 0 ]; then
        ok "[$pass] server exits 0 on SIGTERM"
    else
        not_ok "[$pass] server exits 0 on SIGTERM (exit status $status)" "$(tail -n 20 "$server_log")"
    fi
}

# chunked_count KIND: the server's count of aws-chunked request bodies of that kind.
chunked_count() {
    curl -fsS --max-time 5 "$endpoint/_cairn/stats" |
        awk -v name="aws_chunked_bodies{kind=\"$1\"}" '$1 == name { print $2 }'
}
readonly trailer_kind=STREAMING-UNSIGNED-PAYLOAD-TRAILER

# run_suite PASS NAME COMMAND...: each suite appends "passed failed" to its counts file; a suite that
# dies without writing counts as one failure. In the HTTPS pass, aws-cli and boto3 must have sent
# trailer bodies: the count of them is read before and after their suite.
run_suite() {
    local pass=$1 name=$2
    shift 2
    case " $suites " in *" $name "*) ;; *) return 0 ;; esac
    local counts="$work/$pass/$name.counts"
    local dir="$work/$pass/$name"
    mkdir -p "$dir"
    echo
    echo "== $name ($pass)"
    local rc=0 before after start=$SECONDS
    before="$(chunked_count "$trailer_kind" || true)"
    CAIRN_COMPAT_COUNTS="$counts" CAIRN_COMPAT_WORK="$dir" timeout --kill-after=10 600 "$@" || rc=$?
    if [ -s "$counts" ]; then
        local p f
        read -r p f <"$counts"
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then not_ok "[$pass] $name suite exits 0 (exit $rc)"; fi
    else
        not_ok "[$pass] $name suite ran to the end (exit $rc, no counts written)"
    fi
    after="$(chunked_count "$trailer_kind" || true)"
    echo "   ($name over $pass: $((SECONDS - start)) s; $trailer_kind bodies ${before:-?} -> ${after:-?})"
    if [ "$pass" == https ] && { [ "$name" == awscli ] || [ "$name" == boto3 ]; }; then
        if [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ]; then
            ok "[$pass] $name uploaded $((after - before)) bodies as $trailer_kind"
        else
            not_ok "[$pass] $name uploaded bodies as $trailer_kind" \
                "/_cairn/stats count before the suite: [$before], after: [$after]"
        fi
    fi
    rm -rf "$dir"
}

# ------------------------------------------------------ incomplete uploads across a restart (HTTP)

# An upload started before the suites is minutes old when they end, one started after them seconds
# old. Both must outlive the default --upload-expiry (7d) and a SIGTERM; a restart with
# --upload-expiry 30s must then abort the old one (the expiry job runs at start and every 2 s) and
# keep the young one, which resumes and completes.
readonly restart_bucket=restart-bucket
readonly restart_expiry=30
restart_old_id=""
restart_old_since=0
s3api_() { timeout --kill-after=5 120 aws --endpoint-url "$endpoint" s3api "$@"; }
json_get() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# start_upload KEY: prints the id of a new upload of KEY whose part 1 is stored.
start_upload() {
    local id
    id=$(s3api_ create-multipart-upload --bucket $restart_bucket --key "$1" | json_get UploadId)
    s3api_ upload-part --bucket $restart_bucket --key "$1" --upload-id "$id" --part-number 1 \
        --body "$work/restart/part1" >/dev/null
    echo "$id"
}
# part_numbers KEY ID: the stored parts as "NUMBER ETAG" lines, or the error code.
part_numbers() {
    local out
    if out=$(s3api_ list-parts --bucket $restart_bucket --key "$1" --upload-id "$2" 2>&1); then
        python3 -c '
import json, sys
for part in json.load(sys.stdin).get("Parts", []):
    print(part["PartNumber"], part["ETag"])' <<<"$out"
    else
        grep -o 'NoSuchUpload' <<<"$out" || echo "$out"
    fi
}

# complete_young ID PART1: list-parts must show part 1 as it was sent; sends part 2, completes and
# reads the object back.
complete_young() (
    set -e
    local got etag2 parts
    got=$(part_numbers young "$1")
    [ "$got" == "$2" ] || { echo "list-parts after the restart: [$got], expected [$2]" && exit 1; }
    etag2=$(s3api_ upload-part --bucket $restart_bucket --key young --upload-id "$1" \
        --part-number 2 --body "$work/restart/part2" | json_get ETag)
    parts=$(python3 -c '
import json, sys
print(json.dumps({"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(sys.argv[1:])]}))' \
        "${2#1 }" "$etag2")
    s3api_ complete-multipart-upload --bucket $restart_bucket --key young --upload-id "$1" \
        --multipart-upload "$parts" >/dev/null
    s3api_ get-object --bucket $restart_bucket --key young "$work/restart/got" >/dev/null
    cmp "$work/restart/whole" "$work/restart/got"
)

restart_begin() { # PASS
    mkdir -p "$work/restart"
    head -c $((5 * 1048576)) /dev/urandom >"$work/restart/part1"
    head -c 1000 /dev/urandom >"$work/restart/part2"
    cat "$work/restart/part1" "$work/restart/part2" >"$work/restart/whole"
    if s3api_ create-bucket --bucket $restart_bucket >/dev/null &&
        restart_old_id=$(start_upload old) && [ -n "$restart_old_id" ]; then
        restart_old_since=$SECONDS
        ok "[$1] an upload with one part is left incomplete before the suites"
    else
        restart_old_id=""
        not_ok "[$1] an upload with one part is left incomplete before the suites"
    fi
}

restart_end() { # PASS
    local pass=$1 young_id age part1 got out
    [ -n "$restart_old_id" ] || return 0
    part1="1 \"$(md5sum "$work/restart/part1" | cut -d' ' -f1)\""
    age=$((SECONDS - restart_old_since))
    if [ "$age" -le "$restart_expiry" ]; then sleep $((restart_expiry + 1 - age)); fi
    got=$(part_numbers old "$restart_old_id")
    age=$((SECONDS - restart_old_since))
    if [ "$got" == "$part1" ]; then
        ok "[$pass] the upload left before the suites is kept ($age s old; default --upload-expiry)"
    else
        not_ok "[$pass] the upload left before the suites is kept ($age s old; default --upload-expiry)" \
            "list-parts: [$got], expected [$part1]"
    fi
    young_id=$(start_upload young || true)

    stop_server "$pass"
    if ! start_server "$pass" restarted --upload-expiry "${restart_expiry}s"; then
        not_ok "[$pass] server restarts on its data directory" "$(tail -n 40 "$server_log")"
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        return
    fi
    ok "[$pass] server restarts on its data directory with --upload-expiry ${restart_expiry}s"

    if out=$(complete_young "$young_id" "$part1" 2>&1); then
        ok "[$pass] the young upload survived the restart and the expiry, resumed and completed"
    else
        not_ok "[$pass] the young upload survived the restart and the expiry, resumed and completed" \
            "$out"
    fi

    local deadline=$((SECONDS + 15))
    while got=$(part_numbers old "$restart_old_id") && [ "$got" != NoSuchUpload ] &&
        [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
    done
    if [ "$got" == NoSuchUpload ]; then
        ok "[$pass] the upload older than ${restart_expiry}s was aborted (NoSuchUpload)"
    else
        not_ok "[$pass] the upload older than ${restart_expiry}s was aborted" "list-parts: [$got]"
    fi
    if s3api_ delete-object --bucket $restart_bucket --key young >/dev/null &&
        s3api_ delete-bucket --bucket $restart_bucket >/dev/null; then
        ok "[$pass] the bucket deletes once the upload expired and the object is gone"
    else
        not_ok "[$pass] the bucket deletes once the upload expired and the object is gone"
    fi
}

run_pass() { # PASS (http or https)
    local pass=$1 start=$SECONDS
    echo
    echo "=================================================================== pass: $pass"
    if [ "$pass" == https ]; then
        if ! make_certificate; then
            not_ok "[$pass] openssl makes a self-signed certificate" "$(cat "$work/tls/openssl.log")"
            return
        fi
        ok "[$pass] openssl makes a self-signed certificate for IP:127.0.0.1"
        export AWS_CA_BUNDLE="$cert" CURL_CA_BUNDLE="$cert" SSL_CERT_FILE="$cert"
        export CAIRN_CA_BUNDLE="$cert"
    else
        unset AWS_CA_BUNDLE CAIRN_CA_BUNDLE
    fi
    if ! start_server "$pass" server; then
        not_ok "[$pass] server answers GET /_cairn/health within 30 s" "$(tail -n 40 "$server_log")"
        if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        return
    fi
    ok "[$pass] server answers GET /_cairn/health ($endpoint)"
    case "$endpoint" in
    "$pass"://127.0.0.1:*) ok "[$pass] server announces a $pass endpoint on 127.0.0.1" ;;
    *) not_ok "[$pass] server announces a $pass endpoint on 127.0.0.1" "announced: $endpoint" ;;
    esac

    local health_body
    health_body="$(curl -sS -D "$work/$pass/health.headers" --max-time 5 "$endpoint/_cairn/health" || true)"
    if grep -qi '^HTTP/1.1 200' "$work/$pass/health.headers"; then
        ok "[$pass] health probe needs no credentials (200)"
    else
        not_ok "[$pass] health probe needs no credentials (200)" \
            "$(cat "$work/$pass/health.headers") $health_body"
    fi
    local trailers_at_start
    trailers_at_start="$(chunked_count "$trailer_kind" || true)"
    if [ "$trailers_at_start" == 0 ]; then
        ok "[$pass] GET /_cairn/stats counts $trailer_kind bodies (0 at start)"
    else
        not_ok "[$pass] GET /_cairn/stats counts $trailer_kind bodies (0 at start)" \
            "$(curl -sS --max-time 5 "$endpoint/_cairn/stats" 2>&1 || true)"
    fi

    if [ "$pass" == http ]; then restart_begin "$pass"; fi
    export CAIRN_ENDPOINT="$endpoint" CAIRN_DATA="$data"
    run_suite "$pass" awscli bash "$here/awscli.sh"
    run_suite "$pass" boto3 python3 "$here/boto3_test.py"
    run_suite "$pass" resume python3 "$here/resume_test.py"
    run_suite "$pass" conditional python3 "$here/conditional_test.py"
    run_suite "$pass" rclone bash "$here/rclone.sh"
    run_suite "$pass" acl python3 "$here/acl_test.py"
    run_suite "$pass" s3cmd bash "$here/s3cmd.sh"

    echo
    echo "== server ($pass)"
    if [ "$pass" == http ]; then
        local trailers
        trailers="$(chunked_count "$trailer_kind" || true)"
        if [ "$trailers" == 0 ]; then
            ok "[$pass] no client needed $trailer_kind over plain HTTP (count 0)"
        else
            not_ok "[$pass] no client needed $trailer_kind over plain HTTP" "count: [$trailers]"
        fi
    fi
    if kill -0 "$server_pid" 2>/dev/null; then
        ok "[$pass] server is still running after the suites"
    else
        not_ok "[$pass] server is still running after the suites" "$(tail -n 40 "$server_log")"
    fi
    if [ "$pass" == http ]; then restart_end "$pass"; fi
    if [ -n "$server_pid" ]; then stop_server "$pass"; fi
    if grep -n -i 'panicked' "$work/$pass/"*.log >"$work/$pass/panics"; then
        not_ok "[$pass] server logs have no panic" "$(head -n 20 "$work/$pass/panics")"
    else
        ok "[$pass] server logs have no panic"
    fi
    echo "   (pass $pass: $((SECONDS - start)) s)"
    rm -rf "${work:?}/$pass"
}

for pass in $passes; do
    case "$pass" in
    http | https) run_pass "$pass" ;;
    *) not_ok "known pass name in CAIRN_COMPAT_PASSES: $pass" ;;
    esac
done

finish
