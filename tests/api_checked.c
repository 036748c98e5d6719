/*
 * api_checked.c — checked mode (GOMALLOC_CHECK=1) catches what the fast
 * paths let through: a write one byte past a block, a write into a freed
 * block, a corrupted free-list link. Each is reported on one line naming the
 * block, then abort (death.h's harness), at the block's free or at the next
 * allocation from its span. And checked mode must not cry wolf: a threaded
 * workload of every allocation call, with every byte verified, runs clean,
 * malloc_usable_size gives exactly the requested size, and gm_check agrees.
 *
 * Options are read at start-up, so each part re-runs this program with
 * GOMALLOC_CHECK=1 (test_subcase).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gomalloc.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "death.h"

#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

static void overflow_one_byte(void)
{
    char *p = malloc(24);
    sink = p;
    p[24] = (char)~((volatile char *)p)[24]; /* one past the end, changed */
    free(announce(p));
}

static void overflow_small_tail(void)
{
    char *p = malloc(20);
    sink = p;
    memset(p, 'y', 40); /* through the pad and the canary */
    free(announce(p));
}

static void overflow_large(void)
{
    char *p = malloc(100000);
    sink = p;
    p[100003] = (char)~((volatile char *)p)[100003];
    free(announce(p));
}

static void overflow_then_realloc(void)
{
    char *p = malloc(200);
    sink = p;
    p[200] = (char)~((volatile char *)p)[200]; /* the canary's first byte (no pad here): changed,
                             * whatever its random value was */
    sink = realloc(announce(p), 400);
}

static void write_after_free(void)
{
    char *p = malloc(100);
    sink = p;
    free(p);
    p[50] = 'z'; /* into the freed block */
    announce(p);
    for (int i = 0; i < 100000; i++) sink = malloc(100); /* until p comes back */
}

static void corrupt_free_link(void)
{
    char *p = malloc(100);
    sink = p;
    free(p);
    memset(p, 0x41, 8); /* the free list's link */
    announce(p);
    for (int i = 0; i < 100000; i++) sink = malloc(100);
}

static const struct death_case checked_cases[] = {
    {"one byte past a small block", overflow_one_byte, "buffer overflow"},
    {"past a small block through its canary", overflow_small_tail, "buffer overflow"},
    {"past a large block", overflow_large, "buffer overflow"},
    {"realloc of an overflowed block", overflow_then_realloc, "buffer overflow"},
    {"write into a freed block", write_after_free, "write after free"},
    {"corrupted free-list link", corrupt_free_link, "corrupted free list"},
};

static int case_deaths(void)
{
    for (size_t i = 0; i < sizeof checked_cases / sizeof checked_cases[0]; i++) run_case(&checked_cases[i], false);
    return test_done("deaths");
}

/* ------------------------------------------------------------------------ */
/* No false alarms                                                          */
/* ------------------------------------------------------------------------ */

#define THREADS 4
#define SLOTS 2048
static struct test_ring ring = TEST_RING_INIT;
static _Atomic int bad;

struct blk {
    size_t n;
    uint64_t seed;
    unsigned char data[];
};

static struct blk *blk_new(uint64_t *s)
{
    uint64_t r = test_rnd(s);
    size_t n = r % 8 == 0 ? 40000 + r % 200000 : 1 + r % 3000, align = (size_t)16 << (r >> 60 & 7);
    struct blk *b;
    switch (r >> 56 & 3) {
    case 0: b = malloc(sizeof *b + n); break;
    case 1:
        b = calloc(1, sizeof *b + n);
        if (b && !test_all_zero(b->data, n)) atomic_fetch_add(&bad, 1);
        break;
    case 2: b = aligned_alloc(align, sizeof *b + n); break;
    default:
        b = malloc(sizeof *b + n / 2);
        b = b ? realloc(b, sizeof *b + n) : NULL;
    }
    if (!b) {
        atomic_fetch_add(&bad, 1);
        return NULL;
    }
    if (malloc_usable_size(b) != sizeof *b + n) atomic_fetch_add(&bad, 1);
    b->n = n;
    b->seed = r;
    test_fill(b->data, n, r);
    return b;
}

static void blk_free(struct blk *b)
{
    if (!b) return;
    if (!test_verify(b->data, b->n, b->seed)) atomic_fetch_add(&bad, 1);
    free(b);
}

static void *worker(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15u * ((uintptr_t)arg + 1);
    struct blk *mine[64] = {0};
    for (int i = 0; i < 20000; i++) {
        unsigned k = (unsigned)(test_rnd(&s) % 64);
        blk_free(mine[k]);
        mine[k] = blk_new(&s);
        if (i % 4 == 0) blk_free(test_ring_put(&ring, blk_new(&s))); /* freed by another thread */
    }
    for (int k = 0; k < 64; k++) blk_free(mine[k]);
    return NULL;
}

static int case_workload(void)
{
    CHECK_EQ(test_run_batched(worker, THREADS, THREADS), 0);
    for (void *b; (b = test_ring_take(&ring));) blk_free(b);
    CHECK_EQ(atomic_load(&bad), 0);
    /* Impossible sizes still fail cleanly. */
    errno = 0;
    CHECK(malloc(SIZE_MAX - 8) == NULL && errno == ENOMEM);
    CHECK_EQ(gm_check(), 0);
    return test_done("workload");
}

int main(int argc, char **argv)
{
    /* Under an emulator the cases run fresh (death.h). */
    death_child(argc, argv, checked_cases, sizeof checked_cases / sizeof checked_cases[0]);
    if (argc > 1) {
        if (!strcmp(argv[1], "deaths")) return case_deaths();
        if (!strcmp(argv[1], "workload")) return case_workload();
        return 2;
    }
    const char *env[] = {"GOMALLOC_CHECK=1", NULL};
    test_subcase("deaths", env, NULL);
    test_subcase("workload", env, NULL);
    return test_done("api_checked");
}
