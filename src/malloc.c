/*
 * malloc.c — layers 7 and 8: large objects and the allocation API (Go's
 * mallocgc and largeAlloc, for a world with explicit free).
 *
 * Requests of at most GM_MAX_SMALL bytes go to the thread's tcache (small.c);
 * anything larger is a span of its own, straight from the page heap: the
 * thread's span cache first (a large span it freed recently, of about the
 * same size), then its page cache (spans of fewer than GM_PAGECACHE_MAX_SPAN
 * pages), the page allocator under the heap lock otherwise. Freed large
 * spans of up to 256 KiB go to the freeing thread's span cache. A large object
 * always starts at its span's base, so free() recognizes an interior
 * pointer, and its usable size is its whole pages.
 *
 * Alignment: up to 16 bytes every result is aligned. Beyond, a small size
 * class whose object size is a multiple of the alignment (spans are page
 * aligned, so all its objects are aligned) serves alignments up to a page;
 * larger ones take npages + align/page - 1 pages and give the unused head
 * and tail back to the heap (gm_heap_trim_span), so nothing beyond the
 * alignment is wasted, not even transiently beyond one span.
 *
 * realloc keeps the object where it is when it can: a small object stays in
 * its class while the new size fits and is at least half of it (hysteresis
 * against ping-pong) or still maps to that class; a large one shrinks in
 * place (the tail goes back) and grows in place when the pages after it are
 * free, and moves to a size class when it shrinks to a small size. Moves
 * copy the old object's usable bytes that fit. calloc zeroes only memory
 * that may hold old data: small objects always, large spans only if their
 * needzero says so (pages fresh from the OS, released or recommitted read
 * as zero), and then only the pages the program may have written
 * (gm_sys_zero).
 *
 * Process set-up is lazy and allocation-free, so malloc works from the
 * first call the dynamic loader or libc makes, before main and before any
 * constructor: the heap and the calling thread's tcache are initialized on
 * its first allocation, options are read by scanning environ. The library
 * constructor (a point where no libc lock is held) registers the fork
 * handlers and, with GOMALLOC_STATS/GOMALLOC_CHECK, the exit report, and
 * with GOMALLOC_TRACE starts the sampler thread (trace.c): doing that from
 * inside malloc could deadlock when the first allocation comes from atexit,
 * pthread_atfork or pthread_create themselves.
 *
 * fork: prepare takes every lock in the global order (tcache registry,
 * central lists, heap, arena.c's), so the child's copy of the heap is
 * consistent; the parent releases them and the child reinitializes them.
 *
 * Counters: mallocs and frees per class go to the calling thread's tcache
 * (owner-written, no atomic RMW); class 0 counts large objects, whose page
 * bytes go to large_bytes_alloc/freed. A free from a thread without a
 * tcache counts in the global atomic gm_notc_* counters. large_req_alloc/freed
 * holds the requested bytes of live large objects.
 *
 * Bad pointers: free, realloc or malloc_usable_size of a pointer the heap
 * never handed out, of an interior pointer or of a freed object print one
 * line naming the pointer (gm_fatal_ptr) and abort.
 *
 * errno: a call that succeeds leaves it as the caller left it, and free
 * never changes it (POSIX 2024, glibc 2.33), because the slow paths make
 * system calls that may fail and be recovered from: starting the heap opens
 * files that may not exist (the cgroup's limit), an arena hint may be
 * taken, growth past a soft limit fails once and is retried after a
 * reclaim, starting the scavenger may fail. Each entry to a slow path
 * (gm_malloc_slow, gm_free_slow, calloc, realloc, the aligned family;
 * small.c's refill and emptied-span paths, which the inline fast paths
 * reach directly) saves errno and puts it back unless the call failed,
 * which sets ENOMEM (EINVAL for a bad alignment, decided before). The
 * inline fast paths make no system call and do not touch errno.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

_Atomic uint64_t gm_notc_frees[GM_NUM_CLASSES];
_Atomic uint64_t gm_notc_large_bytes_freed;
_Atomic uint64_t gm_notc_large_req_freed;

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                              */
/* ------------------------------------------------------------------------ */

static size_t gm_put(char *buf, size_t n, size_t cap, const char *s)
{
    while (*s && n < cap) buf[n++] = *s++;
    return n;
}

_Noreturn void gm_fatal_ptr(const char *what, const void *p)
{
    char buf[256];
    size_t n = gm_put(buf, 0, sizeof buf - 24, "gomalloc: ");
    n = gm_put(buf, n, sizeof buf - 24, what);
    n = gm_put(buf, n, sizeof buf, ": 0x");
    uintptr_t v = (uintptr_t)p;
    int shift = 60;
    while (shift > 0 && ((v >> shift) & 15) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) buf[n++] = "0123456789abcdef"[(v >> shift) & 15];
    buf[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(2, buf + off, n - off);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else break;
    }
    abort();
}

enum gm_op { GM_OP_FREE, GM_OP_REALLOC, GM_OP_USABLE };
enum gm_bad { GM_BAD_FOREIGN, GM_BAD_INTERIOR, GM_BAD_FREED };

static _Noreturn void gm_bad_pointer(enum gm_op op, enum gm_bad bad, const void *p)
{
    static const char *const msg[3][3] = {
        {"free of a pointer gomalloc never allocated", "free of an interior pointer", "double free"},
        {"realloc of a pointer gomalloc never allocated", "realloc of an interior pointer",
         "realloc of a freed pointer"},
        {"malloc_usable_size of a pointer gomalloc never allocated", "malloc_usable_size of an interior pointer",
         "malloc_usable_size of a freed pointer"},
    };
    gm_fatal_ptr(msg[op][bad], p);
}

/* ------------------------------------------------------------------------ */
/* Options and process set-up                                               */
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
static void gm_options_load(void)
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
    if (gm_opt.check) gm_tc_fast = NULL; /* this thread may have a cache already */
    if (gm_opt.memory_limit) gm_set_memory_limit(gm_opt.memory_limit, gm_opt.memory_limit_hard);
    if (gm_heap_ready()) gm_scav_init();
    atomic_store_explicit(&gm_options_state, GM_OPTIONS_READ, memory_order_release);
    gm_options_reader = false;
}

/* Set up the calling thread (and, the first time, the heap). Its callers
 * keep errno (the slow paths' entries). */
static struct gm_tcache *gm_thread_init(void)
{
    gm_options_load();
    return gm_tcache_init();
}

/* The calling thread's cache, set up on first use; NULL with errno=ENOMEM
 * if that fails. */
static struct gm_tcache *gm_thread_cache(void)
{
    struct gm_tcache *tc = gm_tc;
    if (GM_UNLIKELY(!tc) && !(tc = gm_thread_init())) errno = ENOMEM;
    return tc;
}

static void gm_fork_prepare(void)
{
    gm_scav_lock_all();
    gm_small_fork_prepare();
    pthread_mutex_lock(&gm_heap.lock);
    gm_arena_fork_prepare();
}

static void gm_fork_parent(void)
{
    gm_arena_fork_parent();
    pthread_mutex_unlock(&gm_heap.lock);
    gm_small_fork_parent();
    gm_scav_unlock_all();
}

static void gm_fork_child(void)
{
    gm_arena_fork_child();
    pthread_mutex_init(&gm_heap.lock, NULL);
    gm_small_fork_child();
    gm_scav_fork_child();
}

/* The exit report's descriptor: a close-on-exec duplicate of stderr taken
 * at start-up, because programs may close stderr in their own exit handlers
 * (coreutils' close_stdout does), which run before ours. */
static int gm_report_fd = 2;

/* Where the exit report goes: GOMALLOC_STATS_FILE, opened at exit (so
 * that %p is the pid of the process that exits, a forked child's own) for
 * appending, so that processes can share one file; else, or if it cannot be
 * opened (one line says so), the duplicate of stderr. */
static int gm_report_open(void)
{
    if (!gm_opt.stats_file) return gm_report_fd;
    char path[GM_PATH_MAX];
    if (!gm_path_expand(gm_opt.stats_file, path, sizeof path)) {
        gm_complain_file(gm_report_fd, "GOMALLOC_STATS_FILE", "the report goes to stderr", gm_opt.stats_file,
                         ENAMETOOLONG);
        return gm_report_fd;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    gm_complain_file(gm_report_fd, "GOMALLOC_STATS_FILE", "the report goes to stderr", path, errno);
    return gm_report_fd;
}

static void gm_at_exit(void)
{
    int saved = errno; /* atexit handlers registered before ours run after it */
    if (gm_opt.stats) {
        int fd = gm_report_open();
        if (gm_opt.stats == GM_STATS_JSON) gm_stats_print_json_fd(fd);
        else gm_stats_print_fd(fd);
        if (fd != gm_report_fd) close(fd);
    }
    if (gm_opt.check) gm_check_fd(gm_report_fd);
    errno = saved;
}

__attribute__((constructor)) static void gm_constructor(void)
{
    int saved = errno; /* the program's main must find it as it would without us */
    gm_options_load();
    pthread_atfork(gm_fork_prepare, gm_fork_parent, gm_fork_child);
    if (gm_opt.stats || gm_opt.check) {
        int fd = fcntl(2, F_DUPFD_CLOEXEC, 100); /* out of the way of low descriptors */
        if (fd >= 0) gm_report_fd = fd;
        atexit(gm_at_exit);
    }
    if (gm_opt.trace) gm_trace_start(gm_opt.trace, gm_opt.trace_ms);
    errno = saved;
}

/* ------------------------------------------------------------------------ */
/* Large objects                                                            */
/* ------------------------------------------------------------------------ */

static inline void gm_counter_add(_Atomic uint64_t *c, uint64_t n) /* owner-written */
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline size_t gm_pages_of(size_t size) { return (size + GM_PAGE_SIZE - 1) >> GM_PAGE_SHIFT; }

/* size >= 1: a large span with large_size 0 was not made by this API (the
 * heap's own tests make such spans), and gm_check leaves it out. */
static void gm_large_count_alloc(struct gm_tcache *tc, struct gm_span *s, size_t size)
{
    s->large_size = size;
    s->checked = 0; /* gm_checked_malloc sets it after (a cached span may have it) */
    gm_count_inc(&tc->counts.mallocs[0]);
    gm_counter_add(&tc->large_bytes_alloc, (uint64_t)s->npages << GM_PAGE_SHIFT);
    gm_counter_add(&tc->large_req_alloc, size);
    gm_vg_alloc((void *)s->base, (size_t)s->npages << GM_PAGE_SHIFT, false);
}

/* A new large span for size bytes (size <= GM_MAX_REQUEST). */
static struct gm_span *gm_large_alloc_span(struct gm_tcache *tc, size_t size)
{
    size_t npages = gm_pages_of(size);
    struct gm_span *s = gm_heap_cache_take(&tc->hl, npages);
    if (!s) s = gm_alloc_span(tc, npages, 0);
    if (GM_UNLIKELY(!s)) return NULL; /* errno is ENOMEM */
    gm_large_count_alloc(tc, s, size);
    return s;
}

static void *gm_large_alloc(struct gm_tcache *tc, size_t size)
{
    struct gm_span *s = gm_large_alloc_span(tc, size);
    return s ? (void *)s->base : NULL;
}

static void gm_large_free(struct gm_tcache *tc, struct gm_span *s)
{
    uint64_t bytes = (uint64_t)s->npages << GM_PAGE_SHIFT;
    size_t req = s->large_size;
    gm_vg_free((void *)s->base);
    if (tc) gm_heap_cache_put(&tc->hl, s);
    else gm_heap_free_span(s);
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

/* A large object changed size in place from old_pages pages / old_size bytes. */
static void gm_large_count_resize(struct gm_tcache *tc, struct gm_span *s, size_t old_pages, size_t size)
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
/* Pointer validation                                                       */
/* ------------------------------------------------------------------------ */

/* Is a on the object list starting at head (a list of s's objects that may
 * be changing under us: stop at anything that is not an object of s)? */
static bool gm_on_list(const struct gm_span *s, uintptr_t head, uintptr_t a)
{
    for (uint32_t i = 0; head && i <= s->nelems; i++) {
        if (head == a) return true;
        if (head < s->base || head >= gm_span_limit(s) || (head - s->base) % s->elemsize) return false;
        gm_vg_quiet_begin();
        head = *(const uintptr_t *)head;
        gm_vg_quiet_end();
    }
    return false;
}

/* p must be a live object of small span s (state SMALL); aborts otherwise.
 * The freed-object marker is only a hint: confirmed on the span's lists. */
static void gm_small_validate(struct gm_span *s, const void *p, enum gm_op op)
{
    uintptr_t a = (uintptr_t)p, off = a - s->base;
    if (GM_UNLIKELY(off >= gm_span_limit(s) - s->base)) {
        /* The tail of the span past its last object, or a stale entry. */
        bool inside = a >= s->base && off < ((uintptr_t)s->npages << GM_PAGE_SHIFT);
        gm_bad_pointer(op, inside ? GM_BAD_FOREIGN : GM_BAD_FREED, p);
    }
    if (GM_UNLIKELY((uint32_t)((off * s->divmagic) >> 32) * s->elemsize != off))
        gm_bad_pointer(op, GM_BAD_INTERIOR, p);
    uintptr_t word = gm_vg_word(&((const uintptr_t *)p)[1]);
    if (GM_UNLIKELY(word == (gm_free_key ^ a ^ GM_BATCH_MARK))) { /* free, in a thread's batch */
        if (op == GM_OP_FREE) gm_small_check_free(s, (void *)p);
        gm_bad_pointer(op, GM_BAD_FREED, p);
    }
    if (GM_UNLIKELY(word == (gm_free_key ^ a))) {
        if (op == GM_OP_FREE) {
            gm_small_check_free(s, (void *)p); /* aborts unless a false alarm */
            return;
        }
        if (gm_on_list(s, (uintptr_t)s->free, a) || gm_on_list(s, (uintptr_t)s->local_free, a) ||
            gm_on_list(s, atomic_load(&s->thread_free) & ~(uintptr_t)GM_TF_MASK, a))
            gm_bad_pointer(op, GM_BAD_FREED, p);
    }
}

/* The state of the span holding p (SMALL or LARGE) after checking that p is
 * a live object's start; aborts otherwise. */
static unsigned gm_validate(struct gm_span *s, const void *p, enum gm_op op)
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
/* Checked mode (GOMALLOC_CHECK=1)                                          */
/* ------------------------------------------------------------------------ */
/*
 * The inline fast paths are off (gm_tc_fast is NULL), so every operation
 * comes here. A small object of n bytes is served from the class of n + 8;
 * its last word is a canary, secret ^ address ^ n (n in both halves), which
 * also records n, and the bytes between n and the canary are a pad of
 * GM_PAD_FILL. free and
 * realloc check both, so writing even one byte past the end is caught when
 * the block is freed. A freed object's bytes past its link and marker are
 * filled with GM_FREE_FILL (carving fills new objects the same way), and
 * malloc checks the fill of the object it hands out and that the next link
 * of the span's free list still points at one of the span's objects, so a
 * write into freed memory, or an overflow into a free neighbour, is caught
 * at the next allocation from that span. Large objects get a 64-byte pad
 * after their requested size. malloc_usable_size gives n, so that programs
 * that use all of it do not scribble over the pad. Only spans made in
 * checked mode are checked (the loader's first allocations may precede the
 * options). It costs a few passes over each block; it is for finding bugs.
 */
#define GM_PAD_FILL 0xca
#define GM_CANARY ((uintptr_t)0x9e3779b97f4a7c15u)
#define GM_LARGE_PAD 64

/* n is in both halves of the word, so that an overflow that changes n's
 * bytes (one byte past the end does) cannot leave a canary that decodes to
 * a plausible size: the halves disagree. */
static inline uintptr_t gm_canary(const void *p, size_t n)
{
    return gm_free_key ^ GM_CANARY ^ (uintptr_t)p ^ ((uintptr_t)n << 32 | n);
}

/* Is every byte of [p, p + n) equal to v? */
static bool gm_all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return false;
    return true;
}

/* The requested size of p, a live object of checked span s, after checking
 * its canary and pad; aborts if they were overwritten. */
static size_t gm_checked_size(struct gm_span *s, const void *p)
{
    const unsigned char *b = p;
    if (atomic_load_explicit(&s->state, memory_order_acquire) == GM_SPAN_LARGE) {
        size_t n = s->large_size, end = (size_t)s->npages << GM_PAGE_SHIFT;
        size_t pad = end - n < GM_LARGE_PAD ? end - n : GM_LARGE_PAD;
        if (!gm_all_bytes(b + n, pad, GM_PAD_FILL)) gm_fatal_ptr("buffer overflow past the end of a block", p);
        return n;
    }
    size_t c = s->elemsize;
    uintptr_t w;
    memcpy(&w, b + c - sizeof w, sizeof w);
    uintptr_t v = w ^ gm_canary(p, 0);
    size_t n = (uint32_t)v;
    if (v >> 32 != n || n > c - sizeof w || !gm_all_bytes(b + n, c - sizeof w - n, GM_PAD_FILL))
        gm_fatal_ptr("buffer overflow past the end of a block", p);
    return n;
}

/* Arm a block just handed out: check what free left in it, then write the
 * pad and canary (small) or pad (large). */
static void *gm_checked_arm(void *p, size_t n)
{
    if (!p) return NULL;
    struct gm_span *s = gm_span_lookup((uintptr_t)p);
    if (!s->checked) return p;
    unsigned char *b = p;
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == GM_SPAN_LARGE) {
        size_t end = (size_t)s->npages << GM_PAGE_SHIFT;
        memset(b + n, GM_PAD_FILL, end - n < GM_LARGE_PAD ? end - n : GM_LARGE_PAD);
        return p;
    }
    size_t c = s->elemsize, hdr = 2 * sizeof(uintptr_t);
    if (c > hdr && !gm_all_bytes(b + hdr, c - hdr, GM_FREE_FILL)) gm_fatal_ptr("write after free into block", p);
    uintptr_t next = (uintptr_t)s->free; /* s is this thread's current span */
    if (next && (next < s->base || next >= gm_span_limit(s) || (next - s->base) % c))
        gm_fatal_ptr("corrupted free list (write after free) next to block", p);
    memset(b + n, GM_PAD_FILL, c - sizeof(uintptr_t) - n);
    uintptr_t w = gm_canary(p, n);
    memcpy(b + c - sizeof w, &w, sizeof w);
    return p;
}

/* malloc in checked mode; align <= GM_PAGE_SIZE (1 for none). */
static void *gm_checked_malloc(struct gm_tcache *tc, size_t size, size_t align)
{
    if (size <= GM_MAX_SMALL - sizeof(uintptr_t)) {
        for (unsigned cls = gm_size_class(size + sizeof(uintptr_t)); cls < GM_NUM_CLASSES; cls++)
            if ((gm_class_size[cls] & (align - 1)) == 0) return gm_checked_arm(gm_small_alloc(tc, cls), size);
    }
    if (GM_UNLIKELY(size > GM_MAX_REQUEST - GM_LARGE_PAD)) {
        errno = ENOMEM;
        return NULL;
    }
    struct gm_span *s = gm_large_alloc_span(tc, size == 0 ? 1 : size);
    if (!s) return NULL;
    s->checked = 1;
    return gm_checked_arm((void *)s->base, size);
}

/* Before a checked block is freed: check it, then fill it as free. */
static void gm_checked_free(struct gm_span *s, void *p, unsigned st)
{
    gm_checked_size(s, p);
    if (st == GM_SPAN_SMALL) {
        size_t hdr = 2 * sizeof(uintptr_t);
        if (s->elemsize > hdr) memset((char *)p + hdr, GM_FREE_FILL, s->elemsize - hdr);
    }
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

void *gm_malloc_slow(size_t size)
{
    int saved = errno;
    return gm_errno_result(gm_malloc_body(size), saved);
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
        return p;
    }
    if (total <= GM_MAX_SMALL) {
        void *p = gm_small_alloc(tc, gm_size_class(total));
        if (GM_LIKELY(p != NULL)) memset(p, 0, total);
        return p;
    }
    struct gm_span *s = gm_large_alloc_span(tc, total);
    if (!s) return NULL;
    gm_calloc_zero((void *)s->base, total);
    return (void *)s->base;
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

static void *gm_aligned(size_t align, size_t size)
{
    int saved = errno;
    return gm_errno_result(gm_aligned_body(align, size), saved);
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
