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
 * unless named otherwise. The struct only grows: fields are added at the end
 * with a new GM_STATS_VERSION, and `version` and `size` say which fields the
 * library filled (a library older than the header fills fewer). */
#define GM_STATS_VERSION 2
#define GM_NUM_CLASSES 66 /* size classes incl. class 0 (large) */
struct gm_stats {
    uint32_t version;
    uint32_t size; /* bytes filled: sizeof(struct gm_stats) of that version */
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
    /* ---- version 2: returning memory, the memory limit ---- */
    uint64_t heap_decommitted;  /* heap bytes decommitted (strict commit): address
                                 * space kept, no commit charge */
    uint64_t scavenged_total;   /* bytes ever returned to the OS with madvise */
    uint64_t decommitted_total; /* bytes ever decommitted */
    uint64_t recommitted_total; /* decommitted bytes ever committed again */
    uint64_t background_runs;   /* background scavenger wake-ups that had work */
    uint64_t memory_limit;      /* gm_set_memory_limit's bytes, 0 = none */
    uint32_t memory_limit_hard; /* 1: allocations past the limit fail */
    uint32_t strict_commit;     /* 1: strict-commit mode (free chunks decommitted) */
    uint64_t class_live_bytes[GM_NUM_CLASSES]; /* live bytes per class (class 0:
                                 * whole pages of large objects); sum = heap_alloc */
};
/* Fills the first `size` bytes of *s (pass sizeof *s): a program built with
 * an older header gets the fields it knows and nothing past its struct.
 * version and size name the newest version that fits (0 if none does). */
GM_API void gm_stats_read(struct gm_stats *s, size_t size);
/* The statistics as this header declares them. (The symbol gm_stats_get,
 * for programs built against version 1, fills version 1's fields only.) */
GM_API void gm_stats_get(struct gm_stats *s);
#define gm_stats_get(s) gm_stats_read((s), sizeof *(s))
/* The report for people (GOMALLOC_STATS=1) and as JSON (GOMALLOC_STATS=json). */
GM_API void gm_stats_print(FILE *f);
GM_API void gm_stats_print_json(FILE *f);
/* Walks the whole heap and recomputes the statistics (Go's ReadMemStatsSlow);
 * returns 0 if they agree, else prints what differs to stderr and returns -1.
 * In a child forked from a multi-threaded process, the per-object counters
 * of the parent's other threads may be an operation off: there the pages
 * and the heap's structure are checked, not those counters. */
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

/* The heap profile (Go's runtime.MemProfile; see profile.c): allocations
 * sampled one per `rate` bytes on average, with their stacks, read with
 * pprof. gm_profile_start starts sampling (rate 0: GOMALLOC_PROFILE_RATE's,
 * 512 KiB by default; 1: every allocation) and returns 0, or -1 if the
 * profile's metadata cannot be had; threads follow at their next slow path.
 * gm_profile_stop stops sampling new allocations (frees of sampled blocks
 * still count). gm_profile_write writes the profile so far, in the legacy
 * text format that google-pprof and `go tool pprof` read, with the
 * in-use and allocated views; 0, or -1 with errno if writing failed.
 * GOMALLOC_PROFILE=FILE starts sampling at start-up and writes FILE at
 * exit. */
GM_API int gm_profile_start(size_t rate);
GM_API void gm_profile_stop(void);
GM_API int gm_profile_write(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
