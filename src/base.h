/*
 * base.h — what every layer of gomalloc shares: the geometry, byte
 * counters, text built without allocating, the one fatal printer, and the
 * lock order. Layer 0: it includes no other header of gomalloc but the
 * public one.
 *
 * The layers, bottom up. Each has a header, which includes only the header
 * of the layer below it, so that a call upward does not compile
 * (tests/layers.sh checks every #include against this table):
 *   0 base.h       base.c                 this file
 *     options.h    options.c              GOMALLOC_* variables, one table
 *   1 os.h         os.c                   memory states and system calls,
 *                                         /proc readers, helper threads
 *   2 arena.h      arena.c, sparse.c      arenas, the arena index, metadata
 *                                         allocators (Go's sysAlloc,
 *                                         linearAlloc, persistentalloc,
 *                                         fixalloc)
 *     pallocbits.h pallocbits.c           a chunk's bitmap, summaries
 *   3 pagealloc.h  pagealloc.c,           Go's page allocator; its
 *                  scavindex.c            scavenge index
 *   4 heap.h       heap.c, heap_release.c growth, spans, span caches, the
 *                                         memory limit; decommitted ranges
 *                                         and the release primitives
 *   5 scavenge.h   scavenge.c             when memory goes back; the helper
 *                                         thread
 *   6 span.h       sizeclass.c, span.c    size classes; a small span's
 *                                         objects: carving, collecting,
 *                                         validity, remote frees
 *     profile.h    profile.c,             the heap profile: sampled blocks,
 *                  profile_write.c        stacks, buckets; the text pprof
 *                                         reads, its file and signal
 *   7 tcache.h     tcache.c, central.c    thread caches, central lists and
 *                                         batches, reclaim; the inline fast
 *                                         paths of small objects
 *   8 api.h        large.c, checked.c,    large objects, checked mode, the
 *                  api.c                  API's bodies and fast paths
 *   9 stats.h      stats.c, trace.c       statistics, gm_check, reports,
 *                                         the memory timeline
 *  10 (top)        init.c, override.c     process set-up, fork handlers,
 *                                         the exit report; the standard
 *                                         names
 * internal.h includes them all, for the tests. Where a lower layer must
 * act on something above it, the upper layer registers a hook, one per
 * need: the heap tells the scavenger that it grew or freed pages
 * (gm_heap_set_hooks), and the scavenger trims the tcache layer's central
 * lists and spare spans through the hooks that layer gives it
 * (gm_scav_set_hooks); the heap keeps its own list of the threads' span
 * caches (gm_heap_local_register), so it needs no tcache to drain them.
 *
 * Glossary. Go's terms, kept where the concept is Go's:
 *   page        8 KiB, the unit of the page heap (pageSize).
 *   chunk       512 pages = 4 MiB, the unit of the page allocator's bitmaps
 *               and of heap growth (pallocChunkPages).
 *   arena       64 MiB of address space, 64 MiB aligned: the unit of the
 *               arena index and its records (heapArena). The heap reserves
 *               a whole arena at a time, or less under RLIMIT_AS.
 *   curArena    what is left of the newest reservation, not yet handed to
 *               the page allocator.
 *   span        a run of pages handed out by the heap: one large object, or
 *               a small-object span carved into objects of one size class.
 *   size class  one of Go's object sizes up to 32 KiB, without the 8- and
 *               24-byte classes, so every result is 16-byte aligned.
 *   tcache      a thread's cache (mcache); central: per-class lists of spans
 *               no thread owns (mcentral); scavenge: return free pages to
 *               the OS.
 * gomalloc's own:
 *   dirty       free pages not yet released: what scavenging can return.
 *   released    free pages given back with madvise(MADV_DONTNEED): no RSS,
 *               still committed.
 *   decommitted heap ranges mapped PROT_NONE again (strict-commit mode and
 *               memory limits): no commit charge, address space kept.
 *   stash       a thread's few span records and 64-page window taken from
 *               the heap at once, to make small spans without its lock.
 *   span cache  a thread's recently freed large spans (up to 256 KiB), kept
 *               whole for its next large objects.
 *   spare       a thread's emptied span of a class, kept a while for the
 *               class's next refill instead of going back to the heap.
 *   batch       a thread's objects of a shared class (above 4 KiB), taken
 *               from central spans a few at a time; the fast path sees it
 *               as a span.
 *   NOTIFY, BUSY, ORPHAN
 *               what a span's remote-free word tells the first remote freer
 *               (span.h): tell the owner that a full span has room, someone
 *               is telling it now, or the span has no owner and must be put
 *               in central.
 *   sample      an allocation the heap profile recorded (profile.c): its
 *               stack's bucket counts it, its span counts it in
 *               prof_samples, and its free is counted against the bucket.
 *   helper      a thread gomalloc starts (the background scavenger, the
 *               trace sampler): every signal blocked, gone with the
 *               program's threads.
 *
 * The lock order, outermost first; the fork handlers (init.c) take the
 * locks in this order and no other, and a GM_DEBUG build checks every
 * acquisition against it (gm_lock):
 *   GM_RANK_TRACE      the trace file (trace.c, its own fork handlers,
 *                      registered after init.c's, so they run first)
 *   GM_RANK_PROFILE    the heap profile's buckets and sampled set
 *                      (profile.c); taken with no other lock held, and
 *                      only the persistent allocator's under it
 *   GM_RANK_SCAV       scavenging passes, gm_check (scavenge.c)
 *   GM_RANK_BUSY       the BUSY windows of remote frees (span.c, a rwlock)
 *   GM_RANK_TCACHES    the tcache registry (tcache.c)
 *   GM_RANK_CENTRAL+c  central list of class c, in class order (central.c)
 *   GM_RANK_HEAP       the heap (heap.c)
 *   GM_RANK_ARENAS     arena hints and index writes (arena.c)
 *   GM_RANK_PERSISTENT the persistent metadata allocator (arena.c)
 * and leaves, under which nothing is taken, reinitialized in a fork child
 * rather than held across the fork: GM_RANK_BG (the scavenger thread's
 * sleep) and GM_RANK_THREADS (os.c's list of threads that are not the
 * program's). A trylock is never a deadlock and is not checked.
 */
#ifndef GM_BASE_H
#define GM_BASE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gomalloc.h"
#include "valgrind_hooks.h"

#define GM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GM_HIDDEN __attribute__((visibility("hidden")))

/* ------------------------------------------------------------------------ */
/* Geometry                                                                 */
/* ------------------------------------------------------------------------ */

#define GM_PAGE_SHIFT 13
#define GM_PAGE_SIZE ((uintptr_t)1 << GM_PAGE_SHIFT) /* 8 KiB */
#define GM_OS_PAGE 4096                              /* x86-64 / arm64 4K */

#define GM_CHUNK_PAGES 512
#define GM_CHUNK_SHIFT 22
#define GM_CHUNK_BYTES ((uintptr_t)1 << GM_CHUNK_SHIFT) /* 4 MiB */

#define GM_ARENA_SHIFT 26
#define GM_ARENA_BYTES ((uintptr_t)1 << GM_ARENA_SHIFT) /* 64 MiB */
#define GM_PAGES_PER_ARENA (GM_ARENA_BYTES / GM_PAGE_SIZE) /* 8192 */

/* User address space on Linux x86-64 / arm64 with 4-level page tables. */
#define GM_ADDR_BITS 47
#define GM_ADDR_LIMIT ((uintptr_t)1 << GM_ADDR_BITS)
#define GM_MAX_CHUNKS ((uintptr_t)1 << (GM_ADDR_BITS - GM_CHUNK_SHIFT)) /* 2^25 */

#define GM_CACHE_LINE 64

_Static_assert(GM_CHUNK_BYTES == GM_CHUNK_PAGES * GM_PAGE_SIZE, "a chunk is 512 pages");
_Static_assert(GM_CHUNK_PAGES % 64 == 0, "a chunk's bitmaps are whole words");
_Static_assert(GM_ARENA_BYTES % GM_CHUNK_BYTES == 0, "an arena is whole chunks");
_Static_assert(GM_PAGE_SIZE % GM_OS_PAGE == 0, "a page is whole OS pages");

static inline uintptr_t gm_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t gm_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */
/* ------------------------------------------------------------------------ */

/* Bytes of memory in some state (Go's sysMemStat): any thread adds. */
typedef _Atomic uint64_t gm_stat;

static inline void gm_stat_add(gm_stat *s, int64_t n)
{
    if (s) atomic_fetch_add_explicit(s, (uint64_t)n, memory_order_relaxed);
}
static inline uint64_t gm_stat_load(const gm_stat *s)
{
    return atomic_load_explicit((gm_stat *)s, memory_order_relaxed);
}

/* A counter with one writer (the owner of a tcache, the holder of a lock)
 * that others read: a plain load and store, no read-modify-write, relaxed
 * atomics only so that the readers see whole values. */
static inline void gm_counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void gm_count_inc(_Atomic uint64_t *c) { gm_counter_add(c, 1); }

/* ------------------------------------------------------------------------ */
/* Text without allocating (base.c)                                         */
/* ------------------------------------------------------------------------ */

/* Text built in a caller's buffer, without stdio or allocation, for what
 * goes out with write(2). Output past cap is dropped. */
struct gm_buf {
    char *p;
    size_t n, cap;
};
void gm_bputc(struct gm_buf *b, char c) GM_HIDDEN;
void gm_bputs(struct gm_buf *b, const char *s) GM_HIDDEN;
/* v in decimal, right-aligned in width columns (0: no padding). */
void gm_bputu(struct gm_buf *b, uint64_t v, unsigned width) GM_HIDDEN;
void gm_bputi(struct gm_buf *b, int64_t v) GM_HIDDEN; /* signed, no padding */
void gm_bputx(struct gm_buf *b, uintptr_t v) GM_HIDDEN; /* 0x and hex digits */
/* write(2) all of it, retrying on EINTR; gives up on other errors. */
void gm_write_all(int fd, const char *p, size_t n) GM_HIDDEN;
/* A decimal number at p: its value, with *end after its digits; *end == p
 * if there is none, and *end is NULL on overflow. */
uint64_t gm_parse_u64(const char *p, const char **end) GM_HIDDEN;

/* The end of a slow path that allocates (api.c's top comment on errno):
 * errno back to saved, the caller's, if p is a result, else ENOMEM. */
static inline void *gm_errno_result(void *p, int saved)
{
    errno = p ? saved : ENOMEM;
    return p;
}

/* Never returns: prints "gomalloc: <what>: <ptr>" (or, with p NULL,
 * "gomalloc: <what>") as one line on stderr and aborts. Every fatal
 * message of gomalloc goes through it. */
_Noreturn void gm_fatal(const char *what, const void *p) GM_HIDDEN;

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */
/* ------------------------------------------------------------------------ */

enum gm_lock_rank {
    GM_RANK_TRACE = 1,
    GM_RANK_PROFILE,
    GM_RANK_SCAV,
    GM_RANK_BUSY,
    GM_RANK_TCACHES,
    GM_RANK_CENTRAL, /* + size class */
    GM_RANK_HEAP = GM_RANK_CENTRAL + GM_NUM_CLASSES,
    GM_RANK_ARENAS,
    GM_RANK_PERSISTENT,
    GM_RANK_BG,      /* leaves */
    GM_RANK_THREADS,
};

#ifdef GM_DEBUG
/* Debug build: record that the calling thread holds a lock of this rank,
 * after checking (ordered) that it holds none of a rank as high (aborting
 * with both ranks if it does); and forget it. */
void gm_rank_acquire(int rank, bool ordered) GM_HIDDEN;
void gm_rank_release(int rank) GM_HIDDEN;
/* A fork child's thread holds none of the locks it took in the parent:
 * they were reinitialized. */
void gm_rank_fork_child(void) GM_HIDDEN;
/* Invariants only stated elsewhere: checked in the debug build. */
#define GM_ASSERT(cond) ((cond) ? (void)0 : gm_fatal("assertion failed: " #cond, NULL))
#else
static inline void gm_rank_acquire(int rank, bool ordered) { (void)rank, (void)ordered; }
static inline void gm_rank_release(int rank) { (void)rank; }
static inline void gm_rank_fork_child(void) {}
#define GM_ASSERT(cond) ((void)0)
#endif

static inline void gm_lock(pthread_mutex_t *m, int rank)
{
    gm_rank_acquire(rank, true);
    pthread_mutex_lock(m);
}
static inline bool gm_trylock(pthread_mutex_t *m, int rank)
{
    if (pthread_mutex_trylock(m) != 0) return false;
    gm_rank_acquire(rank, false);
    return true;
}
static inline void gm_unlock(pthread_mutex_t *m, int rank)
{
    pthread_mutex_unlock(m);
    gm_rank_release(rank);
}

#endif /* GM_BASE_H */
