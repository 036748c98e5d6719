/*
 * api_scavenge.c — the scavenger (issue 4) gives memory back, seen from
 * outside. Each case runs in a fresh process with the options it names
 * (test_subcase), measures growth over a baseline taken before its burst,
 * and while it waits calls nothing that allocates (no malloc, free or
 * stdio: /proc is read with open/read into stack buffers).
 *
 *   burst         1 GiB of mixed objects (scav_mix_size), each with a
 *                 pattern; every object after the first 10% (by bytes) freed
 *                 in a random order. Within 2 s, VmRSS growth <= 1.1 x live
 *                 + 8 MiB (live = requested bytes still allocated). Then the
 *                 statistics agree with /proc: VmData growth = committed
 *                 growth +-1 MiB (+ a default stack per thread started since
 *                 the baseline), and VmRSS growth = committed growth -
 *                 heap_released growth, give or take what may be committed
 *                 but untouched (metadata growth + 4 MiB) or resident but not
 *                 the heap's (2 MiB). Patterns intact, gm_check() == 0.
 *   burst_strict  the same with GOMALLOC_STRICT=1, and VmData growth within
 *                 the same 2 s <= 1.1 x live + 8 MiB, + 4 MiB for each chunk
 *                 that holds nothing live but a current span, + 4 MiB for
 *                 the thread's page cache: strict mode decommits whole 4 MiB
 *                 chunks, and a thread's current span of a class stays in
 *                 use after its objects are freed (scav_current_span_chunks;
 *                 5 chunks here, which 1.1 x live + 8 MiB alone could not
 *                 hold). Decommitted memory may or may not count in
 *                 heap_released, so VmRSS is only held between committed -
 *                 heap_released (less the same slack) and committed.
 *   frag          1 GiB, 90% of the objects freed at random. The floor is
 *                 the 8 KiB pages (8 KiB aligned) that still hold a live
 *                 byte, computed from the live pointers; of the peak VmRSS
 *                 growth above the floor at least half goes back within 2 s.
 *   trim          right after a burst (GOMALLOC_DECAY_MS=3600000, so nothing
 *                 goes back by itself), malloc_trim(0) returns 1 and VmRSS is
 *                 within the bound of `burst` at once.
 *   scavenge      the same with gm_scavenge(), whose return value (bytes
 *                 released) is the drop of VmRSS within 8 MiB.
 * As checks of the test itself: VmRSS growth >= live - 8 MiB after a wait,
 * and in frag live <= the floor of 4 KiB pages <= the floor of 8 KiB pages,
 * and VmRSS growth >= the 4 KiB floor - 8 MiB (live data is resident).
 */
#define _GNU_SOURCE
#include "scav.h"

#include <malloc.h>

#define BURST (1 * GiB)

/* The bound of the issue: 1.1 x live + 8 MiB. */
static long long live_bound(size_t live) { return (long long)(live + live / 10 + 8 * MiB); }

/* ------------------------------------------------------------------------ */
/* burst, burst_strict                                                      */
/* ------------------------------------------------------------------------ */

/* The statistics against /proc once the scavenger is done (see the top). */
static void check_agreement(const struct scav_base *b, bool strict)
{
    struct gm_stats s;
    long long rss, data;
    scav_settled(&s, &rss, &data);
    rss -= b->rss;
    data -= b->data;
    long long dc = (long long)(s.committed - b->st.committed);
    long long dr = (long long)s.heap_released - (long long)b->st.heap_released;
    long long dmeta = (long long)(s.sys - s.heap_sys) - (long long)(b->st.sys - b->st.heap_sys);
    long new_threads = test_threads() - b->threads;
    /* A thread started after the baseline maps a stack: allow a default one. */
    long long stacks = new_threads > 0 ? new_threads * (long long)(8 * MiB + 64 * KiB) : 0;
    printf("  stats: committed %+.1f MiB, heap_released %+.1f MiB, metadata %+.1f MiB, heap_idle %.1f MiB; "
           "/proc: VmData %+.1f MiB, VmRSS %+.1f MiB; threads %+ld\n",
           mib(dc), mib(dr), mib(dmeta), mib((long long)s.heap_idle), mib(data), mib(rss), new_threads);
    if (SCAV_GLIBC) return;
    CHECK(s.heap_released <= s.heap_idle);
    if (test_skip_emulated(TEST_GAP_VM, "VmData and VmRSS against the statistics")) return;
    CHECK(data >= dc - (long long)MiB);
    CHECK(data <= dc + (long long)MiB + stacks);
    long long resident = dc - dr; /* what the statistics say is resident */
    if (!strict) CHECK(rss <= resident + (long long)(2 * MiB));
    else CHECK(rss <= dc + (long long)(2 * MiB));
    CHECK(rss >= resident - dmeta - (long long)(4 * MiB));
}

static int case_burst(bool strict)
{
    const char *name = strict ? "burst_strict" : "burst";
    struct scav_table t;
    struct scav_base b;
    size_t tenth;
    if (!scav_start_burst(&t, &b, BURST, 1, &tenth, NULL, NULL)) return test_done(name);
    long long peak = test_vm_rss() - b.rss, peak_data = test_vm_data() - b.data;
    struct scav_pins pins;
    scav_current_span_chunks(&t, &pins);
    scav_free_random(&t, tenth, t.n, 2, NULL);
    /* What strict mode cannot decommit: the chunks holding a live byte, and
     * those holding only a current span (allowed for in VmData's bound, one
     * more for the thread's page cache). */
    size_t m = scav_sort_live(&t), pinned = scav_pins_free(&t, m, &pins);
    long long chunks = (long long)scav_page_floor(&t, m, 22);
    long long data_bound = live_bound(t.live) + (long long)((pinned + 1) * CHUNK);

    struct scav_goal g = {.base = &b, .rss_max = live_bound(t.live), .data_max = strict ? data_bound : -1};
    long long ms = scav_wait(&g, 2000, NULL, NULL);
    printf("%s: %zu objects, %zu kept (live %.1f MiB in %.1f MiB of chunks, + %zu chunks of current spans); "
           "peak VmRSS %+.1f MiB, VmData %+.1f MiB; bound VmRSS %.1f MiB, VmData %.1f MiB%s; "
           "%s after %lld ms: VmRSS %+.1f MiB, VmData %+.1f MiB\n",
           name, t.n, tenth, mib((long long)t.live), mib(chunks), pinned, mib(peak), mib(peak_data), mib(g.rss_max),
           mib(data_bound), strict ? "" : " (not checked)", ms >= 0 ? "met" : "NOT met",
           ms >= 0 ? ms : 2000LL, mib(g.rss), mib(g.data));
    CHECK(ms >= 0);
    CHECK(g.rss <= g.rss_max);
    if (strict) CHECK(g.data <= g.data_max);
    /* The measurement itself: what is live is resident. */
    CHECK(g.rss >= (long long)t.live - (long long)(8 * MiB));
    check_agreement(&b, strict);

    CHECK_EQ(scav_verify(&t), 0);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

/* A single-threaded program's memory goes back at its calls: one large
 * malloc and free (a slow path) per poll. */
static void slow_call(void *arg)
{
    (void)arg;
    void *p = malloc(64 * KiB);
    CHECK(p != NULL);
    free(p);
    test_sleep_ms(POLL_MS);
}

/* ------------------------------------------------------------------------ */
/* burst_single                                                             */
/* ------------------------------------------------------------------------ */

/* One thread, strict mode: no helper. The frees that end the burst give
 * back at once all the resident memory but max(64 MiB, in use / 2) (and
 * the spans' slack: 32 MiB), and the program's slow calls the rest, and
 * the commit charge, after the decay. */
static int case_burst_single(void)
{
    const char *name = "burst_single";
    struct scav_table t;
    struct scav_base b;
    size_t tenth;
    if (!scav_start_burst(&t, &b, BURST, 1, &tenth, NULL, NULL)) return test_done(name);
    long long peak = test_vm_rss() - b.rss;
    struct scav_pins pins;
    scav_current_span_chunks(&t, &pins);
    scav_free_random(&t, tenth, t.n, 2, NULL);
    long long at_once = test_vm_rss() - b.rss, at_once_data = test_vm_data() - b.data;
    long threads = test_threads();
    size_t m = scav_sort_live(&t), pinned = scav_pins_free(&t, m, &pins);
    long long margin = (long long)(t.live / 2 > 64 * MiB ? t.live / 2 : 64 * MiB);
    long long once_bound = live_bound(t.live) + margin + (long long)(32 * MiB);
    long long data_bound = live_bound(t.live) + (long long)((pinned + 1) * CHUNK);
    struct scav_goal g = {.base = &b, .rss_max = live_bound(t.live), .data_max = data_bound};
    long long ms = scav_wait(&g, 2000, slow_call, NULL);
    printf("%s: live %.1f MiB, peak VmRSS %+.1f MiB; at once VmRSS %+.1f MiB, VmData %+.1f MiB (bound %.1f MiB); "
           "%s after %lld ms of slow calls: VmRSS %+.1f MiB (bound %.1f), VmData %+.1f MiB (bound %.1f); "
           "%ld threads\n",
           name, mib((long long)t.live), mib(peak), mib(at_once), mib(at_once_data), mib(once_bound),
           ms >= 0 ? "met" : "NOT met", ms >= 0 ? ms : 2000LL, mib(g.rss), mib(g.rss_max), mib(g.data),
           mib(data_bound), threads);
    if (!SCAV_GLIBC) {
        CHECK_EQ(threads, 1);
        CHECK(at_once <= once_bound);
        CHECK(ms >= 0);
    }
    CHECK(g.rss >= (long long)t.live - (long long)(8 * MiB));
    CHECK_EQ(scav_verify(&t), 0);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

/* ------------------------------------------------------------------------ */
/* frag                                                                     */
/* ------------------------------------------------------------------------ */

static int case_frag(bool single)
{
    const char *name = single ? "frag_single" : "frag";
    struct scav_table t;
    struct scav_base b;
    if (!scav_start_burst(&t, &b, BURST, 3, NULL, NULL, NULL)) return test_done(name);
    long long peak = test_vm_rss() - b.rss;
    scav_free_random(&t, 0, t.n, 4, scav_keep_one_in_ten);
    size_t kept = scav_sort_live(&t);
    /* The floor of the issue: gomalloc's 8 KiB pages. What no allocator can
     * give back is less: the 4 KiB OS pages holding a live byte. */
    long long floor = (long long)scav_page_floor(&t, kept, 13);
    long long os_floor = (long long)scav_page_floor(&t, kept, 12);

    struct scav_goal g = {.base = &b, .rss_max = floor + (peak - floor) / 2, .data_max = -1};
    long long ms = scav_wait(&g, 2000, single ? slow_call : NULL, NULL);
    long long back = peak - g.rss;
    /* The spans still in use: the floor of a scavenger that frees whole
     * spans only (read after the wait, so the wait made no call). */
    struct gm_stats st;
    gm_stats_get(&st);
    printf("%s: live %.1f MiB in %zu objects; peak VmRSS %+.1f MiB, floor %.1f MiB (4 KiB pages: %.1f MiB), "
           "goal %.1f MiB; %s after %lld ms%s: VmRSS %+.1f MiB, %.1f MiB back = %.0f%% of the %.1f MiB above the "
           "floor; heap_inuse %+.1f MiB, metadata %+.1f MiB; %ld threads\n",
           name, mib((long long)t.live), kept, mib(peak), mib(floor), mib(os_floor), mib(g.rss_max),
           ms >= 0 ? "met" : "NOT met", ms >= 0 ? ms : 2000LL, single ? " of slow calls" : "", mib(g.rss),
           mib(back), peak > floor ? 100.0 * (double)back / (double)(peak - floor) : 0.0, mib(peak - floor),
           mib((long long)st.heap_inuse - (long long)b.st.heap_inuse),
           mib((long long)(st.sys - st.heap_sys) - (long long)(b.st.sys - b.st.heap_sys)), test_threads());
    CHECK(ms >= 0);
    if (single && !SCAV_GLIBC) CHECK_EQ(test_threads(), 1);
    CHECK(2 * back >= peak - floor);
    /* The floors themselves: live data is resident, and fills no more than
     * its pages. */
    CHECK(g.rss >= os_floor - (long long)(8 * MiB));
    CHECK((long long)t.live <= os_floor && os_floor <= floor);

    CHECK_EQ(scav_verify(&t), 0);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

/* ------------------------------------------------------------------------ */
/* trim, scavenge                                                           */
/* ------------------------------------------------------------------------ */

static int case_trim(bool use_trim)
{
    const char *name = use_trim ? "trim" : "scavenge";
    struct scav_table t;
    struct scav_base b;
    size_t tenth;
    if (!scav_start_burst(&t, &b, BURST, 5, &tenth, NULL, NULL)) return test_done(name);
    scav_free_random(&t, tenth, t.n, 6, NULL);
    long long before = test_vm_rss() - b.rss;
    size_t ret = use_trim ? (size_t)malloc_trim(0) : gm_scavenge();
    long long after = test_vm_rss() - b.rss, drop = before - after;
    struct gm_stats st;
    gm_stats_read(&st, sizeof st);
    printf("%s: live %.1f MiB, bound %.1f MiB; VmRSS %+.1f MiB before, %+.1f MiB after (%.1f MiB back); "
           "returned %zu; heap_inuse %+.1f MiB, heap_idle - heap_released %+.1f MiB\n",
           name, mib((long long)t.live), mib(live_bound(t.live)), mib(before), mib(after), mib(drop), ret,
           mib((long long)st.heap_inuse - (long long)b.st.heap_inuse),
           mib((long long)(st.heap_idle - st.heap_released) - (long long)(b.st.heap_idle - b.st.heap_released)));
    CHECK(after <= live_bound(t.live));
    if (use_trim) {
        CHECK_EQ(ret, 1);
    } else {
        CHECK(ret > 0);
        CHECK((long long)ret >= drop - (long long)(8 * MiB));
        CHECK((long long)ret <= drop + (long long)(8 * MiB));
    }
    CHECK_EQ(scav_verify(&t), 0);
    for (size_t i = 0; i < t.n; i++) scav_free(&t, i);
    CHECK_EQ(gm_check(), 0);
    return test_done(name);
}

/* ------------------------------------------------------------------------ */

static const char *const env_plain[] = {"GOMALLOC_STRICT=0", "SCAV_MT=1", NULL};
static const char *const env_strict[] = {"GOMALLOC_STRICT=1", "SCAV_MT=1", NULL};
static const char *const env_single[] = {"GOMALLOC_STRICT=0", NULL};
static const char *const env_single_strict[] = {"GOMALLOC_STRICT=1", NULL};
static const char *const env_no_decay[] = {"GOMALLOC_STRICT=0", "GOMALLOC_DECAY_MS=3600000", NULL};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        if (!strcmp(argv[1], "burst")) return case_burst(false);
        if (!strcmp(argv[1], "burst_strict")) return case_burst(true);
        if (!strcmp(argv[1], "frag")) return case_frag(false);
        if (!strcmp(argv[1], "burst_single")) return case_burst_single();
        if (!strcmp(argv[1], "frag_single")) return case_frag(true);
        if (!strcmp(argv[1], "trim")) return case_trim(true);
        if (!strcmp(argv[1], "scavenge")) return case_trim(false);
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    test_subcase("burst", env_plain, NULL);
    test_subcase("burst_strict", env_strict, NULL);
    test_subcase("frag", env_plain, NULL);
    /* A single-threaded program's own way of returning memory. */
    if (!test_skip_emulated(TEST_GAP_THREADS, "sub-cases burst_single and frag_single")) {
        test_subcase("burst_single", env_single_strict, NULL);
        test_subcase("frag_single", env_single, NULL);
    }
    test_subcase("trim", env_no_decay, NULL);
    test_subcase("scavenge", env_no_decay, NULL);
    return test_done("api_scavenge");
}
