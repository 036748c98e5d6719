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


/* A field of /proc/self/status in KiB (VmData, VmRSS, ...), read with
 * open/read so that it does not allocate; -1 if absent. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
static inline long test_status_kb(const char *key)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
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
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

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

/* A queue of pointers that threads pass objects through: put returns the
 * oldest object when the ring is full (NULL otherwise), get the oldest or
 * NULL. Initialize with TEST_RING_INIT. */
#define TEST_RING 4096
struct test_ring {
    pthread_mutex_t lock;
    void *slot[TEST_RING];
    size_t head, count;
};
#define TEST_RING_INIT {.lock = PTHREAD_MUTEX_INITIALIZER}
static inline void *test_ring_put(struct test_ring *r, void *p)
{
    void *out = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->count < TEST_RING) {
        r->slot[(r->head + r->count++) % TEST_RING] = p;
    } else { /* full: swap with the oldest */
        out = r->slot[r->head];
        r->slot[r->head] = p;
        r->head = (r->head + 1) % TEST_RING;
    }
    pthread_mutex_unlock(&r->lock);
    return out;
}
static inline void *test_ring_get(struct test_ring *r)
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

/* A deterministic generator (xorshift64*), one state per thread. */
static inline uint64_t test_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Object contents: byte i of an object filled with seed, so that a prefix
 * moved by realloc, or a tail added to it, still checks. */
static inline unsigned char test_pat(uint64_t seed, size_t i)
{
    return (unsigned char)(seed + i + (i >> 8) * 31);
}
static inline void test_fill(void *p, size_t from, size_t to, uint64_t seed)
{
    unsigned char *b = p;
    for (size_t i = from; i < to; i++) b[i] = test_pat(seed, i);
}
static inline bool test_verify(const void *p, size_t n, uint64_t seed)
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
