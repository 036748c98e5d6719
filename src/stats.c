/*
 * stats.c — layer 9: statistics (Go's MemStats) and the slow consistency
 * check (Go's ReadMemStatsSlow).
 *
 * Where each figure comes from:
 *   heap_sys, heap_inuse, heap_released   the heap's own counters (heap.c),
 *                                         kept under the heap lock;
 *                                         minus threads' span caches;
 *   heap_idle                             heap_sys - heap_inuse;
 *   metadata by kind                      gm_meta (arena.c), every committed
 *                                         byte of metadata in one kind;
 *   sys                                   heap_sys + all metadata;
 *   committed, reserved                   the OS layer's counters (os.c);
 *   mallocs, frees, per class             summed over every tcache, live or
 *                                         dead (tcaches are reused, never
 *                                         freed, so sums only grow), plus
 *                                         frees by threads without one;
 *   heap_alloc, class_live_bytes          live objects per class times the
 *                                         class size, plus the whole pages
 *                                         of live large objects (class 0);
 *   heap_decommitted, *_total, limit      the scavenger's (scavenge.c).
 * (The list names the counter of each field that is one counter's value.)
 * Counters are per-thread and read without stopping anyone, so a reading
 * taken while other threads allocate is a blend of nearby moments; each
 * figure is exact once they are quiet.
 *
 * gm_check recomputes everything from the heap's structures and compares:
 * in-use pages from the arenas' span tables (a span counted once, at its
 * base page, if it is not dead and its base page maps to it; every page of
 * it must map to it and be allocated in the page allocator's bitmap), free
 * and scavenged pages from the page allocator's chunk bitmaps and from
 * every thread's page cache, live objects per class from the spans' free
 * lists against the counters, live large objects (large spans with a
 * requested size: the heap's own tests make spans without one) against
 * their counters. It must run while no other thread touches the heap.
 *
 * struct gm_stats only grows. gm_stats_read copies no more than the size the
 * caller passes, and names the newest version that fits in it, so a program
 * built against an older header never has bytes written past its struct;
 * the symbol gm_stats_get stays version 1's entry point for programs built
 * before version 2 (the header maps the name to gm_stats_read since).
 *
 * The fields are listed once, in stats_fields.h: the struct is checked
 * against that list at compile time (and unit_stats checks that versions 1
 * and 2 keep the layout they were released with), each version's size
 * comes from it, the fields that are one counter's value are filled from
 * it, and both reports are written row by row from it, in its order.
 *
 * Reports, for people and as JSON (GOMALLOC_STATS=1 / =json), are formatted
 * into a caller's buffer with no stdio and no allocation, so the exit report
 * can go out with write(2). The JSON object has the struct's field names
 * but size, plus program and pid, with the per-class arrays as a "classes"
 * list. It is one line (JSON Lines), so that the reports of a process tree
 * written to one stream or file, one write each, are one object per line
 * that any JSON reader takes.
 *
 * The census behind malloc_info walks the span tables (small spans in use
 * per class) and the page allocator's bitmaps (free page runs) under the
 * heap lock, and the threads' page caches under the registry lock: a cost
 * proportional to the heap, paid only by malloc_info. gm_stats_quick gives
 * the memory timeline (trace.c) its figures without the heap lock.
 */
#include "stats.h"
#include "stats_fields.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Gathering                                                                */
/* ------------------------------------------------------------------------ */

struct gm_counts_sum {
    uint64_t mallocs[GM_NUM_CLASSES], frees[GM_NUM_CLASSES];
    uint64_t large_alloc, large_freed; /* page bytes */
    uint64_t large_req_alloc, large_req_freed; /* requested bytes */
    uint64_t cached;                   /* bytes in threads' span caches */
};

static void gm_sum_tcache(struct gm_tcache *tc, void *arg)
{
    struct gm_counts_sum *sum = arg;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        sum->mallocs[c] += atomic_load_explicit(&tc->counts.mallocs[c], memory_order_relaxed);
        sum->frees[c] += atomic_load_explicit(&tc->counts.frees[c], memory_order_relaxed);
    }
    sum->large_alloc += atomic_load_explicit(&tc->large_bytes_alloc, memory_order_relaxed);
    sum->large_freed += atomic_load_explicit(&tc->large_bytes_freed, memory_order_relaxed);
    sum->large_req_alloc += atomic_load_explicit(&tc->large_req_alloc, memory_order_relaxed);
    sum->large_req_freed += atomic_load_explicit(&tc->large_req_freed, memory_order_relaxed);
    sum->cached += atomic_load_explicit(&tc->hl.cache_put, memory_order_relaxed) -
                   atomic_load_explicit(&tc->hl.cache_took, memory_order_relaxed) -
                   atomic_load_explicit(&tc->hl.cache_drained, memory_order_relaxed);
}

static void gm_sum_counts(struct gm_counts_sum *sum)
{
    memset(sum, 0, sizeof *sum);
    gm_small_for_each_tcache(gm_sum_tcache, sum);
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++)
        sum->frees[c] += atomic_load_explicit(&gm_notc_frees[c], memory_order_relaxed);
    sum->large_freed += atomic_load_explicit(&gm_notc_large_bytes_freed, memory_order_relaxed);
    sum->large_req_freed += atomic_load_explicit(&gm_notc_large_req_freed, memory_order_relaxed);
}

static uint64_t gm_sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static uint64_t gm_meta_total(void)
{
    return gm_stat_load(&gm_meta.arena_index) + gm_stat_load(&gm_meta.arenas) + gm_stat_load(&gm_meta.pagealloc) +
           gm_stat_load(&gm_meta.spans) + gm_stat_load(&gm_meta.tcaches) + gm_stat_load(&gm_meta.other);
}

/* Live bytes per class (class 0: whole pages of large objects) into live[]
 * if not NULL; returns their sum, heap_alloc. */
static uint64_t gm_live_bytes(const struct gm_counts_sum *sum, uint64_t *live)
{
    uint64_t total = 0;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        uint64_t v = c ? gm_sub0(sum->mallocs[c], sum->frees[c]) * gm_class_size[c]
                       : gm_sub0(sum->large_alloc, sum->large_freed);
        if (live) live[c] = v;
        total += v;
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* The list (stats_fields.h): the struct checked against it, the table      */
/* ------------------------------------------------------------------------ */

/* What the reports show: the struct, then the text report's own figures. */
struct gm_figures {
    struct gm_stats st;
    uint64_t large;     /* class_live_bytes[0] */
    uint64_t large_req; /* bytes requested by live large objects */
};
_Static_assert(offsetof(struct gm_figures, st) == 0, "a field's offset in the struct is its offset here");

/* struct gm_stats as the list declares it. The public struct, written out
 * for its readers, must be this one: every field with the list's type at
 * the offset the list's order gives, and nothing else. A field read from a
 * counter (not NULL, which is a void *) is a uint64_t: the fill copies 8
 * bytes into it. */
#define GM_DECLARE(name, type, since, show, counter, doc) type name;
#define GM_NOT_IN_STRUCT(name, show, doc)
struct gm_stats_listed {
    GM_STATS_LIST(GM_DECLARE, GM_NOT_IN_STRUCT)
};
#define GM_SAME_FIELD(name, type, since, show, counter, doc)                                                     \
    _Static_assert(offsetof(struct gm_stats, name) == offsetof(struct gm_stats_listed, name) &&                 \
                       __builtin_types_compatible_p(__typeof__(((struct gm_stats *)0)->name), type) &&        \
                       since >= 1 && since <= GM_STATS_VERSION &&                                             \
                       (__builtin_types_compatible_p(__typeof__(counter), void *) ||                          \
                        __builtin_types_compatible_p(type, uint64_t)),                                        \
                   "struct gm_stats." #name " is not where, or what, stats_fields.h says");
GM_STATS_LIST(GM_SAME_FIELD, GM_NOT_IN_STRUCT)
_Static_assert(sizeof(struct gm_stats) == sizeof(struct gm_stats_listed), "struct gm_stats has a field the list lacks");

/* The list as a table, for the reports and the documents. */
#define GM_FIELD_ROW(name, type, since, show, counter, doc)                                                      \
    {#name, doc, show, since, offsetof(struct gm_stats, name), sizeof(type),                                    \
     __builtin_types_compatible_p(type, int64_t), counter},
#define GM_TEXT_ONLY_ROW(name, show, doc)                                                                        \
    {#name, doc, show, 0, offsetof(struct gm_figures, name), sizeof(uint64_t), false, NULL},
const struct gm_stat_row gm_stat_rows[] = {GM_STATS_LIST(GM_FIELD_ROW, GM_TEXT_ONLY_ROW)};
const size_t gm_stat_row_count = sizeof gm_stat_rows / sizeof gm_stat_rows[0];

size_t gm_stats_version_size(unsigned v)
{
    size_t size = 0;
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        if (r->since >= 1 && r->since <= v && r->offset + r->size > size) size = r->offset + r->size;
    }
    return size;
}

/* The value of row's figure in f; i indexes a per-class array. */
static uint64_t gm_row_value(const struct gm_figures *f, const struct gm_stat_row *row, unsigned i)
{
    const char *p = (const char *)f + row->offset;
    if (row->size == sizeof(uint32_t)) {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    uint64_t v;
    memcpy(&v, p + (size_t)i * sizeof v, sizeof v);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Filling                                                                  */
/* ------------------------------------------------------------------------ */

/* Every figure of the current version, and the text report's own. */
static void gm_stats_fill(struct gm_figures *f)
{
    struct gm_stats *st = &f->st;
    struct gm_counts_sum sum;
    gm_sum_counts(&sum);
    memset(f, 0, sizeof *f);
    st->version = GM_STATS_VERSION;
    st->size = sizeof *st;

    /* The fields the list reads from one counter each. */
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *r = &gm_stat_rows[i];
        if (!r->counter) continue;
        uint64_t v = gm_stat_load(r->counter);
        memcpy((char *)st + r->offset, &v, sizeof v);
    }

    /* The heap's figures, read together. */
    pthread_mutex_lock(&gm_heap.lock);
    st->heap_sys = gm_stat_load(&gm_heap.heap_sys);
    st->heap_inuse = gm_sub0(gm_stat_load(&gm_heap.heap_inuse), sum.cached); /* cached spans are idle */
    st->heap_released = gm_stat_load(&gm_heap.heap_released);
    st->heap_decommitted = gm_stat_load(&gm_heap.heap_decommitted);
    pthread_mutex_unlock(&gm_heap.lock);
    st->heap_idle = gm_sub0(st->heap_sys, st->heap_inuse);
    st->sys = st->heap_sys + st->meta_arena_index + st->meta_arenas + st->meta_pagealloc + st->meta_spans +
              st->meta_tcaches + st->meta_other;
    st->mappings = gm_sys_mapping_count();

    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        st->class_size[c] = gm_class_size[c];
        st->class_mallocs[c] = sum.mallocs[c];
        st->class_frees[c] = sum.frees[c];
        st->mallocs += sum.mallocs[c];
        st->frees += sum.frees[c];
    }
    st->heap_alloc = gm_live_bytes(&sum, st->class_live_bytes);
    st->memory_limit_hard = atomic_load_explicit(&gm_heap.limit_hard, memory_order_relaxed);
    st->strict_commit = atomic_load_explicit(&gm_scav.strict, memory_order_relaxed);

    f->large = st->class_live_bytes[0];
    f->large_req = gm_sub0(sum.large_req_alloc, sum.large_req_freed);
}

void gm_stats_read(struct gm_stats *out, size_t size)
{
    struct gm_figures f;
    int saved = errno; /* the mapping count opens /proc/self/maps */
    gm_stats_fill(&f);
    errno = saved;
    uint32_t v = GM_STATS_VERSION;
    while (v > 0 && gm_stats_version_size(v) > size) v--;
    f.st.version = v;
    f.st.size = (uint32_t)gm_stats_version_size(v);
    size_t n = v ? f.st.size : offsetof(struct gm_stats, sys);
    memcpy(out, &f.st, n < size ? n : size);
}

void gm_stats_quick(struct gm_stats_quick *q)
{
    struct gm_counts_sum sum;
    gm_sum_counts(&sum);
    q->heap_inuse = gm_sub0(gm_stat_load(&gm_heap.heap_inuse), sum.cached);
    q->heap_alloc = gm_live_bytes(&sum, NULL);
    q->heap_sys = gm_stat_load(&gm_heap.heap_sys);
    q->heap_released = gm_stat_load(&gm_heap.heap_released);
    q->committed = gm_stat_load(&gm_os.committed);
}

/* ------------------------------------------------------------------------ */
/* Formatting without stdio                                                 */
/* ------------------------------------------------------------------------ */

static void gm_bpad(struct gm_buf *b, const char *s, unsigned width)
{
    unsigned n = 0;
    for (; s[n]; n++) gm_bputc(b, s[n]);
    for (; n < width; n++) gm_bputc(b, ' ');
}

/* "12.3 MiB" right-aligned in 10 columns. */
static void gm_bputsize(struct gm_buf *b, uint64_t v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    uint64_t scale = 1;
    while (u < 5 && v >= scale * 1024) {
        scale *= 1024;
        u++;
    }
    char tmp[32];
    struct gm_buf t = {tmp, 0, sizeof tmp - 1};
    if (u == 0) {
        gm_bputu(&t, v, 0);
    } else {
        uint64_t tenths = (v * 10 + scale / 2) / scale; /* v < 2^60 here */
        gm_bputu(&t, tenths / 10, 0);
        gm_bputc(&t, '.');
        gm_bputc(&t, (char)('0' + tenths % 10));
    }
    gm_bputc(&t, ' ');
    gm_bputs(&t, unit[u]);
    for (size_t i = t.n; i < 10; i++) gm_bputc(b, ' ');
    for (size_t i = 0; i < t.n; i++) gm_bputc(b, tmp[i]);
}

#define GM_NAME_WIDTH 18

/* "  name  <value column>  what": value is a size with its bytes when
 * word is NULL, else word in the size column. */
static void gm_bline(struct gm_buf *b, const char *name, uint64_t v, const char *word, const char *what)
{
    gm_bputs(b, "  ");
    gm_bpad(b, name, GM_NAME_WIDTH);
    if (word) {
        for (size_t n = strlen(word); n < 10; n++) gm_bputc(b, ' ');
        gm_bputs(b, word);
        gm_bputs(b, "              ");
    } else {
        gm_bputsize(b, v);
        gm_bputs(b, " ");
        gm_bputu(b, v, 13);
    }
    gm_bputs(b, "  ");
    gm_bputs(b, what);
    gm_bputc(b, '\n');
}

/* A count in the size column. */
static void gm_bcount(struct gm_buf *b, const char *name, uint64_t v, const char *what)
{
    char num[24];
    struct gm_buf t = {num, 0, sizeof num - 1};
    gm_bputu(&t, v, 0);
    num[t.n] = 0;
    gm_bline(b, name, 0, num, what);
}

/* The process's name from /proc/self/comm, without stdio. */
static const char *gm_comm(char *buf, size_t cap)
{
    ssize_t n = gm_sys_read_file("/proc/self/comm", buf, cap);
    if (n <= 0) return "?";
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == 0)) n--;
    buf[n] = 0;
    return buf;
}

/* What both reports show, gathered once. */
struct gm_report {
    struct gm_figures fig;
    const char *program;
};

/* Gathers the figures, lets body write a report into buf, terminates it. */
static size_t gm_format(char *buf, size_t cap, void (*body)(struct gm_buf *, const struct gm_report *))
{
    if (cap == 0) return 0;
    char comm[32];
    struct gm_report r;
    gm_stats_fill(&r.fig);
    r.program = gm_comm(comm, sizeof comm);
    struct gm_buf b = {buf, 0, cap - 1};
    body(&b, &r);
    buf[b.n] = 0;
    return b.n;
}

/* The text report's row of one figure of the list, if it has one. */
static void gm_text_row(struct gm_buf *b, const struct gm_stat_row *row, const struct gm_figures *f)
{
    uint64_t v = gm_row_value(f, row, 0);
    switch (row->show) {
    case GM_SHOW_BYTES:
        gm_bline(b, row->name, v, NULL, row->doc);
        break;
    case GM_SHOW_COUNT:
        if (row->is_signed && (int64_t)v < 0) gm_bline(b, row->name, 0, "unknown", row->doc);
        else gm_bcount(b, row->name, v, row->doc);
        break;
    case GM_SHOW_LIMIT:
        if (v == 0) gm_bline(b, row->name, 0, "none", "no limit on the heap");
        else if (f->st.memory_limit_hard) gm_bline(b, row->name, v, NULL, "hard: allocations past it fail");
        else gm_bline(b, row->name, v, NULL, "soft: the heap scavenges to stay under it");
        break;
    case GM_SHOW_ONOFF:
        gm_bline(b, row->name, 0, v ? "on" : "off", row->doc);
        break;
    case GM_SHOW_HEADER: /* not shown */
    case GM_SHOW_HARD:   /* in memory_limit's row */
    case GM_SHOW_CALLS:  /* with the class table */
    case GM_SHOW_CLASS:
        break;
    }
}

static void gm_text_body(struct gm_buf *b, const struct gm_report *r)
{
    const struct gm_stats *st = &r->fig.st;
    gm_bputs(b, "gomalloc statistics of ");
    gm_bputs(b, r->program);
    gm_bputs(b, " (pid ");
    gm_bputu(b, (uint64_t)getpid(), 0);
    gm_bputs(b, "), in bytes\n");
    for (size_t i = 0; i < gm_stat_row_count; i++) gm_text_row(b, &gm_stat_rows[i], &r->fig);
    gm_bputs(b, "  ");
    gm_bpad(b, "mallocs", GM_NAME_WIDTH);
    gm_bputu(b, st->mallocs, 10);
    gm_bputs(b, "  frees ");
    gm_bputu(b, st->frees, 0);
    gm_bputs(b, ", live ");
    gm_bputu(b, gm_sub0(st->mallocs, st->frees), 0);
    gm_bputs(b, " (large: ");
    gm_bputu(b, gm_sub0(st->class_mallocs[0], st->class_frees[0]), 0);
    gm_bputs(b, ")\n");
    gm_bputs(b, "  class     size      mallocs        frees         live   live bytes\n");
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        if (st->class_mallocs[c] == 0 && st->class_frees[c] == 0) continue;
        gm_bputs(b, "  ");
        gm_bputu(b, c, 5);
        if (c == 0) gm_bputs(b, "    large");
        else gm_bputu(b, st->class_size[c], 9);
        gm_bputu(b, st->class_mallocs[c], 13);
        gm_bputu(b, st->class_frees[c], 13);
        gm_bputu(b, gm_sub0(st->class_mallocs[c], st->class_frees[c]), 13);
        gm_bputu(b, st->class_live_bytes[c], 13);
        gm_bputc(b, '\n');
    }
}

/* JSON pieces, for a one-line object: every member but the first (which
 * the body writes with the opening brace) is preceded by ", ". */
static void gm_jkey(struct gm_buf *b, const char *key)
{
    gm_bputs(b, ", \"");
    gm_bputs(b, key);
    gm_bputs(b, "\": ");
}

static void gm_jnum(struct gm_buf *b, const char *key, uint64_t v)
{
    gm_jkey(b, key);
    gm_bputu(b, v, 0);
}

static void gm_jbool(struct gm_buf *b, const char *key, bool v)
{
    gm_jkey(b, key);
    gm_bputs(b, v ? "true" : "false");
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void gm_jstr(struct gm_buf *b, const char *key, const char *s)
{
    gm_jkey(b, key);
    gm_bputc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            gm_bputc(b, '\\');
            gm_bputc(b, (char)c);
        } else if (c < 0x20) {
            gm_bputs(b, "\\u00");
            gm_bputc(b, "0123456789abcdef"[c >> 4]);
            gm_bputc(b, "0123456789abcdef"[c & 15]);
        } else {
            gm_bputc(b, (char)c);
        }
    }
    gm_bputc(b, '"');
}

static void gm_json_body(struct gm_buf *b, const struct gm_report *r)
{
    const struct gm_figures *f = &r->fig;
    gm_bputs(b, "{\"version\": ");
    gm_bputu(b, f->st.version, 0);
    gm_jstr(b, "program", r->program);
    gm_jnum(b, "pid", (uint64_t)getpid());
    for (size_t i = 0; i < gm_stat_row_count; i++) {
        const struct gm_stat_row *row = &gm_stat_rows[i];
        uint64_t v = gm_row_value(f, row, 0);
        if (row->since == 0) continue; /* the text report's own */
        switch (row->show) {
        case GM_SHOW_BYTES:
        case GM_SHOW_COUNT:
        case GM_SHOW_LIMIT:
        case GM_SHOW_CALLS:
            gm_jkey(b, row->name);
            if (row->is_signed) gm_bputi(b, (int64_t)v);
            else gm_bputu(b, v, 0);
            break;
        case GM_SHOW_HARD:
        case GM_SHOW_ONOFF:
            gm_jbool(b, row->name, v != 0);
            break;
        case GM_SHOW_HEADER: /* the version opened the object */
        case GM_SHOW_CLASS:  /* in "classes" */
            break;
        }
    }
    /* A per-class array is a member of each class's object, named without
     * its "class_". */
    gm_jkey(b, "classes");
    gm_bputc(b, '[');
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        gm_bputs(b, c ? ", {\"class\": " : "{\"class\": ");
        gm_bputu(b, c, 0);
        for (size_t i = 0; i < gm_stat_row_count; i++)
            if (gm_stat_rows[i].show == GM_SHOW_CLASS)
                gm_jnum(b, gm_stat_rows[i].name + strlen("class_"), gm_row_value(f, &gm_stat_rows[i], c));
        gm_bputc(b, '}');
    }
    gm_bputs(b, "]}\n");
}

size_t gm_stats_format(char *buf, size_t cap) { return gm_format(buf, cap, gm_text_body); }
size_t gm_stats_format_json(char *buf, size_t cap) { return gm_format(buf, cap, gm_json_body); }

#define GM_REPORT_MAX 16384

static void gm_report_fd(int fd, size_t (*format)(char *, size_t))
{
    char buf[GM_REPORT_MAX];
    int saved = errno;
    size_t n = format(buf, sizeof buf);
    gm_write_all(fd, buf, n);
    errno = saved;
}

static void gm_report_file(FILE *f, size_t (*format)(char *, size_t))
{
    char buf[GM_REPORT_MAX];
    int saved = errno;
    size_t n = format(buf, sizeof buf);
    fwrite(buf, 1, n, f);
    fflush(f);
    errno = saved;
}

void gm_stats_print_fd(int fd) { gm_report_fd(fd, gm_stats_format); }
void gm_stats_print_json_fd(int fd) { gm_report_fd(fd, gm_stats_format_json); }
void gm_stats_print(FILE *f) { gm_report_file(f, gm_stats_format); }
void gm_stats_print_json(FILE *f) { gm_report_file(f, gm_stats_format_json); }

/* ------------------------------------------------------------------------ */
/* The slow check                                                           */
/* ------------------------------------------------------------------------ */

struct gm_check_pc {
    uint64_t free_pages, scav_pages;
};

static void gm_check_pagecache(struct gm_tcache *tc, void *arg)
{
    struct gm_check_pc *c = arg;
    const struct gm_pagecache *pc = &tc->hl.pc;
    c->free_pages += (uint64_t)__builtin_popcountll(pc->cache);
    c->scav_pages += (uint64_t)__builtin_popcountll(pc->cache & pc->scav);
}

struct gm_check_walk {
    uint64_t inuse_pages, small_pages, large_pages, large_count, large_req, cached_pages;
    uint64_t bad_publish, bad_bitmap; /* pages of in-use spans wrongly recorded */
    uintptr_t first_bad_publish, first_bad_bitmap;
};

static bool gm_page_allocated(uintptr_t addr)
{
    struct gm_pallocdata *d = gm_pagealloc_chunk(&gm_heap.pages, addr >> GM_CHUNK_SHIFT);
    if (!d) return false;
    unsigned i = (unsigned)((addr >> GM_PAGE_SHIFT) & (GM_CHUNK_PAGES - 1));
    return (d->alloc.w[i / 64] >> (i % 64)) & 1;
}

/* One in-use span for gm_check: its pages, and every page's records. */
static void gm_check_span(struct gm_span *s, unsigned st, void *arg)
{
    struct gm_check_walk *w = arg;
    if (st != GM_SPAN_CACHED) w->inuse_pages += s->npages;
    if (st == GM_SPAN_LARGE && s->large_size != 0) { /* a large object of the API */
        w->large_pages += s->npages;
        w->large_count++;
        w->large_req += s->large_size;
    } else if (st == GM_SPAN_SMALL) {
        w->small_pages += s->npages;
    } else if (st == GM_SPAN_CACHED) {
        w->cached_pages += s->npages;
    }
    for (size_t k = 0; k < s->npages; k++) {
        uintptr_t p = s->base + (k << GM_PAGE_SHIFT);
        if (gm_span_lookup(p) != s) {
            if (!w->bad_publish++) w->first_bad_publish = p;
        }
        if (!gm_page_allocated(p)) {
            if (!w->bad_bitmap++) w->first_bad_bitmap = p;
        }
    }
}

struct gm_check_bits {
    uint64_t alloc_pages, free_pages, scav_pages;
};

/* The page allocator's bitmaps. Heap lock held. */
static void gm_check_bitmaps(struct gm_check_bits *b)
{
    struct gm_pagealloc *pa = &gm_heap.pages;
    for (size_t ci = pa->start; ci < pa->end; ci++) {
        struct gm_pallocdata *d = gm_pagealloc_chunk(pa, ci);
        if (!d) continue;
        for (unsigned k = 0; k < GM_CHUNK_PAGES / 64; k++) {
            uint64_t alloc = d->alloc.w[k];
            b->alloc_pages += (uint64_t)__builtin_popcountll(alloc);
            b->free_pages += (uint64_t)__builtin_popcountll(~alloc);
            b->scav_pages += (uint64_t)__builtin_popcountll(~alloc & d->scav.w[k]);
        }
    }
}

static int gm_check_failures;
static int gm_check_out = 2;

/* One disagreement, written with write(2) (stdio may be gone at exit). */
__attribute__((format(printf, 1, 2))) static void gm_check_fail(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    gm_check_failures++;
    if (n > 0) gm_write_all(gm_check_out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void gm_check_eq(const char *what, uint64_t have, uint64_t want)
{
    if (have == want) return;
    gm_check_fail("gomalloc: check: %s is %llu, recomputed %llu\n", what, (unsigned long long)have,
                  (unsigned long long)want);
}

static void gm_check_le(const char *what, uint64_t a, const char *what_b, uint64_t b)
{
    if (a <= b) return;
    gm_check_fail("gomalloc: check: %s (%llu) exceeds %s (%llu)\n", what, (unsigned long long)a, what_b,
                  (unsigned long long)b);
}

int gm_check(void) { return gm_check_fd(2); }

static int gm_check_quiet_heap(int fd);

/* The scavenger is held off for the walk: pages it is releasing are in no
 * statistic while its system call runs. */
int gm_check_fd(int fd)
{
    gm_scav_lock_all();
    int rc = gm_check_quiet_heap(fd);
    gm_scav_unlock_all();
    return rc;
}

static int gm_check_quiet_heap(int fd)
{
    gm_check_failures = 0;
    gm_check_out = fd;
    const uint64_t P = GM_PAGE_SIZE;

    /* Counters, page caches and live objects first: each takes its own
     * lock, never nested inside the heap lock. */
    struct gm_counts_sum sum;
    gm_sum_counts(&sum);
    struct gm_check_pc pc = {0, 0};
    gm_small_for_each_tcache(gm_check_pagecache, &pc);
    uint64_t live[GM_NUM_CLASSES];
    gm_small_count_live(live);

    struct gm_check_walk w;
    struct gm_check_bits bits;
    memset(&w, 0, sizeof w);
    memset(&bits, 0, sizeof bits);
    pthread_mutex_lock(&gm_heap.lock);
    bool init = gm_heap_ready();
    uint64_t heap_sys = gm_stat_load(&gm_heap.heap_sys);
    uint64_t heap_inuse = gm_stat_load(&gm_heap.heap_inuse);
    uint64_t heap_released = gm_stat_load(&gm_heap.heap_released);
    uint64_t pa_free = 0, pa_scav = 0, ungrown = 0;
    if (init) {
        gm_heap_for_each_span(gm_check_span, &w);
        gm_check_bitmaps(&bits);
        pa_free = gm_heap.pages.free_pages;
        pa_scav = gm_heap.pages.scav_pages;
        ungrown = gm_heap_ungrown_pages();
    }
    uint64_t meta = gm_meta_total();
    uint64_t committed = gm_stat_load(&gm_os.committed);
    uint64_t reserved = gm_stat_load(&gm_os.reserved);
    pthread_mutex_unlock(&gm_heap.lock);

    /* In a child forked from a multi-threaded process, the other threads
     * stopped wherever they were in their lock-free paths (a page taken
     * from a page cache and not yet a span, an object taken and not yet
     * counted): there only what the heap lock guards is compared, and the
     * walk's structure. */
    bool exact = !gm_small_forked_mt;

    /* Pages. */
    if (exact) {
        gm_check_eq("heap_inuse (span caches included)", heap_inuse, (w.inuse_pages + w.cached_pages) * P);
        gm_check_eq("heap_sys", heap_sys, (w.inuse_pages + w.cached_pages + bits.free_pages + pc.free_pages) * P);
        gm_check_eq("heap_released", heap_released, (bits.scav_pages + pc.scav_pages) * P);
        gm_check_eq("allocated pages in the bitmaps", bits.alloc_pages,
                    w.inuse_pages + w.cached_pages + pc.free_pages + ungrown);
    }
    gm_check_eq("page allocator free pages", pa_free, bits.free_pages);
    gm_check_eq("page allocator scavenged pages", pa_scav, bits.scav_pages);
    if (w.bad_publish) {
        gm_check_fail("gomalloc: check: %llu pages of in-use spans do not map to their span (first %#llx)\n",
                      (unsigned long long)w.bad_publish, (unsigned long long)w.first_bad_publish);
    }
    if (w.bad_bitmap) {
        gm_check_fail("gomalloc: check: %llu pages of in-use spans are free in the bitmaps (first %#llx)\n",
                      (unsigned long long)w.bad_bitmap, (unsigned long long)w.first_bad_bitmap);
    }
    gm_check_le("heap_inuse", heap_inuse, "heap_sys", heap_sys);
    gm_check_le("heap_released", heap_released, "heap_idle", heap_sys - (heap_inuse < heap_sys ? heap_inuse : heap_sys));
    gm_check_eq("committed", committed, heap_sys + meta);
    gm_check_le("committed", committed, "reserved", reserved);

    /* Objects. */
    uint64_t small_alloc = 0;
    for (unsigned c = 1; c < GM_NUM_CLASSES; c++) {
        uint64_t counted = sum.mallocs[c] - sum.frees[c];
        if (exact && counted != live[c]) {
            gm_check_fail("gomalloc: check: class %u (%u bytes): counters say %lld live, spans hold %llu\n", c,
                          gm_class_size[c], (long long)counted, (unsigned long long)live[c]);
        }
        small_alloc += live[c] * gm_class_size[c];
    }
    if (exact) {
        gm_check_eq("live large objects", sum.mallocs[0] - sum.frees[0], w.large_count);
        gm_check_eq("bytes of live large objects", sum.large_alloc - sum.large_freed, w.large_pages * P);
        gm_check_eq("requested bytes of live large objects", sum.large_req_alloc - sum.large_req_freed, w.large_req);
        gm_check_eq("bytes in threads' span caches", sum.cached, w.cached_pages * P);
    }
    gm_check_le("heap_alloc", small_alloc + w.large_pages * P, "heap_inuse", heap_inuse);
    return gm_check_failures ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The census for malloc_info                                               */
/* ------------------------------------------------------------------------ */

static void gm_census_run(struct gm_census *c, uint64_t pages)
{
    if (pages == 0) return;
    unsigned k = 63 - (unsigned)__builtin_clzll(pages);
    if (k >= GM_RUN_BUCKETS) k = GM_RUN_BUCKETS - 1;
    if (c->runs[k] == 0 || pages < c->run_min[k]) c->run_min[k] = pages;
    if (pages > c->run_max[k]) c->run_max[k] = pages;
    c->runs[k]++;
    c->run_pages[k] += pages;
}

/* The free runs of a thread's page cache window (1 bits are free pages).
 * Its owner changes it without a lock: read it once. */
static void gm_census_pagecache(struct gm_tcache *tc, void *arg)
{
    uint64_t free = *(volatile uint64_t *)&tc->hl.pc.cache;
    while (free) {
        free >>= __builtin_ctzll(free);
        unsigned len = ~free ? (unsigned)__builtin_ctzll(~free) : 64;
        gm_census_run(arg, len);
        free = len < 64 ? free >> len : 0;
    }
}

static void gm_census_span(struct gm_span *s, unsigned st, void *arg)
{
    struct gm_census *c = arg;
    if (st == GM_SPAN_SMALL) {
        c->class_spans[s->sizeclass]++;
        c->class_slots[s->sizeclass] += s->nelems;
    }
    else if (st == GM_SPAN_LARGE) c->class_spans[0]++;
    else if (st == GM_SPAN_CACHED) gm_census_run(c, s->npages); /* idle, kept whole */
}

/* The free runs of the page allocator's bitmaps over the grown ranges (a
 * run ends where a range does). Heap lock held. */
static void gm_census_bitmaps(struct gm_census *c)
{
    struct gm_pagealloc *pa = &gm_heap.pages;
    for (size_t r = 0; r < pa->in_use.len; r++) {
        uint64_t run = 0;
        for (uintptr_t a = pa->in_use.ranges[r].base; a < pa->in_use.ranges[r].limit; a += GM_CHUNK_BYTES) {
            struct gm_pallocdata *d = gm_pagealloc_chunk(pa, a >> GM_CHUNK_SHIFT);
            for (unsigned k = 0; d && k < GM_CHUNK_PAGES / 64; k++) {
                uint64_t free = ~d->alloc.w[k];
                if (free == ~(uint64_t)0) {
                    run += 64;
                    continue;
                }
                for (unsigned i = 0; i < 64; i++) {
                    if ((free >> i) & 1) {
                        run++;
                    } else {
                        gm_census_run(c, run);
                        run = 0;
                    }
                }
            }
        }
        gm_census_run(c, run);
    }
}

void gm_stats_census(struct gm_census *c)
{
    memset(c, 0, sizeof *c);
    gm_small_for_each_tcache(gm_census_pagecache, c); /* never inside the heap lock */
    pthread_mutex_lock(&gm_heap.lock);
    if (gm_heap_ready()) {
        gm_heap_for_each_span(gm_census_span, c);
        gm_census_bitmaps(c);
    }
    pthread_mutex_unlock(&gm_heap.lock);
}

/* ------------------------------------------------------------------------ */
/* Version 1's entry point                                                  */
/* ------------------------------------------------------------------------ */

/* Programs built against version 1 of gomalloc.h call this symbol with a
 * version-1 struct; since version 2 the header maps gm_stats_get(s) to
 * gm_stats_read(s, sizeof *s). */
#undef gm_stats_get
void gm_stats_get(struct gm_stats *s) { gm_stats_read(s, gm_stats_version_size(1)); }
