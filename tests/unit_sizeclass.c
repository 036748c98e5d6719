/* unit_sizeclass.c — the size-class tables (src/sizeclass.c) against Go's
 * table and the contract in internal.h: lookups, spans, waste, divmagic. */
#include "internal.h"
#include "test.h"

/* Go's table (sizeclasses.go) without classes 1 (8 B) and 3 (24 B), plus
 * gomalloc's own 1040- and 4480-byte classes in place of Go's 6528 and 6784
 * (tools/gen_sizeclass.py's EXTRA and DROPPED):
 * bytes/obj, pages, objects, tail waste, min align. */
static const struct {
    uint32_t size, npages, nelems, tail, align;
} go_table[] = {
    {16, 1, 512, 0, 16},        {32, 1, 256, 0, 32},       {48, 1, 170, 32, 16},
    {64, 1, 128, 0, 64},        {80, 1, 102, 32, 16},      {96, 1, 85, 32, 32},
    {112, 1, 73, 16, 16},       {128, 1, 64, 0, 128},      {144, 1, 56, 128, 16},
    {160, 1, 51, 32, 32},       {176, 1, 46, 96, 16},      {192, 1, 42, 128, 64},
    {208, 1, 39, 80, 16},       {224, 1, 36, 128, 32},     {240, 1, 34, 32, 16},
    {256, 1, 32, 0, 256},       {288, 1, 28, 128, 32},     {320, 1, 25, 192, 64},
    {352, 1, 23, 96, 32},       {384, 1, 21, 128, 128},    {416, 1, 19, 288, 32},
    {448, 1, 18, 128, 64},      {480, 1, 17, 32, 32},      {512, 1, 16, 0, 512},
    {576, 1, 14, 128, 64},      {640, 1, 12, 512, 128},    {704, 1, 11, 448, 64},
    {768, 1, 10, 512, 256},     {896, 1, 9, 128, 128},     {1024, 1, 8, 0, 1024},
    {1040, 4, 31, 528, 16}, /* gomalloc's (4 pages, not Go's 1: see below) */
    {1152, 1, 7, 128, 128},     {1280, 1, 6, 512, 256},    {1408, 2, 11, 896, 128},
    {1536, 1, 5, 512, 512},     {1792, 2, 9, 256, 256},    {2048, 1, 4, 0, 2048},
    {2304, 2, 7, 256, 256},     {2688, 1, 3, 128, 128},    {3072, 3, 8, 0, 1024},
    {3200, 2, 5, 384, 128},     {3456, 3, 7, 384, 128},    {4096, 1, 2, 0, 4096},
    {4480, 5, 9, 640, 128}, /* gomalloc's */
    {4864, 3, 5, 256, 256},     {5376, 2, 3, 256, 256},    {6144, 3, 4, 0, 2048},
    /* Go's 6528 and 6784: dropped */ {6912, 6, 7, 768, 256},
    {8192, 1, 1, 0, 8192},      {9472, 7, 6, 512, 256},    {9728, 6, 5, 512, 512},
    {10240, 5, 4, 0, 2048},     {10880, 4, 3, 128, 128},   {12288, 3, 2, 0, 4096},
    {13568, 5, 3, 256, 256},    {14336, 7, 4, 0, 2048},    {16384, 2, 1, 0, 8192},
    {18432, 9, 4, 0, 2048},     {19072, 7, 3, 128, 128},   {20480, 5, 2, 0, 4096},
    {21760, 8, 3, 256, 256},    {24576, 3, 1, 0, 8192},    {27264, 10, 3, 128, 128},
    {28672, 7, 2, 0, 4096},     {32768, 4, 1, 0, 8192},
};

/* Largest power of two dividing n, capped at a page (Go's "min align"). */
static uint32_t min_align(uint32_t n)
{
    uint32_t a = n & -n;
    return a > GM_PAGE_SIZE ? GM_PAGE_SIZE : a;
}

static void test_against_go(void)
{
    CHECK_EQ(sizeof go_table / sizeof go_table[0], GM_NUM_CLASSES - 1);
    /* Class 0 is the all-zero large placeholder. */
    CHECK_EQ(gm_class_size[0], 0);
    CHECK_EQ(gm_class_npages[0], 0);
    CHECK_EQ(gm_class_nelems[0], 0);
    CHECK_EQ(gm_class_divmagic[0], 0);
    /* small.c's split between owned and shared classes. */
    CHECK_EQ(gm_class_size[GM_FIRST_SHARED_CLASS - 1], GM_OWNED_MAX);
    CHECK(gm_class_size[GM_FIRST_SHARED_CLASS] > GM_OWNED_MAX);
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        uint32_t size = gm_class_size[c], span = gm_class_npages[c] * (uint32_t)GM_PAGE_SIZE;
        CHECK_EQ(size, go_table[c - 1].size);
        if (size <= 1024) { /* gomalloc's one change: 32 KiB spans up to 1 KiB */
            CHECK_EQ(go_table[c - 1].npages, 1);
            CHECK_EQ(gm_class_npages[c], 4);
            CHECK_EQ(gm_class_nelems[c], 32768 / size);
            CHECK_EQ(span - gm_class_nelems[c] * size, 32768 % size);
        } else {
            CHECK_EQ(gm_class_npages[c], go_table[c - 1].npages);
            CHECK_EQ(gm_class_nelems[c], go_table[c - 1].nelems);
            CHECK_EQ(span - gm_class_nelems[c] * size, go_table[c - 1].tail);
        }
        CHECK_EQ(min_align(size), go_table[c - 1].align);
    }
    CHECK_EQ(gm_class_size[GM_NUM_CLASSES - 1], GM_MAX_SMALL);
}

static void test_class_shape(void)
{
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        uint32_t size = gm_class_size[c];
        uint64_t span = (uint64_t)gm_class_npages[c] * GM_PAGE_SIZE;
        CHECK(size > gm_class_size[c - 1]);
        CHECK_EQ(size % 16, 0);
        CHECK(gm_class_npages[c] >= 1);
        CHECK_EQ(gm_class_nelems[c], span / size);
        CHECK((uint64_t)gm_class_nelems[c] * size <= span);
        /* Tail waste at most 1/8 of the span. */
        CHECK((span - (uint64_t)gm_class_nelems[c] * size) * 8 <= span);
    }
}

static void test_lookup(void)
{
    unsigned bad = 0;
    for (size_t size = 0; size <= GM_MAX_SMALL; size++) {
        unsigned c = gm_size_class(size);
        if (c == 0 || c >= GM_NUM_CLASSES || gm_class_size[c] < size ||
            (c > 1 && gm_class_size[c - 1] >= size)) {
            if (bad++ < 10)
                fprintf(stderr, "size %zu -> class %u (size %u)\n", size, c,
                        c < GM_NUM_CLASSES ? gm_class_size[c] : 0);
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(gm_size_class(0), 1);
    CHECK_EQ(gm_size_class(1), 1);
    CHECK_EQ(gm_size_class(16), 1);
    CHECK_EQ(gm_size_class(17), 2);
    CHECK_EQ(gm_size_class(24), 2);
    CHECK_EQ(gm_size_class(1024), 30);
    CHECK_EQ(gm_size_class(1025), 31);
    CHECK_EQ(gm_size_class(32767), GM_NUM_CLASSES - 1);
    CHECK_EQ(gm_size_class(32768), GM_NUM_CLASSES - 1);
    /* Every class is reachable and is its own size's class. */
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) CHECK_EQ(gm_size_class(gm_class_size[c]), c);
}

static void test_divmagic(void)
{
    unsigned bad = 0;
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        uint32_t size = gm_class_size[c], span = gm_class_npages[c] * (uint32_t)GM_PAGE_SIZE;
        uint64_t m = gm_class_divmagic[c];
        /* Go's ceil(2^32 / size). */
        CHECK_EQ(m, ((1ull << 32) + size - 1) / size);
        for (uint32_t off = 0; off < span; off++) {
            if ((uint32_t)((off * m) >> 32) != off / size) {
                if (bad++ < 10) fprintf(stderr, "class %u size %u: offset %u wrong\n", c, size, off);
            }
        }
        /* The last object's start maps to the last index. */
        CHECK_EQ(((uint64_t)(gm_class_nelems[c] - 1) * size * m) >> 32, gm_class_nelems[c] - 1u);
    }
    CHECK_EQ(bad, 0);
}

int main(void)
{
    test_against_go();
    test_class_shape();
    test_lookup();
    test_divmagic();
    return test_done("unit_sizeclass");
}
