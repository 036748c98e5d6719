/*
 * sparse.c — sparse arrays for the page allocator's metadata (part of
 * layer 2; Go gets the same effect from one sysReserve per summary level and
 * sysMap on growth, see mpagealloc_64bit.go).
 *
 * A sparse array is one large PROT_NONE reservation sized for the whole
 * address space it describes (the page allocator needs ~300 MiB of summaries
 * and 4 GiB of chunk bitmaps for 47 address bits), of which only the OS pages
 * the heap actually touches are ever committed. The array itself is plain
 * memory: an entry is at base + offset, with no indirection, so the page
 * allocator's hot paths index it like a flat C array.
 *
 * What is committed is recorded in a two-level bitmap, one bit per 4 KiB OS
 * page: a fixed first level of GM_SPARSE_L1 pointers in the struct, and 4 KiB
 * second-level pages (32768 bits each, covering 128 MiB of array) created on
 * demand. Readers that must not fault on an uncommitted page (the page
 * allocator's root scan, tests, the slow check) ask gm_sparse_is_mapped.
 *
 * Invariants:
 *  - A page's bit is set exactly when the page is mapped read-write, and then
 *    its bytes were charged to s->stat by gm_sys_map; so s->stat holds the
 *    committed bytes of the array plus its bitmap pages.
 *  - Pages are committed in maximal runs (one mprotect per run), so the
 *    committed parts of an array are as few mappings as the layout allows.
 *  - Nothing is ever decommitted until gm_sparse_destroy, which unmaps the
 *    whole reservation and takes the committed bytes back off s->stat.
 *
 * Bitmap pages come from the persistent allocator and so can never be freed;
 * destroy parks them in a pool (charged to gm_meta.other while parked) that
 * later arrays draw from first, so test instances created and destroyed in a
 * loop do not leak. All other state is locked by the array's owner.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#define GM_SPARSE_BITMAP_BYTES 4096
#define GM_SPARSE_L2_PAGES (GM_SPARSE_BITMAP_BYTES * 8) /* OS pages per bitmap page */
#define GM_SPARSE_MAX_PAGES ((size_t)GM_SPARSE_L1 * GM_SPARSE_L2_PAGES)

/* Parked bitmap pages, linked through their first word. */
static struct {
    pthread_mutex_t lock;
    void *head;
} gm_sparse_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t *gm_sparse_bitmap_page(gm_stat *stat)
{
    pthread_mutex_lock(&gm_sparse_pool.lock);
    void *p = gm_sparse_pool.head;
    if (p) gm_sparse_pool.head = *(void **)p;
    pthread_mutex_unlock(&gm_sparse_pool.lock);
    if (p) {
        memset(p, 0, GM_SPARSE_BITMAP_BYTES);
        gm_stat_add(&gm_meta.other, -GM_SPARSE_BITMAP_BYTES);
        gm_stat_add(stat, GM_SPARSE_BITMAP_BYTES);
        return p;
    }
    return gm_persistent_alloc(GM_SPARSE_BITMAP_BYTES, 64, stat);
}

static void gm_sparse_park(void *p, gm_stat *stat)
{
    gm_stat_add(stat, -GM_SPARSE_BITMAP_BYTES);
    gm_stat_add(&gm_meta.other, GM_SPARSE_BITMAP_BYTES);
    pthread_mutex_lock(&gm_sparse_pool.lock);
    *(void **)p = gm_sparse_pool.head;
    gm_sparse_pool.head = p;
    pthread_mutex_unlock(&gm_sparse_pool.lock);
}

int gm_sparse_init(struct gm_sparse *s, size_t size, gm_stat *stat)
{
    memset(s, 0, sizeof *s);
    size = gm_align_up(size, GM_OS_PAGE);
    if (size == 0 || size / GM_OS_PAGE > GM_SPARSE_MAX_PAGES) {
        errno = EINVAL;
        return -1;
    }
    void *base = gm_sys_reserve(NULL, size);
    if (!base) return -1;
    s->base = (uintptr_t)base;
    s->size = size;
    s->stat = stat;
    return 0;
}

static inline bool gm_sparse_bit(const struct gm_sparse *s, size_t page)
{
    const uint64_t *l2 = s->mapped[page / GM_SPARSE_L2_PAGES];
    size_t i = page % GM_SPARSE_L2_PAGES;
    return l2 && (l2[i / 64] >> (i % 64) & 1);
}

bool gm_sparse_is_mapped(const struct gm_sparse *s, size_t off)
{
    return off < s->size && gm_sparse_bit(s, off / GM_OS_PAGE);
}

/* Mark pages [p, q) committed; their bitmap pages exist. */
static void gm_sparse_mark(struct gm_sparse *s, size_t p, size_t q)
{
    for (; p < q; p++) {
        size_t i = p % GM_SPARSE_L2_PAGES;
        s->mapped[p / GM_SPARSE_L2_PAGES][i / 64] |= (uint64_t)1 << (i % 64);
    }
}

int gm_sparse_ensure(struct gm_sparse *s, size_t off, size_t len)
{
    if (len == 0) return 0;
    if (off >= s->size || len > s->size - off) {
        errno = EINVAL;
        return -1;
    }
    size_t first = off / GM_OS_PAGE, last = (off + len - 1) / GM_OS_PAGE;
    /* Bitmap pages first, so a failure leaves no committed page unrecorded. */
    for (size_t l1 = first / GM_SPARSE_L2_PAGES; l1 <= last / GM_SPARSE_L2_PAGES; l1++) {
        if (s->mapped[l1]) continue;
        s->mapped[l1] = gm_sparse_bitmap_page(s->stat);
        if (!s->mapped[l1]) return -1;
    }
    size_t p = first;
    while (p <= last) {
        if (gm_sparse_bit(s, p)) {
            p++;
            continue;
        }
        size_t q = p + 1; /* [p, q): a maximal run of uncommitted pages */
        while (q <= last && !gm_sparse_bit(s, q)) q++;
        void *v = (void *)(s->base + p * GM_OS_PAGE);
        if (gm_sys_map(v, (q - p) * GM_OS_PAGE, s->stat) != 0) return -1;
        gm_sys_used(v, (q - p) * GM_OS_PAGE);
        gm_sparse_mark(s, p, q);
        p = q;
    }
    return 0;
}

void gm_sparse_destroy(struct gm_sparse *s)
{
    if (!s->base) return;
    size_t committed = 0;
    for (size_t l1 = 0; l1 < GM_SPARSE_L1; l1++) {
        uint64_t *l2 = s->mapped[l1];
        if (!l2) continue;
        for (size_t w = 0; w < GM_SPARSE_L2_PAGES / 64; w++)
            committed += (size_t)__builtin_popcountll(l2[w]) * GM_OS_PAGE;
        gm_sparse_park(l2, s->stat);
    }
    gm_sys_free((void *)s->base, s->size, committed, s->stat);
    memset(s, 0, sizeof *s);
}

/* fork hooks for the pool's lock (see gm_arena_fork_prepare). */
void gm_sparse_fork_prepare(void) { pthread_mutex_lock(&gm_sparse_pool.lock); }
void gm_sparse_fork_parent(void) { pthread_mutex_unlock(&gm_sparse_pool.lock); }
void gm_sparse_fork_child(void) { pthread_mutex_init(&gm_sparse_pool.lock, NULL); }
