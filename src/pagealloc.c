/*
 * pagealloc.c — layer 3: Go's page allocator (mpagealloc.go, mpallocbits.go,
 * mpagecache.go, mranges.go), at 8 KiB pages and 47 address bits.
 *
 * The page allocator owns one fact about every 8 KiB page of the heap's
 * address space: whether it is in use, and, if free, whether its memory has
 * been released to the OS (scavenged). It does not own the memory: it never
 * reads or writes a heap page, it only keeps bitmaps and answers "where is
 * the lowest run of n free pages", which makes it testable at any address.
 *
 * Chunks and bitmaps. The address space is cut into chunks of 512 pages
 * (4 MiB). Each chunk the heap has grown into has a struct gm_pallocdata: an
 * allocation bitmap (1 = in use) and a scavenged bitmap (1 = released). The
 * records sit in the chunk's region (below), indexed by chunk index
 * (addr >> 22), committed on growth. Pages of a chunk that the heap has not
 * grown into yet are marked in use, so that they are never handed out;
 * growing into them frees them.
 *
 * Summaries (pallocbits.h): per region of pages, its free run at the low
 * end, its longest free run and its free run at the high end.
 *
 * The radix tree. Level 4 (the leaves) has one summary per chunk; each level
 * above has one summary per 8 entries below (level 3: 32 MiB, level 2:
 * 256 MiB, level 1: 2 GiB); the root has 8192 entries of 16 GiB covering the
 * 47-bit address space. Each level is an array indexed by address (the tree
 * is implicit: the children of entry i at level l are entries 8i..8i+7 at
 * level l+1), committed only where the heap is: a growth commits, at each
 * level, the entries covering the new range widened to whole blocks of 8,
 * because a parent is computed from its whole block. The root is one 64 KiB
 * sparse array reserved at init; the levels below live in regions.
 * Why radix 8: 8 summaries are 64 bytes, one cache line, so a descent costs
 * one line per level, and five levels keep the tree shallow while the
 * committed part stays a few OS pages per level for a small heap.
 *
 * Regions. Go reserves each level, and each per-chunk array, for the whole
 * address space: here that was 5.6 GiB of PROT_NONE, free under every
 * commit accounting but not under RLIMIT_AS (ulimit -v), where the first
 * malloc failed. So everything kept per chunk below the root lives in
 * regions of 64 GiB of address space (2^36 bytes, 16384 chunks): the first
 * growth into a region reserves one sparse array for it (2.3 MiB) holding
 * its summaries at levels 1-4, its chunk records, its scavenge records and
 * its words of the scavenge index's bitmaps, committed OS page by OS page as
 * the heap grows, as the whole-space arrays were. A directory of 2048
 * bases indexed by addr >> 36 (pa->dir) finds a region: one more load per
 * access, from a line that stays in cache. A heap in one contiguous range
 * thus reserves 2.3 MiB of metadata per 64 GiB, and heaps far apart pay per
 * region, not per distance. Layout of a region's array: the first OS page
 * holds its commit bitmap and its level 1 and 2 summaries, the second the
 * scavenge bitmaps' words (both committed with the reservation: every
 * growth into the region touches them), then levels 3 and 4, the scavenge
 * records and the chunk records, each an array indexed by the entry's
 * position in the region. A block of 8 summaries at levels 1-4 never
 * straddles two regions (8 level-1 entries are one root entry, 16 GiB), nor
 * does a word of 64 chunks, so find takes a pointer to a block once. Why
 * 64 GiB: larger regions cost more address space per region, smaller ones a
 * larger directory (16 KiB here, in the allocator's struct) and more
 * reservations for a large heap. Only the accessors below (gm_sum,
 * gm_chunk_of, gm_scavchunk_of, gm_chunkbits_of) know this layout. The
 * arrays are touched only under the owner's lock, so the directory needs no
 * atomics; an entry is set once, when the region's array exists.
 *
 * update keeps the tree in step with the bitmaps: recompute the leaf
 * summaries of the changed chunks, then merge blocks of 8 upward, stopping at
 * the first level where nothing changed.
 *
 * Allocation is address-ordered first fit. find walks from the root: in the
 * current block of entries it tracks a run of free pages across entries; if
 * the run reaches n pages the answer is known exactly, else if one entry's
 * max is at least n it descends into that entry, else the run restarts from
 * the entry's end (or extends, if the entry is all free). At the leaf it
 * searches the chunk's bitmap. The root scan skips root pages never mapped.
 *
 * searchAddr. Invariant: no free page lies below search_addr, and
 * search_addr is inside a grown (in_use) chunk, or it is GM_SEARCH_NONE
 * ("the heap is full"). So alloc first tries the chunk of search_addr
 * directly (the common case: small requests fill memory from the bottom),
 * and find prunes every subtree below it. Allocation raises it to the first
 * free page the search saw; free, grow and the page cache's flush lower it;
 * a failed 1-page allocation proves the heap full and sets GM_SEARCH_NONE.
 * A candidate that falls into a gap between in_use ranges is moved up to the
 * next range (as Go does since #40191), so it never points at unmapped
 * metadata.
 *
 * Scavenged bits. Invariant: scav & alloc == 0 in every chunk; the bit only
 * means something for a free page. Allocating a run clears its bits and
 * reports how many bytes were scavenged (the caller makes them Ready). Freeing
 * does not set them: a freed page's memory is still there until the
 * scavenger releases it. Fresh memory from grow counts as released, as in Go.
 * free_pages and scav_pages count the free and the free-and-scavenged pages
 * exactly (pages held by page caches are not free here).
 *
 * The page cache. A thread takes a 64-page, 64-page-aligned block under the
 * lock (alloc_to_cache: the block holding the first free page, all of it
 * marked in use here), then carves runs from it without any lock. flush gives
 * the cached free pages back with their scavenged bits.
 *
 * The scavenge index (scavindex.c says how it is searched) is kept here,
 * where pages change state: per chunk its count of dirty pages and the
 * stamp of the last free that left some, and per 64 chunks the bits of the
 * chunks with dirty pages and of those entirely free.
 *
 * Everything but gm_pagecache_alloc runs under the owner's lock.
 */
#include "pagealloc.h"

/* free_pages and scav_pages change under the owner's lock but are read
 * without it as hints (the scavenger's "anything to do?"): base.h's
 * single-writer counter update. */
static inline void gm_count_add(_Atomic uint64_t *c, ptrdiff_t d) { gm_counter_add(c, (uint64_t)d); }

#include <string.h>

#define GM_LEAF (GM_SUMMARY_LEVELS - 1)
#define GM_ROOT_ENTRIES ((size_t)1 << GM_SUMMARY_L0_BITS)

/* Address bits below a level's index, and log2 of the pages it summarizes. */
static inline unsigned gm_level_shift(int l)
{
    return GM_CHUNK_SHIFT + (unsigned)(GM_LEAF - l) * GM_SUMMARY_LEVEL_BITS;
}
static inline unsigned gm_level_log_pages(int l) { return gm_level_shift(l) - GM_PAGE_SHIFT; }
static inline size_t gm_level_entries(int l) { return (size_t)1 << (GM_ADDR_BITS - gm_level_shift(l)); }

static inline unsigned gm_chunk_page(uintptr_t p) { return (p >> GM_PAGE_SHIFT) & (GM_CHUNK_PAGES - 1); }

_Static_assert(GM_RG_BYTES / GM_OS_PAGE <= GM_RG_L1 * 8, "the commit bitmap fits before level 1");
_Static_assert(GM_RG_L1 + (GM_REGION_CHUNKS >> 9) * sizeof(gm_pallocsum) <= GM_RG_L2, "level 1 fits");
_Static_assert(GM_RG_L2 + (GM_REGION_CHUNKS >> 6) * sizeof(gm_pallocsum) <= GM_RG_BITS, "level 2 fits");
_Static_assert(GM_RG_BITS + GM_REGION_CHUNKS / 64 * sizeof(struct gm_chunkbits) <= GM_RG_HEAD, "bitmaps fit");
_Static_assert(GM_RG_L4 % 64 == 0 && GM_RG_CHUNKS % 64 == 0, "blocks of summaries are cache lines");
static const size_t gm_rg_level[GM_SUMMARY_LEVELS] = {0, GM_RG_L1, GM_RG_L2, GM_RG_L3, GM_RG_L4};

/* Log2 of the entries a region holds at level l >= 1. */
static inline unsigned gm_rg_bits(int l) { return GM_REGION_SHIFT - gm_level_shift(l); }

/* Views of the root's and of region r's sparse arrays. */
static inline struct gm_sparse gm_root_array(struct gm_pagealloc *pa)
{
    return (struct gm_sparse){pa->root, GM_ROOT_BYTES, pa->root_map, pa->meta_stat};
}
static inline struct gm_sparse gm_region_array(struct gm_pagealloc *pa, size_t r)
{
    return (struct gm_sparse){pa->dir[r], GM_RG_BYTES, (uint64_t *)pa->dir[r], pa->meta_stat};
}

/* Entry i of summary level l. Below the root, i's region must exist. */
static inline gm_pallocsum *gm_sum(struct gm_pagealloc *pa, int l, size_t i)
{
    if (l == 0) return (gm_pallocsum *)pa->root + i;
    unsigned b = gm_rg_bits(l);
    return (gm_pallocsum *)(pa->dir[i >> b] + gm_rg_level[l]) + (i & (((size_t)1 << b) - 1));
}


/* Chunk ci may just have turned into a candidate for c's searches: if it
 * lies at or above the resume point and is old for c's time, c is void. */
static inline void gm_cursor_check(struct gm_pagealloc *pa, struct gm_scav_cursor *c, size_t ci)
{
    if (c->valid && ci >= c->top && gm_scav_old(pa, gm_scavchunk_of(pa, ci), c->older_than)) c->valid = false;
}

/* Chunk ci gained (delta > 0: a free left pages dirty, so stamp it) or lost
 * dirty pages. */
static inline void gm_dirty_add(struct gm_pagealloc *pa, size_t ci, int delta)
{
    if (delta == 0) return;
    struct gm_scavchunk *s = gm_scavchunk_of(pa, ci);
    if (delta < 0 && s->dirty < (unsigned)-delta) gm_fatal("page allocator: bad scavenge index (dirty count)", NULL);
    s->dirty = (uint16_t)(s->dirty + delta);
    if (delta > 0) {
        gm_chunkbits_of(pa, ci)->dirty |= gm_chunk_bit(ci);
        s->stamp = pa->now;
        s->flags |= GM_SCAV_STAMPED;
        gm_cursor_check(pa, &pa->scav.dirty_cursor, ci);
    } else if (s->dirty == 0) {
        gm_chunkbits_of(pa, ci)->dirty &= ~gm_chunk_bit(ci);
    }
}

/* Write chunk ci's leaf summary and keep its free-chunk bit with it. */
static inline void gm_set_leaf(struct gm_pagealloc *pa, size_t ci, gm_pallocsum sum)
{
    *gm_sum(pa, GM_LEAF, ci) = sum;
    struct gm_chunkbits *b = gm_chunkbits_of(pa, ci);
    if (sum != GM_FREE_CHUNK_SUM) {
        b->free &= ~gm_chunk_bit(ci);
    } else if (!(b->free & gm_chunk_bit(ci))) {
        b->free |= gm_chunk_bit(ci);
        gm_cursor_check(pa, &pa->scav.free_cursor, ci);
    }
}

/* Bring the summaries over [base, base + npages pages) up to date after
 * their bitmaps changed. contig: the change was one run over the whole range
 * (so chunks strictly inside are entirely allocated or free, per alloc). */
static void gm_update(struct gm_pagealloc *pa, uintptr_t base, size_t npages, bool contig, bool alloc)
{
    uintptr_t last = base + (npages << GM_PAGE_SHIFT) - 1; /* inclusive */
    size_t sc = gm_chunk_index(base), ec = gm_chunk_index(last);
    if (sc == ec) {
        gm_pallocsum y = gm_pallocbits_summarize(&gm_chunk_of(pa, sc)->alloc);
        if (*gm_sum(pa, GM_LEAF, sc) == y) return;
        gm_set_leaf(pa, sc, y);
    } else if (contig) {
        gm_set_leaf(pa, sc, gm_pallocbits_summarize(&gm_chunk_of(pa, sc)->alloc));
        gm_pallocsum mid = alloc ? 0 : GM_FREE_CHUNK_SUM;
        for (size_t c = sc + 1; c < ec; c++) gm_set_leaf(pa, c, mid);
        gm_set_leaf(pa, ec, gm_pallocbits_summarize(&gm_chunk_of(pa, ec)->alloc));
    } else {
        for (size_t c = sc; c <= ec; c++) gm_set_leaf(pa, c, gm_pallocbits_summarize(&gm_chunk_of(pa, c)->alloc));
    }
    for (int l = GM_LEAF - 1; l >= 0; l--) {
        bool changed = false;
        unsigned log_child = gm_level_log_pages(l + 1);
        for (size_t i = base >> gm_level_shift(l); i <= last >> gm_level_shift(l); i++) {
            gm_pallocsum s = gm_merge(gm_sum(pa, l + 1, i * GM_BLOCK), log_child), *p = gm_sum(pa, l, i);
            if (s != *p) {
                *p = s;
                changed = true;
            }
        }
        if (!changed) break;
    }
}

gm_pallocsum gm_pagealloc_summary(struct gm_pagealloc *pa, int level, size_t idx)
{
    if (level < 0 || level > GM_LEAF || idx >= gm_level_entries(level)) return 0;
    if (level == 0) {
        struct gm_sparse root = gm_root_array(pa);
        return gm_sparse_is_mapped(&root, idx * sizeof(gm_pallocsum)) ? *gm_sum(pa, 0, idx) : 0;
    }
    size_t r = idx >> gm_rg_bits(level);
    struct gm_sparse rg = gm_region_array(pa, r);
    uintptr_t at = (uintptr_t)gm_sum(pa, level, idx);
    return pa->dir[r] && gm_sparse_is_mapped(&rg, at - pa->dir[r]) ? *(gm_pallocsum *)at : 0;
}

/* ------------------------------------------------------------------------ */
/* In-use address ranges                                                    */
/* ------------------------------------------------------------------------ */

#define GM_RANGES_INIT_CAP 16

/* Index of the first range whose limit is above addr (len if none). */
size_t gm_ranges_succ(const struct gm_addr_ranges *r, uintptr_t addr)
{
    size_t lo = 0, hi = r->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ranges[mid].limit > addr)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static bool gm_ranges_contains(const struct gm_addr_ranges *r, uintptr_t addr)
{
    size_t i = gm_ranges_succ(r, addr);
    return i < r->len && r->ranges[i].base <= addr;
}

/* The lowest in-use address >= addr, or GM_SEARCH_NONE. */
static uintptr_t gm_ranges_addr_ge(const struct gm_addr_ranges *r, uintptr_t addr)
{
    size_t i = gm_ranges_succ(r, addr);
    if (i == r->len) return GM_SEARCH_NONE;
    return r->ranges[i].base > addr ? r->ranges[i].base : addr;
}

/* Make room for one more range (persistent memory; the old array is
 * abandoned, as it cannot be freed). */
static int gm_ranges_reserve(struct gm_addr_ranges *r, gm_stat *stat)
{
    if (r->len < r->cap) return 0;
    size_t cap = r->cap ? r->cap * 2 : GM_RANGES_INIT_CAP;
    struct gm_addr_range *a = gm_persistent_alloc(cap * sizeof *a, 64, stat);
    if (!a) return -1;
    if (r->len) memcpy(a, r->ranges, r->len * sizeof *a);
    r->ranges = a;
    r->cap = cap;
    return 0;
}

/* Add [base, limit), merging with every range it overlaps or touches. Room
 * for one more range must have been reserved. */
static void gm_ranges_add(struct gm_addr_ranges *r, uintptr_t base, uintptr_t limit)
{
    size_t k = gm_ranges_succ(r, base == 0 ? 0 : base - 1); /* first with limit >= base */
    size_t m = k;                                           /* one past the last with base <= limit */
    while (m < r->len && r->ranges[m].base <= limit) m++;
    if (m > k) {
        if (r->ranges[k].base < base) base = r->ranges[k].base;
        if (r->ranges[m - 1].limit > limit) limit = r->ranges[m - 1].limit;
        for (size_t i = k; i < m; i++) r->total_bytes -= r->ranges[i].limit - r->ranges[i].base;
        memmove(&r->ranges[k + 1], &r->ranges[m], (r->len - m) * sizeof r->ranges[0]);
        r->len -= m - k - 1;
    } else {
        memmove(&r->ranges[k + 1], &r->ranges[k], (r->len - k) * sizeof r->ranges[0]);
        r->len++;
    }
    r->ranges[k].base = base;
    r->ranges[k].limit = limit;
    r->total_bytes += limit - base;
}

/* ------------------------------------------------------------------------ */
/* Setup and growth                                                         */
/* ------------------------------------------------------------------------ */

int gm_pagealloc_init(struct gm_pagealloc *pa, gm_stat *meta_stat)
{
    memset(pa, 0, sizeof *pa);
    pa->meta_stat = meta_stat;
    pa->search_addr = GM_SEARCH_NONE;
    struct gm_sparse root;
    if (gm_sparse_init(&root, GM_ROOT_BYTES, pa->root_map, 0, meta_stat) != 0) return -1;
    pa->root = root.base;
    return 0;
}

void gm_pagealloc_destroy(struct gm_pagealloc *pa)
{
    for (size_t r = 0; r < GM_REGIONS; r++) {
        if (!pa->dir[r]) continue;
        struct gm_sparse rg = gm_region_array(pa, r);
        gm_sparse_destroy(&rg);
    }
    struct gm_sparse root = gm_root_array(pa);
    gm_sparse_destroy(&root);
    /* The range arrays (16, 32, ... cap entries) stay behind as slack. */
    if (pa->in_use.cap) {
        int64_t bytes = (int64_t)((2 * pa->in_use.cap - GM_RANGES_INIT_CAP) * sizeof(struct gm_addr_range));
        gm_stat_add(pa->meta_stat, -bytes);
        gm_stat_add(&gm_meta.other, bytes);
    }
    gm_stat *stat = pa->meta_stat;
    memset(pa, 0, sizeof *pa);
    pa->meta_stat = stat;
    pa->search_addr = GM_SEARCH_NONE;
}

/* Region r's array, reserved with its head committed if the heap has never
 * been there: 0, or -1 with nothing reserved or counted. */
static int gm_region_get(struct gm_pagealloc *pa, size_t r)
{
    if (pa->dir[r]) return 0;
    struct gm_sparse rg;
    if (gm_sparse_init(&rg, GM_RG_BYTES, NULL, GM_RG_HEAD, pa->meta_stat) != 0) return -1;
    pa->dir[r] = rg.base;
    return 0;
}

/* Commit the entries of summary level l that cover addresses [base, last],
 * widened to whole blocks of 8 because update merges whole blocks (an OS
 * page holds 512 summaries, so blocks never straddle a page: the widening
 * costs nothing but keeps the rule independent of page size). a is the
 * array holding them (the root's, or the region's for l >= 1), at is where
 * the level starts in it, mask turns an index into a position there. */
static int gm_commit_level(struct gm_sparse *a, size_t at, size_t mask, int l, uintptr_t base, uintptr_t last)
{
    size_t lo = gm_align_down(base >> gm_level_shift(l), GM_BLOCK);
    size_t hi = gm_align_up((last >> gm_level_shift(l)) + 1, GM_BLOCK);
    return gm_sparse_ensure(a, at + (lo & mask) * sizeof(gm_pallocsum), (hi - lo) * sizeof(gm_pallocsum));
}

/* Commit the summaries, chunk records and scavenge records for chunks
 * [sc, ec), creating the regions they fall in. */
static int gm_pagealloc_map(struct gm_pagealloc *pa, size_t sc, size_t ec)
{
    struct gm_sparse root = gm_root_array(pa);
    if (gm_commit_level(&root, 0, ~(size_t)0, 0, gm_chunk_base(sc), gm_chunk_base(ec) - 1) != 0) return -1;
    for (size_t r = sc / GM_REGION_CHUNKS; r <= (ec - 1) / GM_REGION_CHUNKS; r++) {
        if (gm_region_get(pa, r) != 0) return -1;
        struct gm_sparse rg = gm_region_array(pa, r);
        size_t a = sc > r * GM_REGION_CHUNKS ? sc : r * GM_REGION_CHUNKS;
        size_t b = ec < (r + 1) * GM_REGION_CHUNKS ? ec : (r + 1) * GM_REGION_CHUNKS;
        for (int l = 1; l < GM_SUMMARY_LEVELS; l++) {
            size_t mask = ((size_t)1 << gm_rg_bits(l)) - 1;
            if (gm_commit_level(&rg, gm_rg_level[l], mask, l, gm_chunk_base(a), gm_chunk_base(b) - 1) != 0)
                return -1;
        }
        size_t n = b - a;
        if (gm_sparse_ensure(&rg, GM_RG_CHUNKS + gm_rg_chunk(a) * sizeof(struct gm_pallocdata),
                             n * sizeof(struct gm_pallocdata)) != 0 ||
            gm_sparse_ensure(&rg, GM_RG_SCAV + gm_rg_chunk(a) * sizeof(struct gm_scavchunk),
                             n * sizeof(struct gm_scavchunk)) != 0)
            return -1;
        /* The scavenge bitmaps' words are in the head, committed. */
    }
    return 0;
}

/* Walks [base, base + npages pages) one chunk piece at a time: ci is the
 * chunk, pi the first page in it, pn the pages of the range in it. */
struct gm_chunk_walk {
    uintptr_t at, end;
    size_t ci;
    unsigned pi, pn;
};
static inline struct gm_chunk_walk gm_walk_start(uintptr_t base, size_t npages)
{
    return (struct gm_chunk_walk){.at = base, .end = base + ((uintptr_t)npages << GM_PAGE_SHIFT)};
}
static inline bool gm_walk_next(struct gm_chunk_walk *w)
{
    if (w->at >= w->end) return false;
    w->ci = gm_chunk_index(w->at);
    uintptr_t next = gm_chunk_base(w->ci + 1);
    if (next > w->end) next = w->end;
    w->pi = gm_chunk_page(w->at);
    w->pn = (unsigned)((next - w->at) >> GM_PAGE_SHIFT);
    w->at = next;
    return true;
}

/* Mark pages free and scavenged, keeping the counters exact (bitmaps only). */
static void gm_mark_free_scavenged(struct gm_pagealloc *pa, uintptr_t base, size_t npages)
{
    for (struct gm_chunk_walk w = gm_walk_start(base, npages); gm_walk_next(&w);) {
        struct gm_pallocdata *c = gm_chunk_of(pa, w.ci);
        unsigned was_used = gm_bits_clear(&c->alloc, w.pi, w.pn);
        unsigned was_scav = gm_bits_set(&c->scav, w.pi, w.pn); /* newly scavenged */
        gm_count_add(&pa->free_pages, (ptrdiff_t)(was_used));
        gm_count_add(&pa->scav_pages, (ptrdiff_t)(was_scav));
        /* Newly scavenged pages were in use (scav & alloc == 0) or dirty. */
        gm_dirty_add(pa, w.ci, -(int)(was_scav - was_used));
    }
}

int gm_pagealloc_grow(struct gm_pagealloc *pa, uintptr_t base, size_t size)
{
    if (size == 0) return 0;
    uintptr_t limit = base + size;
    if ((base | size) & (GM_PAGE_SIZE - 1) || limit < base || limit > GM_ADDR_LIMIT || base == 0)
        return -1;
    size_t sc = gm_chunk_index(base), ec = gm_chunk_index(gm_align_up(limit, GM_CHUNK_BYTES));
    /* Everything that can fail comes first. */
    if (gm_ranges_reserve(&pa->in_use, pa->meta_stat) != 0) return -1;
    if (gm_pagealloc_map(pa, sc, ec) != 0) return -1;

    /* Chunks seen for the first time start out entirely in use. */
    for (size_t ci = sc; ci < ec; ci++) {
        if (gm_ranges_contains(&pa->in_use, gm_chunk_base(ci))) continue;
        struct gm_pallocdata *c = gm_chunk_of(pa, ci);
        memset(c->alloc.w, 0xff, sizeof c->alloc.w);
        memset(c->scav.w, 0, sizeof c->scav.w);
        *gm_scavchunk_of(pa, ci) = (struct gm_scavchunk){0, 0, 0}; /* never stamped: old */
    }
    gm_ranges_add(&pa->in_use, gm_chunk_base(sc), gm_chunk_base(ec));
    if (pa->end == 0) {
        pa->start = sc;
        pa->end = ec;
    } else {
        if (sc < pa->start) pa->start = sc;
        if (ec > pa->end) pa->end = ec;
    }
    size_t npages = size >> GM_PAGE_SHIFT;
    gm_mark_free_scavenged(pa, base, npages);
    if (base < pa->search_addr) pa->search_addr = base;
    /* Every chunk of [sc, ec) is touched by the range, so its leaf is
     * recomputed; the ones strictly inside are entirely free. */
    gm_update(pa, base, npages, true, false);
    return 0;
}

struct gm_pallocdata *gm_pagealloc_chunk(struct gm_pagealloc *pa, size_t ci)
{
    if (ci < pa->start || ci >= pa->end || !gm_ranges_contains(&pa->in_use, gm_chunk_base(ci))) return NULL;
    return gm_chunk_of(pa, ci);
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */
/* ------------------------------------------------------------------------ */

/* Mark [base, base + npages pages) in use; returns its scavenged bytes. */
size_t gm_alloc_range(struct gm_pagealloc *pa, uintptr_t base, size_t npages)
{
    size_t scav = 0;
    for (struct gm_chunk_walk w = gm_walk_start(base, npages); gm_walk_next(&w);) {
        struct gm_pallocdata *c = gm_chunk_of(pa, w.ci);
        unsigned was_free = gm_bits_set(&c->alloc, w.pi, w.pn);
        unsigned s = gm_bits_clear(&c->scav, w.pi, w.pn);
        gm_count_add(&pa->free_pages, -(ptrdiff_t)(was_free));
        gm_count_add(&pa->scav_pages, -(ptrdiff_t)(s));
        gm_dirty_add(pa, w.ci, -(int)(was_free - s));
        scav += s;
    }
    gm_update(pa, base, npages, true, true);
    return scav << GM_PAGE_SHIFT;
}

size_t gm_pagealloc_alloc_range(struct gm_pagealloc *pa, uintptr_t base, size_t npages)
{
    if (npages == 0) return 0;
    return gm_alloc_range(pa, base, npages);
}

/* The first free run of npages by a walk from the root; 0 if none. *cand
 * gets the lowest address that may hold a free page (a new search_addr). */
static uintptr_t gm_find(struct gm_pagealloc *pa, size_t npages, uintptr_t *cand)
{
    size_t i = 0; /* first entry of the block searched at this level */
    /* [ff_base, ff_last]: the narrowest region known to hold the first free
     * page. It narrows while the walk descends into the first entry with free
     * pages, and stops narrowing once the walk passes over such an entry. */
    uintptr_t ff_base = 0, ff_last = GM_ADDR_LIMIT - 1;
    /* Root entries past the last grown chunk are all full. */
    size_t root_end = ((pa->end - 1) >> (gm_level_shift(0) - GM_CHUNK_SHIFT)) + 1;
    const struct gm_sparse root = gm_root_array(pa);
    for (int l = 0; l < GM_SUMMARY_LEVELS; l++) {
        unsigned shift = gm_level_shift(l), log_pages = gm_level_log_pages(l);
        size_t nentries = l == 0 ? GM_ROOT_ENTRIES : GM_BLOCK;
        size_t stop = l == 0 ? root_end : nentries;
        if (l > 0) i *= GM_BLOCK;
        const gm_pallocsum *sums = gm_sum(pa, l, i); /* the block: one region */
        size_t j0 = 0, sidx = pa->search_addr >> shift;
        if ((sidx & ~(nentries - 1)) == i) j0 = sidx & (nentries - 1);
        size_t run_base = 0, run = 0; /* in pages, relative to entry i */
        bool descend = false;
        for (size_t j = j0; j < stop; j++) {
            if (l == 0 && (j == j0 || j % (GM_OS_PAGE / sizeof(gm_pallocsum)) == 0) &&
                !gm_sparse_is_mapped(&root, j * sizeof(gm_pallocsum))) {
                /* A root page never mapped: 16 GiB x 512 of unheaped space. */
                run = 0;
                j = gm_align_up(j + 1, GM_OS_PAGE / sizeof(gm_pallocsum)) - 1;
                continue;
            }
            gm_pallocsum sum = sums[j];
            if (sum == 0) {
                run = 0;
                continue;
            }
            uintptr_t ebase = (uintptr_t)(i + j) << shift, ebytes = (uintptr_t)1 << shift;
            if (ff_base <= ebase && ebase + ebytes - 1 <= ff_last) {
                ff_base = ebase;
                ff_last = ebase + ebytes - 1;
            }
            size_t s = gm_sum_start(sum);
            if (run + s >= npages) {
                if (run == 0) run_base = j << log_pages;
                run += s;
                break;
            }
            if (gm_sum_max(sum) >= npages) {
                i += j;
                descend = true;
                break;
            }
            if (run == 0 || s < ((size_t)1 << log_pages)) {
                run = gm_sum_end(sum);
                run_base = ((j + 1) << log_pages) - run;
            } else {
                run += (size_t)1 << log_pages;
            }
        }
        if (descend) continue;
        if (run >= npages) {
            *cand = ff_base;
            return ((uintptr_t)i << shift) + ((uintptr_t)run_base << GM_PAGE_SHIFT);
        }
        if (l == 0) return 0;
        gm_fatal("page allocator: bad summary data (find)", NULL);
    }
    /* i is now the chunk holding a fit. */
    unsigned first_free;
    unsigned j = gm_pallocbits_find(&gm_chunk_of(pa, i)->alloc, (unsigned)npages, 0, &first_free);
    if (j == ~0u) gm_fatal("page allocator: bad summary data (chunk)", NULL);
    uintptr_t ff = gm_chunk_base(i) + ((uintptr_t)first_free << GM_PAGE_SHIFT);
    if (ff_base <= ff && gm_chunk_base(i + 1) - 1 <= ff_last) ff_base = ff;
    *cand = ff_base;
    return gm_chunk_base(i) + ((uintptr_t)j << GM_PAGE_SHIFT);
}

uintptr_t gm_pagealloc_alloc(struct gm_pagealloc *pa, size_t npages, size_t *scav)
{
    if (scav) *scav = 0;
    if (npages == 0 || gm_chunk_index(pa->search_addr) >= pa->end) return 0;
    uintptr_t addr = 0, cand = 0;
    size_t ci = gm_chunk_index(pa->search_addr);
    unsigned pi = gm_chunk_page(pa->search_addr);
    if (GM_CHUNK_PAGES - pi >= npages && gm_sum_max(*gm_sum(pa, GM_LEAF, ci)) >= npages) {
        /* Fast path: the fit is in search_addr's own chunk. */
        unsigned first_free;
        unsigned j = gm_pallocbits_find(&gm_chunk_of(pa, ci)->alloc, (unsigned)npages, pi, &first_free);
        if (j == ~0u) gm_fatal("page allocator: bad summary data (search_addr)", NULL);
        addr = gm_chunk_base(ci) + ((uintptr_t)j << GM_PAGE_SHIFT);
        cand = gm_chunk_base(ci) + ((uintptr_t)first_free << GM_PAGE_SHIFT);
    } else {
        addr = gm_find(pa, npages, &cand);
        if (addr == 0) {
            if (npages == 1) pa->search_addr = GM_SEARCH_NONE; /* not one free page */
            return 0;
        }
        cand = gm_ranges_addr_ge(&pa->in_use, cand); /* never into a gap */
    }
    size_t s = gm_alloc_range(pa, addr, npages);
    if (scav) *scav = s;
    if (cand > pa->search_addr) pa->search_addr = cand;
    return addr;
}

/* ------------------------------------------------------------------------ */
/* Free                                                                     */
/* ------------------------------------------------------------------------ */

void gm_pagealloc_free(struct gm_pagealloc *pa, uintptr_t base, size_t npages)
{
    if (npages == 0) return;
    if (base < pa->search_addr) pa->search_addr = base;
    for (struct gm_chunk_walk w = gm_walk_start(base, npages); gm_walk_next(&w);) {
        unsigned was_used = gm_bits_clear(&gm_chunk_of(pa, w.ci)->alloc, w.pi, w.pn);
        gm_count_add(&pa->free_pages, (ptrdiff_t)(was_used));
        gm_dirty_add(pa, w.ci, (int)was_used); /* pages in use have no scav bit */
    }
    gm_update(pa, base, npages, true, false); /* after the stamps: see gm_set_leaf */
    GM_ASSERT(atomic_load(&pa->scav_pages) <= atomic_load(&pa->free_pages));
}

void gm_pagealloc_free_scavenged(struct gm_pagealloc *pa, uintptr_t base, size_t npages)
{
    if (npages == 0) return;
    if (base < pa->search_addr) pa->search_addr = base;
    gm_mark_free_scavenged(pa, base, npages);
    gm_update(pa, base, npages, true, false);
}

size_t gm_pagealloc_free_run_at(struct gm_pagealloc *pa, uintptr_t base, size_t max)
{
    size_t n = 0;
    while (n < max) {
        uintptr_t a = base + (n << GM_PAGE_SHIFT);
        if (a >= GM_ADDR_LIMIT || a < base) break;
        struct gm_pallocdata *c = gm_pagealloc_chunk(pa, gm_chunk_index(a));
        if (!c) break;
        unsigned pi = gm_chunk_page(a);
        unsigned r = gm_bits_clear_run(&c->alloc, pi, max - n);
        n += r;
        if (pi + r < GM_CHUNK_PAGES) break; /* the run stopped inside this chunk */
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* The page cache                                                           */
/* ------------------------------------------------------------------------ */

struct gm_pagecache gm_pagealloc_alloc_to_cache(struct gm_pagealloc *pa)
{
    struct gm_pagecache c = {0, 0, 0};
    if (gm_chunk_index(pa->search_addr) >= pa->end) return c;
    size_t ci = gm_chunk_index(pa->search_addr);
    unsigned j = ~0u;
    if (*gm_sum(pa, GM_LEAF, ci) != 0)
        j = gm_pallocbits_find(&gm_chunk_of(pa, ci)->alloc, 1, gm_chunk_page(pa->search_addr), NULL);
    if (j == ~0u) {
        /* Nothing at or after search_addr in its chunk: search the tree. */
        uintptr_t cand, addr = gm_find(pa, 1, &cand);
        if (addr == 0) {
            pa->search_addr = GM_SEARCH_NONE;
            return c;
        }
        ci = gm_chunk_index(addr);
        j = gm_chunk_page(addr);
    }
    struct gm_pallocdata *d = gm_chunk_of(pa, ci);
    unsigned w = j / 64;
    c.base = gm_chunk_base(ci) + ((uintptr_t)w * 64 << GM_PAGE_SHIFT);
    c.cache = ~d->alloc.w[w];
    c.scav = d->scav.w[w];
    d->alloc.w[w] = ~(uint64_t)0;
    d->scav.w[w] = 0;
    gm_count_add(&pa->free_pages, -(ptrdiff_t)(gm_popcount(c.cache)));
    gm_count_add(&pa->scav_pages, -(ptrdiff_t)(gm_popcount(c.scav)));
    gm_dirty_add(pa, ci, -(int)gm_popcount(c.cache & ~c.scav));
    gm_update(pa, c.base, GM_PAGECACHE_PAGES, false, true);
    /* Everything below the block is in use, and so is the block now; its
     * last page (not one past it, which may be outside the heap) is a safe
     * new search_addr. */
    pa->search_addr = c.base + ((uintptr_t)(GM_PAGECACHE_PAGES - 1) << GM_PAGE_SHIFT);
    return c;
}

uintptr_t gm_pagecache_alloc(struct gm_pagecache *c, size_t npages, size_t *scav)
{
    if (scav) *scav = 0;
    if (c->cache == 0 || npages == 0 || npages > GM_PAGECACHE_PAGES) return 0;
    unsigned i = gm_find_bit_range64(c->cache, (unsigned)npages);
    if (i >= 64) return 0;
    uint64_t m = gm_word_mask(i, (unsigned)npages);
    if (scav) *scav = (size_t)gm_popcount(c->scav & m) << GM_PAGE_SHIFT;
    c->cache &= ~m;
    c->scav &= ~m;
    return c->base + ((uintptr_t)i << GM_PAGE_SHIFT);
}

void gm_pagecache_flush(struct gm_pagecache *c, struct gm_pagealloc *pa)
{
    if (c->base == 0) return;
    if (c->cache != 0) {
        struct gm_pallocdata *d = gm_chunk_of(pa, gm_chunk_index(c->base));
        unsigned w = gm_chunk_page(c->base) / 64;
        d->alloc.w[w] &= ~c->cache;
        d->scav.w[w] |= c->scav & c->cache;
        gm_count_add(&pa->free_pages, (ptrdiff_t)(gm_popcount(c->cache)));
        gm_count_add(&pa->scav_pages, (ptrdiff_t)(gm_popcount(c->scav & c->cache)));
        gm_dirty_add(pa, gm_chunk_index(c->base), (int)gm_popcount(c->cache & ~c->scav));
        if (c->base < pa->search_addr) pa->search_addr = c->base;
        gm_update(pa, c->base, GM_PAGECACHE_PAGES, false, false);
    }
    c->base = 0;
    c->cache = 0;
    c->scav = 0;
}

size_t gm_pagealloc_region_bytes(void) { return GM_RG_BYTES; }

/* ------------------------------------------------------------------------ */
/* Rebuilding from the bitmaps                                              */
/* ------------------------------------------------------------------------ */

void gm_pagealloc_recompute(struct gm_pagealloc *pa)
{
    atomic_store(&pa->free_pages, 0);
    atomic_store(&pa->scav_pages, 0);
    for (size_t r = 0; r < pa->in_use.len; r++) {
        uintptr_t base = pa->in_use.ranges[r].base, limit = pa->in_use.ranges[r].limit;
        for (size_t ci = gm_chunk_index(base); ci < gm_chunk_index(limit); ci++) {
            struct gm_pallocdata *c = gm_chunk_of(pa, ci);
            gm_set_leaf(pa, ci, gm_pallocbits_summarize(&c->alloc));
            unsigned dirty = 0;
            for (unsigned w = 0; w < GM_CHUNK_WORDS; w++) {
                gm_count_add(&pa->free_pages, (ptrdiff_t)(gm_popcount(~c->alloc.w[w])));
                gm_count_add(&pa->scav_pages, (ptrdiff_t)(gm_popcount(~c->alloc.w[w] & c->scav.w[w])));
                dirty += gm_popcount(~c->alloc.w[w] & ~c->scav.w[w]);
            }
            /* Stamps cannot be rebuilt from bitmaps: they are kept. */
            gm_scavchunk_of(pa, ci)->dirty = (uint16_t)dirty;
            if (dirty)
                gm_chunkbits_of(pa, ci)->dirty |= gm_chunk_bit(ci);
            else
                gm_chunkbits_of(pa, ci)->dirty &= ~gm_chunk_bit(ci);
        }
        for (int l = GM_LEAF - 1; l >= 0; l--) {
            unsigned log_child = gm_level_log_pages(l + 1);
            for (size_t i = base >> gm_level_shift(l); i <= (limit - 1) >> gm_level_shift(l); i++)
                *gm_sum(pa, l, i) = gm_merge(gm_sum(pa, l + 1, i * GM_BLOCK), log_child);
        }
    }
    pa->search_addr = pa->in_use.len ? pa->in_use.ranges[0].base : GM_SEARCH_NONE;
    pa->scav.dirty_cursor.valid = pa->scav.free_cursor.valid = false;
}

