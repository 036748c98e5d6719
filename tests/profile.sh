#!/usr/bin/env bash
# profile.sh BUILD_DIR — the heap profile (issue 15), read by the pprofs.
#   - progs/profile.c's three sites (leaky_site: 64 MiB never freed;
#     held_site: 64 MiB live mid-run, freed before exit; temp_site: 384 MiB
#     allocated through malloc and realloc, none kept), at rate 1: the
#     profile written mid-run (gm_profile_write) and at exit
#     (GOMALLOC_PROFILE), read by google-pprof --text, give each site's
#     in-use and allocated bytes exactly; `go tool pprof -top` the same
#     in-use bytes (skipped, with a note, where Go cannot be had);
#   - at the default rate (512 KiB), the in-use bytes of leaky_site and
#     held_site within 35% of the truth (about four standard deviations of
#     the sampling error) and temp_site's allocated bytes within 20%;
#     temp_site holds nothing in use;
#   - threads: blocks sampled on one thread and freed on another (small and
#     large) are counted as freed; a thread's kept blocks are in use;
#   - fork: the child's profile (GOMALLOC_PROFILE with %p) has the child's
#     site and not the parent's, the parent's has its own and not the
#     child's;
#   - GOMALLOC_PROFILE_PERIOD=1 rewrites the profile every second: a
#     single-threaded program that runs for three periods and leaves with
#     _exit has one (pprof reads it), no temporary file is left, no thread
#     was added; a malformed period: one warning line, no periodic write;
#   - GOMALLOC_PROFILE_SIGNAL=usr2 writes the profile on SIGUSR2 (a program
#     that then leaves with _exit still has one); without it, SIGUSR2
#     keeps its default action (no handler was installed);
#   - bad input: an unwritable profile path, a malformed rate: one warning
#     line each, the program runs on (and the rate falls back to 512K);
#     GOMALLOC_PROFILE_SIGNAL without GOMALLOC_PROFILE installs nothing;
#   - gomalloc-run --profile FILE; google-pprof --svg draws the sites
#     (where Graphviz can be had).
# google-pprof (Debian google-perftools), go (golang-go) and dot (graphviz)
# are installed when missing (tests/packages.bash); without google-pprof
# the test is skipped (exit 77).
. "$(dirname "$0")/testlib.bash"
. "$(dirname "$0")/packages.bash"
LIB=$B/libgomalloc.so
PROG=$B/progs/gm_profile
[ -x "$PROG" ] || { echo "no $PROG"; exit 77; }
need google-pprof google-perftools || { echo "SKIP: google-pprof cannot be had"; exit 77; }
have_go=yes
need go golang-go || have_go=no
have_dot=yes
need dot graphviz || have_dot=no

# run ENV... -- CMD...: CMD preloaded, with the ENV assignments, in $W.
run() {
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    (cd "$W" && env "${envs[@]}" LD_PRELOAD="$LIB" "$@")
}

# gp VIEW PROFILE FN: FN's flat bytes in google-pprof's text (VIEW
# inuse_space or alloc_space), 0 if FN is not listed.
gp() {
    google-pprof --text --"$1" --show_bytes "$PROG" "$2" 2>/dev/null |
        awk -v fn="$3" '$NF == fn { v = $1 } END { print v + 0 }'
}
# gop PROFILE FN: the same from go tool pprof -top, in-use bytes.
gop() {
    go tool pprof -top -unit=B -sample_index=inuse_space "$PROG" "$2" 2>/dev/null |
        awk -v fn="$3" '$NF == fn { v = $1 } END { sub(/B$/, "", v); print v + 0 }'
}
# near GOT WANT PERCENT: |GOT - WANT| <= PERCENT% of WANT.
near() { awk -v g="$1" -v w="$2" -v p="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d * 100 <= w * p) }'; }
# is WHAT GOT WANT: an exact check, named.
is() { if [ "$2" = "$3" ]; then pass "$1 = $3"; else fail "$1: $2, want $3"; fi; }

MiB=1048576
LEAK=$((16384 * 4096 + 16384 * 8)) # the blocks and the calloc'ed list of them
HELD=$((256 * 262144 + 256 * 8))
TEMP=$((262144 * (512 + 1024)))

# --- rate 1: exact ---------------------------------------------------------
if run GOMALLOC_PROFILE_RATE=1 GOMALLOC_PROFILE="$W/exit1.prof" -- "$PROG" sites "$W/mid1.prof" 2>"$W/err1"; then
    pass "sites at rate 1 run"
else
    fail "sites at rate 1: $(head -3 "$W/err1")"
fi
check "the profile starts with the legacy header" grep -q '^heap profile: [0-9]*: [0-9]* \[ *[0-9]*: [0-9]*\] @ heap_v2/1$' "$W/mid1.prof"
check "the profile ends with the mappings" grep -q '^MAPPED_LIBRARIES:$' "$W/mid1.prof"
is "rate 1, mid-run: leaky_site in use" "$(gp inuse_space "$W/mid1.prof" leaky_site)" $LEAK
is "rate 1, mid-run: held_site in use" "$(gp inuse_space "$W/mid1.prof" held_site)" $HELD
is "rate 1, mid-run: temp_site in use" "$(gp inuse_space "$W/mid1.prof" temp_site)" 0
is "rate 1, mid-run: temp_site allocated" "$(gp alloc_space "$W/mid1.prof" temp_site)" $TEMP
is "rate 1, at exit: leaky_site in use" "$(gp inuse_space "$W/exit1.prof" leaky_site)" $LEAK
is "rate 1, at exit: held_site in use (freed)" "$(gp inuse_space "$W/exit1.prof" held_site)" 0
is "rate 1, at exit: held_site allocated" "$(gp alloc_space "$W/exit1.prof" held_site)" $HELD
if [ $have_go = yes ]; then
    is "go tool pprof, rate 1: leaky_site in use" "$(gop x "$W/mid1.prof" leaky_site)" $LEAK
    is "go tool pprof, rate 1: held_site in use" "$(gop x "$W/mid1.prof" held_site)" $HELD
    is "go tool pprof, rate 1, at exit: held_site in use" "$(gop x "$W/exit1.prof" held_site)" 0
else
    echo "NOTE: go tool pprof cannot be had: its reading is not checked"
fi

# --- the default rate: within the sampling error ----------------------------
if run GOMALLOC_PROFILE="$W/exit.prof" -- "$PROG" sites "$W/mid.prof" 2>"$W/err"; then
    pass "sites at the default rate run"
else
    fail "sites at the default rate: $(head -3 "$W/err")"
fi
check "the default rate's header says heap_v2/524288" grep -q '@ heap_v2/524288$' "$W/mid.prof"
for site in leaky_site:$LEAK held_site:$HELD; do
    fn=${site%%:*} want=${site#*:}
    got=$(gp inuse_space "$W/mid.prof" "$fn")
    if near "$got" "$want" 35; then pass "default rate: $fn in use $got B, truth $want"; else fail "default rate: $fn in use $got B, truth $want"; fi
    if [ $have_go = yes ]; then
        got=$(gop x "$W/mid.prof" "$fn")
        if near "$got" "$want" 35; then pass "go tool pprof, default rate: $fn $got B"; else fail "go tool pprof, default rate: $fn $got B, truth $want"; fi
    fi
done
got=$(gp alloc_space "$W/mid.prof" temp_site)
if near "$got" $TEMP 20; then pass "default rate: temp_site allocated $got B, truth $TEMP"; else fail "default rate: temp_site allocated $got B, truth $TEMP"; fi
is "default rate: temp_site in use" "$(gp inuse_space "$W/mid.prof" temp_site)" 0
is "default rate, at exit: held_site in use" "$(gp inuse_space "$W/exit.prof" held_site)" 0

# --- threads ------------------------------------------------------------------
if run GOMALLOC_PROFILE_RATE=1 GOMALLOC_PROFILE="$W/threads.prof" -- "$PROG" threads 2>"$W/err"; then
    is "freed on another thread: xthread_site in use" "$(gp inuse_space "$W/threads.prof" xthread_site)" 0
    is "freed on another thread: xthread_site allocated" "$(gp alloc_space "$W/threads.prof" xthread_site)" \
        $((4096 * 2048 + 64 * 65536))
    is "a thread's kept blocks: kept_site in use" "$(gp inuse_space "$W/threads.prof" kept_site)" $((1024 * 1024))
else
    fail "threads: $(head -3 "$W/err")"
fi

# --- fork ---------------------------------------------------------------------
if out=$(run GOMALLOC_PROFILE_RATE=1 GOMALLOC_PROFILE="$W/fork.%p.prof" -- "$PROG" fork 2>"$W/err"); then
    child=${out#child }
    parent=$(ls "$W"/fork.*.prof | grep -v "fork.$child.prof" | head -1)
    if [ -s "$W/fork.$child.prof" ] && [ -n "$parent" ]; then
        pass "fork: a profile each, named by pid"
        is "fork: the child's child_site" "$(gp inuse_space "$W/fork.$child.prof" child_site)" $((2048 * 1024))
        is "fork: the child has no parent_site" "$(gp alloc_space "$W/fork.$child.prof" parent_site)" 0
        is "fork: the parent's parent_site" "$(gp inuse_space "$parent" parent_site)" $((1024 * 1024))
        is "fork: the parent has no child_site" "$(gp alloc_space "$parent" child_site)" 0
    else
        fail "fork: profiles $(ls "$W"/fork.* 2>&1 | tr '\n' ' ')"
    fi
else
    fail "fork: $(head -3 "$W/err")"
fi

# --- the signal -------------------------------------------------------------------
PY=$(python3 -c 'import sys; print(sys.executable)')
KILL='import os, signal; x = [bytearray(4096) for i in range(1000)]; os.kill(os.getpid(), signal.SIGUSR2); os._exit(0)'
run GOMALLOC_PROFILE="$W/sig.prof" GOMALLOC_PROFILE_SIGNAL=usr2 -- "$PY" -c "$KILL" 2>"$W/err"
rc=$?
is "GOMALLOC_PROFILE_SIGNAL=usr2: the program's exit status" $rc 0
check "GOMALLOC_PROFILE_SIGNAL=usr2: the signal wrote a profile (the program left with _exit)" \
    grep -q '^heap profile: ' "$W/sig.prof"
run GOMALLOC_PROFILE="$W/nosig.prof" -- "$PY" -c "$KILL" 2>/dev/null
rc=$?
is "without GOMALLOC_PROFILE_SIGNAL, SIGUSR2 keeps its default action: status" $rc $((128 + 12))

# --- the period ---------------------------------------------------------------------
# Three periods of 1 s, then _exit: only the periodic writes can have left a
# profile, each one whole (renamed into place), with no temporary file left.
out=$(run GOMALLOC_PROFILE="$W/per.%p.prof" GOMALLOC_PROFILE_PERIOD=1 -- "$PROG" period 3300 2>"$W/err")
rc=$?
is "GOMALLOC_PROFILE_PERIOD=1: the program's exit status" $rc 0
is "GOMALLOC_PROFILE_PERIOD=1: lines on stderr" "$(wc -l <"$W/err")" 0
is "GOMALLOC_PROFILE_PERIOD=1: no thread added (a single-threaded program)" "$out" "threads 1"
per=$(ls "$W"/per.*.prof 2>/dev/null | head -1)
check "GOMALLOC_PROFILE_PERIOD=1: the periodic write left a profile (the program left with _exit)" \
    grep -q '^MAPPED_LIBRARIES:$' "${per:-/nonexistent}"
check "GOMALLOC_PROFILE_PERIOD=1: no temporary file is left" test -z "$(ls "$W" | grep '\.tmp\.')"
used=$(gp inuse_space "${per:-/nonexistent}" period_site)
check "GOMALLOC_PROFILE_PERIOD=1: google-pprof reads it and finds period_site in use ($used bytes)" test "$used" -gt 0
run GOMALLOC_PROFILE="$W/per2.prof" GOMALLOC_PROFILE_PERIOD=soon -- "$PROG" period 300 >/dev/null 2>"$W/err"
rc=$?
is "malformed period: the program's exit status" $rc 0
is "malformed period: lines on stderr" "$(wc -l <"$W/err")" 1
check "malformed period: the warning names the variable" grep -q 'GOMALLOC_PROFILE_PERIOD=soon: ' "$W/err"
check "malformed period: no periodic write (the default is off)" test ! -e "$W/per2.prof"

# --- bad input, profiling off -------------------------------------------------------
run GOMALLOC_PROFILE=/nonexistent/dir/x.prof -- "$PROG" threads 2>"$W/err"
rc=$?
is "unwritable path: the program's exit status" $rc 0
is "unwritable path: lines on stderr" "$(wc -l <"$W/err")" 1
check "unwritable path: the line names GOMALLOC_PROFILE and the path" \
    grep -q 'GOMALLOC_PROFILE: .*/nonexistent/dir/x.prof' "$W/err"
run GOMALLOC_PROFILE="$W/bad.prof" GOMALLOC_PROFILE_RATE=fast -- "$PROG" threads 2>"$W/err"
rc=$?
is "malformed rate: the program's exit status" $rc 0
is "malformed rate: lines on stderr" "$(wc -l <"$W/err")" 1
check "malformed rate: the warning names the variable and the default" grep -q 'GOMALLOC_PROFILE_RATE=fast: .*default 512K' "$W/err"
check "malformed rate: the profile is taken at 512K" grep -q '@ heap_v2/524288$' "$W/bad.prof"
run GOMALLOC_PROFILE_SIGNAL=usr2 -- "$PY" -c "$KILL" 2>/dev/null
rc=$?
is "GOMALLOC_PROFILE_SIGNAL without GOMALLOC_PROFILE installs no handler: status" $rc $((128 + 12))

# --- gomalloc-run --profile, the picture ---------------------------------------------
if (cd "$W" && "$B/gomalloc-run" --profile run.prof "$PROG" threads) 2>"$W/err" && grep -q '^heap profile:' "$W/run.prof"; then
    pass "gomalloc-run --profile FILE writes FILE"
else
    fail "gomalloc-run --profile: $(head -3 "$W/err")"
fi
if [ $have_dot = yes ]; then
    google-pprof --svg --inuse_space "$PROG" "$W/mid.prof" >"$W/sites.svg" 2>/dev/null
    if grep -q '<svg' "$W/sites.svg" && grep -q leaky_site "$W/sites.svg"; then
        pass "google-pprof --svg draws the sites"
    else
        fail "google-pprof --svg: no picture of the sites"
    fi
else
    echo "NOTE: Graphviz cannot be had: the picture is not checked"
fi
finish
