/*
 * unit_stress.c — the gm_ API under threads, on the test build, so that it
 * also runs under ThreadSanitizer and AddressSanitizer (which cannot run the
 * standard-name library: they own malloc):
 *   1. ring: 8 threads make checked objects (tests/objects.h: every
 *      allocation function, class edges, some large) and pass them through a
 *      shared ring; whoever takes one out checks its pattern and frees it, so
 *      most frees are cross-thread, into spans whose owner is alive, full or
 *      gone. Meanwhile a watcher reads the statistics and scavenges.
 *   2. churn: thousands of short-lived threads, each allocating, reallocating
 *      and freeing, and freeing one object its predecessor left behind;
 *      thread caches are reused rather than piling up.
 * Then the main thread, which never allocates, frees what is left: every
 * page is back (heap_inuse 0 after a scavenge), and gm_check passes.
 */
#include "internal.h"
#include "objects.h"

#include <pthread.h>

/* ------------------------------------------------------------------------ */
/* 1. ring                                                                  */
/* ------------------------------------------------------------------------ */

#define NTHREADS 8
#define ITERS (60000 / TEST_SLOWDOWN)
static struct test_ring ring = TEST_RING_INIT; /* of struct tobj, boxed in libc memory */
static atomic_long made, freed;
static atomic_int stop;

/* Checks and frees the object in box, and the box. */
static void drop(struct tobj *box)
{
    if (!box) return;
    tobj_free(box);
    free(box);
    atomic_fetch_add(&freed, 1);
}

static void *ring_thread(void *arg)
{
    uint64_t r = 0x1234567 + (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    struct tobj mine = {0}; /* one object this thread keeps reallocating */
    for (int it = 0; it < ITERS; it++) {
        uint64_t x = test_rnd(&r);
        if (x % 16 == 0) {
            if (mine.p) tobj_realloc(&mine, &r);
            else tobj_new(&mine, &r);
        } else if (x & 1) {
            struct tobj *box = calloc(1, sizeof *box);
            if (!box || !tobj_new(box, &r)) {
                free(box);
                continue;
            }
            atomic_fetch_add(&made, 1);
            drop(test_ring_put(&ring, box));
        } else {
            drop(test_ring_take(&ring));
        }
    }
    tobj_free(&mine);
    return NULL;
}

/* Reads the statistics and returns memory while the others work. */
static void *watcher(void *arg)
{
    struct gm_stats st;
    while (!atomic_load(&stop)) {
        gm_stats_get(&st);
        gm_scavenge();
        usleep(2000);
    }
    return NULL;
}

static void test_ring(void)
{
    pthread_t th[NTHREADS], w;
    CHECK_EQ(pthread_create(&w, NULL, watcher, NULL), 0);
    for (uintptr_t i = 0; i < NTHREADS; i++) CHECK_EQ(pthread_create(&th[i], NULL, ring_thread, (void *)i), 0);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    for (struct tobj *box; (box = test_ring_take(&ring));) drop(box);
    CHECK_EQ(atomic_load(&made), atomic_load(&freed));
    printf("ring: %ld objects through %d threads\n", atomic_load(&made), NTHREADS);
    CHECK_EQ(gm_check(), 0);
}

/* ------------------------------------------------------------------------ */
/* 2. churn                                                                 */
/* ------------------------------------------------------------------------ */

#define CHURN_THREADS (2400 / TEST_SLOWDOWN)
#define CHURN_BATCH 8
static struct tobj leftover[CHURN_BATCH]; /* one per slot, freed by the next thread there */

static void *churn_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t r = 0xabcdef + id * 0x9e3779b97f4a7c15ull;
    struct tobj objs[48] = {{0}};
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 48; i++) tobj_step(&objs[i], &r);
    for (int i = 0; i < 48; i++) tobj_free(&objs[i]);
    /* Slot id % CHURN_BATCH is this thread's alone while it runs. */
    tobj_free(&leftover[id % CHURN_BATCH]);
    tobj_new(&leftover[id % CHURN_BATCH], &r);
    return NULL;
}

static void test_churn(void)
{
    struct gm_stats a, b;
    gm_stats_get(&a);
    CHECK_EQ(test_run_batched(churn_thread, CHURN_THREADS, CHURN_BATCH), 0);
    gm_stats_get(&b);
    printf("churn: %d threads, tcaches %llu -> %llu bytes\n", CHURN_THREADS, (unsigned long long)a.meta_tcaches,
           (unsigned long long)b.meta_tcaches);
    /* Thread caches are reused: a few batches' worth at most. */
    CHECK(b.meta_tcaches <= a.meta_tcaches + 4 * 16 * 1024);
    for (int j = 0; j < CHURN_BATCH; j++) tobj_free(&leftover[j]);
    CHECK_EQ(gm_check(), 0);
}

int main(void)
{
    tobj_big = 4; /* mostly small objects: the contended paths */
    test_ring();
    test_churn();
    /* Every object is free and every thread gone: after a scavenge (which
     * gives central lists' empty spans back) no page is in use. */
    gm_scavenge();
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), 0);
    CHECK_EQ(gm_check(), 0);
    CHECK_EQ(atomic_load(&tobj_bad), 0);
    return test_done("unit_stress");
}
