/*
 * heap.c — layer 4: the heap (Go's mheap): growth through curArena, spans,
 * and the heap's page statistics.
 *
 * Growth, as after Go's "prepare arenas for use incrementally" (the seed):
 * address space is reserved in 64 MiB arenas (gm_arena_alloc), Reserved
 * only. curArena [arena_base, arena_end) is what is left of the newest
 * reservation. grow() commits only what it is about to hand to the page
 * allocator: whole 4 MiB chunks once the heap has one, and while it is
 * smaller than a chunk, steps that double from GM_GROW_MIN, so that a small
 * program pays a few hundred KiB and not a chunk. Each arena's committed part
 * is one read-write prefix, and consecutive arenas are contiguous, so the
 * heap is one mapping. When a new reservation is not contiguous with
 * curArena, the rest of curArena is committed, counted as released and
 * handed to the page allocator before switching, exactly as in Go.
 *
 * Statistics (all in bytes, Go's MemStats meanings):
 *   heap_sys      = committed heap memory: everything grown, never the
 *                   Reserved tail of curArena;
 *   heap_inuse    = pages of spans in use;
 *   heap_idle     = heap_sys - heap_inuse (free pages, page caches);
 *   heap_released = idle pages whose scavenged bit is set (in the page
 *                   allocator or in a page cache): new growth counts here
 *                   until first used, as in Go.
 * Pages of a partly grown chunk beyond arena_base are marked in use in the
 * page allocator but are in no statistic (gm_heap_ungrown_pages).
 *
 * Span records come from a fixalloc under the heap lock, or from a thread's
 * stash (gm_heap_local) together with its page cache, without the lock.
 * Every page of an in-use span maps to the span in its arena's spans[]; the
 * state is stored last with release order, so a lock-free reader that sees
 * a state also sees the fields.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

struct gm_heap gm_heap = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* While the heap is smaller than a chunk it grows in steps that start here
 * and double (commit granularity GM_GROW_ALIGN). */
#define GM_GROW_MIN ((uintptr_t)256 << 10)
#define GM_GROW_ALIGN ((uintptr_t)64 << 10)

/* Ungrown pages left behind in abandoned arenas (see grow). */
static size_t gm_abandoned_ungrown;

int gm_heap_init(void)
{
    if (__atomic_load_n(&gm_heap.initialized, __ATOMIC_ACQUIRE)) return 0;
    int rc = 0;
    pthread_mutex_lock(&gm_heap.lock);
    if (!gm_heap.initialized) {
        rc = gm_pagealloc_init(&gm_heap.pages, &gm_meta.pagealloc);
        if (rc == 0) {
            gm_fixalloc_init(&gm_heap.spanalloc, sizeof(struct gm_span), &gm_meta.spans);
            __atomic_store_n(&gm_heap.initialized, true, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&gm_heap.lock);
    return rc;
}

/* Pages between x and the end of its chunk, if x is inside a chunk. */
static size_t gm_chunk_tail_pages(uintptr_t x)
{
    return (gm_align_up(x, GM_CHUNK_BYTES) - x) >> GM_PAGE_SHIFT;
}

size_t gm_heap_ungrown_pages(void)
{
    return gm_abandoned_ungrown + gm_chunk_tail_pages(gm_heap.arena_base);
}

/* Commit [base, end) and hand it to the page allocator as free, released
 * pages. Heap lock held. -1 with nothing changed on failure. */
static int gm_heap_add(uintptr_t base, uintptr_t end)
{
    size_t n = end - base;
    if (gm_sys_map((void *)base, n, &gm_heap.heap_sys) != 0) return -1;
    if (gm_pagealloc_grow(&gm_heap.pages, base, n) != 0) {
        gm_sys_decommit((void *)base, n, &gm_heap.heap_sys);
        return -1;
    }
    gm_stat_add(&gm_heap.heap_released, (int64_t)n);
    gm_heap.grown += n;
    return 0;
}

/* Where growth by need bytes from base should end. */
static uintptr_t gm_grow_end(uintptr_t base, size_t need)
{
    if (gm_heap.grown >= GM_CHUNK_BYTES) return gm_align_up(base + need, GM_CHUNK_BYTES);
    size_t step = gm_heap.grown > GM_GROW_MIN ? gm_heap.grown : GM_GROW_MIN;
    if (step < need) step = need;
    uintptr_t end = gm_align_up(base + step, GM_GROW_ALIGN);
    /* Never leave less than a step's worth before the chunk end: round up to
     * the chunk when the step would end within GM_GROW_MIN of it. */
    uintptr_t cend = gm_align_up(base + 1, GM_CHUNK_BYTES);
    if (end < cend && cend - end < GM_GROW_MIN) end = cend;
    return end;
}

/* Go's (*mheap).grow: make at least npages contiguous free pages available.
 * Heap lock held. 0 or -1 (ENOMEM) with the heap as it was, except that a
 * new reservation, once made, is kept as curArena. */
static int gm_heap_grow(size_t npages)
{
    size_t need = npages << GM_PAGE_SHIFT;
    if (need / GM_PAGE_SIZE != npages || need > GM_ADDR_LIMIT) return -1;
    uintptr_t base = gm_heap.arena_base;
    uintptr_t end = gm_grow_end(base, need);
    if (base == 0 || end > gm_heap.arena_end || end < base) {
        /* Not enough room left in curArena: reserve more. */
        size_t ask = gm_align_up(need, GM_CHUNK_BYTES), asize;
        void *av = gm_arena_alloc(ask, &asize);
        if (!av) return -1;
        if (base != 0 && (uintptr_t)av == gm_heap.arena_end) {
            gm_heap.arena_end = (uintptr_t)av + asize; /* contiguous: extend */
        } else {
            /* Discontiguous: commit the rest of curArena, count it released
             * and give it to the page allocator, then switch. If the OS
             * refuses, the rest stays Reserved and counted nowhere. */
            if (gm_heap.arena_end > base && gm_heap_add(base, gm_heap.arena_end) != 0)
                gm_abandoned_ungrown += gm_chunk_tail_pages(base);
            gm_heap.arena_base = (uintptr_t)av;
            gm_heap.arena_end = (uintptr_t)av + asize;
        }
        base = gm_heap.arena_base;
        end = gm_grow_end(base, need);
        if (end > gm_heap.arena_end) end = gm_heap.arena_end;
    }
    if (gm_heap_add(base, end) != 0) return -1;
    gm_heap.arena_base = end;
    return 0;
}

/* Point every page of [base, base + npages) at s. */
static void gm_span_publish(struct gm_span *s, uintptr_t base, size_t npages)
{
    for (size_t i = 0; i < npages; i++) {
        uintptr_t p = base + (i << GM_PAGE_SHIFT);
        struct gm_arena *a = gm_arena_of(p);
        atomic_store_explicit(&a->spans[(p >> GM_PAGE_SHIFT) & (GM_PAGES_PER_ARENA - 1)], s,
                              memory_order_release);
    }
}

/* Fill in a new span over pages just taken, scav bytes of which were
 * released, and publish it. */
static void gm_span_init(struct gm_span *s, uintptr_t base, size_t npages, unsigned cls, size_t scav)
{
    size_t bytes = npages << GM_PAGE_SHIFT;
    memset(s, 0, sizeof *s);
    s->base = base;
    s->npages = (uint32_t)npages;
    s->sizeclass = (uint8_t)cls;
    s->needzero = scav != bytes; /* wholly released pages read as zero */
    if (scav) {
        gm_sys_used((void *)base, bytes);
        gm_stat_add(&gm_heap.heap_released, -(int64_t)scav);
    }
    gm_stat_add(&gm_heap.heap_inuse, (int64_t)bytes);
    gm_span_publish(s, base, npages);
    atomic_store_explicit(&s->state, cls ? GM_SPAN_SMALL : GM_SPAN_LARGE, memory_order_release);
}

/* Refill a thread's stash and page cache. Heap lock held. */
static void gm_heap_local_refill(struct gm_heap_local *hl)
{
    while (hl->nstash < GM_SPAN_STASH / 2) {
        struct gm_span *s = gm_fixalloc_alloc(&gm_heap.spanalloc);
        if (!s) break;
        hl->stash[hl->nstash++] = s;
    }
    if (gm_pagecache_empty(&hl->pc)) {
        hl->pc = gm_pagealloc_alloc_to_cache(&gm_heap.pages);
        if (gm_pagecache_empty(&hl->pc) && gm_heap_grow(1) == 0)
            hl->pc = gm_pagealloc_alloc_to_cache(&gm_heap.pages);
    }
}

/* Lock-free attempt through the thread's stock. */
static struct gm_span *gm_heap_alloc_local(struct gm_heap_local *hl, size_t npages, unsigned cls)
{
    if (hl->nstash == 0 || gm_pagecache_empty(&hl->pc)) {
        pthread_mutex_lock(&gm_heap.lock);
        gm_heap_local_refill(hl);
        pthread_mutex_unlock(&gm_heap.lock);
        if (hl->nstash == 0) return NULL;
    }
    size_t scav;
    uintptr_t base = gm_pagecache_alloc(&hl->pc, npages, &scav);
    if (!base) return NULL;
    struct gm_span *s = hl->stash[--hl->nstash];
    gm_span_init(s, base, npages, cls, scav);
    return s;
}

struct gm_span *gm_heap_alloc_span(struct gm_heap_local *hl, size_t npages, unsigned cls)
{
    if (GM_UNLIKELY(!gm_heap.initialized) && gm_heap_init() != 0) goto nomem;
    if (npages == 0 || npages > (GM_ADDR_LIMIT >> GM_PAGE_SHIFT)) goto nomem;
    if (hl && npages < GM_PAGECACHE_MAX_SPAN) {
        struct gm_span *s = gm_heap_alloc_local(hl, npages, cls);
        if (s) return s;
    }
    pthread_mutex_lock(&gm_heap.lock);
    struct gm_span *s = gm_fixalloc_alloc(&gm_heap.spanalloc);
    if (!s) goto unlock_nomem;
    size_t scav;
    uintptr_t base = gm_pagealloc_alloc(&gm_heap.pages, npages, &scav);
    if (!base) {
        if (gm_heap_grow(npages) == 0) base = gm_pagealloc_alloc(&gm_heap.pages, npages, &scav);
        if (!base) {
            gm_fixalloc_free(&gm_heap.spanalloc, s);
            goto unlock_nomem;
        }
    }
    gm_span_init(s, base, npages, cls, scav);
    pthread_mutex_unlock(&gm_heap.lock);
    return s;
unlock_nomem:
    pthread_mutex_unlock(&gm_heap.lock);
nomem:
    errno = ENOMEM;
    return NULL;
}

void gm_heap_free_span(struct gm_span *s)
{
    size_t bytes = (size_t)s->npages << GM_PAGE_SHIFT;
    gm_vg_noaccess((void *)s->base, bytes);
    pthread_mutex_lock(&gm_heap.lock);
    atomic_store_explicit(&s->state, GM_SPAN_DEAD, memory_order_release);
    gm_pagealloc_free(&gm_heap.pages, s->base, s->npages);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)bytes);
    gm_fixalloc_free(&gm_heap.spanalloc, s);
    pthread_mutex_unlock(&gm_heap.lock);
}

bool gm_heap_grow_span(struct gm_span *s, size_t npages)
{
    if (npages <= s->npages) return true;
    size_t extra = npages - s->npages;
    uintptr_t end = s->base + ((uintptr_t)s->npages << GM_PAGE_SHIFT);
    bool ok = false;
    pthread_mutex_lock(&gm_heap.lock);
    if (gm_arena_of(end) && gm_pagealloc_free_run_at(&gm_heap.pages, end, extra) >= extra) {
        size_t scav = gm_pagealloc_alloc_range(&gm_heap.pages, end, extra);
        size_t bytes = extra << GM_PAGE_SHIFT;
        if (scav) {
            gm_sys_used((void *)end, bytes);
            gm_stat_add(&gm_heap.heap_released, -(int64_t)scav);
        }
        if (scav != bytes) s->needzero = 1;
        gm_stat_add(&gm_heap.heap_inuse, (int64_t)bytes);
        gm_span_publish(s, end, extra);
        s->npages = (uint32_t)npages;
        ok = true;
    }
    pthread_mutex_unlock(&gm_heap.lock);
    return ok;
}

void gm_heap_trim_span(struct gm_span *s, uintptr_t new_base, size_t npages)
{
    size_t head = (new_base - s->base) >> GM_PAGE_SHIFT;
    size_t tail = s->npages - head - npages;
    pthread_mutex_lock(&gm_heap.lock);
    if (head) gm_pagealloc_free(&gm_heap.pages, s->base, head);
    if (tail) gm_pagealloc_free(&gm_heap.pages, new_base + (npages << GM_PAGE_SHIFT), tail);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)((head + tail) << GM_PAGE_SHIFT));
    s->base = new_base;
    s->npages = (uint32_t)npages;
    pthread_mutex_unlock(&gm_heap.lock);
}

void gm_heap_shrink_span(struct gm_span *s, size_t npages)
{
    if (npages >= s->npages || npages == 0) return;
    gm_heap_trim_span(s, s->base, npages);
}

void gm_heap_local_flush(struct gm_heap_local *hl)
{
    pthread_mutex_lock(&gm_heap.lock);
    if (!gm_pagecache_empty(&hl->pc)) gm_pagecache_flush(&hl->pc, &gm_heap.pages);
    memset(&hl->pc, 0, sizeof hl->pc);
    while (hl->nstash) gm_fixalloc_free(&gm_heap.spanalloc, hl->stash[--hl->nstash]);
    pthread_mutex_unlock(&gm_heap.lock);
}
