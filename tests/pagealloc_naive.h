/* pagealloc_naive.h — independent, slow recomputations of the page
 * allocator's summaries, for unit_pagealloc.c and unit_pagealloc_model.c:
 * they walk bits and child summaries as runs of free pages instead of
 * merging packed fields the way pagealloc.c does, so a shared mistake is
 * unlikely. */
#ifndef GM_PAGEALLOC_NAIVE_H
#define GM_PAGEALLOC_NAIVE_H
#include "internal.h"

static bool bit(const struct gm_pallocbits *b, unsigned i) { return b->w[i / 64] >> (i % 64) & 1; }

/* A chunk's (start, max, end) free runs, bit by bit. */
static void naive_chunk_sum(const struct gm_pallocbits *b, unsigned *s, unsigned *m, unsigned *e)
{
    unsigned cur = 0;
    bool seen = false;
    *s = *m = 0;
    for (unsigned i = 0; i < GM_CHUNK_PAGES; i++) {
        if (!bit(b, i)) {
            if (++cur > *m) *m = cur;
            continue;
        }
        if (!seen) *s = cur;
        seen = true;
        cur = 0;
    }
    if (!seen) *s = GM_CHUNK_PAGES;
    *e = cur;
}

/* The summary of entry i of level l, from its 8 children (level l + 1),
 * by walking them as runs of free pages. */
static void naive_parent_sum(struct gm_pagealloc *pa, int l, size_t i, unsigned *s, unsigned *m, unsigned *e)
{
    unsigned full = 1u << (GM_CHUNK_SHIFT - GM_PAGE_SHIFT + (GM_SUMMARY_LEVELS - 2 - l) * GM_SUMMARY_LEVEL_BITS);
    unsigned cur = 0;
    bool seen = false;
    *s = *m = 0;
    for (size_t k = 0; k < 8; k++) {
        gm_pallocsum c = gm_pagealloc_summary(pa, l + 1, i * 8 + k);
        if (gm_sum_start(c) == full) {
            cur += full;
            continue;
        }
        cur += gm_sum_start(c);
        if (!seen) *s = cur;
        seen = true;
        if (cur > *m) *m = cur;
        if (gm_sum_max(c) > *m) *m = gm_sum_max(c);
        cur = gm_sum_end(c);
    }
    if (!seen) *s = cur;
    if (cur > *m) *m = cur;
    *e = cur;
}
#endif
