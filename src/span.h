/*
 * span.h — layer 6: size classes (sizeclass.c, generated: Go's
 * sizeclasses.go) and the objects of a small span (span.c): carving,
 * collecting the three free lists, whether an address is a live object,
 * and the one report of a bad pointer. Includes scavenge.h.
 *
 * A small span's objects live on three lists (the owner's free and
 * local_free, the remote freers' thread_free: tcache.h says who uses which).
 * Every free object carries a marker in its second word, gm_free_key ^ its
 * address (^ GM_BATCH_MARK in a thread's batch), set when it is carved and
 * at every free, cleared by malloc, so that a second free of it is seen at
 * once; the marker is only a hint (the program's own data may match it),
 * confirmed by a search of the span's lists.
 */
#ifndef GM_SPAN_H
#define GM_SPAN_H

#include "scavenge.h"

/* ------------------------------------------------------------------------ */
/* Size classes (sizeclass.c)                                               */
/* ------------------------------------------------------------------------ */
/*
 * Go's size classes up to 32 KiB (sizeclasses.go) without Go's 8- and
 * 24-byte classes: every class is a multiple of 16, so every small result
 * is aligned for max_align_t, and every object has room for a free-list
 * link and a freed-object marker. Class 0 means "large" (a span of its own).
 */
#define GM_MAX_SMALL 32768
/* GM_NUM_CLASSES (public header) = 65 small classes + class 0. */
extern const uint32_t gm_class_size[GM_NUM_CLASSES] GM_HIDDEN;     /* object bytes */
extern const uint8_t gm_class_npages[GM_NUM_CLASSES] GM_HIDDEN;    /* pages per span */
extern const uint16_t gm_class_nelems[GM_NUM_CLASSES] GM_HIDDEN;   /* objects per span */
/* offset / size == (offset * divmagic) >> 32 for every offset in a span. */
extern const uint32_t gm_class_divmagic[GM_NUM_CLASSES] GM_HIDDEN;
/* Lookup tables: sizes 0..1024 by (size + 15) / 16, 1025..32768 by
 * (size - 1024 + 127) / 128. */
#define GM_LOOKUP16_MAX 2048 /* sizes looked up by 16 bytes; above, by 128 */
extern const uint8_t gm_size_to_class16[GM_LOOKUP16_MAX / 16 + 1] GM_HIDDEN;
extern const uint8_t gm_size_to_class128[(GM_MAX_SMALL - GM_LOOKUP16_MAX) / 128 + 1] GM_HIDDEN;

static inline unsigned gm_size_class(size_t size) /* size <= GM_MAX_SMALL */
{
    if (size <= GM_LOOKUP16_MAX) return gm_size_to_class16[(size + 15) >> 4];
    return gm_size_to_class128[(size - GM_LOOKUP16_MAX + 127) >> 7];
}

/* Classes up to GM_OWNED_MAX bytes are served from spans a thread owns;
 * larger ones (few objects per span) from spans all threads share through
 * the central list (central.c). */
#define GM_OWNED_MAX 4096
#define GM_FIRST_SHARED_CLASS 44 /* the first class above GM_OWNED_MAX (unit_sizeclass checks) */
#define GM_NUM_SHARED_CLASSES (GM_NUM_CLASSES - GM_FIRST_SHARED_CLASS)
static inline bool gm_class_shared(unsigned cls) { return cls >= GM_FIRST_SHARED_CLASS; }

/* ------------------------------------------------------------------------ */
/* A span's objects (span.c)                                                */
/* ------------------------------------------------------------------------ */

/* thread_free low bits: who must hear about the first remote free. */
enum {
    GM_TF_NONE = 0,   /* nobody: just push */
    GM_TF_NOTIFY = 1, /* the span is in its owner's full list: tell the owner */
    GM_TF_BUSY = 2,   /* a remote freer is telling the owner right now */
    GM_TF_ORPHAN = 3, /* full and owned by nobody: the first freer puts it in central */
    GM_TF_MASK = 3,
};

extern uintptr_t gm_free_key GM_HIDDEN; /* secret for freed-object markers */
/* Set gm_free_key (once, at the first thread's start: odd, so that it never
 * equals an aligned address). */
void gm_free_key_init(void) GM_HIDDEN;
/* Checked mode: the bytes of a free object past its link and marker. */
#define GM_FREE_FILL 0xdf
/* An object in a tcache's batch carries gm_free_key ^ address ^ this, so
 * that freeing it again is known for a double free without a search. */
#define GM_BATCH_MARK 2

static inline uintptr_t gm_span_limit(const struct gm_span *s)
{
    return atomic_load_explicit((_Atomic uintptr_t *)&s->limit, memory_order_relaxed);
}

/* Is a the start of one of s's objects handed out so far (below limit)?
 * The one place the division by the object size is written (the free fast
 * path runs it): off / elemsize == (off * divmagic) >> 32 in a span. */
static inline bool gm_span_is_object(const struct gm_span *s, uintptr_t a)
{
    uintptr_t off = a - s->base;
    return off < gm_span_limit(s) - s->base && (uint32_t)((off * s->divmagic) >> 32) * s->elemsize == off;
}

/* Carve the next page's worth of s's objects onto s->free (s->free empty,
 * owned by the caller or under the central lock). */
void gm_span_carve(struct gm_span *s) GM_HIDDEN;
/* Objects carved so far. */
uint32_t gm_span_carved(const struct gm_span *s) GM_HIDDEN;
/* Move local_free and thread_free onto free, or carve more; keeps
 * thread_free's flag bits. Returns whether free is non-empty. Owner (or
 * central lock while unowned). */
bool gm_span_collect(struct gm_span *s) GM_HIDDEN;
/* Is a on one of s's free lists (which may be changing under us)? */
bool gm_span_holds_free(const struct gm_span *s, uintptr_t a) GM_HIDDEN;

/* The one report of a bad pointer (one line naming it, then abort), with
 * what the program was doing and what is wrong with the pointer. */
enum gm_op { GM_OP_FREE, GM_OP_REALLOC, GM_OP_USABLE };
enum gm_bad { GM_BAD_FOREIGN, GM_BAD_INTERIOR, GM_BAD_FREED };
_Noreturn void gm_bad_pointer(enum gm_op op, enum gm_bad bad, const void *p) GM_HIDDEN;
/* p, in small span s, is suspect (not an object start, or marked free):
 * aborts with the right report unless the marker was a false alarm. */
void gm_span_check_free(const struct gm_span *s, const void *p, enum gm_op op) GM_HIDDEN;

#endif /* GM_SPAN_H */
