/*
 * static_link.c — built by tools/CMakeLists.txt as the api_static test: a
 * program linked statically with libgomalloc.a and libc.a. malloc must be
 * gomalloc's from libc's first internal allocation to exit: stdio buffers,
 * strdup, threads (whose stacks and TLS libc sets up), and fork.
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
        memset(p, (int)id, n);
        if (p[n - 1] != (unsigned char)id) return (void *)1;
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

    void *big = malloc(3 << 20);
    CHECK(big != NULL);
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.hblkhd >= (3u << 20));
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
