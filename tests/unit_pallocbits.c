/* unit_pallocbits.c — the page allocator's bitmap primitives and summary
 * encoding: summarize (table cases and random bitmaps against a naive
 * reference), find for 1, small and large runs with search indices,
 * gm_find_bit_range64 for every n, and summary packing. */
#include "internal.h"
#include "test.h"

#include <string.h>

struct br {
    unsigned start, n;
};

/* A bitmap with the listed ranges set (terminated by n == 0). */
static struct gm_pallocbits bits_of(const struct br *r)
{
    struct gm_pallocbits b;
    memset(&b, 0, sizeof b);
    for (; r->n; r++)
        for (unsigned i = r->start; i < r->start + r->n; i++) b.w[i / 64] |= (uint64_t)1 << (i % 64);
    return b;
}

static bool bit(const struct gm_pallocbits *b, unsigned i) { return b->w[i / 64] >> (i % 64) & 1; }

/* Reference summary: one page at a time. */
static void naive_summary(const struct gm_pallocbits *b, unsigned *start, unsigned *max, unsigned *end)
{
    unsigned s = 0, m = 0, cur = 0;
    bool seen = false;
    for (unsigned i = 0; i < GM_CHUNK_PAGES; i++) {
        if (!bit(b, i)) {
            cur++;
            if (cur > m) m = cur;
            continue;
        }
        if (!seen) s = cur;
        seen = true;
        cur = 0;
    }
    if (!seen) s = GM_CHUNK_PAGES;
    *start = s;
    *max = m;
    *end = cur;
}

/* Reference find: first run of n clear bits starting at or after from. */
static unsigned naive_find(const struct gm_pallocbits *b, unsigned n, unsigned from, unsigned *first_free)
{
    *first_free = ~0u;
    for (unsigned i = from; i < GM_CHUNK_PAGES; i++)
        if (!bit(b, i)) {
            *first_free = i;
            break;
        }
    for (unsigned i = from; i + n <= GM_CHUNK_PAGES; i++) {
        unsigned k = 0;
        while (k < n && !bit(b, i + k)) k++;
        if (k == n) return i;
        i += k; /* skip past the used bit */
    }
    return ~0u;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Random bitmaps of several textures: uniform words, sparse bits, long runs. */
static struct gm_pallocbits random_bits(void)
{
    struct gm_pallocbits b;
    switch (rnd() % 4) {
    case 0:
        for (int i = 0; i < 8; i++) b.w[i] = rnd();
        break;
    case 1: /* mostly free */
        for (int i = 0; i < 8; i++) b.w[i] = rnd() & rnd() & rnd() & rnd();
        break;
    case 2: /* mostly used */
        for (int i = 0; i < 8; i++) b.w[i] = rnd() | rnd() | rnd();
        break;
    default: { /* runs of random length */
        memset(&b, 0, sizeof b);
        unsigned i = 0;
        bool used = rnd() & 1;
        while (i < GM_CHUNK_PAGES) {
            unsigned len = 1 + (unsigned)(rnd() % (rnd() % 2 ? 8 : 200));
            for (unsigned k = i; k < i + len && k < GM_CHUNK_PAGES; k++)
                if (used) b.w[k / 64] |= (uint64_t)1 << (k % 64);
            i += len;
            used = !used;
        }
    }
    }
    return b;
}

static void test_pack(void)
{
    CHECK_EQ(gm_pack_sum(0, 0, 0), 0);
    gm_pallocsum root_free = gm_pack_sum(1u << 21, 1u << 21, 1u << 21);
    CHECK_EQ(root_free, (gm_pallocsum)1 << 63);
    CHECK_EQ(gm_sum_start(root_free), 1u << 21);
    CHECK_EQ(gm_sum_max(root_free), 1u << 21);
    CHECK_EQ(gm_sum_end(root_free), 1u << 21);
    /* The largest value a field holds, and field independence. */
    unsigned big = (1u << 21) - 1;
    gm_pallocsum s = gm_pack_sum(big, 5, big);
    CHECK_EQ(gm_sum_start(s), big);
    CHECK_EQ(gm_sum_max(s), 5);
    CHECK_EQ(gm_sum_end(s), big);
    CHECK(s >> 63 == 0);
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        unsigned a = (unsigned)(rnd() % (1u << 21)), m = (unsigned)(rnd() % (1u << 21)),
                 e = (unsigned)(rnd() % (1u << 21));
        gm_pallocsum p = gm_pack_sum(a, m, e);
        bad += gm_sum_start(p) != a || gm_sum_max(p) != m || gm_sum_end(p) != e;
    }
    CHECK_EQ(bad, 0);
}

static void test_summarize_table(void)
{
    static const struct {
        const char *name;
        struct br alloc[8];
        unsigned start, max, end;
    } cases[] = {
        {"AllFree", {{0, 0}}, 512, 512, 512},
        {"NoneFree", {{0, 512}}, 0, 0, 0},
        {"OnlyStart", {{3, 509}}, 3, 3, 0},
        {"OnlyEnd", {{0, 500}}, 0, 12, 12},
        {"StartAndEnd", {{11, 490}}, 11, 11, 11},
        {"StartMaxEnd", {{4, 50}, {100, 70}, {300, 212 - 6}}, 4, 130, 6},
        {"OneFreeMiddle", {{0, 200}, {201, 311}}, 0, 1, 0},
        {"MaxInsideWord", {{0, 70}, {80, 432}}, 0, 10, 0},
        {"MaxAcrossWords", {{0, 60}, {190, 322}}, 0, 130, 0},
        {"EveryOther", {{0, 1}, {2, 1}, {4, 1}, {6, 1}, {8, 1}, {10, 502}}, 0, 1, 0},
        {"LastPageFree", {{0, 511}}, 0, 1, 1},
        {"FirstPageFree", {{1, 511}}, 1, 1, 0},
        {"InteriorMax", {{0, 64}, {65, 5}, {120, 392}}, 0, 50, 0},
        {"WordInteriorBeatsEnds", {{0, 129}, {131, 2}, {190, 1}, {250, 260}}, 0, 59, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct gm_pallocbits b = bits_of(cases[c].alloc);
        gm_pallocsum s = gm_pallocbits_summarize(&b);
        unsigned ns, nm, ne;
        naive_summary(&b, &ns, &nm, &ne);
        if (gm_sum_start(s) != cases[c].start || gm_sum_max(s) != cases[c].max || gm_sum_end(s) != cases[c].end ||
            ns != cases[c].start || nm != cases[c].max || ne != cases[c].end)
            fprintf(stderr, "summarize %s: got (%u,%u,%u) naive (%u,%u,%u) want (%u,%u,%u)\n", cases[c].name,
                    gm_sum_start(s), gm_sum_max(s), gm_sum_end(s), ns, nm, ne, cases[c].start, cases[c].max,
                    cases[c].end);
        CHECK_EQ(gm_sum_start(s), cases[c].start);
        CHECK_EQ(gm_sum_max(s), cases[c].max);
        CHECK_EQ(gm_sum_end(s), cases[c].end);
    }
    /* A fully free chunk is exactly (512, 512, 512), not the root marker. */
    struct gm_pallocbits z;
    memset(&z, 0, sizeof z);
    CHECK_EQ(gm_pallocbits_summarize(&z), gm_pack_sum(512, 512, 512));
}

static void test_summarize_random(void)
{
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        struct gm_pallocbits b = random_bits();
        gm_pallocsum s = gm_pallocbits_summarize(&b);
        unsigned ns, nm, ne;
        naive_summary(&b, &ns, &nm, &ne);
        if (gm_sum_start(s) != ns || gm_sum_max(s) != nm || gm_sum_end(s) != ne) {
            if (bad++ < 5)
                fprintf(stderr, "summarize random %d: got (%u,%u,%u) want (%u,%u,%u)\n", i, gm_sum_start(s),
                        gm_sum_max(s), gm_sum_end(s), ns, nm, ne);
        }
    }
    CHECK_EQ(bad, 0);
}

static void test_find_table(void)
{
    static const struct {
        const char *name;
        struct br alloc[6];
        unsigned npages, search, want, want_first;
    } cases[] = {
        /* one page */
        {"1/AllFree", {{0, 0}}, 1, 0, 0, 0},
        {"1/AllFreeSearch", {{0, 0}}, 1, 77, 77, 77},
        {"1/NoneFree", {{0, 512}}, 1, 0, ~0u, ~0u},
        {"1/Last", {{0, 511}}, 1, 0, 511, 511},
        {"1/SecondWord", {{0, 64}, {65, 10}}, 1, 0, 64, 64},
        {"1/SearchSkipsLowHole", {{1, 100}}, 1, 5, 101, 101},
        /* small */
        {"2/AllFree", {{0, 0}}, 2, 0, 0, 0},
        {"5/AcrossWord", {{0, 62}, {67, 100}}, 5, 0, 62, 62},
        {"5/HoleTooSmall", {{0, 62}, {66, 100}}, 5, 0, 166, 62},
        {"5/HoleTooSmallSearch", {{0, 62}, {66, 100}}, 5, 63, 166, 63},
        {"13/InsideWord", {{0, 130}, {140, 2}, {155, 300}}, 13, 0, 142, 130},
        {"64/Exact", {{0, 128}, {192, 320}}, 64, 0, 128, 128},
        {"64/Unaligned", {{0, 100}, {164, 10}, {200, 312}}, 64, 0, 100, 100},
        {"64/None", {{0, 100}, {163, 10}, {200, 312}}, 64, 0, ~0u, 100},
        {"33/TopOfLastWord", {{0, 479}}, 33, 0, 479, 479},
        /* large */
        {"65/AllFree", {{0, 0}}, 65, 0, 0, 0},
        {"65/AllFreeSearch", {{0, 0}}, 65, 200, 200, 200},
        {"65/AfterSmallHoles", {{0, 10}, {40, 30}, {100, 27}, {192, 100}}, 65, 0, 127, 10},
        {"200/Straddle", {{0, 150}, {350, 162}}, 200, 0, 150, 150},
        {"201/TooBig", {{0, 150}, {350, 162}}, 201, 0, ~0u, 150},
        {"300/TwoHoles", {{1, 100}, {300, 1}}, 211, 0, 301, 0},
        {"512/AllFree", {{0, 0}}, 512, 0, 0, 0},
        {"512/OneUsed", {{300, 1}}, 512, 0, ~0u, 0},
        {"100/SearchAboveFit", {{100, 10}}, 100, 5, 110, 5},
        {"400/EndRun", {{0, 112}}, 400, 0, 112, 112},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct gm_pallocbits b = bits_of(cases[c].alloc);
        unsigned ns = 12345;
        unsigned got = gm_pallocbits_find(&b, cases[c].npages, cases[c].search, &ns);
        unsigned nf, ref = naive_find(&b, cases[c].npages, cases[c].search, &nf);
        if (got != cases[c].want || ref != cases[c].want || (got != ~0u && ns != cases[c].want_first))
            fprintf(stderr, "find %s: got %u (search %u) naive %u want %u (search %u)\n", cases[c].name, got, ns,
                    ref, cases[c].want, cases[c].want_first);
        CHECK_EQ(got, cases[c].want);
        if (got != ~0u) CHECK_EQ(ns, cases[c].want_first);
    }
}

static void test_find_random(void)
{
    static const unsigned sizes[] = {1, 2, 3, 5, 8, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 300, 511, 512};
    int bad = 0;
    for (int i = 0; i < 400; i++) {
        struct gm_pallocbits b = random_bits();
        /* Search indices are lower bounds with no free page below them. */
        unsigned first_free;
        naive_find(&b, 1, 0, &first_free);
        unsigned searches[3] = {0, first_free == ~0u ? 0 : first_free, (unsigned)(rnd() % 512)};
        for (int si = 0; si < 3; si++) {
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                unsigned ns, nf;
                unsigned got = gm_pallocbits_find(&b, sizes[k], searches[si], &ns);
                unsigned ref = naive_find(&b, sizes[k], searches[si], &nf);
                if (got != ref || (got != ~0u && ns != nf)) {
                    if (bad++ < 5)
                        fprintf(stderr, "find random %d n=%u from=%u: got %u/%u want %u/%u\n", i, sizes[k],
                                searches[si], got, ns, ref, nf);
                }
            }
        }
    }
    CHECK_EQ(bad, 0);
}

static unsigned naive_range64(uint64_t x, unsigned n)
{
    for (unsigned i = 0; i + n <= 64; i++) {
        unsigned k = 0;
        while (k < n && (x >> (i + k) & 1)) k++;
        if (k == n) return i;
    }
    return 64;
}

static void test_find_bit_range64(void)
{
    int bad = 0;
    uint64_t words[64 + 64 + 300];
    size_t nw = 0;
    words[nw++] = 0;
    words[nw++] = ~(uint64_t)0;
    for (unsigned k = 1; k < 64; k++) {
        words[nw++] = ((uint64_t)1 << k) - 1;     /* k low ones */
        words[nw++] = ~(uint64_t)0 << k;          /* high ones */
    }
    while (nw < sizeof words / sizeof words[0]) {
        uint64_t r = rnd();
        words[nw] = nw % 3 == 0 ? r : nw % 3 == 1 ? (r | rnd()) : (r | rnd() | rnd() | (r >> 7));
        nw++;
    }
    for (size_t w = 0; w < nw; w++)
        for (unsigned n = 1; n <= 64; n++) {
            unsigned got = gm_find_bit_range64(words[w], n), want = naive_range64(words[w], n);
            if (got != want && bad++ < 5)
                fprintf(stderr, "find_bit_range64(%#llx, %u) = %u, want %u\n", (unsigned long long)words[w], n, got,
                        want);
        }
    CHECK_EQ(bad, 0);
    /* Fixed points Go's table checks too. */
    CHECK_EQ(gm_find_bit_range64(0x00f0f0f0f0f0f0f0ull, 5), 64);
    CHECK_EQ(gm_find_bit_range64(0x00f0f0f0f0f0f0f0ull, 4), 4);
    CHECK_EQ(gm_find_bit_range64(0xff00000000000000ull, 8), 56);
    CHECK_EQ(gm_find_bit_range64(0xff00000000000000ull, 9), 64);
    CHECK_EQ(gm_find_bit_range64(~(uint64_t)0, 64), 0);
    CHECK_EQ(gm_find_bit_range64(~(uint64_t)0 >> 1, 64), 64);
    CHECK_EQ(gm_find_bit_range64(0x8000000000000001ull, 2), 64);
}

int main(void)
{
    test_pack();
    test_summarize_table();
    test_summarize_random();
    test_find_table();
    test_find_random();
    test_find_bit_range64();
    return test_done("unit_pallocbits");
}
