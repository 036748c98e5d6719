/*
 * api_stats.c — the statistics API as a program linked with libgomalloc
 * sees it:
 *   - versions: gm_stats_get fills this header's struct (version 2, size =
 *     sizeof); the symbol gm_stats_get itself, which programs built against
 *     version 1 call, and gm_stats_read with a smaller size write not one
 *     byte past the size they were given and name the version that fits;
 *   - version 2's figures: the per-class live bytes are (mallocs - frees) x
 *     size and add up to heap_alloc, class 0 holds the pages of live large
 *     objects; the memory limit reads back what gm_set_memory_limit set;
 *     decommitted/recommitted figures are ordered as their meanings say;
 *   - the reports: gm_stats_print has version 2's lines, gm_stats_print_json
 *     is one JSON object of version 2 on one line (tests/stats_json.sh
 *     parses it);
 *   - malloc_info: glibc's layout (one heap, sizes, totals, system,
 *     aspace), whose figures agree with each other and with gm_stats and
 *     mallinfo2: the <size> lines add up to the fast and rest totals, a
 *     class with freed objects shows them, rest = heap_idle, mmap = the live
 *     large objects (hblks, hblkhd), system = mallinfo2's arena, aspace =
 *     reserved and committed; the top-level totals repeat the heap's.
 */
#include <errno.h>
#include <gomalloc.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define V1_SIZE offsetof(struct gm_stats, heap_decommitted)

/* The compiler may drop a malloc whose memory is never used: use it. */
static void *volatile sink;
static void *use(void *p)
{
    sink = p;
    return p;
}

/* Bytes of buf from off on are all 0xab (untouched). */
static int untouched(const unsigned char *buf, size_t off, size_t size)
{
    for (size_t i = off; i < size; i++)
        if (buf[i] != 0xab) return 0;
    return 1;
}

static void test_versions(void)
{
    static unsigned char buf[sizeof(struct gm_stats) + 64];
    struct gm_stats *st = (struct gm_stats *)buf;

    memset(buf, 0xab, sizeof buf);
    gm_stats_get(st);
    CHECK_EQ(st->version, GM_STATS_VERSION);
    CHECK_EQ(st->version, 2);
    CHECK_EQ(st->size, sizeof(struct gm_stats));
    CHECK(untouched(buf, sizeof(struct gm_stats), sizeof buf));

    memset(buf, 0xab, sizeof buf);
    (gm_stats_get)(st); /* the symbol, as a version-1 program calls it */
    CHECK_EQ(st->version, 1);
    CHECK_EQ(st->size, V1_SIZE);
    CHECK(untouched(buf, V1_SIZE, sizeof buf));
    CHECK(st->mallocs > 0);

    memset(buf, 0xab, sizeof buf);
    gm_stats_read(st, V1_SIZE + 8); /* between versions: the older one */
    CHECK_EQ(st->version, 1);
    CHECK_EQ(st->size, V1_SIZE);
    CHECK(untouched(buf, V1_SIZE, sizeof buf));

    memset(buf, 0xab, sizeof buf);
    gm_stats_read(st, 100); /* smaller than any version: the header only */
    CHECK_EQ(st->version, 0);
    CHECK_EQ(st->size, 0);
    CHECK(untouched(buf, offsetof(struct gm_stats, sys), sizeof buf));

    memset(buf, 0xab, sizeof buf);
    gm_stats_read(st, 2);
    CHECK(untouched(buf, 2, sizeof buf));
}

static void test_v2_figures(void)
{
    void *small[1000], *large = use(malloc(1 << 20));
    for (int i = 0; i < 1000; i++) small[i] = use(malloc(48));
    struct gm_stats st;
    gm_stats_get(&st);
    uint64_t sum = 0;
    for (unsigned c = 0; c < GM_NUM_CLASSES; c++) {
        sum += st.class_live_bytes[c];
        if (c) CHECK_EQ(st.class_live_bytes[c], (st.class_mallocs[c] - st.class_frees[c]) * st.class_size[c]);
    }
    CHECK_EQ(sum, st.heap_alloc);
    CHECK(st.class_live_bytes[0] >= 1 << 20);
    CHECK(st.class_live_bytes[3] >= 1000 * 48); /* class 3 is 48 bytes */
    CHECK_EQ(st.class_size[3], 48);
    CHECK(st.heap_decommitted <= st.decommitted_total);
    CHECK(st.recommitted_total <= st.decommitted_total);
    CHECK(st.strict_commit <= 1 && st.memory_limit_hard <= 1);
    free(large);
    for (int i = 0; i < 1000; i++) free(small[i]);

    int hard0;
    size_t limit0 = gm_get_memory_limit(&hard0);
    CHECK_EQ(gm_set_memory_limit((size_t)1 << 40, 0), 0);
    gm_stats_get(&st);
    CHECK_EQ(st.memory_limit, (uint64_t)1 << 40);
    CHECK_EQ(st.memory_limit_hard, 0);
    CHECK_EQ(gm_set_memory_limit((size_t)1 << 40, 1), 0);
    gm_stats_get(&st);
    CHECK_EQ(st.memory_limit_hard, 1);
    CHECK_EQ(gm_set_memory_limit(0, 0), 0);
    gm_stats_get(&st);
    CHECK_EQ(st.memory_limit, 0);
    gm_set_memory_limit(limit0, hard0);
}

/* A report printed into a buffer through a FILE. */
static char report[1 << 16];

static const char *print_to_buffer(void (*print)(FILE *))
{
    memset(report, 0, sizeof report);
    FILE *f = fmemopen(report, sizeof report - 1, "w");
    CHECK(f != NULL);
    if (!f) return "";
    print(f);
    fclose(f);
    return report;
}

static void print_info(FILE *f) { CHECK_EQ(malloc_info(0, f), 0); }

static void test_reports(void)
{
    const char *text = print_to_buffer(gm_stats_print);
    CHECK(strncmp(text, "gomalloc statistics of ", 23) == 0);
    CHECK(strstr(text, "\n  heap_decommitted ") != NULL);
    CHECK(strstr(text, "\n  memory_limit ") != NULL);
    CHECK(strstr(text, "\n  strict_commit ") != NULL);
    const char *json = print_to_buffer(gm_stats_print_json);
    size_t n = strlen(json);
    const char *head = "{\"version\": 2, \"program\": ";
    CHECK(strncmp(json, head, strlen(head)) == 0);
    CHECK(n > 3 && strcmp(json + n - 3, "]}\n") == 0);
    CHECK(strchr(json, '\n') == json + n - 1); /* one line: JSON Lines */
    CHECK(strstr(json, "\"class_live_bytes\"") == NULL); /* per class, in "classes" */
    CHECK(strstr(json, "\"live_bytes\": ") != NULL);
}

/* The figures of one malloc_info document. */
struct info {
    unsigned long long sizes_count, sizes_total, class48_count;
    unsigned long long fast[2], rest[2], mmap[2]; /* count, size */
    unsigned long long top_fast[2], top_rest[2];
    unsigned long long system, max, aspace, mprotect, top_system;
    int heaps, size_lines, bad_sizes, unknown;
};

static void parse_info(const char *doc, struct info *in)
{
    memset(in, 0, sizeof *in);
    int top = 0; /* past </heap> */
    for (const char *line = doc; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char l[256];
        snprintf(l, sizeof l, "%.*s", (int)len, line);
        line += len + (end != NULL);
        unsigned long long a, b, c, d;
        char type[16];
        if (sscanf(l, "  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"/>", &a, &b, &c, &d) == 4) {
            in->size_lines++;
            in->sizes_total += c;
            in->sizes_count += d;
            if (a > b || c < a * d || c > b * d) in->bad_sizes++;
            if (a == 48 && b == 48) in->class48_count = d;
        } else if (sscanf(l, "<total type=\"%15[a-z]\" count=\"%llu\" size=\"%llu\"/>", type, &a, &b) == 3) {
            unsigned long long *t = !strcmp(type, "fast") ? (top ? in->top_fast : in->fast)
                                  : !strcmp(type, "rest") ? (top ? in->top_rest : in->rest)
                                  : !strcmp(type, "mmap") && top ? in->mmap : NULL;
            if (t) {
                t[0] = a;
                t[1] = b;
            } else {
                in->unknown++;
            }
        } else if (sscanf(l, "<system type=\"current\" size=\"%llu\"/>", &a) == 1) {
            *(top ? &in->top_system : &in->system) = a;
        } else if (sscanf(l, "<system type=\"max\" size=\"%llu\"/>", &a) == 1) {
            in->max = a;
        } else if (sscanf(l, "<aspace type=\"total\" size=\"%llu\"/>", &a) == 1) {
            in->aspace = a;
        } else if (sscanf(l, "<aspace type=\"mprotect\" size=\"%llu\"/>", &a) == 1) {
            in->mprotect = a;
        } else if (!strcmp(l, "<heap nr=\"0\">")) {
            in->heaps++;
        } else if (!strcmp(l, "</heap>")) {
            top = 1;
        } else if (strcmp(l, "<malloc version=\"1\">") && strcmp(l, "<sizes>") && strcmp(l, "</sizes>") &&
                   strcmp(l, "</malloc>")) {
            in->unknown++;
        }
    }
}

static void test_malloc_info(void)
{
    /* Free objects in the 48-byte class, a free page run, a live large one. */
    void *small[2000];
    for (int i = 0; i < 2000; i++) small[i] = use(malloc(48));
    for (int i = 0; i < 2000; i += 2) free(small[i]);
    void *gone = use(malloc(4 << 20)), *kept = use(malloc(3 << 20));
    free(gone);

    /* The background scavenger may change figures between two readings:
     * keep a document taken while heap_sys and heap_idle stood still. */
    struct gm_stats a, b;
    struct mallinfo2 mi;
    const char *doc = "";
    for (int tries = 0; tries < 20; tries++) {
        gm_stats_get(&a);
        doc = print_to_buffer(print_info);
        mi = mallinfo2();
        gm_stats_get(&b);
        if (a.heap_sys == b.heap_sys && a.heap_idle == b.heap_idle && a.committed == b.committed) break;
    }
    size_t n = strlen(doc);
    CHECK(strncmp(doc, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", 43) == 0);
    CHECK(n > 10 && strcmp(doc + n - 10, "</malloc>\n") == 0);
    struct info in;
    parse_info(doc, &in);
    CHECK_EQ(in.heaps, 1);
    CHECK_EQ(in.unknown, 0);
    CHECK_EQ(in.bad_sizes, 0);
    CHECK(in.size_lines >= 2);
    CHECK_EQ(in.sizes_count, in.fast[0] + in.rest[0]);
    CHECK_EQ(in.sizes_total, in.fast[1] + in.rest[1]);
    CHECK(in.class48_count >= 1000);
    CHECK(in.rest[0] >= 1);
    CHECK_EQ(in.rest[1], b.heap_idle);
    CHECK_EQ(in.mmap[0], mi.hblks);
    CHECK_EQ(in.mmap[1], mi.hblkhd);
    CHECK(in.mmap[1] >= 3 << 20);
    CHECK_EQ(in.system, mi.arena);
    CHECK_EQ(in.max, in.system);
    CHECK_EQ(in.top_system, in.system);
    CHECK_EQ(in.aspace, b.reserved);
    CHECK_EQ(in.mprotect, b.committed);
    CHECK(in.fast[0] == in.top_fast[0] && in.fast[1] == in.top_fast[1]);
    CHECK(in.rest[0] == in.top_rest[0] && in.rest[1] == in.top_rest[1]);

    errno = 0;
    CHECK_EQ(malloc_info(1, stdout), -1);
    CHECK_EQ(errno, EINVAL);
    free(kept);
    for (int i = 1; i < 2000; i += 2) free(small[i]);
}

int main(void)
{
    void *warm = use(malloc(100)); /* the statistics have something to show */
    test_versions();
    test_v2_figures();
    test_reports();
    test_malloc_info();
    free(warm);
    CHECK_EQ(gm_check(), 0);
    return test_done("api_stats");
}
