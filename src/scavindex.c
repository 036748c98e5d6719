/*
 * scavindex.c — layer 3: the page allocator's scavenge index, searched
 * (Go's scavengeIndex, simplified); pagealloc.c keeps it up to date as
 * pages change state.
 *
 * The scavenge index (Go's scavengeIndex, simplified). The heap's scavenger
 * asks two questions: which is the highest chunk with dirty pages (free and
 * not scavenged) that were freed long enough ago, and, in strict-commit
 * mode, which is the highest chunk that is entirely free and old enough.
 * (A third, asked rarely and without the index: the highest free run of a
 * given length in a chunk that still holds live pages, gm_pagealloc_take_run,
 * which reads the chunks' leaf summaries from the top down.) Per
 * chunk a gm_scavchunk counts its dirty pages and keeps a stamp: the owner's
 * clock pa->now when a free last left dirty pages there. grow and
 * free_scavenged leave no dirty pages, so they do not stamp, and a chunk
 * never stamped counts as old. Two bitmaps over chunk indices, one word of
 * each per 64 chunks side by side (gm_chunkbits), say which chunks have
 * dirty pages and which are entirely free; the free bit is kept by the one
 * place leaf summaries are written, since "entirely free" is exactly a leaf
 * of 512/512/512. Records and bitmaps are committed with the chunks they
 * describe (in their regions), so a search reads only the words over in_use
 * ranges, from the top down, 64 chunks a word, and never a page bitmap but
 * the one chunk it takes from. Invariants: dirty == popcount(~alloc &
 * ~scav) of the chunk, its dirty bit is set iff dirty > 0, its free bit iff
 * its leaf is all free. Pages in page caches are in use here, so they are
 * neither counted nor found.
 *
 * Young chunks. A search passes over candidates too young for its
 * older_than. So that the scavenger's repeated calls (take a run, drop the
 * lock to release it, come back) do not pass over the same young chunks
 * every time, each search leaves a cursor: no chunk at or above top is a
 * candidate for its older_than. A search with the same or an earlier
 * older_than resumes there; one with a later older_than (the clock moved)
 * starts again from the top. The cursor stays true because stamps only
 * move forward, so a chunk gets no older by being freed into; the two ways
 * a chunk at or above top can still turn into a candidate (a stamp that is
 * old for the cursor's time, i.e. older_than == now, or a chunk becoming
 * entirely free while old) drop the cursor. Calls with one older_than thus
 * cost O(1) amortized, and each new older_than costs one pass over the
 * index: heap chunks / 64 words + in_use ranges + young chunks, per clock
 * tick, however many calls there are.
 *
 * Everything here runs under the owner's lock.
 */
#include "pagealloc.h"

/* ------------------------------------------------------------------------ */
/* The scavenger's side                                                     */
/* ------------------------------------------------------------------------ */

/* The highest chunk below `below` whose bit is set in the free (else the
 * dirty) bitmap and that is old for t; SIZE_MAX if none. Only the words over
 * in_use ranges are read (the rest may not be mapped); each young candidate
 * passed over costs one record load. */
static size_t gm_index_find(struct gm_pagealloc *pa, bool free_bitmap, size_t below, uint32_t t)
{
    const struct gm_addr_ranges *r = &pa->in_use;
    if (below <= pa->start) return SIZE_MAX;
    size_t k = gm_ranges_succ(r, gm_chunk_base(below) - 1); /* the range holding below - 1, or above it */
    for (k = k < r->len ? k + 1 : r->len; k-- > 0;) {
        size_t lo = gm_chunk_index(r->ranges[k].base), hi = gm_chunk_index(r->ranges[k].limit);
        if (hi > below) hi = below;
        while (hi > lo) {
            size_t w = (hi - 1) / 64;
            const struct gm_chunkbits *b = gm_chunkbits_of(pa, hi - 1);
            uint64_t x = free_bitmap ? b->free : b->dirty;
            if (hi % 64) x &= gm_chunk_bit(hi) - 1;         /* below hi */
            if (w == lo / 64) x &= ~(gm_chunk_bit(lo) - 1); /* at or above lo */
            for (; x; x &= ~((uint64_t)1 << (63 - gm_clz(x)))) {
                size_t ci = w * 64 + 63 - gm_clz(x);
                if (gm_scav_old(pa, gm_scavchunk_of(pa, ci), t)) return ci;
                pa->scav.passed_over++;
            }
            hi = w * 64;
        }
    }
    return SIZE_MAX;
}

/* gm_index_find from where cursor c allows, leaving c at the answer. A
 * cursor left for t or a later time holds for t. */
static size_t gm_index_search(struct gm_pagealloc *pa, struct gm_scav_cursor *c, bool free_bitmap, uint32_t t)
{
    size_t from = pa->end;
    if (c->valid && gm_at_or_before(pa, t, c->older_than)) from = c->top;
    size_t ci = gm_index_find(pa, free_bitmap, from, t);
    *c = (struct gm_scav_cursor){.top = ci == SIZE_MAX ? 0 : ci + 1, .older_than = t, .valid = true};
    return ci;
}

/* Length of the run of dirty pages of c that ends just below page `end`
 * (exclusive), counted downward, at most max. */
static unsigned gm_dirty_run_down(const struct gm_pallocdata *c, unsigned end, size_t max)
{
    unsigned n = 0;
    while (end > 0 && n < max) {
        unsigned w = (end - 1) / 64, b = (end - 1) % 64;
        /* Page end - 1 moved to bit 63: leading ones are the run within the
         * word, and the zeros shifted in below stop it at the word's start. */
        uint64_t x = ~(c->alloc.w[w] | c->scav.w[w]) << (63 - b);
        unsigned k = gm_clz(~x);
        if (k > max - n) k = (unsigned)(max - n);
        n += k;
        end -= k;
        if (k <= b) break; /* stopped inside the word (or at max) */
    }
    return n;
}

uintptr_t gm_pagealloc_scavenge_take(struct gm_pagealloc *pa, size_t max_pages, uint32_t older_than,
                                     size_t *npages)
{
    *npages = 0;
    if (max_pages == 0 || pa->end == 0) return 0;
    size_t ci = gm_index_search(pa, &pa->scav.dirty_cursor, false, older_than);
    if (ci == SIZE_MAX) return 0;
    const struct gm_pallocdata *c = gm_chunk_of(pa, ci);
    unsigned end = 0; /* one past the highest dirty page */
    for (unsigned w = GM_CHUNK_WORDS; w-- > 0 && end == 0;) {
        uint64_t x = ~(c->alloc.w[w] | c->scav.w[w]);
        if (x) end = w * 64 + 64 - gm_clz(x);
    }
    if (end == 0) gm_fatal("page allocator: bad scavenge index (no dirty page)", NULL);
    unsigned n = gm_dirty_run_down(c, end, max_pages);
    uintptr_t base = gm_chunk_base(ci) + ((uintptr_t)(end - n) << GM_PAGE_SHIFT);
    gm_alloc_range(pa, base, n); /* dirty pages: no scavenged bytes */
    *npages = n;
    return base;
}

uintptr_t gm_pagealloc_take_free_chunk(struct gm_pagealloc *pa, uint32_t older_than, size_t *scav_pages)
{
    *scav_pages = 0;
    if (pa->end == 0) return 0;
    size_t ci = gm_index_search(pa, &pa->scav.free_cursor, true, older_than);
    if (ci == SIZE_MAX) return 0;
    *scav_pages = gm_alloc_range(pa, gm_chunk_base(ci), GM_CHUNK_PAGES) >> GM_PAGE_SHIFT;
    return gm_chunk_base(ci);
}

uintptr_t gm_pagealloc_take_beside(struct gm_pagealloc *pa, uintptr_t addr, bool up, uint32_t older_than,
                                   size_t *npages, size_t *scav_pages)
{
    *npages = *scav_pages = 0;
    size_t ci = gm_chunk_index(up ? addr : addr - 1);
    struct gm_pallocdata *c = gm_pagealloc_chunk(pa, ci);
    if (!c || !gm_scav_old(pa, gm_scavchunk_of(pa, ci), older_than)) return 0;
    /* The run, in page indexes of the chunk: [lo, hi). */
    unsigned first = (unsigned)((addr - gm_chunk_base(ci)) >> GM_PAGE_SHIFT) - (up ? 0 : 1), lo = first, hi = first + 1;
    if (c->alloc.w[first / 64] >> (first % 64) & 1) return 0;
    if (up)
        while (hi < GM_CHUNK_PAGES && !(c->alloc.w[hi / 64] >> (hi % 64) & 1)) hi++;
    else
        while (lo > 0 && !(c->alloc.w[(lo - 1) / 64] >> ((lo - 1) % 64) & 1)) lo--;
    uintptr_t base = gm_chunk_base(ci) + ((uintptr_t)lo << GM_PAGE_SHIFT);
    *npages = hi - lo;
    *scav_pages = gm_alloc_range(pa, base, *npages) >> GM_PAGE_SHIFT;
    return base;
}

static bool gm_page_in_use(const struct gm_pallocdata *c, unsigned i) { return c->alloc.w[i / 64] >> (i % 64) & 1; }

uintptr_t gm_pagealloc_take_run(struct gm_pagealloc *pa, size_t min_pages, uint32_t older_than, size_t *npages,
                                size_t *scav_pages)
{
    *npages = *scav_pages = 0;
    const struct gm_addr_ranges *r = &pa->in_use;
    for (size_t k = r->len; k-- > 0;) {
        size_t lo_ci = gm_chunk_index(r->ranges[k].base);
        for (size_t ci = gm_chunk_index(r->ranges[k].limit); ci-- > lo_ci;) {
            if (gm_sum_max(gm_pagealloc_summary(pa, GM_SUMMARY_LEVELS - 1, ci)) < min_pages) continue;
            if (!gm_scav_old(pa, gm_scavchunk_of(pa, ci), older_than)) continue;
            const struct gm_pallocdata *c = gm_chunk_of(pa, ci);
            /* The highest run long enough: [lo, hi) in page indexes. */
            for (unsigned hi = GM_CHUNK_PAGES, lo; hi > 0; hi = lo) {
                while (hi > 0 && gm_page_in_use(c, hi - 1)) hi--;
                for (lo = hi; lo > 0 && !gm_page_in_use(c, lo - 1);) lo--;
                if (hi - lo < min_pages) continue;
                uintptr_t base = gm_chunk_base(ci) + ((uintptr_t)lo << GM_PAGE_SHIFT);
                *npages = hi - lo;
                *scav_pages = gm_alloc_range(pa, base, *npages) >> GM_PAGE_SHIFT;
                return base;
            }
        }
    }
    return 0;
}

struct gm_scavchunk *gm_pagealloc_scavchunk(struct gm_pagealloc *pa, size_t ci)
{
    return gm_pagealloc_chunk(pa, ci) ? gm_scavchunk_of(pa, ci) : NULL;
}

bool gm_pagealloc_index_bit(struct gm_pagealloc *pa, size_t ci, bool free_bitmap)
{
    if (ci >= GM_MAX_CHUNKS || !pa->dir[ci / GM_REGION_CHUNKS]) return false; /* its words are in the head */
    const struct gm_chunkbits *b = gm_chunkbits_of(pa, ci);
    return ((free_bitmap ? b->free : b->dirty) & gm_chunk_bit(ci)) != 0;
}
