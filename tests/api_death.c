/*
 * api_death.c — bad pointers die loudly. Each case runs in a child process
 * whose stderr goes to a pipe; the child must be killed by SIGABRT after
 * printing exactly one line that starts with "gomalloc: ", says what went
 * wrong and names the pointer as printf's %p does. The child reports the
 * pointer it is about to misuse through a second pipe.
 */
#define _GNU_SOURCE
#include <gomalloc.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Misuse on purpose. */
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

static int ptr_fd = -1;

/* Tell the parent which pointer the message must name. */
static void *announce(void *p)
{
    char b[64];
    int n = snprintf(b, sizeof b, "%p", p);
    if (write(ptr_fd, b, (size_t)n) != n) _exit(99);
    close(ptr_fd);
    return p;
}

static void *volatile sink;

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

struct death_case {
    const char *name;
    void (*fn)(void);
    const char *word; /* must appear in the message */
};

static const struct death_case cases[] = {
    {"free of a stack pointer", free_stack, "never allocated"},
    {"free of a static pointer", free_static, "never allocated"},
    {"free of a small interior pointer", free_small_interior, "interior"},
    {"free of a large interior pointer", free_large_interior, "interior"},
    {"double free (small)", double_free_small, "double free"},
    {"double free (large)", double_free_large, "double free"},
    {"gm_free double free (small)", gm_double_free_small, "double free"},
    {"realloc of a stack pointer", realloc_stack, "never allocated"},
    {"realloc of a freed small pointer", realloc_freed_small, "freed"},
    {"realloc of a large interior pointer", realloc_large_interior, "interior"},
    {"malloc_usable_size of a freed large pointer", usable_size_freed_large, "freed"},
};

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        if (n == cap - 1) break;
    }
    buf[n] = 0;
    return n;
}

static void run_case(const struct death_case *c)
{
    int err[2], ptr[2];
    if (pipe(err) != 0 || pipe(ptr) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        alarm(20);
        close(err[0]);
        close(ptr[0]);
        dup2(err[1], 2);
        close(err[1]);
        ptr_fd = ptr[1];
        c->fn();
        _exit(0); /* should not get here */
    }
    close(err[1]);
    close(ptr[1]);
    char msg[4096], want[64];
    read_all(ptr[0], want, sizeof want);
    read_all(err[0], msg, sizeof msg);
    close(err[0]);
    close(ptr[0]);
    int st = 0;
    waitpid(pid, &st, 0);

    int ok_sig = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    char *nl = strchr(msg, '\n');
    int one_line = nl != NULL && nl[1] == 0;
    int prefix = strncmp(msg, "gomalloc: ", 10) == 0;
    int names = want[0] != 0 && strstr(msg, want) != NULL;
    int says = strstr(msg, c->word) != NULL;
    CHECK(ok_sig);
    CHECK(one_line);
    CHECK(prefix);
    CHECK(names);
    CHECK(says);
    printf("%-44s %s  %s", c->name, ok_sig && one_line && prefix && names && says ? "ok  " : "FAIL",
           msg[0] ? msg : "(no message)\n");
    if (!ok_sig)
        printf("    status %#x (%s %d), expected pointer %s\n", st, WIFSIGNALED(st) ? "signal" : "exit",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), want);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    CHECK_EQ(gm_check(), 0);
    return test_done("api_death");
}
