#!/usr/bin/env bash
# valgrind.sh BUILD_DIR — memcheck understands gomalloc's heap, through the
# client requests of src/valgrind_hooks.h (a GM_VALGRIND build):
#   - a small program with a use-after-free and a leak, on gomalloc
#     (LD_PRELOAD, with --soname-synonyms=somalloc=nouserintercepts so that
#     Valgrind leaves gomalloc's malloc alone), makes memcheck report both:
#     an invalid read inside a freed block, and the block "definitely lost";
#     and nothing else (exactly 2 errors: gomalloc's own accesses to free
#     objects raise none);
#   - gomalloc really served it (its statistics count the mallocs);
#   - a real program (sort) under memcheck on gomalloc gets the errors it
#     gets on Valgrind's own malloc, no more; the threaded demo gets none.
# Uses BUILD_DIR's libgomalloc.so if it was configured with GM_VALGRIND=ON,
# else builds one in BUILD_DIR/valgrind. Skips (exit 77) without valgrind or
# its headers, or while src/ has no call sites for the hooks yet.
set -u
B=$(cd "${1:?usage: valgrind.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
skip() { echo "skipped: $*"; exit 77; }
command -v valgrind >/dev/null || skip "no valgrind"
[ -e /usr/include/valgrind/memcheck.h ] || skip "no valgrind/memcheck.h"
grep -q 'gm_vg_alloc(' "$SRC"/src/*.c "$SRC"/src/internal.h || skip "src/ has no valgrind call sites yet"

W=$(mktemp -d "${TMPDIR:-/tmp}/gm_valgrind.XXXXXX")
trap 'rm -rf "$W"' EXIT
npass=0
nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }

# A build with the client requests.
VB=$B
if ! grep -q '^GM_VALGRIND:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
    VB=$B/valgrind
    if ! { cmake -S "$SRC" -B "$VB" -DGM_VALGRIND=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
        cmake --build "$VB" --target gomalloc -j 2; } >"$W/build.log" 2>&1; then
        tail -20 "$W/build.log"
        echo "FAIL: building libgomalloc with GM_VALGRIND=ON"
        exit 1
    fi
fi
LIB=$(readlink -f "$VB/libgomalloc.so")

cat >"$W/bad.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *keep[8];

/* A block nobody points to once this returns (not the first of its span,
 * which the span record points to). */
__attribute__((noinline)) static void leak(void)
{
    char *p = malloc(100);
    memset(p, 1, 100);
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Scrubs the stack below main's frame, where leak's pointer may linger. */
__attribute__((noinline)) static void scrub(void)
{
    volatile char junk[4096];
    memset((char *)junk, 0, sizeof junk);
}

int main(void)
{
    for (int i = 0; i < 8; i++) keep[i] = malloc(100);
    leak();
    scrub();
    char *q = malloc(200);
    memset(q, 2, 200);
    free(q);
    volatile char c = q[10]; /* use after free */
    printf("read %d\n", c);
    for (int i = 0; i < 8; i++) free(keep[i]);
    return 0;
}
EOF
cc -O0 -g -o "$W/bad" "$W/bad.c" || { echo "FAIL: cannot compile the test program"; exit 1; }

VG="valgrind --soname-synonyms=somalloc=nouserintercepts --leak-check=full --errors-for-leak-kinds=definite"
LD_PRELOAD=$LIB GOMALLOC_STATS=1 $VG "$W/bad" >"$W/out" 2>"$W/err"
grep -q "Invalid read of size 1" "$W/err" && grep -q "bytes inside a block of size .* free'd" "$W/err" &&
    pass "use after free: invalid read inside a freed block" || fail "use after free not reported"
grep -qE "definitely lost: [1-9][0-9,]* bytes in 1 blocks" "$W/err" &&
    pass "leak: definitely lost" || fail "leak not reported as definitely lost"
grep -q "ERROR SUMMARY: 2 errors from 2 contexts" "$W/err" &&
    pass "exactly those two errors" || fail "other errors: $(grep 'ERROR SUMMARY' "$W/err")"
mallocs=$(awk '$1 == "mallocs" { print $2 }' "$W/err")
[ "${mallocs:-0}" -ge 10 ] && pass "gomalloc served the program ($mallocs mallocs)" ||
    fail "gomalloc did not serve the program (mallocs '${mallocs:-}')"
[ "$nfail" -eq 0 ] || head -60 "$W/err"

# A real program: the same errors as on Valgrind's own malloc (sort leaks
# a block on purpose), so gomalloc adds no false report.
summary() { sed -n 's/.*\(ERROR SUMMARY: [0-9]* errors\).*/\1/p' "$1"; }
seq 1 20000 | $VG sort -r >"$W/sorted0" 2>"$W/err0"
seq 1 20000 | LD_PRELOAD=$LIB $VG sort -r >"$W/sorted" 2>"$W/err2"
if [ -n "$(summary "$W/err0")" ] && [ "$(summary "$W/err2")" = "$(summary "$W/err0")" ] &&
    cmp -s "$W/sorted" "$W/sorted0"; then
    pass "sort under memcheck: $(summary "$W/err2"), as on Valgrind's malloc"
else
    fail "sort under memcheck: $(summary "$W/err2"), on Valgrind's malloc: $(summary "$W/err0")"
    head -40 "$W/err2"
fi

# Threads, cross-thread frees and exits (the demo checks its own results).
if [ -x "$B/gomalloc-demo" ]; then
    if LD_PRELOAD=$LIB $VG "$B/gomalloc-demo" >"$W/demo" 2>"$W/err3" &&
        grep -q "ERROR SUMMARY: 0 errors" "$W/err3" && grep -q " 0 mismatches" "$W/demo" &&
        grep -qE "total heap usage: [0-9]{3},[0-9,]* allocs" "$W/err3"; then
        pass "the threaded demo under memcheck: 0 errors, $(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$W/err3") blocks tracked"
    else
        fail "the threaded demo under memcheck: $(summary "$W/err3")"
        head -40 "$W/err3"
    fi
fi

echo "valgrind: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
