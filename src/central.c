/*
 * central.c — layer 7: central lists and batches (Go's mcentral, adapted
 * to explicit free), and the remote free.
 *
 * A central list holds, per class, spans that no thread owns and that have
 * free objects; a thread that runs out of its own adopts one
 * (gm_central_take). A span gets there when its thread exits with free
 * objects left in it, or as an orphan: a full span left by an exiting
 * thread is marked ORPHAN in its thread_free word instead, and the first
 * remote free into it puts it in the list (gm_free_remote).
 *
 * Shared classes. Objects above GM_OWNED_MAX (4 KiB) come a few per span,
 * so a span per class per thread would hold far more than the thread uses:
 * with many threads, most of the heap. Their spans are owned by nobody and
 * all live in the central list (an exhausted one is an ORPHAN until a free
 * brings it back); their objects are always freed as remote objects. A
 * thread takes up to
 * GM_BATCH_BYTES of objects at a time, under the class's lock, into its
 * batch for the class: a span-shaped list that tc->current points at, so
 * the fast path does not know the difference. Batched objects carry their
 * own marker (with GM_BATCH_MARK), so freeing one is a double free without
 * a search; they go back to their spans when the thread exits or reclaims.
 * Stashes. A thread's free of a shared object, whichever thread
 * allocated it, goes onto the thread's stash for the class while the
 * stash holds fewer than two refills' worth (gm_batch_keep), and a refill
 * takes the whole stash before it looks at the central list. So a program
 * that frees and allocates blocks of one size in turn (PostgreSQL's 8 KiB
 * memory-context blocks) or a server whose threads free what other threads
 * allocated (larson, issue 13) mostly takes no lock: without the stash,
 * the free of the only object of a one-object span would put the span back
 * in the list under the class's lock and the next malloc take it out again
 * (tcmalloc's thread caches take any thread's frees for the same reason).
 * Kept objects pin their spans, and the stash's owner may never call the
 * allocator again, so the stash is the one piece of a thread's cache that
 * another thread may empty: the owner pushes onto it with a CAS, a refill
 * and a trim take it whole with an exchange (no ABA: only the owner ever
 * pushes). Every trim (each scavenging pass, on the helper thread or on
 * the program's) takes every thread's stash and frees its objects back to
 * their spans (gm_stash_trim), and gm_stash_held tells the scavenger not to
 * park while a stash holds something. Stashed objects carry the batch mark.
 *
 * The remote free (any thread but the span's owner, and every free of a
 * shared class) pushes the object onto thread_free with one CAS. The low
 * bits of thread_free say what the first remote freer must do:
 *   NOTIFY  the span is in its owner's full list: the freer marks it BUSY,
 *           pushes the span onto the owner's notify stack, then clears
 *           BUSY; the owner moves notified spans to partial on its slow
 *           path (tcache.c);
 *   ORPHAN  full and owned by nobody: the freer puts it in central.
 * Trimming gives the heap back the central spans whose objects are all
 * free, and every thread's spare spans: the scavenger's trim hook.
 *
 * Nurseries. An owned class has a second list, its nursery: spans no
 * thread owns, from which young threads take their first objects of the
 * class in batches, as from a shared class (tcache.c's gm_young_refill).
 * A nursery span is never adopted by a thread (gm_central_take reads only
 * the other list), so a batched object can never be freed onto an owner's
 * local list; its frees are remote frees, and trimming returns it empty.
 *
 * Address order. Spans come back in any order and are pushed on the
 * list's `returned` side; before a take or a trim looks at the front, they
 * are merge-sorted into `head`, which is kept in address order. So threads
 * refill from the lowest spans, and, when the live set shrinks, the spans
 * high in the heap (above the heap's high_water, the scavenger's goal) are
 * never adopted again: their last objects are freed where they are, and
 * the empty spans go back to the heap for the scavenger to return.
 *
 * Locks: one per class (GM_RANK_CENTRAL + class), and the BUSY rwlock
 * (GM_RANK_BUSY, before any central lock), base.h's order.
 */
#define _GNU_SOURCE /* the writer-preferring rwlock initializer */
#include "tcache.h"

#include "arch.h"

#include <sched.h>
#include <string.h>

/* Go's mcentral, without the sweeping: spans no thread owns that have free
 * objects, per class. Padded so classes do not share cache lines. */
struct gm_central {
    pthread_mutex_t lock;
    struct gm_span *head;     /* taken from the front; in address order */
    struct gm_span *returned; /* came back since the last sort, any order */
    struct gm_span *nursery;  /* an owned class's spans for young threads */
    bool unsorted;            /* head was taken from returned unsorted */
    _Atomic uint64_t nspans; /* both lists; read without the lock: a hint */
} __attribute__((aligned(GM_CACHE_LINE)));

static struct gm_central gm_central[GM_NUM_CLASSES] = {[0 ... GM_NUM_CLASSES - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}};

/* nspans is read without the lock (a hint for gm_central_take and the
 * scavenger), so it is written as base.h's single-writer counters are, under
 * the lock. */
static void gm_central_count(struct gm_central *c, int delta) { gm_counter_add(&c->nspans, (uint64_t)(int64_t)delta); }

static int gm_central_rank(const struct gm_central *c) { return GM_RANK_CENTRAL + (int)(c - gm_central); }
static void gm_central_lock(struct gm_central *c) { gm_lock(&c->lock, gm_central_rank(c)); }
static void gm_central_unlock(struct gm_central *c) { gm_unlock(&c->lock, gm_central_rank(c)); }

/* BUSY windows and fork. A thread that sets BUSY clears it a few
 * instructions later; if fork() came in between, the child would wait for
 * that clear forever (its setter does not exist there). Setters hold this
 * lock for reading across the window and the fork handler takes it for
 * writing first, so no window is open when the address space is copied.
 * Writers are preferred so that a stream of remote frees cannot starve fork.
 * Readers only come here on the rare first remote free into a full span. */
static pthread_rwlock_t gm_busy_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

void gm_busy_enter(void)
{
    gm_rank_acquire(GM_RANK_BUSY, true);
    pthread_rwlock_rdlock(&gm_busy_lock);
}

void gm_busy_leave(void)
{
    pthread_rwlock_unlock(&gm_busy_lock);
    gm_rank_release(GM_RANK_BUSY);
}

/* Address order. Spans are reused lowest first, as the page allocator
 * hands out pages (first fit): when a live set shrinks, its objects gather
 * in the low spans, the high ones empty and go back to the heap, and the
 * top of the heap becomes whole free chunks that the scavenger can
 * decommit. Taken in the order they came back, the spans of a peak would
 * each keep a few objects for as long as the program runs. Spans that come
 * back (a free into an exhausted span, a thread's exit) wait on `returned`
 * and are merged in, sorted, when the front runs out and at every trim. */
static struct gm_span *gm_span_merge(struct gm_span *a, struct gm_span *b)
{
    struct gm_span *head = NULL, **tail = &head;
    while (a && b) {
        struct gm_span **low = a->base < b->base ? &a : &b;
        *tail = *low;
        tail = &(*low)->next;
        *low = (*low)->next;
    }
    *tail = a ? a : b;
    return head;
}

/* Merge sort of a list linked through next, by base address. */
static struct gm_span *gm_span_sort(struct gm_span *l)
{
    if (!l || !l->next) return l;
    struct gm_span *slow = l, *fast = l->next;
    while (fast && fast->next) {
        slow = slow->next;
        fast = fast->next->next;
    }
    struct gm_span *second = slow->next;
    slow->next = NULL;
    return gm_span_merge(gm_span_sort(l), gm_span_sort(second));
}

/* Merge the returned spans into the front list. Central lock held. */
static void gm_central_sort(struct gm_central *c)
{
    if (!c->returned && !c->unsorted) return;
    if (c->unsorted) c->head = gm_span_sort(c->head);
    c->unsorted = false;
    c->head = gm_span_merge(c->head, gm_span_sort(c->returned));
    c->returned = NULL;
    struct gm_span *prev = NULL;
    for (struct gm_span *s = c->head; s; prev = s, s = s->next) s->prev = prev;
}

/* The front span of c, merging the returned ones in if it has run out.
 * Central lock held. */
static struct gm_span *gm_central_first(struct gm_central *c)
{
    if (!c->head) gm_central_sort(c);
    return c->head;
}

void gm_central_push(struct gm_span *s)
{
    struct gm_central *c = &gm_central[s->sizeclass];
    gm_central_lock(c);
    gm_list_push(s->nursery ? &c->nursery : &c->returned, s);
    gm_central_count(c, 1);
    gm_central_unlock(c);
}

/* Adopt a span with free objects from the central list of cls. */
struct gm_span *gm_central_take(struct gm_tcache *tc, unsigned cls, bool any)
{
    struct gm_central *c = &gm_central[cls];
    if (!atomic_load_explicit(&c->nspans, memory_order_relaxed)) return NULL;
    gm_central_lock(c);
    struct gm_span *s;
    while ((s = gm_central_first(c))) {
        if (!any && gm_heap_above_goal(s)) { /* lowest first: the rest are above too */
            if (c->returned) {
                gm_central_sort(c);
                if (!gm_heap_above_goal(c->head)) continue;
            }
            s = NULL;
            break;
        }
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
    gm_central_unlock(c);
    if (s) atomic_store_explicit(&s->owner, tc, memory_order_relaxed);
    return s;
}

/* Shared classes (see the top). A span found exhausted leaves the central
 * list as an ORPHAN, so the first free into it brings it back
 * (gm_free_remote). */
#define GM_BATCH_BYTES 16384
#define GM_BATCH_MAX 8

/* Objects a refill of class cls takes, and the most a batch holds. */
static uint32_t gm_batch_size(unsigned cls)
{
    uint32_t n = GM_BATCH_BYTES / gm_class_size[cls];
    return n < 1 ? 1 : n > GM_BATCH_MAX ? GM_BATCH_MAX : n;
}

/* Move up to n objects from s->free to the empty batch st, marked batched.
 * The batch holds st->nelems - st->used objects: the fast path's pops
 * count in used, gm_batch_keep's pushes take them back. Central lock held. */
static void gm_batch_take(struct gm_span *st, struct gm_span *s, uint32_t n)
{
    gm_vg_quiet_begin();
    uintptr_t *o = s->free, *last = NULL;
    uint32_t k = 0;
    st->free = o;
    for (; o && k < n; k++, s->used++) {
        o[1] = gm_free_key ^ (uintptr_t)o ^ GM_BATCH_MARK;
        last = o;
        o = (uintptr_t *)o[0];
    }
    last[0] = 0;
    s->free = o;
    st->nelems = k;
    st->used = 0;
    gm_vg_quiet_end();
}

/* Set when a stash gets its first object, cleared by gm_stash_trim: some
 * stash may hold objects (a hint for the scavenger's parking). */
static _Atomic bool gm_stash_held;

bool gm_batch_keep(struct gm_tcache *tc, unsigned cls, void *p)
{
    unsigned i = cls - GM_FIRST_SHARED_CLASS;
    if (tc->stash_n[i] >= 2 * gm_batch_size(cls)) return false;
    uintptr_t *o = p;
    o[1] = gm_free_key ^ (uintptr_t)o ^ GM_BATCH_MARK;
    void *head = atomic_load_explicit(&tc->stash[i], memory_order_relaxed);
    do o[0] = (uintptr_t)head;
    while (!atomic_compare_exchange_weak_explicit(&tc->stash[i], &head, p, memory_order_release, memory_order_relaxed));
    gm_vg_free(p);
    tc->stash_n[i]++;
    if (!head && !atomic_load_explicit(&gm_stash_held, memory_order_relaxed)) atomic_store(&gm_stash_held, true);
    return true;
}

/* The stash of shared class cls, whole (NULL if empty). */
static void **gm_stash_take(struct gm_tcache *tc, unsigned cls)
{
    return atomic_exchange_explicit(&tc->stash[cls - GM_FIRST_SHARED_CLASS], NULL, memory_order_acquire);
}

/* The empty batch st of shared class cls takes tc's stash, if any. */
static bool gm_batch_from_stash(struct gm_tcache *tc, struct gm_span *st, unsigned cls)
{
    void **o = gm_stash_take(tc, cls);
    tc->stash_n[cls - GM_FIRST_SHARED_CLASS] = 0;
    if (!o) return false;
    uint32_t k = 0;
    gm_vg_quiet_begin();
    for (void **q = o; q; q = q[0]) k++;
    gm_vg_quiet_end();
    st->free = o;
    st->nelems = k;
    st->used = 0;
    return true;
}

/* The list batches of cls come from: a shared class's central list, or an
 * owned class's nursery. A shared class's spans go round fast (exhausted,
 * orphaned, back at the next free), so when the front runs out the
 * returned spans become the front as they are, and the scavenger's trim
 * sorts them (gm_central_sort): a sort under the lock at every turn would
 * hold up the threads that share the class. Central lock held. */
static struct gm_span **gm_batch_source(struct gm_central *c, unsigned cls)
{
    if (!gm_class_shared(cls)) return &c->nursery;
    if (!c->head && c->returned) {
        c->head = c->returned;
        c->returned = NULL;
        c->unsorted = true;
    }
    return &c->head;
}

/* The batch of class cls ran dry: refill it from the central list (an
 * owned class's nursery) or a new span, and allocate from it. */
void *gm_batch_refill(struct gm_tcache *tc, unsigned cls)
{
    struct gm_central *c = &gm_central[cls];
    struct gm_span *st = tc->current[cls], *s, **list;
    uint32_t n = gm_batch_size(cls);
    /* A young thread's batches of an owned class double from one object:
     * what a batch holds is touched (marked batched), used or not. */
    if (!gm_class_shared(cls) && n > 1u << (tc->young[cls] - 1)) n = 1u << (tc->young[cls] - 1);
    if (++tc->refills % GM_TICK_REFILLS == 0) gm_scav_tick();
    /* The tick may start the scavenger's thread, and pthread_create
     * allocates (its thread's TLS vector, 288 bytes here): if that refilled
     * this class, a batch taken now would overwrite what it left. */
    if (tc->current[cls] != st || st->free) return gm_small_alloc(tc, cls);
    if (gm_class_shared(cls) && gm_batch_from_stash(tc, st, cls)) return gm_small_alloc(tc, cls);
    gm_central_lock(c);
    while ((s = *(list = gm_batch_source(c, cls))) != NULL) {
        if (s->free || gm_span_collect(s)) {
            if (s->used == 0 && gm_heap_above_goal(s)) { /* see gm_heap.high_water */
                gm_list_remove(list, s);
                gm_central_count(c, -1);
                gm_heap_free_span(s);
                continue;
            }
            if (gm_heap_above_goal(s) && list == &c->head && (c->unsorted || c->returned)) {
                gm_central_sort(c); /* the heap shrinks: lowest spans first */
                continue;
            }
            gm_batch_take(st, s, n);
            gm_central_unlock(c);
            return gm_small_alloc(tc, cls);
        }
        uintptr_t none = GM_TF_NONE; /* else a free came in meanwhile: collect it */
        if (atomic_compare_exchange_strong_explicit(&s->thread_free, &none, GM_TF_ORPHAN, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            gm_list_remove(list, s);
            gm_central_count(c, -1);
        }
    }
    gm_central_unlock(c);
    /* Growth may reclaim, which takes central locks: none held here. */
    gm_scav_tick();
    if (tc->current[cls] != st || st->free) return gm_small_alloc(tc, cls); /* as above */
    s = gm_span_new(tc, cls);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    s->nursery = !gm_class_shared(cls);
    gm_central_lock(c);
    gm_batch_take(st, s, n);
    gm_list_push(gm_batch_source(c, cls), s);
    gm_central_count(c, 1);
    gm_central_unlock(c);
    return gm_small_alloc(tc, cls);
}

/* Tell owner that s has remote frees: push s onto its notify stack. Only
 * if s is not there already. A span still on the stack can be armed again:
 * its owner files it full (gm_span_to_full) between the push and its next
 * drain, and the next remote freer finds NOTIFY set again. A second push
 * would link s to itself through the stack (an owner draining for ever).
 * Skipping it loses nothing: the freer saw the arming, so the owner's
 * clearing of notify_pending for the earlier push has not happened before
 * that arming (it would be visible here), so the owner's drain of s comes
 * after it and finds s full. BUSY held. */
static void gm_notify_push(struct gm_tcache *owner, struct gm_span *s)
{
    atomic_store_explicit(&s->notify_pending, 1, memory_order_relaxed);
    struct gm_span *head = atomic_load_explicit(&owner->notify, memory_order_relaxed);
    do atomic_store_explicit(&s->notify_next, head, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&owner->notify, &head, s, memory_order_release,
                                                  memory_order_relaxed));
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
                if (!atomic_load_explicit(&s->notify_pending, memory_order_acquire))
                    gm_notify_push(atomic_load_explicit(&s->owner, memory_order_relaxed), s);
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
void gm_free_remote(struct gm_span *s, void *p)
{
    gm_vg_free(p);
    gm_thread_free_push(s, p);
}

/* Free the objects of list o (batched or stashed: marked, linked through
 * their first word) back to their spans. */
static void gm_batch_return(void **o)
{
    while (o) {
        gm_vg_quiet_begin();
        void **next = o[0];
        gm_vg_quiet_end();
        gm_thread_free_push(gm_span_lookup((uintptr_t)o), o);
        o = next;
    }
}

/* Give the batched and stashed objects back to their spans (not frees: the
 * program never had them, or had freed them). Owner only. */
void gm_batch_flush(struct gm_tcache *tc)
{
    for (unsigned i = 1; i < GM_NUM_CLASSES; i++) {
        struct gm_span *st = &tc->batch[i];
        void **o = st->free;
        st->free = NULL;
        st->nelems = st->used = 0;
        gm_batch_return(o);
        if (!gm_class_shared(i)) continue;
        gm_batch_return(gm_stash_take(tc, i));
        tc->stash_n[i - GM_FIRST_SHARED_CLASS] = 0;
    }
}

/* Takes tc's stashes onto the list *arg. Registry lock held. */
static void gm_stash_take_all(struct gm_tcache *tc, void *arg)
{
    void ***list = arg;
    for (unsigned c = GM_FIRST_SHARED_CLASS; c < GM_NUM_CLASSES; c++) {
        void **o = gm_stash_take(tc, c);
        if (!o) continue;
        void **last = o;
        gm_vg_quiet_begin();
        while (last[0]) last = last[0];
        last[0] = *list;
        gm_vg_quiet_end();
        *list = o;
    }
}

/* Every thread's stashed objects back to their spans (see the top). */
static void gm_stash_trim(void)
{
    if (!atomic_load_explicit(&gm_stash_held, memory_order_relaxed)) return;
    atomic_store(&gm_stash_held, false);
    void **list = NULL;
    gm_small_for_each_tcache(gm_stash_take_all, &list);
    gm_batch_return(list);
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

/* The spans of list whose objects are all free back to the heap; their
 * bytes. Central lock held. */
static size_t gm_central_trim_list(struct gm_central *ce, struct gm_span **list)
{
    size_t released = 0;
    for (struct gm_span *s = *list, *next; s; s = next) {
        next = s->next;
        gm_span_collect(s);
        if (s->used == 0) {
            gm_list_remove(list, s);
            gm_central_count(ce, -1);
            released += (size_t)s->npages << GM_PAGE_SHIFT;
            gm_heap_free_span(s);
        }
    }
    return released;
}

size_t gm_central_trim(void)
{
    if (gm_tc) gm_batch_flush(gm_tc);
    gm_stash_trim();
    size_t released = gm_spares_trim();
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        struct gm_central *ce = &gm_central[c];
        gm_central_lock(ce);
        gm_central_sort(ce);
        released += gm_central_trim_list(ce, &ce->head) + gm_central_trim_list(ce, &ce->nursery);
        gm_central_unlock(ce);
    }
    return released;
}

bool gm_central_holds(void)
{
    if (atomic_load_explicit(&gm_spares_held, memory_order_relaxed) > 0) return true;
    if (atomic_load_explicit(&gm_stash_held, memory_order_relaxed)) return true;
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++)
        if (atomic_load_explicit(&gm_central[c].nspans, memory_order_relaxed)) return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* fork                                                                     */
/* ------------------------------------------------------------------------ */

void gm_busy_fork_prepare(void)
{
    gm_rank_acquire(GM_RANK_BUSY, true);
    pthread_rwlock_wrlock(&gm_busy_lock);
}

void gm_busy_fork_parent(void) { gm_busy_leave(); }

void gm_busy_fork_child(void)
{
    pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
    gm_busy_lock = fresh;
}

void gm_central_fork_prepare(void)
{
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) gm_central_lock(&gm_central[c]);
}

void gm_central_fork_parent(void)
{
    for (unsigned c = GM_NUM_CLASSES; c-- > 0;) gm_central_unlock(&gm_central[c]);
}

void gm_central_fork_child(void)
{
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) pthread_mutex_init(&gm_central[c].lock, NULL);
}
