# The check runner and assertions of the shell suites (awscli.sh, rclone.sh), sourced by them.
# Every check runs in a `set -e` subshell, so its first failing command or assertion fails it and the
# suite goes on with the next check; `report NAME` prints the counts and writes them where
# compat/run.sh reads them ($CAIRN_COMPAT_COUNTS).

passed=0
failed=0

# check DESCRIPTION COMMAND [ARGS...]: runs the command in a `set -e` subshell and counts the result.
check() {
    local name=$1
    shift
    local out rc start=${EPOCHREALTIME/[.,]/} took
    set +e
    out=$(set -e; "$@" 2>&1)
    rc=$?
    set -e
    took=$(((${EPOCHREALTIME/[.,]/} - start) / 100000))
    took="$((took / 10)).$((took % 10))s"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   - $name ($took)"
    else
        failed=$((failed + 1))
        echo "FAIL - $name ($took)"
        printf '%s\n' "$out" | tail -n 25 | sed 's/^/       /'
    fi
}

fail_with() {
    echo "$*" >&2
    return 1
}
expect_eq() { # ACTUAL EXPECTED [WHAT]
    [ "$1" == "$2" ] || fail_with "${3:-value}: expected [$2], got [$1]"
}
expect_contains() { # HAYSTACK NEEDLE
    case "$1" in *"$2"*) ;; *) fail_with "expected output to contain [$2], got: $1" ;; esac
}
expect_not_contains() { # HAYSTACK NEEDLE
    case "$1" in *"$2"*) fail_with "expected output not to contain [$2], got: $1" ;; *) ;; esac
}
# expect_exit CODE COMMAND...: runs the command, prints its combined output, fails unless it exited
# with CODE ("nonzero" accepts any failure).
expect_exit() {
    local want=$1
    shift
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    printf '%s\n' "$out"
    if [ "$want" == nonzero ]; then
        [ "$rc" -ne 0 ] || fail_with "expected a failure, got exit 0: $out"
    else
        [ "$rc" -eq "$want" ] || fail_with "expected exit $want, got $rc: $out"
    fi
}
# report SUITE: the suite's last line, and its counts for compat/run.sh.
report() {
    echo "$1: $passed passed, $failed failed"
    echo "$passed $failed" >"${CAIRN_COMPAT_COUNTS:-/dev/null}"
}
