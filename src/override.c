/*
 * override.c — the standard names: the C and POSIX allocation functions,
 * glibc's extensions (malloc_trim, mallinfo2, mallinfo, mallopt,
 * malloc_stats, malloc_info), glibc's __libc_* entry points and C23's
 * free_sized/free_aligned_sized, all with default visibility so that they
 * interpose libc's under LD_PRELOAD and replace them when a program links
 * libgomalloc (dynamically or statically: defining every function of
 * glibc's malloc.o keeps libc.a's from being pulled in).
 *
 * malloc and free contain the inline fast paths themselves; the others jump
 * to the hidden gm_api_* bodies in api.c, never through the PLT. This
 * file is in libgomalloc.so and libgomalloc.a only: the test build links
 * with libc's malloc.
 *
 * mallinfo2 follows glibc's identities, so that tools that add its fields
 * get gomalloc's true figures: large objects play glibc's mmapped chunks
 * (hblks, hblkhd = their whole pages), the rest of the heap its main arena
 * (arena = heap_sys - hblkhd, uordblks = live small objects at their class
 * size, fordblks = arena - uordblks); so uordblks + hblkhd = heap_alloc and
 * arena + hblkhd = heap_sys. ordblks counts free pages, fsmblks the free
 * bytes inside small-object spans, keepcost the idle bytes not yet returned
 * to the OS (what a trim could return).
 *
 * errno: as in api.c, a call that succeeds leaves it as it was; glibc's
 * extensions below read /proc files and write to streams, so each keeps
 * the caller's errno itself.
 */
#include "stats.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

#define GM_PUBLIC __attribute__((visibility("default")))

GM_PUBLIC void *malloc(size_t size) { return gm_malloc_fast(size); }
GM_PUBLIC void free(void *p) { gm_free_fast(p); }
GM_PUBLIC void *calloc(size_t n, size_t size) { return gm_api_calloc(n, size); }
GM_PUBLIC void *realloc(void *p, size_t size) { return gm_api_realloc(p, size); }
GM_PUBLIC void *reallocarray(void *p, size_t n, size_t size) { return gm_api_reallocarray(p, n, size); }
GM_PUBLIC int posix_memalign(void **out, size_t align, size_t size)
{
    return gm_api_posix_memalign(out, align, size);
}
GM_PUBLIC void *aligned_alloc(size_t align, size_t size) { return gm_api_aligned_alloc(align, size); }
GM_PUBLIC void *memalign(size_t align, size_t size) { return gm_api_memalign(align, size); }
GM_PUBLIC void *valloc(size_t size) { return gm_api_valloc(size); }
GM_PUBLIC void *pvalloc(size_t size) { return gm_api_pvalloc(size); }
GM_PUBLIC size_t malloc_usable_size(void *p) { return gm_api_usable_size(p); }

/* C23: the size and alignment are hints gomalloc does not need. */
GM_PUBLIC void free_sized(void *p, size_t size);
GM_PUBLIC void free_sized(void *p, size_t size) { gm_free_fast(p); }
GM_PUBLIC void free_aligned_sized(void *p, size_t align, size_t size);
GM_PUBLIC void free_aligned_sized(void *p, size_t align, size_t size) { gm_free_fast(p); }

/* glibc's internal entry points, which some programs and libraries call
 * directly. */
GM_PUBLIC void *__libc_malloc(size_t size);
GM_PUBLIC void __libc_free(void *p);
GM_PUBLIC void *__libc_calloc(size_t n, size_t size);
GM_PUBLIC void *__libc_realloc(void *p, size_t size);
GM_PUBLIC void *__libc_memalign(size_t align, size_t size);
GM_PUBLIC void *__libc_valloc(size_t size);
GM_PUBLIC void *__libc_pvalloc(size_t size);
void *__libc_malloc(size_t size) { return gm_malloc_fast(size); }
void __libc_free(void *p) { gm_free_fast(p); }
void *__libc_calloc(size_t n, size_t size) { return gm_api_calloc(n, size); }
void *__libc_realloc(void *p, size_t size) { return gm_api_realloc(p, size); }
void *__libc_memalign(size_t align, size_t size) { return gm_api_memalign(align, size); }
void *__libc_valloc(size_t size) { return gm_api_valloc(size); }
void *__libc_pvalloc(size_t size) { return gm_api_pvalloc(size); }

/* ------------------------------------------------------------------------ */
/* glibc's extensions                                                       */
/* ------------------------------------------------------------------------ */

/* glibc keeps pad bytes at the top of its heap; gomalloc returns every free
 * page (pad is moot: nothing is kept for the next growth but caches). */
GM_PUBLIC int malloc_trim(size_t pad)
{
    int saved = errno;
    int released = gm_scavenge() > 0;
    errno = saved;
    return released;
}

GM_PUBLIC int mallopt(int param, int value)
{
    return 1; /* nothing to tune: accepted and ignored, as glibc does for unused options */
}

struct gm_info {
    uint64_t arena, free_pages, large_count, large_bytes, small_free, small_live, keep;
};

static void gm_info_get(struct gm_info *in, struct gm_stats *st)
{
    gm_stats_get(st); /* keeps errno */
    in->large_bytes = st->class_live_bytes[0];
    in->small_live = st->heap_alloc - in->large_bytes;
    in->large_count = st->class_mallocs[0] > st->class_frees[0] ? st->class_mallocs[0] - st->class_frees[0] : 0;
    in->arena = st->heap_sys > in->large_bytes ? st->heap_sys - in->large_bytes : 0;
    uint64_t small_spans = st->heap_inuse > in->large_bytes ? st->heap_inuse - in->large_bytes : 0;
    in->small_free = small_spans > in->small_live ? small_spans - in->small_live : 0;
    in->free_pages = st->heap_idle / GM_PAGE_SIZE;
    in->keep = st->heap_idle > st->heap_released ? st->heap_idle - st->heap_released : 0;
}

#if GM_HAVE_MALLINFO2
GM_PUBLIC struct mallinfo2 mallinfo2(void)
{
    struct gm_stats st;
    struct gm_info in;
    gm_info_get(&in, &st);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = in.arena;
    mi.ordblks = in.free_pages;
    mi.smblks = 0;
    mi.hblks = in.large_count;
    mi.hblkhd = in.large_bytes;
    mi.usmblks = 0;
    mi.fsmblks = in.small_free;
    mi.uordblks = in.small_live;
    mi.fordblks = in.arena - in.small_live;
    mi.keepcost = in.keep;
    return mi;
}

static int gm_clamp_int(uint64_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

/* The old interface (int fields, clamped); declared deprecated by glibc. */
GM_PUBLIC struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    mi.arena = gm_clamp_int(m2.arena);
    mi.ordblks = gm_clamp_int(m2.ordblks);
    mi.smblks = gm_clamp_int(m2.smblks);
    mi.hblks = gm_clamp_int(m2.hblks);
    mi.hblkhd = gm_clamp_int(m2.hblkhd);
    mi.usmblks = gm_clamp_int(m2.usmblks);
    mi.fsmblks = gm_clamp_int(m2.fsmblks);
    mi.uordblks = gm_clamp_int(m2.uordblks);
    mi.fordblks = gm_clamp_int(m2.fordblks);
    mi.keepcost = gm_clamp_int(m2.keepcost);
    return mi;
}
#endif

GM_PUBLIC void malloc_stats(void) { gm_stats_print(stderr); /* keeps errno */ }

/* malloc_info's parts that appear twice: in the heap and in the totals. */
static void gm_info_size(FILE *fp, uint64_t from, uint64_t to, uint64_t total, uint64_t count)
{
    fprintf(fp, "  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"/>\n", (unsigned long long)from,
            (unsigned long long)to, (unsigned long long)total, (unsigned long long)count);
}

static void gm_info_total(FILE *fp, const char *type, uint64_t count, uint64_t size)
{
    fprintf(fp, "<total type=\"%s\" count=\"%llu\" size=\"%llu\"/>\n", type, (unsigned long long)count,
            (unsigned long long)size);
}

static void gm_info_system(FILE *fp, uint64_t system, uint64_t aspace, uint64_t mprotect)
{
    fprintf(fp,
            "<system type=\"current\" size=\"%llu\"/>\n"
            "<system type=\"max\" size=\"%llu\"/>\n"
            "<aspace type=\"total\" size=\"%llu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%llu\"/>\n",
            (unsigned long long)system, (unsigned long long)system, (unsigned long long)aspace,
            (unsigned long long)mprotect);
}

/* glibc's XML layout with one heap, holding gomalloc's own figures in
 * glibc's meanings (the mapping of mallinfo2 above):
 *   <sizes>  free memory by size, as glibc lists its bins: a line per size
 *            class whose spans in use have free objects (from = to = the
 *            class size), then the free page runs grouped by powers of two
 *            of pages (from, to: the smallest and largest run of the group).
 *            Free runs are the page allocator's, the threads' page caches'
 *            and span caches': all of heap_idle.
 *   fast     the free objects of small-object spans (like glibc's fastbins,
 *            freed small chunks that serve only their own size);
 *   rest     the free page runs (size = heap_idle);
 *   mmap     live large objects in whole pages (mallinfo2's hblks, hblkhd);
 *   system   heap memory not holding large objects (mallinfo2's arena);
 *            gomalloc keeps no peak, so "max" repeats "current";
 *   aspace   total: address space reserved; mprotect: what is committed
 *            (glibc's own heaps are reserved and made writable with
 *            mprotect as they grow, as gomalloc's arenas are).
 * The census behind <sizes> walks the heap's span tables and bitmaps under
 * the heap lock, as glibc walks its bins under each arena's lock. */
GM_PUBLIC int malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    int saved = errno; /* stdio may fail on fp: glibc's malloc_info reports nothing either */
    struct gm_census cen;
    gm_stats_census(&cen);
    struct gm_stats st;
    struct gm_info in;
    gm_info_get(&in, &st);
    uint64_t fast_count = 0, fast_bytes = 0, rest_count = 0, rest_bytes = 0;
    fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", fp);
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        uint64_t slots = cen.class_slots[c];
        uint64_t live = st.class_mallocs[c] > st.class_frees[c] ? st.class_mallocs[c] - st.class_frees[c] : 0;
        if (slots <= live) continue;
        gm_info_size(fp, st.class_size[c], st.class_size[c], (slots - live) * st.class_size[c], slots - live);
        fast_count += slots - live;
        fast_bytes += (slots - live) * st.class_size[c];
    }
    for (unsigned k = 0; k < GM_RUN_BUCKETS; k++) {
        if (!cen.runs[k]) continue;
        gm_info_size(fp, cen.run_min[k] * GM_PAGE_SIZE, cen.run_max[k] * GM_PAGE_SIZE, cen.run_pages[k] * GM_PAGE_SIZE,
                     cen.runs[k]);
        rest_count += cen.runs[k];
        rest_bytes += cen.run_pages[k] * GM_PAGE_SIZE;
    }
    fputs("</sizes>\n", fp);
    gm_info_total(fp, "fast", fast_count, fast_bytes);
    gm_info_total(fp, "rest", rest_count, rest_bytes);
    gm_info_system(fp, in.arena, st.reserved, st.committed);
    fputs("</heap>\n", fp);
    gm_info_total(fp, "fast", fast_count, fast_bytes);
    gm_info_total(fp, "rest", rest_count, rest_bytes);
    gm_info_total(fp, "mmap", in.large_count, in.large_bytes);
    gm_info_system(fp, in.arena, st.reserved, st.committed);
    fputs("</malloc>\n", fp);
    errno = saved;
    return 0;
}
