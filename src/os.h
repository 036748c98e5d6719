/*
 * os.h — layer 1: the OS memory states and the system calls that move
 * memory between them (os.c, Go's mem_linux.go), and the other things
 * gomalloc asks of the kernel: files of /proc read without allocating, the
 * program's threads, helper threads, a clock, zeroing pages that may hold
 * data. Includes options.h (the huge-page policy is an option).
 */
#ifndef GM_OS_H
#define GM_OS_H

#include "options.h"

/*
 * States: None (unmapped), Reserved (PROT_NONE, no commit charge), Prepared
 * (read-write, committed, maybe not resident), Ready (in use). Every
 * transition that changes what is committed updates the byte counter its
 * caller names (a gm_stat) and the global committed/reserved counters, so
 * the sum of all named counters is exactly what the heap has committed.
 * Every function returns 0 on success and -1 (errno set) on failure, and a
 * failed call leaves the range and the counters as they were.
 */
enum gm_sys_kind {
    GM_SYS_RESERVE,  /* mmap PROT_NONE */
    GM_SYS_MAP,      /* mprotect RW: Reserved -> Prepared */
    GM_SYS_UNUSED,   /* madvise DONTNEED: Ready -> Prepared */
    GM_SYS_DECOMMIT, /* mmap PROT_NONE|MAP_FIXED: -> Reserved */
    GM_SYS_FREE,     /* munmap: -> None */
    GM_SYS_MOVE,     /* mremap DONTUNMAP: Ready pages to another address */
    GM_SYS_KINDS
};

struct gm_os_stats {
    gm_stat reserved;  /* bytes of address space held (any state but None) */
    gm_stat committed; /* bytes mapped read-write (Prepared or Ready) */
    _Atomic uint64_t calls[GM_SYS_KINDS];
    _Atomic uint64_t failures[GM_SYS_KINDS];
};
extern struct gm_os_stats gm_os GM_HIDDEN;

/* None -> Reserved. hint is only a hint; returns the address or NULL. */
void *gm_sys_reserve(void *hint, size_t n) GM_HIDDEN;
/* Reserve n bytes aligned to align (a power of two), trimming the slop. */
void *gm_sys_reserve_aligned(void *hint, size_t n, size_t align) GM_HIDDEN;
/* Reserved -> Prepared with mprotect(RW), so RLIMIT_DATA and strict
 * overcommit see it. Adds n to *stat and to gm_os.committed. */
int gm_sys_map(void *v, size_t n, gm_stat *stat) GM_HIDDEN;
/* Prepared -> Ready. Nothing to do on Linux (hook for huge-page policy). */
void gm_sys_used(void *v, size_t n) GM_HIDDEN;
/* Ready -> Prepared: madvise(MADV_DONTNEED); RSS drops, commit charge does
 * not. Counters unchanged (the caller accounts released bytes). */
int gm_sys_unused(void *v, size_t n) GM_HIDDEN;
/* Prepared -> Reserved: mmap(PROT_NONE, MAP_FIXED) over the
 * range, which drops RSS, VmData and the mode-2 commit charge. Subtracts n
 * from *stat and gm_os.committed. */
int gm_sys_decommit(void *v, size_t n, gm_stat *stat) GM_HIDDEN;
/* Move the n bytes of pages at from onto to (both Ready, page aligned, apart)
 * without copying them: to's own pages are dropped, from stays mapped and
 * committed and reads as zeroes after. 0 when moved; -1 when not, with to
 * as it was (committed, its bytes undefined: the kernel may have dropped
 * them); -2 when not and to could not be committed again (the kernel drops
 * the target's mapping before it may refuse, and the commit charge it gave
 * back may be gone): to is then Reserved and n is subtracted from *stat
 * and gm_os.committed. Keeps errno. */
int gm_sys_move(void *from, void *to, size_t n, gm_stat *stat) GM_HIDDEN;
/* Whether gm_sys_move can move pages here (probed once; see os.c). */
bool gm_sys_moves_work(void) GM_HIDDEN;
/* Heap address space only: apply the huge-page policy (MADV_NOHUGEPAGE
 * where the kernel would back the heap with huge pages unasked, or with
 * GOMALLOC_THP=0); called on each arena reservation, and by gm_sys_decommit
 * on the range it remaps, so that the heap keeps one flag and its mappings
 * still merge. */
void gm_sys_nohuge(void *v, size_t n) GM_HIDDEN;
/* Any -> None. committed_bytes of the range are subtracted from *stat. */
int gm_sys_free(void *v, size_t n, size_t committed_bytes, gm_stat *stat) GM_HIDDEN;
/* Number of lines of /proc/self/maps (the VMA count), read without
 * allocating; -1 if it cannot be read. */
long gm_sys_mapping_count(void) GM_HIDDEN;
/* The soft RLIMIT_AS in force, read anew at each call (a program may change
 * it at any time), or UINT64_MAX if there is none. Reservations that may be
 * large ask it to size themselves. */
uint64_t gm_sys_as_limit(void) GM_HIDDEN;

/* The first cap - 1 bytes of a file into buf, NUL-terminated: its length,
 * or -1. errno is left as it was either way (a missing /proc or cgroup file
 * is an answer, not an error the program should see). */
ssize_t gm_sys_read_file(const char *path, char *buf, size_t cap) GM_HIDDEN;
/* Threads of the program: those /proc/self/task lists, less the ones
 * disowned (our helpers, which disown themselves as they start, and threads
 * past the allocator's exit hook, which call gm_sys_thread_disown). A
 * helper being started counts as disowned: the count waits for it to
 * disown itself, and reads the list again if one started meanwhile. -1 if
 * /proc cannot tell. The fork child's handler forgets every entry. */
void gm_sys_thread_disown(void) GM_HIDDEN;
long gm_sys_program_threads(void) GM_HIDDEN;
void gm_sys_threads_fork_child(void) GM_HIDDEN;

/* Make [v, v + n) of the heap read as zero, writing only the pages that may
 * hold data (os.c explains how it knows). Keeps errno. */
void gm_sys_zero(void *v, size_t n) GM_HIDDEN;
#ifdef GM_TESTING
extern bool gm_zero_force_pagemap GM_HIDDEN; /* probe as where there is swap */
extern _Atomic long gm_sys_task_scans GM_HIDDEN; /* gm_sys_program_threads' scans */
unsigned gm_sys_disowned_count(void) GM_HIDDEN;  /* entries of the disowned set */
#endif

/* Helper threads (the background scavenger, the trace sampler): started
 * joinable, with every signal blocked so that no handler of the program
 * ever runs on them, on a small stack (a default 8 MiB one would show in
 * VmData), named for ps and gdb. gm_sys_helpers counts those started and
 * not yet joined. Both keep errno. gm_sys_spawn returns 0 or an error
 * number; gm_sys_join may be called from a thread that is exiting. */
#define GM_SYS_HELPER_STACK ((size_t)64 << 10)
extern _Atomic int gm_sys_helpers GM_HIDDEN;
int gm_sys_spawn(pthread_t *t, void *(*fn)(void *), const char *name) GM_HIDDEN;
void gm_sys_join(pthread_t t) GM_HIDDEN;

#ifdef GM_TESTING
/* Fault injection (test build only): after `skip` more successful calls of
 * `kind`, the next `count` calls fail with ENOMEM. count 0 disarms. */
void gm_fault_set(enum gm_sys_kind kind, uint64_t skip, uint64_t count) GM_HIDDEN;
void gm_fault_clear(void) GM_HIDDEN;
#endif

/* Milliseconds from a coarse monotonic clock (wraps; compare differences). */
uint32_t gm_now_ms(void) GM_HIDDEN;

#endif /* GM_OS_H */
