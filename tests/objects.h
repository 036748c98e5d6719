/*
 * objects.h — checked test objects through the gm_ API, for the workloads of
 * unit_faults.c and unit_stress.c. An object is made by malloc, calloc,
 * aligned_alloc, posix_memalign or memalign, with a size drawn to hit class
 * edges, large and multi-MiB objects; every result is checked (NULL only
 * with ENOMEM, and only while failures are allowed; alignment; usable size;
 * calloc's zeroes), then filled with a pattern that realloc and free check.
 * A broken promise counts in tobj_bad with one line on stderr.
 */
#ifndef GM_OBJECTS_H
#define GM_OBJECTS_H
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <gomalloc.h>

#include "test.h"

struct tobj {
    unsigned char *p; /* NULL: empty slot */
    size_t size;
    uint64_t seed;
};

static bool tobj_strict = true;  /* every allocation must succeed */
static unsigned tobj_big = 16;   /* in 256ths: share of large sizes */
static atomic_long tobj_nulls;   /* allocations that failed (allowed) */
static atomic_long tobj_bad;     /* broken promises */

#define TOBJ_BAD(...)                                                        \
    do {                                                                     \
        if (atomic_fetch_add(&tobj_bad, 1) < 10) fprintf(stderr, __VA_ARGS__); \
    } while (0)

/* A size: mostly small, class edges, large (> 32 KiB), sometimes MiBs. */
static size_t tobj_size(uint64_t *r)
{
    static const size_t edge[] = {0,    1,    15,   16,    17,    48,    128,   129,   1024,  1025, 1152,
                                  4096, 8192, 8193, 16384, 27264, 32767, 32768, 32769, 65536, 139264};
    uint64_t x = test_rnd(r), y = x >> 16;
    unsigned k = (unsigned)(x & 255);
    if (k < tobj_big) return y % 64 == 0 ? ((size_t)2 << 20) + y % (5u << 20) : 32769 + y % (400u << 10);
    if (k < 64) return edge[y % (sizeof edge / sizeof edge[0])];
    if (k < 96) return 1025 + y % 31744;
    return y % 600;
}

/* Checks one allocation's result; fills it. */
static bool tobj_take(struct tobj *o, void *p, int err, size_t size, size_t align, bool zero, uint64_t *r)
{
    if (!p) {
        if (tobj_strict || err != ENOMEM)
            TOBJ_BAD("allocation of %zu (align %zu) failed: %s\n", size, align, strerror(err));
        atomic_fetch_add(&tobj_nulls, 1);
        return false;
    }
    if ((uintptr_t)p % (align > 16 ? align : 16) != 0) TOBJ_BAD("%p not aligned to %zu\n", p, align);
    if (gm_malloc_usable_size(p) < size) TOBJ_BAD("usable size of %p < %zu\n", p, size);
    if (zero)
        for (size_t i = 0; i < size; i++)
            if (((unsigned char *)p)[i] != 0) {
                TOBJ_BAD("calloc(%zu): byte %zu is not zero\n", size, i);
                break;
            }
    o->p = p;
    o->size = size;
    o->seed = test_rnd(r);
    test_pat_fill(p, 0, size, o->seed);
    return true;
}

/* Makes *o (an empty slot) by one of the allocation functions. */
static bool tobj_new(struct tobj *o, uint64_t *r)
{
    size_t size = tobj_size(r), align = 0;
    uint64_t x = test_rnd(r);
    void *p = NULL;
    int err;
    errno = 0;
    switch (x % 8) {
    case 0: /* calloc, as n elements where that divides */
        p = size % 8 == 0 && size ? gm_calloc(size / 8, 8) : gm_calloc(1, size);
        err = errno;
        return tobj_take(o, p, err, size, 0, true, r);
    case 1: /* 32 bytes to 128 KiB, rarely 2 MiB (trimmed spans) */
        align = (x >> 8) % 16 == 0 ? (size_t)2 << 20 : (size_t)32 << (x >> 12) % 13;
        p = gm_aligned_alloc(align, size);
        err = errno;
        break;
    case 2:
        align = (size_t)8 << (x >> 8) % 14;
        err = gm_posix_memalign(&p, align, size);
        if (err == 0 && !p) TOBJ_BAD("posix_memalign returned 0 and NULL\n");
        break;
    case 3: /* memalign rounds a non-power of two up */
        align = (size_t)48 << (x >> 8) % 8;
        p = gm_memalign(align, size);
        err = errno;
        align = (size_t)64 << (x >> 8) % 8;
        break;
    default:
        p = gm_malloc(size);
        err = errno;
    }
    return tobj_take(o, p, err, size, align, false, r);
}

/* Checks and frees *o. */
static void tobj_free(struct tobj *o)
{
    if (!o->p) return;
    if (!test_pat_verify(o->p, o->size, o->seed)) TOBJ_BAD("object %p (%zu bytes) corrupted\n", (void *)o->p, o->size);
    gm_free(o->p);
    o->p = NULL;
}

/* Reallocates *o to n bytes: the prefix must survive, a failure must leave
 * the object as it was, size 0 frees it. */
static void tobj_resize(struct tobj *o, size_t n)
{
    errno = 0;
    unsigned char *q = gm_realloc(o->p, n);
    int err = errno;
    if (!q && n == 0) { /* freed */
        o->p = NULL;
        return;
    }
    if (!q) {
        if (tobj_strict || err != ENOMEM) TOBJ_BAD("realloc(%zu) failed: %s\n", n, strerror(err));
        atomic_fetch_add(&tobj_nulls, 1);
        if (!test_pat_verify(o->p, o->size, o->seed)) TOBJ_BAD("failed realloc changed the object\n");
        return;
    }
    if (!test_pat_verify(q, o->size < n ? o->size : n, o->seed)) TOBJ_BAD("realloc lost the prefix\n");
    if (gm_malloc_usable_size(q) < n) TOBJ_BAD("usable size after realloc < %zu\n", n);
    if (n > o->size) test_pat_fill(q, o->size, n, o->seed);
    o->p = q;
    o->size = n;
}

/* Reallocates *o to a size drawn as tobj_size draws. */
static void tobj_realloc(struct tobj *o, uint64_t *r) { tobj_resize(o, tobj_size(r)); }

/* One operation on a slot: make it if empty, else free, reallocate or
 * check it. */
static void tobj_step(struct tobj *o, uint64_t *r)
{
    if (!o->p) {
        tobj_new(o, r);
        return;
    }
    switch (test_rnd(r) % 4) {
    case 0:
    case 1: tobj_free(o); break;
    case 2: tobj_realloc(o, r); break;
    default:
        if (gm_malloc_usable_size(o->p) < o->size) TOBJ_BAD("usable size of %p shrank\n", (void *)o->p);
    }
}
#endif
