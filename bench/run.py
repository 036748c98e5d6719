#!/usr/bin/env python3
"""run.py: gomalloc's benchmark, `make bench` (issue 5).  Python 3 stdlib only.

What it measures, and why: gomalloc must be as fast as the best of glibc,
jemalloc, mimalloc and tcmalloc on what programs really do, while keeping RSS,
committed memory (VmData, what RLIMIT_DATA and strict overcommit count) and
the mapping count low, and giving memory back after a peak without being
asked (DESIGN.md section 4).  So every workload runs under every allocator,
side by side on the same machine, and the report gives ratios to the peers.

  1. Makes sure the peers are installed (Debian packages libjemalloc2,
     libmimalloc2.0, libtcmalloc-minimal4, and gnuplot, sqlite3), running
     apt-get only for what is missing.
  2. Builds bench/workloads.c into bench/out/gm-bench (cc -O2).
  3. Checks each allocator: LD_PRELOAD=lib gm-bench probe must report that
     malloc now comes from that library (glibc runs without LD_PRELOAD).
     gomalloc is ../build/libgomalloc.so, skipped with a note while it is
     missing or does not define malloc yet.
  4. Runs every workload under every allocator, interleaved (A B C D E, then
     again A B C D E ...), RUNS times, and keeps medians.  Synthetic workloads
     are gm-bench's (their own time, excluding process start-up); the real
     programs are python3 (PYTHONMALLOC=malloc), the sqlite3 shell and gcc
     compiling a large generated file (wall time of the whole process tree).
     Every process starts through `gm-bench spawn`, a small launcher that
     reports the child's wall time and ru_maxrss (which covers waited-for
     descendants such as cc1; started from Python directly, ru_maxrss would
     include the Python runner's RSS from before exec).  Peak VmData and the
     mapping count are sampled from /proc/PID/status and /proc/PID/maps every
     10 ms by this script (summed / maxed over the process tree), and
     gm-bench also reports them at its own peak.
  5. Checks every result: gm-bench checks its objects' contents itself and
     prints a checksum that must equal glibc's; python's digest, sqlite's
     output and gcc's object file must equal glibc's too.  A run that fails
     counts as a failure in the report and makes this script exit 1.
  6. Finds, by bisection, the smallest RLIMIT_DATA with which a few workloads
     still finish with the right checksum.
  7. Writes bench/out/report.md, bench/out/time_ratios.png and the
     peak-then-free pictures (gnuplot).

Environment: QUICK=1 (fewer runs, smaller sizes: a few minutes), RUNS=n,
SCALE=x, ONLY=w1,w2 (workloads), ALLOCATORS=a,b, RLIMIT=0 (skip bisection),
CC (compiler for gm-bench), GM_BASELINE=lib (another gomalloc build, run
beside the others as gomalloc-base).
"""

import datetime
import hashlib
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
SERIES = os.path.join(OUT, "series")
GM_BENCH = os.path.join(OUT, "gm-bench")
LIBDIR = "/usr/lib/x86_64-linux-gnu"
KiB, MiB, GiB = 1024, 1024**2, 1024**3


def flag(name, default=""):
    return os.environ.get(name, default).strip().lower() not in ("", "0", "no", "false", "off")


QUICK = flag("QUICK")
RUNS = int(os.environ.get("RUNS") or (3 if QUICK else 5))
SCALE = float(os.environ.get("SCALE") or (0.4 if QUICK else 1.0))
RLIMIT_SCALE = 0.2 if QUICK else 0.5
PY_N = 40000 if QUICK else 120000
SQL_ROWS = 100000 if QUICK else 300000
GCC_FUNCS = 70 if QUICK else 200
SAMPLE_S = 0.010

# name, library for LD_PRELOAD (None: glibc itself), Debian package
ALLOCATORS = [
    ("glibc", None, None),
    ("jemalloc", f"{LIBDIR}/libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", f"{LIBDIR}/libmimalloc.so.2", "libmimalloc2.0"),
    ("tcmalloc", f"{LIBDIR}/libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("gomalloc", os.path.join(ROOT, "build", "libgomalloc.so"), None),
]
# GM_BASELINE=/path/to/libgomalloc.so: another build of gomalloc (an earlier
# commit's, say) runs beside the others as "gomalloc-base", for before/after
# figures from one run.
if os.environ.get("GM_BASELINE"):
    ALLOCATORS.append(("gomalloc-base", os.path.abspath(os.environ["GM_BASELINE"]), None))
PEERS = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]
COLORS = {"glibc": "#1f77b4", "jemalloc": "#ff7f0e", "mimalloc": "#2ca02c",
          "tcmalloc": "#9467bd", "gomalloc": "#d62728", "gomalloc-base": "#8c564b"}

T_START = time.monotonic()


def log(msg):
    print(f"[bench {time.monotonic() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Setup: packages, build, allocators, inputs of the real programs.
# --------------------------------------------------------------------------

def ensure_packages():
    """apt-get install what is missing, and nothing else."""
    want = [pkg for _, lib, pkg in ALLOCATORS if pkg and not os.path.exists(lib)]
    if not shutil.which("gnuplot"):
        want.append("gnuplot-nox")
    if not shutil.which("sqlite3"):
        want.append("sqlite3")
    if not want:
        return
    prefix = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            log(f"warning: not root and no sudo; cannot install {' '.join(want)} (skipped)")
            return
        prefix = ["sudo", "-n"]
    install = prefix + ["apt-get", "install", "-y", "--no-install-recommends"] + want
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(" ".join(install))
    if subprocess.call(install, env=env) != 0:  # stale package lists: update once, retry
        subprocess.call(prefix + ["apt-get", "update"], env=env)
        if subprocess.call(install, env=env) != 0:
            log(f"warning: apt-get could not install {' '.join(want)}; what is missing is skipped")


def build():
    cc = os.environ.get("CC", "cc")
    flags = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-pthread", "-fno-builtin-malloc",
             "-fno-builtin-calloc", "-fno-builtin-realloc", "-fno-builtin-free"]
    cmd = [cc] + flags + ["-o", GM_BENCH, os.path.join(BENCH, "workloads.c"), "-lm", "-ldl"]
    log(" ".join(cmd))
    subprocess.check_call(cmd)


def alloc_env(lib):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def probe_allocators():
    """The allocators that really take over malloc, and notes on the others."""
    only = [a for a in os.environ.get("ALLOCATORS", "").split(",") if a]
    active, notes = [], []
    for name, lib, _ in ALLOCATORS:
        if only and name not in only:
            continue
        if lib and not os.path.exists(lib):
            notes.append(f"{name}: skipped, {lib} does not exist"
                         + (" (the malloc layer has not been built yet)" if name == "gomalloc" else ""))
            continue
        p = subprocess.run([GM_BENCH, "probe"], env=alloc_env(lib), capture_output=True, text=True)
        got = p.stdout.strip().partition("=")[2]
        if lib:
            ok = p.returncode == 0 and os.path.realpath(got) == os.path.realpath(lib)
        else:
            ok = p.returncode == 0 and os.path.basename(got).startswith("libc.so")
        if ok:
            active.append((name, lib))
        else:
            why = f"malloc still comes from {got or '?'}" if p.returncode == 0 else \
                f"the probe failed (status {p.returncode}: {p.stderr.strip()[:200]})"
            notes.append(f"{name}: skipped, {lib or 'glibc'} does not take over malloc: {why}"
                         + (" (libgomalloc.so does not define malloc yet)" if name == "gomalloc" else ""))
    return active, notes


def package_version(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "?"


def gen_sql(rows):
    """The sqlite3 workload: build a table and indexes, query, update, delete."""
    return f"""-- Generated by bench/run.py: the sqlite3 workload ({rows} rows, in memory).
PRAGMA cache_size = -262144;
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, grp INTEGER, v BLOB, note TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})
INSERT INTO t SELECT i, printf('k%08x', (i * 2654435761) % 4294967296), i % 1000,
                     zeroblob(16 + i % 200), printf('%.*c', i % 50, 'x') FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_grp ON t(grp, id);
SELECT count(*), sum(length(v)), sum(length(note)) FROM t;
SELECT grp, count(*), min(k), max(k) FROM t GROUP BY grp ORDER BY grp LIMIT 3;
SELECT count(*) FROM t AS a JOIN t AS b ON a.k = b.k WHERE a.id % 7 = 0;
SELECT sum(x) FROM (SELECT sum(id) OVER (PARTITION BY grp ORDER BY id ROWS 10 PRECEDING) AS x FROM t);
UPDATE t SET note = note || k WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), total(length(note)) FROM t;
SELECT count(DISTINCT substr(k, 1, 5)) FROM t;
SELECT hex(sha3(group_concat(k || note, ','))) FROM (SELECT k, note FROM t ORDER BY k);
"""


def gen_c_source(nfuncs):
    """The gcc workload: many functions with loops, switches, tables and calls
    between them (inlining candidates), so every pass of -O2 has work."""
    out = ["/* Generated by bench/run.py: a large C file for the gcc workload. */",
           "#include <string.h>",
           "struct rec { int a; long b; double c; char name[16]; };", ""]
    for f in range(nfuncs):
        vals = ", ".join(str((f * 131 + j * 7919) % 1000 - 500) for j in range(64))
        out.append(f"static const int table_{f}[64] = {{{vals}}};")
        callee = f"f_{(f * 7) // 11}(acc & 15, r, n / 2)" if f > 0 else "0"
        out.append(f"""static int f_{f}(int x, struct rec *r, int n)
{{
    int acc = {f % 97};
    double d = {f}.5;
    for (int i = 0; i < n; i++) {{
        switch ((x + i) & 7) {{
        case 0: acc += table_{f}[i & 63] * x; break;
        case 1: acc ^= (acc << 3) + table_{f}[(i * 5) & 63]; break;
        case 2: d = d * 0.5 + r[i & 3].c; acc += (int)d; break;
        case 3: r[i & 3].a += acc; acc -= r[(i + 1) & 3].a; break;
        case 4: memcpy(r[i & 3].name, "{f:08d}", 8); acc += r[i & 3].name[i & 7]; break;
        case 5: acc = acc * {2 * f + 1} + i; break;
        case 6: if (acc > {f * 3}) acc -= {f % 13 + 1}; else acc += x; break;
        default: acc += (int)(r[i & 3].b >> 3); break;
        }}
        r[i & 3].b += acc ^ i;
        if ((acc & 255) == {f % 256} && n > 1) acc += {callee};
    }}
    return acc + (int)r[0].c;
}}
""")
    out.append("int run_all(struct rec *r, int n)\n{\n    int s = 0;")
    out += [f"    s += f_{f}(s & 31, r, n);" for f in range(nfuncs)]
    out.append("    return s;\n}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# Running one process and sampling its memory.
# --------------------------------------------------------------------------

def read_status(pid):
    """(VmRSS, VmData) in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None
    rss = data = None
    for line in text.split(b"\n"):
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith(b"VmData:"):
            data = int(line.split()[1])
    return None if rss is None or data is None else (rss, data)


def count_maps(pid):
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def descendants(pid):
    """The process tree under pid (children started by main threads only,
    which is how the launcher, gcc, python and sqlite3 start them)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        found += kids
        todo += kids
    return found


class Run:
    """One process run: status, wall time, peaks, output."""
    rc = wall = maxrss_kib = data_peak_kib = maps_peak = 0
    stdout = stderr = ""
    timed_out = False


def run_one(argv, lib, extra_env=None, stdin_path=None, rlimit_data=None, timeout=600, sample=True):
    """Run argv under allocator `lib` (None: glibc) through `gm-bench spawn`,
    which reports the child's exact wall time and peak RSS.  Meanwhile this
    thread samples VmData (summed) and the mapping count (maxed) of the
    launcher's descendants every 10 ms."""
    r = Run()
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["GM_BENCH_PRELOAD"] = lib or ""
    env.update(extra_env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL

        def limit():
            resource.setrlimit(resource.RLIMIT_DATA, (rlimit_data, rlimit_data))

        t0 = time.monotonic()
        proc = subprocess.Popen([GM_BENCH, "spawn"] + argv, env=env, stdin=stdin, stdout=out, stderr=err,
                                preexec_fn=limit if rlimit_data else None, start_new_session=True)
        done = {}

        def waiter():
            _, status, _ = os.wait4(proc.pid, 0)
            done.update(t=time.monotonic(), status=status)

        w = threading.Thread(target=waiter)
        w.start()
        i = 0
        while w.is_alive():
            if sample:
                data_sum = 0
                for pid in descendants(proc.pid):
                    st = read_status(pid)
                    if st:
                        data_sum += st[1]
                    if i % 5 == 0:
                        r.maps_peak = max(r.maps_peak, count_maps(pid))
                r.data_peak_kib = max(r.data_peak_kib, data_sum)
            if time.monotonic() - t0 > timeout and not r.timed_out:
                r.timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            w.join(SAMPLE_S)
            i += 1
        if stdin_path:
            stdin.close()
        proc.returncode = os.waitstatus_to_exitcode(done["status"])  # Popen must not wait again
        r.rc = proc.returncode
        out.seek(0)
        err.seek(0)
        r.stdout = out.read().decode(errors="replace")
        r.stderr = err.read().decode(errors="replace")
    r.wall = done["t"] - t0
    kept = []
    for line in r.stderr.splitlines():
        if line.startswith("gm-bench-spawn:"):
            kv = dict(tok.split("=", 1) for tok in line.split()[1:])
            r.wall, r.maxrss_kib = float(kv["wall_s"]), int(kv["maxrss_kib"])
        elif line:
            kept.append(line)
    r.stderr = "\n".join(kept)
    return r


def parse_kv(text):
    """The key=value pairs of gm-bench's result line."""
    for line in text.splitlines():
        if line.startswith("workload="):
            return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
    return {}


# --------------------------------------------------------------------------
# Workloads.
# --------------------------------------------------------------------------

SYNTHETIC = [
    ("small", "one thread, 1 B-1 KiB objects, a 50 000-object live set replaced at random, bursts of LIFO temporaries"),
    ("xthread", "4 threads (on 2 cores); each round every thread allocates 4096 objects and frees its neighbour's: every free is remote"),
    ("prodcons", "2 producers, 2 consumers, a bounded queue of 256-message batches (32 B-2 KiB): memory flows one way"),
    ("server", "4 workers: request buffer, headers, responses freed 8 requests later, sessions, a shared cache whose old entries other threads free; 8 B-1 MiB"),
    ("random", "one thread, 1 B-64 KiB (mostly small), a live set of ~200 MiB x scale, random replacement"),
    ("large", "6 vectors grown by realloc (x1.5 and +64 KiB steps, contents checked), then 48 live 64 KiB-8 MiB objects (1/4 calloc) replaced at random"),
    ("churn", "waves of 4 short-lived threads, each allocating 3000 objects and handing a third to the main thread, which frees them after the thread exits"),
    ("peakfree", "a burst: ~1 GiB x scale of mixed sizes, the last 90% freed, then 3 s idle (2.2 s in QUICK) without allocator calls"),
    ("fragfree", "~512 MiB x scale of 16-256 B objects, 90% freed at random (in groups allocated together), then idle"),
]
REAL = [
    ("python", "python3 with PYTHONMALLOC=malloc: dicts, lists, strings, JSON, a tree of instances (bench/py_workload.py)"),
    ("sqlite", "sqlite3 shell, in-memory database: insert, index, join, window, update, delete"),
    ("gcc", "gcc -O2 -c of a large generated C file"),
]
PEAK_WORKLOADS = ["peakfree", "fragfree"]
RLIMIT_WORKLOADS = ["noop", "random", "large", "server"]


class Workload:
    def __init__(self, name, desc, real):
        self.name, self.desc, self.real = name, desc, real


def setup_real():
    """Inputs and commands of the real programs; those not installed are skipped."""
    notes, cmds = [], {}
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    cmds["python"] = ([python, "-s", "-B", os.path.join(BENCH, "py_workload.py"), str(PY_N)], None,
                      {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"})
    sql = os.path.join(OUT, "sqlite_workload.sql")
    with open(sql, "w") as f:
        f.write(gen_sql(SQL_ROWS))
    cmds["sqlite"] = (["sqlite3", "-batch", ":memory:"], sql, {})
    csrc = os.path.join(OUT, "gcc_workload.c")
    with open(csrc, "w") as f:
        f.write(gen_c_source(GCC_FUNCS))
    cmds["gcc"] = (["gcc", "-O2", "-c", csrc, "-o", os.path.join(OUT, "gcc_workload.o")], None, {})
    for name, (argv, _, _) in list(cmds.items()):
        if not argv[0] or not shutil.which(argv[0]):
            notes.append(f"{name}: skipped, {argv[0] or 'python3'} is not installed")
            del cmds[name]
    return cmds, notes


def run_workload(w, alloc, lib, rnd, real_cmds):
    """Run one workload once; returns a dict of measures, `key` (what must be
    equal across allocators) and `error` (None if the process succeeded)."""
    if w.real:
        argv, stdin, extra = real_cmds[w.name]
        r = run_one(argv, lib, extra_env=extra, stdin_path=stdin, timeout=900)
        if w.name == "gcc":
            obj = argv[-1]
            try:
                with open(obj, "rb") as f:
                    key = hashlib.sha256(f.read()).hexdigest()
                os.unlink(obj)
            except OSError:
                key = None
        else:
            key = hashlib.sha256(r.stdout.encode()).hexdigest()
        m = {"time": r.wall, "rss": r.maxrss_kib, "data": r.data_peak_kib, "maps": r.maps_peak}
    else:
        series = os.path.join(SERIES, f"{w.name}_{alloc}_{rnd}.txt")
        argv = [GM_BENCH, w.name, str(SCALE)] + ([series] if w.name in PEAK_WORKLOADS else [])
        r = run_one(argv, lib, timeout=600)
        kv = parse_kv(r.stdout)
        key = kv.get("checksum")
        m = {"time": float(kv.get("time_s", "nan")), "rss": r.maxrss_kib,
             "data": max(r.data_peak_kib, int(kv.get("data_at_peak_kib", 0)), int(kv.get("data_peak_kib", 0))),
             "maps": max(r.maps_peak, int(kv.get("maps_peak", 0))), "kv": kv, "series": series}
    m["key"] = key
    m["error"] = None
    if r.timed_out:
        m["error"] = "timed out"
    elif r.rc != 0:
        m["error"] = f"exit status {r.rc}: {r.stderr.strip()[-300:]}"
    elif not key:
        m["error"] = "no result printed"
    return m


# --------------------------------------------------------------------------
# Smallest RLIMIT_DATA, by bisection.
# --------------------------------------------------------------------------

def min_rlimit(w, lib, ref_key):
    """Smallest RLIMIT_DATA (bytes) with which workload w still exits 0 with
    the reference checksum, to 0.5% (at least 256 KiB); None if it never does."""
    argv = [GM_BENCH, w, str(RLIMIT_SCALE)]
    base = run_one(argv, lib, timeout=300)
    kv = parse_kv(base.stdout)
    if base.rc != 0 or kv.get("checksum") != ref_key:
        return None, kv
    timeout = max(30.0, 20 * base.wall)
    probes = [0]

    def ok(limit):
        probes[0] += 1
        r = run_one(argv, lib, rlimit_data=limit, timeout=timeout, sample=False)
        return r.rc == 0 and not r.timed_out and parse_kv(r.stdout).get("checksum") == ref_key

    hi = max(int(base.data_peak_kib * KiB * 1.5), 16 * MiB)
    while not ok(hi):
        hi *= 2
        if hi > 64 * GiB:
            return None, kv
    lo = hi // 4
    while ok(lo):
        hi, lo = lo, lo // 4
        if lo < MiB:
            lo = 0
            break
    while hi - lo > max(256 * KiB, hi // 200):
        mid = (lo + hi) // 2 // (64 * KiB) * (64 * KiB)
        if mid <= lo:
            break
        if ok(mid):
            hi = mid
        else:
            lo = mid
    kv["probes"] = probes[0]
    return hi, kv


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, digits=2, unit=""):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}{unit}"


def pct(x):
    """A share as a percentage, without a "-0%" for tiny negative noise."""
    return None if x is None or math.isnan(x) else 0.0 if abs(x) < 0.005 else 100 * x


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def host_info():
    def first(path, prefix=None):
        try:
            with open(path) as f:
                for line in f:
                    if prefix is None or line.startswith(prefix):
                        return line.split(":", 1)[-1].strip() if prefix else line.strip()
        except OSError:
            pass
        return "?"
    return {
        "kernel": platform.release(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "mem": first("/proc/meminfo", "MemTotal"),
        "thp": first("/sys/kernel/mm/transparent_hugepage/enabled"),
        "overcommit": first("/proc/sys/vm/overcommit_memory"),
    }


def git_rev():
    p = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def gnuplot(script_path, script):
    with open(script_path, "w") as f:
        f.write(script)
    if not shutil.which("gnuplot"):
        log("gnuplot missing: no pictures")
        return False
    p = subprocess.run(["gnuplot", script_path], capture_output=True, text=True, cwd=OUT)
    if p.returncode != 0:
        log(f"gnuplot failed on {script_path}: {p.stderr.strip()[:500]}")
    return p.returncode == 0


def plot_time_ratios(workloads, allocs, ratio):
    """Clustered bars; bars above CAP are cut there and labelled with their value."""
    dat = os.path.join(OUT, "time_ratios.dat")
    with open(dat, "w") as f:
        f.write("# workload " + " ".join(allocs) + "\n")
        for w in workloads:
            f.write(w.name + " " + " ".join(fmt(ratio[w.name].get(a), 4).replace("–", "?") for a in allocs) + "\n")
    top = max((x for w in ratio.values() for x in w.values()), default=1.0)
    cap = 3.0 if top > 3.2 else top * 1.05
    k = len(allocs)
    plots = [f"'time_ratios.dat' using (min(column({i + 2}))):xtic(1) title '{a}' lc rgb '{COLORS[a]}'"
             for i, a in enumerate(allocs)]
    # A cluster of k bars with gap 1 spans k+1 slots of width 1/(k+1), centred on the row number.
    plots += [f"'time_ratios.dat' using ($0 + ({i} - {(k - 1) / 2}) / {k + 1}):({cap}):"
              f"(column({i + 2}) > {cap} ? sprintf('%.1f', column({i + 2})) : '') with labels offset 0,0.6 notitle"
              for i in range(k)]
    plots = ", ".join(plots)
    gnuplot(os.path.join(OUT, "time_ratios.gp"), f"""# Generated by bench/run.py
set terminal pngcairo size 1280,600 font "DejaVu Sans,11"
set output 'time_ratios.png'
set title "Time / fastest peer's time, per workload (median of {RUNS} runs; lower is better; dashed: 1.10{'; bars cut at %g, value on top' % cap if top > 3.2 else ''})"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
min(x) = x > {cap} ? {cap} : x
set yrange [0:{cap * 1.08:.2f}]
set ylabel "time / fastest peer"
set grid ytics
set key top left
set arrow from graph 0, first 1.1 to graph 1, first 1.1 nohead dashtype 2 lc rgb "black"
set arrow from graph 0, first 1.0 to graph 1, first 1.0 nohead lc rgb "gray40"
plot {plots}
""")


def plot_peak(name, picture, allocs, runs_of, title):
    """RSS and VmData over time, one line per allocator (from the median run)."""
    lines = []
    for a in allocs:
        m = runs_of(a)
        if m and os.path.exists(m["series"]):
            lines.append((a, m))
    if not lines:
        return False
    live = med([float(m["kv"]["live_after"]) / MiB for _, m in lines])

    def plot(col):
        parts = [f"'{os.path.relpath(m['series'], OUT)}' using 1:{col} with lines lw 2 lc rgb '{COLORS[a]}' title '{a}'"
                 for a, m in lines]
        parts.append(f"{live:.1f} with lines dashtype 2 lc rgb 'black' title 'live ({live:.0f} MiB)'")
        return "plot " + ", ".join(parts)
    return gnuplot(os.path.join(OUT, f"{name}.gp"), f"""# Generated by bench/run.py
set terminal pngcairo size 1200,900 font "DejaVu Sans,11"
set output '{picture}'
set multiplot layout 2,1 title "{title}\\n(heap = process minus its size before the workload and gm-bench's own bookkeeping; sampled every 10 ms)"
set grid
set key outside right top
set xlabel "seconds since the free phase ended (negative: allocating, then freeing)"
set ylabel "heap VmRSS (MiB)"
set yrange [0:*]
{plot(4)}
set ylabel "heap VmData (MiB)"
{plot(5)}
unset multiplot
""")


def median_run(runs):
    """The run whose time is the median (for pictures)."""
    ok = sorted((m for m in runs if m["ok"]), key=lambda m: m["time"])
    return ok[len(ok) // 2] if ok else None


def write_report(workloads, allocs, results, rlimits, notes, started, duration, failures):
    names = [a for a, _ in allocs]
    peers = [a for a in names if a in PEERS]
    L = []
    info = host_info()
    L.append("# gomalloc benchmark report\n")
    L.append(f"Generated by `make bench{' QUICK=1' if QUICK else ''}` (bench/run.py) on {started:%Y-%m-%d %H:%M}, "
             f"in {duration / 60:.1f} min. Repository: {git_rev()}.\n")
    L.append(f"- Machine: {info['cpu']}, {info['cores']} cores, {info['mem']}, Linux {info['kernel']}, "
             f"THP `{info['thp']}`, vm.overcommit_memory={info['overcommit']}.")
    L.append(f"- Mode: {'QUICK' if QUICK else 'full'}: {RUNS} runs per workload and allocator, interleaved "
             f"({' '.join(names)}, then again ...), medians; synthetic workloads at scale {SCALE:g}.")
    vers = []
    for a, lib in allocs:
        pkg = dict((n, p) for n, _, p in ALLOCATORS).get(a)
        vers.append(f"{a} ({'system libc' if not lib else (pkg + ' ' + package_version(pkg)) if pkg else lib})")
    L.append("- Allocators (default settings, LD_PRELOAD; glibc without): " + ", ".join(vers) + ".")
    for n in notes:
        L.append(f"- Note: {n}.")
    L.append("")

    # Ratios and medians.
    med_of = {}
    for w in workloads:
        for a in names:
            ok = [m for m in results[w.name][a] if m["ok"]]
            med_of[w.name, a] = {k: med([m[k] for m in ok]) for k in ("time", "rss", "data", "maps")} if ok else None

    def best(w, k):
        vals = [med_of[w, p][k] for p in peers if med_of[w, p] and med_of[w, p][k]]
        return min(vals) if vals else None

    tratio = {w.name: {} for w in workloads}
    for w in workloads:
        for a in names:
            if med_of[w.name, a] and best(w.name, "time"):
                tratio[w.name][a] = med_of[w.name, a]["time"] / best(w.name, "time")

    # Summary.
    L.append("## Summary\n")
    L.append("Ratios are to the best *peer* (glibc, jemalloc, mimalloc, tcmalloc) on each workload, so they do not "
             "move when gomalloc joins; geometric means are over the workloads an allocator completed. "
             "1.00 = as good as the best peer; lower is better.\n")
    L.append("| allocator | time: geomean ×fastest | time: worst (workload) | workloads ≤ 1.10× | "
             "peak RSS: geomean ×best | peak VmData: geomean ×best | max mappings | failed runs |")
    L.append("|---|---|---|---|---|---|---|---|")
    for a in names:
        rs = [tratio[w.name][a] for w in workloads if a in tratio[w.name]]
        worst = max(((tratio[w.name][a], w.name) for w in workloads if a in tratio[w.name]), default=None)
        within = sum(1 for x in rs if x <= 1.10)
        rss = [med_of[w.name, a]["rss"] / best(w.name, "rss") for w in workloads if med_of[w.name, a] and best(w.name, "rss")]
        data = [med_of[w.name, a]["data"] / best(w.name, "data") for w in workloads if med_of[w.name, a] and best(w.name, "data")]
        maps = max((med_of[w.name, a]["maps"] for w in workloads if med_of[w.name, a]), default=None)
        nfail = sum(1 for w in workloads for m in results[w.name][a] if not m["ok"])
        L.append(f"| {a} | {fmt(geomean(rs))} | {fmt(worst[0]) + ' (' + worst[1] + ')' if worst else '–'} | "
                 f"{within}/{len(rs)} | {fmt(geomean(rss))} | {fmt(geomean(data))} | {fmt(maps, 0)} | {nfail} |")
    L.append("")
    L.append("![time ratios](time_ratios.png)\n")

    # Targets of DESIGN.md section 4, evaluated for everyone.
    peak = peak_table_rows(results, names)
    L.append("### DESIGN.md §4 figures, for every allocator\n")
    L.append("Speed: every workload ≤ 1.10× the fastest peer and geomean ≤ 1.0. Memory: peak RSS ≤ best peer's. "
             "Burst: heap RSS and VmData 1 s after the burst ≤ 1.1 × live. Fragmentation: at least half the memory "
             "above the floor returned (2 s after). Commit: smallest RLIMIT_DATA ≤ 1.15 × live + 8 MiB. "
             "Mappings: a few dozen plus one per committed GiB.\n")
    L.append("| allocator | speed | RSS ≤ best peer | burst RSS ÷ live @1 s | burst VmData ÷ live @1 s | "
             "returned above floor @2 s | RLIMIT_DATA target met | max mappings |")
    L.append("|---|---|---|---|---|---|---|---|")
    for a in names:
        rs = [tratio[w.name][a] for w in workloads if a in tratio[w.name]]
        speed = "–" if not rs else ("yes" if all(x <= 1.10 for x in rs) and geomean(rs) <= 1.0 else "no") + \
            f" ({sum(1 for x in rs if x <= 1.10)}/{len(rs)}, {fmt(geomean(rs))})"
        rss_ok = [med_of[w.name, a]["rss"] <= best(w.name, "rss") for w in workloads if med_of[w.name, a] and best(w.name, "rss")]
        pf, ff = peak.get(("peakfree", a)), peak.get(("fragfree", a))
        rl = [v for (w, x), v in rlimits.items() if x == a and w != "noop" and v.get("limit")]
        rl_ok = sum(1 for v in rl if v["limit"] <= 1.15 * v["live"] + 8 * MiB)
        maps = max((med_of[w.name, a]["maps"] for w in workloads if med_of[w.name, a]), default=None)
        L.append(f"| {a} | {speed} | {sum(rss_ok)}/{len(rss_ok)} | {fmt(pf and pf['rss_ratio_1s'])} | "
                 f"{fmt(pf and pf['data_ratio_1s'])} | {fmt(ff and pct(ff['returned']), 0, '%')} | "
                 f"{rl_ok}/{len(rl)} | {fmt(maps, 0)} |")
    L.append("")

    # Per workload.
    L.append("## Workloads\n")
    L.append("Time: median (± = (max − min) ÷ median over the runs). ×peer = this allocator's time ÷ that peer's. "
             "Peak RSS: ru_maxrss. Peak VmData: committed private memory, sampled every 10 ms (the most RLIMIT_DATA "
             "would have to allow). Mappings: /proc/PID/maps lines at the peak. Synthetic workloads report their own "
             "time (the peak-then-free ones: allocation and free phases only); real programs the wall time of the "
             "whole process tree.\n")
    for w in workloads:
        L.append(f"### {w.name}{' (real program)' if w.real else ''}\n")
        L.append(f"{w.desc}.\n")
        hdr = ["allocator", "time (s)", "±", "×fastest peer"] + [f"×{p}" for p in peers] + \
              ["peak RSS (MiB)", "×best", "peak VmData (MiB)", "×best", "mappings", "runs ok"]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for a in names:
            runs = results[w.name][a]
            ok = [m for m in runs if m["ok"]]
            md = med_of[w.name, a]
            if not md:
                err = next((m["error"] for m in runs if m["error"]), "wrong result")
                L.append(f"| {a} | FAILED: {err[:120].replace('|', '/')} |" + " |" * (len(hdr) - 2))
                continue
            ts = [m["time"] for m in ok]
            spread = (max(ts) - min(ts)) / md["time"] * 100 if md["time"] else 0
            cells = [a, fmt(md["time"], 3), f"{spread:.0f}%", fmt(tratio[w.name].get(a))]
            for p in peers:
                cells.append(fmt(md["time"] / med_of[w.name, p]["time"]) if med_of[w.name, p] else "–")
            cells += [fmt(md["rss"] / KiB, 1), fmt(md["rss"] / best(w.name, "rss") if best(w.name, "rss") else None),
                      fmt(md["data"] / KiB, 1), fmt(md["data"] / best(w.name, "data") if best(w.name, "data") else None),
                      fmt(md["maps"], 0), f"{len(ok)}/{len(runs)}"]
            L.append("| " + " | ".join(cells) + " |")
        L.append("")

    # After the peak.
    if any(k[0] in PEAK_WORKLOADS for k in peak):
        L.append("## After the peak: does memory go back while the program is idle?\n")
        L.append("The workload frees, then sleeps without calling the allocator; RSS and VmData are read 1 s and 2 s "
                 "after the free phase ends. *Heap* figures subtract what the process had before the workload and "
                 "the benchmark's own bookkeeping (mmap'd, reported by gm-bench), so they compare with the live "
                 "bytes. The floor (fragfree) is the memory in 4 KiB pages that still hold a byte of a live object: "
                 "no allocator that does not move objects can go below it. Returned = (heap RSS at the peak − heap "
                 "RSS at 2 s) ÷ (heap RSS at the peak − floor). Medians over runs.\n")
        for wname in PEAK_WORKLOADS:
            rows = [(a, peak[wname, a]) for a in names if (wname, a) in peak]
            if not rows:
                continue
            L.append(f"### {wname}\n")
            hdr = ["allocator", "live (MiB)", "heap RSS peak", "heap RSS @1 s", "heap RSS @2 s", "heap VmData @1 s",
                   "heap VmData @2 s", "RSS ÷ live @1 s", "VmData ÷ live @1 s"]
            if wname == "fragfree":
                hdr += ["floor (MiB)", "returned"]
            L.append("| " + " | ".join(hdr) + " |")
            L.append("|" + "---|" * len(hdr))
            for a, p in rows:
                cells = [a, fmt(p["live"], 1), fmt(p["rss_peak"], 1), fmt(p["rss_1s"], 1), fmt(p["rss_2s"], 1),
                         fmt(p["data_1s"], 1), fmt(p["data_2s"], 1), fmt(p["rss_ratio_1s"]), fmt(p["data_ratio_1s"])]
                if wname == "fragfree":
                    cells += [fmt(p["floor"], 1), fmt(pct(p["returned"]), 0, "%")]
                L.append("| " + " | ".join(cells) + " |")
            L.append("")
            pic = "peak_then_free.png" if wname == "peakfree" else "peak_then_free_random.png"
            if os.path.exists(os.path.join(OUT, pic)):
                L.append(f"![{wname}: RSS and VmData over time]({pic})\n")

    # RLIMIT_DATA.
    if rlimits:
        L.append("## Smallest RLIMIT_DATA\n")
        L.append(f"Found by bisection (to 0.5%) at scale {RLIMIT_SCALE:g}: the smallest limit with which the workload "
                 "still exits 0 with the right checksum. RLIMIT_DATA counts brk and private writable mappings, "
                 "so this is the commit an allocator needs. Live = the workload's peak of requested live bytes "
                 "(server: the sum of per-thread peaks plus the shared cache's, an upper bound). noop (one "
                 "100-byte malloc) shows each allocator's fixed start-up need, libc included. Target: "
                 "1.15 × live + 8 MiB. One bisection per pair; multi-threaded workloads vary from run to run.\n")
        L.append("| workload | allocator | live (MiB) | min RLIMIT_DATA (MiB) | ÷ live | − noop (MiB) | target (MiB) | met | probes |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for w in RLIMIT_WORKLOADS:
            for a in names:
                v = rlimits.get((w, a))
                if v is None:
                    continue
                if not v.get("limit"):
                    L.append(f"| {w} | {a} | – | FAILED | | | | | |")
                    continue
                base = rlimits.get(("noop", a), {}).get("limit")
                target = 1.15 * v["live"] + 8 * MiB
                L.append(f"| {w} | {a} | {fmt(v['live'] / MiB, 1)} | {fmt(v['limit'] / MiB, 1)} | "
                         f"{fmt(v['limit'] / v['live']) if w != 'noop' else '–'} | "
                         f"{fmt((v['limit'] - base) / MiB, 1) if base and w != 'noop' else '–'} | "
                         f"{fmt(target / MiB, 1) if w != 'noop' else '–'} | "
                         f"{('yes' if v['limit'] <= target else 'no') if w != 'noop' else '–'} | {v.get('probes', '–')} |")
        L.append("")

    if failures:
        L.append("## Failures\n")
        for f in failures:
            L.append(f"- {f}")
        L.append("")

    L.append("## Method\n")
    L.append("- Workloads: bench/workloads.c (gm-bench), bench/py_workload.py, and the sqlite3 script and C file that "
             "run.py generates into bench/out/. Every object is patterned when allocated and checked before it is "
             "freed; results (checksums, python's digest, sqlite's output, gcc's object file) must equal glibc's.")
    L.append("- Threads in gm-bench get 256 KiB stacks (thread stacks count in VmData and RLIMIT_DATA). "
             "The machine is small and shared: read ratios within ±5-10% as noise; the ± column shows the spread.")
    L.append("- The peak-then-free pictures come from each allocator's median-time run: heap VmRSS and VmData (the "
             "process's minus its size before the workload and gm-bench's own mmap'd bookkeeping), sampled every "
             "10 ms inside gm-bench by a thread that never calls the allocator.")
    L.append("- Everything is regenerated by `make bench` (`make bench QUICK=1` for a quick look); "
             "raw series are in bench/out/series/, gnuplot scripts in bench/out/*.gp.")
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def peak_table_rows(results, names):
    """Medians of the after-the-peak figures, in MiB, per (workload, allocator)."""
    rows = {}
    for w in PEAK_WORKLOADS:
        if w not in results:
            continue
        for a in names:
            ok = [m for m in results[w][a] if m["ok"] and "kv" in m]
            if not ok:
                continue

            def f(m, k):
                return float(m["kv"].get(k, "nan"))
            figures = []
            for m in ok:
                base_rss, base_data = f(m, "base_rss_kib"), f(m, "base_data_kib")
                hp, h = f(m, "harness_peak_kib"), f(m, "harness_kib")
                live = f(m, "live_after") / MiB
                d = {
                    "live": live,
                    "rss_peak": (f(m, "rss_peak_kib") - base_rss - hp) / KiB,
                    "rss_1s": (f(m, "rss_1s_kib") - base_rss - h) / KiB,
                    "rss_2s": (f(m, "rss_2s_kib") - base_rss - h) / KiB,
                    "data_1s": (f(m, "data_1s_kib") - base_data - h) / KiB,
                    "data_2s": (f(m, "data_2s_kib") - base_data - h) / KiB,
                }
                d["rss_ratio_1s"] = d["rss_1s"] / live
                d["data_ratio_1s"] = d["data_1s"] / live
                if "floor_kib" in m["kv"]:
                    d["floor"] = f(m, "floor_kib") / KiB
                    above = d["rss_peak"] - d["floor"]
                    d["returned"] = (d["rss_peak"] - d["rss_2s"]) / above if above > 0 else float("nan")
                figures.append(d)
            rows[w, a] = {k: med([d[k] for d in figures]) for k in figures[0]}
    return rows


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------

def main():
    started = datetime.datetime.now()
    os.makedirs(SERIES, exist_ok=True)
    ensure_packages()
    build()
    allocs, notes = probe_allocators()
    if not allocs:
        sys.exit("bench: no allocator to run")
    real_cmds, real_notes = setup_real()
    notes += real_notes
    only = [w for w in os.environ.get("ONLY", "").split(",") if w]
    workloads = [Workload(n, d, False) for n, d in SYNTHETIC] + \
                [Workload(n, d, True) for n, d in REAL if n in real_cmds]
    if only:
        workloads = [w for w in workloads if w.name in only]
    names = [a for a, _ in allocs]
    log(f"{'QUICK' if QUICK else 'full'} run: {RUNS} runs x {len(workloads)} workloads x {len(allocs)} allocators "
        f"({', '.join(names)}); scale {SCALE:g}")
    for n in notes:
        log("note: " + n)

    # Warm-up, not recorded: first-touch page faults of the VM's memory and
    # cold file caches would otherwise fall on whichever allocator runs first.
    for w in workloads:
        if w.real or w.name == "peakfree":
            run_workload(w, "warmup", None, 0, real_cmds)
    log("warm-up done")

    results = {w.name: {a: [] for a in names} for w in workloads}
    broken = set()
    for rnd in range(RUNS):
        for w in workloads:
            for a, lib in allocs:
                if (w.name, a) in broken:
                    continue
                m = run_workload(w, a, lib, rnd, real_cmds)
                results[w.name][a].append(m)
                log(f"run {rnd + 1}/{RUNS} {w.name:9s} {a:9s} {m['time']:8.3f}s "
                    f"rss {m['rss'] / KiB:7.1f} MiB data {m['data'] / KiB:7.1f} MiB maps {m['maps']:4d}"
                    + (f"  ERROR {m['error'][:200]}" if m["error"] else ""))
                if m["error"]:
                    broken.add((w.name, a))  # do not spend time re-running a broken pair

    # Verify results against glibc's (or, without glibc, the most common one).
    failures = []
    for w in workloads:
        keys = [m["key"] for a in names for m in results[w.name][a] if not m["error"]]
        glibc_keys = [m["key"] for m in results[w.name].get("glibc", []) if not m["error"]]
        ref = glibc_keys[0] if glibc_keys else (max(set(keys), key=keys.count) if keys else None)
        for a in names:
            for i, m in enumerate(results[w.name][a]):
                m["ok"] = not m["error"] and m["key"] == ref
                if not m["ok"]:
                    failures.append(f"{w.name} under {a}, run {i + 1}: "
                                    + (m["error"] or f"wrong result ({m['key']} instead of {ref})"))
    for f in failures:
        log("FAILURE " + f)

    # Smallest RLIMIT_DATA.
    rlimits = {}
    if flag("RLIMIT", "1") and not (only and not set(only) & set(RLIMIT_WORKLOADS)):
        for w in RLIMIT_WORKLOADS:
            if only and w not in only and w != "noop":
                continue
            ref = parse_kv(run_one([GM_BENCH, w, str(RLIMIT_SCALE)], None, sample=False).stdout).get("checksum")
            for a, lib in allocs:
                limit, kv = min_rlimit(w, lib, ref)
                rlimits[w, a] = {"limit": limit, "live": float(kv.get("live_peak", "nan")), "probes": kv.get("probes")}
                log(f"rlimit {w:8s} {a:9s} " + (f"{limit / MiB:8.1f} MiB" if limit else "FAILED"))
                if not limit:
                    failures.append(f"rlimit bisection of {w} under {a}: no limit up to 64 GiB works")

    # Pictures and report.
    tratio = {}
    peers = [a for a in names if a in PEERS]
    for w in workloads:
        tratio[w.name] = {}
        meds = {a: med([m["time"] for m in results[w.name][a] if m["ok"]]) for a in names}
        fastest = min((meds[p] for p in peers if meds[p]), default=None)
        for a in names:
            if meds[a] and fastest:
                tratio[w.name][a] = meds[a] / fastest
    plot_time_ratios(workloads, names, tratio)
    scale_gib = SCALE * 1.0
    if "peakfree" in results:
        plot_peak("peak_then_free", "peak_then_free.png", names, lambda a: median_run(results["peakfree"][a]),
                  f"peakfree: {scale_gib:g} GiB of mixed sizes allocated, the last 90% freed at t = 0, then idle")
    if "fragfree" in results:
        plot_peak("peak_then_free_random", "peak_then_free_random.png", names,
                  lambda a: median_run(results["fragfree"][a]),
                  f"fragfree: {512 * SCALE:g} MiB of 16-256 B objects, 90% freed at random at t = 0, then idle")
    duration = time.monotonic() - T_START
    write_report(workloads, allocs, results, rlimits, notes, started, duration, failures)
    log(f"report: {os.path.relpath(os.path.join(OUT, 'report.md'), ROOT)} ({duration / 60:.1f} min)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
