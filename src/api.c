/*
 * api.c — layer 8: the allocation API (Go's mallocgc, for a world with
 * explicit free): the bodies of malloc, free, calloc, realloc and the
 * aligned family behind the gm_* names (here) and the standard names
 * (override.c), the checks of the pointers they are given, and the first
 * allocation's set-up.
 *
 * Requests of at most GM_MAX_SMALL bytes go to the thread's tcache
 * (tcache.h's inline fast paths); anything larger is a span of its own
 * (large.c). realloc keeps the object where it is when it can: a small
 * object stays in its class while the new size fits and is at least half of
 * it (hysteresis against ping-pong) or still maps to that class; a large
 * one shrinks in place (the tail goes back) and grows in place when the
 * pages after it are free, and moves to a size class when it shrinks to a
 * small size. Moves copy the old object's usable bytes that fit. calloc
 * zeroes only memory that may hold old data: small objects always, large
 * spans only if their needzero says so (pages fresh from the OS, released
 * or recommitted read as zero), and then only the pages the program may
 * have written (gm_sys_zero).
 *
 * Set-up is lazy and allocation-free, so malloc works from the first call
 * the dynamic loader or libc makes, before main and before any
 * constructor: options are read by scanning environ, and the heap and the
 * calling thread's tcache start at its first allocation. What must not
 * happen inside malloc (fork handlers, the exit report, the trace sampler)
 * is init.c's, from the library's constructor.
 *
 * Counters: mallocs and frees per class go to the calling thread's tcache
 * (owner-written, no atomic RMW); class 0 counts large objects. A free from
 * a thread without a tcache counts in the global atomic gm_notc_* counters.
 *
 * Bad pointers: free, realloc or malloc_usable_size of a pointer the heap
 * never handed out, of an interior pointer or of a freed object print one
 * line naming the pointer (span.c's gm_bad_pointer) and abort.
 *
 * The heap profile (profile.c): while a thread samples, gm_tc_malloc is
 * NULL, so its mallocs leave the usual inline fast path at its first test
 * and take the second one behind it (api.h's gm_malloc_fast): Go's
 * countdown, one subtraction and a branch, then the same fast path; the
 * usual path never runs that code, so it costs a thread that does not
 * sample nothing. The small allocation that reaches zero goes to
 * gm_malloc_sampled, and every calloc, aligned and large allocation that
 * does is recorded too (gm_prof_note, gm_malloc_slow). Frees need nothing here but for large blocks: a large
 * span's prof_samples says whether its block was sampled; small blocks are
 * tcache.c's.
 *
 * errno: a call that succeeds leaves it as the caller left it, and free
 * never changes it (POSIX 2024, glibc 2.33), because the slow paths make
 * system calls that may fail and be recovered from: starting the heap opens
 * files that may not exist (the cgroup's limit), an arena hint may be
 * taken, growth past a soft limit fails once and is retried after a
 * reclaim, starting the scavenger may fail. Each entry to a slow path
 * (gm_malloc_slow, gm_free_slow, calloc, realloc, the aligned family;
 * tcache.c's refill and emptied-span paths, which the inline fast paths
 * reach directly) saves errno and puts it back unless the call failed,
 * which sets ENOMEM (EINVAL for a bad alignment, decided before). The
 * inline fast paths make no system call and do not touch errno.
 */
#include "api.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "profile.h"

_Atomic uint64_t gm_notc_frees[GM_NUM_CLASSES];
_Atomic uint64_t gm_notc_large_bytes_freed;
_Atomic uint64_t gm_notc_large_req_freed;

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Options and the first allocation                                         */
/* ------------------------------------------------------------------------ */

enum { GM_OPTIONS_UNREAD, GM_OPTIONS_READING, GM_OPTIONS_READ };
static _Atomic int gm_options_state;

static _Atomic bool gm_options_defaulted;
static __thread bool gm_options_reader; /* this thread is reading them */

/* The options (options.c), from the environment once per process, so that
 * a bad value is warned about once. Before the environment is set up (the
 * loader's first allocations) the defaults hold, and the constructor reads
 * it. Another thread that comes meanwhile waits (a few microseconds, once),
 * lest it start the heap with half of them; the reader itself, back here
 * from a signal handler, goes on. */
void gm_options_load(void)
{
    if (GM_LIKELY(atomic_load_explicit(&gm_options_state, memory_order_acquire) == GM_OPTIONS_READ)) return;
    if (!environ) {
        if (!atomic_exchange(&gm_options_defaulted, true)) gm_options_parse(&gm_opt, false);
        return;
    }
    int expect = GM_OPTIONS_UNREAD;
    if (!atomic_compare_exchange_strong(&gm_options_state, &expect, GM_OPTIONS_READING)) {
        while (!gm_options_reader && atomic_load_explicit(&gm_options_state, memory_order_acquire) != GM_OPTIONS_READ)
            sched_yield();
        return;
    }
    gm_options_reader = true;
    gm_options_parse(&gm_opt, true);
    if (gm_opt.check) gm_tc_fast = gm_tc_malloc = NULL; /* this thread may have a cache already */
    if (gm_opt.profile && gm_prof_start(gm_opt.profile_rate) == 0) {
        if (gm_opt.profile_period) gm_prof_period_start(gm_opt.profile, gm_opt.profile_period);
        if (gm_tc) gm_tcache_prof_sync(gm_tc);
    }
    if (gm_opt.memory_limit) gm_set_memory_limit(gm_opt.memory_limit, gm_opt.memory_limit_hard);
    if (gm_heap_ready()) gm_scav_settings();
    atomic_store_explicit(&gm_options_state, GM_OPTIONS_READ, memory_order_release);
    gm_options_reader = false;
}

/* Set up the calling thread (and, the first time, the heap). Its callers
 * keep errno (the slow paths' entries). */
struct gm_tcache *gm_thread_init(void)
{
    gm_options_load();
    return gm_tcache_init();
}

/* The calling thread's cache, set up on first use; NULL with errno=ENOMEM
 * if that fails. */
struct gm_tcache *gm_thread_cache(void)
{
    struct gm_tcache *tc = gm_tc;
    if (GM_UNLIKELY(!tc) && !(tc = gm_thread_init())) errno = ENOMEM;
    return tc;
}

/* ------------------------------------------------------------------------ */
/* Pointer validation                                                       */
/* ------------------------------------------------------------------------ */

/* p must be a live object of small span s (state SMALL); aborts otherwise.
 * The freed-object marker is only a hint: confirmed on the span's lists. */
static void gm_small_validate(struct gm_span *s, const void *p, enum gm_op op)
{
    uintptr_t a = (uintptr_t)p, word = gm_vg_word(&((const uintptr_t *)p)[1]);
    if (GM_UNLIKELY(!gm_span_is_object(s, a) || word == (gm_free_key ^ a) ||
                    word == (gm_free_key ^ a ^ GM_BATCH_MARK)))
        gm_span_check_free(s, p, op); /* aborts unless a false alarm */
}

unsigned gm_validate(struct gm_span *s, const void *p, enum gm_op op)
{
    if (GM_UNLIKELY(!s)) gm_bad_pointer(op, GM_BAD_FOREIGN, p);
    unsigned st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st == GM_SPAN_SMALL) {
        gm_small_validate(s, p, op);
    } else if (st == GM_SPAN_LARGE) {
        uintptr_t a = (uintptr_t)p;
        if (GM_UNLIKELY(a != s->base)) {
            bool inside = a > s->base && a - s->base < ((uintptr_t)s->npages << GM_PAGE_SHIFT);
            gm_bad_pointer(op, inside ? GM_BAD_INTERIOR : GM_BAD_FREED, p);
        }
    } else {
        /* The page's entry is stale: its span was freed. */
        gm_bad_pointer(op, GM_BAD_FREED, p);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* The heap profile's countdown                                             */
/* ------------------------------------------------------------------------ */

/* p (size bytes, just allocated by tc's thread) is sampled: record it and
 * draw the distance to the next sample. */
__attribute__((noinline)) void gm_prof_sample(struct gm_tcache *tc, void *p, size_t size)
{
    tc->prof_left = gm_prof_draw(&tc->prof_rng, tc->prof_rate);
    if (!p) return;
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    gm_prof_record(p, size, s);
    gm_tcache_prof_mark(tc, s);
    gm_prof_period_tick(); /* no lock is held here */
}

int gm_profile_start(size_t rate)
{
    int saved = errno;
    if (gm_prof_start(rate ? rate : gm_opt.profile_rate) != 0) return -1;
    if (gm_tc) gm_tcache_prof_sync(gm_tc);
    errno = saved;
    return 0;
}

void gm_profile_stop(void)
{
    gm_prof_stop();
    if (gm_tc) gm_tcache_prof_sync(gm_tc);
}

/* ------------------------------------------------------------------------ */
/* malloc and free                                                          */
/* ------------------------------------------------------------------------ */

static void *gm_malloc_body(size_t size)
{
    struct gm_tcache *tc = gm_tc;
    if (!tc && !(tc = gm_thread_init())) {
        errno = ENOMEM;
        return NULL;
    }
    if (GM_UNLIKELY(gm_opt.check)) return gm_checked_malloc(tc, size, 1);
    if (size <= GM_MAX_SMALL) return gm_small_alloc(tc, gm_size_class(size));
    if (GM_UNLIKELY(size > GM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    gm_scav_tick();
    return gm_large_alloc(tc, size);
}

static void gm_free_body(void *p, struct gm_span *s)
{
    unsigned st = gm_validate(s, p, GM_OP_FREE);
    struct gm_tcache *tc = gm_tc;
    if (GM_UNLIKELY(s->checked)) gm_checked_free(s, p, st);
    if (st == GM_SPAN_LARGE) {
        if (GM_UNLIKELY(atomic_load_explicit(&s->prof_samples, memory_order_relaxed))) gm_prof_freed(s, p);
        gm_large_free(tc, s);
        gm_scav_tick_free();
    } else if (tc) {
        gm_small_free(tc, s, p);
    } else {
        unsigned cls = s->sizeclass; /* s may be gone once p is freed */
        gm_small_free_slow(NULL, s, p);
        atomic_fetch_add_explicit(&gm_notc_frees[cls], 1, memory_order_relaxed);
    }
}

/* The inline fast paths' exception (api.h): no tcache yet, checked mode,
 * large sizes, a sampling thread whose sampler has yet to see a change of
 * gm_prof_epoch. */
void *gm_malloc_slow(size_t size)
{
    struct gm_tcache *tc = gm_tc;
    bool due = false;
    if (tc && GM_UNLIKELY(tc->prof_epoch != gm_prof_epoch_now())) gm_tcache_prof_sync(tc);
    if (tc && tc->prof_rate) {
        due = gm_prof_due(tc, size);
        if (!due && size <= GM_MAX_SMALL && !gm_opt.check) return gm_small_alloc(tc, gm_size_class(size));
    }
    int saved = errno;
    void *p = gm_malloc_body(size);
    if (GM_UNLIKELY(due)) gm_prof_sample(tc, p, size);
    else if (!tc && gm_tc) p = gm_prof_note(gm_tc, p, size); /* the thread's first allocation */
    return gm_errno_result(p, saved);
}

/* The countdown (already charged with size) reached zero: the block is
 * sampled, and the next distance drawn. */
void *gm_malloc_sampled(struct gm_tcache *tc, size_t size)
{
    int saved = errno;
    void *p = gm_small_alloc(tc, gm_size_class(size));
    gm_prof_sample(tc, p, size);
    return gm_errno_result(p, saved);
}

void gm_free_slow(void *p, struct gm_span *s)
{
    if (!p) return;
    int saved = errno;
    gm_free_body(p, s);
    errno = saved;
}

void *gm_malloc(size_t size) { return gm_malloc_fast(size); }

void gm_free(void *p) { gm_free_fast(p); }

/* ------------------------------------------------------------------------ */
/* calloc, realloc                                                          */
/* ------------------------------------------------------------------------ */

/* Zero the first total bytes of p, a block just handed out: small objects
 * by writing, large ones only where they may hold data (a span of released
 * pages is zero already; of the others, pages never touched are too). */
static void gm_calloc_zero(void *p, size_t total)
{
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != GM_SPAN_LARGE) memset(p, 0, total);
    else if (s->needzero) gm_sys_zero(p, total);
    gm_vg_defined(p, total); /* zero either way */
}

static void *gm_calloc_body(size_t n, size_t size)
{
    size_t total;
    if (GM_UNLIKELY(__builtin_mul_overflow(n, size, &total) || total > GM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    struct gm_tcache *tc = gm_thread_cache();
    if (!tc) return NULL;
    if (GM_UNLIKELY(gm_opt.check)) {
        void *p = gm_checked_malloc(tc, total, 1);
        if (p) gm_calloc_zero(p, total);
        return gm_prof_note(tc, p, total);
    }
    if (total <= GM_MAX_SMALL) {
        void *p = gm_small_alloc(tc, gm_size_class(total));
        if (GM_LIKELY(p != NULL)) memset(p, 0, total);
        return gm_prof_note(tc, p, total);
    }
    struct gm_span *s = gm_large_alloc_span(tc, total);
    if (!s) return NULL;
    gm_calloc_zero((void *)s->base, total);
    return gm_prof_note(tc, (void *)s->base, total);
}

void *gm_api_calloc(size_t n, size_t size)
{
    int saved = errno;
    return gm_errno_result(gm_calloc_body(n, size), saved);
}

static void *gm_realloc_body(void *p, size_t size)
{
    if (!p) return gm_malloc_fast(size);
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    unsigned st = gm_validate(s, p, GM_OP_REALLOC);
    if (size == 0) { /* glibc's choice: free and return NULL */
        gm_free_fast(p);
        return NULL;
    }
    if (GM_UNLIKELY(size > GM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    struct gm_tcache *tc = gm_thread_cache();
    if (!tc) return NULL;
    if (GM_UNLIKELY(s->checked || gm_opt.check)) { /* checked: always a new block */
        size_t n = s->checked ? gm_checked_size(s, p) : gm_api_usable_size(p);
        void *q = gm_opt.check ? gm_checked_malloc(tc, size, 1) : gm_malloc_fast(size);
        if (!q) return NULL;
        memcpy(q, p, n < size ? n : size);
        gm_free_fast(p);
        return q;
    }
    size_t old;
    if (st == GM_SPAN_SMALL) {
        old = s->elemsize;
        if (size <= old && (size >= old / 2 || gm_size_class(size) == s->sizeclass)) return p;
    } else {
        old = (size_t)s->npages << GM_PAGE_SHIFT;
        if (size > GM_MAX_SMALL) {
            size_t npages = gm_pages_of(size), old_pages = s->npages;
            if (npages < old_pages) gm_heap_shrink_span(s, npages);
            if (npages <= old_pages || gm_heap_grow_span(s, npages)) {
                gm_large_count_resize(tc, s, old_pages, size);
                return p;
            }
        }
    }
    void *q = gm_malloc_fast(size);
    if (!q) return NULL;
    if (st == GM_SPAN_LARGE && s->npages >= GM_MOVE_MIN_PAGES && size > old) {
        struct gm_span *t = gm_span_lookup((uintptr_t)q);
        switch (t->needzero ? GM_MOVE_COPY : gm_large_move(tc, s, t)) {
        case GM_MOVE_DONE: return q;
        case GM_MOVE_LOST: errno = ENOMEM; return NULL;
        case GM_MOVE_COPY: break;
        }
    }
    memcpy(q, p, old < size ? old : size);
    gm_free_fast(p);
    return q;
}

void *gm_api_realloc(void *p, size_t size)
{
    int saved = errno;
    void *q = gm_realloc_body(p, size);
    errno = q || (p && size == 0) ? saved : ENOMEM; /* realloc(p, 0) frees p: NULL is success */
    return q;
}

void *gm_api_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (GM_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    return gm_api_realloc(p, total);
}

static inline bool gm_is_pow2(size_t x) { return x && !(x & (x - 1)); }

int gm_api_posix_memalign(void **out, size_t align, size_t size)
{
    if (!gm_is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = gm_aligned(align, size);
    errno = saved;
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *gm_api_aligned_alloc(size_t align, size_t size)
{
    if (!gm_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return gm_aligned(align, size);
}

void *gm_api_memalign(size_t align, size_t size)
{
    /* glibc: a non-power-of-two alignment is rounded up to the next one. */
    if (!gm_is_pow2(align)) {
        if (align > ((size_t)1 << (sizeof(size_t) * 8 - 1))) {
            errno = EINVAL;
            return NULL;
        }
        size_t a = 1;
        while (a < align) a <<= 1;
        align = a;
    }
    return gm_aligned(align, size);
}

void *gm_api_valloc(size_t size) { return gm_aligned(GM_OS_PAGE, size); }

void *gm_api_pvalloc(size_t size)
{
    if (size > GM_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    size = size == 0 ? GM_OS_PAGE : gm_align_up(size, GM_OS_PAGE);
    return gm_aligned(GM_OS_PAGE, size);
}

/* No system call on this path, so errno is never touched. */
size_t gm_api_usable_size(const void *p)
{
    if (!p) return 0;
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    unsigned st = gm_validate(s, p, GM_OP_USABLE);
    if (GM_UNLIKELY(s->checked)) return gm_checked_size(s, p); /* the pad is not the caller's */
    if (st == GM_SPAN_SMALL) return s->elemsize;
    return (size_t)s->npages << GM_PAGE_SHIFT;
}

/* ------------------------------------------------------------------------ */
/* The gm_ names                                                            */
/* ------------------------------------------------------------------------ */

#define GM_ALIAS(name, impl) __typeof__(impl) name __attribute__((alias(#impl), visibility("default")))

GM_ALIAS(gm_calloc, gm_api_calloc);
GM_ALIAS(gm_realloc, gm_api_realloc);
GM_ALIAS(gm_reallocarray, gm_api_reallocarray);
GM_ALIAS(gm_posix_memalign, gm_api_posix_memalign);
GM_ALIAS(gm_aligned_alloc, gm_api_aligned_alloc);
GM_ALIAS(gm_memalign, gm_api_memalign);
GM_ALIAS(gm_valloc, gm_api_valloc);
GM_ALIAS(gm_pvalloc, gm_api_pvalloc);
GM_ALIAS(gm_malloc_usable_size, gm_api_usable_size);
