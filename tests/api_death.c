/*
 * api_death.c — bad pointers die loudly. Each case runs in a child process
 * whose stderr goes to a pipe; the child must be killed by SIGABRT after
 * printing exactly one line that starts with "gomalloc: ", says what went
 * wrong and names the pointer as printf's %p does. The child reports the
 * pointer it is about to misuse through a second pipe. The large double
 * frees run in a fresh process (exec), as a program's would: in a fork of
 * this test the heap is busy, and whatever gomalloc allocated between the
 * two frees would not have taken the block.
 */
#define _GNU_SOURCE
#include <gomalloc.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "death.h"

/* Misuse on purpose. */
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

static void free_stack(void)
{
    char local[32];
    sink = local;
    free(announce(sink));
}

static void free_small_interior(void)
{
    char *p = malloc(64);
    free(announce(p + 16));
}

static void free_large_interior(void)
{
    char *p = malloc(100000);
    free(announce(p + 8192));
}

static void double_free_small(void)
{
    void *keep = malloc(64); /* keeps the span alive */
    char *p = malloc(64);
    sink = keep;
    free(p);
    free(announce(p));
}

static void double_free_large(void)
{
    char *p = malloc(200000);
    free(p);
    free(announce(p));
}

/* Large double frees of every size, with the background scavenger running
 * or not: nothing gomalloc does between the two frees may reuse the block
 * (a helper thread started by the first free would: its stack and thread
 * data come from malloc, the lowest free pages first). */
static void double_free_sized(size_t n)
{
    char *p = malloc(n);
    memset(p, 1, n);
    free(p);
    free(announce(p));
}
static void double_free_300k(void) { double_free_sized(300000); }
static void double_free_1m(void) { double_free_sized(1 << 20); }
static void double_free_4m(void) { double_free_sized(4 << 20); }
static void double_free_64m(void) { double_free_sized(64 << 20); }

/* A second thread of the program, so that the scavenger may run. */
static void *idle_thread(void *arg)
{
    free(malloc(100));
    for (;;) pause();
    return arg;
}

static void double_free_mt(size_t n)
{
    pthread_t t;
    if (pthread_create(&t, NULL, idle_thread, NULL) != 0) abort();
    /* Allocation paths start the scavenger in a multi-threaded program:
     * let it, then free twice with it running. */
    for (int i = 0; i < 100; i++) free(malloc(1 << 20));
    double_free_sized(n);
}
static void double_free_mt_1m(void) { double_free_mt(1 << 20); }
static void double_free_mt_64m(void) { double_free_mt(64 << 20); }

/* A class above 4 KiB is shared: its objects come to a thread a batch at
 * a time. An object freed, then taken back into the batch by a
 * refill, is free with another mark: a second free (or a realloc) must
 * still be caught, whether it is in the batch or on its span's lists. */
static char *freed_shared(void)
{
    void *keep = malloc(6000);
    char *p[3];
    for (int i = 0; i < 3; i++) p[i] = malloc(6000);
    sink = keep;
    for (int i = 0; i < 3; i++) free(p[i]);
    for (int i = 0; i < 64; i++) free(malloc(100)); /* unrelated traffic */
    /* The refill takes p[2] and p[1] back (last freed first): q is p[2]
     * and p[1] waits in the batch. Any p[i] but q is free, wherever. */
    char *q = malloc(6000);
    sink = q;
    return q == p[2] ? p[1] : q == p[1] ? p[2] : p[1];
}

static void double_free_shared(void) { free(announce(freed_shared())); }

static void realloc_freed_shared(void) { sink = realloc(announce(freed_shared()), 100); }

static void gm_double_free_small(void)
{
    void *keep = gm_malloc(200);
    char *p = gm_malloc(200);
    sink = keep;
    gm_free(p);
    gm_free(announce(p));
}

static void realloc_stack(void)
{
    char local[32];
    sink = local;
    sink = realloc(announce(sink), 100);
}

static void realloc_freed_small(void)
{
    void *keep = malloc(48);
    char *p = malloc(48);
    sink = keep;
    free(p);
    sink = realloc(announce(p), 100);
}

static void realloc_large_interior(void)
{
    char *p = malloc(3 << 20);
    sink = realloc(announce(p + 4096), 100);
}

static void free_static(void)
{
    static char data[64];
    sink = data;
    free(announce(sink));
}

static void usable_size_freed_large(void)
{
    char *p = malloc(100000);
    void *keep = malloc(16);
    sink = keep;
    free(p);
    sink = (void *)malloc_usable_size(announce(p));
}

/* Each in a process of its own, as a program's would be. */
static const struct death_case fresh_cases[] = {
    {"double free (300000 B)", double_free_300k, "double free"},
    {"double free (1 MiB)", double_free_1m, "double free"},
    {"double free (4 MiB)", double_free_4m, "double free"},
    {"double free (64 MiB)", double_free_64m, "double free"},
    {"double free (1 MiB, two threads)", double_free_mt_1m, "double free"},
    {"double free (64 MiB, two threads)", double_free_mt_64m, "double free"},
};

static const struct death_case cases[] = {
    {"free of a stack pointer", free_stack, "never allocated"},
    {"free of a static pointer", free_static, "never allocated"},
    {"free of a small interior pointer", free_small_interior, "interior"},
    {"free of a large interior pointer", free_large_interior, "interior"},
    {"double free (small)", double_free_small, "double free"},
    {"double free (large)", double_free_large, "double free"},
    {"gm_free double free (small)", gm_double_free_small, "double free"},
    {"double free (shared class)", double_free_shared, "double free"},
    {"realloc of a freed shared-class pointer", realloc_freed_shared, "freed"},
    {"realloc of a stack pointer", realloc_stack, "never allocated"},
    {"realloc of a freed small pointer", realloc_freed_small, "freed"},
    {"realloc of a large interior pointer", realloc_large_interior, "interior"},
    {"malloc_usable_size of a freed large pointer", usable_size_freed_large, "freed"},
};

int main(int argc, char **argv)
{
    death_child(argc, argv, fresh_cases, sizeof fresh_cases / sizeof fresh_cases[0]);
    death_child(argc, argv, cases, sizeof cases / sizeof cases[0]); /* fresh too under an emulator (death.h) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], false);
    for (size_t i = 0; i < sizeof fresh_cases / sizeof fresh_cases[0]; i++) run_case(&fresh_cases[i], true);
    CHECK_EQ(gm_check(), 0);
    return test_done("api_death");
}
