#!/usr/bin/env bash
# calloc.sh BUILD_DIR — calloc writes zeros only where there may be data, and
# the kernel decides what can be committed, as on glibc. BUILD_DIR/progs/
# gm_calloc (tests/progs/calloc.c) runs on glibc and with libgomalloc.so
# preloaded, in the same run:
#   - calloc of a block that a malloc/free touched in two bytes (64 MiB and
#     1 GiB), with strict-commit mode on and off, and in checked mode: RSS
#     growth within 2 x glibc's + 1 MiB and time within 2 x glibc's + 20 ms
#     (writing zeros over the block costs its size in RSS and hundreds of ms);
#   - every byte reads as zero after blocks were dirtied in part and whole;
#   - malloc and calloc of twice RAM + swap: the same answer as glibc (in
#     overcommit modes 0 and 2, NULL and ENOMEM), and the heap works after.
. "$(dirname "$0")/testlib.bash"
LIB=$B/libgomalloc.so
PROG=$B/progs/gm_calloc
[ -x "$PROG" ] && [ -f "$LIB" ] || { echo "SKIP: $PROG or $LIB not built"; exit 77; }

# on SIDE ARGS...: the program's output on glibc or preloaded (SIDE may carry
# environment settings: "gomalloc GOMALLOC_STRICT=0").
on() {
    local side=$1
    shift
    read -r -a envs <<<"${side#* }"
    [ "$side" = "${side#* }" ] && envs=()
    if [ "${side%% *}" = glibc ]; then
        timeout -k 2 60 "$PROG" "$@" 2>&1
    else
        timeout -k 2 60 env LD_PRELOAD="$LIB" "${envs[@]}" "$PROG" "$@" 2>&1
    fi
}
field() { awk -v k="$1" '$1 == "rss" { if (k == "rss") print $2; else print $4 }' <<<"$2"; }

for mib in 64 1024; do
    g=$(on glibc reuse $mib)
    grss=$(field rss "$g")
    gms=$(field ms "$g")
    for side in "gomalloc" "gomalloc GOMALLOC_STRICT=0" "gomalloc GOMALLOC_CHECK=1"; do
        p=$(on "$side" reuse $mib)
        prss=$(field rss "$p")
        pms=$(field ms "$p")
        what="calloc of a reused, touched-little $mib MiB block (${side#gomalloc}): RSS +${prss:-?} KiB, ${pms:-?} ms; glibc +$grss KiB, $gms ms"
        if [ -n "$prss" ] && grep -q 'zero ok' <<<"$p" &&
            [ "$prss" -le $((2 * grss + 1024)) ] &&
            awk -v p="$pms" -v g="$gms" 'BEGIN { exit !(p <= 2 * g + 20) }'; then
            pass "$what"
        else
            fail "$what; output: $(tr '\n' ' ' <<<"$p")"
        fi
    done
done

for mib in 3 40; do
    for side in "gomalloc" "gomalloc GOMALLOC_CHECK=1"; do
        p=$(on "$side" dirty $mib)
        if grep -q 'zero ok' <<<"$p"; then
            pass "calloc after $mib MiB blocks dirtied in part and whole reads zero (${side#gomalloc})"
        else
            fail "calloc after dirty $mib MiB blocks (${side#gomalloc}): $p"
        fi
    done
done

mem=$(awk '/^(MemTotal|SwapTotal):/ { kb += $2 } END { print int(kb / 1048576) + 1 }' /proc/meminfo)
gib=$((2 * mem))
mode=$(cat /proc/sys/vm/overcommit_memory 2>/dev/null || echo "?")
g=$(on glibc huge $gib)
p=$(on gomalloc huge $gib)
if [ "$g" = "$p" ] && grep -q 'after ok' <<<"$p" && { [ "$mode" = 1 ] || grep -q 'calloc ENOMEM' <<<"$p"; }; then
    pass "malloc and calloc of $gib GiB (twice RAM + swap, overcommit mode $mode): $(tr '\n' ' ' <<<"$p")as on glibc"
else
    fail "$gib GiB in overcommit mode $mode: gomalloc '$(tr '\n' ' ' <<<"$p")', glibc '$(tr '\n' ' ' <<<"$g")'"
fi
finish
