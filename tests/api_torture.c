/*
 * api_torture.c — issue 6's torture test: everything at once, bounded in
 * time, and nothing lost.
 *
 * The test re-runs itself (test_subcase) with GOMALLOC_STRICT=1 and
 * GOMALLOC_DECAY_MS=20 (the background scavenger, which starts by itself,
 * busy all the time) under RLIMIT_DATA = VmData of a warmed-up baseline +
 * LIMIT_FACTOR_PCT% of LIVE_MAX + LIMIT_EXTRA. The parent computes that from
 * its own warm-up and sets it before exec; the child, after the same
 * warm-up, sets it again from its own baseline, so that the slack is exact.
 *
 * In the child, for CHURN_MS:
 *   - 64 worker slots. A worker lives 5-300 ms, then exits and the main
 *     thread starts a new one in its slot, so threads exit at random points
 *     with their caches full. A slot's objects outlive its thread: the next
 *     one frees them.
 *   - Workers allocate (16 B-32 KiB mostly, 1.2% 64 KiB-2 MiB; malloc,
 *     calloc checked zero, aligned_alloc and posix_memalign with alignments
 *     of 16 B-64 KiB), reallocate (growth and shrinking), keep objects or
 *     pass them through 8 shared rings, where another thread takes them and
 *     frees them (remote frees) or keeps them. Every object carries its size
 *     and id and a pattern seeded by its id, verified before every free and
 *     realloc. The live budget: at most LIVE_MAX (64 MiB) requested bytes
 *     (an aligned object counts its alignment if that is larger, the least
 *     any allocator can spend on it), and the workers keep it full, so the
 *     limit is always close.
 *   - An allocation may fail only with NULL + ENOMEM, at most one in
 *     ENOMEM_RATE, and each with VmData within the request + ENOMEM_SPARE of
 *     the limit; the run goes on.
 *   - Every 50-250 ms a worker forks while the others run. The child (only
 *     the forking thread exists there) verifies every object of its slot,
 *     frees half of them, allocates and frees a few more, and exits 0 only
 *     if every pattern held and gm_check() == 0 (which, in a child of a
 *     multi-threaded process, checks pages and structure, not the other
 *     threads' counters: those stopped mid-operation). The parent waits up to 10 s:
 *     a child that has not exited then is a hang (killed).
 *   - A watcher thread reads gm_stats_get every 3 ms (as the CPUs allow):
 *     heap_released <= heap_idle, heap_inuse <= heap_sys, committed <=
 *     RLIMIT_DATA; every 20th sample gm_scavenge(), every 50th malloc_trim(0).
 * At the end: every worker joined (an idle thread started first stays, so
 * the program is still multi-threaded); heap_alloc - baseline = the usable size
 * of the objects still held; the rings drained and every object freed (each
 * pattern verified), the budget back to 0; within 2 s and without a call to
 * the allocator, VmRSS within RSS_SLACK of its baseline and (strict-commit
 * mode) VmData within DATA_SLACK; then gm_check() == 0, heap_alloc back to
 * its baseline (+256 KiB), heap_inuse within INUSE_SLACK (caches), mallocs
 * and frees balanced. One summary line.
 *
 * The limit. Each of 64 threads holds a partly used span of every class up
 * to 4 KiB that it uses (classes above are shared, small.c), a page cache
 * and a span cache, so the heap runs above the live budget; without a
 * limit committed peaks at +115-140 MiB here (about 2 x LIVE_MAX). ENOMEMs
 * in 15 s (6-9 million allocations) by factor: 1.3: some 5,000 (one in
 * 1,200); 1.5: 820-1,200 (one in 7,000-9,000, over ENOMEM_RATE); 2.0 and
 * 2.5: none (2.0 in 8 runs of 8, committed peaking at +129-141 MiB of
 * +144). So 2.25, for room, where before the shared classes it took 4.0
 * (each thread then held a span of every class up to 32 KiB: heap_inuse
 * at 3-4 x heap_alloc).
 *
 * Knobs, for diagnosis: TORTURE_SEED=N (printed first; the choices repeat,
 * the interleaving does not), TORTURE_MS (the churn), TORTURE_LIMIT_PCT
 * (the factor), TORTURE_TRACE=N (a line of figures every N watcher
 * samples), TORTURE_HANG_WAIT=S (a hung fork child is killed S seconds
 * later, time to attach gdb), TORTURE_QUIET_FORK=1 (the other threads are
 * held outside the allocator while a worker forks, and gm_check() runs in
 * the parent too: a child that fails only without it has inherited
 * operations half done).
 */
#define _GNU_SOURCE
#include "scav.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define SLOTS 64
#define SLOT_OBJS 48
#define NRINGS 8
#define LIVE_MAX (64 * MiB)
#define LIMIT_FACTOR_PCT 225 /* RLIMIT_DATA: baseline + 2.25 x LIVE_MAX + LIMIT_EXTRA (see above) */
#define LIMIT_EXTRA (16 * MiB)
#define CHURN_MS 15000
#define STACK_SIZE (256 * KiB)
#define LIFE_MIN_MS 5
#define LIFE_SPAN_MS 295
#define FORK_GAP_MIN_MS 50
#define FORK_GAP_SPAN_MS 200
#define FORK_TIMEOUT_MS 10000
#define WATCH_MS 3
#define INUSE_SLACK (4 * MiB)
#define RSS_SLACK (16 * MiB)
#define DATA_SLACK (16 * MiB)
#define ENOMEM_RATE 10000         /* at most one allocation in this many fails */
#define ENOMEM_SPARE (8 * MiB)    /* VmData under the limit, less the request, at an ENOMEM */

/* An object: its header, then bytes filled with test_fill(id). */
struct obj {
    uint32_t size;   /* requested bytes, header included */
    uint32_t charge; /* what it counts in the live budget */
    uint64_t id;     /* worker serial << 32 | its count */
};
#define HDR sizeof(struct obj)

/* ------------------------------------------------------------------------ */
/* Shared state                                                             */
/* ------------------------------------------------------------------------ */

struct slot {
    pthread_t th;
    atomic_int state; /* SLOT_* */
    struct obj *own[SLOT_OBJS];
    size_t nown;
    uint64_t rnd; /* carried from one worker to the next */
};
enum { SLOT_EMPTY, SLOT_RUNNING, SLOT_DONE };

static struct slot slots[SLOTS];
static struct test_ring rings[NRINGS];
static rlim_t limit;
static atomic_int stop;
static atomic_llong live; /* charges of every object not freed */
static atomic_uint serials;
static pthread_attr_t attr;

/* Totals, added by each worker as it exits. */
static atomic_llong n_enomem_now; /* as they come */
static atomic_llong n_ops, n_allocs, n_frees, n_remote, n_reallocs, n_enomem, n_threads, n_create_failed;
/* Broken promises: a failure other than ENOMEM, a lost pattern, misalignment,
 * calloc garbage. The first few are described on stderr. */
static atomic_long bad;
#define BAD(...)                                                           \
    do {                                                                   \
        if (atomic_fetch_add(&bad, 1) < 12) fprintf(stderr, __VA_ARGS__); \
    } while (0)

/* Forks. */
static atomic_int fork_busy;
static atomic_llong next_fork_ns;
static atomic_long n_forks, n_fork_failed, n_fork_bad, n_fork_hung;
static bool in_fork_child; /* no locks there: their holders are gone */
static atomic_long n_quiet_check_bad; /* TORTURE_QUIET_FORK: gm_check in the parent */

/* ENOMEMs: the least and most VmData had under the limit when one came
 * (read just after: other threads may have moved it a little). */
static pthread_mutex_t enomem_lock = PTHREAD_MUTEX_INITIALIZER;
static long long enomem_min_room = -1, enomem_max_room = -1, enomem_max_room_live, enomem_max_spare = LLONG_MIN;
static size_t enomem_max_room_size;

/* ------------------------------------------------------------------------ */
/* The gate (TORTURE_QUIET_FORK): who may be inside the allocator           */
/* ------------------------------------------------------------------------ */

/* Every thread of the test counts in `inside` while it may call the
 * allocator: the main thread while it starts workers, the watcher while it
 * samples, a worker from its start until the main thread has joined it (so
 * that the release of its thread cache as it exits is covered; joining does
 * not allocate here: glibc's stack cache holds every stack). A forker closes
 * the gate and waits for the count to drop to zero (it gives up when the run
 * stops). Without TORTURE_QUIET_FORK all of this is skipped. */
static bool quiet_fork;
static atomic_int inside, gate;

/* Counts in unless a forker has closed the gate. */
static bool gate_try_enter(void)
{
    if (!quiet_fork) return true;
    atomic_fetch_add(&inside, 1);
    if (!atomic_load(&gate)) return true;
    atomic_fetch_sub(&inside, 1);
    return false;
}

static void gate_enter(void)
{
    while (!gate_try_enter()) test_sleep_ms(1);
}

static void gate_leave(void)
{
    if (quiet_fork) atomic_fetch_sub(&inside, 1);
}

/* The forker, inside: closes the gate and waits until it is alone; false
 * (the gate open again) if the run stops meanwhile. */
static bool gate_close(void)
{
    if (!quiet_fork) return true;
    atomic_store(&gate, 1);
    gate_leave();
    while (atomic_load(&inside) != 0) {
        if (atomic_load(&stop)) {
            atomic_store(&gate, 0);
            gate_enter();
            return false;
        }
        sched_yield();
    }
    return true;
}

static void gate_open(void)
{
    if (!quiet_fork) return;
    atomic_store(&gate, 0);
    gate_enter();
}

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */
/* ------------------------------------------------------------------------ */

static size_t pick_size(uint64_t *r)
{
    if (test_rnd(r) % 1000 < 12) return scav_octaves(r, 64 * KiB, 2 * MiB);
    return scav_octaves(r, HDR, 32 * KiB);
}

/* 16-256 B mostly, a page or less a fifth of the time, up to 64 KiB. */
static size_t pick_align(uint64_t x)
{
    unsigned k = (unsigned)(x % 20);
    if (k < 12) return (size_t)16 << k % 5;
    if (k < 16) return (size_t)512 << (k - 12);
    return (size_t)8192 << (k - 16);
}

static bool reserve(size_t n)
{
    if (in_fork_child) return true; /* a process of its own */
    if (atomic_fetch_add(&live, (long long)n) + (long long)n <= (long long)LIVE_MAX) return true;
    atomic_fetch_sub(&live, (long long)n);
    return false;
}

static void unreserve(size_t n)
{
    if (!in_fork_child) atomic_fetch_sub(&live, (long long)n);
}

/* Whether o still holds its header and pattern; describes it if not. */
static bool obj_ok(const struct obj *o, const char *when)
{
    size_t usable = malloc_usable_size((void *)o);
    if (o->size < HDR || o->size > usable || o->charge < o->size) {
        BAD("%s: object %p: header says %u bytes, charge %u (id %#llx), usable size %zu\n", when, (void *)o,
            o->size, o->charge, (unsigned long long)o->id, usable);
        return false;
    }
    if (test_verify(o + 1, o->size - HDR, o->id)) return true;
    const unsigned char *b = (const unsigned char *)(o + 1);
    unsigned char want[8];
    size_t i = 0, n = 8;
    for (;; i += 8) { /* the first word (or tail) that differs */
        n = o->size - HDR - i < 8 ? o->size - HDR - i : 8;
        uint64_t x = test_pattern_start(o->id) + (i / 8) * TEST_PATTERN_STEP;
        memcpy(want, &x, 8);
        if (memcmp(b + i, want, n) != 0) break;
    }
    char got[17], exp[17];
    for (size_t k = 0; k < n; k++) {
        snprintf(got + 2 * k, 3, "%02x", b[i + k]);
        snprintf(exp + 2 * k, 3, "%02x", want[k]);
    }
    BAD("%s: object %p (%u bytes, id %#llx, usable %zu) lost its pattern at byte %zu: %s, expected %s\n", when,
        (void *)o, o->size, (unsigned long long)o->id, usable, HDR + i, got, exp);
    return false;
}

static void note_enomem(size_t size)
{
    if (in_fork_child) return;
    long long room = (long long)limit - test_vm_data();
    pthread_mutex_lock(&enomem_lock);
    if (enomem_min_room < 0 || room < enomem_min_room) enomem_min_room = room;
    if (room - (long long)size > enomem_max_spare) enomem_max_spare = room - (long long)size;
    if (room > enomem_max_room) {
        enomem_max_room = room;
        enomem_max_room_size = size;
        enomem_max_room_live = atomic_load(&live);
    }
    pthread_mutex_unlock(&enomem_lock);
}

struct worker {
    struct slot *slot;
    unsigned serial;
    uint64_t count, *r;
    long long ops, allocs, frees, remote, reallocs, enomem;
};

/* A failed allocation: ENOMEM is allowed (counted), anything else is not. */
static void alloc_failed(struct worker *w, const char *fn, size_t size, size_t align, int err)
{
    if (err == ENOMEM) {
        w->enomem++;
        atomic_fetch_add_explicit(&n_enomem_now, 1, memory_order_relaxed);
        note_enomem(size);
    } else {
        BAD("%s(%zu, align %zu) failed with errno %d\n", fn, size, align, err);
    }
}

/* A new object of a random size and kind, or NULL (budget, ENOMEM). */
static struct obj *obj_new(struct worker *w)
{
    size_t size = pick_size(w->r), align = 0;
    uint64_t x = test_rnd(w->r);
    unsigned kind = (unsigned)(x % 20);
    if (kind >= 3 && kind < 9) align = pick_align(x >> 8);
    size_t charge = align > size ? align : size;
    if (!reserve(charge)) return NULL;
    void *p = NULL;
    int err = 0;
    const char *fn = "malloc";
    errno = 0;
    if (kind < 3) {
        fn = "calloc";
        p = x & 32 && size % 16 == 0 ? calloc(size / 16, 16) : calloc(1, size);
        err = errno;
        for (size_t i = 0; p && i < size; i++)
            if (((unsigned char *)p)[i]) {
                BAD("calloc(%zu) = %p: byte %zu is %#x\n", size, p, i, ((unsigned char *)p)[i]);
                break;
            }
    } else if (kind < 6) {
        fn = "aligned_alloc";
        p = aligned_alloc(align, size);
        err = errno;
    } else if (kind < 9) {
        fn = "posix_memalign";
        err = posix_memalign(&p, align, size);
        if (err) p = NULL;
    } else {
        p = malloc(size);
        err = errno;
    }
    if (!p) {
        unreserve(charge);
        alloc_failed(w, fn, size, align, err);
        return NULL;
    }
    if ((uintptr_t)p % (align > 16 ? align : 16)) BAD("%s(%zu, align %zu) = %p: misaligned\n", fn, size, align, p);
    struct obj *o = p;
    o->size = (uint32_t)size;
    o->charge = (uint32_t)charge;
    o->id = (uint64_t)w->serial << 32 | w->count++;
    test_fill(o + 1, size - HDR, o->id);
    w->allocs++;
    return o;
}

/* Verifies and frees o; remote if another worker allocated it. */
static void obj_free(struct worker *w, struct obj *o, const char *when)
{
    obj_ok(o, when);
    size_t charge = o->charge;
    if (w) {
        w->frees++;
        w->remote += (o->id >> 32) != w->serial;
    }
    free(o);
    unreserve(charge);
}

/* Grows or shrinks o; returns where it is now. A failed realloc must leave
 * it as it was. */
static struct obj *obj_realloc(struct worker *w, struct obj *o)
{
    if (!obj_ok(o, "before realloc")) return o;
    size_t old = o->size, charge = o->charge, n;
    uint64_t x = test_rnd(w->r);
    if (x & 1) n = old + old * (1 + (x >> 8) % 6) / 2; /* x1.5 .. x4 */
    else n = old / (2 + (x >> 8) % 7);                 /* /2 .. /8 */
    if (n < HDR) n = HDR;
    if (n > 4 * MiB) n = 4 * MiB;
    if (n > charge && !reserve(n - charge)) return o;
    errno = 0;
    struct obj *q = realloc(o, n);
    int err = errno;
    if (!q) {
        if (n > charge) unreserve(n - charge);
        alloc_failed(w, "realloc", n, 0, err);
        obj_ok(o, "after a failed realloc");
        return o;
    }
    w->reallocs++;
    q->size = (uint32_t)(n < old ? n : old);
    obj_ok(q, "after realloc (the prefix)");
    q->size = q->charge = (uint32_t)n; /* realloc keeps no alignment */
    if (n > old) test_fill(q + 1, n - HDR, q->id);
    if (n < charge) unreserve(charge - n);
    return q;
}

/* ------------------------------------------------------------------------ */
/* Fork                                                                     */
/* ------------------------------------------------------------------------ */

/* In the child: this thread alone. Exit status: 1 a pattern was lost, 2
 * gm_check failed, 4 an allocation failed otherwise than with ENOMEM. */
static _Noreturn void fork_child(struct worker *w)
{
    in_fork_child = true;
    long bad0 = atomic_load(&bad);
    int st = 0;
    struct slot *s = w->slot;
    for (size_t i = 0; i < s->nown; i++)
        if (!obj_ok(s->own[i], "fork child, inherited")) st |= 1;
    for (size_t i = 0; i < s->nown; i += 2) free(s->own[i]);
    struct obj *mine[32];
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        if ((mine[n] = obj_new(w))) n++;
    for (size_t i = 0; i < n; i++) {
        if (!obj_ok(mine[i], "fork child, its own")) st |= 1;
        free(mine[i]);
    }
    if (atomic_load(&bad) != bad0 && !(st & 1)) st |= 4;
    if (gm_check() != 0) st |= 2;
    _exit(st);
}

/* Waits for the child; false if it hung (then it is killed). */
static bool fork_wait(struct worker *w, pid_t pid, long long ops, int *st)
{
    long long t0 = test_now_ns();
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return true;
        if (r < 0 && errno != EINTR) {
            BAD("waitpid(%d): errno %d\n", (int)pid, errno);
            return true;
        }
        if (test_now_ns() - t0 > FORK_TIMEOUT_MS * 1000000LL) break;
        test_sleep_ms(1);
    }
    fprintf(stderr,
            "fork child %d (forked by worker %u at its op %lld) has not exited after %d s: a hang; "
            "gdb -batch -ex 'thread apply all bt' -p %d\n",
            (int)pid, w->serial, ops, FORK_TIMEOUT_MS / 1000, (int)pid);
    const char *wait_s = getenv("TORTURE_HANG_WAIT");
    if (wait_s) test_sleep_ms(1000 * atol(wait_s));
    kill(pid, SIGKILL);
    waitpid(pid, st, 0);
    return false;
}

static void fork_now(struct worker *w, long long ops)
{
    if (!gate_close()) return;
    if (quiet_fork && gm_check() != 0) { /* nothing in flight here either */
        atomic_fetch_add(&n_quiet_check_bad, 1);
        fprintf(stderr, "gm_check failed in the parent with every worker held, before a fork by worker %u\n",
                w->serial);
    }
    pid_t pid = fork();
    if (pid == 0) fork_child(w);
    gate_open();
    if (pid < 0) {
        atomic_fetch_add(&n_fork_failed, 1);
        return;
    }
    atomic_fetch_add(&n_forks, 1);
    int st = 0;
    if (!fork_wait(w, pid, ops, &st)) {
        atomic_fetch_add(&n_fork_hung, 1);
        return;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return;
    atomic_fetch_add(&n_fork_bad, 1);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    fprintf(stderr, "fork child %d (forked by worker %u at its op %lld): %s %d%s%s%s\n", (int)pid, w->serial, ops,
            WIFEXITED(st) ? "exit status" : "killed by signal", WIFEXITED(st) ? code : WTERMSIG(st),
            code & 1 ? ", a pattern lost" : "", code & 2 ? ", gm_check failed" : "",
            code & 4 ? ", an allocation failed" : "");
}

/* Forks if it is time and no other worker is forking. */
static void maybe_fork(struct worker *w, long long ops)
{
    if (test_now_ns() < atomic_load(&next_fork_ns)) return;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&fork_busy, &idle, 1)) return;
    fork_now(w, ops);
    long long gap = FORK_GAP_MIN_MS + (long long)(test_rnd(w->r) % FORK_GAP_SPAN_MS);
    atomic_store(&next_fork_ns, test_now_ns() + gap * 1000000LL);
    atomic_store(&fork_busy, 0);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

/* Keeps o in the slot, or passes it to a ring; what a full ring pushes out
 * is freed. */
static void place(struct worker *w, struct obj *o, bool keep)
{
    struct slot *s = w->slot;
    if (keep && s->nown < SLOT_OBJS) {
        s->own[s->nown++] = o;
        return;
    }
    struct obj *out = test_ring_put(&rings[test_rnd(w->r) % NRINGS], o);
    if (out) obj_free(w, out, "pushed out of a ring");
}

/* Frees one of the slot's objects, or one from a ring. */
static void free_one(struct worker *w, bool own)
{
    struct slot *s = w->slot;
    if (own && s->nown) {
        size_t k = test_rnd(w->r) % s->nown;
        obj_free(w, s->own[k], "before free (own)");
        s->own[k] = s->own[--s->nown];
        return;
    }
    struct obj *o = test_ring_take(&rings[test_rnd(w->r) % NRINGS]);
    if (o) obj_free(w, o, "before free (from a ring)");
}

static void step(struct worker *w)
{
    struct slot *s = w->slot;
    unsigned r = (unsigned)(test_rnd(w->r) % 100);
    if (r < 40) { /* allocate; over budget, free instead */
        struct obj *o = obj_new(w);
        if (o) place(w, o, r < 20);
        else free_one(w, r & 1);
    } else if (r < 60) {
        free_one(w, false);
    } else if (r < 65) { /* adopt one from a ring */
        struct obj *o = test_ring_take(&rings[test_rnd(w->r) % NRINGS]);
        if (o) place(w, o, true);
    } else if (r < 80) {
        free_one(w, true);
    } else if (r < 85) { /* pass one of ours on */
        if (!s->nown) return;
        size_t k = test_rnd(w->r) % s->nown;
        struct obj *o = s->own[k];
        s->own[k] = s->own[--s->nown];
        place(w, o, false);
    } else if (r < 95) {
        if (!s->nown) return;
        size_t k = test_rnd(w->r) % s->nown;
        s->own[k] = obj_realloc(w, s->own[k]);
    } else if (s->nown) {
        obj_ok(s->own[test_rnd(w->r) % s->nown], "checked in place");
    }
}

static void *worker_main(void *arg)
{
    struct slot *s = arg;
    gate_enter(); /* left by the main thread, once it has joined this one */
    struct worker w = {.slot = s, .serial = atomic_fetch_add(&serials, 1) + 1, .r = &s->rnd};
    long long end = test_now_ns() + (LIFE_MIN_MS + (long long)(test_rnd(w.r) % LIFE_SPAN_MS)) * 1000000LL;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        step(&w);
        if (++w.ops % 32) continue;
        if (test_now_ns() >= end) break;
        if (test_rnd(w.r) % 16 == 0) maybe_fork(&w, w.ops);
        gate_leave();
        gate_enter();
    }
    if (test_rnd(w.r) % 4 == 0) /* sometimes leave the objects to the others */
        while (s->nown) place(&w, s->own[--s->nown], false);
    atomic_fetch_add(&n_ops, w.ops);
    atomic_fetch_add(&n_allocs, w.allocs);
    atomic_fetch_add(&n_frees, w.frees);
    atomic_fetch_add(&n_remote, w.remote);
    atomic_fetch_add(&n_reallocs, w.reallocs);
    atomic_fetch_add(&n_enomem, w.enomem);
    atomic_store(&s->state, SLOT_DONE);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The watcher                                                              */
/* ------------------------------------------------------------------------ */

struct watch {
    long samples, scavenges, trims;
    long bad_released, bad_inuse, bad_committed;
    struct gm_stats first_bad;
    struct gm_stats peak; /* the sample with the most committed */
    long long peak_live, max_data;
};
static struct watch watch;
static long trace_every; /* TORTURE_TRACE=N: a line on stderr every N samples */
static long long trace_t0, base_data;

static void *watcher_main(void *arg)
{
    struct watch *m = &watch;
    struct gm_stats st;
    while (!atomic_load(&stop)) {
        gate_enter();
        gm_stats_get(&st);
        long long data = test_vm_data();
        bool b1 = st.heap_released > st.heap_idle, b2 = st.heap_inuse > st.heap_sys, b3 = st.committed > limit;
        if ((b1 || b2 || b3) && !m->bad_released && !m->bad_inuse && !m->bad_committed) m->first_bad = st;
        m->bad_released += b1;
        m->bad_inuse += b2;
        m->bad_committed += b3;
        if (st.committed > m->peak.committed) {
            m->peak = st;
            m->peak_live = atomic_load(&live);
        }
        if (data > m->max_data) m->max_data = data;
        if (trace_every && m->samples % trace_every == 0)
            fprintf(stderr, "trace: %5lld ms budget %5.1f alloc %5.1f inuse %5.1f idle %5.1f released %5.1f "
                    "committed %5.1f VmData %+6.1f MiB, %lld ENOMEM\n", (test_now_ns() - trace_t0) / 1000000,
                    mib(atomic_load(&live)), mib((long long)st.heap_alloc), mib((long long)st.heap_inuse),
                    mib((long long)st.heap_idle), mib((long long)st.heap_released), mib((long long)st.committed),
                    mib(data - base_data), atomic_load(&n_enomem_now));
        if (++m->samples % 20 == 0) {
            gm_scavenge();
            m->scavenges++;
        }
        if (m->samples % 50 == 0) {
            malloc_trim(0);
            m->trims++;
        }
        gate_leave();
        test_sleep_ms(WATCH_MS);
    }
    return arg;
}

/* ------------------------------------------------------------------------ */
/* Warm-up and the limit                                                    */
/* ------------------------------------------------------------------------ */

static atomic_int warm_go;

static void *warm_thread(void *arg)
{
    volatile char stack[32 * 1024]; /* deeper than the workers go */
    memset((char *)stack, 1, sizeof stack);
    while (!atomic_load(&warm_go)) test_sleep_ms(1);
    void *p[32];
    for (int i = 0; i < 32; i++) p[i] = malloc((size_t)16 << (i % 12));
    for (int i = 0; i < 32; i++) free(p[i]);
    return arg;
}

/* What the run will have before it starts: the library and its scavenger,
 * a thread cache and a cached stack for each thread there will be at once
 * (the workers and the watcher), the test's tables touched. */
static bool warm_up(void)
{
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < NRINGS; i++) {
        memset(&rings[i], 0, sizeof rings[i]);
        pthread_mutex_init(&rings[i].lock, NULL);
    }
    /* A thread of the program that outlives the workers: the program stays
     * multi-threaded, so the background scavenger gives everything back at
     * the end without a call (a single-threaded program gets it back at its
     * calls: api_scavenge's *_single cases). */
    scav_idle_thread();
    scav_warmup();
    pthread_t th[SLOTS + 1];
    int made = 0;
    for (; made < SLOTS + 1; made++)
        if (pthread_create(&th[made], &attr, warm_thread, NULL) != 0) break;
    atomic_store(&warm_go, 1);
    for (int i = 0; i < made; i++) pthread_join(th[i], NULL);
    CHECK_EQ(made, SLOTS + 1);
    scav_warmup(); /* memory worth returning: the scavenger starts */
    test_sleep_ms(100);
    return made == SLOTS + 1;
}

static long limit_pct = LIMIT_FACTOR_PCT; /* TORTURE_LIMIT_PCT overrides */

static rlim_t limit_from(long long data)
{
    return (rlim_t)data + (rlim_t)(LIVE_MAX / 100 * (size_t)limit_pct) + LIMIT_EXTRA;
}

static long long env_num(const char *name, long long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoll(v, NULL, 0) : dflt;
}

/* ------------------------------------------------------------------------ */
/* The run (in the re-executed child)                                       */
/* ------------------------------------------------------------------------ */

/* Joins the slot's worker if it is done (and lets its count in the gate
 * go). */
static void reap(struct slot *s)
{
    if (atomic_load(&s->state) != SLOT_DONE) return;
    pthread_join(s->th, NULL);
    gate_leave();
    atomic_store(&s->state, SLOT_EMPTY);
}

/* Starts a worker in the slot if it is empty. */
static void start(struct slot *s)
{
    if (atomic_load(&s->state) != SLOT_EMPTY) return;
    atomic_store(&s->state, SLOT_RUNNING);
    if (pthread_create(&s->th, &attr, worker_main, s) == 0) {
        atomic_fetch_add(&n_threads, 1);
    } else {
        atomic_store(&s->state, SLOT_EMPTY);
        atomic_fetch_add(&n_create_failed, 1);
    }
}

/* The churn: workers started and joined until the time is up. */
static double run(long long churn_ms, uint64_t seed)
{
    for (int i = 0; i < SLOTS; i++) slots[i].rnd = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 7919 + 1;
    atomic_store(&next_fork_ns, test_now_ns() + FORK_GAP_MIN_MS * 1000000LL);
    pthread_t wt;
    CHECK_EQ(pthread_create(&wt, &attr, watcher_main, NULL), 0);
    long long t0 = test_now_ns(), end = t0 + churn_ms * 1000000LL;
    while (test_now_ns() < end) {
        for (int i = 0; i < SLOTS; i++) reap(&slots[i]);
        if (gate_try_enter()) { /* never wait: a forker may be waiting for a reap */
            for (int i = 0; i < SLOTS; i++) start(&slots[i]);
            gate_leave();
        }
        test_sleep_ms(1);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < SLOTS; i++) {
        while (atomic_load(&slots[i].state) == SLOT_RUNNING) test_sleep_ms(1);
        reap(&slots[i]);
    }
    pthread_join(wt, NULL);
    return (double)(test_now_ns() - t0) / 1e9;
}

/* The usable bytes of the objects still held (all threads joined). */
static long long held_usable(long long *charges)
{
    long long u = 0;
    *charges = 0;
    for (int i = 0; i < NRINGS; i++)
        for (size_t k = 0; k < rings[i].count; k++) {
            struct obj *o = rings[i].slot[(rings[i].head + k) % TEST_RING];
            u += (long long)malloc_usable_size(o);
            *charges += o->charge;
        }
    for (int i = 0; i < SLOTS; i++)
        for (size_t k = 0; k < slots[i].nown; k++) {
            u += (long long)malloc_usable_size(slots[i].own[k]);
            *charges += slots[i].own[k]->charge;
        }
    return u;
}

/* Drains the rings and the slots, checking every object; how many. */
static long long free_all(void)
{
    long long left = 0;
    for (int i = 0; i < NRINGS; i++)
        for (struct obj *o; (o = test_ring_take(&rings[i])); left++) obj_free(NULL, o, "drained from a ring");
    for (int i = 0; i < SLOTS; i++)
        for (; slots[i].nown; left++) obj_free(NULL, slots[i].own[--slots[i].nown], "freed at the end");
    return left;
}

static void report_watch(const struct watch *m, const struct scav_base *b)
{
    if (m->bad_released || m->bad_inuse || m->bad_committed)
        fprintf(stderr,
                "watcher: %ld samples with heap_released > heap_idle, %ld with heap_inuse > heap_sys, %ld with "
                "committed > the limit; the first: released %llu, idle %llu, inuse %llu, sys %llu, committed %llu\n",
                m->bad_released, m->bad_inuse, m->bad_committed, (unsigned long long)m->first_bad.heap_released,
                (unsigned long long)m->first_bad.heap_idle, (unsigned long long)m->first_bad.heap_inuse,
                (unsigned long long)m->first_bad.heap_sys, (unsigned long long)m->first_bad.committed);
    const struct gm_stats *p = &m->peak;
    uint64_t meta = p->meta_arena_index + p->meta_arenas + p->meta_pagealloc + p->meta_spans + p->meta_tcaches +
                    p->meta_other;
    printf("torture: at the peak, committed %.1f MiB (%+.1f MiB): budget %.1f MiB, heap_alloc %.1f MiB, heap_inuse "
           "%.1f MiB, heap_idle %.1f MiB (released %.1f MiB), decommitted %.1f MiB, metadata %.1f MiB (tcaches "
           "%.1f MiB)\n",
           mib((long long)p->committed), mib((long long)p->committed - (long long)b->st.committed), mib(m->peak_live),
           mib((long long)p->heap_alloc), mib((long long)p->heap_inuse), mib((long long)p->heap_idle),
           mib((long long)p->heap_released), mib((long long)p->heap_decommitted), mib((long long)meta),
           mib((long long)p->meta_tcaches));
}

static int case_torture(void)
{
    uint64_t seed = (uint64_t)env_num("TORTURE_SEED", 1);
    long long churn_ms = env_num("TORTURE_MS", CHURN_MS);
    quiet_fork = env_num("TORTURE_QUIET_FORK", 0) != 0;
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_DATA, &rl), 0);
    rlim_t parents = rl.rlim_cur;
    if (!warm_up()) return test_done("torture");
    struct scav_base b;
    scav_baseline(&b);
    limit = limit_from(b.data);
    rl.rlim_cur = limit;
    CHECK_EQ(setrlimit(RLIMIT_DATA, &rl), 0);
    CHECK(b.st.strict_commit == 1);
    printf("torture: seed %llu, %lld ms%s; VmData baseline %.1f MiB, VmRSS %.1f MiB, %ld threads; RLIMIT_DATA "
           "%.1f MiB = baseline + %.2f x %.0f MiB + %.0f MiB (the parent's estimate: %.1f MiB)\n",
           (unsigned long long)seed, churn_ms, quiet_fork ? ", quiet forks" : "", mib(b.data), mib(b.rss), b.threads,
           mib((long long)limit), limit_pct / 100.0, mib(LIVE_MAX), mib(LIMIT_EXTRA), mib((long long)parents));

    trace_every = env_num("TORTURE_TRACE", 0);
    trace_t0 = test_now_ns();
    base_data = b.data;
    double secs = run(churn_ms, seed);

    /* heap_alloc is the usable size of what is held. */
    long long charges, usable = held_usable(&charges);
    struct gm_stats h;
    gm_stats_get(&h);
    long long held = (long long)h.heap_alloc - (long long)b.st.heap_alloc;
    printf("torture: held at the end: budget %.1f MiB, charges %.1f MiB, usable %.1f MiB; heap_alloc %+.1f MiB\n",
           mib(atomic_load(&live)), mib(charges), mib(usable), mib(held));
    CHECK_EQ(charges, atomic_load(&live));
    CHECK(held >= usable && held <= usable + (long long)(64 * KiB));

    long long budget_left = atomic_load(&live), left = free_all();
    CHECK_EQ(atomic_load(&bad), 0);
    CHECK_EQ(atomic_load(&live), 0);

    /* The memory goes back without a call to the allocator: resident
     * memory, and in strict-commit mode the commit charge too. */
    long long t0 = test_now_ns(), rss = 0, data = 0, rss_ms = -1, data_ms = -1;
    while ((rss_ms < 0 || data_ms < 0) && test_now_ns() - t0 < 2000000000LL) {
        rss = test_vm_rss() - b.rss;
        data = test_vm_data() - b.data;
        if (rss_ms < 0 && rss <= (long long)RSS_SLACK) rss_ms = (test_now_ns() - t0) / 1000000;
        if (data_ms < 0 && data <= (long long)DATA_SLACK) data_ms = (test_now_ns() - t0) / 1000000;
        test_sleep_ms(POLL_MS);
    }
    CHECK(rss_ms >= 0);
    CHECK(data_ms >= 0);
    struct gm_stats q;
    gm_stats_get(&q);
    size_t trimmed = gm_scavenge();
    long long data_trim = test_vm_data() - b.data;
    if (data_ms < 0)
        fprintf(stderr, "the commit charge stays: VmData %+.1f MiB, committed %.1f MiB, heap_sys %.1f MiB (released "
                "%.1f MiB), decommitted %.1f MiB, %lld mappings; gm_scavenge() then released %.1f MiB: VmData "
                "%+.1f MiB\n", mib(data), mib((long long)q.committed), mib((long long)q.heap_sys),
                mib((long long)q.heap_released), mib((long long)q.heap_decommitted), (long long)q.mappings,
                mib((long long)trimmed), mib(data_trim));

    /* The statistics agree, and only caches are left. */
    CHECK_EQ(gm_check(), 0);
    struct gm_stats e;
    gm_stats_get(&e);
    long long d_alloc = (long long)e.heap_alloc - (long long)b.st.heap_alloc;
    long long d_inuse = (long long)e.heap_inuse - (long long)b.st.heap_inuse;
    long long unbalanced = (long long)(e.mallocs - b.st.mallocs) - (long long)(e.frees - b.st.frees);
    CHECK(d_alloc <= (long long)(256 * KiB));
    CHECK(d_inuse <= (long long)INUSE_SLACK);
    CHECK(unbalanced <= 256 && unbalanced >= -256);
    CHECK(e.mallocs - b.st.mallocs >= (uint64_t)atomic_load(&n_allocs));

    struct watch *m = &watch;
    CHECK_EQ(m->bad_released, 0);
    CHECK_EQ(m->bad_inuse, 0);
    CHECK_EQ(m->bad_committed, 0);
    CHECK(m->samples * 100 >= churn_ms); /* one every 100 ms at least, however busy the CPUs */
    CHECK_EQ(atomic_load(&n_create_failed), 0);
    CHECK(atomic_load(&n_forks) > 0);
    CHECK_EQ(atomic_load(&n_fork_failed), 0);
    CHECK_EQ(atomic_load(&n_fork_bad), 0);
    CHECK_EQ(atomic_load(&n_fork_hung), 0);
    CHECK_EQ(atomic_load(&n_quiet_check_bad), 0);
    /* A few ENOMEMs at the most, and each with VmData at the limit: within
     * the request and a chunk of growth (and a little for the racy read). */
    CHECK(atomic_load(&n_enomem) * ENOMEM_RATE <= atomic_load(&n_allocs));
    CHECK(enomem_max_spare <= (long long)ENOMEM_SPARE);

    report_watch(m, &b);
    printf("torture: %.1f s: %lld ops, %lld allocations, %lld frees (%lld remote), %lld reallocs, %lld threads, "
           "%ld forks (%ld bad, %ld hung); %lld ENOMEM",
           secs, atomic_load(&n_ops), atomic_load(&n_allocs), atomic_load(&n_frees), atomic_load(&n_remote),
           atomic_load(&n_reallocs), atomic_load(&n_threads), atomic_load(&n_forks), atomic_load(&n_fork_bad),
           atomic_load(&n_fork_hung), atomic_load(&n_enomem));
    if (enomem_min_room >= 0)
        printf(" (VmData %.1f-%.1f MiB under the limit then, less the request at most %.1f MiB; the most room "
               "with %zu bytes asked and %.1f MiB budget)",
               mib(enomem_min_room), mib(enomem_max_room), mib(enomem_max_spare), enomem_max_room_size,
               mib(enomem_max_room_live));
    printf("; max committed %+.1f MiB (VmData %+.1f MiB) of %+.1f MiB allowed; %ld stats samples, %ld gm_scavenge, "
           "%ld malloc_trim\n",
           mib((long long)m->peak.committed - (long long)b.st.committed), mib(m->max_data - b.data),
           mib((long long)limit - b.data), m->samples, m->scavenges, m->trims);
    printf("torture: at the end %lld objects (%.1f MiB budget) freed; VmRSS %+.1f MiB (goal %.0f) after %lld ms, "
           "VmData %+.1f MiB (goal %.0f) after %lld ms (-1: not in 2 s); heap_alloc %+lld B, heap_inuse %+.1f MiB, "
           "mallocs - frees %+lld\n",
           left, mib(budget_left), mib(rss), mib(RSS_SLACK), rss_ms, mib(data), mib(DATA_SLACK), data_ms, d_alloc,
           mib(d_inuse), unbalanced);
    return test_done("torture");
}

/* ------------------------------------------------------------------------ */

static rlim_t exec_limit;

/* In the forked child before exec. */
static void set_limit(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_DATA, &rl);
    rl.rlim_cur = exec_limit;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur) rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_DATA, &rl);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    limit_pct = env_num("TORTURE_LIMIT_PCT", LIMIT_FACTOR_PCT);
    if (argc > 1) {
        if (!strcmp(argv[1], "torture")) return case_torture();
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    static char seed_env[64];
    long long seed = env_num("TORTURE_SEED", 0);
    if (!seed) seed = ((test_now_ns() / 1000) ^ (long long)getpid() << 16) & 0x7fffffff;
    snprintf(seed_env, sizeof seed_env, "TORTURE_SEED=%lld", seed);
    printf("api_torture: TORTURE_SEED=%lld\n", seed);
    if (warm_up()) {
        exec_limit = limit_from(test_vm_data());
        const char *const env[] = {"GOMALLOC_STRICT=1", "GOMALLOC_DECAY_MS=20", seed_env, NULL};
        test_subcase("torture", env, set_limit);
    }
    return test_done("api_torture");
}
