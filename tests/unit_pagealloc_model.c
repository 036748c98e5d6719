/* unit_pagealloc_model.c — randomized model test of the page allocator.
 *
 * Thousands of random operations (alloc of 1..1500 pages, whole and partial
 * frees, scavenged frees, in-place growth through free_run_at/alloc_range,
 * page cache refill/use/flush, growth into discontiguous, partly
 * chunk-aligned ranges, and the scavenger's steps: scavenge_take and
 * take_free_chunk with random ages, their runs given back later with
 * free_scavenged, while the clock moves on and wraps) run against a private
 * allocator and against a plain model: one byte of state and one scavenged
 * flag per page and a last-dirty-free stamp per chunk, first fit (and
 * highest old candidate) by linear scan. After every step the allocator must
 * have answered exactly as the model, its bitmaps and stamps must equal the
 * model's, and a slow check recomputes every summary at every level and the
 * scavenge index (dirty counts, both chunk bitmaps) from the bitmaps,
 * recounts free_pages/scav_pages, checks scav & alloc == 0, the searchAddr
 * invariant and the search cursors' promise. Seeds are fixed; a failure
 * prints the seed and step. */
#include "internal.h"
#include "test.h"
#include "pagealloc_naive.h"

#include <string.h>

#define BASE_CI ((size_t)(0x300000000000ull >> GM_CHUNK_SHIFT))
#define PAGE ((size_t)GM_PAGE_SIZE)
#define CP GM_CHUNK_PAGES
#define NONE GM_SEARCH_NONE
#define PA(ci, p) ((((uintptr_t)BASE_CI + (uintptr_t)(ci)) << GM_CHUNK_SHIFT) + (uintptr_t)(p) * PAGE)

static gm_stat meta;

/* ------------------------------------------------------------------------ */
/* Slow consistency check (independent of pagealloc.c's own merge)          */
/* ------------------------------------------------------------------------ */


static int consistency(struct gm_pagealloc *pa)
{
    int bad = 0;
#define BAD(...)                                                                                       \
    do {                                                                                               \
        if (bad++ < 5) {                                                                               \
            fprintf(stderr, __VA_ARGS__);                                                              \
            fputc('\n', stderr);                                                                       \
        }                                                                                              \
    } while (0)
    size_t total = 0, free_pages = 0, scav_pages = 0;
    bool sa_in_use = pa->search_addr == NONE;
    for (size_t r = 0; r < pa->in_use.len; r++) {
        struct gm_addr_range x = pa->in_use.ranges[r];
        if (x.base >= x.limit || x.base % GM_CHUNK_BYTES || x.limit % GM_CHUNK_BYTES) BAD("bad range %zu", r);
        if (r > 0 && pa->in_use.ranges[r - 1].limit >= x.base) BAD("ranges %zu/%zu not sorted+coalesced", r - 1, r);
        if (x.base <= pa->search_addr && pa->search_addr < x.limit) sa_in_use = true;
        total += x.limit - x.base;
        for (size_t ci = x.base >> GM_CHUNK_SHIFT; ci < x.limit >> GM_CHUNK_SHIFT; ci++) {
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
            /* No free page below search_addr. */
            uintptr_t cb = (uintptr_t)ci << GM_CHUNK_SHIFT;
            for (unsigned i = 0; i < CP && cb + i * PAGE < pa->search_addr; i++)
                if (!bit(&d->alloc, i)) {
                    BAD("free page %#lx below search_addr %#lx", (unsigned long)(cb + i * PAGE),
                        (unsigned long)pa->search_addr);
                    break;
                }
        }
    }
    if (!sa_in_use) BAD("search_addr %#lx not in use", (unsigned long)pa->search_addr);
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
#undef BAD
    return bad;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

enum { M_FREE = 0, M_USED = 1, M_UNGROWN = 2, M_CACHED = 3 };

#define MAXSLOTS 32
static struct {
    size_t nslots;
    size_t ci[MAXSLOTS]; /* absolute chunk indices, ascending */
    uint8_t state[MAXSLOTS][CP];
    uint8_t scav[MAXSLOTS][CP];
    bool stamped[MAXSLOTS]; /* a free left dirty pages in the chunk... */
    uint32_t stamp[MAXSLOTS]; /* ...last at this time */
    uint32_t now;
    uint32_t last_older_than; /* the scavenger's last */
} m;

static int m_slot(size_t ci)
{
    for (size_t s = 0; s < m.nslots; s++)
        if (m.ci[s] == ci) return (int)s;
    return -1;
}

static size_t m_slot_of(uintptr_t a)
{
    int s = m_slot(a >> GM_CHUNK_SHIFT);
    if (s < 0) {
        fprintf(stderr, "model: page %#lx was never grown\n", (unsigned long)a);
        abort();
    }
    return (size_t)s;
}
static uint8_t *m_state(uintptr_t a) { return &m.state[m_slot_of(a)][(a >> GM_PAGE_SHIFT) % CP]; }
static uint8_t *m_scav(uintptr_t a) { return &m.scav[m_slot_of(a)][(a >> GM_PAGE_SHIFT) % CP]; }

static void m_grow(uintptr_t base, size_t npages)
{
    for (size_t ci = base >> GM_CHUNK_SHIFT; ci <= (base + npages * PAGE - 1) >> GM_CHUNK_SHIFT; ci++) {
        if (m_slot(ci) >= 0) continue;
        size_t s = m.nslots++;
        while (s > 0 && m.ci[s - 1] > ci) { /* keep slots sorted */
            m.ci[s] = m.ci[s - 1];
            memcpy(m.state[s], m.state[s - 1], CP);
            memcpy(m.scav[s], m.scav[s - 1], CP);
            m.stamped[s] = m.stamped[s - 1];
            m.stamp[s] = m.stamp[s - 1];
            s--;
        }
        m.ci[s] = ci;
        memset(m.state[s], M_UNGROWN, CP);
        memset(m.scav[s], 0, CP);
        m.stamped[s] = false;
    }
    for (size_t i = 0; i < npages; i++) {
        uintptr_t a = base + i * PAGE;
        *m_state(a) = M_FREE;
        *m_scav(a) = 1;
    }
}

/* First fit in address order; 0 if none. */
static uintptr_t m_find(size_t n)
{
    uintptr_t run_base = 0, prev = 0;
    size_t run = 0;
    for (size_t s = 0; s < m.nslots; s++)
        for (unsigned i = 0; i < CP; i++) {
            uintptr_t a = ((uintptr_t)m.ci[s] << GM_CHUNK_SHIFT) + i * PAGE;
            if (m.state[s][i] != M_FREE) {
                run = 0;
                continue;
            }
            if (run == 0 || a != prev + PAGE) {
                run = 0;
                run_base = a;
            }
            prev = a;
            if (++run == n) return run_base;
        }
    return 0;
}

static size_t m_take(uintptr_t base, size_t n) /* mark used; scavenged pages */
{
    size_t sc = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = base + i * PAGE;
        sc += *m_scav(a);
        *m_scav(a) = 0;
        *m_state(a) = M_USED;
    }
    return sc;
}

static void m_stamp(uintptr_t a)
{
    m.stamped[m_slot_of(a)] = true;
    m.stamp[m_slot_of(a)] = m.now;
}

/* Pages in use have no scav flag, so a plain free leaves them dirty. */
static void m_free(uintptr_t base, size_t n, bool scavenged)
{
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = base + i * PAGE;
        if (!scavenged && *m_state(a) != M_FREE) m_stamp(a);
        *m_state(a) = M_FREE;
        if (scavenged) *m_scav(a) = 1;
    }
}

static bool m_old(size_t s, uint32_t t)
{
    return !m.stamped[s] || (uint32_t)(m.now - m.stamp[s]) >= (uint32_t)(m.now - t);
}

/* The highest run (at most max) of dirty pages in the highest old chunk
 * that has any; 0 if none. */
static uintptr_t m_scav_find(size_t max, uint32_t t, size_t *n)
{
    for (size_t s = m.nslots; s-- > 0;) {
        if (!m_old(s, t)) continue;
        for (unsigned i = CP; i-- > 0;) {
            if (m.state[s][i] != M_FREE || m.scav[s][i]) continue;
            unsigned lo = i;
            while (lo > 0 && i + 1 - lo < max && m.state[s][lo - 1] == M_FREE && !m.scav[s][lo - 1]) lo--;
            *n = i + 1 - lo;
            return ((uintptr_t)m.ci[s] << GM_CHUNK_SHIFT) + lo * PAGE;
        }
    }
    *n = 0;
    return 0;
}

/* The highest old chunk with every page free; 0 if none. */
static uintptr_t m_free_chunk_find(uint32_t t)
{
    for (size_t s = m.nslots; s-- > 0;) {
        unsigned nfree = 0;
        for (unsigned i = 0; i < CP; i++) nfree += m.state[s][i] == M_FREE;
        if (nfree == CP && m_old(s, t)) return (uintptr_t)m.ci[s] << GM_CHUNK_SHIFT;
    }
    return 0;
}

static size_t m_free_run_at(uintptr_t base, size_t max)
{
    size_t n = 0;
    while (n < max) {
        uintptr_t a = base + n * PAGE;
        if (m_slot(a >> GM_CHUNK_SHIFT) < 0 || *m_state(a) != M_FREE) break;
        n++;
    }
    return n;
}

/* Bitmaps, counters and stamps equal the model's; the scavenge index
 * equals what the bitmaps give, and no chunk above a cursor is a candidate
 * for its time. */
static int m_compare(struct gm_pagealloc *pa)
{
    int bad = 0;
    size_t nfree = 0, nscav = 0;
    struct {
        size_t w;
        uint64_t dirty, free;
    } words[MAXSLOTS]; /* the index words over the model's chunks, as they should be */
    size_t nwords = 0;
    const struct gm_scav_cursor *dc = &pa->scav.dirty_cursor, *fc = &pa->scav.free_cursor;
    for (size_t s = 0; s < m.nslots; s++) {
        struct gm_pallocdata *d = gm_pagealloc_chunk(pa, m.ci[s]);
        const struct gm_scavchunk *sc = gm_pagealloc_scavchunk(pa, m.ci[s]);
        if (!d || !sc) {
            fprintf(stderr, "chunk %#zx not grown\n", m.ci[s]);
            return 1;
        }
        unsigned dirty = 0, used = 0; /* from the allocator's bitmaps */
        for (unsigned i = 0; i < CP; i++) {
            dirty += !bit(&d->alloc, i) && !bit(&d->scav, i);
            used += bit(&d->alloc, i);
        }
        if (nwords == 0 || words[nwords - 1].w != m.ci[s] / 64)
            words[nwords++] = (typeof(words[0])){m.ci[s] / 64, 0, 0};
        words[nwords - 1].dirty |= (uint64_t)(dirty > 0) << (m.ci[s] % 64);
        words[nwords - 1].free |= (uint64_t)(used == 0) << (m.ci[s] % 64);
        if (sc->dirty != dirty && bad++ < 3)
            fprintf(stderr, "chunk +%#zx: dirty %u, bitmaps %u\n", m.ci[s] - BASE_CI, sc->dirty, dirty);
        if (((sc->flags & GM_SCAV_STAMPED) != 0) != m.stamped[s] || (m.stamped[s] && sc->stamp != m.stamp[s])) {
            if (bad++ < 3)
                fprintf(stderr, "chunk +%#zx: stamp %u flags %u, model %u stamped %d\n", m.ci[s] - BASE_CI, sc->stamp,
                        sc->flags, m.stamp[s], m.stamped[s]);
        }
        if (dc->valid && m.ci[s] >= dc->top && dirty && m_old(s, dc->older_than) && bad++ < 3)
            fprintf(stderr, "chunk +%#zx: a scavenge candidate above the cursor\n", m.ci[s] - BASE_CI);
        if (fc->valid && m.ci[s] >= fc->top && !used && m_old(s, fc->older_than) && bad++ < 3)
            fprintf(stderr, "chunk +%#zx: a free chunk candidate above the cursor\n", m.ci[s] - BASE_CI);
        for (unsigned i = 0; i < CP; i++) {
            bool used = m.state[s][i] != M_FREE;
            bool sc = m.state[s][i] == M_FREE && m.scav[s][i];
            nfree += !used;
            nscav += sc;
            if (bit(&d->alloc, i) != used || bit(&d->scav, i) != sc) {
                if (bad++ < 3)
                    fprintf(stderr, "page %u of chunk +%#zx: alloc %d scav %d, model state %d scav %d\n", i,
                            m.ci[s] - BASE_CI, bit(&d->alloc, i), bit(&d->scav, i), m.state[s][i], m.scav[s][i]);
            }
        }
    }
    if (nfree != pa->free_pages || nscav != pa->scav_pages) {
        fprintf(stderr, "counters %zu/%zu, model %zu/%zu\n", pa->free_pages, pa->scav_pages, nfree, nscav);
        bad++;
    }
    for (size_t k = 0; k < nwords; k++) {
        uint64_t dirty = 0, free = 0; /* as the allocator has them, all 64 chunks of the word */
        for (unsigned i = 0; i < 64; i++) {
            dirty |= (uint64_t)gm_pagealloc_index_bit(pa, words[k].w * 64 + i, false) << i;
            free |= (uint64_t)gm_pagealloc_index_bit(pa, words[k].w * 64 + i, true) << i;
        }
        if ((dirty != words[k].dirty || free != words[k].free) && bad++ < 3)
            fprintf(stderr, "index word %#zx: dirty %016llx free %016llx, want %016llx %016llx\n", words[k].w,
                    (unsigned long long)dirty, (unsigned long long)free, (unsigned long long)words[k].dirty,
                    (unsigned long long)words[k].free);
    }
    if (gm_pagealloc_scavengeable_pages(pa) != nfree - nscav && bad++ < 3) fprintf(stderr, "scavengeable pages\n");
    return bad;
}

/* ------------------------------------------------------------------------ */
/* The random walk                                                          */
/* ------------------------------------------------------------------------ */

static uint64_t rng;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Growth steps, taken in order when the heap runs short: discontiguous,
 * some not chunk aligned, some continuing a partly grown chunk, one 20 GiB
 * away (another root entry) and one 4 TiB away. */
static const struct {
    size_t ci, page, npages;
} grows[] = {
    {0, 0, 3 * CP},
    {10, 100, 700},           /* chunk 10 page 100 .. chunk 11 page 287 */
    {5000, 0, 2 * CP},
    {11, 288, 300},           /* continues the previous partial chunk */
    {0x100000, 17, 3 * CP - 40},
    {3, 0, CP},               /* coalesces with the first range */
    {12, 76, 436},            /* the rest of chunk 12 */
    {4999, 500, 12},          /* just below the 20 GiB range */
};
#define NGROWS (sizeof grows / sizeof grows[0])

#define MAXLIVE 4096
static struct {
    uintptr_t base;
    size_t n;
} live[MAXLIVE];
static size_t nlive;
static size_t n_alloc_ok, n_alloc_fail, n_cache, n_inplace, n_frees;
static size_t n_scav_ok, n_scav_none, n_chunk_ok, n_chunk_none, n_given_back;

/* Runs the scavenger took and has not given back yet. */
#define MAXPEND 16
static struct {
    uintptr_t base;
    size_t n;
} pend[MAXPEND];
static size_t npend;

/* One of the scavenger's steps: take dirty pages, take a free chunk, or
 * give a taken run back (as after madvise, or decommit and recommit).
 * Returns false on a mismatch with the model. */
static bool scav_step(struct gm_pagealloc *pa)
{
    unsigned k = (unsigned)(rnd() % 10);
    /* older_than: now, recent, long ago, or the last one again (as the
     * scavenger's loop does, which lets searches resume at their cursor). */
    unsigned a = (unsigned)(rnd() % 5);
    uint32_t older_than = a == 4 ? m.last_older_than : m.now - (a == 0 ? 0 : (uint32_t)(rnd() % (a == 3 ? 4096 : 256)));
    m.last_older_than = older_than;
    if (npend > 0 && (k < 4 || npend == MAXPEND)) {
        size_t i = rnd() % npend;
        gm_pagealloc_free_scavenged(pa, pend[i].base, pend[i].n);
        m_free(pend[i].base, pend[i].n, true);
        pend[i] = pend[--npend];
        n_given_back++;
        return true;
    }
    size_t n, wn = CP, scav, wscav = 0;
    uintptr_t got, want;
    if (k < 7) {
        size_t max = rnd() % 2 ? 1 + rnd() % 8 : 1 + rnd() % 700;
        want = m_scav_find(max, older_than, &wn);
        got = gm_pagealloc_scavenge_take(pa, max, older_than, &n);
        if (got != want || n != wn) {
            fprintf(stderr, "scavenge_take(%zu, now - %u) = %#lx x %zu, model %#lx x %zu\n", max, m.now - older_than,
                    (unsigned long)got, n, (unsigned long)want, wn);
            return false;
        }
        got ? n_scav_ok++ : n_scav_none++;
    } else {
        want = m_free_chunk_find(older_than);
        got = gm_pagealloc_take_free_chunk(pa, older_than, &scav);
        n = CP;
        for (size_t i = 0; want && i < CP; i++) wscav += *m_scav(want + i * PAGE);
        if (got != want || scav != wscav) {
            fprintf(stderr, "take_free_chunk(now - %u) = %#lx scav %zu, model %#lx scav %zu\n", m.now - older_than,
                    (unsigned long)got, scav, (unsigned long)want, wscav);
            return false;
        }
        got ? n_chunk_ok++ : n_chunk_none++;
    }
    if (got) {
        m_take(got, n);
        pend[npend].base = got;
        pend[npend++].n = n;
    }
    return true;
}

static size_t rand_npages(void)
{
    unsigned r = (unsigned)(rnd() % 100);
    if (r < 60) return 1 + rnd() % 8;
    if (r < 85) return 9 + rnd() % 120;
    return 129 + rnd() % (1500 - 128);
}

/* Returns true if the walk went to the end without a mismatch. */
static bool run_seed(uint64_t seed, int steps)
{
    rng = seed;
    memset(&m, 0, sizeof m);
    m.now = seed & 1 ? 0xfffff000u : (uint32_t)seed; /* some seeds see the clock wrap */
    nlive = npend = 0;
    struct gm_pagealloc pa;
    memset(&pa, 0, sizeof pa);
    if (gm_pagealloc_init(&pa, &meta) != 0) return false;
    size_t ngrown = 0;
    struct gm_pagecache pc = {0, 0, 0};
    uint64_t mcache = 0; /* model: free pages of the cached block */
    bool ok = true, last_failed = false;
    const char *what = "";
    int step;
    for (step = 0; step < steps && ok; step++) {
        if (rnd() % 4 == 0) m.now += (uint32_t)(rnd() % 64);
        pa.now = m.now;
        bool scavenger = rnd() % 100 < 15;
        unsigned op = (unsigned)(rnd() % 100);
        /* Keep the heap between full and roomy: lean to frees when it is
         * nearly full, grow now and then when allocations fail. */
        if (op >= 30 && op < 55 && pa.free_pages * 4 < m.nslots * CP) op += 35;
        if (ngrown == 0 || (ngrown < NGROWS && (op == 0 || (last_failed && rnd() % 16 == 0)))) {
            last_failed = false;
            what = "grow";
            uintptr_t base = PA(grows[ngrown].ci, grows[ngrown].page);
            if (gm_pagealloc_grow(&pa, base, grows[ngrown].npages * PAGE) != 0) ok = false;
            m_grow(base, grows[ngrown].npages);
            ngrown++;
        } else if (scavenger) {
            what = "scavenger";
            ok = scav_step(&pa);
        } else if (op < 55 || nlive == 0) {
            what = "alloc";
            size_t n = rand_npages(), scav = 1, want = m_find(n);
            uintptr_t got = gm_pagealloc_alloc(&pa, n, &scav);
            last_failed = got == 0;
            if (got != want) {
                fprintf(stderr, "alloc(%zu) = %#lx, model %#lx\n", n, (unsigned long)got, (unsigned long)want);
                ok = false;
            } else if (got) {
                size_t msc = m_take(got, n) * PAGE;
                if (scav != msc) {
                    fprintf(stderr, "alloc(%zu) scav %zu, model %zu\n", n, scav, msc);
                    ok = false;
                }
                n_alloc_ok++;
                if (nlive < MAXLIVE) live[nlive++] = (typeof(live[0])){got, n};
                else gm_pagealloc_free(&pa, got, n), m_free(got, n, false);
            } else if (n_alloc_fail++, n == 1 && pa.search_addr != NONE) {
                fprintf(stderr, "failed 1-page alloc left search_addr %#lx\n", (unsigned long)pa.search_addr);
                ok = false;
            }
        } else if (op < 90) {
            /* Free all of an allocation, or a piece of it (head, tail or
             * middle), sometimes as scavenged. */
            what = "free";
            n_frees++;
            size_t k = rnd() % nlive;
            uintptr_t base = live[k].base;
            size_t n = live[k].n, off = 0, len = n;
            if (n > 1 && rnd() % 3 == 0) {
                off = rnd() % n;
                len = 1 + rnd() % (n - off);
            }
            bool scavenged = rnd() % 8 == 0;
            uintptr_t fb = base + off * PAGE;
            if (scavenged)
                gm_pagealloc_free_scavenged(&pa, fb, len);
            else
                gm_pagealloc_free(&pa, fb, len);
            m_free(fb, len, scavenged);
            if (pa.search_addr > fb) {
                fprintf(stderr, "free did not lower search_addr\n");
                ok = false;
            }
            /* Keep what is left as up to two live pieces. */
            live[k] = live[--nlive];
            if (off > 0) live[nlive++] = (typeof(live[0])){base, off};
            if (off + len < n && nlive < MAXLIVE)
                live[nlive++] = (typeof(live[0])){fb + len * PAGE, n - off - len};
            else if (off + len < n)
                gm_pagealloc_free(&pa, fb + len * PAGE, n - off - len), m_free(fb + len * PAGE, n - off - len, false);
        } else if (op < 95) {
            /* In-place growth: extend an allocation by the free pages after it. */
            what = "grow in place";
            size_t k = rnd() % nlive;
            uintptr_t end = live[k].base + live[k].n * PAGE;
            size_t want = 1 + rnd() % (rnd() % 4 ? 16 : 600);
            size_t got = gm_pagealloc_free_run_at(&pa, end, want), mg = m_free_run_at(end, want);
            if (got != mg) {
                fprintf(stderr, "free_run_at(%#lx, %zu) = %zu, model %zu\n", (unsigned long)end, want, got, mg);
                ok = false;
            } else if (got == want) {
                size_t scav = gm_pagealloc_alloc_range(&pa, end, got), msc = m_take(end, got) * PAGE;
                if (scav != msc) {
                    fprintf(stderr, "alloc_range scav %zu, model %zu\n", scav, msc);
                    ok = false;
                }
                live[k].n += got;
                n_inplace++;
            }
        } else {
            /* The page cache: refill (compared with the model's lowest free
             * page), take a few runs, or flush. */
            what = "page cache";
            n_cache++;
            if (pc.base == 0) {
                uintptr_t first = m_find(1);
                pc = gm_pagealloc_alloc_to_cache(&pa);
                uintptr_t wbase = first ? gm_align_down(first, 64 * PAGE) : 0;
                uint64_t wcache = 0, wscav = 0;
                for (unsigned i = 0; wbase && i < 64; i++) {
                    uintptr_t a = wbase + i * PAGE;
                    if (*m_state(a) != M_FREE) continue;
                    wcache |= (uint64_t)1 << i;
                    if (*m_scav(a)) wscav |= (uint64_t)1 << i;
                    *m_state(a) = M_CACHED;
                    *m_scav(a) = 0;
                }
                if (pc.base != wbase || pc.cache != wcache || pc.scav != wscav) {
                    fprintf(stderr, "alloc_to_cache = %#lx %016llx %016llx, model %#lx %016llx %016llx\n",
                            (unsigned long)pc.base, (unsigned long long)pc.cache, (unsigned long long)pc.scav,
                            (unsigned long)wbase, (unsigned long long)wcache, (unsigned long long)wscav);
                    ok = false;
                }
                mcache = wcache;
                /* The model remembers the scav bits of cached pages here. */
                for (unsigned i = 0; wbase && i < 64; i++)
                    if (wscav >> i & 1) *m_scav(wbase + i * PAGE) = 1;
            } else if (rnd() % 4 == 0) {
                uintptr_t b = pc.base;
                gm_pagecache_flush(&pc, &pa);
                for (unsigned i = 0; i < 64; i++) {
                    if (!(mcache >> i & 1)) continue;
                    *m_state(b + i * PAGE) = M_FREE; /* scav bit was kept */
                    if (!*m_scav(b + i * PAGE)) m_stamp(b + i * PAGE);
                }
                mcache = 0;
                if (pc.base != 0 || pc.cache != 0) ok = false;
            } else {
                size_t n = 1 + rnd() % 16, scav;
                uintptr_t got = gm_pagecache_alloc(&pc, n, &scav);
                unsigned want = gm_find_bit_range64(mcache, (unsigned)n);
                uintptr_t wbase = want < 64 ? pc.base + want * PAGE : 0;
                if (got != wbase) {
                    fprintf(stderr, "cache alloc(%zu) = %#lx, model %#lx\n", n, (unsigned long)got,
                            (unsigned long)wbase);
                    ok = false;
                } else if (got) {
                    size_t msc = 0;
                    for (size_t i = 0; i < n; i++) {
                        uintptr_t a = got + i * PAGE;
                        msc += *m_scav(a);
                        *m_scav(a) = 0;
                        *m_state(a) = M_USED;
                    }
                    mcache &= ~(((n == 64 ? 0 : (uint64_t)1 << n) - 1) << want);
                    if (scav != msc * PAGE) {
                        fprintf(stderr, "cache alloc scav %zu, model %zu\n", scav, msc * PAGE);
                        ok = false;
                    }
                    if (nlive < MAXLIVE) live[nlive++] = (typeof(live[0])){got, n};
                }
            }
        }
        if (ok && m_compare(&pa) != 0) ok = false;
        if (ok && consistency(&pa) != 0) ok = false;
    }
    if (!ok) fprintf(stderr, "model test: seed %#llx failed at step %d (%s)\n", (unsigned long long)seed, step - 1, what);
    printf("seed %#llx: %d steps, %zu grows, %zu allocs (%zu failed), %zu frees, %zu in place, %zu cache ops, "
           "%zu free pages of %zu; scavenger: %zu takes (%zu none), %zu chunks (%zu none), %zu given back, "
           "%llu passed over\n",
           (unsigned long long)seed, step, ngrown, n_alloc_ok, n_alloc_fail, n_frees, n_inplace, n_cache,
           pa.free_pages, m.nslots * CP, n_scav_ok, n_scav_none, n_chunk_ok, n_chunk_none, n_given_back,
           (unsigned long long)pa.scav.passed_over);
    /* The walk must have exercised every kind of step. */
    CHECK(ngrown == NGROWS);
    CHECK(n_alloc_ok > 500 && n_alloc_fail > 20 && n_frees > 500 && n_inplace > 20 && n_cache > 50);
    CHECK(n_scav_ok > 100 && n_scav_none > 10 && n_chunk_ok > 5 && n_chunk_none > 20 && n_given_back > 100);
    n_alloc_ok = n_alloc_fail = n_frees = n_inplace = n_cache = 0;
    n_scav_ok = n_scav_none = n_chunk_ok = n_chunk_none = n_given_back = 0;
    gm_pagealloc_destroy(&pa);
    return ok;
}

int main(void)
{
    static const uint64_t seeds[] = {1, 0x5eed, 0xdecafbad, 42424242, 7};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) CHECK(run_seed(seeds[i], 6000));
    CHECK_EQ(gm_stat_load(&meta), 0);
    return test_done("unit_pagealloc_model");
}
