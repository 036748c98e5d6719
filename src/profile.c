/*
 * profile.c — layer 6: the heap profile's memory (Go's mprof.go, with the
 * sampling decision of malloc.go's nextSample): who allocated the blocks
 * that are live, sampled so that it costs next to nothing.
 *
 * Sampling. Profiling every allocation would cost a stack walk per malloc.
 * Go instead samples one allocation per MemProfileRate bytes on average:
 * each thread counts down the bytes it allocates, and the allocation that
 * takes the count to zero is sampled, after which a new count is drawn.
 * The counts are drawn from an exponential distribution (a Poisson process
 * over the bytes allocated), not fixed, so that no pattern of sizes can
 * hide from it or always be hit by it, and so that the chance that a block
 * of s bytes is sampled is exactly 1 - exp(-s/rate), whatever came before:
 * that is what lets pprof scale the samples back to estimates of the real
 * counts (each sample of size s stands for 1 / (1 - exp(-s/rate)) blocks).
 * gomalloc does the same. The countdown lives in the thread's cache
 * (tcache.h); api.c subtracts each allocation's requested size and calls
 * gm_prof_record for the one that reaches zero. With profiling off no
 * count is kept at all: the thread's malloc fast path is the usual one,
 * and with it on the thread's mallocs take a second inline fast path,
 * which does the subtraction (api.h; tcache.c switches a thread over at
 * its next slow path after gm_prof_epoch changes). Rate 1 samples
 * everything.
 *
 * Stacks. A sampled allocation's stack is walked with the unwinder
 * (_Unwind_Backtrace, which reads .eh_frame and so needs no frame
 * pointers), at some 1,500 instructions a frame, unless the stack cache
 * (x86-64, below) finds it walked before; the frames inside gomalloc
 * itself (between the program's call and here) are dropped, so that a
 * stack starts at the caller of malloc: the range of gomalloc's own code
 * is found once with
 * dl_iterate_phdr. (Linked statically, gomalloc's code is the program's and
 * cannot be told apart: its frames stay on top.) The unwinder is primed
 * when profiling starts, outside any lock, and a thread that is already
 * inside the profiler records nothing (the unwinder might allocate).
 *
 * Buckets. As in Go, a bucket is one (stack, size) pair, so that every
 * sample in it has the same size and pprof's per-bucket scaling is exact;
 * it counts its samples allocated and freed (raw: the writer leaves the
 * scaling to pprof, as Go's legacy writer does). Buckets come from the
 * persistent allocator and are never freed; they hang from a hash table
 * and from one list, prepended with a release store, which the writer walks
 * without the lock.
 *
 * Sampled blocks. A sampled block's free must find its bucket, and nothing
 * else may pay for that: the block's address goes into a hash set (open
 * addressing, linear probing, deletion by shifting back), and its span
 * counts its sampled blocks (prof_samples), which the free paths read only
 * where they read the span's second cache line anyway or where the owner's
 * slow_free flag (tcache.h) sends them. So a free looks further only if
 * the block's span holds a sampled block, and even then it first reads a
 * counting filter without the lock: a counter per hash of the address,
 * raised when a block enters the set and lowered when it leaves, so that
 * a zero says "not sampled" (the neighbours of a sampled block in its span
 * stop there); only a non-zero counter takes the lock and looks in the
 * set. The set grows by doubling into a
 * new table from the persistent allocator (the old one is left: at the
 * default rate the set holds a few entries per MiB of heap).
 *
 * Locks: gm_prof_lock (GM_RANK_PROFILE, the outermost after the trace's)
 * guards the buckets' table, the set and the stack cache; under it only
 * the persistent allocator's lock is taken. The unwinder runs without it.
 *
 * fork: the child's profile is its own. Its handler zeroes every bucket's
 * counts and turns the parent's sampled blocks into inherited ones (their
 * set entries lose their bucket), so that a free of one is not counted.
 */
#define _GNU_SOURCE /* dl_iterate_phdr */
#include "profile.h"

#include <link.h>
#include <string.h>
#include <unistd.h>
#include "arch.h"
#if GM_HAVE_UNWIND
#include <unwind.h>
#endif

_Atomic uint64_t gm_prof_rate;
_Atomic uint32_t gm_prof_epoch;

static pthread_mutex_t gm_prof_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t gm_prof_rate_last; /* for the header */
static _Atomic bool gm_prof_ready;         /* tables made, unwinder primed */
static __thread bool gm_prof_inside;       /* this thread is in the profiler */

/* ------------------------------------------------------------------------ */
/* Random numbers and the countdown                                         */
/* ------------------------------------------------------------------------ */

/* splitmix64: a good 64-bit mix, and a generator when stepped. */
static uint64_t gm_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint64_t gm_rand64(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15u;
    return gm_mix64(*state);
}

uint64_t gm_prof_seed(const void *salt)
{
    uint64_t s = gm_mix64((uint64_t)(uintptr_t)salt ^ ((uint64_t)getpid() << 32) ^ gm_now_ms());
    return s ? s : 1;
}

/* ln(x) for x in (0, 1], without libm: x = m * 2^e with m in [1, 2), and
 * ln m = 2 atanh(z) with z = (m - 1) / (m + 1) <= 1/3, whose series to z^11
 * is good to about 1e-7: ample for drawing sample distances. */
static double gm_ln(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ((1ull << 52) - 1)) | (1023ull << 52);
    double m;
    memcpy(&m, &bits, sizeof m);
    double z = (m - 1) / (m + 1), z2 = z * z;
    double series = z * (1 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 + z2 * (1.0 / 9 + z2 / 11)))));
    return 2 * series + e * 0.6931471805599453;
}

int64_t gm_prof_draw(uint64_t *rng, uint64_t rate)
{
    if (rate <= 1) return 0;
    /* u uniform in (0, 1]: never 0, whose logarithm is -infinity. */
    double u = (double)((gm_rand64(rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double bytes = -gm_ln(u) * (double)rate;
    return bytes >= 9.0e18 ? INT64_MAX : (int64_t)bytes;
}

/* ------------------------------------------------------------------------ */
/* Stacks                                                                   */
/* ------------------------------------------------------------------------ */

/* gomalloc's own code, [lo, hi): frames there are dropped from the top of a
 * stack. Empty when gomalloc is part of the main program. */
static uintptr_t gm_own_lo, gm_own_hi;

static int gm_own_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t self = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || self < lo || self >= lo + ph->p_memsz) continue;
        if (info->dlpi_name && info->dlpi_name[0]) { /* a shared object, not the program */
            gm_own_lo = lo;
            gm_own_hi = lo + ph->p_memsz;
        }
        return 1;
    }
    return 0;
}

#if GM_HAVE_UNWIND
/* What the unwinder saw: every frame from gm_prof_walk's own outwards, up
 * to GM_WALK_FRAMES: the code address and what _Unwind_GetCFA gives there,
 * the canonical frame address (CFA) of the frame it returns from, so that
 * ip[k] was stored just below cfa[k] (x86-64); and the stack that is kept
 * (gomalloc's frames dropped, GM_PROF_DEPTH). */
#define GM_WALK_FRAMES 40
struct gm_walk {
    uintptr_t *pc;
    int n, nframes;
    bool outside, ended; /* past gomalloc's frames; the whole stack seen */
    uintptr_t ip[GM_WALK_FRAMES], cfa[GM_WALK_FRAMES];
};

static _Unwind_Reason_Code gm_walk_frame(struct _Unwind_Context *ctx, void *arg)
{
    struct gm_walk *w = arg;
    uintptr_t pc = _Unwind_GetIP(ctx);
    if (pc == 0) { /* past the outermost frame */
        w->ended = true;
        return _URC_END_OF_STACK;
    }
    if (w->nframes < GM_WALK_FRAMES) {
        w->ip[w->nframes] = pc;
        w->cfa[w->nframes] = _Unwind_GetCFA(ctx);
    }
    w->nframes++;
    if (!w->outside) {
        if (pc >= gm_own_lo && pc < gm_own_hi) return _URC_NO_REASON;
        w->outside = true;
    }
    w->pc[w->n++] = pc;
    return w->n == GM_PROF_DEPTH ? _URC_END_OF_STACK : _URC_NO_REASON;
}
#endif

#if GM_HAVE_UNWIND && defined(__x86_64__)
/* The stack cache. A thread that allocates from one place over and over
 * has the same stack at each sample, frame for frame at the same
 * addresses; the unwinder finds it again at some 1,500 instructions a
 * frame (it looks up and interprets each function's call frame
 * information). So a stack, once walked, is kept with the canonical frame
 * address (CFA) of each frame, keyed by the thread, gm_prof_walk's own CFA
 * and its return address, and a later sample with the same key checks it
 * instead of walking: on x86-64 every ordinary frame's return address
 * lies just below its CFA, so each kept return address is read again
 * where it was (8 bytes below its callee's CFA) and compared. A frame whose CFA follows
 * from its caller's stack pointer and its own code address (every frame
 * but one that moves its stack by a varying amount, alloca) is then the
 * same frame as before, and so by induction is the whole stack: a few
 * loads and compares a frame. A stack whose frames did not all keep
 * their return address there when it was walked (a signal frame) is not
 * kept; a mismatch walks again and replaces the entry. The thread is in
 * the key (a number of its own, never reused) so that the addresses read
 * are on its own stack, which stays mapped while it lives. */
#define GM_CACHE_SETS 64 /* a power of two */
#define GM_CACHE_WAYS 4   /* stacks kept per set: calls from different places
                           * can share a key (the same depth) */
struct gm_walk_entry {
    uint64_t tid;              /* 0: empty */
    uintptr_t cfa0, ret;       /* the key: gm_prof_walk's CFA, return address */
    uint32_t nframes, skip, n; /* frames kept; gomalloc's of them; stack length */
    uintptr_t ip[GM_WALK_FRAMES], cfa[GM_WALK_FRAMES];
};
struct gm_walk_set {
    struct gm_walk_entry way[GM_CACHE_WAYS];
    unsigned next; /* the way to replace next */
};
static struct gm_walk_set *gm_walk_cache; /* under gm_prof_lock */
static _Atomic uint64_t gm_walk_tids;
static __thread uint64_t gm_walk_tid;

static struct gm_walk_set *gm_walk_set_of(uint64_t tid, uintptr_t cfa0, uintptr_t ret)
{
    return &gm_walk_cache[gm_mix64(tid ^ gm_mix64(cfa0 ^ gm_mix64(ret))) & (GM_CACHE_SETS - 1)];
}

/* Is e's stack, kept for this key, still the thread's? */
static bool gm_walk_same(const struct gm_walk_entry *e, uint64_t tid, uintptr_t cfa0, uintptr_t ret)
{
    if (e->tid != tid || e->cfa0 != cfa0 || e->ret != ret) return false;
    for (uint32_t k = 2; k < e->nframes; k++)
        if (*(const uintptr_t *)(e->cfa[k] - sizeof(uintptr_t)) != e->ip[k]) return false;
    return true;
}

/* The kept stack of (tid, cfa0, ret) into pc if it is still the thread's
 * (see above), its length; -1 if not. Lock held. */
static int gm_walk_cached(uint64_t tid, uintptr_t cfa0, uintptr_t ret, uintptr_t *pc)
{
    struct gm_walk_set *set = gm_walk_set_of(tid, cfa0, ret);
    for (int i = 0; i < GM_CACHE_WAYS; i++) {
        const struct gm_walk_entry *e = &set->way[i];
        if (!gm_walk_same(e, tid, cfa0, ret)) continue;
        memcpy(pc, e->ip + e->skip, (size_t)e->n * sizeof *pc);
        return (int)e->n;
    }
    return -1;
}

/* Keep what w saw, if every frame was seen and each return address was
 * where the check will read it, in place of its set's oldest. Lock held. */
static void gm_walk_keep(uint64_t tid, uintptr_t cfa0, uintptr_t ret, const struct gm_walk *w)
{
    if (!w->ended || w->nframes > GM_WALK_FRAMES || w->nframes < 2 || w->cfa[1] != cfa0 || w->ip[1] != ret) return;
    for (int k = 1; k < w->nframes; k++)
        if (*(const uintptr_t *)(w->cfa[k] - sizeof(uintptr_t)) != w->ip[k]) return;
    struct gm_walk_set *set = gm_walk_set_of(tid, cfa0, ret);
    struct gm_walk_entry *e = &set->way[set->next++ % GM_CACHE_WAYS];
    e->tid = tid;
    e->cfa0 = cfa0;
    e->ret = ret;
    e->nframes = (uint32_t)w->nframes;
    e->n = (uint32_t)w->n;
    e->skip = (uint32_t)(w->nframes - w->n);
    memcpy(e->ip, w->ip, (size_t)w->nframes * sizeof *w->ip);
    memcpy(e->cfa, w->cfa, (size_t)w->nframes * sizeof *w->cfa);
}

static void gm_walk_cache_make(void)
{
    if (!gm_walk_cache)
        gm_walk_cache = gm_persistent_alloc(GM_CACHE_SETS * sizeof *gm_walk_cache, GM_CACHE_LINE, &gm_meta.other);
}

/* The caller's stack into pc (GM_PROF_DEPTH entries), innermost first:
 * from the cache, or walked and kept. noinline, and with a frame pointer
 * (__builtin_frame_address), so that its CFA is known here. */
static __attribute__((noinline)) int gm_prof_walk(uintptr_t *pc)
{
    uintptr_t cfa0 = (uintptr_t)__builtin_frame_address(0) + 2 * sizeof(uintptr_t);
    uintptr_t ret = (uintptr_t)__builtin_return_address(0);
    if (!gm_walk_tid) gm_walk_tid = atomic_fetch_add_explicit(&gm_walk_tids, 1, memory_order_relaxed) + 1;
    gm_lock(&gm_prof_lock, GM_RANK_PROFILE);
    int n = gm_walk_cache ? gm_walk_cached(gm_walk_tid, cfa0, ret, pc) : -1;
    gm_unlock(&gm_prof_lock, GM_RANK_PROFILE);
    if (n >= 0) return n;
    struct gm_walk w = {.pc = pc};
    if (_Unwind_Backtrace(gm_walk_frame, &w) == _URC_END_OF_STACK) w.ended = true;
    gm_lock(&gm_prof_lock, GM_RANK_PROFILE);
    if (gm_walk_cache) gm_walk_keep(gm_walk_tid, cfa0, ret, &w);
    gm_unlock(&gm_prof_lock, GM_RANK_PROFILE);
    return w.n;
}
#elif GM_HAVE_UNWIND
static void gm_walk_cache_make(void) {}

/* The caller's stack into pc (GM_PROF_DEPTH entries), innermost first. */
static int gm_prof_walk(uintptr_t *pc)
{
    struct gm_walk w = {.pc = pc};
    _Unwind_Backtrace(gm_walk_frame, &w);
    return w.n;
}
#else
static void gm_walk_cache_make(void) {}

static int gm_prof_walk(uintptr_t *pc)
{
    (void)pc;
    return 0; /* no unwinder here (arch.h): sizes without stacks */
}
#endif

/* ------------------------------------------------------------------------ */
/* Buckets                                                                  */
/* ------------------------------------------------------------------------ */

#define GM_PROF_HEADS 8192 /* a power of two */
static struct gm_prof_bucket **gm_prof_heads; /* under the lock */
static struct gm_prof_bucket *_Atomic gm_prof_all;

struct gm_prof_bucket *gm_prof_buckets(void) { return atomic_load_explicit(&gm_prof_all, memory_order_acquire); }
uint64_t gm_prof_last_rate(void) { return atomic_load_explicit(&gm_prof_rate_last, memory_order_relaxed); }
bool gm_prof_used(void) { return atomic_load_explicit(&gm_prof_ready, memory_order_acquire); }

static uint64_t gm_stack_hash(const uintptr_t *pc, int n, uint64_t size)
{
    uint64_t h = gm_mix64(size);
    for (int i = 0; i < n; i++) h = gm_mix64(h ^ pc[i]);
    return h;
}

/* The bucket of (pc[0..n), size), made if new; NULL if out of metadata.
 * Lock held. */
static struct gm_prof_bucket *gm_bucket_get(const uintptr_t *pc, int n, uint64_t size)
{
    uint64_t h = gm_stack_hash(pc, n, size);
    struct gm_prof_bucket **head = &gm_prof_heads[h & (GM_PROF_HEADS - 1)];
    for (struct gm_prof_bucket *b = *head; b; b = b->hnext)
        if (b->hash == h && b->size == size && b->depth == (uint32_t)n &&
            memcmp(b->pc, pc, (size_t)n * sizeof *pc) == 0)
            return b;
    struct gm_prof_bucket *b =
        gm_persistent_alloc(sizeof *b + (size_t)n * sizeof *pc, _Alignof(struct gm_prof_bucket), &gm_meta.other);
    if (!b) return NULL;
    b->hash = h;
    b->size = size;
    b->depth = (uint32_t)n;
    memcpy(b->pc, pc, (size_t)n * sizeof *pc);
    b->hnext = *head;
    *head = b;
    b->all_next = atomic_load_explicit(&gm_prof_all, memory_order_relaxed);
    atomic_store_explicit(&gm_prof_all, b, memory_order_release);
    return b;
}

/* ------------------------------------------------------------------------ */
/* The set of sampled blocks                                                */
/* ------------------------------------------------------------------------ */

/* A sampled block, or an empty slot (addr 0). bucket NULL: inherited from
 * the parent process, freed without counting. */
struct gm_prof_entry {
    uintptr_t addr;
    struct gm_prof_bucket *bucket;
};
static struct gm_prof_entry *gm_set;
#define GM_FILTER_BITS 16
static _Atomic uint32_t *gm_filter; /* 1 << GM_FILTER_BITS counters */
static size_t gm_set_cap, gm_set_count; /* cap: a power of two */
#define GM_SET_FIRST 4096

static size_t gm_set_slot(uintptr_t a) { return (size_t)(gm_mix64(a) & (gm_set_cap - 1)); }
static _Atomic uint32_t *gm_filter_of(uintptr_t a) { return &gm_filter[gm_mix64(a) >> (64 - GM_FILTER_BITS)]; }

/* The slot of a, or of the empty slot where it would go. */
static size_t gm_set_find(uintptr_t a)
{
    size_t i = gm_set_slot(a);
    while (gm_set[i].addr != 0 && gm_set[i].addr != a) i = (i + 1) & (gm_set_cap - 1);
    return i;
}

/* A table of cap slots, zeroed; NULL if out of metadata. */
static struct gm_prof_entry *gm_set_table(size_t cap)
{
    return gm_persistent_alloc(cap * sizeof(struct gm_prof_entry), GM_CACHE_LINE, &gm_meta.other);
}

/* Twice the slots, every entry moved over. False if out of metadata. */
static bool gm_set_grow(void)
{
    struct gm_prof_entry *old = gm_set, *t = gm_set_table(gm_set_cap * 2);
    size_t old_cap = gm_set_cap;
    if (!t) return false;
    gm_set = t;
    gm_set_cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].addr) gm_set[gm_set_find(old[i].addr)] = old[i];
    return true;
}

/* Put a in the set with bucket b; false if out of metadata. An entry left
 * for a (it cannot normally be) is replaced. */
static bool gm_set_put(uintptr_t a, struct gm_prof_bucket *b)
{
    if ((gm_set_count + 1) * 2 > gm_set_cap && !gm_set_grow()) return false;
    size_t i = gm_set_find(a);
    if (gm_set[i].addr == 0) {
        gm_set_count++;
        atomic_fetch_add_explicit(gm_filter_of(a), 1, memory_order_relaxed);
    }
    gm_set[i] = (struct gm_prof_entry){a, b};
    return true;
}

/* Empty slot i, shifting back the entries of its run that would no longer
 * be found (linear probing's deletion, no tombstones). */
static void gm_set_remove_at(size_t i)
{
    size_t mask = gm_set_cap - 1;
    for (size_t j = (i + 1) & mask; gm_set[j].addr; j = (j + 1) & mask) {
        size_t home = gm_set_slot(gm_set[j].addr);
        /* Does j's entry's probe sequence pass through i? */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            gm_set[i] = gm_set[j];
            i = j;
        }
    }
    gm_set[i] = (struct gm_prof_entry){0, NULL};
    gm_set_count--;
}

/* ------------------------------------------------------------------------ */
/* Starting, recording, freeing                                             */
/* ------------------------------------------------------------------------ */

#if GM_HAVE_UNWIND
static _Unwind_Reason_Code gm_prime_frame(struct _Unwind_Context *ctx, void *arg)
{
    (void)ctx, (void)arg;
    return _URC_NO_REASON;
}
#endif

/* Once: gomalloc's code range, and the unwinder's own first-call set-up,
 * whatever it allocates not sampled. */
static void gm_prof_find_self(void)
{
    gm_prof_inside = true;
    dl_iterate_phdr(gm_own_module, (void *)(uintptr_t)gm_prof_find_self);
#if GM_HAVE_UNWIND
    _Unwind_Backtrace(gm_prime_frame, NULL);
#endif
    gm_prof_inside = false;
}

/* First use: the above, then the tables. No lock of ours is held (the
 * loader's lock, which dl_iterate_phdr takes, may be held by a thread that
 * allocates). */
static int gm_prof_prepare(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (atomic_load_explicit(&gm_prof_ready, memory_order_acquire)) return 0;
    pthread_once(&once, gm_prof_find_self);
    gm_lock(&gm_prof_lock, GM_RANK_PROFILE);
    if (!gm_prof_heads) gm_prof_heads = gm_persistent_alloc(GM_PROF_HEADS * sizeof *gm_prof_heads, GM_CACHE_LINE, &gm_meta.other);
    if (!gm_filter)
        gm_filter = gm_persistent_alloc(sizeof *gm_filter << GM_FILTER_BITS, GM_CACHE_LINE, &gm_meta.other);
    gm_walk_cache_make(); /* optional: without it, every stack is walked */
    if (gm_prof_heads && gm_filter && !gm_set) {
        gm_set = gm_set_table(GM_SET_FIRST);
        if (gm_set) gm_set_cap = GM_SET_FIRST;
    }
    bool ok = gm_prof_heads && gm_filter && gm_set;
    if (ok) atomic_store_explicit(&gm_prof_ready, true, memory_order_release);
    gm_unlock(&gm_prof_lock, GM_RANK_PROFILE);
    return ok ? 0 : -1;
}

int gm_prof_start(uint64_t rate)
{
    if (rate == 0) rate = GM_PROF_DEFAULT_RATE;
    if (gm_prof_prepare() != 0) return -1;
    atomic_store_explicit(&gm_prof_rate_last, rate, memory_order_relaxed);
    atomic_store_explicit(&gm_prof_rate, rate, memory_order_relaxed);
    atomic_fetch_add_explicit(&gm_prof_epoch, 1, memory_order_release);
    return 0;
}

void gm_prof_stop(void)
{
    atomic_store_explicit(&gm_prof_rate, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&gm_prof_epoch, 1, memory_order_release);
}

void gm_prof_record(void *p, size_t size, struct gm_span *s)
{
    if (gm_prof_inside || !atomic_load_explicit(&gm_prof_ready, memory_order_acquire)) return;
    gm_prof_inside = true;
    uintptr_t pc[GM_PROF_DEPTH];
    int n = gm_prof_walk(pc);
    gm_lock(&gm_prof_lock, GM_RANK_PROFILE);
    struct gm_prof_bucket *b = gm_bucket_get(pc, n, size);
    if (b && gm_set_put((uintptr_t)p, b)) {
        atomic_fetch_add_explicit(&b->allocs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->prof_samples, 1, memory_order_relaxed);
    }
    gm_unlock(&gm_prof_lock, GM_RANK_PROFILE);
    gm_prof_inside = false;
}

void gm_prof_freed(struct gm_span *s, const void *p)
{
    /* A block enters the set, if at all, before the program has it, and
     * leaves it only here, before its free: a zero is the truth. */
    if (!gm_prof_used() || !atomic_load_explicit(gm_filter_of((uintptr_t)p), memory_order_relaxed)) return;
    gm_lock(&gm_prof_lock, GM_RANK_PROFILE);
    if (gm_set) {
        size_t i = gm_set_find((uintptr_t)p);
        if (gm_set[i].addr) {
            struct gm_prof_bucket *b = gm_set[i].bucket;
            atomic_fetch_sub_explicit(gm_filter_of((uintptr_t)p), 1, memory_order_relaxed);
            if (b) atomic_fetch_add_explicit(&b->frees, 1, memory_order_relaxed);
            gm_set_remove_at(i);
            atomic_fetch_sub_explicit(&s->prof_samples, 1, memory_order_relaxed);
        }
    }
    gm_unlock(&gm_prof_lock, GM_RANK_PROFILE);
}

/* ------------------------------------------------------------------------ */
/* fork                                                                     */
/* ------------------------------------------------------------------------ */

void gm_prof_fork_prepare(void) { gm_lock(&gm_prof_lock, GM_RANK_PROFILE); }

void gm_prof_fork_parent(void) { gm_unlock(&gm_prof_lock, GM_RANK_PROFILE); }

void gm_prof_fork_child(void)
{
    for (struct gm_prof_bucket *b = gm_prof_buckets(); b; b = b->all_next) {
        atomic_store_explicit(&b->allocs, 0, memory_order_relaxed);
        atomic_store_explicit(&b->frees, 0, memory_order_relaxed);
    }
    for (size_t i = 0; i < gm_set_cap; i++) gm_set[i].bucket = NULL;
    gm_prof_inside = false;
    pthread_mutex_init(&gm_prof_lock, NULL);
}
