/* death.h — the death-test harness of api_death.c and api_checked.c: each
 * case runs in a child process whose stderr goes to a pipe; the child must
 * be killed by SIGABRT after printing exactly one line that starts with
 * "gomalloc: ", says what went wrong (the case's word) and names the pointer
 * as printf's %p does. The child reports the pointer it is about to misuse
 * through a second pipe (announce). */
#ifndef GM_DEATH_H
#define GM_DEATH_H
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static int ptr_fd = -1;

/* Tell the parent which pointer the message must name. */
static inline void *announce(void *p)
{
    char b[64];
    int n = snprintf(b, sizeof b, "%p", p);
    if (write(ptr_fd, b, (size_t)n) != n) _exit(99);
    close(ptr_fd);
    return p;
}

static void *volatile sink;

struct death_case {
    const char *name;
    void (*fn)(void);
    const char *word; /* must appear in the message */
};

/* For cases run fresh (run_case(c, true): in a new process image, not in a
 * fork of the test, whose heap is already busy): the test's main calls this
 * first, once for each table of cases it runs. When the process was started
 * to run one case (argv: --case NAME, the pointer pipe's descriptor in
 * DEATH_PTR_FD) and cases has it, it runs it and does not return. */
static inline void death_child(int argc, char **argv, const struct death_case *cases, size_t n)
{
    if (argc != 3 || strcmp(argv[1], "--case") != 0) return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cases[i].name, argv[2]) != 0) continue;
        const char *fd = getenv("DEATH_PTR_FD");
        ptr_fd = fd ? atoi(fd) : -1;
        cases[i].fn();
        _exit(0); /* should not get here */
    }
}

/* Under qemu-user every case runs fresh: a fork of the test would start
 * gomalloc's helper thread in the child of a multi-threaded process
 * (TEST_GAP_FORK). */
static inline bool death_all_fresh(void)
{
    static bool said;
    if (!test_emulator()) return false;
    if (!said) said = test_skip_emulated(TEST_GAP_FORK, "death cases in a fork of the test (each runs fresh instead)");
    return true;
}

static inline size_t read_all(int fd, char *buf, size_t cap)
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

static inline void run_case(const struct death_case *c, bool fresh)
{
    if (getenv("DEATH_PTR_FD")) _exit(97); /* started for a case that no death_child call of main knows */
    fresh = fresh || death_all_fresh();
    int err[2], ptr[2];
    if (pipe(err) != 0 || pipe(ptr) != 0) {
        perror("pipe");
        exit(1);
    }
    /* A fresh case's environment: this one with the pipe's descriptor,
     * built here, as the child may not allocate (see death_all_fresh). */
    char fd_var[32], *envp[TEST_ENV_MAX + 2];
    size_t n = 0;
    for (char **e = environ; *e && n < TEST_ENV_MAX; e++)
        if (strncmp(*e, "DEATH_PTR_FD=", 13) != 0) envp[n++] = *e;
    snprintf(fd_var, sizeof fd_var, "DEATH_PTR_FD=%d", ptr[1]);
    envp[n++] = fd_var;
    envp[n] = NULL;
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
        if (fresh) {
            char *args[] = {(char *)"death-case", (char *)"--case", (char *)c->name, NULL};
            test_exec_self(args, envp);
            _exit(98);
        }
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

    /* qemu-user's own word on the signal that ended the case. */
    char *emu_line = test_emulator() ? strstr(msg, "qemu: uncaught target signal") : NULL;
    if (emu_line) *emu_line = 0;

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

#endif
