/*
 * arch.h — what differs between the machines and C libraries gomalloc runs
 * on, in one place: the only header with an architecture builtin, inline
 * assembly or an #if on the architecture, and the small compatibility
 * section for C libraries other than a current glibc. The rest of src/ is
 * plain C11 with GNU attributes and <stdatomic.h>, the same on every 64-bit
 * Linux.
 *
 * Built and tested: x86-64 with glibc (natively), aarch64 with glibc (a
 * cross build run under qemu-user, tests/cross_aarch64.sh) and x86-64 with
 * musl (a static program, tests/musl_static.sh). Another 64-bit
 * architecture takes the portable fallbacks below.
 *
 * Facts the geometry in base.h relies on, checked rather than adapted:
 *  - 4 KiB OS pages (GM_OS_PAGE). x86-64 has nothing else; arm64 kernels
 *    may be built for 16 KiB pages (Apple hardware) or 64 KiB (some
 *    server distributions). There, mprotect and madvise on the heap's
 *    8 KiB pages would fail or reach past them, and calloc's page probes
 *    would read the wrong entries, so gm_arch_check_page_size refuses such
 *    a kernel at start-up instead of running wrong.
 *  - Heap addresses below 2^47 (GM_ADDR_BITS), where the arena index
 *    reaches. x86-64 user space ends there (4-level page tables); arm64's
 *    ends at 2^48, and its kernel places a mapping without a hint near the
 *    top. The heap's arenas come from hints below 2^47 on both; a
 *    reservation the kernel places above is refused (arena.c), so on arm64
 *    a heap that has lost every hint gets ENOMEM where on x86-64 it would
 *    go anywhere. A smaller space (arm64 with 39-bit addresses) loses the
 *    hints, and the kernel's own placement is then below 2^47.
 */
#ifndef GM_ARCH_H
#define GM_ARCH_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The machine                                                              */
/* ------------------------------------------------------------------------ */

/* A fast-moving counter that costs a few cycles to read, for seeding
 * secrets (span.c's free-object key): not a clock, as its rate differs
 * between machines. x86-64: the time-stamp counter. arm64: the virtual
 * counter, which Linux lets user space read (CNTKCTL_EL1.EL0VCTEN; where an
 * erratum makes the kernel trap it, the kernel emulates the read).
 * Elsewhere: the monotonic clock in nanoseconds, which serves as well. */
static inline uint64_t gm_arch_ticks(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t t;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(t));
    return t;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* v in decimal, ending at end: returns where it starts. */
static inline char *gm_arch_utoa(char *end, unsigned long v)
{
    do *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

/* gomalloc needs the OS page size to be os_page (GM_OS_PAGE): if it is
 * not, one line on stderr says so and the process aborts, at the heap's
 * first use (before anything is mapped). Reading it costs nothing: the C
 * library has it from the kernel's auxiliary vector. */
static inline void gm_arch_check_page_size(long os_page)
{
    long size = sysconf(_SC_PAGESIZE);
    if (size == os_page) return;
    static const char head[] = "gomalloc: the kernel's page size is ", mid[] = " bytes, and gomalloc needs ",
                      tail[] = "\n";
    char have[24], need[24];
    char *h = gm_arch_utoa(have + sizeof have, size > 0 ? (unsigned long)size : 0);
    char *n = gm_arch_utoa(need + sizeof need, (unsigned long)os_page);
    struct iovec line[] = {{(void *)head, sizeof head - 1}, {h, (size_t)(have + sizeof have - h)},
                           {(void *)mid, sizeof mid - 1},   {n, (size_t)(need + sizeof need - n)},
                           {(void *)tail, sizeof tail - 1}};
    ssize_t w = writev(2, line, sizeof line / sizeof line[0]); /* one write: one line */
    (void)w;
    abort();
}

/* ------------------------------------------------------------------------ */
/* The C library                                                            */
/* ------------------------------------------------------------------------ */
/* glibc is the reference; what another C library (musl) or an older glibc
 * lacks is made up for here, each with what it changes. */

/* glibc 2.30 has it, declared under _GNU_SOURCE (which scavenge.c, its
 * one caller, defines; elsewhere the fallback is compiled and unused). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 30) && defined(_GNU_SOURCE)
#define GM_HAVE_COND_CLOCKWAIT 1
#else
#define GM_HAVE_COND_CLOCKWAIT 0
#endif

/* pthread_cond_clockwait on CLOCK_MONOTONIC, for scavenge.c's paced
 * sleep. Without it the deadline is moved to CLOCK_REALTIME for
 * pthread_cond_timedwait, whose condition variables (made with
 * PTHREAD_COND_INITIALIZER) use that clock: a step of the wall clock during
 * the wait lengthens or shortens that one sleep, and the caller's loop
 * looks at its work again either way. */
static inline int gm_cond_wait_monotonic(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *deadline)
{
#if GM_HAVE_COND_CLOCKWAIT
    return pthread_cond_clockwait(c, m, CLOCK_MONOTONIC, deadline);
#else
    struct timespec mono, real;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    int64_t left = (int64_t)(deadline->tv_sec - mono.tv_sec) * 1000000000 + (deadline->tv_nsec - mono.tv_nsec);
    if (left < 0) left = 0;
    int64_t ns = real.tv_nsec + left % 1000000000;
    real.tv_sec += (time_t)(left / 1000000000 + ns / 1000000000);
    real.tv_nsec = (long)(ns % 1000000000);
    return pthread_cond_timedwait(c, m, &real);
#endif
}

/* glibc's writer-preferring rwlock initializer (central.c's BUSY-window
 * lock, which fork takes for writing). Elsewhere the default rwlock:
 * musl's lets a reader in while a writer waits, so a steady stream of first
 * remote frees into full spans could hold fork off; they are rare. */
#if !defined(__GLIBC__) && !defined(PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP)
#define PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP PTHREAD_RWLOCK_INITIALIZER
#endif

/* The heap profile's stack walk is libgcc's unwinder, which finds a
 * frame's unwind tables through glibc's _dl_find_object (2.35): a static
 * musl program cannot link it, so there the profile records sizes with no
 * stacks (profile.c). */
#if defined(__GLIBC__)
#define GM_HAVE_UNWIND 1
#else
#define GM_HAVE_UNWIND 0
#endif

/* struct mallinfo2 is glibc's (2.33); musl's <malloc.h> has neither it nor
 * struct mallinfo, and a program there cannot call what it cannot declare:
 * override.c defines mallinfo2 and mallinfo only where they are declared. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#define GM_HAVE_MALLINFO2 1
#else
#define GM_HAVE_MALLINFO2 0
#endif

#endif /* GM_ARCH_H */
