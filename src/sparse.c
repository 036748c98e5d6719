/*
 * sparse.c — sparse arrays for the page allocator's metadata (part of
 * layer 2; Go gets the same effect from sysReserve and sysMap on growth, see
 * mpagealloc_64bit.go).
 *
 * A sparse array is one PROT_NONE reservation of which only the OS pages the
 * heap actually touches are ever committed. The array itself is plain
 * memory: an entry is at base + offset, with no indirection, so the page
 * allocator's hot paths index it like a flat C array. The page allocator
 * keeps two kinds: its root summary level (64 KiB, reserved at init), and
 * one array per 64 GiB region of address space the heap reaches, holding
 * everything else it keeps about that region's chunks (pagealloc.c). Both
 * are small, so a flat bitmap of one bit per OS page records what is
 * committed: the root's sits in struct gm_pagealloc, a region's in its own
 * first page, committed with the reservation (the page also holds the
 * region's top summaries, which every growth there touches anyway). Readers
 * that must not fault on an uncommitted page (the page allocator's root
 * scan, tests, the slow check) ask gm_sparse_is_mapped.
 *
 * Invariants:
 *  - A page's bit is set exactly when the page is mapped read-write, and then
 *    its bytes were charged to s->stat by gm_sys_map; so s->stat holds the
 *    committed bytes of the array, and gm_sparse_committed recounts them.
 *  - Pages are committed in maximal runs (one mprotect per run), so the
 *    committed parts of an array are as few mappings as the layout allows.
 *  - Nothing is ever decommitted until gm_sparse_destroy, which unmaps the
 *    whole reservation and takes the committed bytes back off s->stat.
 *  - A failed init leaves nothing reserved or counted.
 *
 * All state is locked by the array's owner; nothing here allocates.
 */
#include "arena.h"

#include <errno.h>
#include <string.h>

static inline bool gm_sparse_bit(const struct gm_sparse *s, size_t page)
{
    return s->map[page / 64] >> (page % 64) & 1;
}

/* Mark pages [p, q) committed. */
static void gm_sparse_mark(struct gm_sparse *s, size_t p, size_t q)
{
    for (; p < q; p++) s->map[p / 64] |= (uint64_t)1 << (p % 64);
}

int gm_sparse_init(struct gm_sparse *s, size_t size, uint64_t *map, size_t head, gm_stat *stat)
{
    memset(s, 0, sizeof *s);
    size = gm_align_up(size, GM_OS_PAGE);
    head = gm_align_up(head, GM_OS_PAGE);
    size_t map_bytes = (size / GM_OS_PAGE + 63) / 64 * sizeof(uint64_t);
    if (size == 0 || head > size || (!map && head < map_bytes) || (map && head)) {
        errno = EINVAL;
        return -1;
    }
    void *base = gm_sys_reserve(NULL, size);
    if (!base) return -1;
    if (!map && gm_sys_map(base, head, stat) != 0) {
        int e = errno;
        gm_sys_free(base, size, 0, NULL);
        errno = e;
        return -1;
    }
    *s = (struct gm_sparse){(uintptr_t)base, size, map ? map : base, stat};
    if (head) {
        gm_sys_used(base, head);
        gm_sparse_mark(s, 0, head / GM_OS_PAGE);
    }
    return 0;
}

bool gm_sparse_is_mapped(const struct gm_sparse *s, size_t off)
{
    return s->base && off < s->size && gm_sparse_bit(s, off / GM_OS_PAGE);
}

int gm_sparse_ensure(struct gm_sparse *s, size_t off, size_t len)
{
    if (len == 0) return 0;
    if (off >= s->size || len > s->size - off) {
        errno = EINVAL;
        return -1;
    }
    size_t p = off / GM_OS_PAGE, last = (off + len - 1) / GM_OS_PAGE;
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

size_t gm_sparse_committed(const struct gm_sparse *s)
{
    size_t pages = 0, npages = s->size / GM_OS_PAGE;
    for (size_t w = 0; w < (npages + 63) / 64; w++) pages += (size_t)__builtin_popcountll(s->map[w]);
    return pages * GM_OS_PAGE;
}

void gm_sparse_destroy(struct gm_sparse *s)
{
    if (!s->base) return;
    /* Count first: the bitmap may live in the reservation. */
    size_t committed = gm_sparse_committed(s);
    gm_sys_free((void *)s->base, s->size, committed, s->stat);
    memset(s, 0, sizeof *s);
}
