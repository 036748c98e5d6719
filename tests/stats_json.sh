#!/usr/bin/env bash
# stats_json.sh BUILD_DIR — GOMALLOC_STATS=json, the exit report as JSON
# Lines, and GOMALLOC_STATS_FILE.
#   - the demo, ls and python3 under GOMALLOC_STATS=json (by hand and through
#     gomalloc-run --json) leave one JSON object on one line of stderr that
#     json.loads reads, whose figures agree with each other: version 2; heap_idle =
#     heap_sys - heap_inuse; sys = heap_sys + the metadata kinds; the 66
#     classes, in order, add up to mallocs, frees and heap_alloc, each
#     class's live bytes = (mallocs - frees) x size; mallocs >= frees;
#     heap_released <= heap_idle; heap_alloc <= heap_inuse; sys, committed <=
#     reserved; counts are non-negative integers, flags booleans; program is
#     the process's name and mallocs counts what it did;
#   - the report still arrives when the program closes stderr before exit;
#   - GOMALLOC_STATS=1 prints version 2's lines in the text report;
#   - a process tree (issue 12's sh -c 'true; true; ls >/dev/null', and a
#     bash that runs ls twice, 3 processes) writes one line per process to
#     the shared stderr, which a JSON Lines reader takes whole;
#   - GOMALLOC_STATS_FILE=dir/r.%p: one file per process, named by its pid,
#     of one line; one shared file: a line per process; the text report
#     goes there too, and nothing to stderr; an unwritable file: one line
#     on stderr says so and the report goes to stderr; gomalloc-run
#     --stats-file with a relative name writes there even if the command
#     changes directory.
. "$(dirname "$0")/testlib.bash"
LIB=$B/libgomalloc.so
PY=$(python3 -c 'import sys; print(sys.executable)') # not a wrapper script (pyenv)
PYNAME=$(basename "$PY" | cut -c1-15)                  # its name in /proc/self/comm

# json_ok FILE PROGRAM MIN_MALLOCS: FILE holds one report of PROGRAM with at
# least MIN_MALLOCS mallocs, consistent as above. Prints what is wrong.
json_ok() {
    python3 - "$@" <<'EOF'
import json, sys
path, program, min_mallocs = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(path).read().split("\n")
if len(lines) != 2 or lines[1] != "":
    print(f"{len(lines) - 1} lines, want one (JSON Lines)")
    sys.exit(1)
d = json.loads(lines[0])
bad = []
def want(cond, what):
    if not cond:
        bad.append(what)
flags = {"memory_limit_hard", "strict_commit"}
for k, v in d.items():
    if k in flags:
        want(isinstance(v, bool), f"{k} is not a boolean")
    elif k == "mappings":
        want(isinstance(v, int) and v >= -1, "mappings")
    elif k not in ("program", "classes"):
        want(isinstance(v, int) and v >= 0, f"{k} = {v!r}")
want(d["version"] == 2, "version")
want(d["program"] == program, f"program {d['program']!r}")
want(d["heap_idle"] == d["heap_sys"] - d["heap_inuse"], "heap_idle != heap_sys - heap_inuse")
meta = sum(v for k, v in d.items() if k.startswith("meta_"))
want(len([k for k in d if k.startswith("meta_")]) == 6, "six metadata kinds")
want(d["sys"] == d["heap_sys"] + meta, "sys != heap_sys + metadata")
cls = d["classes"]
want([c["class"] for c in cls] == list(range(66)), "classes 0..65 in order")
want(sum(c["mallocs"] for c in cls) == d["mallocs"], "class mallocs do not add up")
want(sum(c["frees"] for c in cls) == d["frees"], "class frees do not add up")
want(sum(c["live_bytes"] for c in cls) == d["heap_alloc"], "class live bytes do not add up to heap_alloc")
for c in cls[1:]:
    want(c["live_bytes"] == (c["mallocs"] - c["frees"]) * c["size"], f"class {c['class']} live bytes")
    want(c["size"] % 16 == 0 and c["size"] > cls[c["class"] - 1]["size"], f"class {c['class']} size")
want(d["mallocs"] >= d["frees"], "mallocs < frees")
want(d["mallocs"] >= min_mallocs, f"mallocs {d['mallocs']} < {min_mallocs}")
want(d["heap_released"] <= d["heap_idle"], "heap_released > heap_idle")
want(d["heap_alloc"] <= d["heap_inuse"], "heap_alloc > heap_inuse")
want(d["sys"] <= d["reserved"] and d["committed"] <= d["reserved"], "more committed than reserved")
want(d["recommitted_total"] <= d["decommitted_total"], "recommitted more than decommitted")
want(d["heap_decommitted"] <= d["decommitted_total"], "heap_decommitted > decommitted_total")
if bad:
    print("; ".join(bad))
    sys.exit(1)
EOF
}

# run_json NAME PROGRAM MIN_MALLOCS CMD...: run CMD, its report on stderr.
run_json() {
    local name=$1 program=$2 min=$3
    shift 3
    if ! "$@" >/dev/null 2>"$W/err"; then
        fail "$name: exit status"
        head -5 "$W/err"
    elif json_ok "$W/err" "$program" "$min"; then
        pass "$name: JSON report consistent"
    else
        fail "$name: JSON report"
        head -c 600 "$W/err"
    fi
}

run_json "demo" gomalloc-demo 200000 env LD_PRELOAD="$LIB" GOMALLOC_STATS=json "$B/gomalloc-demo"
run_json "gomalloc-run --json ls" ls 10 "$B/gomalloc-run" --json ls -l /usr/bin
run_json "python3" "$PYNAME" 1000 env LD_PRELOAD="$LIB" GOMALLOC_STATS=json PYTHONMALLOC=malloc \
    "$PY" -c 'd = {i: str(i) * (i % 40) for i in range(50000)}; del d'
run_json "stderr closed before exit" "$PYNAME" 100 env LD_PRELOAD="$LIB" GOMALLOC_STATS=json PYTHONMALLOC=malloc \
    "$PY" -c 'import os; os.close(2)'

# jsonl_ok FILE MIN MAX: FILE holds MIN to MAX lines, each a JSON object as
# a JSON Lines reader takes it, with distinct pids. Prints the programs.
jsonl_ok() {
    python3 -c '
import json, sys
docs = [json.loads(l) for l in sys.stdin]
lo, hi = int(sys.argv[1]), int(sys.argv[2])
pids = {d["pid"] for d in docs}
assert lo <= len(docs) <= hi and len(pids) == len(docs), (len(docs), len(pids))
print(" ".join(sorted(d["program"] for d in docs)))' "$2" "$3" <"$1"
}

# A process tree: one line per process on the one stderr.
# tree LO HI CMD...: CMD's processes leave LO to HI lines (dash ends with
# _exit: no report of its own).
tree() {
    local lo=$1 hi=$2 progs
    shift 2
    env LD_PRELOAD="$LIB" GOMALLOC_STATS=json "$@" >/dev/null 2>"$W/tree"
    if progs=$(jsonl_ok "$W/tree" "$lo" "$hi"); then
        pass "$*: a line per process ($progs)"
    else
        fail "$*: not one JSON line per process"
        head -c 600 "$W/tree"
    fi
}
tree 1 2 sh -c 'true; true; ls >/dev/null'
tree 3 3 bash -c 'ls >/dev/null; ls >/dev/null; exit 0'
TREE="ls >/dev/null; ls >/dev/null; exit 0"

# GOMALLOC_STATS_FILE with %p: a file per process, named by its pid.
mkdir "$W/each"
env LD_PRELOAD="$LIB" GOMALLOC_STATS=json GOMALLOC_STATS_FILE="$W/each/r.%p" bash -c "$TREE" >/dev/null 2>"$W/err"
bad=""
for f in "$W"/each/r.*; do
    [ -e "$f" ] || continue
    pid=$(jsonl_ok "$f" 1 1 >/dev/null && python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' <"$f")
    [ "r.$pid" = "$(basename "$f")" ] || bad="$bad $(basename "$f")"
done
n=$(ls "$W/each" | wc -l)
if [ "$n" -eq 3 ] && [ -z "$bad" ] && [ ! -s "$W/err" ]; then
    pass "GOMALLOC_STATS_FILE=dir/r.%p: a one-line file per process, named by its pid"
else
    fail "GOMALLOC_STATS_FILE=dir/r.%p: $n files, bad:$bad; stderr: $(head -c 300 "$W/err")"
fi

# One file for all: a line each (O_APPEND, one write each).
env LD_PRELOAD="$LIB" GOMALLOC_STATS=json GOMALLOC_STATS_FILE="$W/all.jsonl" bash -c "$TREE" >/dev/null 2>"$W/err"
if progs=$(jsonl_ok "$W/all.jsonl" 3 3) && [ ! -s "$W/err" ]; then
    pass "GOMALLOC_STATS_FILE shared: a line per process ($progs)"
else
    fail "GOMALLOC_STATS_FILE shared"
    head -c 600 "$W/all.jsonl" "$W/err"
fi

# The text report goes to the file too.
env LD_PRELOAD="$LIB" GOMALLOC_STATS=1 GOMALLOC_STATS_FILE="$W/text.%p" ls / >/dev/null 2>"$W/err"
if grep -q "^gomalloc statistics of ls" "$W"/text.* && [ ! -s "$W/err" ]; then
    pass "GOMALLOC_STATS=1 with GOMALLOC_STATS_FILE: the text report in the file"
else
    fail "the text report is not in GOMALLOC_STATS_FILE"
fi

# An unwritable file: one line says so, the report goes to stderr.
env LD_PRELOAD="$LIB" GOMALLOC_STATS=json GOMALLOC_STATS_FILE="$W/no/such/dir/r" ls / >/dev/null 2>"$W/err"
status=$?
if [ $status -eq 0 ] && [ "$(grep -c '^gomalloc: GOMALLOC_STATS_FILE: ' "$W/err")" -eq 1 ] &&
    grep -v '^gomalloc: ' "$W/err" >"$W/rest" && jsonl_ok "$W/rest" 1 1 >/dev/null; then
    pass "unwritable GOMALLOC_STATS_FILE: one line, the report on stderr"
else
    fail "unwritable GOMALLOC_STATS_FILE (exit $status)"
    head -c 600 "$W/err"
fi

# gomalloc-run --stats-file with a relative name, the command moving away.
(cd "$W" && "$B/gomalloc-run" --json --stats-file rel.jsonl sh -c 'cd / && ls >/dev/null; exit 0') >/dev/null 2>"$W/err"
if progs=$(jsonl_ok "$W/rel.jsonl" 1 2) && [[ " $progs " == *" ls "* ]] && [ ! -s "$W/err" ]; then
    pass "gomalloc-run --json --stats-file rel.jsonl: there, whatever the command's directory ($progs)"
else
    fail "gomalloc-run --stats-file"
    cat "$W/err"
fi

# The text report has version 2's lines.
LD_PRELOAD=$LIB GOMALLOC_STATS=1 ls / >/dev/null 2>"$W/err"
missing=""
for f in heap_decommitted scavenged_total decommitted_total recommitted_total memory_limit strict_commit \
    background_runs mappings mallocs; do
    grep -q "^  $f " "$W/err" || missing="$missing $f"
done
if [ -z "$missing" ]; then pass "text report: version 2 lines"; else fail "text report lacks:$missing"; fi

finish
