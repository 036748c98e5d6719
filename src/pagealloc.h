/*
 * pagealloc.h — layer 3: Go's page allocator (pagealloc.c: mpagealloc.go,
 * mpallocbits.go, mpagecache.go, mranges.go). Includes arena.h.
 */
#ifndef GM_PAGEALLOC_H
#define GM_PAGEALLOC_H

#include "arena.h"
#include "pallocbits.h"

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
#define GM_SUMMARY_L0_BITS (GM_ADDR_BITS - GM_CHUNK_SHIFT - (GM_SUMMARY_LEVELS - 1) * GM_SUMMARY_LEVEL_BITS)
#define GM_ROOT_BYTES (((size_t)8) << GM_SUMMARY_L0_BITS) /* 64 KiB of root summaries */

/* Regions of the page allocator's metadata: 2^36 bytes (16384 chunks) of
 * address space each, 2048 in the 47-bit space. */
#define GM_REGION_SHIFT 36
#define GM_REGIONS ((size_t)1 << (GM_ADDR_BITS - GM_REGION_SHIFT))
#define GM_REGION_CHUNKS ((size_t)1 << (GM_REGION_SHIFT - GM_CHUNK_SHIFT))

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
    _Atomic uint64_t free_pages; /* free pages in the bitmaps (not in caches) */
    _Atomic uint64_t scav_pages; /* free pages whose scavenged bit is set */
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
static inline size_t gm_pagealloc_scavengeable_pages(struct gm_pagealloc *pa)
{
    return atomic_load_explicit(&pa->free_pages, memory_order_relaxed) -
           atomic_load_explicit(&pa->scav_pages, memory_order_relaxed);
}
/* Take the highest free run of at least min_pages pages (all of one run
 * of free pages, in one chunk) in a chunk old for older_than: marked in
 * use, *npages long, *scav_pages of them scavenged. Returns its base, or 0.
 * Reads each chunk's leaf summary, from the top down. */
uintptr_t gm_pagealloc_take_run(struct gm_pagealloc *pa, size_t min_pages, uint32_t older_than, size_t *npages,
                                size_t *scav_pages) GM_HIDDEN;
/* Tests: chunk ci's scavenge record (NULL if not grown) and its bits in the
 * chunk-index bitmaps (0 where the bitmap is not mapped). */
struct gm_scavchunk *gm_pagealloc_scavchunk(struct gm_pagealloc *pa, size_t ci) GM_HIDDEN;
bool gm_pagealloc_index_bit(struct gm_pagealloc *pa, size_t ci, bool free_bitmap) GM_HIDDEN;
/* Tests: the address space one region's sparse array reserves. */
size_t gm_pagealloc_region_bytes(void) GM_HIDDEN;

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
/* Inside the page allocator (pagealloc.c, scavindex.c)                     */
/* ------------------------------------------------------------------------ */

static inline size_t gm_chunk_index(uintptr_t p) { return p >> GM_CHUNK_SHIFT; }
static inline uintptr_t gm_chunk_base(size_t ci) { return (uintptr_t)ci << GM_CHUNK_SHIFT; }

/* A region's sparse array: where each part starts (see the top comment). */
#define GM_RG_L1 128                         /* after the commit bitmap */
#define GM_RG_L2 512
#define GM_RG_BITS GM_OS_PAGE                /* gm_chunkbits, one per 64 chunks */
#define GM_RG_HEAD (2 * (size_t)GM_OS_PAGE)  /* committed with the reservation */
#define GM_RG_L3 GM_RG_HEAD
#define GM_RG_L4 (GM_RG_L3 + GM_REGION_CHUNKS / GM_BLOCK * sizeof(gm_pallocsum))
#define GM_RG_SCAV (GM_RG_L4 + GM_REGION_CHUNKS * sizeof(gm_pallocsum))
#define GM_RG_CHUNKS (GM_RG_SCAV + GM_REGION_CHUNKS * sizeof(struct gm_scavchunk))
#define GM_RG_BYTES (GM_RG_CHUNKS + GM_REGION_CHUNKS * sizeof(struct gm_pallocdata))

/* A chunk's records in its region's array (the region must exist): the one
 * place, with gm_sum in pagealloc.c, that knows the layout. */
static inline size_t gm_rg_chunk(size_t ci) { return ci & (GM_REGION_CHUNKS - 1); }
static inline struct gm_pallocdata *gm_chunk_of(struct gm_pagealloc *pa, size_t ci)
{
    return (struct gm_pallocdata *)(pa->dir[ci / GM_REGION_CHUNKS] + GM_RG_CHUNKS) + gm_rg_chunk(ci);
}
static inline struct gm_scavchunk *gm_scavchunk_of(struct gm_pagealloc *pa, size_t ci)
{
    return (struct gm_scavchunk *)(pa->dir[ci / GM_REGION_CHUNKS] + GM_RG_SCAV) + gm_rg_chunk(ci);
}
static inline struct gm_chunkbits *gm_chunkbits_of(struct gm_pagealloc *pa, size_t ci)
{
    return (struct gm_chunkbits *)(pa->dir[ci / GM_REGION_CHUNKS] + GM_RG_BITS) + gm_rg_chunk(ci) / 64;
}
static inline uint64_t gm_chunk_bit(size_t ci) { return (uint64_t)1 << (ci % 64); }

/* ------------------------------------------------------------------------ */
/* The scavenge index: upkeep                                               */
/* ------------------------------------------------------------------------ */

/* Time a is at or before time b (neither after now): ages are measured back
 * from now and compared unsigned, so a wrapping clock does no harm. */
static inline bool gm_at_or_before(const struct gm_pagealloc *pa, uint32_t a, uint32_t b)
{
    return (uint32_t)(pa->now - a) >= (uint32_t)(pa->now - b);
}

/* Whether chunk record s is old for t (see "Old for t" above). */
static inline bool gm_scav_old(const struct gm_pagealloc *pa, const struct gm_scavchunk *s, uint32_t t)
{
    return !(s->flags & GM_SCAV_STAMPED) || gm_at_or_before(pa, s->stamp, t);
}

/* Mark [base, base + npages pages) in use, whatever its state; the bytes of
 * it that were scavenged. */
size_t gm_alloc_range(struct gm_pagealloc *pa, uintptr_t base, size_t npages) GM_HIDDEN;
/* The index of the first in_use range whose limit is above addr (len if
 * none). */
size_t gm_ranges_succ(const struct gm_addr_ranges *r, uintptr_t addr) GM_HIDDEN;

#endif /* GM_PAGEALLOC_H */
