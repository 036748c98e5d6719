/* test.h — the tests' tiny harness: CHECK records a failure with its line and
 * goes on; test_done() prints the closing line and gives the exit code. Also
 * a deterministic generator and a position-dependent fill pattern. */
#ifndef GM_TEST_H
#define GM_TEST_H
#include <stdio.h>
#include <stdlib.h>

static int test_failures, test_checks;

#define CHECK(cond)                                                              \
    do {                                                                         \
        test_checks++;                                                           \
        if (!(cond)) {                                                           \
            test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_EQ(a, b)                                                           \
    do {                                                                         \
        unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b); \
        test_checks++;                                                           \
        if (va_ != vb_) {                                                        \
            test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %#llx, %s = %#llx\n",  \
                    __FILE__, __LINE__, #a, va_, #b, vb_);                       \
        }                                                                        \
    } while (0)

static inline int test_done(const char *name)
{
    printf("%s: %d checks, %d passed, %d failed\n", name, test_checks,
           test_checks - test_failures, test_failures);
    return test_failures ? 1 : 0;
}


/* ------------------------------------------------------------------------ */
/* /proc readers: open/read into stack buffers, so they never allocate and  */
/* may be called while a test promises not to touch the allocator.         */
/* ------------------------------------------------------------------------ */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The number after "key:" in /proc/self/status (VmData and VmRSS are in
 * KiB, Threads is a count); -1 if absent. */
static inline long test_status_num(const char *key)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    size_t klen = strlen(key);
    for (char *p = buf; (p = strstr(p, key)); p++)
        if ((p == buf || p[-1] == '\n') && p[klen] == ':') return strtol(p + klen + 1, NULL, 10);
    return -1;
}
static inline long test_status_kb(const char *key) { return test_status_num(key); }
/* VmRSS and VmData in bytes. */
static inline long long test_vm_rss(void) { return (long long)test_status_num("VmRSS") * 1024; }
static inline long long test_vm_data(void) { return (long long)test_status_num("VmData") * 1024; }
static inline long test_threads(void) { return test_status_num("Threads"); }

/* Lines of /proc/self/maps (one per mapping), -1 if unreadable. */
static inline long test_maps_count(void)
{
    char buf[4096];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long lines = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
    close(fd);
    return r < 0 ? -1 : lines;
}

/* The mappings of /proc/self/maps, one at a time, from a static buffer
 * (not thread-safe): test_maps_open() reads the file, then each
 * test_maps_next() gives one mapping's [lo, hi) and permissions ("rw-p")
 * until it returns false. */
static char test_maps_buf[1 << 20];
static const char *test_maps_at;
static inline void test_maps_open(void)
{
    size_t len = 0;
    ssize_t r;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && len < sizeof test_maps_buf - 1 &&
           (r = read(fd, test_maps_buf + len, sizeof test_maps_buf - 1 - len)) > 0)
        len += (size_t)r;
    if (fd >= 0) close(fd);
    test_maps_buf[len] = 0;
    test_maps_at = test_maps_buf;
}
static inline bool test_maps_next(uintptr_t *lo, uintptr_t *hi, char perms[5])
{
    if (!test_maps_at || !*test_maps_at) return false;
    char *e;
    *lo = strtoull(test_maps_at, &e, 16);
    *hi = strtoull(e + 1, &e, 16);
    memcpy(perms, e + 1, 4);
    perms[4] = 0;
    const char *nl = strchr(test_maps_at, '\n');
    test_maps_at = nl ? nl + 1 : NULL;
    return true;
}

/* Monotonic time in nanoseconds, and a sleep; neither allocates. */
static inline long long test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static inline void test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ------------------------------------------------------------------------ */
/* Random numbers and patterns                                              */
/* ------------------------------------------------------------------------ */

/* xorshift64*: *s must start non-zero. */
static inline uint64_t test_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Fills n bytes at p with a pattern that depends on seed and on each byte's
 * offset; test_verify says whether it is still there. Word at a time: a
 * gibibyte takes a fraction of a second. */
#define TEST_PATTERN_STEP 0x9e3779b97f4a7c15ull
static inline uint64_t test_pattern_start(uint64_t seed)
{
    return seed * 0xbf58476d1ce4e5b9ull + 0x94d049bb133111ebull;
}
static inline void test_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    uint64_t x = test_pattern_start(seed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8, x += TEST_PATTERN_STEP) memcpy(b + i, &x, 8);
    for (; i < n; i++) b[i] = (unsigned char)(x >> (8 * (i & 7)));
}
static inline bool test_verify(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t x = test_pattern_start(seed), w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8, x += TEST_PATTERN_STEP) {
        memcpy(&w, b + i, 8);
        if (w != x) return false;
    }
    for (; i < n; i++)
        if (b[i] != (unsigned char)(x >> (8 * (i & 7)))) return false;
    return true;
}
/* Are all n bytes at p zero? */
static inline bool test_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* A ring of objects that threads pass to each other                        */
/* ------------------------------------------------------------------------ */
#include <pthread.h>


/* Runs fn((void *)i) for i in [0, n) on threads, batch at a time (batch <=
 * 64); returns how many threads could not be created. */
static inline int test_run_batched(void *(*fn)(void *), uintptr_t n, unsigned batch)
{
    int failed = 0;
    for (uintptr_t i = 0; i < n; i += batch) {
        pthread_t th[64];
        bool ok[64];
        for (unsigned j = 0; j < batch && i + j < n; j++)
            failed += !(ok[j] = pthread_create(&th[j], NULL, fn, (void *)(i + j)) == 0);
        for (unsigned j = 0; j < batch && i + j < n; j++)
            if (ok[j]) pthread_join(th[j], NULL);
    }
    return failed;
}

#define TEST_RING 4096
struct test_ring {
    pthread_mutex_t lock;
    void *slot[TEST_RING];
    size_t head, count;
};
#define TEST_RING_INIT {.lock = PTHREAD_MUTEX_INITIALIZER}

/* Puts o in; if the ring was full, returns the oldest object (now the
 * caller's), else NULL. */
static inline void *test_ring_put(struct test_ring *r, void *o)
{
    void *out = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->count < TEST_RING) {
        r->slot[(r->head + r->count++) % TEST_RING] = o;
    } else {
        out = r->slot[r->head];
        r->slot[r->head] = o;
        r->head = (r->head + 1) % TEST_RING;
    }
    pthread_mutex_unlock(&r->lock);
    return out;
}

/* Takes the oldest object out, or NULL if the ring is empty. */
static inline void *test_ring_take(struct test_ring *r)
{
    void *out = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->count) {
        out = r->slot[r->head];
        r->head = (r->head + 1) % TEST_RING;
        r->count--;
    }
    pthread_mutex_unlock(&r->lock);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Under an emulator                                                        */
/* ------------------------------------------------------------------------ */

/* The emulator the tests run under, or NULL natively: tests/cross_aarch64.sh
 * runs the cross-built tests with qemu-user and names it in
 * GM_TEST_EMULATOR (an absolute path), because the kernel cannot start a
 * binary of another architecture by itself. */
static inline const char *test_emulator(void)
{
    const char *e = getenv("GM_TEST_EMULATOR");
    return e && *e ? e : NULL;
}

/* What a process that aborted wrote on stderr (out) is exactly the one
 * line want; under an emulator, which reports the abort itself on the same
 * stderr, that line followed by the emulator's. */
static inline bool test_one_line(const char *out, const char *want)
{
    size_t n = strlen(want);
    if (test_emulator()) return strncmp(out, want, n) == 0 && (out[n] == 0 || strncmp(out + n, "qemu", 4) == 0);
    return strcmp(out, want) == 0;
}

/* What qemu-user does not show a program as the kernel would. A check that
 * depends on one of these is skipped there, with a line on stdout naming
 * it and saying why; natively it always runs. */
enum test_gap {
    TEST_GAP_VM,      /* VmData, VmRSS */
    TEST_GAP_THREADS, /* the program's threads */
    TEST_GAP_RLIMIT,  /* RLIMIT_AS, RLIMIT_DATA */
    TEST_GAP_FORK,    /* threads in a fork child */
};
/* True (after saying so) if the check `what` must be skipped here. */
static inline bool test_skip_emulated(enum test_gap gap, const char *what)
{
    static const char *const why[] = {
        [TEST_GAP_VM] = "VmData and VmRSS count the emulator's own memory, its tables of the program's mappings "
                        "among it",
        [TEST_GAP_THREADS] = "/proc/self/task lists the emulator's own thread, so to gomalloc every program has "
                             "two threads, and its helper thread may run in any",
        [TEST_GAP_RLIMIT] = "qemu-user accepts setrlimit of RLIMIT_AS and RLIMIT_DATA and ignores it",
        [TEST_GAP_FORK] = "qemu-user 7.2 aborts the child of a multi-threaded process when the child starts a "
                          "thread, as gomalloc's helper does there",
    };
    if (!test_emulator()) return false;
    printf("skipped under %s: %s: %s\n", test_emulator(), what, why[gap]);
    fflush(stdout);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Sub-cases in fresh processes                                             */
/* ------------------------------------------------------------------------ */
#include <errno.h>
#include <sys/wait.h>
extern char **environ;

/* execve this program (/proc/self/exe) with args (args[0] is its argv[0])
 * and envp; through the emulator, if there is one, with the program's path
 * (which qemu-user reports for /proc/self/exe) as the emulator's first
 * argument. Returns only if it fails. For a fork child: nothing here
 * allocates. */
static inline void test_exec_self(char *const *args, char *const *envp)
{
    const char *emu = test_emulator();
    if (!emu) {
        execve("/proc/self/exe", args, envp);
        return;
    }
    char self[4096], *argv[16] = {(char *)emu, self};
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = 0;
    size_t k = 2;
    for (size_t i = 1; args[i] && k < 15; i++) argv[k++] = args[i];
    argv[k] = NULL;
    execve(emu, argv, envp);
}

/* Runs fn in a forked child and CHECKs that it passed. The child starts its
 * own count (it inherits the parent's: an earlier failure of the parent
 * must not fail every child after it) and fails if one of its checks
 * failed or fn returned non-zero. Its exit status is its failure count
 * clamped to 1..125, never the count itself: an exit status keeps 8 bits,
 * and 256 failures would read as none. */
static inline void test_in_child(const char *name, int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        test_failures = test_checks = 0;
        int rc = fn();
        int failed = test_failures > 0 ? test_failures : rc != 0;
        fflush(NULL); /* _exit would drop what the child printed */
        _exit(failed > 125 ? 125 : failed);
    }
    int st = 0;
    pid_t w = -1;
    if (pid > 0)
        while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
        }
    test_checks++;
    if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        test_failures++;
        if (pid < 0 || w != pid) fprintf(stderr, "child test %s: fork or wait failed\n", name);
        else if (WIFSIGNALED(st)) fprintf(stderr, "child test %s: killed by signal %d\n", name, WTERMSIG(st));
        else fprintf(stderr, "child test %s failed (exit status %d)\n", name, WEXITSTATUS(st));
    }
}

/* Runs this program again (/proc/self/exe) as `exe marker`, so that options
 * read at library start-up take effect: the environment is this one less
 * every GOMALLOC_* variable, plus the NAME=value strings of env (NULL
 * terminated, or NULL). before_exec, if not NULL, runs in the child just
 * before execve (async-signal-safe calls only, e.g. setrlimit). Returns the
 * wait status, or -1 if fork failed. Builds everything before forking. */
#define TEST_ENV_MAX 1024
static inline int test_reexec(const char *marker, const char *const *env, void (*before_exec)(void))
{
    char *envp[TEST_ENV_MAX + 1];
    size_t n = 0, extra = 0;
    while (env && env[extra]) extra++;
    for (char **e = environ; *e && n + extra < TEST_ENV_MAX; e++)
        if (strncmp(*e, "GOMALLOC_", 9) != 0) envp[n++] = *e;
    for (size_t i = 0; i < extra && n < TEST_ENV_MAX; i++) envp[n++] = (char *)env[i];
    envp[n] = NULL;
    char *argv[] = {(char *)"/proc/self/exe", (char *)marker, NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (before_exec) before_exec();
        test_exec_self(argv, envp);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    return st;
}

/* test_reexec, then CHECK that the sub-case exited 0 (a sub-case's main
 * returns test_done()), with its name and time on stdout. */
static inline void test_subcase(const char *marker, const char *const *env, void (*before_exec)(void))
{
    long long t0 = test_now_ns();
    int st = test_reexec(marker, env, before_exec);
    bool ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    test_checks++;
    if (!ok) {
        test_failures++;
        if (st != -1 && WIFSIGNALED(st)) fprintf(stderr, "sub-case %s: killed by signal %d\n", marker, WTERMSIG(st));
        else fprintf(stderr, "sub-case %s failed (status %#x)\n", marker, st);
    }
    printf("sub-case %s: %s in %.1f s\n", marker, ok ? "passed" : "FAILED", (double)(test_now_ns() - t0) / 1e9);
    fflush(stdout);
}

/* Byte-wise object contents: byte i of an object filled with seed, so that a
 * prefix moved by realloc, or a tail added to it, still checks. */
static inline unsigned char test_pat(uint64_t seed, size_t i)
{
    return (unsigned char)(seed + i + (i >> 8) * 31);
}
static inline void test_pat_fill(void *p, size_t from, size_t to, uint64_t seed)
{
    unsigned char *b = p;
    for (size_t i = from; i < to; i++) b[i] = test_pat(seed, i);
}
static inline bool test_pat_verify(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != test_pat(seed, i)) return false;
    return true;
}
/* Sanitized builds: TEST_SANITIZER is 1 under ASan or TSan, whose shadow
 * memory or application ranges change where mappings may go; tests divide
 * their iteration counts by TEST_SLOWDOWN (about how much slower they run). */
#if defined(__SANITIZE_THREAD__)
#define TEST_SLOWDOWN 8
#elif defined(__SANITIZE_ADDRESS__)
#define TEST_SLOWDOWN 2
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_SLOWDOWN 8
#elif __has_feature(address_sanitizer)
#define TEST_SLOWDOWN 2
#endif
#endif
#ifdef TEST_SLOWDOWN
#define TEST_SANITIZER 1
#else
#define TEST_SANITIZER 0
#define TEST_SLOWDOWN 1
#endif
#endif
