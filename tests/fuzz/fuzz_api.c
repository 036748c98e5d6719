/*
 * fuzz_api.c — libFuzzer target over the gm_ API (clang -fsanitize=fuzzer,
 * address,undefined, compiled with the core sources and GM_TESTING). The
 * input is a program: each operation is malloc, calloc, realloc,
 * reallocarray, aligned_alloc, posix_memalign, memalign/valloc/pvalloc, free
 * or usable_size on one of 32 slots, with sizes drawn to hit class edges,
 * large objects, multi-MiB objects and impossible sizes. A shadow model
 * keeps each slot's size and fill byte and checks, at every operation:
 *   - a request that cannot be met (size or n*size beyond the address
 *     space or overflowing, an alignment beyond 1 GiB) gives NULL and ENOMEM
 *     (posix_memalign: returns ENOMEM), an invalid alignment EINVAL; every
 *     other request succeeds (live bytes stay under 96 MiB);
 *   - results are aligned (16 bytes at least) and usable_size >= size, and
 *     the usable slack may be written without harm to any other object;
 *   - every byte of the requested size holds the slot's fill byte (calloc's
 *     is 0), realloc keeps the prefix, a failed realloc keeps the object.
 * At the end of each input everything is freed and gm_check() must pass.
 * Any broken promise aborts, which libFuzzer records as a crash.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSLOTS 32
#define BUDGET ((size_t)96 << 20) /* live requested bytes at most */

struct slot {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};
static struct slot slots[NSLOTS];
static size_t live_bytes;

/* The input, read a few bytes at a time; zeros once it runs out. */
struct input {
    const uint8_t *d;
    size_t n;
};
static uint64_t take(struct input *in, unsigned nbytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < nbytes && in->n; i++, in->d++, in->n--) v |= (uint64_t)in->d[0] << (8 * i);
    return v;
}

#define FAIL(...)                                                                                                  \
    do {                                                                                                           \
        fprintf(stderr, "fuzz_api: " __VA_ARGS__);                                                                 \
        abort();                                                                                                   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Sizes and alignments                                                     */
/* ------------------------------------------------------------------------ */

/* Sizes beyond the address space, which no heap can give. (The address
 * space itself, (size_t)1 << 47, would fail too, but is left out while
 * arena.c drops every arena hint when such a reservation fails (a known
 * bug): the heap then goes discontiguous and gm_check, which walks every
 * chunk index between the heap's ends, takes a second per input.) */
static const size_t impossible[] = {SIZE_MAX,        SIZE_MAX - 15,     (size_t)PTRDIFF_MAX + 1,
                                    (size_t)1 << 62, GM_ADDR_LIMIT + 1, GM_ADDR_LIMIT + GM_PAGE_SIZE};
#define NIMPOSSIBLE (sizeof impossible / sizeof impossible[0])

static size_t draw_size(struct input *in)
{
    unsigned kind = (unsigned)take(in, 1);
    uint64_t v = take(in, 3);
    switch (kind % 16) {
    case 0: case 1: case 2: case 3: case 4: return v % 1025;
    case 5: case 6: case 7: /* a class edge, +-1 */
        return gm_class_size[1 + v % (GM_NUM_CLASSES - 1)] + (v >> 8) % 3 - 1;
    case 8: case 9: return 1025 + v % (GM_MAX_SMALL - 1024);
    case 10: case 11: return GM_MAX_SMALL + 1 + v % (1u << 20); /* large */
    case 12: return GM_MAX_SMALL + (v % 16) * GM_PAGE_SIZE + (v >> 4) % 3 - 1; /* page edges */
    case 13: return ((size_t)1 << 20) + v % ((size_t)16 << 20); /* MiBs */
    case 14: return impossible[v % NIMPOSSIBLE];
    default: return v & 0xffff;
    }
}

static bool impossible_size(size_t size) { return size > GM_ADDR_LIMIT; }

/* An alignment: a power of two from 1 to 8 MiB mostly; sometimes a
 * non-power of two, or one beyond GM_MAX_ALIGN. */
static size_t draw_align(struct input *in)
{
    unsigned b = (unsigned)take(in, 1);
    if (b % 32 == 31) return (size_t)3 << (b / 32);
    if (b % 32 == 30) return GM_MAX_ALIGN << (1 + b / 128);
    return (size_t)1 << (b % 24);
}

static bool pow2(size_t a) { return a && !(a & (a - 1)); }

/* ------------------------------------------------------------------------ */
/* The shadow model                                                         */
/* ------------------------------------------------------------------------ */

/* Every byte of p[0, n) is c. */
static bool all_are(const unsigned char *p, size_t n, unsigned char c)
{
    return n == 0 || (p[0] == c && memcmp(p, p + 1, n - 1) == 0);
}

static void verify(const struct slot *s, const char *when)
{
    if (s->p && !all_are(s->p, s->size, s->fill))
        FAIL("%s: object %p of %zu bytes lost its fill %#x\n", when, (void *)s->p, s->size, s->fill);
}

/* A new object for slot s: checks the result, then fills it. zero: calloc. */
static void take_result(struct slot *s, void *p, int err, size_t size, size_t align, bool zero, const char *fn)
{
    if (!p) {
        if (!impossible_size(size) && align <= GM_MAX_ALIGN)
            FAIL("%s(%zu, align %zu) failed: %s\n", fn, size, align, strerror(err));
        if (err != ENOMEM) FAIL("%s(%zu, align %zu): NULL with errno %d, not ENOMEM\n", fn, size, align, err);
        return;
    }
    if (impossible_size(size) || align > GM_MAX_ALIGN) FAIL("%s(%zu, align %zu) succeeded\n", fn, size, align);
    if ((uintptr_t)p % (align > 16 ? align : 16)) FAIL("%s: %p is not aligned to %zu\n", fn, p, align);
    if (gm_malloc_usable_size(p) < size) FAIL("%s: usable size of %p < %zu\n", fn, p, size);
    if (zero && !all_are(p, size, 0)) FAIL("%s(%zu): not zeroed\n", fn, size);
    s->p = p;
    s->size = size;
    s->fill = zero ? 0 : (unsigned char)(0x11 + 0x3d * (s - slots));
    if (!zero) memset(p, s->fill, size);
    live_bytes += size;
}

static void drop(struct slot *s)
{
    if (!s->p) return;
    verify(s, "free");
    gm_free(s->p);
    live_bytes -= s->size;
    s->p = NULL;
}

/* The model makes only requests whose outcome it knows: beyond the address
 * space (they must fail) or within the budget, with a page to spare for
 * pvalloc's rounding (they must succeed). A request between may well
 * succeed (the heap reserves terabytes without committing them), at a cost
 * of 1/1024 of its size in span-table memory: it is skipped. */
static bool issuable(size_t size) { return impossible_size(size) || live_bytes + size + GM_OS_PAGE <= BUDGET; }

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

static void op_realloc(struct slot *s, size_t size, bool array, size_t n)
{
    size_t total = size;
    bool overflow = array && __builtin_mul_overflow(n, size, &total);
    if (!overflow && !issuable(total)) return;
    unsigned char *old = s->p;
    errno = 0;
    unsigned char *q = array ? gm_reallocarray(old, n, size) : gm_realloc(old, size);
    int err = errno;
    if (!old) {
        take_result(s, q, err, overflow ? SIZE_MAX : total, 0, false, "realloc(NULL)");
        return;
    }
    if (!q && total == 0 && !overflow) { /* freed */
        live_bytes -= s->size;
        s->p = NULL;
        return;
    }
    if (!q) {
        if (!overflow && !impossible_size(total)) FAIL("realloc(%zu) failed: %s\n", total, strerror(err));
        if (err != ENOMEM) FAIL("realloc(%zu): NULL with errno %d\n", total, err);
        verify(s, "failed realloc");
        return;
    }
    if (overflow || impossible_size(total)) FAIL("realloc(%zu) succeeded\n", total);
    if (!all_are(q, s->size < total ? s->size : total, s->fill)) FAIL("realloc(%zu) lost the prefix\n", total);
    if (gm_malloc_usable_size(q) < total) FAIL("realloc: usable size < %zu\n", total);
    if (total > s->size) memset(q + s->size, s->fill, total - s->size);
    live_bytes += total - s->size;
    s->p = q;
    s->size = total;
}

static void op_aligned(struct slot *s, unsigned which, size_t align, size_t size)
{
    if (!issuable(size)) return;
    void *p = NULL;
    int err;
    size_t want = align; /* the alignment the result must have */
    errno = 0;
    switch (which) {
    case 0:
        p = gm_aligned_alloc(align, size);
        err = errno;
        if (!pow2(align)) {
            if (p || err != EINVAL) FAIL("aligned_alloc(%zu): not EINVAL\n", align);
            return;
        }
        break;
    case 1:
        err = gm_posix_memalign(&p, align, size);
        if (!pow2(align) || align % sizeof(void *)) {
            if (err != EINVAL || p) FAIL("posix_memalign(%zu): not EINVAL\n", align);
            return;
        }
        if (err && p) FAIL("posix_memalign: %d and a pointer\n", err);
        break;
    case 2: /* a non-power of two rounds up */
        p = gm_memalign(align, size);
        err = errno;
        while (!pow2(want)) want += want & -want;
        break;
    default: /* valloc, pvalloc: page (4 KiB) aligned, pvalloc rounds up */
        want = GM_OS_PAGE;
        if (align & 1) {
            p = gm_valloc(size);
        } else {
            p = gm_pvalloc(size);
            if (!impossible_size(size)) size = size ? gm_align_up(size, GM_OS_PAGE) : GM_OS_PAGE;
        }
        err = errno;
    }
    take_result(s, p, err, size, want, false, "aligned");
}

static void op_usable(struct slot *s)
{
    if (!s->p) return;
    size_t u = gm_malloc_usable_size(s->p);
    if (u < s->size) FAIL("usable_size %zu < %zu\n", u, s->size);
    /* The slack is the caller's to write: a neighbour must not notice. */
    if (u - s->size <= ((size_t)1 << 20)) memset(s->p + s->size, 0xa5, u - s->size);
    verify(s, "usable_size");
}

/* FUZZ_TRACE=1 in the environment: one line per operation on stderr. */
static bool trace;

static void run(struct input *in)
{
    unsigned nops = 0;
    while (in->n) {
        unsigned op = (unsigned)take(in, 1);
        struct slot *s = &slots[take(in, 1) % NSLOTS];
        if (trace) fprintf(stderr, "op %u on slot %td (%zu bytes), %zu live\n", op % 12, s - slots, s->size, live_bytes);
        verify(s, "before an operation");
        verify(&slots[nops++ % NSLOTS], "a bystander");
        switch (op % 12) {
        case 0: case 1: case 2: { /* malloc */
            size_t size = draw_size(in);
            if (!issuable(size)) break;
            drop(s);
            errno = 0;
            void *p = gm_malloc(size);
            take_result(s, p, errno, size, 0, false, "malloc");
            break;
        }
        case 3: { /* calloc, which may overflow n * size */
            size_t n = take(in, 1) % 8 == 0 ? draw_size(in) : take(in, 1), size = draw_size(in), total;
            bool overflow = __builtin_mul_overflow(n, size, &total);
            if (!overflow && !issuable(total)) break;
            drop(s);
            errno = 0;
            void *p = gm_calloc(n, size);
            take_result(s, p, errno, overflow ? SIZE_MAX : total, 0, true, "calloc");
            break;
        }
        case 4: case 5: op_realloc(s, draw_size(in), false, 0); break;
        case 6: op_realloc(s, draw_size(in), true, take(in, 1) % 4 == 0 ? SIZE_MAX / 2 : take(in, 1)); break;
        case 7: case 8: {
            size_t align = draw_align(in), size = draw_size(in);
            drop(s);
            op_aligned(s, (unsigned)take(in, 1) % 4, align, size);
            break;
        }
        case 9: case 10: drop(s); break;
        default: op_usable(s);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    trace = getenv("FUZZ_TRACE") != NULL;
    run(&in);
    for (unsigned i = 0; i < NSLOTS; i++) drop(&slots[i]);
    if (live_bytes != 0) FAIL("the model lost count: %zu live bytes\n", live_bytes);
    if (gm_check() != 0) FAIL("gm_check failed\n");
    return 0;
}
