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
 * Invariants: every transition that changes what is committed adds or
 * subtracts exactly its bytes from the stat its caller names and from
 * gm_os.committed, and only when the system call succeeded; a failed call
 * changes nothing and returns -1 with errno set. Nothing here allocates.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
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
    /* Prepared and Ready are the same mapping on Linux; the huge-page policy
     * (scavenge.c) decides any advice. */
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

/* Huge-page policy (see scavenge.c): 1 = mark heap arenas MADV_NOHUGEPAGE. */
static _Atomic int gm_nohuge = -1;

static bool gm_sys_nohuge_wanted(void)
{
    int v = atomic_load_explicit(&gm_nohuge, memory_order_relaxed);
    if (v >= 0) return v;
    if (gm_opt.thp >= 0) {
        v = gm_opt.thp == 0;
    } else { /* auto: only where the kernel uses huge pages unasked */
        char buf[128];
        int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0) close(fd);
        buf[n > 0 ? n : 0] = 0;
        v = strstr(buf, "[always]") != NULL;
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
