/*
 * profile_write.c — layer 6: the heap profile written out (Go's
 * runtime/pprof writeHeap with debug=1; tcmalloc's heap profile files):
 * the legacy text format that both pprofs read, google-pprof (the Perl
 * one of gperftools, which reads only legacy formats) and `go tool pprof`.
 *
 *   heap profile: INUSE_N: INUSE_B [ALLOC_N: ALLOC_B] @ heap_v2/RATE
 *   INUSE_N: INUSE_B [ALLOC_N: ALLOC_B] @ 0xPC 0xPC ...      one per bucket
 *   (empty line)
 *   MAPPED_LIBRARIES:
 *   (/proc/self/maps, as it is)
 *
 * The counts are the samples themselves; "heap_v2" tells both readers that
 * they were taken as Go and tcmalloc take them (a Poisson process over the
 * bytes, RATE bytes apart on average), and each scales a bucket's counts by
 * 1 / (1 - exp(-size/RATE)), size being the bucket's average, which is
 * exact here since a bucket holds blocks of one size. At rate 1 nothing is
 * scaled. Both views are there: in use (allocated less freed) and
 * allocated (pprof's -inuse_space and -alloc_space). The mappings let
 * pprof resolve the addresses to functions of the program and its
 * libraries.
 *
 * Writing neither allocates nor takes a lock: the buckets are walked as
 * profile.c publishes them, the text is built in a buffer on the stack and
 * goes out with write(2) (or fwrite for gm_profile_write's stream), the
 * mappings are read with open and read. So the exit handler and a signal
 * handler (GOMALLOC_PROFILE_SIGNAL) may write a profile at any moment.
 */
#include "profile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

/* Where the text goes: a descriptor or a stream, through a buffer. */
struct gm_prof_out {
    int fd;  /* -1: the stream */
    FILE *f;
    int err; /* the first write error, 0 if none */
    size_t n;
    char buf[8192];
};

static void gm_out_flush(struct gm_prof_out *o)
{
    size_t done = 0;
    while (done < o->n && !o->err) {
        if (o->fd < 0) {
            if (fwrite(o->buf + done, 1, o->n - done, o->f) != o->n - done) o->err = EIO;
            break;
        }
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) o->err = w < 0 ? errno : EIO;
        else done += (size_t)w;
    }
    o->n = 0;
}

static void gm_out_put(struct gm_prof_out *o, const char *p, size_t n)
{
    while (n) {
        if (o->n == sizeof o->buf) gm_out_flush(o);
        size_t k = sizeof o->buf - o->n < n ? sizeof o->buf - o->n : n;
        memcpy(o->buf + o->n, p, k);
        o->n += k;
        p += k;
        n -= k;
    }
}

/* "N: B [N: B]" of in-use and allocated samples. */
static void gm_bput_counts(struct gm_buf *b, uint64_t in_n, uint64_t in_b, uint64_t al_n, uint64_t al_b)
{
    gm_bputu(b, in_n, 0);
    gm_bputs(b, ": ");
    gm_bputu(b, in_b, 0);
    gm_bputs(b, " [");
    gm_bputu(b, al_n, 0);
    gm_bputs(b, ": ");
    gm_bputu(b, al_b, 0);
    gm_bputs(b, "]");
}

/* A bucket's samples, read frees first, so that the in-use count read is
 * never negative (a free is counted after its allocation). */
static void gm_bucket_counts(const struct gm_prof_bucket *bk, uint64_t *allocs, uint64_t *inuse)
{
    uint64_t f = atomic_load((_Atomic uint64_t *)&bk->frees);
    uint64_t a = atomic_load((_Atomic uint64_t *)&bk->allocs);
    *allocs = a;
    *inuse = a >= f ? a - f : 0;
}

static void gm_write_header(struct gm_prof_out *o)
{
    uint64_t in_n = 0, in_b = 0, al_n = 0, al_b = 0;
    for (struct gm_prof_bucket *bk = gm_prof_buckets(); bk; bk = bk->all_next) {
        uint64_t a, in;
        gm_bucket_counts(bk, &a, &in);
        in_n += in;
        in_b += in * bk->size;
        al_n += a;
        al_b += a * bk->size;
    }
    uint64_t rate = gm_prof_last_rate();
    char line[256];
    struct gm_buf b = {line, 0, sizeof line};
    gm_bputs(&b, "heap profile: ");
    gm_bput_counts(&b, in_n, in_b, al_n, al_b);
    gm_bputs(&b, " @ heap_v2/");
    gm_bputu(&b, rate ? rate : GM_PROF_DEFAULT_RATE, 0);
    gm_bputc(&b, '\n');
    gm_out_put(o, line, b.n);
}

static void gm_write_bucket(struct gm_prof_out *o, const struct gm_prof_bucket *bk)
{
    uint64_t a, in;
    gm_bucket_counts(bk, &a, &in);
    if (a == 0) return; /* a bucket of the parent's, in a fork child */
    char line[128 + GM_PROF_DEPTH * 20];
    struct gm_buf b = {line, 0, sizeof line};
    gm_bput_counts(&b, in, in * bk->size, a, a * bk->size);
    gm_bputs(&b, " @");
    for (uint32_t i = 0; i < bk->depth; i++) {
        gm_bputc(&b, ' ');
        gm_bputx(&b, bk->pc[i]);
    }
    gm_bputc(&b, '\n');
    gm_out_put(o, line, b.n);
}

static void gm_write_maps(struct gm_prof_out *o)
{
    static const char head[] = "\nMAPPED_LIBRARIES:\n";
    gm_out_put(o, head, sizeof head - 1);
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char chunk[4096];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        gm_out_put(o, chunk, (size_t)r);
    }
    close(fd);
}

static int gm_prof_write_out(struct gm_prof_out *o)
{
    gm_write_header(o);
    for (struct gm_prof_bucket *bk = gm_prof_buckets(); bk; bk = bk->all_next) gm_write_bucket(o, bk);
    gm_write_maps(o);
    gm_out_flush(o);
    if (o->err) errno = o->err;
    return o->err ? -1 : 0;
}

int gm_prof_write_fd(int fd)
{
    struct gm_prof_out o = {.fd = fd};
    return gm_prof_write_out(&o);
}

GM_API int gm_profile_write(FILE *f)
{
    if (!f) {
        errno = EINVAL;
        return -1;
    }
    struct gm_prof_out o = {.fd = -1, .f = f};
    int saved = errno, r = gm_prof_write_out(&o);
    if (r == 0 && fflush(f) != 0) r = -1;
    if (r == 0) errno = saved;
    return r;
}

/* ------------------------------------------------------------------------ */
/* GOMALLOC_PROFILE's file and signal                                       */
/* ------------------------------------------------------------------------ */

static _Atomic bool gm_prof_complained; /* one line per process */

static void gm_prof_complain(const char *path, int err)
{
    if (!atomic_exchange(&gm_prof_complained, true))
        gm_complain_file(2, "GOMALLOC_PROFILE", "cannot write the heap profile", path, err);
}

/* name's temporary sibling, unique to this process and call (a signal may
 * interrupt a periodic write): NAME.tmp.PID.N. False if it does not fit. */
static bool gm_prof_tmp_name(const char *name, char *tmp, size_t cap)
{
    static _Atomic unsigned long calls;
    struct gm_buf b = {tmp, 0, cap};
    gm_bputs(&b, name);
    gm_bputs(&b, ".tmp.");
    gm_bputu(&b, (uint64_t)getpid(), 0);
    gm_bputc(&b, '.');
    gm_bputu(&b, atomic_fetch_add(&calls, 1), 0);
    if (b.n >= cap) return false;
    tmp[b.n] = 0;
    return true;
}

/* The profile into name directly (a device, a pipe: what cannot be
 * replaced; or a file whose directory refuses the temporary one). */
static void gm_prof_write_in_place(const char *name)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        gm_prof_complain(name, errno);
        return;
    }
    if (gm_prof_write_fd(fd) != 0) gm_prof_complain(name, errno);
    close(fd);
}

/* The profile into a temporary file renamed over name, so that a reader
 * (a periodic write replaces the file while pprof may be reading it) sees
 * the old profile or the new one, never half of one. False if the
 * temporary file cannot be made. */
static bool gm_prof_write_replace(const char *name)
{
    char tmp[GM_PATH_MAX];
    if (!gm_prof_tmp_name(name, tmp, sizeof tmp)) return false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    int r = gm_prof_write_fd(fd), err = errno;
    close(fd);
    if (r == 0 && rename(tmp, name) != 0) r = -1, err = errno;
    if (r != 0) {
        unlink(tmp);
        gm_prof_complain(name, err);
    }
    return true;
}

void gm_prof_write_file(const char *path)
{
    int saved = errno;
    char name[GM_PATH_MAX];
    struct stat st;
    if (!gm_path_expand(path, name, sizeof name)) gm_prof_complain(path, ENAMETOOLONG);
    else if ((stat(name, &st) == 0 && !S_ISREG(st.st_mode)) || !gm_prof_write_replace(name))
        gm_prof_write_in_place(name);
    errno = saved;
}

/* GOMALLOC_PROFILE_PERIOD: the next write's time (gm_now_ms), and the
 * period; 0 when off. */
static const char *gm_prof_period_path;
static uint32_t gm_prof_period_ms;
static _Atomic uint32_t gm_prof_period_next;

void gm_prof_period_start(const char *path, uint32_t seconds)
{
    gm_prof_period_path = path;
    gm_prof_period_ms = seconds * 1000u;
    atomic_store_explicit(&gm_prof_period_next, gm_now_ms() + gm_prof_period_ms, memory_order_release);
}

void gm_prof_period_tick(void)
{
    uint32_t next = atomic_load_explicit(&gm_prof_period_next, memory_order_acquire), now;
    if (!gm_prof_period_ms || (int32_t)((now = gm_now_ms()) - next) < 0) return;
    /* One thread wins the period and writes; the others go on. */
    if (!atomic_compare_exchange_strong(&gm_prof_period_next, &next, now + gm_prof_period_ms)) return;
    gm_prof_write_file(gm_prof_period_path); /* keeps errno */
}

static const char *gm_prof_signal_path;

static void gm_prof_on_signal(int signo)
{
    (void)signo;
    gm_prof_write_file(gm_prof_signal_path); /* keeps errno */
}

void gm_prof_signal_install(int signo, const char *path)
{
    gm_prof_signal_path = path;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gm_prof_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}
