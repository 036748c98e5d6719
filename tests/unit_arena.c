/* unit_arena.c — layer 2: arena reservation at the hints, the arena index,
 * and the linear, persistent and fixed-size metadata allocators. */
#include "internal.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define ARENA GM_ARENA_BYTES

extern size_t gm_persistent_first_bytes; /* arena.c, GM_TESTING only */

/* Bytes the tests themselves commit through the OS layer (not metadata). */
static gm_stat test_own;

static long long vm_data(void) { return test_vm_data(); }

/* The permissions ("rw-p", "---p") of the first mapping that overlaps
 * [addr, addr + len), or "" if none, from /proc/self/maps. */
static const char *maps_perms_range(uintptr_t addr, uintptr_t span)
{
    static char perms[5];
    char p[5];
    uintptr_t lo, hi;
    perms[0] = 0;
    for (test_maps_open(); test_maps_next(&lo, &hi, p);) {
        if (addr < hi && lo < addr + span) {
            memcpy(perms, p, sizeof perms);
            break;
        }
    }
    return perms;
}
static const char *maps_perms(uintptr_t addr) { return maps_perms_range(addr, 1); }

static uint64_t meta_sum(void)
{
    return gm_stat_load(&gm_meta.arena_index) + gm_stat_load(&gm_meta.arenas) + gm_stat_load(&gm_meta.pagealloc) +
           gm_stat_load(&gm_meta.spans) + gm_stat_load(&gm_meta.tcaches) + gm_stat_load(&gm_meta.other);
}

/* Everything committed is metadata in exactly one gm_meta field, or the
 * tests' own. */
static bool accounting_holds(void)
{
    return meta_sum() + gm_stat_load(&test_own) == gm_stat_load(&gm_os.committed);
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* ------------------------------------------------------------------------ */

static void test_linear(void)
{
    uint8_t *r = gm_sys_reserve(NULL, 16 * MiB);
    CHECK(r != NULL);
    if (!r) return;
    uintptr_t base = (uintptr_t)r;

    /* map_memory = false: the bump pointer moves, nothing is committed. */
    struct gm_linear l;
    gm_linear_init(&l, base, 8 * MiB, false);
    long long d0 = vm_data();
    uint64_t c0 = gm_stat_load(&gm_os.committed);
    void *a = gm_linear_alloc(&l, 3 * MiB + 1, 8, &test_own);
    CHECK(a == r);
    void *b = gm_linear_alloc(&l, 100, 4096, &test_own);
    CHECK((uintptr_t)b == base + 3 * MiB + 4096);
    CHECK_EQ(l.mapped, base + 3 * MiB + 8192);
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK(vm_data() <= d0 + (long long)(64 * KiB));
    CHECK(strcmp(maps_perms(base), "---p") == 0);
    /* Exhaustion: NULL and no change. */
    uintptr_t next = l.next;
    CHECK(gm_linear_alloc(&l, 5 * MiB, 8, &test_own) == NULL);
    CHECK_EQ(l.next, next);
    CHECK(gm_linear_alloc(&l, ~(size_t)0 - 10, 8, &test_own) == NULL);
    CHECK(gm_linear_alloc(&l, 8, (uintptr_t)1 << 62, &test_own) == NULL);
    CHECK_EQ(l.next, next);

    /* map_memory = true: commits exactly the page-rounded prefix used. */
    uintptr_t base2 = base + 8 * MiB;
    gm_linear_init(&l, base2, 8 * MiB, true);
    d0 = vm_data();
    uint8_t *p = gm_linear_alloc(&l, 10000, 16, &test_own);
    CHECK(p == (uint8_t *)base2);
    CHECK_EQ(l.mapped, base2 + 3 * 4096);
    CHECK_EQ(gm_stat_load(&test_own), 3 * 4096);
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0 + 3 * 4096);
    CHECK(vm_data() >= d0 + 3 * 4096 && vm_data() <= d0 + 3 * 4096 + (long long)(64 * KiB));
    CHECK(all_zero(p, 3 * 4096));
    memset(p, 0x5a, 3 * 4096); /* writable: would fault if not mapped */
    CHECK(strcmp(maps_perms(base2 + 3 * 4096), "---p") == 0);
    /* Within the mapped prefix: no new commit. */
    CHECK(gm_linear_alloc(&l, 100, 8, &test_own) == p + 10000);
    CHECK_EQ(gm_stat_load(&test_own), 3 * 4096);

    /* A failed map changes nothing, and the next try works. */
    next = l.next;
    uintptr_t mapped = l.mapped;
    gm_fault_set(GM_SYS_MAP, 0, 1);
    CHECK(gm_linear_alloc(&l, 20000, 8, &test_own) == NULL);
    CHECK_EQ(l.next, next);
    CHECK_EQ(l.mapped, mapped);
    CHECK_EQ(gm_stat_load(&test_own), 3 * 4096);
    gm_fault_clear();
    CHECK(gm_linear_alloc(&l, 20000, 8, &test_own) != NULL);
    CHECK_EQ(l.mapped, gm_align_up(next + 20000, 4096));

    /* A commit step maps whole steps ahead. */
    l.map_step = 64 * KiB;
    uint64_t own0 = gm_stat_load(&test_own);
    mapped = l.mapped;
    CHECK(gm_linear_alloc(&l, 4096 * 4, 4096, &test_own) == (void *)mapped);
    CHECK_EQ(l.mapped, mapped + 64 * KiB); /* a whole step */
    CHECK_EQ(gm_stat_load(&test_own), own0 + (l.mapped - mapped));
    CHECK(accounting_holds());

    CHECK_EQ(gm_sys_free(r, 16 * MiB, l.mapped - base2, &test_own), 0);
    CHECK_EQ(gm_stat_load(&test_own), 0);
}

static void test_persistent_basic(void)
{
    CHECK(accounting_holds());
    long long d0 = vm_data();
    uint64_t c0 = gm_stat_load(&gm_os.committed);
    uint64_t spans0 = gm_stat_load(&gm_meta.spans);

    /* Zeroed, aligned as asked, charged exactly to the named stat. */
    static const size_t aligns[] = {1, 8, 16, 64, 4096, 8192, 65536};
    enum { ROUNDS = 20, NA = sizeof aligns / sizeof aligns[0] };
    static uint8_t *ptr[ROUNDS][NA];
    bool ok_align = true, ok_zero = true, ok_intact = true;
    size_t total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < NA; i++) {
            size_t size = 24 + 1000 * (size_t)round + i;
            uint8_t *p = ptr[round][i] = gm_persistent_alloc(size, aligns[i], &gm_meta.spans);
            CHECK(p != NULL);
            if (!p) return;
            ok_align &= ((uintptr_t)p & (aligns[i] - 1)) == 0;
            ok_zero &= all_zero(p, size);
            memset(p, (int)(round * NA + i + 1), size);
            total += size;
        }
    }
    /* Non-overlapping: no block was handed out again or written over. */
    for (int round = 0; round < ROUNDS; round++)
        for (size_t i = 0; i < NA; i++)
            for (size_t k = 0; k < 24 + 1000 * (size_t)round + i; k++)
                ok_intact &= ptr[round][i][k] == (uint8_t)(round * NA + i + 1);
    CHECK(ok_align);
    CHECK(ok_zero);
    CHECK(ok_intact);
    CHECK_EQ(gm_stat_load(&gm_meta.spans), spans0 + total);
    CHECK(accounting_holds());
    /* Commit grows in 64 KiB steps, and VmData with it. */
    uint64_t grew = gm_stat_load(&gm_os.committed) - c0;
    CHECK(grew >= total);
    CHECK_EQ(grew % (64 * KiB), 0);
    CHECK(vm_data() >= d0 + (long long)grew - (long long)(64 * KiB));
    CHECK(vm_data() <= d0 + (long long)grew + (long long)(128 * KiB));

    /* NULL stat (and size 0) stay in gm_meta.other; bad alignment fails. */
    uint64_t not_other = meta_sum() - gm_stat_load(&gm_meta.other);
    CHECK(gm_persistent_alloc(0, 8, NULL) != NULL);
    CHECK(gm_persistent_alloc(100, 8, NULL) != NULL);
    CHECK_EQ(meta_sum() - gm_stat_load(&gm_meta.other), not_other);
    errno = 0;
    CHECK(gm_persistent_alloc(16, 24, &gm_meta.spans) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(accounting_holds());
}

#define NTHREADS 4
#define PER_THREAD 3000
struct blk {
    uint8_t *p;
    size_t size;
    uint8_t tag;
};
static struct blk blocks[NTHREADS][PER_THREAD];
static gm_stat thread_stat;
static _Atomic int thread_bad;

static void *persistent_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint32_t seed = 12345u + (uint32_t)t;
    for (int i = 0; i < PER_THREAD; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 1 + (seed >> 16) % 700;
        size_t align = (size_t)8 << ((seed >> 8) % 4);
        uint8_t *p = gm_persistent_alloc(size, align, &thread_stat);
        if (!p || ((uintptr_t)p & (align - 1)) || !all_zero(p, size)) {
            thread_bad++;
            continue;
        }
        uint8_t tag = (uint8_t)(t * 64 + i % 61 + 1);
        memset(p, tag, size);
        blocks[t][i] = (struct blk){p, size, tag};
    }
    return NULL;
}

static int blk_cmp(const void *a, const void *b)
{
    const struct blk *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void test_persistent_threads(void)
{
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) CHECK_EQ(pthread_create(&th[t], NULL, persistent_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    CHECK_EQ(thread_bad, 0);
    size_t total = 0;
    bool intact = true;
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            total += blocks[t][i].size;
            for (size_t k = 0; k < blocks[t][i].size; k++) intact &= blocks[t][i].p[k] == blocks[t][i].tag;
        }
    CHECK(intact); /* no block was written by another */
    CHECK_EQ(gm_stat_load(&thread_stat), total);
    qsort(blocks, NTHREADS * PER_THREAD, sizeof(struct blk), blk_cmp);
    bool disjoint = true;
    struct blk *all = &blocks[0][0];
    for (int i = 1; i < NTHREADS * PER_THREAD; i++) disjoint &= all[i - 1].p + all[i - 1].size <= all[i].p;
    CHECK(disjoint);
    /* thread_stat is not a gm_meta field: move it to one for the balance. */
    gm_stat_add(&gm_meta.other, (int64_t)total);
    gm_stat_add(&thread_stat, -(int64_t)total);
    CHECK(accounting_holds());
}

/* Region k of the persistent allocator: its start, and how many 300 KiB
 * blocks went into it. */
struct pregion {
    uint8_t *base;
    size_t n;
};

/* test_persistent_regions under RLIMIT_AS, in a child of its own. */
static int child_persistent_rlimit(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)test_status_kb("VmSize") * 1024 + 8 * MiB;
    CHECK_EQ(setrlimit(RLIMIT_AS, &rl), 0);
    size_t cap = gm_align_down(rl.rlim_cur / 16, 64 * KiB);
    uint64_t r1 = gm_stat_load(&gm_os.reserved);
    CHECK(gm_persistent_alloc(64 * KiB, 64, &gm_meta.spans) != NULL);
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - r1, cap); /* not the 18 MiB aimed at */
    uint64_t c1 = gm_stat_load(&gm_os.committed), m1 = meta_sum();
    r1 = gm_stat_load(&gm_os.reserved);
    errno = 0;
    CHECK(gm_persistent_alloc(16 * MiB, 64, &gm_meta.spans) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(gm_stat_load(&gm_os.committed), c1);
    CHECK_EQ(meta_sum(), m1);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r1);
    CHECK(gm_persistent_alloc(256 * KiB, 64, &gm_meta.spans) != NULL); /* what fits still works */
    CHECK(accounting_holds());
    return test_failures;
}

/* Runs first, while no metadata reservation exists, with a 1 MiB first
 * reservation so that the region switches are cheap to reach. */
static void test_persistent_regions(void)
{
    gm_persistent_first_bytes = MiB;
    uint64_t c0 = gm_stat_load(&gm_os.committed), m0 = meta_sum(), r0 = gm_stat_load(&gm_os.reserved);
    uint64_t f0 = gm_os.failures[GM_SYS_RESERVE];
    /* No reservation yet: a refused one fails cleanly, after trying
     * halves of 1 MiB down to the 4 KiB the request needs (9 sizes). */
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    errno = 0;
    CHECK(gm_persistent_alloc(100, 64, &gm_meta.spans) == NULL);
    CHECK_EQ(errno, ENOMEM);
    gm_fault_clear();
    CHECK_EQ(gm_os.failures[GM_SYS_RESERVE] - f0, 9);
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);

    /* 300 KiB at a time: three fit the first reservation (1 MiB, committed
     * to 960 KiB), six the second (2 MiB: 1856 KiB), the rest the third
     * (4 MiB); each switch gives the old one's uncommitted tail back. */
    struct pregion reg[4];
    size_t nreg = 0;
    uint8_t *last = NULL;
    bool ok = true;
    for (int i = 0; i < 12; i++) {
        uint8_t *q = gm_persistent_alloc(300 * KiB, 4096, &gm_meta.spans);
        ok &= q != NULL && ((uintptr_t)q & 4095) == 0 && all_zero(q, 300 * KiB);
        if (!q) break;
        memset(q, 1, 300 * KiB);
        if ((!last || q != last + 300 * KiB) && nreg < 4) reg[nreg++] = (struct pregion){q, 0};
        reg[nreg - 1].n++;
        last = q;
    }
    CHECK(ok);
    CHECK_EQ(nreg, 3);
    CHECK(nreg == 3 && reg[0].n == 3 && reg[1].n == 6 && reg[2].n == 3);
    bool tails_freed = true;
    for (size_t k = 0; k + 1 < nreg; k++) {
        size_t committed = gm_align_up(reg[k].n * 300 * KiB, 64 * KiB);
        tails_freed &= strcmp(maps_perms((uintptr_t)reg[k].base + committed - 1), "rw-p") == 0;
        /* (a sanitizer's runtime may map into the hole at once) */
        tails_freed &= TEST_SANITIZER || strcmp(maps_perms((uintptr_t)reg[k].base + committed), "") == 0;
    }
    CHECK(tails_freed);
    CHECK_EQ(gm_stat_load(&gm_meta.spans), 12 * 300 * KiB);
    CHECK_EQ(gm_stat_load(&gm_os.committed) - c0, (960 + 1856 + 960) * KiB);
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - r0, (960 + 1856) * KiB + 4 * MiB);
    CHECK(accounting_holds());

    /* 3200 KiB do not fit what is left: the next reservation aims at
     * 8 MiB. Refused at every size (8 MiB, 4 MiB, then the 3200 KiB it
     * needs): NULL, nothing counted. */
    c0 = gm_stat_load(&gm_os.committed);
    m0 = meta_sum();
    r0 = gm_stat_load(&gm_os.reserved);
    f0 = gm_os.failures[GM_SYS_RESERVE];
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    CHECK(gm_persistent_alloc(3200 * KiB, 64, &gm_meta.spans) == NULL);
    gm_fault_clear();
    CHECK_EQ(gm_os.failures[GM_SYS_RESERVE] - f0, 3);
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);

    /* ENOMEM at 8 MiB only: 4 MiB instead (the old one's 3136 KiB tail
     * given back). */
    gm_fault_set(GM_SYS_RESERVE, 0, 1);
    uint8_t *p = gm_persistent_alloc(3200 * KiB, 64, &gm_meta.spans);
    gm_fault_clear();
    CHECK(p != NULL && all_zero(p, 3200 * KiB));
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - r0, 4 * MiB - (4 * MiB - 960 * KiB));
    CHECK_EQ(gm_stat_load(&gm_os.committed) - c0, 3200 * KiB);

    /* Bigger than the 8 MiB aimed at: a reservation of its own size. */
    r0 = gm_stat_load(&gm_os.reserved);
    uint8_t *big = gm_persistent_alloc(9 * MiB + 5, 64, &gm_meta.spans);
    CHECK(big != NULL && all_zero(big, 9 * MiB + 5));
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - r0, 9 * MiB + 4 * KiB - (4 * MiB - 3200 * KiB));
    CHECK(accounting_holds());

    /* Under RLIMIT_AS (in a child): the reservation aims at no more than a
     * sixteenth of the limit, and a request the limit cannot hold fails
     * with nothing counted. (Not under a sanitizer: its shadow is most of
     * VmSize, and its own mappings need the room.) */
    if (TEST_SANITIZER || test_skip_emulated(TEST_GAP_RLIMIT, "persistent reservations under RLIMIT_AS")) return;
    test_in_child("persistent_rlimit", child_persistent_rlimit);
}

static void test_persistent_faults(void)
{
    /* Needs a fresh commit step (more than the 64 KiB of slack there can
     * be): a failed map returns NULL with nothing counted. */
    uint64_t c0 = gm_stat_load(&gm_os.committed), m0 = meta_sum(), spans0 = gm_stat_load(&gm_meta.spans);
    gm_fault_set(GM_SYS_MAP, 0, 1);
    errno = 0;
    CHECK(gm_persistent_alloc(100 * KiB, 64, &gm_meta.spans) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK_EQ(gm_stat_load(&gm_meta.spans), spans0);
    gm_fault_clear();
    uint8_t *p = gm_persistent_alloc(100 * KiB, 64, &gm_meta.spans);
    CHECK(p != NULL && all_zero(p, 100 * KiB));
    CHECK_EQ(gm_stat_load(&gm_meta.spans), spans0 + 100 * KiB);
    CHECK(accounting_holds());

}

static void test_fixalloc(void)
{
    struct gm_fixalloc f;
    gm_stat fstat = 0;
    gm_fixalloc_init(&f, 40, &fstat);
    uint8_t *a = gm_fixalloc_alloc(&f), *b = gm_fixalloc_alloc(&f), *c = gm_fixalloc_alloc(&f);
    CHECK(a && b && c);
    if (!a || !b || !c) return;
    CHECK(b == a + 40 && c == b + 40);
    CHECK_EQ(fstat, 16 * KiB); /* one chunk, charged to the named stat */
    CHECK_EQ(f.inuse, 120);
    memset(a, 0x11, 40);
    memset(b, 0x22, 40);
    memset(c, 0x33, 40);
    gm_fixalloc_free(&f, b);
    gm_fixalloc_free(&f, c);
    CHECK_EQ(f.inuse, 40);
    /* LIFO, and zeroed (including the list link). */
    uint8_t *x = gm_fixalloc_alloc(&f), *y = gm_fixalloc_alloc(&f);
    CHECK(x == c);
    CHECK(y == b);
    CHECK(all_zero(x, 40) && all_zero(y, 40));
    CHECK(a[0] == 0x11 && a[39] == 0x11); /* neighbours untouched */
    CHECK_EQ(f.inuse, 120);
    /* 16384 / 40 = 409 records per chunk; the 410th starts a new chunk and
     * the 24-byte tail is wasted. */
    uint8_t *prev = c;
    for (int i = 3; i < 409; i++) prev = gm_fixalloc_alloc(&f);
    CHECK(prev == a + 408 * 40);
    CHECK_EQ(fstat, 16 * KiB);
    uint8_t *n = gm_fixalloc_alloc(&f);
    CHECK(n != NULL && n != prev + 40);
    CHECK(n != NULL && all_zero(n, 40));
    CHECK_EQ(fstat, 32 * KiB);
    CHECK_EQ(f.inuse, 410 * 40);
    /* Failure leaves the allocator as it was. Records of 100 KiB need a
     * chunk bigger than any commit slack, so the fault is reached. */
    gm_fixalloc_init(&f, 100 * KiB, &fstat);
    uint64_t fstat0 = gm_stat_load(&fstat);
    gm_fault_set(GM_SYS_MAP, 0, 1000);
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    CHECK(gm_fixalloc_alloc(&f) == NULL);
    gm_fault_clear();
    CHECK_EQ(f.inuse, 0);
    CHECK_EQ(f.nchunk, 0);
    CHECK_EQ(gm_stat_load(&fstat), fstat0);
    uint8_t *big = gm_fixalloc_alloc(&f);
    CHECK(big != NULL && all_zero(big, 100 * KiB));
    CHECK_EQ(gm_stat_load(&fstat), fstat0 + 100 * KiB);
    CHECK_EQ(f.inuse, 100 * KiB);
    /* fstat is not a gm_meta field: move it to one for the balance. */
    gm_stat_add(&gm_meta.other, (int64_t)gm_stat_load(&fstat));
    gm_stat_add(&fstat, -(int64_t)gm_stat_load(&fstat));
    CHECK(accounting_holds());
}

static void check_region_indexed(uintptr_t v, size_t size)
{
    struct gm_arena *prev = NULL;
    bool ok = true;
    for (uintptr_t a = v; a < v + size; a += ARENA) {
        struct gm_arena *r = gm_arena_of(a);
        ok &= r != NULL && r != prev && ((uintptr_t)r & 63) == 0;
        ok &= gm_arena_of(a + ARENA / 2 + 12345) == r && gm_arena_of(a + ARENA - 1) == r;
        if (r) ok &= all_zero(r, sizeof *r);
        prev = r;
    }
    CHECK(ok);
    CHECK(gm_arena_of(v - 1) == NULL || gm_arena_of(v - 1) != gm_arena_of(v));
}

static void test_arena_alloc(void)
{
    uintptr_t hint = gm_arena_next_hint();
    CHECK_EQ(hint, (uintptr_t)0x00c000000000);
    CHECK(gm_arena_of(hint) == NULL);
    uint64_t arenas0 = gm_stat_load(&gm_meta.arenas), index0 = gm_stat_load(&gm_meta.arena_index);
    uint64_t reserved0 = gm_stat_load(&gm_os.reserved);
    long long d0 = vm_data();
    bool data_ok = !test_skip_emulated(TEST_GAP_VM, "VmData of arena reservations");

    size_t size = 0;
    uintptr_t v = (uintptr_t)gm_arena_alloc(1, &size);
    if (!TEST_SANITIZER) CHECK_EQ(v, hint); /* a sanitizer's shadow may hold the first hints */
    CHECK_EQ(size, ARENA);
    CHECK_EQ(v & (ARENA - 1), 0);
    /* Reserved, not mapped: VmData grew by metadata only. */
    if (data_ok) CHECK(vm_data() - d0 <= (long long)(200 * KiB));
    CHECK(strcmp(maps_perms(v), "---p") == 0);
    CHECK(strcmp(maps_perms(v + ARENA - 1), "---p") == 0);
    /* The arena, plus a metadata reservation if this was the first, plus
     * the flat span table if the arena is at the first hint. */
    uint64_t rgrew = gm_stat_load(&gm_os.reserved) - reserved0;
    uint64_t flat = v == GM_FLAT_BASE ? gm_flat_arenas * sizeof(struct gm_arena) : 0;
    CHECK(rgrew >= ARENA + flat && rgrew - (ARENA + flat) <= 32 * MiB); /* and maybe a metadata reservation */
    CHECK_EQ(gm_flat_bytes, v == GM_FLAT_BASE ? ARENA : 0);
    CHECK_EQ(gm_stat_load(&gm_meta.arenas), arenas0 + sizeof(struct gm_arena));
    CHECK_EQ(gm_stat_load(&gm_meta.arena_index), index0 + 4096);
    CHECK(accounting_holds());
    check_region_indexed(v, size);

    /* Outside the heap: NULL. */
    int on_stack = 0;
    void *from_libc = malloc(100);
    CHECK(gm_arena_of((uintptr_t)&on_stack) == NULL);
    CHECK(gm_arena_of((uintptr_t)from_libc) == NULL);
    CHECK(gm_arena_of((uintptr_t)&test_own) == NULL);
    free(from_libc);
    CHECK(gm_arena_of(0) == NULL);
    CHECK(gm_arena_of(GM_ADDR_LIMIT) == NULL);
    CHECK(gm_arena_of(~(uintptr_t)0) == NULL);
    CHECK(gm_arena_of(v - 1) == NULL);
    CHECK(gm_arena_of(v + size) == NULL);
    CHECK_EQ(gm_arena_next_hint(), v + size);

    /* The next reservation continues the first: 130 MiB -> 3 arenas, same
     * L2 page. */
    size_t size2 = 0;
    uintptr_t v2 = (uintptr_t)gm_arena_alloc(130 * MiB, &size2);
    CHECK_EQ(v2, v + size);
    CHECK_EQ(size2, 3 * ARENA);
    check_region_indexed(v2, size2);
    CHECK(gm_arena_of(v2) != gm_arena_of(v2 - 1));
    CHECK_EQ(gm_stat_load(&gm_meta.arenas), arenas0 + 4 * sizeof(struct gm_arena));
    CHECK_EQ(gm_stat_load(&gm_meta.arena_index), index0 + 4096);
    CHECK(strcmp(maps_perms(v2 + 2 * ARENA), "---p") == 0);
    if (data_ok) CHECK(vm_data() - d0 <= (long long)(400 * KiB));
    CHECK(gm_arena_of(v2 + size2) == NULL);
    CHECK(accounting_holds());
    CHECK_EQ(gm_flat_bytes, v == GM_FLAT_BASE ? 4 * ARENA : 0);
    CHECK(gm_span_lookup(v2 + size2) == NULL);

    /* An arena record is the heap's span map: writable, found again. */
    struct gm_arena *ra = gm_arena_of(v2 + ARENA + 5 * GM_PAGE_SIZE);
    atomic_store(&ra->spans[5], (struct gm_span *)0x1234);
    CHECK(gm_span_lookup(v2 + ARENA + 5 * GM_PAGE_SIZE + 77) == (struct gm_span *)0x1234);
    CHECK(gm_span_lookup(v2 + ARENA + 6 * GM_PAGE_SIZE) == NULL);
    atomic_store(&ra->spans[5], NULL);
}

static void test_hint_collision(void)
{
    /* Someone else maps a page where the next arena would go. */
    uintptr_t hint = gm_arena_next_hint();
    void *blocker = mmap((void *)hint, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(blocker == (void *)hint);
    uint64_t index0 = gm_stat_load(&gm_meta.arena_index);
    size_t size = 0;
    uintptr_t v = (uintptr_t)gm_arena_alloc(ARENA, &size);
    CHECK(v != 0 && v != hint);
    CHECK_EQ(v & (ARENA - 1), 0);
    if (!TEST_SANITIZER) CHECK_EQ(v, (uintptr_t)0x01c000000000); /* the next hint */
    CHECK_EQ(size, ARENA);
    check_region_indexed(v, size);
    CHECK(gm_arena_of(hint) == NULL); /* the blocker is not heap */
    CHECK_EQ(gm_stat_load(&gm_meta.arena_index), index0 + 4096); /* new L2 page */
    CHECK_EQ(gm_arena_next_hint(), v + size);
    CHECK(accounting_holds());

    /* Take every remaining hint: the reservation goes anywhere (aligned),
     * and its end becomes the hint the next one extends. */
    enum { NB = 130 };
    static void *blockers[NB];
    int nb = 0;
    blockers[nb++] = mmap((void *)(v + size), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    for (uintptr_t i = 2; i < 0x80 && nb < NB; i++) {
        void *want = (void *)(i << 40 | (uintptr_t)0x00c0 << 32);
        void *b = mmap(want, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (b == want) blockers[nb++] = b;
        else if (b != MAP_FAILED) munmap(b, 4096);
    }
    size_t s3 = 0;
    uintptr_t v3 = (uintptr_t)gm_arena_alloc(2 * ARENA, &s3);
    CHECK(v3 != 0);
    CHECK_EQ(v3 & (ARENA - 1), 0);
    CHECK_EQ(s3, 2 * ARENA);
    CHECK(v3 + s3 <= GM_ADDR_LIMIT);
    check_region_indexed(v3, s3);
    CHECK(strcmp(maps_perms(v3), "---p") == 0);
    CHECK_EQ(gm_arena_next_hint(), v3 + s3);
    /* The next one extends it, above or (where the kernel put the region
     * below other mappings) below. */
    size_t s4 = 0;
    uintptr_t v4 = (uintptr_t)gm_arena_alloc(ARENA, &s4);
    CHECK(v4 == v3 + s3 || v4 + s4 == v3);
    check_region_indexed(v4, s4);
    CHECK(accounting_holds());
    for (int i = 0; i < nb; i++)
        if (blockers[i] != MAP_FAILED) munmap(blockers[i], 4096);
    munmap(blocker, 4096);
}

static void test_arena_faults(void)
{
    uintptr_t hint = gm_arena_next_hint();
    uint64_t c0 = gm_stat_load(&gm_os.committed), m0 = meta_sum(), r0 = gm_stat_load(&gm_os.reserved);
    size_t size = 0;

    /* The OS refuses address space: NULL, nothing counted, hint kept. */
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    errno = 0;
    CHECK(gm_arena_alloc(ARENA, &size) == NULL);
    CHECK_EQ(errno, ENOMEM);
    gm_fault_clear();
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);
    CHECK_EQ(gm_arena_next_hint(), hint);

    /* The metadata cannot be committed: the reservation is undone (what
     * lies at the hint afterwards is what lay there before: the kernel may
     * have put one of the test's own mappings there meanwhile). */
    char before[5];
    memcpy(before, maps_perms(hint), sizeof before);
    gm_fault_set(GM_SYS_MAP, 0, 1000);
    errno = 0;
    CHECK(gm_arena_alloc(2 * ARENA, &size) == NULL);
    CHECK_EQ(errno, ENOMEM);
    gm_fault_clear();
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);
    CHECK_EQ(gm_arena_next_hint(), hint);
    CHECK(gm_arena_of(hint) == NULL);
    CHECK(strcmp(maps_perms(hint), before) == 0);

    /* And it works again, exactly where it would have: unless the kernel
     * placed one of this process's own mappings (stdio, glibc malloc) in
     * the hinted range meanwhile, which a downward hint next to the mmap
     * area invites. */
    bool hint_free = maps_perms_range(hint, ARENA)[0] == 0;
    int e = errno = 1234;
    uintptr_t v = (uintptr_t)gm_arena_alloc(ARENA, &size);
    if (hint_free) CHECK_EQ(v, hint);
    CHECK(v != 0);
    CHECK_EQ(errno, e); /* success leaves errno alone */
    CHECK_EQ(size, ARENA);
    check_region_indexed(v, size);
    CHECK(accounting_holds());

    /* Persistent allocation fails cleanly under both faults as well. */
    c0 = gm_stat_load(&gm_os.committed);
    m0 = meta_sum();
    gm_fault_set(GM_SYS_MAP, 0, 1000);
    CHECK(gm_persistent_alloc(200 * KiB, 64, &gm_meta.pagealloc) == NULL);
    gm_fault_clear();
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    CHECK(gm_persistent_alloc((size_t)2 << 30, 64, &gm_meta.pagealloc) == NULL);
    gm_fault_clear();
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK(gm_persistent_alloc(200 * KiB, 64, &gm_meta.pagealloc) != NULL);
    CHECK(accounting_holds());
}

/* Under RLIMIT_AS (in a child): reservations are pieces of a 16th of the
 * limit, whole chunks, extending the hint; pieces that share an arena share
 * its record; when the OS refuses a piece, the growth's need rounded to
 * chunks, then to pages. */
static int child_arena_pieces(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)test_status_kb("VmSize") * 1024 + 256 * MiB;
    CHECK_EQ(setrlimit(RLIMIT_AS, &rl), 0);
    size_t piece = gm_align_down(rl.rlim_cur / 16, GM_CHUNK_BYTES);
    CHECK(piece < ARENA); /* (the test's own VmSize is small) */
    uintptr_t hint = gm_arena_next_hint(); /* (a down-hint's is for one arena) */
    size_t s1 = 0, s2 = 0;
    uintptr_t v1 = (uintptr_t)gm_arena_alloc(1, &s1);
    CHECK_EQ(s1, piece);
    CHECK(TEST_SANITIZER || v1 == hint || v1 + s1 == hint + ARENA);
    uint64_t arenas0 = gm_stat_load(&gm_meta.arenas), r0 = gm_stat_load(&gm_os.reserved);
    uintptr_t v2 = (uintptr_t)gm_arena_alloc(piece / 2 + 1, &s2);
    CHECK_EQ(s2, piece);
    CHECK(v2 == v1 + s1 || v2 + s2 == v1); /* contiguous, up or down */
    CHECK_EQ(gm_stat_load(&gm_os.reserved) - r0, piece);
    /* An arena that holds parts of both has one record, found from both;
     * only v2's other arenas got new ones. */
    size_t a1 = v1 >> GM_ARENA_SHIFT, b1 = (v1 + s1 - 1) >> GM_ARENA_SHIFT;
    size_t a2 = v2 >> GM_ARENA_SHIFT, b2 = (v2 + s2 - 1) >> GM_ARENA_SHIFT, shared = 0;
    for (size_t ai = a2; ai <= b2; ai++) {
        if (ai < a1 || ai > b1) continue;
        shared++;
        uintptr_t in1 = ai << GM_ARENA_SHIFT < v1 ? v1 : ai << GM_ARENA_SHIFT;
        uintptr_t in2 = ai << GM_ARENA_SHIFT < v2 ? v2 : ai << GM_ARENA_SHIFT;
        CHECK(gm_arena_of(in1) != NULL && gm_arena_of(in1) == gm_arena_of(in2));
    }
    CHECK(shared > 0); /* pieces smaller than an arena, from an arena-aligned hint */
    uint64_t grew = gm_stat_load(&gm_meta.arenas) - arenas0;
    CHECK(grew == (b2 - a2 + 1 - shared) * sizeof(struct gm_arena) || grew == 0); /* 0: flat slots committed */
    CHECK(strcmp(maps_perms(v2), "---p") == 0);
    CHECK(accounting_holds());

    /* The piece refused at the hint and anywhere: 4 MiB (the need rounded
     * to a chunk). Refused too: the need itself, 24 KiB. */
    size_t s3 = 0, s4 = 0;
    gm_fault_set(GM_SYS_RESERVE, 0, 2);
    uintptr_t v3 = (uintptr_t)gm_arena_alloc(3 * GM_PAGE_SIZE, &s3);
    gm_fault_clear();
    CHECK_EQ(s3, GM_CHUNK_BYTES);
    CHECK(TEST_SANITIZER || v3 == v2 + s2 || v3 + s3 == v2); /* up, or down where the space above is taken */
    gm_fault_set(GM_SYS_RESERVE, 0, 4);
    uintptr_t v4 = (uintptr_t)gm_arena_alloc(3 * GM_PAGE_SIZE, &s4);
    gm_fault_clear();
    CHECK_EQ(s4, 3 * GM_PAGE_SIZE);
    CHECK(TEST_SANITIZER || v4 == v3 + s3 || v4 + s4 == v3);
    CHECK(gm_arena_of(v4) != NULL && gm_arena_of(v4 + s4 - 1) != NULL);
    /* All refused: NULL, nothing counted, the hint kept. */
    uintptr_t h0 = gm_arena_next_hint();
    uint64_t c0 = gm_stat_load(&gm_os.committed), m0 = meta_sum();
    r0 = gm_stat_load(&gm_os.reserved);
    gm_fault_set(GM_SYS_RESERVE, 0, 1000);
    size_t s5 = 0;
    CHECK(gm_arena_alloc(3 * GM_PAGE_SIZE, &s5) == NULL);
    gm_fault_clear();
    CHECK_EQ(gm_stat_load(&gm_os.committed), c0);
    CHECK_EQ(meta_sum(), m0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);
    CHECK_EQ(gm_arena_next_hint(), h0);
    /* Beyond what the limit allows: the exact need is refused by the OS. */
    CHECK(gm_arena_alloc(512 * MiB, &s5) == NULL);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), r0);
    CHECK(accounting_holds());
    return test_failures;
}

int main(void)
{
    /* glibc's own heap (the tests use it) starts before VmData is measured,
     * and stays (a free would trim it). */
    static void *libc_heap;
    libc_heap = malloc(100);
    test_persistent_regions(); /* before any metadata reservation */
    /* The hints are process state: arena tests in this order. */
    test_arena_alloc();
    test_hint_collision();
    test_arena_faults();
    /* Not under a sanitizer: see test_persistent_regions (and TSan cannot
     * follow the locks gomalloc's fork handlers take). */
    if (!TEST_SANITIZER && !test_skip_emulated(TEST_GAP_RLIMIT, "arena_pieces (RLIMIT_AS)"))
        test_in_child("arena_pieces", child_arena_pieces);
    test_linear();
    test_persistent_basic();
    test_persistent_threads();
    test_persistent_faults();
    test_fixalloc();
    CHECK(accounting_holds());
    free(libc_heap);
    return test_done("unit_arena");
}
