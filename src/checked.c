/*
 * checked.c — layer 8: checked mode (GOMALLOC_CHECK=1), for finding bugs.
 */
#include "api.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Checked mode (GOMALLOC_CHECK=1)                                          */
/* ------------------------------------------------------------------------ */
/*
 * The inline fast paths are off (gm_tc_fast is NULL), so every operation
 * comes here. A small object of n bytes is served from the class of n + 8;
 * its last word is a canary, secret ^ address ^ n (n in both halves), which
 * also records n, and the bytes between n and the canary are a pad of
 * GM_PAD_FILL. free and
 * realloc check both, so writing even one byte past the end is caught when
 * the block is freed. A freed object's bytes past its link and marker are
 * filled with GM_FREE_FILL (carving fills new objects the same way), and
 * malloc checks the fill of the object it hands out and that the next link
 * of the span's free list still points at one of the span's objects, so a
 * write into freed memory, or an overflow into a free neighbour, is caught
 * at the next allocation from that span. Large objects get a 64-byte pad
 * after their requested size. malloc_usable_size gives n, so that programs
 * that use all of it do not scribble over the pad. Only spans made in
 * checked mode are checked (the loader's first allocations may precede the
 * options). It costs a few passes over each block; it is for finding bugs.
 */
#define GM_PAD_FILL 0xca
#define GM_CANARY ((uintptr_t)0x9e3779b97f4a7c15u)
#define GM_LARGE_PAD 64

/* n is in both halves of the word, so that an overflow that changes n's
 * bytes (one byte past the end does) cannot leave a canary that decodes to
 * a plausible size: the halves disagree. */
static inline uintptr_t gm_canary(const void *p, size_t n)
{
    return gm_free_key ^ GM_CANARY ^ (uintptr_t)p ^ ((uintptr_t)n << 32 | n);
}

/* Is every byte of [p, p + n) equal to v? */
static bool gm_all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return false;
    return true;
}

/* The requested size of p, a live object of checked span s, after checking
 * its canary and pad; aborts if they were overwritten. */
size_t gm_checked_size(struct gm_span *s, const void *p)
{
    const unsigned char *b = p;
    if (atomic_load_explicit(&s->state, memory_order_acquire) == GM_SPAN_LARGE) {
        size_t n = s->large_size, end = (size_t)s->npages << GM_PAGE_SHIFT;
        size_t pad = end - n < GM_LARGE_PAD ? end - n : GM_LARGE_PAD;
        if (!gm_all_bytes(b + n, pad, GM_PAD_FILL)) gm_fatal("buffer overflow past the end of a block", p);
        return n;
    }
    size_t c = s->elemsize;
    uintptr_t w;
    memcpy(&w, b + c - sizeof w, sizeof w);
    uintptr_t v = w ^ gm_canary(p, 0);
    size_t n = (uint32_t)v;
    if (v >> 32 != n || n > c - sizeof w || !gm_all_bytes(b + n, c - sizeof w - n, GM_PAD_FILL))
        gm_fatal("buffer overflow past the end of a block", p);
    return n;
}

/* Arm a block just handed out: check what free left in it, then write the
 * pad and canary (small) or pad (large). */
static void *gm_checked_arm(void *p, size_t n)
{
    if (!p) return NULL;
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    if (!s->checked) return p;
    unsigned char *b = p;
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == GM_SPAN_LARGE) {
        size_t end = (size_t)s->npages << GM_PAGE_SHIFT;
        memset(b + n, GM_PAD_FILL, end - n < GM_LARGE_PAD ? end - n : GM_LARGE_PAD);
        return p;
    }
    size_t c = s->elemsize, hdr = 2 * sizeof(uintptr_t);
    if (c > hdr && !gm_all_bytes(b + hdr, c - hdr, GM_FREE_FILL)) gm_fatal("write after free into block", p);
    uintptr_t next = (uintptr_t)s->free; /* s is this thread's current span */
    if (next && (next < s->base || next >= gm_span_limit(s) || (next - s->base) % c))
        gm_fatal("corrupted free list (write after free) next to block", p);
    memset(b + n, GM_PAD_FILL, c - sizeof(uintptr_t) - n);
    uintptr_t w = gm_canary(p, n);
    memcpy(b + c - sizeof w, &w, sizeof w);
    return p;
}

/* malloc in checked mode; align <= GM_PAGE_SIZE (1 for none). */
void *gm_checked_malloc(struct gm_tcache *tc, size_t size, size_t align)
{
    if (size <= GM_MAX_SMALL - sizeof(uintptr_t)) {
        for (unsigned cls = gm_size_class(size + sizeof(uintptr_t)); cls < GM_NUM_CLASSES; cls++)
            if ((gm_class_size[cls] & (align - 1)) == 0) return gm_checked_arm(gm_small_alloc(tc, cls), size);
    }
    if (GM_UNLIKELY(size > GM_MAX_REQUEST - GM_LARGE_PAD)) {
        errno = ENOMEM;
        return NULL;
    }
    struct gm_span *s = gm_large_alloc_span(tc, size == 0 ? 1 : size);
    if (!s) return NULL;
    s->checked = 1;
    return gm_checked_arm((void *)s->base, size);
}

/* Before a checked block is freed: check it, then fill it as free. */
void gm_checked_free(struct gm_span *s, void *p, unsigned st)
{
    gm_checked_size(s, p);
    if (st == GM_SPAN_SMALL) {
        size_t hdr = 2 * sizeof(uintptr_t);
        if (s->elemsize > hdr) memset((char *)p + hdr, GM_FREE_FILL, s->elemsize - hdr);
    }
}
