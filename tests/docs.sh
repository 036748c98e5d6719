#!/usr/bin/env bash
# docs.sh BUILD_DIR — README.md and the man page doc/gomalloc.3 keep up.
#   - every GOMALLOC_* name in src/ and tools/ (the options the library and
#     its tools read) is in README.md and in gomalloc.3, as a whole word;
#   - every function <gomalloc.h> declares is named in gomalloc.3, every
#     field of struct gm_stats in both documents, every gomalloc-run option
#     in both;
#   - the options are src/options.c's table: README.md's options table is
#     exactly the rows unit_options --markdown prints, and gomalloc.3's
#     ENVIRONMENT lists exactly the table's options, in its order, each
#     entry ending "Default: <the table's default>." (skipped without groff);
#   - the statistics are src/stats_fields.h's list: README.md's table in
#     "Statistics reference" is exactly the rows unit_stats --markdown
#     prints (names, order, docs), and gomalloc.3's STATISTICS list,
#     between its two comment lines, exactly what unit_stats --man prints;
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

# The options' table against both documents.
TABLE=$B/tests/unit_options
if [ -x "$TABLE" ]; then
    "$TABLE" --markdown >"$W/rows.md"
    grep '^| `GOMALLOC_' "$README" >"$W/readme_rows.md"
    if diff -u "$W/rows.md" "$W/readme_rows.md" >"$W/rows.diff"; then
        pass "README's options table is src/options.c's ($(wc -l <"$W/rows.md") options)"
    else
        fail "README's options table differs from unit_options --markdown (- table, + README):"
        cat "$W/rows.diff"
    fi
    if command -v groff >/dev/null; then
        # Rendered on one long line per paragraph: a heading line per option
        # (7 spaces), its text on the next (14 spaces).
        groff -man -Tutf8 -P-cbou -rLL=2000n "$MAN" 2>/dev/null | sed -n '/^ENVIRONMENT/,/^[A-Z]/p' |
            awk '/^       GOMALLOC_/ { sub(/^ +/, ""); sub(/=.*/, ""); name = $0; next }
                 name != "" && /^              / {
                     def = "?"
                     if (match($0, /Default: [^ ]+\.$/)) def = substr($0, RSTART + 9, RLENGTH - 10)
                     print name "\t" def; name = "" }' >"$W/man_options.tsv"
        "$TABLE" --table >"$W/table.tsv"
        if diff -u "$W/table.tsv" "$W/man_options.tsv" >"$W/man.diff"; then
            pass "gomalloc.3's ENVIRONMENT is src/options.c's table, defaults included"
        else
            fail "gomalloc.3's ENVIRONMENT differs from unit_options --table (- table, + gomalloc.3):"
            cat "$W/man.diff"
        fi
    fi
else
    fail "no $TABLE to compare the documents' options with"
fi

# The statistics' list against both documents.
STATS=$B/tests/unit_stats
if [ -x "$STATS" ]; then
    "$STATS" --markdown >"$W/stats_rows.md"
    # The table's rows in the section, less its head and rule.
    sed -n '/^## Statistics reference/,/^## /p' "$README" | grep '^|' | tail -n +3 >"$W/readme_stats.md"
    if diff -u "$W/stats_rows.md" "$W/readme_stats.md" >"$W/stats.diff"; then
        pass "README's statistics table is src/stats_fields.h's list ($(wc -l <"$W/stats_rows.md") rows)"
    else
        fail "README's statistics table differs from unit_stats --markdown (- list, + README):"
        cat "$W/stats.diff"
    fi
    "$STATS" --man >"$W/stats_rows.man"
    sed -n '/^\.\\" The list below is what tests\/unit_stats --man prints/,/^\.\\" End of the list\./p' "$MAN" |
        sed -e '1,2d' -e '$d' >"$W/man_stats.man"
    if [ -s "$W/man_stats.man" ] && diff -u "$W/stats_rows.man" "$W/man_stats.man" >"$W/stats_man.diff"; then
        pass "gomalloc.3's STATISTICS list is src/stats_fields.h's list"
    else
        fail "gomalloc.3's STATISTICS list differs from unit_stats --man (- list, + gomalloc.3):"
        cat "$W/stats_man.diff"
    fi
else
    fail "no $STATS to compare the documents' statistics with"
fi

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
