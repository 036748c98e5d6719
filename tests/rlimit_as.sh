#!/usr/bin/env bash
# rlimit_as.sh BUILD_DIR — gomalloc under RLIMIT_AS (ulimit -v), side by
# side with glibc's malloc (issue 12), with tests/helper_as_fill.c (built
# without gomalloc, run once on glibc and once with the preload):
#   - under RLIMIT_AS of 64, 128, 256 MiB and 1 GiB, blocks of 1 KiB and,
#     separately, of 1 MiB, each filled with a pattern, until malloc fails:
#     on gomalloc at least 80% of the bytes glibc gets under the same limit,
#     then NULL with ENOMEM, every block intact, allocation again after
#     frees, and gm_check() == 0 (which also proves the preload worked);
#   - a program that lowers RLIMIT_AS with setrlimit after its heap has
#     started goes on to fill what the limit leaves, frees, allocates again;
#   - CPython (found as real_programs.sh finds it) starts and runs a short
#     script under RLIMIT_AS of 256 MiB and of 64 MiB (skipped without
#     python3, or where it cannot run on glibc either).
# The figures (MiB on glibc, MiB on gomalloc, ratio) are printed.
. "$(dirname "$0")/testlib.bash"
LIB=$B/libgomalloc.so
HELPER=$B/tests/helper_as_fill
if [ ! -f "$LIB" ] || [ ! -x "$HELPER" ]; then
    echo "SKIP: $LIB or $HELPER is not built"
    exit 77
fi
MIN_PCT=80

# limited KIB [LIB] CMD...: CMD under RLIMIT_AS of KIB KiB (soft and hard),
# with LIB preloaded unless it is "-"; output in $W/out, $W/err, status in rc.
limited() {
    local kib=$1 lib=$2
    shift 2
    if [ "$lib" = - ]; then
        (ulimit -v "$kib" && exec "$@") >"$W/out" 2>"$W/err"
    else
        (ulimit -v "$kib" && LD_PRELOAD=$lib exec "$@") >"$W/out" 2>"$W/err"
    fi
    rc=$?
}

# bytes_of: the byte count of helper_as_fill's line in $W/out (0 if none).
bytes_of() { sed -n 's/^blocks [0-9]* bytes \([0-9]*\).*/\1/p' "$W/out" | grep . || echo 0; }

# A limit this shell cannot set (its own hard limit is lower) is skipped.
settable() { local hard; hard=$(ulimit -H -v); [ "$hard" = unlimited ] || [ "$hard" -ge "$1" ]; }

for mib in 64 128 256 1024; do
    if ! settable $((mib * 1024)); then
        echo "SKIP: RLIMIT_AS $mib MiB: the hard limit is $(ulimit -H -v) KiB"
        continue
    fi
    for block in 1024 1048576; do
        what="RLIMIT_AS $mib MiB, $([ "$block" = 1024 ] && echo 1 KiB || echo 1 MiB) blocks"
        limited $((mib * 1024)) - "$HELPER" fill "$block"
        g=$(bytes_of) grc=$rc gerr=$(head -c 300 "$W/err")
        limited $((mib * 1024)) "$LIB" "$HELPER" fill "$block"
        p=$(bytes_of) prc=$rc perr=$(head -c 300 "$W/err")
        checked=$(grep -c 'gm_check 0' "$W/out")
        awk -v w="$what" -v g="$g" -v p="$p" 'BEGIN { printf "%s: glibc %.1f MiB, gomalloc %.1f MiB, ratio %.2f\n",
            w, g / 1048576, p / 1048576, (g > 0 ? p / g : 0) }'
        if [ "$grc" != 0 ] || [ "$g" = 0 ]; then
            fail "$what: the glibc run failed (status $grc): $gerr"
        elif [ "$prc" != 0 ] || [ "$checked" != 1 ]; then
            fail "$what: the gomalloc run failed (status $prc, gm_check seen: $checked): $perr"
        elif [ $((p * 100)) -lt $((g * MIN_PCT)) ]; then
            fail "$what: gomalloc got less than $MIN_PCT% of glibc's bytes"
        else
            pass "$what: ENOMEM at the end, blocks intact, allocation after frees, gm_check 0, >= $MIN_PCT% of glibc"
        fi
    done
done

# The limit falls after the heap has started: 16 MiB allocated, then
# RLIMIT_AS = VmSize + 64 MiB, then fill, free, fill again.
unlimited=$(ulimit -v)
for block in 1024 1048576; do
    limited "$unlimited" "$LIB" "$HELPER" lower "$block" 64
    p=$(bytes_of)
    echo "setrlimit after start, $block-byte blocks: gomalloc $((p >> 20)) MiB (16 before the limit)"
    if [ "$rc" = 0 ] && [ "$p" -gt $((16 << 20)) ] && grep -q 'gm_check 0' "$W/out"; then
        pass "RLIMIT_AS lowered after start ($block-byte blocks): more allocated, then ENOMEM, frees, again, gm_check 0"
    else
        fail "RLIMIT_AS lowered after start ($block-byte blocks): status $rc, $((p >> 20)) MiB: $(head -c 300 "$W/err")"
    fi
done

# CPython, as real_programs.sh finds it (pyenv shims resolved).
PY=
for cand in "${GM_PYTHON:-}" "$(command -v python3 2>/dev/null)" /usr/bin/python3; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    PY=$("$cand" -c 'import sys; print(sys.executable)' 2>/dev/null) && [ -x "$PY" ] && break
    PY=
done
if [ -z "$PY" ]; then
    echo "SKIP: no python3"
else
    script='import json, re
d = {str(i): [i * j for j in range(i % 40)] for i in range(20000)}
s = json.dumps(d)
assert json.loads(s) == d and len(re.findall(r"\[\]", s)) == 500
print("ok", len(s))'
    for mib in 256 64; do
        settable $((mib * 1024)) || continue
        limited $((mib * 1024)) - "$PY" -c "$script"
        if [ "$rc" != 0 ] || ! grep -q '^ok ' "$W/out"; then
            echo "SKIP: python under RLIMIT_AS $mib MiB does not run on glibc either (status $rc)"
            continue
        fi
        limited $((mib * 1024)) "$LIB" env GOMALLOC_STATS=1 "$PY" -c "$script"
        if [ "$rc" = 0 ] && grep -q '^ok ' "$W/out" && grep -q 'gomalloc statistics' "$W/err"; then
            pass "python ($PY) runs a script under RLIMIT_AS $mib MiB, preloaded ($(grep -m1 ' reserved ' "$W/err" | awk '{print $2, $3}') reserved)"
        else
            fail "python under RLIMIT_AS $mib MiB, preloaded: status $rc: $(head -c 300 "$W/err")"
        fi
    done
fi

if [ $((npass + nfail)) -eq 0 ]; then
    echo "SKIP: nothing could run here"
    exit 77
fi
finish
