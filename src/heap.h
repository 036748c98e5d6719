/*
 * heap.h — layer 4: the heap (heap.c, heap_release.c; Go's mheap): growth
 * through curArena, spans and the span lookup, the threads' stocks and
 * span caches, the memory limit, and the primitives that release and
 * decommit free memory. Includes pagealloc.h.
 */
#ifndef GM_HEAP_H
#define GM_HEAP_H

#include "pagealloc.h"

enum gm_span_state {
    GM_SPAN_DEAD = 0,  /* not in use: the record is free or being set up */
    GM_SPAN_SMALL = 1, /* in use, carved into objects of one size class */
    GM_SPAN_LARGE = 2, /* in use, one large object */
    GM_SPAN_CACHED = 3, /* a freed large span kept in a thread's span cache:
                         * idle pages (counted in heap_inuse inside the heap,
                         * subtracted from it in reports), no object */
};

struct gm_tcache;

/* Go's mspan. The heap fields are written under the heap lock before the
 * span is published in its arena's spans[] with a release store; the small
 * object fields belong to the span's owner (or to the central lock while the
 * span is unowned), except thread_free, which any thread pushes onto. */
struct gm_span {
    /* heap fields */
    uintptr_t base;
    uint32_t npages;
    _Atomic uint8_t state;  /* enum gm_span_state */
    uint8_t sizeclass;      /* 0 for large spans */
    uint8_t needzero;       /* 0: every byte is zero (fresh from the OS) */
    uint8_t slow_free;      /* owner-private: nonzero sends the owner's frees
                             * to the slow path: GM_SLOW_FULL (in the owner's
                             * full list), GM_SLOW_SAMPLED (holds blocks the
                             * heap profile sampled; tcache.h) */
    /* small-object fields (span.h, tcache.h): the first cache line holds all that
     * the fast paths touch */
    uint32_t elemsize;
    uint32_t divmagic;
    _Atomic uintptr_t limit; /* end of the carved objects (span.c's lazy
                              * carving): nothing past it was handed out */
    uint32_t nelems;         /* objects the span can hold */
    uint32_t used;          /* objects out, less remote frees counted (owner) */
    void *free;             /* allocation list (owner) */
    void *local_free;       /* the owner's frees (owner) */
    struct gm_tcache *_Atomic owner;      /* NULL while unowned */
    _Atomic uintptr_t thread_free;        /* remote frees | GM_TF_* */
    _Atomic uint32_t remote_frees;        /* pushed onto thread_free, not yet
                                           * subtracted from used */
    struct gm_span *next, *prev;          /* tcache or central list */
    struct gm_span *_Atomic notify_next;  /* owner's notify stack */
    _Atomic uint8_t notify_pending;       /* on an owner's notify stack */
    uint8_t checked;        /* made in checked mode (GOMALLOC_CHECK): its
                             * objects carry canaries, free ones a fill */
    uint8_t nursery;        /* an owned class's span that young threads
                             * take batches from: never owned (central.c) */
    uint8_t moved;          /* large: realloc moved pages into it (os.c's
                             * gm_sys_move), which split the heap's mapping */
    _Atomic uint16_t prof_samples; /* live blocks of it the heap profile
                             * sampled (profile.h); 0 unless profiling */
    /* large objects */
    size_t large_size;      /* requested bytes (usable size is npages pages) */
} __attribute__((aligned(GM_CACHE_LINE))); /* records are cache-line aligned */
/* The small-object fast paths (tcache.h) touch one line of the record. */
_Static_assert(offsetof(struct gm_span, owner) + sizeof(void *) <= GM_CACHE_LINE,
               "what the fast paths read is in the first cache line");
_Static_assert(sizeof(struct gm_span) == 2 * GM_CACHE_LINE, "a span record is two cache lines");

struct gm_heap {
    pthread_mutex_t lock;
    struct gm_pagealloc pages;  /* protected by lock */
    /* curArena: the part of the newest reservation not yet handed to the page
     * allocator. base is page aligned; pages from base to the end of base's
     * chunk are marked in use in the page allocator but not yet mapped. */
    uintptr_t arena_base, arena_end;
    uint64_t grown;             /* bytes ever handed to the page allocator */
    struct gm_fixalloc spanalloc; /* protected by lock */
    gm_stat heap_sys;           /* mapped for the heap */
    gm_stat heap_inuse;         /* in spans in use */
    gm_stat heap_released;      /* free and scavenged (incl. page caches) */
    gm_stat heap_decommitted;   /* decommitted (Reserved again), address kept */
    /* The most heap_inuse has been since the scavenger last took it
     * (gm_heap_take_inuse_peak): what its release goal follows. */
    _Atomic uint64_t inuse_peak;
    /* Where the heap's release goal ends (the scavenger's, through
     * gm_heap_set_goal): spans at or above it whose objects are all free
     * go back to the heap rather than being reused in place, so that a
     * live set that shrank gathers below it. UINTPTR_MAX while the heap
     * holds no more than its goal, and from the moment heap_inuse grows
     * past goal (gm_heap_inuse_grew) until the next pass sets it again:
     * a heap that grows is not shrinking, and a mark set before the growth
     * would send every span the growth makes away from its thread. */
    _Atomic uintptr_t high_water;
    _Atomic uint64_t goal; /* bytes, as last set with high_water */
    _Atomic uint64_t released_total;    /* bytes ever released with madvise */
    _Atomic uint64_t decommitted_total; /* bytes ever decommitted */
    _Atomic uint64_t recommitted_total; /* decommitted bytes committed again */
    /* The memory limit (Go's GOMEMLIMIT), which growth enforces: bytes, 0
     * for none; hard: growth past it fails, else it only makes the heap
     * decommit first (and the scavenger return memory). */
    _Atomic uint64_t limit;
    _Atomic bool limit_hard;
    bool initialized;
};
extern struct gm_heap gm_heap GM_HIDDEN;

/* A thread's private stock for lock-free span allocation (Go's per-P page
 * cache and mspancache): a 64-page window and a few span records. A
 * thread gets them after its first GM_PAGECACHE_AFTER spans, which come
 * from the heap under its lock: Go has one page cache per P, and a window
 * per thread would hold up to 512 KiB of committed pages in each of a
 * thousand threads that make a few spans each. */
#define GM_SPAN_STASH 16
#define GM_PAGECACHE_AFTER 8
#define GM_SPAN_CACHE_SLOTS 8
#define GM_SPAN_CACHE_MAX_PAGES 32 /* cache spans of at most 256 KiB */
struct gm_heap_local {
    struct gm_heap_local *_Atomic all_next; /* the heap's list of them */
    struct gm_pagecache pc;
    struct gm_span *stash[GM_SPAN_STASH];
    unsigned nstash;
    unsigned spans_locked; /* spans made before the stock, up to GM_PAGECACHE_AFTER */
    /* Large spans this thread freed, kept whole for its next large objects
     * (state GM_SPAN_CACHED; idle, not in heap_inuse). The owner takes and puts with an atomic
     * exchange, so any thread may empty a slot the same way (the scavenger,
     * gm_heap_local_drain). */
    struct gm_span *_Atomic cache[GM_SPAN_CACHE_SLOTS];
    uint32_t cache_npages[GM_SPAN_CACHE_SLOTS]; /* owner-private: what it put */
    unsigned cache_next;
    /* Bytes in the cache = put - took - drained; the owner writes the first
     * two without read-modify-write, drainers add to the third. */
    _Atomic uint64_t cache_put, cache_took, cache_drained;
    uint64_t cache_seen;      /* the scavenger's last look at cache_put ... */
    uint32_t cache_seen_ms;   /* ... and when it changed (under gm_scav_lock) */
};

/* While the heap is smaller than a chunk it grows in steps that start at
 * GM_GROW_MIN and double; what it commits is a multiple of GM_GROW_ALIGN. */
#define GM_GROW_MIN ((uintptr_t)256 << 10)
#define GM_GROW_ALIGN ((uintptr_t)64 << 10)

int gm_heap_init(void) GM_HIDDEN; /* idempotent; -1 if the OS refuses */

/* What the heap tells the layer that returns memory (scavenge.c registers
 * them as it starts; either may be NULL): it grew by bytes (called with no
 * lock held: synchronous scavenging may run), and it has free pages that
 * were not there (any context but the heap lock: wakes the scavenger). */
struct gm_heap_hooks {
    void (*grew)(size_t bytes);
    void (*freed)(void);
};
void gm_heap_set_hooks(const struct gm_heap_hooks *hooks) GM_HIDDEN;
static inline bool gm_heap_ready(void) { return __atomic_load_n(&gm_heap.initialized, __ATOMIC_ACQUIRE); }
/* Allocate a span of npages for sizeclass (0 = large). hl, if not NULL, is
 * the calling thread's stock, used without the heap lock for spans of fewer
 * than GM_PAGECACHE_MAX_SPAN pages. The span is published in the arena index
 * with state set; small fields are left for the span layer. needzero says
 * whether the memory may hold old data. A soft memory limit holds like a
 * hard one unless past_soft_limit (the caller has reclaimed what it could:
 * tcache.c's gm_alloc_span). NULL + errno=ENOMEM on failure, with the heap
 * unchanged. */
struct gm_span *gm_heap_alloc_span(struct gm_heap_local *hl, size_t npages, unsigned sizeclass,
                                   bool past_soft_limit) GM_HIDDEN;
void gm_heap_free_span(struct gm_span *s) GM_HIDDEN;
/* Try to grow span s (large) in place to npages: true on success. */
bool gm_heap_grow_span(struct gm_span *s, size_t npages) GM_HIDDEN;
/* Shrink span s (large) in place to npages (>= 1), freeing the tail. */
void gm_heap_shrink_span(struct gm_span *s, size_t npages) GM_HIDDEN;
/* Free the head and tail of large span s so that it keeps exactly
 * [new_base, new_base + npages pages) (aligned allocation). */
void gm_heap_trim_span(struct gm_span *s, uintptr_t new_base, size_t npages) GM_HIDDEN;
/* Put hl, zeroed, in the heap's list of thread stocks, which the heap
 * drains (its span caches) and counts without asking whose they are. A
 * stock is registered once and never leaves the list (its thread's tcache
 * is reused by a later thread, stock and all). */
void gm_heap_local_register(struct gm_heap_local *hl) GM_HIDDEN;
/* Give a thread's stock back to the heap (thread exit). Owner only. */
void gm_heap_local_flush(struct gm_heap_local *hl) GM_HIDDEN;
/* A large span of npages..npages*9/8 pages from the thread's span cache,
 * made GM_SPAN_LARGE again (needzero set), or NULL. Owner only. */
struct gm_span *gm_heap_cache_take(struct gm_heap_local *hl, size_t npages) GM_HIDDEN;
/* Free large span s into the thread's span cache, or to the heap if it is
 * too big for it (evicting the oldest entry when full). Owner only. */
void gm_heap_cache_put(struct gm_heap_local *hl, struct gm_span *s) GM_HIDDEN;
/* Free every span in hl's span cache to the heap, as released pages if
 * release (the scavenger) or as free dirty pages (thread exit); any thread,
 * lock-free against the owner. Returns the bytes freed. No lock held. */
size_t gm_heap_local_drain(struct gm_heap_local *hl, bool release) GM_HIDDEN;
/* Pages marked in use in the page allocator that are not mapped (the rest
 * of a partly grown chunk, decommitted chunks); heap lock held. For the
 * slow check. */
size_t gm_heap_ungrown_pages(void) GM_HIDDEN;

/* The scavenger's primitives (heap_release.c, driven by scavenge.c, which
 * holds its lock around each call so that one runs at a time and gm_check
 * never sees pages in flight). Each takes the heap lock only to pick pages
 * and to put them back, never across the system call. */
/* Return free dirty pages last freed at or before older_than (a gm_now_ms
 * stamp), highest addresses first, until max_bytes; returns bytes released. */
size_t gm_heap_scavenge(size_t max_bytes, uint32_t older_than) GM_HIDDEN;
/* Decommit free memory idle since older_than, until max_bytes: wholly free
 * chunks, highest first, while the list of decommitted ranges has room for
 * another, then free runs beside a decommitted range (which widen a hole
 * and cost no mapping). Returns bytes decommitted. Decommitted memory is
 * committed again by growth before any new address space is. pressure: an
 * allocation fails otherwise, so more holes in the heap's mapping are
 * acceptable. runs: then also free runs inside chunks that hold live pages,
 * the longest first, within the paced budget (heap_release.c), for a heap
 * over its goal. */
size_t gm_heap_decommit(size_t max_bytes, uint32_t older_than, bool pressure, bool runs) GM_HIDDEN;
/* Memory pressure: decommit free runs of at least min_pages inside chunks
 * that still hold live pages (whole free chunks go first, gm_heap_decommit). */
size_t gm_heap_decommit_runs(size_t min_pages) GM_HIDDEN;
/* Drain threads' span caches: all of them, or those unchanged for decay_ms. */
size_t gm_heap_drain_caches(bool all, uint32_t now, uint32_t decay_ms) GM_HIDDEN;
bool gm_heap_caches_hold(void) GM_HIDDEN; /* any span cache not empty? */
/* Retained heap memory (heap_sys - heap_released): what scavenging lowers. */
uint64_t gm_heap_retained(void) GM_HIDDEN;
/* The most heap_inuse has been since the last call, which starts the next
 * such period at heap_inuse's present value. */
uint64_t gm_heap_take_inuse_peak(void) GM_HIDDEN;
/* Set high_water for a heap that should hold goal bytes: the address
 * below which its committed pages add up to goal (decommitted holes do not
 * count), or UINTPTR_MAX if it commits no more than that (or little
 * more). heap_release.c. */
void gm_heap_set_goal(uint64_t goal) GM_HIDDEN;
/* Is the heap over its goal (a high_water mark set)? */
static inline bool gm_heap_shrinking(void)
{
    return atomic_load_explicit(&gm_heap.high_water, memory_order_relaxed) != UINTPTR_MAX;
}
/* Is s above the heap's goal (see high_water)? */
static inline bool gm_heap_above_goal(const struct gm_span *s)
{
    return s->base >= atomic_load_explicit(&gm_heap.high_water, memory_order_relaxed);
}

/* Calls fn once for every span that is not dead, found at its base page in
 * the arenas' span tables (the statistics' walk, gm_check's). A span being
 * set up or freed meanwhile may be seen in either state: callers that need
 * a still heap hold its lock. */
void gm_heap_for_each_span(void (*fn)(struct gm_span *s, unsigned state, void *arg), void *arg) GM_HIDDEN;
/* The first of the threads' stocks (the list goes on through all_next). */
struct gm_heap_local *gm_heap_locals_first(void) GM_HIDDEN;
/* fork (init.c): the heap lock, taken in base.h's order. */
void gm_heap_fork_prepare(void) GM_HIDDEN;
void gm_heap_fork_parent(void) GM_HIDDEN;
void gm_heap_fork_child(void) GM_HIDDEN;

/* Between heap.c and heap_release.c (nothing else calls these): the clock
 * of the page allocator's stamps, the heap's freed-pages hook, the
 * decommitted ranges (how many pages, any at all, commit some again), a
 * decommit under the heap lock (the memory limit at growth), and the
 * release of a span taken from a span cache. */
void gm_heap_stamp(void) GM_HIDDEN;
void gm_heap_freed(void) GM_HIDDEN;
size_t gm_heap_decommitted_pages(void) GM_HIDDEN;
bool gm_heap_has_decommitted(void) GM_HIDDEN;
int gm_heap_recommit(size_t npages) GM_HIDDEN;
/* Commit again npages' worth (rounded to GM_GROW_ALIGN) of the decommitted
 * range that starts at addr, if there is one that long, for a span that
 * ends at addr to grow into. Heap lock held. 0, or -1. */
int gm_heap_recommit_at(uintptr_t addr, size_t npages) GM_HIDDEN;
size_t gm_heap_decommit_locked(size_t want) GM_HIDDEN;
void gm_heap_release_span(struct gm_span *s) GM_HIDDEN;
/* Free span s whose pages no longer hold anything (realloc moved them away,
 * gm_sys_move): back to the page allocator as released pages. */
void gm_heap_free_span_zeroed(struct gm_span *s) GM_HIDDEN;
/* A slot of the decommitted list held for a range that may lose its commit
 * outside the scavenger (a page move, or a moved span's remap): false if
 * none is left. gm_heap_free_span_lost uses it; gm_heap_drop_slot gives it
 * back unused. */
bool gm_heap_hold_slot(void) GM_HIDDEN;
void gm_heap_drop_slot(void) GM_HIDDEN;
/* Free span s whose first lost bytes lost their commit (gm_sys_move
 * returned -2 and subtracted them from heap_sys, or a remap could not
 * commit them again): they become a decommitted range, in a held slot,
 * the rest free pages. */
void gm_heap_free_span_lost(struct gm_span *s, size_t lost) GM_HIDDEN;
/* Free a span that pages were moved into (s->moved): its range is mapped
 * afresh (PROT_NONE, then committed), which joins it to the mappings
 * around it again, and its pages go back as released; a plain free if no
 * slot is left or the OS refuses the first step. */
void gm_heap_free_span_remap(struct gm_span *s) GM_HIDDEN;
static inline uint64_t gm_span_bytes(const struct gm_span *s) { return (uint64_t)s->npages << GM_PAGE_SHIFT; }


/* The span owning address p, or NULL if p is not in an in-use span. Fast,
 * lock-free; the caller checks state/ranges it relies on. */
static inline struct gm_span *gm_span_lookup(uintptr_t p)
{
    uintptr_t off = p - GM_FLAT_BASE;
    if (GM_LIKELY(off < atomic_load_explicit(&gm_flat_bytes, memory_order_acquire)))
        return atomic_load_explicit(&gm_flat_spans[off >> GM_PAGE_SHIFT], memory_order_acquire);
    struct gm_arena *a = gm_arena_of(p);
    if (GM_UNLIKELY(!a)) return NULL;
    return atomic_load_explicit(&a->spans[(p >> GM_PAGE_SHIFT) & (GM_PAGES_PER_ARENA - 1)],
                                memory_order_acquire);
}

#endif /* GM_HEAP_H */
