/*
 * static_link.c — built by tools/CMakeLists.txt as the api_static test: a
 * program linked statically with libgomalloc.a and libc.a. malloc must be
 * gomalloc's from libc's first internal allocation to exit: stdio buffers,
 * strdup, threads (whose stacks and TLS libc sets up), and fork; and every
 * block keeps its contents through realloc, in threads too.
 * tests/musl_static.sh builds it against musl's libc.a the same way.
 */
#include <gomalloc.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static void *thread_main(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        size_t n = 16 + (size_t)((i * 131 + id * 7) % 5000);
        unsigned char *p = malloc(n);
        if (!p) return (void *)1;
        test_fill(p, n, id + (uint64_t)i);
        /* Every 16th block grows through realloc (across classes, now and
         * then into a large object) and keeps what it held. */
        if (i % 16 == 0) {
            size_t m = n * 3 + (i % 256 == 0 ? 300000 : 0);
            unsigned char *q = realloc(p, m);
            if (!q) return (void *)1;
            p = q;
        }
        if (!test_verify(p, n, id + (uint64_t)i)) return (void *)1;
        free(p);
    }
    return NULL;
}

int main(void)
{
    /* The standard names are gomalloc's: usable size is a size class. */
    void *p = malloc(100);
    CHECK(p != NULL);
    CHECK_EQ(malloc_usable_size(p), 112);
    CHECK_EQ(gm_malloc_usable_size(p), 112);
    free(p);

    char *s = strdup("static gomalloc");
    CHECK(s && strcmp(s, "static gomalloc") == 0);
    gm_free(s);

    /* realloc keeps the contents, growing (small to large) and shrinking. */
    unsigned char *r = malloc(40);
    CHECK(r != NULL);
    test_fill(r, 40, 5);
    r = realloc(r, 5000);
    CHECK(r != NULL && test_verify(r, 40, 5));
    test_fill(r, 5000, 6);
    r = realloc(r, 2 << 20);
    CHECK(r != NULL && test_verify(r, 5000, 6));
    r = realloc(r, 100);
    CHECK(r != NULL && test_verify(r, 100, 6));
    free(r);

    void *big = malloc(3 << 20);
    CHECK(big != NULL);
    struct gm_stats st;
    gm_stats_get(&st);
    CHECK(st.class_live_bytes[0] >= (3u << 20));
#ifdef __GLIBC__
    struct mallinfo2 mi = mallinfo2(); /* glibc's, replaced (musl has none) */
    CHECK(mi.hblkhd >= (3u << 20));
#endif
    free(big);

    void *a = NULL;
    CHECK_EQ(posix_memalign(&a, 1 << 20, 1000), 0);
    CHECK(((uintptr_t)a & ((1 << 20) - 1)) == 0);
    free(a);

    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) CHECK_EQ(pthread_create(&th[i], NULL, thread_main, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }

    if (!test_skip_emulated(TEST_GAP_FORK, "malloc in a fork child")) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            void *q = malloc(5000);
            _exit(q ? 0 : 1);
        }
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }

    CHECK_EQ(gm_check(), 0);
    return test_done("api_static");
}
