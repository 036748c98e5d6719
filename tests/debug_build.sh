#!/usr/bin/env bash
# debug_build.sh BUILD_DIR — the GM_DEBUG build: base.h's lock order checked
# at every lock taken (a lock taken while holding one of the same or a later
# rank aborts with both ranks) and the invariants stated as GM_ASSERT. It
# configures BUILD_DIR/debug with the same compiler and -DGM_DEBUG=ON, builds
# it, and runs there the unit tests (unit_base checks that an out-of-order
# lock does abort) and the API tests that take every lock in many orders:
# threads, the torture test (threads, forks, limits, scavenging), limits,
# the scavenger's, and the real-program style api_run (the demo, ls, sort,
# python under the preloaded debug library).
. "$(dirname "$0")/testlib.bash"
D=$B/debug
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$B/CMakeCache.txt")
if ! cmake -S "$SRC" -B "$D" -DGM_DEBUG=ON ${cc:+-DCMAKE_C_COMPILER="$cc"} >"$W/configure.log" 2>&1; then
    tail -n 20 "$W/configure.log"
    fail "configure the debug build"
    finish
    exit
fi
if ! cmake --build "$D" -j "$(nproc)" >"$W/build.log" 2>&1; then
    grep -E 'error|warning' "$W/build.log" | head -n 20
    fail "build the debug build"
    finish
    exit
fi
pass "the GM_DEBUG build compiles"
if (cd "$D" && ctest -j "$(nproc)" --output-on-failure -L unit >"$W/unit.log" 2>&1); then
    pass "unit tests on the debug build ($(grep -c 'Test *#.*Passed' "$W/unit.log") passed)"
else
    fail "unit tests on the debug build"
    grep -E 'Failed|lock order|assertion|CHECK' "$W/unit.log" | head -n 20
fi
if (cd "$D" && ctest -j "$(nproc)" --output-on-failure \
        -R '^(api_threads|api_torture|api_limit|api_scavenge|api_scavenge_bg|api_malloc|api_death|api_errno|api_run)$' \
        >"$W/api.log" 2>&1); then
    pass "API tests on the debug build ($(grep -c 'Test *#.*Passed' "$W/api.log") passed)"
else
    fail "API tests on the debug build"
    grep -E 'Failed|lock order|assertion|CHECK' "$W/api.log" | head -n 20
fi
# unit_base provokes one on purpose (its "ranks:" line); any other is a bug.
if grep -h 'lock order broken\|unlock of a lock not held\|assertion failed' "$W/unit.log" "$W/api.log" | grep -qv '^ranks:'; then
    fail "a lock order violation or a failed assertion was reported"
else
    pass "no lock order violation or failed assertion reported"
fi
finish
