#!/bin/bash
# pg_probe.sh — PostgreSQL 15 + pgbench on a given malloc, for issue 13:
# where the time goes on gomalloc against glibc. Small and separate from
# bench/run.py on purpose.
#
#   bench/pg_probe.sh [-r RUNS] [-T SECS] [-q|-p] LIB...
#
# LIB is a path to a malloc library to LD_PRELOAD, or "glibc" for none.
# One cluster (initdb, pgbench -i -s 10) is made in a temporary directory
# with its own socket directory and port; then RUNS rounds, each running
# every LIB in turn (interleaved): the server is started on that LIB,
# pgbench TPC-B-like (-c 4 -j 2 -T SECS) and select-only (-S) run, and
# the memory-heavy queries (sort, count distinct, string_agg) are timed by
# psql's \timing; then the server stops. Each timed step is under
# flock /tmp/gm-timing.lock. Medians go to stdout at the end; -q skips
# pgbench (queries only), -p the queries (pgbench only). The server is stopped and the directory removed
# whatever happens. PG_KEEP=1 keeps the directory. PG_HOOK=CMD runs CMD
# with $PGPORT, $PGHOST set while each server is up, instead of the runs
# (for strace/perf probes: see PG_HOOK below).
set -u
BIN=/usr/lib/postgresql/15/bin
RUNS=3 T=15 QUERIES_ONLY=0 PGBENCH_ONLY=0
while getopts "r:T:qp" o; do
    case $o in r) RUNS=$OPTARG ;; T) T=$OPTARG ;; q) QUERIES_ONLY=1 ;; p) PGBENCH_ONLY=1 ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r RUNS] [-T SECS] [-q|-p] LIB..." >&2; exit 2; }
LOCK=/tmp/gm-timing.lock
DIR=$(mktemp -d /tmp/pg_probe.XXXXXX)
export PGPORT=$((20000 + RANDOM % 20000)) PGHOST=$DIR/sock PGDATABASE=postgres
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)
mkdir -p "$DIR/sock" "$DIR/libs"
LIBS=()
for l in "$@"; do   # copies the server user can read, kept for the whole run
    if [ "$l" = glibc ]; then LIBS+=(glibc); continue; fi
    c="$DIR/libs/$(echo "$l" | md5sum | cut -c1-8).so"
    cp -L "$l" "$c" && LIBS+=("$c")
done
[ "$(id -u)" = 0 ] && chown -R postgres "$DIR"
as() { "${RUNAS[@]}" env PGPORT="$PGPORT" PGHOST="$PGHOST" "$@"; }

stop() {
    as "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1
}
cleanup() {
    stop
    [ "${PG_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # $1: lib
    local pre=""
    [ "$1" != glibc ] && pre="$1"
    as env LD_PRELOAD="$pre" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
        -o "-k $PGHOST -p $PGPORT -c listen_addresses='' -c shared_buffers=128MB -c fsync=off -c synchronous_commit=off" \
        start >/dev/null || { tail "$DIR/log" >&2; exit 1; }
    # the backend's malloc must be the preloaded one
    if [ "$1" != glibc ]; then
        local pm
        pm=$(head -1 "$DIR/data/postmaster.pid")
        grep -q "$(basename "$1")" "/proc/$pm/maps" || { echo "not preloaded: $1" >&2; exit 1; }
    fi
}

as "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null || exit 1
start glibc
as "$BIN/pgbench" -i -s 10 -q >/dev/null 2>&1 || { echo "pgbench -i failed" >&2; exit 1; }
as "$BIN/psql" -qc "VACUUM ANALYZE" >/dev/null
stop

QUERIES=(
  "sort|SET work_mem='512MB'; SELECT count(*) FROM (SELECT * FROM pgbench_accounts ORDER BY filler, abalance DESC, aid DESC OFFSET 1) s"
  "distinct|SET work_mem='512MB'; SELECT count(DISTINCT aid::text || filler) FROM pgbench_accounts"
  "string_agg|SELECT length(string_agg(filler || aid::text, ',')) FROM pgbench_accounts"
)
RES=$DIR/results
: >"$RES"
ms() { # prints the last \timing figure of a query, in ms
    as "$BIN/psql" -X -At -c '\timing on' -c "$1" 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
# the machine's timing lock, as `flock /tmp/gm-timing.lock CMD` takes it
locked() { ( flock 9 && "$@" ) 9>"$LOCK"; }
tps() { as "$BIN/pgbench" -n -c 4 -j 2 -T "$T" "$@" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }

for r in $(seq 1 "$RUNS"); do
    for l in "${LIBS[@]}"; do
        before=$(wc -l <"$RES")
        start "$l"
        if [ -n "${PG_HOOK:-}" ]; then
            PGLIB=$l PGBIN=$BIN PGDATA=$DIR/data PGRUNAS="${RUNAS[*]}" bash -c "$PG_HOOK"
        else
            if [ "$QUERIES_ONLY" = 0 ]; then
                echo "$l tpcb $(locked tps)" >>"$RES"
                echo "$l select $(locked tps -S)" >>"$RES"
            fi
            [ "$PGBENCH_ONLY" = 1 ] && QUERIES=()
            for q in "${QUERIES[@]}"; do
                name=${q%%|*} sql=${q#*|}
                locked ms "$sql" >/dev/null   # warm: shared buffers, catalog caches
                echo "$l $name $(locked ms "$sql")" >>"$RES"
            done
        fi
        stop
        tail -n +$((before + 1)) "$RES" | sed "s|^|run $r: |" >&2
    done
done

# medians per lib and measure
python3 - "$RES" "$@" <<'EOF'
import sys, statistics, collections
res, names = sys.argv[1], sys.argv[2:]
d = collections.defaultdict(list)
order = []
for line in open(res):
    p = line.split()
    if len(p) < 3: continue
    d[(p[0], p[1])].append(float(p[2]))
    if p[1] not in order: order.append(p[1])
libs = []
for line in open(res):
    l = line.split()[0]
    if l not in libs: libs.append(l)
label = dict(zip(libs, names)) if len(libs) == len(names) else {l: l for l in libs}
print("libs: " + ", ".join("%s=%s" % (chr(65 + i), label[l]) for i, l in enumerate(libs)))
print("%-12s" % "measure" + "".join("%16s" % chr(65 + i) for i in range(len(libs))))
for m in order:
    row = "%-12s" % m
    for l in libs:
        v = d[(l, m)]
        row += "%16s" % ("%.1f (n=%d)" % (statistics.median(v), len(v)) if v else "-")
    print(row)
print("(tpcb/select: tps, higher is better; queries: ms, lower is better)")
EOF
