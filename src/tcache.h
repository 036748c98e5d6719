/*
 * tcache.h — layer 7: thread caches (tcache.c; Go's mcache), central lists
 * and batches (central.c; Go's mcentral), and the inline fast paths of
 * small objects. Includes span.h.
 *
 * A small-object span is owned by one thread's tcache or by nobody. The
 * owner allocates from s->free and frees onto s->local_free with no atomic
 * read-modify-write; other threads push onto s->thread_free with a CAS,
 * and the owner takes that list whole when free runs dry. A tcache holds,
 * per class, the current span plus partial spans (used oldest first) and
 * full ones (armed with NOTIFY, so that the first remote free tells the
 * owner). Spans no thread owns, with free objects, sit in central lists;
 * a thread that exits hands its spans there (or orphans full ones: the
 * first remote free brings them back). Objects above 4 KiB come from spans
 * all threads share, a batch at a time, and a thread's frees of them wait
 * in its stash for its next batch (central.c).
 */
#ifndef GM_TCACHE_H
#define GM_TCACHE_H

#include "span.h"

/* Per class, class 0 for large objects; written by the owner only. Two
 * arrays, so that the fast paths index them by class directly. */
struct gm_class_counts {
    _Atomic uint64_t mallocs[GM_NUM_CLASSES], frees[GM_NUM_CLASSES];
};

/* Go's mcache: one per thread, found through gm_tc (initial-exec TLS). */
struct gm_tcache {
    struct gm_span *current[GM_NUM_CLASSES]; /* never NULL: gm_empty_span */
    struct gm_span *partial[GM_NUM_CLASSES]; /* owned, may have free objects */
    struct gm_span *partial_tail[GM_NUM_CLASSES]; /* partial is used oldest first */
    struct gm_span *_Atomic spare[GM_NUM_CLASSES]; /* owned, emptied, kept a while */
    struct gm_span *full[GM_NUM_CLASSES];    /* owned, full when last seen */
    struct gm_span *_Atomic notify;          /* spans with news for us */
    struct gm_heap_local hl;
    struct gm_class_counts counts;
    _Atomic uint64_t large_bytes_alloc, large_bytes_freed; /* whole pages */
    _Atomic uint64_t large_req_alloc, large_req_freed;     /* requested bytes */
    uint8_t spans_made[GM_NUM_CLASSES];      /* from the heap, saturating */
    uint8_t young[GM_NUM_CLASSES];           /* nursery batches taken */
    /* A class's current "span" while it is served in batches (a shared
     * class always, an owned one while the thread is young in it): objects
     * taken from central spans (only free, elemsize, nelems and used are
     * meaningful: the batch holds nelems - used objects, central.c). */
    struct gm_span batch[GM_NUM_CLASSES];
    /* A shared class's stash: objects this thread freed, for its next
     * refill; the owner pushes (CAS), any thread may take it whole
     * (exchange). stash_n: what the owner pushed since it last took it. */
    void *_Atomic stash[GM_NUM_SHARED_CLASSES];
    uint8_t stash_n[GM_NUM_SHARED_CLASSES];
    struct gm_tcache *all_next, *all_prev;   /* registry (gm_tc_lock) */
    uint32_t refills;                        /* refill slow paths, for gm_scav_tick */
    bool dead;
    /* The heap profile's sampler (profile.h), owner-private: bytes to the
     * next sample, the rate this thread samples at (0: it does not), the
     * gm_prof_epoch it last saw, its random state. */
    int64_t prof_left;
    uint64_t prof_rate;
    uint64_t prof_rng;
    uint32_t prof_epoch;
};
extern __thread struct gm_tcache *gm_tc GM_HIDDEN;
/* What the inline fast paths use: gm_tc, or NULL in checked mode so that
 * every malloc and free goes through the API's checked slow paths. */
extern __thread struct gm_tcache *gm_tc_fast GM_HIDDEN;
/* What malloc's inline fast path uses: gm_tc_fast, or NULL while the thread
 * samples for the heap profile, so that its mallocs take api.h's second
 * fast path, which counts down (free's fast path is untouched: a span with
 * sampled blocks sends its owner's frees to the slow path by its slow_free
 * flag). */
extern __thread struct gm_tcache *gm_tc_malloc GM_HIDDEN;
/* A span's slow_free flags (heap.h): in its owner's full list; holds
 * sampled blocks (prof_samples > 0 when the owner set it). */
#define GM_SLOW_FULL 1
#define GM_SLOW_SAMPLED 2
extern struct gm_span gm_empty_span GM_HIDDEN; /* free == NULL, used as current */

/* For this thread (the first time: the heap and the scavenger too); NULL
 * on failure. */
struct gm_tcache *gm_tcache_init(void) GM_HIDDEN;
void *gm_small_alloc_slow(struct gm_tcache *tc, unsigned cls) GM_HIDDEN;
/* Free p in span s (state SMALL) from a thread that is not its owner, or
 * from the owner when the span is in its full list. */
void gm_small_free_slow(struct gm_tcache *tc, struct gm_span *s, void *p) GM_HIDDEN;
void gm_tcache_release(struct gm_tcache *tc) GM_HIDDEN; /* thread exit */
/* The heap profile started or stopped (gm_prof_epoch moved): tc's sampler
 * and, if tc is the caller's, its malloc fast path follow. Owner only. */
void gm_tcache_prof_sync(struct gm_tcache *tc) GM_HIDDEN;
/* p, just allocated by tc's thread from span s, was sampled: s's owner
 * frees it through the slow path from now on. */
void gm_tcache_prof_mark(struct gm_tcache *tc, struct gm_span *s) GM_HIDDEN;
/* A span from the heap for tc's thread (small or large); if the heap
 * cannot grow (the OS, RLIMIT_DATA or the memory limit refuses), first give
 * back everything the thread and the heap hold unused (gm_tcache_reclaim)
 * and try again, past a soft memory limit this time. */
struct gm_span *gm_alloc_span(struct gm_tcache *tc, size_t npages, unsigned sizeclass) GM_HIDDEN;
/* Return tc's empty spans and caches, central empties, and (through the
 * scavenger) every free page and free chunk now. No lock held. */
void gm_tcache_reclaim(struct gm_tcache *tc) GM_HIDDEN;
/* Walk accounting for gm_check: objects in use per class over all spans. */
void gm_small_count_live(uint64_t live[GM_NUM_CLASSES]) GM_HIDDEN;

/* Calls fn on every tcache, live or dead, under the registry lock. */
void gm_small_for_each_tcache(void (*fn)(struct gm_tcache *, void *), void *arg) GM_HIDDEN;
/* fork: the registry lock before, released or reset after (init.c). */
void gm_tcache_fork_prepare(void) GM_HIDDEN;
void gm_tcache_fork_parent(void) GM_HIDDEN;
void gm_tcache_fork_child(void) GM_HIDDEN;
extern bool gm_small_forked_mt GM_HIDDEN;

/* ------------------------------------------------------------------------ */
/* Central lists and batches (central.c)                                    */
/* ------------------------------------------------------------------------ */

/* gm_scav_tick reads heap-wide counters that other threads write; a refill
 * from the thread's own spans or its batch changes nothing there, so one
 * refill in GM_TICK_REFILLS is often enough (spans coming from or going
 * back to the heap tick on their own). */
#define GM_TICK_REFILLS 16

/* Put a span no thread owns, with free objects, in its class's list. */
void gm_central_push(struct gm_span *s) GM_HIDDEN;
/* Adopt a span with free objects from the list of cls for tc, or NULL;
 * none above the heap's goal (gm_heap_above_goal) unless any. */
struct gm_span *gm_central_take(struct gm_tcache *tc, unsigned cls, bool any) GM_HIDDEN;
/* Empty central spans, and threads' spare spans, back to the heap (the
 * scavenger's trim hook); the bytes. */
size_t gm_central_trim(void) GM_HIDDEN;
bool gm_central_holds(void) GM_HIDDEN; /* any span in a central list, or a spare? (racy) */
/* The batch of class cls ran dry (a shared class, or an owned one the
 * thread is young in): refill it and allocate from it. */
void *gm_batch_refill(struct gm_tcache *tc, unsigned cls) GM_HIDDEN;
/* Give tc's batched and stashed objects back to their spans. Owner only. */
void gm_batch_flush(struct gm_tcache *tc) GM_HIDDEN;
/* A free of p, a live object of shared class cls, by tc's thread: kept in
 * its stash for the next refill if the stash has room (true), else not. */
bool gm_batch_keep(struct gm_tcache *tc, unsigned cls, void *p) GM_HIDDEN;
/* The remote free of p (marked free here) into s: one CAS, and what the
 * span's flags ask (tell its owner, or put it in central). */
void gm_free_remote(struct gm_span *s, void *p) GM_HIDDEN;
/* The BUSY windows of remote frees (see central.c), for the owner's side. */
void gm_busy_enter(void) GM_HIDDEN;
void gm_busy_leave(void) GM_HIDDEN;
/* fork (init.c takes base.h's order): the BUSY lock for writing; every
 * central lock, in class order. */
void gm_busy_fork_prepare(void) GM_HIDDEN;
void gm_busy_fork_parent(void) GM_HIDDEN;
void gm_busy_fork_child(void) GM_HIDDEN;
void gm_central_fork_prepare(void) GM_HIDDEN;
void gm_central_fork_parent(void) GM_HIDDEN;
void gm_central_fork_child(void) GM_HIDDEN;
/* Spares held by all threads (tcache.c keeps them, central.c trims them). */
extern _Atomic long gm_spares_held GM_HIDDEN;
struct gm_span *gm_spare_take(struct gm_tcache *tc, unsigned cls) GM_HIDDEN;
size_t gm_spare_free(struct gm_span *s) GM_HIDDEN;
/* A new span of class cls from the heap, owned by tc, first page carved. */
struct gm_span *gm_span_new(struct gm_tcache *tc, unsigned cls) GM_HIDDEN;

/* Span lists (owner-private, or under a central lock), linked through
 * next and prev. */
static inline void gm_list_push(struct gm_span **head, struct gm_span *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static inline void gm_list_remove(struct gm_span **head, struct gm_span *s)
{
    if (s->prev) s->prev->next = s->next;
    else *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}


/* Take p, the first object on s->free (owned by tc's thread, or under the
 * central lock). */
static inline void *gm_span_pop(struct gm_tcache *tc, struct gm_span *s, void **p, unsigned cls)
{
    gm_vg_quiet_begin();
    s->free = p[0];
    /* The next malloc of this class reads that object's link: start its
     * cache miss now, behind the caller's work on p. */
    __builtin_prefetch(p[0], 1);
    p[1] = NULL; /* clear the freed-object marker */
    gm_vg_quiet_end();
    s->used++;
    gm_count_inc(&tc->counts.mallocs[cls]);
    gm_vg_alloc(p, s->elemsize, false);
    return p;
}

/* The fast paths: a few dozen instructions, thread-local state only. A
 * shared class's current span is the thread's batch for it (central.c). */
static inline void *gm_small_alloc(struct gm_tcache *tc, unsigned cls)
{
    struct gm_span *s = tc->current[cls];
    void **p = (void **)s->free;
    if (GM_LIKELY(p != NULL)) return gm_span_pop(tc, s, p, cls);
    return gm_small_alloc_slow(tc, cls);
}


/* The owner's free onto local_free, once p is known to be a live object of
 * s, which tc owns and has not filed as full. */
static inline __attribute__((always_inline)) void gm_small_free_local(struct gm_tcache *tc, struct gm_span *s,
                                                                      void *p, uintptr_t marker)
{
    uintptr_t *o = (uintptr_t *)p;
    o[1] = marker;
    o[0] = (uintptr_t)s->local_free;
    s->local_free = p;
    gm_vg_free(p);
    gm_count_inc(&tc->counts.frees[s->sizeclass]);
    if (GM_UNLIKELY(--s->used == 0)) gm_small_free_slow(tc, s, NULL); /* span emptied */
}

/* Suspect pointers, which gm_small_free's fast path leaves to others:
 * checked (aborting unless a false alarm), then freed. */
void gm_small_free_other(struct gm_tcache *tc, struct gm_span *s, void *p) GM_HIDDEN;

/* Each exception is a single tail call, so the fast path saves no
 * registers. A valid object of another thread's span or of a full span
 * goes straight to gm_small_free_slow. */
static inline void gm_small_free(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    uintptr_t a = (uintptr_t)p, marker = gm_free_key ^ a;
    if (GM_UNLIKELY(!gm_span_is_object(s, a) || gm_vg_word(&((uintptr_t *)p)[1]) == marker)) {
        gm_small_free_other(tc, s, p);
        return;
    }
    if (GM_UNLIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) != tc || s->slow_free)) {
        gm_small_free_slow(tc, s, p);
        return;
    }
    gm_small_free_local(tc, s, p, marker);
}

#endif /* GM_TCACHE_H */
