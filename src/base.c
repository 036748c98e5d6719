/*
 * base.c — layer 0: text built without allocating, the one fatal printer,
 * and the debug build's check of the lock order (base.h).
 *
 * gomalloc may not call malloc (it is malloc) nor stdio (which does), and
 * its reports and diagnostics must work at exit, in a fork child and with
 * the heap broken: so text goes into a caller's buffer and out with one
 * write(2).
 */
#include "base.h"

#include <stdlib.h>
#include <unistd.h>

void gm_bputc(struct gm_buf *b, char c)
{
    if (b->n < b->cap) b->p[b->n++] = c;
}

void gm_bputs(struct gm_buf *b, const char *s)
{
    while (*s) gm_bputc(b, *s++);
}

void gm_bputu(struct gm_buf *b, uint64_t v, unsigned width)
{
    char d[24];
    unsigned n = 0;
    do d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (unsigned i = n; i < width; i++) gm_bputc(b, ' ');
    while (n) gm_bputc(b, d[--n]);
}

void gm_bputi(struct gm_buf *b, int64_t v)
{
    if (v < 0) gm_bputc(b, '-');
    gm_bputu(b, v < 0 ? -(uint64_t)v : (uint64_t)v, 0);
}

void gm_bputx(struct gm_buf *b, uintptr_t v)
{
    gm_bputs(b, "0x");
    int shift = (int)sizeof v * 8 - 4;
    while (shift > 0 && ((v >> shift) & 15) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) gm_bputc(b, "0123456789abcdef"[(v >> shift) & 15]);
}

void gm_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (!(w < 0 && errno == EINTR)) {
            return;
        }
    }
}

uint64_t gm_parse_u64(const char *p, const char **end)
{
    uint64_t v = 0;
    const char *q = p;
    for (; *q >= '0' && *q <= '9'; q++) {
        uint64_t d = (uint64_t)(*q - '0');
        if (v > (UINT64_MAX - d) / 10) {
            *end = NULL;
            return 0;
        }
        v = v * 10 + d;
    }
    *end = q;
    return v;
}

_Noreturn void gm_fatal(const char *what, const void *p)
{
    char line[256];
    struct gm_buf b = {line, 0, sizeof line - 1};
    gm_bputs(&b, "gomalloc: ");
    gm_bputs(&b, what);
    if (p) {
        gm_bputs(&b, ": ");
        gm_bputx(&b, (uintptr_t)p);
    }
    line[b.n++] = '\n';
    gm_write_all(2, line, b.n);
    abort();
}

#ifdef GM_DEBUG
/* The ranks of the locks this thread holds, in the order taken. The fork
 * handlers hold them all at once: one central lock per class and the rest. */
#define GM_RANKS_HELD_MAX (GM_NUM_CLASSES + 16)
static __thread int gm_ranks_held[GM_RANKS_HELD_MAX];
static __thread unsigned gm_nranks_held;

static _Noreturn void gm_rank_violation(const char *what, int rank, int held)
{
    char line[160];
    struct gm_buf b = {line, 0, sizeof line};
    gm_bputs(&b, what);
    gm_bputs(&b, ": rank ");
    gm_bputu(&b, (uint64_t)rank, 0);
    gm_bputs(&b, " while holding rank ");
    gm_bputu(&b, (uint64_t)held, 0);
    line[b.n < sizeof line ? b.n : sizeof line - 1] = 0;
    gm_fatal(line, NULL);
}

void gm_rank_acquire(int rank, bool ordered)
{
    for (unsigned i = 0; ordered && i < gm_nranks_held; i++)
        if (gm_ranks_held[i] >= rank) gm_rank_violation("lock order broken", rank, gm_ranks_held[i]);
    if (gm_nranks_held == GM_RANKS_HELD_MAX) gm_rank_violation("too many locks held", rank, 0);
    gm_ranks_held[gm_nranks_held++] = rank;
}

void gm_rank_release(int rank)
{
    for (unsigned i = gm_nranks_held; i-- > 0;) {
        if (gm_ranks_held[i] != rank) continue;
        gm_ranks_held[i] = gm_ranks_held[--gm_nranks_held];
        return;
    }
    gm_rank_violation("unlock of a lock not held", rank, 0);
}

void gm_rank_fork_child(void) { gm_nranks_held = 0; }
#endif
