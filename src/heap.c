/*
 * heap.c — layer 4: the heap (Go's mheap): growth through curArena, spans,
 * and the heap's page statistics.
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
 * that is enough.
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
 * Decommitted chunks (strict-commit mode, memory limits) are marked in use
 * in the page allocator and listed in gm_decommitted; growth commits them
 * again before anything new, and the slow check counts them with the
 * ungrown pages. The scavenger's primitives (gm_heap_scavenge, _decommit,
 * _decommit_runs) mark the pages they work on in use, drop the heap lock
 * for the system call, and give them back released; scavenge.c decides
 * when and how much.
 *
 * Span records come from a fixalloc under the heap lock, or from a thread's
 * stash (gm_heap_local) together with its page cache, without the lock.
 * Each thread also keeps a few freed large spans whole (its span cache,
 * state GM_SPAN_CACHED), counted in heap_inuse inside the heap and moved to
 * idle by the reports.
 * Every page of an in-use span maps to the span in its arena's spans[]; the
 * state is stored last with release order, so a lock-free reader that sees
 * a state also sees the fields.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include "arch.h"

struct gm_heap gm_heap = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* While the heap is smaller than a chunk it grows in steps that start here
 * and double (commit granularity GM_GROW_ALIGN). */
#define GM_GROW_MIN ((uintptr_t)256 << 10)
#define GM_GROW_ALIGN ((uintptr_t)64 << 10)

/* Decommitted chunks (strict-commit mode, memory limit): sorted, coalesced
 * address ranges, marked in use in the page allocator and mapped PROT_NONE.
 * Growth commits them again before it touches curArena. The list is short
 * on purpose: every range is a hole in the heap's read-write mapping and so
 * up to two more lines in /proc/self/maps. The scavenger's paced work opens
 * no hole past GM_DECOMMIT_RANGES (then chunks are only madvised), but may
 * always widen an existing one (gm_decommit_take); memory pressure (an
 * allocation that fails otherwise) may go up to GM_DECOMMIT_RANGES_MAX,
 * trading a few more mappings for not failing. Heap lock. */
#define GM_DECOMMIT_RANGES 16
#define GM_DECOMMIT_RANGES_MAX 64
/* One over the policy's maximum: gm_heap_decommit decides with the lock
 * held and records after its system call, and meanwhile growth may have
 * filled the list or recommitted the range its run was beside. Only one
 * such decommit is in flight (gm_scav_lock), so one spare entry is enough. */
static struct gm_addr_range gm_decommitted[GM_DECOMMIT_RANGES_MAX + 1];
static size_t gm_ndecommitted, gm_decommitted_pages;

int gm_heap_init(void)
{
    if (__atomic_load_n(&gm_heap.initialized, __ATOMIC_ACQUIRE)) return 0;
    int rc = 0;
    pthread_mutex_lock(&gm_heap.lock);
    if (!gm_heap.initialized) {
        gm_arch_check_page_size(GM_OS_PAGE);
        rc = gm_pagealloc_init(&gm_heap.pages, &gm_meta.pagealloc);
        if (rc == 0) {
            gm_fixalloc_init(&gm_heap.spanalloc, sizeof(struct gm_span), &gm_meta.spans);
            gm_scav_init();
            __atomic_store_n(&gm_heap.initialized, true, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&gm_heap.lock);
    return rc;
}

size_t gm_heap_ungrown_pages(void)
{
    /* Every page of the page allocator's chunks was marked in use when its
     * chunk was first grown into, and freed when grown: the rest are pages
     * no reservation of ours covers yet (or ever will), wherever they are. */
    return ((gm_heap.pages.in_use.total_bytes - gm_heap.grown) >> GM_PAGE_SHIFT) + gm_decommitted_pages;
}

/* Stamp the frees that follow with the time (the scavenger's decay). */
static void gm_heap_stamp(void) { gm_heap.pages.now = gm_now_ms(); }

uint64_t gm_heap_retained(void)
{
    uint64_t sys = gm_stat_load(&gm_heap.heap_sys), rel = gm_stat_load(&gm_heap.heap_released);
    return sys > rel ? sys - rel : 0;
}

/* Record the decommitted range [base, base + bytes); false if the list
 * has no room. */
static bool gm_decommitted_add(uintptr_t base, size_t bytes)
{
    uintptr_t limit = base + bytes;
    size_t i = 0, n = gm_ndecommitted;
    while (i < n && gm_decommitted[i].limit < base) i++;
    bool joins_prev = i < n && gm_decommitted[i].limit == base;
    size_t next = joins_prev ? i + 1 : i;
    bool joins_next = next < n && gm_decommitted[next].base == limit;
    if (joins_prev && joins_next) { /* fills the gap between two ranges */
        gm_decommitted[i].limit = gm_decommitted[next].limit;
        memmove(&gm_decommitted[next], &gm_decommitted[next + 1], (n - next - 1) * sizeof gm_decommitted[0]);
        gm_ndecommitted--;
    } else if (joins_prev) {
        gm_decommitted[i].limit = limit;
    } else if (joins_next) {
        gm_decommitted[next].base = base;
    } else {
        if (n == GM_DECOMMIT_RANGES_MAX + 1) return false;
        memmove(&gm_decommitted[i + 1], &gm_decommitted[i], (n - i) * sizeof gm_decommitted[0]);
        gm_decommitted[i] = (struct gm_addr_range){base, limit};
        gm_ndecommitted++;
    }
    gm_decommitted_pages += bytes >> GM_PAGE_SHIFT;
    return true;
}

/* Take free pages to decommit, in a chunk old for older_than: while the
 * list has room for one more range (under pressure or not), the highest
 * wholly free chunk; else (or if there is none) the free run right above
 * or below a decommitted range, which only widens a hole, costing no mapping (so a heap that
 * empties after pressure has filled the list still gives its commit
 * back). Returns the base and *npages, or 0; *scav as
 * gm_pagealloc_take_free_chunk. Heap lock held. */
static uintptr_t gm_decommit_take(uint32_t older_than, bool pressure, size_t *npages, size_t *scav)
{
    struct gm_pagealloc *pa = &gm_heap.pages;
    *npages = GM_CHUNK_PAGES;
    if (gm_ndecommitted < (pressure ? GM_DECOMMIT_RANGES_MAX : GM_DECOMMIT_RANGES)) {
        uintptr_t base = gm_pagealloc_take_free_chunk(pa, older_than, scav);
        if (base) return base;
    }
    for (size_t i = gm_ndecommitted; i-- > 0;) {
        uintptr_t base = gm_pagealloc_take_beside(pa, gm_decommitted[i].limit, true, older_than, npages, scav);
        if (!base) base = gm_pagealloc_take_beside(pa, gm_decommitted[i].base, false, older_than, npages, scav);
        if (base) return base;
    }
    *scav = 0;
    return 0;
}

/* Account for [base, base + bytes), just decommitted; scav_pages of it
 * had been counted released. Heap lock held. */
static void gm_decommitted_account(uintptr_t base, size_t bytes, size_t scav_pages)
{
    gm_decommitted_add(base, bytes); /* room was checked before the range was taken */
    gm_stat_add(&gm_heap.heap_released, -(int64_t)(scav_pages << GM_PAGE_SHIFT));
    gm_stat_add(&gm_scav.heap_decommitted, (int64_t)bytes);
    atomic_fetch_add_explicit(&gm_scav.decommitted_total, bytes, memory_order_relaxed);
}

/* The decommit failed: the chunk is still committed, give it back as free
 * dirty pages (its released pages are counted dirty from now on, which
 * errs on the side of holding memory). Heap lock held. */
static void gm_decommit_undo(uintptr_t base, size_t npages, size_t scav_pages)
{
    gm_stat_add(&gm_heap.heap_released, -(int64_t)(scav_pages << GM_PAGE_SHIFT));
    gm_pagealloc_free(&gm_heap.pages, base, npages);
}

/* Commit again npages' worth of a decommitted range, the lowest that fits
 * (whole chunks where the range has them), and hand it to the page
 * allocator as released pages. Heap lock held. 0, or -1 if no range is
 * long enough or the OS refuses. */
static int gm_heap_recommit(size_t npages)
{
    size_t need = npages << GM_PAGE_SHIFT;
    for (size_t i = 0; i < gm_ndecommitted; i++) {
        struct gm_addr_range *r = &gm_decommitted[i];
        size_t len = r->limit - r->base, bytes = gm_align_up(need, GM_CHUNK_BYTES);
        if (len < need) continue;
        if (bytes > len) bytes = gm_align_up(need, GM_GROW_ALIGN) < len ? gm_align_up(need, GM_GROW_ALIGN) : len;
        uintptr_t base = r->base;
        if (gm_sys_map((void *)base, bytes, &gm_heap.heap_sys) != 0) return -1;
        r->base += bytes;
        if (r->base == r->limit) {
            memmove(r, r + 1, (gm_ndecommitted - i - 1) * sizeof *r);
            gm_ndecommitted--;
        }
        gm_decommitted_pages -= bytes >> GM_PAGE_SHIFT;
        gm_pagealloc_free_scavenged(&gm_heap.pages, base, bytes >> GM_PAGE_SHIFT);
        gm_stat_add(&gm_heap.heap_released, (int64_t)bytes);
        gm_stat_add(&gm_scav.heap_decommitted, -(int64_t)bytes);
        atomic_fetch_add_explicit(&gm_scav.recommitted_total, bytes, memory_order_relaxed);
        return 0;
    }
    return -1;
}

/* Decommit wholly free chunks, any age, until want bytes, with the heap
 * lock held throughout (memory-limit pressure inside grow, where the
 * lock cannot be dropped). Returns bytes decommitted. */
static size_t gm_heap_decommit_locked(size_t want)
{
    size_t done = 0;
    gm_heap_stamp();
    while (done < want) {
        size_t n, scav;
        uintptr_t base = gm_decommit_take(gm_heap.pages.now, true, &n, &scav);
        if (!base) break;
        if (gm_sys_decommit((void *)base, n << GM_PAGE_SHIFT, &gm_heap.heap_sys) != 0) {
            gm_decommit_undo(base, n, scav);
            break;
        }
        gm_decommitted_account(base, n << GM_PAGE_SHIFT, scav);
        done += n << GM_PAGE_SHIFT;
    }
    return done;
}

/* How much of add bytes the heap may commit under the memory limit
 * (SIZE_MAX: all of it). Over the limit it first makes room by
 * decommitting free chunks; a soft limit then lets growth through anyway.
 * Heap lock held. */
__thread bool gm_heap_soft_ok __attribute__((tls_model("initial-exec")));

static size_t gm_heap_limit_room(size_t add)
{
    uint64_t limit = atomic_load_explicit(&gm_scav.limit, memory_order_relaxed);
    if (!limit) return SIZE_MAX;
    uint64_t committed = gm_stat_load(&gm_os.committed);
    if (committed + add <= limit) return SIZE_MAX;
    gm_heap_decommit_locked(committed + add - limit);
    committed = gm_stat_load(&gm_os.committed);
    if (committed + add <= limit) return SIZE_MAX;
    /* A soft limit holds like a hard one until the caller has reclaimed
     * what it could (gm_alloc_span), then lets growth through. */
    if (!atomic_load_explicit(&gm_scav.limit_hard, memory_order_relaxed) && gm_heap_soft_ok) return SIZE_MAX;
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

/* Go's (*mheap).grow: make at least npages contiguous free pages available.
 * Heap lock held. 0 or -1 (ENOMEM) with the heap as it was, except that a
 * new reservation, once made, is kept as curArena. */
static int gm_heap_grow(size_t npages)
{
    size_t need = npages << GM_PAGE_SHIFT;
    if (need / GM_PAGE_SIZE != npages || need > GM_ADDR_LIMIT) return -1;
    if (gm_ndecommitted && gm_heap_limit_room(gm_align_up(need, GM_CHUNK_BYTES)) == SIZE_MAX &&
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
    size_t room = gm_heap_limit_room(end - base);
    if (room < end - base) { /* a hard limit: grow by no more than needed */
        end = gm_align_up(base + need, GM_GROW_ALIGN);
        if (end > gm_heap.arena_end) end = gm_heap.arena_end;
        if (end - base > room) return -1;
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
    if (GM_UNLIKELY(!gm_heap_ready()) && gm_heap_init() != 0) goto nomem;
    if (npages == 0 || npages > (GM_ADDR_LIMIT >> GM_PAGE_SHIFT)) goto nomem;
    if (hl && npages < GM_PAGECACHE_MAX_SPAN) {
        struct gm_span *s = gm_heap_alloc_local(hl, npages, cls);
        if (s) return s;
    }
    pthread_mutex_lock(&gm_heap.lock);
    struct gm_span *s = gm_fixalloc_alloc(&gm_heap.spanalloc);
    if (!s) goto unlock_nomem;
    size_t scav;
    uint64_t sys0 = gm_stat_load(&gm_heap.heap_sys);
    uintptr_t base = gm_pagealloc_alloc(&gm_heap.pages, npages, &scav);
    if (!base) {
        if (gm_heap_grow(npages) == 0) base = gm_pagealloc_alloc(&gm_heap.pages, npages, &scav);
        if (!base) {
            gm_fixalloc_free(&gm_heap.spanalloc, s);
            goto unlock_nomem;
        }
    }
    gm_span_init(s, base, npages, cls, scav);
    uint64_t grew = gm_stat_load(&gm_heap.heap_sys) - sys0;
    pthread_mutex_unlock(&gm_heap.lock);
    if (grew) gm_scav_after_grow(grew);
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
    gm_heap_stamp();
    gm_pagealloc_free(&gm_heap.pages, s->base, s->npages);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)bytes);
    gm_fixalloc_free(&gm_heap.spanalloc, s);
    pthread_mutex_unlock(&gm_heap.lock);
    gm_scav_notify();
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
    gm_heap_stamp();
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

static inline uint64_t gm_span_bytes(const struct gm_span *s) { return (uint64_t)s->npages << GM_PAGE_SHIFT; }

/* An owner-written counter (no read-modify-write). */
static inline void gm_owner_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
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
        gm_owner_add(&hl->cache_took, gm_span_bytes(s));
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
    gm_owner_add(&hl->cache_put, gm_span_bytes(s));
    hl->cache_npages[slot] = s->npages;
    atomic_store_explicit(&s->state, GM_SPAN_CACHED, memory_order_release);
    struct gm_span *old = atomic_exchange_explicit(&hl->cache[slot], s, memory_order_acq_rel);
    if (old) {
        gm_owner_add(&hl->cache_took, gm_span_bytes(old));
        gm_heap_free_span(old);
    }
}

/* Give span s (ours alone: taken out of a cache) back as released pages:
 * it sat unused for a decay period already, so freeing it dirty would only
 * restart the clock of its chunk. Falls back to a plain free if the OS
 * refuses. */
static void gm_heap_release_span(struct gm_span *s)
{
    uint64_t bytes = gm_span_bytes(s);
    if (gm_sys_unused((void *)s->base, bytes) != 0) {
        gm_heap_free_span(s);
        return;
    }
    pthread_mutex_lock(&gm_heap.lock);
    atomic_store_explicit(&s->state, GM_SPAN_DEAD, memory_order_release);
    gm_pagealloc_free_scavenged(&gm_heap.pages, s->base, s->npages);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)bytes);
    gm_stat_add(&gm_heap.heap_released, (int64_t)bytes);
    gm_fixalloc_free(&gm_heap.spanalloc, s);
    pthread_mutex_unlock(&gm_heap.lock);
    atomic_fetch_add_explicit(&gm_scav.released_total, bytes, memory_order_relaxed);
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
    pthread_mutex_lock(&gm_heap.lock);
    gm_heap_stamp();
    if (!gm_pagecache_empty(&hl->pc)) gm_pagecache_flush(&hl->pc, &gm_heap.pages);
    memset(&hl->pc, 0, sizeof hl->pc);
    while (hl->nstash) gm_fixalloc_free(&gm_heap.spanalloc, hl->stash[--hl->nstash]);
    pthread_mutex_unlock(&gm_heap.lock);
}

/* ------------------------------------------------------------------------ */
/* Scavenger primitives                                                     */
/* ------------------------------------------------------------------------ */
/* Pages being released are marked in use in the page allocator while the
 * heap lock is dropped for the system call, so nobody allocates them; they
 * are in no statistic meanwhile, which is why scavenge.c serializes these
 * calls under gm_scav_lock and gm_check takes that lock too. */

/* Largest run released by one system call: a chunk. */
#define GM_SCAV_MAX_RUN GM_CHUNK_PAGES

size_t gm_heap_scavenge(size_t max_bytes, uint32_t older_than)
{
    size_t done = 0;
    while (done < max_bytes) {
        size_t want = (max_bytes - done) >> GM_PAGE_SHIFT, n = 0;
        if (want == 0) want = 1;
        if (want > GM_SCAV_MAX_RUN) want = GM_SCAV_MAX_RUN;
        pthread_mutex_lock(&gm_heap.lock);
        gm_heap_stamp(); /* the page allocator's now must not precede older_than */
        uintptr_t base = gm_pagealloc_scavenge_take(&gm_heap.pages, want, older_than, &n);
        pthread_mutex_unlock(&gm_heap.lock);
        if (!base) break;
        size_t bytes = n << GM_PAGE_SHIFT;
        int rc = gm_sys_unused((void *)base, bytes);
        pthread_mutex_lock(&gm_heap.lock);
        if (rc == 0) {
            gm_pagealloc_free_scavenged(&gm_heap.pages, base, n);
            gm_stat_add(&gm_heap.heap_released, (int64_t)bytes);
        } else {
            gm_pagealloc_free(&gm_heap.pages, base, n); /* still dirty */
        }
        pthread_mutex_unlock(&gm_heap.lock);
        if (rc != 0) break;
        atomic_fetch_add_explicit(&gm_scav.released_total, bytes, memory_order_relaxed);
        done += bytes;
    }
    return done;
}

size_t gm_heap_decommit(size_t max_bytes, uint32_t older_than, bool pressure)
{
    size_t done = 0;
    while (done < max_bytes) {
        size_t n, scav;
        pthread_mutex_lock(&gm_heap.lock);
        gm_heap_stamp();
        uintptr_t base = gm_decommit_take(older_than, pressure, &n, &scav);
        pthread_mutex_unlock(&gm_heap.lock);
        if (!base) break;
        /* heap_sys is lowered under the lock below, with the rest. */
        size_t bytes = n << GM_PAGE_SHIFT;
        int rc = gm_sys_decommit((void *)base, bytes, NULL);
        pthread_mutex_lock(&gm_heap.lock);
        if (rc == 0) {
            gm_stat_add(&gm_heap.heap_sys, -(int64_t)bytes);
            gm_decommitted_account(base, bytes, scav);
        } else {
            gm_decommit_undo(base, n, scav);
        }
        pthread_mutex_unlock(&gm_heap.lock);
        if (rc != 0) break;
        done += bytes;
    }
    return done;
}

struct gm_drain_arg {
    bool all;
    uint32_t now, decay_ms;
    size_t bytes;
};

static void gm_drain_one(struct gm_tcache *tc, void *argp)
{
    struct gm_drain_arg *a = argp;
    struct gm_heap_local *hl = &tc->hl;
    uint64_t put = atomic_load_explicit(&hl->cache_put, memory_order_relaxed);
    if (put != hl->cache_seen) { /* the owner used its cache since we looked */
        hl->cache_seen = put;
        hl->cache_seen_ms = a->now;
        if (!a->all) return;
    }
    if (a->all || (uint32_t)(a->now - hl->cache_seen_ms) >= a->decay_ms) a->bytes += gm_heap_local_drain(hl, true);
}

static void gm_cache_holds_one(struct gm_tcache *tc, void *argp)
{
    struct gm_heap_local *hl = &tc->hl;
    for (unsigned i = 0; i < GM_SPAN_CACHE_SLOTS; i++)
        if (atomic_load_explicit(&hl->cache[i], memory_order_relaxed)) *(bool *)argp = true;
}

bool gm_heap_caches_hold(void)
{
    bool any = false;
    gm_small_for_each_tcache(gm_cache_holds_one, &any);
    return any;
}

size_t gm_heap_drain_caches(bool all, uint32_t now, uint32_t decay_ms)
{
    struct gm_drain_arg a = {all, now, decay_ms, 0};
    gm_small_for_each_tcache(gm_drain_one, &a);
    return a.bytes;
}

/* Under memory pressure only (gm_scav_reclaim): decommit free runs of at
 * least min_pages inside chunks that still hold live pages, lowest first,
 * as long as the decommitted-range list has room (which bounds the extra
 * mappings this costs). Heap lock held across the system calls: this is
 * the path where allocation has failed anyway. Returns bytes decommitted. */
size_t gm_heap_decommit_runs(size_t min_pages)
{
    size_t done = 0;
    pthread_mutex_lock(&gm_heap.lock);
    for (size_t n = GM_CHUNK_PAGES / 2; n >= min_pages && gm_ndecommitted < GM_DECOMMIT_RANGES_MAX;) {
        size_t scav_bytes;
        uintptr_t base = gm_pagealloc_alloc(&gm_heap.pages, n, &scav_bytes);
        if (!base) {
            n /= 2;
            continue;
        }
        size_t bytes = n << GM_PAGE_SHIFT, scav = scav_bytes >> GM_PAGE_SHIFT;
        if (gm_sys_decommit((void *)base, bytes, &gm_heap.heap_sys) != 0) {
            gm_decommit_undo(base, n, scav);
            break;
        }
        gm_decommitted_account(base, bytes, scav);
        done += bytes;
    }
    pthread_mutex_unlock(&gm_heap.lock);
    return done;
}
