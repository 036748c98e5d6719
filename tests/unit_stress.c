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
#define RING 2048
#define ITERS (60000 / TEST_SLOWDOWN)
static struct tobj ring[RING];
static size_t ring_head, ring_count;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long made, freed;
static atomic_int stop;

/* Puts o in the ring; returns the object it displaced (or an empty one). */
static struct tobj ring_put(struct tobj o)
{
    struct tobj out = {0};
    pthread_mutex_lock(&ring_lock);
    if (ring_count < RING) {
        ring[(ring_head + ring_count++) % RING] = o;
    } else { /* full: swap with the oldest */
        out = ring[ring_head];
        ring[ring_head] = o;
        ring_head = (ring_head + 1) % RING;
    }
    pthread_mutex_unlock(&ring_lock);
    return out;
}

static struct tobj ring_get(void)
{
    struct tobj out = {0};
    pthread_mutex_lock(&ring_lock);
    if (ring_count) {
        out = ring[ring_head];
        ring_head = (ring_head + 1) % RING;
        ring_count--;
    }
    pthread_mutex_unlock(&ring_lock);
    return out;
}

static void drop(struct tobj *o)
{
    if (!o->p) return;
    tobj_free(o);
    atomic_fetch_add(&freed, 1);
}

static void *ring_thread(void *arg)
{
    uint64_t r = 0x1234567 + (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    struct tobj mine = {0}; /* one object this thread keeps reallocating */
    for (int it = 0; it < ITERS; it++) {
        uint64_t x = test_rnd(&r);
        struct tobj out = {0};
        if (x % 16 == 0) {
            if (mine.p) tobj_realloc(&mine, &r);
            else tobj_new(&mine, &r);
        } else if (x & 1) {
            struct tobj o = {0};
            if (!tobj_new(&o, &r)) continue;
            atomic_fetch_add(&made, 1);
            out = ring_put(o);
        } else {
            out = ring_get();
        }
        drop(&out);
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
    for (struct tobj o; (o = ring_get()).p;) drop(&o);
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
    for (uintptr_t i = 0; i < CHURN_THREADS; i += CHURN_BATCH) {
        pthread_t th[CHURN_BATCH];
        for (uintptr_t j = 0; j < CHURN_BATCH; j++)
            CHECK_EQ(pthread_create(&th[j], NULL, churn_thread, (void *)(i + j)), 0);
        for (int j = 0; j < CHURN_BATCH; j++) pthread_join(th[j], NULL);
    }
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
