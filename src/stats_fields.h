/*
 * stats_fields.h — the one list of the statistics: every field of struct
 * gm_stats, in the struct's order, and the figures only the text report
 * shows, where it shows them. Each entry says how the reports show the
 * figure and carries the one-line doc of the text report, README.md's
 * table and gomalloc(3)'s list.
 *
 * From it, stats.c checks that the public struct (include/gomalloc.h,
 * written out for its readers) has these fields with these types at the
 * offsets the list's order gives, so neither can change without the other;
 * derives each version's size; fills the fields that are one counter's
 * value; and writes the text rows and the JSON members. tests/unit_stats
 * prints the README table and the man page's list from it, which
 * tests/docs.sh compares with the documents, and checks that the list only
 * grows: versions in order, versions 1 and 2 as they were released.
 *
 * A new field: at the end of the struct and of this list, with the new
 * GM_STATS_VERSION as its version.
 */
#ifndef GM_STATS_FIELDS_H
#define GM_STATS_FIELDS_H

#include "api.h"

/* The type of the per-class arrays, so that an entry can name it. */
typedef uint64_t gm_per_class[GM_NUM_CLASSES];

/* How the reports show a figure. */
enum gm_stat_show {
    GM_SHOW_HEADER,  /* version and size: the JSON object opens with the
                      * version; size is in no report */
    GM_SHOW_BYTES,   /* text: a row with the size; JSON: a number */
    GM_SHOW_COUNT,   /* text: a row with the count ("unknown" if it is
                      * negative); JSON: a number */
    GM_SHOW_LIMIT,   /* memory_limit. text: a row, "none" for 0, that says
                      * what the limit does (hard or soft); JSON: a number */
    GM_SHOW_HARD,    /* memory_limit_hard. text: in memory_limit's row;
                      * JSON: a boolean */
    GM_SHOW_ONOFF,   /* a 0/1 flag. text: a row with on or off; JSON: a
                      * boolean */
    GM_SHOW_CALLS,   /* mallocs, frees. text: the line above the class
                      * table, with the live count; JSON: a number */
    GM_SHOW_CLASS,   /* a per-class array. text: a column of the class
                      * table; JSON: a member of each object of "classes",
                      * named without "class_" */
};

/*
 * FIELD(name, type, since, show, counter, doc): a field of struct
 * gm_stats, added in version `since` of the struct; counter is the address
 * of the gm_stat whose value it is, or NULL where gm_stats_fill computes it.
 * TEXT_ONLY(name, show, doc): a figure of the text report's, not in the
 * struct nor in the JSON report (stats.c computes it).
 */
#define GM_STATS_LIST(FIELD, TEXT_ONLY)                                                                        \
    FIELD(version, uint32_t, 1, GM_SHOW_HEADER, NULL, "which version of the struct was filled")                \
    FIELD(size, uint32_t, 1, GM_SHOW_HEADER, NULL, "bytes filled: sizeof(struct gm_stats) of that version")    \
    FIELD(sys, uint64_t, 1, GM_SHOW_BYTES, NULL, "committed by the heap: heap_sys + metadata")                 \
    FIELD(heap_sys, uint64_t, 1, GM_SHOW_BYTES, NULL, "heap memory mapped for spans")                          \
    FIELD(heap_inuse, uint64_t, 1, GM_SHOW_BYTES, NULL, "in spans in use")                                     \
    FIELD(heap_idle, uint64_t, 1, GM_SHOW_BYTES, NULL, "free pages (heap_sys - heap_inuse)")                   \
    FIELD(heap_released, uint64_t, 1, GM_SHOW_BYTES, NULL, "free pages returned to the OS")                    \
    FIELD(heap_alloc, uint64_t, 1, GM_SHOW_BYTES, NULL, "live objects, rounded to their size class")           \
    TEXT_ONLY(large, GM_SHOW_BYTES, "pages of live large objects")                                             \
    TEXT_ONLY(large_req, GM_SHOW_BYTES, "bytes requested by live large objects")                               \
    FIELD(meta_arena_index, uint64_t, 1, GM_SHOW_BYTES, &gm_meta.arena_index, "metadata: arena index")         \
    FIELD(meta_arenas, uint64_t, 1, GM_SHOW_BYTES, &gm_meta.arenas, "metadata: arena records")                 \
    FIELD(meta_pagealloc, uint64_t, 1, GM_SHOW_BYTES, &gm_meta.pagealloc,                                      \
          "metadata: page allocator bitmaps and summaries")                                                    \
    FIELD(meta_spans, uint64_t, 1, GM_SHOW_BYTES, &gm_meta.spans, "metadata: span records")                    \
    FIELD(meta_tcaches, uint64_t, 1, GM_SHOW_BYTES, &gm_meta.tcaches, "metadata: thread caches")               \
    FIELD(meta_other, uint64_t, 1, GM_SHOW_BYTES, &gm_meta.other, "metadata: other")                           \
    FIELD(committed, uint64_t, 1, GM_SHOW_BYTES, &gm_os.committed, "mapped read-write (what VmData sees)")     \
    FIELD(reserved, uint64_t, 1, GM_SHOW_BYTES, &gm_os.reserved, "address space held, committed or not")       \
    FIELD(mappings, int64_t, 1, GM_SHOW_COUNT, NULL, "lines of /proc/self/maps")                               \
    FIELD(mallocs, uint64_t, 1, GM_SHOW_CALLS, NULL, "allocations so far")                                     \
    FIELD(frees, uint64_t, 1, GM_SHOW_CALLS, NULL, "frees so far")                                             \
    FIELD(class_size, gm_per_class, 1, GM_SHOW_CLASS, NULL, "object size of each size class (class 0: large)") \
    FIELD(class_mallocs, gm_per_class, 1, GM_SHOW_CLASS, NULL, "allocations per size class")                   \
    FIELD(class_frees, gm_per_class, 1, GM_SHOW_CLASS, NULL, "frees per size class")                           \
    FIELD(heap_decommitted, uint64_t, 2, GM_SHOW_BYTES, NULL, "heap pages decommitted: no commit charge")      \
    FIELD(scavenged_total, uint64_t, 2, GM_SHOW_BYTES, &gm_heap.released_total,                                \
          "ever returned to the OS (madvise)")                                                                 \
    FIELD(decommitted_total, uint64_t, 2, GM_SHOW_BYTES, &gm_heap.decommitted_total, "ever decommitted")       \
    FIELD(recommitted_total, uint64_t, 2, GM_SHOW_BYTES, &gm_heap.recommitted_total,                           \
          "ever committed again after a decommit")                                                             \
    FIELD(background_runs, uint64_t, 2, GM_SHOW_COUNT, &gm_scav.background_runs,                               \
          "background scavenger wake-ups that had work")                                                       \
    FIELD(memory_limit, uint64_t, 2, GM_SHOW_LIMIT, &gm_heap.limit, "the memory limit (0: none)")              \
    FIELD(memory_limit_hard, uint32_t, 2, GM_SHOW_HARD, NULL, "1: allocations past the limit fail")            \
    FIELD(strict_commit, uint32_t, 2, GM_SHOW_ONOFF, NULL, "free chunks are decommitted when on")              \
    FIELD(class_live_bytes, gm_per_class, 2, GM_SHOW_CLASS, NULL,                                              \
          "live bytes per size class (class 0: large objects' pages)")

/* One entry of the list, as the reports and the documents use it (stats.c
 * makes the table gm_stat_rows of them, in the list's order). */
struct gm_stat_row {
    const char *name;
    const char *doc;
    enum gm_stat_show show;
    unsigned since;         /* 0: a figure of the text report only */
    size_t offset, size;    /* in struct gm_stats (a text-only figure: in
                             * stats.c's struct gm_figures, which begins
                             * with a struct gm_stats) */
    bool is_signed;         /* int64_t (mappings) */
    const gm_stat *counter; /* NULL: computed */
};
extern const struct gm_stat_row gm_stat_rows[] GM_HIDDEN;
extern const size_t gm_stat_row_count GM_HIDDEN;
/* sizeof(struct gm_stats) in version v (0 for v = 0), from the list. */
size_t gm_stats_version_size(unsigned v) GM_HIDDEN;

#endif /* GM_STATS_FIELDS_H */
