/*
 * api_limit.c — the heap held to a limit (issue 4): RLIMIT_DATA with the
 * strict-commit mode it turns on, and gomalloc's hard and soft memory
 * limits. Each case runs in a fresh process (test_subcase).
 *
 * The workload of `rlimit` and `soft` changes its size mix in phases, so
 * that memory freed as one kind of object must serve another, in rounds:
 *   small  objects of the round's mix (16-512 B, 512 B-16 KiB, 16 B-32 KiB)
 *          until live reaches L;
 *   holes  the objects that start in even 4 MiB chunks freed: half of L
 *          goes, as holes no larger than a chunk;
 *   large  5-12 MiB objects until live is L again: none fits in a hole, so
 *          the heap stays within bounds only if the holes' memory is
 *          decommitted (and no longer counted) or the workload fails;
 *   back   the large objects freed, small ones again up to L: they fill the
 *          holes, and the large objects' memory must go in its turn;
 *   free   everything freed.
 * Every phase ends by checking every live object's pattern.
 *
 *   rlimit    RLIMIT_DATA finite from exec (so strict-commit mode is on from
 *             the start), lowered to VmData baseline + 1.15 x L + 8 MiB,
 *             L = 96 MiB; three rounds: every allocation succeeds.
 *   hard      gm_set_memory_limit(64 MiB, hard). The heap is filled (32 MiB
 *             of 16 B-32 KiB objects, then objects of 3 MiB, 1 MiB, 256 KiB
 *             and 64 KiB, each size until it fails): every failure is NULL +
 *             ENOMEM, and at least limit - 16 MiB is live by then (requested
 *             bytes). Then malloc, calloc, realloc, aligned_alloc and
 *             posix_memalign of 8 MiB fail the same way, realloc leaving its
 *             block intact. With the objects of even chunks freed (about
 *             half), at least two 6 MiB objects fit, which they cannot while
 *             the holes' memory counts. With everything freed, 40 MiB fits.
 *             stats.sys <= limit at every sample; gm_check() == 0.
 *   soft      gm_set_memory_limit(64 MiB, soft), the phased workload with
 *             L = 48 MiB (about 80 MiB would stay committed without giving
 *             memory back): allocations never fail, and committed and VmRSS
 *             growth stay <= limit + 4 MiB at every sample.
 *   env_hard  GOMALLOC_MEMORY_LIMIT=48M:hard: the limit reads back as 48 MiB
 *             hard, 1 MiB objects fail with ENOMEM after at least 32 MiB,
 *             sys <= 48 MiB, and 32 MiB fits again after freeing.
 *   env_soft  GOMALLOC_MEMORY_LIMIT=32M: reads back as 32 MiB soft; 64 MiB
 *             live still succeed.
 *   roundtrip gm_set_memory_limit / gm_get_memory_limit.
 */
#define _GNU_SOURCE
#include "scav.h"

#include <sys/resource.h>

/* ------------------------------------------------------------------------ */
/* The phased workload                                                      */
/* ------------------------------------------------------------------------ */

struct workload {
    struct scav_table *t;
    size_t live_max; /* L */
    uint64_t seed;
    int round;
    const char *phase;
    unsigned long allocs;
    void (*sample)(struct workload *w); /* every 256 allocations and each phase */
    /* kept by the samplers */
    const struct scav_base *base;
    long long max_data, max_rss;
    uint64_t max_committed;
};

static size_t round_size(int round, uint64_t *s)
{
    switch (round % 3) {
    case 0: return scav_octaves(s, 16, 512);
    case 1: return scav_octaves(s, 512, 16 * KiB);
    default: return scav_octaves(s, 16, 32 * KiB);
    }
}

static bool wl_alloc(struct workload *w, size_t size)
{
    if (!scav_alloc(w->t, size)) {
        int e = errno;
        struct gm_stats st;
        gm_stats_get(&st);
        fprintf(stderr,
                "round %d, phase %s: malloc(%zu) failed (errno %d) with %.1f MiB live; VmData %+.1f MiB, "
                "VmRSS %+.1f MiB, committed %.1f MiB, heap_idle %.1f MiB, heap_released %.1f MiB\n",
                w->round, w->phase, size, e, mib((long long)w->t->live), mib(test_vm_data() - w->base->data),
                mib(test_vm_rss() - w->base->rss), mib((long long)st.committed), mib((long long)st.heap_idle),
                mib((long long)st.heap_released));
        gm_stats_print(stderr); /* where the memory was */
        CHECK(!"an allocation failed");
        return false;
    }
    if (++w->allocs % 256 == 0 && w->sample) w->sample(w);
    return true;
}

static bool wl_small(struct workload *w)
{
    while (w->t->live < w->live_max) {
        size_t size = round_size(w->round, &w->seed);
        if (w->t->live + size > w->live_max) size = w->live_max - w->t->live;
        if (size < 16) break;
        if (!wl_alloc(w, size)) return false;
    }
    return true;
}

static bool wl_large(struct workload *w)
{
    while (w->live_max - w->t->live >= 5 * MiB) {
        size_t size = 5 * MiB + (size_t)(test_rnd(&w->seed) % (7 * MiB));
        if (w->t->live + size > w->live_max) size = w->live_max - w->t->live;
        if (!wl_alloc(w, size)) return false;
    }
    return true;
}

static void wl_phase_end(struct workload *w)
{
    size_t bad = scav_verify(w->t);
    if (bad) fprintf(stderr, "round %d, phase %s: %zu objects lost their pattern\n", w->round, w->phase, bad);
    CHECK_EQ(bad, 0);
    if (w->sample) w->sample(w);
}

/* Runs the rounds; false if an allocation failed. */
static bool wl_run(struct workload *w, int rounds)
{
    struct scav_table *t = w->t;
    for (w->round = 0; w->round < rounds; w->round++) {
        w->phase = "small";
        if (!wl_small(w)) return false;
        wl_phase_end(w);
        w->phase = "holes";
        scav_free_random(t, 0, t->n, w->seed++, scav_keep_odd_chunk);
        /* The chunks that hold a live byte now cannot be decommitted: with
         * L - live more in large objects, the least the next phase holds. */
        printf("  round %d: after the holes %.1f MiB live in %.1f MiB of chunks\n", w->round, mib((long long)t->live),
               mib((long long)scav_page_floor(t, scav_sort_live(t), 22)));
        wl_phase_end(w);
        w->phase = "large";
        size_t first_large = t->n;
        if (!wl_large(w)) return false;
        wl_phase_end(w);
        w->phase = "back";
        scav_free_random(t, first_large, t->n, w->seed++, NULL);
        if (!wl_small(w)) return false;
        wl_phase_end(w);
        w->phase = "free";
        scav_free_random(t, 0, t->n, w->seed++, NULL);
        t->n = 0;
        wl_phase_end(w);
        printf("  round %d: peak VmData %+.1f MiB, VmRSS %+.1f MiB, committed %.1f MiB\n", w->round,
               mib(w->max_data), mib(w->max_rss), mib((long long)w->max_committed));
    }
    return true;
}

#define WL_CAP ((size_t)1200000) /* objects of two phases of 16-512 B at L = 96 MiB, with room */

/* ------------------------------------------------------------------------ */
/* rlimit                                                                   */
/* ------------------------------------------------------------------------ */

#define RLIMIT_L (96 * MiB)

/* In the forked child before exec: any finite RLIMIT_DATA, so that the
 * library starts in strict-commit mode. */
static void set_finite_rlimit(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_DATA, &rl);
    rl.rlim_cur = (rlim_t)4 * GiB;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur) rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_DATA, &rl);
}

static void sample_data(struct workload *w)
{
    long long d = test_vm_data() - w->base->data, r = test_vm_rss() - w->base->rss;
    if (d > w->max_data) w->max_data = d;
    if (r > w->max_rss) w->max_rss = r;
}

static int case_rlimit(void)
{
    struct scav_table t;
    if (!scav_table_init(&t, WL_CAP)) return test_done("rlimit");
    scav_warmup();
    struct scav_base b;
    scav_baseline(&b);
    size_t room = RLIMIT_L + RLIMIT_L * 15 / 100 + 8 * MiB;
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_DATA, &rl), 0);
    CHECK(rl.rlim_cur != RLIM_INFINITY);
    rl.rlim_cur = (rlim_t)b.data + room;
    CHECK_EQ(setrlimit(RLIMIT_DATA, &rl), 0);
    printf("rlimit: L = %.0f MiB, RLIMIT_DATA = VmData %.1f MiB + %.1f MiB\n", mib(RLIMIT_L), mib(b.data), mib(room));
    struct workload w = {.t = &t, .live_max = RLIMIT_L, .seed = 11, .sample = sample_data, .base = &b};
    bool ok = wl_run(&w, 3);
    CHECK(ok);
    printf("rlimit: %s; peak VmData %+.1f MiB of %.1f MiB allowed\n", ok ? "completed" : "FAILED", mib(w.max_data),
           mib(room));
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done("rlimit");
}

/* ------------------------------------------------------------------------ */
/* hard, env_hard                                                           */
/* ------------------------------------------------------------------------ */

struct watch {
    size_t limit;
    uint64_t max_sys;
};

static void watch(struct watch *w)
{
    struct gm_stats st;
    gm_stats_get(&st);
    if (st.sys > w->max_sys) w->max_sys = st.sys;
}

/* Allocates objects of `size` until one fails, which must be with ENOMEM;
 * false if none failed by 4 x limit (the limit is not enforced) or one
 * failed otherwise. */
static bool fill_until_enomem(struct scav_table *t, struct watch *w, size_t size)
{
    for (;;) {
        if (t->live > 4 * w->limit || t->n == t->cap) {
            fprintf(stderr, "%.1f MiB live and no ENOMEM: the limit of %.1f MiB does not hold\n",
                    mib((long long)t->live), mib((long long)w->limit));
            CHECK(!"the hard limit holds");
            return false;
        }
        errno = 0;
        if (!scav_alloc(t, size)) {
            CHECK_EQ(errno, ENOMEM);
            watch(w);
            return errno == ENOMEM;
        }
        watch(w);
    }
}

/* One request past the limit: NULL with ENOMEM (what it got is freed). */
static void check_enomem(const char *what, void *p, int err)
{
    if (p || err != ENOMEM) fprintf(stderr, "%s past the limit: %p, errno %d\n", what, p, err);
    CHECK(p == NULL && err == ENOMEM);
    free(p);
}

/* Every way to ask for `size` bytes past the limit fails with ENOMEM, and
 * realloc leaves its block as it was. */
static void check_beyond(struct scav_table *t, size_t size)
{
    void *p;
    errno = 0;
    p = malloc(size);
    check_enomem("malloc", p, errno);
    errno = 0;
    p = calloc(1, size);
    check_enomem("calloc", p, errno);
    errno = 0;
    p = aligned_alloc(4096, size);
    check_enomem("aligned_alloc", p, errno);
    p = NULL;
    int rc = posix_memalign(&p, 64, size);
    check_enomem("posix_memalign", rc ? NULL : p, rc);
    size_t i = 0;
    while (i < t->n && !t->o[i].p) i++;
    if (i < t->n) {
        errno = 0;
        p = realloc(t->o[i].p, size);
        int e = errno;
        if (p) {
            t->o[i].p = p; /* it moved: the old block is gone */
            fprintf(stderr, "realloc past the limit: %p\n", p);
        }
        CHECK(p == NULL && e == ENOMEM);
        CHECK(test_verify(t->o[i].p, t->o[i].size, t->o[i].seed));
    }
}

#define HARD_LIMIT (64 * MiB)

static int case_hard(void)
{
    struct scav_table t;
    if (!scav_table_init(&t, 400000)) return test_done("hard");
    scav_warmup();
    CHECK_EQ(gm_set_memory_limit(HARD_LIMIT, 1), 0);
    int hard = -1;
    CHECK_EQ(gm_get_memory_limit(&hard), HARD_LIMIT);
    CHECK_EQ(hard, 1);
    struct watch w = {.limit = HARD_LIMIT};
    uint64_t s = 21;
    size_t want = HARD_LIMIT - 16 * MiB; /* metadata, chunk granularity, class rounding */

    /* 1. Fill: 32 MiB of small objects, then large ones, then smaller and
     * smaller ones until even 64 KiB fails. */
    bool ok = true;
    while (ok && t.live < 32 * MiB) {
        ok = scav_alloc(&t, scav_octaves(&s, 16, 32 * KiB));
        if (t.n % 64 == 0) watch(&w);
    }
    CHECK(ok);
    size_t sizes[] = {3 * MiB + 4321, 1 * MiB, 256 * KiB, 64 * KiB};
    for (size_t k = 0; ok && k < sizeof sizes / sizeof sizes[0]; k++) ok = fill_until_enomem(&t, &w, sizes[k]);
    size_t live1 = t.live;
    check_beyond(&t, 8 * MiB);

    /* 2. Holes: the objects of even chunks freed; 6 MiB objects fit in no
     * hole, so they fit only if the holes no longer count. */
    scav_free_random(&t, 0, t.n, 22, scav_keep_odd_chunk);
    size_t live_holes = t.live, first_big = t.n, holes_chunks = scav_page_floor(&t, scav_sort_live(&t), 22);
    if (ok) ok = fill_until_enomem(&t, &w, 6 * MiB);
    size_t live2 = t.live, big = t.n - first_big;
    CHECK_EQ(scav_verify(&t), 0);

    /* 3. Everything freed: 40 MiB in one piece. */
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    t.n = 0;
    bool one = scav_alloc(&t, 40 * MiB);
    CHECK(one);
    watch(&w);
    CHECK_EQ(scav_verify(&t), 0);
    scav_free(&t, 0);
    /* 4. All of it free: pressure decommitted runs inside partly used
     * chunks (more ranges than the scavenger's own budget of mappings);
     * widening those holes costs no mapping, so the commit charge still
     * goes back, but for free runs that no hole borders (between the spans
     * this thread still holds). unit_heap's decommit_full tests the
     * mechanism exactly. */
    struct gm_stats before, after;
    gm_stats_get(&before);
    gm_scavenge();
    gm_stats_get(&after);
    printf("hard: limit %.0f MiB; full at %.1f MiB live; %.1f MiB after the holes (in %.1f MiB of chunks), then "
           "%zu x 6 MiB -> %.1f MiB; 40 MiB after freeing: %s; max sys %.1f MiB; all freed: heap_sys %.1f MiB, "
           "%llu mappings, after gm_scavenge %.1f MiB, %llu mappings\n",
           mib(HARD_LIMIT), mib((long long)live1), mib((long long)live_holes), mib((long long)holes_chunks), big,
           mib((long long)live2), one ? "yes" : "NO", mib((long long)w.max_sys), mib((long long)before.heap_sys),
           (unsigned long long)before.mappings, mib((long long)after.heap_sys), (unsigned long long)after.mappings);
    CHECK(after.heap_sys <= 16 * MiB);
    CHECK(after.mappings <= before.mappings);
    CHECK(live1 >= want);
    CHECK(big >= 2);
    CHECK(w.max_sys <= HARD_LIMIT);
    CHECK_EQ(gm_check(), 0);
    return test_done("hard");
}

static int case_env_hard(void)
{
    struct scav_table t;
    if (!scav_table_init(&t, 4096)) return test_done("env_hard");
    int hard = -1;
    CHECK_EQ(gm_get_memory_limit(&hard), 48 * MiB);
    CHECK_EQ(hard, 1);
    struct watch w = {.limit = 48 * MiB};
    bool ok = fill_until_enomem(&t, &w, 1 * MiB);
    size_t live = t.live;
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    t.n = 0;
    bool again = scav_alloc(&t, 32 * MiB);
    watch(&w);
    printf("env_hard: %.1f MiB of 1 MiB objects before ENOMEM, max sys %.1f MiB, 32 MiB after freeing: %s\n",
           mib((long long)live), mib((long long)w.max_sys), again ? "yes" : "NO");
    CHECK(ok);
    CHECK(live >= 32 * MiB);
    CHECK(w.max_sys <= 48 * MiB);
    CHECK(again);
    CHECK_EQ(scav_verify(&t), 0);
    scav_free(&t, 0);
    CHECK_EQ(gm_check(), 0);
    return test_done("env_hard");
}

/* ------------------------------------------------------------------------ */
/* soft, env_soft, roundtrip                                                */
/* ------------------------------------------------------------------------ */

#define SOFT_LIMIT (64 * MiB)

static void sample_soft(struct workload *w)
{
    struct gm_stats st;
    gm_stats_get(&st);
    sample_data(w);
    if (st.committed > w->max_committed) w->max_committed = st.committed;
}

static int case_soft(void)
{
    struct scav_table t;
    if (!scav_table_init(&t, WL_CAP)) return test_done("soft");
    scav_warmup();
    struct scav_base b;
    scav_baseline(&b);
    CHECK_EQ(gm_set_memory_limit(SOFT_LIMIT, 0), 0);
    int hard = -1;
    CHECK_EQ(gm_get_memory_limit(&hard), SOFT_LIMIT);
    CHECK_EQ(hard, 0);
    struct workload w = {.t = &t, .live_max = 48 * MiB, .seed = 41, .sample = sample_soft, .base = &b};
    bool ok = wl_run(&w, 3);
    printf("soft: limit %.0f MiB, L = 48 MiB: %s; peak VmRSS %+.1f MiB, committed %.1f MiB\n", mib(SOFT_LIMIT),
           ok ? "completed" : "FAILED", mib(w.max_rss), mib((long long)w.max_committed));
    CHECK(ok);
    CHECK(w.max_rss <= (long long)(SOFT_LIMIT + 4 * MiB));
    if (!SCAV_GLIBC) CHECK(w.max_committed <= SOFT_LIMIT + 4 * MiB);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done("soft");
}

static int case_env_soft(void)
{
    int hard = -1;
    CHECK_EQ(gm_get_memory_limit(&hard), 32 * MiB);
    CHECK_EQ(hard, 0);
    struct scav_table t;
    if (!scav_table_init(&t, 128)) return test_done("env_soft");
    bool ok = true;
    while (ok && t.live < 64 * MiB) ok = scav_alloc(&t, 1 * MiB);
    CHECK(ok);
    CHECK_EQ(scav_verify(&t), 0);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done("env_soft");
}

static int case_roundtrip(void)
{
    int hard = -1;
    CHECK_EQ(gm_set_memory_limit(100 * MiB, 0), 0);
    CHECK_EQ(gm_get_memory_limit(&hard), 100 * MiB);
    CHECK_EQ(hard, 0);
    CHECK_EQ(gm_set_memory_limit(200 * MiB, 1), 0);
    CHECK_EQ(gm_get_memory_limit(&hard), 200 * MiB);
    CHECK_EQ(hard, 1);
    CHECK_EQ(gm_get_memory_limit(NULL), 200 * MiB);
    CHECK_EQ(gm_set_memory_limit(0, 1), 0); /* removed */
    CHECK_EQ(gm_get_memory_limit(&hard), 0);
    CHECK_EQ(hard, 0);
    void *p = malloc(300 * MiB); /* no limit any more */
    CHECK(p != NULL);
    free(p);
    return test_done("roundtrip");
}

/* ------------------------------------------------------------------------ */

static const char *const env_none[] = {NULL};
static const char *const env_hard[] = {"GOMALLOC_MEMORY_LIMIT=48M:hard", NULL};
static const char *const env_soft[] = {"GOMALLOC_MEMORY_LIMIT=32M", NULL};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        if (!strcmp(argv[1], "rlimit")) return case_rlimit();
        if (!strcmp(argv[1], "hard")) return case_hard();
        if (!strcmp(argv[1], "soft")) return case_soft();
        if (!strcmp(argv[1], "env_hard")) return case_env_hard();
        if (!strcmp(argv[1], "env_soft")) return case_env_soft();
        if (!strcmp(argv[1], "roundtrip")) return case_roundtrip();
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    test_subcase("rlimit", env_none, set_finite_rlimit);
    test_subcase("hard", env_none, NULL);
    test_subcase("soft", env_none, NULL);
    test_subcase("env_hard", env_hard, NULL);
    test_subcase("env_soft", env_soft, NULL);
    test_subcase("roundtrip", env_none, NULL);
    return test_done("api_limit");
}
