/*
 * pallocbits.c — below the page allocator (Go's mpallocbits.go): a chunk's
 * allocation bitmap and the summaries of its free runs.
 *
 * A summary describes a region of pages by three numbers: start (free pages
 * at its low end), max (longest free run anywhere in it) and end (free
 * pages at its high end). With those, runs that straddle regions can be
 * found without looking inside them. A summary packs into 64 bits, 21 bits
 * a field: enough for a region of 2^21 - 1 pages. Only a completely free
 * root region has 2^21 pages, and then start = max = end, so that one value
 * is bit 63 alone. A completely full region is 0, so full subtrees are
 * skipped with one compare, and summaries in memory that was mapped but
 * never written say "full", which is what unheaped address space is.
 *
 * Everything here is a pure function of its arguments (the page allocator
 * calls them under its lock; the table tests call them directly).
 */
#include "pallocbits.h"

/* Bit i is set in the result iff bits [i, i+n) of x are all set (n >= 1):
 * each pass ANDs in a shifted copy, doubling the run length it proves, until
 * n is reached; shifts never exceed the length already proved, so no run is
 * bridged across a gap. */
static inline uint64_t gm_runs_of(uint64_t x, unsigned n)
{
    unsigned have = 1; /* every set bit starts a run of at least `have` */
    while (have < n && x) {
        unsigned s = n - have < have ? n - have : have;
        x &= x >> s;
        have += s;
    }
    return x;
}

unsigned gm_find_bit_range64(uint64_t ones, unsigned n)
{
    if (n == 0) return 0;
    if (n > 64) return 64;
    return gm_ctz(gm_runs_of(ones, n));
}

gm_pallocsum gm_pallocbits_summarize(const struct gm_pallocbits *b)
{
    unsigned start = 0, max = 0, cur = 0; /* cur: the free run reaching the current bit */
    bool seen_used = false;
    for (unsigned i = 0; i < GM_CHUNK_WORDS; i++) {
        uint64_t x = b->w[i];
        if (x == 0) {
            cur += 64;
            continue;
        }
        unsigned lo = gm_ctz(x), hi = gm_clz(x);
        cur += lo; /* the run below this word ends at its lowest used page */
        if (!seen_used) {
            start = cur;
            seen_used = true;
        }
        if (cur > max) max = cur;
        /* Free runs strictly inside the word (between its lowest and highest
         * used pages) are at most 62 long: look only if one could win. */
        if (lo + hi < 63 && max < 62) {
            uint64_t inner = ~x & ((~(uint64_t)0 << (lo + 1)) & (~(uint64_t)0 >> (hi + 1)));
            for (uint64_t r = gm_runs_of(inner, max + 1); r; r &= r >> 1) max++;
        }
        cur = hi;
    }
    if (!seen_used) return GM_FREE_CHUNK_SUM;
    if (cur > max) max = cur;
    return gm_pack_sum(start, max, cur);
}

/* Word i of b with the bits below bit `from` (in word from/64) forced to 1. */
static inline uint64_t gm_word_from(const struct gm_pallocbits *b, unsigned i, unsigned from)
{
    uint64_t x = b->w[i];
    if (i == from / 64) x |= ((uint64_t)1 << (from % 64)) - 1;
    return x;
}

unsigned gm_pallocbits_find(const struct gm_pallocbits *b, unsigned npages, unsigned search_idx,
                            unsigned *new_search)
{
    unsigned none = ~0u, first_free = ~0u;
    if (npages == 0 || npages > GM_CHUNK_PAGES || search_idx >= GM_CHUNK_PAGES) {
        if (new_search) *new_search = none;
        return none;
    }
    unsigned found = none;
    if (npages == 1) {
        for (unsigned i = search_idx / 64; i < GM_CHUNK_WORDS; i++) {
            uint64_t x = gm_word_from(b, i, search_idx);
            if (x != ~(uint64_t)0) {
                found = first_free = i * 64 + gm_ctz(~x);
                break;
            }
        }
    } else if (npages <= 64) {
        /* A run of at most 64 crosses at most one word boundary: it is either
         * the previous word's high free bits plus this word's low ones, or
         * inside this word. */
        unsigned tail = 0; /* free bits at the top of the previous word */
        for (unsigned i = search_idx / 64; i < GM_CHUNK_WORDS; i++) {
            uint64_t x = gm_word_from(b, i, search_idx);
            if (x == ~(uint64_t)0) {
                tail = 0;
                continue;
            }
            if (first_free == none) first_free = i * 64 + gm_ctz(~x);
            if (tail + gm_ctz(x) >= npages) {
                found = i * 64 - tail;
                break;
            }
            unsigned j = gm_find_bit_range64(~x, npages);
            if (j < 64) {
                found = i * 64 + j;
                break;
            }
            tail = gm_clz(x);
        }
    } else {
        /* Longer runs cross word boundaries: track the current run's start
         * and length, extending it by whole free words. */
        unsigned run_start = 0, run = 0;
        for (unsigned i = search_idx / 64; i < GM_CHUNK_WORDS; i++) {
            uint64_t x = gm_word_from(b, i, search_idx);
            if (x == ~(uint64_t)0) {
                run = 0;
                continue;
            }
            if (first_free == none) first_free = i * 64 + gm_ctz(~x);
            if (run > 0 && run + gm_ctz(x) >= npages) {
                found = run_start;
                break;
            }
            if (run > 0 && x == 0) {
                run += 64;
                continue;
            }
            run = gm_clz(x); /* a new run begins at this word's top */
            run_start = i * 64 + 64 - run;
        }
        if (found == none && run >= npages) found = run_start;
    }
    if (new_search) *new_search = first_free;
    return found;
}

unsigned gm_bits_clear_run(const struct gm_pallocbits *b, unsigned i, size_t max)
{
    unsigned n = 0;
    while (i < GM_CHUNK_PAGES && n < max) {
        uint64_t x = b->w[i / 64] >> (i % 64);
        unsigned avail = 64 - i % 64;
        unsigned z = gm_ctz(x);
        if (z > avail) z = avail;
        n += z;
        i += z;
        if (z < avail) break;
    }
    return n < max ? n : (unsigned)max;
}

/* ------------------------------------------------------------------------ */
/* Summaries                                                                */
/* ------------------------------------------------------------------------ */

gm_pallocsum gm_merge(const gm_pallocsum *c, unsigned log_child)
{
    const unsigned full = 1u << log_child;
    unsigned start = 0, max = 0, end = 0;
    bool all_free = true;
    for (size_t k = 0; k < GM_BLOCK; k++) {
        unsigned s = gm_sum_start(c[k]), m = gm_sum_max(c[k]), e = gm_sum_end(c[k]);
        if (all_free) start += s;
        if (end + s > max) max = end + s; /* a run across the boundary */
        if (m > max) max = m;
        if (s == full) {
            end += full;
        } else {
            end = e;
            all_free = false;
        }
    }
    return gm_pack_sum(start, max, end);
}
