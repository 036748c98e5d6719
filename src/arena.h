/*
 * arena.h — layer 2: address space for the heap, the arena index, and the
 * allocators that hold the heap's own metadata (arena.c, sparse.c; Go's
 * sysAlloc with its arena hints, linearAlloc, persistentalloc, fixalloc).
 * Includes os.h.
 */
#ifndef GM_ARENA_H
#define GM_ARENA_H

#include "os.h"

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

/* Called by init.c's fork handlers with the heap lock held (prepare, after
 * it is taken; parent/child, before it is released): take the arena hints'
 * and the persistent allocator's locks, then release them (parent) or
 * reinitialize them (child). */
void gm_arena_fork_prepare(void) GM_HIDDEN;
void gm_arena_fork_parent(void) GM_HIDDEN;
void gm_arena_fork_child(void) GM_HIDDEN;

#endif /* GM_ARENA_H */
