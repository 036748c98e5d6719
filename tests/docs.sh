#!/usr/bin/env bash
# docs.sh BUILD_DIR — README.md and the man page doc/gomalloc.3 keep up.
#   - every GOMALLOC_* name in src/ and tools/ (the options the library and
#     its tools read) is in README.md and in gomalloc.3, as a whole word;
#   - every function <gomalloc.h> declares is named in gomalloc.3, every
#     field of struct gm_stats in both documents, every gomalloc-run option
#     in both;
#   - gomalloc.3 renders without a warning (groff -man -ww; skipped without
#     groff) and man -l shows it (skipped without man);
#   - the README keeps its two commands and its table of figures from
#     make bench.
. "$(dirname "$0")/testlib.bash"
README=$SRC/README.md
MAN=$SRC/doc/gomalloc.3
# The page's words as a reader sees them: \- is a hyphen, \fB... are fonts.
TEXT=$W/gomalloc.3
sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$MAN" >"$TEXT"

# in_docs KIND NAME...: each NAME is a whole word of both documents
# (FILES overrides which documents).
in_docs() {
    local kind=$1 missing=""
    shift
    for name in "$@"; do
        for doc in ${FILES:-$README $TEXT}; do
            grep -qw -- "$name" "$doc" || missing="$missing $name($(basename "$doc"))"
        done
    done
    [ -z "$missing" ] && pass "$kind documented ($#)" || fail "$kind missing:$missing"
}

options=$(grep -rhoE 'GOMALLOC_[A-Z0-9_]*[A-Z0-9]' "$SRC/src" "$SRC/tools" | sort -u)
[ -n "$options" ] && in_docs "options" $options || fail "no GOMALLOC_ names found in src/"

functions=$(sed -n 's/^GM_API [^(]*[ *]\(gm_[a-z0-9_]*\)(.*/\1/p' "$SRC/include/gomalloc.h" | sort -u)
FILES=$TEXT in_docs "functions in gomalloc.3" $functions

fields=$(sed -n '/^struct gm_stats {/,/^};/p' "$SRC/include/gomalloc.h" |
    grep -oE '^ +u?int[0-9]+_t [][a-zA-Z_0-9, ]+;' | sed -E 's/^ +u?int[0-9]+_t //; s/\[[A-Z_]+\]//g; s/[,;]/ /g')
in_docs "struct gm_stats fields" $fields

run_options=$(grep -oE '^ +--[a-z-]+\)' "$SRC/tools/gomalloc-run" | tr -d ' )' | sed 's/\\//g')
in_docs "gomalloc-run options" $run_options

if command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z "$MAN" 2>&1)
    [ -z "$warnings" ] && pass "groff -ww: no warnings" || fail "groff warns: $warnings"
else
    echo "SKIP: groff is not installed"
fi
if command -v man >/dev/null; then
    MANWIDTH=80 man -l "$MAN" >"$W/man.txt" 2>"$W/man.err"
    grep -q "GOMALLOC_TRACE_MS" "$W/man.txt" && ! grep -qi warning "$W/man.err" && pass "man -l renders" ||
        fail "man -l: $(cat "$W/man.err")"
else
    echo "SKIP: man is not installed"
fi

grep -q '^make run ' "$README" && grep -q '^make test ' "$README" && pass "README: make run, make test" ||
    fail "README lacks make run / make test"
grep -q '^## Figures' "$README" && grep -q '^| gomalloc | ' "$README" && pass "README: figures from make bench" ||
    fail "README: the figures from make bench are missing"

finish
