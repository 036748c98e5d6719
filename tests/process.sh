#!/usr/bin/env bash
# process.sh BUILD_DIR — a program behaves as on glibc, apart from speed and
# memory: each mode of BUILD_DIR/progs/gm_process (tests/progs/process.c)
# runs on glibc and with libgomalloc.so preloaded, and the two are compared:
#   - a process whose last thread calls pthread_exit ends at once with
#     status 0, running its atexit handler once, on a thread of its own
#     (single-threaded, and after workers that allocated);
#   - SIGTERM, SIGINT and SIGHUP end it as on glibc: idle after a burst,
#     with workers, and after main's pthread_exit with workers waiting;
#   - a single-threaded program stays single-threaded after allocating and
#     freeing, and a multi-threaded one is single-threaded again as soon as
#     it has joined its threads: the thread count, and unshare(CLONE_NEWUSER)
#     (compared only where glibc's run may unshare at all); also after
#     1,000 threads that end together, while a helper runs;
#   - no signal handler of the program runs on a thread it did not create.
# GOMALLOC_BACKGROUND=thread accepts a helper in a single-threaded program:
# the exit and signal checks hold there too.
. "$(dirname "$0")/testlib.bash"
LIB=$B/libgomalloc.so
PROG=$B/progs/gm_process
[ -x "$PROG" ] && [ -f "$LIB" ] || { echo "SKIP: $PROG or $LIB not built"; exit 77; }
nskip=0
skip() { echo "SKIP: $*"; nskip=$((nskip + 1)); }

# run SIDE MODE [ENV...]: run the mode, leaving $W/SIDE.MODE.{out,rc,ms}.
run() {
    local side=$1 mode=$2 t0 t1
    shift 2
    t0=$(date +%s%N)
    if [ "$side" = glibc ]; then
        timeout -k 2 20 env "$@" "$PROG" "$mode" >"$W/$side.$mode.out" 2>&1
    else
        timeout -k 2 20 env LD_PRELOAD="$LIB" "$@" "$PROG" "$mode" >"$W/$side.$mode.out" 2>&1
    fi
    echo $? >"$W/$side.$mode.rc"
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >"$W/$side.$mode.ms"
}
out() { cat "$W/$1.$2.out"; }
rc() { cat "$W/$1.$2.rc"; }
ms() { cat "$W/$1.$2.ms"; }

# exits MODE LABEL [ENV...]: status 0, one atexit on a program thread, no
# later than glibc by more than a second.
exits() {
    local mode=$1 label=$2 side
    shift 2
    for side in glibc gomalloc; do run $side "$mode" "$@"; done
    for side in glibc gomalloc; do
        if [ "$(rc $side "$mode")" = 0 ] && [ "$(grep -c '^atexit [0-9]' "$W/$side.$mode.out")" = 1 ] &&
            grep -q '^atexit 1$' "$W/$side.$mode.out" && grep -q 'atexit on a program thread' "$W/$side.$mode.out"; then
            :
        else
            fail "$label ($side): status $(rc $side "$mode"), output: $(out $side "$mode" | tr '\n' ' ')"
            return
        fi
    done
    if [ "$(ms gomalloc "$mode")" -le $(($(ms glibc "$mode") + 1000)) ]; then
        pass "$label: status 0, atexit once on a program thread, $(ms gomalloc "$mode") ms (glibc $(ms glibc "$mode") ms)"
    else
        fail "$label: took $(ms gomalloc "$mode") ms, glibc $(ms glibc "$mode") ms"
    fi
}

exits exit_st "pthread_exit from a single-threaded main"
exits exit_mt "pthread_exit from main, workers end"
exits exit_st "pthread_exit, GOMALLOC_BACKGROUND=thread" GOMALLOC_BACKGROUND=thread

# killed SIDE MODE SIG [ENV...]: start MODE, wait for "ready", send SIG to
# the process; prints the status (128 + signal if it died of it) and the
# milliseconds from the signal to the end.
killed() {
    local side=$1 mode=$2 sig=$3 pid i t0 t1 st pre=()
    shift 3
    [ "$side" = gomalloc ] && pre=(LD_PRELOAD="$LIB")
    rm -f "$W/ready"
    env "${pre[@]}" "$@" "$PROG" "$mode" >"$W/ready" 2>/dev/null &
    pid=$!
    for i in $(seq 200); do grep -q ready "$W/ready" 2>/dev/null && break; sleep 0.05; done
    t0=$(date +%s%N)
    kill -s "$sig" "$pid"
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        echo "alive"
        return
    fi
    wait "$pid"
    st=$?
    t1=$(date +%s%N)
    echo "$st $(((t1 - t0) / 1000000))"
}

for mode in idle idle_mt exit_mt_wait; do
    for sig in TERM INT HUP; do
        g=$(killed glibc $mode $sig)
        p=$(killed gomalloc $mode $sig)
        if [ "${g%% *}" = "${p%% *}" ] && [ "$p" != alive ]; then
            pass "SIG$sig to $mode: status ${p%% *} as on glibc, ${p##* } ms after the signal"
        else
            fail "SIG$sig to $mode: gomalloc '$p', glibc '$g'"
        fi
    done
done
p=$(killed gomalloc idle TERM GOMALLOC_BACKGROUND=thread)
g=$(killed glibc idle TERM)
[ "${g%% *}" = "${p%% *}" ] && pass "SIGTERM, GOMALLOC_BACKGROUND=thread: status ${p%% *}" ||
    fail "SIGTERM, GOMALLOC_BACKGROUND=thread: gomalloc '$p', glibc '$g'"

# Threads: none added, and none left after the program's own are joined.
for mode in threads threads_mt; do
    run glibc $mode
    run gomalloc $mode
    g=$(grep '^threads' "$W/glibc.$mode.out")
    p=$(grep '^threads' "$W/gomalloc.$mode.out")
    if [ "$g" = "threads 1" ] && [ "$p" = "$g" ]; then
        pass "$mode: one thread after allocating and freeing, as on glibc"
    else
        fail "$mode: gomalloc '$p', glibc '$g'"
    fi
done
run glibc threads_1k
run gomalloc threads_1k
g=$(grep '^threads ' "$W/glibc.threads_1k.out")
p=$(grep '^threads ' "$W/gomalloc.threads_1k.out")
h=$(grep '^helper_seen' "$W/gomalloc.threads_1k.out")
if [ "$g" = "threads 1" ] && [ "$p" = "$g" ] && [ "$h" = "helper_seen 1" ]; then
    pass "threads_1k: one thread once 1,000 that ended together are joined, as on glibc ($(ms gomalloc threads_1k) ms, glibc $(ms glibc threads_1k) ms)"
else
    fail "threads_1k: gomalloc '$p' ('$h'), glibc '$g'"
fi
for mode in unshare unshare_mt; do
    run glibc $mode
    run gomalloc $mode
    g=$(grep '^unshare' "$W/glibc.$mode.out")
    p=$(grep '^unshare' "$W/gomalloc.$mode.out")
    if [ "$g" != "unshare ok" ]; then
        skip "$mode: unshare(CLONE_NEWUSER) fails on glibc too here ('$g')"
    elif [ "$p" = "$g" ]; then
        pass "$mode: unshare(CLONE_NEWUSER) works, as on glibc"
    else
        fail "$mode: gomalloc '$p', glibc '$g'"
    fi
done

# Signal handlers run on the program's threads only.
for side in glibc gomalloc; do run $side handler; done
for side in glibc gomalloc; do
    if [ "$(rc $side handler)" = 0 ] && grep -q '^foreign 0$' "$W/$side.handler.out" &&
        grep -q '^handled_some 1$' "$W/$side.handler.out"; then
        pass "handler ($side): SIGUSR1 handled, never on a foreign thread ($(grep threads_during "$W/$side.handler.out"))"
    else
        fail "handler ($side): status $(rc $side handler), $(out $side handler | tr '\n' ' ')"
    fi
done

echo "($nskip skipped)"
finish
