/*
 * gm-bench: the synthetic workloads of gomalloc's `make bench` (issue 5).
 *
 * Usage:  gm-bench WORKLOAD [SCALE [SERIES_FILE]]
 *         gm-bench probe      prints which shared object provides malloc
 *         gm-bench list       prints the workload names (noop: one malloc,
 *                             the RLIMIT_DATA baseline)
 *         gm-bench spawn CMD [ARGS...]   the runner's launcher (see spawn_cmd)
 *
 * Each workload is one function below that models something real programs do
 * with malloc: many small objects on one thread, frees from other threads,
 * producer/consumer queues, a server's mix of sizes and lifetimes, a large
 * random live set, large objects and realloc growth, threads that come and go,
 * and a burst that ends (to see whether memory goes back to the OS while the
 * program is idle).  SCALE (default 1.0, the full run) multiplies the amount of
 * work; `make bench QUICK=1` passes a smaller one.
 *
 * It calls only the standard malloc API, so the same binary runs under glibc
 * or any allocator put in front of it with LD_PRELOAD.  It is built with
 * -fno-builtin-malloc & co. so the compiler cannot elide or merge allocations.
 *
 * Every object gets a pattern derived from a 64-bit tag when it is allocated
 * (every byte of small objects; the first 64 bytes, one word per 4 KiB and the
 * last word of larger ones), and the pattern is checked just before the object
 * is freed or after realloc moved it; calloc memory is checked zero and every
 * result's alignment is checked (C17: 16 bytes for 16 bytes or more).  A
 * mismatch exits with status 3, a NULL from the allocator with status 2, so
 * a fast wrong answer cannot win.  The
 * checksum printed is a sum over all freed objects of a mix of tag and size;
 * it depends only on the workload and SCALE (never on thread interleaving), so
 * the runner also checks that it is equal under every allocator.
 *
 * Results go to stdout as one line of key=value pairs, e.g.
 *   workload=small scale=1 time_s=1.234 checksum=0x... live_peak=... maps_peak=...
 * time_s is the workload's own wall time (excluding process start-up and, for
 * the peak-then-free workloads, the idle phase).  maps_peak is the number of
 * lines of /proc/self/maps at the workload's peak, read with open/read.
 *
 * The peak-then-free workloads (peakfree, fragfree, randfree) and swing also
 * run a sampler thread that reads VmRSS and VmData from /proc/self/status
 * every 10 ms into memory obtained with mmap, then writes the time series to
 * SERIES_FILE.  The idle phase of the peak-then-free ones sleeps without
 * calling the allocator at all: memory that comes back then comes back by the
 * allocator's own (background) means.
 *
 * Issue 13 added the patterns where gomalloc was weakest, after classic public
 * benchmarks (each written here from the description, not from their code):
 * larson and larson_mixed (slot arrays handed from thread to thread), rptest
 * (a thread pool passing blocks around), threadtest (many threads each with
 * its own malloc/free loop), swing (a multi-threaded live set that swings
 * between 500 and 50 MiB, RSS and VmData read 1 s and 3 s into each low
 * phase), randfree (90% of a 2 GiB small-block heap freed at random: does the
 * commit follow RSS down?), threads1k (the memory 1000 live threads cost) and
 * churn3 (3 threads churning 200 MiB, the RLIMIT_DATA bisection's case).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define THREAD_STACK (256 * KiB) /* small stacks: they count in RLIMIT_DATA */

/* ------------------------------------------------------------------------ */
/* Small utilities: clock, random numbers, fatal errors.                    */
/* ------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    for (;;) {
        double left = t - now();
        if (left <= 0)
            return;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* splitmix64: tiny, fast, good enough, and each thread has its own. */
typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rnext(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline rng_t rseed(uint64_t seed)
{
    rng_t r = {seed * 0x2545F4914F6CDD1Dull + 12345};
    rnext(&r);
    return r;
}

/* Uniform in [0, n). */
static inline uint64_t runi(rng_t *r, uint64_t n) { return rnext(r) % n; }

/* Log-uniform in [lo, hi] from 64 random bits: as many objects of 16-32
 * bytes as of 1-2 KiB. */
static size_t log_uniform(uint64_t bits, size_t lo, size_t hi)
{
    double u = (double)(bits >> 11) * (1.0 / 9007199254740992.0);
    double l = __builtin_log((double)lo), h = __builtin_log((double)hi + 1.0);
    size_t n = (size_t)__builtin_exp(l + u * (h - l));
    return n < lo ? lo : n > hi ? hi : n;
}

static size_t rlog(rng_t *r, size_t lo, size_t hi) { return log_uniform(rnext(r), lo, hi); }

/* A stateless 64-bit mix (splitmix64's finaliser): the n-th object of a
 * workload can get its size and tag from mix64(seed + n) without a stored
 * record. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fatal errors: write(2) and _exit, never the allocator. */
static void fatal(int status, const char *what, size_t n)
{
    char buf[160];
    int len = snprintf(buf, sizeof buf, "gm-bench: %s (size %zu)\n", what, n);
    if (write(2, buf, (size_t)len) < 0) {
    }
    _exit(status);
}

#define EXIT_OOM 2
#define EXIT_CORRUPT 3

/* ------------------------------------------------------------------------ */
/* Allocation wrappers: NULL is fatal, and alignment is checked (C17: any    */
/* type that fits in the request; 16 bytes for 16 bytes or more on x86-64).  */
/* ------------------------------------------------------------------------ */

static inline void check_align(const void *p, size_t n)
{
    size_t a = 16;
    while (a > n && a > 1)
        a >>= 1;
    if ((uintptr_t)p & (a - 1))
        fatal(EXIT_CORRUPT, "misaligned result from malloc", n);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        fatal(EXIT_OOM, "malloc returned NULL", n);
    check_align(p, n);
    return p;
}

static inline void *xcalloc(size_t k, size_t n)
{
    void *p = calloc(k, n);
    if (!p)
        fatal(EXIT_OOM, "calloc returned NULL", k * n);
    check_align(p, k * n);
    return p;
}

static inline void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (!p)
        fatal(EXIT_OOM, "realloc returned NULL", n);
    check_align(p, n);
    return p;
}

/* Memory for the harness itself (samples, page lists): straight from mmap so
 * the allocator under test never sees it. */
static void *os_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fatal(EXIT_OOM, "mmap for the harness failed", n);
    return p;
}

/* Grow an os_alloc'd array (no allocator involved). */
static void *os_grow(void *p, size_t old, size_t n)
{
    void *q = mremap(p, old, n, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        fatal(EXIT_OOM, "mremap for the harness failed", n);
    return q;
}

/* Give back the part of an os_alloc'd array beyond `keep` bytes; returns the
 * size that remains mapped. */
static size_t os_trim(void *p, size_t size, size_t keep)
{
    size_t k = (keep + 4095) & ~(size_t)4095;
    if (k < size)
        munmap((char *)p + k, size - k);
    return k < size ? k : size;
}

/* ------------------------------------------------------------------------ */
/* Patterns.  The word at byte offset `off` of an object tagged `tag` holds  */
/* tag ^ (off * K).  Objects up to DENSE_MAX bytes are patterned entirely;   */
/* larger ones in their first 64 bytes, at every 4 KiB offset and in their   */
/* last 8 bytes (so every page is touched, as a real program would).         */
/* ------------------------------------------------------------------------ */

#define PAT_K 0x9E3779B97F4A7C15ull
#define DENSE_MAX 256

static inline void put64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t get64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint8_t tail_byte(uint64_t tag, size_t j) { return (uint8_t)(tag >> (8 * (j & 7))) ^ (uint8_t)j; }

static void fill(void *obj, size_t n, uint64_t tag)
{
    char *p = obj;
    size_t off;
    if (n <= DENSE_MAX) {
        for (off = 0; off + 8 <= n; off += 8)
            put64(p + off, tag ^ (off * PAT_K));
        for (; off < n; off++)
            p[off] = (char)tail_byte(tag, off);
        return;
    }
    for (off = 0; off < 64; off += 8)
        put64(p + off, tag ^ (off * PAT_K));
    for (off = 4096; off + 16 <= n; off += 4096)
        put64(p + off, tag ^ (off * PAT_K));
    put64(p + n - 8, tag ^ ((n - 8) * PAT_K));
}

/* Check the pattern that fill(obj, n, tag) wrote, but only the parts that
 * lie below `limit` (realloc keeps only a prefix when it shrinks).  Returns
 * the object's contribution to the checksum. */
static uint64_t check_upto(const void *obj, size_t n, uint64_t tag, size_t limit)
{
    const char *p = obj;
    size_t off;
    if (n <= DENSE_MAX) {
        for (off = 0; off + 8 <= n && off + 8 <= limit; off += 8)
            if (get64(p + off) != (tag ^ (off * PAT_K)))
                fatal(EXIT_CORRUPT, "object contents changed (dense word)", n);
        if (off + 8 > n)
            for (; off < n && off < limit; off++)
                if ((uint8_t)p[off] != tail_byte(tag, off))
                    fatal(EXIT_CORRUPT, "object contents changed (tail byte)", n);
    } else {
        for (off = 0; off < 64 && off + 8 <= limit; off += 8)
            if (get64(p + off) != (tag ^ (off * PAT_K)))
                fatal(EXIT_CORRUPT, "object contents changed (head)", n);
        for (off = 4096; off + 16 <= n && off + 8 <= limit; off += 4096)
            if (get64(p + off) != (tag ^ (off * PAT_K)))
                fatal(EXIT_CORRUPT, "object contents changed (page word)", n);
        if (n <= limit && get64(p + n - 8) != (tag ^ ((n - 8) * PAT_K)))
            fatal(EXIT_CORRUPT, "object contents changed (last word)", n);
    }
    return (tag ^ n) * 0xD6E8FEB86659FD93ull;
}

static inline uint64_t check(const void *obj, size_t n, uint64_t tag) { return check_upto(obj, n, tag, n); }

/* An object the workloads keep track of. */
typedef struct {
    void *p;
    size_t n;
    uint64_t tag;
} obj_t;

static inline void obj_new(obj_t *o, rng_t *r, size_t n)
{
    o->n = n;
    o->tag = rnext(r);
    o->p = xmalloc(n);
    fill(o->p, n, o->tag);
}

/* Check and free; returns the checksum contribution. */
static inline uint64_t obj_free(obj_t *o)
{
    uint64_t c = check(o->p, o->n, o->tag);
    free(o->p);
    o->p = NULL;
    return c;
}

/* ------------------------------------------------------------------------ */
/* /proc readers (open/read only: no stdio, no allocator).                   */
/* ------------------------------------------------------------------------ */

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t len = 0;
    for (;;) {
        ssize_t k = read(fd, buf + len, cap - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
        if (len == cap - 1)
            break;
    }
    close(fd);
    buf[len] = 0;
    return len;
}

static long status_kib(const char *status, const char *key)
{
    const char *s = strstr(status, key);
    if (!s)
        return -1;
    s += strlen(key);
    while (*s == ' ' || *s == '\t' || *s == ':')
        s++;
    return strtol(s, NULL, 10);
}

/* VmRSS and VmData of this process in KiB. */
static void read_mem(long *rss_kib, long *data_kib)
{
    char buf[4096];
    read_file("/proc/self/status", buf, sizeof buf);
    *rss_kib = status_kib(buf, "\nVmRSS");
    *data_kib = status_kib(buf, "\nVmData");
}

/* Lines of /proc/self/maps: the number of mappings. */
static long count_maps(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static char buf[65536]; /* called from the main thread only */
    long lines = 0;
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < k; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

/* What a workload reports besides time and checksum. */
static struct {
    uint64_t checksum;
    size_t live_peak;   /* peak of requested live bytes (upper bound if threaded) */
    long maps_peak;     /* /proc/self/maps lines at the workload's peak */
    long rss_at_peak;   /* KiB, at the same moment */
    long data_at_peak;  /* KiB */
    char extra[2048];   /* workload-specific key=value pairs */
} res;

/* Called by each workload where its heap is at its largest. */
static void note_peak(void)
{
    long m = count_maps();
    if (m > res.maps_peak) {
        res.maps_peak = m;
        read_mem(&res.rss_at_peak, &res.data_at_peak);
    }
}

/* ------------------------------------------------------------------------ */
/* Threads: small fixed stacks, and failure is fatal.                        */
/* ------------------------------------------------------------------------ */

static void spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, THREAD_STACK);
    int e = pthread_create(t, &a, fn, arg);
    pthread_attr_destroy(&a);
    if (e)
        fatal(EXIT_OOM, "pthread_create failed", (size_t)e);
}

static void join(pthread_t t) { pthread_join(t, NULL); }

/* ======================================================================== */
/* Workload 1 - small: one thread, small objects, a steady live set.         */
/* The most common case of all: a single-threaded program allocating and     */
/* freeing small objects (strings, list nodes, tree nodes) at random.        */
/* ======================================================================== */

static size_t small_size(rng_t *r)
{
    uint64_t k = runi(r, 100);
    if (k < 60)
        return rlog(r, 1, 64);
    if (k < 90)
        return rlog(r, 65, 256);
    return rlog(r, 257, 1024);
}

static void w_small(double scale)
{
    const size_t slots = 50000;
    const size_t ops = (size_t)(12e6 * scale);
    rng_t r = rseed(1);
    obj_t *o = xcalloc(slots, sizeof *o);
    size_t live = 0;
    for (size_t i = 0; i < slots; i++) {
        obj_new(&o[i], &r, small_size(&r));
        live += o[i].n;
    }
    res.live_peak = live;
    note_peak();
    for (size_t i = 0; i < ops; i++) {
        obj_t *s = &o[runi(&r, slots)];
        live -= s->n;
        res.checksum += obj_free(s);
        obj_new(s, &r, small_size(&r));
        live += s->n;
        if (live > res.live_peak)
            res.live_peak = live;
        /* Now and then a short burst of temporaries freed in LIFO order. */
        if ((i & 1023) == 0) {
            obj_t tmp[64];
            for (int j = 0; j < 64; j++)
                obj_new(&tmp[j], &r, small_size(&r));
            for (int j = 63; j >= 0; j--)
                res.checksum += obj_free(&tmp[j]);
        }
    }
    for (size_t i = 0; i < slots; i++)
        res.checksum += obj_free(&o[i]);
    free(o);
}

/* ======================================================================== */
/* Workload 2 - xthread: many threads, every object freed by another thread. */
/* Each round every thread allocates a batch; after a barrier each thread    */
/* checks and frees its neighbour's batch.  4 threads on 2 cores on purpose: */
/* servers run more threads than cores.                                      */
/* ======================================================================== */

#define XT_THREADS 4
#define XT_BATCH 4096

static struct {
    pthread_barrier_t bar;
    obj_t *box[XT_THREADS];
    size_t rounds;
    uint64_t sum[XT_THREADS];
    size_t live_peak[XT_THREADS];
} xt;

static void *xt_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    rng_t r = rseed(100 + (uint64_t)id);
    obj_t *mine = xmalloc(XT_BATCH * sizeof *mine);
    xt.box[id] = mine;
    uint64_t sum = 0;
    for (size_t round = 0; round < xt.rounds; round++) {
        size_t bytes = 0;
        for (int i = 0; i < XT_BATCH; i++) {
            size_t n = runi(&r, 100) == 0 ? rlog(&r, 513, 8192) : rlog(&r, 16, 512);
            obj_new(&mine[i], &r, n);
            bytes += n;
        }
        if (bytes > xt.live_peak[id])
            xt.live_peak[id] = bytes;
        pthread_barrier_wait(&xt.bar);
        if (id == 0 && round == 0)
            note_peak();
        obj_t *theirs = xt.box[(id + 1) % XT_THREADS];
        for (int i = 0; i < XT_BATCH; i++)
            sum += obj_free(&theirs[i]);
        pthread_barrier_wait(&xt.bar);
    }
    pthread_barrier_wait(&xt.bar); /* nobody still reads `mine` */
    free(mine);
    xt.sum[id] = sum;
    return NULL;
}

static void w_xthread(double scale)
{
    xt.rounds = (size_t)(500 * scale) + 1;
    pthread_barrier_init(&xt.bar, NULL, XT_THREADS);
    pthread_t t[XT_THREADS];
    for (int i = 0; i < XT_THREADS; i++)
        spawn(&t[i], xt_thread, (void *)(intptr_t)i);
    for (int i = 0; i < XT_THREADS; i++)
        join(t[i]);
    for (int i = 0; i < XT_THREADS; i++) {
        res.checksum += xt.sum[i];
        res.live_peak += 2 * xt.live_peak[i]; /* own batch + neighbour's */
    }
    pthread_barrier_destroy(&xt.bar);
}

/* ======================================================================== */
/* Workload 3 - prodcons: producers build messages, consumers free them.     */
/* Two producers and two consumers share one bounded queue of batches (the   */
/* batch array is malloc'd too).  All memory flows one way between threads,  */
/* the case that breaks allocators whose thread caches never drain.          */
/* ======================================================================== */

#define PC_PRODUCERS 2
#define PC_CONSUMERS 2
#define PC_BATCH 256
#define PC_QCAP 32

typedef struct {
    size_t count;
    obj_t msg[PC_BATCH];
} pc_batch_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    pc_batch_t *q[PC_QCAP];
    size_t head, tail; /* head - tail = items queued */
    size_t batches;    /* per producer */
    uint64_t sum[PC_CONSUMERS];
} pc = {.lock = PTHREAD_MUTEX_INITIALIZER, .not_empty = PTHREAD_COND_INITIALIZER, .not_full = PTHREAD_COND_INITIALIZER};

static void pc_push(pc_batch_t *b)
{
    pthread_mutex_lock(&pc.lock);
    while (pc.head - pc.tail == PC_QCAP)
        pthread_cond_wait(&pc.not_full, &pc.lock);
    pc.q[pc.head++ % PC_QCAP] = b;
    pthread_cond_signal(&pc.not_empty);
    pthread_mutex_unlock(&pc.lock);
}

static pc_batch_t *pc_pop(void)
{
    pthread_mutex_lock(&pc.lock);
    while (pc.head == pc.tail)
        pthread_cond_wait(&pc.not_empty, &pc.lock);
    pc_batch_t *b = pc.q[pc.tail++ % PC_QCAP];
    pthread_cond_signal(&pc.not_full);
    pthread_mutex_unlock(&pc.lock);
    return b;
}

static void *pc_producer(void *arg)
{
    rng_t r = rseed(200 + (uint64_t)(intptr_t)arg);
    for (size_t b = 0; b < pc.batches; b++) {
        pc_batch_t *batch = xmalloc(sizeof *batch);
        batch->count = PC_BATCH;
        for (int i = 0; i < PC_BATCH; i++)
            obj_new(&batch->msg[i], &r, rlog(&r, 32, 2048));
        pc_push(batch);
    }
    return NULL;
}

static void *pc_consumer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t sum = 0;
    pc_batch_t *b;
    while ((b = pc_pop()) != NULL) {
        for (size_t i = 0; i < b->count; i++)
            sum += obj_free(&b->msg[i]);
        free(b);
    }
    pc.sum[id] = sum;
    return NULL;
}

static void w_prodcons(double scale)
{
    pc.batches = (size_t)(8000 * scale) + 1;
    pthread_t p[PC_PRODUCERS], c[PC_CONSUMERS];
    for (int i = 0; i < PC_CONSUMERS; i++)
        spawn(&c[i], pc_consumer, (void *)(intptr_t)i);
    for (int i = 0; i < PC_PRODUCERS; i++)
        spawn(&p[i], pc_producer, (void *)(intptr_t)i);
    for (int i = 0; i < PC_PRODUCERS; i++)
        join(p[i]);
    note_peak();
    for (int i = 0; i < PC_CONSUMERS; i++)
        pc_push(NULL); /* one end marker per consumer */
    for (int i = 0; i < PC_CONSUMERS; i++)
        join(c[i]);
    for (int i = 0; i < PC_CONSUMERS; i++)
        res.checksum += pc.sum[i];
    res.live_peak = (size_t)(PC_QCAP + PC_CONSUMERS + PC_PRODUCERS) * PC_BATCH * 1040;
}

/* ======================================================================== */
/* Workload 4 - server: worker threads serving requests.                     */
/* Per request: a request buffer, a handful of parsed header strings, a      */
/* response that lives a few requests longer (asynchronous write); now and   */
/* then a session object (lives thousands of requests) and an entry in a     */
/* cache shared by all workers, whose old entry is freed by whichever thread */
/* replaces it.  Sizes from 8 bytes to 1 MiB, lifetimes from microseconds to */
/* the whole run.                                                            */
/* ======================================================================== */

#define SV_THREADS 4
#define SV_SESSIONS 4096
#define SV_CACHE 8192
#define SV_STRIPES 64
#define SV_INFLIGHT 8

static struct {
    size_t requests; /* per thread */
    obj_t cache[SV_CACHE];
    pthread_mutex_t stripe[SV_STRIPES];
    uint64_t sum[SV_THREADS];
    size_t live_peak[SV_THREADS];
    atomic_size_t cache_bytes, cache_peak; /* bytes held by the shared cache */
} sv;

static size_t sv_response_size(rng_t *r)
{
    uint64_t k = runi(r, 1000);
    if (k < 900)
        return rlog(r, 256, 8192);
    if (k < 990)
        return rlog(r, 8193, 128 * KiB);
    return rlog(r, 128 * KiB + 1, 1 * MiB);
}

static void *sv_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    rng_t r = rseed(300 + (uint64_t)id);
    obj_t *sessions = xcalloc(SV_SESSIONS, sizeof *sessions);
    obj_t inflight[SV_INFLIGHT] = {{0}};
    obj_t hdr[32];
    uint64_t sum = 0;
    size_t live = 0, peak = 0;
    for (size_t q = 0; q < sv.requests; q++) {
        obj_t req;
        obj_new(&req, &r, rlog(&r, 64, 16 * KiB));
        int nh = 4 + (int)runi(&r, 28);
        size_t hbytes = 0;
        for (int i = 0; i < nh; i++) {
            obj_new(&hdr[i], &r, rlog(&r, 8, 256));
            hbytes += hdr[i].n;
        }
        obj_t *resp = &inflight[q % SV_INFLIGHT];
        if (resp->p) {
            live -= resp->n;
            sum += obj_free(resp);
        }
        obj_new(resp, &r, sv_response_size(&r));
        live += resp->n;
        if (live + req.n + hbytes > peak)
            peak = live + req.n + hbytes;
        for (int i = nh - 1; i >= 0; i--)
            sum += obj_free(&hdr[i]);
        sum += obj_free(&req);
        if (runi(&r, 4) == 0) { /* session state */
            obj_t *s = &sessions[runi(&r, SV_SESSIONS)];
            if (s->p) {
                live -= s->n;
                sum += obj_free(s);
            }
            obj_new(s, &r, rlog(&r, 32, 4096));
            live += s->n;
        }
        if (runi(&r, 20) == 0) { /* shared cache: the old entry may be another thread's */
            obj_t fresh, old;
            obj_new(&fresh, &r, rlog(&r, 64, 64 * KiB));
            size_t slot = runi(&r, SV_CACHE);
            pthread_mutex_t *m = &sv.stripe[slot % SV_STRIPES];
            pthread_mutex_lock(m);
            old = sv.cache[slot];
            sv.cache[slot] = fresh;
            pthread_mutex_unlock(m);
            size_t held = atomic_fetch_add(&sv.cache_bytes, fresh.n) + fresh.n;
            size_t seen = atomic_load(&sv.cache_peak);
            while (held > seen && !atomic_compare_exchange_weak(&sv.cache_peak, &seen, held))
                ;
            if (old.p) {
                atomic_fetch_sub(&sv.cache_bytes, old.n);
                sum += obj_free(&old);
            }
        }
        if (id == 0 && q == sv.requests / 2)
            note_peak();
    }
    for (int i = 0; i < SV_INFLIGHT; i++)
        if (inflight[i].p)
            sum += obj_free(&inflight[i]);
    for (int i = 0; i < SV_SESSIONS; i++)
        if (sessions[i].p)
            sum += obj_free(&sessions[i]);
    free(sessions);
    sv.sum[id] = sum;
    sv.live_peak[id] = peak;
    return NULL;
}

static void w_server(double scale)
{
    sv.requests = (size_t)(150000 * scale) + 1;
    for (int i = 0; i < SV_STRIPES; i++)
        pthread_mutex_init(&sv.stripe[i], NULL);
    pthread_t t[SV_THREADS];
    for (int i = 0; i < SV_THREADS; i++)
        spawn(&t[i], sv_worker, (void *)(intptr_t)i);
    for (int i = 0; i < SV_THREADS; i++)
        join(t[i]);
    for (int i = 0; i < SV_CACHE; i++)
        if (sv.cache[i].p)
            res.checksum += obj_free(&sv.cache[i]);
    for (int i = 0; i < SV_THREADS; i++) {
        res.checksum += sv.sum[i];
        res.live_peak += sv.live_peak[i];
    }
    res.live_peak += atomic_load(&sv.cache_peak); /* sum of peaks: an upper bound */
}

/* ======================================================================== */
/* Workload 5 - random: random sizes, a large live set, random replacement.  */
/* Stresses fragmentation and the page-level allocator: sizes from 1 byte to */
/* 64 KiB, a live set of a few hundred MiB, any object may die next.         */
/* ======================================================================== */

static size_t random_size(rng_t *r)
{
    uint64_t k = runi(r, 100);
    if (k < 70)
        return rlog(r, 1, 128);
    if (k < 95)
        return rlog(r, 129, 4096);
    return rlog(r, 4097, 64 * KiB);
}

static void w_random(double scale)
{
    const size_t slots = (size_t)(150000 * scale) + 16;
    const size_t ops = (size_t)(3e6 * scale);
    rng_t r = rseed(5);
    obj_t *o = xcalloc(slots, sizeof *o);
    size_t live = 0;
    for (size_t i = 0; i < slots; i++) {
        obj_new(&o[i], &r, random_size(&r));
        live += o[i].n;
    }
    res.live_peak = live;
    for (size_t i = 0; i < ops; i++) {
        obj_t *s = &o[runi(&r, slots)];
        live -= s->n;
        res.checksum += obj_free(s);
        obj_new(s, &r, random_size(&r));
        live += s->n;
        if (live > res.live_peak)
            res.live_peak = live;
        if (i == ops / 2)
            note_peak();
    }
    note_peak();
    for (size_t i = 0; i < slots; i++)
        res.checksum += obj_free(&o[i]);
    free(o);
}

/* ======================================================================== */
/* Workload 6 - large: realloc growth, then large objects.                   */
/* Phase A grows several vectors at once by realloc, half of them by 1.5x    */
/* (amortised growth), half by a fixed 64 KiB step (string builders, which   */
/* depend on realloc growing in place); every element is written and the     */
/* contents are checked after each move and in full at the end.              */
/* Phase B keeps a live set of 48 large objects (64 KiB - 8 MiB, a quarter   */
/* from calloc, checked zero) replaced at random.                            */
/* ======================================================================== */

#define LG_VECTORS 6
#define LG_SLOTS 48

typedef struct {
    uint64_t *v;
    size_t len, cap, target; /* in elements */
    uint64_t tag;
    int additive;
} vec_t;

static inline uint64_t vec_elem(uint64_t tag, size_t i) { return tag ^ (i * PAT_K); }

static void vec_start(vec_t *v, rng_t *r, int additive)
{
    v->additive = additive;
    v->tag = rnext(r);
    v->len = 0;
    v->cap = 16;
    size_t max_bytes = additive ? 4 * MiB : 32 * MiB;
    v->target = rlog(r, 64 * KiB, max_bytes) / 8;
    v->v = xmalloc(v->cap * 8);
}

static uint64_t vec_finish(vec_t *v)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->v[i] != vec_elem(v->tag, i))
            fatal(EXIT_CORRUPT, "vector element changed", v->len * 8);
        sum += v->v[i];
    }
    free(v->v);
    v->v = NULL;
    return sum * 3 + v->len;
}

/* Append `k` elements, growing by realloc as a vector or a string builder would. */
static void vec_append(vec_t *v, rng_t *r, size_t k)
{
    while (k--) {
        if (v->len == v->cap) {
            size_t cap = v->additive ? v->cap + 8192 : v->cap + v->cap / 2;
            v->v = xrealloc(v->v, cap * 8);
            v->cap = cap;
            /* Spot-check that realloc kept the contents. */
            size_t probe = runi(r, v->len);
            if (v->v[0] != vec_elem(v->tag, 0) || v->v[v->len - 1] != vec_elem(v->tag, v->len - 1) ||
                v->v[probe] != vec_elem(v->tag, probe))
                fatal(EXIT_CORRUPT, "realloc lost the contents", cap * 8);
        }
        v->v[v->len] = vec_elem(v->tag, v->len);
        v->len++;
    }
}

static void w_large(double scale)
{
    rng_t r = rseed(6);
    size_t live = 0;
    /* Phase A: realloc growth, vectors interleaved. */
    vec_t vec[LG_VECTORS];
    for (int i = 0; i < LG_VECTORS; i++)
        vec_start(&vec[i], &r, i & 1);
    size_t completed = 0, goal = (size_t)(240 * scale) + 2;
    while (completed < goal) {
        for (int i = 0; i < LG_VECTORS; i++) {
            vec_t *v = &vec[i];
            size_t k = 1 + runi(&r, 4096);
            if (k > v->target - v->len)
                k = v->target - v->len;
            vec_append(v, &r, k);
            if (v->len == v->target) {
                res.checksum += vec_finish(v);
                vec_start(v, &r, i & 1);
                completed++;
            }
        }
        live = 0;
        for (int i = 0; i < LG_VECTORS; i++)
            live += vec[i].cap * 8;
        if (live > res.live_peak)
            res.live_peak = live;
    }
    note_peak();
    for (int i = 0; i < LG_VECTORS; i++)
        res.checksum += vec_finish(&vec[i]);

    /* Phase B: a live set of large objects replaced at random. */
    obj_t o[LG_SLOTS] = {{0}};
    size_t ops = (size_t)(6000 * scale) + LG_SLOTS;
    live = 0;
    for (size_t i = 0; i < ops; i++) {
        obj_t *s = &o[i < LG_SLOTS ? i : runi(&r, LG_SLOTS)];
        if (s->p) {
            live -= s->n;
            res.checksum += obj_free(s);
        }
        size_t n = rlog(&r, 64 * KiB, 8 * MiB);
        if (runi(&r, 4) == 0) { /* calloc: must come back zeroed */
            s->p = xcalloc(1, n);
            const char *p = s->p;
            for (size_t off = 0; off + 8 <= n; off += 4096)
                if (get64(p + off) != 0)
                    fatal(EXIT_CORRUPT, "calloc memory not zero", n);
            if (get64(p + n - 8) != 0)
                fatal(EXIT_CORRUPT, "calloc memory not zero", n);
            s->n = n;
            s->tag = rnext(&r);
            fill(s->p, n, s->tag);
        } else {
            obj_new(s, &r, n);
        }
        live += n;
        if (live > res.live_peak)
            res.live_peak = live;
    }
    note_peak();
    for (int i = 0; i < LG_SLOTS; i++)
        res.checksum += obj_free(&o[i]);
}

/* ======================================================================== */
/* Workload 7 - churn: threads that come and go.                             */
/* Waves of 4 short-lived threads; each allocates a few thousand objects,    */
/* frees two thirds, and hands the rest to the main thread, which frees them */
/* after the thread has exited (memory orphaned by a dead thread's cache).   */
/* ======================================================================== */

#define CH_WAVE 4
#define CH_OBJECTS 3000

typedef struct {
    uint64_t seed, sum;
    obj_t *handed; /* malloc'd by the thread, freed by main */
    size_t nhanded;
} ch_job_t;

static void *ch_thread(void *arg)
{
    ch_job_t *job = arg;
    rng_t r = rseed(job->seed);
    obj_t *o = xmalloc(CH_OBJECTS * sizeof *o);
    obj_t scratch;
    obj_new(&scratch, &r, 64 * KiB);
    for (int i = 0; i < CH_OBJECTS; i++)
        obj_new(&o[i], &r, rlog(&r, 16, 1024));
    size_t k = 0;
    for (int i = 0; i < CH_OBJECTS; i++) {
        if (i % 3 == 0)
            o[k++] = o[i]; /* keep: compact into the front of the array */
        else
            job->sum += obj_free(&o[i]);
    }
    job->sum += obj_free(&scratch);
    job->handed = o;
    job->nhanded = k;
    return NULL;
}

static void w_churn(double scale)
{
    size_t waves = (size_t)(500 * scale) + 1;
    for (size_t w = 0; w < waves; w++) {
        pthread_t t[CH_WAVE];
        ch_job_t job[CH_WAVE];
        for (int i = 0; i < CH_WAVE; i++) {
            job[i] = (ch_job_t){.seed = 1000 + w * CH_WAVE + (uint64_t)i};
            spawn(&t[i], ch_thread, &job[i]);
        }
        for (int i = 0; i < CH_WAVE; i++)
            join(t[i]);
        if (w == waves / 2)
            note_peak();
        for (int i = 0; i < CH_WAVE; i++) {
            for (size_t j = 0; j < job[i].nhanded; j++)
                res.checksum += obj_free(&job[i].handed[j]);
            free(job[i].handed);
            res.checksum += job[i].sum;
        }
    }
    res.live_peak = CH_WAVE * (CH_OBJECTS * (size_t)(200 + sizeof(obj_t)) + 64 * KiB);
}

/* ======================================================================== */
/* Sampler for the peak-then-free and swing workloads: VmRSS and VmData     */
/* every 10 ms, and the live bytes where the workload keeps them current.    */
/* ======================================================================== */

#define SAMPLE_CAP 65536

typedef struct {
    float t;
    int32_t rss_kib, data_kib;          /* the whole process */
    int32_t harness_rss, harness_data;  /* gm-bench's own bookkeeping, KiB */
    int32_t live_kib;                   /* smp_live at the time, KiB */
} sample_t;

static struct {
    sample_t *s; /* from mmap */
    atomic_size_t n;
    atomic_int stop;
    double t0;
    long base_rss, base_data; /* KiB, once the sampler runs, before the workload */
    pthread_t thread;
} smp;

/* Bytes of gm-bench's own mmap'd bookkeeping: touched (in RSS) and mapped
 * (in VmData).  The workloads keep these current so that the sampler and
 * the report can show the heap alone.  A change that maps or unmaps goes
 * between harness_begin() and harness_end() (a sequence lock): the sampler
 * drops a sample that overlapped one, since its RSS and bookkeeping would
 * not match. */
static atomic_size_t harness_touched, harness_mapped;
static atomic_uint harness_seq; /* odd while a change is in progress */
static atomic_size_t smp_live;  /* requested live bytes, if the workload counts them */

static void harness_begin(void) { atomic_fetch_add(&harness_seq, 1); }
static void harness_end(size_t touched, size_t mapped)
{
    atomic_store(&harness_touched, touched);
    atomic_store(&harness_mapped, mapped);
    atomic_fetch_add(&harness_seq, 1);
}

static void *sampler(void *arg)
{
    (void)arg;
    while (!atomic_load(&smp.stop)) {
        long rss, data;
        unsigned seq = atomic_load(&harness_seq);
        read_mem(&rss, &data);
        size_t i = atomic_load(&smp.n);
        size_t touched = atomic_load(&harness_touched), mapped = atomic_load(&harness_mapped);
        if (i < SAMPLE_CAP && !(seq & 1) && seq == atomic_load(&harness_seq)) {
            smp.s[i] = (sample_t){(float)(now() - smp.t0), (int32_t)rss, (int32_t)data,
                                  (int32_t)(touched / 1024), (int32_t)(mapped / 1024),
                                  (int32_t)(atomic_load(&smp_live) / 1024)};
            atomic_store(&smp.n, i + 1);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void sampler_start(void)
{
    smp.s = os_alloc(SAMPLE_CAP * sizeof(sample_t));
    smp.t0 = now();
    spawn(&smp.thread, sampler, NULL);
    read_mem(&smp.base_rss, &smp.base_data);
}

/* Stop sampling and write lines of "t_since_free_s rss_mib vmdata_mib
 * heap_rss_mib heap_vmdata_mib live_mib": heap = process - base -
 * bookkeeping; t is counted from t_free (a time from now()). */
static void sampler_finish(const char *path, double t_free)
{
    atomic_store(&smp.stop, 1);
    join(smp.thread);
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fatal(1, "cannot write the series file", 0);
    char line[128];
    size_t n = atomic_load(&smp.n);
    for (size_t i = 0; i < n; i++) {
        const sample_t *s = &smp.s[i];
        int len = snprintf(line, sizeof line, "%.3f %.2f %.2f %.2f %.2f %.2f\n", s->t - (t_free - smp.t0),
                           s->rss_kib / 1024.0, s->data_kib / 1024.0,
                           (s->rss_kib - smp.base_rss - s->harness_rss) / 1024.0,
                           (s->data_kib - smp.base_data - s->harness_data) / 1024.0, s->live_kib / 1024.0);
        if (write(fd, line, (size_t)len) != len)
            fatal(1, "short write to the series file", 0);
    }
    close(fd);
}

/* Append " key=value" to res.extra. */
static void extra(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void extra(const char *fmt, ...)
{
    size_t used = strlen(res.extra);
    if (used + 2 >= sizeof res.extra)
        return;
    res.extra[used++] = ' ';
    res.extra[used] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.extra + used, sizeof res.extra - used, fmt, ap);
    va_end(ap);
}

/* The idle phase shared by the peak-then-free workloads: sleep without
 * touching the allocator; read RSS, VmData and the mapping count 0.5, 1, 2
 * and (when the phase is that long) 3 s after the free.  The harness's own
 * bytes at the time go with each reading (harness_kib: touched). */
static void idle_phase(double t_free, double idle_s, size_t live, long rss_peak, long data_peak)
{
    static const double at[] = {0.5, 1.0, 2.0, 3.0};
    static const char *const name[] = {"500ms", "1s", "2s", "3s"};
    extra("live_after=%zu rss_peak_kib=%ld data_peak_kib=%ld base_rss_kib=%ld base_data_kib=%ld", live,
          rss_peak, data_peak, smp.base_rss, smp.base_data);
    for (int i = 0; i < 4 && at[i] <= idle_s + 1e-9; i++) {
        long rss, data;
        sleep_until(t_free + at[i]);
        read_mem(&rss, &data);
        long maps = count_maps();
        extra("rss_%s_kib=%ld data_%s_kib=%ld maps_%s=%ld", name[i], rss, name[i], data, name[i], maps);
    }
    sleep_until(t_free + idle_s);
}

static double idle_seconds(double scale) { return scale < 0.9 ? 2.2 : 3.0; }

/* ======================================================================== */
/* Workload 8 - peakfree: a burst ends.                                      */
/* Allocate ~1 GiB (times SCALE) in mixed sizes, then free the last 90%      */
/* allocated, then stay idle.  A program after a traffic spike or a large    */
/* request: does RSS (and commit, VmData) come back close to the live 10%,   */
/* and how fast, without any call into the allocator?                        */
/* ======================================================================== */

static size_t peak_size(rng_t *r)
{
    uint64_t k = runi(r, 100);
    if (k < 80)
        return rlog(r, 16, 512);
    if (k < 98)
        return rlog(r, 513, 32 * KiB);
    return rlog(r, 32 * KiB + 1, 1 * MiB);
}

static void w_peakfree(double scale, const char *series, double *work_time)
{
    sampler_start();
    double t_start = now();
    size_t target = (size_t)((double)GiB * scale);
    size_t cap = 65536, count = 0, total = 0;
    harness_begin();
    obj_t *o = os_alloc(cap * sizeof *o); /* harness memory: not the allocator's */
    harness_end(0, cap * sizeof *o);
    rng_t r = rseed(8);
    while (total < target) {
        if (count == cap) {
            harness_begin();
            o = os_grow(o, cap * sizeof *o, 2 * cap * sizeof *o);
            cap *= 2;
            harness_end(atomic_load(&harness_touched), cap * sizeof *o);
        }
        if ((count & 1023) == 0)
            atomic_store(&harness_touched, (count + 1024) * sizeof *o);
        obj_new(&o[count], &r, peak_size(&r));
        total += o[count++].n;
    }
    res.live_peak = total;
    note_peak();
    long rss_peak, data_peak;
    read_mem(&rss_peak, &data_peak);
    size_t harness_peak = (count * sizeof *o + 4095) & ~(size_t)4095; /* touched */
    size_t keep = count / 10, live = 0;
    for (size_t i = keep; i < count; i++)
        res.checksum += obj_free(&o[i]);
    for (size_t i = 0; i < keep; i++)
        live += o[i].n;
    double t_free = now();
    *work_time = t_free - t_start;
    harness_begin();
    size_t harness = os_trim(o, cap * sizeof *o, keep * sizeof *o);
    harness_end(harness, harness);
    snprintf(res.extra, sizeof res.extra, "harness_peak_kib=%zu harness_kib=%zu", harness_peak / 1024,
             harness / 1024);
    idle_phase(t_free, idle_seconds(scale), live, rss_peak, data_peak);
    sampler_finish(series, t_free);
    for (size_t i = 0; i < keep; i++)
        res.checksum += obj_free(&o[i]);
    munmap(o, harness);
}

/* ======================================================================== */
/* Workloads 9 and 10 - fragfree and randfree: 90% of small objects die.     */
/* Allocate many 16-256 byte objects (fragfree ~512 MiB, randfree ~2 GiB,    */
/* times SCALE), free 90% of them at random, stay idle (randfree: 3 s, with  */
/* RSS, VmData and the mapping count read 0.5, 1, 2 and 3 s after the free). */
/* Objects die in random groups of consecutively allocated ones (a list, a   */
/* tree, a parsed document: 1 to 1024 objects, each group survives with      */
/* chance 1/10): if each died alone, 10% survivors would leave a live object */
/* on nearly every page and nobody could return anything.  Pages that still  */
/* hold a live object cannot go back (the "floor", computed from the live    */
/* objects' addresses after the idle phase); the report shows how much of    */
/* the memory above that floor each allocator returns, and (randfree)        */
/* whether VmData, the commit, follows RSS down.  The harness keeps only a   */
/* pointer per object: the n-th object's size and tag come from a hash of n, */
/* and the groups' fates from a generator that is replayed when needed.      */
/* ======================================================================== */

static void sort_u64(uint64_t *a, size_t n) /* heapsort: no allocator, no recursion */
{
    for (size_t k = n / 2; k-- > 0;)
        for (size_t i = k;;) {
            size_t c = 2 * i + 1;
            if (c >= n)
                break;
            if (c + 1 < n && a[c + 1] > a[c])
                c++;
            if (a[i] >= a[c])
                break;
            uint64_t t = a[i]; a[i] = a[c]; a[c] = t;
            i = c;
        }
    for (size_t end = n; end-- > 1;) {
        uint64_t t = a[0]; a[0] = a[end]; a[end] = t;
        for (size_t i = 0;;) {
            size_t c = 2 * i + 1;
            if (c >= end)
                break;
            if (c + 1 < end && a[c + 1] > a[c])
                c++;
            if (a[i] >= a[c])
                break;
            t = a[i]; a[i] = a[c]; a[c] = t;
            i = c;
        }
    }
}

/* The fates of objects 0, 1, 2, ... in order: groups of 1-1024, each kept
 * with chance 1/10.  The same seed gives the same fates on every replay. */
typedef struct {
    rng_t r;
    size_t left;
    int keep;
} fates_t;

static inline int fate_next(fates_t *f)
{
    if (f->left == 0) {
        f->left = rlog(&f->r, 1, 1024);
        f->keep = runi(&f->r, 10) == 0;
    }
    f->left--;
    return f->keep;
}

static inline uint64_t fr_hash(uint64_t seed, size_t i) { return mix64(seed + (uint64_t)i * PAT_K); }
static inline size_t fr_size(uint64_t h) { return log_uniform(h, 16, 256); }
static inline uint64_t fr_tag(uint64_t h) { return mix64(h ^ 0x5851F42D4C957F2Dull); }

static void frag_workload(size_t target, uint64_t seed, double idle_s, const char *series, double *work_time)
{
    sampler_start();
    double t_start = now();
    size_t cap = (size_t)1 << 20, count = 0, total = 0;
    harness_begin();
    void **o = os_alloc(cap * sizeof *o); /* harness memory: not the allocator's */
    harness_end(0, cap * sizeof *o);
    while (total < target) {
        if (count == cap) {
            harness_begin();
            o = os_grow(o, cap * sizeof *o, 2 * cap * sizeof *o);
            cap *= 2;
            harness_end(atomic_load(&harness_touched), cap * sizeof *o);
        }
        if ((count & 4095) == 0)
            atomic_store(&harness_touched, (count + 4096) * sizeof *o);
        uint64_t h = fr_hash(seed, count);
        size_t n = fr_size(h);
        o[count] = xmalloc(n);
        fill(o[count], n, fr_tag(h));
        total += n;
        count++;
    }
    res.live_peak = total;
    note_peak();
    long rss_peak, data_peak;
    read_mem(&rss_peak, &data_peak);
    size_t harness_peak = (count * sizeof *o + 4095) & ~(size_t)4095; /* touched */
    fates_t f = {rseed(seed ^ 0x6A09E667F3BCC908ull), 0, 0};
    size_t kept = 0, live = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t h = fr_hash(seed, i);
        if (fate_next(&f)) {
            o[kept++] = o[i];
            live += fr_size(h);
        } else {
            res.checksum += check(o[i], fr_size(h), fr_tag(h));
            free(o[i]);
        }
    }
    double t_free = now();
    *work_time = t_free - t_start;
    harness_begin();
    size_t harness = os_trim(o, cap * sizeof *o, kept * sizeof *o);
    harness_end(harness, harness);
    extra("harness_peak_kib=%zu harness_kib=%zu objects=%zu kept=%zu", harness_peak / 1024, harness / 1024,
          count, kept);
    atomic_store(&smp_live, live);
    idle_phase(t_free, idle_s, live, rss_peak, data_peak);
    sampler_finish(series, t_free);

    /* The floor: distinct 4 KiB pages holding a byte of a live object. */
    size_t maxpages = kept * 2 + 1, np = 0, k = 0;
    uint64_t *pages = os_alloc(maxpages * 8);
    f = (fates_t){rseed(seed ^ 0x6A09E667F3BCC908ull), 0, 0};
    for (size_t i = 0; i < count; i++) {
        if (!fate_next(&f))
            continue;
        uintptr_t a = (uintptr_t)o[k++], b = a + fr_size(fr_hash(seed, i)) - 1;
        pages[np++] = a >> 12;
        if ((b >> 12) != (a >> 12))
            pages[np++] = b >> 12;
    }
    sort_u64(pages, np);
    size_t distinct = 0;
    for (size_t i = 0; i < np; i++)
        distinct += i == 0 || pages[i] != pages[i - 1];
    munmap(pages, maxpages * 8);
    extra("floor_kib=%zu", distinct * 4);

    f = (fates_t){rseed(seed ^ 0x6A09E667F3BCC908ull), 0, 0};
    k = 0;
    for (size_t i = 0; i < count; i++) {
        if (!fate_next(&f))
            continue;
        uint64_t h = fr_hash(seed, i);
        res.checksum += check(o[k], fr_size(h), fr_tag(h));
        free(o[k++]);
    }
    munmap(o, harness);
}

static void w_fragfree(double scale, const char *series, double *work_time)
{
    frag_workload((size_t)(512.0 * (double)MiB * scale), 9, idle_seconds(scale), series, work_time);
}

static void w_randfree(double scale, const char *series, double *work_time)
{
    frag_workload((size_t)(2.0 * (double)GiB * scale), 11, 3.05, series, work_time);
}

/* ======================================================================== */
/* Workloads 11 and 12 - larson, larson_mixed: a server whose connections    */
/* move from thread to thread (after Larson and Krishnan's benchmark).       */
/* Each of T chains owns an array of 1000 slots of objects of uniformly      */
/* random size, 16 B-1 KiB (larson_mixed: 16 B-8 KiB).  A thread replaces    */
/* random slots (check and free the old object, allocate a new one), then    */
/* starts a new thread that inherits the array and ends; the new thread      */
/* joins the old one first.  So nearly every free is of an object another,   */
/* usually finished, thread allocated.  Run with 4 chains, then with 8 (on   */
/* 2 cores), the same number of replacements each; the time is the sum and   */
/* each part is reported.                                                    */
/* ======================================================================== */

#define LS_SLOTS 1000

typedef struct {
    obj_t *slots;
    rng_t r;
    size_t gen, gens, ops, maxsz; /* generations done and to do; replacements per generation */
    size_t live, live_peak;
    uint64_t sum;
    pthread_t prev; /* the thread of the latest generation */
    int has_prev;
} ls_chain_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int running; /* chains not finished */
} ls = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void *ls_thread(void *arg)
{
    ls_chain_t *c = arg;
    if (c->has_prev)
        join(c->prev); /* it has started us and is ending */
    c->prev = pthread_self();
    c->has_prev = 1;
    if (!c->slots)
        c->slots = xcalloc(LS_SLOTS, sizeof *c->slots);
    for (size_t i = 0; i < c->ops; i++) {
        obj_t *s = &c->slots[runi(&c->r, LS_SLOTS)];
        if (s->p) {
            c->live -= s->n;
            c->sum += obj_free(s);
        }
        obj_new(s, &c->r, 16 + runi(&c->r, c->maxsz - 15));
        c->live += s->n;
        if (c->live > c->live_peak)
            c->live_peak = c->live;
    }
    if (++c->gen < c->gens) {
        pthread_t t;
        spawn(&t, ls_thread, c); /* from here on, c is the new thread's */
    } else {
        pthread_mutex_lock(&ls.lock);
        ls.running--;
        pthread_cond_signal(&ls.cv);
        pthread_mutex_unlock(&ls.lock);
    }
    return NULL;
}

static double ls_phase(int chains, size_t total_ops, size_t gens, size_t maxsz, uint64_t seed)
{
    ls_chain_t *c = xcalloc((size_t)chains, sizeof *c);
    double t0 = now();
    ls.running = chains;
    for (int i = 0; i < chains; i++) {
        c[i] = (ls_chain_t){.r = rseed(seed + (uint64_t)i), .gens = gens,
                            .ops = total_ops / ((size_t)chains * gens) + 1, .maxsz = maxsz};
        pthread_t t;
        spawn(&t, ls_thread, &c[i]); /* joined by the chain's next generation, or below */
    }
    pthread_mutex_lock(&ls.lock);
    while (ls.running > 0)
        pthread_cond_wait(&ls.cv, &ls.lock);
    pthread_mutex_unlock(&ls.lock);
    for (int i = 0; i < chains; i++)
        join(c[i].prev);
    double t = now() - t0;
    if (chains == 4)
        note_peak();
    size_t peak = 0;
    for (int i = 0; i < chains; i++) {
        for (size_t j = 0; j < LS_SLOTS; j++)
            if (c[i].slots[j].p)
                res.checksum += obj_free(&c[i].slots[j]);
        free(c[i].slots);
        res.checksum += c[i].sum;
        peak += c[i].live_peak + LS_SLOTS * sizeof(obj_t);
    }
    if (peak > res.live_peak)
        res.live_peak = peak;
    free(c);
    return t;
}

static void larson(double scale, size_t maxsz, uint64_t seed)
{
    size_t ops = (size_t)(15e6 * scale) + 1000, gens = (size_t)(100 * scale) + 4;
    double t4 = ls_phase(4, ops, gens, maxsz, seed);
    double t8 = ls_phase(8, ops, gens, maxsz, seed + 100);
    extra("part_4threads_s=%.4f part_8threads_s=%.4f", t4, t8);
}

static void w_larson(double scale) { larson(scale, 1024, 1100); }
static void w_larson_mixed(double scale) { larson(scale, 8192, 1200); }

/* ======================================================================== */
/* Workload 13 - rptest: a thread pool passing work around (after           */
/* rpmalloc's rptest).  4 threads each keep a working set of 512 blocks      */
/* replaced at random, and every round also allocate 16 blocks that they     */
/* send, as one batch, to the mailbox of another thread chosen at random,    */
/* which frees them when it next looks.  Sizes 16 B-16 KiB log-uniform, one  */
/* in 16 of 16-128 KiB.  A sender whose target's mailbox holds 8 batches     */
/* empties its own mailbox and yields until there is room.                   */
/* ======================================================================== */

#define RP_THREADS 4
#define RP_WS 512
#define RP_KEEP 48 /* working-set replacements per round */
#define RP_PASS 16 /* blocks sent per round */
#define RP_MAILMAX 8

typedef struct rp_batch {
    struct rp_batch *next;
    obj_t o[RP_PASS];
} rp_batch_t;

static struct {
    pthread_mutex_t lock[RP_THREADS];
    rp_batch_t *mail[RP_THREADS];
    atomic_int pending[RP_THREADS];
    atomic_int finished;
    size_t rounds;
    uint64_t sum[RP_THREADS];
    size_t live_peak[RP_THREADS];
} rp;

static size_t rp_size(rng_t *r) { return runi(r, 16) == 0 ? rlog(r, 16 * KiB + 1, 128 * KiB) : rlog(r, 16, 16 * KiB); }

static uint64_t rp_drain(int id)
{
    if (atomic_load(&rp.pending[id]) == 0)
        return 0;
    pthread_mutex_lock(&rp.lock[id]);
    rp_batch_t *b = rp.mail[id];
    rp.mail[id] = NULL;
    atomic_store(&rp.pending[id], 0);
    pthread_mutex_unlock(&rp.lock[id]);
    uint64_t sum = 0;
    while (b) {
        rp_batch_t *next = b->next;
        for (int i = 0; i < RP_PASS; i++)
            sum += obj_free(&b->o[i]);
        free(b);
        b = next;
    }
    return sum;
}

static void *rp_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    rng_t r = rseed(700 + (uint64_t)id);
    obj_t *ws = xcalloc(RP_WS, sizeof *ws);
    uint64_t sum = 0;
    size_t live = 0, peak = 0;
    for (size_t round = 0; round < rp.rounds; round++) {
        for (int k = 0; k < RP_KEEP; k++) {
            obj_t *s = &ws[runi(&r, RP_WS)];
            if (s->p) {
                live -= s->n;
                sum += obj_free(s);
            }
            obj_new(s, &r, rp_size(&r));
            live += s->n;
        }
        if (live > peak)
            peak = live;
        rp_batch_t *b = xmalloc(sizeof *b);
        for (int k = 0; k < RP_PASS; k++)
            obj_new(&b->o[k], &r, rp_size(&r));
        int to = (id + 1 + (int)runi(&r, RP_THREADS - 1)) % RP_THREADS;
        while (atomic_load(&rp.pending[to]) >= RP_MAILMAX) {
            sum += rp_drain(id);
            sched_yield();
        }
        pthread_mutex_lock(&rp.lock[to]);
        b->next = rp.mail[to];
        rp.mail[to] = b;
        atomic_fetch_add(&rp.pending[to], 1);
        pthread_mutex_unlock(&rp.lock[to]);
        sum += rp_drain(id);
        if (id == 0 && round == rp.rounds / 2)
            note_peak();
    }
    /* Nobody sends after counting itself finished; until all have, keep
     * emptying the mailbox so that no sender waits forever. */
    atomic_fetch_add(&rp.finished, 1);
    while (atomic_load(&rp.finished) < RP_THREADS) {
        sum += rp_drain(id);
        sched_yield();
    }
    sum += rp_drain(id);
    for (int i = 0; i < RP_WS; i++)
        if (ws[i].p)
            sum += obj_free(&ws[i]);
    free(ws);
    rp.sum[id] = sum;
    rp.live_peak[id] = peak;
    return NULL;
}

static void w_rptest(double scale)
{
    rp.rounds = (size_t)(75000 * scale) + 1;
    for (int i = 0; i < RP_THREADS; i++)
        pthread_mutex_init(&rp.lock[i], NULL);
    pthread_t t[RP_THREADS];
    for (int i = 0; i < RP_THREADS; i++)
        spawn(&t[i], rp_thread, (void *)(intptr_t)i);
    for (int i = 0; i < RP_THREADS; i++)
        join(t[i]);
    for (int i = 0; i < RP_THREADS; i++) {
        res.checksum += rp.sum[i];
        res.live_peak += rp.live_peak[i] + (size_t)(RP_MAILMAX + 1) * RP_PASS * 8 * KiB; /* estimate */
    }
}

/* ======================================================================== */
/* Workload 14 - threadtest: many threads, each on its own (after glibc's    */
/* bench-malloc-thread).  Each thread replaces random slots of a 1024-slot   */
/* working set, sizes 4 B-32 KiB log-uniform (as likely 4-8 B as 16-32 KiB); */
/* nothing crosses threads.  Run with 1, 4 and 16 threads, the same number   */
/* of replacements in total each time; the time is the sum of the three,     */
/* each part is reported.                                                    */
/* ======================================================================== */

#define TT_WS 1024
#define TT_MAXT 16

static struct {
    pthread_barrier_t start;
    size_t ops; /* per thread */
    int nthreads;
    uint64_t sum[TT_MAXT];
} tt;

static void *tt_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    rng_t r = rseed(800 + 64 * (uint64_t)tt.nthreads + (uint64_t)id);
    obj_t *ws = xcalloc(TT_WS, sizeof *ws);
    uint64_t sum = 0;
    pthread_barrier_wait(&tt.start);
    for (size_t i = 0; i < tt.ops; i++) {
        obj_t *s = &ws[runi(&r, TT_WS)];
        if (s->p)
            sum += obj_free(s);
        obj_new(s, &r, rlog(&r, 4, 32 * KiB));
        if (id == 0 && i == tt.ops / 2 && tt.nthreads == TT_MAXT)
            note_peak();
    }
    for (int i = 0; i < TT_WS; i++)
        if (ws[i].p)
            sum += obj_free(&ws[i]);
    free(ws);
    tt.sum[id] = sum;
    return NULL;
}

static double tt_run(int n, size_t total_ops)
{
    pthread_t t[TT_MAXT];
    tt.nthreads = n;
    tt.ops = total_ops / (size_t)n;
    pthread_barrier_init(&tt.start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++)
        spawn(&t[i], tt_thread, (void *)(intptr_t)i);
    pthread_barrier_wait(&tt.start);
    double t0 = now();
    for (int i = 0; i < n; i++)
        join(t[i]);
    double dt = now() - t0;
    pthread_barrier_destroy(&tt.start);
    for (int i = 0; i < n; i++)
        res.checksum += tt.sum[i];
    return dt;
}

static void w_threadtest(double scale)
{
    size_t ops = (size_t)(16e6 * scale) + 16;
    double t1 = tt_run(1, ops), t4 = tt_run(4, ops), t16 = tt_run(16, ops);
    res.live_peak = TT_MAXT * TT_WS * (32 * KiB / 9); /* 16 working sets of mean size 3.6 KiB */
    extra("part_1thread_s=%.4f part_4threads_s=%.4f part_16threads_s=%.4f", t1, t4, t16);
}

/* ======================================================================== */
/* Workload 15 - swing: a live set that swings, every free remote.           */
/* 2 producer threads allocate blocks of 16 B-64 KiB (log-uniform) in        */
/* batches of 64 and queue them; 2 consumer threads take the oldest batches  */
/* off the queue and free them whenever the live bytes exceed the target.    */
/* The target alternates between 500 MiB and 50 MiB (times SCALE) every 5 s  */
/* (4 s below scale 0.9), 3 cycles (1 below scale 0.9), high first; the work */
/* never stops, so the allocator must give memory back while it is busy.     */
/* RSS, VmData and the live bytes are read 1 s and 3 s into each low phase.  */
/* Throughput: time per million malloc+free.  The checksum covers the first  */
/* 40 000 x SCALE blocks of each producer, the amount every run makes.       */
/* ======================================================================== */

#define SW_PRODUCERS 2
#define SW_CONSUMERS 2
#define SW_BATCH 64
#define SW_LOWS 3

typedef struct sw_batch {
    struct sw_batch *next;
    int producer;
    size_t seq0, bytes;
    obj_t o[SW_BATCH];
} sw_batch_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t room, excess;
    sw_batch_t *head, *tail; /* FIFO: consumers take the oldest */
    size_t target, slack;    /* under lock */
    int stop, drain;         /* under lock */
    atomic_size_t live, ops;
    size_t check_n; /* checksum over each producer's blocks 0 .. check_n - 1 */
    uint64_t sum[SW_CONSUMERS];
    size_t made[SW_PRODUCERS];
} sw = {.lock = PTHREAD_MUTEX_INITIALIZER, .room = PTHREAD_COND_INITIALIZER, .excess = PTHREAD_COND_INITIALIZER};

static void *sw_producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    rng_t r = rseed(1300 + (uint64_t)id);
    size_t seq = 0;
    for (;;) {
        pthread_mutex_lock(&sw.lock);
        while (!sw.stop && atomic_load(&sw.live) > sw.target + sw.slack)
            pthread_cond_wait(&sw.room, &sw.lock);
        int stop = sw.stop;
        pthread_mutex_unlock(&sw.lock);
        if (stop)
            break;
        sw_batch_t *b = xmalloc(sizeof *b);
        b->producer = id;
        b->seq0 = seq;
        b->bytes = sizeof *b;
        for (int i = 0; i < SW_BATCH; i++) {
            obj_new(&b->o[i], &r, rlog(&r, 16, 64 * KiB));
            b->bytes += b->o[i].n;
        }
        seq += SW_BATCH;
        atomic_fetch_add(&sw.live, b->bytes);
        atomic_store(&smp_live, atomic_load(&sw.live));
        atomic_fetch_add(&sw.ops, SW_BATCH + 1);
        b->next = NULL;
        pthread_mutex_lock(&sw.lock);
        if (sw.tail)
            sw.tail->next = b;
        else
            sw.head = b;
        sw.tail = b;
        pthread_cond_signal(&sw.excess);
        pthread_mutex_unlock(&sw.lock);
    }
    sw.made[id] = seq;
    return NULL;
}

static void *sw_consumer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&sw.lock);
        while (!(sw.head && (sw.drain || atomic_load(&sw.live) > sw.target)) && !(sw.drain && !sw.head))
            pthread_cond_wait(&sw.excess, &sw.lock);
        sw_batch_t *b = sw.head;
        if (b) {
            sw.head = b->next;
            if (!sw.head)
                sw.tail = NULL;
        }
        pthread_mutex_unlock(&sw.lock);
        if (!b)
            break; /* draining, and nothing is left */
        for (int i = 0; i < SW_BATCH; i++) {
            uint64_t c = obj_free(&b->o[i]);
            if (b->seq0 + (size_t)i < sw.check_n)
                sum += c + (uint64_t)b->producer;
        }
        size_t bytes = b->bytes;
        free(b);
        atomic_fetch_sub(&sw.live, bytes);
        atomic_store(&smp_live, atomic_load(&sw.live));
        atomic_fetch_add(&sw.ops, SW_BATCH + 1);
        pthread_mutex_lock(&sw.lock);
        pthread_cond_broadcast(&sw.room);
        pthread_mutex_unlock(&sw.lock);
    }
    sw.sum[id] = sum;
    return NULL;
}

static void sw_set(size_t target)
{
    pthread_mutex_lock(&sw.lock);
    sw.target = target;
    sw.slack = target / 64 > MiB ? target / 64 : MiB;
    pthread_cond_broadcast(&sw.room);
    pthread_cond_broadcast(&sw.excess);
    pthread_mutex_unlock(&sw.lock);
}

static void w_swing(double scale, const char *series, double *work_time)
{
    const size_t high = (size_t)(500.0 * (double)MiB * scale), low = (size_t)(50.0 * (double)MiB * scale);
    const double phase = scale < 0.9 ? 4.0 : 5.0;
    const int cycles = scale < 0.9 ? 1 : SW_LOWS;
    sw.check_n = (size_t)(40000 * scale) + SW_BATCH;
    long rss1[SW_LOWS], data1[SW_LOWS], rss3[SW_LOWS], data3[SW_LOWS], rss_high = 0, data_high = 0;
    size_t live1[SW_LOWS], live3[SW_LOWS];
    sampler_start();
    sw_set(high);
    pthread_t p[SW_PRODUCERS], c[SW_CONSUMERS];
    double t0 = now();
    for (int i = 0; i < SW_CONSUMERS; i++)
        spawn(&c[i], sw_consumer, (void *)(intptr_t)i);
    for (int i = 0; i < SW_PRODUCERS; i++)
        spawn(&p[i], sw_producer, (void *)(intptr_t)i);
    for (int k = 0; k < cycles; k++) {
        sw_set(high);
        sleep_until(t0 + (2 * k + 1) * phase);
        long rss, data;
        read_mem(&rss, &data);
        if (rss > rss_high) {
            rss_high = rss;
            data_high = data;
        }
        if (k == 0) {
            note_peak();
            res.live_peak = atomic_load(&sw.live);
        }
        sw_set(low);
        double t_low = now();
        sleep_until(t_low + 1.0);
        read_mem(&rss1[k], &data1[k]);
        live1[k] = atomic_load(&sw.live);
        sleep_until(t_low + 3.0);
        read_mem(&rss3[k], &data3[k]);
        live3[k] = atomic_load(&sw.live);
        sleep_until(t0 + (2 * k + 2) * phase);
    }
    pthread_mutex_lock(&sw.lock);
    sw.stop = 1;
    pthread_cond_broadcast(&sw.room);
    pthread_mutex_unlock(&sw.lock);
    double t_stop = now();
    size_t ops = atomic_load(&sw.ops);
    for (int i = 0; i < SW_PRODUCERS; i++)
        join(p[i]);
    pthread_mutex_lock(&sw.lock);
    sw.drain = 1;
    pthread_cond_broadcast(&sw.excess);
    pthread_mutex_unlock(&sw.lock);
    for (int i = 0; i < SW_CONSUMERS; i++)
        join(c[i]);
    sampler_finish(series, t0);
    for (int i = 0; i < SW_CONSUMERS; i++)
        res.checksum += sw.sum[i];
    for (int i = 0; i < SW_PRODUCERS; i++)
        if (sw.made[i] < sw.check_n) /* too slow to make the checked blocks: a wrong checksum */
            res.checksum ^= 0xBADull << (8 * i);
    /* Time per million malloc+free, so that lower is better as elsewhere. */
    *work_time = (t_stop - t0) / ((double)ops / 1e6);
    char l1[256] = "", l3[256] = "";
    size_t u1 = 0, u3 = 0;
    for (int k = 0; k < cycles; k++) {
        u1 += (size_t)snprintf(l1 + u1, sizeof l1 - u1, "%s%ld:%ld:%zu", k ? "," : "", rss1[k], data1[k], live1[k]);
        u3 += (size_t)snprintf(l3 + u3, sizeof l3 - u3, "%s%ld:%ld:%zu", k ? "," : "", rss3[k], data3[k], live3[k]);
    }
    extra("ops=%zu seconds=%.3f mops_per_s=%.4f high_kib=%zu low_kib=%zu phase_s=%g rss_high_kib=%ld data_high_kib=%ld"
          " low_1s=%s low_3s=%s", ops, t_stop - t0, (double)ops / 1e6 / (t_stop - t0), high / 1024, low / 1024, phase,
          rss_high, data_high, l1, l3);
}

/* ======================================================================== */
/* Workload 16 - threads1k: 1000 threads alive at once.                      */
/* Each thread allocates 64 objects of 16-512 B, then waits on a barrier;    */
/* with all of them waiting, the main thread reads RSS and VmData; then they */
/* free their objects and end.  3 rounds (2 below scale 0.9).  Reported:     */
/* the largest RSS and VmData at the barrier minus the same process's before */
/* any thread started (its main thread has allocated the same 64 objects):   */
/* the memory 1000 threads cost.                                             */
/* ======================================================================== */

#define TK_THREADS 1000
#define TK_OBJECTS 64

static struct {
    pthread_barrier_t held, go;
    uint64_t sum[TK_THREADS];
} tk;

static void tk_objects(obj_t *o, uint64_t seed)
{
    rng_t r = rseed(seed);
    for (int i = 0; i < TK_OBJECTS; i++)
        obj_new(&o[i], &r, rlog(&r, 16, 512));
}

static void *tk_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    obj_t o[TK_OBJECTS];
    tk_objects(o, 900 + (uint64_t)id);
    pthread_barrier_wait(&tk.held);
    pthread_barrier_wait(&tk.go);
    uint64_t sum = 0;
    for (int i = 0; i < TK_OBJECTS; i++)
        sum += obj_free(&o[i]);
    tk.sum[id] = sum;
    return NULL;
}

static void w_threads1k(double scale)
{
    int rounds = scale < 0.9 ? 2 : 3;
    obj_t mine[TK_OBJECTS];
    tk_objects(mine, 899);
    long rss0, data0, maps0 = count_maps();
    read_mem(&rss0, &data0);
    pthread_t *t = xcalloc(TK_THREADS, sizeof *t);
    long rss_d = 0, data_d = 0, maps = 0, rss_first = 0;
    for (int k = 0; k < rounds; k++) {
        pthread_barrier_init(&tk.held, NULL, TK_THREADS + 1);
        pthread_barrier_init(&tk.go, NULL, TK_THREADS + 1);
        for (int i = 0; i < TK_THREADS; i++)
            spawn(&t[i], tk_thread, (void *)(intptr_t)i);
        pthread_barrier_wait(&tk.held);
        long rss, data;
        read_mem(&rss, &data);
        long m = count_maps();
        if (k == 0) {
            rss_first = rss - rss0;
            note_peak();
        }
        if (rss - rss0 > rss_d)
            rss_d = rss - rss0;
        if (data - data0 > data_d)
            data_d = data - data0;
        if (m > maps)
            maps = m;
        pthread_barrier_wait(&tk.go);
        for (int i = 0; i < TK_THREADS; i++)
            join(t[i]);
        pthread_barrier_destroy(&tk.held);
        pthread_barrier_destroy(&tk.go);
        for (int i = 0; i < TK_THREADS; i++)
            res.checksum += tk.sum[i];
    }
    free(t);
    for (int i = 0; i < TK_OBJECTS; i++)
        res.checksum += obj_free(&mine[i]);
    res.live_peak = (TK_THREADS + 1) * TK_OBJECTS * 128;
    extra("threads=%d rounds=%d base_rss_kib=%ld base_data_kib=%ld base_maps=%ld rss_delta_kib=%ld"
          " rss_delta_first_kib=%ld data_delta_kib=%ld maps_held=%ld",
          TK_THREADS, rounds, rss0, data0, maps0, rss_d, rss_first, data_d, maps);
}

/* ======================================================================== */
/* Workload 17 - churn3: 3 threads churning a 200 MiB (times SCALE) live     */
/* heap of 16 B-256 KiB objects (log-uniform), the RLIMIT_DATA bisection's   */
/* multi-threaded case.  Each thread fills an array of slots, then replaces  */
/* random slots; after each of 8 rounds the arrays move on to the next       */
/* thread, so from the second round on most frees are of objects another     */
/* thread allocated.  The live bytes are counted exactly (one shared atomic  */
/* counter), so the bisection's "live" is the true peak.                     */
/* ======================================================================== */

#define C3_THREADS 3
#define C3_ROUNDS 8

static struct {
    obj_t *arr[C3_THREADS];
    size_t slots, ops; /* per array; replacements per thread and round */
    pthread_barrier_t bar;
    atomic_size_t live, peak;
    uint64_t sum[C3_THREADS];
} c3;

static void c3_add(size_t n)
{
    size_t v = atomic_fetch_add(&c3.live, n) + n, p = atomic_load(&c3.peak);
    while (v > p && !atomic_compare_exchange_weak(&c3.peak, &p, v))
        ;
}

static void *c3_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    rng_t r = rseed(1400 + (uint64_t)id);
    uint64_t sum = 0;
    obj_t *a = c3.arr[id];
    for (size_t i = 0; i < c3.slots; i++) {
        obj_new(&a[i], &r, rlog(&r, 16, 256 * KiB));
        c3_add(a[i].n);
    }
    pthread_barrier_wait(&c3.bar);
    for (int round = 0; round < C3_ROUNDS; round++) {
        a = c3.arr[(id + round) % C3_THREADS];
        for (size_t i = 0; i < c3.ops; i++) {
            obj_t *s = &a[runi(&r, c3.slots)];
            atomic_fetch_sub(&c3.live, s->n);
            sum += obj_free(s);
            obj_new(s, &r, rlog(&r, 16, 256 * KiB));
            c3_add(s->n);
        }
        pthread_barrier_wait(&c3.bar);
        if (id == 0 && round == C3_ROUNDS / 2)
            note_peak();
    }
    c3.sum[id] = sum;
    return NULL;
}

static void w_churn3(double scale)
{
    /* The mean of log-uniform 16 B-256 KiB is (256 Ki - 16) / ln(16 Ki) = 27 012 B. */
    c3.slots = (size_t)(200.0 * (double)MiB * scale / C3_THREADS / 27012.0) + 16;
    c3.ops = (size_t)(12000 * scale) + 16;
    for (int i = 0; i < C3_THREADS; i++)
        c3.arr[i] = xcalloc(c3.slots, sizeof(obj_t));
    c3_add(C3_THREADS * c3.slots * sizeof(obj_t));
    pthread_barrier_init(&c3.bar, NULL, C3_THREADS);
    pthread_t t[C3_THREADS];
    for (int i = 0; i < C3_THREADS; i++)
        spawn(&t[i], c3_thread, (void *)(intptr_t)i);
    for (int i = 0; i < C3_THREADS; i++)
        join(t[i]);
    pthread_barrier_destroy(&c3.bar);
    for (int i = 0; i < C3_THREADS; i++) {
        for (size_t j = 0; j < c3.slots; j++)
            res.checksum += obj_free(&c3.arr[i][j]);
        free(c3.arr[i]);
        res.checksum += c3.sum[i];
    }
    res.live_peak = atomic_load(&c3.peak);
}

/* ======================================================================== */
/* noop: one small allocation.  Not timed: the runner uses it to find the    */
/* RLIMIT_DATA a process needs before the workload's heap (libc, the         */
/* allocator's start-up), the baseline of the RLIMIT_DATA table.             */
/* ======================================================================== */

static void w_noop(void)
{
    rng_t r = rseed(10);
    obj_t o;
    obj_new(&o, &r, 100);
    res.live_peak = o.n;
    res.checksum += obj_free(&o);
}

/* ======================================================================== */
/* spawn: the runner starts every measured process through this launcher.   */
/* ru_maxrss of a process includes the RSS of what it was before exec: a     */
/* child forked by the Python runner would report the runner's ~20 MiB as    */
/* its own peak.  This launcher is small, so its children start clean; it    */
/* sets LD_PRELOAD from GM_BENCH_PRELOAD in the child only (the launcher     */
/* itself runs on glibc), waits, and reports the child's wall time and peak  */
/* RSS (covering the child's own waited-for children, e.g. gcc's cc1) on     */
/* stderr.  Exit status: the child's, or 128 + signal.                       */
/* ======================================================================== */

static int spawn_cmd(char **argv)
{
    const char *preload = getenv("GM_BENCH_PRELOAD");
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        fatal(1, "fork failed", 0);
    if (pid == 0) {
        if (preload && *preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        unsetenv("GM_BENCH_PRELOAD");
        execvp(argv[0], argv);
        fatal(127, "exec failed", 0);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR)
            fatal(1, "wait4 failed", 0);
    double t = now() - t0;
    fprintf(stderr, "\ngm-bench-spawn: wall_s=%.4f maxrss_kib=%ld\n", t, ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ======================================================================== */
/* Driver.                                                                   */
/* ======================================================================== */

static const char *const names[] = {"small",     "xthread",      "prodcons", "server",    "random",
                                    "large",     "churn",        "peakfree", "fragfree",  "randfree",
                                    "larson",    "larson_mixed", "rptest",   "threadtest", "swing",
                                    "threads1k", "churn3",       "noop"};

int main(int argc, char **argv)
{
    static char outbuf[8192]; /* stdio must not allocate either */
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    if (argc < 2) {
        fprintf(stderr, "usage: %s WORKLOAD [SCALE [SERIES_FILE]] | probe | list\n", argv[0]);
        return 1;
    }
    const char *w = argv[1];
    double scale = argc > 2 ? strtod(argv[2], NULL) : 1.0;
    const char *series = argc > 3 ? argv[3] : NULL;
    if (!strcmp(w, "spawn"))
        return argc > 2 ? spawn_cmd(argv + 2) : 1;
    if (!strcmp(w, "list")) {
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
            printf("%s\n", names[i]);
        return 0;
    }
    if (!strcmp(w, "probe")) { /* which object's malloc did the dynamic linker bind? */
        Dl_info info;
        void *(*volatile m)(size_t) = malloc;
        if (!dladdr((void *)m, &info) || !info.dli_fname)
            return 1;
        printf("malloc_from=%s\n", info.dli_fname);
        return 0;
    }
    if (!(scale > 0)) {
        fprintf(stderr, "gm-bench: bad scale\n");
        return 1;
    }
    long rss0, data0;
    read_mem(&rss0, &data0);
    double t0 = now(), t = -1;
    if (!strcmp(w, "small"))
        w_small(scale);
    else if (!strcmp(w, "xthread"))
        w_xthread(scale);
    else if (!strcmp(w, "prodcons"))
        w_prodcons(scale);
    else if (!strcmp(w, "server"))
        w_server(scale);
    else if (!strcmp(w, "random"))
        w_random(scale);
    else if (!strcmp(w, "large"))
        w_large(scale);
    else if (!strcmp(w, "churn"))
        w_churn(scale);
    else if (!strcmp(w, "peakfree"))
        w_peakfree(scale, series, &t);
    else if (!strcmp(w, "fragfree"))
        w_fragfree(scale, series, &t);
    else if (!strcmp(w, "randfree"))
        w_randfree(scale, series, &t);
    else if (!strcmp(w, "larson"))
        w_larson(scale);
    else if (!strcmp(w, "larson_mixed"))
        w_larson_mixed(scale);
    else if (!strcmp(w, "rptest"))
        w_rptest(scale);
    else if (!strcmp(w, "threadtest"))
        w_threadtest(scale);
    else if (!strcmp(w, "swing"))
        w_swing(scale, series, &t);
    else if (!strcmp(w, "threads1k"))
        w_threads1k(scale);
    else if (!strcmp(w, "churn3"))
        w_churn3(scale);
    else if (!strcmp(w, "noop"))
        w_noop();
    else {
        fprintf(stderr, "gm-bench: unknown workload '%s'\n", w);
        return 1;
    }
    if (t < 0)
        t = now() - t0;
    printf("workload=%s scale=%g time_s=%.4f checksum=0x%016" PRIx64 " live_peak=%zu maps_peak=%ld"
           " rss_at_peak_kib=%ld data_at_peak_kib=%ld rss_start_kib=%ld data_start_kib=%ld %s\n",
           w, scale, t, res.checksum, res.live_peak, res.maps_peak, res.rss_at_peak, res.data_at_peak,
           rss0, data0, res.extra);
    return 0;
}
