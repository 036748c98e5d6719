/* helper_as_fill.c — a program for tests/rlimit_as.sh, built without
 * gomalloc so that the same binary runs on glibc's malloc and, preloaded,
 * on gomalloc, under the same RLIMIT_AS:
 *
 *   helper_as_fill fill BLOCK        allocate BLOCK-byte blocks until malloc
 *                                    returns NULL, each filled with its own
 *                                    pattern;
 *   helper_as_fill lower BLOCK MIB   first 16 MiB of blocks, then lower
 *                                    RLIMIT_AS to VmSize + MIB MiB with
 *                                    setrlimit, then the same.
 *
 * Then it checks that malloc failed with ENOMEM, that every block still
 * holds its pattern, and that after freeing the newest eighth of the blocks
 * half as many can be allocated again (filled and checked too); and, where
 * gomalloc is loaded (gm_check found by dlsym), that the heap is
 * consistent. It prints one line, "blocks N bytes B", and exits 0, or 1
 * with the reason on stderr.
 *
 * The blocks are a list linked through their first word, so that the
 * program needs no memory of its own as the heap fills; output is formatted
 * on the stack and written with write(2), which never allocates. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test.h"

struct block {
    struct block *next;
    uint64_t seed;
};

static void say(int fd, const char *msg)
{
    ssize_t r = write(fd, msg, strlen(msg));
    (void)r;
}

static int fail(const char *why)
{
    char line[256];
    snprintf(line, sizeof line, "helper_as_fill: %s\n", why);
    say(2, line);
    return 1;
}

/* One block, filled (past its header) with the pattern of seed; NULL when
 * malloc fails, with errno as malloc left it. */
static struct block *take(size_t size, uint64_t seed)
{
    struct block *b = malloc(size);
    if (!b) return NULL;
    b->seed = seed;
    test_fill(b + 1, size - sizeof *b, seed);
    return b;
}

static bool intact(const struct block *b, size_t size)
{
    return test_verify(b + 1, size - sizeof *b, b->seed);
}

/* Allocate until NULL onto *list; returns the count, or -1 if malloc failed
 * without ENOMEM. */
static long fill(struct block **list, size_t size, uint64_t *seed)
{
    long n = 0;
    for (;;) {
        errno = 0;
        struct block *b = take(size, ++*seed);
        if (!b) return errno == ENOMEM ? n : -1;
        b->next = *list;
        *list = b;
        n++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) return fail("usage: helper_as_fill fill|lower BLOCK [MIB]");
    bool lower = strcmp(argv[1], "lower") == 0;
    size_t size = strtoull(argv[2], NULL, 0);
    if (size < sizeof(struct block) || (lower && argc < 4)) return fail("bad arguments");
    struct block *list = NULL;
    uint64_t seed = 0;
    long n = 0;
    if (lower) {
        /* The heap has started and holds 16 MiB before the limit falls. */
        for (; (size_t)n * size < ((size_t)16 << 20); n++) {
            struct block *b = take(size, ++seed);
            if (!b) return fail("malloc failed before the limit was lowered");
            b->next = list;
            list = b;
        }
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
        rl.rlim_cur = (rlim_t)test_status_kb("VmSize") * 1024 + (rlim_t)strtoull(argv[3], NULL, 0) * (1 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) return fail("setrlimit failed");
    }
    long got = fill(&list, size, &seed);
    if (got < 0) return fail("malloc returned NULL without ENOMEM");
    n += got;
    if (n < 16) return fail("fewer than 16 blocks");
    for (struct block *b = list; b; b = b->next)
        if (!intact(b, size)) return fail("a block lost its pattern");

    /* Free the newest eighth; half as many fit again, and all is intact. */
    long nfree = n / 8, again = nfree / 2;
    for (long i = 0; i < nfree; i++) {
        struct block *b = list;
        list = b->next;
        free(b);
    }
    for (long i = 0; i < again; i++) {
        struct block *b = take(size, ++seed);
        if (!b) return fail("malloc failed after frees");
        b->next = list;
        list = b;
    }
    for (struct block *b = list; b; b = b->next)
        if (!intact(b, size)) return fail("a block lost its pattern after the frees");
    int (*check)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "gm_check");
    if (check && check() != 0) return fail("gm_check found the heap inconsistent");

    char line[128];
    snprintf(line, sizeof line, "blocks %ld bytes %llu%s\n", n, (unsigned long long)n * size,
             check ? " gm_check 0" : "");
    say(1, line);
    while (list) {
        struct block *b = list;
        list = b->next;
        free(b);
    }
    return 0;
}
