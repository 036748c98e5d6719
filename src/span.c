/*
 * span.c — layer 6: the objects of a small span (Go's mspan, adapted to
 * explicit free): carving, collecting the free lists, and telling a live
 * object from a bad pointer.
 *
 * Carving is lazy: a span's objects go onto its free list a page's worth at
 * a time, in address order, each marked free, when the list runs dry, so
 * the pages a thread never reaches are never touched (no RSS); limit marks
 * the end of the carved part, and an address past it was never handed
 * out. Collecting moves the owner's local_free list and the remote freers'
 * thread_free list onto free: local_free whole when free is empty (the
 * usual case: no walk to its tail, which would cost a cache miss per
 * object), thread_free with one CAS that keeps its flag bits (tcache.h).
 * Remote freers count their frees in remote_frees after their push, and
 * collect subtracts that count from used, so used never falls below what
 * the program holds and the remote list is never walked to count it.
 *
 * Bad pointers: a free (or realloc, or malloc_usable_size) of an address
 * that is not the start of a carved object, or of an object marked free
 * and found on one of the span's lists, gets one report (gm_bad_pointer:
 * one line naming the pointer, then abort). Every message of that kind is
 * in its one table, so the same mistake always reads the same.
 *
 * Checked mode (GOMALLOC_CHECK): carving fills an object's bytes past its
 * link and marker with GM_FREE_FILL, and collecting checks every link it
 * walks (a write after free that hit one is reported naming the object).
 */
#include "span.h"

#include <string.h>
#include <time.h>

uintptr_t gm_free_key;

/* ------------------------------------------------------------------------ */
/* Collecting free objects                                                  */
/* ------------------------------------------------------------------------ */

/* Checked mode: the link of free object o must be NULL or another object
 * of s; a write after free that hit it is reported naming o. */
static inline void gm_check_link(const struct gm_span *s, void **o)
{
    uintptr_t next = (uintptr_t)o[0];
    if (next && !gm_span_is_object(s, next)) gm_fatal("corrupted free list (write after free) in block", o);
}

/* Prepend list (the owner's or other threads' frees) to s->free; checked
 * mode validates its links. The usual caller has nothing on free: then the
 * list moves over whole, without the walk to its tail (a cache miss per
 * object). */
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

/* Carving is lazy: a span's objects are put on its free list a heap page's
 * worth at a time (at least one object), in address order, each marked
 * free, when the list runs dry; the first carve of a span stops at the end
 * of its first OS page. Pages never carved are never touched, so a span
 * bigger than its thread needs costs address space and commit but no RSS
 * (a thread that uses a class a little touches 4 KiB of it, not 8: with
 * a thousand threads, each using a few dozen classes, that is half their
 * heap). limit is the end of the carved part: an address past it was never
 * handed out. The caller owns s (or holds the central lock while nobody
 * does) and s->free is empty. */
#define GM_CARVE_BYTES GM_PAGE_SIZE
void gm_span_carve(struct gm_span *s)
{
    uintptr_t start = atomic_load_explicit(&s->limit, memory_order_relaxed);
    uint32_t size = s->elemsize, done = (uint32_t)((start - s->base) / size);
    uint32_t bytes = done ? GM_CARVE_BYTES : GM_OS_PAGE;
    uint32_t n = bytes / size ? bytes / size : 1;
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
uint32_t gm_span_carved(const struct gm_span *s)
{
    return (uint32_t)((atomic_load_explicit(&s->limit, memory_order_relaxed) - s->base) / s->elemsize);
}

/* Move local_free and thread_free onto free, or carve more. The caller owns
 * s (or holds the central lock while nobody does). Keeps thread_free's flag
 * bits. Returns whether free is non-empty. */
bool gm_span_collect(struct gm_span *s)
{
    gm_vg_quiet_begin();
    if (s->local_free) {
        /* local_free objects were subtracted from used when freed. */
        gm_span_take_list(s, s->local_free);
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
    /* Never below what the program holds (so never "negative"); above
     * nelems for a moment while a freer that pushed has not counted yet. */
    GM_ASSERT(s->used <= INT32_MAX);
    gm_vg_quiet_end();
    if (!s->free && gm_span_limit(s) < s->base + (uintptr_t)s->nelems * s->elemsize) gm_span_carve(s);
    return s->free != NULL;
}

/* Is a on the object list starting at head (a list of s's objects that may
 * be changing under us: stop at anything that is not an object of s, and
 * after as many links as s has objects)? */
static bool gm_list_has(const struct gm_span *s, uintptr_t head, uintptr_t a)
{
    for (uint32_t i = 0; head && i <= s->nelems; i++) {
        if (head == a) return true;
        if (!gm_span_is_object(s, head)) return false;
        gm_vg_quiet_begin();
        head = *(const uintptr_t *)head;
        gm_vg_quiet_end();
    }
    return false;
}

bool gm_span_holds_free(const struct gm_span *s, uintptr_t a)
{
    return gm_list_has(s, (uintptr_t)s->free, a) || gm_list_has(s, (uintptr_t)s->local_free, a) ||
           gm_list_has(s, atomic_load(&s->thread_free) & ~(uintptr_t)GM_TF_MASK, a);
}

_Noreturn void gm_bad_pointer(enum gm_op op, enum gm_bad bad, const void *p)
{
    static const char *const msg[3][3] = {
        {"free of a pointer gomalloc never allocated", "free of an interior pointer", "double free"},
        {"realloc of a pointer gomalloc never allocated", "realloc of an interior pointer",
         "realloc of a freed pointer"},
        {"malloc_usable_size of a pointer gomalloc never allocated", "malloc_usable_size of an interior pointer",
         "malloc_usable_size of a freed pointer"},
    };
    gm_fatal(msg[op][bad], p);
}

void gm_span_check_free(const struct gm_span *s, const void *p, enum gm_op op)
{
    uintptr_t a = (uintptr_t)p;
    if (atomic_load_explicit(&s->state, memory_order_acquire) != GM_SPAN_SMALL) gm_bad_pointer(op, GM_BAD_FREED, p);
    if (a < s->base || a - s->base >= gm_span_limit(s) - s->base) {
        /* The tail of the span past its last object, or a stale entry. */
        bool inside = a >= s->base && a - s->base < ((uintptr_t)s->npages << GM_PAGE_SHIFT);
        gm_bad_pointer(op, inside ? GM_BAD_FOREIGN : GM_BAD_FREED, p);
    }
    if (!gm_span_is_object(s, a)) gm_bad_pointer(op, GM_BAD_INTERIOR, p);
    uintptr_t word = gm_vg_word(&((const uintptr_t *)p)[1]);
    /* In a thread's batch: free, and only this allocator writes that mark. */
    if (word == (gm_free_key ^ a ^ GM_BATCH_MARK)) gm_bad_pointer(op, GM_BAD_FREED, p);
    if (word == (gm_free_key ^ a) && gm_span_holds_free(s, a)) gm_bad_pointer(op, GM_BAD_FREED, p);
    /* The marker was the program's own data: a false alarm. */
}

void gm_free_key_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uintptr_t k = (uintptr_t)&ts ^ ((uintptr_t)ts.tv_nsec << 17) ^ (uintptr_t)ts.tv_sec ^
                  (uintptr_t)__builtin_ia32_rdtsc();
    k *= 0x9e3779b97f4a7c15ull;
    gm_free_key = k | 1; /* odd, so it never equals an aligned address */
}
