/*
 * api_errno.c — a drop-in malloc changes nothing in a program but speed and
 * memory, errno included (issue 12): a call that succeeds leaves errno as
 * the caller left it, free never changes it, and a call that fails sets
 * ENOMEM (EINVAL for a bad alignment).
 *
 * Each case sets errno to a sentinel, makes one call and checks it is still
 * there (kept()), or that the failure set what it must (failed()):
 *   first      a re-executed child whose first call into the allocator is
 *              malloc (checked: nothing is committed before it), which
 *              starts the heap (options, the cgroup's limit, the huge-page
 *              policy, the first arena);
 *   first_hint the same with the first arena hint's address taken by a
 *              mapping of the test's own (the reservation there fails with
 *              EEXIST and goes elsewhere);
 *   first_cg   the same inside a memory cgroup with a limit (root only,
 *              skipped where no cgroup can be made): the limit is read;
 *   calls      every kind of successful call: malloc small (enough for
 *              refills and new spans), large and huge (new arenas), calloc
 *              of each size, realloc staying in its class, growing in place
 *              and moving, the aligned family (up to 1 MiB alignment),
 *              malloc_usable_size, free of each kind (NULL, small, large,
 *              huge, over-aligned), frees of this thread's objects by a
 *              thread that never allocated and by one that did, a thread's
 *              first allocation, malloc_trim, mallinfo, mallinfo2, mallopt,
 *              malloc_stats to /dev/null, malloc_info, gm_scavenge, the
 *              statistics calls, small objects grown past a soft memory
 *              limit (each growth fails once, reclaims, then succeeds), and
 *              malloc and free in a child after fork;
 *   calls_nobg the same with GOMALLOC_BACKGROUND=0, so that the allocation
 *              paths run the scavenger's passes themselves;
 *   calls_check the same in checked mode (GOMALLOC_CHECK=1);
 *   failures   malloc, calloc, realloc, reallocarray, aligned_alloc,
 *              memalign, valloc and pvalloc of impossible sizes, and malloc
 *              past a hard memory limit, set ENOMEM; aligned_alloc of a bad
 *              alignment sets EINVAL; posix_memalign returns the error and
 *              leaves errno alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gomalloc.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define SENTINEL 4242
#define MiB ((size_t)1 << 20)

/* C23's, which this libc does not declare yet; gomalloc defines them. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);
/* Impossible sizes, out of the compiler's sight (it warns about the
 * constants). */
static volatile size_t huge = SIZE_MAX, half = SIZE_MAX / 2;
/* The compiler may drop a malloc whose memory is never used: use it. */
static void *volatile sink;
static void *use(void *p)
{
    sink = p;
    return p;
}

/* errno after a call that must have succeeded: still the sentinel. Resets
 * it for the next call. */
static void kept(const char *what)
{
    int e = errno;
    test_checks++;
    if (e != SENTINEL) {
        test_failures++;
        fprintf(stderr, "%s: errno changed from %d to %d (%s)\n", what, SENTINEL, e, strerror(e));
    }
    errno = SENTINEL;
}

/* errno after a call that must have failed with want. */
static void failed(const char *what, void *result, int want)
{
    int e = errno;
    test_checks++;
    if (result != NULL || e != want) {
        test_failures++;
        fprintf(stderr, "%s: result %p, errno %d (%s), want NULL and %d\n", what, result, e, strerror(e), want);
    }
    errno = SENTINEL;
}

/* ------------------------------------------------------------------------ */
/* The first allocation of a process                                        */
/* ------------------------------------------------------------------------ */

static int case_first(const char *name)
{
    struct gm_stats st;
    gm_stats_get(&st);
    CHECK_EQ(st.committed, 0); /* nothing allocated before main: this is the first */
    if (strcmp(name, "first_hint") == 0) { /* the first arena hint taken: EEXIST there */
        void *hint = (void *)((uintptr_t)0xc0 << 32);
        CHECK(mmap(hint, 64 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == hint);
    }
    errno = SENTINEL;
    void *p = use(malloc(24));
    kept("the process's first malloc");
    CHECK(p != NULL);
    free(p);
    kept("its free");
    if (strcmp(name, "first_cg") == 0) CHECK(gm_get_memory_limit(NULL) != 0); /* the cgroup's was read */
    return test_done(name);
}

/* A memory cgroup with a 1 GiB limit, beside this process's own (as
 * cgroup_limit.sh makes one); its cgroup.procs path, or NULL. */
static char cg_dir[600], cg_procs[700];

static bool cg_make(void)
{
    if (geteuid() != 0) return false;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return false;
    char line[512], knob[700];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *v1 = strstr(line, ":memory:");
        if (v1) {
            snprintf(cg_dir, sizeof cg_dir, "/sys/fs/cgroup/memory%s/gomalloc_errno_%d", v1 + 8, (int)getpid());
            snprintf(knob, sizeof knob, "%s/memory.limit_in_bytes", cg_dir);
            found = true;
        } else if (strncmp(line, "0::", 3) == 0) {
            snprintf(cg_dir, sizeof cg_dir, "/sys/fs/cgroup%s/gomalloc_errno_%d", line + 3, (int)getpid());
            snprintf(knob, sizeof knob, "%s/memory.max", cg_dir);
            found = true;
        }
    }
    fclose(f);
    if (!found || mkdir(cg_dir, 0755) != 0) return false;
    f = fopen(knob, "w");
    bool ok = f && fprintf(f, "%zu\n", 1024 * MiB) > 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) {
        rmdir(cg_dir);
        return false;
    }
    snprintf(cg_procs, sizeof cg_procs, "%s/cgroup.procs", cg_dir);
    return true;
}

/* In the re-executed child, before execve: join the cgroup. */
static void cg_join(void)
{
    int fd = open(cg_procs, O_WRONLY);
    if (fd < 0 || write(fd, "0\n", 2) != 2) _exit(90);
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* Every kind of successful call                                            */
/* ------------------------------------------------------------------------ */

static bool checked_mode;

static void calls_malloc_free(void)
{
    static void *small[20000];
    for (size_t i = 0; i < 20000; i++) small[i] = malloc(16 + (i % 64) * 16); /* refills, new spans */
    kept("small mallocs");
    for (size_t i = 0; i < 20000; i += 2) free(small[i]);
    kept("small frees");
    for (size_t i = 1; i < 20000; i += 2) free(small[i]); /* spans empty */
    kept("small frees emptying spans");
    void *l = use(malloc(100000)), *l2 = use(malloc(3 * MiB));
    kept("large mallocs");
    void *h = use(malloc(300 * MiB)); /* new arenas */
    kept("huge malloc");
    CHECK(l && l2 && h);
    free(l);
    free(l2);
    kept("large frees");
    free(h);
    kept("huge free");
    free(NULL);
    kept("free(NULL)");
    void *c1 = use(calloc(10, 10)), *c2 = use(calloc(1, 200000)), *c3 = use(calloc(1, 130 * MiB));
    kept("calloc small, large, huge");
    CHECK(c1 && c2 && c3);
    free(c1);
    free(c2);
    free(c3);
    kept("their frees");
}

static void calls_realloc(void)
{
    char *p = malloc(100);
    volatile uintptr_t was = (uintptr_t)p; /* volatile: GCC takes it for a use of p */
    char *q = realloc(p, 90);
    kept("realloc within its class");
    CHECK(checked_mode || (uintptr_t)q == was);
    p = realloc(q, 5000);
    kept("realloc small to larger class");
    /* Large objects (above the span caches' 256 KiB): a new one usually
     * has free pages after it, where it can grow in place; of two made in
     * a row the second usually lies right after the first, which must then
     * move to grow. */
    int in_place = 0, moved = 0;
    for (int i = 0; i < 8; i++) {
        char *a = malloc(MiB);
        volatile uintptr_t was = (uintptr_t)a; /* volatile: GCC takes it for a use of a */
        char *b = realloc(a, 3 * MiB / 2);
        kept("realloc of a large object");
        in_place += (uintptr_t)b == was;
        char *x = malloc(MiB), *blocker = use(malloc(MiB));
        was = (uintptr_t)x;
        char *y = realloc(x, 2 * MiB);
        kept("realloc of a large object (2)");
        moved += (uintptr_t)y != was;
        char *c = realloc(b, 300 * 1024);
        kept("realloc shrinking a large object");
        char *d = realloc(c, 1000);
        kept("realloc of a large object to a small size");
        free(d);
        free(y);
        free(blocker);
    }
    CHECK(moved > 0);
    CHECK(checked_mode || in_place > 0);
    q = reallocarray(p, 100, 100);
    kept("reallocarray");
    CHECK(realloc(q, 0) == NULL);
    kept("realloc(p, 0)");
    q = realloc(NULL, 10);
    kept("realloc(NULL, n)");
    free(q);
    kept("free after realloc");
}

static void calls_aligned(void)
{
    void *a = use(aligned_alloc(64, 100)), *b = use(aligned_alloc(4096, 10000)), *c = use(aligned_alloc(MiB, 3 * MiB));
    kept("aligned_alloc");
    CHECK(a && b && c && ((uintptr_t)c & (MiB - 1)) == 0);
    void *d = NULL, *e = NULL;
    CHECK_EQ(posix_memalign(&d, 256, 300), 0);
    CHECK_EQ(posix_memalign(&e, 65536, 65536), 0);
    kept("posix_memalign");
    void *f = use(memalign(32, 40)), *g = use(valloc(5000)), *h = use(pvalloc(5000));
    kept("memalign, valloc, pvalloc");
    size_t n = malloc_usable_size(a) + malloc_usable_size(c) + malloc_usable_size(NULL);
    kept("malloc_usable_size");
    CHECK(n >= 100 + 3 * MiB);
    void *all[] = {a, b, c, d, e, f, g, h};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    kept("frees of aligned objects");
    void *s = use(malloc(50));
    free_sized(s, 50);
    s = aligned_alloc(128, 128);
    free_aligned_sized(s, 128, 128);
    kept("free_sized, free_aligned_sized");
}

/* Threads: frees of the main thread's objects, and a first allocation. */
struct handoff {
    void **objs;
    size_t n;
    bool allocate_first;
};

static void *thread_frees(void *arg)
{
    struct handoff *h = arg;
    errno = SENTINEL;
    if (h->allocate_first) {
        void *p = use(malloc(48));
        kept("a thread's first malloc");
        void *l = use(malloc(MiB));
        kept("a thread's first large malloc");
        free(l);
        free(p);
        kept("a thread's own frees");
    }
    for (size_t i = 0; i < h->n; i++) free(h->objs[i]);
    kept(h->allocate_first ? "frees from another thread (with a cache)" : "frees from a thread that never allocated");
    return NULL;
}

static void calls_threads(void)
{
    static void *objs[6000];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 6000; i++) objs[i] = malloc(i % 10 == 0 ? 70000 : 16 + (i % 300) * 16);
        struct handoff h = {objs, 6000, round == 1};
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, thread_frees, &h), 0);
        pthread_join(t, NULL);
        errno = SENTINEL;
    }
    for (size_t i = 0; i < 6000; i++) objs[i] = malloc(16 + (i % 300) * 16);
    kept("mallocs after remote frees");
    for (size_t i = 0; i < 6000; i++) free(objs[i]);
    kept("frees after remote frees");
}

static void calls_glibc(void)
{
    free(use(malloc(5 * MiB)));
    errno = SENTINEL;
    malloc_trim(0);
    kept("malloc_trim");
    struct mallinfo2 m2 = mallinfo2();
    kept("mallinfo2");
    CHECK(m2.arena > 0);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
    kept("mallinfo");
    CHECK(m.arena > 0);
    CHECK_EQ(mallopt(M_TRIM_THRESHOLD, 1 << 20), 1);
    kept("mallopt");
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    errno = SENTINEL;
    malloc_stats();
    kept("malloc_stats");
    dup2(saved, 2);
    close(saved);
    close(devnull);
    FILE *f = fopen("/dev/null", "w");
    errno = SENTINEL;
    CHECK_EQ(malloc_info(0, f), 0);
    kept("malloc_info");
    struct gm_stats st;
    gm_stats_get(&st);
    kept("gm_stats_get");
    gm_stats_print(f);
    gm_stats_print_json(f);
    kept("gm_stats_print, gm_stats_print_json");
    fclose(f);
    errno = SENTINEL;
    gm_scavenge();
    kept("gm_scavenge");
    int hard;
    gm_get_memory_limit(&hard);
    kept("gm_get_memory_limit");
}

/* Small objects past a soft limit: each growth of the heap fails once (the
 * first attempt treats the limit as hard), reclaims, and succeeds. */
static void calls_soft_limit(void)
{
    static void *objs[40000];
    size_t old = gm_get_memory_limit(NULL);
    CHECK_EQ(gm_set_memory_limit(16 * MiB, 0), 0);
    errno = SENTINEL;
    for (size_t i = 0; i < 40000; i++) objs[i] = malloc(1000); /* 40 MB */
    kept("small mallocs past a soft limit");
    for (size_t i = 0; i < 40; i++) free(use(malloc(MiB)));
    kept("large mallocs past a soft limit");
    for (size_t i = 0; i < 40000; i++) free(objs[i]);
    kept("their frees");
    gm_set_memory_limit(old, 0);
}

static void calls_fork(void)
{
    if (test_skip_emulated(TEST_GAP_FORK, "errno in a fork child")) return;
    void *p = malloc(100);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        errno = SENTINEL;
        void *q = use(malloc(200)), *l = use(malloc(2 * MiB));
        free(p);
        free(q);
        free(l);
        _exit(errno == SENTINEL ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* errno kept in the child */
    free(p);
}

static int case_calls(const char *name)
{
    checked_mode = strcmp(name, "calls_check") == 0;
    errno = SENTINEL;
    calls_malloc_free();
    calls_realloc();
    calls_aligned();
    calls_threads();
    calls_glibc();
    calls_soft_limit();
    calls_fork();
    return test_done(name);
}

/* ------------------------------------------------------------------------ */
/* Failures                                                                 */
/* ------------------------------------------------------------------------ */

static int case_failures(const char *name)
{
    errno = SENTINEL;
    failed("malloc(SIZE_MAX)", malloc(huge), ENOMEM);
    failed("calloc overflowing", calloc(half, 3), ENOMEM);
    failed("calloc(1, SIZE_MAX)", calloc(1, huge), ENOMEM);
    static void *volatile p; /* the compiler must not know realloc failed */
    p = malloc(10);
    failed("realloc(p, SIZE_MAX)", realloc(p, huge), ENOMEM);
    failed("reallocarray overflowing", reallocarray(p, half, 3), ENOMEM);
    failed("aligned_alloc(64, SIZE_MAX)", aligned_alloc(64, huge), ENOMEM);
    failed("aligned_alloc(3, 16)", aligned_alloc(3, 16), EINVAL);
    failed("memalign(4096, SIZE_MAX)", memalign(4096, huge), ENOMEM);
    failed("valloc(SIZE_MAX)", valloc(huge), ENOMEM);
    failed("pvalloc(SIZE_MAX)", pvalloc(huge), ENOMEM);
    void *q = NULL;
    CHECK_EQ(posix_memalign(&q, 3, 16), EINVAL);
    CHECK_EQ(posix_memalign(&q, 64, huge), ENOMEM);
    kept("posix_memalign's failures (returned, errno untouched)");
    free(p);

    CHECK_EQ(gm_set_memory_limit(32 * MiB, 1), 0);
    errno = SENTINEL;
    failed("malloc past a hard limit", malloc(64 * MiB), ENOMEM);
    failed("calloc past a hard limit", calloc(1, 64 * MiB), ENOMEM);
    static void *objs[100000];
    size_t n = 0;
    while (n < 100000 && (objs[n] = malloc(4000)) != NULL) n++;
    failed("small malloc past a hard limit", n < 100000 ? NULL : objs[0], ENOMEM);
    for (size_t i = 0; i < n; i++) free(objs[i]);
    kept("frees under a hard limit");
    gm_set_memory_limit(0, 0);
    return test_done(name);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strncmp(argv[1], "first", 5) == 0) return case_first(argv[1]);
        if (strncmp(argv[1], "calls", 5) == 0) return case_calls(argv[1]);
        if (strcmp(argv[1], "failures") == 0) return case_failures(argv[1]);
        return 2;
    }
    test_subcase("first", NULL, NULL);
    test_subcase("first_hint", NULL, NULL);
    if (cg_make()) {
        test_subcase("first_cg", NULL, cg_join);
        rmdir(cg_dir);
    } else {
        printf("sub-case first_cg: skipped (no memory cgroup can be made here)\n");
    }
    test_subcase("calls", NULL, NULL);
    const char *nobg[] = {"GOMALLOC_BACKGROUND=0", NULL};
    test_subcase("calls_nobg", nobg, NULL);
    const char *check[] = {"GOMALLOC_CHECK=1", NULL};
    test_subcase("calls_check", check, NULL);
    test_subcase("failures", NULL, NULL);
    return test_done("api_errno");
}
