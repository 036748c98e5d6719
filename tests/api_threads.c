/*
 * api_threads.c — gomalloc under threads:
 *   1. ring: 8 threads allocate objects of mixed sizes (some large), each
 *      carrying a pattern derived from its own header, and pass them through
 *      a shared ring; whoever takes an object out verifies it and frees it,
 *      so most frees are cross-thread. Then gm_check.
 *   2. churn: thousands of short-lived threads, each allocating and freeing
 *      (and freeing one object its predecessor left behind); afterwards the
 *      live bytes and in-use pages are back where they started, and thread
 *      caches are reused rather than piling up.
 *   3. fork while other threads allocate: each child allocates, starts a
 *      thread of its own, and exits cleanly within a timeout (alarm).
 *   4. many: 1,000 threads alive at once, each holding 64 small objects of
 *      as many sizes (16 B-1 KiB, about 30 classes): RSS grows by less than
 *      150 KiB a thread, stack included. A thread that uses a class a
 *      little must not touch a whole span of it: carving all of a first
 *      span's 8 KiB page cost 180 KiB a thread (glibc: about 40).
 *   5. grow: 4 threads each grow blocks by realloc from 1 to 16 MiB, a
 *      block allocated behind them at each step, and scavenge now and
 *      then, so that many growths move pages (mremap) at once, from
 *      several threads: every byte arrives, then gm_check.
 */
#define _GNU_SOURCE
#include <gomalloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* An object: header {size, seed}, then pattern bytes. */
struct hdr {
    size_t size;
    uint64_t seed;
};

static size_t pick_size(uint64_t *s)
{
    uint64_t r = test_rnd(s);
    if (r % 97 == 0) return 32768 + (r >> 16) % (300 << 10); /* large */
    if (r % 7 == 0) return 1024 + (r >> 16) % 31744;
    return sizeof(struct hdr) + (r >> 16) % 512;
}

static void *obj_new(uint64_t *s)
{
    size_t n = pick_size(s);
    struct hdr *h = malloc(n);
    if (!h) return NULL;
    h->size = n;
    h->seed = test_rnd(s);
    unsigned char *b = (unsigned char *)(h + 1);
    for (size_t i = 0; i < n - sizeof *h; i++) b[i] = (unsigned char)(h->seed + i);
    return h;
}

static atomic_long corrupt;

static void obj_free(void *p)
{
    struct hdr *h = p;
    const unsigned char *b = (const unsigned char *)(h + 1);
    for (size_t i = 0; i < h->size - sizeof *h; i++)
        if (b[i] != (unsigned char)(h->seed + i)) {
            atomic_fetch_add(&corrupt, 1);
            break;
        }
    free(p);
}

/* ------------------------------------------------------------------------ */
/* 1. ring                                                                  */
/* ------------------------------------------------------------------------ */

#define NTHREADS 8
#define ITERS 150000
static struct test_ring ring = TEST_RING_INIT;
static atomic_long made, freed;

static void *ring_thread(void *arg)
{
    uint64_t s = 0x1234567 + (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    for (int it = 0; it < ITERS; it++) {
        void *out;
        if (test_rnd(&s) & 1) {
            void *o = obj_new(&s);
            if (!o) {
                atomic_fetch_add(&corrupt, 1);
                continue;
            }
            atomic_fetch_add(&made, 1);
            out = test_ring_put(&ring, o);
        } else {
            out = test_ring_take(&ring);
        }
        if (out) {
            obj_free(out);
            atomic_fetch_add(&freed, 1);
        }
    }
    return NULL;
}

static void test_ring(void)
{
    pthread_t th[NTHREADS];
    for (uintptr_t i = 0; i < NTHREADS; i++) CHECK_EQ(pthread_create(&th[i], NULL, ring_thread, (void *)i), 0);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    for (void *o; (o = test_ring_take(&ring));) {
        obj_free(o);
        atomic_fetch_add(&freed, 1);
    }
    CHECK_EQ(atomic_load(&corrupt), 0);
    CHECK_EQ(atomic_load(&made), atomic_load(&freed));
    printf("ring: %ld objects through %d threads\n", atomic_load(&made), NTHREADS);
    CHECK_EQ(gm_check(), 0);
}

/* ------------------------------------------------------------------------ */
/* 2. churn                                                                 */
/* ------------------------------------------------------------------------ */

#define CHURN_THREADS 3000
#define CHURN_BATCH 8
static void *_Atomic leftover[CHURN_BATCH]; /* one object per slot, freed by the next thread */

static void *churn_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t s = 0xabcdef + id * 0x9e3779b97f4a7c15ull;
    void *objs[64];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 64; i++) objs[i] = obj_new(&s);
        for (int i = 0; i < 64; i++)
            if (objs[i]) obj_free(objs[i]);
            else atomic_fetch_add(&corrupt, 1);
    }
    void *mine = obj_new(&s);
    void *prev = atomic_exchange(&leftover[id % CHURN_BATCH], mine);
    if (prev) obj_free(prev);
    return NULL;
}

static void test_churn(void)
{
    struct gm_stats a, b;
    gm_stats_get(&a);
    CHECK_EQ(test_run_batched(churn_thread, CHURN_THREADS, CHURN_BATCH), 0);
    for (int j = 0; j < CHURN_BATCH; j++) {
        void *p = atomic_exchange(&leftover[j], NULL);
        if (p) obj_free(p);
    }
    gm_stats_get(&b);
    printf("churn: %d threads; heap_alloc %llu -> %llu, heap_inuse %llu -> %llu, tcaches %llu -> %llu bytes\n",
           CHURN_THREADS, (unsigned long long)a.heap_alloc, (unsigned long long)b.heap_alloc,
           (unsigned long long)a.heap_inuse, (unsigned long long)b.heap_inuse, (unsigned long long)a.meta_tcaches,
           (unsigned long long)b.meta_tcaches);
    CHECK_EQ(atomic_load(&corrupt), 0);
    /* Live bytes back to the start, give or take libc's thread bookkeeping
     * (its cached thread stacks keep their TLS vectors). */
    CHECK(b.heap_alloc <= a.heap_alloc + 64 * 1024);
    CHECK(b.heap_inuse <= a.heap_inuse + 2 * 1024 * 1024);
    /* Thread caches are reused: a few batches' worth at most. */
    CHECK(b.meta_tcaches <= a.meta_tcaches + 4 * 16 * 1024);
    CHECK(b.mallocs - a.mallocs >= (uint64_t)CHURN_THREADS * 193);
    CHECK_EQ(gm_check(), 0);
}

/* ------------------------------------------------------------------------ */
/* 3. fork                                                                  */
/* ------------------------------------------------------------------------ */

static atomic_int stop;

static void *busy_thread(void *arg)
{
    uint64_t s = 0x55 + (uintptr_t)arg;
    void *keep[16] = {0};
    while (!atomic_load(&stop)) {
        unsigned k = (unsigned)(test_rnd(&s) % 16);
        if (keep[k]) obj_free(keep[k]);
        keep[k] = obj_new(&s);
    }
    for (int k = 0; k < 16; k++)
        if (keep[k]) obj_free(keep[k]);
    return NULL;
}

static void *child_thread(void *arg)
{
    uint64_t s = 99;
    for (int i = 0; i < 1000; i++) {
        void *o = obj_new(&s);
        if (!o) return (void *)1;
        obj_free(o);
    }
    return arg;
}

static void test_fork(void)
{
    if (test_skip_emulated(TEST_GAP_FORK, "fork while threads allocate")) return;
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) CHECK_EQ(pthread_create(&th[i], NULL, busy_thread, (void *)i), 0);
    int good = 0;
    enum { FORKS = 30 };
    for (int f = 0; f < FORKS; f++) {
        usleep(2000);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10); /* a deadlock dies by SIGALRM */
            uint64_t s = 7 + (uint64_t)f;
            void *objs[200];
            for (int i = 0; i < 200; i++) objs[i] = obj_new(&s);
            for (int i = 0; i < 200; i++)
                if (objs[i]) obj_free(objs[i]);
            pthread_t t;
            void *r = (void *)1;
            if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &r) != 0) _exit(3);
            _exit(r == NULL && atomic_load(&corrupt) == 0 ? 0 : 2);
        }
        CHECK(pid > 0);
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) good++;
        else fprintf(stderr, "fork %d: child status %#x\n", f, st);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_EQ(good, FORKS);
    printf("fork: %d/%d children exited cleanly\n", good, FORKS);
    CHECK_EQ(atomic_load(&corrupt), 0);
    CHECK_EQ(gm_check(), 0);
}

#define MANY 1000
static pthread_barrier_t many_held, many_done;

static void *many_thread(void *arg)
{
    (void)arg;
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = malloc(16 + (size_t)(i * 37) % 1000);
        if (p[i]) memset(p[i], i, 16);
    }
    pthread_barrier_wait(&many_held);
    pthread_barrier_wait(&many_done);
    for (int i = 0; i < 64; i++) free(p[i]);
    return NULL;
}

static void test_many(void)
{
    static pthread_t t[MANY];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_barrier_init(&many_held, NULL, MANY + 1);
    pthread_barrier_init(&many_done, NULL, MANY + 1);
    long long rss0 = test_vm_rss();
    int n = 0;
    while (n < MANY && pthread_create(&t[n], &attr, many_thread, NULL) == 0) n++;
    CHECK_EQ(n, MANY);
    if (n < MANY) abort(); /* the barriers wait for MANY */
    pthread_barrier_wait(&many_held);
    long long per = (test_vm_rss() - rss0) / MANY;
    if (!test_skip_emulated(TEST_GAP_VM, "RSS of 1,000 threads")) {
        printf("many: %d threads holding 64 objects each: RSS %+lld KiB a thread\n", n, per / 1024);
        CHECK(per < 150 * 1024);
    }
    pthread_barrier_wait(&many_done);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    CHECK_EQ(gm_check(), 0);
}

/* ------------------------------------------------------------------------ */
/* 5. grow                                                                  */
/* ------------------------------------------------------------------------ */

#define GROW_THREADS 4
static atomic_long grow_bad, grow_steps;

static void grow_fill(unsigned char *p, size_t from, size_t to, unsigned seed)
{
    for (size_t i = from; i < to; i += 256) p[i] = (unsigned char)(seed + i / 256);
}

static bool grow_holds(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 256)
        if (p[i] != (unsigned char)(seed + i / 256)) return false;
    return true;
}

static void *grow_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int round = 0; round < 12; round++, seed += 17) {
        size_t n = (size_t)1 << 20;
        unsigned char *v = malloc(n);
        void *wall[4] = {NULL};
        if (!v) {
            atomic_fetch_add(&grow_bad, 1);
            continue;
        }
        grow_fill(v, 0, n, seed);
        for (int k = 0; k < 4; k++) {
            wall[k] = malloc(64 << 10);
            unsigned char *q = realloc(v, 2 * n);
            if (!q || !grow_holds(q, n, seed)) {
                atomic_fetch_add(&grow_bad, 1);
                if (!q) break;
            }
            grow_fill(q, n, 2 * n, seed);
            v = q;
            n *= 2;
            atomic_fetch_add(&grow_steps, 1);
        }
        if (!grow_holds(v, n, seed)) atomic_fetch_add(&grow_bad, 1);
        free(v);
        for (int k = 0; k < 4; k++) free(wall[k]);
        if (round % 3 == 2) gm_scavenge(); /* fresh pages: targets to move into */
    }
    return NULL;
}

static void test_grow(void)
{
    pthread_t th[GROW_THREADS];
    for (uintptr_t i = 0; i < GROW_THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, grow_thread, (void *)(i * 1000 + 1)), 0);
    for (int i = 0; i < GROW_THREADS; i++) pthread_join(th[i], NULL);
    printf("grow: %ld realloc steps of 1-16 MiB blocks in %d threads\n", atomic_load(&grow_steps), GROW_THREADS);
    CHECK_EQ(atomic_load(&grow_bad), 0);
    CHECK_EQ(atomic_load(&grow_steps), GROW_THREADS * 12 * 4);
    CHECK_EQ(gm_check(), 0);
}

int main(void)
{
    test_ring();
    test_churn();
    test_fork();
    test_many();
    test_grow();
    return test_done("api_threads");
}
