/*
 * heap.c — layer 4: the heap (Go's mheap): growth through curArena, spans,
 * the threads' stocks and span caches, the memory limit's check at growth,
 * and the heap's page statistics. What gives free memory back (the
 * decommitted ranges, the release and decommit primitives the scavenger
 * drives) is heap_release.c's.
 *
 * Growth, as after Go's "prepare arenas for use incrementally" (the seed):
 * address space is reserved in 64 MiB arenas (gm_arena_alloc), Reserved
 * only; under RLIMIT_AS, in smaller pieces, down to what the growth needs
 * (any page multiple, at the very end of the limit). curArena [arena_base,
 * arena_end) is what is left of the newest reservation, whatever its size.
 * grow() commits only what it is about to hand to the page allocator: whole
 * 4 MiB chunks once the heap has one, and while it is smaller than a chunk,
 * steps that double from GM_GROW_MIN, so that a small program pays a few
 * hundred KiB and not a chunk. Each reservation's committed part is one
 * read-write prefix, and consecutive reservations are contiguous, so the
 * heap is one mapping. When a new reservation is not contiguous with
 * curArena, the rest of curArena is committed, counted as released and
 * handed to the page allocator before switching, exactly as in Go. When no
 * more address space can be had, growth takes what curArena still holds if
 * that is enough. A large span that ends at arena_base and must grow
 * (realloc) grows the heap right there, in place (gm_heap_grow_span).
 *
 * Statistics (all in bytes, Go's MemStats meanings):
 *   heap_sys      = committed heap memory: everything grown, never the
 *                   Reserved tail of curArena;
 *   heap_inuse    = pages of spans in use;
 *   heap_idle     = heap_sys - heap_inuse (free pages, page caches);
 *   heap_released = idle pages whose scavenged bit is set (in the page
 *                   allocator or in a page cache): new growth counts here
 *                   until first used, as in Go.
 * Pages of a partly grown chunk (beyond arena_base, or beyond the end of a
 * reservation that is not chunk aligned) are marked in use in the page
 * allocator but are in no statistic: gm_heap_ungrown_pages counts them as
 * the page allocator's chunks less what was ever grown into them.
 *
 * Decommitted ranges (heap_release.c) are marked in use in the page
 * allocator; growth commits them again before anything new, and the slow
 * check counts them with the ungrown pages.
 *
 * Span records come from a fixalloc under the heap lock, or from a thread's
 * stash (gm_heap_local) together with its page cache, without the lock.
 * Each thread also keeps a few freed large spans whole (its span cache,
 * state GM_SPAN_CACHED), counted in heap_inuse inside the heap and moved to
 * idle by the reports.
 * Every page of an in-use span maps to the span in its arena's spans[]; the
 * state is stored last with release order, so a lock-free reader that sees
 * a state also sees the fields.
 *
 * The layers above hear from the heap through hooks (gm_heap_set_hooks: it
 * grew, it freed pages), and the heap drains the threads' span caches
 * through its own list of their stocks (gm_heap_local_register), so that it
 * calls nothing above it. Lock: gm_heap.lock (GM_RANK_HEAP).
 */
#include "heap.h"

#include <errno.h>
#include <string.h>

#include "arch.h"

struct gm_heap gm_heap = {.lock = PTHREAD_MUTEX_INITIALIZER, .high_water = UINTPTR_MAX};
static const struct gm_heap_hooks *_Atomic gm_heap_hooks; /* gm_heap_set_hooks */


int gm_heap_init(void)
{
    if (__atomic_load_n(&gm_heap.initialized, __ATOMIC_ACQUIRE)) return 0;
    int rc = 0;
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    if (!gm_heap.initialized) {
        gm_arch_check_page_size(GM_OS_PAGE);
        rc = gm_pagealloc_init(&gm_heap.pages, &gm_meta.pagealloc);
        if (rc == 0) {
            gm_fixalloc_init(&gm_heap.spanalloc, sizeof(struct gm_span), &gm_meta.spans);
            __atomic_store_n(&gm_heap.initialized, true, __ATOMIC_RELEASE);
        }
    }
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    return rc;
}

size_t gm_heap_ungrown_pages(void)
{
    /* Every page of the page allocator's chunks was marked in use when its
     * chunk was first grown into, and freed when grown: the rest are pages
     * no reservation of ours covers yet (or ever will), wherever they are. */
    return ((gm_heap.pages.in_use.total_bytes - gm_heap.grown) >> GM_PAGE_SHIFT) + gm_heap_decommitted_pages();
}

/* Stamp the frees that follow with the time (the scavenger's decay). */
void gm_heap_stamp(void) { gm_heap.pages.now = gm_now_ms(); }

/* heap_inuse grew by bytes: keep its peak, and lift the high_water mark
 * once the heap holds more than the goal it was set for (heap.h). */
static void gm_heap_inuse_grew(uint64_t bytes)
{
    uint64_t v = atomic_fetch_add_explicit(&gm_heap.heap_inuse, bytes, memory_order_relaxed) + bytes;
    uint64_t peak = atomic_load_explicit(&gm_heap.inuse_peak, memory_order_relaxed);
    while (v > peak && !atomic_compare_exchange_weak_explicit(&gm_heap.inuse_peak, &peak, v, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
    if (gm_heap_shrinking() && v > atomic_load_explicit(&gm_heap.goal, memory_order_relaxed))
        atomic_store_explicit(&gm_heap.high_water, UINTPTR_MAX, memory_order_relaxed);
}

uint64_t gm_heap_take_inuse_peak(void)
{
    uint64_t now = gm_stat_load(&gm_heap.heap_inuse);
    uint64_t peak = atomic_exchange_explicit(&gm_heap.inuse_peak, now, memory_order_relaxed);
    return peak > now ? peak : now;
}

uint64_t gm_heap_retained(void)
{
    uint64_t sys = gm_stat_load(&gm_heap.heap_sys), rel = gm_stat_load(&gm_heap.heap_released);
    return sys > rel ? sys - rel : 0;
}

/* How much of add bytes the heap may commit under the memory limit
 * (SIZE_MAX: all of it). Over the limit it first makes room by
 * decommitting free chunks; a soft limit then lets growth through if the
 * caller has reclaimed what it could (past_soft_limit). Heap lock held. */
static size_t gm_heap_limit_room(size_t add, bool past_soft_limit)
{
    uint64_t limit = atomic_load_explicit(&gm_heap.limit, memory_order_relaxed);
    if (!limit) return SIZE_MAX;
    uint64_t committed = gm_stat_load(&gm_os.committed);
    if (committed + add <= limit) return SIZE_MAX;
    gm_heap_decommit_locked(committed + add - limit);
    committed = gm_stat_load(&gm_os.committed);
    if (committed + add <= limit) return SIZE_MAX;
    /* A soft limit holds like a hard one until the caller has reclaimed
     * what it could (tcache.c's gm_alloc_span), then lets growth through. */
    if (!atomic_load_explicit(&gm_heap.limit_hard, memory_order_relaxed) && past_soft_limit) return SIZE_MAX;
    return committed < limit ? (size_t)(limit - committed) : 0;
}

/* Commit [base, end) and hand it to the page allocator as free, released
 * pages. Heap lock held. -1 with nothing changed on failure. */
static int gm_heap_add(uintptr_t base, uintptr_t end)
{
    size_t n = end - base;
    if (gm_sys_map((void *)base, n, &gm_heap.heap_sys) != 0) return -1;
    if (gm_pagealloc_grow(&gm_heap.pages, base, n) != 0) {
        if (gm_sys_decommit((void *)base, n, &gm_heap.heap_sys) != 0) {
            /* Still read-write, but not the heap's: stop counting it, as
             * the next growth maps and counts this same range again. */
            gm_stat_add(&gm_heap.heap_sys, -(int64_t)n);
            gm_stat_add(&gm_os.committed, -(int64_t)n);
        }
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

/* Hand [base, end) of curArena (base is its start) to the page allocator,
 * for a growth of need bytes: no more than need (rounded to GM_GROW_ALIGN)
 * under a hard memory limit. Heap lock held. 0 or -1. */
static int gm_heap_grow_at(uintptr_t base, uintptr_t end, size_t need, bool past_soft_limit)
{
    size_t room = gm_heap_limit_room(end - base, past_soft_limit);
    if (room < end - base) { /* a hard limit: grow by no more than needed */
        end = gm_align_up(base + need, GM_GROW_ALIGN);
        if (end > gm_heap.arena_end) end = gm_heap.arena_end;
        if (end - base > room) return -1;
    }
    if (gm_heap_add(base, end) != 0) return -1;
    gm_heap.arena_base = end;
    return 0;
}

/* Go's (*mheap).grow: make at least npages contiguous free pages available.
 * Heap lock held. 0 or -1 (ENOMEM) with the heap as it was, except that a
 * new reservation, once made, is kept as curArena. */
static int gm_heap_grow(size_t npages, bool past_soft_limit)
{
    size_t need = npages << GM_PAGE_SHIFT;
    if (need / GM_PAGE_SIZE != npages || need > GM_ADDR_LIMIT) return -1;
    if (gm_heap_has_decommitted() && gm_heap_limit_room(gm_align_up(need, GM_CHUNK_BYTES), past_soft_limit) == SIZE_MAX &&
        gm_heap_recommit(npages) == 0)
        return 0;
    uintptr_t base = gm_heap.arena_base;
    uintptr_t end = gm_grow_end(base, need);
    if (base == 0 || end > gm_heap.arena_end || end < base) {
        /* Not enough room left in curArena for a whole step: reserve more. */
        size_t asize;
        void *av = gm_arena_alloc(need, &asize);
        if (!av) {
            /* No more address space (RLIMIT_AS): what is left of curArena
             * may still hold the growth, if less than a whole step. */
            if (base == 0 || gm_heap.arena_end - base < need) return -1;
            end = gm_heap.arena_end;
        } else if (base != 0 && (uintptr_t)av == gm_heap.arena_end) {
            gm_heap.arena_end = (uintptr_t)av + asize; /* contiguous: extend */
        } else {
            /* Discontiguous: commit the rest of curArena, count it released
             * and give it to the page allocator, then switch. If the OS
             * refuses, the rest stays Reserved and counted nowhere. */
            if (gm_heap.arena_end > base) gm_heap_add(base, gm_heap.arena_end);
            gm_heap.arena_base = (uintptr_t)av;
            gm_heap.arena_end = (uintptr_t)av + asize;
        }
        if (av) {
            base = gm_heap.arena_base;
            end = gm_grow_end(base, need);
            if (end > gm_heap.arena_end) end = gm_heap.arena_end;
        }
    }
    return gm_heap_grow_at(base, end, need, past_soft_limit);
}

/* Grow the heap in place: the next pages of curArena, for a span that ends
 * at its base to grow into (realloc). Heap lock held. 0 or -1. */
static int gm_heap_grow_frontier(size_t npages)
{
    uintptr_t base = gm_heap.arena_base;
    size_t need = npages << GM_PAGE_SHIFT;
    if (base == 0 || gm_heap.arena_end - base < need) return -1;
    uintptr_t end = gm_grow_end(base, need);
    return gm_heap_grow_at(base, end < gm_heap.arena_end ? end : gm_heap.arena_end, need, false);
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
    GM_ASSERT((base & (GM_PAGE_SIZE - 1)) == 0 && npages > 0);
    memset(s, 0, sizeof *s);
    s->base = base;
    s->npages = (uint32_t)npages;
    s->sizeclass = (uint8_t)cls;
    s->needzero = scav != bytes; /* wholly released pages read as zero */
    if (scav) {
        gm_sys_used((void *)base, bytes);
        gm_stat_add(&gm_heap.heap_released, -(int64_t)scav);
    }
    gm_heap_inuse_grew(bytes);
    gm_span_publish(s, base, npages);
    atomic_store_explicit(&s->state, cls ? GM_SPAN_SMALL : GM_SPAN_LARGE, memory_order_release);
}

/* Refill a thread's stash and page cache. Heap lock held. */
static void gm_heap_local_refill(struct gm_heap_local *hl, bool past_soft_limit)
{
    while (hl->nstash < GM_SPAN_STASH / 2) {
        struct gm_span *s = gm_fixalloc_alloc(&gm_heap.spanalloc);
        if (!s) break;
        hl->stash[hl->nstash++] = s;
    }
    if (gm_pagecache_empty(&hl->pc)) {
        hl->pc = gm_pagealloc_alloc_to_cache(&gm_heap.pages);
        if (gm_pagecache_empty(&hl->pc) && gm_heap_grow(1, past_soft_limit) == 0)
            hl->pc = gm_pagealloc_alloc_to_cache(&gm_heap.pages);
    }
}

/* Lock-free attempt through the thread's stock. */
static struct gm_span *gm_heap_alloc_local(struct gm_heap_local *hl, size_t npages, unsigned cls,
                                           bool past_soft_limit)
{
    if (hl->nstash == 0 || gm_pagecache_empty(&hl->pc)) {
        gm_lock(&gm_heap.lock, GM_RANK_HEAP);
        gm_heap_local_refill(hl, past_soft_limit);
        gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
        if (hl->nstash == 0) return NULL;
    }
    size_t scav;
    uintptr_t base = gm_pagecache_alloc(&hl->pc, npages, &scav);
    if (!base) return NULL;
    struct gm_span *s = hl->stash[--hl->nstash];
    gm_span_init(s, base, npages, cls, scav);
    return s;
}

struct gm_span *gm_heap_alloc_span(struct gm_heap_local *hl, size_t npages, unsigned cls, bool past_soft_limit)
{
    if (GM_UNLIKELY(!gm_heap_ready()) && gm_heap_init() != 0) goto nomem;
    if (npages == 0 || npages > (GM_ADDR_LIMIT >> GM_PAGE_SHIFT)) goto nomem;
    if (hl && npages < GM_PAGECACHE_MAX_SPAN) {
        if (hl->spans_locked >= GM_PAGECACHE_AFTER) {
            struct gm_span *s = gm_heap_alloc_local(hl, npages, cls, past_soft_limit);
            if (s) return s;
        } else {
            hl->spans_locked++;
        }
    }
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    struct gm_span *s = gm_fixalloc_alloc(&gm_heap.spanalloc);
    if (!s) goto unlock_nomem;
    size_t scav;
    uint64_t sys0 = gm_stat_load(&gm_heap.heap_sys);
    uintptr_t base = gm_pagealloc_alloc(&gm_heap.pages, npages, &scav);
    if (!base) {
        if (gm_heap_grow(npages, past_soft_limit) == 0) base = gm_pagealloc_alloc(&gm_heap.pages, npages, &scav);
        if (!base) {
            gm_fixalloc_free(&gm_heap.spanalloc, s);
            goto unlock_nomem;
        }
    }
    gm_span_init(s, base, npages, cls, scav);
    uint64_t grew = gm_stat_load(&gm_heap.heap_sys) - sys0;
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    const struct gm_heap_hooks *hooks = atomic_load_explicit(&gm_heap_hooks, memory_order_acquire);
    if (grew && hooks && hooks->grew) hooks->grew(grew);
    return s;
unlock_nomem:
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
nomem:
    errno = ENOMEM;
    return NULL;
}

void gm_heap_free_span(struct gm_span *s)
{
    size_t bytes = (size_t)s->npages << GM_PAGE_SHIFT;
    gm_vg_noaccess((void *)s->base, bytes);
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    atomic_store_explicit(&s->state, GM_SPAN_DEAD, memory_order_release);
    gm_heap_stamp();
    gm_pagealloc_free(&gm_heap.pages, s->base, s->npages);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)bytes);
    gm_fixalloc_free(&gm_heap.spanalloc, s);
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    gm_heap_freed();
}

bool gm_heap_grow_span(struct gm_span *s, size_t npages)
{
    if (npages <= s->npages) return true;
    size_t extra = npages - s->npages;
    uintptr_t end = s->base + ((uintptr_t)s->npages << GM_PAGE_SHIFT);
    bool ok = false;
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    /* Free pages after the span, then maybe a decommitted range (the
     * scavenger decommits idle free runs): committed again in place when
     * the limit allows, cheaper than a copy. */
    size_t run = gm_arena_of(end) ? gm_pagealloc_free_run_at(&gm_heap.pages, end, extra) : 0;
    if (run < extra && gm_arena_of(end) && gm_heap_has_decommitted()) {
        size_t rest = extra - run;
        uintptr_t hole = end + (run << GM_PAGE_SHIFT);
        if (gm_heap_limit_room(rest << GM_PAGE_SHIFT, false) == SIZE_MAX && gm_heap_recommit_at(hole, rest) == 0)
            run = gm_pagealloc_free_run_at(&gm_heap.pages, end, extra);
    }
    /* At the heap's frontier (the span and the free run after it reach
     * curArena's base): the heap grows there. */
    if (run < extra && end + (run << GM_PAGE_SHIFT) == gm_heap.arena_base && gm_heap_grow_frontier(extra - run) == 0)
        run = gm_pagealloc_free_run_at(&gm_heap.pages, end, extra);
    if (run >= extra) {
        size_t scav = gm_pagealloc_alloc_range(&gm_heap.pages, end, extra);
        size_t bytes = extra << GM_PAGE_SHIFT;
        if (scav) {
            gm_sys_used((void *)end, bytes);
            gm_stat_add(&gm_heap.heap_released, -(int64_t)scav);
        }
        if (scav != bytes) s->needzero = 1;
        gm_heap_inuse_grew(bytes);
        gm_span_publish(s, end, extra);
        s->npages = (uint32_t)npages;
        ok = true;
    }
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    return ok;
}

void gm_heap_trim_span(struct gm_span *s, uintptr_t new_base, size_t npages)
{
    size_t head = (new_base - s->base) >> GM_PAGE_SHIFT;
    size_t tail = s->npages - head - npages;
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    gm_heap_stamp();
    if (head) gm_pagealloc_free(&gm_heap.pages, s->base, head);
    if (tail) gm_pagealloc_free(&gm_heap.pages, new_base + (npages << GM_PAGE_SHIFT), tail);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)((head + tail) << GM_PAGE_SHIFT));
    s->base = new_base;
    s->npages = (uint32_t)npages;
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
}

void gm_heap_shrink_span(struct gm_span *s, size_t npages)
{
    if (npages >= s->npages || npages == 0) return;
    gm_heap_trim_span(s, s->base, npages);
}

/* The span cache. A large object's free and the next large malloc of about
 * the same size are the pattern of buffers and vectors; keeping the span
 * whole (its pages, its spans[] entries, its record) makes both a few
 * atomic exchanges instead of two trips through the heap lock and the
 * bitmaps. The cache is small (8 spans of at most 256 KiB) and the
 * scavenger empties caches that sit idle. Cached spans stay in heap_inuse
 * (so the hot path touches no shared counter); reports move them to idle. */
struct gm_span *gm_heap_cache_take(struct gm_heap_local *hl, size_t npages)
{
    if (npages > GM_SPAN_CACHE_MAX_PAGES) return NULL;
    size_t most = npages + npages / 8;
    for (unsigned i = 0; i < GM_SPAN_CACHE_SLOTS; i++) {
        /* The size is the owner's own note: the record itself may have been
         * stolen and reused meanwhile. Only the owner puts, so the exchange
         * returns the span noted or NULL. */
        if (!atomic_load_explicit(&hl->cache[i], memory_order_relaxed) || hl->cache_npages[i] < npages ||
            hl->cache_npages[i] > most)
            continue;
        struct gm_span *s = atomic_exchange_explicit(&hl->cache[i], NULL, memory_order_acquire);
        if (!s) continue;
        gm_counter_add(&hl->cache_took, gm_span_bytes(s));
        s->needzero = 1;
        atomic_store_explicit(&s->state, GM_SPAN_LARGE, memory_order_release);
        return s;
    }
    return NULL;
}

void gm_heap_cache_put(struct gm_heap_local *hl, struct gm_span *s)
{
    if (s->npages > GM_SPAN_CACHE_MAX_PAGES) {
        gm_heap_free_span(s);
        return;
    }
    unsigned slot = hl->cache_next++ % GM_SPAN_CACHE_SLOTS;
    for (unsigned i = 0; i < GM_SPAN_CACHE_SLOTS; i++) {
        if (!atomic_load_explicit(&hl->cache[i], memory_order_relaxed)) {
            slot = i;
            break;
        }
    }
    gm_counter_add(&hl->cache_put, gm_span_bytes(s));
    hl->cache_npages[slot] = s->npages;
    atomic_store_explicit(&s->state, GM_SPAN_CACHED, memory_order_release);
    struct gm_span *old = atomic_exchange_explicit(&hl->cache[slot], s, memory_order_acq_rel);
    if (old) {
        gm_counter_add(&hl->cache_took, gm_span_bytes(old));
        gm_heap_free_span(old);
    }
}

size_t gm_heap_local_drain(struct gm_heap_local *hl, bool release)
{
    size_t bytes = 0;
    for (unsigned i = 0; i < GM_SPAN_CACHE_SLOTS; i++) {
        if (!atomic_load_explicit(&hl->cache[i], memory_order_relaxed)) continue;
        struct gm_span *s = atomic_exchange_explicit(&hl->cache[i], NULL, memory_order_acquire);
        if (!s) continue;
        bytes += gm_span_bytes(s);
        atomic_fetch_add_explicit(&hl->cache_drained, gm_span_bytes(s), memory_order_relaxed);
        if (release) gm_heap_release_span(s);
        else gm_heap_free_span(s);
    }
    return bytes;
}

void gm_heap_local_flush(struct gm_heap_local *hl)
{
    gm_heap_local_drain(hl, false);
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    gm_heap_stamp();
    if (!gm_pagecache_empty(&hl->pc)) gm_pagecache_flush(&hl->pc, &gm_heap.pages);
    memset(&hl->pc, 0, sizeof hl->pc);
    while (hl->nstash) gm_fixalloc_free(&gm_heap.spanalloc, hl->stash[--hl->nstash]);
    hl->spans_locked = 0; /* the next thread to take this stock starts without it */
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
}

/* ------------------------------------------------------------------------ */
/* The layers above: hooks, the stocks' list, the span walk, fork           */
/* ------------------------------------------------------------------------ */

void gm_heap_set_hooks(const struct gm_heap_hooks *hooks)
{
    atomic_store_explicit(&gm_heap_hooks, hooks, memory_order_release);
}

void gm_heap_freed(void)
{
    const struct gm_heap_hooks *hooks = atomic_load_explicit(&gm_heap_hooks, memory_order_acquire);
    if (hooks && hooks->freed) hooks->freed();
}

/* The threads' stocks, newest first: pushed once each, never removed, so
 * that a walk needs no lock. */
static struct gm_heap_local *_Atomic gm_heap_locals;

void gm_heap_local_register(struct gm_heap_local *hl)
{
    struct gm_heap_local *head = atomic_load_explicit(&gm_heap_locals, memory_order_relaxed);
    do atomic_store_explicit(&hl->all_next, head, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&gm_heap_locals, &head, hl, memory_order_release,
                                                  memory_order_relaxed));
}

struct gm_heap_local *gm_heap_locals_first(void)
{
    return atomic_load_explicit(&gm_heap_locals, memory_order_acquire);
}

void gm_heap_for_each_span(void (*fn)(struct gm_span *s, unsigned state, void *arg), void *arg)
{
    for (size_t i = 0; i < GM_ARENA_L1_ENTRIES; i++) {
        struct gm_arena *_Atomic *l2 = atomic_load_explicit(&gm_arena_l1[i], memory_order_acquire);
        if (!l2) continue;
        for (size_t j = 0; j < ((size_t)1 << GM_ARENA_L2_BITS); j++) {
            struct gm_arena *a = atomic_load_explicit(&l2[j], memory_order_acquire);
            if (!a) continue;
            uintptr_t abase = (uintptr_t)((i << GM_ARENA_L2_BITS) + j) << GM_ARENA_SHIFT;
            for (size_t pg = 0; pg < GM_PAGES_PER_ARENA; pg++) {
                struct gm_span *s = atomic_load_explicit(&a->spans[pg], memory_order_acquire);
                if (!s || s->base != abase + (pg << GM_PAGE_SHIFT)) continue;
                unsigned st = atomic_load_explicit(&s->state, memory_order_acquire);
                if (st != GM_SPAN_DEAD) fn(s, st, arg);
            }
        }
    }
}

void gm_heap_fork_prepare(void) { gm_lock(&gm_heap.lock, GM_RANK_HEAP); }
void gm_heap_fork_parent(void) { gm_unlock(&gm_heap.lock, GM_RANK_HEAP); }
void gm_heap_fork_child(void) { pthread_mutex_init(&gm_heap.lock, NULL); }
