# testlib.bash — shared by the script tests that source it (not a test
# itself: tests/*.sh are the tests). Sets B (the build directory, $1), SRC
# (the source tree), W (a scratch directory removed at exit), and gives
# pass/fail/finish, which ends with "NAME: N passed, M failed".
set -u
unset LD_PRELOAD
B=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/gm_$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$W"' EXIT
npass=0
nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
# check DESCRIPTION COMMAND...: pass if the command succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
    echo "$(basename "$0" .sh): $npass passed, $nfail failed"
    [ "$nfail" -eq 0 ]
}
