#!/usr/bin/env bash
# s3cmd against a running Cairn's access control (issue 18): `setacl --acl-public` and
# `put --acl-public` followed by an anonymous curl, `setacl --acl-private`, `info` showing the
# ACL, `setpolicy`/`delpolicy` with a public-read bucket policy. s3cmd runs with SigV4 and
# path-style addressing, otherwise at its defaults.
# Started by compat/run.sh, over HTTP and over HTTPS, which provides the server and the environment:
#   CAIRN_ENDPOINT, CAIRN_BIN, CAIRN_DATA, CAIRN_COMPAT_WORK, CAIRN_COMPAT_COUNTS (and over HTTPS
#   CAIRN_CA_BUNDLE and CURL_CA_BUNDLE naming the test certificate). The suite's user and key are
#   made with `cairn admin --json` on the server's metadata file.
set -euo pipefail

: "${CAIRN_ENDPOINT:?run through compat/run.sh}"
work="${CAIRN_COMPAT_WORK:?run through compat/run.sh}"
ep="$CAIRN_ENDPOINT"
readonly bucket=s3cmd-acl
files="$work/files"
mkdir -p "$files" "$work/out"

# shellcheck source=compat/lib.sh
source "$(dirname "$0")/lib.sh"

admin() { timeout 60 "$CAIRN_BIN" admin --meta "sqlite://$CAIRN_DATA/meta.db" "$@" --json; }
jget() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
s3cmd_() { timeout --kill-after=5 120 s3cmd -c "$work/s3cmd.cfg" "$@"; }
# anon_curl URL: curl without credentials; prints the status code, the body goes to out/anon.
anon_curl() { curl -sS --max-time 30 -o "$work/out/anon" -w '%{http_code}' "$1"; }
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
}
anon_is() { # CODE URL
    local got
    got=$(anon_curl "$2")
    [ "$got" == "$1" ] || fail_with "anonymous GET $2: $got, expected $1"
}

head -c 3000 /dev/urandom >"$files/obj"
head -c 70000 /dev/urandom >"$files/pub2"

t_config() {
    key=$(admin key create s3cmd --user "$(admin user create s3cmd-user | jget name)")
    local host=${ep#*://} https=False
    if [ "${ep%%://*}" == https ]; then https=True; fi
    cat >"$work/s3cmd.cfg" <<EOF
[default]
access_key = $(jget access_key_id <<<"$key")
secret_key = $(jget secret_access_key <<<"$key")
host_base = $host
host_bucket = $host
use_https = $https
check_ssl_certificate = True
ca_certs_file = ${CAIRN_CA_BUNDLE:-}
signature_v2 = False
bucket_location = us-east-1
EOF
    s3cmd_ mb "s3://$bucket"
    s3cmd_ put "$files/obj" "s3://$bucket/obj"
    expect_contains "$(s3cmd_ ls "s3://$bucket")" "s3://$bucket/obj"
}
t_private() { anon_is 403 "$ep/$bucket/obj"; }
t_setacl_public() {
    out=$(s3cmd_ setacl --acl-public "s3://$bucket/obj")
    expect_contains "$out" "ACL set to Public"
    eventually anon_is 200 "$ep/$bucket/obj"
    anon_is 200 "$ep/$bucket/obj"
    cmp "$work/out/anon" "$files/obj"
}
t_info_acl() {
    out=$(s3cmd_ info "s3://$bucket/obj")
    expect_contains "$out" "*anon*: READ"
}
t_setacl_private() {
    out=$(s3cmd_ setacl --acl-private "s3://$bucket/obj")
    expect_contains "$out" "ACL set to Private"
    eventually anon_is 403 "$ep/$bucket/obj"
}
t_put_public() {
    s3cmd_ put --acl-public "$files/pub2" "s3://$bucket/pub2"
    anon_is 200 "$ep/$bucket/pub2"
    cmp "$work/out/anon" "$files/pub2"
}
t_policy() {
    printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s/*"}]}' \
        "$bucket" >"$work/policy.json"
    s3cmd_ setpolicy "$work/policy.json" "s3://$bucket"
    eventually anon_is 200 "$ep/$bucket/obj"
    s3cmd_ delpolicy "s3://$bucket"
    eventually anon_is 403 "$ep/$bucket/obj"
}
t_cleanup() {
    s3cmd_ del --recursive --force "s3://$bucket"
    s3cmd_ rb "s3://$bucket"
}

check "cairn admin --json makes s3cmd's user and key; s3cmd mb, put and ls" t_config
check "a private object is refused to anonymous curl (403)" t_private
check "s3cmd setacl --acl-public, then anonymous curl: 200 and the bytes" t_setacl_public
check "s3cmd info shows the AllUsers READ grant" t_info_acl
check "s3cmd setacl --acl-private: anonymous curl refused again" t_setacl_private
check "s3cmd put --acl-public: served to anonymous curl" t_put_public
check "s3cmd setpolicy (public read) and delpolicy: anonymous curl follows" t_policy
check "s3cmd del --recursive and rb" t_cleanup

report s3cmd
