#!/usr/bin/env bash
# trace.sh BUILD_DIR — the memory timeline: GOMALLOC_TRACE, gomalloc-run
# --trace and gomalloc-plot.
#   - gomalloc-run --trace on the demo (5 ms period): the demo still passes
#     and keeps its exit status; the CSV has the documented header, times
#     that strictly increase at about the period, integer columns (rss,
#     vm_data, mappings positive), the demo's 255 MiB burst in heap_inuse
#     and heap_alloc (at least 128 MiB of it), and on its last line (taken
#     at exit, the heap quiet) heap_alloc <= heap_inuse <= heap_sys <=
#     committed, heap_released <= heap_sys; the PNG beside it is a PNG;
#   - a program's children, which inherit GOMALLOC_TRACE and the preload, do
#     not write into its timeline (only the parent's first and last lines
#     are there, with a period longer than the run), nor does a forked
#     child that exits through exit(); the fork does not hang;
#   - "%p" gives each process a file of its own;
#   - an unwritable FILE: one complaint on stderr, the program runs;
#   - gomalloc-run --trace returns the program's exit status and plots;
#   - gomalloc-plot refuses a file that is not a trace, and bad usage.
# gnuplot (Debian's gnuplot-nox) is installed with apt-get if missing.
. "$(dirname "$0")/testlib.bash"
LIB=$B/libgomalloc.so
RUN=$B/gomalloc-run
PY=$(python3 -c 'import sys; print(sys.executable)') # not a wrapper script (pyenv)

. "$SRC/tests/packages.bash"
need gnuplot gnuplot-nox || true # without it, the plot checks fail

# csv_ok FILE MIN_LINES MIN_PEAK PERIOD_MS: the checks of the first bullet.
csv_ok() {
    python3 - "$@" <<'EOF'
import sys
path, min_lines, min_peak, period = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
lines = open(path).read().splitlines()
head = "time_ms,heap_inuse,heap_alloc,heap_sys,heap_released,committed,rss,vm_data,mappings"
bad = []
if lines[0] != head:
    bad.append(f"header {lines[0]!r}")
rows = []
for n, line in enumerate(lines[1:], 2):
    f = line.split(",")
    try:
        rows.append([float(f[0])] + [int(x) for x in f[1:]])
    except ValueError:
        bad.append(f"line {n}: {line!r}")
    if len(f) != 9:
        bad.append(f"line {n}: {len(f)} columns")
if len(rows) < min_lines:
    bad.append(f"{len(rows)} samples")
t = [r[0] for r in rows]
if any(b <= a for a, b in zip(t, t[1:])):
    bad.append("times do not increase")
steps = sorted(b - a for a, b in zip(t[:-2], t[1:-1]))  # the last line comes at exit
if steps and not period * 0.9 <= steps[len(steps) // 2] <= period * 20:
    bad.append(f"median step {steps[len(steps) // 2]} ms for a {period} ms period")
if any(min(r[1:6]) < 0 or r[6] <= 0 or r[7] <= 0 or r[8] <= 0 for r in rows):
    bad.append("a negative figure, or no rss/vm_data/mappings")
if max(r[1] for r in rows) < min_peak or max(r[2] for r in rows) < min_peak:
    bad.append(f"peak heap_inuse {max(r[1] for r in rows)} / heap_alloc {max(r[2] for r in rows)}")
_, inuse, alloc, sys_, released, committed = rows[-1][:6]
if not alloc <= inuse <= sys_ <= committed or released > sys_:
    bad.append(f"last line inconsistent: {lines[-1]}")
if bad:
    print("; ".join(bad[:5]))
    sys.exit(1)
EOF
}

# data_lines FILE: the number of samples (lines after the header).
data_lines() { echo $(($(wc -l <"$1") - 1)); }

is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

# The demo through gomalloc-run --trace.
if "$RUN" --trace "$W/demo.csv" --trace-ms 5 "$B/gomalloc-demo" >"$W/out" 2>"$W/err"; then
    pass "demo under --trace exits 0"
else
    fail "demo under --trace: status $?"; cat "$W/err"
fi
grep -q "0 mismatches" "$W/out" && grep -q " 0 corrupt" "$W/out" && pass "demo results" || fail "demo results"
if [ -f "$W/demo.csv" ] && csv_ok "$W/demo.csv" 20 $((128 << 20)) 5; then
    pass "demo timeline: $(data_lines "$W/demo.csv") samples, consistent"
else
    fail "demo timeline"; head -3 "$W/demo.csv" 2>/dev/null
fi
check "demo plot is a PNG" is_png "$W/demo.png"
grep -q "plot in $W/demo.png" "$W/err" && pass "gomalloc-run names the plot" || fail "gomalloc-run: $(cat "$W/err")"

# Children do not write into the parent's timeline; a forked child neither.
"$RUN" --trace "$W/kids.csv" --trace-ms 100000 "$PY" -c '
import subprocess
subprocess.run(["ls", "/"], stdout=subprocess.DEVNULL, check=True)
subprocess.run(["sh", "-c", "ls / >/dev/null; cat /etc/passwd >/dev/null"], check=True)
' 2>"$W/err"
n=$(data_lines "$W/kids.csv")
[ "$n" -eq 2 ] && pass "children stay out of the timeline" || { fail "children: $n samples"; cat "$W/kids.csv"; }
timeout 60 env LD_PRELOAD="$LIB" GOMALLOC_TRACE="$W/fork.csv" GOMALLOC_TRACE_MS=100000 "$PY" -c '
import os, sys
pid = os.fork()
if pid == 0:
    junk = [bytes(100) for _ in range(10000)]
    sys.exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
'
status=$?
[ $status -eq 0 ] && pass "fork under trace: child exits 0" || fail "fork under trace: status $status"
n=$(data_lines "$W/fork.csv")
[ "$n" -eq 2 ] && pass "a forked child writes nothing" || { fail "fork: $n samples"; cat "$W/fork.csv"; }

# "%p": one file per process.
LD_PRELOAD=$LIB GOMALLOC_TRACE="$W/pid.%p.csv" "$PY" -c '
import subprocess; subprocess.run(["ls", "/"], stdout=subprocess.DEVNULL)'
n=$(ls "$W"/pid.*.csv 2>/dev/null | wc -l)
[ "$n" -ge 2 ] && pass "%p: $n files" || fail "%p: $n files"

# An unwritable file.
LD_PRELOAD=$LIB GOMALLOC_TRACE=/nonexistent/dir/t.csv ls / >/dev/null 2>"$W/err"
status=$?
[ $status -eq 0 ] && [ "$(grep -c "GOMALLOC_TRACE: cannot open" "$W/err")" -eq 1 ] &&
    pass "unwritable trace file: one complaint" || { fail "unwritable trace file ($status)"; cat "$W/err"; }

# Exit status through gomalloc-run --trace, and a plot all the same.
"$RUN" --trace "$W/st.csv" "$PY" -c 'import sys; sys.exit(3)' 2>/dev/null
status=$?
[ $status -eq 3 ] && pass "exit status passed through" || fail "exit status $status"
check "plot of a short run" is_png "$W/st.png"

# gomalloc-plot's refusals.
echo "a,b" >"$W/not.csv"
"$B/gomalloc-plot" "$W/not.csv" 2>/dev/null
[ $? -eq 1 ] && pass "gomalloc-plot: not a trace" || fail "gomalloc-plot accepted a non-trace"
"$B/gomalloc-plot" "$W/missing.csv" 2>/dev/null
[ $? -eq 1 ] && pass "gomalloc-plot: missing file" || fail "gomalloc-plot: missing file"
"$B/gomalloc-plot" 2>/dev/null
[ $? -eq 2 ] && pass "gomalloc-plot: usage" || fail "gomalloc-plot: usage"
"$RUN" --trace-ms 5 true 2>/dev/null
[ $? -eq 2 ] && pass "gomalloc-run: --trace-ms alone is usage" || fail "gomalloc-run --trace-ms alone"

finish
