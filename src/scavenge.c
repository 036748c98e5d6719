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
 *   - In strict-commit mode, free whole chunks that are as old are also
 *     decommitted (mapped PROT_NONE again), so that VmData and the mode-2
 *     commit charge follow the live heap. Only whole 4 MiB chunks, highest
 *     first, so the decommitted ranges gather at the top of the heap next to
 *     curArena's Reserved tail and /proc/self/maps stays short; heap growth
 *     commits them again before new address space (heap.c).
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
 * Who does the work: a background thread (Go's bgscavenge), started by the
 * first allocation-path call that finds memory worth returning (never from
 * inside a lock: pthread_create allocates), with a small stack so that it
 * costs no commit to speak of. It runs a pass every decay_ms / 4 while
 * there is free dirty memory and sleeps on a condition variable when there
 * is none; the heap's free paths wake it. After fork the child has no
 * scavenger and starts its own the same way. With GOMALLOC_BACKGROUND=0
 * (or if the thread cannot be created) the allocation and free slow paths
 * run the passes themselves, at most once per decay_ms / 4.
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
 * Huge pages: gomalloc never asks for transparent huge pages. Where the
 * system backs anonymous memory with them unasked ("always"), each arena
 * is marked MADV_NOHUGEPAGE when it is reserved (whole arenas, so no
 * mapping is split): with khugepaged's default max_ptes_none of 511, a
 * 2 MiB range holding a single resident page would be collapsed into a
 * huge page again, refilling memory the scavenger just released.
 *
 * Locking: gm_scav_lock serializes passes and is the outermost lock; the
 * pass takes the tcache registry lock and the heap lock inside it, each
 * briefly. gm_check and fork take it to see no pages in flight.
 */
#define _GNU_SOURCE /* pthread_cond_clockwait */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct gm_scav_stats gm_scav;
_Atomic int gm_bg_state;

static pthread_mutex_t gm_scav_lock = PTHREAD_MUTEX_INITIALIZER;

/* The background thread's sleep. */
static pthread_mutex_t gm_bg_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gm_bg_cond = PTHREAD_COND_INITIALIZER;
static _Atomic bool gm_bg_parked; /* waiting with nothing to do: wake me */
static _Atomic uint32_t gm_last_pass_ms; /* without a background thread */

#define GM_SCAV_SLACK ((uint64_t)4 << 20)   /* retained beyond 110% of in use */
#define GM_BG_STACK ((size_t)64 << 10)      /* the scavenger's stack ... */
#define GM_BG_STACK_MAX ((size_t)4 << 20)   /* ... up to this, then the default */
#define GM_BG_START_BYTES ((size_t)256 << 10) /* worth a thread */
#define GM_RECLAIM_RUN_PAGES 16               /* 128 KiB: smallest run decommitted under pressure */

uint32_t gm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static uint32_t gm_pass_period_ms(void)
{
    uint32_t p = gm_opt.decay_ms / 4;
    return p < 5 ? 5 : p > 250 ? 250 : p;
}

/* ------------------------------------------------------------------------ */
/* Set-up: strict mode and the default limit                                */
/* ------------------------------------------------------------------------ */

/* The first bytes of a file into buf (NUL-terminated), or -1. */
static ssize_t gm_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return n;
}

static uint64_t gm_parse_u64(const char *p, bool *ok)
{
    uint64_t v = 0;
    *ok = *p >= '0' && *p <= '9';
    for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
    return v;
}

/* The memory cgroup's limit, 0 if none: v2 memory.max, else v1
 * memory.limit_in_bytes ("unlimited" is a huge number there). */
static uint64_t gm_cgroup_limit(void)
{
    char buf[1024], path[512];
    if (gm_read_file("/proc/self/cgroup", buf, sizeof buf) <= 0) return 0;
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
        if (gm_read_file(path, val, sizeof val) <= 0) continue;
        bool ok;
        uint64_t v = gm_parse_u64(val, &ok);
        if (ok && v < ((uint64_t)1 << 60)) return v;
    }
    return 0;
}

void gm_scav_init(void)
{
    char buf[16];
    bool strict = gm_opt.strict == 1;
    if (gm_opt.strict < 0) {
        struct rlimit rl;
        strict = (gm_read_file("/proc/sys/vm/overcommit_memory", buf, sizeof buf) > 0 && buf[0] == '2') ||
                 (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY);
    }
    if (!atomic_load(&gm_scav.limit)) {
        uint64_t cg = gm_cgroup_limit();
        if (cg) atomic_store(&gm_scav.limit, cg);
    }
    atomic_store(&gm_scav.strict, strict);
    if (!gm_opt.background) atomic_store(&gm_bg_state, GM_BG_OFF);
}

int gm_set_memory_limit(size_t bytes, int hard)
{
    if (bytes != 0 && bytes < GM_CHUNK_BYTES) {
        errno = EINVAL;
        return -1;
    }
    atomic_store(&gm_scav.limit_hard, bytes != 0 && hard != 0);
    atomic_store(&gm_scav.limit, (uint64_t)bytes);
    gm_scav_notify();
    return 0;
}

size_t gm_get_memory_limit(int *hard)
{
    gm_heap_init(); /* the default comes from the cgroup, read at heap start */
    if (hard) *hard = atomic_load(&gm_scav.limit_hard);
    return (size_t)atomic_load(&gm_scav.limit);
}

/* ------------------------------------------------------------------------ */
/* Passes                                                                   */
/* ------------------------------------------------------------------------ */

static bool gm_over_limit(void)
{
    uint64_t limit = atomic_load_explicit(&gm_scav.limit, memory_order_relaxed);
    return limit && gm_stat_load(&gm_os.committed) > limit;
}

static bool gm_decommits(void)
{
    return atomic_load_explicit(&gm_scav.strict, memory_order_relaxed) ||
           atomic_load_explicit(&gm_scav.limit, memory_order_relaxed);
}

/* One pass: everything old enough (or everything, if all). gm_scav_lock
 * held. Returns bytes given back. */
static size_t gm_scav_pass(bool all)
{
    uint32_t now = gm_now_ms();
    if (gm_over_limit()) all = true;
    uint32_t older = all ? now : now - gm_opt.decay_ms;
    /* Spans whose last objects were freed while no thread owned them sit
     * empty in the central lists: first give them back to the heap (as
     * dirty pages, counted when released below). */
    gm_central_trim();
    size_t bytes = gm_heap_drain_caches(all, now, gm_opt.decay_ms);
    if (gm_decommits()) bytes += gm_heap_decommit(SIZE_MAX, older, false);
    bytes += gm_heap_scavenge(SIZE_MAX, older);
    return bytes;
}

/* Is there anything a later pass could return? (Racy reads: a hint.)
 * Central spans count: remote frees can empty them without telling us. */
static bool gm_scav_pending(void)
{
    return gm_pagealloc_scavengeable_pages(&gm_heap.pages) != 0 || gm_central_holds();
}

void gm_scav_reclaim(void)
{
    if (!gm_heap_ready()) return;
    pthread_mutex_lock(&gm_scav_lock);
    uint32_t now = gm_now_ms();
    gm_heap_drain_caches(true, now, 0);
    gm_heap_decommit(SIZE_MAX, now, true);
    gm_heap_decommit_runs(GM_RECLAIM_RUN_PAGES);
    gm_heap_scavenge(SIZE_MAX, now);
    pthread_mutex_unlock(&gm_scav_lock);
}

size_t gm_scavenge(void)
{
    if (!gm_heap_ready()) return 0;
    gm_central_trim();
    pthread_mutex_lock(&gm_scav_lock);
    size_t bytes = gm_scav_pass(true);
    pthread_mutex_unlock(&gm_scav_lock);
    return bytes;
}

void gm_scav_after_grow(size_t grew)
{
    uint64_t inuse = gm_stat_load(&gm_heap.heap_inuse);
    uint64_t goal = inuse + inuse / 10 + GM_SCAV_SLACK, retained = gm_heap_retained();
    if (retained <= goal || pthread_mutex_trylock(&gm_scav_lock) != 0) return;
    size_t excess = retained - goal;
    gm_heap_scavenge(excess < grew ? excess : grew, gm_now_ms());
    pthread_mutex_unlock(&gm_scav_lock);
}

/* ------------------------------------------------------------------------ */
/* The background scavenger                                                 */
/* ------------------------------------------------------------------------ */

static void *gm_bg_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&gm_scav_lock);
        size_t bytes = gm_scav_pass(false);
        pthread_mutex_unlock(&gm_scav_lock);
        if (bytes) atomic_fetch_add_explicit(&gm_scav.background_runs, 1, memory_order_relaxed);
        pthread_mutex_lock(&gm_bg_mutex);
        if (gm_scav_pending() || gm_over_limit() || gm_heap_caches_hold()) {
            /* Paced: frees do not cut this sleep short, or a program that
             * frees spans all the time would wake us all the time. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)gm_pass_period_ms() * 1000000u;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_clockwait(&gm_bg_cond, &gm_bg_mutex, CLOCK_MONOTONIC, &ts);
        } else {
            atomic_store(&gm_bg_parked, true); /* nothing to return */
            while (atomic_load(&gm_bg_parked)) pthread_cond_wait(&gm_bg_cond, &gm_bg_mutex);
        }
        pthread_mutex_unlock(&gm_bg_mutex);
    }
    return NULL;
}

void gm_scav_notify(void)
{
    if (!atomic_load_explicit(&gm_bg_parked, memory_order_relaxed)) return;
    pthread_mutex_lock(&gm_bg_mutex);
    if (atomic_exchange(&gm_bg_parked, false)) pthread_cond_signal(&gm_bg_cond);
    pthread_mutex_unlock(&gm_bg_mutex);
}

static void gm_bg_start(void)
{
    int expect = GM_BG_IDLE;
    if (!atomic_compare_exchange_strong(&gm_bg_state, &expect, GM_BG_STARTING)) return;
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all); /* the thread inherits this mask: no signals for it */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* A small stack, so that the thread costs next to no commit; glibc
     * refuses one too small for the program's static TLS (EINVAL), so
     * grow it until it fits, up to the default. */
    int rc = EINVAL;
    for (size_t stack = GM_BG_STACK; rc == EINVAL && stack <= GM_BG_STACK_MAX; stack *= 4) {
        pthread_attr_t attr;
        if ((rc = pthread_attr_init(&attr)) != 0) break;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (stack < GM_BG_STACK_MAX) pthread_attr_setstacksize(&attr, stack);
        rc = pthread_create(&t, &attr, gm_bg_main, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&gm_bg_state, rc == 0 ? GM_BG_RUNNING : GM_BG_OFF);
}

/* thread_exit: called as a thread leaves; what it held (spans now in the
 * central lists, its caches) is for the scavenger to return. */
void gm_scav_tick_slow(bool thread_exit)
{
    int st = atomic_load_explicit(&gm_bg_state, memory_order_relaxed);
    if (st == GM_BG_IDLE) {
        if (!gm_opt.background) atomic_store(&gm_bg_state, GM_BG_OFF);
        if (!gm_heap_ready() || !gm_opt.background) return;
        if (thread_exit || gm_pagealloc_scavengeable_pages(&gm_heap.pages) << GM_PAGE_SHIFT >= GM_BG_START_BYTES ||
            gm_over_limit())
            gm_bg_start();
        return;
    }
    if (st != GM_BG_OFF || !gm_heap_ready()) return;
    /* No background thread: do its work here, now and then. */
    uint32_t now = gm_now_ms(), last = atomic_load_explicit(&gm_last_pass_ms, memory_order_relaxed);
    if ((uint32_t)(now - last) < gm_pass_period_ms()) return;
    if (!atomic_compare_exchange_strong(&gm_last_pass_ms, &last, now)) return;
    if (pthread_mutex_trylock(&gm_scav_lock) != 0) return;
    gm_scav_pass(false);
    pthread_mutex_unlock(&gm_scav_lock);
}

/* ------------------------------------------------------------------------ */
/* gm_check and fork                                                        */
/* ------------------------------------------------------------------------ */

void gm_scav_lock_all(void) { pthread_mutex_lock(&gm_scav_lock); }
void gm_scav_unlock_all(void) { pthread_mutex_unlock(&gm_scav_lock); }

void gm_scav_fork_child(void)
{
    pthread_mutex_init(&gm_scav_lock, NULL);
    pthread_mutex_init(&gm_bg_mutex, NULL);
    pthread_cond_init(&gm_bg_cond, NULL);
    atomic_store(&gm_bg_parked, false);
    /* The parent's scavenger did not come along: start ours when needed. */
    atomic_store(&gm_bg_state, gm_opt.background ? GM_BG_IDLE : GM_BG_OFF);
}
