/*
 * unit_profile.c — the heap profile (profile.c, profile_write.c, and the
 * countdown in api.c and tcache.c), on the test build:
 *   1. draw: the distances between samples are exponential with mean
 *      rate (mean within 1%, P(X <= rate/2) within 1% of 1 - exp(-1/2)),
 *      and rate 1 samples every allocation;
 *   2. exact: at rate 1, every allocation function (malloc of small and
 *      large sizes, calloc, realloc that moves and that stays, the aligned
 *      family) is counted once, its free once: the header's in-use and
 *      allocated totals are the truth, and the set empties;
 *   3. threads: at rate 1, four threads allocate and pass their blocks to
 *      the next one, which frees them (small, shared-class and large
 *      blocks): every free is counted (in use 0 at the end);
 *   4. stop: after gm_profile_stop nothing new is counted, frees of
 *      sampled blocks still are; churn at the default rate keeps the heap
 *      consistent (gm_check) and the in-use total near the truth;
 *   5. stacks: at rate 1, two sites called in turn, with frames of one
 *      size at one depth (so that profile.c's stack cache sees one key for
 *      both), each have exactly their own allocations under them: each
 *      sample got its own stack, never the other's kept one.
 */
#include "internal.h"
#include "test.h"

#include <math.h>
#include <pthread.h>

struct totals {
    unsigned long long in_n, in_b, al_n, al_b, rate;
};

/* The header of a profile written now. */
static struct totals profile_totals(void)
{
    struct totals t = {0};
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) return t;
    CHECK(gm_profile_write(f) == 0);
    rewind(f);
    CHECK(fscanf(f, "heap profile: %llu: %llu [%llu: %llu] @ heap_v2/%llu", &t.in_n, &t.in_b, &t.al_n, &t.al_b,
                 &t.rate) == 5);
    char line[512];
    bool maps = false;
    while (fgets(line, sizeof line, f))
        if (strcmp(line, "MAPPED_LIBRARIES:\n") == 0) maps = true;
    CHECK(maps);
    fclose(f);
    return t;
}

/* ------------------------------------------------------------------------ */
/* 1. draw                                                                  */
/* ------------------------------------------------------------------------ */

static void test_draw(void)
{
    static int salt;
    uint64_t rng = gm_prof_seed(&salt), rate = 512 << 10;
    double sum = 0;
    int below = 0, negative = 0, n = 200000;
    for (int i = 0; i < n; i++) {
        int64_t x = gm_prof_draw(&rng, rate);
        negative += x < 0;
        sum += (double)x;
        below += x <= (int64_t)(rate / 2);
    }
    double mean = sum / n, p = (double)below / n;
    printf("draw: mean %.0f (rate %llu), P(x <= rate/2) %.4f (want %.4f)\n", mean, (unsigned long long)rate, p,
           1 - exp(-0.5));
    CHECK_EQ(negative, 0);
    CHECK(fabs(mean / (double)rate - 1) < 0.01);
    CHECK(fabs(p - (1 - exp(-0.5))) < 0.01);
    CHECK_EQ(gm_prof_draw(&rng, 1), 0);
}

/* ------------------------------------------------------------------------ */
/* 2. exact                                                                 */
/* ------------------------------------------------------------------------ */

static void test_exact(void)
{
    struct totals t0 = profile_totals();
    CHECK(gm_profile_start(1) == 0);
    void *p[8];
    p[0] = gm_malloc(100);
    p[1] = gm_malloc(40000); /* large */
    p[2] = gm_calloc(10, 30);
    p[3] = gm_malloc(200);
    p[3] = gm_realloc(p[3], 5000); /* moves: an allocation and a free */
    p[4] = gm_malloc(1000);
    p[4] = gm_realloc(p[4], 900); /* stays: nothing */
    p[5] = gm_aligned_alloc(4096, 4096);
    p[6] = gm_memalign(1 << 16, 70000);
    CHECK(gm_posix_memalign(&p[7], 64, 64) == 0);
    unsigned long long n = 9, bytes = 100 + 40000 + 300 + 200 + 5000 + 1000 + 4096 + 70000 + 64;
    struct totals t = profile_totals();
    CHECK_EQ(t.rate, 1);
    CHECK_EQ(t.al_n - t0.al_n, n);
    CHECK_EQ(t.al_b - t0.al_b, bytes);
    CHECK_EQ(t.in_n - t0.in_n, n - 1);
    CHECK_EQ(t.in_b - t0.in_b, bytes - 200);
    for (int i = 0; i < 8; i++) gm_free(p[i]);
    t = profile_totals();
    CHECK_EQ(t.in_n, t0.in_n);
    CHECK_EQ(t.in_b, t0.in_b);
    gm_profile_stop();
}

/* ------------------------------------------------------------------------ */
/* 3. threads                                                               */
/* ------------------------------------------------------------------------ */

#define NT 4
#define PER 3000
static void **slots[NT];
static pthread_barrier_t made;

static size_t size_of(int i) { return i % 61 == 0 ? 50000 : i % 7 == 0 ? 6000 : (size_t)(16 + i % 900); }

static void *xthread(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < PER; i++) slots[me][i] = gm_malloc(size_of(i));
    pthread_barrier_wait(&made);
    void **theirs = slots[(me + 1) % NT];
    for (int i = 0; i < PER; i++) gm_free(theirs[i]);
    return NULL;
}

static void test_xthreads(void)
{
    struct totals t0 = profile_totals();
    CHECK(gm_profile_start(1) == 0);
    unsigned long long bytes = 0;
    for (int i = 0; i < PER; i++) bytes += size_of(i);
    pthread_barrier_init(&made, NULL, NT);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        slots[i] = calloc(PER, sizeof(void *)); /* libc's: not sampled */
        pthread_create(&th[i], NULL, xthread, (void *)(intptr_t)i);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) free(slots[i]);
    struct totals t = profile_totals();
    CHECK_EQ(t.al_n - t0.al_n, (unsigned long long)NT * PER);
    CHECK_EQ(t.al_b - t0.al_b, NT * bytes);
    CHECK_EQ(t.in_n, t0.in_n);
    CHECK_EQ(t.in_b, t0.in_b);
    gm_profile_stop();
    pthread_barrier_destroy(&made);
}

/* ------------------------------------------------------------------------ */
/* 4. stop, churn                                                           */
/* ------------------------------------------------------------------------ */

static void test_stop_churn(void)
{
    CHECK(gm_profile_start(1) == 0);
    void *kept = gm_malloc(333);
    gm_profile_stop();
    struct totals t0 = profile_totals();
    void *q = gm_malloc(444);
    struct totals t1 = profile_totals();
    CHECK_EQ(t1.al_n, t0.al_n); /* not sampled after the stop */
    gm_free(q);
    gm_free(kept);
    struct totals t2 = profile_totals();
    CHECK_EQ(t2.in_n, t0.in_n - 1); /* a sampled block's free still counts */
    CHECK_EQ(t2.in_b, t0.in_b - 333);

    /* Churn at the default rate: a live set of about 48 MiB. */
    CHECK(gm_profile_start(0) == 0);
    enum { LIVE = 12000 };
    static void *live[LIVE];
    static size_t sz[LIVE];
    uint64_t rng = 12345;
    unsigned long long truth = 0;
    for (int i = 0; i < 400000; i++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        int k = (int)((rng >> 33) % LIVE);
        if (live[k]) {
            gm_free(live[k]);
            truth -= sz[k];
        }
        sz[k] = (rng >> 20) % 7 == 0 ? 40000 + (rng >> 40) % 30000 : 16 + (rng >> 40) % 4000;
        live[k] = gm_malloc(sz[k]);
        truth += sz[k];
    }
    struct totals t = profile_totals();
    /* Each live block of s bytes is a sample with probability
     * 1 - exp(-s/rate): the count of sampled blocks in use is a sum of
     * such Bernoulli variables, checked against its mean within 5 standard
     * deviations. */
    double expect = 0, var = 0;
    for (int k = 0; k < LIVE; k++) {
        double pk = 1 - exp(-(double)sz[k] / (double)t.rate);
        expect += pk;
        var += pk * (1 - pk);
    }
    unsigned long long got = t.in_n - t2.in_n;
    printf("churn: %llu sampled blocks in use, %.1f expected (sd %.1f; %llu live bytes)\n", got, expect, sqrt(var),
           truth);
    CHECK(fabs((double)got - expect) < 5 * sqrt(var) + 1);
    CHECK(gm_check() == 0);
    for (int k = 0; k < LIVE; k++) gm_free(live[k]);
    t = profile_totals();
    CHECK_EQ(t.in_n, t2.in_n);
    gm_profile_stop();
}

/* ------------------------------------------------------------------------ */
/* 5. stacks                                                                */
/* ------------------------------------------------------------------------ */

#define TURNS 200
#define SITE_SIZE 777
static void *site_blocks[2 * TURNS];

static __attribute__((noinline)) void site_a(int i) { site_blocks[2 * i] = gm_malloc(SITE_SIZE); }
static __attribute__((noinline)) void site_b(int i) { site_blocks[2 * i + 1] = gm_malloc(SITE_SIZE); }

/* Which site a return address is in: 0 (site_a), 1 (site_b), -1 neither;
 * the nearest function start below it, a few bytes away (each is a call
 * and a store). */
static int site_of(uintptr_t pc)
{
    uintptr_t a = (uintptr_t)site_a, b = (uintptr_t)site_b;
    uintptr_t da = pc > a ? pc - a : UINTPTR_MAX, db = pc > b ? pc - b : UINTPTR_MAX;
    if (da < db && da < 64) return 0;
    if (db < da && db < 64) return 1;
    return -1;
}

/* The allocations of SITE_SIZE that the profile puts under each site (a
 * stack holding a return address into it; gomalloc's own frames, which
 * stay in this statically linked test, may make several buckets of one). */
static void site_counts(unsigned long long count[2])
{
    count[0] = count[1] = 0;
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) return;
    CHECK(gm_profile_write(f) == 0);
    rewind(f);
    char line[4096];
    unsigned long long in_n, in_b, al_n, al_b;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%llu: %llu [%llu: %llu] @", &in_n, &in_b, &al_n, &al_b) != 4 || al_b != al_n * SITE_SIZE)
            continue;
        int site = -1;
        for (char *p = strchr(line, '@'); p && (p = strstr(p, " 0x")); p += 3)
            if (site < 0) site = site_of((uintptr_t)strtoull(p + 1, NULL, 16));
        if (site >= 0) count[site] += al_n;
    }
    fclose(f);
}

static void test_stacks(void)
{
    CHECK(gm_profile_start(1) == 0);
    for (int i = 0; i < TURNS; i++) {
        site_a(i);
        site_b(i);
    }
    unsigned long long count[2];
    site_counts(count);
    CHECK_EQ(count[0], TURNS);
    CHECK_EQ(count[1], TURNS);
    for (int i = 0; i < 2 * TURNS; i++) gm_free(site_blocks[i]);
    gm_profile_stop();
}

int main(void)
{
    test_draw();
    test_exact();
    test_xthreads();
    test_stop_churn();
    test_stacks();
    return test_done("unit_profile");
}
