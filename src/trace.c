/*
 * trace.c — the memory timeline: with GOMALLOC_TRACE=FILE, a sampler thread
 * appends one CSV line to FILE every GOMALLOC_TRACE_MS milliseconds (10 by
 * default), for gomalloc-plot to draw. Columns (bytes unless named):
 *   time_ms        milliseconds since the library started, three decimals
 *   heap_inuse     bytes in spans in use        } the heap's figures
 *   heap_alloc     bytes of live objects        } (struct gm_stats
 *   heap_sys       heap memory mapped           }  meanings), read
 *   heap_released  free pages returned to the OS}  without the heap lock
 *   committed      read-write bytes the OS layer mapped (heap + metadata)
 *   rss, vm_data   the kernel's VmRSS and VmData (/proc/self/status)
 *   mappings       lines of /proc/self/maps
 * The first line names the columns; a line is written at start, then one per
 * period, and a last one at exit.
 *
 * Why a thread: the timeline must go on while the program computes or
 * sleeps without calling malloc. It is started from the library constructor,
 * never from malloc, because pthread_create allocates and takes libc locks
 * that malloc's caller may hold. Each sample is cheap and allocation-free:
 * atomic counters, the per-thread counters summed under the tcache registry
 * lock (as gm_stats_get does), /proc files read with open/read; the line is
 * formatted in a stack buffer and written with a single write(2) on an
 * O_APPEND descriptor, so lines are never split. The thread itself never
 * allocates, so it has no tcache and adds nothing to what it measures; it
 * is one of os.c's helper threads (every signal blocked, so a program's
 * handlers never run on it, and a 64 KiB stack), and it leaves as the
 * program's last thread does with pthread_exit (scavenge.c's last-thread
 * hook), so that the process ends then, as it would without tracing.
 *
 * Who traces: the process that opens FILE first and takes flock(LOCK_EX) on
 * it, for its lifetime. A program it starts inherits GOMALLOC_TRACE (and,
 * through gomalloc-run, the preload) but finds FILE locked and does not
 * trace, so it never clobbers its parent's timeline; "%p" in FILE stands for
 * the process id, to trace every process into a file of its own. A program
 * that replaces itself with exec closes FILE (close-on-exec) and the new
 * image starts a new timeline in it.
 *
 * fork: the child has no sampler thread, so it must not believe it has one.
 * The prepare handler takes the trace lock (a sample in progress finishes
 * first); the child closes its copy of FILE, marks tracing off and releases
 * the lock, so its exit writes nothing; the parent's flock stays, as it
 * belongs to the open file the parent still holds.
 *
 * Exit: an atexit handler writes the last line under the trace lock and
 * closes FILE; the sampler, which samples under the same lock, sees FILE
 * closed and ends, so the last line is last. A process that ends by _exit or
 * a signal has no last line: the timeline stops at the sample before.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GM_TRACE_LINE 512

static const char gm_trace_header[] =
    "time_ms,heap_inuse,heap_alloc,heap_sys,heap_released,committed,rss,vm_data,mappings\n";

static struct {
    pthread_mutex_t lock; /* taken for each line; fd and period change under it */
    int fd;               /* -1: not tracing (never started, exited, or a child) */
    uint32_t period_ms;
    struct timespec start; /* CLOCK_MONOTONIC at gm_trace_start */
} gm_trace = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static char gm_trace_path[GM_PATH_MAX];

/* ------------------------------------------------------------------------ */
/* One sample                                                               */
/* ------------------------------------------------------------------------ */

/* The number after "key:" in a /proc/self/status text, times 1024 (the
 * values are in kB); -1 if absent. */
static int64_t gm_status_bytes(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; (p = strstr(p, key)) != NULL; p += klen) {
        if ((p != text && p[-1] != '\n') || p[klen] != ':') continue;
        p += klen + 1;
        while (*p == ' ' || *p == '\t') p++;
        int64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (*p - '0');
        return v * 1024;
    }
    return -1;
}

/* VmRSS and VmData in bytes (-1 if unknown), read with open/read. */
static void gm_proc_status(int64_t *rss, int64_t *data)
{
    char text[4096]; /* both lines are in the first 2 KiB of the file */
    *rss = *data = -1;
    if (gm_sys_read_file("/proc/self/status", text, sizeof text) <= 0) return;
    *rss = gm_status_bytes(text, "VmRSS");
    *data = gm_status_bytes(text, "VmData");
}

/* Sample now and write the line. Trace lock held, fd open. */
static void gm_trace_line(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t us = (uint64_t)(now.tv_sec - gm_trace.start.tv_sec) * 1000000u +
                  (uint64_t)(now.tv_nsec / 1000) - (uint64_t)(gm_trace.start.tv_nsec / 1000);
    struct gm_stats_quick q;
    gm_stats_quick(&q);
    int64_t rss, data;
    gm_proc_status(&rss, &data);
    long maps = gm_sys_mapping_count();

    char line[GM_TRACE_LINE];
    struct gm_buf b = {line, 0, sizeof line};
    gm_bputu(&b, us / 1000, 0);
    gm_bputc(&b, '.');
    gm_bputu(&b, us / 100 % 10, 0);
    gm_bputu(&b, us / 10 % 10, 0);
    gm_bputu(&b, us % 10, 0);
    const uint64_t fig[] = {q.heap_inuse, q.heap_alloc, q.heap_sys, q.heap_released, q.committed};
    for (size_t i = 0; i < sizeof fig / sizeof fig[0]; i++) {
        gm_bputc(&b, ',');
        gm_bputu(&b, fig[i], 0);
    }
    const int64_t os[] = {rss, data, maps};
    for (size_t i = 0; i < sizeof os / sizeof os[0]; i++) {
        gm_bputc(&b, ',');
        gm_bputi(&b, os[i]);
    }
    gm_bputc(&b, '\n');
    gm_write_all(gm_trace.fd, line, b.n);
}

/* ------------------------------------------------------------------------ */
/* The sampler thread, exit and fork                                        */
/* ------------------------------------------------------------------------ */

static void gm_timespec_add_ms(struct timespec *t, uint32_t ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000;
    if (t->tv_nsec >= 1000000000) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000;
    }
}

static pthread_t gm_trace_thread;
static _Atomic bool gm_trace_stopping; /* the sampler must return */

static void *gm_trace_main(void *arg)
{
    struct timespec next = gm_trace.start;
    while (!atomic_load(&gm_trace_stopping)) {
        gm_timespec_add_ms(&next, gm_trace.period_ms);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
        pthread_mutex_lock(&gm_trace.lock);
        bool on = gm_trace.fd >= 0 && !atomic_load(&gm_trace_stopping);
        if (on) gm_trace_line();
        pthread_mutex_unlock(&gm_trace.lock);
        if (!on) break;
        /* Behind by more than a period (a stopped process, a slow
         * filesystem): skip the missed samples rather than catch up. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct timespec late = next;
        gm_timespec_add_ms(&late, gm_trace.period_ms);
        if (now.tv_sec > late.tv_sec || (now.tv_sec == late.tv_sec && now.tv_nsec > late.tv_nsec)) next = now;
    }
    return NULL;
}

/* The program's last thread is leaving with pthread_exit: the sampler goes
 * first, so that the process ends with that thread (the exit handler still
 * writes the last line). Waits at most one period. */
static void gm_trace_stop(void)
{
    if (atomic_exchange(&gm_trace_stopping, true)) return;
    gm_sys_join(gm_trace_thread);
}

static void gm_trace_at_exit(void)
{
    pthread_mutex_lock(&gm_trace.lock);
    if (gm_trace.fd >= 0) {
        int saved = errno;
        gm_trace_line();
        close(gm_trace.fd);
        gm_trace.fd = -1;
        errno = saved;
    }
    pthread_mutex_unlock(&gm_trace.lock);
}

static void gm_trace_fork_prepare(void) { pthread_mutex_lock(&gm_trace.lock); }
static void gm_trace_fork_parent(void) { pthread_mutex_unlock(&gm_trace.lock); }

static void gm_trace_fork_child(void)
{
    if (gm_trace.fd >= 0) close(gm_trace.fd);
    gm_trace.fd = -1;
    atomic_store(&gm_trace_stopping, true); /* no sampler here to stop */
    pthread_mutex_unlock(&gm_trace.lock);
}

/* ------------------------------------------------------------------------ */
/* Start                                                                    */
/* ------------------------------------------------------------------------ */

static void gm_trace_complain(const char *what) { gm_complain_file(2, "GOMALLOC_TRACE", what, gm_trace_path, errno); }

void gm_trace_start(const char *path, uint32_t period_ms)
{
    if (!path || !*path || gm_trace.fd >= 0) return;
    if (!gm_path_expand(path, gm_trace_path, sizeof gm_trace_path)) {
        errno = ENAMETOOLONG;
        gm_trace_complain("cannot open");
        return;
    }
    int fd = open(gm_trace_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        gm_trace_complain("cannot open");
        return;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* an ancestor traces into it: not an error */
        close(fd);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && ftruncate(fd, 0) != 0) {
        gm_trace_complain("cannot truncate");
        close(fd);
        return;
    }
    pthread_mutex_lock(&gm_trace.lock);
    gm_trace.fd = fd;
    gm_trace.period_ms = period_ms ? period_ms : 1;
    clock_gettime(CLOCK_MONOTONIC, &gm_trace.start);
    gm_write_all(fd, gm_trace_header, sizeof gm_trace_header - 1);
    gm_trace_line();
    pthread_mutex_unlock(&gm_trace.lock);

    pthread_atfork(gm_trace_fork_prepare, gm_trace_fork_parent, gm_trace_fork_child);
    atexit(gm_trace_at_exit);
    int rc = gm_sys_spawn(&gm_trace_thread, gm_trace_main, "gomalloc-trace");
    if (rc != 0) {
        errno = rc;
        gm_trace_complain("no sampler thread, only the first and last lines");
        return;
    }
    gm_scav_on_last_thread(gm_trace_stop);
}
