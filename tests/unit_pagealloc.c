/* unit_pagealloc.c — Go's page allocator on private instances, table driven
 * as in Go's mpagealloc_test.go / mpagecache_test.go: allocators are built
 * declaratively (chunk -> alloc ranges, scavenged ranges), driven through
 * alloc/free/grow/page-cache operations, and compared bit for bit with an
 * expected allocator built the same way. Every resulting allocator also
 * passes a slow consistency check: summaries at every level recomputed from
 * the bitmaps, exact free/scavenged counters, scav & alloc == 0, the
 * searchAddr invariant (no free page below it), and the scavenge index:
 * per-chunk dirty counts and both chunk-index bitmaps recomputed from the
 * bitmaps, and the search cursors' promise (no candidate above them).
 *
 * Addresses are metadata only: chunks live at 0x300000000000 + i * 4 MiB and
 * no heap memory is ever touched. */
#include "internal.h"
#include "test.h"
#include "pagealloc_naive.h"

#include <string.h>

#define BASE_CI ((size_t)(0x300000000000ull >> GM_CHUNK_SHIFT))
#define PAGE ((size_t)GM_PAGE_SIZE)
#define CP GM_CHUNK_PAGES
#define NONE GM_SEARCH_NONE

static gm_stat meta; /* every test allocator's metadata */

/* Address of page p of test chunk ci (relative to BASE_CI). */
#define PA(ci, p) ((((uintptr_t)BASE_CI + (uintptr_t)(ci)) << GM_CHUNK_SHIFT) + (uintptr_t)(p) * PAGE)

struct br {
    unsigned start, n;
};
#define MAXR 8
struct chunk_spec {
    bool on;
    size_t ci; /* relative to BASE_CI */
    struct br alloc[MAXR], scav[MAXR];
    uint64_t stamp; /* 0: never stamped, else (uint32_t)stamp (1ull << 32 is time 0) */
};
#define MAXCH 10
#define CH(i, ...) {.on = true, .ci = (i), __VA_ARGS__}

/* ------------------------------------------------------------------------ */
/* Slow consistency check (independent of pagealloc.c's own merge)          */
/* ------------------------------------------------------------------------ */


/* Old for t: never stamped, or stamped no later than t, ages measured back
 * from now (so that wrapping clocks compare right). */
static bool old_for(const struct gm_pagealloc *pa, const struct gm_scavchunk *s, uint32_t t)
{
    return !(s->flags & GM_SCAV_STAMPED) || (uint32_t)(pa->now - s->stamp) >= (uint32_t)(pa->now - t);
}

static bool in_use_has(struct gm_pagealloc *pa, uintptr_t a)
{
    for (size_t r = 0; r < pa->in_use.len; r++)
        if (pa->in_use.ranges[r].base <= a && a < pa->in_use.ranges[r].limit) return true;
    return false;
}

/* Returns the number of problems found (and prints them). */
static int consistency(struct gm_pagealloc *pa, const char *name)
{
    int bad = 0;
#define BAD(...)                                                                                       \
    do {                                                                                               \
        if (bad++ < 8) {                                                                               \
            fprintf(stderr, "%s: ", name);                                                             \
            fprintf(stderr, __VA_ARGS__);                                                              \
            fputc('\n', stderr);                                                                       \
        }                                                                                              \
    } while (0)
    size_t total = 0, free_pages = 0, scav_pages = 0;
    for (size_t r = 0; r < pa->in_use.len; r++) {
        struct gm_addr_range x = pa->in_use.ranges[r];
        if (x.base >= x.limit || x.base % GM_CHUNK_BYTES || x.limit % GM_CHUNK_BYTES) BAD("bad range %zu", r);
        if (r > 0 && pa->in_use.ranges[r - 1].limit >= x.base) BAD("ranges %zu/%zu not sorted+coalesced", r - 1, r);
        total += x.limit - x.base;
        for (size_t ci = x.base >> GM_CHUNK_SHIFT; ci < x.limit >> GM_CHUNK_SHIFT; ci++) {
            if (ci < pa->start || ci >= pa->end) BAD("chunk %#zx outside [start, end)", ci);
            struct gm_pallocdata *d = gm_pagealloc_chunk(pa, ci);
            if (!d) {
                BAD("chunk %#zx in use but no data", ci);
                continue;
            }
            for (int w = 0; w < 8; w++) {
                if (d->alloc.w[w] & d->scav.w[w]) BAD("chunk %#zx word %d: scav & alloc != 0", ci, w);
                free_pages += (size_t)__builtin_popcountll(~d->alloc.w[w]);
                scav_pages += (size_t)__builtin_popcountll(d->scav.w[w] & ~d->alloc.w[w]);
            }
            unsigned s, m, e;
            naive_chunk_sum(&d->alloc, &s, &m, &e);
            gm_pallocsum got = gm_pagealloc_summary(pa, GM_SUMMARY_LEVELS - 1, ci);
            if (gm_sum_start(got) != s || gm_sum_max(got) != m || gm_sum_end(got) != e)
                BAD("leaf %#zx: (%u,%u,%u) want (%u,%u,%u)", ci, gm_sum_start(got), gm_sum_max(got), gm_sum_end(got), s,
                    m, e);
        }
    }
    for (int l = GM_SUMMARY_LEVELS - 2; l >= 0; l--) {
        unsigned shift = GM_CHUNK_SHIFT + (unsigned)(GM_SUMMARY_LEVELS - 1 - l) * GM_SUMMARY_LEVEL_BITS;
        for (size_t r = 0; r < pa->in_use.len; r++) {
            struct gm_addr_range x = pa->in_use.ranges[r];
            for (size_t i = x.base >> shift; i <= (x.limit - 1) >> shift; i++) {
                unsigned s, m, e;
                naive_parent_sum(pa, l, i, &s, &m, &e);
                gm_pallocsum got = gm_pagealloc_summary(pa, l, i);
                if (gm_sum_start(got) != s || gm_sum_max(got) != m || gm_sum_end(got) != e)
                    BAD("level %d entry %#zx: (%u,%u,%u) want (%u,%u,%u)", l, i, gm_sum_start(got), gm_sum_max(got),
                        gm_sum_end(got), s, m, e);
            }
        }
    }
    if (total != pa->in_use.total_bytes) BAD("total_bytes %zu want %zu", pa->in_use.total_bytes, total);
    if (free_pages != pa->free_pages) BAD("free_pages %zu want %zu", pa->free_pages, free_pages);
    if (scav_pages != pa->scav_pages) BAD("scav_pages %zu want %zu", pa->scav_pages, scav_pages);
    if (gm_pagealloc_scavengeable_pages(pa) != free_pages - scav_pages) BAD("scavengeable pages");
    /* The scavenge index over every bitmap word that covers in_use: chunks
     * not grown have no bits; grown ones match their page bitmaps. */
    const struct gm_scav_cursor *dc = &pa->scav.dirty_cursor, *fc = &pa->scav.free_cursor;
    for (size_t r = 0; r < pa->in_use.len; r++) {
        size_t lo = (pa->in_use.ranges[r].base >> GM_CHUNK_SHIFT) / 64 * 64;
        size_t hi = ((pa->in_use.ranges[r].limit >> GM_CHUNK_SHIFT) + 63) / 64 * 64;
        for (size_t ci = lo; ci < hi; ci++) {
            struct gm_pallocdata *d = gm_pagealloc_chunk(pa, ci);
            bool dbit = gm_pagealloc_index_bit(pa, ci, false), fbit = gm_pagealloc_index_bit(pa, ci, true);
            if (!d) {
                if (dbit || fbit) BAD("chunk %#zx not grown but in the index", ci);
                continue;
            }
            unsigned dirty = 0, used = 0;
            for (int w = 0; w < 8; w++) {
                dirty += (unsigned)__builtin_popcountll(~d->alloc.w[w] & ~d->scav.w[w]);
                used += (unsigned)__builtin_popcountll(d->alloc.w[w]);
            }
            const struct gm_scavchunk *sc = gm_pagealloc_scavchunk(pa, ci);
            if (sc->dirty != dirty) BAD("chunk %#zx: dirty %u want %u", ci, sc->dirty, dirty);
            if (dbit != (dirty > 0)) BAD("chunk %#zx: dirty bit %d with %u dirty pages", ci, dbit, dirty);
            if (fbit != (used == 0)) BAD("chunk %#zx: free bit %d with %u pages in use", ci, fbit, used);
            if (dc->valid && ci >= dc->top && dirty && old_for(pa, sc, dc->older_than))
                BAD("chunk %#zx: a scavenge candidate above the dirty cursor %#zx", ci, dc->top);
            if (fc->valid && ci >= fc->top && !used && old_for(pa, sc, fc->older_than))
                BAD("chunk %#zx: a free chunk candidate above the free cursor %#zx", ci, fc->top);
        }
    }
    /* searchAddr: in use (or NONE), and no free page below it. */
    uintptr_t sa = pa->search_addr;
    if (sa != NONE && !in_use_has(pa, sa)) BAD("search_addr %#lx not in use", (unsigned long)sa);
    for (size_t r = 0; r < pa->in_use.len; r++) {
        struct gm_addr_range x = pa->in_use.ranges[r];
        for (uintptr_t c = x.base; c < x.limit && c < sa; c += GM_CHUNK_BYTES) {
            struct gm_pallocdata *d = gm_pagealloc_chunk(pa, c >> GM_CHUNK_SHIFT);
            for (unsigned i = 0; d && i < CP && c + i * PAGE < sa; i++)
                if (!bit(&d->alloc, i)) {
                    BAD("free page %#lx below search_addr %#lx", (unsigned long)(c + i * PAGE), (unsigned long)sa);
                    break;
                }
        }
    }
#undef BAD
    return bad;
}

/* ------------------------------------------------------------------------ */
/* Declarative builder and comparison                                       */
/* ------------------------------------------------------------------------ */

static void set_ranges(struct gm_pallocbits *b, const struct br *r)
{
    memset(b, 0, sizeof *b);
    for (int k = 0; k < MAXR && r[k].n; k++)
        for (unsigned i = r[k].start; i < r[k].start + r[k].n; i++) b->w[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Grow each listed chunk (one at a time, in order), then set exactly the
 * listed bits and recompute the summaries and counters. */
static void build(struct gm_pagealloc *pa, const struct chunk_spec *spec)
{
    memset(pa, 0, sizeof *pa);
    CHECK_EQ(gm_pagealloc_init(pa, &meta), 0);
    for (int k = 0; k < MAXCH && spec[k].on; k++)
        CHECK_EQ(gm_pagealloc_grow(pa, PA(spec[k].ci, 0), GM_CHUNK_BYTES), 0);
    for (int k = 0; k < MAXCH && spec[k].on; k++) {
        struct gm_pallocdata *d = gm_pagealloc_chunk(pa, BASE_CI + spec[k].ci);
        CHECK(d != NULL);
        if (!d) continue;
        set_ranges(&d->alloc, spec[k].alloc);
        set_ranges(&d->scav, spec[k].scav);
        struct gm_scavchunk *sc = gm_pagealloc_scavchunk(pa, BASE_CI + spec[k].ci);
        sc->stamp = (uint32_t)spec[k].stamp;
        sc->flags = spec[k].stamp ? GM_SCAV_STAMPED : 0;
    }
    gm_pagealloc_recompute(pa);
}

/* Chunk ci's stamp, or -1 if it was never stamped. */
static int64_t stamp_of(struct gm_pagealloc *pa, size_t ci)
{
    const struct gm_scavchunk *sc = gm_pagealloc_scavchunk(pa, BASE_CI + ci);
    return sc && (sc->flags & GM_SCAV_STAMPED) ? (int64_t)sc->stamp : -1;
}

/* got must equal want: chunk range, in_use, both bitmaps of every chunk,
 * counters; and got must be consistent. Returns true if so. */
static bool same(const char *name, struct gm_pagealloc *got, struct gm_pagealloc *want)
{
    int before = test_failures;
    CHECK_EQ(got->start, want->start);
    CHECK_EQ(got->end, want->end);
    CHECK_EQ(got->in_use.len, want->in_use.len);
    for (size_t r = 0; r < got->in_use.len && r < want->in_use.len; r++) {
        CHECK_EQ(got->in_use.ranges[r].base, want->in_use.ranges[r].base);
        CHECK_EQ(got->in_use.ranges[r].limit, want->in_use.ranges[r].limit);
    }
    for (size_t r = 0; r < want->in_use.len; r++) {
        for (size_t ci = want->in_use.ranges[r].base >> GM_CHUNK_SHIFT; ci < want->in_use.ranges[r].limit >> GM_CHUNK_SHIFT;
             ci++) {
            struct gm_pallocdata *g = gm_pagealloc_chunk(got, ci), *w = gm_pagealloc_chunk(want, ci);
            if (!g) {
                CHECK(g != NULL);
                continue;
            }
            for (int k = 0; k < 8; k++) {
                if (g->alloc.w[k] != w->alloc.w[k] || g->scav.w[k] != w->scav.w[k])
                    fprintf(stderr, "%s: chunk +%#zx word %d: alloc %016llx scav %016llx, want %016llx %016llx\n",
                            name, ci - BASE_CI, k, (unsigned long long)g->alloc.w[k],
                            (unsigned long long)g->scav.w[k], (unsigned long long)w->alloc.w[k],
                            (unsigned long long)w->scav.w[k]);
                CHECK_EQ(g->alloc.w[k], w->alloc.w[k]);
                CHECK_EQ(g->scav.w[k], w->scav.w[k]);
            }
        }
    }
    CHECK_EQ(got->free_pages, want->free_pages);
    CHECK_EQ(got->scav_pages, want->scav_pages);
    CHECK_EQ(consistency(got, name), 0);
    if (test_failures != before) fprintf(stderr, "  ... in case %s\n", name);
    return test_failures == before;
}

/* ------------------------------------------------------------------------ */
/* alloc                                                                    */
/* ------------------------------------------------------------------------ */

struct hit {
    size_t npages;
    uintptr_t base; /* 0: must fail */
    size_t scav;    /* bytes */
};
#define MAXHITS 12

struct alloc_case {
    const char *name;
    struct chunk_spec before[MAXCH];
    struct hit hits[MAXHITS];
    struct chunk_spec after[MAXCH];
};

static void run_alloc_cases(const struct alloc_case *cases, size_t n)
{
    for (size_t c = 0; c < n; c++) {
        const struct alloc_case *t = &cases[c];
        struct gm_pagealloc pa, want;
        build(&pa, t->before);
        for (int h = 0; h < MAXHITS && t->hits[h].npages; h++) {
            size_t scav = 12345;
            uintptr_t got = gm_pagealloc_alloc(&pa, t->hits[h].npages, &scav);
            if (got != t->hits[h].base || (got && scav != t->hits[h].scav))
                fprintf(stderr, "%s hit %d (n=%zu): got %#lx scav %zu, want %#lx scav %zu\n", t->name, h,
                        t->hits[h].npages, (unsigned long)got, scav, (unsigned long)t->hits[h].base, t->hits[h].scav);
            CHECK_EQ(got, t->hits[h].base);
            if (got) CHECK_EQ(scav, t->hits[h].scav);
            if (!got) CHECK_EQ(scav, 0);
            if (!got && t->hits[h].npages == 1) CHECK_EQ(pa.search_addr, NONE);
        }
        build(&want, t->after);
        same(t->name, &pa, &want);
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
    }
}

static const struct alloc_case alloc_cases[] = {
    {"AllFree1",
     {CH(0, .scav = {{0, 1}, {64, 64}})},
     {{1, PA(0, 0), PAGE}, {1, PA(0, 1), 0}, {1, PA(0, 2), 0}},
     {CH(0, .alloc = {{0, 3}}, .scav = {{64, 64}})}},
    {"ManyChunks1",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP - 1}}, .scav = {{CP - 1, 1}})},
     {{1, PA(2, CP - 1), PAGE}, {1, 0, 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})}},
    {"NotContiguous1",
     {CH(0, .alloc = {{0, CP}}), CH(0xff, .scav = {{0, 1}})},
     {{1, PA(0xff, 0), PAGE}, {1, PA(0xff, 1), 0}},
     {CH(0, .alloc = {{0, CP}}), CH(0xff, .alloc = {{0, 2}})}},
    {"AllFree2",
     {CH(0, .scav = {{0, 3}})},
     {{2, PA(0, 0), 2 * PAGE}, {2, PA(0, 2), PAGE}, {2, PA(0, 4), 0}},
     {CH(0, .alloc = {{0, 6}})}},
    {"Straddle2",
     {CH(0, .alloc = {{0, CP - 1}}, .scav = {{CP - 1, 1}}), CH(1, .alloc = {{1, CP - 1}}, .scav = {{0, 1}})},
     {{2, PA(0, CP - 1), 2 * PAGE}, {2, 0, 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})}},
    {"AllFree5",
     {CH(0, .scav = {{0, 8}, {9, 1}, {17, 5}})},
     {{5, PA(0, 0), 5 * PAGE}, {5, PA(0, 5), 4 * PAGE}, {5, PA(0, 10), 0}, {5, PA(0, 15), 3 * PAGE}},
     {CH(0, .alloc = {{0, 20}}, .scav = {{20, 2}})}},
    {"AllFree64",
     {CH(0, .scav = {{0, 1}, {64, 64}, {129, 1}})},
     {{64, PA(0, 0), PAGE}, {64, PA(0, 64), 64 * PAGE}, {64, PA(0, 128), PAGE}},
     {CH(0, .alloc = {{0, 192}})}},
    {"AllFree65",
     {CH(0, .scav = {{129, 1}})},
     {{65, PA(0, 0), 0}, {65, PA(0, 65), PAGE}, {65, PA(0, 130), 0}},
     {CH(0, .alloc = {{0, 195}})}},
    {"HolesBeforeFit5",
     {CH(0, .alloc = {{0, 10}, {14, 20}, {37, 100}}, .scav = {{10, 4}, {140, 2}})},
     {{5, PA(0, 137), 2 * PAGE}, {3, PA(0, 10), 3 * PAGE}, {3, PA(0, 34), 0}, {2, PA(0, 142), 0}},
     {CH(0, .alloc = {{0, 13}, {14, 130}}, .scav = {{13, 1}})}},
    {"ExhaustChunkPages-3",
     {CH(0), CH(1, .scav = {{0, CP}})},
     {{CP - 3, PA(0, 0), 0},
      {CP - 3, PA(0, CP - 3), (CP - 6) * PAGE},
      {CP - 3, 0, 0},
      {3, PA(1, CP - 6), 3 * PAGE},
      {3, PA(1, CP - 3), 3 * PAGE},
      {3, 0, 0},
      {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})}},
    {"AllFreeChunkPages",
     {CH(0, .scav = {{0, 1}, {CP - 1, 1}}), CH(1, .scav = {{0, CP}})},
     {{CP, PA(0, 0), 2 * PAGE}, {CP, PA(1, 0), CP * PAGE}, {CP, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})}},
    {"StraddleChunkPages",
     {CH(0, .alloc = {{0, CP / 2}}, .scav = {{300, 10}}), CH(1, .alloc = {{CP / 2, CP / 2}}, .scav = {{0, 5}})},
     {{CP, PA(0, CP / 2), 15 * PAGE}, {CP, 0, 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})}},
    {"StraddleChunkPages+1",
     {CH(0, .alloc = {{0, CP / 2 - 1}}), CH(1, .alloc = {{CP / 2, CP / 2}}), CH(2, .alloc = {{1, CP - 1}})},
     {{CP + 1, PA(0, CP / 2 - 1), 0}, {CP + 1, 0, 0}, {1, PA(2, 0), 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})}},
    {"AllFreeChunkPages*2",
     {CH(0), CH(1), CH(2), CH(3, .scav = {{CP - 1, 1}})},
     {{2 * CP, PA(0, 0), 0}, {2 * CP, PA(2, 0), PAGE}, {2 * CP, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}}), CH(3, .alloc = {{0, CP}})}},
    {"NotContiguousChunkPages*2",
     {CH(0), CH(0x40), CH(0x41)},
     {{2 * CP, PA(0x40, 0), 0}, {2 * CP, 0, 0}, {CP, PA(0, 0), 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(0x40, .alloc = {{0, CP}}), CH(0x41, .alloc = {{0, CP}})}},
    {"StraddleChunkPages*2",
     {CH(0, .alloc = {{0, CP / 2}}), CH(1), CH(2, .alloc = {{CP / 2, CP / 2}})},
     {{2 * CP, PA(0, CP / 2), 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})}},
    {"StraddleChunkPages*5/4",
     {CH(0, .alloc = {{0, CP - 64}}), CH(1), CH(2, .alloc = {{0, 1}}), CH(3, .alloc = {{130, CP - 130}})},
     {{CP * 5 / 4, PA(2, 1), 0}, {CP * 5 / 4, 0, 0}, {CP + 64, PA(0, CP - 64), 0}, {1, PA(3, 129), 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}}), CH(3, .alloc = {{0, CP}})}},
    {"AllFreeChunkPages*7+5",
     {CH(0), CH(1), CH(2), CH(3), CH(4), CH(5), CH(6), CH(7, .scav = {{0, 10}})},
     {{7 * CP + 5, PA(0, 0), 5 * PAGE}, {7 * CP + 5, 0, 0}, {CP - 5, PA(7, 5), 5 * PAGE}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}}), CH(3, .alloc = {{0, CP}}),
      CH(4, .alloc = {{0, CP}}), CH(5, .alloc = {{0, CP}}), CH(6, .alloc = {{0, CP}}), CH(7, .alloc = {{0, CP}})}},
    /* find's candidate searchAddr (the base of a level-1 entry) lies in the
     * unmapped gap before chunk 1023: it must be moved up into in_use, or the
     * next allocation would read summaries that were never mapped. */
    {"CandidateInGap",
     {CH(0, .alloc = {{0, CP}}), CH(1023), CH(1024)},
     {{2 * CP, PA(1023, 0), 0}, {1, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1023, .alloc = {{0, CP}}), CH(1024, .alloc = {{0, CP}})}},
    /* Chunks 4 TiB apart, in different root entries. */
    {"FarApart",
     {CH(0, .alloc = {{0, CP - 1}}), CH(0x100000, .alloc = {{0, 10}}), CH(0x100001)},
     {{1, PA(0, CP - 1), 0}, {2, PA(0x100000, 10), 0}, {CP, PA(0x100000, 12), 0}, {CP, 0, 0}, {CP - 12, PA(0x100001, 12), 0}},
     {CH(0, .alloc = {{0, CP}}), CH(0x100000, .alloc = {{0, CP}}), CH(0x100001, .alloc = {{0, CP}})}},
};

/* After every allocation the searchAddr hint lands inside in_use. */
static void test_alloc_search_addr_in_gap(void)
{
    struct gm_pagealloc pa;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, CP}}), CH(1023), CH(1024)});
    size_t scav;
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2 * CP - 1, &scav), PA(1023, 0));
    CHECK(pa.search_addr >= PA(1023, 0) && pa.search_addr < PA(1025, 0));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(1024, CP - 1));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
    CHECK_EQ(pa.search_addr, NONE);
    CHECK_EQ(consistency(&pa, "search_addr_in_gap"), 0);
    gm_pagealloc_destroy(&pa);
}

static void test_exhaust(void)
{
    static const size_t ns[] = {1, 2, 3, 4, 5, 8, 16, 64, 1024, 1025, 2048, 2049};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        size_t n = ns[k];
        char name[64];
        snprintf(name, sizeof name, "Exhaust/%zu", n);
        struct gm_pagealloc pa, want;
        build(&pa, (struct chunk_spec[MAXCH]){CH(0), CH(1), CH(2), CH(3)});
        size_t fits = 4 * CP / n, scav;
        int wrong = 0;
        for (size_t i = 0; i < fits; i++) {
            uintptr_t got = gm_pagealloc_alloc(&pa, n, &scav);
            if (got != PA(0, i * n) && wrong++ == 0)
                fprintf(stderr, "%s: alloc %zu got %#lx want %#lx\n", name, i, (unsigned long)got,
                        (unsigned long)PA(0, i * n));
        }
        CHECK_EQ(wrong, 0);
        CHECK_EQ(gm_pagealloc_alloc(&pa, n, &scav), 0);
        /* The expected bitmaps: the first fits * n pages in use. */
        struct chunk_spec after[MAXCH];
        memset(after, 0, sizeof after);
        size_t used = fits * n;
        for (unsigned c = 0; c < 4; c++) {
            after[c].on = true;
            after[c].ci = c;
            size_t lo = c * CP, hi = lo + CP;
            if (used > lo) after[c].alloc[0] = (struct br){0, (unsigned)((used < hi ? used : hi) - lo)};
        }
        build(&want, after);
        same(name, &pa, &want);
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
    }
}

/* ------------------------------------------------------------------------ */
/* free                                                                     */
/* ------------------------------------------------------------------------ */

struct free_case {
    const char *name;
    struct chunk_spec before[MAXCH];
    struct {
        uintptr_t base;
        size_t npages;
    } frees[MAXHITS];
    struct chunk_spec after[MAXCH];
};

static const struct free_case free_cases[] = {
    {"Free1",
     {CH(0, .alloc = {{0, CP}})},
     {{PA(0, 1), 1}, {PA(0, 2), 1}, {PA(0, 0), 1}, {PA(0, CP - 1), 1}},
     {CH(0, .alloc = {{3, CP - 4}})}},
    {"ManyChunks1",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})},
     {{PA(0, 0), 1}, {PA(1, 0), 1}, {PA(2, CP - 1), 1}},
     {CH(0, .alloc = {{1, CP - 1}}), CH(1, .alloc = {{1, CP - 1}}), CH(2, .alloc = {{0, CP - 1}})}},
    {"Free2",
     {CH(0, .alloc = {{0, CP}})},
     {{PA(0, 2), 2}, {PA(0, 0), 2}, {PA(0, 62), 2}},
     {CH(0, .alloc = {{4, 58}, {64, CP - 64}})}},
    {"Free5/KeepsScav",
     {CH(0, .alloc = {{0, 100}}, .scav = {{100, 50}})},
     {{PA(0, 5), 5}, {PA(0, 60), 5}, {PA(0, 95), 5}},
     {CH(0, .alloc = {{0, 5}, {10, 50}, {65, 30}}, .scav = {{100, 50}})}},
    {"Free64",
     {CH(0, .alloc = {{0, CP}})},
     {{PA(0, 0), 64}, {PA(0, 64), 64}, {PA(0, 200), 64}},
     {CH(0, .alloc = {{128, 72}, {264, CP - 264}})}},
    {"Free65",
     {CH(0, .alloc = {{0, CP}})},
     {{PA(0, 0), 65}, {PA(0, 65), 65}, {PA(0, 447), 65}},
     {CH(0, .alloc = {{130, 317}})}},
    {"FreeChunkPages",
     {CH(0, .alloc = {{0, CP}})},
     {{PA(0, 0), CP}},
     {CH(0)}},
    {"StraddleChunkPages",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})},
     {{PA(0, CP / 2), CP}},
     {CH(0, .alloc = {{0, CP / 2}}), CH(1, .alloc = {{CP / 2, CP / 2}})}},
    {"StraddleChunkPages+1",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})},
     {{PA(0, CP / 2 - 1), CP + 1}},
     {CH(0, .alloc = {{0, CP / 2 - 1}}), CH(1, .alloc = {{CP / 2, CP / 2}})}},
    {"FreeChunkPages*2",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})},
     {{PA(0, 0), 2 * CP}},
     {CH(0), CH(1)}},
    {"StraddleChunkPages*5/4",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})},
     {{PA(0, CP / 2), CP * 5 / 4}},
     {CH(0, .alloc = {{0, CP / 2}}), CH(1, .alloc = {{CP * 3 / 4, CP / 4}}), CH(2, .alloc = {{0, CP}})}},
    {"FreeChunkPages*7+5",
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}}), CH(3, .alloc = {{0, CP}}),
      CH(4, .alloc = {{0, CP}}), CH(5, .alloc = {{0, CP}}), CH(6, .alloc = {{0, CP}}), CH(7, .alloc = {{0, CP}})},
     {{PA(0, 0), 7 * CP + 5}},
     {CH(0), CH(1), CH(2), CH(3), CH(4), CH(5), CH(6), CH(7, .alloc = {{5, CP - 5}})}},
};

static void run_free_cases(void)
{
    for (size_t c = 0; c < sizeof free_cases / sizeof free_cases[0]; c++) {
        const struct free_case *t = &free_cases[c];
        struct gm_pagealloc pa, want;
        build(&pa, t->before);
        /* On a full heap, a failed 1-page request moves the hint to NONE, so
         * each free below must bring it down. */
        if (pa.free_pages == 0) {
            CHECK_EQ(gm_pagealloc_alloc(&pa, 1, NULL), 0);
            CHECK_EQ(pa.search_addr, NONE);
        }
        pa.now = 77;
        for (int f = 0; f < MAXHITS && t->frees[f].npages; f++) {
            gm_pagealloc_free(&pa, t->frees[f].base, t->frees[f].npages);
            CHECK(pa.search_addr <= t->frees[f].base);
        }
        /* Every chunk a free touched is stamped with now, and no other. */
        for (int k = 0; k < MAXCH && t->before[k].on; k++) {
            uintptr_t cb = PA(t->before[k].ci, 0);
            bool touched = false;
            for (int f = 0; f < MAXHITS && t->frees[f].npages; f++)
                touched |= t->frees[f].base < cb + GM_CHUNK_BYTES && cb < t->frees[f].base + t->frees[f].npages * PAGE;
            CHECK_EQ(stamp_of(&pa, t->before[k].ci), touched ? 77 : -1);
        }
        build(&want, t->after);
        same(t->name, &pa, &want);
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
    }
}

/* Interleaved allocs and frees always give back the same lowest base. */
static void test_alloc_and_free(void)
{
    struct gm_pagealloc pa;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0), CH(1), CH(2), CH(3), CH(4), CH(5), CH(6), CH(7)});
    size_t scav;
    for (int round = 0; round < 4; round++) {
        uintptr_t a = gm_pagealloc_alloc(&pa, 8 * CP, &scav);
        CHECK_EQ(a, PA(0, 0));
        CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
        gm_pagealloc_free(&pa, a, 8 * CP);
        uintptr_t b = gm_pagealloc_alloc(&pa, 1, &scav);
        CHECK_EQ(b, PA(0, 0));
        uintptr_t c = gm_pagealloc_alloc(&pa, 1, &scav);
        CHECK_EQ(c, PA(0, 1));
        CHECK_EQ(gm_pagealloc_alloc(&pa, 8 * CP, &scav), 0);
        gm_pagealloc_free(&pa, b, 1);
        CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(0, 0));
        gm_pagealloc_free(&pa, PA(0, 0), 2);
        CHECK_EQ(consistency(&pa, "alloc_and_free"), 0);
    }
    CHECK_EQ(pa.free_pages, 8 * CP);
    gm_pagealloc_destroy(&pa);
}

/* Frees below searchAddr are found: the lowest fit wins, never one above. */
static void test_search_hint(void)
{
    struct gm_pagealloc pa;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0), CH(1), CH(5, .scav = {{0, CP}})});
    size_t scav;
    for (size_t i = 0; i < 600; i++) CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(0, i));
    CHECK(pa.search_addr >= PA(1, 0)); /* the hint moved past chunk 0 */
    gm_pagealloc_free(&pa, PA(0, 10), 10);
    gm_pagealloc_free(&pa, PA(0, 3), 1);
    gm_pagealloc_free(&pa, PA(1, 50), 7);
    CHECK(pa.search_addr <= PA(0, 3));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 5, &scav), PA(0, 10));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(0, 3));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(0, 15));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 6, &scav), PA(1, 50));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 4, &scav), PA(0, 16));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(1, 56));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(1, 88));
    /* A large run skips the remainder of chunk 1 and lands in chunk 5. */
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP, &scav), PA(5, 0));
    CHECK_EQ(scav, CP * PAGE);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2, &scav), PA(1, 89));
    CHECK_EQ(consistency(&pa, "search_hint"), 0);
    /* Free in chunk 0 while the hint sits higher: fast path must not be used. */
    uintptr_t before = pa.search_addr;
    gm_pagealloc_free(&pa, PA(0, 500), 1);
    CHECK(pa.search_addr < before);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(0, 500));
    gm_pagealloc_destroy(&pa);
}

/* A full heap: every request fails, the hint says so, a free revives it. */
static void test_full_heap(void)
{
    struct gm_pagealloc pa;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(9, .alloc = {{0, CP}})});
    size_t scav = 7;
    CHECK_EQ(gm_pagealloc_alloc(&pa, 3, &scav), 0);
    CHECK(pa.search_addr != NONE); /* a failed multi-page request proves nothing */
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
    CHECK_EQ(pa.search_addr, NONE);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
    struct gm_pagecache c = gm_pagealloc_alloc_to_cache(&pa);
    CHECK(gm_pagecache_empty(&c));
    CHECK_EQ(c.base, 0);
    CHECK_EQ(pa.free_pages, 0);
    gm_pagealloc_free(&pa, PA(9, 77), 2);
    CHECK_EQ(pa.search_addr, PA(9, 77));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 3, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2, &scav), PA(9, 77));
    CHECK_EQ(scav, 0);
    CHECK_EQ(consistency(&pa, "full_heap"), 0);
    gm_pagealloc_destroy(&pa);
}

/* The largest free run is found wherever it is, and nothing bigger is. */
static void test_largest_run(void)
{
    struct gm_pagealloc pa;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 100}, {105, 300}}),
                                          CH(1, .alloc = {{105, 300}, {500, 12}}),
                                          CH(2, .alloc = {{0, 400}, {402, 110}}), CH(3, .alloc = {{0, 1}, {189, 323}})});
    /* Free runs: 5 @ (0,100), 107+105 = 212 @ (0,405), 95 @ (1,405),
     * 2 @ (2,400), 188 @ (3,1). */
    size_t scav;
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(0, 405), 10000), 212);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(0, 405), 50), 50);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(0, 99), 10), 0);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(3, 1), 1000), 188);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 213, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 212, &scav), PA(0, 405));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 189, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 188, &scav), PA(3, 1));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 96, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 95, &scav), PA(1, 405));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 6, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 5, &scav), PA(0, 100));
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2, &scav), PA(2, 400));
    CHECK_EQ(pa.free_pages, 0);
    CHECK_EQ(consistency(&pa, "largest_run"), 0);
    gm_pagealloc_destroy(&pa);
}

/* alloc_range, free_scavenged, free_run_at edges. */
static void test_ranges_and_scav(void)
{
    struct gm_pagealloc pa, want;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{20, 5}}, .scav = {{0, 10}, {100, 412}}), CH(1, .scav = {{0, 4}})});
    /* Exact ranges, whatever their state: 5 scavenged pages among them. */
    CHECK_EQ(gm_pagealloc_alloc_range(&pa, PA(0, 5), 20), 5 * PAGE);
    CHECK_EQ(gm_pagealloc_alloc_range(&pa, PA(0, CP - 2), 4), 4 * PAGE);
    pa.now = 9;
    gm_pagealloc_free_scavenged(&pa, PA(0, 200), 3);      /* already free: only bits */
    gm_pagealloc_free_scavenged(&pa, PA(0, 6), 2);        /* allocated: now free and scavenged */
    gm_pagealloc_free(&pa, PA(1, 0), 1);                  /* freed, not scavenged */
    CHECK_EQ(stamp_of(&pa, 0), -1);                       /* nothing left dirty: no stamp */
    CHECK_EQ(stamp_of(&pa, 1), 9);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(0, 6), 100), 2);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(1, 0), 5000), 1);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(1, 2), 5000), CP - 2); /* chunk 2 not grown */
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(2, 0), 5), 0); /* not grown */
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(1, 3), 0), 0);
    build(&want, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{5, 1}, {8, 17}, {CP - 2, 2}}, .scav = {{0, 5}, {6, 2}, {100, 410}}),
                                            CH(1, .alloc = {{1, 1}}, .scav = {{2, 2}})});
    /* CH(1) page 0 was allocated by alloc_range then freed (unscavenged);
     * page 1 is still in use. */
    same("ranges_and_scav", &pa, &want);
    gm_pagealloc_destroy(&pa);
    gm_pagealloc_destroy(&want);
}

/* ------------------------------------------------------------------------ */
/* grow                                                                     */
/* ------------------------------------------------------------------------ */

static void check_in_use(const char *name, struct gm_pagealloc *pa, const struct gm_addr_range *want, size_t n)
{
    int before = test_failures;
    CHECK_EQ(pa->in_use.len, n);
    size_t total = 0;
    for (size_t i = 0; i < n && i < pa->in_use.len; i++) {
        CHECK_EQ(pa->in_use.ranges[i].base, want[i].base);
        CHECK_EQ(pa->in_use.ranges[i].limit, want[i].limit);
        total += want[i].limit - want[i].base;
    }
    CHECK_EQ(pa->in_use.total_bytes, total);
    CHECK_EQ(consistency(pa, name), 0);
    if (test_failures != before) fprintf(stderr, "  ... in grow case %s\n", name);
}

static void test_grow(void)
{
    struct gm_pagealloc pa;
    const size_t CB = GM_CHUNK_BYTES;

    /* Contiguous, both directions, and filling a hole between two ranges. */
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    CHECK_EQ(pa.search_addr, NONE);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(4, 0), CB), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(5, 0), 2 * CB), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(3, 0), CB), 0);
    CHECK_EQ(pa.search_addr, PA(3, 0));
    check_in_use("contiguous", &pa, (struct gm_addr_range[]){{PA(3, 0), PA(7, 0)}}, 1);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(9, 0), CB), 0);
    check_in_use("gap", &pa, (struct gm_addr_range[]){{PA(3, 0), PA(7, 0)}, {PA(9, 0), PA(10, 0)}}, 2);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(7, 0), 2 * CB), 0);
    check_in_use("fill", &pa, (struct gm_addr_range[]){{PA(3, 0), PA(10, 0)}}, 1);
    CHECK_EQ(pa.free_pages, 7 * CP);
    CHECK_EQ(pa.scav_pages, 7 * CP); /* fresh memory counts as released */
    for (size_t ci = 3; ci < 10; ci++) CHECK_EQ(stamp_of(&pa, ci), -1); /* and is not stamped */
    CHECK_EQ(pa.start, BASE_CI + 3);
    CHECK_EQ(pa.end, BASE_CI + 10);
    size_t scav;
    CHECK_EQ(gm_pagealloc_alloc(&pa, 7 * CP, &scav), PA(3, 0));
    CHECK_EQ(scav, 7 * CB);
    CHECK_EQ(pa.scav_pages, 0);
    gm_pagealloc_destroy(&pa);

    /* 33 discontiguous ranges, grown out of order: the range array grows
     * past 16 entries twice. */
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    struct gm_addr_range want[40];
    for (size_t k = 0; k < 33; k++) {
        size_t i = (k * 7) % 33; /* a permutation of 0..32 */
        CHECK_EQ(gm_pagealloc_grow(&pa, PA(2 * i, 0), CB), 0);
    }
    for (size_t i = 0; i < 33; i++) want[i] = (struct gm_addr_range){PA(2 * i, 0), PA(2 * i + 1, 0)};
    check_in_use("33 ranges", &pa, want, 33);
    CHECK(pa.in_use.cap >= 33);
    /* Fill every other gap: ranges coalesce in threes. */
    for (size_t i = 0; i < 32; i += 2) CHECK_EQ(gm_pagealloc_grow(&pa, PA(2 * i + 1, 0), CB), 0);
    size_t nw = 0;
    for (size_t i = 0; i < 32; i += 2) want[nw++] = (struct gm_addr_range){PA(2 * i, 0), PA(2 * i + 3, 0)};
    want[nw++] = (struct gm_addr_range){PA(64, 0), PA(65, 0)};
    check_in_use("coalesced", &pa, want, nw);
    /* Allocations hop across all the ranges in address order. */
    for (size_t i = 0; i < nw; i++) {
        size_t n = (want[i].limit - want[i].base) / PAGE;
        CHECK_EQ(gm_pagealloc_alloc(&pa, n, &scav), want[i].base);
    }
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
    gm_pagealloc_destroy(&pa);

    /* Extremely discontiguous: 4 TiB apart and near the top of the space. */
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    uintptr_t top = GM_ADDR_LIMIT - 2 * CB;
    CHECK_EQ(gm_pagealloc_grow(&pa, top, 2 * CB), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0x100000, 0), CB), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0, 0), CB), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, CB, CB), 0); /* the lowest chunk but one */
    check_in_use("far apart", &pa,
                 (struct gm_addr_range[]){{CB, 2 * CB}, {PA(0, 0), PA(1, 0)}, {PA(0x100000, 0), PA(0x100001, 0)}, {top, GM_ADDR_LIMIT}},
                 4);
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP + 1, &scav), top);
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP, &scav), CB);
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP, &scav), PA(0, 0));
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP, &scav), PA(0x100000, 0));
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP - 1, &scav), top + (CP + 1) * PAGE);
    CHECK_EQ(consistency(&pa, "far apart"), 0);
    gm_pagealloc_destroy(&pa);

    /* Growth that is not chunk aligned: the rest of the chunk stays in use
     * until a later growth hands it over. */
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0, 100), 200 * PAGE), 0);
    struct gm_pagealloc w;
    build(&w, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 100}, {300, 212}}, .scav = {{100, 200}})});
    same("unaligned grow", &pa, &w);
    gm_pagealloc_destroy(&w);
    CHECK_EQ(pa.search_addr, PA(0, 100));
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(0, 290), 1000), 10);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 201, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 50, &scav), PA(0, 100));
    CHECK_EQ(scav, 50 * PAGE);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0, 300), 262 * PAGE), 0); /* into chunk 1 */
    build(&w, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 150}}, .scav = {{150, 362}}), CH(1, .alloc = {{50, 462}}, .scav = {{0, 50}})});
    same("unaligned grow 2", &pa, &w);
    gm_pagealloc_destroy(&w);
    CHECK_EQ(pa.free_pages, 412);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 412, &scav), PA(0, 150));
    CHECK_EQ(scav, 412 * PAGE);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
    CHECK_EQ(gm_pagealloc_free_run_at(&pa, PA(1, 49), 5), 0);
    gm_pagealloc_destroy(&pa);

    /* Bad arguments change nothing. */
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0, 0) + 4096, CB), -1);
    CHECK_EQ(gm_pagealloc_grow(&pa, GM_ADDR_LIMIT - CB, 2 * CB), -1);
    CHECK_EQ(pa.in_use.len, 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), 0);
    gm_pagealloc_destroy(&pa);
}

/* Read-write bytes of this process's mappings inside [lo, hi), from
 * /proc/self/maps: what the kernel says is committed there. */
static size_t rw_runs; /* and how many mappings held them */
static size_t rw_bytes_in(uintptr_t lo, uintptr_t hi)
{
    size_t rw = 0;
    uintptr_t a, b;
    char perms[5];
    rw_runs = 0;
    for (test_maps_open(); test_maps_next(&a, &b, perms);) {
        if (perms[0] != 'r' || perms[1] != 'w') continue;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a < b) {
            rw += b - a;
            rw_runs++;
        }
    }
    return rw;
}

/* What the kernel says is committed in pa's sparse arrays (root and
 * regions). */
static size_t rw_bytes_of(struct gm_pagealloc *pa)
{
    size_t rw = rw_bytes_in(pa->root, pa->root + GM_ROOT_BYTES);
    for (size_t r = 0; r < GM_REGIONS; r++)
        if (pa->dir[r]) rw += rw_bytes_in(pa->dir[r], pa->dir[r] + gm_pagealloc_region_bytes());
    return rw;
}

static size_t regions_of(struct gm_pagealloc *pa)
{
    size_t n = 0;
    for (size_t r = 0; r < GM_REGIONS; r++) n += pa->dir[r] != 0;
    return n;
}

#define RANGES0 (16 * sizeof(struct gm_addr_range)) /* the first in_use array */

/* Metadata is mapped only where the heap is, charged to the named stat, and
 * destroy gives every byte back. */
static void test_metadata(void)
{
    gm_stat st = 0;
    struct gm_pagealloc pa;
    memset(&pa, 0, sizeof pa);
    uint64_t committed0 = gm_stat_load(&gm_os.committed), reserved0 = gm_stat_load(&gm_os.reserved);
    CHECK_EQ(gm_pagealloc_init(&pa, &st), 0);
    CHECK_EQ(gm_stat_load(&st), 0); /* nothing committed yet */
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - reserved0, GM_ROOT_BYTES); /* only the root is reserved */
    CHECK_EQ(regions_of(&pa), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0, 0), GM_CHUNK_BYTES), 0);
    uint64_t one = gm_stat_load(&st);
    /* One OS page of root summaries; in the chunk's region, the head (its
     * commit bitmap, levels 1 and 2, the scavenge bitmaps' words: two
     * pages), one page each of levels 3 and 4, of scavenge records and of
     * chunk records; and the range array. */
    CHECK_EQ(one, 7 * GM_OS_PAGE + RANGES0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - reserved0, GM_ROOT_BYTES + gm_pagealloc_region_bytes());
    CHECK(gm_pagealloc_region_bytes() < 3 * ((size_t)1 << 20)); /* 2.3 MiB per 64 GiB */
    CHECK_EQ(regions_of(&pa), 1);
    CHECK(pa.dir[PA(0, 0) >> GM_REGION_SHIFT] != 0);
    CHECK_EQ(rw_bytes_of(&pa), 7 * GM_OS_PAGE);
    /* A neighbouring chunk needs nothing new. */
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(1, 0), GM_CHUNK_BYTES), 0);
    CHECK_EQ(gm_stat_load(&st), one);
    CHECK(gm_pagealloc_summary(&pa, GM_SUMMARY_LEVELS - 1, BASE_CI) == gm_pack_sum(CP, CP, CP));
    CHECK_EQ(gm_pagealloc_summary(&pa, 0, BASE_CI >> 12), gm_pack_sum(2 * CP, 2 * CP, 0));
    CHECK_EQ(gm_pagealloc_summary(&pa, 2, (BASE_CI >> 6) + 1000), 0); /* never mapped reads as full */
    CHECK_EQ(gm_pagealloc_summary(&pa, 3, (BASE_CI >> 3) + 8 * 4096), 0); /* in no region */
    CHECK(gm_pagealloc_chunk(&pa, BASE_CI + 2) == NULL);
    CHECK(gm_pagealloc_chunk(&pa, BASE_CI + 1) != NULL);
    uint64_t committed1 = gm_stat_load(&gm_os.committed);
    /* (the range array may come from the persistent allocator's slack) */
    CHECK(committed1 - committed0 >= 7 * GM_OS_PAGE && committed1 - committed0 <= 7 * GM_OS_PAGE + 64 * 1024);
    gm_pagealloc_destroy(&pa);
    CHECK_EQ(gm_stat_load(&st), 0);
    CHECK_EQ(committed1 - gm_stat_load(&gm_os.committed), 7 * GM_OS_PAGE);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0);
}

/* The regions: a heap in two regions far apart, and one across a region
 * boundary; the directory has an entry exactly for the regions grown into;
 * a region that cannot be reserved or committed leaves nothing counted;
 * and the named stat is what the kernel has mapped read-write. */
static void test_regions(void)
{
    const size_t CB = GM_CHUNK_BYTES, RB = (size_t)1 << GM_REGION_SHIFT;
    gm_stat st = 0;
    struct gm_pagealloc pa;
    uint64_t reserved0 = gm_stat_load(&gm_os.reserved);
    CHECK_EQ(gm_pagealloc_init(&pa, &st), 0);
    /* far: 64 TiB above the test base, another root page and region. */
    uintptr_t near = PA(0, 0), far = PA(0, 0) + ((uintptr_t)1 << 46) - 2 * RB;
    size_t rn = near >> GM_REGION_SHIFT, rf = far >> GM_REGION_SHIFT;
    CHECK_EQ(gm_pagealloc_grow(&pa, near, 2 * CB), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, far, 2 * CB), 0);
    /* A range across the boundary between region rf and rf + 1. */
    uintptr_t cross = far + RB - CB;
    CHECK_EQ(gm_pagealloc_grow(&pa, cross, 2 * CB), 0);
    CHECK_EQ(regions_of(&pa), 3);
    CHECK(pa.dir[rn] && pa.dir[rf] && pa.dir[rf + 1]);
    CHECK(pa.dir[rn] != pa.dir[rf] && pa.dir[rf] != pa.dir[rf + 1]);
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - reserved0, GM_ROOT_BYTES + 3 * gm_pagealloc_region_bytes());
    CHECK_EQ(gm_stat_load(&st) - RANGES0, rw_bytes_of(&pa));
    CHECK_EQ(consistency(&pa, "regions"), 0);
    /* Address order across regions, and a run across the boundary. */
    size_t scav;
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2 * CP, &scav), near);
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP + 1, &scav), far);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2 * CP - 10, &scav), cross);
    CHECK_EQ(scav, (2 * CP - 10) * PAGE);
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP - 1, &scav), far + (CP + 1) * PAGE);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 11, &scav), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 10, &scav), cross + (2 * CP - 10) * PAGE);
    CHECK_EQ(pa.free_pages, 0);
    gm_pagealloc_free(&pa, cross + CB - 3 * PAGE, 6); /* 3 pages each side of the boundary */
    CHECK_EQ(consistency(&pa, "regions: free across"), 0);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 6, &scav), cross + CB - 3 * PAGE);
    gm_pagealloc_free(&pa, far, 2 * CP);
    CHECK(gm_pagealloc_index_bit(&pa, far >> GM_CHUNK_SHIFT, true));
    CHECK(!gm_pagealloc_index_bit(&pa, near >> GM_CHUNK_SHIFT, true));
    CHECK(!gm_pagealloc_index_bit(&pa, (far >> GM_CHUNK_SHIFT) + GM_REGION_CHUNKS * 4, true)); /* no region */
    CHECK_EQ(consistency(&pa, "regions: after"), 0);

    /* A new region (in a root page already committed) that cannot be
     * reserved, or whose head cannot be committed: -1, nothing reserved or
     * counted, no directory entry; then the same growth works. */
    uintptr_t next = near + 5 * RB;
    uint64_t c0 = gm_stat_load(&gm_os.committed), r0 = gm_stat_load(&gm_os.reserved), s0 = gm_stat_load(&st);
    for (int kind = 0; kind < 2; kind++) {
        gm_fault_set(kind ? GM_SYS_MAP : GM_SYS_RESERVE, 0, 1);
        CHECK_EQ(gm_pagealloc_grow(&pa, next, CB), -1);
        gm_fault_clear();
        CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
        CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);
        CHECK_EQ(gm_stat_load(&st), s0);
        CHECK_EQ(pa.dir[next >> GM_REGION_SHIFT], 0);
        CHECK(gm_pagealloc_chunk(&pa, next >> GM_CHUNK_SHIFT) == NULL);
    }
    CHECK_EQ(consistency(&pa, "regions: refused"), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, next, CB), 0);
    CHECK_EQ(regions_of(&pa), 4);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0 + gm_pagealloc_region_bytes());
    CHECK_EQ(gm_stat_load(&st) - s0, gm_stat_load(&gm_os.committed) - c0);
    CHECK_EQ(gm_stat_load(&st) - RANGES0, rw_bytes_of(&pa));
    CHECK_EQ(gm_pagealloc_alloc(&pa, CP, &scav), next);

    /* A region's metadata for a range that fills it from its start is a
     * few mappings whatever its size: 160 MiB more after next costs one
     * page of chunk records, contiguous with what is there. */
    uintptr_t rg = pa.dir[next >> GM_REGION_SHIFT];
    size_t rw1 = rw_bytes_in(rg, rg + gm_pagealloc_region_bytes());
    CHECK_EQ(rw_runs, 4); /* head and level 3; level 4; scavenge records; chunk records */
    CHECK_EQ(gm_pagealloc_grow(&pa, next + CB, 40 * CB), 0);
    CHECK_EQ(gm_stat_load(&st) - RANGES0, rw_bytes_of(&pa));
    CHECK_EQ(rw_bytes_in(rg, rg + gm_pagealloc_region_bytes()), rw1 + GM_OS_PAGE); /* 41 chunk records: 2 pages */
    CHECK_EQ(rw_runs, 4);
    CHECK_EQ(consistency(&pa, "regions: grown"), 0);
    gm_pagealloc_destroy(&pa);
    CHECK_EQ(gm_stat_load(&st), 0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0);
}

/* ------------------------------------------------------------------------ */
/* The page cache                                                           */
/* ------------------------------------------------------------------------ */

static void test_pagecache_alloc(void)
{
    static const struct {
        const char *name;
        uint64_t cache, scav;
        struct {
            size_t npages;
            int page; /* -1: must fail */
            size_t scav_pages;
        } hits[24];
    } cases[] = {
        {"Empty", 0, 0, {{1, -1, 0}, {5, -1, 0}, {64, -1, 0}}},
        {"Lo1", 0x1, 0x1, {{1, 0, 1}, {1, -1, 0}, {4, -1, 0}}},
        {"Hi1", 1ull << 63, 0, {{1, 63, 0}, {1, -1, 0}}},
        {"Sparse1",
         0x40005555,
         0x5505,
         {{2, -1, 0}, {1, 0, 1}, {1, 2, 1}, {1, 4, 0}, {1, 6, 0}, {1, 8, 1}, {1, 10, 1}, {1, 12, 1},
          {1, 14, 1}, {1, 30, 0}, {1, -1, 0}}},
        {"Lo2", 0x3, 0x2, {{2, 0, 1}, {2, -1, 0}, {1, -1, 0}}},
        {"Sparse2",
         0xccccull << 20,
         0xc0c0ull << 20,
         {{2, 22, 0}, {2, 26, 2}, {3, -1, 0}, {2, 30, 0}, {2, 34, 2}, {2, -1, 0}}},
        {"Hi50", ((1ull << 50) - 1) << 14, ((1ull << 10) - 1) << 14, {{50, 14, 10}, {50, -1, 0}, {1, -1, 0}}},
        {"Full64", ~0ull, ~0ull, {{64, 0, 64}, {64, -1, 0}, {1, -1, 0}}},
        {"FullMixed",
         ~0ull,
         0xffull << 8,
         {{5, 0, 0}, {7, 5, 4}, {1, 12, 1}, {30, 13, 3}, {63, -1, 0}, {20, 43, 0}, {2, -1, 0}, {1, 63, 0},
          {1, -1, 0}}},
    };
    uintptr_t base = PA(0, 64);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct gm_pagecache pc = {base, cases[c].cache, cases[c].scav};
        for (int h = 0; h < 24 && cases[c].hits[h].npages; h++) {
            size_t scav = 99;
            uintptr_t got = gm_pagecache_alloc(&pc, cases[c].hits[h].npages, &scav);
            uintptr_t want = cases[c].hits[h].page < 0 ? 0 : base + (size_t)cases[c].hits[h].page * PAGE;
            if (got != want) fprintf(stderr, "pagecache %s hit %d: got %#lx want %#lx\n", cases[c].name, h,
                                     (unsigned long)got, (unsigned long)want);
            CHECK_EQ(got, want);
            CHECK_EQ(scav, got ? cases[c].hits[h].scav_pages * PAGE : 0);
        }
    }
}

static void test_alloc_to_cache(void)
{
    static const struct {
        const char *name;
        struct chunk_spec before[MAXCH];
        struct gm_pagecache hits[4]; /* base as (chunk, page) below */
        struct {
            size_t ci, page;
        } at[4];
        int nhits;
        struct chunk_spec after[MAXCH];
    } cases[] = {
        {"AllFree",
         {CH(0, .scav = {{1, 1}, {64, 64}})},
         {{1, ~0ull, 0x2}, {1, ~0ull, ~0ull}, {1, ~0ull, 0}},
         {{0, 0}, {0, 64}, {0, 128}},
         3,
         {CH(0, .alloc = {{0, 192}})}},
        {"FirstFreeDecides",
         {CH(0, .alloc = {{0, 32}, {33, 31}, {96, 32}}, .scav = {{32, 1}, {66, 2}})},
         {{1, 1ull << 32, 1ull << 32}, {1, (1ull << 32) - 1, 0x3ull << 2}},
         {{0, 0}, {0, 64}},
         2,
         {CH(0, .alloc = {{0, 128}})}},
        {"KeepsOtherScav",
         {CH(0, .alloc = {{0, 1}, {10, 2}}, .scav = {{1, 3}, {70, 1}})},
         {{1, ~(uint64_t)(0x1 | (0x3 << 10)), 0x7 << 1}},
         {{0, 0}},
         1,
         {CH(0, .alloc = {{0, 64}}, .scav = {{70, 1}})}},
        {"SkipsFullChunks",
         {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP - 64}})},
         {{1, ~0ull, 0}},
         {{2, CP - 64}},
         1,
         {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})}},
        {"NotContiguous",
         {CH(0, .alloc = {{0, CP}}), CH(0xff, .alloc = {{0, 100}}, .scav = {{131, 67}})},
         {{1, ~0ull << 36, 0}, {1, ~0ull, ((1ull << 61) - 1) << 3}},
         {{0xff, 64}, {0xff, 128}},
         2,
         {CH(0, .alloc = {{0, CP}}), CH(0xff, .alloc = {{0, 192}}, .scav = {{192, 6}})}},
        {"Fail",
         {CH(0, .alloc = {{0, CP}})},
         {{0, 0, 0}, {0, 0, 0}},
         {{0, 0}, {0, 0}},
         2,
         {CH(0, .alloc = {{0, CP}})}},
        /* The first block's only free page is the last of its summary page
         * of chunks; the next is 4 TiB away. */
        {"FarApart",
         {CH(511, .alloc = {{0, CP - 1}}), CH(0x100000, .alloc = {{1, CP - 1}})},
         {{1, 1ull << 63, 0}, {1, 1, 0}, {0, 0, 0}},
         {{511, CP - 64}, {0x100000, 0}, {0, 0}},
         3,
         {CH(511, .alloc = {{0, CP}}), CH(0x100000, .alloc = {{0, CP}})}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct gm_pagealloc pa, want;
        build(&pa, cases[c].before);
        for (int h = 0; h < cases[c].nhits; h++) {
            struct gm_pagecache got = gm_pagealloc_alloc_to_cache(&pa);
            uintptr_t wbase = cases[c].hits[h].base ? PA(cases[c].at[h].ci, cases[c].at[h].page) : 0;
            if (got.base != wbase || got.cache != cases[c].hits[h].cache || got.scav != cases[c].hits[h].scav)
                fprintf(stderr, "alloc_to_cache %s hit %d: got %#lx %016llx %016llx want %#lx %016llx %016llx\n",
                        cases[c].name, h, (unsigned long)got.base, (unsigned long long)got.cache,
                        (unsigned long long)got.scav, (unsigned long)wbase,
                        (unsigned long long)cases[c].hits[h].cache, (unsigned long long)cases[c].hits[h].scav);
            CHECK_EQ(got.base, wbase);
            CHECK_EQ(got.cache, cases[c].hits[h].cache);
            CHECK_EQ(got.scav, cases[c].hits[h].scav);
            if (wbase) CHECK_EQ(pa.search_addr, wbase + 63 * PAGE);
            if (!wbase) CHECK_EQ(pa.search_addr, NONE);
        }
        build(&want, cases[c].after);
        same(cases[c].name, &pa, &want);
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
    }
}

/* Expected bitmaps for the bits of a 64-page word as ranges from page base. */
static void word_ranges(uint64_t bits, unsigned base, struct br *out)
{
    int n = 0;
    memset(out, 0, MAXR * sizeof *out);
    for (unsigned i = 0; i < 64;) {
        if (!(bits >> i & 1)) {
            i++;
            continue;
        }
        unsigned j = i;
        while (j < 64 && (bits >> j & 1)) j++;
        if (n < MAXR) out[n] = (struct br){base + i, j - i};
        n++;
        i = j;
    }
    CHECK(n <= MAXR);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Bits lo..hi of a word, for random runs. */
static uint64_t run_bits(void)
{
    unsigned a = (unsigned)(rnd() % 64), b = (unsigned)(rnd() % 64);
    unsigned lo = a < b ? a : b, hi = a < b ? b : a;
    return (~0ull >> (63 - hi)) & (~0ull << lo);
}

static void test_pagecache_flush(void)
{
    for (int t = 0; t < 100; t++) {
        unsigned blk = (unsigned)(rnd() % (CP / 64)) * 64;
        uint64_t cache, scav;
        if (t == 0) {
            cache = scav = 0;
        } else if (t == 1) {
            cache = scav = ~0ull;
        } else {
            cache = run_bits() | run_bits() | run_bits();
            scav = cache & run_bits();
        }
        /* Chunk 0 entirely in use, as if the cached block had been taken from
         * it; a page taken from chunk 1 moves the hint above the block. */
        struct gm_pagealloc pa, want;
        build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, CP}}), CH(1)});
        CHECK_EQ(gm_pagealloc_alloc(&pa, 1, NULL), PA(1, 0));
        size_t free_before = pa.free_pages, scav_before = pa.scav_pages;
        struct gm_pagecache c = {PA(0, blk), cache, scav};
        pa.now = 0xfffffff0u + (uint32_t)t;
        gm_pagecache_flush(&c, &pa);
        CHECK_EQ(stamp_of(&pa, 0), cache & ~scav ? (int64_t)pa.now : -1); /* only dirty pages stamp */
        CHECK(gm_pagecache_empty(&c));
        CHECK_EQ(c.base, 0);
        CHECK_EQ(pa.free_pages, free_before + (size_t)__builtin_popcountll(cache));
        CHECK_EQ(pa.scav_pages, scav_before + (size_t)__builtin_popcountll(scav));
        if (cache) CHECK_EQ(pa.search_addr, PA(0, blk));
        struct chunk_spec after[MAXCH];
        memset(after, 0, sizeof after);
        after[0].on = after[1].on = true;
        after[1].ci = 1;
        after[1].alloc[0] = (struct br){0, 1};
        /* Chunk 0: in use but for the flushed free pages of the block. */
        struct br inv[MAXR];
        word_ranges(~cache, blk, inv);
        int k = 0;
        if (blk) after[0].alloc[k++] = (struct br){0, blk};
        for (int i = 0; i < MAXR && inv[i].n && k < MAXR; i++) after[0].alloc[k++] = inv[i];
        if (blk + 64 < CP && k < MAXR) after[0].alloc[k++] = (struct br){blk + 64, CP - blk - 64};
        CHECK(k < MAXR);
        word_ranges(scav, blk, after[0].scav);
        build(&want, after);
        char name[48];
        snprintf(name, sizeof name, "flush %d", t);
        same(name, &pa, &want);
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
    }
}

/* A cache round trip through the real allocator: take, use, flush. */
static void test_pagecache_round_trip(void)
{
    struct gm_pagealloc pa, want;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 70}, {75, 3}}, .scav = {{70, 5}, {100, 28}, {128, 4}})});
    struct gm_pagecache c = gm_pagealloc_alloc_to_cache(&pa);
    CHECK_EQ(c.base, PA(0, 64));
    CHECK_EQ(pa.free_pages, CP - 128);
    size_t scav;
    CHECK_EQ(gm_pagecache_alloc(&c, 3, &scav), PA(0, 70));
    CHECK_EQ(scav, 3 * PAGE);
    CHECK_EQ(gm_pagecache_alloc(&c, 30, &scav), PA(0, 78));
    CHECK_EQ(scav, 8 * PAGE); /* pages 100..107 */
    CHECK_EQ(gm_pagecache_alloc(&c, 30, &scav), 0);
    /* While the cache holds its block, the allocator hands out pages above. */
    CHECK_EQ(gm_pagealloc_alloc(&pa, 1, &scav), PA(0, 128));
    CHECK_EQ(scav, PAGE);
    gm_pagecache_flush(&c, &pa);
    build(&want, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 73}, {75, 33}, {128, 1}}, .scav = {{73, 2}, {108, 20}, {129, 3}})});
    same("cache round trip", &pa, &want);
    CHECK_EQ(gm_pagealloc_alloc(&pa, 2, &scav), PA(0, 73));
    CHECK_EQ(scav, 2 * PAGE);
    gm_pagealloc_destroy(&pa);
    gm_pagealloc_destroy(&want);
}

/* ------------------------------------------------------------------------ */
/* The scavenger's side                                                     */
/* ------------------------------------------------------------------------ */

/* Every grown chunk of a has the stamp it has in b. */
static void same_stamps(const char *name, struct gm_pagealloc *a, struct gm_pagealloc *b)
{
    for (size_t ci = a->start; ci < a->end; ci++) {
        const struct gm_scavchunk *x = gm_pagealloc_scavchunk(a, ci), *y = gm_pagealloc_scavchunk(b, ci);
        if (!x || !y) continue;
        if (x->flags != y->flags || x->stamp != y->stamp)
            fprintf(stderr, "%s: chunk +%#zx stamp %u/%u, want %u/%u\n", name, ci - BASE_CI, x->stamp, x->flags,
                    y->stamp, y->flags);
        CHECK_EQ(x->flags, y->flags);
        CHECK_EQ(x->stamp, y->stamp);
    }
}

struct take {
    size_t max;         /* max_pages */
    uint32_t age;       /* older_than = now - age */
    size_t ci, page, n; /* the run expected: n pages at (ci, page); n == 0: none */
};

struct scav_case {
    const char *name;
    uint32_t now;
    struct chunk_spec before[MAXCH];
    struct take takes[MAXHITS];
    struct chunk_spec after[MAXCH]; /* after the takes, before anything is given back */
};

static const struct scav_case scav_cases[] = {
    {"HighestChunk",
     100,
     {CH(0, .alloc = {{0, 10}}, .stamp = 50), CH(1, .alloc = {{0, CP - 5}}, .stamp = 50), CH(2, .alloc = {{0, CP}})},
     {{1000, 0, 1, CP - 5, 5}, {1000, 0, 0, 10, CP - 10}, {1000, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})}},
    /* Scavenged and in-use pages are never taken, wherever they are. */
    {"HighestRun",
     100,
     {CH(0, .alloc = {{0, 10}, {15, 85}, {120, 180}, {303, 1}}, .scav = {{300, 3}, {304, 208}}, .stamp = 1)},
     {{1000, 0, 0, 100, 20}, {1000, 0, 0, 10, 5}, {1000, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, 300}, {303, 1}}, .scav = {{300, 3}, {304, 208}})}},
    {"MaxPages",
     100,
     {CH(0, .alloc = {{0, 100}, {300, CP - 300}}, .stamp = 1)},
     {{64, 0, 0, 236, 64}, {64, 0, 0, 172, 64}, {64, 0, 0, 108, 64}, {64, 0, 0, 100, 8}, {64, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}})}},
    {"Max1",
     100,
     {CH(0, .alloc = {{0, CP - 3}}, .stamp = 1)},
     {{1, 0, 0, CP - 1, 1}, {1, 0, 0, CP - 2, 1}, {1, 0, 0, CP - 3, 1}, {1, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}})}},
    {"WholeChunk",
     100,
     {CH(0), CH(1, .scav = {{0, CP}})},
     {{CP + 10, 0, 0, 0, CP}, {CP + 10, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .scav = {{0, CP}})}},
    {"RunAcrossWords",
     100,
     {CH(0, .alloc = {{0, 60}, {70, CP - 70}}), CH(1, .alloc = {{0, 63}, {128, CP - 128}}, .scav = {{63, 1}})},
     {{100, 0, 1, 64, 64}, {100, 0, 0, 60, 10}, {100, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, 63}, {64, CP - 64}}, .scav = {{63, 1}})}},
    /* At or before older_than is old: 900 is old for 900, 1000 is not for 999. */
    {"OlderThan",
     1000,
     {CH(0, .alloc = {{0, CP - 1}}, .stamp = 100), CH(1, .alloc = {{0, CP - 1}}, .stamp = 900),
      CH(2, .alloc = {{0, CP - 1}}, .stamp = 1000), CH(3, .alloc = {{0, CP - 1}}, .stamp = 999)},
     {{9, 500, 0, CP - 1, 1},
      {9, 500, 0, 0, 0},
      {9, 100, 1, CP - 1, 1},
      {9, 100, 0, 0, 0},
      {9, 1, 3, CP - 1, 1},
      {9, 1, 0, 0, 0},
      {9, 0, 2, CP - 1, 1},
      {9, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}}), CH(3, .alloc = {{0, CP}})}},
    /* A chunk whose dirty pages were never stamped (test-built) is old. */
    {"NeverStampedIsOld",
     1000,
     {CH(0, .alloc = {{0, CP - 1}}), CH(1, .alloc = {{0, CP - 1}}, .stamp = 1000)},
     {{9, 500, 0, CP - 1, 1}, {9, 500, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP - 1}})}},
    /* The clock wrapped: now 5, stamps 2^32 - 256, 0 and 2. */
    {"Wrap",
     5,
     {CH(0, .alloc = {{0, CP - 1}}, .stamp = 0xffffff00u), CH(1, .alloc = {{0, CP - 1}}, .stamp = 2),
      CH(2, .alloc = {{0, CP - 1}}, .stamp = 1ull << 32)},
     {{9, 4, 2, CP - 1, 1}, {9, 4, 0, CP - 1, 1}, {9, 4, 0, 0, 0}, {9, 3, 1, CP - 1, 1}},
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}}), CH(2, .alloc = {{0, CP}})}},
    /* A stamp more than 2^31 old is still old (a signed difference of stamp
     * and older_than would call it young). */
    {"OlderThanHalfTheClock",
     0x90000000u,
     {CH(0, .alloc = {{0, CP - 1}}, .stamp = 0x10)},
     {{9, 1000, 0, CP - 1, 1}},
     {CH(0, .alloc = {{0, CP}})}},
    {"FarApart",
     100,
     {CH(0, .alloc = {{0, CP - 2}}, .stamp = 1), CH(0x100000, .alloc = {{1, CP - 1}}, .stamp = 1)},
     {{9, 0, 0x100000, 0, 1}, {9, 0, 0, CP - 2, 2}, {9, 0, 0, 0, 0}},
     {CH(0, .alloc = {{0, CP}}), CH(0x100000, .alloc = {{0, CP}})}},
};

/* Each case: the takes in order, the state after them; then every run is
 * given back with free_scavenged, as the scavenger does after madvise. */
static void run_scav_cases(void)
{
    for (size_t c = 0; c < sizeof scav_cases / sizeof scav_cases[0]; c++) {
        const struct scav_case *t = &scav_cases[c];
        struct gm_pagealloc pa, want, orig;
        build(&pa, t->before);
        build(&orig, t->before);
        pa.now = t->now;
        size_t free0 = pa.free_pages, scav0 = pa.scav_pages, total = 0, nt = 0;
        struct {
            uintptr_t base;
            size_t n;
        } taken[MAXHITS];
        for (int h = 0; h < MAXHITS && t->takes[h].max; h++) {
            const struct take *k = &t->takes[h];
            size_t n = 12345;
            uintptr_t got = gm_pagealloc_scavenge_take(&pa, k->max, t->now - k->age, &n);
            uintptr_t wbase = k->n ? PA(k->ci, k->page) : 0;
            if (got != wbase || n != k->n)
                fprintf(stderr, "%s take %d (max %zu, age %u): got %#lx x %zu, want %#lx x %zu\n", t->name, h, k->max,
                        k->age, (unsigned long)got, n, (unsigned long)wbase, k->n);
            CHECK_EQ(got, wbase);
            CHECK_EQ(n, k->n);
            CHECK_EQ(consistency(&pa, t->name), 0);
            if (got) {
                taken[nt].base = got;
                taken[nt++].n = n;
                total += n;
            }
        }
        build(&want, t->after);
        same(t->name, &pa, &want);
        same_stamps(t->name, &pa, &orig); /* taking stamps nothing */
        for (size_t i = 0; i < nt; i++) gm_pagealloc_free_scavenged(&pa, taken[i].base, taken[i].n);
        CHECK_EQ(pa.free_pages, free0);
        CHECK_EQ(pa.scav_pages, scav0 + total);
        for (size_t i = 0; i < nt; i++) {
            CHECK(pa.search_addr <= taken[i].base);
            for (size_t j = 0; j < taken[i].n; j++) {
                uintptr_t a = taken[i].base + j * PAGE;
                struct gm_pallocdata *d = gm_pagealloc_chunk(&pa, a >> GM_CHUNK_SHIFT);
                unsigned pg = (unsigned)((a >> GM_PAGE_SHIFT) % CP);
                CHECK(!bit(&d->alloc, pg) && bit(&d->scav, pg));
            }
        }
        CHECK_EQ(consistency(&pa, t->name), 0);
        same_stamps(t->name, &pa, &orig); /* nor does giving back */
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
        gm_pagealloc_destroy(&orig);
    }
}

/* Pages in a page cache are not candidates; the flush that returns them
 * dirty stamps the chunk; a flush of scavenged pages does not. */
static void test_scav_page_cache(void)
{
    struct gm_pagealloc pa, want;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 64}, {128, CP - 128}}, .stamp = 1),
                                          CH(1, .alloc = {{0, CP - 64}}, .scav = {{CP - 64, 64}})});
    pa.now = 40;
    size_t n = 7;
    CHECK_EQ(gm_pagealloc_scavengeable_pages(&pa), 64);
    struct gm_pagecache c = gm_pagealloc_alloc_to_cache(&pa);
    CHECK_EQ(c.base, PA(0, 64));
    CHECK_EQ(gm_pagealloc_scavengeable_pages(&pa), 0);
    CHECK_EQ(gm_pagealloc_scavenge_take(&pa, CP, pa.now, &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(gm_pagecache_alloc(&c, 10, NULL), PA(0, 64));
    pa.now = 42;
    gm_pagecache_flush(&c, &pa);
    CHECK_EQ(stamp_of(&pa, 0), 42);
    CHECK_EQ(gm_pagealloc_scavengeable_pages(&pa), 54);
    CHECK_EQ(gm_pagealloc_scavenge_take(&pa, CP, 41, &n), 0); /* stamped 42: too young */
    CHECK_EQ(gm_pagealloc_scavenge_take(&pa, CP, 42, &n), PA(0, 74));
    CHECK_EQ(n, 54);
    CHECK_EQ(gm_pagealloc_scavengeable_pages(&pa), 0);
    gm_pagealloc_free_scavenged(&pa, PA(0, 74), 54);
    CHECK_EQ(gm_pagealloc_scavengeable_pages(&pa), 0);
    CHECK_EQ(pa.scav_pages, 54 + 64);
    /* Cached pages that are all scavenged come back without a stamp. */
    struct gm_pagecache c0 = gm_pagealloc_alloc_to_cache(&pa);
    CHECK_EQ(c0.base, PA(0, 64));
    c = gm_pagealloc_alloc_to_cache(&pa);
    CHECK_EQ(c.base, PA(1, CP - 64));
    pa.now = 50;
    gm_pagecache_flush(&c, &pa);
    gm_pagecache_flush(&c0, &pa);
    CHECK_EQ(stamp_of(&pa, 1), -1);
    CHECK_EQ(stamp_of(&pa, 0), 42);
    build(&want, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 74}, {128, CP - 128}}, .scav = {{74, 54}}),
                                            CH(1, .alloc = {{0, CP - 64}}, .scav = {{CP - 64, 64}})});
    same("scav page cache", &pa, &want);
    gm_pagealloc_destroy(&pa);
    gm_pagealloc_destroy(&want);
}

struct chunk_take {
    uint32_t age;    /* older_than = now - age */
    long ci;         /* the chunk expected, -1: none */
    size_t scav;     /* its scavenged pages */
};

static const struct {
    const char *name;
    uint32_t now;
    struct chunk_spec before[MAXCH];
    struct chunk_take takes[MAXHITS];
    int ntakes;
    struct chunk_spec after[MAXCH];
} free_chunk_cases[] = {
    {"HighestFree",
     1000,
     {CH(0, .scav = {{0, 100}}, .stamp = 10), CH(1, .alloc = {{5, 1}}), CH(2, .scav = {{0, CP}}), CH(3, .stamp = 1000),
      CH(4, .alloc = {{CP - 1, 1}})},
     {{500, 2, CP}, {500, 0, 100}, {500, -1, 0}, {0, 3, 0}, {0, -1, 0}},
     5,
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{5, 1}}), CH(2, .alloc = {{0, CP}}), CH(3, .alloc = {{0, CP}}),
      CH(4, .alloc = {{CP - 1, 1}})}},
    /* Once freed dirty, a chunk's stamp decides even if it is all scavenged now. */
    {"StampedAllScavenged",
     1000,
     {CH(0, .scav = {{0, CP}}, .stamp = 1000), CH(1, .scav = {{0, CP}}, .stamp = 990)},
     {{10, 1, CP}, {10, -1, 0}, {0, 0, CP}},
     3,
     {CH(0, .alloc = {{0, CP}}), CH(1, .alloc = {{0, CP}})}},
    {"NoneWhole",
     1000,
     {CH(0, .alloc = {{CP - 1, 1}}), CH(1, .alloc = {{0, 1}}), CH(2, .alloc = {{200, 1}}, .scav = {{0, 200}})},
     {{0, -1, 0}},
     1,
     {CH(0, .alloc = {{CP - 1, 1}}), CH(1, .alloc = {{0, 1}}), CH(2, .alloc = {{200, 1}}, .scav = {{0, 200}})}},
    {"FarApart",
     1000,
     {CH(0), CH(0x100000, .scav = {{0, 1}}), CH(0x100001, .alloc = {{1, 1}})},
     {{0, 0x100000, 1}, {0, 0, 0}, {0, -1, 0}},
     3,
     {CH(0, .alloc = {{0, CP}}), CH(0x100000, .alloc = {{0, CP}}), CH(0x100001, .alloc = {{1, 1}})}},
};

/* take_free_chunk, then every chunk given back (decommitted and recommitted
 * by the caller) with free_scavenged: all free and scavenged again, and
 * found again. */
static void test_take_free_chunk(void)
{
    for (size_t c = 0; c < sizeof free_chunk_cases / sizeof free_chunk_cases[0]; c++) {
        const char *name = free_chunk_cases[c].name;
        uint32_t now = free_chunk_cases[c].now;
        struct gm_pagealloc pa, want, orig;
        build(&pa, free_chunk_cases[c].before);
        build(&orig, free_chunk_cases[c].before);
        pa.now = now;
        size_t free0 = pa.free_pages, scav0 = pa.scav_pages, gained = 0;
        uintptr_t taken[MAXHITS];
        size_t nt = 0;
        for (int h = 0; h < free_chunk_cases[c].ntakes; h++) {
            const struct chunk_take *k = &free_chunk_cases[c].takes[h];
            size_t scav = 12345;
            uintptr_t got = gm_pagealloc_take_free_chunk(&pa, now - k->age, &scav);
            uintptr_t wbase = k->ci < 0 ? 0 : PA(k->ci, 0);
            if (got != wbase || scav != k->scav)
                fprintf(stderr, "%s take %d: got %#lx scav %zu, want %#lx scav %zu\n", name, h, (unsigned long)got,
                        scav, (unsigned long)wbase, k->scav);
            CHECK_EQ(got, wbase);
            CHECK_EQ(scav, k->scav);
            CHECK_EQ(consistency(&pa, name), 0);
            if (got) {
                taken[nt++] = got;
                gained += CP - scav;
            }
        }
        build(&want, free_chunk_cases[c].after);
        same(name, &pa, &want);
        for (size_t i = 0; i < nt; i++) {
            gm_pagealloc_free_scavenged(&pa, taken[i], CP);
            CHECK(pa.search_addr <= taken[i]);
            CHECK(gm_pagealloc_index_bit(&pa, taken[i] >> GM_CHUNK_SHIFT, true));
            CHECK_EQ(gm_pagealloc_summary(&pa, GM_SUMMARY_LEVELS - 1, taken[i] >> GM_CHUNK_SHIFT),
                     gm_pack_sum(CP, CP, CP));
            CHECK_EQ(consistency(&pa, name), 0);
        }
        CHECK_EQ(pa.free_pages, free0);
        CHECK_EQ(pa.scav_pages, scav0 + gained);
        same_stamps(name, &pa, &orig);
        /* Given back, the highest is found again. */
        size_t scav;
        uintptr_t highest = nt ? (taken[0] > taken[nt - 1] ? taken[0] : taken[nt - 1]) : 0;
        CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, now, &scav), highest);
        gm_pagealloc_destroy(&pa);
        gm_pagealloc_destroy(&want);
        gm_pagealloc_destroy(&orig);
    }
    /* Nothing grown: nothing to take. */
    struct gm_pagealloc pa;
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    size_t n = 1;
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 0, &n), 0);
    CHECK_EQ(gm_pagealloc_scavenge_take(&pa, 5, 0, &n), 0);
    CHECK_EQ(n, 0);
    gm_pagealloc_destroy(&pa);
}

/* take_beside: the free run above or below an address, within its chunk,
 * only in a chunk old enough; marked in use, scavenged pages counted. */
static void test_take_beside(void)
{
    struct gm_pagealloc pa;
    /* Chunk 0: pages [0, 10) and [20, 100) in use, [10, 20) free with
     * [12, 15) scavenged, [100, CP) free. Chunk 1 wholly free, stamped 10;
     * chunk 2 free from page 5 up, young (stamped 100). */
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 10}, {20, 80}}, .scav = {{12, 3}}, .stamp = 10),
                                          CH(1, .stamp = 10), CH(2, .alloc = {{0, 5}}, .stamp = 100)});
    pa.now = 100;
    size_t n, scav, free0 = pa.free_pages, scav0 = pa.scav_pages;
#define BESIDE(addr, up, t, wbase, wn, wscav)                                                              \
    do {                                                                                                   \
        CHECK_EQ(gm_pagealloc_take_beside(&pa, (addr), (up), (t), &n, &scav), (wbase));                    \
        CHECK_EQ(n, (wn));                                                                                 \
        CHECK_EQ(scav, (wscav));                                                                           \
        CHECK_EQ(consistency(&pa, "beside"), 0);                                                           \
    } while (0)
    BESIDE(PA(0, 10), false, 50, 0, 0, 0);        /* page 9 is in use */
    BESIDE(PA(0, 20), true, 50, 0, 0, 0);         /* page 20 is in use */
    BESIDE(PA(2, 5), true, 50, 0, 0, 0);          /* young */
    BESIDE(PA(0, 20), false, 50, PA(0, 10), 10, 3); /* down to the run's start */
    CHECK_EQ(pa.free_pages, free0 - 10);
    CHECK_EQ(pa.scav_pages, scav0 - 3);
    BESIDE(PA(0, 100), true, 50, PA(0, 100), CP - 100, 0); /* up to the chunk's end, not into chunk 1 */
    BESIDE(PA(1, 0), true, 50, PA(1, 0), CP, 0);           /* a whole chunk */
    BESIDE(PA(2, 0), false, 50, 0, 0, 0);                  /* chunk 1 is taken now */
    BESIDE(PA(2, 5), true, 100, PA(2, 5), CP - 5, 0);      /* old enough for now */
    BESIDE(PA(3, 0), true, 100, 0, 0, 0);                  /* not grown */
#undef BESIDE
    CHECK_EQ(pa.free_pages, 0);
    gm_pagealloc_destroy(&pa);
}

/* take_run: the highest free run of at least min pages, in chunks old
 * enough, from the top chunk down; marked in use, scavenged pages counted. */
static void test_take_run(void)
{
    struct gm_pagealloc pa;
    /* Chunk 0 (old): free [10, 20) with [12, 15) scavenged, [40, 100) and
     * [200, 232); chunk 1 (old): free [300, 340) and [400, 410); chunk 2
     * (young): free from page 5 up. */
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, 10}, {20, 20}, {100, 100}, {232, CP - 232}},
                                             .scav = {{12, 3}}, .stamp = 10),
                                          CH(1, .alloc = {{0, 300}, {340, 60}, {410, CP - 410}}, .stamp = 10),
                                          CH(2, .alloc = {{0, 5}}, .stamp = 100)});
    pa.now = 100;
    size_t n, scav, free0 = pa.free_pages;
#define RUN(min, t, wbase, wn, wscav)                                                                      \
    do {                                                                                                   \
        CHECK_EQ(gm_pagealloc_take_run(&pa, (min), (t), &n, &scav), (wbase));                              \
        CHECK_EQ(n, (wn));                                                                                 \
        CHECK_EQ(scav, (wscav));                                                                           \
        CHECK_EQ(consistency(&pa, "run"), 0);                                                              \
    } while (0)
    RUN(100, 50, 0, 0, 0);                     /* none that long but in the young chunk */
    RUN(100, 100, PA(2, 5), CP - 5, 0);        /* old enough for now */
    RUN(32, 50, PA(1, 300), 40, 0);            /* the highest chunk's run, not its short one */
    RUN(32, 50, PA(0, 200), 32, 0);            /* the highest of the chunk's long runs */
    RUN(32, 50, PA(0, 40), 60, 0);
    RUN(32, 50, 0, 0, 0);                      /* left: runs of 10 */
    RUN(10, 50, PA(1, 400), 10, 0);
    RUN(10, 50, PA(0, 10), 10, 3);             /* scavenged pages counted */
    CHECK_EQ(pa.free_pages, free0 - (CP - 5) - 40 - 32 - 60 - 10 - 10);
    CHECK_EQ(pa.free_pages, 0);
#undef RUN
    gm_pagealloc_destroy(&pa);
}

/* The search cursors: a later older_than searches from the top again, and a
 * chunk above a cursor that turns into a candidate for its time voids it. */
static void test_scav_cursor(void)
{
    struct gm_pagealloc pa;
    build(&pa, (struct chunk_spec[MAXCH]){CH(0, .alloc = {{0, CP - 4}}, .stamp = 10),
                                          CH(1, .alloc = {{0, CP - 4}}, .stamp = 10),
                                          CH(3, .alloc = {{0, CP - 4}}, .stamp = 10),
                                          CH(5, .alloc = {{0, CP - 1}}, .stamp = 100), CH(6, .alloc = {{0, CP}}),
                                          CH(7, .alloc = {{0, CP}})});
    pa.now = 100;
    size_t n;
#define TAKE(t, ci, page)                                                                                  \
    do {                                                                                                   \
        CHECK_EQ(gm_pagealloc_scavenge_take(&pa, 1, (t), &n), (ci) < 0 ? 0 : PA((ci), (page)));           \
        CHECK_EQ(consistency(&pa, "cursor"), 0);                                                           \
    } while (0)
    TAKE(50, 3, CP - 1);
    gm_pagealloc_free(&pa, PA(6, 0), 1); /* stamped 100: young for 50 */
    CHECK_EQ(stamp_of(&pa, 6), 100);
    TAKE(50, 3, CP - 2);
    TAKE(100, 6, 0);                     /* a later time: from the top */
    TAKE(100, 5, CP - 1);
    gm_pagealloc_free(&pa, PA(7, 3), 1); /* old for 100 (== now): above the cursor */
    TAKE(100, 7, 3);
    pa.now = 200;
    gm_pagealloc_free(&pa, PA(7, 10), 1);
    TAKE(100, 3, CP - 3);
    TAKE(100, 3, CP - 4);
    TAKE(100, 1, CP - 1);
    TAKE(200, 7, 10);
#undef TAKE
    /* The free-chunk cursor: none found, then a chunk above it becomes
     * entirely free and old (given back, or grown): found. */
    size_t scav;
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 200, &scav), 0);
    gm_pagealloc_free_scavenged(&pa, PA(6, 0), CP);
    CHECK_EQ(consistency(&pa, "cursor"), 0);
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 200, &scav), PA(6, 0));
    CHECK_EQ(scav, CP);
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 200, &scav), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(9, 0), GM_CHUNK_BYTES), 0);
    CHECK_EQ(consistency(&pa, "cursor"), 0);
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 200, &scav), PA(9, 0));
    /* A young chunk that becomes entirely free above the cursor stays out. */
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 150, &scav), 0);
    gm_pagealloc_free_scavenged(&pa, PA(7, 3), 1); /* the scavenger gives back */
    gm_pagealloc_free_scavenged(&pa, PA(7, 10), 1);
    gm_pagealloc_free(&pa, PA(7, 0), 3);
    gm_pagealloc_free(&pa, PA(7, 4), 6);
    gm_pagealloc_free(&pa, PA(7, 11), CP - 11); /* stamped 200 */
    CHECK(gm_pagealloc_index_bit(&pa, BASE_CI + 7, true));
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 150, &scav), 0);
    CHECK_EQ(gm_pagealloc_take_free_chunk(&pa, 200, &scav), PA(7, 0));
    CHECK_EQ(scav, 2);
    CHECK_EQ(consistency(&pa, "cursor"), 0);
    gm_pagealloc_destroy(&pa);
}

/* Set chunk ci of pa to: the first nwords words free (dirty) where free_word
 * says so, the rest in use; stamped at stamp (0: never). */
static void set_chunk(struct gm_pagealloc *pa, size_t ci, uint64_t free_word, unsigned nwords, uint64_t stamp)
{
    struct gm_pallocdata *d = gm_pagealloc_chunk(pa, BASE_CI + ci);
    memset(&d->scav, 0, sizeof d->scav);
    for (unsigned w = 0; w < 8; w++) d->alloc.w[w] = w < nwords ? ~free_word : ~0ull;
    struct gm_scavchunk *sc = gm_pagealloc_scavchunk(pa, BASE_CI + ci);
    sc->stamp = (uint32_t)stamp;
    sc->flags = stamp ? GM_SCAV_STAMPED : 0;
}

/* Many young candidates above the old ones are stepped over once per
 * older_than, not once per call. */
static void test_scav_not_quadratic(void)
{
    struct gm_pagealloc pa;
    memset(&pa, 0, sizeof pa);
    CHECK_EQ(gm_pagealloc_init(&pa, &meta), 0);
    CHECK_EQ(gm_pagealloc_grow(&pa, PA(0, 0), 256 * GM_CHUNK_BYTES), 0);
    for (size_t ci = 0; ci < 256; ci++) set_chunk(&pa, ci, ci < 128 ? 0x55 : 0x1, 1, ci < 128 ? 10 : 1000);
    gm_pagealloc_recompute(&pa);
    pa.now = 1000;
    size_t n, calls = 0, wrong = 0;
    for (uintptr_t a; (a = gm_pagealloc_scavenge_take(&pa, 8, 500, &n)) != 0; calls++) {
        size_t ci = 127 - calls / 4, pg = 6 - 2 * (calls % 4);
        if ((a != PA(ci, pg) || n != 1) && wrong++ == 0)
            fprintf(stderr, "not quadratic: take %zu got %#lx want %#lx\n", calls, (unsigned long)a,
                    (unsigned long)PA(ci, pg));
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(calls, 512);
    CHECK_EQ(pa.scav.passed_over, 128);
    pa.now = 1001; /* a new older_than: one more pass over the young */
    CHECK_EQ(gm_pagealloc_scavenge_take(&pa, 8, 501, &n), 0);
    CHECK_EQ(gm_pagealloc_scavenge_take(&pa, 8, 501, &n), 0);
    CHECK_EQ(pa.scav.passed_over, 256);
    /* Entirely free chunks: 64 old under 64 young. */
    for (size_t ci = 0; ci < 128; ci++) set_chunk(&pa, ci, ~0ull, 8, ci < 64 ? 0 : 1001);
    gm_pagealloc_recompute(&pa);
    pa.scav.passed_over = 0;
    size_t scav;
    for (calls = 0, wrong = 0; gm_pagealloc_take_free_chunk(&pa, 1000, &scav) != 0; calls++) wrong += scav != 0;
    CHECK_EQ(wrong, 0);
    CHECK_EQ(calls, 64);
    CHECK_EQ(pa.scav.passed_over, 64);
    CHECK_EQ(consistency(&pa, "not quadratic"), 0);
    gm_pagealloc_destroy(&pa);
}

int main(void)
{
    run_alloc_cases(alloc_cases, sizeof alloc_cases / sizeof alloc_cases[0]);
    test_alloc_search_addr_in_gap();
    test_exhaust();
    run_free_cases();
    test_alloc_and_free();
    test_search_hint();
    test_full_heap();
    test_largest_run();
    test_ranges_and_scav();
    test_grow();
    test_metadata();
    test_regions();
    test_pagecache_alloc();
    test_alloc_to_cache();
    test_pagecache_flush();
    test_pagecache_round_trip();
    run_scav_cases();
    test_scav_page_cache();
    test_take_free_chunk();
    test_take_beside();
    test_take_run();
    test_scav_cursor();
    test_scav_not_quadratic();
    CHECK_EQ(gm_stat_load(&meta), 0); /* every test allocator gave back its metadata */
    return test_done("unit_pagealloc");
}
