/* process.c — what a program can see of its malloc besides speed and memory:
 * threads, exit, signals, namespaces. Not linked with gomalloc: the script
 * tests/process.sh runs each mode on glibc and with gomalloc preloaded and
 * compares. Every mode first allocates and frees enough (a burst of 64 KiB
 * blocks) that an allocator with a background helper would have started it.
 *
 *   exit_st        one thread: burst, sleep, then pthread_exit from main.
 *                  The process must end with status 0 at once, and its
 *                  atexit handler must run once, on the last thread.
 *   exit_mt        main starts two workers that allocate and free on and
 *                  off for a while, then calls pthread_exit; the workers
 *                  end: as above, the handler on one of the workers.
 *   exit_mt_wait   as exit_mt, but the workers wait for a signal instead of
 *                  ending (tests/process.sh sends SIGTERM).
 *   threads        after the burst and a sleep: prints the thread count.
 *   threads_mt     four workers allocate, are joined; prints the count at
 *                  once after the joins.
 *   threads_1k     1,000 workers allocate, wait for each other, and end
 *                  together; prints the count at once after the joins (and
 *                  "helper_seen N": threads the program did not make while
 *                  the workers waited).
 *   unshare        burst, sleep, then unshare(CLONE_NEWUSER): prints "ok" or
 *                  the errno name.
 *   unshare_mt     the joins of threads_mt, then unshare(CLONE_NEWUSER).
 *   idle           burst, prints "ready", then sleeps (for signals).
 *   idle_mt        workers allocate, then all threads sleep; "ready".
 *   handler        SIGUSR1's handler records the thread it runs on; workers
 *                  allocate while a child floods the process with SIGUSR1;
 *                  prints "foreign N" (handlers run on threads the program
 *                  did not create) and "handled N".
 * Output goes to stdout with write(2); exit status 0 unless stated.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TIDS 64

static pid_t program_tids[MAX_TIDS];
static atomic_int nprogram_tids;
static atomic_int foreign, handled;
static atomic_int atexit_runs;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void say(const char *s)
{
    ssize_t r = write(1, s, strlen(s));
    (void)r;
}

static void sayf(const char *fmt, long v)
{
    char buf[128];
    snprintf(buf, sizeof buf, fmt, v);
    say(buf);
}

static void note_thread(void)
{
    int i = atomic_fetch_add(&nprogram_tids, 1);
    if (i < MAX_TIDS) program_tids[i] = my_tid();
}

static int is_program_thread(pid_t t)
{
    int n = atomic_load(&nprogram_tids);
    for (int i = 0; i < n && i < MAX_TIDS; i++)
        if (program_tids[i] == t) return 1;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static long threads_now(void)
{
    char buf[4096];
    FILE *f = fopen("/proc/self/status", "r");
    long n = -1;
    while (f && fgets(buf, sizeof buf, f))
        if (strncmp(buf, "Threads:", 8) == 0) n = strtol(buf + 8, NULL, 10);
    if (f) fclose(f);
    return n;
}

/* Prints "thread TID NAME" for each thread but the caller: what a count
 * that is not 1 holds. */
static void name_threads(void)
{
    char path[320], name[64];
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == my_tid()) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(name, sizeof name, f)) {
            char line[384];
            snprintf(line, sizeof line, "thread %s %s", e->d_name, name);
            say(line);
        }
        fclose(f);
    }
    if (d) closedir(d);
}

/* 256 MiB in 64 KiB blocks, written, then freed. */
static void burst(void)
{
    enum { N = 4096, SZ = 64 << 10 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(SZ);
        if (!p[i]) abort();
        memset(p[i], i, SZ);
    }
    for (int i = 0; i < N; i++) free(p[i]);
}

/* Small and large blocks on and off for ms milliseconds. */
static void churn(long ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    void *keep[256] = {0};
    unsigned x = (unsigned)my_tid();
    do {
        for (int i = 0; i < 4096; i++) {
            x = x * 1103515245u + 12345u;
            int k = (x >> 8) % 256;
            free(keep[k]);
            size_t sz = (x >> 20) % 8 == 0 ? (size_t)(256 << 10) + (x % 4096) : 16 + (x >> 16) % 2048;
            keep[k] = malloc(sz);
            if (!keep[k]) abort();
            memset(keep[k], 1, 16);
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    for (int i = 0; i < 256; i++) free(keep[i]);
}

static void on_exit_handler(void)
{
    atomic_fetch_add(&atexit_runs, 1);
    sayf("atexit %ld\n", atomic_load(&atexit_runs));
    say(is_program_thread(my_tid()) ? "atexit on a program thread\n" : "atexit on a foreign thread\n");
}

static void *worker_churn(void *arg)
{
    note_thread();
    churn((long)(intptr_t)arg);
    return NULL;
}

static void *worker_wait(void *arg)
{
    (void)arg;
    note_thread();
    churn(200);
    for (;;) pause();
    return NULL;
}

static pthread_barrier_t many_ready, many_go;

static void *worker_many(void *arg)
{
    (void)arg;
    void *p[64];
    for (int i = 0; i < 64; i++)
        if (!(p[i] = malloc(16 + (size_t)i * 8))) abort();
    pthread_barrier_wait(&many_ready);
    pthread_barrier_wait(&many_go);
    for (int i = 0; i < 64; i++) free(p[i]);
    return NULL;
}

/* The many workers of threads_1k, all ended together and joined. */
static void many_threads(void)
{
    enum { N = 1000 };
    static pthread_t t[N];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 << 10);
    pthread_barrier_init(&many_ready, NULL, N + 1);
    pthread_barrier_init(&many_go, NULL, N + 1);
    for (int i = 0; i < N; i++)
        if (pthread_create(&t[i], &attr, worker_many, NULL) != 0) abort();
    pthread_barrier_wait(&many_ready);
    sleep_ms(300); /* a helper has had its chance to start */
    free(malloc(100)); /* an allocation after the pause, where one would */
    sayf("helper_seen %ld\n", threads_now() - N - 1);
    pthread_barrier_wait(&many_go);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    pthread_attr_destroy(&attr);
}

static void start_workers(int n, void *(*fn)(void *), long ms, pthread_t *t)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (void *)(intptr_t)ms) != 0) abort();
}

static void do_unshare(void)
{
    if (unshare(CLONE_NEWUSER) == 0) say("unshare ok\n");
    else sayf("unshare errno %ld\n", errno);
}

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
    if (!is_program_thread(my_tid())) atomic_fetch_add(&foreign, 1);
}

static int handler_mode(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    burst();
    pthread_t t[3];
    start_workers(3, worker_churn, 1500, t);
    sleep_ms(100);
    pid_t parent = getpid(), child = fork();
    if (child == 0) {
        for (int i = 0; i < 3000; i++) {
            kill(parent, SIGUSR1);
            if (i % 64 == 0) sleep_ms(1);
        }
        _exit(0);
    }
    sleep_ms(300);
    long during = threads_now();
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    sayf("threads_during %ld\n", during);
    sayf("foreign %ld\n", atomic_load(&foreign));
    sayf("handled_some %ld\n", atomic_load(&handled) > 0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    note_thread();
    atexit(on_exit_handler);
    /* A shell starts background jobs with SIGINT ignored: the signal tests
     * want the default action, as a program started from a terminal has. */
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_t t[4];
    if (strcmp(mode, "exit_st") == 0) {
        burst();
        sleep_ms(100);
        pthread_exit(NULL);
    } else if (strcmp(mode, "exit_mt") == 0 || strcmp(mode, "exit_mt_wait") == 0) {
        burst();
        bool wait = strcmp(mode, "exit_mt_wait") == 0;
        start_workers(2, wait ? worker_wait : worker_churn, 700, t);
        sleep_ms(300);
        if (wait) say("ready\n");
        pthread_exit(NULL);
    } else if (strcmp(mode, "threads") == 0 || strcmp(mode, "unshare") == 0) {
        burst();
        sleep_ms(800);
        sayf("threads %ld\n", threads_now());
        if (mode[0] == 'u') do_unshare();
    } else if (strcmp(mode, "threads_mt") == 0 || strcmp(mode, "unshare_mt") == 0) {
        burst();
        start_workers(4, worker_churn, 600, t);
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        sayf("threads %ld\n", threads_now());
        if (mode[0] == 'u') do_unshare();
    } else if (strcmp(mode, "threads_1k") == 0) {
        burst();
        many_threads();
        long n = threads_now();
        sayf("threads %ld\n", n);
        if (n != 1) name_threads();
    } else if (strcmp(mode, "idle") == 0) {
        burst();
        say("ready\n");
        for (;;) pause();
    } else if (strcmp(mode, "idle_mt") == 0) {
        burst();
        start_workers(2, worker_wait, 0, t);
        sleep_ms(400);
        say("ready\n");
        for (;;) pause();
    } else if (strcmp(mode, "handler") == 0) {
        return handler_mode();
    } else {
        fprintf(stderr, "usage: %s MODE\n", argv[0]);
        return 2;
    }
    return 0;
}
