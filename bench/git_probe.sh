#!/bin/bash
# git_probe.sh — git on a given malloc, for issue 13: a generated repository
# (1500 commits of 3 of 40 files, fast-import), then `git log -p -n 400`,
# `git blame` and `git repack -adf` (pack.threads=1), each timed under
# flock /tmp/gm-timing.lock, libraries interleaved, medians at the end.
#
#   bench/git_probe.sh [-r RUNS] [-c] LIB...
#
# LIB is a path to a malloc library to LD_PRELOAD, or "glibc" for none.
# -c: instead of timing, count instructions with callgrind (not timed, no
# lock; children traced, so repack's pack-objects counts too).
set -u
RUNS=3 CG=0
while getopts "r:c" o; do
    case $o in r) RUNS=$OPTARG ;; c) CG=1 ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r RUNS] [-c] LIB..." >&2; exit 2; }
DIR=$(mktemp -d /tmp/git_probe.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
git init -q "$DIR/repo" || exit 1
python3 - "$DIR/stream" <<'EOF'
import random, sys
random.seed(7)
words = [''.join(random.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(random.randint(2, 9)))
         for _ in range(3000)]
line = lambda: ' '.join(random.choice(words) for _ in range(8))
files = ['src/f%02d.c' % i for i in range(40)]
content = {f: [line() for _ in range(300)] for f in files}
out = []
for c in range(1500):
    changed = files if c == 0 else random.sample(files, 3)
    for f in changed if c else []:
        L = content[f]
        for _ in range(random.randint(1, 10)):
            i, op = random.randrange(len(L)), random.random()
            if op < 0.5: L[i] = line()
            elif op < 0.8: L.insert(i, line())
            elif len(L) > 50: del L[i]
    msg = 'commit %d' % c
    out.append('commit refs/heads/master\ncommitter gen <gen@example> %d +0000\ndata %d\n%s\n'
               % (1600000000 + c * 60, len(msg), msg))
    for f in changed:
        data = '\n'.join(content[f]) + '\n'
        out.append('M 100644 inline %s\ndata %d\n%s\n' % (f, len(data.encode()), data))
open(sys.argv[1], 'w').write(''.join(out))
EOF
(cd "$DIR/repo" && git fast-import --quiet <"$DIR/stream" && git reset -q --hard && git -c pack.threads=1 repack -adfq) || exit 1

STEPS=("log|log -p -n 400" "blame|blame src/f00.c" "repack|-c pack.threads=1 repack -adfq")
RES=$DIR/results
: >"$RES"
run() { # lib cmd...: seconds, or instructions with -c
    local lib=$1 pre=""
    shift
    [ "$lib" != glibc ] && pre=$lib
    if [ "$CG" = 1 ]; then
        env LD_PRELOAD="$pre" valgrind --tool=callgrind --trace-children=yes \
            --callgrind-out-file="$DIR/cg.%p" git "$@" >/dev/null 2>"$DIR/vg"
        rm -f "$DIR"/cg.*
        grep -o 'refs: *[0-9,]*' "$DIR/vg" | tr -d ' ,' | cut -d: -f2 | paste -sd+ | bc
    else
        flock /tmp/gm-timing.lock env LD_PRELOAD="$pre" bash -c \
            's=$(date +%s.%N); git "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc' git "$@"
    fi
}
cd "$DIR/repo" || exit 1
for r in $(seq 1 "$RUNS"); do
    for l in "$@"; do
        for s in "${STEPS[@]}"; do
            name=${s%%|*}
            # shellcheck disable=SC2086
            echo "$l $name $(run "$l" ${s#*|})" >>"$RES"
        done
        grep "^$l " "$RES" | tail -3 | sed "s|^|run $r: |" >&2
    done
done
python3 - "$RES" <<'EOF'
import sys, statistics, collections
d, libs, steps = collections.defaultdict(list), [], []
for line in open(sys.argv[1]):
    l, m, v = line.split()
    d[(l, m)].append(float(v))
    libs += [l] if l not in libs else []
    steps += [m] if m not in steps else []
print("%-8s" % "step" + "".join("%24s" % l[-23:] for l in libs))
for m in steps:
    print("%-8s" % m + "".join("%24s" % ("%.4g" % statistics.median(d[(l, m)])) for l in libs))
print("(medians: seconds, or instructions with -c; lower is better)")
EOF
