#!/usr/bin/env bash
# options.sh BUILD_DIR — GOMALLOC_* values as a program on the library sees
# them (src/options.c's table; unit_options tests the parser itself):
#   - each bad value of issue 12 (GOMALLOC_MEMORY_LIMIT=64M:hrd and 1M,
#     GOMALLOC_DECAY_MS=abc and -5, GOMALLOC_STATS=jsno, GOMALLOC_THP=maybe)
#     and one of every other option: the program exits 0, its stderr is
#     exactly one line, "gomalloc: NAME=VALUE: not <forms>; using the
#     default <default>", and what it observes (memory limit, strict mode,
#     checked mode, no report) is what it observes with no variable set;
#   - good values in other forms are in force with no line: a limit in
#     MiB with :HARD, in m, strict off, checked mode from "yes", the text
#     report from "on", the JSON report from "JSON", GOMALLOC_BACKGROUND=thread;
#   - real programs (ls, a shell, python3) warn once per process.
. "$(dirname "$0")/testlib.bash"
LIB=$(readlink -f "$B/libgomalloc.so")

cat >"$W/probe.c" <<'C'
#include <gomalloc.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    static void *volatile keep;
    keep = malloc(10); /* checked mode: its usable size is the requested 10 */
    int hard = -1;
    size_t limit = gm_get_memory_limit(&hard);
    struct gm_stats st;
    gm_stats_get(&st);
    printf("limit %zu hard %d strict %d usable %zu\n", limit, hard, (int)st.strict_commit,
           malloc_usable_size(keep));
    free(keep);
    return 0;
}
C
cc -O2 -I"$SRC/include" -o "$W/probe" "$W/probe.c" -L"$B" -lgomalloc -Wl,-rpath,"$B" || {
    fail "build the probe"
    finish
    exit
}

base=$("$W/probe" 2>"$W/err")
check "no variable: nothing on stderr ($base)" test ! -s "$W/err"

# bad NAME VALUE DEFAULT: one warning line, and the defaults in force.
bad() {
    local name=$1 value=$2 def=$3 out rc
    out=$(env "$name=$value" "$W/probe" 2>"$W/err")
    rc=$?
    local lines line
    lines=$(wc -l <"$W/err")
    line=$(head -1 "$W/err")
    if [ $rc -ne 0 ] || [ "$lines" -ne 1 ]; then
        fail "$name=$value: exit $rc, $lines lines on stderr"
        cat "$W/err"
    elif [[ "$line" != "gomalloc: $name=$value: not "*"; using the default $def" ]]; then
        fail "$name=$value: the line is: $line"
    elif [ "$out" != "$base" ]; then
        fail "$name=$value: observed '$out', with no variable '$base'"
    else
        pass "$name=$value: one line, the default in force"
    fi
}
bad GOMALLOC_MEMORY_LIMIT 64M:hrd none
bad GOMALLOC_MEMORY_LIMIT 1M none
bad GOMALLOC_DECAY_MS abc 500
bad GOMALLOC_DECAY_MS -5 500
bad GOMALLOC_STATS jsno off
bad GOMALLOC_THP maybe auto
bad GOMALLOC_CHECK 2 off
bad GOMALLOC_STRICT maybe 1
bad GOMALLOC_BACKGROUND sometimes auto
bad GOMALLOC_TRACE_MS 0 10

# good NAME=VALUE EXPECT: no line from gomalloc, and EXPECT (a pattern) in
# the probe's line (the probe's stdout and any report on stderr together).
good() {
    local var=$1 want=$2 out
    out=$(env "$var" "$W/probe" 2>"$W/err")
    if grep -q '^gomalloc: ' "$W/err"; then
        fail "$var: a warning: $(grep '^gomalloc: ' "$W/err")"
    elif ! printf '%s\n' "$out" | cat - "$W/err" | grep -qE -- "$want"; then
        fail "$var: '$want' not in '$out' $(head -c 200 "$W/err")"
    else
        pass "$var: in force"
    fi
}
good GOMALLOC_MEMORY_LIMIT=64MiB:HARD "^limit $((64 << 20)) hard 1 "
good GOMALLOC_MEMORY_LIMIT=48m "^limit $((48 << 20)) hard 0 "
good GOMALLOC_MEMORY_LIMIT=none "^limit 0 "
good GOMALLOC_STRICT=off " strict 0 "
good GOMALLOC_CHECK=yes " usable 10$"
good GOMALLOC_STATS=on "^gomalloc statistics of probe"
good GOMALLOC_STATS=JSON '^\{"version": 2, '
good GOMALLOC_BACKGROUND=thread "^$base$"
good GOMALLOC_THP=off "^$base$"
good GOMALLOC_DECAY_MS=0 "^$base$"

# Real programs: one line per process.
once() {
    local what=$1 n
    shift
    env LD_PRELOAD="$LIB" GOMALLOC_DECAY_MS=abc "$@" >/dev/null 2>"$W/err"
    n=$(grep -c '^gomalloc: GOMALLOC_DECAY_MS=abc: ' "$W/err")
    check "$what: one warning ($n)" test "$n" = 1
}
once ls ls /
once "a shell" sh -c ': builtins only'
if command -v python3 >/dev/null; then
    PY=$(python3 -c 'import sys; print(sys.executable)') # not a wrapper script (pyenv)
    once python3 "$PY" -c 'print(len([str(i) for i in range(1000)]))'
fi
finish
