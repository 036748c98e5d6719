/*
 * large.c — layer 8: large objects and aligned allocation (Go's
 * largeAlloc).
 *
 * A request above GM_MAX_SMALL is a span of its own, straight from the page
 * heap: the thread's span cache first (a large span it freed recently, of
 * about the same size), then its page cache (spans of fewer than
 * GM_PAGECACHE_MAX_SPAN pages), the page allocator under the heap lock
 * otherwise (tcache.c's gm_alloc_span, which reclaims and retries when the
 * heap cannot grow). Freed large spans of up to 256 KiB go to the freeing
 * thread's span cache. A large object always starts at its span's base,
 * so free() recognizes an interior pointer, and its usable size is its
 * whole pages.
 *
 * Growth (realloc): in place when the pages after the span are free, or
 * decommitted, or the heap's frontier (heap.c's gm_heap_grow_span); else a
 * new span. Into a new span of fresh pages (released or new), a block of
 * GM_MOVE_MIN_PAGES or more has its pages moved, not copied (os.c's
 * gm_sys_move, mremap): it is never resident twice, as glibc's mmapped
 * chunks are not, and its old range goes back released. Into reused
 * pages it is copied: that grows nothing, where a move would drop them.
 * Each move may split the heap's mapping; gm_moves_split bounds how many
 * such splits stay (below).
 *
 * Alignment: up to 16 bytes every result is aligned. Beyond, a small size
 * class whose object size is a multiple of the alignment (spans are page
 * aligned, so all its objects are aligned) serves alignments up to a page;
 * larger ones take npages + align/page - 1 pages and give the unused head
 * and tail back to the heap (gm_heap_trim_span), so nothing beyond the
 * alignment is wasted, not even transiently beyond one span.
 *
 * Counters: a large object counts in class 0 of its thread's tcache, its
 * whole pages in large_bytes_alloc/freed and its requested bytes in
 * large_req_alloc/freed (the owner writes them: gm_counter_add).
 */
#include "api.h"

#include <errno.h>

#include "profile.h"

/* size >= 1: a large span with large_size 0 was not made by this API (the
 * heap's own tests make such spans), and gm_check leaves it out. */
static void gm_large_count_alloc(struct gm_tcache *tc, struct gm_span *s, size_t size)
{
    s->large_size = size;
    s->checked = 0; /* gm_checked_malloc sets it after (a cached span may have it) */
    atomic_store_explicit(&s->prof_samples, 0, memory_order_relaxed); /* sampled after, if at all */
    gm_count_inc(&tc->counts.mallocs[0]);
    gm_counter_add(&tc->large_bytes_alloc, (uint64_t)s->npages << GM_PAGE_SHIFT);
    gm_counter_add(&tc->large_req_alloc, size);
    gm_vg_alloc((void *)s->base, (size_t)s->npages << GM_PAGE_SHIFT, false);
}

/* A new large span for size bytes (size <= GM_MAX_REQUEST). */
struct gm_span *gm_large_alloc_span(struct gm_tcache *tc, size_t size)
{
    size_t npages = gm_pages_of(size);
    struct gm_span *s = gm_heap_cache_take(&tc->hl, npages);
    if (!s) s = gm_alloc_span(tc, npages, 0);
    if (GM_UNLIKELY(!s)) return NULL; /* errno is ENOMEM */
    gm_large_count_alloc(tc, s, size);
    return s;
}

void *gm_large_alloc(struct gm_tcache *tc, size_t size)
{
    struct gm_span *s = gm_large_alloc_span(tc, size);
    return s ? (void *)s->base : NULL;
}

/* The counters of a large object being freed; s is still in use. */
static void gm_large_count_free(struct gm_tcache *tc, struct gm_span *s)
{
    uint64_t bytes = (uint64_t)s->npages << GM_PAGE_SHIFT;
    size_t req = s->large_size;
    gm_vg_free((void *)s->base);
    if (tc) {
        gm_count_inc(&tc->counts.frees[0]);
        gm_counter_add(&tc->large_bytes_freed, bytes);
        gm_counter_add(&tc->large_req_freed, req);
    } else {
        atomic_fetch_add_explicit(&gm_notc_frees[0], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&gm_notc_large_bytes_freed, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&gm_notc_large_req_freed, req, memory_order_relaxed);
    }
}

/* Page moves whose splits of the heap's mapping may still be there (each
 * may leave two more lines in /proc/self/maps): a moved span freed while
 * more than GM_MOVES_SPLIT_MAX are is mapped afresh, which joins its range
 * to its neighbours again but gives its pages back, so that later use
 * faults them in; below it the span is freed as any other, its pages kept.
 * Decommits by the scavenger join ranges too, unseen here: the count errs
 * high. */
static _Atomic long gm_moves_split;

/* Free moved span s by mapping it afresh, under the scavenger's lock (see
 * gm_large_move); its splits go with it. */
static void gm_large_remap(struct gm_span *s)
{
    atomic_fetch_sub_explicit(&gm_moves_split, 1, memory_order_relaxed);
    gm_scav_lock_all();
    gm_heap_free_span_remap(s);
    gm_scav_unlock_all();
}

/* Free large span s; a moved one may be remapped (see above). */
static void gm_large_release(struct gm_tcache *tc, struct gm_span *s)
{
    if (GM_UNLIKELY(s->moved) && atomic_load_explicit(&gm_moves_split, memory_order_relaxed) > GM_MOVES_SPLIT_MAX) {
        gm_large_remap(s);
    } else if (tc) {
        gm_heap_cache_put(&tc->hl, s);
    } else {
        gm_heap_free_span(s);
    }
}

void gm_large_free(struct gm_tcache *tc, struct gm_span *s)
{
    gm_large_count_free(tc, s);
    gm_large_release(tc, s);
}

enum gm_move gm_large_move(struct gm_tcache *tc, struct gm_span *from, struct gm_span *to)
{
#ifdef GM_VALGRIND
    return GM_MOVE_COPY; /* memcheck would not follow the bytes */
#endif
    /* A sampled new block is copied into: the profile's lock comes before
     * the scavenger's, so it cannot be forgotten under it. */
    if (atomic_load_explicit(&to->prof_samples, memory_order_relaxed)) return GM_MOVE_COPY;
    size_t n = (size_t)from->npages << GM_PAGE_SHIFT;
    if (!gm_heap_hold_slot()) return GM_MOVE_COPY; /* for a target that loses its commit */
    /* The scavenger's lock, as around its own system calls: gm_check (which
     * holds it, and may run beside the helper thread) must not see heap_sys
     * while a refused move has taken the target's bytes out and the span
     * is not yet freed, nor a remap half done. */
    gm_scav_lock_all();
    int r = gm_sys_move((void *)from->base, (void *)to->base, n, &gm_heap.heap_sys);
    if (r == -1) {
        gm_scav_unlock_all();
        gm_heap_drop_slot();
        return GM_MOVE_COPY;
    }
    if (r == -2) {
        gm_large_count_free(tc, to);
        gm_heap_free_span_lost(to, n);
        gm_scav_unlock_all();
        return GM_MOVE_LOST;
    }
    gm_scav_unlock_all();
    gm_heap_drop_slot();
    to->moved = 1;
    atomic_fetch_add_explicit(&gm_moves_split, 1, memory_order_relaxed);
    if (atomic_load_explicit(&from->prof_samples, memory_order_relaxed)) gm_prof_freed(from, (void *)from->base);
    gm_large_count_free(tc, from);
    /* from's pages read as zeroes now. If pages were moved into it before,
     * a remap costs nothing more and joins its mappings again. */
    if (from->moved) gm_large_remap(from);
    else gm_heap_free_span_zeroed(from);
    gm_heap_freed();
    return GM_MOVE_DONE;
}

/* A large object changed size in place from old_pages pages / old_size bytes. */
void gm_large_count_resize(struct gm_tcache *tc, struct gm_span *s, size_t old_pages, size_t size)
{
    if (s->npages > old_pages)
        gm_counter_add(&tc->large_bytes_alloc, (uint64_t)(s->npages - old_pages) << GM_PAGE_SHIFT);
    else if (s->npages < old_pages)
        gm_counter_add(&tc->large_bytes_freed, (uint64_t)(old_pages - s->npages) << GM_PAGE_SHIFT);
    if (size > s->large_size) gm_counter_add(&tc->large_req_alloc, size - s->large_size);
    else gm_counter_add(&tc->large_req_freed, s->large_size - size);
    s->large_size = size;
    gm_vg_resize((void *)s->base, old_pages << GM_PAGE_SHIFT, (size_t)s->npages << GM_PAGE_SHIFT);
}

/* ------------------------------------------------------------------------ */
/* Aligned allocation                                                       */
/* ------------------------------------------------------------------------ */

/* align is a power of two. */
static void *gm_aligned_body(size_t align, size_t size)
{
    if (align <= 16) return gm_malloc_fast(size);
    if (GM_UNLIKELY(size > GM_MAX_REQUEST || align > GM_MAX_ALIGN)) {
        errno = ENOMEM;
        return NULL;
    }
    struct gm_tcache *tc = gm_thread_cache();
    if (!tc) return NULL;
    if (GM_UNLIKELY(gm_opt.check) && align <= GM_PAGE_SIZE) return gm_checked_malloc(tc, size, align);
    if (align <= GM_PAGE_SIZE) {
        if (size <= GM_MAX_SMALL) {
            /* The smallest class whose objects are all aligned. */
            for (unsigned cls = gm_size_class(size); cls < GM_NUM_CLASSES; cls++)
                if ((gm_class_size[cls] & (align - 1)) == 0) return gm_small_alloc(tc, cls);
        }
        return gm_large_alloc(tc, size == 0 ? 1 : size);
    }
    /* More than a page: over-allocate by align - page, keep the aligned
     * part, give the rest back. */
    size_t npages = gm_pages_of(size == 0 ? 1 : size);
    size_t extra = (align >> GM_PAGE_SHIFT) - 1;
    struct gm_span *s = gm_alloc_span(tc, npages + extra, 0);
    if (!s) return NULL;
    uintptr_t base = gm_align_up(s->base, align);
    if (base != s->base || s->npages != npages) gm_heap_trim_span(s, base, npages);
    gm_large_count_alloc(tc, s, size == 0 ? 1 : size);
    return (void *)base;
}

void *gm_aligned(size_t align, size_t size)
{
    int saved = errno;
    void *p = gm_aligned_body(align, size);
    if (align > 16 && gm_tc) p = gm_prof_note(gm_tc, p, size); /* smaller: malloc counted it */
    return gm_errno_result(p, saved);
}
