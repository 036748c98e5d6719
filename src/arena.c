/*
 * arena.c — layer 2: address space for the heap, the arena index, and the
 * allocators that hold the heap's own metadata (Go's sysAlloc with its arena
 * hints, linearAlloc, persistentalloc and fixalloc in malloc.go/mfixalloc.go).
 *
 * Heap address space comes in arenas: 64 MiB, 64 MiB aligned, reserved
 * PROT_NONE. gm_arena_alloc places them at a list of hints, the first at
 * 0x00c000000000 and then one every TiB, so successive reservations usually
 * extend one contiguous range and large spans may cross arena boundaries.
 * A hint whose address is taken is dropped; when none is left the region goes
 * anywhere and hints at both its ends take over. As after Go's seed change, the
 * region is returned Reserved: the heap commits it 4 MiB at a time, so an
 * arena costs no commit charge until the heap grows into it.
 *
 * Address space is what RLIMIT_AS (ulimit -v) bounds, and 64 MiB at a time
 * is too coarse for a limit of a few hundred MiB, so under a finite limit
 * the heap reserves in pieces instead (Go's 32-bit layout, with 4 MiB
 * arenas, is the model): a 16th of the limit, in whole chunks, and when
 * even that is refused with ENOMEM, what the growth needs rounded to chunks,
 * then to pages. Pieces at a hint still extend one contiguous range, so the
 * heap stays one mapping. The arena stays the unit of the index: a piece
 * may cover part of an arena, and two pieces in one arena share its record.
 *
 * Every arena gets a struct gm_arena (its page -> span map), found from any
 * address through a two-level index: a static L1 covering the 47-bit address
 * space, and 4 KiB L2 pages created when an arena first lands in their range.
 * The records of the arenas that extend the range from the first hint up lie
 * end to end in one reservation instead (the flat span table, arena.h),
 * so that the free path finds a span there with one load; under RLIMIT_AS
 * the table is sized to the heap the limit allows.
 *
 * Metadata comes from gm_persistent_alloc: a bump allocator (gm_linear) over
 * PROT_NONE reservations that commits 64 KiB at a time, so metadata costs
 * commit only as it is used and each reservation's committed part is one
 * contiguous prefix (one mapping). Reservations start at 64 MiB and double
 * up to 1 GiB, so that a small program holds little address space and a
 * large one makes few reservations (each old one stays a mapping); under
 * RLIMIT_AS they start at a 64th of the limit (1 MiB under 64 MiB) and stay
 * under a 16th. When one is refused with ENOMEM, a smaller one is tried,
 * down to what the request needs. A new reservation gives back the old
 * one's uncommitted tail, so the address space metadata holds is what it
 * committed plus less than the current reservation. gm_fixalloc keeps free lists of fixed-size
 * records (spans, thread caches) carved from it.
 *
 * Invariants:
 *  - Arena records are created once (by the first reservation that touches
 *    their arena), published once, and never freed or moved; the arenas
 *    gm_flat_bytes covers have their flat table slots as records, so that
 *    both lookups agree. Index entries (L1 and L2) go from NULL to non-NULL
 *    only, with release stores after the memory they point to is ready, so
 *    readers need no lock. Heap reservations are never given back to the
 *    OS.
 *  - Metadata never comes from libc malloc (we are malloc): only from the
 *    OS layer, through the allocators here.
 *  - Every committed byte of metadata is in exactly one gm_meta field: the
 *    persistent allocator charges what it commits to gm_meta.other (its
 *    slack) and moves each allocation's bytes to the caller's field. So the
 *    sum of gm_meta is what the metadata allocators have committed.
 *  - A failed call changes nothing that is counted: no committed byte, no
 *    index entry, no hint is lost to it.
 *
 * Locks: gm_persistent.lock guards the persistent allocator; gm_arenas.lock
 * guards the hints and index writes (the heap lock is also held by callers)
 * and is taken before gm_persistent.lock. gm_linear and gm_fixalloc are
 * locked by their owners.
 */
#include "arena.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gm_meta_stats gm_meta;

/* ------------------------------------------------------------------------ */
/* Linear allocator                                                         */
/* ------------------------------------------------------------------------ */

void gm_linear_init(struct gm_linear *l, uintptr_t base, size_t size, bool map_memory)
{
    /* Keep end representable: a range reaching the top of the address space
     * loses its last byte. base must be OS-page aligned if map_memory. */
    if (base + size < base) size = (size_t)(UINTPTR_MAX - base);
    l->next = base;
    l->mapped = base;
    l->end = base + size;
    l->map_memory = map_memory;
    l->map_step = 0;
}

/* Whether an allocation of size bytes aligned to align fits in l. */
static bool gm_linear_fits(const struct gm_linear *l, size_t size, size_t align)
{
    uintptr_t p = gm_align_up(l->next, align);
    return p >= l->next && p <= l->end && size <= l->end - p;
}

void *gm_linear_alloc(struct gm_linear *l, size_t size, size_t align, gm_stat *stat)
{
    if (align == 0) align = 1;
    if (!gm_linear_fits(l, size, align)) return NULL;
    uintptr_t p = gm_align_up(l->next, align);
    uintptr_t next = p + size;
    if (next > l->mapped) {
        /* The mapped prefix must cover [p, next): extend it by whole steps
         * (a power of two, a multiple of the OS page), but not past the
         * page-rounded reservation. */
        uintptr_t step = l->map_step ? l->map_step : GM_OS_PAGE;
        uintptr_t limit = gm_align_up(l->end, GM_OS_PAGE);
        uintptr_t pend = l->mapped + gm_align_up(next - l->mapped, step);
        if (pend < next || pend > limit) pend = limit;
        if (l->map_memory) {
            if (gm_sys_map((void *)l->mapped, pend - l->mapped, stat) != 0) return NULL;
            gm_sys_used((void *)l->mapped, pend - l->mapped);
        }
        l->mapped = pend;
    }
    l->next = next;
    return (void *)p;
}

/* ------------------------------------------------------------------------ */
/* Persistent allocator                                                     */
/* ------------------------------------------------------------------------ */

#define GM_PERSISTENT_FIRST ((size_t)64 << 20) /* the first reservation, no RLIMIT_AS */
#define GM_PERSISTENT_MAX ((size_t)1 << 30)    /* reservations double up to this */
#define GM_PERSISTENT_STEP ((size_t)64 << 10)  /* committed at a time */

#ifdef GM_TESTING
/* Tests shrink the first reservation to reach the region switch cheaply. */
size_t gm_persistent_first_bytes GM_HIDDEN = GM_PERSISTENT_FIRST;
#define GM_PERSISTENT_FIRST_NOW gm_persistent_first_bytes
#else
#define GM_PERSISTENT_FIRST_NOW GM_PERSISTENT_FIRST
#endif

static struct {
    pthread_mutex_t lock;
    struct gm_linear cur; /* end == 0 until the first reservation */
    size_t next_region;   /* the size the next reservation aims at (0: first) */
} gm_persistent = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The size the next reservation aims at: double the last, up to
 * GM_PERSISTENT_MAX; under RLIMIT_AS, starting from a 64th of the limit and
 * never above a 16th, so that metadata holds little address space it does
 * not use. */
static size_t gm_persistent_want(void)
{
    size_t want = gm_persistent.next_region ? gm_persistent.next_region : GM_PERSISTENT_FIRST_NOW;
    uint64_t as = gm_sys_as_limit();
    if (as == UINT64_MAX) return want;
    if (!gm_persistent.next_region && want > as / 64) want = gm_align_down(as / 64, GM_PERSISTENT_STEP);
    if (want > as / 16) want = gm_align_down(as / 16, GM_PERSISTENT_STEP);
    return want;
}

/* Replace the current reservation with a new one that can hold size bytes
 * aligned to align: the size aimed at, or at least enough, halving toward
 * enough while the OS says ENOMEM (RLIMIT_AS, or no room). Lock held. -1 if
 * even that is refused (nothing changed). */
static int gm_persistent_refill(size_t size, size_t align)
{
    /* mmap's result is OS-page aligned; a larger alignment may cost its
     * size in slack. */
    size_t need = gm_align_up(size + (align > GM_OS_PAGE ? align : 0), GM_OS_PAGE);
    if (need < size) return -1;
    size_t region = gm_persistent_want();
    if (region < need) region = need;
    void *base;
    while (!(base = gm_sys_reserve(NULL, region))) {
        if (region == need || errno != ENOMEM) return -1;
        region = region / 2 > need ? gm_align_up(region / 2, GM_OS_PAGE) : need;
    }
    struct gm_linear *l = &gm_persistent.cur;
    /* Give back the old reservation's uncommitted tail (address space only;
     * its committed slack stays in gm_meta.other). */
    if (l->end > l->mapped) gm_sys_free((void *)l->mapped, l->end - l->mapped, 0, NULL);
    gm_linear_init(l, (uintptr_t)base, region, true);
    l->map_step = GM_PERSISTENT_STEP;
    gm_persistent.next_region = region < GM_PERSISTENT_MAX / 2 ? 2 * region : GM_PERSISTENT_MAX;
    return 0;
}

void *gm_persistent_alloc(size_t size, size_t align, gm_stat *stat)
{
    if (!stat) stat = &gm_meta.other;
    if (size == 0) size = 1;
    if (align == 0) align = 8;
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&gm_persistent.lock);
    void *p = NULL;
    if (gm_linear_fits(&gm_persistent.cur, size, align) || gm_persistent_refill(size, align) == 0)
        p = gm_linear_alloc(&gm_persistent.cur, size, align, &gm_meta.other);
    if (p && stat != &gm_meta.other) {
        gm_stat_add(&gm_meta.other, -(int64_t)size);
        gm_stat_add(stat, (int64_t)size);
    }
    pthread_mutex_unlock(&gm_persistent.lock);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Fixed-size allocator                                                     */
/* ------------------------------------------------------------------------ */

#define GM_FIXALLOC_CHUNK ((size_t)16 << 10)

void gm_fixalloc_init(struct gm_fixalloc *f, size_t size, gm_stat *stat)
{
    /* A free record holds the list link in its first word. */
    if (size < sizeof(void *)) size = sizeof(void *);
    f->size = gm_align_up(size, sizeof(void *));
    f->stat = stat;
    f->free_list = NULL;
    f->chunk = 0;
    f->nchunk = 0;
    f->inuse = 0;
}

void *gm_fixalloc_alloc(struct gm_fixalloc *f)
{
    void *p = f->free_list;
    if (p) {
        f->free_list = *(void **)p;
        memset(p, 0, f->size);
        f->inuse += f->size;
        return p;
    }
    if (f->nchunk < f->size) {
        /* The rest of the old chunk (less than a record) is wasted. */
        size_t chunk = f->size > GM_FIXALLOC_CHUNK ? f->size : GM_FIXALLOC_CHUNK;
        void *c = gm_persistent_alloc(chunk, 64, f->stat);
        if (!c) return NULL;
        f->chunk = (uintptr_t)c;
        f->nchunk = chunk;
    }
    p = (void *)f->chunk; /* fresh persistent memory: already zero */
    f->chunk += f->size;
    f->nchunk -= f->size;
    f->inuse += f->size;
    return p;
}

void gm_fixalloc_free(struct gm_fixalloc *f, void *p)
{
    *(void **)p = f->free_list;
    f->free_list = p;
    f->inuse -= f->size;
}

/* ------------------------------------------------------------------------ */
/* Arena hints, reservation and index                                       */
/* ------------------------------------------------------------------------ */

struct gm_arena *_Atomic *_Atomic gm_arena_l1[GM_ARENA_L1_ENTRIES];

#define GM_ARENA_L2_ENTRIES ((size_t)1 << GM_ARENA_L2_BITS)
#define GM_ARENA_L2_PAGE (GM_ARENA_L2_ENTRIES * sizeof(struct gm_arena *))
#define GM_NHINTS 128

/* A place to try next: an up-hint grows the heap upward from addr, a
 * down-hint downward from addr (Go's arenaHint). */
struct gm_hint {
    uintptr_t addr;
    bool down;
};

/* The hints form a stack: hint[nhints - 1] is tried first. Only an empty or
 * nearly empty stack is pushed onto, so two spare slots are enough. */
struct gm_hints {
    unsigned nhints;
    struct gm_hint hint[GM_NHINTS + 2];
};

static struct {
    pthread_mutex_t lock;
    bool initialized;
    struct gm_hints h;
    struct gm_hints saved; /* to undo a failed gm_arena_alloc */
} gm_arenas = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void gm_arena_hints_init(void)
{
    /* 0x00c000000000, 0x01c000000000, ..., 0x7fc000000000, first on top. */
    for (unsigned i = 0; i < GM_NHINTS; i++)
        gm_arenas.h.hint[i] = (struct gm_hint){(uintptr_t)(GM_NHINTS - 1 - i) << 40 | GM_FLAT_BASE, false};
    gm_arenas.h.nhints = GM_NHINTS;
    gm_arenas.initialized = true;
}

uintptr_t gm_arena_next_hint(void)
{
    pthread_mutex_lock(&gm_arenas.lock);
    if (!gm_arenas.initialized) gm_arena_hints_init();
    uintptr_t a = 0;
    if (gm_arenas.h.nhints) {
        struct gm_hint *t = &gm_arenas.h.hint[gm_arenas.h.nhints - 1];
        a = t->down ? t->addr - GM_ARENA_BYTES : t->addr; /* for one arena */
    }
    pthread_mutex_unlock(&gm_arenas.lock);
    return a;
}

struct gm_span *_Atomic *gm_flat_spans;
_Atomic uintptr_t gm_flat_bytes;
size_t gm_flat_arenas;           /* the table's capacity, set when reserved */
static size_t gm_flat_committed; /* bytes of the table committed so far */
_Static_assert(sizeof(struct gm_arena) == GM_PAGES_PER_ARENA * sizeof(struct gm_span *),
               "the flat table is the records end to end");

/* Reserve the flat table: GM_FLAT_MAX_ARENAS records, or under RLIMIT_AS as
 * many as a heap the limit allows can reach (it only speeds lookups up).
 * Lock held. */
static bool gm_flat_reserve(void)
{
    size_t arenas = GM_FLAT_MAX_ARENAS;
    uint64_t as = gm_sys_as_limit();
    if (as != UINT64_MAX && as / GM_ARENA_BYTES + 1 < arenas) arenas = as / GM_ARENA_BYTES + 1;
    gm_flat_spans = gm_sys_reserve(NULL, arenas * sizeof(struct gm_arena));
    if (gm_flat_spans) gm_flat_arenas = arenas;
    return gm_flat_spans != NULL;
}

/* The flat table's record of the arena holding v, with the records of
 * every arena [v, v + n) touches committed (to gm_meta.arenas), if the
 * region extends the flat range, fits the table and its other arenas have
 * no record yet (one made for an earlier reservation elsewhere in such an
 * arena would not be its slot); else NULL. The table is reserved the first
 * time (and kept). Lock held. */
static struct gm_arena *gm_flat_records(uintptr_t v, size_t n)
{
    size_t fb = atomic_load_explicit(&gm_flat_bytes, memory_order_relaxed);
    if (v != GM_FLAT_BASE + fb) return NULL;
    if (!gm_flat_spans && !gm_flat_reserve()) return NULL;
    size_t end = fb + n;
    if (end > gm_flat_arenas * GM_ARENA_BYTES) return NULL;
    for (size_t a = gm_align_up(fb, GM_ARENA_BYTES); a < end; a += GM_ARENA_BYTES)
        if (gm_arena_of(GM_FLAT_BASE + a)) return NULL;
    uintptr_t table = (uintptr_t)gm_flat_spans;
    size_t need = gm_align_up(end, GM_ARENA_BYTES) / GM_ARENA_BYTES * sizeof(struct gm_arena);
    if (need > gm_flat_committed) {
        if (gm_sys_map((void *)(table + gm_flat_committed), need - gm_flat_committed, &gm_meta.arenas) != 0)
            return NULL;
        gm_flat_committed = need;
    }
    return (struct gm_arena *)table + (fb >> GM_ARENA_SHIFT);
}

/* Undo gm_flat_records for a call that failed after it: decommit what it
 * committed beyond the first `committed` bytes. Lock held. */
static void gm_flat_unrecord(size_t committed)
{
    uintptr_t table = (uintptr_t)gm_flat_spans;
    if (gm_flat_committed > committed &&
        gm_sys_decommit((void *)(table + committed), gm_flat_committed - committed, &gm_meta.arenas) == 0)
        gm_flat_committed = committed;
}

/* Reserve n bytes aligned to align at the hints or anywhere. Lock held. */
static void *gm_arena_reserve(size_t n, size_t align)
{
    struct gm_hints *h = &gm_arenas.h;
    bool bad_hint = false;
    while (h->nhints > 0) {
        struct gm_hint *t = &h->hint[h->nhints - 1];
        uintptr_t p = t->down ? t->addr - n : t->addr;
        bool usable = t->down ? t->addr >= n : p + n > p && p + n <= GM_ADDR_LIMIT;
        if (usable && p != 0) {
            void *v = gm_sys_reserve((void *)p, n);
            if (v) {
                t->addr = t->down ? p : p + n;
                return v;
            }
            if (errno != EEXIST) {
                /* Not "address taken": out of memory or mappings, or the
                 * address is beyond this machine's address space. Trying
                 * further hints would drop good ones for nothing. */
                bad_hint = true;
                break;
            }
        }
        h->nhints--; /* taken or unusable: drop it */
    }
    void *v = gm_sys_reserve_aligned(NULL, n, align);
    if (!v) return NULL; /* the hints are kept */
    uintptr_t end = (uintptr_t)v + n;
    if (end > GM_ADDR_LIMIT || end < (uintptr_t)v) { /* outside the index */
        gm_sys_free(v, n, 0, NULL);
        errno = ENOMEM;
        return NULL;
    }
    /* A hint that failed at a free address was the machine's fault, as the
     * reservation anywhere just worked: drop it. Then grow from this region
     * both ways: upward first, and downward, which is where the kernel puts
     * the next mapping when the space above is taken. */
    if (bad_hint) h->nhints--;
    h->hint[h->nhints++] = (struct gm_hint){(uintptr_t)v, true};
    h->hint[h->nhints++] = (struct gm_hint){end, false};
    return v;
}

/* The reservation a growth of n bytes asks for first: whole arenas, as in
 * Go, when there is no RLIMIT_AS; under one, pieces of a 16th of the limit
 * (whole chunks, at least n; never more than whole arenas), so that the
 * heap holds little address space it has not used. */
static size_t gm_arena_piece(size_t n)
{
    size_t whole = gm_align_up(n, GM_ARENA_BYTES);
    uint64_t as = gm_sys_as_limit();
    if (as == UINT64_MAX) return whole;
    size_t piece = gm_align_down(as / 16, GM_CHUNK_BYTES);
    if (piece < n) piece = gm_align_up(n, GM_CHUNK_BYTES);
    return piece < whole ? piece : whole;
}

/* Reserve address space for a growth of n bytes (a page multiple): the
 * piece gm_arena_piece chooses; while the OS refuses, n rounded to chunks,
 * then n itself (the end of a limit). Whole arenas are aligned to arenas,
 * pieces of chunks to chunks, so that the page allocator's chunks are
 * whole where they can be. 0 if all are refused, with the hints as they
 * were; else gm_arenas.saved holds them as they were. Lock held. */
static uintptr_t gm_arena_reserve_sized(size_t n, size_t *got)
{
    const size_t sizes[3] = {gm_arena_piece(n), gm_align_up(n, GM_CHUNK_BYTES), n};
    size_t tried = 0;
    for (int k = 0; k < 3; k++) {
        if (tried && sizes[k] >= tried) continue;
        tried = sizes[k];
        size_t align = tried % GM_ARENA_BYTES == 0 ? GM_ARENA_BYTES
                       : tried % GM_CHUNK_BYTES == 0 ? GM_CHUNK_BYTES : GM_PAGE_SIZE;
        gm_arenas.saved = gm_arenas.h;
        uintptr_t v = (uintptr_t)gm_arena_reserve(tried, align);
        if (v) {
            *got = tried;
            return v;
        }
        /* A request too big for every hint dropped them all on the way:
         * they are still good for requests that fit. */
        gm_arenas.h = gm_arenas.saved;
    }
    return 0;
}

/* Give every arena [v, v + n) touches a record (its flat table slot, or a
 * new one) and an index entry, unless an earlier reservation in the same
 * arena gave it one: reservations may share an arena. All metadata comes
 * in one allocation, so that it is all there or nothing is counted: the
 * records (unless they are in the flat table), then the L2 pages. Lock
 * held; -1 with nothing changed if it cannot be committed. */
static int gm_arena_index_region(uintptr_t v, size_t n)
{
    size_t first = v >> GM_ARENA_SHIFT, narenas = ((v + n - 1) >> GM_ARENA_SHIFT) - first + 1;
    size_t l1_first = first >> GM_ARENA_L2_BITS, l1_last = (first + narenas - 1) >> GM_ARENA_L2_BITS;
    size_t nl2 = 0, fresh = 0;
    for (size_t i = l1_first; i <= l1_last; i++)
        nl2 += atomic_load_explicit(&gm_arena_l1[i], memory_order_relaxed) == NULL;
    for (size_t i = 0; i < narenas; i++) fresh += gm_arena_of((first + i) << GM_ARENA_SHIFT) == NULL;
    size_t flat_committed = gm_flat_committed;
    struct gm_arena *flat = gm_flat_records(v, n);
    size_t records = flat ? 0 : fresh * sizeof(struct gm_arena);
    size_t meta_bytes = records + nl2 * GM_ARENA_L2_PAGE;
    uint8_t *meta = meta_bytes ? gm_persistent_alloc(meta_bytes, 64, &gm_meta.arenas) : NULL;
    if (meta_bytes && !meta) {
        if (flat) gm_flat_unrecord(flat_committed);
        return -1;
    }
    gm_stat_add(&gm_meta.arenas, -(int64_t)(nl2 * GM_ARENA_L2_PAGE));
    gm_stat_add(&gm_meta.arena_index, (int64_t)(nl2 * GM_ARENA_L2_PAGE));

    /* Publish: an L2 page (all NULL) before any entry in it, each record
     * (zero, fresh memory) with a release store. */
    uint8_t *record = meta, *l2page = meta ? meta + records : NULL;
    for (size_t i = 0; i < narenas; i++) {
        size_t ai = first + i;
        struct gm_arena *_Atomic *l2 =
            atomic_load_explicit(&gm_arena_l1[ai >> GM_ARENA_L2_BITS], memory_order_relaxed);
        if (!l2) {
            l2 = (struct gm_arena *_Atomic *)l2page;
            l2page += GM_ARENA_L2_PAGE;
            atomic_store_explicit(&gm_arena_l1[ai >> GM_ARENA_L2_BITS], l2, memory_order_release);
        }
        struct gm_arena *_Atomic *slot = &l2[ai & (GM_ARENA_L2_ENTRIES - 1)];
        struct gm_arena *had = atomic_load_explicit(slot, memory_order_relaxed);
        if (had) { /* shared with an earlier reservation */
            if (flat && had != &flat[i]) gm_fatal("arena record is not its flat table slot", NULL);
            continue;
        }
        struct gm_arena *a = flat ? &flat[i] : (struct gm_arena *)record;
        if (!flat) record += sizeof(struct gm_arena);
        atomic_store_explicit(slot, a, memory_order_release);
    }
    if (flat) atomic_store_explicit(&gm_flat_bytes, v + n - GM_FLAT_BASE, memory_order_release);
    return 0;
}

void *gm_arena_alloc(size_t n, size_t *size)
{
    int saved_errno = errno;
    if (n == 0) n = 1;
    if (n > GM_ADDR_LIMIT) {
        errno = ENOMEM;
        return NULL;
    }
    n = gm_align_up(n, GM_PAGE_SIZE);

    pthread_mutex_lock(&gm_arenas.lock);
    if (!gm_arenas.initialized) gm_arena_hints_init();
    size_t got = 0;
    uintptr_t v = gm_arena_reserve_sized(n, &got);
    if (!v) goto fail;
    gm_sys_nohuge((void *)v, got);
    if (gm_arena_index_region(v, got) != 0) {
        gm_sys_free((void *)v, got, 0, NULL);
        gm_arenas.h = gm_arenas.saved; /* as if never tried */
        goto fail;
    }
    pthread_mutex_unlock(&gm_arenas.lock);
    *size = got;
    errno = saved_errno;
    return (void *)v;

fail:
    pthread_mutex_unlock(&gm_arenas.lock);
    errno = ENOMEM;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* fork                                                                     */
/* ------------------------------------------------------------------------ */
/* In the order callers nest them: gm_arenas.lock, then the persistent
 * allocator's. The child is the only thread left and holds them all: it
 * reinitializes them rather than unlocking a mutex some other thread of the
 * parent locked. */

void gm_arena_fork_prepare(void)
{
    pthread_mutex_lock(&gm_arenas.lock);
    pthread_mutex_lock(&gm_persistent.lock);
}

void gm_arena_fork_parent(void)
{
    pthread_mutex_unlock(&gm_persistent.lock);
    pthread_mutex_unlock(&gm_arenas.lock);
}

void gm_arena_fork_child(void)
{
    pthread_mutex_init(&gm_persistent.lock, NULL);
    pthread_mutex_init(&gm_arenas.lock, NULL);
}
