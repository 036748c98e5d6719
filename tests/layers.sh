#!/usr/bin/env bash
# layers.sh BUILD_DIR — the layering rule, checked: every file of src/
# belongs to a layer (the table below, base.h's table), a header includes
# only headers of the layers below its own (options.h sits beside base.h,
# and may include it), a source file only headers of its own layer or
# below, and nothing in src/ includes internal.h, which is the tests'. So a
# call upward does not compile. Also: each layer's header is included by
# the files of its layer, and README.md's layout table names every file of
# src/ once.
. "$(dirname "$0")/testlib.bash"

declare -A rank=(
    [gomalloc.h]=-1 [valgrind_hooks.h]=-1 [arch.h]=-1 [base.h]=0 [base.c]=0 [options.h]=0 [options.c]=0
    [os.h]=1 [os.c]=1
    [arena.h]=2 [arena.c]=2 [sparse.c]=2 [pallocbits.h]=2 [pallocbits.c]=2
    [pagealloc.h]=3 [pagealloc.c]=3 [scavindex.c]=3
    [heap.h]=4 [heap.c]=4 [heap_release.c]=4
    [scavenge.h]=5 [scavenge.c]=5
    [span.h]=6 [sizeclass.c]=6 [span.c]=6 [profile.h]=6 [profile.c]=6 [profile_write.c]=6
    [tcache.h]=7 [tcache.c]=7 [central.c]=7
    [api.h]=8 [large.c]=8 [checked.c]=8 [api.c]=8
    [stats.h]=9 [stats.c]=9 [trace.c]=9 [stats_fields.h]=9
    [init.c]=10 [override.c]=10
    [internal.h]=11
)
bad=0
for f in "$SRC"/src/*.c "$SRC"/src/*.h; do
    name=$(basename "$f")
    r=${rank[$name]:-}
    if [ -z "$r" ]; then
        fail "$name is in no layer: add it to tests/layers.sh's table (and base.h's, and README's)"
        bad=1
        continue
    fi
    while read -r inc; do
        ir=${rank[$inc]:-}
        if [ -z "$ir" ]; then
            fail "$name includes $inc, which is in no layer"
            bad=1
        elif [ "$inc" = internal.h ] && [ "$name" != internal.h ]; then
            fail "$name includes internal.h (the tests' umbrella)"
            bad=1
        elif [[ $name == *.h ]] && [ "$ir" -ge "$r" ] && ! { [ "$name" = options.h ] && [ "$inc" = base.h ]; } &&
            [ "$name" != internal.h ]; then
            fail "$name (layer $r) includes $inc (layer $ir): a header includes only lower layers"
            bad=1
        elif [[ $name == *.c ]] && [ "$ir" -gt "$r" ]; then
            fail "$name (layer $r) includes $inc (layer $ir), a higher layer"
            bad=1
        fi
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
[ "$bad" = 0 ] && pass "every #include in src/ goes down the layers (or stays in the file's own)"

# A source file of layer L includes the header of layer L (its contract).
for c in "$SRC"/src/*.c; do
    name=$(basename "$c")
    r=${rank[$name]:-}
    [ -n "$r" ] || continue
    own=
    for h in "${!rank[@]}"; do
        [[ $h == *.h ]] && [ "${rank[$h]}" = "$r" ] && [ "$h" != gomalloc.h ] && [ "$h" != valgrind_hooks.h ] && [ "$h" != arch.h ] &&
            own="$own $h"
    done
    [ "$r" = 10 ] && own=" stats.h"
    ok=no
    for h in $own; do grep -q "^#include \"$h\"" "$c" && ok=yes; done
    [ "$ok" = yes ] || { fail "$name includes none of its layer's headers:$own"; bad=1; }
done
[ "$bad" = 0 ] && pass "every source file includes its own layer's header"

# README's layout table names every file of src/.
missing=
for f in "$SRC"/src/*.c "$SRC"/src/*.h; do
    name=$(basename "$f")
    [ "$name" = gomalloc.h ] && continue
    grep -q "src/$name\`" "$SRC/README.md" || missing="$missing $name"
done
if [ -z "$missing" ]; then pass "README's layout table names every file of src/"; else fail "README's layout misses:$missing"; fi
finish
