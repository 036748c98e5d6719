/*
 * unit_small.c — layer 6 through src/internal.h: what a thread's cache keeps
 * back from the heap is visible to the scavenger, so that an idle thread
 * cannot hold it for ever.
 *
 * spares: a span that empties is kept as its class's spare for the next
 * refill. The background scavenger parks when it sees nothing to return
 * (gm_central_holds is part of that test): a spare must count, and a
 * trim (every scavenger pass) must give it back to the heap.
 *
 * stash: a thread's frees of blocks above 4 KiB wait in its stash for its
 * next refill (central.c). They pin their spans, and the thread may never
 * call the allocator again: a trim on another thread must take the stash
 * and free its blocks back to their spans, so the spans go back to the
 * heap; while the blocks are stashed, gm_check counts them as free.
 *
 * exit_scans: a thread that leaves while a helper runs reads the kernel's
 * list of threads only when the threads still known to the allocator do
 * not show that the program keeps two: of 300 threads that end together,
 * the last ones (not 300) read it, and at least one does.
 */
#include <pthread.h>

#include "internal.h"
#include "test.h"

/* No helper thread in this child: the options are read first (the test
 * library has no constructor: the first allocation would read them, and
 * put the default back), then the helper is switched off. */
static void no_helper(void)
{
    gm_options_load();
    gm_opt.background = GM_BACKGROUND_OFF;
}

static int child_spares(void)
{
    enum { MAXN = 1024 };
    static void *objs[MAXN];
    no_helper(); /* no scavenger thread trimming behind our back */
    CHECK(!gm_central_holds());
    /* 64-byte objects until the second span: the first is then full and
     * not the current one. */
    size_t n = 0;
    objs[n++] = gm_malloc(64);
    /* A pass made inline by an allocator call (every 5-250 ms without a
     * background thread; under an emulator these calls can be that far
     * apart) would trim the spare before it is looked at: hold the
     * scavenger's lock, so that the inline passes skip (they only try it). */
    gm_scav_lock_all();
    struct gm_span *first = gm_span_lookup((uintptr_t)objs[0]);
    while (n < MAXN) {
        objs[n] = gm_malloc(64);
        if (gm_span_lookup((uintptr_t)objs[n++]) != first) break;
    }
    CHECK(n < MAXN);
    size_t first_bytes = (size_t)first->npages << GM_PAGE_SHIFT;
    uint64_t inuse = gm_stat_load(&gm_heap.heap_inuse);
    for (size_t i = 0; i + 1 < n; i++) gm_free(objs[i]); /* the first span empties */
    fprintf(stderr, "spares: %zu objects in the first span; heap_inuse %llu KiB, %llu KiB after its frees\n", n - 1,
            (unsigned long long)inuse >> 10, (unsigned long long)gm_stat_load(&gm_heap.heap_inuse) >> 10);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse); /* kept: the spare */
    CHECK(gm_central_holds());                          /* and the scavenger knows */
    gm_scav_unlock_all();
    gm_central_trim();
    CHECK(!gm_central_holds());
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse - first_bytes);
    gm_free(objs[n - 1]);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

enum { STASH_N = 4 }; /* two refills of 8 KiB blocks: what a stash holds */
static struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int stage; /* 1: the thread has freed its blocks; 2: it may leave */
} st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void stash_stage(int to)
{
    pthread_mutex_lock(&st.m);
    st.stage = to;
    pthread_cond_broadcast(&st.c);
    pthread_mutex_unlock(&st.m);
}

static void stash_wait(int stage)
{
    pthread_mutex_lock(&st.m);
    while (st.stage < stage) pthread_cond_wait(&st.c, &st.m);
    pthread_mutex_unlock(&st.m);
}

static void *stash_thread(void *arg)
{
    void *p[STASH_N];
    for (int i = 0; i < STASH_N; i++) p[i] = gm_malloc(8192);
    for (int i = 0; i < STASH_N; i++) gm_free(p[i]);
    *(struct gm_tcache **)arg = gm_tc;
    stash_stage(1);
    stash_wait(2); /* idle, with its stash full: as a parked worker would be */
    return NULL;
}

static int child_stash(void)
{
    no_helper();
    unsigned cls = gm_size_class(8192), i = cls - GM_FIRST_SHARED_CLASS;
    CHECK(gm_class_shared(cls));
    gm_free(gm_malloc(16)); /* the heap and the scavenger set up */
    gm_central_trim();
    uint64_t before = gm_stat_load(&gm_heap.heap_inuse);
    /* Any allocator call (stdio's, pthread_create's) may run a scavenging
     * pass inline, and a pass takes every stash: hold the scavenger's lock
     * (which inline passes only try, and a helper thread waits for) while
     * the stash is looked at. gm_check takes it too: after. */
    gm_scav_lock_all();
    struct gm_tcache *tc = NULL;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, stash_thread, &tc), 0);
    stash_wait(1);
    size_t n = 0;
    for (void **o = atomic_load(&tc->stash[i]); o; o = o[0]) n++;
    CHECK_EQ(n, STASH_N);                                /* kept, not freed back */
    CHECK(gm_stat_load(&gm_heap.heap_inuse) > before);    /* their spans in use */
    CHECK(gm_central_holds());                           /* the scavenger will not park */
    gm_scav_unlock_all();
    CHECK_EQ(gm_check(), 0); /* stashed blocks count as free (a pass may have taken them by now: as good) */
    gm_central_trim();       /* on this thread, not the owner */
    CHECK(atomic_load(&tc->stash[i]) == NULL);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), before);  /* the spans went back */
    CHECK(!gm_central_holds());
    stash_stage(2);
    pthread_join(t, NULL);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

enum { EXIT_THREADS = 300 };
static pthread_barrier_t exit_ready;
static _Atomic bool helper_leave;

static void *exit_thread(void *arg)
{
    (void)arg;
    gm_free(gm_malloc(64)); /* a thread cache: the thread is known */
    pthread_barrier_wait(&exit_ready);
    return NULL;
}

static void *idle_helper(void *arg)
{
    (void)arg;
    while (!atomic_load(&helper_leave)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int child_exit_scans(void)
{
    static pthread_t t[EXIT_THREADS];
    no_helper(); /* a stand-in counts as one */
    gm_free(gm_malloc(16));    /* main is known too */
    pthread_t helper;
    CHECK_EQ(gm_sys_spawn(&helper, idle_helper, "test-helper"), 0);
    pthread_barrier_init(&exit_ready, NULL, EXIT_THREADS + 1);
    for (int i = 0; i < EXIT_THREADS; i++) CHECK_EQ(pthread_create(&t[i], NULL, exit_thread, NULL), 0);
    long before = atomic_load(&gm_sys_task_scans);
    pthread_barrier_wait(&exit_ready);
    for (int i = 0; i < EXIT_THREADS; i++) pthread_join(t[i], NULL);
    long scans = atomic_load(&gm_sys_task_scans) - before;
    CHECK(scans >= 1 && scans <= 4);
    if (scans < 1 || scans > 4) fprintf(stderr, "unit_small: %ld scans for %d threads leaving\n", scans, EXIT_THREADS);
    atomic_store(&helper_leave, true);
    gm_sys_join(helper);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

int main(void)
{
    test_in_child("spares", child_spares);
    test_in_child("stash", child_stash);
    test_in_child("exit_scans", child_exit_scans);
    return test_done("unit_small");
}
