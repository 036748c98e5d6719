#!/usr/bin/env bash
# musl_static.sh BUILD_DIR — gomalloc with musl: libgomalloc.a built by
# musl-gcc (musl-tools) with the project's own CMake rules in
# BUILD_DIR/musl, linked into the static program tests/static_link.c (the
# api_static test's, here against musl's libc.a), which is then run: it
# allocates, frees and reallocs (small, shared and large classes), from
# four threads too, forks, checks every result and the contents it wrote,
# and ends with gm_check(). Also checks that the program is static, is
# musl's, and holds no malloc of musl's own (gomalloc's replaces all of it).
#
# About 15 s on 2 cores (configure 4 s, build 8 s, run under 1 s). musl-tools
# is installed with apt-get if missing; if that is impossible the test is
# skipped (exit 77) with the reason, never passed.
. "$(dirname "$0")/testlib.bash"
. "$SRC/tests/packages.bash"

need musl-gcc musl-tools || { echo "SKIP: no musl-gcc (musl-tools) to build with"; exit 77; }

M="$B/musl"
t0=$(date +%s)
# GM_FUZZ_OK=OFF: no probe for the libFuzzer target, which this build has no use for.
if CC=musl-gcc cmake -S "$SRC" -B "$M" -DGM_FUZZ_OK=OFF >"$W/configure.log" 2>&1 &&
        cmake --build "$M" -j 2 --target api_static >"$W/build.log" 2>&1; then
    pass "libgomalloc.a and tests/static_link.c built with musl-gcc in $M"
else
    tail -n 20 "$W/configure.log"
    grep -E 'error|warning|undefined|multiple' "$W/build.log" | head -n 20
    fail "build with musl-gcc"
    finish
    exit
fi
t1=$(date +%s)
P="$M/tools/api_static"

check "the program is statically linked" sh -c "! LC_ALL=C readelf -l '$P' | grep -q INTERP"
check "the program has musl's start-up (__init_libc)" sh -c "nm '$P' | grep -q ' __init_libc\$'"
# musl's own malloc (mallocng, or its bump allocator) would show these.
check "the program holds no malloc of musl's" sh -c "! nm '$P' | grep -qE ' (__libc_malloc_impl|__malloc_donate|alloc_meta)\$'"

if timeout 120 "$P" >"$W/run.log" 2>&1; then
    pass "the static musl program: $(tail -n 1 "$W/run.log")"
else
    cat "$W/run.log"
    fail "the static musl program"
fi
t2=$(date +%s)
echo "times: configure and build $((t1 - t0)) s, run $((t2 - t1)) s"
finish
