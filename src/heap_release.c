/*
 * heap_release.c — layer 4: what gives the heap's free memory back, the
 * primitives that scavenge.c drives (Go's scavenger's mheap side).
 *
 *   gm_heap_scavenge      free dirty pages, oldest chunks' highest runs
 *                         first, released with madvise (RSS drops, the
 *                         commit charge stays);
 *   gm_heap_decommit      free memory mapped PROT_NONE again (the commit
 *                         charge drops too): wholly free chunks while the
 *                         list of decommitted ranges has room, always the
 *                         free runs beside a decommitted range, which
 *                         widen a hole and cost no mapping, and, when the
 *                         heap holds more than its goal and while the
 *                         list has room to spare, free runs of at least
 *                         GM_DECOMMIT_RUN_PAGES inside chunks that still
 *                         hold live pages (a live set that shrinks while
 *                         the program works leaves no chunk wholly free);
 *   gm_heap_decommit_runs under memory pressure only, free runs inside
 *                         chunks that still hold live pages;
 *   gm_heap_drain_caches  the threads' span caches back to the heap;
 *   gm_heap_set_goal      the high_water mark above which spans whose
 *                         objects are all free go back to the heap.
 * Each takes the heap lock only to pick pages (marking them in use, so no
 * allocation takes them meanwhile) and to put them back (released, or
 * listed as decommitted), never across the system call; scavenge.c holds
 * its own lock around each call, so that one runs at a time and gm_check
 * never sees pages in flight.
 *
 * For realloc's page moves (large.c, under the same lock): a span whose
 * pages were moved away is freed as released (gm_heap_free_span_zeroed);
 * a span that pages were moved into may be mapped afresh when freed, to
 * join the heap's mapping again (gm_heap_free_span_remap); and a range
 * whose commit the OS did not give back becomes a decommitted range
 * (gm_heap_free_span_lost), in a slot held before the system call
 * (gm_heap_hold_slot), so that it always has room in the list.
 *
 * Decommitted ranges: sorted, coalesced, marked in use in the page
 * allocator and mapped PROT_NONE. Growth commits them again before it
 * touches curArena (gm_heap_recommit). The list is short on purpose: every
 * range is a hole in the heap's read-write mapping, so up to two more lines
 * in /proc/self/maps. The scavenger's paced work has a budget that grows
 * with the heap: GM_DECOMMIT_RANGES plus one hole per 4 MiB of heap, at
 * most GM_DECOMMIT_RANGES_PACED (so at most 96 more lines, whatever the
 * heap); runs inside chunks leave the last GM_DECOMMIT_RANGES / 2 of it to
 * whole chunks. Past it chunks are only released, but a hole may
 * always widen. Memory pressure (an allocation that fails otherwise)
 * has a budget that grows faster (gm_decommit_budget):
 * GM_DECOMMIT_RANGES_PRESSURE plus one hole per MiB of heap, at most
 * GM_DECOMMIT_RANGES_MAX, trading more mappings (still far below
 * vm.max_map_count's 65530) for not failing where the free memory is
 * scattered between live pages.
 */
#include "heap.h"

#include <string.h>

/* The decommitted ranges (see the top; heap lock). */
#define GM_DECOMMIT_RANGES 16
#define GM_DECOMMIT_RANGES_PACED 48
#define GM_DECOMMIT_RANGES_PRESSURE 64
#define GM_DECOMMIT_RANGES_MAX 1024
/* The shortest free run inside a chunk that paced work decommits (256 KiB:
 * a hole costs a system call and two mappings, and its pages one more
 * call when growth commits them again). */
#define GM_DECOMMIT_RUN_PAGES ((size_t)32)
/* One over the policy's maximum: gm_heap_decommit decides with the lock
 * held and records after its system call, and meanwhile growth may have
 * filled the list or recommitted the range its run was beside. Only one
 * such decommit is in flight (the scavenger's lock), so one spare entry is
 * enough. */
/* Past those, GM_DECOMMIT_SLOTS_HELD entries for ranges that lose their
 * commit outside the scavenger (gm_heap_hold_slot), each held before the
 * system call that may lose it. */
#define GM_DECOMMIT_SLOTS_HELD 16
#define GM_DECOMMITTED_CAP (GM_DECOMMIT_RANGES_MAX + 1 + GM_DECOMMIT_SLOTS_HELD)
static struct gm_addr_range gm_decommitted[GM_DECOMMITTED_CAP];

static size_t gm_ndecommitted, gm_decommitted_pages, gm_slots_held;

size_t gm_heap_decommitted_pages(void) { return gm_decommitted_pages; }

/* How many decommitted ranges the heap may have (see the top); under
 * pressure the heap's size, committed or decommitted, sets it. */
static size_t gm_decommit_budget(bool pressure)
{
    size_t mib = (size_t)((gm_stat_load(&gm_heap.heap_sys) + gm_stat_load(&gm_heap.heap_decommitted)) >> 20);
    size_t n = pressure ? GM_DECOMMIT_RANGES_PRESSURE + mib : GM_DECOMMIT_RANGES + mib / 4;
    size_t cap = pressure ? GM_DECOMMIT_RANGES_MAX : GM_DECOMMIT_RANGES_PACED;
    return n < cap ? n : cap;
}
bool gm_heap_has_decommitted(void) { return gm_ndecommitted != 0; }

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
        if (n == GM_DECOMMITTED_CAP) return false;
        memmove(&gm_decommitted[i + 1], &gm_decommitted[i], (n - i) * sizeof gm_decommitted[0]);
        gm_decommitted[i] = (struct gm_addr_range){base, limit};
        gm_ndecommitted++;
    }
    gm_decommitted_pages += bytes >> GM_PAGE_SHIFT;
#ifdef GM_DEBUG
    for (size_t k = 1; k < gm_ndecommitted; k++) /* sorted, coalesced */
        GM_ASSERT(gm_decommitted[k - 1].limit < gm_decommitted[k].base);
#endif
    return true;
}

/* The high_water mark for a heap whose goal is goal bytes (heap.h): the
 * address below which the heap's committed pages add up to goal, rounded
 * up to a chunk, walking the grown ranges and skipping the decommitted
 * ones inside them (they hold nothing, and the live set may sit above
 * them). UINTPTR_MAX while the heap commits no more than a chunk over its
 * goal. Heap lock held. */
static uintptr_t gm_goal_mark(uint64_t goal)
{
    const struct gm_addr_ranges *r = &gm_heap.pages.in_use;
    if (r->total_bytes - ((uint64_t)gm_decommitted_pages << GM_PAGE_SHIFT) <= goal + GM_CHUNK_BYTES) return UINTPTR_MAX;
    uint64_t below = 0;
    size_t d = 0;
    for (size_t i = 0; i < r->len; i++) {
        for (uintptr_t p = r->ranges[i].base, lim = r->ranges[i].limit; p < lim;) {
            while (d < gm_ndecommitted && gm_decommitted[d].limit <= p) d++;
            bool hole = d < gm_ndecommitted && gm_decommitted[d].base < lim;
            uintptr_t end = !hole ? lim : gm_decommitted[d].base > p ? gm_decommitted[d].base : p;
            if (below + (end - p) >= goal) return gm_align_up(p + (goal - below), GM_CHUNK_BYTES);
            below += end - p;
            if (!hole) break;
            p = gm_decommitted[d].limit < lim ? gm_decommitted[d].limit : lim;
        }
    }
    return UINTPTR_MAX;
}

void gm_heap_set_goal(uint64_t goal)
{
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    uintptr_t mark = gm_goal_mark(goal);
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    atomic_store_explicit(&gm_heap.goal, goal, memory_order_relaxed);
    atomic_store_explicit(&gm_heap.high_water, mark, memory_order_relaxed);
}

/* Take free pages to decommit, in a chunk old for older_than: while the
 * budget has room for one more range (gm_decommit_budget), the highest
 * wholly free chunk; else (or if there is none) the free run right above
 * or below a decommitted range, which only widens a hole, costing no
 * mapping (so a heap that empties after pressure has filled the list
 * still gives its commit back); else, if runs and while the budget has
 * room to spare, the longest free run of GM_DECOMMIT_RUN_PAGES or more.
 * Returns the base and *npages, or 0; *scav as
 * gm_pagealloc_take_free_chunk. Heap lock held. */
static uintptr_t gm_decommit_take(uint32_t older_than, bool pressure, bool runs, size_t *npages, size_t *scav)
{
    struct gm_pagealloc *pa = &gm_heap.pages;
    size_t budget = gm_decommit_budget(pressure);
    *npages = GM_CHUNK_PAGES;
    if (gm_ndecommitted < budget) {
        uintptr_t base = gm_pagealloc_take_free_chunk(pa, older_than, scav);
        if (base) return base;
    }
    for (size_t i = gm_ndecommitted; i-- > 0;) {
        uintptr_t base = gm_pagealloc_take_beside(pa, gm_decommitted[i].limit, true, older_than, npages, scav);
        if (!base) base = gm_pagealloc_take_beside(pa, gm_decommitted[i].base, false, older_than, npages, scav);
        if (base) return base;
    }
    /* The longest runs first (each costs one hole, whatever its length),
     * the highest among runs of the same length class. */
    if (runs && gm_ndecommitted + GM_DECOMMIT_RANGES / 2 < budget)
        for (size_t min = GM_CHUNK_PAGES / 2; min >= GM_DECOMMIT_RUN_PAGES; min /= 2) {
            uintptr_t base = gm_pagealloc_take_run(pa, min, older_than, npages, scav);
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
    gm_stat_add(&gm_heap.heap_decommitted, (int64_t)bytes);
    atomic_fetch_add_explicit(&gm_heap.decommitted_total, bytes, memory_order_relaxed);
}

/* The decommit failed: the chunk is still committed, give it back as free
 * dirty pages (its released pages are counted dirty from now on, which
 * errs on the side of holding memory). Heap lock held. */
static void gm_decommit_undo(uintptr_t base, size_t npages, size_t scav_pages)
{
    gm_stat_add(&gm_heap.heap_released, -(int64_t)(scav_pages << GM_PAGE_SHIFT));
    gm_pagealloc_free(&gm_heap.pages, base, npages);
}

/* Commit again the first bytes of decommitted range i and hand them to the
 * page allocator as released pages. Heap lock held. 0, or -1 if the OS
 * refuses. */
static int gm_recommit_front(size_t i, size_t bytes)
{
    struct gm_addr_range *r = &gm_decommitted[i];
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
    gm_stat_add(&gm_heap.heap_decommitted, -(int64_t)bytes);
    atomic_fetch_add_explicit(&gm_heap.recommitted_total, bytes, memory_order_relaxed);
    return 0;
}

/* Commit again npages' worth of a decommitted range, the lowest that fits
 * (whole chunks where the range has them), and hand it to the page
 * allocator as released pages. Heap lock held. 0, or -1 if no range is
 * long enough or the OS refuses. */
int gm_heap_recommit(size_t npages)
{
    size_t need = npages << GM_PAGE_SHIFT;
    for (size_t i = 0; i < gm_ndecommitted; i++) {
        size_t len = gm_decommitted[i].limit - gm_decommitted[i].base, bytes = gm_align_up(need, GM_CHUNK_BYTES);
        if (len < need) continue;
        if (bytes > len) bytes = gm_align_up(need, GM_GROW_ALIGN) < len ? gm_align_up(need, GM_GROW_ALIGN) : len;
        return gm_recommit_front(i, bytes);
    }
    return -1;
}

int gm_heap_recommit_at(uintptr_t addr, size_t npages)
{
    size_t i = 0;
    while (i < gm_ndecommitted && gm_decommitted[i].base < addr) i++;
    if (i == gm_ndecommitted || gm_decommitted[i].base != addr) return -1;
    size_t need = npages << GM_PAGE_SHIFT, len = gm_decommitted[i].limit - addr;
    if (len < need) return -1;
    return gm_recommit_front(i, gm_align_up(need, GM_GROW_ALIGN) < len ? gm_align_up(need, GM_GROW_ALIGN) : len);
}

/* Decommit wholly free chunks, any age, until want bytes, with the heap
 * lock held throughout (memory-limit pressure inside grow, where the
 * lock cannot be dropped). Returns bytes decommitted. */
size_t gm_heap_decommit_locked(size_t want)
{
    size_t done = 0;
    gm_heap_stamp();
    while (done < want) {
        size_t n, scav;
        uintptr_t base = gm_decommit_take(gm_heap.pages.now, true, false, &n, &scav);
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

/* Give span s (ours alone: taken out of a cache) back as released pages:
 * it sat unused for a decay period already, so freeing it dirty would only
 * restart the clock of its chunk. Falls back to a plain free if the OS
 * refuses. */
void gm_heap_release_span(struct gm_span *s)
{
    uint64_t bytes = gm_span_bytes(s);
    if (gm_sys_unused((void *)s->base, bytes) != 0) {
        gm_heap_free_span(s);
        return;
    }
    gm_heap_free_span_zeroed(s);
    atomic_fetch_add_explicit(&gm_heap.released_total, bytes, memory_order_relaxed);
}

void gm_heap_free_span_zeroed(struct gm_span *s)
{
    uint64_t bytes = gm_span_bytes(s);
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    atomic_store_explicit(&s->state, GM_SPAN_DEAD, memory_order_release);
    gm_pagealloc_free_scavenged(&gm_heap.pages, s->base, s->npages);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)bytes);
    gm_stat_add(&gm_heap.heap_released, (int64_t)bytes);
    gm_fixalloc_free(&gm_heap.spanalloc, s);
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
}

bool gm_heap_hold_slot(void)
{
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    bool ok = gm_slots_held < GM_DECOMMIT_SLOTS_HELD;
    gm_slots_held += ok;
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    return ok;
}

void gm_heap_drop_slot(void)
{
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    gm_slots_held--;
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
}

void gm_heap_free_span_lost(struct gm_span *s, size_t lost)
{
    uint64_t bytes = gm_span_bytes(s);
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    atomic_store_explicit(&s->state, GM_SPAN_DEAD, memory_order_release);
    gm_heap_stamp();
    gm_slots_held--;
    gm_decommitted_add(s->base, lost); /* the held slot is room */
    gm_stat_add(&gm_heap.heap_decommitted, (int64_t)lost);
    atomic_fetch_add_explicit(&gm_heap.decommitted_total, lost, memory_order_relaxed);
    if (bytes > lost) gm_pagealloc_free(&gm_heap.pages, s->base + lost, (bytes - lost) >> GM_PAGE_SHIFT);
    gm_stat_add(&gm_heap.heap_inuse, -(int64_t)bytes);
    gm_fixalloc_free(&gm_heap.spanalloc, s);
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
}

void gm_heap_free_span_remap(struct gm_span *s)
{
    uint64_t bytes = gm_span_bytes(s);
    if (!gm_heap_hold_slot()) {
        gm_heap_free_span(s);
        return;
    }
    if (gm_sys_decommit((void *)s->base, bytes, &gm_heap.heap_sys) != 0) {
        gm_heap_drop_slot();
        gm_heap_free_span(s);
        return;
    }
    if (gm_sys_map((void *)s->base, bytes, &gm_heap.heap_sys) != 0) {
        gm_heap_free_span_lost(s, bytes);
        return;
    }
    gm_heap_drop_slot();
    gm_heap_free_span_zeroed(s);
    atomic_fetch_add_explicit(&gm_heap.released_total, bytes, memory_order_relaxed);
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
        gm_lock(&gm_heap.lock, GM_RANK_HEAP);
        gm_heap_stamp(); /* the page allocator's now must not precede older_than */
        uintptr_t base = gm_pagealloc_scavenge_take(&gm_heap.pages, want, older_than, &n);
        gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
        if (!base) break;
        size_t bytes = n << GM_PAGE_SHIFT;
        int rc = gm_sys_unused((void *)base, bytes);
        gm_lock(&gm_heap.lock, GM_RANK_HEAP);
        if (rc == 0) {
            gm_pagealloc_free_scavenged(&gm_heap.pages, base, n);
            gm_stat_add(&gm_heap.heap_released, (int64_t)bytes);
        } else {
            gm_pagealloc_free(&gm_heap.pages, base, n); /* still dirty */
        }
        gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
        if (rc != 0) break;
        atomic_fetch_add_explicit(&gm_heap.released_total, bytes, memory_order_relaxed);
        done += bytes;
    }
    return done;
}

size_t gm_heap_decommit(size_t max_bytes, uint32_t older_than, bool pressure, bool runs)
{
    size_t done = 0;
    while (done < max_bytes) {
        size_t n, scav;
        gm_lock(&gm_heap.lock, GM_RANK_HEAP);
        gm_heap_stamp();
        uintptr_t base = gm_decommit_take(older_than, pressure, runs, &n, &scav);
        gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
        if (!base) break;
        /* heap_sys is lowered under the lock below, with the rest. */
        size_t bytes = n << GM_PAGE_SHIFT;
        int rc = gm_sys_decommit((void *)base, bytes, NULL);
        gm_lock(&gm_heap.lock, GM_RANK_HEAP);
        if (rc == 0) {
            gm_stat_add(&gm_heap.heap_sys, -(int64_t)bytes);
            gm_decommitted_account(base, bytes, scav);
        } else {
            gm_decommit_undo(base, n, scav);
        }
        gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
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

static void gm_drain_one(struct gm_heap_local *hl, struct gm_drain_arg *a)
{
    uint64_t put = atomic_load_explicit(&hl->cache_put, memory_order_relaxed);
    if (put != hl->cache_seen) { /* the owner used its cache since we looked */
        hl->cache_seen = put;
        hl->cache_seen_ms = a->now;
        if (!a->all) return;
    }
    if (a->all || (uint32_t)(a->now - hl->cache_seen_ms) >= a->decay_ms) a->bytes += gm_heap_local_drain(hl, true);
}

bool gm_heap_caches_hold(void)
{
    for (struct gm_heap_local *hl = gm_heap_locals_first(); hl; hl = atomic_load(&hl->all_next))
        for (unsigned i = 0; i < GM_SPAN_CACHE_SLOTS; i++)
            if (atomic_load_explicit(&hl->cache[i], memory_order_relaxed)) return true;
    return false;
}

size_t gm_heap_drain_caches(bool all, uint32_t now, uint32_t decay_ms)
{
    struct gm_drain_arg a = {all, now, decay_ms, 0};
    for (struct gm_heap_local *hl = gm_heap_locals_first(); hl; hl = atomic_load(&hl->all_next)) gm_drain_one(hl, &a);
    return a.bytes;
}

/* Under memory pressure only (scavenge.c's reclaim): decommit free runs of at
 * least min_pages inside chunks that still hold live pages, lowest first,
 * as long as the pressure budget of ranges has room (which bounds the
 * extra mappings this costs). Heap lock held across the system calls: this is
 * the path where allocation has failed anyway. Returns bytes decommitted. */
size_t gm_heap_decommit_runs(size_t min_pages)
{
    size_t done = 0;
    gm_lock(&gm_heap.lock, GM_RANK_HEAP);
    size_t budget = gm_decommit_budget(true);
    for (size_t n = GM_CHUNK_PAGES / 2; n >= min_pages && gm_ndecommitted < budget;) {
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
    gm_unlock(&gm_heap.lock, GM_RANK_HEAP);
    return done;
}
