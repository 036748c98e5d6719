/*
 * unit_faults.c — every OS call the heap makes may fail, and the heap must
 * survive each failure. A deterministic workload through the gm_ API (small,
 * large, multi-MiB, aligned, calloc, realloc, usable_size, gm_scavenge, four
 * threads, most frees cross-thread, into live and exited threads' spans, the
 * last ones by a thread with no cache) is run once to count the OS calls of
 * each kind; then, in a child per fault point, the Nth call of a kind fails
 * (once, or that one and every later one) while the workload runs. Each
 * allocation must succeed or give NULL with ENOMEM, contents must hold, and
 * once the workload has freed everything gm_check() passes and heap_inuse is
 * back at its start; then, with injection off, the same workload must succeed
 * in full.
 *
 * A kind the clean run calls is swept on its own: the scavenger's UNUSED and
 * DECOMMIT join as soon as gm_scavenge makes them. A kind only error paths
 * call (the decommit after a failed growth, the unmap after a failed arena)
 * is swept as a second fault, failing from its first call, behind each fault
 * point whose child saw it called. Children report through their exit code
 * (failed checks) and a shared page (the calls they saw).
 */
#include "internal.h"
#include "objects.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define FOREVER UINT64_MAX
#define POINTS 40 /* fault points per kind and count at most (spread evenly) */
static const char *const kind_name[GM_SYS_KINDS] = {"RESERVE", "MAP", "UNUSED", "DECOMMIT", "FREE", "MOVE"};

/* ------------------------------------------------------------------------ */
/* The workload                                                             */
/* ------------------------------------------------------------------------ */

#define SLOTS 160
#define OPS 420
static struct tobj slot[SLOTS];

/* Objects passed from one live thread to another, which frees them. */
#define MAILBOX 32
static struct tobj mailbox[MAILBOX];
static unsigned mail_n;
static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;

struct phase {
    uint64_t seed;
    unsigned first, step; /* the slots this thread works on */
    int mail;             /* +1 posts to the mailbox, -1 takes from it */
};

static void mail_post(uint64_t *r)
{
    struct tobj o = {0};
    if (!tobj_new(&o, r)) return;
    pthread_mutex_lock(&mail_lock);
    if (mail_n < MAILBOX) {
        mailbox[mail_n++] = o;
        o.p = NULL;
    }
    pthread_mutex_unlock(&mail_lock);
    tobj_free(&o); /* full: free it here */
}

static void mail_take(void)
{
    struct tobj o = {0};
    pthread_mutex_lock(&mail_lock);
    if (mail_n) o = mailbox[--mail_n];
    pthread_mutex_unlock(&mail_lock);
    tobj_free(&o);
}

static void *phase_thread(void *arg)
{
    const struct phase *ph = arg;
    uint64_t r = ph->seed;
    for (unsigned i = 0; i < OPS; i++) {
        unsigned k = ph->first + ph->step * (unsigned)(test_rnd(&r) % (SLOTS / ph->step));
        tobj_step(&slot[k], &r);
        if (i % 4 == 0 && ph->mail > 0) mail_post(&r);
        if (i % 4 == 0 && ph->mail < 0) mail_take();
        if (i % 100 == 99) gm_scavenge();
    }
    /* Requests no heap can meet fail the same way, faults or not. */
    errno = 0;
    if (gm_malloc(SIZE_MAX) != NULL || errno != ENOMEM) TOBJ_BAD("malloc(SIZE_MAX) did not fail with ENOMEM\n");
    return NULL;
}

static void run_phase(const struct phase *a, const struct phase *b)
{
    pthread_t ta, tb;
    if (pthread_create(&ta, NULL, phase_thread, (void *)a) != 0) abort();
    if (b && pthread_create(&tb, NULL, phase_thread, (void *)b) != 0) abort();
    pthread_join(ta, NULL);
    if (b) pthread_join(tb, NULL);
}

/* A vector grown by realloc from 1 to 8 MiB with a block allocated behind
 * it at each step, so that it cannot grow in place, and free pages released
 * before each step, so that its new place is fresh: its pages move
 * (gm_sys_move). */
static void grow_vector(uint64_t seed)
{
    uint64_t r = seed;
    struct tobj v = {0};
    void *wall[4] = {NULL};
    if (!tobj_new(&v, &r)) return;
    for (int i = 0; i < 4 && v.p; i++) {
        gm_scavenge(); /* free pages released: fresh targets, which a move needs */
        tobj_resize(&v, (size_t)1 << (20 + i));
        wall[i] = gm_malloc((size_t)64 << 10); /* NULL allowed: the resize's checks are the test */
    }
    tobj_free(&v);
    for (int i = 0; i < 4; i++) gm_free(wall[i]);
}

/* Four threads one after another (then two at once), each working on
 * objects its predecessors made; the main thread, which has no cache,
 * frees what is left and scavenges. */
static void workload(void)
{
    static const struct phase p1 = {11, 0, 1, 0}, p2 = {22, 0, 1, 0};
    static const struct phase p3 = {33, 0, 2, +1}, p4 = {44, 1, 2, -1};
    run_phase(&p1, NULL);
    run_phase(&p2, NULL);
    run_phase(&p3, &p4);
    grow_vector(55);
    while (mail_n) mail_take();
    for (unsigned k = 0; k < SLOTS; k++) tobj_free(&slot[k]);
    gm_scavenge();
}

/* ------------------------------------------------------------------------ */
/* One child per fault point                                                */
/* ------------------------------------------------------------------------ */

/* What a child saw during its faulty run, in memory shared with the parent. */
struct report {
    uint64_t calls[GM_SYS_KINDS];
    uint64_t failures[GM_SYS_KINDS];
    long nulls;
};
static struct report *rep;

struct fault {
    int kind;       /* -1: no fault (the counting run) */
    uint64_t skip;  /* calls that succeed first */
    uint64_t count; /* 1 or FOREVER */
    int kind2;      /* -1, or a kind failing from its first call */
};

/* The workload, all freed, must leave a consistent heap at its start. */
static void workload_checked(uint64_t inuse0)
{
    atomic_store(&tobj_bad, 0);
    workload();
    CHECK_EQ(atomic_load(&tobj_bad), 0);
    CHECK_EQ(gm_check(), 0);
    CHECK_EQ(gm_stat_load(&gm_heap.heap_inuse), inuse0);
}

static int child(const struct fault *f)
{
    test_failures = test_checks = 0; /* count this child's own */
    uint64_t inuse0 = gm_stat_load(&gm_heap.heap_inuse);
    if (f->kind >= 0) gm_fault_set(f->kind, f->skip, f->count);
    if (f->kind2 >= 0) gm_fault_set(f->kind2, 0, FOREVER);
    tobj_strict = f->kind < 0;
    workload_checked(inuse0);
    for (int k = 0; k < GM_SYS_KINDS; k++) {
        rep->calls[k] = atomic_load(&gm_os.calls[k]);
        rep->failures[k] = atomic_load(&gm_os.failures[k]);
    }
    rep->nulls = atomic_load(&tobj_nulls);
    /* Normal service once failures stop. */
    gm_fault_clear();
    tobj_strict = true;
    workload_checked(inuse0);
    return test_failures > 100 ? 100 : test_failures;
}

/* Runs f in a child; false (and a line saying which) if it failed. */
static bool run_child(const struct fault *f)
{
    memset(rep, 0, sizeof *rep);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(child(f));
    int st = 0;
    waitpid(pid, &st, 0);
    test_checks++;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
    test_failures++;
    fprintf(stderr, "fault %s after %llu, count %s, then %s: child status %#x\n",
            f->kind >= 0 ? kind_name[f->kind] : "none", (unsigned long long)f->skip,
            f->count == 1 ? "1" : "forever", f->kind2 >= 0 ? kind_name[f->kind2] : "nothing", st);
    return false;
}

/* Fault points second faults are tried behind: (kind, skip) whose child
 * called kind2. */
#define SECOND_MAX 512
static struct {
    int kind, kind2;
    uint64_t skip;
} second[SECOND_MAX];
static unsigned nsecond;

static void sweep(void)
{
    struct fault f = {-1, 0, 0, -1};
    run_child(&f);
    uint64_t base[GM_SYS_KINDS];
    memcpy(base, rep->calls, sizeof base);
    CHECK(base[GM_SYS_RESERVE] > 0 && base[GM_SYS_MAP] > 0);
    long nulls_total = 0;
    uint64_t hit_total = 0;
    for (int k = 0; k < GM_SYS_KINDS; k++) {
        if (base[k] == 0) continue;
        uint64_t stride = (base[k] + POINTS - 1) / POINTS, hits = 0;
        unsigned runs = 0;
        long nulls = 0;
        for (uint64_t n = 0; n < base[k]; n += stride) {
            for (int once = 1; once >= 0; once--) {
                f = (struct fault){k, n, once ? 1 : FOREVER, -1};
                runs++;
                if (!run_child(&f)) continue;
                hits += rep->failures[k] > 0;
                nulls += rep->nulls;
                for (int k2 = 0; k2 < GM_SYS_KINDS; k2++)
                    if (once && base[k2] == 0 && rep->calls[k2] > 0 && nsecond < SECOND_MAX)
                        second[nsecond++] = (typeof(second[0])){k, k2, n};
            }
        }
        printf("%-8s %4llu calls: %3u children, %3llu saw the fault, %5ld allocations failed\n", kind_name[k],
               (unsigned long long)base[k], runs, (unsigned long long)hits, nulls);
        nulls_total += nulls;
        hit_total += hits;
    }
    /* Error paths' own calls failing too. */
    for (int k2 = 0; k2 < GM_SYS_KINDS; k2++) {
        unsigned n2 = 0, runs = 0;
        for (unsigned i = 0; i < nsecond; i++) n2 += second[i].kind2 == k2;
        for (unsigned i = 0, j = 0; i < nsecond; i++) {
            if (second[i].kind2 != k2 || j++ % ((n2 + POINTS - 1) / POINTS) != 0) continue;
            f = (struct fault){second[i].kind, second[i].skip, 1, k2};
            runs++;
            run_child(&f);
        }
        if (runs)
            printf("%-8s    0 calls: %3u children behind a first fault (of %u points that call it)\n", kind_name[k2],
                   runs, n2);
        else if (base[k2] == 0)
            printf("%-8s    0 calls: never made, not swept\n", kind_name[k2]);
    }
    /* The injection reached the workload. */
    CHECK(hit_total > 0);
    CHECK(nulls_total > 0);
}

int main(void)
{
    rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rep == MAP_FAILED) return 1;
    sweep();
    return test_done("unit_faults");
}
