/*
 * profile.c — the heap profile's test program (tests/profile.sh runs it
 * with gomalloc preloaded and GOMALLOC_PROFILE set; built without
 * gomalloc, it finds gm_profile_write with dlsym).
 *
 *   gm_profile sites MID   three allocation sites of known sizes and
 *                          lifetimes: leaky_site (16384 blocks of 4 KiB,
 *                          never freed: 64 MiB), held_site (256 blocks of
 *                          256 KiB, freed at the end: 64 MiB), temp_site
 *                          (262144 blocks of 512 bytes grown by realloc to
 *                          1 KiB and freed at once: 256 MiB allocated, none
 *                          in use); MID gets gm_profile_write's profile
 *                          while held_site's blocks are live, the exit
 *                          profile comes after they are freed.
 *   gm_profile threads     xthread_site: one thread allocates 4096 blocks
 *                          of 2 KiB and 64 of 64 KiB, another frees them
 *                          all; kept_site: 1024 blocks of 1 KiB made by a
 *                          thread, kept.
 *   gm_profile fork        parent_site (1024 x 1 KiB, kept), then a fork:
 *                          the child makes child_site (2048 x 1 KiB, kept)
 *                          and exits; the parent waits and exits.
 *   gm_profile period MS   period_site: for MS milliseconds, every 10 ms,
 *                          256 blocks of 4 KiB replace the previous 256
 *                          (1 MiB live); then prints the threads the
 *                          process has (/proc/self/status) and leaves with
 *                          _exit, so that no exit handler writes a profile.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *volatile sink;

static NOINLINE void **leaky_site(size_t n, size_t size)
{
    void **v = calloc(n, sizeof *v); /* the list itself: one block */
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(size);
        memset(v[i], 1, 16);
    }
    return v;
}

static NOINLINE void **held_site(size_t n, size_t size)
{
    void **v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(size);
        memset(v[i], 2, 16);
    }
    return v;
}

static NOINLINE void temp_site(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(512);
        p[0] = 1;
        p = realloc(p, 1024);
        sink = p;
        free(p);
    }
}

static int write_profile(const char *path)
{
    int (*write_fn)(FILE *) = (int (*)(FILE *))dlsym(RTLD_DEFAULT, "gm_profile_write");
    if (!write_fn) {
        fprintf(stderr, "gm_profile_write not found: not running on gomalloc\n");
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (!f || write_fn(f) != 0 || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static int sites(const char *mid)
{
    void **leak = leaky_site(16384, 4096);
    void **held = held_site(256, 256 << 10);
    temp_site(262144);
    if (write_profile(mid) != 0) return 1;
    for (size_t i = 0; i < 256; i++) free(held[i]);
    free(held);
    sink = leak;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* threads                                                                  */
/* ------------------------------------------------------------------------ */

#define XN 4096
#define XL 64
static void *xblocks[XN + XL];

static NOINLINE void xthread_site(void)
{
    for (int i = 0; i < XN; i++) xblocks[i] = malloc(2048);
    for (int i = 0; i < XL; i++) xblocks[XN + i] = malloc(64 << 10);
}

static NOINLINE void kept_site(void)
{
    for (int i = 0; i < 1024; i++) sink = malloc(1024);
}

static void *allocator(void *arg)
{
    (void)arg;
    xthread_site();
    kept_site();
    return NULL;
}

static void *freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < XN + XL; i++) free(xblocks[i]);
    return NULL;
}

static int threads(void)
{
    pthread_t a, f;
    if (pthread_create(&a, NULL, allocator, NULL) != 0 || pthread_join(a, NULL) != 0) return 1;
    if (pthread_create(&f, NULL, freer, NULL) != 0 || pthread_join(f, NULL) != 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* fork                                                                     */
/* ------------------------------------------------------------------------ */

static NOINLINE void parent_site(void)
{
    for (int i = 0; i < 1024; i++) sink = malloc(1024);
}

static NOINLINE void child_site(void)
{
    for (int i = 0; i < 2048; i++) sink = malloc(1024);
}

static int forked(void)
{
    parent_site();
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        child_site();
        exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;
    printf("child %d\n", (int)pid);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* period                                                                   */
/* ------------------------------------------------------------------------ */

static NOINLINE void period_site(void **live, int n)
{
    for (int i = 0; i < n; i++) {
        free(live[i]);
        live[i] = malloc(4096);
    }
}

static int period(long ms)
{
    static void *live[256];
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (long t = 0; t < ms; t += 10) {
        period_site(live, 256);
        nanosleep(&tick, NULL);
    }
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0) printf("threads %d\n", atoi(line + 8));
    if (f) fclose(f);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sites") == 0) return sites(argv[2]);
    if (argc == 2 && strcmp(argv[1], "threads") == 0) return threads();
    if (argc == 2 && strcmp(argv[1], "fork") == 0) return forked();
    if (argc == 3 && strcmp(argv[1], "period") == 0) return period(atol(argv[2]));
    fprintf(stderr, "usage: gm_profile sites MID | threads | fork | period MS\n");
    return 2;
}
