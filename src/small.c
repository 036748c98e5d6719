/*
 * small.c — layer 6: small objects (Go's mspan/mcentral/mcache, adapted to a
 * world with explicit free).
 *
 * A small-object span is carved into objects of one size class. It is owned
 * by one thread's tcache or by nobody. Its objects live on three lists, so
 * that the owner needs no atomic read-modify-write on its fast paths:
 *   free         the owner allocates from it;
 *   local_free   the owner frees onto it;
 *   thread_free  other threads push onto it with a CAS; the owner takes the
 *                whole list with one atomic exchange when `free` runs dry.
 * `used` (owner-private) counts objects off free and local_free; remote
 * freers count their frees in remote_frees, subtracted when collected, so
 * that the thread_free list is never walked just to count it.
 *
 * A tcache holds, per class, the current span plus two lists of owned spans:
 * partial (may have free objects; used oldest first) and full (had none when
 * last looked at).
 * A full span must not be forgotten when other threads free into it, so the
 * low bits of thread_free say what the first remote freer must do:
 *   NOTIFY  the span is in its owner's full list: the freer marks it BUSY,
 *           pushes the span onto the owner's notify stack, then clears BUSY;
 *           the owner moves notified spans to partial on its slow path;
 *   ORPHAN  the span is full and owned by nobody (its thread exited): the
 *           freer puts it into the central list of its class.
 * A thread that exits turns NOTIFY into ORPHAN (waiting out a BUSY freer, so
 * no freer still holds its tcache), hands partial spans to central, and gives
 * empty spans back to the heap. Central spans are adopted by any thread that
 * runs out of its own. A span whose objects are all free goes back to the
 * heap unless it is a tcache's current span, or a notification about it is
 * still on its way.
 *
 * A span is carved lazily, a page's worth of objects at a time, so its
 * untouched tail costs no RSS; limit marks the end of the carved part.
 * NOTIFY, once armed, stays armed until a remote free uses it (see
 * gm_span_to_full), and is cleared before a span changes hands.
 *
 * Freed objects carry a marker in their second word (gm_free_key ^ address),
 * set when the span is carved and on every free, cleared by malloc. A free
 * that finds the marker already there searches the span's lists: found means
 * double free. Every small class is a multiple of 16 bytes, so the word is
 * always there.
 *
 * Shared classes. Objects above GM_OWNED_MAX (4 KiB) come a few per span,
 * so a span per class per thread would hold far more than the thread uses:
 * with many threads, most of the heap. Their spans are owned by nobody and
 * all live in the central list (an exhausted one is an ORPHAN until a free
 * brings it back); every free is a remote free. A thread takes up to
 * GM_BATCH_BYTES of objects at a time, under the class's lock, into its
 * batch for the class: a span-shaped list that tc->current points at, so
 * the fast path does not know the difference. Batched objects carry their
 * own marker (with GM_BATCH_MARK), so freeing one is a double free without
 * a search; they go back to their spans when the thread exits or reclaims.
 *
 * Tcaches are never freed: a dead thread's tcache is reused by a new thread,
 * so a freer that read a span's owner can always dereference it, and the
 * per-class counters keep summing.
 */
#define _GNU_SOURCE /* the writer-preferring rwlock initializer */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "arch.h"

__thread struct gm_tcache *gm_tc __attribute__((tls_model("initial-exec")));
__thread struct gm_tcache *gm_tc_fast __attribute__((tls_model("initial-exec")));
struct gm_span gm_empty_span;
uintptr_t gm_free_key;

/* Go's mcentral, without the sweeping: spans no thread owns that have free
 * objects, per class. Padded so classes do not share cache lines. */
struct gm_central {
    pthread_mutex_t lock;
    struct gm_span *head;
    size_t nspans;
} __attribute__((aligned(64)));
static struct gm_central gm_central[GM_NUM_CLASSES] = {[0 ... GM_NUM_CLASSES - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}};

/* nspans is read without the lock (a hint for gm_central_take and the
 * scavenger), so it is written with atomic stores, under the lock. */
static void gm_central_count(struct gm_central *c, int delta)
{
    __atomic_store_n(&c->nspans, c->nspans + (size_t)(ptrdiff_t)delta, __ATOMIC_RELAXED);
}

/* BUSY windows and fork. A thread that sets BUSY clears it a few
 * instructions later; if fork() came in between, the child would wait for
 * that clear forever (its setter does not exist there). Setters hold this
 * lock for reading across the window and the fork handler takes it for
 * writing first, so no window is open when the address space is copied.
 * Writers are preferred so that a stream of remote frees cannot starve fork.
 * Readers only come here on the rare first remote free into a full span. */
static pthread_rwlock_t gm_busy_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static void gm_busy_enter(void) { pthread_rwlock_rdlock(&gm_busy_lock); }
static void gm_busy_leave(void) { pthread_rwlock_unlock(&gm_busy_lock); }

/* Registry of all tcaches, live and dead (for statistics and reuse). */
static pthread_mutex_t gm_tc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gm_tcache *gm_tc_all;
static struct gm_fixalloc gm_tc_alloc;
static pthread_key_t gm_tc_key;
static bool gm_tc_key_ok;

/* ------------------------------------------------------------------------ */
/* Span lists (owner-private, or under a central lock)                      */
/* ------------------------------------------------------------------------ */

static void gm_list_push(struct gm_span **head, struct gm_span *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static void gm_list_remove(struct gm_span **head, struct gm_span *s)
{
    if (s->prev) s->prev->next = s->next;
    else *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

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
/* Collecting free objects                                                  */
/* ------------------------------------------------------------------------ */

/* Checked mode: the link of free object o must be NULL or another object
 * of s; a write after free that hit it is reported naming o. */
static inline void gm_check_link(const struct gm_span *s, void **o)
{
    uintptr_t next = (uintptr_t)o[0];
    if (next && (next < s->base || next >= gm_span_limit(s) || (next - s->base) % s->elemsize))
        gm_fatal_ptr("corrupted free list (write after free) in block", o);
}

/* Prepend list (other threads' frees) to s->free; checked mode validates its links. */
static void gm_span_take_list(struct gm_span *s, void *list)
{
    if (s->free || s->checked) {
        void **tail = list;
        while (tail[0]) {
            if (s->checked) gm_check_link(s, tail);
            tail = tail[0];
        }
        tail[0] = s->free;
    }
    s->free = list;
}

/* Carving is lazy: a span's objects are put on its free list a page's worth
 * at a time (at least one object), in address order, each marked free, when
 * the list runs dry. Pages never carved are never touched, so a span bigger
 * than its thread needs costs address space and commit but no RSS. limit
 * is the end of the carved part: an address past it was never handed out.
 * The caller owns s (or holds the central lock while nobody does) and
 * s->free is empty. */
#define GM_CARVE_BYTES 8192
static void gm_span_carve(struct gm_span *s)
{
    uintptr_t start = atomic_load_explicit(&s->limit, memory_order_relaxed);
    uint32_t size = s->elemsize, done = (uint32_t)((start - s->base) / size);
    uint32_t n = GM_CARVE_BYTES / size ? GM_CARVE_BYTES / size : 1;
    if (n > s->nelems - done) n = s->nelems - done;
    if (n == 0) return;
    gm_vg_undefined((void *)start, (size_t)n * size);
    uintptr_t next = 0;
    for (uint32_t i = n; i-- > 0;) {
        uintptr_t *o = (uintptr_t *)(start + (uintptr_t)i * size);
        o[0] = next;
        o[1] = gm_free_key ^ (uintptr_t)o;
        if (s->checked) memset(o + 2, GM_FREE_FILL, size - 2 * sizeof(uintptr_t));
        next = (uintptr_t)o;
    }
    gm_vg_noaccess((void *)start, (size_t)n * size);
    s->free = (void *)next;
    /* Read by other threads' frees of this span's objects (bounds check):
     * an object they hold was carved before they got it. */
    atomic_store_explicit(&s->limit, start + (uintptr_t)n * size, memory_order_relaxed);
}

/* Objects carved so far. */
static uint32_t gm_span_carved(const struct gm_span *s)
{
    return (uint32_t)((atomic_load_explicit(&s->limit, memory_order_relaxed) - s->base) / s->elemsize);
}

/* Move local_free and thread_free onto free, or carve more. The caller owns
 * s (or holds the central lock while nobody does). Keeps thread_free's flag
 * bits. Returns whether free is non-empty. */
static bool gm_span_collect(struct gm_span *s)
{
    gm_vg_quiet_begin();
    if (s->local_free) {
        /* local_free objects were subtracted from used when freed. The
         * usual caller has nothing on free: then the list moves over whole,
         * without the walk to its tail (a cache miss per object). */
        if (s->free || s->checked) {
            void **tail = s->local_free;
            while (tail[0]) {
                if (s->checked) gm_check_link(s, tail);
                tail = tail[0];
            }
            tail[0] = s->free;
        }
        s->free = s->local_free;
        s->local_free = NULL;
    }
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    while (old & ~(uintptr_t)GM_TF_MASK) {
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, old & GM_TF_MASK,
                                                  memory_order_acquire, memory_order_relaxed)) {
            gm_span_take_list(s, (void *)(old & ~(uintptr_t)GM_TF_MASK));
            break;
        }
    }
    /* Remote frees are counted by their freers after their push (release:
     * the count is a freer's last touch of s), so used never falls below
     * the objects the program holds; when it reaches 0, every freer is done
     * with s, whatever is still on thread_free. And the list is never
     * walked to count it (a cache miss per object freed on another core). */
    if (atomic_load_explicit(&s->remote_frees, memory_order_relaxed))
        s->used -= atomic_exchange_explicit(&s->remote_frees, 0, memory_order_acquire);
    gm_vg_quiet_end();
    if (!s->free && gm_span_limit(s) < s->base + (uintptr_t)s->nelems * s->elemsize) gm_span_carve(s);
    return s->free != NULL;
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
static struct gm_span *gm_span_new(struct gm_tcache *tc, unsigned cls)
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
static _Atomic long gm_spares_held;

static void gm_spare_put(struct gm_tcache *tc, struct gm_span *s)
{
    atomic_fetch_add_explicit(&gm_spares_held, 1, memory_order_relaxed);
    atomic_store_explicit(&tc->spare[s->sizeclass], s, memory_order_release);
    gm_scav_notify();
}

static struct gm_span *gm_spare_take(struct gm_tcache *tc, unsigned cls)
{
    if (!atomic_load_explicit(&tc->spare[cls], memory_order_relaxed)) return NULL;
    struct gm_span *s = atomic_exchange_explicit(&tc->spare[cls], NULL, memory_order_acquire);
    if (s) atomic_fetch_sub_explicit(&gm_spares_held, 1, memory_order_relaxed);
    return s;
}

/* Give a spare taken from its slot back to the heap; returns its bytes. */
static size_t gm_spare_free(struct gm_span *s)
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

/* Takes tc's spares onto the list *arg (linked through next), to be freed
 * once the registry lock is released: gm_heap_free_span wakes the
 * scavenger, whose lock is taken before the registry's. */
static void gm_spares_take_all(struct gm_tcache *tc, void *arg)
{
    struct gm_span **list = arg;
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        struct gm_span *s = gm_spare_take(tc, c);
        if (!s) continue;
        s->next = *list;
        *list = s;
    }
}

/* Every thread's spares back to the heap; returns the bytes. */
static size_t gm_spares_trim(void)
{
    size_t bytes = 0;
    struct gm_span *list = NULL, *next;
    gm_small_for_each_tcache(gm_spares_take_all, &list);
    for (struct gm_span *s = list; s; s = next) {
        next = s->next;
        s->next = NULL;
        bytes += gm_spare_free(s);
    }
    return bytes;
}

/* The span has no object in use: give its pages back (or keep it as the
 * class's spare) unless it must stay. */
static void gm_span_release_if_empty(struct gm_tcache *tc, struct gm_span *s)
{
    unsigned cls = s->sizeclass;
    if (s->used != 0 || tc->current[cls] == s) return;
    /* A freer may be about to tell us about s, or has: keep it until then. */
    if ((atomic_load_explicit(&s->thread_free, memory_order_acquire) & GM_TF_MASK) == GM_TF_BUSY) return;
    if (atomic_load_explicit(&s->notify_pending, memory_order_acquire)) return;
    if (atomic_load_explicit(&s->thread_free, memory_order_acquire) & ~(uintptr_t)GM_TF_MASK) return;
    if (s->in_full) gm_list_remove(&tc->full[cls], s);
    else gm_partial_remove(tc, s);
    s->in_full = 0;
    if (!atomic_load_explicit(&tc->spare[cls], memory_order_relaxed)) {
        gm_spare_put(tc, s);
        return;
    }
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    gm_heap_free_span(s);
}

static void gm_central_push(struct gm_span *s)
{
    struct gm_central *c = &gm_central[s->sizeclass];
    pthread_mutex_lock(&c->lock);
    gm_list_push(&c->head, s);
    gm_central_count(c, 1);
    pthread_mutex_unlock(&c->lock);
}

/* Adopt a span with free objects from the central list of cls. */
static struct gm_span *gm_central_take(struct gm_tcache *tc, unsigned cls)
{
    struct gm_central *c = &gm_central[cls];
    if (!__atomic_load_n(&c->nspans, __ATOMIC_RELAXED)) return NULL;
    pthread_mutex_lock(&c->lock);
    struct gm_span *s;
    while ((s = c->head)) {
        gm_list_remove(&c->head, s);
        gm_central_count(c, -1);
        if (gm_span_collect(s) || s->used < s->nelems) break;
        /* Nothing free after all (cannot normally happen): orphan it. */
        uintptr_t zero = 0;
        if (!atomic_compare_exchange_strong(&s->thread_free, &zero, GM_TF_ORPHAN)) {
            gm_list_push(&c->head, s);
            gm_central_count(c, 1);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (s) atomic_store_explicit(&s->owner, tc, memory_order_relaxed);
    return s;
}

/* Put an exhausted owned span on the full list, armed so the first remote
 * free tells us. False if remote frees arrived meanwhile (collect instead).
 * The arming outlives the full list: taking the span off it (unfull) leaves
 * NOTIFY set until a remote free uses it up, so a span that fills and
 * drains by its owner's own frees again and again (a steady live set) pays
 * no atomic read-modify-write after the first time. A notification about
 * a span that is no longer full is harmless (the owner checks in_full). */
static bool gm_span_to_full(struct gm_tcache *tc, struct gm_span *s)
{
    uintptr_t expect = GM_TF_NONE;
    if (atomic_load_explicit(&s->thread_free, memory_order_relaxed) != GM_TF_NOTIFY &&
        !atomic_compare_exchange_strong_explicit(&s->thread_free, &expect, GM_TF_NOTIFY, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    s->in_full = 1;
    gm_list_push(&tc->full[s->sizeclass], s);
    return true;
}

/* The owner takes s off its full list (it has free objects now). */
static void gm_span_unfull(struct gm_tcache *tc, struct gm_span *s)
{
    gm_list_remove(&tc->full[s->sizeclass], s);
    s->in_full = 0;
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
        if (atomic_load_explicit(&s->owner, memory_order_relaxed) == tc && s->in_full)
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

/* Shared classes (see the top). A span found exhausted leaves the central
 * list as an ORPHAN, so the first free into it brings it back
 * (gm_free_remote). */
#define GM_BATCH_BYTES 16384
#define GM_BATCH_MAX 8

/* Move up to n objects from s->free to the batch st, marked batched.
 * Central lock held. */
static void gm_batch_take(struct gm_span *st, struct gm_span *s, uint32_t n)
{
    gm_vg_quiet_begin();
    uintptr_t *o = s->free, *last = NULL;
    st->free = o;
    for (; o && n; n--, s->used++) {
        o[1] = gm_free_key ^ (uintptr_t)o ^ GM_BATCH_MARK;
        last = o;
        o = (uintptr_t *)o[0];
    }
    last[0] = 0;
    s->free = o;
    gm_vg_quiet_end();
}

/* The batch of shared class cls ran dry: refill it from the central list
 * (or a new span) and allocate from it. */
static void *gm_batch_refill(struct gm_tcache *tc, unsigned cls)
{
    struct gm_central *c = &gm_central[cls];
    struct gm_span *st = tc->current[cls], *s;
    uint32_t n = GM_BATCH_BYTES / gm_class_size[cls];
    n = n < 1 ? 1 : n > GM_BATCH_MAX ? GM_BATCH_MAX : n;
    gm_scav_tick();
    pthread_mutex_lock(&c->lock);
    while ((s = c->head) != NULL) {
        if (s->free || gm_span_collect(s)) {
            gm_batch_take(st, s, n);
            pthread_mutex_unlock(&c->lock);
            return gm_small_alloc(tc, cls);
        }
        uintptr_t none = GM_TF_NONE; /* else a free came in meanwhile: collect it */
        if (atomic_compare_exchange_strong_explicit(&s->thread_free, &none, GM_TF_ORPHAN, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            gm_list_remove(&c->head, s);
            gm_central_count(c, -1);
        }
    }
    pthread_mutex_unlock(&c->lock);
    /* Growth may reclaim, which takes central locks: none held here. */
    s = gm_span_new(tc, cls);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    pthread_mutex_lock(&c->lock);
    gm_batch_take(st, s, n);
    gm_list_push(&c->head, s);
    gm_central_count(c, 1);
    pthread_mutex_unlock(&c->lock);
    return gm_small_alloc(tc, cls);
}

/* gm_scav_tick reads heap-wide counters that other threads write; a refill
 * from the thread's own spans changes nothing there, so one refill in
 * GM_TICK_REFILLS is often enough (spans coming from or going back to the
 * heap tick on their own). */
#define GM_TICK_REFILLS 16

static void *gm_small_refill(struct gm_tcache *tc, unsigned cls)
{
    if (gm_class_shared(cls)) return gm_batch_refill(tc, cls);
    if (GM_UNLIKELY(++tc->refills % GM_TICK_REFILLS == 0)) {
        gm_scav_tick();
        if (tc->refills % GM_SPARE_REFILLS == 0) gm_spares_release(tc);
    }
    struct gm_span *s = tc->current[cls];
    if (atomic_load_explicit(&tc->notify, memory_order_relaxed)) gm_drain_notify(tc);
    if (s != &gm_empty_span) {
        if (gm_span_collect(s)) return gm_small_alloc(tc, cls);
        tc->current[cls] = &gm_empty_span;
        if (gm_span_refresh(tc, s)) goto found;
    }
    while ((s = tc->partial[cls]) != NULL) {
        gm_partial_remove(tc, s);
        if (gm_span_collect(s) || gm_span_refresh(tc, s)) goto found;
    }
    gm_scav_tick();
    s = gm_central_take(tc, cls);
    if (!s && (s = gm_spare_take(tc, cls)) != NULL) gm_span_collect(s);
    if (!s) s = gm_span_new(tc, cls);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
found:
    tc->current[cls] = s;
    return gm_small_alloc(tc, cls);
}

/* malloc's fast path lands here, so errno is kept here (malloc.c). */
void *gm_small_alloc_slow(struct gm_tcache *tc, unsigned cls)
{
    int saved = errno;
    return gm_errno_result(gm_small_refill(tc, cls), saved);
}

/* Remote free, p marked and in quiet mode: push p onto s->thread_free
 * (whose value was old) and do what the flags ask. */
static __attribute__((noinline)) void gm_free_remote_flagged(struct gm_span *s, void *p, uintptr_t old)
{
    uintptr_t *o = p;
    bool busy_ok = false; /* holding gm_busy_lock for reading */
    for (;;) {
        uintptr_t flags = old & GM_TF_MASK, nflags = flags;
        if (flags == GM_TF_NOTIFY && !busy_ok) {
            gm_busy_enter();
            busy_ok = true;
            old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
            continue;
        }
        if (flags == GM_TF_NOTIFY) nflags = GM_TF_BUSY;
        else if (flags == GM_TF_ORPHAN) nflags = GM_TF_NONE;
        o[0] = old & ~(uintptr_t)GM_TF_MASK;
        /* acq_rel: taking over an orphan or telling an owner, we read what
         * the owner last wrote (its list links, the owner field). */
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, (uintptr_t)p | nflags,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            gm_vg_quiet_end();
            if (flags == GM_TF_ORPHAN) {
                gm_central_push(s);
            } else if (flags == GM_TF_NOTIFY) {
                /* While BUSY the owner cannot leave, so its tcache is ours to use. */
                struct gm_tcache *owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
                atomic_store_explicit(&s->notify_pending, 1, memory_order_relaxed);
                struct gm_span *head = atomic_load_explicit(&owner->notify, memory_order_relaxed);
                do atomic_store_explicit(&s->notify_next, head, memory_order_relaxed);
                while (!atomic_compare_exchange_weak_explicit(&owner->notify, &head, s, memory_order_release,
                                                              memory_order_relaxed));
                uintptr_t cur = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
                while (!atomic_compare_exchange_weak_explicit(&s->thread_free, &cur, cur & ~(uintptr_t)GM_TF_MASK,
                                                              memory_order_release, memory_order_relaxed)) {
                }
            }
            if (busy_ok) gm_busy_leave();
            return;
        }
    }
}

/* Mark p free and push it onto s->thread_free: the usual case, no flag to
 * act on, is one CAS. */
static inline void gm_thread_free_push(struct gm_span *s, void *p)
{
    uintptr_t *o = p;
    gm_vg_quiet_begin();
    o[1] = gm_free_key ^ (uintptr_t)p;
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    /* Release: the freer's writes to p are done before the owner takes it. */
    while ((old & GM_TF_MASK) == GM_TF_NONE) {
        o[0] = old;
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, (uintptr_t)p, memory_order_release,
                                                  memory_order_relaxed)) {
            gm_vg_quiet_end();
            atomic_fetch_add_explicit(&s->remote_frees, 1, memory_order_release);
            return;
        }
    }
    gm_free_remote_flagged(s, p, old);
    atomic_fetch_add_explicit(&s->remote_frees, 1, memory_order_release);
}

/* Remote free of an object the program held. */
static inline void gm_free_remote(struct gm_span *s, void *p)
{
    gm_vg_free(p);
    gm_thread_free_push(s, p);
}

/* Give the batched objects back to their spans (not frees: the program
 * never had them). Owner only. */
static void gm_batch_flush(struct gm_tcache *tc)
{
    for (unsigned i = 0; i < GM_NUM_SHARED_CLASSES; i++) {
        struct gm_span *st = &tc->batch[i];
        void **o = st->free;
        st->free = NULL;
        while (o) {
            gm_vg_quiet_begin();
            void **next = o[0];
            gm_vg_quiet_end();
            gm_thread_free_push(gm_span_lookup((uintptr_t)o), o);
            o = next;
        }
    }
}


/* The owner's fast path emptied s. The tick may start the scavenger or
 * run its pass, whose system calls may fail: free keeps errno (malloc.c). */
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
    if (s->in_full) gm_span_unfull(tc, s);
    if (s->used == 0) gm_span_release_if_empty(tc, s);
}

/* The remote free comes first and calls nothing in its usual case, so it
 * saves no registers. */
void gm_small_free_slow(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    if (GM_LIKELY(p != NULL && (!tc || atomic_load_explicit(&s->owner, memory_order_relaxed) != tc))) {
        /* A shared class's object in some thread's batch is free: the fast
         * path only knew the other marker. */
        if (GM_UNLIKELY(gm_vg_word(&((uintptr_t *)p)[1]) == (gm_free_key ^ (uintptr_t)p ^ GM_BATCH_MARK)))
            gm_small_check_free(s, p);
        if (tc) gm_count_inc(&tc->counts.frees[s->sizeclass]);
        gm_free_remote(s, p);
    } else if (p == NULL) {
        gm_span_emptied(tc, s);
    } else {
        gm_small_free_full(tc, s, p);
    }
}

/* Is p on the list starting at head? Walks at most limit links, stopping at
 * anything that is not an object of s (the list may be changing). */
static bool gm_list_has(struct gm_span *s, uintptr_t head, uintptr_t p)
{
    for (uint32_t i = 0; head && i <= s->nelems; i++) {
        if (head == p) return true;
        if (head < s->base || head >= gm_span_limit(s) || (head - s->base) % s->elemsize) return false;
        gm_vg_quiet_begin();
        head = *(uintptr_t *)head;
        gm_vg_quiet_end();
    }
    return false;
}

void gm_small_free_other(struct gm_tcache *tc, struct gm_span *s, void *p)
{
    /* A batched object's mark is checked on the remote path
     * (gm_small_free_slow): shared spans have no owner. */
    uintptr_t a = (uintptr_t)p, off = a - s->base, marker = gm_free_key ^ a;
    if (off >= gm_span_limit(s) - s->base || (uint32_t)((off * s->divmagic) >> 32) * s->elemsize != off ||
        gm_vg_word(&((uintptr_t *)p)[1]) == marker)
        gm_small_check_free(s, p); /* aborts unless a false alarm */
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == tc && !s->in_full) gm_small_free_local(tc, s, p, marker);
    else gm_small_free_slow(tc, s, p);
}

void gm_small_check_free(struct gm_span *s, void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (atomic_load_explicit(&s->state, memory_order_acquire) != GM_SPAN_SMALL || a < s->base || a >= gm_span_limit(s))
        gm_fatal_ptr("free of a pointer that is not allocated", p);
    if ((a - s->base) % s->elemsize != 0) gm_fatal_ptr("free of an interior pointer", p);
    /* In a thread's batch: free, and only this allocator writes that mark. */
    if (gm_vg_word(&((uintptr_t *)p)[1]) == (gm_free_key ^ a ^ GM_BATCH_MARK)) gm_fatal_ptr("double free", p);
    if (gm_list_has(s, (uintptr_t)s->free, a) || gm_list_has(s, (uintptr_t)s->local_free, a) ||
        gm_list_has(s, atomic_load(&s->thread_free) & ~(uintptr_t)GM_TF_MASK, a))
        gm_fatal_ptr("double free", p);
    /* The marker was the program's own data: a false alarm. */
}

/* ------------------------------------------------------------------------ */
/* Thread caches                                                            */
/* ------------------------------------------------------------------------ */

static void gm_tcache_destructor(void *arg)
{
    struct gm_tcache *tc = arg;
    if (tc && gm_tc == tc) gm_tcache_release(tc);
}

static void gm_free_key_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uintptr_t k = (uintptr_t)&ts ^ ((uintptr_t)ts.tv_nsec << 17) ^ (uintptr_t)ts.tv_sec ^
                  (uintptr_t)gm_arch_ticks();
    k *= 0x9e3779b97f4a7c15ull;
    gm_free_key = k | 1; /* odd, so it never equals an aligned address */
}

struct gm_tcache *gm_tcache_init(void)
{
    if (gm_tc) return gm_tc;
    if (gm_heap_init() != 0) return NULL;
    pthread_mutex_lock(&gm_tc_lock);
    if (!gm_tc_key_ok) {
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
        }
    }
    pthread_mutex_unlock(&gm_tc_lock);
    if (!tc) return NULL;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) tc->current[c] = &gm_empty_span;
    for (unsigned c = GM_FIRST_SHARED_CLASS; c < GM_NUM_CLASSES; c++) {
        struct gm_span *st = &tc->batch[c - GM_FIRST_SHARED_CLASS];
        memset(st, 0, sizeof *st);
        st->sizeclass = (uint8_t)c;
        st->elemsize = gm_class_size[c];
        tc->current[c] = st;
    }
    memset(tc->spans_made, 0, sizeof tc->spans_made);
    gm_tc = tc;
    gm_tc_fast = gm_opt.check ? NULL : tc;
    if (gm_tc_key_ok) pthread_setspecific(gm_tc_key, tc);
    gm_scav_thread_start();
    return tc;
}

/* Hand an owned span that is not full to central, or to the heap if empty. */
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

static void gm_span_disown(struct gm_tcache *tc, struct gm_span *s)
{
    gm_span_disarm(s);
    gm_span_collect(s);
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    s->in_full = 0;
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
    gm_batch_flush(tc);
    gm_spares_release(tc);
    for (unsigned c = 1; c < GM_FIRST_SHARED_CLASS; c++) {
        struct gm_span *s = tc->current[c];
        tc->current[c] = &gm_empty_span;
        if (s != &gm_empty_span) gm_span_disown(tc, s);
        while ((s = tc->partial[c])) {
            gm_partial_remove(tc, s);
            gm_span_disown(tc, s);
        }
        while ((s = tc->full[c])) {
            gm_list_remove(&tc->full[c], s);
            s->in_full = 0;
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
    gm_tc = gm_tc_fast = NULL;
    pthread_mutex_lock(&gm_tc_lock);
    tc->dead = true;
    pthread_mutex_unlock(&gm_tc_lock);
    gm_scav_thread_exit();
}

/* ------------------------------------------------------------------------ */
/* Trim, reclaim, statistics, fork                                          */
/* ------------------------------------------------------------------------ */

/* Can s, whose objects are all free, go back to the heap now? (No freer is
 * about to tell us about it and no remote free waits to be collected.) */
static bool gm_span_quiet(struct gm_span *s)
{
    uintptr_t tf = atomic_load_explicit(&s->thread_free, memory_order_acquire);
    return (tf & GM_TF_MASK) != GM_TF_BUSY && !(tf & ~(uintptr_t)GM_TF_MASK) &&
           !atomic_load_explicit(&s->notify_pending, memory_order_acquire);
}

void gm_tcache_reclaim(struct gm_tcache *tc)
{
    gm_drain_notify(tc);
    gm_batch_flush(tc);
    for (unsigned c = 1; c < GM_FIRST_SHARED_CLASS; c++) {
        struct gm_span *s = tc->current[c];
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
    struct gm_span *s = gm_heap_alloc_span(&tc->hl, npages, cls);
    if (GM_LIKELY(s != NULL)) return s;
    gm_tcache_reclaim(tc);
    gm_heap_soft_ok = true;
    s = gm_heap_alloc_span(&tc->hl, npages, cls);
    gm_heap_soft_ok = false;
    return s;
}

size_t gm_central_trim(void)
{
    size_t released = gm_spares_trim();
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        struct gm_central *ce = &gm_central[c];
        pthread_mutex_lock(&ce->lock);
        struct gm_span *s = ce->head, *next;
        for (; s; s = next) {
            next = s->next;
            gm_span_collect(s);
            if (s->used == 0) {
                gm_list_remove(&ce->head, s);
                gm_central_count(ce, -1);
                released += (size_t)s->npages << GM_PAGE_SHIFT;
                gm_heap_free_span(s);
            }
        }
        pthread_mutex_unlock(&ce->lock);
    }
    return released;
}

bool gm_central_holds(void)
{
    if (atomic_load_explicit(&gm_spares_held, memory_order_relaxed) > 0) return true;
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++)
        if (__atomic_load_n(&gm_central[c].nspans, __ATOMIC_RELAXED)) return true;
    return false;
}

static uint32_t gm_list_len(struct gm_span *s, uintptr_t head)
{
    uint32_t n = 0;
    gm_vg_quiet_begin();
    for (; head && n <= s->nelems; n++) head = *(uintptr_t *)head;
    gm_vg_quiet_end();
    return n;
}

/* Batched objects are off their spans' lists, but not the program's. */
static void gm_count_batched(struct gm_tcache *tc, void *arg)
{
    uint64_t *live = arg;
    for (unsigned i = 0; i < GM_NUM_SHARED_CLASSES; i++) {
        const struct gm_span *st = &tc->batch[i];
        gm_vg_quiet_begin();
        for (void **o = st->free; o; o = o[0]) live[st->sizeclass]--;
        gm_vg_quiet_end();
    }
}

void gm_small_count_live(uint64_t live[GM_NUM_CLASSES])
{
    memset(live, 0, sizeof(uint64_t) * GM_NUM_CLASSES);
    for (size_t i = 0; i < GM_ARENA_L1_ENTRIES; i++) {
        struct gm_arena *_Atomic *l2 = atomic_load(&gm_arena_l1[i]);
        if (!l2) continue;
        for (size_t j = 0; j < ((size_t)1 << GM_ARENA_L2_BITS); j++) {
            struct gm_arena *a = atomic_load(&l2[j]);
            if (!a) continue;
            uintptr_t abase = ((i << GM_ARENA_L2_BITS) + j) << GM_ARENA_SHIFT;
            for (size_t pg = 0; pg < GM_PAGES_PER_ARENA; pg++) {
                struct gm_span *s = atomic_load(&a->spans[pg]);
                if (!s || s->base != abase + (pg << GM_PAGE_SHIFT) ||
                    atomic_load(&s->state) != GM_SPAN_SMALL)
                    continue;
                /* A span another thread is still setting up (or was, when
                 * this process forked) has no size yet: no objects either. */
                if (s->elemsize == 0 || gm_span_limit(s) < s->base) continue;
                uint32_t nfree = gm_list_len(s, (uintptr_t)s->free) + gm_list_len(s, (uintptr_t)s->local_free) +
                                 gm_list_len(s, atomic_load(&s->thread_free) & ~(uintptr_t)GM_TF_MASK);
                live[s->sizeclass] += gm_span_carved(s) - nfree;
            }
        }
    }
    gm_small_for_each_tcache(gm_count_batched, live);
}

void gm_small_for_each_tcache(void (*fn)(struct gm_tcache *, void *), void *arg)
{
    pthread_mutex_lock(&gm_tc_lock);
    for (struct gm_tcache *tc = gm_tc_all; tc; tc = tc->all_next) fn(tc, arg);
    pthread_mutex_unlock(&gm_tc_lock);
}

void gm_small_fork_prepare(void)
{
    pthread_rwlock_wrlock(&gm_busy_lock);
    pthread_mutex_lock(&gm_tc_lock);
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) pthread_mutex_lock(&gm_central[c].lock);
}

void gm_small_fork_parent(void)
{
    for (unsigned c = GM_NUM_CLASSES; c-- > 0;) pthread_mutex_unlock(&gm_central[c].lock);
    pthread_mutex_unlock(&gm_tc_lock);
    pthread_rwlock_unlock(&gm_busy_lock);
}

/* Set in a child forked while other threads had tcaches: their fast paths
 * were frozen wherever they were, between taking an object and counting
 * it, so the per-thread counters they left may be an operation off. The
 * objects and pages themselves are consistent (every lock was held). */
bool gm_small_forked_mt;

void gm_small_fork_child(void)
{
    for (struct gm_tcache *tc = gm_tc_all; tc; tc = tc->all_next)
        if (!tc->dead && tc != gm_tc) gm_small_forked_mt = true;
    pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
    gm_busy_lock = fresh;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) pthread_mutex_init(&gm_central[c].lock, NULL);
    pthread_mutex_init(&gm_tc_lock, NULL);
}
