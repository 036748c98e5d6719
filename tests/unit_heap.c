/*
 * unit_heap.c — layer 4 through src/internal.h: the seed's promise (arenas
 * reserved, committed incrementally), growth under RLIMIT_DATA, growth across
 * arenas and across a hint collision, fault injection during growth,
 * reservations smaller than an arena and growth under RLIMIT_AS, and the
 * slow statistics check after each step.
 *
 * The tests that measure VmData or set rlimits run in a child process each,
 * so they start from a fresh heap.
 */
#include "internal.h"
#include "test.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MiB ((size_t)1 << 20)

static struct gm_span *span(size_t npages)
{
    return gm_heap_alloc_span(NULL, npages, 0, false);
}

static void touch(struct gm_span *s, int c)
{
    memset((void *)s->base, c, (size_t)s->npages << GM_PAGE_SHIFT);
}

/* The seed's promise: the first arena is reserved, not committed. */
static int child_first_page(void)
{
    long before = test_status_kb("VmData");
    struct gm_span *s = span(1);
    CHECK(s != NULL);
    if (!s) return test_failures;
    touch(s, 0x5a);
    long after = test_status_kb("VmData");
    bool data_ok = !test_skip_emulated(TEST_GAP_VM, "VmData of the first pages");
    fprintf(stderr, "first page: VmData +%ld KiB, heap_sys %llu KiB, reserved %llu KiB\n", after - before,
            (unsigned long long)gm_stat_load(&gm_heap.heap_sys) >> 10,
            (unsigned long long)gm_stat_load(&gm_os.reserved) >> 10);
    if (data_ok) CHECK(after - before <= 1024);
    CHECK(gm_stat_load(&gm_os.reserved) >= GM_ARENA_BYTES);
    CHECK(gm_stat_load(&gm_heap.heap_sys) < GM_CHUNK_BYTES);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), GM_PAGE_SIZE);
    CHECK_EQ(gm_check(), 0);
    /* 1 MiB more in single pages costs at most 2.5 MiB of VmData. */
    for (int i = 0; i < 128; i++) {
        struct gm_span *t = span(1);
        CHECK(t != NULL);
        if (t) touch(t, i);
    }
    long after2 = test_status_kb("VmData");
    fprintf(stderr, "1 MiB of pages: VmData +%ld KiB\n", after2 - before);
    if (data_ok) CHECK(after2 - before <= 2560);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Under RLIMIT_DATA = baseline + 32 MiB: 16 MiB works, beyond the limit
 * fails cleanly, and the heap serves again after frees. */
static int child_rlimit(void)
{
    long base_kb = test_status_kb("VmData");
    struct rlimit rl = {.rlim_cur = (rlim_t)base_kb * 1024 + 32 * MiB, .rlim_max = RLIM_INFINITY};
    CHECK(setrlimit(RLIMIT_DATA, &rl) == 0);
    struct gm_span *s[32];
    int n = 0;
    for (; n < 32; n++) { /* 32 x 512 KiB = 16 MiB */
        s[n] = span(64);
        CHECK(s[n] != NULL);
        if (!s[n]) break;
        touch(s[n], n);
    }
    uint64_t sys = gm_stat_load(&gm_heap.heap_sys), inuse = gm_stat_load(&gm_heap.heap_inuse);
    errno = 0;
    struct gm_span *big = span(64 * MiB / GM_PAGE_SIZE);
    CHECK(big == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_sys), sys);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse);
    CHECK_EQ(gm_check(), 0);
    for (int i = 0; i < n; i++) {
        unsigned char *p = (unsigned char *)s[i]->base;
        CHECK(p[0] == (unsigned char)i && p[512 * 1024 - 1] == (unsigned char)i);
        gm_heap_free_span(s[i]);
    }
    /* The same 16 MiB again, as one run now. */
    struct gm_span *again = span(16 * MiB / GM_PAGE_SIZE);
    CHECK(again != NULL);
    if (again) touch(again, 1);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Growth across arenas: contiguous arenas make one heap, and a span may
 * cross an arena boundary. */
static int child_arenas(void)
{
    struct gm_span *a = span(1);
    struct gm_span *big = span(100 * MiB / GM_PAGE_SIZE); /* must cross into a second arena */
    CHECK(a && big);
    if (!a || !big) return test_failures;
    uintptr_t end = big->base + 100 * MiB;
    CHECK(gm_align_down(big->base, GM_ARENA_BYTES) != gm_align_down(end - 1, GM_ARENA_BYTES));
    CHECK(gm_span_lookup(big->base) == big);
    CHECK(gm_span_lookup(end - 1) == big);
    CHECK(gm_span_lookup(gm_align_up(big->base + 1, GM_ARENA_BYTES)) == big);
    touch(big, 0x11);
    CHECK_EQ(gm_check(), 0);
    /* heap_sys holds only what was grown, not the Reserved tail. */
    CHECK(gm_stat_load(&gm_heap.heap_sys) < 108 * MiB);
    CHECK(gm_stat_load(&gm_os.reserved) >= 128 * MiB);
    gm_heap_free_span(big);
    gm_heap_free_span(a);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), 0);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* A hint collision: the next reservation is not contiguous, so the rest of
 * the current arena is committed, counted released and handed over. */
static int child_collision(void)
{
    struct gm_span *a = span(1);
    CHECK(a != NULL);
    if (!a) return test_failures;
    uintptr_t arena = gm_align_down(a->base, GM_ARENA_BYTES);
    void *hint = (void *)gm_arena_next_hint();
    void *blocker = mmap(hint, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(blocker == hint);
    uint64_t sys0 = gm_stat_load(&gm_heap.heap_sys);
    /* 70 MiB cannot fit in what is left of the first arena. */
    struct gm_span *big = span(70 * MiB / GM_PAGE_SIZE);
    CHECK(big != NULL);
    if (!big) return test_failures;
    CHECK(big->base < (uintptr_t)blocker || big->base >= (uintptr_t)blocker + 4096);
    CHECK(gm_align_down(big->base, GM_ARENA_BYTES) != arena);
    /* The whole first arena is now grown: heap_sys = 64 MiB + big's growth. */
    CHECK(gm_stat_load(&gm_heap.heap_sys) >= GM_ARENA_BYTES + 70 * MiB);
    CHECK(gm_stat_load(&gm_heap.heap_sys) > sys0);
    CHECK_EQ(gm_check(), 0);
    /* The leftover is usable: 60 MiB fit in the first arena, at lower addresses. */
    struct gm_span *left = span(60 * MiB / GM_PAGE_SIZE);
    CHECK(left != NULL);
    if (left) {
        CHECK_EQ(gm_align_down(left->base, GM_ARENA_BYTES), arena);
        touch(left, 0x22);
    }
    touch(big, 0x33);
    CHECK_EQ(gm_check(), 0);
    munmap(blocker, 4096);
    return test_failures;
}

/* Every failure of reserve or map during growth: NULL/ENOMEM, heap figures
 * unchanged, and the next request succeeds once failures stop. */
static int child_faults(void)
{
    struct gm_span *keep = span(1);
    CHECK(keep != NULL);
    for (int kind = GM_SYS_RESERVE; kind <= GM_SYS_MAP; kind++) {
        for (uint64_t skip = 0; skip < 6; skip++) {
            uint64_t sys = gm_stat_load(&gm_heap.heap_sys), inuse = gm_stat_load(&gm_heap.heap_inuse);
            uint64_t rel = gm_stat_load(&gm_heap.heap_released);
            gm_fault_set(kind, skip, 1000);
            errno = 0;
            /* More than is left in the current arena: needs a reservation. */
            struct gm_span *s = span(80 * MiB / GM_PAGE_SIZE);
            gm_fault_clear();
            if (s == NULL) {
                CHECK_EQ(errno, ENOMEM);
                CHECK_EQ(gm_stat_load(&gm_heap.heap_sys), sys);
                CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse);
                CHECK_EQ(gm_stat_load(&gm_heap.heap_released), rel);
                CHECK_EQ(gm_check(), 0);
                s = span(80 * MiB / GM_PAGE_SIZE);
                CHECK(s != NULL);
            }
            if (s) {
                touch(s, 7);
                gm_heap_free_span(s);
            }
            CHECK_EQ(gm_check(), 0);
        }
    }
    return test_failures;
}

/* The per-thread stock: spans from a page cache without the lock, and the
 * stock given back. */
static int child_local(void)
{
    struct gm_heap_local hl;
    memset(&hl, 0, sizeof hl);
    struct gm_span *s[40];
    for (int i = 0; i < 40; i++) {
        s[i] = gm_heap_alloc_span(&hl, 1 + i % 3, 0, false);
        CHECK(s[i] != NULL);
        if (s[i]) touch(s[i], i);
    }
    for (int i = 0; i < 40; i++)
        for (int j = i + 1; j < 40; j++)
            CHECK(s[i]->base + ((uintptr_t)s[i]->npages << GM_PAGE_SHIFT) <= s[j]->base ||
                  s[j]->base + ((uintptr_t)s[j]->npages << GM_PAGE_SHIFT) <= s[i]->base);
    for (int i = 0; i < 40; i++) {
        CHECK(*(unsigned char *)s[i]->base == (unsigned char)i);
        gm_heap_free_span(s[i]);
    }
    gm_heap_local_flush(&hl);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), 0);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* The high_water mark (heap.h) says the live set shrank below the goal a
 * scavenging pass set. A heap that then grows past that goal is not
 * shrinking: the mark must go at once, not at the next pass, or every span
 * of the growth would count as above the goal and be sent away from its
 * thread (issue 13: what made api_scavenge fail under an emulator). */
static int child_goal_lifted(void)
{
    struct gm_span *s[8];
    for (int i = 0; i < 8; i++) s[i] = span(GM_CHUNK_PAGES / 2); /* 16 MiB */
    for (int i = 0; i < 8; i++) CHECK(s[i] != NULL);
    for (int i = 1; i < 8; i++) gm_heap_free_span(s[i]); /* 2 MiB in use, 16 committed */
    gm_heap_set_goal(GM_CHUNK_BYTES);
    CHECK(gm_heap_shrinking());
    uintptr_t mark = atomic_load(&gm_heap.high_water);
    CHECK(mark < UINTPTR_MAX);
    /* Growth below the goal keeps the mark. */
    struct gm_span *t = span(GM_CHUNK_PAGES / 4);
    CHECK(t != NULL);
    CHECK(gm_heap_shrinking());
    CHECK_EQ(atomic_load(&gm_heap.high_water), mark);
    /* Past it, the mark goes. */
    struct gm_span *u = span(GM_CHUNK_PAGES);
    CHECK(u != NULL);
    CHECK(!gm_heap_shrinking());
    if (u) CHECK(!gm_heap_above_goal(u));
    gm_heap_free_span(s[0]);
    if (t) gm_heap_free_span(t);
    if (u) gm_heap_free_span(u);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Grow and shrink in place. */
static int child_inplace(void)
{
    struct gm_span *s = span(4);
    CHECK(s != NULL);
    if (!s) return test_failures;
    uintptr_t base = s->base;
    CHECK(gm_heap_grow_span(s, 20));
    CHECK_EQ(s->base, base);
    CHECK_EQ(s->npages, 20);
    CHECK(gm_span_lookup(base + 19 * GM_PAGE_SIZE) == s);
    touch(s, 3);
    struct gm_span *t = span(1); /* lands right after s */
    CHECK(t && t->base == base + 20 * GM_PAGE_SIZE);
    CHECK(!gm_heap_grow_span(s, 21));
    gm_heap_shrink_span(s, 10);
    CHECK_EQ(s->npages, 10);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), 11 * GM_PAGE_SIZE);
    CHECK_EQ(gm_check(), 0);
    /* A span that ends where curArena starts grows in place: the heap
     * grows there. */
    uintptr_t top = t->base + GM_PAGE_SIZE;
    struct gm_span *u = span((gm_heap.arena_base - top) >> GM_PAGE_SHIFT);
    CHECK(u && u->base == top);
    if (!u) return test_failures;
    uintptr_t frontier = gm_heap.arena_base;
    CHECK_EQ(u->base + ((uintptr_t)u->npages << GM_PAGE_SHIFT), frontier);
    uint64_t sys = gm_stat_load(&gm_heap.heap_sys);
    CHECK(gm_heap_grow_span(u, u->npages + 100));
    CHECK_EQ(u->base, top);
    CHECK(gm_heap.arena_base > frontier && gm_stat_load(&gm_heap.heap_sys) > sys);
    memset((void *)(frontier), 9, 100 * GM_PAGE_SIZE); /* committed */
    CHECK(gm_span_lookup(frontier + 99 * GM_PAGE_SIZE) == u);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Pressure decommits free runs between live spans: more holes than the
 * scavenger's paced budget of mappings (GM_DECOMMIT_RANGES). Once the
 * spans between them are freed too, the paced path may still widen the
 * holes until they merge (that costs no mapping), so the commit charge
 * goes back and the mapping count falls. */
static int child_decommit_full(void)
{
    enum { N = 48, HALF = GM_CHUNK_PAGES / 2 };
    struct gm_span *s[N];
    for (int i = 0; i < N; i++) {
        s[i] = span(HALF);
        CHECK(s[i] != NULL);
        if (!s[i]) return test_failures;
        touch(s[i], i);
    }
    for (int i = 0; i < N; i += 2) gm_heap_free_span(s[i]);
    size_t runs = gm_heap_decommit_runs(HALF);
    long maps_pressure = test_maps_count();
    uint64_t sys_pressure = gm_stat_load(&gm_heap.heap_sys);
    for (int i = 1; i < N; i += 2) {
        CHECK(*(unsigned char *)s[i]->base == (unsigned char)i);
        gm_heap_free_span(s[i]);
    }
    size_t paced = gm_heap_decommit(SIZE_MAX, gm_now_ms(), false, false);
    long maps_after = test_maps_count();
    uint64_t sys_after = gm_stat_load(&gm_heap.heap_sys);
    fprintf(stderr, "decommit_full: pressure decommitted %zu MiB in runs (heap_sys %llu MiB, %ld mappings); all "
            "freed, the paced path %zu MiB more: heap_sys %llu KiB, %ld mappings\n", runs >> 20,
            (unsigned long long)sys_pressure >> 20, maps_pressure, paced >> 20,
            (unsigned long long)sys_after >> 10, maps_after);
    CHECK(runs >= (size_t)(N / 2 - 2) * HALF * GM_PAGE_SIZE); /* a hole for (nearly) every freed span */
    CHECK(paced >= (size_t)(N / 2 - 2) * HALF * GM_PAGE_SIZE);
    CHECK(sys_after <= GM_CHUNK_BYTES);
    CHECK(maps_after < maps_pressure);
    CHECK_EQ(gm_check(), 0);
    /* And it all comes back to use. */
    for (int i = 0; i < N; i++) {
        s[i] = span(HALF);
        CHECK(s[i] != NULL);
        if (s[i]) touch(s[i], i);
    }
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* The paced path decommits free runs inside chunks that still hold live
 * pages (a live set that shrinks while the program works leaves no chunk
 * wholly free), highest first, only runs old enough, and within its budget
 * of holes: 16 + one per 4 MiB of heap, at most 48, of which runs leave 8
 * to whole chunks. 50 runs of half a chunk beside live halves: 40 holes
 * (one more if the top chunk is wholly free), the lowest runs left free,
 * the first allocation after takes the lowest, and a span followed by a
 * hole still grows in place. */
static int child_decommit_runs(void)
{
    enum { N = 100, HALF = GM_CHUNK_PAGES / 2 };
    static struct gm_span *s[N];
    for (int i = 0; i < N; i++) {
        s[i] = span(HALF);
        CHECK(s[i] != NULL);
        if (!s[i]) return test_failures;
        touch(s[i], i);
    }
    uintptr_t lowest = s[0]->base;
    for (int i = 0; i < N; i += 2) gm_heap_free_span(s[i]);
    long maps0 = test_maps_count();
    size_t whole = gm_heap_decommit(SIZE_MAX, gm_now_ms(), false, false); /* runs only when asked */
    CHECK(whole == 0 || whole == GM_CHUNK_BYTES);                        /* the top chunk, if free */
    CHECK_EQ(gm_heap_decommit(SIZE_MAX, gm_now_ms() - 60000, false, true), 0); /* freed just now: too young */
    size_t paced = gm_heap_decommit(SIZE_MAX, gm_now_ms(), false, true);
    long maps1 = test_maps_count();
    const size_t run = (size_t)HALF * GM_PAGE_SIZE;
    fprintf(stderr, "decommit_runs: %zu MiB decommitted (%zu runs of 2 MiB, %zu whole chunks), %ld more mappings\n",
            paced >> 20, paced / run, whole / GM_CHUNK_BYTES, maps1 - maps0);
    CHECK_EQ(paced, (40 - whole / GM_CHUNK_BYTES) * run); /* 40 holes in all */
    CHECK(maps1 - maps0 <= 2 * 40);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_decommitted), whole + paced);
    for (int i = 1; i < N; i += 2) CHECK(*(unsigned char *)s[i]->base == (unsigned char)i);
    CHECK_EQ(gm_check(), 0);
    struct gm_span *again = span(HALF);
    CHECK(again && again->base == lowest);
    /* A span followed by a hole grows into it in place (realloc): the
     * front of the hole is committed again. */
    uint64_t dec = gm_stat_load(&gm_heap.heap_decommitted);
    uintptr_t top = s[N - 1]->base;
    CHECK(gm_heap_grow_span(s[N - 3], HALF + 100));
    CHECK_EQ(s[N - 3]->npages, HALF + 100);
    CHECK(gm_stat_load(&gm_heap.heap_decommitted) < dec);
    memset((void *)(s[N - 3]->base + (size_t)HALF * GM_PAGE_SIZE), 7, 100 * GM_PAGE_SIZE); /* writable */
    CHECK_EQ(s[N - 1]->base, top);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Pages of [p, p + n) resident, by mincore. */
static size_t resident_pages(const void *p, size_t n)
{
    static unsigned char vec[(64 * MiB) >> 12];
    size_t pages = n >> 12, k = 0;
    if (pages > sizeof vec || mincore((void *)p, n, vec) != 0) return SIZE_MAX;
    for (size_t i = 0; i < pages; i++) k += vec[i] & 1;
    return k;
}

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 512) p[i] = (unsigned char)(seed + i / 512);
}

static bool pattern_holds(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 512)
        if (p[i] != (unsigned char)(seed + i / 512)) return false;
    return true;
}

/* 64 KiB blocks, kept in fill[*nfill...], fill the holes below the block
 * [p, p + n) until one lands right after it, so that it cannot grow in
 * place; false if none does. */
#define FILL_MAX 1024
static bool wall_after(const void *p, size_t n, void **fill, size_t *nfill)
{
    while (*nfill < FILL_MAX && (fill[*nfill] = gm_malloc(64 << 10)) != NULL)
        if ((uintptr_t)fill[(*nfill)++] == (uintptr_t)p + n) return true;
    return false;
}

/* realloc of a large block that cannot grow in place, into fresh pages,
 * moves its pages (gm_sys_move): the contents arrive, the old range holds
 * no resident page and is free as released memory; into reused pages it
 * copies; a refused move copies (the target, which the kernel may have
 * dropped, is mapped again); a target that cannot be committed again makes
 * realloc fail with the block intact, and the heap keeps the range as
 * decommitted. */
/* True (after saying so) if pages cannot be moved here: a kernel before
 * 5.7, or qemu-user, which does not keep a moved page's source mapped. */
static bool moves_skipped(const char *test)
{
    if (gm_sys_moves_work()) return false;
    printf("%s: skipped, pages cannot be moved here (MREMAP_DONTUNMAP refused, or its source not kept)\n", test);
    return true;
}

static int child_realloc_move(void)
{
    const size_t n = 2 * MiB;
    if (moves_skipped("realloc_move")) return test_failures;
    unsigned char *p = gm_malloc(n);
    void *wall = gm_malloc(64 << 10); /* no room to grow in place */
    CHECK(p && wall && (uintptr_t)wall == (uintptr_t)p + n);
    if (!p || !wall) return test_failures;
    memset(p, 1, n);
    pattern(p, n, 1);
    uint64_t calls = gm_os.calls[GM_SYS_MOVE], fails = gm_os.failures[GM_SYS_MOVE];
    unsigned char *q = gm_realloc(p, 3 * n);
    CHECK(q && q != p);
    if (!q) return test_failures;
    CHECK(pattern_holds(q, n, 1));
    CHECK_EQ(gm_os.calls[GM_SYS_MOVE], calls + 1);
    CHECK_EQ(gm_os.failures[GM_SYS_MOVE], fails);
    if (!test_skip_emulated(TEST_GAP_VM, "pages resident after a move (mincore)"))
        CHECK_EQ(resident_pages(p, n), 0);                               /* moved, not copied */
    CHECK_EQ(gm_check(), 0);
    unsigned char *again = gm_malloc(n); /* the old range, free as released pages */
    CHECK(again == p);
    if (again) {
        CHECK_EQ(gm_span_lookup((uintptr_t)again)->needzero, 0);
        CHECK(again[0] == 0 && again[n - 1] == 0);
        gm_free(again);
    }
    /* Into reused pages it copies. */
    unsigned char *dirty = gm_malloc(8 * n), *b = gm_malloc(n);
    void *bwall = gm_malloc(64 << 10);
    CHECK(dirty && b && bwall);
    if (!dirty || !b) return test_failures;
    memset(dirty, 5, 8 * n);
    gm_free(dirty);
    pattern(b, n, 2);
    uint64_t calls1 = gm_os.calls[GM_SYS_MOVE];
    unsigned char *b2 = gm_realloc(b, 2 * n);
    CHECK(b2 && pattern_holds(b2, n, 2));
    CHECK_EQ(gm_os.calls[GM_SYS_MOVE], calls1);
    gm_free(b2);
    gm_free(bwall);

    /* A refused move copies; the target the kernel dropped is mapped again. */
    static void *fill[FILL_MAX];
    size_t nfill = 0;
    CHECK(wall_after(q, 3 * n, fill, &nfill));
    gm_heap_scavenge(SIZE_MAX, gm_now_ms()); /* released pages: a move's target */
    gm_fault_set(GM_SYS_MOVE, 0, 1);
    unsigned char *r = gm_realloc(q, 6 * n);
    gm_fault_clear();
    CHECK(r != NULL);
    if (!r) return test_failures;
    CHECK(pattern_holds(r, n, 1));
    CHECK_EQ(gm_os.failures[GM_SYS_MOVE], fails + 1);
    CHECK_EQ(gm_check(), 0);

    /* The target cannot be committed again: realloc fails, r intact. The
     * target comes from committed free pages, so only the move's own
     * recommit meets the refusal. */
    CHECK(wall_after(r, 6 * n, fill, &nfill));
    void *room = gm_malloc(16 * n);
    CHECK(room != NULL);
    gm_free(room);
    gm_heap_scavenge(SIZE_MAX, gm_now_ms()); /* released pages: a move's target */
    uint64_t dec = gm_stat_load(&gm_heap.heap_decommitted), sys = gm_stat_load(&gm_heap.heap_sys);
    gm_fault_set(GM_SYS_MOVE, 0, 1);
    gm_fault_set(GM_SYS_MAP, 0, 1000);
    errno = 0;
    unsigned char *lost = gm_realloc(r, 8 * n);
    int err = errno;
    gm_fault_clear();
    CHECK(lost == NULL);
    CHECK_EQ(err, ENOMEM);
    CHECK(pattern_holds(r, n, 1));
    CHECK_EQ(gm_stat_load(&gm_heap.heap_decommitted), dec + 6 * n);
    fprintf(stderr, "realloc_move: heap_sys %llu -> %llu MiB, decommitted %llu -> %llu MiB\n", (unsigned long long)sys >> 20, (unsigned long long)gm_stat_load(&gm_heap.heap_sys) >> 20, (unsigned long long)dec >> 20, (unsigned long long)gm_stat_load(&gm_heap.heap_decommitted) >> 20);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_sys), sys - 6 * n);
    CHECK_EQ(gm_check(), 0);
    /* Later calls work. */
    unsigned char *ok = gm_realloc(r, 8 * n);
    CHECK(ok != NULL);
    if (ok) {
        CHECK(pattern_holds(ok, n, 1));
        gm_free(ok);
    }
    gm_free(wall);
    while (nfill) gm_free(fill[--nfill]);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Each page move may split the heap's mapping; past GM_MOVES_SPLIT_MAX
 * moves whose splits may remain, a moved block that is freed is mapped
 * afresh, so that a program that keeps growing blocks by realloc does not
 * keep adding lines to /proc/self/maps. */
static int child_move_splits(void)
{
    enum { N = 60 };
    const size_t n = MiB;
    static void *fill[N], *moved[N];
    if (moves_skipped("move_splits")) return test_failures;
    size_t moves = 0;
    long maps0 = test_maps_count();
    for (int i = 0; i < N; i++) {
        unsigned char *a = gm_malloc(n);
        fill[i] = gm_malloc(64 << 10); /* most often right after a */
        CHECK(a != NULL);
        if (!a) return test_failures;
        pattern(a, n, i);
        gm_heap_scavenge(SIZE_MAX, gm_now_ms()); /* released pages: a move's target */
        uint64_t calls = gm_os.calls[GM_SYS_MOVE];
        moved[i] = gm_realloc(a, 2 * n);
        CHECK(moved[i] && pattern_holds(moved[i], n, i));
        moves += gm_os.calls[GM_SYS_MOVE] - calls;
    }
    long maps1 = test_maps_count();
    for (int i = 0; i < N; i++) gm_free(moved[i]);
    long maps2 = test_maps_count();
    printf("move_splits: %zu moves, %ld more mappings with the blocks live, %ld once freed\n", moves, maps1 - maps0,
           maps2 - maps0);
    CHECK_EQ(moves, N);
    /* Each remapped block joins at least one of its two splits (both, where
     * its neighbours were not moved blocks themselves); the rest of the
     * lines are the moves under the bound and the heap's growth. */
    CHECK(maps1 - maps2 >= N - GM_MOVES_SPLIT_MAX);
    CHECK(maps2 - maps0 <= 2 * GM_MOVES_SPLIT_MAX + 32);
    for (int i = 0; i < N; i++) gm_free(fill[i]);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* A thread's page cache comes after its first GM_PAGECACHE_AFTER spans
 * (threads that make a few spans each must not each hold a 64-page window
 * of committed memory), and a stock given back starts over. */
static int child_pagecache_after(void)
{
    static struct gm_heap_local hl;
    gm_heap_local_register(&hl);
    for (int i = 0; i < GM_PAGECACHE_AFTER; i++) {
        struct gm_span *s = gm_heap_alloc_span(&hl, 1, 0, false);
        CHECK(s != NULL);
        CHECK(gm_pagecache_empty(&hl.pc));
    }
    uint64_t inuse = gm_stat_load(&gm_heap.heap_inuse);
    CHECK(gm_heap_alloc_span(&hl, 1, 0, false) != NULL);
    CHECK(!gm_pagecache_empty(&hl.pc));
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse + GM_PAGE_SIZE); /* the window is not in use */
    gm_heap_local_flush(&hl);
    CHECK(gm_pagecache_empty(&hl.pc));
    CHECK(gm_heap_alloc_span(&hl, 1, 0, false) != NULL);
    CHECK(gm_pagecache_empty(&hl.pc)); /* a new owner starts without it */
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

/* Reservations smaller than an arena that end inside a chunk (the last
 * resort under RLIMIT_AS, forced here by refusing the larger sizes): growth
 * extends the heap through them, uses what curArena still holds when no
 * more address space can be had, and a switch away from one leaves the
 * rest of its last chunk ungrown; the slow check agrees at every step. */
static int child_pieces(void)
{
    if (TEST_SANITIZER) return 0; /* its shadow holds the hints: nothing is contiguous there */
    struct gm_span *a = span(1);
    CHECK(a != NULL);
    if (!a) return test_failures;
    uintptr_t arena_end = gm_heap.arena_end;
    CHECK_EQ(arena_end - gm_align_down(a->base, GM_ARENA_BYTES), GM_ARENA_BYTES);
    /* 80 MiB + 8 KiB: 128 MiB and 84 MiB are refused (at the hint and
     * anywhere), the exact need is reserved, at the hint. */
    uint64_t r0 = gm_stat_load(&gm_os.reserved);
    size_t need = 80 * MiB + GM_PAGE_SIZE;
    gm_fault_set(GM_SYS_RESERVE, 0, 4);
    struct gm_span *x = span(need / GM_PAGE_SIZE);
    gm_fault_clear();
    CHECK(x != NULL);
    if (!x) return test_failures;
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - r0, need);
    CHECK_EQ(gm_heap.arena_end, arena_end + need); /* contiguous: one curArena */
    CHECK(gm_span_lookup(x->base + need - 1) == x);
    touch(x, 0x44);
    CHECK_EQ(gm_check(), 0);

    /* No address space at all now: the rest of curArena (ending 8 KiB into
     * a chunk) still holds a span of its size, grown into it whole. The
     * free pages below it go first. */
    CHECK_EQ(gm_heap.arena_end % GM_CHUNK_BYTES, GM_PAGE_SIZE);
    struct gm_span *w = span((gm_heap.arena_base - (x->base + need)) / GM_PAGE_SIZE);
    CHECK(w != NULL && w->base == x->base + need);
    size_t rest = gm_heap.arena_end - gm_heap.arena_base;
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    struct gm_span *y = span(rest / GM_PAGE_SIZE);
    struct gm_span *none = span(1); /* nothing left anywhere */
    gm_fault_clear();
    CHECK(y != NULL && w && y->base == w->base + ((size_t)w->npages << GM_PAGE_SHIFT));
    CHECK(none == NULL);
    CHECK_EQ(gm_heap.arena_base, gm_heap.arena_end);
    if (y) touch(y, 0x55);
    CHECK_EQ(gm_check(), 0);
    CHECK_EQ(gm_heap_ungrown_pages(), GM_CHUNK_PAGES - 1); /* the rest of the last chunk */

    /* The hint after it is taken: the next reservation is elsewhere, and
     * the 511 pages past the old end stay ungrown for good. */
    void *hint = (void *)gm_arena_next_hint();
    void *blocker = mmap(hint, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(blocker == hint);
    struct gm_span *z = span(GM_CHUNK_PAGES);
    CHECK(z != NULL);
    if (z) touch(z, 0x66);
    CHECK(z && (z->base >= (uintptr_t)hint + GM_ARENA_BYTES || z->base + GM_CHUNK_BYTES <= (uintptr_t)hint));
    CHECK_EQ(gm_heap_ungrown_pages(), GM_CHUNK_PAGES - 1);
    CHECK_EQ(gm_check(), 0);
    uintptr_t from = x->base; /* to arena_end + need: the first reservations */
    gm_heap_free_span(x);
    if (w) gm_heap_free_span(w);
    if (y) gm_heap_free_span(y);
    CHECK_EQ(gm_check(), 0);
    /* All of it again, as one span where x, w and y were. */
    struct gm_span *again = span((arena_end + need - from) / GM_PAGE_SIZE);
    CHECK(again != NULL && again->base == from);
    if (again) touch(again, 0x77);
    CHECK_EQ(gm_check(), 0);
    munmap(blocker, 4096);
    return test_failures;
}

/* Under RLIMIT_AS = VmSize + 96 MiB from the start: the heap and its
 * metadata reserve in pieces sized to the limit, so 80 MiB of spans fit;
 * the heap stays one range at the hint; past the limit growth fails
 * cleanly, and after frees it works again. */
static int child_rlimit_as(void)
{
    if (TEST_SANITIZER) return 0; /* its shadow is most of VmSize, and its own mappings need the room */
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)test_status_kb("VmSize") * 1024 + 96 * MiB;
    CHECK_EQ(setrlimit(RLIMIT_AS, &rl), 0);
    uint64_t r0 = gm_stat_load(&gm_os.reserved);
    struct gm_span *s[256];
    int n = 0;
    s[n] = span(1);
    CHECK(s[n] != NULL);
    if (!s[n++]) return test_failures;
    /* The first reservations: the root summaries, a region of the page
     * allocator's metadata, a 64th of the limit of persistent metadata, the
     * flat table for the limit's arenas and a 16th of the limit of heap. */
    uint64_t first = gm_stat_load(&gm_os.reserved) - r0;
    fprintf(stderr, "rlimit_as: limit %llu MiB, reserved %llu KiB after the first page\n",
            (unsigned long long)rl.rlim_cur >> 20, (unsigned long long)first >> 10);
    CHECK(first <= rl.rlim_cur / 16 + rl.rlim_cur / 64 + 3 * MiB);
    if (s[0]->base - GM_FLAT_BASE < GM_ARENA_BYTES) { /* at the first hint (not under a sanitizer) */
        CHECK_EQ(gm_flat_arenas, rl.rlim_cur / GM_ARENA_BYTES + 1); /* the table sized to the limit */
        CHECK_EQ(gm_flat_bytes, gm_heap.arena_end - GM_FLAT_BASE);
    }
    uintptr_t lo = s[0]->base, hi = s[0]->base;
    for (; n < 256; n++) { /* 512 KiB at a time until the limit */
        errno = 0;
        s[n] = span(64);
        if (!s[n]) break;
        touch(s[n], n);
        if (s[n]->base < lo) lo = s[n]->base;
        if (s[n]->base + 64 * GM_PAGE_SIZE > hi) hi = s[n]->base + 64 * GM_PAGE_SIZE;
    }
    CHECK(n < 256);
    CHECK_EQ(errno, ENOMEM);
    fprintf(stderr, "rlimit_as: %d spans of 512 KiB, heap_sys %llu MiB, reserved %llu MiB\n", n,
            (unsigned long long)gm_stat_load(&gm_heap.heap_sys) >> 20,
            (unsigned long long)gm_stat_load(&gm_os.reserved) >> 20);
    CHECK(n >= 160); /* 80 MiB */
    CHECK(gm_stat_load(&gm_os.reserved) <= rl.rlim_cur);
    CHECK(hi - lo < 100 * MiB); /* one range */
    CHECK_EQ(gm_check(), 0);
    for (int i = 1; i < n; i++) {
        CHECK(*(unsigned char *)s[i]->base == (unsigned char)i);
        gm_heap_free_span(s[i]);
    }
    struct gm_span *big = span(64 * MiB / GM_PAGE_SIZE);
    CHECK(big != NULL);
    if (big) touch(big, 9);
    CHECK_EQ(gm_check(), 0);
    return test_failures;
}

int main(void)
{
    test_in_child("first_page", child_first_page);
    if (!test_skip_emulated(TEST_GAP_RLIMIT, "rlimit (RLIMIT_DATA)")) test_in_child("rlimit", child_rlimit);
    test_in_child("arenas", child_arenas);
    test_in_child("collision", child_collision);
    test_in_child("faults", child_faults);
    test_in_child("local", child_local);
    test_in_child("inplace", child_inplace);
    test_in_child("goal_lifted", child_goal_lifted);
    test_in_child("decommit_full", child_decommit_full);
    test_in_child("decommit_runs", child_decommit_runs);
    test_in_child("pagecache_after", child_pagecache_after);
    test_in_child("pieces", child_pieces);
    test_in_child("realloc_move", child_realloc_move);
    test_in_child("move_splits", child_move_splits);
    if (!test_skip_emulated(TEST_GAP_RLIMIT, "rlimit_as (RLIMIT_AS)")) test_in_child("rlimit_as", child_rlimit_as);
    return test_done("unit_heap");
}
