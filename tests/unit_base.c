/* unit_base.c — layer 0 (base.h, base.c): text built without allocating,
 * the number parser, the one fatal printer, and, in a GM_DEBUG build, the
 * check of the lock order (a lock taken out of base.h's order aborts with
 * both ranks; in order, and after release, it does not). */
#include "internal.h"
#include "test.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_text(void)
{
    char line[64];
    struct gm_buf b = {line, 0, sizeof line};
    gm_bputs(&b, "n=");
    gm_bputu(&b, 42, 5);
    gm_bputc(&b, ' ');
    gm_bputi(&b, -7);
    gm_bputc(&b, ' ');
    gm_bputx(&b, 0xc000001230);
    CHECK_EQ(b.n, strlen("n=   42 -7 0xc000001230"));
    CHECK(memcmp(line, "n=   42 -7 0xc000001230", b.n) == 0);
    struct gm_buf small = {line, 0, 4};
    gm_bputs(&small, "truncated");
    CHECK_EQ(small.n, 4); /* output past cap is dropped */
    gm_bputu(&small, 9, 0);
    CHECK_EQ(small.n, 4);
}

static void test_parse(void)
{
    const char *end;
    CHECK_EQ(gm_parse_u64("12345x", &end), 12345);
    CHECK(end && *end == 'x');
    CHECK_EQ(gm_parse_u64("x", &end), 0);
    CHECK(end && *end == 'x'); /* no digit: end == p */
    CHECK_EQ(gm_parse_u64("18446744073709551615", &end), UINT64_MAX);
    CHECK(end && *end == 0);
    gm_parse_u64("18446744073709551616", &end);
    CHECK(end == NULL); /* overflow */
}

/* Runs fn in a child with stderr on a pipe: its status and first line. */
static int in_child(void (*fn)(void), char *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        fn();
        _exit(0);
    }
    close(p[1]);
    ssize_t n = read(p[0], out, cap - 1);
    out[n > 0 ? n : 0] = 0;
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static void fatal_with_pointer(void) { gm_fatal("something broke", (void *)0xc0ffee); }
static void fatal_without(void) { gm_fatal("no pointer here", NULL); }

static void test_fatal(void)
{
    char out[256];
    int st = in_child(fatal_with_pointer, out, sizeof out);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(test_one_line(out, "gomalloc: something broke: 0xc0ffee\n"));
    st = in_child(fatal_without, out, sizeof out);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(test_one_line(out, "gomalloc: no pointer here\n"));
}

#ifdef GM_DEBUG
static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER, inner = PTHREAD_MUTEX_INITIALIZER;

static void in_order(void)
{
    gm_lock(&outer, GM_RANK_TCACHES);
    gm_lock(&inner, GM_RANK_HEAP);
    gm_unlock(&inner, GM_RANK_HEAP);
    gm_unlock(&outer, GM_RANK_TCACHES);
    gm_lock(&inner, GM_RANK_HEAP); /* alone, after release: fine */
    gm_unlock(&inner, GM_RANK_HEAP);
}

static void out_of_order(void)
{
    gm_lock(&inner, GM_RANK_HEAP);
    gm_lock(&outer, GM_RANK_TCACHES); /* must abort before it blocks */
}

static void try_out_of_order(void)
{
    gm_lock(&inner, GM_RANK_HEAP);
    if (gm_trylock(&outer, GM_RANK_TCACHES)) gm_unlock(&outer, GM_RANK_TCACHES); /* a trylock cannot deadlock */
    gm_unlock(&inner, GM_RANK_HEAP);
}

static void test_ranks(void)
{
    char out[256];
    CHECK_EQ(in_child(in_order, out, sizeof out), 0);
    CHECK_EQ(in_child(try_out_of_order, out, sizeof out), 0);
    int st = in_child(out_of_order, out, sizeof out);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(out, "lock order broken") != NULL);
    printf("ranks: %s", out);
}
#endif

int main(void)
{
    test_text();
    test_parse();
    test_fatal();
#ifdef GM_DEBUG
    test_ranks();
#else
    printf("lock ranks: checked in the GM_DEBUG build only (tests/debug_build.sh)\n");
#endif
    return test_done("unit_base");
}
