/*
 * api_scavenge_bg.c — the scavenger (issue 4) over time and under threads.
 * Each case runs in a fresh process with the options it names.
 *
 *   maps, maps_strict  the number of mappings (lines of /proc/self/maps)
 *             through growth (a 1 GiB burst, sampled every MiB), frees (90%
 *             at random, sampled 16 times), gm_scavenge(), the background
 *             scavenger (the live objects of even 4 MiB chunks freed, then
 *             polled until heap_idle - heap_released <= 8 MiB or 2 s), and
 *             decommit (all but one object per 16 MiB freed, polled until
 *             VmData growth <= the chunks still holding a live byte or a
 *             current span + 16 MiB in strict mode, or as before otherwise,
 *             or 2 s): at every sample, count - baseline <= committed GiB
 *             (floor) + three lines per hole the scavenger's paced budget
 *             allows at the heap's size then (heap_release.c: 16 + one per
 *             4 MiB of heap, at most 48) and its list's one spare entry (a
 *             decommit that growth raced): a hole splits a mapping in
 *             three, and a range committed again after a decommit may stay
 *             a mapping of its own beside the one it came back into (the
 *             kernel merges neighbouring anonymous mappings only when their
 *             pages share an origin; seen at chunk boundaries).
 *             The strict case (GOMALLOC_STRICT=1) leaves 64 runs of free
 *             chunks between live ones, which a decommit of each run would
 *             turn into two more mappings apiece (128 lines), and free runs
 *             inside chunks, which a decommit of each would do as well.
 *   conc, conc_nobg  GOMALLOC_DECAY_MS=10 (and GOMALLOC_BACKGROUND=0 for the
 *             second): 4 threads pass mixed objects through a shared ring
 *             (most frees cross-thread) and each frees an 8 MiB burst of its
 *             own now and then, while the main thread reads gm_stats_get
 *             every 2 ms (heap_released <= heap_idle each time) and calls
 *             gm_scavenge() every 25th time. No failed allocation, every
 *             pattern intact, gm_check() == 0; with everything freed, VmRSS
 *             growth <= 12 MiB within 2 s (conc: without calling the
 *             allocator; conc_nobg: while doing small malloc/free, with no
 *             thread but the main one).
 *   nobg_burst  GOMALLOC_BACKGROUND=0: a 512 MiB burst, all but the first
 *             10% freed, then small malloc/free only: VmRSS growth <= 1.1 x
 *             live + 8 MiB within 2 s, and the process has one thread.
 */
#define _GNU_SOURCE
#include "scav.h"

#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------------------------------------ */
/* maps, maps_strict                                                        */
/* ------------------------------------------------------------------------ */

struct maps_watch {
    const struct scav_base *base;
    const char *phase;
    long samples;
    long worst;              /* max of count - baseline - committed GiB - 3 x paced budget */
    const char *worst_phase; /* where, and the figures there */
    long worst_count;
    uint64_t worst_committed;
};

static void maps_sample(void *arg)
{
    struct maps_watch *m = arg;
    struct gm_stats st;
    gm_stats_get(&st);
    /* A thread started since the baseline (the background scavenger starts
     * when it is needed) maps a stack and its guard: not heap mappings. */
    long threads = test_threads() - m->base->threads;
    long count = test_maps_count() - 2 * (threads > 0 ? threads : 0);
    long holes = 16 + (long)((st.heap_sys + st.heap_decommitted) >> 22); /* the paced budget (see the top) */
    long over = count - m->base->maps - (long)(st.committed >> 30) - 3 * ((holes < 48 ? holes : 48) + 1);
    m->samples++;
    if (over > m->worst || !m->worst_phase) {
        m->worst = over;
        m->worst_phase = m->phase;
        m->worst_count = count;
        m->worst_committed = st.committed;
    }
}

/* Waits up to 2 s until the scavenger has nothing left to release
 * (heap_idle - heap_released <= 8 MiB) and, if data_max >= 0, VmData growth
 * is at most data_max; samples all along. */
static long long maps_wait(struct maps_watch *m, long long data_max)
{
    long long t0 = test_now_ns();
#ifdef SCAV_TEST_GLIBC
    malloc_trim(0);
#endif
    for (;;) {
        maps_sample(m);
        struct gm_stats st;
        gm_stats_get(&st);
        bool idle_done = st.heap_idle - st.heap_released <= 8 * MiB;
        bool data_done = data_max < 0 || test_vm_data() - m->base->data <= data_max;
        long long ms = (test_now_ns() - t0) / 1000000;
        if (idle_done && data_done) return ms;
        if (ms >= 2000) return -1;
        test_sleep_ms(POLL_MS);
    }
}

static int case_maps(bool strict)
{
    const char *name = strict ? "maps_strict" : "maps";
    struct scav_table t;
    struct scav_base b;
    struct maps_watch m = {.base = &b, .phase = "growth"};
    if (!scav_start_burst(&t, &b, 1 * GiB, 7, NULL, maps_sample, &m)) return test_done(name);
    maps_sample(&m);
    struct scav_pins pins;
    scav_current_span_chunks(&t, &pins);

    m.phase = "free 90%";
    for (size_t k = 0; k < 16; k++) {
        scav_free_random(&t, t.n * k / 16, t.n * (k + 1) / 16, 8 + k, scav_keep_one_in_ten);
        maps_sample(&m);
    }

    m.phase = "gm_scavenge";
    size_t released = gm_scavenge();
    maps_sample(&m);

    m.phase = "background";
    scav_free_random(&t, 0, t.n, 30, scav_keep_odd_chunk);
    long long ms_bg = maps_wait(&m, -1);

    m.phase = "decommit";
    size_t m_live = scav_sort_live(&t), anchors = 0;
    uintptr_t region = 0;
    for (size_t i = 0; i < m_live; i++) {
        struct scav_obj *o = &t.o[t.order[i]];
        if (((uintptr_t)o->p >> 24) != region) {
            region = (uintptr_t)o->p >> 24;
            anchors++;
        } else {
            scav_free(&t, t.order[i]);
        }
    }
    /* Strict mode can decommit all but the chunks holding a live byte or a
     * current span (see api_scavenge.c). */
    size_t m_left = scav_sort_live(&t);
    long long chunks = (long long)(scav_page_floor(&t, m_left, 22) + scav_pins_free(&t, m_left, &pins) * CHUNK);
    long long ms_dc = maps_wait(&m, strict ? chunks + (long long)(16 * MiB) : -1);
    long long data_after = test_vm_data() - b.data;

    CHECK_EQ(scav_verify(&t), 0);
    m.phase = "end";
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    gm_scavenge();
    maps_sample(&m);

    printf("%s: %ld samples; worst count - baseline - committed GiB - 3 x paced budget = %ld (limit 0), in phase %s with %ld mappings "
           "(baseline %ld) and %.1f MiB committed; gm_scavenge released %.1f MiB; background done in %lld ms, "
           "decommit in %lld ms (%zu anchors, %.1f MiB of chunks with a live byte or a current span; "
           "VmData %+.1f MiB)\n",
           name, m.samples, m.worst, m.worst_phase, m.worst_count, b.maps, mib((long long)m.worst_committed),
           mib((long long)released), ms_bg, ms_dc, anchors, mib(chunks), mib(data_after));
    CHECK(m.worst <= 0);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

/* ------------------------------------------------------------------------ */
/* conc, conc_nobg                                                          */
/* ------------------------------------------------------------------------ */

#define WORKERS 4
#define WORK_ITERS 250000
#define BURST_EVERY 4096
#define WBURST (8 * MiB)

/* A ring object: its header, then a pattern made from the header. */
struct hdr {
    size_t size;
    uint64_t seed;
};

static atomic_long corrupt, failed, made, freed;

static void *obj_new(uint64_t *s)
{
    size_t n = scav_mix_size(s);
    if (n < sizeof(struct hdr)) n = sizeof(struct hdr);
    struct hdr *h = malloc(n);
    if (!h) {
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    h->size = n;
    h->seed = test_rnd(s);
    test_fill(h + 1, n - sizeof *h, h->seed);
    atomic_fetch_add(&made, 1);
    return h;
}

static void obj_free(void *p)
{
    struct hdr *h = p;
    if (!test_verify(h + 1, h->size - sizeof *h, h->seed)) atomic_fetch_add(&corrupt, 1);
    free(p);
    atomic_fetch_add(&freed, 1);
}

static struct test_ring ring = TEST_RING_INIT;
static atomic_int workers_done;

/* Objects of its own, all freed: memory that goes idle at once. */
static void worker_burst(uint64_t *s)
{
    static __thread void *mine[16384];
    size_t n = 0, bytes = 0;
    while (bytes < WBURST && n < sizeof mine / sizeof mine[0]) {
        struct hdr *h = obj_new(s);
        if (!h) break;
        bytes += h->size;
        mine[n++] = h;
    }
    while (n) obj_free(mine[--n]);
}

static void *worker(void *arg)
{
    uint64_t s = 0x5eed + (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    for (int it = 0; it < WORK_ITERS; it++) {
        if (it % BURST_EVERY == BURST_EVERY - 1) worker_burst(&s);
        void *out = NULL;
        if (test_rnd(&s) & 1) {
            void *o = obj_new(&s);
            if (o) out = test_ring_put(&ring, o);
        } else {
            out = test_ring_take(&ring);
        }
        if (out) obj_free(out);
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

/* Small malloc/free for about POLL_MS: a program that goes on after its
 * burst, so that the allocation paths can do the scavenger's work. */
static void small_churn(void *arg)
{
    uint64_t *s = arg;
    long long end = test_now_ns() + POLL_MS * 1000000LL;
    void *p[64];
    do {
        for (int i = 0; i < 64; i++) p[i] = malloc(16 + test_rnd(s) % 241);
        for (int i = 0; i < 64; i++) free(p[i]);
    } while (test_now_ns() < end);
}

static int case_conc(bool background)
{
    const char *name = background ? "conc" : "conc_nobg";
    scav_warmup();
    struct scav_base b;
    scav_baseline(&b);
    pthread_t th[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++) CHECK_EQ(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    long samples = 0, bad = 0, scavenges = 0;
    struct gm_stats st, first_bad = {0};
    uint64_t max_released = 0;
    while (atomic_load(&workers_done) < WORKERS) {
        gm_stats_get(&st);
        if (st.heap_released > st.heap_idle && bad++ == 0) first_bad = st;
        if (st.heap_released > max_released) max_released = st.heap_released;
        if (++samples % 25 == 0) {
            gm_scavenge();
            scavenges++;
        }
        test_sleep_ms(2);
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
    for (void *o; (o = test_ring_take(&ring));) obj_free(o);
    if (bad)
        fprintf(stderr, "%s: heap_released %llu > heap_idle %llu (and %ld more samples like it)\n", name,
                (unsigned long long)first_bad.heap_released, (unsigned long long)first_bad.heap_idle, bad - 1);
    CHECK_EQ(bad, 0);
    CHECK_EQ(atomic_load(&corrupt), 0);
    CHECK_EQ(atomic_load(&failed), 0);
    CHECK_EQ(atomic_load(&made), atomic_load(&freed));
    CHECK_EQ(gm_check(), 0);
    long threads = test_threads();
    if (!background && !test_skip_emulated(TEST_GAP_THREADS, "no helper thread")) CHECK_EQ(threads, 1);

    /* Everything is free: it goes back. */
    struct scav_goal g = {.base = &b, .rss_max = 12 * MiB, .data_max = -1};
    uint64_t s = 99;
    long long ms = scav_wait(&g, 2000, background ? NULL : small_churn, &s);
    printf("%s: %ld objects through %d threads; %ld stats samples (max heap_released %.1f MiB), %ld gm_scavenge "
           "calls; %ld threads after; VmRSS %+.1f MiB %s after %lld ms (goal %.0f MiB)\n",
           name, atomic_load(&made), WORKERS, samples, mib((long long)max_released), scavenges, threads, mib(g.rss),
           ms >= 0 ? "met" : "NOT met", ms >= 0 ? ms : 2000LL, mib(g.rss_max));
    CHECK(ms >= 0);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

/* ------------------------------------------------------------------------ */
/* nobg_burst                                                               */
/* ------------------------------------------------------------------------ */

static int case_nobg_burst(void)
{
    struct scav_table t;
    struct scav_base b;
    size_t tenth;
    if (!scav_start_burst(&t, &b, 512 * MiB, 9, &tenth, NULL, NULL)) return test_done("nobg_burst");
    long long peak = test_vm_rss() - b.rss;
    scav_free_random(&t, tenth, t.n, 10, NULL);
    struct scav_goal g = {.base = &b, .rss_max = (long long)(t.live + t.live / 10 + 8 * MiB), .data_max = -1};
    uint64_t s = 77;
    long long ms = scav_wait(&g, 2000, small_churn, &s);
    long threads = test_threads();
    printf("nobg_burst: live %.1f MiB, peak VmRSS %+.1f MiB, bound %.1f MiB; %s after %lld ms of small "
           "malloc/free: VmRSS %+.1f MiB; %ld threads\n",
           mib((long long)t.live), mib(peak), mib(g.rss_max), ms >= 0 ? "met" : "NOT met", ms >= 0 ? ms : 2000LL,
           mib(g.rss), threads);
    CHECK(ms >= 0);
    if (!test_skip_emulated(TEST_GAP_THREADS, "no helper thread")) CHECK_EQ(threads, 1);
    CHECK_EQ(scav_verify(&t), 0);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done("nobg_burst");
}

/* ------------------------------------------------------------------------ */

static const char *const env_plain[] = {"GOMALLOC_STRICT=0", "SCAV_MT=1", NULL};
static const char *const env_strict[] = {"GOMALLOC_STRICT=1", "SCAV_MT=1", NULL};
static const char *const env_busy[] = {"GOMALLOC_DECAY_MS=10", "SCAV_MT=1", NULL};
static const char *const env_busy_nobg[] = {"GOMALLOC_DECAY_MS=10", "GOMALLOC_BACKGROUND=0", NULL};
static const char *const env_nobg[] = {"GOMALLOC_BACKGROUND=0", NULL};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        if (!strcmp(argv[1], "maps")) return case_maps(false);
        if (!strcmp(argv[1], "maps_strict")) return case_maps(true);
        if (!strcmp(argv[1], "conc")) return case_conc(true);
        if (!strcmp(argv[1], "conc_nobg")) return case_conc(false);
        if (!strcmp(argv[1], "nobg_burst")) return case_nobg_burst();
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    test_subcase("maps", env_plain, NULL);
    test_subcase("maps_strict", env_strict, NULL);
    test_subcase("conc", env_busy, NULL);
    test_subcase("conc_nobg", env_busy_nobg, NULL);
    test_subcase("nobg_burst", env_nobg, NULL);
    return test_done("api_scavenge_bg");
}
