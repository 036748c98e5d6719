/*
 * stats.c — layer 9: statistics (Go's MemStats) and the slow consistency
 * check (Go's ReadMemStatsSlow).
 *
 * Where each figure comes from:
 *   heap_sys, heap_inuse, heap_released   the heap's own counters (heap.c),
 *                                         kept under the heap lock;
 *                                         minus threads' span caches;
 *   heap_idle                             heap_sys - heap_inuse;
 *   metadata by kind                      gm_meta (arena.c), every committed
 *                                         byte of metadata in one kind;
 *   sys                                   heap_sys + all metadata;
 *   committed, reserved                   the OS layer's counters (os.c);
 *   mallocs, frees, per class             summed over every tcache, live or
 *                                         dead (tcaches are reused, never
 *                                         freed, so sums only grow), plus
 *                                         frees by threads without one;
 *   heap_alloc                            live objects per class times the
 *                                         class size, plus the whole pages
 *                                         of live large objects.
 * Counters are per-thread and read without stopping anyone, so a reading
 * taken while other threads allocate is a blend of nearby moments; each
 * figure is exact once they are quiet.
 *
 * gm_check recomputes everything from the heap's structures and compares:
 * in-use pages from the arenas' span tables (a span counted once, at its
 * base page, if it is not dead and its base page maps to it; every page of
 * it must map to it and be allocated in the page allocator's bitmap), free
 * and scavenged pages from the page allocator's chunk bitmaps and from
 * every thread's page cache, live objects per class from the spans' free
 * lists against the counters, live large objects (large spans with a
 * requested size: the heap's own tests make spans without one) against
 * their counters. It must run while no other thread touches the heap.
 *
 * Reports are formatted into a caller's buffer with no stdio and no
 * allocation, so the exit report can go out with write(2).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Gathering                                                                */
/* ------------------------------------------------------------------------ */

struct gm_counts_sum {
    uint64_t mallocs[GM_NUM_CLASSES], frees[GM_NUM_CLASSES];
    uint64_t large_alloc, large_freed; /* page bytes */
    uint64_t large_req_alloc, large_req_freed; /* requested bytes */
    uint64_t cached;                   /* bytes in threads' span caches */
};

static void gm_sum_tcache(struct gm_tcache *tc, void *arg)
{
    struct gm_counts_sum *sum = arg;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        sum->mallocs[c] += atomic_load_explicit(&tc->counts[c].mallocs, memory_order_relaxed);
        sum->frees[c] += atomic_load_explicit(&tc->counts[c].frees, memory_order_relaxed);
    }
    sum->large_alloc += atomic_load_explicit(&tc->large_bytes_alloc, memory_order_relaxed);
    sum->large_freed += atomic_load_explicit(&tc->large_bytes_freed, memory_order_relaxed);
    sum->large_req_alloc += atomic_load_explicit(&tc->large_req_alloc, memory_order_relaxed);
    sum->large_req_freed += atomic_load_explicit(&tc->large_req_freed, memory_order_relaxed);
    sum->cached += atomic_load_explicit(&tc->hl.cache_put, memory_order_relaxed) -
                   atomic_load_explicit(&tc->hl.cache_took, memory_order_relaxed) -
                   atomic_load_explicit(&tc->hl.cache_drained, memory_order_relaxed);
}

static void gm_sum_counts(struct gm_counts_sum *sum)
{
    memset(sum, 0, sizeof *sum);
    gm_small_for_each_tcache(gm_sum_tcache, sum);
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++)
        sum->frees[c] += atomic_load_explicit(&gm_notc_frees[c], memory_order_relaxed);
    sum->large_freed += atomic_load_explicit(&gm_notc_large_bytes_freed, memory_order_relaxed);
    sum->large_req_freed += atomic_load_explicit(&gm_notc_large_req_freed, memory_order_relaxed);
}

static uint64_t gm_sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static uint64_t gm_meta_total(void)
{
    return gm_stat_load(&gm_meta.arena_index) + gm_stat_load(&gm_meta.arenas) + gm_stat_load(&gm_meta.pagealloc) +
           gm_stat_load(&gm_meta.spans) + gm_stat_load(&gm_meta.tcaches) + gm_stat_load(&gm_meta.other);
}

void gm_stats_get(struct gm_stats *st)
{
    struct gm_counts_sum sum;
    gm_sum_counts(&sum);
    memset(st, 0, sizeof *st);
    st->version = GM_STATS_VERSION;
    st->size = sizeof *st;

    /* The heap's figures, read together. */
    pthread_mutex_lock(&gm_heap.lock);
    st->heap_sys = gm_stat_load(&gm_heap.heap_sys);
    st->heap_inuse = gm_sub0(gm_stat_load(&gm_heap.heap_inuse), sum.cached); /* cached spans are idle */
    st->heap_released = gm_stat_load(&gm_heap.heap_released);
    pthread_mutex_unlock(&gm_heap.lock);
    st->heap_idle = gm_sub0(st->heap_sys, st->heap_inuse);

    st->meta_arena_index = gm_stat_load(&gm_meta.arena_index);
    st->meta_arenas = gm_stat_load(&gm_meta.arenas);
    st->meta_pagealloc = gm_stat_load(&gm_meta.pagealloc);
    st->meta_spans = gm_stat_load(&gm_meta.spans);
    st->meta_tcaches = gm_stat_load(&gm_meta.tcaches);
    st->meta_other = gm_stat_load(&gm_meta.other);
    st->sys = st->heap_sys + st->meta_arena_index + st->meta_arenas + st->meta_pagealloc + st->meta_spans +
              st->meta_tcaches + st->meta_other;
    st->committed = gm_stat_load(&gm_os.committed);
    st->reserved = gm_stat_load(&gm_os.reserved);
    st->mappings = gm_sys_mapping_count();

    uint64_t alloc = gm_sub0(sum.large_alloc, sum.large_freed);
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        st->class_size[c] = gm_class_size[c];
        st->class_mallocs[c] = sum.mallocs[c];
        st->class_frees[c] = sum.frees[c];
        st->mallocs += sum.mallocs[c];
        st->frees += sum.frees[c];
        if (c) alloc += gm_sub0(sum.mallocs[c], sum.frees[c]) * gm_class_size[c];
    }
    st->heap_alloc = alloc;
}

/* ------------------------------------------------------------------------ */
/* Formatting without stdio                                                 */
/* ------------------------------------------------------------------------ */

struct gm_buf {
    char *p;
    size_t n, cap; /* cap excludes the terminating NUL */
};

static void gm_bputc(struct gm_buf *b, char c)
{
    if (b->n < b->cap) b->p[b->n++] = c;
}

static void gm_bputs(struct gm_buf *b, const char *s)
{
    while (*s) gm_bputc(b, *s++);
}

/* v in decimal, right-aligned in width columns (0: no padding). */
static void gm_bputu(struct gm_buf *b, uint64_t v, unsigned width)
{
    char d[24];
    unsigned n = 0;
    do d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (unsigned i = n; i < width; i++) gm_bputc(b, ' ');
    while (n) gm_bputc(b, d[--n]);
}

static void gm_bpad(struct gm_buf *b, const char *s, unsigned width)
{
    unsigned n = 0;
    for (; s[n]; n++) gm_bputc(b, s[n]);
    for (; n < width; n++) gm_bputc(b, ' ');
}

/* "12.3 MiB" right-aligned in 10 columns. */
static void gm_bputsize(struct gm_buf *b, uint64_t v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    uint64_t scale = 1;
    while (u < 5 && v >= scale * 1024) {
        scale *= 1024;
        u++;
    }
    char tmp[32];
    struct gm_buf t = {tmp, 0, sizeof tmp - 1};
    if (u == 0) {
        gm_bputu(&t, v, 0);
    } else {
        uint64_t tenths = (v * 10 + scale / 2) / scale; /* v < 2^60 here */
        gm_bputu(&t, tenths / 10, 0);
        gm_bputc(&t, '.');
        gm_bputc(&t, (char)('0' + tenths % 10));
    }
    gm_bputc(&t, ' ');
    gm_bputs(&t, unit[u]);
    for (size_t i = t.n; i < 10; i++) gm_bputc(b, ' ');
    for (size_t i = 0; i < t.n; i++) gm_bputc(b, tmp[i]);
}

static void gm_bline(struct gm_buf *b, const char *name, uint64_t v, const char *what)
{
    gm_bputs(b, "  ");
    gm_bpad(b, name, 14);
    gm_bputsize(b, v);
    gm_bputs(b, " ");
    gm_bputu(b, v, 13);
    gm_bputs(b, "  ");
    gm_bputs(b, what);
    gm_bputc(b, '\n');
}

/* The process's name from /proc/self/comm, without stdio. */
static const char *gm_comm(char *buf, size_t cap)
{
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return "?";
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == 0)) n--;
    buf[n] = 0;
    return buf;
}

size_t gm_stats_format(char *buf, size_t cap)
{
    if (cap == 0) return 0;
    char comm[32];
    struct gm_stats st;
    gm_stats_get(&st);
    struct gm_buf b = {buf, 0, cap - 1};
    uint64_t live_large = gm_sub0(st.class_mallocs[0], st.class_frees[0]);
    uint64_t large_pages = 0;
    {
        uint64_t small = 0;
        for (unsigned c = 1; c < GM_NUM_CLASSES; c++)
            small += gm_sub0(st.class_mallocs[c], st.class_frees[c]) * st.class_size[c];
        large_pages = gm_sub0(st.heap_alloc, small);
    }
    gm_bputs(&b, "gomalloc statistics of ");
    gm_bputs(&b, gm_comm(comm, sizeof comm));
    gm_bputs(&b, " (pid ");
    gm_bputu(&b, (uint64_t)getpid(), 0);
    gm_bputs(&b, "), in bytes\n");
    gm_bline(&b, "sys", st.sys, "committed by the heap: heap_sys + metadata");
    gm_bline(&b, "heap_sys", st.heap_sys, "heap memory mapped for spans");
    gm_bline(&b, "heap_inuse", st.heap_inuse, "in spans in use");
    gm_bline(&b, "heap_idle", st.heap_idle, "free pages (heap_sys - heap_inuse)");
    gm_bline(&b, "heap_released", st.heap_released, "free pages returned to the OS");
    gm_bline(&b, "heap_alloc", st.heap_alloc, "live objects, rounded to their size class");
    gm_bline(&b, "large", large_pages, "pages of live large objects");
    struct gm_counts_sum sum;
    gm_sum_counts(&sum);
    gm_bline(&b, "large_req", gm_sub0(sum.large_req_alloc, sum.large_req_freed),
             "bytes requested by live large objects");
    gm_bline(&b, "meta_index", st.meta_arena_index, "metadata: arena index");
    gm_bline(&b, "meta_arenas", st.meta_arenas, "metadata: arena records");
    gm_bline(&b, "meta_pagealloc", st.meta_pagealloc, "metadata: page allocator bitmaps and summaries");
    gm_bline(&b, "meta_spans", st.meta_spans, "metadata: span records");
    gm_bline(&b, "meta_tcaches", st.meta_tcaches, "metadata: thread caches");
    gm_bline(&b, "meta_other", st.meta_other, "metadata: other");
    gm_bline(&b, "committed", st.committed, "mapped read-write (what VmData sees)");
    gm_bline(&b, "reserved", st.reserved, "address space held, committed or not");
    gm_bputs(&b, "  mappings      ");
    if (st.mappings < 0) gm_bputs(&b, "   unknown");
    else gm_bputu(&b, (uint64_t)st.mappings, 10);
    gm_bputs(&b, "  lines of /proc/self/maps\n");
    gm_bputs(&b, "  mallocs       ");
    gm_bputu(&b, st.mallocs, 10);
    gm_bputs(&b, "  frees ");
    gm_bputu(&b, st.frees, 0);
    gm_bputs(&b, ", live ");
    gm_bputu(&b, gm_sub0(st.mallocs, st.frees), 0);
    gm_bputs(&b, " (large: ");
    gm_bputu(&b, live_large, 0);
    gm_bputs(&b, ")\n");
    gm_bputs(&b, "  class     size      mallocs        frees         live   live bytes\n");
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        if (st.class_mallocs[c] == 0 && st.class_frees[c] == 0) continue;
        uint64_t live = gm_sub0(st.class_mallocs[c], st.class_frees[c]);
        gm_bputs(&b, "  ");
        gm_bputu(&b, c, 5);
        if (c == 0) gm_bputs(&b, "    large");
        else gm_bputu(&b, st.class_size[c], 9);
        gm_bputu(&b, st.class_mallocs[c], 13);
        gm_bputu(&b, st.class_frees[c], 13);
        gm_bputu(&b, live, 13);
        gm_bputu(&b, c == 0 ? large_pages : live * st.class_size[c], 13);
        gm_bputc(&b, '\n');
    }
    buf[b.n] = 0;
    return b.n;
}

#define GM_REPORT_MAX 16384

static void gm_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (!(w < 0 && errno == EINTR)) {
            return;
        }
    }
}

void gm_stats_print_fd(int fd)
{
    char buf[GM_REPORT_MAX];
    int saved = errno;
    size_t n = gm_stats_format(buf, sizeof buf);
    gm_write_all(fd, buf, n);
    errno = saved;
}

void gm_stats_print(FILE *f)
{
    char buf[GM_REPORT_MAX];
    size_t n = gm_stats_format(buf, sizeof buf);
    fwrite(buf, 1, n, f);
    fflush(f);
}

/* ------------------------------------------------------------------------ */
/* The slow check                                                           */
/* ------------------------------------------------------------------------ */

struct gm_check_pc {
    uint64_t free_pages, scav_pages;
};

static void gm_check_pagecache(struct gm_tcache *tc, void *arg)
{
    struct gm_check_pc *c = arg;
    const struct gm_pagecache *pc = &tc->hl.pc;
    c->free_pages += (uint64_t)__builtin_popcountll(pc->cache);
    c->scav_pages += (uint64_t)__builtin_popcountll(pc->cache & pc->scav);
}

struct gm_check_walk {
    uint64_t inuse_pages, small_pages, large_pages, large_count, large_req, cached_pages;
    uint64_t bad_publish, bad_bitmap; /* pages of in-use spans wrongly recorded */
    uintptr_t first_bad_publish, first_bad_bitmap;
};

static bool gm_page_allocated(uintptr_t addr)
{
    struct gm_pallocdata *d = gm_pagealloc_chunk(&gm_heap.pages, addr >> GM_CHUNK_SHIFT);
    if (!d) return false;
    unsigned i = (unsigned)((addr >> GM_PAGE_SHIFT) & (GM_CHUNK_PAGES - 1));
    return (d->alloc.w[i / 64] >> (i % 64)) & 1;
}

/* Every in-use span, counted at its base page. Heap lock held. */
static void gm_check_spans(struct gm_check_walk *w)
{
    for (size_t i = 0; i < GM_ARENA_L1_ENTRIES; i++) {
        struct gm_arena *_Atomic *l2 = atomic_load_explicit(&gm_arena_l1[i], memory_order_acquire);
        if (!l2) continue;
        for (size_t j = 0; j < ((size_t)1 << GM_ARENA_L2_BITS); j++) {
            struct gm_arena *a = atomic_load_explicit(&l2[j], memory_order_acquire);
            if (!a) continue;
            uintptr_t abase = (uintptr_t)((i << GM_ARENA_L2_BITS) + j) << GM_ARENA_SHIFT;
            for (size_t pg = 0; pg < GM_PAGES_PER_ARENA; pg++) {
                struct gm_span *s = atomic_load_explicit(&a->spans[pg], memory_order_acquire);
                uintptr_t addr = abase + (pg << GM_PAGE_SHIFT);
                if (!s || s->base != addr) continue;
                unsigned st = atomic_load_explicit(&s->state, memory_order_acquire);
                if (st == GM_SPAN_DEAD) continue;
                if (st != GM_SPAN_CACHED) w->inuse_pages += s->npages;
                if (st == GM_SPAN_LARGE && s->large_size != 0) { /* a large object of the API */
                    w->large_pages += s->npages;
                    w->large_count++;
                    w->large_req += s->large_size;
                } else if (st == GM_SPAN_SMALL) {
                    w->small_pages += s->npages;
                } else if (st == GM_SPAN_CACHED) {
                    w->cached_pages += s->npages;
                }
                for (size_t k = 0; k < s->npages; k++) {
                    uintptr_t p = addr + (k << GM_PAGE_SHIFT);
                    if (gm_span_lookup(p) != s) {
                        if (!w->bad_publish++) w->first_bad_publish = p;
                    }
                    if (!gm_page_allocated(p)) {
                        if (!w->bad_bitmap++) w->first_bad_bitmap = p;
                    }
                }
            }
        }
    }
}

struct gm_check_bits {
    uint64_t alloc_pages, free_pages, scav_pages;
};

/* The page allocator's bitmaps. Heap lock held. */
static void gm_check_bitmaps(struct gm_check_bits *b)
{
    struct gm_pagealloc *pa = &gm_heap.pages;
    for (size_t ci = pa->start; ci < pa->end; ci++) {
        struct gm_pallocdata *d = gm_pagealloc_chunk(pa, ci);
        if (!d) continue;
        for (unsigned k = 0; k < GM_CHUNK_PAGES / 64; k++) {
            uint64_t alloc = d->alloc.w[k];
            b->alloc_pages += (uint64_t)__builtin_popcountll(alloc);
            b->free_pages += (uint64_t)__builtin_popcountll(~alloc);
            b->scav_pages += (uint64_t)__builtin_popcountll(~alloc & d->scav.w[k]);
        }
    }
}

static int gm_check_failures;
static int gm_check_out = 2;

/* One disagreement, written with write(2) (stdio may be gone at exit). */
__attribute__((format(printf, 1, 2))) static void gm_check_fail(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    gm_check_failures++;
    if (n > 0) gm_write_all(gm_check_out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void gm_check_eq(const char *what, uint64_t have, uint64_t want)
{
    if (have == want) return;
    gm_check_fail("gomalloc: check: %s is %llu, recomputed %llu\n", what, (unsigned long long)have,
                  (unsigned long long)want);
}

static void gm_check_le(const char *what, uint64_t a, const char *what_b, uint64_t b)
{
    if (a <= b) return;
    gm_check_fail("gomalloc: check: %s (%llu) exceeds %s (%llu)\n", what, (unsigned long long)a, what_b,
                  (unsigned long long)b);
}

int gm_check(void) { return gm_check_fd(2); }

static int gm_check_quiet_heap(int fd);

/* The scavenger is held off for the walk: pages it is releasing are in no
 * statistic while its system call runs. */
int gm_check_fd(int fd)
{
    gm_scav_lock_all();
    int rc = gm_check_quiet_heap(fd);
    gm_scav_unlock_all();
    return rc;
}

static int gm_check_quiet_heap(int fd)
{
    gm_check_failures = 0;
    gm_check_out = fd;
    const uint64_t P = GM_PAGE_SIZE;

    /* Counters, page caches and live objects first: each takes its own
     * lock, never nested inside the heap lock. */
    struct gm_counts_sum sum;
    gm_sum_counts(&sum);
    struct gm_check_pc pc = {0, 0};
    gm_small_for_each_tcache(gm_check_pagecache, &pc);
    uint64_t live[GM_NUM_CLASSES];
    gm_small_count_live(live);

    struct gm_check_walk w;
    struct gm_check_bits bits;
    memset(&w, 0, sizeof w);
    memset(&bits, 0, sizeof bits);
    pthread_mutex_lock(&gm_heap.lock);
    bool init = gm_heap.initialized;
    uint64_t heap_sys = gm_stat_load(&gm_heap.heap_sys);
    uint64_t heap_inuse = gm_stat_load(&gm_heap.heap_inuse);
    uint64_t heap_released = gm_stat_load(&gm_heap.heap_released);
    uint64_t pa_free = 0, pa_scav = 0, ungrown = 0;
    if (init) {
        gm_check_spans(&w);
        gm_check_bitmaps(&bits);
        pa_free = gm_heap.pages.free_pages;
        pa_scav = gm_heap.pages.scav_pages;
        ungrown = gm_heap_ungrown_pages();
    }
    uint64_t meta = gm_meta_total();
    uint64_t committed = gm_stat_load(&gm_os.committed);
    uint64_t reserved = gm_stat_load(&gm_os.reserved);
    pthread_mutex_unlock(&gm_heap.lock);

    /* Pages. */
    gm_check_eq("heap_inuse (span caches included)", heap_inuse, (w.inuse_pages + w.cached_pages) * P);
    gm_check_eq("heap_sys", heap_sys, (w.inuse_pages + w.cached_pages + bits.free_pages + pc.free_pages) * P);
    gm_check_eq("heap_released", heap_released, (bits.scav_pages + pc.scav_pages) * P);
    gm_check_eq("page allocator free pages", pa_free, bits.free_pages);
    gm_check_eq("page allocator scavenged pages", pa_scav, bits.scav_pages);
    gm_check_eq("allocated pages in the bitmaps", bits.alloc_pages,
                w.inuse_pages + w.cached_pages + pc.free_pages + ungrown);
    if (w.bad_publish) {
        gm_check_fail("gomalloc: check: %llu pages of in-use spans do not map to their span (first %#llx)\n",
                      (unsigned long long)w.bad_publish, (unsigned long long)w.first_bad_publish);
    }
    if (w.bad_bitmap) {
        gm_check_fail("gomalloc: check: %llu pages of in-use spans are free in the bitmaps (first %#llx)\n",
                      (unsigned long long)w.bad_bitmap, (unsigned long long)w.first_bad_bitmap);
    }
    gm_check_le("heap_inuse", heap_inuse, "heap_sys", heap_sys);
    gm_check_le("heap_released", heap_released, "heap_idle", heap_sys - (heap_inuse < heap_sys ? heap_inuse : heap_sys));
    gm_check_eq("committed", committed, heap_sys + meta);
    gm_check_le("committed", committed, "reserved", reserved);

    /* Objects. */
    uint64_t small_alloc = 0;
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        uint64_t counted = sum.mallocs[c] - sum.frees[c];
        if (counted != live[c]) {
            gm_check_fail("gomalloc: check: class %u (%u bytes): counters say %lld live, spans hold %llu\n", c,
                          gm_class_size[c], (long long)counted, (unsigned long long)live[c]);
        }
        small_alloc += live[c] * gm_class_size[c];
    }
    gm_check_eq("live large objects", sum.mallocs[0] - sum.frees[0], w.large_count);
    gm_check_eq("bytes of live large objects", sum.large_alloc - sum.large_freed, w.large_pages * P);
    gm_check_eq("requested bytes of live large objects", sum.large_req_alloc - sum.large_req_freed, w.large_req);
    gm_check_eq("bytes in threads' span caches", sum.cached, w.cached_pages * P);
    gm_check_le("heap_alloc", small_alloc + w.large_pages * P, "heap_inuse", heap_inuse);
    return gm_check_failures ? -1 : 0;
}
