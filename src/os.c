/*
 * os.c — layer 1: the OS memory states and the system calls that move
 * memory between them (Go's mem_linux.go).
 *
 *   None --reserve--> Reserved --map--> Prepared --used--> Ready
 *                        ^                  ^ <--unused--'
 *                        '----decommit------'
 *   any --free--> None
 *
 * Reserved is a private PROT_NONE mapping: it holds address space and costs
 * no commit charge, no RLIMIT_DATA and no VmData (the kernel charges only
 * writable private mappings). map commits with mprotect(RW) and never by
 * re-mapping: the kernel checks mprotect against RLIMIT_DATA and charges it
 * to the commit accounting of every overcommit mode, while an mmap(MAP_FIXED)
 * over a reservation escapes the RLIMIT_DATA check. No mapping here carries
 * MAP_NORESERVE: a range made writable under that flag is never charged, so
 * in the heuristic mode (0) the kernel would let a commit larger than RAM
 * plus swap through (malloc(1 TiB) would succeed, and the OOM killer would
 * end the program that used it), where glibc's mmap gets ENOMEM. So the
 * kernel decides, in every mode, exactly as it does for glibc. unused is
 * madvise(MADV_DONTNEED): RSS falls, the commit charge does not. decommit
 * maps PROT_NONE over the range with MAP_FIXED, which is the only way short
 * of munmap to give the commit charge back.
 *
 * Reserved costs address space, though, which RLIMIT_AS (ulimit -v) bounds:
 * the layers above size their reservations by gm_sys_as_limit, read at
 * each reservation because a program may lower or raise it at any time.
 *
 * One more call keeps memory Ready but moves it: gm_sys_move hands a
 * range's pages to another Ready range with mremap (realloc of large
 * blocks), and the source stays Ready, reading as zeroes.
 *
 * Invariants: every transition that changes what is committed adds or
 * subtracts exactly its bytes from the stat its caller names and from
 * gm_os.committed, and only when the system call succeeded; a failed call
 * changes nothing and returns -1 with errno set. The exception is a move
 * the kernel refuses after it dropped the target: that target is Reserved
 * and accounted so (-2), and errno is kept. Nothing here allocates.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

struct gm_os_stats gm_os;

#ifdef GM_TESTING
static struct {
    _Atomic uint64_t skip;
    _Atomic uint64_t count;
} gm_faults[GM_SYS_KINDS];

void gm_fault_set(enum gm_sys_kind kind, uint64_t skip, uint64_t count)
{
    atomic_store(&gm_faults[kind].skip, skip);
    atomic_store(&gm_faults[kind].count, count);
}

void gm_fault_clear(void)
{
    for (int k = 0; k < GM_SYS_KINDS; k++) gm_fault_set(k, 0, 0);
}

/* True if this call of kind must fail. */
static bool gm_fault_now(enum gm_sys_kind kind)
{
    if (atomic_load_explicit(&gm_faults[kind].count, memory_order_relaxed) == 0) return false;
    uint64_t skip = atomic_load(&gm_faults[kind].skip);
    while (skip > 0) {
        if (atomic_compare_exchange_weak(&gm_faults[kind].skip, &skip, skip - 1)) return false;
    }
    uint64_t count = atomic_load(&gm_faults[kind].count);
    while (count > 0) {
        if (atomic_compare_exchange_weak(&gm_faults[kind].count, &count, count - 1)) return true;
    }
    return false;
}
#else
static inline bool gm_fault_now(enum gm_sys_kind kind) { return false; }
#endif

/* Counts the call, and says whether fault injection wants it to fail. */
static bool gm_sys_begin(enum gm_sys_kind kind)
{
    atomic_fetch_add_explicit(&gm_os.calls[kind], 1, memory_order_relaxed);
    if (GM_UNLIKELY(gm_fault_now(kind))) {
        atomic_fetch_add_explicit(&gm_os.failures[kind], 1, memory_order_relaxed);
        errno = ENOMEM;
        return false;
    }
    return true;
}

static void gm_sys_failed(enum gm_sys_kind kind)
{
    atomic_fetch_add_explicit(&gm_os.failures[kind], 1, memory_order_relaxed);
}

void *gm_sys_reserve(void *hint, size_t n)
{
    if (!gm_sys_begin(GM_SYS_RESERVE)) return NULL;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (hint) flags |= MAP_FIXED_NOREPLACE;
    void *p = mmap(hint, n, PROT_NONE, flags, -1, 0);
    if (p == MAP_FAILED) {
        gm_sys_failed(GM_SYS_RESERVE);
        return NULL;
    }
    if (hint && p != hint) { /* an old kernel that ignores NOREPLACE */
        munmap(p, n);
        gm_sys_failed(GM_SYS_RESERVE);
        errno = EEXIST;
        return NULL;
    }
    gm_stat_add(&gm_os.reserved, (int64_t)n);
    return p;
}

void *gm_sys_reserve_aligned(void *hint, size_t n, size_t align)
{
    if (hint && ((uintptr_t)hint & (align - 1)) == 0) {
        void *p = gm_sys_reserve(hint, n);
        if (p) return p;
    }
    /* Over-reserve by align and trim both ends. */
    uint8_t *p = gm_sys_reserve(NULL, n + align);
    if (!p) return NULL;
    uintptr_t base = gm_align_up((uintptr_t)p, align);
    size_t head = base - (uintptr_t)p, tail = align - head;
    if (head) munmap(p, head);
    if (tail) munmap((void *)(base + n), tail);
    gm_stat_add(&gm_os.reserved, -(int64_t)align);
    return (void *)base;
}

int gm_sys_map(void *v, size_t n, gm_stat *stat)
{
    if (!gm_sys_begin(GM_SYS_MAP)) return -1;
    if (mprotect(v, n, PROT_READ | PROT_WRITE) != 0) {
        gm_sys_failed(GM_SYS_MAP);
        return -1;
    }
    gm_stat_add(stat, (int64_t)n);
    gm_stat_add(&gm_os.committed, (int64_t)n);
    return 0;
}

void gm_sys_used(void *v, size_t n)
{
    /* Prepared and Ready are the same mapping on Linux; the huge-page
     * policy (gm_sys_nohuge) is applied when the range is reserved. */
}

int gm_sys_unused(void *v, size_t n)
{
    if (!gm_sys_begin(GM_SYS_UNUSED)) return -1;
    if (madvise(v, n, MADV_DONTNEED) != 0) {
        gm_sys_failed(GM_SYS_UNUSED);
        return -1;
    }
    return 0;
}

int gm_sys_decommit(void *v, size_t n, gm_stat *stat)
{
    if (!gm_sys_begin(GM_SYS_DECOMMIT)) return -1;
    void *p = mmap(v, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) {
        gm_sys_failed(GM_SYS_DECOMMIT);
        return -1;
    }
    gm_stat_add(stat, -(int64_t)n);
    gm_stat_add(&gm_os.committed, -(int64_t)n);
    gm_sys_nohuge(v, n); /* the new mapping lost the arena's flag */
    return 0;
}

/* Moving pages (realloc of a large block that cannot grow in place):
 * mremap with MREMAP_FIXED | MREMAP_DONTUNMAP moves the page-table entries
 * of from onto to, so the block is never resident twice and nothing is
 * copied; from keeps its mapping, so no other thread's mmap can take its
 * address, and its charge. The kernel drops to's mapping first (which
 * gives its charge back) and charges the moved range after, so a refusal
 * can come after the drop (strict overcommit when another process took the
 * charge meanwhile, or a limit lowered under the heap): then to is mapped
 * PROT_NONE again at once and committed again if the OS allows. Before
 * the first move a page of a scratch mapping is moved and its source
 * asked for (mincore): kernels before 5.7 refuse the flag, and qemu-user
 * (7.2) moves the page but forgets that the source stays mapped, so that
 * a system call given an address there would fail with EFAULT; either
 * turns moving off for the process. Each move may split the heap's mapping twice at to (the
 * moved pages keep their old file offset, so the kernel does not merge
 * them with their neighbours) until the range is decommitted. */
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
static _Atomic int gm_sys_move_state; /* 0 not probed, 1 works, -1 off */

bool gm_sys_moves_work(void)
{
    int st = atomic_load_explicit(&gm_sys_move_state, memory_order_relaxed);
    if (st) return st > 0;
    const size_t ps = 4096; /* arch.h: 4 KiB pages */
    int saved = errno;
    char *s = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) { /* no room now: ask again next time */
        errno = saved;
        return false;
    }
    unsigned char v;
    bool ok = mremap(s, ps, ps, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, s + ps) == s + ps &&
              mincore(s, ps, &v) == 0;
    munmap(s, 2 * ps);
    atomic_store_explicit(&gm_sys_move_state, ok ? 1 : -1, memory_order_relaxed);
    errno = saved;
    return ok;
}

int gm_sys_move(void *from, void *to, size_t n, gm_stat *stat)
{
    if (!gm_sys_moves_work()) return -1;
    int saved = errno;
    void *p = MAP_FAILED;
    if (gm_sys_begin(GM_SYS_MOVE)) {
        p = mremap(from, n, n, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
        if (p == MAP_FAILED) gm_sys_failed(GM_SYS_MOVE);
    } else {
        munmap(to, n); /* an injected refusal is the kernel's worst: after the drop */
    }
    int r = 0;
    if (p == MAP_FAILED) {
        r = -1;
        if (msync(to, n, MS_ASYNC) != 0) { /* ENOMEM: to is not (all) mapped */
            if (mmap(to, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
                gm_fatal("cannot map the heap's address space again after a failed page move", to);
            gm_sys_nohuge(to, n);
            gm_stat_add(stat, -(int64_t)n);
            gm_stat_add(&gm_os.committed, -(int64_t)n);
            if (gm_sys_map(to, n, stat) != 0) r = -2;
        }
    }
    errno = saved;
    return r;
}

/* Huge-page policy (GOMALLOC_THP): 1 = mark the heap's address space
 * MADV_NOHUGEPAGE, so that, where the kernel backs anonymous memory with
 * huge pages unasked ("always"), khugepaged (max_ptes_none 511 by default)
 * does not collapse a 2 MiB range holding one resident page into a huge
 * page again, refilling memory the scavenger just released. Whole
 * reservations are marked, so no mapping is split. */
static _Atomic int gm_nohuge = -1;

static bool gm_sys_nohuge_wanted(void)
{
    int v = atomic_load_explicit(&gm_nohuge, memory_order_relaxed);
    if (v >= 0) return v;
    if (gm_opt.thp >= 0) {
        v = gm_opt.thp == 0;
    } else { /* auto: only where the kernel uses huge pages unasked */
        char buf[128];
        v = gm_sys_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) > 0 &&
            strstr(buf, "[always]") != NULL;
    }
    atomic_store_explicit(&gm_nohuge, v, memory_order_relaxed);
    return v;
}

void gm_sys_nohuge(void *v, size_t n)
{
    if (gm_sys_nohuge_wanted()) madvise(v, n, MADV_NOHUGEPAGE);
}

int gm_sys_free(void *v, size_t n, size_t committed_bytes, gm_stat *stat)
{
    if (!gm_sys_begin(GM_SYS_FREE)) return -1;
    if (munmap(v, n) != 0) {
        gm_sys_failed(GM_SYS_FREE);
        return -1;
    }
    gm_stat_add(stat, -(int64_t)committed_bytes);
    gm_stat_add(&gm_os.committed, -(int64_t)committed_bytes);
    gm_stat_add(&gm_os.reserved, -(int64_t)n);
    return 0;
}

long gm_sys_mapping_count(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    long lines = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
    close(fd);
    return r < 0 ? -1 : lines;
}

uint64_t gm_sys_as_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
    return (uint64_t)rl.rlim_cur;
}

/* ------------------------------------------------------------------------ */
/* Files of /proc and /sys, the clock, and helper threads                   */
/* ------------------------------------------------------------------------ */

uint32_t gm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

ssize_t gm_sys_read_file(const char *path, char *buf, size_t cap)
{
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && ((r = read(fd, buf + n, cap - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    errno = saved;
    return (ssize_t)n;
}

/* Threads that are not the program's: our helpers, and threads on their
 * way out (past the allocator's exit hook, or a zombie main thread, which
 * /proc/self/task lists until the process ends). Every thread that leaves
 * is recorded, so the set is a hash set (open addressing, linear probing,
 * 0 for an empty slot): a thousand threads that leave at once cost a
 * thousand short inserts, not a thousand scans of a list. Entries leave
 * when a scan no longer lists their thread (the set is pruned only when
 * full), so a recycled thread id is never taken for one of them for long.
 * Past GM_SYS_DISOWNED_MAX threads on their way out at the same moment, a
 * thread that finds the set full after a prune goes unrecorded: a scan in
 * the short time before the kernel drops it counts it as the program's. */
#define GM_SYS_DISOWNED_SLOTS 2048u /* a power of two: 8 KiB */
#define GM_SYS_DISOWNED_MAX (GM_SYS_DISOWNED_SLOTS / 4 * 3)
static struct {
    pthread_mutex_t lock;
    unsigned n;
    pid_t tid[GM_SYS_DISOWNED_SLOTS];
    uint64_t seen[GM_SYS_DISOWNED_SLOTS / 64]; /* listed by the running scan */
} gm_disowned = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned gm_disowned_home(pid_t tid)
{
    return ((uint32_t)tid * 0x9E3779B1u) >> 21 & (GM_SYS_DISOWNED_SLOTS - 1);
}

/* tid's slot, or the empty slot where it would go. Lock held. */
static unsigned gm_disowned_slot(pid_t tid)
{
    unsigned i = gm_disowned_home(tid);
    while (gm_disowned.tid[i] && gm_disowned.tid[i] != tid) i = (i + 1) & (GM_SYS_DISOWNED_SLOTS - 1);
    return i;
}

static bool gm_disowned_seen(unsigned i) { return gm_disowned.seen[i / 64] >> (i % 64) & 1; }

static void gm_disowned_set_seen(unsigned i, bool on)
{
    uint64_t bit = (uint64_t)1 << (i % 64);
    gm_disowned.seen[i / 64] = on ? gm_disowned.seen[i / 64] | bit : gm_disowned.seen[i / 64] & ~bit;
}

/* Empty slot i, moving back the entries after it whose probe run crossed it
 * (deletion without tombstones), with their seen bits. Lock held. */
static void gm_disowned_delete(unsigned i)
{
    const unsigned mask = GM_SYS_DISOWNED_SLOTS - 1;
    for (unsigned j = (i + 1) & mask; gm_disowned.tid[j]; j = (j + 1) & mask) {
        unsigned home = gm_disowned_home(gm_disowned.tid[j]);
        /* The entry at j stays if its home lies in (i, j], cyclically. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        gm_disowned.tid[i] = gm_disowned.tid[j];
        gm_disowned_set_seen(i, gm_disowned_seen(j));
        i = j;
    }
    gm_disowned.tid[i] = 0;
    gm_disowned_set_seen(i, false);
    gm_disowned.n--;
}

static long gm_sys_scan_tasks(void);

void gm_sys_thread_disown(void)
{
    pid_t self = (pid_t)syscall(SYS_gettid);
    for (int tries = 0; tries < 2; tries++) {
        gm_lock(&gm_disowned.lock, GM_RANK_THREADS);
        unsigned i = gm_disowned_slot(self);
        bool done = gm_disowned.tid[i] == self || gm_disowned.n < GM_SYS_DISOWNED_MAX;
        if (done && !gm_disowned.tid[i]) {
            gm_disowned.tid[i] = self;
            gm_disowned.n++;
        }
        gm_unlock(&gm_disowned.lock, GM_RANK_THREADS);
        if (done) return;
        gm_sys_scan_tasks(); /* full: forget the threads that are gone */
    }
}

/* Is tid disowned? Marks its entry as seen. Lock held. */
static bool gm_sys_disowned(pid_t tid)
{
    unsigned i = gm_disowned_slot(tid);
    if (!gm_disowned.tid[i]) return false;
    gm_disowned_set_seen(i, true);
    return true;
}

#ifdef GM_TESTING
_Atomic long gm_sys_task_scans;

unsigned gm_sys_disowned_count(void)
{
    gm_lock(&gm_disowned.lock, GM_RANK_THREADS);
    unsigned n = gm_disowned.n;
    gm_unlock(&gm_disowned.lock, GM_RANK_THREADS);
    return n;
}
#endif

/* Helpers started and not yet disowned (a scan would take them for the
 * program's), and a count of the starts, for a scan to see whether one
 * began while it read. */
static _Atomic int gm_sys_unborn;
static _Atomic unsigned gm_sys_births;

long gm_sys_program_threads(void)
{
    long n = -1;
    /* Waits at most ~20 ms for a helper that has not run yet (a loaded
     * machine), then counts it as the program's. */
    uint32_t t0 = gm_now_ms();
    for (int tries = 0; tries < 8; tries++) {
        unsigned births = atomic_load(&gm_sys_births);
        while (atomic_load(&gm_sys_unborn) && (uint32_t)(gm_now_ms() - t0) < 20) {
            struct timespec ts = {0, 50000}; /* a few instructions from disowning itself */
            nanosleep(&ts, NULL);
        }
        n = gm_sys_scan_tasks();
        if (atomic_load(&gm_sys_births) == births && !atomic_load(&gm_sys_unborn)) break;
    }
    return n;
}

/* One read of /proc/self/task: threads listed and not disowned. */
static long gm_sys_scan_tasks(void)
{
    int saved = errno;
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
#ifdef GM_TESTING
    atomic_fetch_add(&gm_sys_task_scans, 1);
#endif
    char buf[2048];
    long n = 0;
    gm_lock(&gm_disowned.lock, GM_RANK_THREADS);
    memset(gm_disowned.seen, 0, sizeof gm_disowned.seen);
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got <= 0) {
            if (got < 0) n = -1;
            break;
        }
        for (long off = 0; off < got;) {
            const char *name = buf + off + 19; /* struct linux_dirent64's d_name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            off += reclen;
            if (name[0] < '0' || name[0] > '9') continue;
            pid_t tid = 0;
            for (const char *p = name; *p >= '0' && *p <= '9'; p++) tid = tid * 10 + (*p - '0');
            if (!gm_sys_disowned(tid)) n++;
        }
    }
    if (n >= 0) { /* forget threads that are gone (a slot refilled by a move is looked at again) */
        for (unsigned i = 0; i < GM_SYS_DISOWNED_SLOTS;) {
            if (gm_disowned.tid[i] && !gm_disowned_seen(i)) gm_disowned_delete(i);
            else i++;
        }
    }
    gm_unlock(&gm_disowned.lock, GM_RANK_THREADS);
    close(fd);
    errno = saved;
    return n;
}

void gm_sys_threads_fork_child(void)
{
    pthread_mutex_init(&gm_disowned.lock, NULL);
    if (gm_disowned.n) memset(gm_disowned.tid, 0, sizeof gm_disowned.tid); /* the child has one thread */
    gm_disowned.n = 0;
    atomic_store(&gm_sys_helpers, 0);
    atomic_store(&gm_sys_unborn, 0);
}

_Atomic int gm_sys_helpers;

/* The helper's function travels as the thread's argument. */
union gm_sys_fn {
    void *(*fn)(void *);
    void *p;
};

static void *gm_sys_helper_main(void *arg)
{
    gm_sys_thread_disown(); /* before any thread counts the program's again */
    atomic_fetch_sub(&gm_sys_unborn, 1);
    return ((union gm_sys_fn *)arg)->fn(NULL);
}

static int gm_sys_create(pthread_t *t, union gm_sys_fn *fn, size_t stack)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0) return rc;
    if (stack) rc = pthread_attr_setstacksize(&attr, stack);
    if (rc == 0) rc = pthread_create(t, &attr, gm_sys_helper_main, fn);
    pthread_attr_destroy(&attr);
    return rc;
}

int gm_sys_spawn(pthread_t *t, void *(*fn)(void *), const char *name)
{
    /* One slot per helper function: each helper has one thread at a time. */
    static union gm_sys_fn slots[4];
    union gm_sys_fn *slot = NULL;
    for (unsigned i = 0; i < sizeof slots / sizeof slots[0] && !slot; i++)
        if (slots[i].fn == fn || !slots[i].fn) slot = &slots[i];
    if (!slot) return EAGAIN;
    slot->fn = fn;
    int saved = errno;
    sigset_t all, old;
    sigfillset(&all); /* the thread inherits this mask */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* Counted before it exists: a helper is never among the threads a
     * leaving thread takes for the program's (gm_scav_thread_exit). */
    atomic_fetch_add(&gm_sys_helpers, 1);
    atomic_fetch_add(&gm_sys_births, 1);
    atomic_fetch_add(&gm_sys_unborn, 1);
    /* glibc refuses a stack too small for the program's static TLS
     * (EINVAL): grow it until it fits, then take the default. */
    int rc = EINVAL;
    for (size_t stack = GM_SYS_HELPER_STACK; rc == EINVAL && stack <= ((size_t)4 << 20); stack *= 4)
        rc = gm_sys_create(t, slot, stack);
    if (rc == EINVAL) rc = gm_sys_create(t, slot, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) pthread_setname_np(*t, name);
    else {
        atomic_fetch_sub(&gm_sys_unborn, 1);
        atomic_fetch_sub(&gm_sys_helpers, 1);
    }
    errno = saved;
    return rc;
}

void gm_sys_join(pthread_t t)
{
    int saved = errno, cancel;
    /* pthread_join is a cancellation point; the caller may be a thread on
     * its way out after a cancel. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    pthread_join(t, NULL);
    pthread_setcancelstate(cancel, NULL);
    atomic_fetch_sub(&gm_sys_helpers, 1);
    errno = saved;
}

/* ------------------------------------------------------------------------ */
/* Zeroing what may not be zero                                             */
/* ------------------------------------------------------------------------ */
/*
 * calloc of memory the heap used before must read as zero, and writing
 * zeros over a large block makes every page of it resident, though most of
 * a big block is often pages the program never touched (a 2 GiB buffer of
 * which it wrote the first bytes): glibc and jemalloc hand such requests
 * fresh or purged pages and touch nothing. A private anonymous page that is
 * neither present nor swapped out reads as zero (never touched, or given
 * back with MADV_DONTNEED), so only the others need writing. Where the
 * system has no swap, mincore tells which pages are present (one byte a
 * page, 20 us for 8 MiB here); with swap, a swapped-out page is not present
 * but holds data, and /proc/self/pagemap tells both (bit 63 present, 62
 * swapped; 8 bytes a page, eight times slower). Small ranges are cheaper to
 * write than to look up. Without either, MADV_DONTNEED makes the whole pages
 * read as zero and only the unaligned end is written.
 */
#define GM_ZERO_PROBE_MIN ((size_t)1 << 20) /* below this, memset */
#ifdef GM_TESTING
bool gm_zero_force_pagemap; /* tests: the path of a system with swap */
#define GM_ZERO_FORCE_PAGEMAP gm_zero_force_pagemap
#else
#define GM_ZERO_FORCE_PAGEMAP false
#endif
#define GM_PROBE_BATCH 512                  /* pages looked up at a time: 2 MiB */

/* Pages of [p, p + n) that may hold data: flags[i] for the i-th page of
 * the batch starting at page `first` (npages of them). -1 if the kernel
 * cannot tell. */
static int gm_sys_probe(uintptr_t p, size_t first, size_t npages, bool swap, int fd, bool *flags)
{
    if (!swap) {
        unsigned char vec[GM_PROBE_BATCH];
        if (mincore((void *)(p + first * GM_OS_PAGE), npages * GM_OS_PAGE, vec) != 0) return -1;
        for (size_t i = 0; i < npages; i++) flags[i] = vec[i] & 1;
        return 0;
    }
    uint64_t e[GM_PROBE_BATCH];
    off_t off = (off_t)((p / GM_OS_PAGE + first) * sizeof e[0]);
    if (pread(fd, e, npages * sizeof e[0], off) != (ssize_t)(npages * sizeof e[0])) return -1;
    for (size_t i = 0; i < npages; i++) flags[i] = (e[i] >> 62) != 0; /* present or swapped */
    return 0;
}

/* memset the runs of [p, p + n) (OS-page aligned p) that may hold data;
 * -1 (nothing written) if the kernel cannot tell which. */
static int gm_sys_zero_probed(uintptr_t p, size_t n)
{
    struct sysinfo si;
    bool swap = sysinfo(&si) != 0 || si.totalswap != 0 || GM_ZERO_FORCE_PAGEMAP;
    int fd = swap ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
    if (swap && fd < 0) return -1;
    size_t pages = (n + GM_OS_PAGE - 1) / GM_OS_PAGE;
    uintptr_t run = 0; /* start of the run of pages to write, 0 if none */
    bool flags[GM_PROBE_BATCH];
    for (size_t done = 0; done < pages;) {
        size_t k = pages - done < GM_PROBE_BATCH ? pages - done : GM_PROBE_BATCH;
        if (gm_sys_probe(p, done, k, swap, fd, flags) != 0) {
            /* From here on, write everything. */
            if (!run) run = p + done * GM_OS_PAGE;
            break;
        }
        for (size_t i = 0; i < k; i++) {
            uintptr_t page = p + (done + i) * GM_OS_PAGE;
            if (flags[i] && !run) run = page;
            if (!flags[i] && run) {
                memset((void *)run, 0, page - run);
                run = 0;
            }
        }
        done += k;
    }
    if (fd >= 0) close(fd);
    if (run) memset((void *)run, 0, p + n - run);
    return 0;
}

void gm_sys_zero(void *v, size_t n)
{
    uintptr_t p = (uintptr_t)v;
    if (n < GM_ZERO_PROBE_MIN || (p & (GM_OS_PAGE - 1))) {
        memset(v, 0, n);
        return;
    }
    int saved = errno;
    if (gm_sys_zero_probed(p, n) != 0) {
        size_t whole = n & ~(size_t)(GM_OS_PAGE - 1);
        if (madvise(v, whole, MADV_DONTNEED) != 0) whole = 0;
        memset((void *)(p + whole), 0, n - whole);
    }
    errno = saved;
}
