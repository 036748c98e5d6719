/*
 * pallocbits.h — below the page allocator: a chunk's bitmap of 512 pages and
 * the summaries of free runs that the radix tree is made of (pallocbits.c;
 * Go's mpallocbits.go). Pure functions of their arguments, so the table
 * tests reach them directly. Includes base.h only.
 */
#ifndef GM_PALLOCBITS_H
#define GM_PALLOCBITS_H

#include "base.h"

/* A summary of a region of pages: start (free pages at its low end), max
 * (the longest free run in it) and end (free pages at its high end), 21
 * bits each; bit 63 alone: a completely free root region of 2^21 pages. */
typedef uint64_t gm_pallocsum; /* start | max << 21 | end << 42, bit 63 = all free */

/* One bit per page of a chunk. */
struct gm_pallocbits {
    uint64_t w[GM_CHUNK_PAGES / 64];
};

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
#define GM_CHUNK_WORDS (GM_CHUNK_PAGES / 64)
#define GM_FREE_CHUNK_SUM gm_pack_sum(GM_CHUNK_PAGES, GM_CHUNK_PAGES, GM_CHUNK_PAGES)

/* Consecutive clear bits of b from bit i, at most max. */
unsigned gm_bits_clear_run(const struct gm_pallocbits *b, unsigned i, size_t max) GM_HIDDEN;
/* The radix tree's fan-out: a summary covers a block of 8 below it. */
#define GM_SUMMARY_LEVEL_BITS 3
#define GM_BLOCK ((size_t)1 << GM_SUMMARY_LEVEL_BITS) /* entries per block below the root */
/* The summary of a block of GM_BLOCK entries whose regions are
 * 2^log_child pages. */
gm_pallocsum gm_merge(const gm_pallocsum *block, unsigned log_child) GM_HIDDEN;

static inline unsigned gm_ctz(uint64_t x) { return x ? (unsigned)__builtin_ctzll(x) : 64; }
static inline unsigned gm_clz(uint64_t x) { return x ? (unsigned)__builtin_clzll(x) : 64; }
static inline unsigned gm_popcount(uint64_t x) { return (unsigned)__builtin_popcountll(x); }

/* Bits [lo, lo+n) of a word, 0 <= lo < 64, 1 <= n <= 64 - lo. */
static inline uint64_t gm_word_mask(unsigned lo, unsigned n)
{
    return (n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << lo;
}

/* Set bits [i, i+n); returns how many were clear before. */
static inline unsigned gm_bits_set(struct gm_pallocbits *b, unsigned i, unsigned n)
{
    unsigned was_clear = 0;
    while (n > 0) {
        unsigned o = i % 64, k = 64 - o < n ? 64 - o : n;
        uint64_t m = gm_word_mask(o, k);
        was_clear += gm_popcount(~b->w[i / 64] & m);
        b->w[i / 64] |= m;
        i += k;
        n -= k;
    }
    return was_clear;
}

/* Clear bits [i, i+n); returns how many were set before. */
static inline unsigned gm_bits_clear(struct gm_pallocbits *b, unsigned i, unsigned n)
{
    unsigned was_set = 0;
    while (n > 0) {
        unsigned o = i % 64, k = 64 - o < n ? 64 - o : n;
        uint64_t m = gm_word_mask(o, k);
        was_set += gm_popcount(b->w[i / 64] & m);
        b->w[i / 64] &= ~m;
        i += k;
        n -= k;
    }
    return was_set;
}

#endif /* GM_PALLOCBITS_H */
