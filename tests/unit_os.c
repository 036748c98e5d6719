/* unit_os.c — layer 1: each OS memory transition does what the kernel says
 * (VmData, VmRSS, mappings) and what the counters say, and fails cleanly;
 * what src/arch.h gives the layers for the machine they run on; and the
 * count of the program's threads, less the disowned ones, through waves of
 * threads larger than the disowned set's first design (64 entries). */
#include "internal.h"
#include "arch.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define SLACK (256 * KiB) /* what the test itself may add to VmData/VmRSS */

static long long vm_data(void) { return test_vm_data(); }
static long long vm_rss(void) { return test_vm_rss(); }

static bool near(long long got, long long want) { return got >= want - (long long)SLACK && got <= want + (long long)SLACK; }

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static void test_reserve_map_unused_decommit(void)
{
    gm_stat mine = 0;
    uint64_t committed0 = gm_stat_load(&gm_os.committed), reserved0 = gm_stat_load(&gm_os.reserved);
    long long data0 = vm_data();
    long maps0 = gm_sys_mapping_count();
    CHECK(data0 > 0 && maps0 > 0);
    bool data_ok = !test_skip_emulated(TEST_GAP_VM, "VmData across reserve, map, unused, decommit and free");

    /* Reserved costs address space only. */
    uint8_t *r = gm_sys_reserve(NULL, GiB);
    CHECK(r != NULL);
    if (!r) return;
    if (data_ok) CHECK(near(vm_data(), data0));
    CHECK_EQ(gm_stat_load(&gm_os.committed), committed0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0 + GiB);
    CHECK_EQ(gm_sys_mapping_count(), maps0 + 1);

    /* Map 8 MiB in the middle: VmData and the counters grow by exactly that,
     * and the reservation splits into three mappings. */
    uint8_t *m = r + 64 * MiB;
    CHECK_EQ(gm_sys_map(m, 8 * MiB, &mine), 0);
    if (data_ok) CHECK(near(vm_data(), data0 + (long long)(8 * MiB)));
    CHECK_EQ(gm_stat_load(&mine), 8 * MiB);
    CHECK_EQ(gm_stat_load(&gm_os.committed), committed0 + 8 * MiB);
    CHECK_EQ(gm_sys_mapping_count(), maps0 + 3);

    /* Touching makes it resident; unused drops RSS but not VmData. */
    long long rss0 = vm_rss();
    memset(m, 0xab, 8 * MiB);
    long long rss1 = vm_rss();
    CHECK(rss1 >= rss0 + (long long)(8 * MiB) - (long long)SLACK);
    CHECK_EQ(gm_sys_unused(m, 8 * MiB), 0);
    CHECK(vm_rss() <= rss1 - (long long)(8 * MiB) + (long long)SLACK);
    if (data_ok) CHECK(near(vm_data(), data0 + (long long)(8 * MiB)));
    CHECK_EQ(gm_stat_load(&mine), 8 * MiB); /* unused does not account */
    CHECK(all_zero(m, 8 * MiB));            /* DONTNEED on private anon */

    /* Decommit gives VmData and the counters back, and the data is gone. */
    memset(m, 0xcd, 8 * MiB);
    CHECK_EQ(gm_sys_decommit(m, 8 * MiB, &mine), 0);
    if (data_ok) CHECK(near(vm_data(), data0));
    CHECK(vm_rss() <= rss1 - (long long)(8 * MiB) + (long long)SLACK);
    CHECK_EQ(gm_stat_load(&mine), 0);
    CHECK_EQ(gm_stat_load(&gm_os.committed), committed0);
    CHECK_EQ(gm_sys_map(m, 8 * MiB, &mine), 0);
    CHECK(all_zero(m, 8 * MiB));
    CHECK_EQ(gm_stat_load(&mine), 8 * MiB);

    /* Free takes the committed part off the named stat and everything off
     * reserved. */
    CHECK_EQ(gm_sys_free(r, GiB, 8 * MiB, &mine), 0);
    CHECK_EQ(gm_stat_load(&mine), 0);
    CHECK_EQ(gm_stat_load(&gm_os.committed), committed0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0);
    if (data_ok) CHECK(near(vm_data(), data0));
    CHECK_EQ(gm_sys_mapping_count(), maps0);
}

static void test_reserve_hint_and_aligned(void)
{
    /* A taken address is refused, not moved elsewhere. */
    uint8_t *a = gm_sys_reserve(NULL, 4 * MiB);
    CHECK(a != NULL);
    errno = 0;
    void *b = gm_sys_reserve(a + MiB, MiB);
    CHECK(b == NULL);
    CHECK_EQ(errno, EEXIST);
    /* A free address is taken exactly. */
    CHECK_EQ(gm_sys_free(a, 4 * MiB, 0, NULL), 0);
    void *c = gm_sys_reserve(a + MiB, MiB);
    CHECK(c == a + MiB);
    if (c) gm_sys_free(c, MiB, 0, NULL);

    /* Aligned reservation: aligned, exact size, slop not counted. */
    uint64_t reserved0 = gm_stat_load(&gm_os.reserved);
    long maps0 = gm_sys_mapping_count();
    uint8_t *al = gm_sys_reserve_aligned(NULL, 64 * MiB, 64 * MiB);
    CHECK(al != NULL);
    CHECK_EQ((uintptr_t)al & (64 * MiB - 1), 0);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0 + 64 * MiB);
    CHECK_EQ(gm_sys_mapping_count(), maps0 + 1);
    /* The bytes just outside it are not ours: reservations there succeed. */
    void *after = gm_sys_reserve(al + 64 * MiB, 4096);
    CHECK(after == al + 64 * MiB);
    if (after) gm_sys_free(after, 4096, 0, NULL);
    if (al) gm_sys_free(al, 64 * MiB, 0, NULL);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0);
}

static void test_fault_injection(void)
{
    gm_stat mine = 0;
    uint8_t *r = gm_sys_reserve(NULL, 16 * MiB);
    CHECK(r != NULL);
    if (!r) return;
    uint64_t committed0 = gm_stat_load(&gm_os.committed);
    uint64_t fails0 = gm_os.failures[GM_SYS_MAP], calls0 = gm_os.calls[GM_SYS_MAP];
    gm_fault_set(GM_SYS_MAP, 2, 1);
    CHECK_EQ(gm_sys_map(r, 4096, &mine), 0);
    CHECK_EQ(gm_sys_map(r + 4096, 4096, &mine), 0);
    errno = 0;
    CHECK_EQ(gm_sys_map(r + 8192, 4096, &mine), -1);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(gm_stat_load(&mine), 8192);
    CHECK_EQ(gm_stat_load(&gm_os.committed), committed0 + 8192);
    CHECK_EQ(gm_os.failures[GM_SYS_MAP], fails0 + 1);
    CHECK_EQ(gm_os.calls[GM_SYS_MAP], calls0 + 3);
    /* The failed range really is still PROT_NONE: only 2 pages are RW. */
    long long d0 = vm_data();
    CHECK_EQ(gm_sys_map(r + 8192, 4096, &mine), 0); /* armed once only */
    CHECK(near(vm_data(), d0 + 4096));
    CHECK_EQ(gm_stat_load(&mine), 3 * 4096);

    /* Reserve and decommit fail cleanly too. */
    uint64_t reserved0 = gm_stat_load(&gm_os.reserved);
    gm_fault_set(GM_SYS_RESERVE, 0, 1);
    CHECK(gm_sys_reserve(NULL, MiB) == NULL);
    CHECK_EQ(gm_stat_load(&gm_os.reserved), reserved0);
    gm_fault_set(GM_SYS_DECOMMIT, 0, 1);
    CHECK_EQ(gm_sys_decommit(r, 3 * 4096, &mine), -1);
    CHECK_EQ(gm_stat_load(&mine), 3 * 4096);
    gm_fault_clear();
    CHECK_EQ(gm_sys_decommit(r, 3 * 4096, &mine), 0);
    CHECK_EQ(gm_stat_load(&mine), 0);
    CHECK_EQ(gm_stat_load(&gm_os.committed), committed0);
    CHECK_EQ(gm_sys_free(r, 16 * MiB, 0, NULL), 0);
}

/* In a child under RLIMIT_DATA = VmData + 16 MiB: reserving 1 GiB is free,
 * mapping 8 MiB fits, mapping 64 MiB more is refused with the counters
 * unchanged. The exit status has one bit per failed step. */
static int rlimit_child(void)
{
    int bad = 0;
    gm_stat mine = 0;
    struct rlimit rl = {(rlim_t)vm_data() + 16 * MiB, RLIM_INFINITY};
    if (setrlimit(RLIMIT_DATA, &rl) != 0) return 0x80;
    uint8_t *r = gm_sys_reserve(NULL, GiB);
    if (!r) return 1;
    if (gm_sys_map(r, 8 * MiB, &mine) != 0) bad |= 2;
    memset(r, 1, 8 * MiB);
    uint64_t committed = gm_stat_load(&gm_os.committed);
    errno = 0;
    if (gm_sys_map(r + 8 * MiB, 64 * MiB, &mine) != -1 || errno != ENOMEM) bad |= 4;
    if (gm_stat_load(&mine) != 8 * MiB || gm_stat_load(&gm_os.committed) != committed) bad |= 8;
    /* Decommit gives the room back: now 8 + 4 MiB fit again. */
    if (gm_sys_decommit(r, 8 * MiB, &mine) != 0) bad |= 16;
    if (gm_sys_map(r + 8 * MiB, 12 * MiB, &mine) != 0) bad |= 32;
    return bad;
}

static void test_rlimit_data(void)
{
    if (test_skip_emulated(TEST_GAP_RLIMIT, "gm_sys_map under RLIMIT_DATA")) return;
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(rlimit_child());
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

static void test_mapping_count(void)
{
    gm_stat mine = 0;
    uint8_t *r = gm_sys_reserve(NULL, 64 * MiB);
    CHECK(r != NULL);
    if (!r) return;
    long m0 = gm_sys_mapping_count();
    /* Growing a committed prefix keeps one RW mapping (the kernel merges). */
    CHECK_EQ(gm_sys_map(r, 4 * MiB, &mine), 0);
    CHECK_EQ(gm_sys_mapping_count(), m0 + 1);
    CHECK_EQ(gm_sys_map(r + 4 * MiB, 4 * MiB, &mine), 0);
    CHECK_EQ(gm_sys_mapping_count(), m0 + 1);
    /* A hole in the middle of it adds two. */
    CHECK_EQ(gm_sys_map(r + 32 * MiB, 4 * MiB, &mine), 0);
    CHECK_EQ(gm_sys_mapping_count(), m0 + 3);
    CHECK_EQ(gm_sys_free(r, 64 * MiB, 12 * MiB, &mine), 0);
    CHECK_EQ(gm_stat_load(&mine), 0);
    CHECK_EQ(gm_sys_mapping_count(), m0 - 1);
}

/* Resident OS pages of [p, p + n). */
static size_t resident_pages(void *p, size_t n)
{
    static unsigned char vec[(64 << 20) / 4096];
    if (mincore(p, n, vec) != 0) return (size_t)-1;
    size_t k = 0;
    for (size_t i = 0; i < n / 4096; i++) k += vec[i] & 1;
    return k;
}

/* gm_sys_zero makes a range read as zero, and writes (makes resident) only
 * the pages that may hold data: with mincore (no swap) and with pagemap
 * (the path of a system with swap), small ranges and unaligned ones too. */
static void test_zero(void)
{
    const size_t n = 24 * MiB;
    for (int force = 0; force < 2; force++) {
        gm_zero_force_pagemap = force;
        uint8_t *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
        /* Pages 0-99 and the last 3 written; a run in the middle. */
        memset(p, 0xab, 100 * 4096);
        memset(p + 10 * MiB + 123, 0xcd, 3 * MiB);
        memset(p + n - 3 * 4096, 0xef, 3 * 4096);
        size_t before = resident_pages(p, n);
        gm_sys_zero(p, n - 17); /* the last 17 bytes are not the caller's */
        CHECK_EQ(resident_pages(p, n), before); /* nothing untouched was written */
        CHECK(all_zero(p, n - 17)); /* (reading maps the zero page everywhere) */
        CHECK_EQ(p[n - 1], 0xef);
        CHECK(before < 1000);
        memset(p, 0x11, 64 * KiB);
        gm_sys_zero(p, 64 * KiB); /* small: written */
        CHECK(all_zero(p, 64 * KiB));
        munmap(p, n);
    }
    gm_zero_force_pagemap = false;
}

/* src/arch.h: the seed counter moves; this kernel's page size is the one
 * gomalloc needs, and another is refused with one line and abort; the
 * monotonic wait times out at its deadline. This file is compiled without
 * _GNU_SOURCE, so the wait is the fallback through CLOCK_REALTIME that
 * musl takes (scavenge.c's, with _GNU_SOURCE, is glibc's clockwait). */
static void test_arch(void)
{
    uint64_t t0 = gm_arch_ticks();
    test_sleep_ms(2);
    CHECK(gm_arch_ticks() != t0);

    gm_arch_check_page_size(GM_OS_PAGE); /* returns */
    int err[2];
    CHECK_EQ(pipe(err), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(err[1], 2);
        gm_arch_check_page_size(4 * GM_OS_PAGE);
        _exit(0);
    }
    close(err[1]);
    char msg[256] = "", want[256];
    ssize_t n = read(err[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = 0;
    close(err[0]);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    snprintf(want, sizeof want, "gomalloc: the kernel's page size is %ld bytes, and gomalloc needs %ld\n",
             sysconf(_SC_PAGESIZE), 4 * (long)GM_OS_PAGE);
    CHECK(test_one_line(msg, want));

    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    long long start = test_now_ns();
    deadline.tv_nsec += 30000000;
    deadline.tv_sec += deadline.tv_nsec / 1000000000;
    deadline.tv_nsec %= 1000000000;
    pthread_mutex_lock(&m);
    int rc;
    while ((rc = gm_cond_wait_monotonic(&c, &m, &deadline)) == 0) {
    } /* woken for nothing: wait on */
    pthread_mutex_unlock(&m);
    long long waited = test_now_ns() - start;
    CHECK_EQ(rc, ETIMEDOUT);
    CHECK(waited >= 29000000 && waited < 2000000000);
}

/* Waves of threads that disown themselves and wait: the count of the
 * program's threads stays main's alone, a thread that does not disown
 * itself counts, and entries of threads gone leave the set (the second
 * wave fills it past its bound, so the prune and the deletions run). */
enum { DISOWN_WAVE = 1100 };
static pthread_barrier_t disown_ready, disown_go;

static void *disowning_thread(void *arg)
{
    if (arg) gm_sys_thread_disown();
    pthread_barrier_wait(&disown_ready);
    pthread_barrier_wait(&disown_go);
    return NULL;
}

static void test_disowned(void)
{
    static pthread_t t[DISOWN_WAVE + 1];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * KiB);
    /* Main's thread, and under qemu-user the emulator's own thread too. */
    long base = gm_sys_program_threads();
    CHECK(base == 1 || (test_emulator() && base == 2));
    for (int wave = 0; wave < 2; wave++) {
        int n = DISOWN_WAVE + wave; /* the second wave has one thread that stays the program's */
        pthread_barrier_init(&disown_ready, NULL, (unsigned)n + 1);
        pthread_barrier_init(&disown_go, NULL, (unsigned)n + 1);
        for (int i = 0; i < n; i++)
            if (pthread_create(&t[i], &attr, disowning_thread, i < DISOWN_WAVE ? (void *)1 : NULL) != 0) {
                fprintf(stderr, "skipped: disowned: cannot start %d threads here (the disowned set is untested)\n", n);
                return; /* the barriers would never open: the process is torn down by the harness */
            }
        pthread_barrier_wait(&disown_ready);
        CHECK_EQ(gm_sys_program_threads(), base + wave);
        CHECK(gm_sys_disowned_count() >= DISOWN_WAVE);
        pthread_barrier_wait(&disown_go);
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
        pthread_barrier_destroy(&disown_ready);
        pthread_barrier_destroy(&disown_go);
    }
    /* A joined thread may stay listed a moment: its entry leaves with it. */
    long left = -1;
    for (int i = 0; i < 500 && (left != base || gm_sys_disowned_count() != 0); i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        left = gm_sys_program_threads();
    }
    CHECK_EQ(left, base);
    CHECK_EQ(gm_sys_disowned_count(), 0);
    pthread_attr_destroy(&attr);
}

int main(void)
{
    test_arch();
    test_reserve_map_unused_decommit();
    test_reserve_hint_and_aligned();
    test_fault_injection();
    test_rlimit_data();
    test_mapping_count();
    test_zero();
    test_disowned();
    return test_done("unit_os");
}
