/*
 * internal.h — the one internal header of gomalloc: constants, types and the
 * contracts between layers.
 *
 * Glossary (Go's names kept where the concept is the same):
 *   page        8 KiB, the unit of the page heap (Go's pageSize).
 *   chunk       512 pages = 4 MiB, the unit of the page allocator's bitmaps and
 *               of heap growth (Go's pallocChunkPages).
 *   arena       64 MiB of address space, 64 MiB aligned: the unit of the arena
 *               index and its records (Go's heapArena). The heap reserves
 *               PROT_NONE a whole arena at a time, or less under RLIMIT_AS,
 *               and commits incrementally.
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
 *   5 scavenge.c   returning memory: decay, strict-commit decommit, the
 *                  memory limit, the background scavenger
 *   6 small.c      size classes, tcache, central lists, remote frees;
 *                  objects above 4 KiB from shared spans through batches
 *   7 large objects and 8 the API: malloc.c
 *   9 stats.c      statistics and the slow consistency check;
 *     trace.c      the memory timeline (GOMALLOC_TRACE)
 * Beside the layers, options.c (options.h) reads the GOMALLOC_* variables
 * into gm_opt, which every layer may read.
 */
#ifndef GM_INTERNAL_H
#define GM_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include "gomalloc.h"
#include "valgrind_hooks.h"

#define GM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GM_HIDDEN __attribute__((visibility("hidden")))

#include "options.h" /* the options' table and gm_opt (options.c) */

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
    GM_SYS_DECOMMIT, /* mmap PROT_NONE|MAP_FIXED: -> Reserved */
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
/* Prepared -> Reserved: mmap(PROT_NONE, MAP_FIXED) over the
 * range, which drops RSS, VmData and the mode-2 commit charge. Subtracts n
 * from *stat and gm_os.committed. */
int gm_sys_decommit(void *v, size_t n, gm_stat *stat) GM_HIDDEN;
/* Heap address space only: apply the huge-page policy (MADV_NOHUGEPAGE
 * where the kernel would back the heap with huge pages unasked, or with
 * GOMALLOC_THP=0); called on each arena reservation, and by gm_sys_decommit
 * on the range it remaps, so that the heap keeps one flag and its mappings
 * still merge. */
void gm_sys_nohuge(void *v, size_t n) GM_HIDDEN;
/* Any -> None. committed_bytes of the range are subtracted from *stat. */
int gm_sys_free(void *v, size_t n, size_t committed_bytes, gm_stat *stat) GM_HIDDEN;
/* Number of lines of /proc/self/maps (the VMA count), read without
 * allocating; -1 if it cannot be read. */
long gm_sys_mapping_count(void) GM_HIDDEN;
/* The soft RLIMIT_AS in force, read anew at each call (a program may change
 * it at any time), or UINT64_MAX if there is none. Reservations that may be
 * large ask it to size themselves. */
uint64_t gm_sys_as_limit(void) GM_HIDDEN;

/* The first cap - 1 bytes of a file into buf, NUL-terminated: its length,
 * or -1. errno is left as it was either way (a missing /proc or cgroup file
 * is an answer, not an error the program should see). */
ssize_t gm_sys_read_file(const char *path, char *buf, size_t cap) GM_HIDDEN;
/* Threads of the program: those /proc/self/task lists, less the ones
 * disowned (our helpers, which disown themselves as they start, and threads
 * past the allocator's exit hook, which call gm_sys_thread_disown). -1 if
 * /proc cannot tell. The fork child's handler forgets every entry. */
void gm_sys_thread_disown(void) GM_HIDDEN;
long gm_sys_program_threads(void) GM_HIDDEN;
void gm_sys_threads_fork_child(void) GM_HIDDEN;

/* Make [v, v + n) of the heap read as zero, writing only the pages that may
 * hold data (os.c explains how it knows). Keeps errno. */
void gm_sys_zero(void *v, size_t n) GM_HIDDEN;
#ifdef GM_TESTING
extern bool gm_zero_force_pagemap GM_HIDDEN; /* probe as where there is swap */
#endif

/* Helper threads (the background scavenger, the trace sampler): started
 * joinable, with every signal blocked so that no handler of the program
 * ever runs on them, on a small stack (a default 8 MiB one would show in
 * VmData), named for ps and gdb. gm_sys_helpers counts those started and
 * not yet joined. Both keep errno. gm_sys_spawn returns 0 or an error
 * number; gm_sys_join may be called from a thread that is exiting. */
#define GM_SYS_HELPER_STACK ((size_t)64 << 10)
extern _Atomic int gm_sys_helpers GM_HIDDEN;
int gm_sys_spawn(pthread_t *t, void *(*fn)(void *), const char *name) GM_HIDDEN;
void gm_sys_join(pthread_t t) GM_HIDDEN;

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

/* The flat span table: the records of the arenas in [GM_FLAT_BASE,
 * GM_FLAT_BASE + gm_flat_bytes) lie end to end in one reservation, so that
 * their spans[] form one array indexed by page from GM_FLAT_BASE: a span
 * lookup there is one load instead of three. GM_FLAT_BASE is the first
 * arena hint, the range successive reservations usually extend; arenas
 * elsewhere (or past the table's gm_flat_arenas) are found through the
 * index only. gm_flat_bytes only grows, published with a release store
 * after the records it covers. */
#define GM_FLAT_BASE ((uintptr_t)0x00c0 << 32)
#define GM_FLAT_MAX_ARENAS 512 /* 32 GiB of heap: a 32 MiB reservation */
extern struct gm_span *_Atomic *gm_flat_spans GM_HIDDEN;
extern _Atomic uintptr_t gm_flat_bytes GM_HIDDEN;
/* The table's capacity in arenas, set when it is reserved (at the first
 * reservation at GM_FLAT_BASE): GM_FLAT_MAX_ARENAS, or under RLIMIT_AS
 * enough for a heap as large as the limit. */
extern size_t gm_flat_arenas GM_HIDDEN;

/* Go's (*mheap).sysAlloc: reserve address space for a growth of at least
 * n bytes at the arena hints (falling back to anywhere when a hint is
 * taken) and give the arenas it touches their records. Without RLIMIT_AS,
 * whole arenas, aligned; under it, or when the OS refuses that, smaller
 * pieces (gm_arena_piece in arena.c), down to n rounded to pages. A
 * reservation may cover part of an arena and share its record with
 * another. Returns the Reserved region (page aligned) and its size in
 * *size, or NULL (nothing reserved, nothing counted). Heap lock held. */
void *gm_arena_alloc(size_t n, size_t *size) GM_HIDDEN;
/* Tests: the address the next gm_arena_alloc tries first (0 if no hint). */
uintptr_t gm_arena_next_hint(void) GM_HIDDEN;

/* Go's linearAlloc: a bump allocator over a reservation that maps memory as
 * it goes only if map_memory (the seed's switch). Caller locks. */
struct gm_linear {
    uintptr_t next;   /* next free byte */
    uintptr_t mapped; /* end of the mapped prefix */
    uintptr_t end;    /* end of the reservation */
    bool map_memory;
    size_t map_step;  /* map in multiples of this (0: OS page); set after init */
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
 * first use, with a bitmap of which pages are committed (one bit per OS
 * page) in storage its owner provides, or in the array's own first page.
 * Used for the page allocator's root summaries and its regions
 * (pagealloc.c). Caller locks. A struct gm_sparse is a view: it may be
 * rebuilt from the reservation's address whenever its owner needs one. */
struct gm_sparse {
    uintptr_t base;
    size_t size;   /* bytes, a multiple of GM_OS_PAGE */
    uint64_t *map; /* bit i: OS page i is committed */
    gm_stat *stat; /* charged with every committed byte */
};
/* Reserve size bytes. With map NULL, the bitmap is the array's first
 * bytes, and the first head bytes are committed at once (they must hold
 * it); else map must be zero and head 0. -1 with nothing reserved or
 * counted if the OS refuses. */
int gm_sparse_init(struct gm_sparse *s, size_t size, uint64_t *map, size_t head, gm_stat *stat) GM_HIDDEN;
/* Commit every OS page covering [off, off+len); 0 or -1 (nothing half-done
 * is left counted: pages committed before a failure stay committed and
 * accounted, which is harmless). */
int gm_sparse_ensure(struct gm_sparse *s, size_t off, size_t len) GM_HIDDEN;
bool gm_sparse_is_mapped(const struct gm_sparse *s, size_t off) GM_HIDDEN;
/* Bytes committed, by the bitmap. */
size_t gm_sparse_committed(const struct gm_sparse *s) GM_HIDDEN;
void gm_sparse_destroy(struct gm_sparse *s) GM_HIDDEN; /* unmap all, uncount */

/* ------------------------------------------------------------------------ */
/* Layer 3: page allocator (pagealloc.c)                                    */
/* ------------------------------------------------------------------------ */
/*
 * Go's pageAlloc. Per chunk, an allocation bitmap (1 = in use) and a
 * scavenged bitmap (1 = released to the OS; meaningful only for free
 * pages). A radix tree of packed summaries (start, max, end free run) over
 * the whole address space, five levels with 8 children per entry. The root
 * level is one sparse array; everything kept per chunk below it lives in
 * regions of 64 GiB of address space, one sparse array each, created when
 * the heap first grows into the region and found through a directory (see
 * pagealloc.c). Address-ordered first fit with a search hint (searchAddr).
 * All functions but the page cache's own allocation are called with the
 * owner's lock held (the heap lock).
 */
#define GM_SUMMARY_LEVELS 5
#define GM_SUMMARY_LEVEL_BITS 3
#define GM_SUMMARY_L0_BITS (GM_ADDR_BITS - GM_CHUNK_SHIFT - (GM_SUMMARY_LEVELS - 1) * GM_SUMMARY_LEVEL_BITS)
#define GM_ROOT_BYTES (((size_t)8) << GM_SUMMARY_L0_BITS) /* 64 KiB of root summaries */

/* Regions of the page allocator's metadata: 2^36 bytes (16384 chunks) of
 * address space each, 2048 in the 47-bit space. */
#define GM_REGION_SHIFT 36
#define GM_REGIONS ((size_t)1 << (GM_ADDR_BITS - GM_REGION_SHIFT))
#define GM_REGION_CHUNKS ((size_t)1 << (GM_REGION_SHIFT - GM_CHUNK_SHIFT))

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

/* The scavenger's view of one chunk (Go's scavChunkData). "Dirty" pages are
 * free and not scavenged: what the scavenger can give back. */
struct gm_scavchunk {
    uint32_t stamp;  /* pa->now when dirty pages last appeared here */
    uint16_t dirty;  /* free, unscavenged pages of the chunk */
    uint16_t flags;  /* GM_SCAV_STAMPED: stamp is meaningful */
};
#define GM_SCAV_STAMPED 1
/* One word of the chunk-index bitmaps: bit i is about chunk 64k + i. */
struct gm_chunkbits {
    uint64_t dirty; /* the chunk has dirty pages */
    uint64_t free;  /* all 512 pages of the chunk are free */
};
/* A downward search's resume point: while valid, no chunk at or above top
 * is a candidate for older_than (nor for any time before it). */
struct gm_scav_cursor {
    size_t top;
    uint32_t older_than;
    bool valid;
};
/* Go's scavengeIndex: which chunks have pages to give back, and since when.
 * Its records (gm_scavchunk per chunk, gm_chunkbits per 64 chunks) live in
 * the regions. */
struct gm_scavindex {
    struct gm_scav_cursor dirty_cursor, free_cursor;
    uint64_t passed_over;    /* young candidates searches stepped over */
};

struct gm_pagealloc {
    /* dir[r]: the base of region r's sparse array, 0 until the heap grows
     * into r. Written once, under the owner's lock like every other field. */
    uintptr_t dir[GM_REGIONS];
    uintptr_t root;          /* level 0 summaries: a sparse array's base */
    uint64_t root_map[(GM_ROOT_BYTES / GM_OS_PAGE + 63) / 64]; /* and its bitmap */
    size_t start, end;       /* chunk index range ever grown: [start, end) */
    uintptr_t search_addr;   /* no free page below it; GM_SEARCH_NONE = full */
    struct gm_addr_ranges in_use;
    gm_stat *meta_stat;      /* metadata mapped for this allocator */
    size_t free_pages;       /* free pages in the bitmaps (not in caches) */
    size_t scav_pages;       /* free pages whose scavenged bit is set */
    /* The owner's coarse clock (milliseconds in practice), set by the owner:
     * non-decreasing, may wrap. Dirty frees stamp their chunks with it. */
    uint32_t now;
    struct gm_scavindex scav;
};
#define GM_SEARCH_NONE (~(uintptr_t)0)

/* Reserve the root summaries; nothing is committed yet. -1 if the OS
 * refuses (nothing reserved). */
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
/* Mark pages free and dirty (not scavenged); stamps their chunks with now. */
void gm_pagealloc_free(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* Mark [base, base+npages) free and scavenged (used by growth steps and the
 * scavenger); no stamp, as nothing is left dirty. */
void gm_pagealloc_free_scavenged(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* Mark an exact range allocated whatever its state; returns scavenged
 * bytes. Used by tests and by the heap for in-place realloc growth. */
size_t gm_pagealloc_alloc_range(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* Number of free pages starting at base (up to max), for in-place growth. */
size_t gm_pagealloc_free_run_at(struct gm_pagealloc *pa, uintptr_t base, size_t max) GM_HIDDEN;
struct gm_pallocdata *gm_pagealloc_chunk(struct gm_pagealloc *pa, size_t ci) GM_HIDDEN; /* NULL if not grown */
gm_pallocsum gm_pagealloc_summary(struct gm_pagealloc *pa, int level, size_t idx) GM_HIDDEN;
/* Tests: after bitmaps were written directly (gm_pagealloc_chunk), recompute
 * every summary over in_use, free_pages and scav_pages, the scavenge index
 * (dirty counts and both chunk bitmaps; stamps are kept, cursors dropped),
 * and set search_addr to the base of the lowest in_use range. */
void gm_pagealloc_recompute(struct gm_pagealloc *pa) GM_HIDDEN;

/* The scavenger's primitives, below. "Old for t": the chunk's dirty pages
 * last appeared at or before t, i.e. (int32_t)(stamp - t) <= 0 (exactly:
 * its age now - stamp is at least now - t, so stamps stay right up to
 * 2^32 - 1 units old), or it never had any. t must not be after pa->now;
 * t = pa->now means any chunk.
 *
 * Take the highest run, at most max_pages long, of dirty pages of the
 * highest chunk that has dirty pages and is old for older_than: the pages
 * are marked in use (scav bits untouched) and returned with *npages; 0 if
 * there is none. The caller releases them, then gives them back with
 * gm_pagealloc_free_scavenged. Amortized O(1) over calls with the same
 * older_than; see pagealloc.c. */
uintptr_t gm_pagealloc_scavenge_take(struct gm_pagealloc *pa, size_t max_pages, uint32_t older_than,
                                     size_t *npages) GM_HIDDEN;
/* Take the highest chunk whose 512 pages are all free and that is old for
 * older_than: the whole chunk is marked in use, *scav_pages = how many of
 * its pages were scavenged; returns its base, or 0. Given back (after being
 * decommitted and recommitted) with gm_pagealloc_free_scavenged(base, 512). */
uintptr_t gm_pagealloc_take_free_chunk(struct gm_pagealloc *pa, uint32_t older_than,
                                       size_t *scav_pages) GM_HIDDEN;
/* Take the free run that starts at addr and goes up (up), or ends at addr
 * and goes down, within one chunk that is old for older_than: marked in
 * use, *npages long, *scav_pages of them scavenged. Returns its base, or 0
 * if the page beside addr is not free. */
uintptr_t gm_pagealloc_take_beside(struct gm_pagealloc *pa, uintptr_t addr, bool up, uint32_t older_than,
                                   size_t *npages, size_t *scav_pages) GM_HIDDEN;
/* Free pages not scavenged (what the scavenger could release), O(1). */
static inline size_t gm_pagealloc_scavengeable_pages(const struct gm_pagealloc *pa)
{
    return __atomic_load_n(&pa->free_pages, __ATOMIC_RELAXED) - __atomic_load_n(&pa->scav_pages, __ATOMIC_RELAXED);
}
/* Tests: chunk ci's scavenge record (NULL if not grown) and its bits in the
 * chunk-index bitmaps (0 where the bitmap is not mapped). */
struct gm_scavchunk *gm_pagealloc_scavchunk(struct gm_pagealloc *pa, size_t ci) GM_HIDDEN;
bool gm_pagealloc_index_bit(struct gm_pagealloc *pa, size_t ci, bool free_bitmap) GM_HIDDEN;
/* Tests: the address space one region's sparse array reserves. */
size_t gm_pagealloc_region_bytes(void) GM_HIDDEN;

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
/* Give the cached free pages back; the chunk is stamped if any are dirty. */
void gm_pagecache_flush(struct gm_pagecache *c, struct gm_pagealloc *pa) GM_HIDDEN;
static inline bool gm_pagecache_empty(const struct gm_pagecache *c) { return c->cache == 0; }
#define GM_PAGECACHE_PAGES 64
#define GM_PAGECACHE_MAX_SPAN 16 /* spans of fewer pages use the cache */


/* ------------------------------------------------------------------------ */
/* Layer 6a: size classes (sizeclass.c)                                     */
/* ------------------------------------------------------------------------ */
/*
 * Go's size classes up to 32 KiB (sizeclasses.go) without Go's 8- and
 * 24-byte classes: every class is a multiple of 16, so every small result
 * is aligned for max_align_t, and every object has room for a free-list
 * link and a freed-object marker. Class 0 means "large" (a span of its own).
 */
#define GM_MAX_SMALL 32768
/* GM_NUM_CLASSES (public header) = 65 small classes + class 0. */
extern const uint32_t gm_class_size[GM_NUM_CLASSES] GM_HIDDEN;     /* object bytes */
extern const uint8_t gm_class_npages[GM_NUM_CLASSES] GM_HIDDEN;    /* pages per span */
extern const uint16_t gm_class_nelems[GM_NUM_CLASSES] GM_HIDDEN;   /* objects per span */
/* offset / size == (offset * divmagic) >> 32 for every offset in a span. */
extern const uint32_t gm_class_divmagic[GM_NUM_CLASSES] GM_HIDDEN;
/* Lookup tables: sizes 0..1024 by (size + 15) / 16, 1025..32768 by
 * (size - 1024 + 127) / 128. */
extern const uint8_t gm_size_to_class16[1024 / 16 + 1] GM_HIDDEN;
extern const uint8_t gm_size_to_class128[(GM_MAX_SMALL - 1024) / 128 + 1] GM_HIDDEN;

static inline unsigned gm_size_class(size_t size) /* size <= GM_MAX_SMALL */
{
    if (size <= 1024) return gm_size_to_class16[(size + 15) >> 4];
    return gm_size_to_class128[(size - 1024 + 127) >> 7];
}

/* Classes up to GM_OWNED_MAX bytes are served from spans a thread owns;
 * larger ones (few objects per span) from spans all threads share through
 * the central list (small.c). */
#define GM_OWNED_MAX 4096
#define GM_FIRST_SHARED_CLASS 43 /* the first class above GM_OWNED_MAX (unit_sizeclass checks) */
#define GM_NUM_SHARED_CLASSES (GM_NUM_CLASSES - GM_FIRST_SHARED_CLASS)
static inline bool gm_class_shared(unsigned cls) { return cls >= GM_FIRST_SHARED_CLASS; }

/* ------------------------------------------------------------------------ */
/* Layer 4: the heap (heap.c)                                               */
/* ------------------------------------------------------------------------ */

enum gm_span_state {
    GM_SPAN_DEAD = 0,  /* not in use: the record is free or being set up */
    GM_SPAN_SMALL = 1, /* in use, carved into objects of one size class */
    GM_SPAN_LARGE = 2, /* in use, one large object */
    GM_SPAN_CACHED = 3, /* a freed large span kept in a thread's span cache:
                         * idle pages (counted in heap_inuse inside the heap,
                         * subtracted from it in reports), no object */
};

/* thread_free low bits: who must hear about the first remote free. */
enum {
    GM_TF_NONE = 0,   /* nobody: just push */
    GM_TF_NOTIFY = 1, /* the span is in its owner's full list: tell the owner */
    GM_TF_BUSY = 2,   /* a remote freer is telling the owner right now */
    GM_TF_ORPHAN = 3, /* full and owned by nobody: the first freer puts it in central */
    GM_TF_MASK = 3,
};

struct gm_tcache;

/* Go's mspan. The heap fields are written under the heap lock before the
 * span is published in its arena's spans[] with a release store; the small
 * object fields belong to the span's owner (or to the central lock while the
 * span is unowned), except thread_free, which any thread pushes onto. */
struct gm_span {
    /* heap fields */
    uintptr_t base;
    uint32_t npages;
    _Atomic uint8_t state;  /* enum gm_span_state */
    uint8_t sizeclass;      /* 0 for large spans */
    uint8_t needzero;       /* 0: every byte is zero (fresh from the OS) */
    uint8_t in_full;        /* owner-private: in the owner's full list */
    /* small-object fields (small.c): the first cache line holds all that
     * the fast paths touch */
    uint32_t elemsize;
    uint32_t divmagic;
    _Atomic uintptr_t limit; /* end of the carved objects (small.c's lazy
                              * carving): nothing past it was handed out */
    uint32_t nelems;         /* objects the span can hold */
    uint32_t used;          /* objects out, less remote frees counted (owner) */
    void *free;             /* allocation list (owner) */
    void *local_free;       /* the owner's frees (owner) */
    struct gm_tcache *_Atomic owner;      /* NULL while unowned */
    _Atomic uintptr_t thread_free;        /* remote frees | GM_TF_* */
    _Atomic uint32_t remote_frees;        /* pushed onto thread_free, not yet
                                           * subtracted from used */
    struct gm_span *next, *prev;          /* tcache or central list */
    struct gm_span *_Atomic notify_next;  /* owner's notify stack */
    _Atomic uint8_t notify_pending;       /* on an owner's notify stack */
    uint8_t checked;        /* made in checked mode (GOMALLOC_CHECK): its
                             * objects carry canaries, free ones a fill */
    /* large objects */
    size_t large_size;      /* requested bytes (usable size is npages pages) */
} __attribute__((aligned(64))); /* records are cache-line aligned */

struct gm_heap {
    pthread_mutex_t lock;
    struct gm_pagealloc pages;  /* protected by lock */
    /* curArena: the part of the newest reservation not yet handed to the page
     * allocator. base is page aligned; pages from base to the end of base's
     * chunk are marked in use in the page allocator but not yet mapped. */
    uintptr_t arena_base, arena_end;
    uint64_t grown;             /* bytes ever handed to the page allocator */
    struct gm_fixalloc spanalloc; /* protected by lock */
    gm_stat heap_sys;           /* mapped for the heap */
    gm_stat heap_inuse;         /* in spans in use */
    gm_stat heap_released;      /* free and scavenged (incl. page caches) */
    bool initialized;
};
extern struct gm_heap gm_heap GM_HIDDEN;

/* A thread's private stock for lock-free span allocation (Go's per-P page
 * cache and mspancache): a 64-page window and a few span records. */
#define GM_SPAN_STASH 16
#define GM_SPAN_CACHE_SLOTS 8
#define GM_SPAN_CACHE_MAX_PAGES 32 /* cache spans of at most 256 KiB */
struct gm_heap_local {
    struct gm_pagecache pc;
    struct gm_span *stash[GM_SPAN_STASH];
    unsigned nstash;
    /* Large spans this thread freed, kept whole for its next large objects
     * (state GM_SPAN_CACHED; idle, not in heap_inuse). The owner takes and puts with an atomic
     * exchange, so any thread may empty a slot the same way (the scavenger,
     * gm_heap_local_drain). */
    struct gm_span *_Atomic cache[GM_SPAN_CACHE_SLOTS];
    uint32_t cache_npages[GM_SPAN_CACHE_SLOTS]; /* owner-private: what it put */
    unsigned cache_next;
    /* Bytes in the cache = put - took - drained; the owner writes the first
     * two without read-modify-write, drainers add to the third. */
    _Atomic uint64_t cache_put, cache_took, cache_drained;
    uint64_t cache_seen;      /* the scavenger's last look at cache_put ... */
    uint32_t cache_seen_ms;   /* ... and when it changed (under gm_scav_lock) */
};

int gm_heap_init(void) GM_HIDDEN; /* idempotent; -1 if the OS refuses */
static inline bool gm_heap_ready(void) { return __atomic_load_n(&gm_heap.initialized, __ATOMIC_ACQUIRE); }
/* Allocate a span of npages for sizeclass (0 = large). hl, if not NULL, is
 * the calling thread's stock, used without the heap lock for spans of fewer
 * than GM_PAGECACHE_MAX_SPAN pages. The span is published in the arena index
 * with state set; small fields are left for small.c. needzero says whether
 * the memory may hold old data. NULL + errno=ENOMEM on failure, with the
 * heap unchanged. */
struct gm_span *gm_heap_alloc_span(struct gm_heap_local *hl, size_t npages, unsigned sizeclass) GM_HIDDEN;
void gm_heap_free_span(struct gm_span *s) GM_HIDDEN;
/* Set by gm_alloc_span for its second attempt: growth may pass a soft
 * memory limit (the first attempt treats it as hard). */
extern __thread bool gm_heap_soft_ok GM_HIDDEN;
/* Try to grow span s (large) in place to npages: true on success. */
bool gm_heap_grow_span(struct gm_span *s, size_t npages) GM_HIDDEN;
/* Shrink span s (large) in place to npages (>= 1), freeing the tail. */
void gm_heap_shrink_span(struct gm_span *s, size_t npages) GM_HIDDEN;
/* Free the head and tail of large span s so that it keeps exactly
 * [new_base, new_base + npages pages) (aligned allocation). */
void gm_heap_trim_span(struct gm_span *s, uintptr_t new_base, size_t npages) GM_HIDDEN;
/* Give a thread's stock back to the heap (thread exit). Owner only. */
void gm_heap_local_flush(struct gm_heap_local *hl) GM_HIDDEN;
/* A large span of npages..npages*9/8 pages from the thread's span cache,
 * made GM_SPAN_LARGE again (needzero set), or NULL. Owner only. */
struct gm_span *gm_heap_cache_take(struct gm_heap_local *hl, size_t npages) GM_HIDDEN;
/* Free large span s into the thread's span cache, or to the heap if it is
 * too big for it (evicting the oldest entry when full). Owner only. */
void gm_heap_cache_put(struct gm_heap_local *hl, struct gm_span *s) GM_HIDDEN;
/* Free every span in hl's span cache to the heap, as released pages if
 * release (the scavenger) or as free dirty pages (thread exit); any thread,
 * lock-free against the owner. Returns the bytes freed. No lock held. */
size_t gm_heap_local_drain(struct gm_heap_local *hl, bool release) GM_HIDDEN;
/* Pages marked in use in the page allocator that are not mapped (the rest
 * of a partly grown chunk, decommitted chunks); heap lock held. For the
 * slow check. */
size_t gm_heap_ungrown_pages(void) GM_HIDDEN;

/* The scavenger's primitives (driven by scavenge.c, which holds
 * gm_scav_lock around each call so that one runs at a time and gm_check
 * never sees pages in flight). Each takes the heap lock only to pick pages
 * and to put them back, never across the system call. */
/* Return free dirty pages last freed at or before older_than (a gm_now_ms
 * stamp), highest addresses first, until max_bytes; returns bytes released. */
size_t gm_heap_scavenge(size_t max_bytes, uint32_t older_than) GM_HIDDEN;
/* Decommit wholly free chunks idle since older_than, highest first, until
 * max_bytes; returns bytes decommitted. They are committed again by growth
 * before any new address space is. pressure: an allocation fails otherwise,
 * so more holes in the heap's mapping are acceptable. */
size_t gm_heap_decommit(size_t max_bytes, uint32_t older_than, bool pressure) GM_HIDDEN;
/* Memory pressure: decommit free runs of at least min_pages inside chunks
 * that still hold live pages (whole free chunks go first, gm_heap_decommit). */
size_t gm_heap_decommit_runs(size_t min_pages) GM_HIDDEN;
/* Drain threads' span caches: all of them, or those unchanged for decay_ms. */
size_t gm_heap_drain_caches(bool all, uint32_t now, uint32_t decay_ms) GM_HIDDEN;
bool gm_heap_caches_hold(void) GM_HIDDEN; /* any span cache not empty? */
/* Retained heap memory (heap_sys - heap_released): what scavenging lowers. */
uint64_t gm_heap_retained(void) GM_HIDDEN;

/* Milliseconds from a coarse monotonic clock (wraps; compare differences). */
uint32_t gm_now_ms(void) GM_HIDDEN;

static inline uintptr_t gm_span_limit(const struct gm_span *s)
{
    return atomic_load_explicit((_Atomic uintptr_t *)&s->limit, memory_order_relaxed);
}

/* The span owning address p, or NULL if p is not in an in-use span. Fast,
 * lock-free; the caller checks state/ranges it relies on. */
static inline struct gm_span *gm_span_lookup(uintptr_t p)
{
    uintptr_t off = p - GM_FLAT_BASE;
    if (GM_LIKELY(off < atomic_load_explicit(&gm_flat_bytes, memory_order_acquire)))
        return atomic_load_explicit(&gm_flat_spans[off >> GM_PAGE_SHIFT], memory_order_acquire);
    struct gm_arena *a = gm_arena_of(p);
    if (GM_UNLIKELY(!a)) return NULL;
    return atomic_load_explicit(&a->spans[(p >> GM_PAGE_SHIFT) & (GM_PAGES_PER_ARENA - 1)],
                                memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* Layer 5: returning memory (scavenge.c)                                   */
/* ------------------------------------------------------------------------ */

struct gm_scav_stats {
    gm_stat heap_decommitted;          /* heap bytes now decommitted (Reserved) */
    _Atomic uint64_t released_total;   /* bytes ever returned with madvise */
    _Atomic uint64_t decommitted_total;/* bytes ever decommitted */
    _Atomic uint64_t recommitted_total;/* decommitted bytes committed again */
    _Atomic uint64_t background_runs;  /* background scavenger wake-ups with work */
    _Atomic uint64_t limit;            /* memory limit in bytes, 0 = none */
    _Atomic bool limit_hard;
    _Atomic bool strict;               /* strict-commit mode in force */
};
extern struct gm_scav_stats gm_scav GM_HIDDEN;

/* Strict mode and the default (cgroup) limit, from the options and the
 * system; called by gm_heap_init and again when options are read late. */
void gm_scav_init(void) GM_HIDDEN;
/* The heap freed pages: wake the background scavenger if it sleeps. Any
 * context (it takes only the scavenger's own mutex). */
void gm_scav_notify(void) GM_HIDDEN;
/* The heap grew by bytes: scavenge synchronously if retained memory is
 * past the goal. Called with no lock held. */
void gm_scav_after_grow(size_t bytes) GM_HIDDEN;
/* Work for the allocation and free paths, called at points where the
 * calling thread holds no gomalloc lock: on an allocation path, start the
 * background scavenger once there is memory worth returning and the
 * program has threads enough for one (gm_scav_tick); without one, do its
 * work now and then (both ticks). See scavenge.c for the helper's life. */
enum { GM_BG_IDLE = 0, GM_BG_STARTING, GM_BG_RUNNING, GM_BG_STOPPING, GM_BG_OFF };
extern _Atomic int gm_bg_state GM_HIDDEN;
void gm_scav_tick_slow(bool may_start) GM_HIDDEN;
static inline void gm_scav_tick(void)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gm_bg_state, memory_order_relaxed) != GM_BG_RUNNING)) gm_scav_tick_slow(true);
}
static inline void gm_scav_tick_free(void)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gm_bg_state, memory_order_relaxed) != GM_BG_RUNNING)) gm_scav_tick_slow(false);
}
/* A thread of the program got a tcache (small.c), or is leaving (its
 * tcache's release, in the thread's key destructor, with no lock held):
 * the helper leaves with the program's threads. */
void gm_scav_thread_start(void) GM_HIDDEN;
void gm_scav_thread_exit(void) GM_HIDDEN;
/* Run fn when the last thread of the program leaves with pthread_exit,
 * before the process ends (the trace sampler stops there). */
void gm_scav_on_last_thread(void (*fn)(void)) GM_HIDDEN;
/* Hold off every scavenging step (gm_check, fork). Outermost lock. */
void gm_scav_lock_all(void) GM_HIDDEN;
void gm_scav_unlock_all(void) GM_HIDDEN;
void gm_scav_fork_child(void) GM_HIDDEN;
/* Memory is short: return everything free now, decommitting free chunks
 * whatever the mode. No lock held. */
void gm_scav_reclaim(void) GM_HIDDEN;

/* ------------------------------------------------------------------------ */
/* Layer 6b: small objects (small.c)                                        */
/* ------------------------------------------------------------------------ */

/* Per class, class 0 for large objects; written by the owner only. Two
 * arrays, so that the fast paths index them by class directly. */
struct gm_class_counts {
    _Atomic uint64_t mallocs[GM_NUM_CLASSES], frees[GM_NUM_CLASSES];
};

/* Go's mcache: one per thread, found through gm_tc (initial-exec TLS). */
struct gm_tcache {
    struct gm_span *current[GM_NUM_CLASSES]; /* never NULL: gm_empty_span */
    struct gm_span *partial[GM_NUM_CLASSES]; /* owned, may have free objects */
    struct gm_span *partial_tail[GM_NUM_CLASSES]; /* partial is used oldest first */
    struct gm_span *_Atomic spare[GM_NUM_CLASSES]; /* owned, emptied, kept a while */
    struct gm_span *full[GM_NUM_CLASSES];    /* owned, full when last seen */
    struct gm_span *_Atomic notify;          /* spans with news for us */
    struct gm_heap_local hl;
    struct gm_class_counts counts;
    _Atomic uint64_t large_bytes_alloc, large_bytes_freed; /* whole pages */
    _Atomic uint64_t large_req_alloc, large_req_freed;     /* requested bytes */
    uint8_t spans_made[GM_NUM_CLASSES];      /* from the heap, saturating */
    /* A shared class's current "span": a batch of objects taken from the
     * central spans (only free, elemsize and used are meaningful). */
    struct gm_span batch[GM_NUM_SHARED_CLASSES];
    struct gm_tcache *all_next, *all_prev;   /* registry (gm_tc_lock) */
    uint32_t refills;                        /* small.c's slow path, for gm_scav_tick */
    bool dead;
};
extern __thread struct gm_tcache *gm_tc GM_HIDDEN;
/* What the inline fast paths use: gm_tc, or NULL in checked mode so that
 * every malloc and free goes through malloc.c's checked slow paths. */
extern __thread struct gm_tcache *gm_tc_fast GM_HIDDEN;
extern struct gm_span gm_empty_span GM_HIDDEN; /* free == NULL, used as current */
extern uintptr_t gm_free_key GM_HIDDEN;        /* secret for freed-object markers */

struct gm_tcache *gm_tcache_init(void) GM_HIDDEN; /* for this thread; NULL on failure */
void *gm_small_alloc_slow(struct gm_tcache *tc, unsigned cls) GM_HIDDEN;
/* Free p in span s (state SMALL) from a thread that is not its owner, or
 * from the owner when the span is in its full list. */
void gm_small_free_slow(struct gm_tcache *tc, struct gm_span *s, void *p) GM_HIDDEN;
void gm_tcache_release(struct gm_tcache *tc) GM_HIDDEN; /* thread exit */
/* A span from the heap for tc's thread; if the heap cannot grow (the OS,
 * RLIMIT_DATA or the memory limit refuses), first give back everything the
 * thread and the heap hold unused (gm_tcache_reclaim) and try again. */
struct gm_span *gm_alloc_span(struct gm_tcache *tc, size_t npages, unsigned sizeclass) GM_HIDDEN;
/* Return tc's empty spans and caches, central empties, and (through the
 * scavenger) every free page and free chunk now. No lock held. */
void gm_tcache_reclaim(struct gm_tcache *tc) GM_HIDDEN;
/* Return empty spans held by central lists, and threads' spare spans, to
 * the heap (trim). */
size_t gm_central_trim(void) GM_HIDDEN;
bool gm_central_holds(void) GM_HIDDEN; /* any span in a central list, or a spare? (racy) */
/* Walk accounting for gm_check: objects in use per class over all spans. */
void gm_small_count_live(uint64_t live[GM_NUM_CLASSES]) GM_HIDDEN;

/* Calls fn on every tcache, live or dead, under the registry lock. */
void gm_small_for_each_tcache(void (*fn)(struct gm_tcache *, void *), void *arg) GM_HIDDEN;
/* fork: take every small-object lock before, release or reset after. */
void gm_small_fork_prepare(void) GM_HIDDEN;
void gm_small_fork_parent(void) GM_HIDDEN;
void gm_small_fork_child(void) GM_HIDDEN;
extern bool gm_small_forked_mt GM_HIDDEN;

/* Never returns: prints "gomalloc: <what>: <ptr>" on one line and aborts. */
_Noreturn void gm_fatal_ptr(const char *what, const void *p) GM_HIDDEN;
/* Checked mode: the bytes of a free object past its link and marker. */
#define GM_FREE_FILL 0xdf
/* An object in a tcache's batch carries gm_free_key ^ address ^ this, so
 * that freeing it again is known for a double free without a search. */
#define GM_BATCH_MARK 2

static inline void gm_count_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* Take p, the first object on s->free (owned by tc's thread, or under the
 * central lock). */
static inline void *gm_span_pop(struct gm_tcache *tc, struct gm_span *s, void **p, unsigned cls)
{
    gm_vg_quiet_begin();
    s->free = p[0];
    /* The next malloc of this class reads that object's link: start its
     * cache miss now, behind the caller's work on p. */
    __builtin_prefetch(p[0], 1);
    p[1] = NULL; /* clear the freed-object marker */
    gm_vg_quiet_end();
    s->used++;
    gm_count_inc(&tc->counts.mallocs[cls]);
    gm_vg_alloc(p, s->elemsize, false);
    return p;
}

/* The fast paths: a few dozen instructions, thread-local state only. A
 * shared class's current span is the thread's batch for it (small.c). */
static inline void *gm_small_alloc(struct gm_tcache *tc, unsigned cls)
{
    struct gm_span *s = tc->current[cls];
    void **p = (void **)s->free;
    if (GM_LIKELY(p != NULL)) return gm_span_pop(tc, s, p, cls);
    return gm_small_alloc_slow(tc, cls);
}

/* s->state == GM_SPAN_SMALL. Checks that p is the start of an object and
 * not already free (by the marker, confirmed on the slow path). */
void gm_small_check_free(struct gm_span *s, void *p) GM_HIDDEN;

/* The owner's free onto local_free, once p is known to be a live object of
 * s, which tc owns and has not filed as full. */
static inline __attribute__((always_inline)) void gm_small_free_local(struct gm_tcache *tc, struct gm_span *s,
                                                                      void *p, uintptr_t marker)
{
    uintptr_t *o = (uintptr_t *)p;
    o[1] = marker;
    o[0] = (uintptr_t)s->local_free;
    s->local_free = p;
    gm_vg_free(p);
    gm_count_inc(&tc->counts.frees[s->sizeclass]);
    if (GM_UNLIKELY(--s->used == 0)) gm_small_free_slow(tc, s, NULL); /* span emptied */
}

/* Suspect pointers, which gm_small_free's fast path leaves to others:
 * checked (aborting unless a false alarm), then freed. */
void gm_small_free_other(struct gm_tcache *tc, struct gm_span *s, void *p) GM_HIDDEN;

/* Each exception is a single tail call, so the fast path saves no
 * registers. A valid object of another thread's span or of a full span
 * goes straight to gm_small_free_slow. */
static inline void gm_small_free(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    uintptr_t a = (uintptr_t)p, off = a - s->base, marker = gm_free_key ^ a;
    if (GM_UNLIKELY(off >= gm_span_limit(s) - s->base || (uint32_t)((off * s->divmagic) >> 32) * s->elemsize != off ||
                    gm_vg_word(&((uintptr_t *)p)[1]) == marker)) {
        gm_small_free_other(tc, s, p);
        return;
    }
    if (GM_UNLIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) != tc || s->in_full)) {
        gm_small_free_slow(tc, s, p);
        return;
    }
    gm_small_free_local(tc, s, p, marker);
}

/* ------------------------------------------------------------------------ */
/* Layer 2 hooks for fork (arena.c)                                         */
/* ------------------------------------------------------------------------ */
/* Called by malloc.c's pthread_atfork handlers with the heap lock held
 * (prepare, after it is taken; parent/child, before it is released): take
 * the persistent allocator's and the arena hints' locks, then release them
 * (parent) or reinitialize them (child). */
void gm_arena_fork_prepare(void) GM_HIDDEN;
void gm_arena_fork_parent(void) GM_HIDDEN;
void gm_arena_fork_child(void) GM_HIDDEN;

/* ------------------------------------------------------------------------ */
/* Layers 7-8: large objects and the API (malloc.c, override.c)             */
/* ------------------------------------------------------------------------ */
/*
 * The gm_* names (malloc.c) and the standard names (override.c) share the
 * inline fast paths below and the hidden gm_api_* bodies, so neither set
 * calls the other through the PLT. Lock order, outermost first (the fork
 * handlers take them all in this order): the tcache registry lock, the
 * central locks, gm_heap.lock, then arena.c's locks.
 */
#define GM_MAX_REQUEST ((size_t)PTRDIFF_MAX) /* larger requests: ENOMEM at once */
#define GM_MAX_ALIGN ((size_t)1 << 30)       /* larger alignments: ENOMEM */

/* Frees by threads that have no tcache (they never allocated, or are past
 * their tcache's release at exit), which count nowhere else. Class 0: large
 * objects; large bytes are whole pages. */
extern _Atomic uint64_t gm_notc_frees[GM_NUM_CLASSES] GM_HIDDEN;
extern _Atomic uint64_t gm_notc_large_bytes_freed GM_HIDDEN;
extern _Atomic uint64_t gm_notc_large_req_freed GM_HIDDEN;

/* The end of a slow path that allocates (malloc.c's top comment on errno):
 * errno back to saved, the caller's, if p is a result, else ENOMEM. */
static inline void *gm_errno_result(void *p, int saved)
{
    errno = p ? saved : ENOMEM;
    return p;
}

void *gm_malloc_slow(size_t size) GM_HIDDEN;
/* free(p) for everything but the owner's small-object fast path: NULL, large
 * objects, threads without a tcache, and bad pointers (which abort). s is
 * gm_span_lookup(p). */
void gm_free_slow(void *p, struct gm_span *s) GM_HIDDEN;
void *gm_api_calloc(size_t n, size_t size) GM_HIDDEN;
void *gm_api_realloc(void *p, size_t size) GM_HIDDEN;
void *gm_api_reallocarray(void *p, size_t n, size_t size) GM_HIDDEN;
int gm_api_posix_memalign(void **out, size_t align, size_t size) GM_HIDDEN;
void *gm_api_aligned_alloc(size_t align, size_t size) GM_HIDDEN;
void *gm_api_memalign(size_t align, size_t size) GM_HIDDEN;
void *gm_api_valloc(size_t size) GM_HIDDEN;
void *gm_api_pvalloc(size_t size) GM_HIDDEN;
size_t gm_api_usable_size(const void *p) GM_HIDDEN;

static inline __attribute__((always_inline)) void *gm_malloc_fast(size_t size)
{
    struct gm_tcache *tc = gm_tc_fast;
    if (GM_LIKELY(tc != NULL && size <= GM_MAX_SMALL)) return gm_small_alloc(tc, gm_size_class(size));
    return gm_malloc_slow(size);
}

static inline __attribute__((always_inline)) void gm_free_fast(void *p)
{
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    struct gm_tcache *tc = gm_tc_fast;
    if (GM_LIKELY(s != NULL && tc != NULL &&
                  atomic_load_explicit(&s->state, memory_order_acquire) == GM_SPAN_SMALL)) {
        gm_small_free(tc, s, p);
        return;
    }
    gm_free_slow(p, s);
}

/* ------------------------------------------------------------------------ */
/* Layer 9: statistics (stats.c) and the memory timeline (trace.c)         */
/* ------------------------------------------------------------------------ */
/* Text built in a caller's buffer, without stdio or allocation, for reports
 * that go out with write(2). Output past cap is dropped. */
struct gm_buf {
    char *p;
    size_t n, cap;
};
void gm_bputc(struct gm_buf *b, char c) GM_HIDDEN;
void gm_bputs(struct gm_buf *b, const char *s) GM_HIDDEN;
/* v in decimal, right-aligned in width columns (0: no padding). */
void gm_bputu(struct gm_buf *b, uint64_t v, unsigned width) GM_HIDDEN;
void gm_bputi(struct gm_buf *b, int64_t v) GM_HIDDEN; /* signed, no padding */
/* write(2) all of it, retrying on EINTR; gives up on other errors. */
void gm_write_all(int fd, const char *p, size_t n) GM_HIDDEN;

/* The human-readable report into buf (no allocation, no stdio); returns its
 * length (truncated to cap - 1, always NUL-terminated). */
size_t gm_stats_format(char *buf, size_t cap) GM_HIDDEN;
/* The same figures as one JSON object, with the same contract. */
size_t gm_stats_format_json(char *buf, size_t cap) GM_HIDDEN;
/* The reports written to fd with write(2): safe at exit and in handlers. */
void gm_stats_print_fd(int fd) GM_HIDDEN;
void gm_stats_print_json_fd(int fd) GM_HIDDEN;
/* gm_check, writing its findings to fd with write(2). */
int gm_check_fd(int fd) GM_HIDDEN;
/* The memory timeline's figures (struct gm_stats meanings), read without
 * the heap lock: cheap, but one reading may mix nearby moments. */
struct gm_stats_quick {
    uint64_t heap_inuse, heap_alloc, heap_sys, heap_released, committed;
};
void gm_stats_quick(struct gm_stats_quick *q) GM_HIDDEN;

/* A walk of the heap for malloc_info (heap lock held while it walks): small
 * spans in use per class, and free page runs (page allocator and threads'
 * page caches) by size, bucket k holding runs of [2^k, 2^(k+1)) pages. */
#define GM_RUN_BUCKETS 24
struct gm_census {
    uint64_t class_spans[GM_NUM_CLASSES]; /* class 0: large spans */
    uint64_t class_slots[GM_NUM_CLASSES]; /* objects those spans can hold */
    uint64_t runs[GM_RUN_BUCKETS];        /* free runs */
    uint64_t run_pages[GM_RUN_BUCKETS];   /* their pages */
    uint64_t run_min[GM_RUN_BUCKETS], run_max[GM_RUN_BUCKETS]; /* pages */
};
void gm_stats_census(struct gm_census *c) GM_HIDDEN;

/* Start the sampler thread of GOMALLOC_TRACE (from the library constructor
 * only: it creates a thread and registers fork and exit handlers). */
void gm_trace_start(const char *path, uint32_t period_ms) GM_HIDDEN;

#endif /* GM_INTERNAL_H */
