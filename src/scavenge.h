/*
 * scavenge.h — layer 5: when memory goes back to the OS (scavenge.c; Go's
 * scavenger): decay, strict-commit mode, the memory limit's pressure, the
 * background helper and the work a program without one does in its own
 * calls. Includes heap.h.
 */
#ifndef GM_SCAVENGE_H
#define GM_SCAVENGE_H

#include "heap.h"

struct gm_scav_stats {
    _Atomic uint64_t background_runs;  /* background scavenger wake-ups with work */
    _Atomic bool strict;               /* strict-commit mode in force */
};
extern struct gm_scav_stats gm_scav GM_HIDDEN;

/* Start the heap (gm_heap_init) with the scavenger's hooks on it, and the
 * settings below, once: 0, or -1 if the heap cannot start. */
int gm_scav_start(void) GM_HIDDEN;
/* Strict mode and the default (cgroup) memory limit, from the options and
 * the system: at the start, and again when options are read late. */
void gm_scav_settings(void) GM_HIDDEN;

/* What the layer above (tcache.c) lets the scavenger do with the spans it
 * holds: give empty spans of the central lists and threads' spare spans
 * back to the heap (trim, returning the bytes), and say whether it holds
 * any that might be (holds, racy: a hint that a later pass has work). */
struct gm_scav_hooks {
    size_t (*trim)(void);
    bool (*holds)(void);
};
void gm_scav_set_hooks(const struct gm_scav_hooks *hooks) GM_HIDDEN;
/* There is new memory to return (the heap freed pages, a thread kept a
 * spare span): wake the background scavenger if it sleeps. Any context but
 * the scavenger's own locks. */
void gm_scav_notify(void) GM_HIDDEN;
/* Work for the allocation and free paths, called at points where the
 * calling thread holds no gomalloc lock: on an allocation path, start the
 * background scavenger if the program has threads enough for one
 * (gm_scav_tick); without one, do its work now and then (both ticks). See
 * scavenge.c for the helper's life. */
enum { GM_BG_IDLE = 0, GM_BG_STARTING, GM_BG_RUNNING, GM_BG_STOPPING, GM_BG_OFF };
extern _Atomic int gm_bg_state GM_HIDDEN;
void gm_scav_tick_slow(bool may_start) GM_HIDDEN;
static inline void gm_scav_tick(void)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gm_bg_state, memory_order_relaxed) != GM_BG_RUNNING)) gm_scav_tick_slow(true);
}
static inline void gm_scav_tick_free(void)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gm_bg_state, memory_order_relaxed) != GM_BG_RUNNING)) gm_scav_tick_slow(false);
}
/* A thread of the program got a tcache (tcache.c), or is leaving (its
 * tcache's release, in the thread's key destructor, with no lock held):
 * the helper leaves with the program's threads. */
void gm_scav_thread_start(void) GM_HIDDEN;
void gm_scav_thread_exit(void) GM_HIDDEN;
/* Run fn when the last thread of the program leaves with pthread_exit,
 * before the process ends (the trace sampler stops there). */
void gm_scav_on_last_thread(void (*fn)(void)) GM_HIDDEN;
/* Hold off every scavenging step (gm_check, fork). Outermost lock. */
void gm_scav_lock_all(void) GM_HIDDEN;
void gm_scav_unlock_all(void) GM_HIDDEN;
/* The fork child: no helper, and threads_with_cache threads known (the
 * forking thread's, if it had a tcache). */
void gm_scav_fork_child(int threads_with_cache) GM_HIDDEN;
/* Memory is short: return everything free now, decommitting free chunks
 * whatever the mode. No lock held. */
void gm_scav_reclaim(void) GM_HIDDEN;

#endif /* GM_SCAVENGE_H */
