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
 * The peak-then-free workloads (peakfree, fragfree) also run a sampler thread
 * that reads VmRSS and VmData from /proc/self/status every 10 ms into memory
 * obtained with mmap, then writes the time series to SERIES_FILE.  Their idle
 * phase sleeps without calling the allocator at all: memory that comes back
 * then comes back by the allocator's own (background) means.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
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

/* Log-uniform in [lo, hi]: as many objects of 16-32 bytes as of 1-2 KiB. */
static size_t rlog(rng_t *r, size_t lo, size_t hi)
{
    double u = (double)(rnext(r) >> 11) * (1.0 / 9007199254740992.0);
    double l = __builtin_log((double)lo), h = __builtin_log((double)hi + 1.0);
    size_t n = (size_t)__builtin_exp(l + u * (h - l));
    return n < lo ? lo : n > hi ? hi : n;
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
    char extra[512];    /* workload-specific key=value pairs */
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
/* Sampler for the peak-then-free workloads: VmRSS and VmData every 10 ms.   */
/* ======================================================================== */

#define SAMPLE_CAP 65536

typedef struct {
    float t;
    int32_t rss_kib, data_kib;          /* the whole process */
    int32_t harness_rss, harness_data;  /* gm-bench's own bookkeeping, KiB */
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
                                  (int32_t)(touched / 1024), (int32_t)(mapped / 1024)};
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
 * heap_rss_mib heap_vmdata_mib": heap = process - base - bookkeeping. */
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
        int len = snprintf(line, sizeof line, "%.3f %.2f %.2f %.2f %.2f\n", s->t - (t_free - smp.t0),
                           s->rss_kib / 1024.0, s->data_kib / 1024.0,
                           (s->rss_kib - smp.base_rss - s->harness_rss) / 1024.0,
                           (s->data_kib - smp.base_data - s->harness_data) / 1024.0);
        if (write(fd, line, (size_t)len) != len)
            fatal(1, "short write to the series file", 0);
    }
    close(fd);
}

/* The idle phase shared by both peak-then-free workloads: sleep without
 * touching the allocator, read RSS and VmData 1 s and 2 s after the free. */
static void idle_phase(double t_free, double idle_s, size_t live, long rss_peak, long data_peak)
{
    long rss1, data1, rss2, data2;
    sleep_until(t_free + 1.0);
    read_mem(&rss1, &data1);
    sleep_until(t_free + 2.0);
    read_mem(&rss2, &data2);
    sleep_until(t_free + idle_s);
    size_t used = strlen(res.extra);
    snprintf(res.extra + used, sizeof res.extra - used,
             " live_after=%zu rss_peak_kib=%ld data_peak_kib=%ld rss_1s_kib=%ld data_1s_kib=%ld"
             " rss_2s_kib=%ld data_2s_kib=%ld base_rss_kib=%ld base_data_kib=%ld",
             live, rss_peak, data_peak, rss1, data1, rss2, data2, smp.base_rss, smp.base_data);
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
/* Workload 9 - fragfree: 90% of small objects die at random.                */
/* Allocate ~512 MiB (times SCALE) of 16-256 byte objects, free 90% of them  */
/* at random, stay idle.  Objects die in random groups of consecutively      */
/* allocated ones: if each died alone, 10% survivors would leave a live      */
/* object on nearly every page and nobody could return anything.  Pages that */
/* still hold a live object cannot go back (the "floor", computed here from  */
/* the live objects' addresses); the report shows how much of the memory     */
/* above that floor each allocator returns.                                  */
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

static void w_fragfree(double scale, const char *series, double *work_time)
{
    sampler_start();
    double t_start = now();
    size_t target = (size_t)(512.0 * (double)MiB * scale);
    size_t cap = 65536, count = 0, total = 0;
    harness_begin();
    obj_t *o = os_alloc(cap * sizeof *o); /* harness memory: not the allocator's */
    harness_end(0, cap * sizeof *o);
    rng_t r = rseed(9);
    while (total < target) {
        if (count == cap) {
            harness_begin();
            o = os_grow(o, cap * sizeof *o, 2 * cap * sizeof *o);
            cap *= 2;
            harness_end(atomic_load(&harness_touched), cap * sizeof *o);
        }
        if ((count & 1023) == 0)
            atomic_store(&harness_touched, (count + 1024) * sizeof *o);
        obj_new(&o[count], &r, rlog(&r, 16, 256));
        total += o[count++].n;
    }
    res.live_peak = total;
    note_peak();
    long rss_peak, data_peak;
    read_mem(&rss_peak, &data_peak);
    size_t harness_peak = (count * sizeof *o + 4095) & ~(size_t)4095; /* touched */
    /* Objects die in groups allocated together (a list, a tree, a parsed
     * document), of 1 to 1024 objects; each group survives with chance 1/10. */
    size_t kept = 0, live = 0;
    for (size_t i = 0; i < count;) {
        size_t g = rlog(&r, 1, 1024);
        int survive = runi(&r, 10) == 0;
        for (size_t end = i + g < count ? i + g : count; i < end; i++) {
            if (survive) {
                o[kept++] = o[i];
                live += o[i].n;
            } else {
                res.checksum += obj_free(&o[i]);
            }
        }
    }
    double t_free = now();
    *work_time = t_free - t_start;
    /* The floor: distinct 4 KiB pages holding a byte of a live object.
     * Computed during the idle phase: it uses only mmap'd memory. */
    size_t maxpages = kept * 2 + 1;
    harness_begin();
    size_t harness = os_trim(o, cap * sizeof *o, kept * sizeof *o);
    uint64_t *pages = os_alloc(maxpages * 8);
    harness_end(harness + maxpages * 8, harness + maxpages * 8);
    size_t np = 0;
    for (size_t i = 0; i < kept; i++) {
        uintptr_t a = (uintptr_t)o[i].p, b = a + o[i].n - 1;
        pages[np++] = a >> 12;
        if ((b >> 12) != (a >> 12))
            pages[np++] = b >> 12;
    }
    sort_u64(pages, np);
    size_t distinct = 0;
    for (size_t i = 0; i < np; i++)
        distinct += i == 0 || pages[i] != pages[i - 1];
    harness_begin();
    munmap(pages, maxpages * 8);
    harness_end(harness, harness);
    snprintf(res.extra, sizeof res.extra, "floor_kib=%zu harness_peak_kib=%zu harness_kib=%zu",
             distinct * 4, harness_peak / 1024, harness / 1024);
    idle_phase(t_free, idle_seconds(scale), live, rss_peak, data_peak);
    sampler_finish(series, t_free);
    for (size_t i = 0; i < kept; i++)
        res.checksum += obj_free(&o[i]);
    munmap(o, harness);
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

static const char *const names[] = {"small", "xthread", "prodcons", "server", "random",
                                    "large", "churn", "peakfree", "fragfree", "noop"};

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
