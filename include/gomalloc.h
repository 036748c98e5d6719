/*
 * gomalloc.h — public API of gomalloc, a general-purpose malloc for Linux
 * whose page heap follows the Go runtime's design.
 *
 * Every function also exists under its standard name (malloc, free, ...)
 * when the program is linked with libgomalloc or runs with it preloaded.
 */
#ifndef GOMALLOC_H
#define GOMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GM_API __attribute__((visibility("default")))

GM_API void *gm_malloc(size_t size);
GM_API void gm_free(void *p);
GM_API void *gm_calloc(size_t n, size_t size);
GM_API void *gm_realloc(void *p, size_t size);
GM_API void *gm_reallocarray(void *p, size_t n, size_t size);
GM_API int gm_posix_memalign(void **out, size_t align, size_t size);
GM_API void *gm_aligned_alloc(size_t align, size_t size);
GM_API void *gm_memalign(size_t align, size_t size);
GM_API void *gm_valloc(size_t size);
GM_API void *gm_pvalloc(size_t size);
GM_API size_t gm_malloc_usable_size(const void *p);

/* Statistics in the spirit of Go's runtime.MemStats. All figures in bytes
 * unless named otherwise. The struct only grows; check `version`. */
#define GM_STATS_VERSION 1
#define GM_NUM_CLASSES 66 /* size classes incl. class 0 (large) */
struct gm_stats {
    uint32_t version;
    uint32_t size; /* sizeof(struct gm_stats) as built into the library */
    /* Go's MemStats figures */
    uint64_t sys;           /* everything the heap has committed: heap_sys + metadata */
    uint64_t heap_sys;      /* heap memory mapped for spans (in use, free or released) */
    uint64_t heap_inuse;    /* bytes in spans in use */
    uint64_t heap_idle;     /* heap_sys - heap_inuse */
    uint64_t heap_released; /* idle bytes returned to the OS */
    uint64_t heap_alloc;    /* bytes of live objects (rounded to their size class) */
    /* metadata by kind (all committed) */
    uint64_t meta_arena_index, meta_arenas, meta_pagealloc, meta_spans, meta_tcaches, meta_other;
    /* what the kernel sees */
    uint64_t committed;     /* read-write mapped bytes (VmData contribution) */
    uint64_t reserved;      /* address space held, committed or not */
    int64_t mappings;       /* lines of /proc/self/maps, -1 if unknown */
    /* counters */
    uint64_t mallocs, frees;
    uint64_t class_size[GM_NUM_CLASSES];
    uint64_t class_mallocs[GM_NUM_CLASSES];
    uint64_t class_frees[GM_NUM_CLASSES];
};
GM_API void gm_stats_get(struct gm_stats *s);
GM_API void gm_stats_print(FILE *f);
/* Walks the whole heap and recomputes the statistics (Go's ReadMemStatsSlow);
 * returns 0 if they agree, else prints what differs to stderr and returns -1. */
GM_API int gm_check(void);

/* Returning memory (see scavenge.c). gm_scavenge returns every free page to
 * the OS now (and, in strict-commit mode, decommits every free chunk); it
 * returns the bytes released by this call. malloc_trim(0) does the same. */
GM_API size_t gm_scavenge(void);
/* A limit on the memory the heap holds (committed heap + metadata, Go's
 * GOMEMLIMIT accounting). bytes == 0 removes it. Soft (hard == 0): the heap
 * scavenges and decommits eagerly to stay under it but allocations still
 * succeed. Hard (hard != 0): an allocation that would pass it fails with
 * ENOMEM. Returns 0, or -1 with errno=EINVAL. GOMALLOC_MEMORY_LIMIT=256M
 * (soft) or =256M:hard sets it at start-up; inside a cgroup with memory.max
 * and no limit set, a soft limit defaults from memory.max. */
GM_API int gm_set_memory_limit(size_t bytes, int hard);
/* The current limit (0 = none); *hard (if not NULL) says whether it is hard. */
GM_API size_t gm_get_memory_limit(int *hard);

#ifdef __cplusplus
}
#endif
#endif
