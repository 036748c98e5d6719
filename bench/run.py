#!/usr/bin/env python3
"""run.py: gomalloc's benchmark, `make bench` (issue 5, issue 13).

What it measures, and why: gomalloc must be as fast as the best of glibc,
jemalloc, mimalloc and tcmalloc on what programs really do, at least as fast
as glibc on real servers and tools, while keeping RSS, committed memory
(VmData, what RLIMIT_DATA and strict overcommit count) and the mapping count
low, and giving memory back after a peak without being asked (DESIGN.md
section 4, issue 13).  So every workload runs under every allocator, side by
side on the same machine, and the report gives ratios to the peers and says,
goal by goal, which of issue 13's goals are met.

This file is the main program; benchlib.py has what the parts share,
realprogs.py the real programs, report.py the report.  In order:

  1. Makes sure the peers and tools are installed (Debian packages
     libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4, gnuplot, sqlite3,
     git, postgresql), running apt-get only for what is missing.
  2. Builds bench/workloads.c into bench/out/gm-bench (cc -O2).
  3. Checks each allocator: LD_PRELOAD=lib gm-bench probe must report that
     malloc now comes from that library (glibc runs without LD_PRELOAD).
     gomalloc is ../build/libgomalloc.so.
  4. Prepares the real programs' inputs (realprogs.py): generated SQL and C,
     a generated git repository (cached), a PostgreSQL data directory.
  5. Runs everything under every allocator, interleaved (A B C D E, then
     again A B C D E ...), RUNS times, and keeps medians.  A synthetic
     workload is one gm-bench process (its own time, excluding start-up); a
     real program runs all its workloads under one allocator before the next
     allocator's turn (PostgreSQL: one server start for its five).  Every
     process starts through `gm-bench spawn`, which reports the child's wall
     time and ru_maxrss (covering waited-for descendants such as cc1);
     meanwhile peak VmData and the mapping count are sampled from /proc every
     10 ms, and the real programs' working processes are checked to have the
     allocator mapped.
  6. Checks every result against glibc's (checksums, outputs; see
     realprogs.py).  A run that fails counts as a failure in the report and
     makes this script exit 1.
  7. Finds, by bisection, the smallest RLIMIT_DATA with which a few workloads
     still finish with the right checksum (churn3 always at scale 1, the
     200 MiB live heap of issue 13).
  8. Writes bench/out/report.md and its PNG pictures (gnuplot).

Environment: QUICK=1 (fewer runs, smaller sizes: about ten minutes), RUNS=n,
SLOW_RUNS=n (runs of postgres, git, swing and randfree; QUICK: at most 2),
SCALE=x, ONLY=w1,w2 (workloads; a real program's name, e.g. postgres or git,
selects all of its workloads), ALLOCATORS=a,b, RLIMIT=0 (skip bisection),
REAL=0 (no real programs), CC (compiler for gm-bench), GM_BASELINE=lib
(another gomalloc build, run beside the others as gomalloc-base);
ALLOCATORS=gomalloc,gomalloc-prof runs gomalloc with its heap profile on
too (GOMALLOC_PROFILE=/dev/null, issue 15) and reports the time ratio.
"""

import datetime
import os
import sys
import time

import realprogs
import report
from benchlib import (GM_BENCH, GiB, KiB, MiB, QUICK, RUNS, SCALE, SERIES, T_START, Workload, build,
                      ensure_packages, flag, log, measure, parse_kv, probe_allocators, run_one)

# name, description, unit of "time"
SYNTHETIC = [
    ("small", "one thread, 1 B-1 KiB objects, a 50 000-object live set replaced at random, bursts of LIFO "
              "temporaries", "s"),
    ("xthread", "4 threads (on 2 cores); each round every thread allocates 4096 objects and frees its "
                "neighbour's: every free is remote", "s"),
    ("prodcons", "2 producers, 2 consumers, a bounded queue of 256-message batches (32 B-2 KiB): memory flows "
                 "one way", "s"),
    ("server", "4 workers: request buffer, headers, responses freed 8 requests later, sessions, a shared cache "
               "whose old entries other threads free; 8 B-1 MiB", "s"),
    ("random", "one thread, 1 B-64 KiB (mostly small), a live set of ~200 MiB x scale, random replacement", "s"),
    ("large", "6 vectors grown by realloc (x1.5 and +64 KiB steps, contents checked), then 48 live 64 KiB-8 MiB "
              "objects (1/4 calloc) replaced at random", "s"),
    ("churn", "waves of 4 short-lived threads, each allocating 3000 objects and handing a third to the main "
              "thread, which frees them after the thread exits", "s"),
    ("larson", "larson-style server: 4, then 8 chains of threads; each thread replaces random slots of a "
               "1000-slot array (16 B-1 KiB, uniform), then hands the array to a new thread and ends", "s"),
    ("larson_mixed", "larson with 16 B-8 KiB objects", "s"),
    ("rptest", "rptest-like pool: 4 threads, working sets of 512 blocks replaced at random, and batches of 16 "
               "blocks sent to a random other thread, which frees them; 16 B-16 KiB, 1 in 16 up to 128 KiB", "s"),
    ("threadtest", "glibc-style thread test: 1, 4, then 16 threads each replacing random slots of its own "
                   "1024-slot set (4 B-32 KiB log-uniform); the same total work each time", "s"),
    ("threads1k", "1000 threads alive at once, each holding 64 objects of 16-512 B (memory: see its section)",
     "s"),
    ("swing", "2 producers, 2 consumers, blocks 16 B-64 KiB, live set alternating 500 MiB and 50 MiB (x scale) "
              "by phases of 5 s (4 s below scale 0.9); time = seconds per million malloc+free", "s/Mop"),
    ("peakfree", "a burst: ~1 GiB x scale of mixed sizes, the last 90% freed, then 3 s idle (2.2 s in QUICK) "
                 "without allocator calls", "s"),
    ("fragfree", "~512 MiB x scale of 16-256 B objects, 90% freed at random (in groups allocated together), "
                 "then idle", "s"),
    ("randfree", "~2 GiB x scale of 16-256 B objects, 90% freed at random in groups, then 3 s idle (VmData, RSS, "
                 "mappings read 0.5/1/2/3 s after)", "s"),
]
SERIES_WORKLOADS = {"peakfree", "fragfree", "randfree", "swing"}
RLIMIT_SCALE = 0.2 if QUICK else 0.5
# workload -> scale of its RLIMIT_DATA bisection
RLIMIT_WORKLOADS = {"noop": RLIMIT_SCALE, "random": RLIMIT_SCALE, "large": RLIMIT_SCALE,
                    "server": RLIMIT_SCALE, "churn3": 1.0}
if QUICK:
    del RLIMIT_WORKLOADS["large"]  # the slowest bisection; the full run has it
# The long jobs (a phase structure of fixed seconds, or a server run) get at
# most 2 runs in QUICK mode, so that QUICK stays around ten minutes.
SLOW_JOBS = {"postgres", "git", "swing", "randfree"}
SLOW_RUNS = int(os.environ.get("SLOW_RUNS") or (min(RUNS, 2) if QUICK else RUNS))


class Synthetic:
    """One gm-bench workload as a job of the run loop."""

    real = False

    def __init__(self, name, desc, unit):
        self.name = name
        self.workloads = [(name, desc, unit)]

    def run(self, alloc, lib, rnd):
        series = os.path.join(SERIES, f"{self.name}_{alloc}_{rnd}.txt")
        argv = [GM_BENCH, self.name, str(SCALE)] + ([series] if self.name in SERIES_WORKLOADS else [])
        r = run_one(argv, lib, timeout=600)
        kv = parse_kv(r.stdout)
        m = measure(r, kv.get("checksum"), time_s=float(kv.get("time_s", "nan")), kv=kv, series=series)
        m["data"] = max(r.data_peak_kib, int(kv.get("data_at_peak_kib", 0)), int(kv.get("data_peak_kib", 0)))
        m["maps"] = max(r.maps_peak, int(kv.get("maps_peak", 0)))
        return {self.name: m}

    def close(self):
        pass


def min_rlimit(w, scale, lib, ref_key):
    """Smallest RLIMIT_DATA (bytes) with which workload w still exits 0 with
    the reference checksum, to 0.5% (at least 256 KiB); None if it never does."""
    argv = [GM_BENCH, w, str(scale)]
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


def select(jobs, only):
    """Jobs and workloads named in ONLY (a job's name selects all its workloads)."""
    if not only:
        return jobs
    kept = []
    for j in jobs:
        if j.name in only:
            kept.append(j)
        elif any(w[0] in only for w in j.workloads):
            j.workloads = [w for w in j.workloads if w[0] in only]
            kept.append(j)
    return kept


def main():
    started = datetime.datetime.now()
    os.makedirs(SERIES, exist_ok=True)
    ensure_packages()
    build()
    allocs, notes = probe_allocators()
    if not allocs:
        sys.exit("bench: no allocator to run")
    only = [w for w in os.environ.get("ONLY", "").split(",") if w]
    jobs = select([Synthetic(*s) for s in SYNTHETIC], only)
    progs = []
    try:
        if flag("REAL", "1"):
            progs, real_notes = realprogs.setup_all(select(realprogs.programs(), only))
            notes += real_notes
            jobs += progs
        run_all(jobs, allocs, notes, only, started)
    finally:
        for p in progs:
            p.close()


def run_all(jobs, allocs, notes, only, started):
    workloads = [Workload(n, d, getattr(j, "real", True), u) for j in jobs for n, d, u in j.workloads]
    names = [a for a, _ in allocs]
    log(f"{'QUICK' if QUICK else 'full'} run: {RUNS} runs ({SLOW_RUNS} of {', '.join(sorted(SLOW_JOBS))}) x {len(workloads)} workloads x {len(allocs)} allocators "
        f"({', '.join(names)}); scale {SCALE:g}")
    for n in notes:
        log("note: " + n)

    # Does malloc bind to the preloaded library?  Once per program and allocator.
    bindings = {}
    for j in jobs:
        if hasattr(j, "binding_check"):
            for a, lib in allocs:
                if lib:
                    bindings[j.name, a] = j.binding_check(lib)
                    if bindings[j.name, a][0] < bindings[j.name, a][1] or not bindings[j.name, a][1]:
                        log(f"warning: {j.name} under {a}: malloc bound to the library "
                            f"{bindings[j.name, a][0]} of {bindings[j.name, a][1]} times")

    # Warm-up, not recorded: first-touch page faults of the VM's memory, cold
    # file caches and git's first repack would otherwise fall on whichever
    # allocator runs first.
    for j in jobs:
        if j.name == "postgres":
            j.run("warmup", None, 0, short=True)
        elif getattr(j, "real", True) or j.name == "peakfree":
            j.run("warmup", None, 0)
    log("warm-up done")

    results = {w.name: {a: [] for a in names} for w in workloads}
    broken = set()
    for rnd in range(RUNS):
        for j in jobs:
            if j.name in SLOW_JOBS and rnd >= SLOW_RUNS:
                continue
            for a, lib in allocs:
                if (j.name, a) in broken:
                    continue
                for wname, m in j.run(a, lib, rnd).items():
                    if wname not in results:
                        continue
                    results[wname][a].append(m)
                    log(f"run {rnd + 1}/{RUNS} {wname:12s} {a:9s} {m['time']:8.3f} "
                        f"rss {m['rss'] / KiB:7.1f} MiB data {m['data'] / KiB:7.1f} MiB maps {m['maps']:4d}"
                        + (f" preload {m['preload'][0]}/{m['preload'][1]}" if m.get("preload") else "")
                        + (f"  ERROR {m['error'][:200]}" if m["error"] else ""))
                    if m["error"]:
                        broken.add((j.name, a))  # do not spend time re-running a broken pair

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
    rlimits, scales = {}, {}
    if flag("RLIMIT", "1") and not (only and not set(only) & set(RLIMIT_WORKLOADS)):
        for w, scale in RLIMIT_WORKLOADS.items():
            if only and w not in only and w != "noop":
                continue
            scales[w] = scale
            ref = parse_kv(run_one([GM_BENCH, w, str(scale)], None, sample=False).stdout).get("checksum")
            for a, lib in allocs:
                limit, kv = min_rlimit(w, scale, lib, ref)
                rlimits[w, a] = {"limit": limit, "live": float(kv.get("live_peak", "nan")), "probes": kv.get("probes")}
                log(f"rlimit {w:8s} {a:9s} " + (f"{limit / MiB:8.1f} MiB" if limit else "FAILED"))
                if not limit:
                    failures.append(f"rlimit bisection of {w} under {a}: no limit up to 64 GiB works")

    # Pictures and report.
    ctx = report.Ctx(workloads, allocs, results, rlimits, notes, started, failures, scales)
    ctx.slow_runs, ctx.slow_jobs, ctx.bindings = SLOW_RUNS, SLOW_JOBS, bindings
    report.draw_pictures(ctx)
    duration = time.monotonic() - T_START
    report.write_report(ctx, duration)
    log(f"report: bench/out/report.md ({duration / 60:.1f} min)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
