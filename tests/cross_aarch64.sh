#!/usr/bin/env bash
# cross_aarch64.sh BUILD_DIR — gomalloc on aarch64: the library, the unit
# tests and the API tests cross-built with Debian's aarch64 toolchain
# (cmake/aarch64-linux-gnu.cmake) in BUILD_DIR/aarch64, then run under
# qemu-user by ctest. Passes only if every test it runs passes.
#
# What it runs: every unit test (each layer through src/internal.h) and
# every API test (libgomalloc.so, and api_static, linked with libc.a), but
# two:
#   api_thp      checks the MADV_NOHUGEPAGE flag in /proc/self/smaps, and
#                qemu-user accepts that advice and ignores it;
#   api_torture  forks while threads run (see TEST_GAP_FORK in tests/test.h),
#                under an RLIMIT_DATA qemu-user ignores, against VmData and
#                VmRSS goals that count the emulator's memory: nothing of it
#                holds there. unit_stress and api_threads run its mix.
# Both run natively. Within the others, the checks that read what qemu-user
# does not show as the kernel would (VmData and VmRSS, the program's
# threads, RLIMIT_AS and RLIMIT_DATA, threads started in a fork child) are
# skipped there with a line saying which and why (test_skip_emulated,
# tests/test.h); they all run natively. The tests learn the emulator from
# GM_TEST_EMULATOR, through which they also start their fresh sub-cases.
#
# What it cannot check: qemu-user on an x86-64 host runs aarch64 code with
# the host's stronger memory ordering, so an atomic with too weak an order
# passes here; only arm64 hardware shows that.
#
# Time (2 cores, nothing else running): 3.5 minutes. Configure 1 s, build
# 16-30 s, tests 3-3.5 minutes two at a time, most of it unit_faults (2 to 3
# minutes: 3 to 5 times its native time) beside all the others (unit_stress
# and api_threads about 50 s each). Within make test, 2.5 minutes. Each test
# may take GM_CROSS_TIMEOUT seconds (default 900: room for a loaded machine).
#
# Missing packages (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
# qemu-user) are installed with apt-get; if that is impossible the test is
# skipped (exit 77) with the reason, never passed.
. "$(dirname "$0")/testlib.bash"
. "$SRC/tests/packages.bash"
skip() {
    echo "SKIP: $*"
    exit 77
}

X="$B/aarch64"
SYSROOT=/usr/aarch64-linux-gnu
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu || skip "no aarch64 cross compiler (gcc-aarch64-linux-gnu)"
[ -e "$SYSROOT/include/stdio.h" ] || install_pkg libc6-dev-arm64-cross ||
    skip "no aarch64 C library to build against (libc6-dev-arm64-cross)"
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
if [ -z "$QEMU" ]; then
    install_pkg qemu-user || skip "no qemu-aarch64 to run the tests (qemu-user)"
    QEMU=$(command -v qemu-aarch64) || skip "qemu-user is installed but has no qemu-aarch64"
fi
echo "cross compiler: $(aarch64-linux-gnu-gcc -dumpfullversion), emulator: $QEMU ($("$QEMU" --version | head -n 1))"

t0=$(date +%s)
if cmake -S "$SRC" -B "$X" -DCMAKE_TOOLCHAIN_FILE="$SRC/cmake/aarch64-linux-gnu.cmake" \
        -DGM_QEMU_AARCH64="$QEMU" -DGM_TEST_TIMEOUT="${GM_CROSS_TIMEOUT:-900}" >"$W/configure.log" 2>&1; then
    pass "configured for aarch64 in $X"
else
    tail -n 20 "$W/configure.log"
    fail "configure"
    finish
    exit
fi
t1=$(date +%s)
# The tests and what they link; not the tools, demo or helper programs.
targets=$(cd "$SRC/tests" && ls unit_*.c api_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
if cmake --build "$X" -j "${GM_CROSS_JOBS:-2}" --target $targets api_static >"$W/build.log" 2>&1; then
    pass "built the unit and API tests"
else
    grep -E 'error|warning' "$W/build.log" | head -n 20
    fail "build"
    finish
    exit
fi
t2=$(date +%s)

# The binaries are aarch64's: a toolchain that fell back to the host
# compiler would pass everything below without testing anything.
machine=$(LC_ALL=C readelf -h "$X/tests/unit_small" 2>/dev/null | sed -n 's/^ *Machine: *//p')
check "the test programs are aarch64 binaries (readelf: $machine)" [ "$machine" = AArch64 ]

export GM_TEST_EMULATOR="$QEMU" QEMU_LD_PREFIX="$SYSROOT"
(cd "$X" && ctest -j "${GM_CROSS_JOBS:-2}" --output-on-failure -E '^(api_thp|api_torture)$') >"$W/ctest.log" 2>&1
rc=$?
t3=$(date +%s)
grep -E '^ *[0-9]+/[0-9]+ Test|tests passed' "$W/ctest.log"
# What was skipped, once each (ctest keeps every test's output there).
grep -ho 'skipped under [^:]*: [^:]*' "$X/Testing/Temporary/LastTest.log" 2>/dev/null | sort | uniq -c
if [ "$rc" -eq 0 ]; then
    pass "unit and API tests under qemu-aarch64"
else
    sed -n '/The following tests FAILED/,$p' "$W/ctest.log"
    cp "$W/ctest.log" "$X/ctest-aarch64.log"
    echo "(the whole ctest output: $X/ctest-aarch64.log)"
    fail "unit and API tests under qemu-aarch64"
fi
echo "times: configure $((t1 - t0)) s, build $((t2 - t1)) s, tests $((t3 - t2)) s"
finish
