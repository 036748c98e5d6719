/*
 * profile.h — layer 6, beside span.h: the heap profile (profile.c, the
 * sampler's state, stacks, buckets and sampled blocks; profile_write.c,
 * the legacy text format that pprof reads, the file and the signal).
 * Includes scavenge.h: it knows spans (a span counts its sampled blocks)
 * and the metadata allocators, nothing of thread caches, which call it.
 *
 * Who calls what: the allocation paths (api.c) decide that an allocation is
 * sampled, with a countdown that each thread cache keeps (tcache.h) and
 * draws from gm_prof_draw, and hand the block to gm_prof_record; the free
 * paths (api.c for large blocks, tcache.c for small ones) call
 * gm_prof_freed for a block of a span whose prof_samples is not zero.
 */
#ifndef GM_PROFILE_H
#define GM_PROFILE_H

#include "scavenge.h"

#define GM_PROF_DEFAULT_RATE ((uint64_t)512 << 10) /* Go's MemProfileRate */
#define GM_PROF_DEPTH 64                           /* frames kept per stack */

/* Bytes per sample while sampling is on, 0 while it is off; and a number
 * bumped at every change, by which each thread notices one at its next slow
 * path (tcache.c's gm_tcache_prof_sync). */
extern _Atomic uint64_t gm_prof_rate GM_HIDDEN;
extern _Atomic uint32_t gm_prof_epoch GM_HIDDEN;
static inline uint32_t gm_prof_epoch_now(void) { return atomic_load_explicit(&gm_prof_epoch, memory_order_acquire); }

/* Start sampling at rate bytes (1: every allocation): the buckets' and the
 * sampled set's first tables, the unwinder primed (outside any lock), then
 * the rate published. -1 if the metadata cannot be had. Stop: new
 * allocations are no longer sampled; frees of sampled blocks still count. */
int gm_prof_start(uint64_t rate) GM_HIDDEN;
void gm_prof_stop(void) GM_HIDDEN;
/* Has sampling ever been on in this process (so that buckets exist)? */
bool gm_prof_used(void) GM_HIDDEN;

/* A thread's random state, from something unique to it, and the bytes to
 * its next sample: exponentially distributed with mean rate (Go's
 * nextSample), 0 for rate 1 (every allocation is sampled). */
uint64_t gm_prof_seed(const void *salt) GM_HIDDEN;
int64_t gm_prof_draw(uint64_t *rng, uint64_t rate) GM_HIDDEN;

/* Record a sampled block p of size bytes (requested) in span s: the
 * caller's stack, its bucket's allocation counts, p in the sampled set and
 * s->prof_samples. Nothing happens when called from inside the profiler
 * itself (the unwinder allocating) or when metadata runs out. */
void gm_prof_record(void *p, size_t size, struct gm_span *s) GM_HIDDEN;
/* p, a block of s (whose prof_samples is not zero), is being freed: if it
 * was sampled, its bucket's free counts, and out of the set. Before the
 * block goes back to its span. */
void gm_prof_freed(struct gm_span *s, const void *p) GM_HIDDEN;

/* The profile (profile_write.c): to a descriptor, without allocating or
 * locking (the exit handler, the signal handler), or to a stdio stream. 0,
 * or -1 with errno when a write fails. */
int gm_prof_write_fd(int fd) GM_HIDDEN;
/* GOMALLOC_PROFILE's file (%p: the process id), replaced by a new profile
 * (a regular file through a temporary one and rename, so that a reader
 * never sees half a profile); if it cannot be written, one line on stderr
 * says so (once per process). */
void gm_prof_write_file(const char *path) GM_HIDDEN;
/* GOMALLOC_PROFILE_PERIOD: the file written every seconds from now on,
 * by the first caller of gm_prof_period_tick (the sample path) after each
 * period has passed; it must hold no allocator lock. */
void gm_prof_period_start(const char *path, uint32_t seconds) GM_HIDDEN;
void gm_prof_period_tick(void) GM_HIDDEN;
/* GOMALLOC_PROFILE_SIGNAL: a handler that writes the file on signo. */
void gm_prof_signal_install(int signo, const char *path) GM_HIDDEN;

/* fork (init.c, base.h's order: the profile lock comes first): the child
 * forgets the parent's samples (its profile is its own). */
void gm_prof_fork_prepare(void) GM_HIDDEN;
void gm_prof_fork_parent(void) GM_HIDDEN;
void gm_prof_fork_child(void) GM_HIDDEN;

/* What profile_write.c reads of profile.c's buckets: they are never freed
 * and only ever prepended to the list (a release store), so a writer walks
 * them without a lock; the counts are raw samples, pprof scales them. */
struct gm_prof_bucket {
    struct gm_prof_bucket *hnext;          /* hash chain (under the lock) */
    struct gm_prof_bucket *all_next;       /* every bucket, newest first */
    uint64_t hash, size;                   /* size: of each block, bytes */
    _Atomic uint64_t allocs, frees;        /* samples */
    uint32_t depth;
    uintptr_t pc[];                        /* return addresses, innermost first */
};
struct gm_prof_bucket *gm_prof_buckets(void) GM_HIDDEN;
/* The rate the profile was taken at (the last one started). */
uint64_t gm_prof_last_rate(void) GM_HIDDEN;

#endif /* GM_PROFILE_H */
