/*
 * init.c — the top: what the library does once, from its constructor (a
 * point where no libc lock is held, unlike inside malloc, whose first call
 * may come from atexit, pthread_atfork or pthread_create themselves): the
 * fork handlers, the exit report (GOMALLOC_STATS, GOMALLOC_CHECK), the
 * trace sampler (GOMALLOC_TRACE). The first allocation's own set-up is
 * api.c's.
 *
 * fork: prepare takes every lock of base.h's order, in that order and no
 * other (the scavenger's, the BUSY lock, the tcache registry, the central
 * lists in class order, the heap, the arena hints, the persistent
 * allocator; the trace file's lock is taken before them by trace.c's own
 * handler, registered later, so run first), so that the child's copy of the
 * heap is consistent; the parent releases them in reverse and the child
 * reinitializes them (it is the only thread, and holds them all).
 */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "profile.h"

static void gm_fork_prepare(void)
{
    gm_prof_fork_prepare();
    gm_scav_lock_all();
    gm_busy_fork_prepare();
    gm_tcache_fork_prepare();
    gm_central_fork_prepare();
    gm_heap_fork_prepare();
    gm_arena_fork_prepare();
}

static void gm_fork_parent(void)
{
    gm_arena_fork_parent();
    gm_heap_fork_parent();
    gm_central_fork_parent();
    gm_tcache_fork_parent();
    gm_busy_fork_parent();
    gm_scav_unlock_all();
    gm_prof_fork_parent();
}

static void gm_fork_child(void)
{
    gm_rank_fork_child();
    gm_arena_fork_child();
    gm_heap_fork_child();
    gm_central_fork_child();
    gm_tcache_fork_child();
    gm_busy_fork_child();
    gm_scav_fork_child(gm_tc ? 1 : 0);
    gm_prof_fork_child();
}

/* The exit report's descriptor: a close-on-exec duplicate of stderr taken
 * at start-up, because programs may close stderr in their own exit handlers
 * (coreutils' close_stdout does), which run before ours. */
static int gm_report_fd = 2;

/* Where the exit report goes: GOMALLOC_STATS_FILE, opened at exit (so
 * that %p is the pid of the process that exits, a forked child's own) for
 * appending, so that processes can share one file; else, or if it cannot be
 * opened (one line says so), the duplicate of stderr. */
static int gm_report_open(void)
{
    if (!gm_opt.stats_file) return gm_report_fd;
    char path[GM_PATH_MAX];
    if (!gm_path_expand(gm_opt.stats_file, path, sizeof path)) {
        gm_complain_file(gm_report_fd, "GOMALLOC_STATS_FILE", "the report goes to stderr", gm_opt.stats_file,
                         ENAMETOOLONG);
        return gm_report_fd;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    gm_complain_file(gm_report_fd, "GOMALLOC_STATS_FILE", "the report goes to stderr", path, errno);
    return gm_report_fd;
}

static void gm_at_exit(void)
{
    int saved = errno; /* atexit handlers registered before ours run after it */
    if (gm_opt.stats) {
        int fd = gm_report_open();
        if (gm_opt.stats == GM_STATS_JSON) gm_stats_print_json_fd(fd);
        else gm_stats_print_fd(fd);
        if (fd != gm_report_fd) close(fd);
    }
    if (gm_opt.check) gm_check_fd(gm_report_fd);
    errno = saved;
}

/* GOMALLOC_PROFILE: the heap profile at exit, into the file named for the
 * process that exits (a forked child's %p is its own pid). */
static void gm_profile_at_exit(void)
{
    gm_prof_write_file(gm_opt.profile); /* keeps errno */
}

__attribute__((constructor)) static void gm_constructor(void)
{
    int saved = errno; /* the program's main must find it as it would without us */
    gm_options_load();
    pthread_atfork(gm_fork_prepare, gm_fork_parent, gm_fork_child);
    if (gm_opt.stats || gm_opt.check) {
        int fd = fcntl(2, F_DUPFD_CLOEXEC, 100); /* out of the way of low descriptors */
        if (fd >= 0) gm_report_fd = fd;
        atexit(gm_at_exit);
    }
    if (gm_opt.trace) gm_trace_start(gm_opt.trace, gm_opt.trace_ms);
    if (gm_opt.profile && gm_prof_used()) {
        atexit(gm_profile_at_exit);
        if (gm_opt.profile_signal) gm_prof_signal_install(gm_opt.profile_signal, gm_opt.profile);
    }
    errno = saved;
}
