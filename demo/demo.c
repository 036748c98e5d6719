/*
 * demo.c — a small but real program to run on gomalloc (`make run`).
 *
 * It is plain C against libc's allocation API; gomalloc-run preloads
 * gomalloc under it. Three phases, each checking its own results:
 *   1. text: generates two million words of pseudo-English into a buffer
 *      that grows with realloc, then counts word frequencies in a chained
 *      hash table (strdup'ed keys, calloc'ed buckets, rehashing as it grows)
 *      and prints the most frequent words;
 *   2. threads: four threads count a quarter of the text each in tables of
 *      their own; the main thread merges them and frees the workers' nodes
 *      (frees from another thread than the allocating one), and checks the
 *      merge against phase 1;
 *   3. burst: 200,000 blocks of mixed sizes (one in 200 up to 288 KiB), 90% freed
 *      at random, the survivors' contents verified, then all freed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        perror("malloc");
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */
/* ------------------------------------------------------------------------ */

static const char *const syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "an", "el",
                                        "or", "un", "ber", "con", "dis", "ex", "gra", "hel", "ing", "ly",
                                        "ment", "ous", "pre", "qui", "sion", "tra", "ward", "zen"};
#define NSYL (sizeof syllables / sizeof syllables[0])
#define VOCAB 5000
#define NWORDS 2000000

/* Word number i of the vocabulary, spelled from syllables. */
static size_t spell(unsigned i, char *out)
{
    uint64_t s = 0x1234567ull + i * 0x9e3779b97f4a7c15ull;
    unsigned nsyl = 1 + (unsigned)(rng(&s) % 4);
    size_t n = 0;
    for (unsigned k = 0; k < nsyl; k++) {
        const char *y = syllables[rng(&s) % NSYL];
        size_t l = strlen(y);
        memcpy(out + n, y, l);
        n += l;
    }
    out[n] = 0;
    return n;
}

/* A text of NWORDS words, frequencies skewed toward the first words. */
static char *make_text(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *t = xmalloc(cap);
    char w[64];
    for (unsigned i = 0; i < NWORDS; i++) {
        uint64_t r = rng(&rng_state);
        unsigned idx = (unsigned)(r % (1 + (r >> 32) % VOCAB));
        size_t l = spell(idx, w);
        if (n + l + 2 > cap) {
            cap *= 2;
            char *nt = realloc(t, cap);
            if (!nt) {
                perror("realloc");
                exit(1);
            }
            t = nt;
        }
        memcpy(t + n, w, l);
        n += l;
        t[n++] = (i % 13 == 12) ? '\n' : ' ';
    }
    t[n] = 0;
    *len = n;
    return t;
}

/* ------------------------------------------------------------------------ */
/* Hash table                                                               */
/* ------------------------------------------------------------------------ */

struct node {
    char *word;
    size_t count;
    struct node *next;
};

struct table {
    struct node **b;
    size_t nb, n;
};

static uint64_t hash(const char *s, size_t l)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < l; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void table_init(struct table *t)
{
    t->nb = 64;
    t->n = 0;
    t->b = calloc(t->nb, sizeof *t->b);
    if (!t->b) exit(1);
}

static void table_grow(struct table *t)
{
    size_t nb = t->nb * 2;
    struct node **b = calloc(nb, sizeof *b);
    if (!b) exit(1);
    for (size_t i = 0; i < t->nb; i++) {
        for (struct node *e = t->b[i], *next; e; e = next) {
            next = e->next;
            size_t j = hash(e->word, strlen(e->word)) & (nb - 1);
            e->next = b[j];
            b[j] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

static void table_add(struct table *t, const char *w, size_t l, size_t count)
{
    size_t i = hash(w, l) & (t->nb - 1);
    for (struct node *e = t->b[i]; e; e = e->next)
        if (strncmp(e->word, w, l) == 0 && e->word[l] == 0) {
            e->count += count;
            return;
        }
    struct node *e = xmalloc(sizeof *e);
    e->word = strndup(w, l);
    e->count = count;
    e->next = t->b[i];
    t->b[i] = e;
    if (++t->n > t->nb) table_grow(t);
}

static void table_count(struct table *t, const char *s, const char *end)
{
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\n')) s++;
        const char *w = s;
        while (s < end && *s != ' ' && *s != '\n') s++;
        if (s > w) table_add(t, w, (size_t)(s - w), 1);
    }
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nb; i++)
        for (struct node *e = t->b[i], *next; e; e = next) {
            next = e->next;
            free(e->word);
            free(e);
        }
    free(t->b);
    t->b = NULL;
}

static int by_count(const void *a, const void *b)
{
    const struct node *x = *(const struct node *const *)a, *y = *(const struct node *const *)b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

struct job {
    const char *begin, *end;
    struct table t;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    table_init(&j->t);
    table_count(&j->t, j->begin, j->end);
    return NULL;
}

int main(void)
{
    double t0 = now();

    /* 1. Word frequencies. */
    size_t len;
    char *text = make_text(&len);
    struct table t;
    table_init(&t);
    table_count(&t, text, text + len);
    struct node **all = xmalloc(t.n * sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < t.nb; i++)
        for (struct node *e = t.b[i]; e; e = e->next) all[k++] = e;
    qsort(all, k, sizeof *all, by_count);
    printf("text: %zu bytes, %d words, %zu distinct\n", len, NWORDS, t.n);
    printf("most frequent:");
    for (size_t i = 0; i < 8 && i < k; i++) printf(" %s(%zu)", all[i]->word, all[i]->count);
    printf("\n");

    /* 2. The same count on four threads, merged here. */
    enum { NT = 4 };
    struct job jobs[NT];
    pthread_t th[NT];
    const char *p = text;
    for (int i = 0; i < NT; i++) {
        const char *end = i == NT - 1 ? text + len : text + len * (i + 1) / NT;
        while (end < text + len && *end != ' ' && *end != '\n') end++;
        jobs[i].begin = p;
        jobs[i].end = end;
        p = end;
        if (pthread_create(&th[i], NULL, worker, &jobs[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    struct table merged;
    table_init(&merged);
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        for (size_t b = 0; b < jobs[i].t.nb; b++)
            for (struct node *e = jobs[i].t.b[b]; e; e = e->next) table_add(&merged, e->word, strlen(e->word), e->count);
        table_free(&jobs[i].t); /* frees what the worker allocated */
    }
    size_t mismatches = 0;
    for (size_t i = 0; i < k; i++) {
        const char *w = all[i]->word;
        size_t l = strlen(w), b = hash(w, l) & (merged.nb - 1);
        struct node *e = merged.b[b];
        while (e && strcmp(e->word, w) != 0) e = e->next;
        if (!e || e->count != all[i]->count) mismatches++;
    }
    printf("threads: %d workers, %zu distinct after merge, %zu mismatches\n", NT, merged.n, mismatches);
    table_free(&merged);
    free(all);
    table_free(&t);
    free(text);

    /* 3. A burst: many blocks, most freed at random, the rest verified. */
    enum { NB = 200000 };
    unsigned char **blk = xmalloc(NB * sizeof *blk);
    size_t *sz = xmalloc(NB * sizeof *sz);
    uint64_t s = 42;
    size_t total = 0;
    for (size_t i = 0; i < NB; i++) {
        uint64_t r = rng(&s);
        sz[i] = (r % 200 == 0) ? 32768 + (r >> 20) % (256 << 10) : 16 + (r >> 20) % 1024;
        blk[i] = xmalloc(sz[i]);
        memset(blk[i], (int)(i & 0xff), sz[i]);
        total += sz[i];
    }
    size_t kept = 0;
    for (size_t i = 0; i < NB; i++) {
        if (rng(&s) % 10) {
            free(blk[i]);
            blk[i] = NULL;
        } else {
            kept++;
        }
    }
    size_t bad = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < NB; i++) {
        if (!blk[i]) continue;
        for (size_t j = 0; j < sz[i]; j += 64) {
            bad += blk[i][j] != (unsigned char)(i & 0xff);
            sum += blk[i][j];
        }
        free(blk[i]);
    }
    free(blk);
    free(sz);
    printf("burst: %d blocks, %.1f MiB, %zu kept after freeing 90%%, %zu corrupt, checksum %llu\n", NB,
           total / 1048576.0, kept, bad, (unsigned long long)sum);
    printf("done in %.2f s\n", now() - t0);
    return mismatches || bad ? 1 : 0;
}
