#!/usr/bin/env bash
# api_run.sh BUILD_DIR — gomalloc-run and the exit report, on real programs.
#   - gomalloc-run --stats on the demo: its own checks pass, the report
#     appears on stderr and shows the demo's allocations;
#   - the preload is in effect (the report of `ls` counts mallocs);
#   - GOMALLOC_CHECK=1 (gomalloc-run --check): the consistency check at exit
#     finds nothing wrong in the demo, ls, sort, and python3 if present;
#   - bad usage exits 2; a missing command fails like exec does.
set -u
B=${1:?usage: api_run.sh BUILD_DIR}
RUN=$B/gomalloc-run
W=$(mktemp -d "${TMPDIR:-/tmp}/gm_api_run.XXXXXX")
trap 'rm -rf "$W"' EXIT
npass=0
nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }

# The demo with --stats.
if "$RUN" --stats "$B/gomalloc-demo" >"$W/out" 2>"$W/err"; then
    pass "demo exits 0"
else
    fail "demo exit status $?"; cat "$W/out" "$W/err"
fi
grep -q "0 mismatches" "$W/out" && grep -q " 0 corrupt" "$W/out" && pass "demo results" || fail "demo results"
grep -q "^gomalloc statistics of " "$W/err" && pass "stats report on stderr" || fail "no stats report"
mallocs=$(awk '$1 == "mallocs" { print $2 }' "$W/err")
if [ "${mallocs:-0}" -gt 200000 ]; then pass "report counts the demo's mallocs ($mallocs)"; else fail "mallocs = '${mallocs:-}'"; fi

# The preload reaches a program that knows nothing of gomalloc.
"$RUN" --stats ls -l / >/dev/null 2>"$W/err"
mallocs=$(awk '$1 == "mallocs" { print $2 }' "$W/err")
if [ "${mallocs:-0}" -gt 0 ]; then pass "ls runs on gomalloc ($mallocs mallocs)"; else fail "ls: no report"; cat "$W/err"; fi

# GOMALLOC_STATS set by hand, LD_PRELOAD set by hand.
LD_PRELOAD=$(readlink -f "$B/libgomalloc.so") GOMALLOC_STATS=1 sort /etc/passwd >/dev/null 2>"$W/err"
grep -q "^gomalloc statistics of " "$W/err" && pass "GOMALLOC_STATS=1 by hand" || fail "GOMALLOC_STATS=1 by hand"
LD_PRELOAD=$(readlink -f "$B/libgomalloc.so") GOMALLOC_STATS=0 sort /etc/passwd >/dev/null 2>"$W/err"
[ ! -s "$W/err" ] && pass "GOMALLOC_STATS=0: silent" || fail "GOMALLOC_STATS=0 printed something"

# The consistency check at exit.
check_run() {
    local name=$1
    shift
    if "$RUN" --check "$@" >/dev/null 2>"$W/err" && ! grep -q "gomalloc" "$W/err"; then
        pass "check at exit: $name"
    else
        fail "check at exit: $name"; head -20 "$W/err"
    fi
}
check_run demo "$B/gomalloc-demo"
check_run ls ls -lR /usr/include
check_run sort sh -c 'seq 1 200000 | sort -r | sort -n | tail -1'
if command -v python3 >/dev/null; then
    check_run python3 env PYTHONMALLOC=malloc python3 -c '
import threading, json
d = {str(i): [i] * (i % 50) for i in range(100000)}
s = json.dumps(d)
def work(n):
    x = [bytes(n % 3000) for _ in range(20000)]
    del x[::2]
t = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[x.start() for x in t]; [x.join() for x in t]
assert json.loads(s) == d'
fi

# Usage errors.
"$RUN" >/dev/null 2>&1
[ $? -eq 2 ] && pass "no command: exit 2" || fail "no command: wrong status"
"$RUN" --bogus true >/dev/null 2>&1
[ $? -eq 2 ] && pass "unknown option: exit 2" || fail "unknown option: wrong status"
"$RUN" /nonexistent/cmd >/dev/null 2>&1
[ $? -ne 0 ] && pass "missing command fails" || fail "missing command succeeded"

echo "api_run: $npass passed, $nfail failed"
[ $nfail -eq 0 ]
