/*
 * internal.h — the one internal header of gomalloc: constants, types and the
 * contracts between layers.
 *
 * Glossary (Go's names kept where the concept is the same):
 *   page        8 KiB, the unit of the page heap (Go's pageSize).
 *   chunk       512 pages = 4 MiB, the unit of the page allocator's bitmaps and
 *               of heap growth (Go's pallocChunkPages).
 *   arena       64 MiB of address space, 64 MiB aligned, reserved PROT_NONE and
 *               committed incrementally (Go's heapArena).
 *   curArena    the part of the newest reservation not yet handed to the page
 *               allocator (Go's mheap.curArena).
 *   span        a run of pages handed out by the heap: one large object, or a
 *               small-object span carved into objects of one size class (mspan).
 *   size class  one of Go's object sizes up to 32 KiB (sizeclasses.go), with
 *               the 8- and 24-byte classes dropped so every result is 16-byte
 *               aligned (C17 max_align_t).
 *   tcache      a thread's cache: one active span per class (Go's mcache).
 *   central     per-class lists of spans no thread owns (Go's mcentral).
 *   scavenge    return free pages to the OS (Go's scavenger).
 *
 * Layers, bottom up; a layer calls only layers below it:
 *   1 os.c         OS memory states and transitions, fault injection
 *   2 arena.c      arena reservation with hints, arena index, metadata
 *                  allocators (linear, persistent, fixed-size)
 *   3 pagealloc.c  Go's page allocator: bitmaps, summary radix tree, page cache
 *   4 heap.c       growth (curArena), spans, span lookup, heap statistics
 *   5 scavenge.c   returning memory (later issue)
 *   6 small.c      size classes, tcache, central lists, remote frees
 *   7 large objects and 8 the API: malloc.c
 *   9 stats.c      statistics and the slow consistency check
 */
#ifndef GM_INTERNAL_H
#define GM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "gomalloc.h"

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

static inline uintptr_t gm_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t gm_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }

/* ------------------------------------------------------------------------ */
/* Layer 1: OS memory (os.c)                                                */
/* ------------------------------------------------------------------------ */
/*
 * States: None (unmapped), Reserved (PROT_NONE, no commit charge), Prepared
 * (read-write, committed, maybe not resident), Ready (in use). Every
 * transition that changes what is committed updates the byte counter its
 * caller names (a gm_stat) and the global committed/reserved counters, so
 * the sum of all named counters is exactly what the heap has committed.
 * Every function returns 0 on success and -1 (errno set) on failure, and a
 * failed call leaves the range and the counters as they were.
 */
typedef _Atomic uint64_t gm_stat; /* bytes; Go's sysMemStat */

static inline void gm_stat_add(gm_stat *s, int64_t n)
{
    if (s) atomic_fetch_add_explicit(s, (uint64_t)n, memory_order_relaxed);
}
static inline uint64_t gm_stat_load(const gm_stat *s)
{
    return atomic_load_explicit((gm_stat *)s, memory_order_relaxed);
}

enum gm_sys_kind {
    GM_SYS_RESERVE,  /* mmap PROT_NONE */
    GM_SYS_MAP,      /* mprotect RW: Reserved -> Prepared */
    GM_SYS_UNUSED,   /* madvise DONTNEED: Ready -> Prepared */
    GM_SYS_DECOMMIT, /* mmap PROT_NONE|MAP_FIXED|MAP_NORESERVE: -> Reserved */
    GM_SYS_FREE,     /* munmap: -> None */
    GM_SYS_KINDS
};

struct gm_os_stats {
    gm_stat reserved;  /* bytes of address space held (any state but None) */
    gm_stat committed; /* bytes mapped read-write (Prepared or Ready) */
    _Atomic uint64_t calls[GM_SYS_KINDS];
    _Atomic uint64_t failures[GM_SYS_KINDS];
};
extern struct gm_os_stats gm_os GM_HIDDEN;

/* None -> Reserved. hint is only a hint; returns the address or NULL. */
void *gm_sys_reserve(void *hint, size_t n) GM_HIDDEN;
/* Reserve n bytes aligned to align (a power of two), trimming the slop. */
void *gm_sys_reserve_aligned(void *hint, size_t n, size_t align) GM_HIDDEN;
/* Reserved -> Prepared with mprotect(RW), so RLIMIT_DATA and strict
 * overcommit see it. Adds n to *stat and to gm_os.committed. */
int gm_sys_map(void *v, size_t n, gm_stat *stat) GM_HIDDEN;
/* Prepared -> Ready. Nothing to do on Linux (hook for huge-page policy). */
void gm_sys_used(void *v, size_t n) GM_HIDDEN;
/* Ready -> Prepared: madvise(MADV_DONTNEED); RSS drops, commit charge does
 * not. Counters unchanged (the caller accounts released bytes). */
int gm_sys_unused(void *v, size_t n) GM_HIDDEN;
/* Prepared -> Reserved: mmap(PROT_NONE, MAP_FIXED|MAP_NORESERVE) over the
 * range, which drops RSS, VmData and the mode-2 commit charge. Subtracts n
 * from *stat and gm_os.committed. */
int gm_sys_decommit(void *v, size_t n, gm_stat *stat) GM_HIDDEN;
/* Any -> None. committed_bytes of the range are subtracted from *stat. */
int gm_sys_free(void *v, size_t n, size_t committed_bytes, gm_stat *stat) GM_HIDDEN;
/* Number of lines of /proc/self/maps (the VMA count), read without
 * allocating; -1 if it cannot be read. */
long gm_sys_mapping_count(void) GM_HIDDEN;

#ifdef GM_TESTING
/* Fault injection (test build only): after `skip` more successful calls of
 * `kind`, the next `count` calls fail with ENOMEM. count 0 disarms. */
void gm_fault_set(enum gm_sys_kind kind, uint64_t skip, uint64_t count) GM_HIDDEN;
void gm_fault_clear(void) GM_HIDDEN;
#endif

/* ------------------------------------------------------------------------ */
/* Layer 2: arenas and metadata (arena.c)                                   */
/* ------------------------------------------------------------------------ */

/* Metadata statistics by kind ("metadata by kind"). Every committed byte of
 * metadata is in exactly one of these. */
struct gm_meta_stats {
    gm_stat arena_index; /* L2 pages of the arena index */
    gm_stat arenas;      /* struct gm_arena records */
    gm_stat pagealloc;   /* summaries and chunk bitmaps */
    gm_stat spans;       /* struct gm_span records */
    gm_stat tcaches;     /* thread caches */
    gm_stat other;       /* everything else, incl. persistent-allocator slack */
};
extern struct gm_meta_stats gm_meta GM_HIDDEN;

struct gm_span;

/* Go's heapArena: metadata of one 64 MiB arena, allocated off-heap. */
struct gm_arena {
    /* spans[i] is the span owning page i of this arena while that page is in
     * use; for free pages it is stale or NULL. Written under the heap lock,
     * read lock-free (entries are published with release stores). */
    struct gm_span *_Atomic spans[GM_PAGES_PER_ARENA];
};

/* The arena index: any address -> its gm_arena in O(1), NULL if not heap.
 * Two levels: a static L1 of pointers to 4 KiB L2 pages (512 arenas each),
 * L2 pages taken from the persistent allocator on demand. Lock-free. */
#define GM_ARENA_L2_BITS 9
#define GM_ARENA_L1_ENTRIES ((size_t)1 << (GM_ADDR_BITS - GM_ARENA_SHIFT - GM_ARENA_L2_BITS))
extern struct gm_arena *_Atomic *_Atomic gm_arena_l1[GM_ARENA_L1_ENTRIES] GM_HIDDEN;

static inline struct gm_arena *gm_arena_of(uintptr_t p)
{
    if (GM_UNLIKELY(p >= GM_ADDR_LIMIT)) return NULL;
    struct gm_arena *_Atomic *l2 =
        atomic_load_explicit(&gm_arena_l1[p >> (GM_ARENA_SHIFT + GM_ARENA_L2_BITS)], memory_order_acquire);
    if (GM_UNLIKELY(!l2)) return NULL;
    return atomic_load_explicit(&l2[(p >> GM_ARENA_SHIFT) & ((1u << GM_ARENA_L2_BITS) - 1)],
                                memory_order_acquire);
}

/* Go's (*mheap).sysAlloc: reserve at least n bytes (rounded up to whole
 * arenas) at the arena hints, falling back to anywhere when a hint is taken,
 * and create the arena records. Returns the Reserved region and its size
 * in *size, or NULL (nothing reserved, nothing counted). Heap lock held. */
void *gm_arena_alloc(size_t n, size_t *size) GM_HIDDEN;

/* Go's linearAlloc: a bump allocator over a reservation that maps memory as
 * it goes only if map_memory (the seed's switch). Caller locks. */
struct gm_linear {
    uintptr_t next;   /* next free byte */
    uintptr_t mapped; /* end of the mapped prefix */
    uintptr_t end;    /* end of the reservation */
    bool map_memory;
};
void gm_linear_init(struct gm_linear *l, uintptr_t base, size_t size, bool map_memory) GM_HIDDEN;
/* Returns NULL if the reservation is exhausted or mapping failed (then
 * nothing changed). Mapped bytes are charged to *stat. */
void *gm_linear_alloc(struct gm_linear *l, size_t size, size_t align, gm_stat *stat) GM_HIDDEN;

/* Go's persistentalloc: zeroed, never-freed metadata, thread-safe. Backed
 * by linear allocators over PROT_NONE reservations that commit as they go,
 * so metadata costs commit only as it is touched. size bytes are moved from
 * gm_meta.other (slack) to *stat. NULL on failure. */
void *gm_persistent_alloc(size_t size, size_t align, gm_stat *stat) GM_HIDDEN;

/* Go's fixalloc: a free list of fixed-size records carved from persistent
 * memory. Caller locks. Records are zeroed on allocation. */
struct gm_fixalloc {
    size_t size;
    gm_stat *stat;
    void *free_list;
    uintptr_t chunk; /* bump pointer in the current chunk */
    size_t nchunk;   /* bytes left in the current chunk */
    size_t inuse;    /* bytes handed out and not freed */
};
void gm_fixalloc_init(struct gm_fixalloc *f, size_t size, gm_stat *stat) GM_HIDDEN;
void *gm_fixalloc_alloc(struct gm_fixalloc *f) GM_HIDDEN;
void gm_fixalloc_free(struct gm_fixalloc *f, void *p) GM_HIDDEN;

/* A sparse array: one PROT_NONE reservation whose OS pages are committed on
 * first use, with a bitmap of which pages are committed. Used for the page
 * allocator's summary levels and chunk bitmaps. Caller locks. */
#define GM_SPARSE_L1 64
struct gm_sparse {
    uintptr_t base;
    size_t size;
    gm_stat *stat;
    uint64_t *mapped[GM_SPARSE_L1]; /* 4 KiB bitmap pages, 32768 OS pages each */
};
int gm_sparse_init(struct gm_sparse *s, size_t size, gm_stat *stat) GM_HIDDEN;
/* Commit every OS page covering [off, off+len); 0 or -1 (nothing half-done
 * is left counted: pages committed before a failure stay committed and
 * accounted, which is harmless). */
int gm_sparse_ensure(struct gm_sparse *s, size_t off, size_t len) GM_HIDDEN;
bool gm_sparse_is_mapped(const struct gm_sparse *s, size_t off) GM_HIDDEN;
void gm_sparse_destroy(struct gm_sparse *s) GM_HIDDEN; /* tests: unmap all */

/* ------------------------------------------------------------------------ */
/* Layer 3: page allocator (pagealloc.c)                                    */
/* ------------------------------------------------------------------------ */
/*
 * Go's pageAlloc. Per chunk, an allocation bitmap (1 = in use) and a
 * scavenged bitmap (1 = released to the OS; meaningful only for free
 * pages). A radix tree of packed summaries (start, max, end free run) over
 * the whole address space, five levels with 8 children per entry, each
 * level a sparse array mapped only where the heap is. Address-ordered first
 * fit with a search hint (searchAddr). All functions but the page cache's
 * own allocation are called with the owner's lock held (the heap lock).
 */
#define GM_SUMMARY_LEVELS 5
#define GM_SUMMARY_LEVEL_BITS 3
#define GM_SUMMARY_L0_BITS (GM_ADDR_BITS - GM_CHUNK_SHIFT - (GM_SUMMARY_LEVELS - 1) * GM_SUMMARY_LEVEL_BITS)

typedef uint64_t gm_pallocsum; /* start | max << 21 | end << 42, bit 63 = all free */

struct gm_pallocbits {
    uint64_t w[GM_CHUNK_PAGES / 64];
};
struct gm_pallocdata {
    struct gm_pallocbits alloc; /* 1 = in use */
    struct gm_pallocbits scav;  /* 1 = scavenged (free pages only) */
};

/* Sorted, coalesced list of address ranges in use by the allocator (chunk
 * granular), Go's addrRanges. Backing array from persistent memory. */
struct gm_addr_range {
    uintptr_t base, limit;
};
struct gm_addr_ranges {
    struct gm_addr_range *ranges;
    size_t len, cap;
    size_t total_bytes;
};

struct gm_pagealloc {
    struct gm_sparse summary[GM_SUMMARY_LEVELS]; /* gm_pallocsum arrays */
    struct gm_sparse chunks;                     /* gm_pallocdata per chunk index */
    size_t start, end;       /* chunk index range ever grown: [start, end) */
    uintptr_t search_addr;   /* no free page below it; GM_SEARCH_NONE = full */
    struct gm_addr_ranges in_use;
    gm_stat *meta_stat;      /* metadata mapped for this allocator */
    /* Scavenger state and statistics live here too (later issue). */
    size_t free_pages;       /* free pages in the bitmaps (not in caches) */
    size_t scav_pages;       /* free pages whose scavenged bit is set */
};
#define GM_SEARCH_NONE (~(uintptr_t)0)

/* Reserve the summary levels and chunk array; nothing is committed yet. */
int gm_pagealloc_init(struct gm_pagealloc *pa, gm_stat *meta_stat) GM_HIDDEN;
void gm_pagealloc_destroy(struct gm_pagealloc *pa) GM_HIDDEN; /* tests */
/* Add [base, base+size) (page aligned) as free, scavenged pages. Chunks the
 * range touches for the first time get their metadata committed, and their
 * pages outside the range are marked in use (not yet grown). -1 if
 * metadata could not be committed (then nothing changed). */
int gm_pagealloc_grow(struct gm_pagealloc *pa, uintptr_t base, size_t size) GM_HIDDEN;
/* First fit. Returns the base or 0; *scav = bytes of the run that were
 * scavenged (the caller must make them Ready and fix the statistics). */
uintptr_t gm_pagealloc_alloc(struct gm_pagealloc *pa, size_t npages, size_t *scav) GM_HIDDEN;
void gm_pagealloc_free(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* Mark [base, base+npages) free and scavenged (used by growth steps and the
 * scavenger). */
void gm_pagealloc_free_scavenged(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* Mark an exact range allocated whatever its state; returns scavenged
 * bytes. Used by tests and by the heap for in-place realloc growth. */
size_t gm_pagealloc_alloc_range(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* Number of free pages starting at base (up to max), for in-place growth. */
size_t gm_pagealloc_free_run_at(struct gm_pagealloc *pa, uintptr_t base, size_t max) GM_HIDDEN;
struct gm_pallocdata *gm_pagealloc_chunk(struct gm_pagealloc *pa, size_t ci) GM_HIDDEN; /* NULL if not grown */
gm_pallocsum gm_pagealloc_summary(struct gm_pagealloc *pa, int level, size_t idx) GM_HIDDEN;

/* Summary packing. */
static inline gm_pallocsum gm_pack_sum(unsigned start, unsigned max, unsigned end)
{
    const unsigned maxv = 1u << 21; /* a fully free root entry */
    if (max == maxv) return (gm_pallocsum)1 << 63;
    return (gm_pallocsum)start | (gm_pallocsum)max << 21 | (gm_pallocsum)end << 42;
}
static inline unsigned gm_sum_start(gm_pallocsum s) { return s >> 63 ? 1u << 21 : (unsigned)(s & 0x1fffff); }
static inline unsigned gm_sum_max(gm_pallocsum s) { return s >> 63 ? 1u << 21 : (unsigned)((s >> 21) & 0x1fffff); }
static inline unsigned gm_sum_end(gm_pallocsum s) { return s >> 63 ? 1u << 21 : (unsigned)((s >> 42) & 0x1fffff); }

/* Bitmap primitives (exported for table tests). */
gm_pallocsum gm_pallocbits_summarize(const struct gm_pallocbits *b) GM_HIDDEN;
/* First run of npages free bits at or after search_idx: returns its index
 * or ~0u, and *new_search = first free bit seen (or ~0u). */
unsigned gm_pallocbits_find(const struct gm_pallocbits *b, unsigned npages, unsigned search_idx,
                            unsigned *new_search) GM_HIDDEN;
unsigned gm_find_bit_range64(uint64_t ones, unsigned n) GM_HIDDEN; /* 64 = none */

/* Go's pageCache: a 64-page aligned window taken from the page allocator
 * under the lock, then used by one thread without it. */
struct gm_pagecache {
    uintptr_t base;  /* 0 = empty */
    uint64_t cache;  /* 1 = free page */
    uint64_t scav;   /* 1 = scavenged */
};
struct gm_pagecache gm_pagealloc_alloc_to_cache(struct gm_pagealloc *pa) GM_HIDDEN;
uintptr_t gm_pagecache_alloc(struct gm_pagecache *c, size_t npages, size_t *scav) GM_HIDDEN;
void gm_pagecache_flush(struct gm_pagecache *c, struct gm_pagealloc *pa) GM_HIDDEN;
static inline bool gm_pagecache_empty(const struct gm_pagecache *c) { return c->cache == 0; }
#define GM_PAGECACHE_PAGES 64
#define GM_PAGECACHE_MAX_SPAN 16 /* spans of fewer pages use the cache */

#endif /* GM_INTERNAL_H */
