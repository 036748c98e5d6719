/* calloc.c — calloc as a program sees it, run by tests/calloc.sh on glibc and
 * with gomalloc preloaded. Not linked with gomalloc.
 *
 *   reuse MIB      malloc MIB MiB, write two bytes, free, then calloc the
 *                  same size: prints "rss KIB ms MS" (VmRSS growth over the
 *                  calloc, and its time), then checks that every page reads
 *                  as zero ("zero ok").
 *   dirty MIB      malloc, write every byte of every other 64 KiB and the
 *                  last bytes, free, calloc the size minus 13 bytes: every
 *                  byte must read as zero ("zero ok"); then the same after a
 *                  block whose every byte was written.
 *   huge GIB       malloc(GIB GiB), then calloc(1, GIB GiB): prints
 *                  "malloc ok|ENOMEM" and "calloc ok|ENOMEM".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

static long rss_kib(void)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strstr(buf, "VmRSS:");
    return p ? atol(p + 6) : -1;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Every byte of p[0..n) is zero. */
static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int reuse(size_t n)
{
    char *p = malloc(n);
    if (!p) return 1;
    p[0] = 1;
    p[n / 2] = 2;
    free(p);
    long r0 = rss_kib();
    double t0 = now_ms();
    unsigned char *q = calloc(1, n);
    double t1 = now_ms();
    long r1 = rss_kib();
    if (!q) return 1;
    printf("rss %ld ms %.3f\n", r1 - r0, t1 - t0);
    int ok = 1;
    for (size_t i = 0; i < n; i += 4096) ok &= q[i] == 0;
    ok &= q[n / 2] == 0 && q[n - 1] == 0;
    printf("zero %s\n", ok ? "ok" : "BAD");
    free(q);
    return 0;
}

static int dirty(size_t n)
{
    int ok = 1;
    for (int round = 0; round < 2; round++) {
        unsigned char *p = malloc(n);
        if (!p) return 1;
        if (round == 0) {
            for (size_t off = 0; off < n; off += 128 << 10) memset(p + off, 0xa5, 64 << 10);
            memset(p + n - 100, 0x5a, 100);
        } else {
            memset(p, 0xff, n);
        }
        free(p);
        unsigned char *q = calloc(1, n - 13);
        if (!q) return 1;
        ok &= all_zero(q, n - 13);
        free(q);
    }
    printf("zero %s\n", ok ? "ok" : "BAD");
    return 0;
}

static int huge(size_t gib)
{
    size_t n = gib << 30;
    errno = 0;
    void *p = malloc(n);
    printf("malloc %s\n", p ? "ok" : errno == ENOMEM ? "ENOMEM" : "NULL");
    free(p);
    errno = 0;
    p = calloc(1, n);
    printf("calloc %s\n", p ? "ok" : errno == ENOMEM ? "ENOMEM" : "NULL");
    free(p);
    p = malloc(100);
    printf("after %s\n", p ? "ok" : "NULL");
    free(p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s reuse|dirty|huge N\n", argv[0]);
        return 2;
    }
    size_t n = strtoull(argv[2], NULL, 10);
    if (!strcmp(argv[1], "reuse")) return reuse(n * MiB);
    if (!strcmp(argv[1], "dirty")) return dirty(n * MiB);
    if (!strcmp(argv[1], "huge")) return huge(n);
    return 2;
}
