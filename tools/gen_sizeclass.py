#!/usr/bin/env python3
"""gen_sizeclass.py — writes src/sizeclass.c, gomalloc's size-class tables.

Usage: python3 tools/gen_sizeclass.py > src/sizeclass.c

The classes are Go's (runtime/sizeclasses.go, unchanged from Go 1.16 through
1.25) without Go's class 1 (8 bytes) and class 3 (24 bytes). The (size, pages)
pairs are written out below as facts; the script re-derives them with Go's
algorithm (mksizeclasses.go, started at 16 bytes instead of 8) as a cross
check, computes everything else and checks the invariants before printing.

One change of gomalloc's own: spans of the classes up to 1 KiB are at least
MIN_SMALL_SPAN_PAGES pages (32 KiB) instead of Go's one page. Go refills a
thread's cache from spans swept in bulk; gomalloc's threads refill from
their own spans' free lists, and with 8 KiB spans a live set replaced at
random leaves each span a free object or two, so every few allocations went
down the slow path. Spans are carved lazily (span.c), so the untouched part
of a bigger span costs no RSS.

And two classes of gomalloc's own, EXTRA, for a power of two plus a small
header, among the commonest sizes C programs ask for (a buffer plus its
length, an allocator wrapper's size prefix: sqlite adds 8 bytes to every
block, PostgreSQL's chunks carry 16), which Go's table serves badly right
above 1 and 4 KiB: 1040 bytes (Go: 1152, 11% lost on a 1032-byte block)
and 4480 (Go's 4096 -> 4864 step is 768 bytes, its merge of equal spans:
11-18% lost on sqlite's 4368-byte page-cache entries and on 4104-byte
blocks). sqlite's in-memory database took 11% more RSS than on glibc for
them (issue 13). 1040 fills four pages like the classes below it (31
objects, 528 bytes of tail), 4480 five (9 objects, 640 bytes). The lookup
by 16 bytes runs to 2 KiB so that 1040 can be told from 1152. They take
the places of two of Go's three classes within 384 bytes, 6528 and 6784
(beside 6912: Go's fits of 4, 5 and 6 pages), so that the number of
classes, and with it the per-class arrays of the public struct gm_stats,
whose released versions are frozen, stays the same; from 6145 to 6912
bytes a block now loses at most 11%.
"""

import sys

PAGE = 8192
MAX_SMALL = 32768

# (object bytes, pages per span): Go's table minus 8 and 24.
CLASSES = [
    (16, 1), (32, 1), (48, 1), (64, 1), (80, 1), (96, 1), (112, 1), (128, 1),
    (144, 1), (160, 1), (176, 1), (192, 1), (208, 1), (224, 1), (240, 1),
    (256, 1), (288, 1), (320, 1), (352, 1), (384, 1), (416, 1), (448, 1),
    (480, 1), (512, 1), (576, 1), (640, 1), (704, 1), (768, 1), (896, 1),
    (1024, 1), (1152, 1), (1280, 1), (1408, 2), (1536, 1), (1792, 2),
    (2048, 1), (2304, 2), (2688, 1), (3072, 3), (3200, 2), (3456, 3),
    (4096, 1), (4864, 3), (5376, 2), (6144, 3), (6528, 4), (6784, 5),
    (6912, 6), (8192, 1), (9472, 7), (9728, 6), (10240, 5), (10880, 4),
    (12288, 3), (13568, 5), (14336, 7), (16384, 2), (18432, 9), (19072, 7),
    (20480, 5), (21760, 8), (24576, 3), (27264, 10), (28672, 7), (32768, 4),
]

# gomalloc's own classes (see the top), merged into Go's by size.
EXTRA = [(1040, 4), (4480, 5)]
DROPPED = [(6528, 4), (6784, 5)]  # Go's, given up for EXTRA (see the top)
LOOKUP16_MAX = 2048  # sizes up to this are looked up by 16 bytes, then by 128


def go_algorithm(start):
    """Go's mksizeclasses.go: candidate sizes stepped by an alignment that
    grows at powers of two; the smallest span with tail waste <= 1/8; equal
    (pages, objects) neighbours merged into the larger size; then each size
    raised to span/objects rounded down to 128 when that is larger."""
    def pow2(x):
        return x & (x - 1) == 0

    classes = []
    align = start
    size = start
    while size <= MAX_SMALL:
        if pow2(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= 32:
                align = 16
        span = PAGE
        while span % size > span // 8:
            span += PAGE
        npages = span // PAGE
        if classes and classes[-1][1] == npages and span // classes[-1][0] == span // size:
            classes[-1] = (size, npages)
        else:
            classes.append((size, npages))
        size += align
    out = []
    for size, npages in classes:
        span = npages * PAGE
        bigger = (span // (span // size)) & ~127
        out.append((max(size, bigger), npages))
    return out


def divmagic(size):
    # Go: ^uint32(0)/size + 1, i.e. ceil(2^32 / size) (exact for powers of two).
    return 0xFFFFFFFF // size + 1


MIN_SMALL_SPAN_PAGES = 4
MIN_SPAN_CLASS_LIMIT = 1024


def gomalloc_spans(classes):
    """Go's (size, pages) with the spans of small classes raised."""
    return [(s, max(p, MIN_SMALL_SPAN_PAGES) if s <= MIN_SPAN_CLASS_LIMIT else p) for s, p in classes]


def all_classes():
    """Go's classes but DROPPED, and gomalloc's own, by size."""
    return sorted([c for c in CLASSES if c not in DROPPED] + EXTRA)


def check(go_classes):
    assert go_algorithm(16) == go_classes, "table differs from Go's algorithm"
    assert len(go_classes) == 65
    classes = gomalloc_spans(all_classes())
    assert len(classes) == 65
    assert all(s % 128 == 0 for s, _ in classes if s > LOOKUP16_MAX)
    prev = 0
    for size, npages in classes:
        span = npages * PAGE
        assert size > prev and size % 16 == 0
        assert span % size <= span // 8
        m = divmagic(size)
        assert m < 1 << 32
        assert all((off * m) >> 32 == off // size for off in range(span))
        prev = size
    assert prev == MAX_SMALL
    for i, (size, npages) in enumerate(classes):
        if size >= 96:
            assert max_waste(classes, i) <= 0.167


def max_waste(classes, i):
    """Go's "max waste": every object one byte above the previous class."""
    size, npages = classes[i]
    prev = classes[i - 1][0] if i else 0
    span = npages * PAGE
    return ((size - prev - 1) * (span // size) + span % size) / span


def comment_table(classes):
    lines = ["/*", " * class  bytes/obj  pages  objects  tail waste  max waste"]
    for i, (size, npages) in enumerate(classes):
        span = npages * PAGE
        lines.append(" * %5d  %9d  %5d  %7d  %10d  %8.2f%%" % (
            i + 1, size, npages, span // size, span % size, 100 * max_waste(classes, i)))
    lines.append(" */")
    return "\n".join(lines)


def lookup(classes, sizes):
    """For each requested size the smallest class (1-based) that holds it."""
    out = []
    for want in sizes:
        out.append(next(i + 1 for i, (size, _) in enumerate(classes) if size >= want))
    return out


def c_array(ctype, name, dim, values, per_line, width):
    lines = ["const %s %s[%s] = {" % (ctype, name, dim)]
    for i in range(0, len(values), per_line):
        chunk = values[i:i + per_line]
        lines.append("    " + " ".join("%*s," % (width, v) for v in chunk))
    lines.append("};")
    return "\n".join(lines)


HEADER = """\
/*
 * sizeclass.c — gomalloc's size classes. GENERATED by tools/gen_sizeclass.py;
 * edit the script, not this file.
 *
 * These are the Go runtime's size classes (runtime/sizeclasses.go, the same
 * table from Go 1.16 through 1.25): every request of at most 32 KiB is rounded
 * up to one of these object sizes, and a span of the listed number of 8 KiB
 * pages is carved into objects of that size. Class 0 is the placeholder for
 * large objects (a span of their own) and is all zeros. One difference:
 * spans of the classes up to 1 KiB are 4 pages, not Go's 1, so that a thread
 * refills from a span far less often (see the script).
 *
 * Go's class 1 (8 bytes) and class 3 (24 bytes) are dropped, leaving 65 of
 * Go's classes, all multiples of 16: C requires malloc results to be aligned
 * for max_align_t (16 bytes on x86-64), which 8 and 24 are not, and a 16-byte
 * minimum leaves every free object room for a free-list link plus a
 * freed-object marker. Requests of 0..16 bytes get the 16-byte class. Two
 * classes are gomalloc's own, 1040 and 4480 bytes, for the sizes Go's table
 * serves worst among the commonest, 1 or 4 KiB plus a small header; they
 * replace Go's 6528 and 6784, two of three classes within 384 bytes, so
 * that there are still 65 (see the script).
 *
 * Waste bounds:
 *   - tail waste: each span is the smallest whole number of pages whose
 *     leftover after the last object is at most 1/8 of the span (12.5%);
 *   - rounding waste: classes are spaced 16 bytes apart below 128, size/8
 *     apart between powers of two up to 2 KiB and 256 apart above, so a
 *     request from 128 bytes up loses at most ~19% of itself to rounding
 *     (Go's merge of equal spans widens a few gaps past 1/8);
 *   - both together, worst case over a whole span of requests one byte above
 *     the previous class (Go's "max waste", listed below): at most 16.7% for
 *     every class from 96 bytes up. The smallest classes are dominated by the
 *     16-byte alignment (a 1-byte request takes 16 bytes, a 17-byte one 32).
 *
 * divmagic is Go's 32-bit reciprocal ceil(2^32 / size): for every offset in
 * a span, (offset * divmagic) >> 32 == offset / size (checked by the
 * generator and by tests/unit_sizeclass.c).
 *
 * Lookups: gm_size_to_class16[(size + 15) >> 4] for sizes 0..2048 and
 * gm_size_to_class128[(size - 2048 + 127) >> 7] for 2049..32768 give the
 * smallest class whose size is >= the request (gm_size_class in span.h).
 */
#include "span.h"
"""


def main():
    check(CLASSES)
    merged = all_classes()
    classes = gomalloc_spans(merged)
    sizes = [0] + [s for s, _ in classes]
    pages = [0] + [p for _, p in classes]
    nelems = [0] + [p * PAGE // s for s, p in classes]
    magic = [0] + [divmagic(s) for s, _ in classes]
    # Index i of class16 covers sizes 16*(i-1)+1 .. 16*i (index 0: size 0).
    class16 = lookup(merged, [max(16 * i, 1) for i in range(LOOKUP16_MAX // 16 + 1)])
    # Index i of class128 covers sizes 2048+128*(i-1)+1 .. 2048+128*i.
    class128 = lookup(merged, [LOOKUP16_MAX + 128 * i for i in range((MAX_SMALL - LOOKUP16_MAX) // 128 + 1)])

    out = [HEADER, comment_table(classes), ""]
    out.append("/* Objects per class, in bytes. */")
    out.append(c_array("uint32_t", "gm_class_size", "GM_NUM_CLASSES", sizes, 8, 6))
    out.append("")
    out.append("/* Pages (8 KiB) per span. */")
    out.append(c_array("uint8_t", "gm_class_npages", "GM_NUM_CLASSES", pages, 12, 3))
    out.append("")
    out.append("/* Objects per span: npages * 8192 / size. */")
    out.append(c_array("uint16_t", "gm_class_nelems", "GM_NUM_CLASSES", nelems, 12, 4))
    out.append("")
    out.append("/* ceil(2^32 / size). */")
    out.append(c_array("uint32_t", "gm_class_divmagic", "GM_NUM_CLASSES",
                       ["0x%08x" % m for m in magic], 6, 10))
    out.append("")
    out.append("/* Class of sizes 0..2048, by (size + 15) >> 4. */")
    out.append(c_array("uint8_t", "gm_size_to_class16", "GM_LOOKUP16_MAX / 16 + 1", class16, 16, 2))
    out.append("")
    out.append("/* Class of sizes 2049..32768, by (size - 2048 + 127) >> 7. */")
    out.append(c_array("uint8_t", "gm_size_to_class128", "(GM_MAX_SMALL - GM_LOOKUP16_MAX) / 128 + 1",
                       class128, 16, 2))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
