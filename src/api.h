/*
 * api.h — layer 8: large objects (large.c), checked mode (checked.c), and
 * the allocation API's bodies and inline fast paths (api.c). Includes
 * tcache.h.
 */
#ifndef GM_API_H
#define GM_API_H

#include "tcache.h"

/*
 * The gm_* names (api.c) and the standard names (override.c) share the
 * inline fast paths below and the hidden gm_api_* bodies, so neither set
 * calls the other through the PLT.
 */
#define GM_MAX_REQUEST ((size_t)PTRDIFF_MAX) /* larger requests: ENOMEM at once */
#define GM_MAX_ALIGN ((size_t)1 << 30)       /* larger alignments: ENOMEM */

/* Frees by threads that have no tcache (they never allocated, or are past
 * their tcache's release at exit), which count nowhere else. Class 0: large
 * objects; large bytes are whole pages. */
extern _Atomic uint64_t gm_notc_frees[GM_NUM_CLASSES] GM_HIDDEN;
extern _Atomic uint64_t gm_notc_large_bytes_freed GM_HIDDEN;
extern _Atomic uint64_t gm_notc_large_req_freed GM_HIDDEN;

/* Read the options (once per process) and set up the calling thread:
 * the first allocation's work, and the constructor's (init.c). */
struct gm_tcache *gm_thread_init(void) GM_HIDDEN;
/* The calling thread's cache, set up on first use; NULL with errno=ENOMEM
 * if that fails. */
struct gm_tcache *gm_thread_cache(void) GM_HIDDEN;
/* The options (options.c), from the environment once per process. */
void gm_options_load(void) GM_HIDDEN;

/* Large objects (large.c): a span of their own, whole pages, from the
 * thread's span cache, its page cache or the heap. */
static inline size_t gm_pages_of(size_t size) { return (size + GM_PAGE_SIZE - 1) >> GM_PAGE_SHIFT; }
struct gm_span *gm_large_alloc_span(struct gm_tcache *tc, size_t size) GM_HIDDEN; /* size <= GM_MAX_REQUEST */
void *gm_large_alloc(struct gm_tcache *tc, size_t size) GM_HIDDEN;                /* its base, or NULL */
void gm_large_free(struct gm_tcache *tc, struct gm_span *s) GM_HIDDEN;
/* realloc of a large object that does not fit in place: from's pages moved
 * onto the front of the new object to instead of copied (gm_sys_move), for
 * objects of GM_MOVE_MIN_PAGES or more whose new span is all fresh pages
 * (released or new: a copy would fault them in, and leave the old block
 * resident beside them; into reused pages a copy grows nothing, and a move
 * would drop them, to be faulted in again later). DONE: from is freed;
 * COPY: nothing changed, copy; LOST: to is freed (its commit could not be
 * had again) and realloc fails. */
#define GM_MOVE_MIN_PAGES ((size_t)128) /* 1 MiB */
#define GM_MOVES_SPLIT_MAX 32           /* see large.c */
enum gm_move { GM_MOVE_COPY, GM_MOVE_DONE, GM_MOVE_LOST };
enum gm_move gm_large_move(struct gm_tcache *tc, struct gm_span *from, struct gm_span *to) GM_HIDDEN;
/* A large object's counters after it changed size in place. */
void gm_large_count_resize(struct gm_tcache *tc, struct gm_span *s, size_t old_pages, size_t size) GM_HIDDEN;
/* align a power of two above 16. */
void *gm_aligned(size_t align, size_t size) GM_HIDDEN;

/* Checked mode (checked.c, GOMALLOC_CHECK=1): a block of size bytes aligned
 * to align (a power of two up to a page; 1 for none), armed with a canary
 * (small) or pad (large) after its size; a checked block's requested size,
 * after checking its canary; and its check and fill before it is freed. */
void *gm_checked_malloc(struct gm_tcache *tc, size_t size, size_t align) GM_HIDDEN;
size_t gm_checked_size(struct gm_span *s, const void *p) GM_HIDDEN;
void gm_checked_free(struct gm_span *s, void *p, unsigned state) GM_HIDDEN;

/* The state of the span holding p (SMALL or LARGE) after checking that p is
 * a live object's start; aborts with the report of op otherwise. */
unsigned gm_validate(struct gm_span *s, const void *p, enum gm_op op) GM_HIDDEN;

/* The heap profile's countdown (api.c's top comment): size bytes counted
 * down on tc's sampler, true if this allocation is sampled; the sampled
 * block p recorded, and the next distance drawn; and the two together for
 * the paths that do not pass through gm_malloc_slow's countdown. */
static inline bool gm_prof_due(struct gm_tcache *tc, size_t size)
{
    if (GM_LIKELY(tc->prof_rate == 0)) return false;
    tc->prof_left -= (int64_t)size;
    return tc->prof_left <= 0;
}
void gm_prof_sample(struct gm_tcache *tc, void *p, size_t size) GM_HIDDEN;
static inline void *gm_prof_note(struct gm_tcache *tc, void *p, size_t size)
{
    if (GM_UNLIKELY(gm_prof_due(tc, size))) gm_prof_sample(tc, p, size);
    return p;
}

void *gm_malloc_slow(size_t size) GM_HIDDEN;
/* free(p) for everything but the owner's small-object fast path: NULL, large
 * objects, threads without a tcache, and bad pointers (which abort). s is
 * gm_span_lookup(p). */
void gm_free_slow(void *p, struct gm_span *s) GM_HIDDEN;
void *gm_api_calloc(size_t n, size_t size) GM_HIDDEN;
void *gm_api_realloc(void *p, size_t size) GM_HIDDEN;
void *gm_api_reallocarray(void *p, size_t n, size_t size) GM_HIDDEN;
int gm_api_posix_memalign(void **out, size_t align, size_t size) GM_HIDDEN;
void *gm_api_aligned_alloc(size_t align, size_t size) GM_HIDDEN;
void *gm_api_memalign(size_t align, size_t size) GM_HIDDEN;
void *gm_api_valloc(size_t size) GM_HIDDEN;
void *gm_api_pvalloc(size_t size) GM_HIDDEN;
size_t gm_api_usable_size(const void *p) GM_HIDDEN;

/* A sampling thread's small allocation whose countdown reached zero. */
void *gm_malloc_sampled(struct gm_tcache *tc, size_t size) GM_HIDDEN;

/* malloc's fast paths. The usual one, then, on the branch it leaves (which
 * the usual case never takes, so it costs that case nothing), a sampling
 * thread's: Go's countdown, one subtraction and a branch, in front of the
 * same fast path. gm_tc_malloc NULL with gm_tc_fast set means exactly that
 * the thread samples (gm_tcache_prof_sync sets both, prof_rate with them;
 * checked mode and a thread without a cache have neither). Everything
 * else is gm_malloc_slow's. */
static inline __attribute__((always_inline)) void *gm_malloc_fast(size_t size)
{
    struct gm_tcache *tc = gm_tc_malloc;
    if (GM_LIKELY(tc != NULL)) {
        if (GM_LIKELY(size <= GM_MAX_SMALL)) return gm_small_alloc(tc, gm_size_class(size));
        return gm_malloc_slow(size);
    }
    tc = gm_tc_fast;
    if (tc != NULL && size <= GM_MAX_SMALL) {
        if (GM_UNLIKELY((tc->prof_left -= (int64_t)size) <= 0)) return gm_malloc_sampled(tc, size);
        return gm_small_alloc(tc, gm_size_class(size));
    }
    return gm_malloc_slow(size);
}

static inline __attribute__((always_inline)) void gm_free_fast(void *p)
{
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    struct gm_tcache *tc = gm_tc_fast;
    if (GM_LIKELY(s != NULL && tc != NULL &&
                  atomic_load_explicit(&s->state, memory_order_acquire) == GM_SPAN_SMALL)) {
        gm_small_free(tc, s, p);
        return;
    }
    gm_free_slow(p, s);
}

#endif /* GM_API_H */
