"""benchlib.py: what every part of gomalloc's `make bench` shares.

The benchmark (issue 5, extended by issue 13) is four files:

  run.py       the main program: the synthetic workloads of gm-bench, the
               order of the runs, the checks, the RLIMIT_DATA bisection;
  realprogs.py the real programs (python3, sqlite3, gcc, git, PostgreSQL);
  report.py    bench/out/report.md and its gnuplot pictures;
  benchlib.py  this file: the settings read from the environment, the
               allocators and how a process is put under one, installing
               what is missing, logging, and running one process while its
               process tree is sampled from /proc.

One rule holds everywhere: every process that does measured work runs under
exactly one allocator, chosen with LD_PRELOAD (glibc: none), and the bench
checks that the library is really mapped in the processes that do the work
(PreloadWatch), because a program that re-executes itself or is started by
a daemon can lose LD_PRELOAD on the way.  Timing is wall time: the machine
has few cores, so the runs are interleaved across allocators and medians
are kept.  Python 3 standard library only.
"""

import hashlib
import math
import os
import platform
import re
import shutil
import statistics
import resource
import signal
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
# ALLOCATORS=...,gomalloc-prof: gomalloc with its heap profile on at the
# default rate (GOMALLOC_PROFILE=/dev/null: sampled, stacks and buckets
# kept, the profile written at exit and thrown away), for the cost of
# profiling (issue 15); the report gives its times over gomalloc's.  Its
# library is a copy of gomalloc's (build() makes it) so that the runs of
# the two can be told apart by library; LIB_ENV is what a library's
# processes get in their environment besides LD_PRELOAD.
GM_PROF_LIB = os.path.join(OUT, "libgomalloc-prof.so")
LIB_ENV = {}
if "gomalloc-prof" in os.environ.get("ALLOCATORS", "").split(","):
    ALLOCATORS.append(("gomalloc-prof", GM_PROF_LIB, None))
    LIB_ENV[GM_PROF_LIB] = {"GOMALLOC_PROFILE": "/dev/null"}
PEERS = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]
COLORS = {"glibc": "#1f77b4", "jemalloc": "#ff7f0e", "mimalloc": "#2ca02c",
          "tcmalloc": "#9467bd", "gomalloc": "#d62728", "gomalloc-base": "#8c564b", "gomalloc-prof": "#e377c2"}

T_START = time.monotonic()


def log(msg):
    print(f"[bench {time.monotonic() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def alloc_env(lib, base=None):
    """The environment of a process run under allocator `lib` (None: glibc)."""
    env = dict(os.environ if base is None else base)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
        env.update(LIB_ENV.get(lib, {}))
    return env


# --------------------------------------------------------------------------
# Setup: packages, gm-bench, allocators.
# --------------------------------------------------------------------------

PG_BIN = "/usr/lib/postgresql/15/bin"


def ensure_packages():
    """apt-get install what is missing, and nothing else."""
    want = [pkg for _, lib, pkg in ALLOCATORS if pkg and not os.path.exists(lib)]
    for tool, pkg in (("gnuplot", "gnuplot-nox"), ("sqlite3", "sqlite3"), ("git", "git")):
        if not shutil.which(tool):
            want.append(pkg)
    if not os.path.exists(os.path.join(PG_BIN, "postgres")) or not shutil.which("pgbench"):
        want.append("postgresql")
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
    if "postgresql" in want and shutil.which("pg_ctlcluster"):
        # Debian's postinst makes and starts a default cluster (15/main); the
        # bench runs its own server, so it stops the one it caused to start.
        if subprocess.call(prefix + ["pg_ctlcluster", "15", "main", "stop"], stderr=subprocess.DEVNULL) == 0:
            log("stopped the default cluster 15/main that installing postgresql started")


def build():
    """bench/workloads.c into bench/out/gm-bench."""
    cc = os.environ.get("CC", "cc")
    flags = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-pthread", "-fno-builtin-malloc",
             "-fno-builtin-calloc", "-fno-builtin-realloc", "-fno-builtin-free"]
    cmd = [cc] + flags + ["-o", GM_BENCH, os.path.join(BENCH, "workloads.c"), "-lm", "-ldl"]
    log(" ".join(cmd))
    subprocess.check_call(cmd)
    gm_lib = dict((n, lib) for n, lib, _ in ALLOCATORS)["gomalloc"]
    if GM_PROF_LIB in LIB_ENV and os.path.exists(gm_lib):
        shutil.copyfile(gm_lib, GM_PROF_LIB)


def probe_allocators():
    """The allocators that really take over malloc, and notes on the others:
    `gm-bench probe` prints the object that defines the malloc it calls."""
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
            notes.append(f"{name}: skipped, {lib or 'glibc'} does not take over malloc: {why}")
    return active, notes


def package_version(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "?"


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
        "load": first("/proc/loadavg"),
    }


def git_rev():
    p = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return p.stdout.strip() or "?"


# --------------------------------------------------------------------------
# Small numeric helpers, and what one run of one workload yields.
# --------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
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


class Workload:
    """A named workload: synthetic (gm-bench) or part of a real program.
    unit: what `time` is in the report ("s", or "s/Mop" and "s/1000 tx" for
    figures that are inverted rates so that lower is better everywhere)."""

    def __init__(self, name, desc, real, unit="s"):
        self.name, self.desc, self.real, self.unit = name, desc, real, unit


def measure(r, key, time_s=None, **extra):
    """The dict every run of every workload yields: time, rss (KiB), data
    (peak VmData, KiB), maps, key (what must equal glibc's), error (None if
    it went right), preload (processes found with the right allocator,
    processes checked) and workload-specific extras."""
    m = {"time": r.wall if time_s is None else time_s, "rss": r.maxrss_kib, "data": r.data_peak_kib,
         "maps": r.maps_peak, "key": key, "error": None, "preload": r.preload}
    m.update(extra)
    if r.timed_out:
        m["error"] = "timed out"
    elif r.rc != 0:
        m["error"] = f"exit status {r.rc}: {r.stderr.strip()[-300:]}"
    elif not key:
        m["error"] = "no result"
    elif r.preload is not None and r.preload[0] < r.preload[1]:
        m["error"] = f"the allocator was not mapped in {r.preload[1] - r.preload[0]} of {r.preload[1]} processes"
    return m


# --------------------------------------------------------------------------
# /proc readers.
# --------------------------------------------------------------------------

def read_status(pid):
    """(VmRSS, VmData, RssAnon) in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None
    rss = data = anon = None
    for line in text.split(b"\n"):
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith(b"VmData:"):
            data = int(line.split()[1])
        elif line.startswith(b"RssAnon:"):
            anon = int(line.split()[1])
    return None if rss is None or data is None else (rss, data, anon or 0)


def read_pss_anon(pid):
    """Proportional anonymous RSS in KiB (smaps_rollup's Pss_Anon: a page
    shared by n processes after fork counts 1/n in each), or None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            text = f.read()
    except OSError:
        return None
    for line in text.split(b"\n"):
        if line.startswith(b"Pss_Anon:"):
            return int(line.split()[1])
    st = read_status(pid)  # an older kernel: RssAnon, shared pages counted in full
    return st[2] if st else None


def read_maps(pid):
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return f.read()
    except OSError:
        return None


def count_maps(pid):
    m = read_maps(pid)
    return m.count(b"\n") if m else 0


def read_comm(pid):
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip().decode(errors="replace")
    except OSError:
        return None


def descendants(pid):
    """The process tree under pid (children started by main threads only,
    which is how the launcher, gcc, git, python, sqlite3 and the postmaster
    start them)."""
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


# --------------------------------------------------------------------------
# Does the preloaded allocator reach the process that does the work?
# --------------------------------------------------------------------------

def all_allocator_libs():
    """Real paths of every allocator library that can be preloaded."""
    return {os.path.realpath(lib) for _, lib, _ in ALLOCATORS if lib and os.path.exists(lib)}


class PreloadWatch:
    """Checks /proc/PID/maps of the processes named `worker` (their comm)
    while they run: under an allocator its library must be mapped in them;
    under glibc none of the allocators' libraries may be.  A process counts
    as checked once it was found right, or once it was read three times
    without (a process that has just exec'd may not have its preloads
    mapped yet)."""

    def __init__(self, worker, lib):
        self.worker = worker
        self.want = os.path.realpath(lib).encode() if lib else None
        self.others = [p.encode() for p in all_allocator_libs()]
        self.state = {}  # pid -> [reads, ok]
        self.maps_peak = 0

    def check(self, pid):
        st = self.state.get(pid)
        if st and (st[1] or st[0] >= 3):
            return
        if read_comm(pid) != self.worker:
            return
        m = read_maps(pid)
        if m is None:
            return
        self.maps_peak = max(self.maps_peak, m.count(b"\n"))
        ok = (self.want in m) if self.want else not any(o in m for o in self.others)
        st = self.state.setdefault(pid, [0, False])
        st[0] += 1
        st[1] = st[1] or ok

    def verdict(self):
        """(processes found right, processes checked)."""
        done = [s for s in self.state.values() if s[1] or s[0] >= 3]
        return sum(1 for s in done if s[1]), len(done)


def ld_bindings(argv, lib, extra_env=None, stdin_path=None, cwd=None, timeout=600):
    """Run argv once with LD_DEBUG=bindings (one output file per process) and
    count the dynamic linker's bindings of the symbol `malloc`: (bound to
    `lib`, all of them).  Under an allocator every one must go to it."""
    env = alloc_env(lib)
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory(prefix="gm-bench-ld-") as d:
        env.update(LD_DEBUG="bindings", LD_DEBUG_OUTPUT=os.path.join(d, "ld"))
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        try:
            subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           cwd=cwd, timeout=timeout)
        finally:
            if stdin_path:
                stdin.close()
        want = os.path.realpath(lib)
        to_lib = total = 0
        for f in os.listdir(d):  # one file per process
            pairs = []  # (file that refers to malloc, file that defines the malloc it gets)
            with open(os.path.join(d, f), "rb") as fh:
                for line in fh:
                    m = re.search(rb"binding file (.+?) \[\d+\] to (.+?) \[\d+\]: normal symbol `malloc'", line)
                    if m:
                        pairs.append((os.path.realpath(m.group(1).decode(errors="replace")),
                                      os.path.realpath(m.group(2).decode(errors="replace"))))
            # A program that takes malloc's address (a non-PIE python3, say)
            # defines `malloc` as its own PLT entry, which every other
            # object then binds to; that entry goes where the program's own
            # reference is bound.
            via = {src for src, dst in pairs if dst == want}
            total += len(pairs)
            to_lib += sum(1 for src, dst in pairs if dst == want or (dst != src and dst in via) or
                          (dst == src and src in via))
        return to_lib, total


# --------------------------------------------------------------------------
# Running one process and sampling its memory.
# --------------------------------------------------------------------------

class Run:
    """One process run: status, wall time, peaks, output."""
    rc = wall = maxrss_kib = data_peak_kib = maps_peak = 0
    stdout = stderr = ""
    stdout_sha256 = None
    timed_out = False
    preload = None  # (right, checked) from a PreloadWatch


def _sample_loop(proc, waiter, r, t0, timeout, sample, watch):
    """run_one's loop while the process runs: every 10 ms, VmData summed over
    the launcher's descendants, the mapping count (maxed, every 50 ms), the
    preload check; SIGKILL to the whole session after `timeout` seconds."""
    i = 0
    while waiter.is_alive():
        if sample or watch:
            data_sum = 0
            for pid in descendants(proc.pid):
                if sample:
                    st = read_status(pid)
                    if st:
                        data_sum += st[1]
                    if i % 5 == 0:
                        r.maps_peak = max(r.maps_peak, count_maps(pid))
                if watch:
                    watch.check(pid)
            r.data_peak_kib = max(r.data_peak_kib, data_sum)
        if time.monotonic() - t0 > timeout and not r.timed_out:
            r.timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        waiter.join(SAMPLE_S)
        i += 1


def run_one(argv, lib, extra_env=None, stdin_path=None, rlimit_data=None, timeout=600, sample=True,
            worker=None, hash_stdout=False, cwd=None):
    """Run argv under allocator `lib` (None: glibc) through `gm-bench spawn`,
    which reports the child's exact wall time and peak RSS.  Meanwhile this
    thread samples VmData (summed) and the mapping count (maxed) of the
    launcher's descendants every 10 ms, and, given `worker` (a process name),
    checks that the allocator is mapped in the processes of that name.
    hash_stdout: keep only the SHA-256 of the output (large outputs)."""
    r = Run()
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["GM_BENCH_PRELOAD"] = lib or ""
    env.update(LIB_ENV.get(lib, {}))
    env.update(extra_env or {})
    watch = PreloadWatch(worker, lib) if worker else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL

        def limit():
            resource.setrlimit(resource.RLIMIT_DATA, (rlimit_data, rlimit_data))

        t0 = time.monotonic()
        proc = subprocess.Popen([GM_BENCH, "spawn"] + argv, env=env, stdin=stdin, stdout=out, stderr=err,
                                preexec_fn=limit if rlimit_data else None, start_new_session=True, cwd=cwd)
        done = {}

        def waiter():
            _, status, _ = os.wait4(proc.pid, 0)
            done.update(t=time.monotonic(), status=status)

        w = threading.Thread(target=waiter, daemon=True)
        w.start()
        try:
            _sample_loop(proc, w, r, t0, timeout, sample, watch)
        except BaseException:  # interrupted (^C, SIGTERM): leave nothing running
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            raise
        if stdin_path:
            stdin.close()
        proc.returncode = os.waitstatus_to_exitcode(done["status"])  # Popen must not wait again
        r.rc = proc.returncode
        out.seek(0)
        err.seek(0)
        if hash_stdout:
            h = hashlib.sha256()
            for chunk in iter(lambda: out.read(1 << 20), b""):
                h.update(chunk)
            r.stdout_sha256 = h.hexdigest()
        else:
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
    if watch:
        r.preload = watch.verdict()
        r.maps_peak = max(r.maps_peak, watch.maps_peak)
    return r


def parse_kv(text):
    """The key=value pairs of gm-bench's result line."""
    for line in text.splitlines():
        if line.startswith("workload="):
            return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
    return {}
