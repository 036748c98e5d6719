/*
 * scav.h — what the scavenger tests (api_scavenge.c, api_limit.c,
 * api_scavenge_bg.c) share: a table of test objects kept outside the heap,
 * the mix of sizes of a realistic burst, waiting without calling the
 * allocator, baselines, and the glibc build that validates the tests.
 *
 * The table is mmap'd and touched before any baseline, so it is in the
 * baseline's VmRSS and VmData and never in the allocator's figures.
 *
 * Built with -DSCAV_TEST_GLIBC (and without libgomalloc) the tests run on
 * glibc's malloc: gm_* are stubbed below and "waiting for the scavenger"
 * becomes one malloc_trim(0), which returns the free pages in the middle of
 * glibc's heap with MADV_DONTNEED. That checks the tests' own arithmetic
 * (floors, bounds) against an allocator that does return memory.
 */
#ifndef GM_SCAV_H
#define GM_SCAV_H

#include <errno.h>
#include <gomalloc.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define CHUNK ((uintptr_t)4 << 20) /* gomalloc's chunk: the unit of growth and decommit */
#define POLL_MS 25                 /* how often a wait looks at /proc */

static inline double mib(long long bytes) { return (double)bytes / (double)MiB; }

/* ------------------------------------------------------------------------ */
/* glibc build                                                              */
/* ------------------------------------------------------------------------ */
#ifdef SCAV_TEST_GLIBC
#define SCAV_GLIBC 1
static size_t shim_limit;
static int shim_hard;
void gm_stats_get(struct gm_stats *s)
{
    memset(s, 0, sizeof *s);
    s->mappings = test_maps_count();
}
int gm_check(void) { return 0; }
size_t gm_scavenge(void)
{
    long long r0 = test_vm_rss();
    malloc_trim(0);
    long long r1 = test_vm_rss();
    return r0 > r1 ? (size_t)(r0 - r1) : 0;
}
int gm_set_memory_limit(size_t bytes, int hard)
{
    shim_limit = bytes;
    shim_hard = bytes && hard;
    return 0;
}
size_t gm_get_memory_limit(int *hard)
{
    if (hard) *hard = shim_hard;
    return shim_limit;
}
#else
#define SCAV_GLIBC 0
#endif

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */
/* ------------------------------------------------------------------------ */

struct scav_obj {
    unsigned char *p; /* NULL once freed */
    uint32_t size;    /* requested bytes */
    uint32_t seed;    /* of its pattern */
};

struct scav_table {
    struct scav_obj *o;
    uint32_t *order; /* scratch: an order of indices */
    size_t n, cap;
    size_t live; /* requested bytes of the objects not freed */
};

/* Maps and touches room for cap objects; false if that fails. */
static inline bool scav_table_init(struct scav_table *t, size_t cap)
{
    memset(t, 0, sizeof *t);
    size_t bytes = cap * (sizeof(struct scav_obj) + sizeof(uint32_t));
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    if (m == MAP_FAILED) return false;
    memset(m, 0, bytes);
    t->o = m;
    t->order = (uint32_t *)(t->o + cap);
    t->cap = cap;
    return true;
}

/* A size in [lo, hi) (hi/lo a power of two): an octave chosen uniformly,
 * then uniformly within it, so small sizes are as common as the octaves. */
static inline size_t scav_octaves(uint64_t *s, size_t lo, size_t hi)
{
    unsigned octaves = 0;
    while ((lo << octaves) < hi) octaves++;
    uint64_t r = test_rnd(s);
    size_t a = lo << (r % octaves);
    return a + (size_t)((r >> 8) % a);
}

/* The mix of a realistic burst: by count mostly small objects (60% 16-256 B,
 * 30% 256 B-4 KiB, 10% 4-32 KiB), and 0.18% large ones (64 KiB-4 MiB),
 * which makes about half the bytes (278k objects a GiB). */
static inline size_t scav_mix_size(uint64_t *s)
{
    uint64_t r = test_rnd(s) % 10000;
    if (r < 18) return scav_octaves(s, 64 * KiB, 4 * MiB);
    r = test_rnd(s) % 10;
    if (r < 6) return scav_octaves(s, 16, 256);
    if (r < 9) return scav_octaves(s, 256, 4 * KiB);
    return scav_octaves(s, 4 * KiB, 32 * KiB);
}
#define SCAV_BURST_CAP ((size_t)600000) /* objects in a 1 GiB burst, with room */

/* Allocates an object of size bytes, fills it and records it; false (errno
 * kept) if malloc fails or the table is full. */
static inline bool scav_alloc(struct scav_table *t, size_t size)
{
    if (t->n == t->cap) {
        errno = ENOSPC;
        return false;
    }
    unsigned char *p = malloc(size);
    if (!p) return false;
    struct scav_obj *o = &t->o[t->n];
    o->p = p;
    o->size = (uint32_t)size;
    o->seed = (uint32_t)(t->n * 2654435761u + 1);
    test_fill(p, size, o->seed);
    t->n++;
    t->live += size;
    return true;
}

static inline void scav_free(struct scav_table *t, size_t i)
{
    if (!t->o[i].p) return;
    free(t->o[i].p);
    t->o[i].p = NULL;
    t->live -= t->o[i].size;
}

/* Objects whose pattern is gone (0 if all live ones are intact). */
static inline size_t scav_verify(const struct scav_table *t)
{
    size_t bad = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->o[i].p && !test_verify(t->o[i].p, t->o[i].size, t->o[i].seed)) bad++;
    return bad;
}

/* Allocates mixed objects until `bytes` are requested in all. *tenth (if
 * not NULL) gets the number of objects that made the first 10% of them;
 * tick (if not NULL) runs after each MiB. False if an allocation failed. */
static inline bool scav_burst(struct scav_table *t, size_t bytes, uint64_t seed, size_t *tenth, void (*tick)(void *),
                              void *arg)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    size_t total = 0;
    if (tenth) *tenth = 0;
    while (total < bytes) {
        size_t n = scav_mix_size(&s);
        if (!scav_alloc(t, n)) {
            fprintf(stderr, "burst: allocation %zu of %zu bytes failed (errno %d)\n", t->n, n, errno);
            return false;
        }
        if (tick && (total + n) / MiB != total / MiB) tick(arg);
        total += n;
        if (tenth && total <= bytes / 10) *tenth = t->n;
    }
    return true;
}

/* Frees the objects [lo, hi) that keep() says no to (all if keep is NULL),
 * in a random order. */
static inline void scav_free_random(struct scav_table *t, size_t lo, size_t hi, uint64_t seed,
                                    bool (*keep)(const struct scav_obj *o, uint64_t *s))
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;
    size_t m = 0;
    for (size_t i = lo; i < hi; i++)
        if (t->o[i].p && !(keep && keep(&t->o[i], &s))) t->order[m++] = (uint32_t)i;
    for (size_t i = m; i > 1; i--) {
        size_t j = (size_t)(test_rnd(&s) % i);
        uint32_t x = t->order[i - 1];
        t->order[i - 1] = t->order[j];
        t->order[j] = x;
    }
    for (size_t i = 0; i < m; i++) scav_free(t, t->order[i]);
}

/* keep() for scav_free_random: one object in ten, at random. */
static inline bool scav_keep_one_in_ten(const struct scav_obj *o, uint64_t *s) { return test_rnd(s) % 10 == 0; }

/* keep() for scav_free_random: objects that start in an odd 4 MiB chunk, so
 * that the even chunks become holes no larger than a chunk. */
static inline bool scav_keep_odd_chunk(const struct scav_obj *o, uint64_t *s)
{
    return ((uintptr_t)o->p / CHUNK) & 1;
}

static inline bool scav_by_address_less(const struct scav_table *t, uint32_t a, uint32_t b)
{
    return (uintptr_t)t->o[a].p < (uintptr_t)t->o[b].p;
}

static inline void scav_sift_down(struct scav_table *t, size_t i, size_t n)
{
    uint32_t *a = t->order;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && scav_by_address_less(t, a[c], a[c + 1])) c++;
        if (!scav_by_address_less(t, a[i], a[c])) return;
        uint32_t x = a[i];
        a[i] = a[c];
        a[c] = x;
        i = c;
    }
}

/* Sorts the indices of the live objects into t->order by address (heapsort,
 * no allocation); returns how many there are. */
static inline size_t scav_sort_live(struct scav_table *t)
{
    size_t m = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->o[i].p) t->order[m++] = (uint32_t)i;
    for (size_t i = m / 2; i-- > 0;) scav_sift_down(t, i, m);
    for (size_t end = m; end-- > 1;) {
        uint32_t x = t->order[0];
        t->order[0] = t->order[end];
        t->order[end] = x;
        scav_sift_down(t, 0, end);
    }
    return m;
}

/* Bytes of the pages of 1 << shift bytes (so aligned) that hold a byte of
 * one of the m live objects sorted by scav_sort_live, each page counted once:
 * with shift 13, gomalloc's pages; with 22, its chunks. */
static inline size_t scav_page_floor(const struct scav_table *t, size_t m, unsigned shift)
{
    uintptr_t next = 0; /* first page not counted yet */
    size_t pages = 0;
    for (size_t i = 0; i < m; i++) {
        const struct scav_obj *o = &t->o[t->order[i]];
        uintptr_t lo = (uintptr_t)o->p >> shift, hi = ((uintptr_t)o->p + o->size - 1) >> shift;
        if (lo < next) lo = next;
        if (hi >= lo) pages += hi - lo + 1;
        if (hi + 1 > next) next = hi + 1;
    }
    return pages << shift;
}

/* Whether the chunk (4 MiB) numbered c holds a byte of one of the m live
 * objects sorted by scav_sort_live (binary search). */
static inline bool scav_chunk_live(const struct scav_table *t, size_t m, uintptr_t c)
{
    size_t lo = 0, hi = m;
    while (lo < hi) { /* the first object starting at or after the chunk */
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)t->o[t->order[mid]].p < c * CHUNK) lo = mid + 1;
        else hi = mid;
    }
    if (lo < m && (uintptr_t)t->o[t->order[lo]].p < (c + 1) * CHUNK) return true;
    if (lo == 0) return false;
    const struct scav_obj *o = &t->o[t->order[lo - 1]];
    return (uintptr_t)o->p + o->size > c * CHUNK;
}

/* The chunks that hold the thread's current span of each small size class:
 * a span stays its thread's current one, in use, after all its objects are
 * freed, so strict mode cannot decommit its chunk (whole chunks only). In a
 * single thread the current span of a class is the one of the last object
 * allocated in it; classes are told apart by malloc_usable_size. Call before
 * freeing. */
struct scav_pins {
    size_t n;
    uintptr_t chunk[128];
};

static inline void scav_current_span_chunks(const struct scav_table *t, struct scav_pins *pins)
{
    size_t classes[128], nclasses = 0;
    pins->n = 0;
    for (size_t i = t->n; i-- > 0 && nclasses < 128;) {
        if (!t->o[i].p) continue;
        size_t u = malloc_usable_size(t->o[i].p), k = 0;
        if (u > 32 * KiB) continue;
        while (k < nclasses && classes[k] != u) k++;
        if (k < nclasses) continue;
        classes[nclasses++] = u;
        uintptr_t c = (uintptr_t)t->o[i].p / CHUNK;
        size_t j = 0;
        while (j < pins->n && pins->chunk[j] != c) j++;
        if (j == pins->n) pins->chunk[pins->n++] = c;
    }
}

/* How many of the pinned chunks hold no live byte (of the m live objects
 * sorted by scav_sort_live): chunks kept only by current spans. */
static inline size_t scav_pins_free(const struct scav_table *t, size_t m, const struct scav_pins *pins)
{
    size_t n = 0;
    for (size_t j = 0; j < pins->n; j++) n += !scav_chunk_live(t, m, pins->chunk[j]);
    return n;
}

/* A second thread of the program, which allocates once and then waits for
 * the process to end: with it, the program is multi-threaded and gets the
 * background scavenger, which gives memory back without any call (a
 * single-threaded program gets it back at its calls). */
static inline void *scav_idle_main(void *arg)
{
    free(malloc(64));
    for (;;) pause();
    return arg;
}

static inline void scav_idle_thread(void)
{
    static bool started;
    pthread_t t;
    if (started || pthread_create(&t, NULL, scav_idle_main, NULL) != 0) return;
    pthread_detach(t);
    started = true;
    while (test_threads() < 2) test_sleep_ms(1);
}

/* A few allocations of every kind, so the library (and whatever threads it
 * starts) is up before a baseline is taken; with SCAV_MT=1 in the
 * environment, the idle second thread first. */
static inline void scav_warmup(void)
{
    const char *mt = getenv("SCAV_MT");
    if (mt && *mt == '1') scav_idle_thread();
    static const size_t sizes[] = {16, 100, 1000, 5000, 30000, 100000, 1 << 20, 8 << 20};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = malloc(sizes[i]);
        if (p[i]) memset(p[i], 1, sizes[i]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) free(p[i]);
    printf("%s", ""); /* stdio's buffers too */
}

/* ------------------------------------------------------------------------ */
/* Baselines and waiting                                                    */
/* ------------------------------------------------------------------------ */

struct scav_base {
    long long rss, data;
    long maps, threads;
    struct gm_stats st;
};

static inline void scav_baseline(struct scav_base *b)
{
    gm_stats_get(&b->st);
    b->rss = test_vm_rss();
    b->data = test_vm_data();
    b->maps = test_maps_count();
    b->threads = test_threads();
}

/* How a burst case starts: the table, the warm-up, the baseline, then
 * scav_burst. False (a CHECK failed) if a step failed. */
static inline bool scav_start_burst(struct scav_table *t, struct scav_base *b, size_t bytes, uint64_t seed,
                                    size_t *tenth, void (*tick)(void *), void *arg)
{
    if (!scav_table_init(t, SCAV_BURST_CAP)) return false;
    scav_warmup();
    scav_baseline(b);
    bool ok = scav_burst(t, bytes, seed, tenth, tick, arg);
    CHECK(ok);
    return ok;
}

/* A goal for VmRSS and (if data_max >= 0) VmData, as growth over a
 * baseline; rss and data hold the last figures seen. */
struct scav_goal {
    const struct scav_base *base;
    long long rss_max, data_max;
    long long rss, data;
};

static inline bool scav_goal_met(struct scav_goal *g)
{
    g->rss = test_vm_rss() - g->base->rss;
    g->data = test_vm_data() - g->base->data;
    return g->rss <= g->rss_max && (g->data_max < 0 || g->data <= g->data_max);
}

/* Polls the goal every POLL_MS for up to limit_ms and returns the
 * milliseconds it took, or -1 if it was not met. Between polls it sleeps,
 * or runs between(arg) if given (which should take about POLL_MS). Calls
 * nothing that allocates unless between does. On glibc, one malloc_trim(0)
 * stands for the scavenger. */
static inline long long scav_wait(struct scav_goal *g, long limit_ms, void (*between)(void *), void *arg)
{
#ifdef SCAV_TEST_GLIBC
    malloc_trim(0);
#endif
    long long t0 = test_now_ns(), end = t0 + (long long)limit_ms * 1000000;
    for (;;) {
        long long now = test_now_ns();
        if (scav_goal_met(g)) return (now - t0) / 1000000;
        if (now >= end) return -1;
        if (between) between(arg);
        else test_sleep_ms(POLL_MS);
    }
}

/* The statistics and /proc read together: retried until the statistics
 * are the same before and after the /proc reads (the background scavenger
 * may be moving them), at most 2 s. */
static inline void scav_settled(struct gm_stats *s, long long *rss, long long *data)
{
    struct gm_stats again;
    for (int i = 0; i < 2000 / POLL_MS; i++) {
        gm_stats_get(s);
        *rss = test_vm_rss();
        *data = test_vm_data();
        gm_stats_get(&again);
        if (again.committed == s->committed && again.heap_released == s->heap_released &&
            again.heap_sys == s->heap_sys)
            return;
        test_sleep_ms(POLL_MS);
    }
}

#endif
