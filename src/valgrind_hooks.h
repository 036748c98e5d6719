/*
 * valgrind_hooks.h — telling Valgrind's memcheck what gomalloc's heap holds,
 * through its client requests. Without this memcheck sees only gomalloc's
 * mmaps: no heap blocks, so no leak, use-after-free or overflow reports.
 * Every hook is an empty inline function unless the build defines
 * GM_VALGRIND (cmake -DGM_VALGRIND=ON, a separate build): the fast paths
 * cost nothing otherwise. Under a GM_VALGRIND build run outside Valgrind a
 * client request is a few instructions that do nothing.
 *
 * The model memcheck is given:
 *   - a block is an object from malloc and friends, registered with its
 *     usable size (what malloc_usable_size reports: the size class for a
 *     small object, whole pages for a large one), so realloc within the
 *     usable size and programs that use the slack raise no report;
 *     overflows are caught past the usable end;
 *   - a free object is inaccessible, all of it, always: gomalloc's own
 *     accesses to free objects (free-list links and freed-object markers)
 *     happen inside gm_vg_quiet sections, where memcheck does not report;
 *   - pages not in a span in use are inaccessible; a new small-object span
 *     is made accessible while it is carved, then inaccessible again.
 * Limits: a live large object, and a live small object at a span's very
 * start, is pointed to by its span record, so memcheck calls it "still
 * reachable" when the program leaks it, not "definitely lost".
 *
 * Valgrind (3.12 and later) replaces the allocation functions it finds
 * exported by any library or the executable with its own, gomalloc's among
 * them; run with --soname-synonyms=somalloc=nouserintercepts (any name that
 * matches no library) so that it replaces only libc's and gomalloc serves
 * the program.
 */
#ifndef GM_VALGRIND_HOOKS_H
#define GM_VALGRIND_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef GM_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>

/* p now holds a block of size usable bytes; zeroed: its bytes are defined. */
static inline void gm_vg_alloc(const void *p, size_t size, bool zeroed)
{
    VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, zeroed);
}
/* The block at p is free: memcheck remembers where, for later reports. */
static inline void gm_vg_free(const void *p) { VALGRIND_FREELIKE_BLOCK(p, 0); }
/* The block at p changed size in place. */
static inline void gm_vg_resize(const void *p, size_t old_size, size_t new_size)
{
    VALGRIND_RESIZEINPLACE_BLOCK(p, old_size, new_size, 0);
}
static inline void gm_vg_noaccess(const void *p, size_t n) { (void)VALGRIND_MAKE_MEM_NOACCESS(p, n); }
static inline void gm_vg_undefined(const void *p, size_t n) { (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
static inline void gm_vg_defined(const void *p, size_t n) { (void)VALGRIND_MAKE_MEM_DEFINED(p, n); }
/* Around gomalloc's own reads and writes of free objects. Nests. */
static inline void gm_vg_quiet_begin(void) { VALGRIND_DISABLE_ERROR_REPORTING; }
static inline void gm_vg_quiet_end(void) { VALGRIND_ENABLE_ERROR_REPORTING; }
/* The word at p in a live object, which the program may never have written
 * (the freed-object marker check reads one): the copy is declared defined,
 * the object's own bytes keep what memcheck knows of them. */
static inline uintptr_t gm_vg_word(const void *p)
{
    uintptr_t v = *(const uintptr_t *)p;
    (void)VALGRIND_MAKE_MEM_DEFINED(&v, sizeof v);
    return v;
}
#else
static inline void gm_vg_alloc(const void *p, size_t size, bool zeroed) {}
static inline void gm_vg_free(const void *p) {}
static inline void gm_vg_resize(const void *p, size_t old_size, size_t new_size) {}
static inline void gm_vg_noaccess(const void *p, size_t n) {}
static inline void gm_vg_undefined(const void *p, size_t n) {}
static inline void gm_vg_defined(const void *p, size_t n) {}
static inline void gm_vg_quiet_begin(void) {}
static inline void gm_vg_quiet_end(void) {}
static inline uintptr_t gm_vg_word(const void *p) { return *(const uintptr_t *)p; }
#endif

#endif /* GM_VALGRIND_HOOKS_H */
