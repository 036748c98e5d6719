/*
 * scavenge.c — layer 5: giving memory back (Go's scavenger, bgscavenge),
 * strict-commit mode and the memory limit.
 *
 * What goes back, and when:
 *   - Free pages that nobody has reused for decay_ms (GOMALLOC_DECAY_MS,
 *     default 500, so that memory is back about a second after a burst)
 *     are released with madvise(MADV_DONTNEED): RSS drops,
 *     the commit charge does not. The page allocator stamps each chunk with
 *     the time of its last dirty free, and hands out the highest-addressed
 *     old runs first (gm_pagealloc_scavenge_take), because the allocator is
 *     address-ordered first fit: low pages are the likeliest to be reused.
 *   - In strict-commit mode, free memory as old is also decommitted
 *     (mapped PROT_NONE again), so that VmData and the mode-2 commit charge
 *     follow the live heap: wholly free 4 MiB chunks, highest first, while
 *     the heap has fewer than 16 decommitted ranges (each a hole in its
 *     mapping, two lines of /proc/self/maps), and always the free runs
 *     right beside a decommitted range, which widen a hole at no mapping's
 *     cost (heap_release.c); heap growth commits them again before new
 *     address space.
 *   - A live heap that shrinks while the program keeps working (threads
 *     freeing what others allocated, a cache that empties) leaves frees in
 *     nearly every chunk, so the age rule alone would hold the peak's
 *     memory for as long as the work goes on. So the scavenger also keeps
 *     a release goal: the most the heap had in use over the last decay
 *     period, plus an eighth, plus 4 MiB (gm_scav_goal; Go paces its
 *     scavenger to a goal from the GC's heap goal, which an explicit-free
 *     heap does not have). Free memory beyond the goal goes back at the
 *     next pass whatever its age, highest addresses first. The goal also
 *     gives the heap an address, high_water (gm_heap_set_goal), below
 *     which goal bytes lie: spans above it whose objects are all freed go
 *     back to the heap instead of being reused, and the central lists hand
 *     out spans lowest first and none above it (tcache.c, central.c), so
 *     the live set gathers low and the high chunks empty out to be
 *     returned whole.
 *   - Large spans parked in threads' span caches go back to the heap once
 *     the cache has not been used for decay_ms.
 *   - When the heap grows while its retained memory (heap_sys minus
 *     released) is past the goal, 10% above what is in use plus 4 MiB, the
 *     growing thread scavenges the excess at once, whatever its age (Go's
 *     synchronous scavenging on growth).
 *   - Under a memory limit the heap decommits free chunks of any age
 *     before it grows past the limit (heap.c), and the scavenger returns
 *     everything it can whenever the heap is over it. A hard limit makes
 *     growth past it fail with ENOMEM.
 *
 * Who does the work. A drop-in malloc must change nothing a program can
 * see but speed and memory, and a thread is something it can see: a
 * single-threaded process may unshare(CLONE_NEWUSER) or setns into a user
 * namespace only while it is single-threaded, and a process whose last
 * thread calls pthread_exit must end then, with its atexit handlers run on
 * that thread. So:
 *   - in a program with two threads of its own or more, a background thread
 *     (Go's bgscavenge) does the paced work: started by an allocation-path
 *     call (never a free, never from inside a lock: pthread_create
 *     allocates), with every signal blocked and a small stack (os.c's
 *     helper threads), a pass every decay_ms / 4 while there is free dirty
 *     memory, parked on a condition variable when there is none (the
 *     heap's free paths wake it); it leaves, and is waited for, as soon as
 *     a thread's exit leaves the program with one thread (see "Its life"
 *     below);
 *   - a single-threaded program (and GOMALLOC_BACKGROUND=0, or a helper
 *     that cannot be made) does the work itself: its slow paths run the
 *     pass at most once per decay_ms / 4, and the call that leaves far more
 *     memory free than in use gives it all back at once (gm_scav_excess), so
 *     a burst that ends is returned before the program goes idle;
 *   - GOMALLOC_BACKGROUND=thread accepts the helper in a single-threaded
 *     program too (memory back with no call at all; no unshare).
 * After fork the child has no helper (it is single-threaded) and starts
 * one as any process does.
 *
 * Strict mode is on by default, because the commit charge should follow
 * the live heap everywhere, not only where the kernel enforces it (DESIGN
 * §4: committed memory back within 1.1 x live about a second after a
 * burst); the price is a hole in the heap's mapping per decommitted range,
 * bounded as above. GOMALLOC_STRICT=0 turns it off (free memory is then
 * only madvised), =auto turns it on only where commit is accounted
 * strictly: /proc/sys/vm/overcommit_memory is 2 or RLIMIT_DATA is finite. A
 * memory limit decommits in either case. The default memory limit is a
 * soft one taken from the cgroup's memory.max (v2) or
 * memory.limit_in_bytes (v1).
 *
 * Huge pages are os.c's policy (GOMALLOC_THP): where the system backs
 * anonymous memory with them unasked, the heap is marked MADV_NOHUGEPAGE,
 * so that khugepaged does not refill what the scavenger released.
 *
 * Locking (base.h's order): gm_scav_lock (GM_RANK_SCAV) serializes passes;
 * a pass takes the tcache registry's, the central lists' and the heap's
 * locks inside it, each briefly. gm_check and fork take it to see no pages
 * in flight. gm_bg_mutex (GM_RANK_BG) is the helper's sleep, a leaf.
 */
#define _GNU_SOURCE /* pthread_cond_clockwait */
#include "scavenge.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "arch.h"

struct gm_scav_stats gm_scav;
_Atomic int gm_bg_state;

static pthread_mutex_t gm_scav_lock = PTHREAD_MUTEX_INITIALIZER;

/* The background thread's sleep. */
static pthread_mutex_t gm_bg_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gm_bg_cond = PTHREAD_COND_INITIALIZER;
static _Atomic bool gm_bg_parked; /* waiting with nothing to do: wake me */
static _Atomic uint32_t gm_last_pass_ms; /* without a background thread */

#define GM_SCAV_SLACK ((uint64_t)4 << 20)   /* retained beyond 110% of in use */
#define GM_EXCESS_MARGIN ((uint64_t)64 << 20)   /* see gm_scav_excess */
#define GM_RECLAIM_RUN_PAGES 16               /* 128 KiB: smallest run decommitted under pressure */

static uint32_t gm_pass_period_ms(void)
{
    uint32_t p = gm_opt.decay_ms / 4;
    return p < 5 ? 5 : p > 250 ? 250 : p;
}

/* ------------------------------------------------------------------------ */
/* Set-up: strict mode and the default limit                                */
/* ------------------------------------------------------------------------ */

/* The memory cgroup's limit, 0 if none: v2 memory.max, else v1
 * memory.limit_in_bytes ("unlimited" is a huge number there). */
static uint64_t gm_cgroup_limit(void)
{
    char buf[1024], path[512];
    if (gm_sys_read_file("/proc/self/cgroup", buf, sizeof buf) <= 0) return 0;
    static const struct {
        const char *prefix, *dir, *file;
    } kinds[] = {{"0::", "/sys/fs/cgroup", "/memory.max"},
                 {":memory:", "/sys/fs/cgroup/memory", "/memory.limit_in_bytes"}};
    for (unsigned k = 0; k < 2; k++) {
        char *line = strstr(buf, kinds[k].prefix);
        if (!line || (k == 0 && line != buf && line[-1] != '\n')) continue;
        char *cg = line + strlen(kinds[k].prefix), *eol = strchr(cg, '\n');
        size_t len = eol ? (size_t)(eol - cg) : strlen(cg);
        size_t dl = strlen(kinds[k].dir), fl = strlen(kinds[k].file);
        if (dl + len + fl + 1 > sizeof path) continue;
        memcpy(path, kinds[k].dir, dl);
        memcpy(path + dl, cg, len);
        memcpy(path + dl + len, kinds[k].file, fl + 1);
        char val[64];
        if (gm_sys_read_file(path, val, sizeof val) <= 0) continue;
        const char *end;
        uint64_t v = gm_parse_u64(val, &end);
        if (end && end != val && v < ((uint64_t)1 << 60)) return v;
    }
    return 0;
}

static int gm_bg_policy(void) { return gm_opt.background; } /* enum gm_background */

void gm_scav_settings(void)
{
    char buf[16];
    bool strict = gm_opt.strict == 1;
    if (gm_opt.strict < 0) {
        struct rlimit rl;
        strict = (gm_sys_read_file("/proc/sys/vm/overcommit_memory", buf, sizeof buf) > 0 && buf[0] == '2') ||
                 (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY);
    }
    if (!atomic_load(&gm_heap.limit)) {
        uint64_t cg = gm_cgroup_limit();
        if (cg) atomic_store(&gm_heap.limit, cg);
    }
    atomic_store(&gm_scav.strict, strict);
    if (gm_bg_policy() == GM_BACKGROUND_OFF) atomic_store(&gm_bg_state, GM_BG_OFF);
}

static void gm_scav_after_grow(size_t grew);

int gm_scav_start(void)
{
    static _Atomic bool started;
    if (GM_LIKELY(atomic_load_explicit(&started, memory_order_acquire))) return 0;
    static const struct gm_heap_hooks hooks = {gm_scav_after_grow, gm_scav_notify};
    gm_heap_set_hooks(&hooks);
    if (gm_heap_init() != 0) return -1;
    gm_lock(&gm_scav_lock, GM_RANK_SCAV);
    if (!atomic_load_explicit(&started, memory_order_relaxed)) {
        gm_scav_settings();
        atomic_store_explicit(&started, true, memory_order_release);
    }
    gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
    return 0;
}

static const struct gm_scav_hooks *_Atomic gm_scav_hooks;

void gm_scav_set_hooks(const struct gm_scav_hooks *hooks)
{
    atomic_store_explicit(&gm_scav_hooks, hooks, memory_order_release);
}

/* The layer above's spans: trim them (the bytes given back to the heap),
 * or say whether it holds any. */
static size_t gm_scav_trim_above(void)
{
    const struct gm_scav_hooks *h = atomic_load_explicit(&gm_scav_hooks, memory_order_acquire);
    return h && h->trim ? h->trim() : 0;
}

static bool gm_scav_above_holds(void)
{
    const struct gm_scav_hooks *h = atomic_load_explicit(&gm_scav_hooks, memory_order_acquire);
    return h && h->holds && h->holds();
}

int gm_set_memory_limit(size_t bytes, int hard)
{
    if (bytes != 0 && bytes < GM_CHUNK_BYTES) {
        errno = EINVAL;
        return -1;
    }
    atomic_store(&gm_heap.limit_hard, bytes != 0 && hard != 0);
    atomic_store(&gm_heap.limit, (uint64_t)bytes);
    gm_scav_notify();
    return 0;
}

size_t gm_get_memory_limit(int *hard)
{
    int saved = errno;
    gm_scav_start(); /* the default comes from the cgroup, read at the start */
    errno = saved;
    if (hard) *hard = atomic_load(&gm_heap.limit_hard);
    return (size_t)atomic_load(&gm_heap.limit);
}

/* ------------------------------------------------------------------------ */
/* Passes                                                                   */
/* ------------------------------------------------------------------------ */

static bool gm_over_limit(void)
{
    uint64_t limit = atomic_load_explicit(&gm_heap.limit, memory_order_relaxed);
    return limit && gm_stat_load(&gm_os.committed) > limit;
}

static bool gm_decommits(void)
{
    return atomic_load_explicit(&gm_scav.strict, memory_order_relaxed) ||
           atomic_load_explicit(&gm_heap.limit, memory_order_relaxed);
}

/* The release goal (Go's scavenger goal, with the recent peak of heap_inuse
 * in the place of the GC's heap goal): the heap keeps at most what it had
 * in use at its peak over the last decay period, plus an eighth, plus
 * GM_SCAV_SLACK; free memory beyond that goes back at the next pass,
 * whatever its age. The age rule alone lets a live heap that shrinks while
 * the program goes on working hold its peak's pages for as long as any
 * free lands in their chunks; the goal follows the drop within a decay
 * period, and never takes what the program used in the last one. The
 * peak is kept per quarter of the decay period (a pass's period), in a
 * ring; gm_scav_lock. */
#define GM_GOAL_SLOTS 4
static struct {
    uint64_t peak[GM_GOAL_SLOTS];
    unsigned slot;
    uint32_t slot_ms; /* when the current slot began */
} gm_goal;

static uint64_t gm_scav_goal(uint32_t now)
{
    uint32_t span = gm_opt.decay_ms / GM_GOAL_SLOTS + 1;
    uint32_t elapsed = now - gm_goal.slot_ms;
    if (elapsed >= span) {
        uint32_t k = elapsed / span;
        for (uint32_t i = 0; i < k && i < GM_GOAL_SLOTS; i++) {
            gm_goal.slot = (gm_goal.slot + 1) % GM_GOAL_SLOTS;
            gm_goal.peak[gm_goal.slot] = 0;
        }
        gm_goal.slot_ms = now;
    }
    uint64_t peak = gm_heap_take_inuse_peak();
    if (peak > gm_goal.peak[gm_goal.slot]) gm_goal.peak[gm_goal.slot] = peak;
    uint64_t recent = 0;
    for (unsigned i = 0; i < GM_GOAL_SLOTS; i++)
        if (gm_goal.peak[i] > recent) recent = gm_goal.peak[i];
    return recent + recent / 8 + GM_SCAV_SLACK;
}

/* One pass: everything old enough (or everything, if all), then what is
 * over the goal. runs: in strict mode, over the goal, free runs inside
 * chunks that hold live pages are decommitted too (heap_release.c). Only
 * the helper thread's passes ask for that: a hole costs a system call now
 * and one more when growth commits it again, and a pass made inside the
 * program's own calls (a single-threaded program: PostgreSQL's backends,
 * which free a query's memory and take it again for the next) would pay
 * both on the program's time. gm_scav_lock held. Returns bytes given
 * back. */
static size_t gm_scav_pass_max(bool all, size_t max, bool runs)
{
    uint32_t now = gm_now_ms();
    if (gm_over_limit()) all = true;
    uint64_t goal = gm_scav_goal(now);
    gm_heap_set_goal(goal);
    /* Spans whose last objects were freed while no thread owned them sit
     * empty in the central lists: first give them back to the heap (as
     * dirty pages, counted when released below). */
    gm_scav_trim_above();
    size_t bytes = gm_heap_drain_caches(all, now, gm_opt.decay_ms);
    /* What the trim and the drain just freed is stamped with the time they
     * did it: "everything" must include it. */
    uint32_t older = all ? gm_now_ms() : now - gm_opt.decay_ms;
    if (gm_decommits() && bytes < max) bytes += gm_heap_decommit(max - bytes, older, false, false);
    if (bytes < max) bytes += gm_heap_scavenge(max - bytes, older);
    if (all) return bytes;
    /* Over the goal: any age, highest first. */
    older = gm_now_ms();
    uint64_t held = gm_decommits() ? gm_stat_load(&gm_heap.heap_sys) : gm_heap_retained();
    if (gm_decommits() && held > goal && bytes < max) {
        uint64_t over = held - goal;
        bytes += gm_heap_decommit(over < max - bytes ? over : max - bytes, older, false, runs);
    }
    held = gm_heap_retained();
    if (held > goal && bytes < max) {
        uint64_t over = held - goal;
        bytes += gm_heap_scavenge(over < max - bytes ? over : max - bytes, older);
    }
    return bytes;
}

static size_t gm_scav_pass(bool all, bool runs) { return gm_scav_pass_max(all, SIZE_MAX, runs); }

/* Is there anything a later pass could return? (Racy reads: a hint.)
 * Central spans count: remote frees can empty them without telling us. */
static bool gm_scav_pending(void)
{
    return gm_pagealloc_scavengeable_pages(&gm_heap.pages) != 0 || gm_scav_above_holds();
}

void gm_scav_reclaim(void)
{
    if (!gm_heap_ready()) return;
    gm_lock(&gm_scav_lock, GM_RANK_SCAV);
    uint32_t now = gm_now_ms();
    gm_heap_drain_caches(true, now, 0);
    gm_heap_decommit(SIZE_MAX, now, true, false);
    gm_heap_decommit_runs(GM_RECLAIM_RUN_PAGES);
    gm_heap_scavenge(SIZE_MAX, now);
    gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
}

size_t gm_scavenge(void)
{
    if (!gm_heap_ready()) return 0;
    gm_scav_trim_above();
    gm_lock(&gm_scav_lock, GM_RANK_SCAV);
    size_t bytes = gm_scav_pass(true, false);
    gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
    return bytes;
}

static void gm_scav_after_grow(size_t grew)
{
    uint64_t inuse = gm_stat_load(&gm_heap.heap_inuse);
    uint64_t goal = inuse + inuse / 10 + GM_SCAV_SLACK, retained = gm_heap_retained();
    if (retained <= goal || !gm_trylock(&gm_scav_lock, GM_RANK_SCAV)) return;
    size_t excess = retained - goal;
    gm_heap_scavenge(excess < grew ? excess : grew, gm_now_ms());
    gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
}

/* ------------------------------------------------------------------------ */
/* The background scavenger                                                 */
/* ------------------------------------------------------------------------ */
/*
 * Its life. gm_bg_state moves IDLE -> STARTING -> RUNNING -> STOPPING ->
 * IDLE; OFF when GOMALLOC_BACKGROUND=0. Only an allocation path starts it
 * (gm_scav_tick, never a free: pthread_create allocates, and the memory a
 * free just gave back would be the first it reused, so a double free of
 * that block would go unseen), and only in a process with at least two
 * threads of the program's own (policy "auto"), or always ("thread").
 * "Threads of the program" are those known to the allocator
 * (gm_threads_known, counted by tcache.c's tcaches) and, before a start or
 * a stop, the kernel's list less our helpers and the threads on their way
 * out (gm_sys_program_threads), which also sees threads that never
 * allocated.
 *
 * A thread that leaves (gm_scav_thread_exit, from tcache.c's tcache release,
 * which runs in the thread's key destructor) stops the helper and waits
 * for it to be gone when the program keeps at most one thread (none, for
 * "thread"), so that:
 *   - the last thread of a program that ends with pthread_exit is the last
 *     thread of the process: glibc then calls exit(0) on it, with the
 *     program's atexit handlers, and not on our helper (which would keep
 *     the process alive until it ended, and ignore SIGTERM meanwhile);
 *   - a program back to one thread is single-threaded again by the time
 *     its join of the last other thread returns (unshare(CLONE_NEWUSER)
 *     and setns need that).
 * A program that is not multi-threaded (and one that turns so again) does
 * the helper's work itself, in its allocation and free slow paths, at most
 * once per pass period (gm_scav_inline).
 */

static pthread_t gm_bg_thread;
static _Atomic bool gm_bg_stopping;      /* the helper must return */
static _Atomic int gm_threads_known;     /* threads with a tcache */
static _Atomic uint32_t gm_mt_checked_ms; /* last kernel count that said "one" */


/* Threads of the program (the kernel's list less our helpers and threads
 * on their way out), or, if /proc cannot tell, those known to the
 * allocator. */
static long gm_program_threads(void)
{
    long n = gm_sys_program_threads();
    return n < 0 ? atomic_load(&gm_threads_known) : n;
}

void gm_scav_thread_start(void) { atomic_fetch_add_explicit(&gm_threads_known, 1, memory_order_relaxed); }

static void *gm_bg_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&gm_bg_stopping)) {
        gm_lock(&gm_scav_lock, GM_RANK_SCAV);
        size_t bytes = gm_scav_pass(false, true); /* runs: off the program's threads */
        gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
        if (bytes) atomic_fetch_add_explicit(&gm_scav.background_runs, 1, memory_order_relaxed);
        gm_lock(&gm_bg_mutex, GM_RANK_BG);
        if (atomic_load(&gm_bg_stopping)) {
            /* asked to leave while working */
        } else if (gm_scav_pending() || gm_over_limit() || gm_heap_caches_hold()) {
            /* Paced: frees do not cut this sleep short, or a program that
             * frees spans all the time would wake us all the time. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)gm_pass_period_ms() * 1000000u;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            gm_cond_wait_monotonic(&gm_bg_cond, &gm_bg_mutex, &ts);
        } else {
            atomic_store(&gm_bg_parked, true); /* nothing to return */
            while (atomic_load(&gm_bg_parked) && !atomic_load(&gm_bg_stopping))
                pthread_cond_wait(&gm_bg_cond, &gm_bg_mutex);
        }
        gm_unlock(&gm_bg_mutex, GM_RANK_BG);
    }
    return NULL;
}

void gm_scav_notify(void)
{
    if (!atomic_load_explicit(&gm_bg_parked, memory_order_relaxed)) return;
    gm_lock(&gm_bg_mutex, GM_RANK_BG);
    if (atomic_exchange(&gm_bg_parked, false)) pthread_cond_signal(&gm_bg_cond);
    gm_unlock(&gm_bg_mutex, GM_RANK_BG);
}

/* Does the program want a helper now? With policy "auto", when it has two
 * threads of its own or more (whether or not they allocate: the helper
 * must be running before a burst of frees ends, and a bench sampler or a
 * watchdog thread makes a program as multi-threaded as a worker does). The
 * kernel's count is read at most once per pass period while it says no. */
static bool gm_bg_wanted(void)
{
    int policy = gm_bg_policy();
    if (policy == GM_BACKGROUND_OFF) return false;
    if (policy == GM_BACKGROUND_THREAD) return true;
    uint32_t now = gm_now_ms(), last = atomic_load_explicit(&gm_mt_checked_ms, memory_order_relaxed);
    if (last && (uint32_t)(now - last) < gm_pass_period_ms()) return false;
    if (gm_program_threads() >= 2) return true;
    atomic_store_explicit(&gm_mt_checked_ms, now | 1, memory_order_relaxed);
    return false;
}

static void gm_bg_start(void)
{
    int expect = GM_BG_IDLE;
    if (!atomic_compare_exchange_strong(&gm_bg_state, &expect, GM_BG_STARTING)) return;
    atomic_store(&gm_bg_stopping, false);
    int rc = gm_sys_spawn(&gm_bg_thread, gm_bg_main, "gomalloc-scav");
    /* If the thread cannot be made, the program does the work itself. */
    atomic_store(&gm_bg_state, rc == 0 ? GM_BG_RUNNING : GM_BG_OFF);
}

/* Stop the helper and wait until it is gone (or until another thread that
 * is stopping it has waited). */
static void gm_bg_stop(void)
{
    for (;;) {
        int st = atomic_load(&gm_bg_state);
        if (st == GM_BG_IDLE || st == GM_BG_OFF) return;
        if (st == GM_BG_RUNNING && atomic_compare_exchange_strong(&gm_bg_state, &st, GM_BG_STOPPING)) break;
        struct timespec ts = {0, 200000}; /* starting or stopping elsewhere */
        nanosleep(&ts, NULL);
    }
    gm_lock(&gm_bg_mutex, GM_RANK_BG);
    atomic_store(&gm_bg_stopping, true);
    atomic_store(&gm_bg_parked, false);
    pthread_cond_broadcast(&gm_bg_cond);
    gm_unlock(&gm_bg_mutex, GM_RANK_BG);
    gm_sys_join(gm_bg_thread);
    atomic_store(&gm_bg_state, GM_BG_IDLE);
}

/* Hooks that must run when the last thread of the program leaves. */
static void (*gm_last_thread_hooks[2])(void);
static _Atomic unsigned gm_nlast_thread_hooks;

void gm_scav_on_last_thread(void (*fn)(void))
{
    unsigned i = atomic_fetch_add(&gm_nlast_thread_hooks, 1);
    if (i < sizeof gm_last_thread_hooks / sizeof gm_last_thread_hooks[0]) gm_last_thread_hooks[i] = fn;
}

void gm_scav_thread_exit(void)
{
    /* Disowned first, always: a helper started later must not count this
     * thread (a zombie main thread stays listed until the process ends),
     * nor may the scan of a thread that leaves at the same moment. */
    gm_sys_thread_disown();
    int known = atomic_fetch_sub(&gm_threads_known, 1) - 1;
    int helpers = atomic_load(&gm_sys_helpers);
    if (!helpers) return;
    int keep = gm_bg_policy() == GM_BACKGROUND_THREAD ? 0 : 1; /* threads the helper stays for */
    /* Threads with a cache that have not counted themselves out yet (less
     * the helpers, in case one has a cache) are a lower bound on the
     * program's: while it is above keep, the kernel's list need not be
     * read, which is what makes a thousand threads that end together cost
     * a thousand decrements instead of a million directory entries. Of
     * threads leaving at once, the last to count itself out sees the
     * count without the others, and they were disowned before they
     * counted, so its scan (below) does not take them for the program's. */
    if (known - helpers > keep) return;
    long left = gm_program_threads();
    if (left <= keep) gm_bg_stop();
    if (left <= 0) {
        unsigned n = atomic_load(&gm_nlast_thread_hooks);
        for (unsigned i = 0; i < n && i < sizeof gm_last_thread_hooks / sizeof gm_last_thread_hooks[0]; i++)
            gm_last_thread_hooks[i]();
    }
}

/* Without a helper nothing gives memory back while the program makes no
 * call, so the call that leaves far more memory free than in use (a burst
 * that ended) gives back everything free at once, whatever its age, as
 * gm_scavenge does: empty spans of the central lists and the span cache,
 * whole free chunks in strict mode, then free pages. "Free" is what the
 * mode gives back: free pages not yet released (RSS), or in strict mode
 * free committed memory (VmData too). "Far more": over a margin of
 * max(64 MiB, half of what is in use), doubled at first (see below), above
 * what the last such pass could not return (free pages of chunks that
 * still hold live ones, in strict mode); what is under it goes back by
 * age, at the slow-path calls that follow (gm_scav_inline).
 *
 * A program that frees and soon reuses large amounts (blocks replaced at
 * random, vectors grown by realloc) would pay for such a pass every time:
 * the pages it returns come back as page faults (bench/ `large`: 0.50 s
 * instead of 0.40 with an undoubled margin that never adapts). So the margin
 * adapts, as glibc's mmap threshold does: when the heap grew back by half of
 * what the last pass returned before the next one is due, it doubles (up to
 * 64 times); after a pass into which it did not, it halves back, down to
 * the plain margin. It starts doubled once: a program's first big free is
 * more often a working set turning over than the end of its life's burst. */
static struct {
    _Atomic uint64_t floor;       /* free memory the last pass left */
    _Atomic uint64_t inuse_after; /* heap_inuse right after it ... */
    _Atomic uint64_t peak;        /* ... and the most seen since */
    _Atomic uint64_t returned;    /* what it gave back */
    _Atomic unsigned shift;       /* the margin is doubled this often */
} gm_excess = {.shift = 1};
#define GM_EXCESS_MAX_SHIFT 6

static uint64_t gm_scav_free_now(uint64_t inuse)
{
    uint64_t held = gm_decommits() ? gm_stat_load(&gm_heap.heap_sys) : gm_heap_retained();
    return held > inuse ? held - inuse : 0;
}

/* The heap grew back into what the last pass returned: double the margin,
 * and count growth from here. */
static bool gm_excess_churned(uint64_t inuse)
{
    uint64_t returned = atomic_load_explicit(&gm_excess.returned, memory_order_relaxed);
    uint64_t base = atomic_load_explicit(&gm_excess.inuse_after, memory_order_relaxed);
    if (!returned || atomic_load_explicit(&gm_excess.peak, memory_order_relaxed) < base + returned / 2) return false;
    unsigned shift = atomic_load_explicit(&gm_excess.shift, memory_order_relaxed);
    if (shift < GM_EXCESS_MAX_SHIFT) atomic_store_explicit(&gm_excess.shift, shift + 1, memory_order_relaxed);
    atomic_store_explicit(&gm_excess.inuse_after, inuse, memory_order_relaxed);
    atomic_store_explicit(&gm_excess.peak, inuse, memory_order_relaxed);
    return true;
}

static void gm_scav_excess(void)
{
    uint64_t inuse = gm_stat_load(&gm_heap.heap_inuse), free = gm_scav_free_now(inuse);
    if (inuse > atomic_load_explicit(&gm_excess.peak, memory_order_relaxed))
        atomic_store_explicit(&gm_excess.peak, inuse, memory_order_relaxed);
    uint64_t floor = atomic_load_explicit(&gm_excess.floor, memory_order_relaxed);
    if (free < floor) atomic_store_explicit(&gm_excess.floor, floor = free, memory_order_relaxed);
    uint64_t margin = inuse / 2 > GM_EXCESS_MARGIN ? inuse / 2 : GM_EXCESS_MARGIN;
    unsigned shift = atomic_load_explicit(&gm_excess.shift, memory_order_relaxed);
    if (free <= floor + (margin << shift)) return;
    if (gm_excess_churned(inuse)) return; /* the doubled margin is for later */
    if (!gm_trylock(&gm_scav_lock, GM_RANK_SCAV)) return;
    if (shift) atomic_store_explicit(&gm_excess.shift, shift - 1, memory_order_relaxed);
    uint64_t before = gm_heap_retained();
    gm_scav_pass(true, false);
    gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
    uint64_t after = gm_heap_retained(), now_inuse = gm_stat_load(&gm_heap.heap_inuse);
    atomic_store_explicit(&gm_excess.returned, before > after ? before - after : 0, memory_order_relaxed);
    atomic_store_explicit(&gm_excess.inuse_after, now_inuse, memory_order_relaxed);
    atomic_store_explicit(&gm_excess.peak, now_inuse, memory_order_relaxed);
    atomic_store_explicit(&gm_excess.floor, gm_scav_free_now(now_inuse), memory_order_relaxed);
}

/* No helper: the pass, here and now, at most once per pass period. */
static void gm_scav_inline(void)
{
    gm_scav_excess();
    uint32_t now = gm_now_ms(), last = atomic_load_explicit(&gm_last_pass_ms, memory_order_relaxed);
    if ((uint32_t)(now - last) < gm_pass_period_ms()) return;
    if (!atomic_compare_exchange_strong(&gm_last_pass_ms, &last, now)) return;
    if (!gm_trylock(&gm_scav_lock, GM_RANK_SCAV)) return;
    gm_scav_pass(false, false);
    gm_unlock(&gm_scav_lock, GM_RANK_SCAV);
}

void gm_scav_tick_slow(bool may_start)
{
    if (!gm_heap_ready()) return;
    int st = atomic_load_explicit(&gm_bg_state, memory_order_relaxed);
    if (st == GM_BG_IDLE && gm_bg_policy() == GM_BACKGROUND_OFF) atomic_store(&gm_bg_state, st = GM_BG_OFF);
    if (st == GM_BG_IDLE && may_start && gm_bg_wanted()) {
        int saved = errno;
        gm_bg_start();
        errno = saved;
        st = atomic_load(&gm_bg_state);
    }
    if (st == GM_BG_IDLE || st == GM_BG_OFF) gm_scav_inline();
}

/* ------------------------------------------------------------------------ */
/* gm_check and fork                                                        */
/* ------------------------------------------------------------------------ */

void gm_scav_lock_all(void) { gm_lock(&gm_scav_lock, GM_RANK_SCAV); }
void gm_scav_unlock_all(void) { gm_unlock(&gm_scav_lock, GM_RANK_SCAV); }

void gm_scav_fork_child(int threads_with_cache)
{
    pthread_mutex_init(&gm_scav_lock, NULL);
    pthread_mutex_init(&gm_bg_mutex, NULL);
    pthread_cond_init(&gm_bg_cond, NULL);
    atomic_store(&gm_bg_parked, false);
    atomic_store(&gm_bg_stopping, false);
    /* The parent's helpers did not come along, nor its other threads: the
     * child is single-threaded, and starts a helper as any process does. */
    atomic_store(&gm_bg_state, gm_bg_policy() ? GM_BG_IDLE : GM_BG_OFF);
    gm_sys_threads_fork_child();
    atomic_store(&gm_threads_known, threads_with_cache);
    atomic_store(&gm_mt_checked_ms, 0);
}
