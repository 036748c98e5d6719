/*
 * stats.h — layer 9: statistics, the slow consistency check and the reports
 * (stats.c), and the memory timeline (trace.c). Includes api.h: the top of
 * the layers (init.c and override.c include this header).
 */
#ifndef GM_STATS_H
#define GM_STATS_H

#include "api.h"

/* The human-readable report into buf (no allocation, no stdio); returns its
 * length (truncated to cap - 1, always NUL-terminated). */
size_t gm_stats_format(char *buf, size_t cap) GM_HIDDEN;
/* The same figures as one JSON object, with the same contract. */
size_t gm_stats_format_json(char *buf, size_t cap) GM_HIDDEN;
/* The reports written to fd with write(2): safe at exit and in handlers. */
void gm_stats_print_fd(int fd) GM_HIDDEN;
void gm_stats_print_json_fd(int fd) GM_HIDDEN;
/* gm_check, writing its findings to fd with write(2). */
int gm_check_fd(int fd) GM_HIDDEN;
/* The memory timeline's figures (struct gm_stats meanings), read without
 * the heap lock: cheap, but one reading may mix nearby moments. */
struct gm_stats_quick {
    uint64_t heap_inuse, heap_alloc, heap_sys, heap_released, committed;
};
void gm_stats_quick(struct gm_stats_quick *q) GM_HIDDEN;

/* A walk of the heap for malloc_info (heap lock held while it walks): small
 * spans in use per class, and free page runs (page allocator and threads'
 * page caches) by size, bucket k holding runs of [2^k, 2^(k+1)) pages. */
#define GM_RUN_BUCKETS 24
struct gm_census {
    uint64_t class_spans[GM_NUM_CLASSES]; /* class 0: large spans */
    uint64_t class_slots[GM_NUM_CLASSES]; /* objects those spans can hold */
    uint64_t runs[GM_RUN_BUCKETS];        /* free runs */
    uint64_t run_pages[GM_RUN_BUCKETS];   /* their pages */
    uint64_t run_min[GM_RUN_BUCKETS], run_max[GM_RUN_BUCKETS]; /* pages */
};
void gm_stats_census(struct gm_census *c) GM_HIDDEN;

/* Start the sampler thread of GOMALLOC_TRACE (from the library constructor
 * only: it creates a thread and registers fork and exit handlers). */
void gm_trace_start(const char *path, uint32_t period_ms) GM_HIDDEN;

#endif /* GM_STATS_H */
