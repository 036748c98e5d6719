/*
 * tcache.c — layer 7: thread caches (Go's mcache, adapted to a world with
 * explicit free): their life, the owner's refill and free slow paths, the
 * full spans' notifications, spare spans, reclaim under memory pressure.
 *
 * A tcache holds, per class, the current span plus two lists of owned
 * spans: partial (may have free objects; used oldest first, so that a
 * refill finds the objects freed into a span over a while, not the one just
 * freed into the newest) and full (had none when last looked at). A full
 * span must not be forgotten when other threads free into it, so it is
 * armed with NOTIFY (central.c): the first remote freer pushes it onto the
 * owner's notify stack, and the owner moves it back to partial on its slow
 * path. NOTIFY, once armed, stays armed until a remote free uses it (see
 * gm_span_to_full), and is cleared before a span changes hands.
 *
 * A thread's first spans of a class up to 1 KiB are one page, not the
 * table's 32 KiB, so that a thread that uses a class a little holds little
 * of it. A span that empties is kept as the class's spare for its next
 * refill (one per class), so that a span given back and needed again soon
 * costs no heap lock both ways.
 *
 * A live heap that shrinks. When the scavenger's goal sets a high_water
 * mark (scavenge.c), a refill uses no span above it: such a span leaves
 * the thread (gm_span_move_out: to the heap if empty, else to central,
 * which adopts none above the mark), and a spare above it is freed, not
 * reused. A partial span that other threads' frees emptied goes back too
 * when others wait behind it. So the objects still live gather in low
 * spans and the high chunks empty out, to be returned whole.
 *
 * A young thread (fewer than GM_YOUNG_BATCHES refills of a class) takes
 * the class's objects in small batches from central.c's nursery rather
 * than a span of its own, so a thousand threads that each keep a few
 * objects of many classes do not hold a span per class each.
 *
 * A thread that exits (its key destructor: gm_tcache_release) turns NOTIFY
 * into ORPHAN (waiting out a BUSY freer, so no freer still holds its
 * tcache), hands partial spans to central, gives empty spans and spares
 * back to the heap, and tells the scavenger it is leaving. Tcaches are never
 * freed: a dead thread's tcache is reused by a new thread, so a freer that
 * read a span's owner can always dereference it, and the per-class
 * counters keep summing.
 *
 * When the heap cannot grow, gm_alloc_span (the one place small and large
 * allocations get spans) reclaims what the thread and the heap hold unused
 * and tries again, past a soft memory limit.
 *
 * Locks: the registry's (GM_RANK_TCACHES), base.h's order.
 */
#include "tcache.h"

#include <sched.h>
#include <string.h>

#include "profile.h"

__thread struct gm_tcache *gm_tc __attribute__((tls_model("initial-exec")));
__thread struct gm_tcache *gm_tc_fast __attribute__((tls_model("initial-exec")));
__thread struct gm_tcache *gm_tc_malloc __attribute__((tls_model("initial-exec")));
struct gm_span gm_empty_span;

/* Registry of all tcaches, live and dead (for statistics and reuse). */
static pthread_mutex_t gm_tc_lock = PTHREAD_MUTEX_INITIALIZER;

static struct gm_tcache *gm_tc_all;

static struct gm_fixalloc gm_tc_alloc;

static pthread_key_t gm_tc_key;

static bool gm_tc_key_ok;

/* ------------------------------------------------------------------------ */
/* Span lists (owner-private, or under a central lock)                      */
/* ------------------------------------------------------------------------ */

/* A tcache's partial spans are used oldest first: a span that has just got
 * an object back waits at the tail while those ahead of it gather more, so
 * that a refill finds many free objects, not the one just freed (with a
 * random live set, taking the newest made most refills yield one object). */
static void gm_partial_append(struct gm_tcache *tc, struct gm_span *s)
{
    unsigned cls = s->sizeclass;
    struct gm_span *tail = tc->partial_tail[cls];
    s->next = NULL;
    s->prev = tail;
    if (tail) tail->next = s;
    else tc->partial[cls] = s;
    tc->partial_tail[cls] = s;
}

static void gm_partial_remove(struct gm_tcache *tc, struct gm_span *s)
{
    if (tc->partial_tail[s->sizeclass] == s) tc->partial_tail[s->sizeclass] = s->prev;
    gm_list_remove(&tc->partial[s->sizeclass], s);
}

/* ------------------------------------------------------------------------ */
/* Spans coming and going                                                   */
/* ------------------------------------------------------------------------ */

/* A thread's first spans of a class up to 1 KiB are one page (Go's size),
 * not the table's 32 KiB: a thread that uses a class a little holds little
 * of it, which matters when there are many threads (each holds a span per
 * class it uses). Only a thread that keeps coming back gets the big spans
 * that make its refills rare. */
#define GM_SMALL_SPAN_WARMUP 2
struct gm_span *gm_span_new(struct gm_tcache *tc, unsigned cls)
{
    size_t npages = gm_class_npages[cls];
    uint32_t nelems = gm_class_nelems[cls];
    if (npages > 1 && gm_class_size[cls] <= 1024 && tc->spans_made[cls] < GM_SMALL_SPAN_WARMUP) {
        npages = 1;
        nelems = GM_PAGE_SIZE / gm_class_size[cls];
    }
    struct gm_span *s = gm_alloc_span(tc, npages, cls);
    if (!s) return NULL;
    if (tc->spans_made[cls] < UINT8_MAX) tc->spans_made[cls]++;
    s->elemsize = gm_class_size[cls];
    s->divmagic = gm_class_divmagic[cls];
    s->nelems = nelems;
    s->checked = gm_opt.check;
    s->nursery = 0;
    atomic_store_explicit(&s->prof_samples, 0, memory_order_relaxed);
    atomic_store_explicit(&s->limit, s->base, memory_order_relaxed);
    gm_span_carve(s);
    atomic_store_explicit(&s->owner, tc, memory_order_relaxed);
    return s;
}

/* A span that empties is kept, one per class, for the class's next refill:
 * given back and needed again soon, it would cost the heap lock both ways
 * and a new carving. Spares go back to the heap every GM_SPARE_REFILLS
 * refills of the thread, at thread exit, and whenever central lists are
 * trimmed (every scavenger pass, gm_scavenge, reclaim), from any thread. A
 * spare is owned, in no list, and quiet (no object in use, no remote free
 * or notification on its way). The owner alone fills a slot (a store);
 * anyone empties it with an exchange, and frees what it took. */
#define GM_SPARE_REFILLS 256

/* Spares held by all threads: the scavenger does not park while there are
 * any (gm_central_holds), and a new one wakes it, so an idle thread's
 * spares still go back. */
_Atomic long gm_spares_held;

static void gm_spare_put(struct gm_tcache *tc, struct gm_span *s)
{
    atomic_fetch_add_explicit(&gm_spares_held, 1, memory_order_relaxed);
    atomic_store_explicit(&tc->spare[s->sizeclass], s, memory_order_release);
    gm_scav_notify();
}

struct gm_span *gm_spare_take(struct gm_tcache *tc, unsigned cls)
{
    if (!atomic_load_explicit(&tc->spare[cls], memory_order_relaxed)) return NULL;
    struct gm_span *s = atomic_exchange_explicit(&tc->spare[cls], NULL, memory_order_acquire);
    if (s) atomic_fetch_sub_explicit(&gm_spares_held, 1, memory_order_relaxed);
    return s;
}

/* Give a spare taken from its slot back to the heap; returns its bytes. */
size_t gm_spare_free(struct gm_span *s)
{
    size_t bytes = (size_t)s->npages << GM_PAGE_SHIFT;
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    gm_heap_free_span(s);
    return bytes;
}

static void gm_spares_release(struct gm_tcache *tc)
{
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        struct gm_span *s = gm_spare_take(tc, c);
        if (s) gm_spare_free(s);
    }
}

/* Can s, owned and with no object in use, leave its thread now? Not while
 * a freer may be about to tell us about it, or has, or while a remote free
 * waits to be collected. */
static bool gm_span_quiet(const struct gm_span *s)
{
    uintptr_t tf = atomic_load_explicit(&s->thread_free, memory_order_acquire);
    return (tf & GM_TF_MASK) != GM_TF_BUSY && !(tf & ~(uintptr_t)GM_TF_MASK) &&
           !atomic_load_explicit(&s->notify_pending, memory_order_acquire);
}

/* s, owned, quiet, empty and in no list: keep it as the class's spare, or
 * give its pages back. */
static void gm_span_drop(struct gm_tcache *tc, struct gm_span *s)
{
    s->slow_free &= (uint8_t)~GM_SLOW_FULL;
    if (!gm_heap_above_goal(s) && !atomic_load_explicit(&tc->spare[s->sizeclass], memory_order_relaxed)) {
        gm_spare_put(tc, s);
        return;
    }
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    gm_heap_free_span(s);
}

/* The span has no object in use: give its pages back (or keep it as the
 * class's spare) unless it must stay. */
static void gm_span_release_if_empty(struct gm_tcache *tc, struct gm_span *s)
{
    unsigned cls = s->sizeclass;
    if (s->used != 0 || tc->current[cls] == s || !gm_span_quiet(s)) return;
    if (s->slow_free & GM_SLOW_FULL) gm_list_remove(&tc->full[cls], s);
    else gm_partial_remove(tc, s);
    gm_span_drop(tc, s);
}

/* Put an exhausted owned span on the full list, armed so the first remote
 * free tells us. False if remote frees arrived meanwhile (collect instead).
 * The arming outlives the full list: taking the span off it (unfull) leaves
 * NOTIFY set until a remote free uses it up, so a span that fills and
 * drains by its owner's own frees again and again (a steady live set) pays
 * no atomic read-modify-write after the first time. A notification about
 * a span that is no longer full is harmless (the owner checks GM_SLOW_FULL). */
static bool gm_span_to_full(struct gm_tcache *tc, struct gm_span *s)
{
    uintptr_t expect = GM_TF_NONE;
    if (atomic_load_explicit(&s->thread_free, memory_order_relaxed) != GM_TF_NOTIFY &&
        !atomic_compare_exchange_strong_explicit(&s->thread_free, &expect, GM_TF_NOTIFY, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    s->slow_free |= GM_SLOW_FULL;
    gm_list_push(&tc->full[s->sizeclass], s);
    return true;
}

/* The owner takes s off its full list (it has free objects now). */
static void gm_span_unfull(struct gm_tcache *tc, struct gm_span *s)
{
    gm_list_remove(&tc->full[s->sizeclass], s);
    s->slow_free &= (uint8_t)~GM_SLOW_FULL;
    gm_partial_append(tc, s);
}

/* Move spans that remote freers told us about from full to partial. */
static void gm_drain_notify(struct gm_tcache *tc)
{
    if (!atomic_load_explicit(&tc->notify, memory_order_relaxed)) return;
    struct gm_span *s = atomic_exchange_explicit(&tc->notify, NULL, memory_order_acquire);
    while (s) {
        struct gm_span *next = atomic_load_explicit(&s->notify_next, memory_order_relaxed);
        atomic_store_explicit(&s->notify_pending, 0, memory_order_release);
        if (atomic_load_explicit(&s->owner, memory_order_relaxed) == tc && (s->slow_free & GM_SLOW_FULL))
            gm_span_unfull(tc, s);
        s = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Allocation and free slow paths                                           */
/* ------------------------------------------------------------------------ */

/* s had nothing to collect just now: file it as full, unless remote frees
 * came in meanwhile. True if s has free objects after all. s is in no list. */
static bool gm_span_refresh(struct gm_tcache *tc, struct gm_span *s)
{
    while (!gm_span_to_full(tc, s)) {
        if (gm_span_collect(s)) return true;
        /* A freer holds BUSY with nothing left to collect: it is done in a
         * moment. */
        sched_yield();
    }
    return false;
}

static void gm_span_disown(struct gm_tcache *tc, struct gm_span *s);

/* s, in no list, lies above the heap's goal (gm_heap.high_water): its
 * pages are better free, and refills better served from below. So it
 * leaves the thread: to the heap if empty, else to the central list, where
 * it waits for its last objects to be freed (central.c adopts no span
 * above the goal, and trims empty ones). */
static void gm_span_move_out(struct gm_tcache *tc, struct gm_span *s)
{
    if (s->used == 0 && gm_span_quiet(s)) gm_span_drop(tc, s);
    else gm_span_disown(tc, s);
}

/* Young threads. A thread's first objects of an owned class come in
 * batches from the class's nursery, spans no thread owns (central.c), as a
 * shared class's always do: a thread that allocates a few objects of many
 * classes and keeps them (one of a thousand threads of a server) then
 * holds no span of its own, touched for one page, per class. After
 * GM_YOUNG_BATCHES batches of a class it has shown it uses the class, and
 * its refills get spans of its own. Owned-class objects from a nursery are
 * freed as remote frees, by any thread, their allocator too. Checked mode
 * (GOMALLOC_CHECK) has none: its frees must come back to the thread's own
 * spans, where the next allocation checks what was written after free. */
#define GM_YOUNG_BATCHES 4

/* Should the refill of owned class cls come from the nursery? Leaves
 * current as the batch if so, else a span or gm_empty_span. */
static bool gm_young_refill(struct gm_tcache *tc, unsigned cls)
{
    bool batch = tc->current[cls] == &tc->batch[cls];
    if (!batch && tc->current[cls] != &gm_empty_span) return false;
    if (tc->young[cls] < GM_YOUNG_BATCHES && !tc->partial[cls] && !gm_opt.check) {
        tc->young[cls]++;
        tc->current[cls] = &tc->batch[cls];
        return true;
    }
    tc->current[cls] = &gm_empty_span;
    return false;
}

/* tc's current span of owned class c, or gm_empty_span while that is the
 * class's batch. */
static struct gm_span *gm_current_span(struct gm_tcache *tc, unsigned c)
{
    return tc->current[c] == &tc->batch[c] ? &gm_empty_span : tc->current[c];
}

static void *gm_small_refill(struct gm_tcache *tc, unsigned cls)
{
    if (gm_class_shared(cls)) return gm_batch_refill(tc, cls);
    if (gm_young_refill(tc, cls)) return gm_batch_refill(tc, cls);
    if (GM_UNLIKELY(++tc->refills % GM_TICK_REFILLS == 0)) {
        gm_scav_tick();
        if (tc->refills % GM_SPARE_REFILLS == 0) gm_spares_release(tc);
    }
    struct gm_span *s = tc->current[cls];
    if (atomic_load_explicit(&tc->notify, memory_order_relaxed)) gm_drain_notify(tc);
    if (s != &gm_empty_span) {
        bool has = gm_span_collect(s);
        if (has && !gm_heap_above_goal(s)) return gm_small_alloc(tc, cls);
        tc->current[cls] = &gm_empty_span;
        if (has) gm_span_move_out(tc, s);
        else if (gm_span_refresh(tc, s)) goto found;
    }
    while ((s = tc->partial[cls]) != NULL) {
        gm_partial_remove(tc, s);
        if (!gm_span_collect(s) && !gm_span_refresh(tc, s)) continue;
        if (gm_heap_above_goal(s)) {
            gm_span_move_out(tc, s);
            continue;
        }
        /* Its objects are all free: while the heap is over its goal (a live
         * set that shrank, often on other threads' frees), it goes if more
         * spans wait behind it, or the thread would keep every span it
         * ever had. In a steady heap it is used, with no heap lock. */
        if (s->used == 0 && tc->partial[cls] && gm_heap_shrinking() && gm_span_quiet(s)) {
            gm_span_drop(tc, s);
            continue;
        }
        goto found;
    }
    gm_scav_tick();
    /* An allocation inside the tick (see gm_batch_refill) may have given
     * the class a current span: use it rather than lose it. */
    if (tc->current[cls] != &gm_empty_span) return gm_small_alloc(tc, cls);
    s = gm_central_take(tc, cls, false);
    if (!s && (s = gm_spare_take(tc, cls)) != NULL) {
        gm_span_collect(s);
        if (gm_heap_above_goal(s)) {
            gm_spare_free(s);
            s = NULL;
        }
    }
    if (!s) s = gm_span_new(tc, cls);
    /* The heap cannot grow: spans above the goal are better than nothing. */
    if (!s) s = gm_central_take(tc, cls, true);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
found:
    /* Adopted with blocks the heap profile sampled: frees must see them. */
    if (GM_UNLIKELY(atomic_load_explicit(&s->prof_samples, memory_order_relaxed))) s->slow_free |= GM_SLOW_SAMPLED;
    tc->current[cls] = s;
    return gm_small_alloc(tc, cls);
}

/* malloc's fast path lands here, so errno is kept here (api.c). */
void *gm_small_alloc_slow(struct gm_tcache *tc, unsigned cls)
{
    int saved = errno;
    if (GM_UNLIKELY(tc->prof_epoch != gm_prof_epoch_now())) gm_tcache_prof_sync(tc);
    return gm_errno_result(gm_small_refill(tc, cls), saved);
}

/* The owner's fast path emptied s. The tick may start the scavenger or
 * run its pass, whose system calls may fail: free keeps errno (api.c). */
static __attribute__((noinline)) void gm_span_emptied(struct gm_tcache *tc, struct gm_span *s)
{
    int saved = errno;
    gm_span_release_if_empty(tc, s);
    gm_scav_tick_free();
    errno = saved;
}

/* The owner freeing into a span on its full list. */
static __attribute__((noinline)) void gm_small_free_full(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    uintptr_t *o = p;
    o[1] = gm_free_key ^ (uintptr_t)p;
    o[0] = (uintptr_t)s->local_free;
    s->local_free = p;
    gm_vg_free(p);
    s->used--;
    gm_count_inc(&tc->counts.frees[s->sizeclass]);
    if (s->slow_free & GM_SLOW_FULL) gm_span_unfull(tc, s);
    if (s->used == 0) gm_span_release_if_empty(tc, s);
}

/* The owner freeing p into a span with sampled blocks (GM_SLOW_SAMPLED):
 * the profile counts p's free if p was one, and the flag goes once the
 * span holds none (remote frees may have taken the last ones). */
static __attribute__((noinline)) void gm_small_free_sampled(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    if (atomic_load_explicit(&s->prof_samples, memory_order_relaxed)) gm_prof_freed(s, p);
    if (!atomic_load_explicit(&s->prof_samples, memory_order_relaxed)) s->slow_free &= (uint8_t)~GM_SLOW_SAMPLED;
    if (s->slow_free & GM_SLOW_FULL) gm_small_free_full(tc, s, p);
    else gm_small_free_local(tc, s, p, gm_free_key ^ (uintptr_t)p);
}

/* The remote free comes first and calls nothing in its usual case, so it
 * saves no registers. A span's prof_samples shares the cache line of the
 * thread_free word the remote free pushes onto. */
void gm_small_free_slow(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    if (GM_LIKELY(p != NULL && (!tc || atomic_load_explicit(&s->owner, memory_order_relaxed) != tc))) {
        if (GM_UNLIKELY(atomic_load_explicit(&s->prof_samples, memory_order_relaxed))) gm_prof_freed(s, p);
        /* A shared class's object in some thread's batch is free: the fast
         * path only knew the other marker. */
        if (GM_UNLIKELY(gm_vg_word(&((uintptr_t *)p)[1]) == (gm_free_key ^ (uintptr_t)p ^ GM_BATCH_MARK)))
            gm_span_check_free(s, p, GM_OP_FREE);
        if (tc) gm_count_inc(&tc->counts.frees[s->sizeclass]);
        if (tc && gm_class_shared(s->sizeclass) && !s->checked && gm_batch_keep(tc, s->sizeclass, p)) return;
        gm_free_remote(s, p);
    } else if (p == NULL) {
        gm_span_emptied(tc, s);
    } else if (GM_UNLIKELY(s->slow_free & GM_SLOW_SAMPLED)) {
        gm_small_free_sampled(tc, s, p);
    } else {
        gm_small_free_full(tc, s, p);
    }
}

void gm_small_free_other(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    /* A batched object's mark is checked on the remote path
     * (gm_small_free_slow): shared spans have no owner. */
    uintptr_t a = (uintptr_t)p, marker = gm_free_key ^ a;
    if (!gm_span_is_object(s, a) || gm_vg_word(&((uintptr_t *)p)[1]) == marker)
        gm_span_check_free(s, p, GM_OP_FREE); /* aborts unless a false alarm */
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == tc && !s->slow_free) gm_small_free_local(tc, s, p, marker);
    else gm_small_free_slow(tc, s, p);
}

/* ------------------------------------------------------------------------ */
/* Thread caches                                                            */
/* ------------------------------------------------------------------------ */

static void gm_tcache_destructor(void *arg)
{
    struct gm_tcache *tc = arg;
    if (tc && gm_tc == tc) gm_tcache_release(tc);
}

struct gm_tcache *gm_tcache_init(void)
{
    if (gm_tc) return gm_tc;
    if (gm_scav_start() != 0) return NULL;
    gm_lock(&gm_tc_lock, GM_RANK_TCACHES);
    if (!gm_tc_key_ok) {
        static const struct gm_scav_hooks hooks = {gm_central_trim, gm_central_holds};
        gm_scav_set_hooks(&hooks);
        gm_free_key_init();
        gm_fixalloc_init(&gm_tc_alloc, sizeof(struct gm_tcache), &gm_meta.tcaches);
        gm_tc_key_ok = pthread_key_create(&gm_tc_key, gm_tcache_destructor) == 0;
    }
    struct gm_tcache *tc;
    for (tc = gm_tc_all; tc && !tc->dead; tc = tc->all_next) {
    }
    if (tc) {
        tc->dead = false;
    } else {
        tc = gm_fixalloc_alloc(&gm_tc_alloc);
        if (tc) {
            tc->all_next = gm_tc_all;
            if (gm_tc_all) gm_tc_all->all_prev = tc;
            gm_tc_all = tc;
            gm_heap_local_register(&tc->hl);
        }
    }
    gm_unlock(&gm_tc_lock, GM_RANK_TCACHES);
    if (!tc) return NULL;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        struct gm_span *st = &tc->batch[c];
        memset(st, 0, sizeof *st);
        st->sizeclass = (uint8_t)c;
        st->elemsize = gm_class_size[c];
        tc->current[c] = gm_class_shared(c) ? st : &gm_empty_span;
    }
    memset(tc->spans_made, 0, sizeof tc->spans_made);
    memset(tc->young, 0, sizeof tc->young);
    memset(tc->stash_n, 0, sizeof tc->stash_n);
    for (unsigned i = 0; i < GM_NUM_SHARED_CLASSES; i++) atomic_store(&tc->stash[i], NULL);
    gm_tc = tc;
    gm_tc_fast = gm_tc_malloc = gm_opt.check ? NULL : tc;
    gm_tcache_prof_sync(tc);
    if (gm_tc_key_ok) pthread_setspecific(gm_tc_key, tc);
    gm_scav_thread_start();
    return tc;
}

/* Clear a NOTIFY left armed on s (gm_span_to_full), waiting out a freer
 * that is telling us about it right now, before s changes hands: a freer
 * must never find NOTIFY on a span with no owner. */
static void gm_span_disarm(struct gm_span *s)
{
    for (;;) {
        uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_acquire);
        if ((old & GM_TF_MASK) == GM_TF_BUSY) {
            sched_yield();
            continue;
        }
        if ((old & GM_TF_MASK) != GM_TF_NOTIFY ||
            atomic_compare_exchange_weak_explicit(&s->thread_free, &old, old & ~(uintptr_t)GM_TF_MASK,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return;
    }
}

/* Hand an owned span that is not full to central, or to the heap if empty. */
static void gm_span_disown(struct gm_tcache *tc, struct gm_span *s)
{
    gm_span_disarm(s);
    gm_span_collect(s);
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    s->slow_free = 0;
    if (s->used == 0 && !atomic_load(&s->notify_pending)) gm_heap_free_span(s);
    else gm_central_push(s);
}

/* A span from the full list at thread exit: orphan it if nobody freed into
 * it, else disown it. Takes BUSY itself first, so that no freer reads the
 * owner field while it is being cleared. */
static void gm_span_orphan_or_disown(struct gm_tcache *tc, struct gm_span *s)
{
    for (;;) {
        uintptr_t old = atomic_load(&s->thread_free);
        if ((old & GM_TF_MASK) == GM_TF_BUSY) { /* a freer is telling us */
            sched_yield();
            continue;
        }
        if ((old & GM_TF_MASK) == GM_TF_NOTIFY) {
            gm_busy_enter();
            if (!atomic_compare_exchange_strong(&s->thread_free, &old, (old & ~(uintptr_t)GM_TF_MASK) | GM_TF_BUSY)) {
                gm_busy_leave();
                continue;
            }
            atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
            uintptr_t cur = atomic_load(&s->thread_free);
            while (!atomic_compare_exchange_weak(&s->thread_free, &cur,
                                                 cur == GM_TF_BUSY ? GM_TF_ORPHAN : cur & ~(uintptr_t)GM_TF_MASK)) {
            }
            gm_busy_leave();
            if (cur == GM_TF_BUSY) return; /* orphaned: the first freer hands it on */
        }
        gm_span_disown(tc, s); /* it has remote frees */
        return;
    }
}

void gm_tcache_release(struct gm_tcache *tc)
{
    GM_ASSERT(gm_tc == tc); /* only its own thread releases a tcache */
    gm_batch_flush(tc);
    gm_spares_release(tc);
    for (unsigned c = 1; c < GM_FIRST_SHARED_CLASS; c++) {
        struct gm_span *s = gm_current_span(tc, c);
        tc->current[c] = &gm_empty_span;
        if (s != &gm_empty_span) gm_span_disown(tc, s);
        while ((s = tc->partial[c])) {
            gm_partial_remove(tc, s);
            gm_span_disown(tc, s);
        }
        while ((s = tc->full[c])) {
            gm_list_remove(&tc->full[c], s);
            s->slow_free &= (uint8_t)~GM_SLOW_FULL;
            gm_span_orphan_or_disown(tc, s);
        }
    }
    /* Every notification about our spans has landed by now. */
    struct gm_span *n = atomic_exchange(&tc->notify, NULL);
    while (n) {
        struct gm_span *next = atomic_load(&n->notify_next);
        atomic_store(&n->notify_pending, 0);
        n = next;
    }
    gm_heap_local_flush(&tc->hl);
    gm_tc = gm_tc_fast = gm_tc_malloc = NULL;
    gm_lock(&gm_tc_lock, GM_RANK_TCACHES);
    tc->dead = true;
    gm_unlock(&gm_tc_lock, GM_RANK_TCACHES);
    gm_scav_thread_exit();
}

/* ------------------------------------------------------------------------ */
/* Trim, reclaim, statistics, fork                                          */
/* ------------------------------------------------------------------------ */

void gm_tcache_reclaim(struct gm_tcache *tc)
{
    gm_drain_notify(tc);
    gm_batch_flush(tc);
    for (unsigned c = 1; c < GM_FIRST_SHARED_CLASS; c++) {
        struct gm_span *s = gm_current_span(tc, c);
        if (s != &gm_empty_span) {
            gm_span_collect(s);
            if (s->used == 0 && gm_span_quiet(s)) {
                tc->current[c] = &gm_empty_span;
                atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
                gm_heap_free_span(s);
            }
        }
        for (struct gm_span *p = tc->partial[c], *next; p; p = next) {
            next = p->next;
            gm_span_collect(p);
            gm_span_release_if_empty(tc, p);
        }
    }
    gm_spares_release(tc);
    gm_heap_local_flush(&tc->hl);
    gm_central_trim();
    gm_scav_reclaim();
}

struct gm_span *gm_alloc_span(struct gm_tcache *tc, size_t npages, unsigned cls)
{
    struct gm_span *s = gm_heap_alloc_span(&tc->hl, npages, cls, false);
    if (GM_LIKELY(s != NULL)) return s;
    gm_tcache_reclaim(tc);
    return gm_heap_alloc_span(&tc->hl, npages, cls, true);
}

static uint32_t gm_list_len(struct gm_span *s, uintptr_t head)
{
    uint32_t n = 0;
    gm_vg_quiet_begin();
    for (; head && n <= s->nelems; n++) head = *(uintptr_t *)head;
    gm_vg_quiet_end();
    return n;
}

/* Batched and stashed objects are off their spans' lists, but not the
 * program's. */
static void gm_count_batched(struct gm_tcache *tc, void *arg)
{
    uint64_t *live = arg;
    gm_vg_quiet_begin();
    for (unsigned i = 1; i < GM_NUM_CLASSES; i++) {
        for (void **o = tc->batch[i].free; o; o = o[0]) live[i]--;
        if (!gm_class_shared(i)) continue;
        for (void **o = atomic_load(&tc->stash[i - GM_FIRST_SHARED_CLASS]); o; o = o[0]) live[i]--;
    }
    gm_vg_quiet_end();
}

/* A small span's objects in use, for gm_small_count_live. */
static void gm_count_span(struct gm_span *s, unsigned state, void *arg)
{
    uint64_t *live = arg;
    /* A span another thread is still setting up (or was, when this process
     * forked) has no size yet: no objects either. */
    if (state != GM_SPAN_SMALL || s->elemsize == 0 || gm_span_limit(s) < s->base) return;
    uint32_t nfree = gm_list_len(s, (uintptr_t)s->free) + gm_list_len(s, (uintptr_t)s->local_free) +
                     gm_list_len(s, atomic_load(&s->thread_free) & ~(uintptr_t)GM_TF_MASK);
    live[s->sizeclass] += gm_span_carved(s) - nfree;
}

void gm_small_count_live(uint64_t live[GM_NUM_CLASSES])
{
    memset(live, 0, sizeof(uint64_t) * GM_NUM_CLASSES);
    gm_heap_for_each_span(gm_count_span, live);
    gm_small_for_each_tcache(gm_count_batched, live);
}

void gm_small_for_each_tcache(void (*fn)(struct gm_tcache *, void *), void *arg)
{
    gm_lock(&gm_tc_lock, GM_RANK_TCACHES);
    for (struct gm_tcache *tc = gm_tc_all; tc; tc = tc->all_next) fn(tc, arg);
    gm_unlock(&gm_tc_lock, GM_RANK_TCACHES);
}

void gm_tcache_fork_prepare(void) { gm_lock(&gm_tc_lock, GM_RANK_TCACHES); }
void gm_tcache_fork_parent(void) { gm_unlock(&gm_tc_lock, GM_RANK_TCACHES); }

/* Set in a child forked while other threads had tcaches: their fast paths
 * were frozen wherever they were, between taking an object and counting
 * it, so the per-thread counters they left may be an operation off. The
 * objects and pages themselves are consistent (every lock was held). */
bool gm_small_forked_mt;

void gm_tcache_fork_child(void)
{
    if (gm_tc) gm_tc->prof_rng ^= gm_prof_seed(gm_tc); /* the child's samples are its own */
    for (struct gm_tcache *tc = gm_tc_all; tc; tc = tc->all_next)
        if (!tc->dead && tc != gm_tc) gm_small_forked_mt = true;
    pthread_mutex_init(&gm_tc_lock, NULL);
}

/* ------------------------------------------------------------------------ */
/* The heap profile's sampler                                               */
/* ------------------------------------------------------------------------ */

void gm_tcache_prof_sync(struct gm_tcache *tc)
{
    tc->prof_epoch = gm_prof_epoch_now();
    uint64_t rate = atomic_load_explicit(&gm_prof_rate, memory_order_relaxed);
    if (rate && !tc->prof_rng) tc->prof_rng = gm_prof_seed(tc);
    tc->prof_rate = rate;
    tc->prof_left = rate ? gm_prof_draw(&tc->prof_rng, rate) : 0;
    if (gm_tc == tc) gm_tc_malloc = rate ? NULL : gm_tc_fast;
}

void gm_tcache_prof_mark(struct gm_tcache *tc, struct gm_span *s)
{
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == GM_SPAN_SMALL &&
        atomic_load_explicit(&s->owner, memory_order_relaxed) == tc)
        s->slow_free |= GM_SLOW_SAMPLED;
}
