#!/usr/bin/env bash
# real_programs.sh BUILD_DIR — real programs with libgomalloc preloaded.
#
# Runs python3's own regression tests, the sqlite3 CLI and gcc twice each,
# once on glibc malloc and once with LD_PRELOAD=BUILD_DIR/libgomalloc.so (or
# $GM_PRELOAD_LIB, to try the script with another allocator), both runs side
# by side, and compares them:
#   python3  PYTHONMALLOC=malloc, a handful of test modules: exit status 0
#            and "Tests result: SUCCESS" in both runs; and its tests of
#            threads, processes and signals (test_threading, test_os,
#            test_signal, test_subprocess, test_threadsignals): the same
#            verdict for every test case in both runs;
#   sqlite3  a 100k-row database with indexes, GROUP BY, joins, sorts, window
#            functions, recursive CTEs, updates and VACUUM: output identical;
#   gcc      -O2 on a generated file of 3000 functions: object files identical
#            and the linked programs print the same.
# It also checks that the preload is in effect, in a plain process and in
# each program that does the work (python, sqlite3, cc1).
# Missing tools (sqlite3, gcc, Python's test suite) are installed with
# apt-get, only when missing. Environment: GM_PRELOAD_LIB (library to
# preload), GM_PYTHON (interpreter to use), GM_RP_TIMEOUT (seconds per run,
# default 150). Ends with "real_programs: N passed, M failed".
set -u
unset LD_PRELOAD

BUILD=${1:-}
LIB=${GM_PRELOAD_LIB:-${BUILD:+$BUILD/libgomalloc.so}}
TMO=${GM_RP_TIMEOUT:-150}
if [ -z "$LIB" ] || [ ! -f "$LIB" ]; then
    echo "FAIL: library to preload not found: '${LIB}'" \
         "(usage: $0 BUILD_DIR, with BUILD_DIR/libgomalloc.so built, or set GM_PRELOAD_LIB)"
    echo "real_programs: 0 passed, 1 failed"
    exit 1
fi
LIB=$(realpath "$LIB")
echo "preloading $LIB"

W=$(mktemp -d "${TMPDIR:-/tmp}/gm_real.XXXXXX")
trap 'rm -rf "$W"' EXIT
npass=0
nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }

# install_pkg PKG and need CMD PKG (tests/packages.bash): missing tools.
source "$(dirname "${BASH_SOURCE[0]}")/packages.bash"

# run_both NAME CMD...: run CMD on glibc and with the preload, concurrently,
# each in its own directory $W/{glibc,preload}/NAME, leaving out, err, rc.
run_both() {
    local name=$1 side
    shift
    for side in glibc preload; do
        mkdir -p "$W/$side/$name"
        (
            cd "$W/$side/$name" || exit
            if [ "$side" = preload ]; then
                timeout "$TMO" env LD_PRELOAD="$LIB" "$@" >out 2>err
            else
                timeout "$TMO" "$@" >out 2>err
            fi
            echo $? >rc
        ) &
    done
    wait
}
rc() { cat "$W/$1/$2/rc"; }

# preload_reaches PROG CMD...: true if, while CMD runs with the preload, the
# loader maps the library into a process whose program name ends in PROG.
preload_reaches() {
    local prog=$1 d="$W/lddebug.$1" f
    shift
    mkdir -p "$d"
    (cd "$d" && LD_DEBUG=files LD_DEBUG_OUTPUT="$d/ld" LD_PRELOAD="$LIB" "$@" >/dev/null 2>&1)
    for f in "$d"/ld.*; do
        [ -f "$f" ] || continue
        if grep -q "initialize program: \(.*/\)\?$prog\$" "$f" &&
            grep -F "file=$LIB [0];" "$f" | grep -q 'generating link map'; then
            return 0
        fi
    done
    return 1
}

# show NAME: the tail of both runs' stderr, for a failure.
show() {
    local side
    for side in glibc preload; do
        echo "--- $1 ($side): exit $(rc $side "$1"), stderr tail:"
        tail -n 15 "$W/$side/$1/err"
    done
}

# ---------------------------------------------------------------------------
# 0. The preload is in effect: a preloaded sleep has the library mapped.
LD_PRELOAD="$LIB" sleep 30 &
sleeper=$!
mapped=no
for _ in $(seq 50); do
    if grep -qF "$LIB" "/proc/$sleeper/maps" 2>/dev/null; then mapped=yes; break; fi
    sleep 0.1
done
kill "$sleeper" 2>/dev/null
wait "$sleeper" 2>/dev/null
if [ "$mapped" = yes ]; then
    pass "preloaded sleep maps $LIB"
else
    fail "preloaded sleep (pid $sleeper) does not map $LIB"
fi
# TODO: once gomalloc has GOMALLOC_STATS=1, also require its report on stderr.

# ---------------------------------------------------------------------------
# 1. python3: its own regression tests with PYTHONMALLOC=malloc.
t0=$SECONDS
PY=
find_python() {
    local cand exe
    for cand in "${GM_PYTHON:-}" "$(command -v python3 2>/dev/null)" /usr/bin/python3; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        # Resolve wrappers (pyenv shims) to the interpreter itself.
        exe=$("$cand" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
        if "$exe" -c 'import test.libregrtest, test.test_dict' >/dev/null 2>&1; then
            PY=$exe
            return 0
        fi
    done
    # Debian ships the test modules separately: libpython3.X-testsuite.
    need /usr/bin/python3 python3 || return 1
    local ver
    ver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') || return 1
    install_pkg "libpython$ver-testsuite" || return 1
    /usr/bin/python3 -c 'import test.libregrtest, test.test_dict' >/dev/null 2>&1 || return 1
    PY=/usr/bin/python3
}
if find_python; then
    tdir=$("$PY" -c 'import os, test; print(os.path.dirname(test.__file__))')
    tests=()
    # test_unicode was renamed test_str in 3.12: whichever exists runs.
    for t in test_dict test_list test_set test_unicode test_str test_json test_re test_pickle test_decimal; do
        if [ -f "$tdir/$t.py" ] || [ -f "$tdir/$t/__init__.py" ]; then tests+=("$t"); fi
    done
    echo "python: $PY, tests: ${tests[*]}"
    if ((${#tests[@]} < 5)); then
        fail "python: only ${#tests[@]} of the chosen test modules exist in $tdir"
    else
        if preload_reaches "$(basename "$PY")" "$PY" -c pass; then
            pass "python: preload reaches $PY"
        else
            fail "python: preload does not reach $PY"
        fi
        run_both python env PYTHONMALLOC=malloc "$PY" -m test "${tests[@]}"
        ok=yes
        for side in glibc preload; do
            if [ "$(rc $side python)" != 0 ] || ! grep -q 'Tests result: SUCCESS' "$W/$side/python/out"; then
                ok=no
                echo "--- python ($side): exit $(rc $side python), output tail:"
                tail -n 25 "$W/$side/python/out"
            fi
        done
        if [ "$ok" = yes ]; then
            pass "python: ${#tests[@]} test modules succeed on glibc and preloaded ($((SECONDS - t0)) s)"
        else
            fail "python: test modules did not succeed in both runs"
        fi
    fi
else
    fail "python: no python3 with its regression tests available"
fi

# ---------------------------------------------------------------------------
# 1b. python3's tests of threads, processes and signals give the same verdict,
# test by test, on glibc and preloaded (a helper thread the program can see
# changes them: a process that never ends after its last thread, a signal
# nobody takes, a fork child that is not single-threaded).
t0=$SECONDS
if [ -n "$PY" ]; then
    ptests=()
    for t in test_threading test_os test_signal test_subprocess test_threadsignals; do
        if [ -f "$tdir/$t.py" ] || [ -f "$tdir/$t/__init__.py" ]; then ptests+=("$t"); fi
    done
    TMO_SAVED=$TMO
    TMO=$((TMO > 400 ? TMO : 400))
    run_both pyproc env PYTHONMALLOC=malloc "$PY" -m test -j2 --timeout 200 --junit-xml junit.xml "${ptests[@]}"
    TMO=$TMO_SAVED
    # Each test case's verdict: ok, skipped, failure or error; "missing"
    # suites (a crash, a hang killed by the timeout) differ too.
    verdicts() {
        "$PY" - "$1" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print("unreadable", e); sys.exit(0)
for case in root.iter("testcase"):
    kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
    print(case.get("name"), kinds[0] if kinds else case.get("result", "ok"))
PYEOF
    }
    verdicts "$W/glibc/pyproc/junit.xml" | sort >"$W/pyproc.glibc"
    verdicts "$W/preload/pyproc/junit.xml" | sort >"$W/pyproc.preload"
    ncases=$(wc -l <"$W/pyproc.glibc")
    if [ "$ncases" -gt 500 ] && cmp -s "$W/pyproc.glibc" "$W/pyproc.preload"; then
        pass "python: ${ptests[*]}: $ncases test verdicts identical on glibc and preloaded" \
             "($(grep -vc ' completed$' "$W/pyproc.glibc") not ok on both; $((SECONDS - t0)) s)"
    else
        fail "python: ${ptests[*]}: verdicts differ ($ncases cases on glibc)"
        diff "$W/pyproc.glibc" "$W/pyproc.preload" | head -n 20
        show pyproc
    fi
fi

# ---------------------------------------------------------------------------
# 2. sqlite3: build a database and query it; outputs compared byte for byte.
t0=$SECONDS
cat >"$W/sqlite.sql" <<'EOF'
PRAGMA journal_mode = OFF;
CREATE TABLE customer (id INTEGER PRIMARY KEY, parent INTEGER, name TEXT NOT NULL,
                       city TEXT NOT NULL, since INTEGER);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL REFERENCES customer(id),
                     item TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, note TEXT);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO customer
SELECT i, nullif(i / 4, 0),
       printf('cust-%05d-%s', i, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 7)),
       'city' || (i * 7 % 97), 2000 + i % 25
FROM n;
-- 100k orders from a linear congruential sequence (deterministic).
WITH RECURSIVE n(i, r) AS (SELECT 1, 12345 UNION ALL
                           SELECT i + 1, (r * 1103515245 + 12345) % 2147483648 FROM n WHERE i < 100000)
INSERT INTO orders
SELECT i, 1 + r % 5000, 'item' || (r / 7 % 500), 1 + r / 13 % 20, ((r / 17) % 100000) / 100.0,
       CASE WHEN r % 5 = 0 THEN NULL
            ELSE replace(printf('%.*c', 1 + r % 120, 'x'), 'x', char(97 + r % 26)) END
FROM n;
COMMIT;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item_qty ON orders(item, qty);
CREATE INDEX customer_city ON customer(city, name);
CREATE INDEX customer_parent ON customer(parent);
ANALYZE;
.headers on
.mode list
SELECT count(*), sum(qty), round(sum(qty * price), 2), count(note), sum(length(note)) FROM orders;
-- GROUP BY
SELECT item, count(*) AS n, sum(qty) AS q, round(avg(price), 4) AS p, max(length(note))
FROM orders GROUP BY item ORDER BY q DESC, item LIMIT 25;
-- join + GROUP BY
SELECT c.city, count(DISTINCT c.id) AS customers, count(o.id) AS orders,
       round(sum(o.qty * o.price), 2) AS revenue
FROM customer c JOIN orders o ON o.customer = c.id
GROUP BY c.city ORDER BY revenue DESC, c.city;
-- ORDER BY on a computed key over the whole join (external sorter)
SELECT o.id, c.name, o.item, o.qty, coalesce(o.note, '-')
FROM orders o JOIN customer c ON c.id = o.customer
ORDER BY coalesce(o.note, '') DESC, c.name, o.id LIMIT 200 OFFSET 40000;
SELECT group_concat(name, ',') FROM (SELECT name FROM customer WHERE city = 'city42' ORDER BY name);
-- window functions
SELECT customer, id, qty, sum(qty) OVER (PARTITION BY customer ORDER BY id) AS running,
       rank() OVER (PARTITION BY customer ORDER BY qty DESC, id) AS rk
FROM orders WHERE customer BETWEEN 100 AND 103 ORDER BY customer, id;
-- recursive CTEs: Collatz sequence lengths, and a walk down the customer tree
WITH RECURSIVE c(start, x, steps) AS (
  SELECT value, value, 0 FROM generate_series(1, 3000)
  UNION ALL
  SELECT start, CASE WHEN x % 2 = 0 THEN x / 2 ELSE 3 * x + 1 END, steps + 1 FROM c WHERE x != 1)
SELECT start, max(steps) AS len FROM c GROUP BY start ORDER BY len DESC, start LIMIT 10;
WITH RECURSIVE tree(id, depth, path) AS (
  SELECT id, 0, name FROM customer WHERE parent IS NULL
  UNION ALL
  SELECT c.id, t.depth + 1, t.path || '>' || c.id FROM tree t JOIN customer c ON c.parent = t.id)
SELECT t.depth, count(*), max(length(t.path)), min(t.path), max(t.path),
       (SELECT count(*) FROM orders o WHERE o.customer IN (SELECT id FROM tree t2 WHERE t2.depth = t.depth))
FROM tree t GROUP BY t.depth ORDER BY t.depth;
-- updates and deletes, then VACUUM and an integrity check
UPDATE orders SET note = upper(note) WHERE qty > 15;
DELETE FROM orders WHERE id % 7 = 0;
VACUUM;
SELECT count(*), sum(length(note)), sum(note GLOB '*[A-Z]*') FROM orders;
PRAGMA integrity_check;
EOF
if need sqlite3 sqlite3; then
    if preload_reaches sqlite3 sqlite3 :memory: 'select 1'; then
        pass "sqlite3: preload reaches sqlite3"
    else
        fail "sqlite3: preload does not reach sqlite3"
    fi
    run_both sqlite sqlite3 -bail -batch test.db ".read $W/sqlite.sql"
    g=$W/glibc/sqlite p=$W/preload/sqlite
    if [ "$(rc glibc sqlite)" = 0 ] && [ "$(rc preload sqlite)" = 0 ] && [ -s "$g/out" ] &&
        cmp -s "$g/out" "$p/out" && cmp -s "$g/err" "$p/err" && [ "$(tail -n 1 "$g/out")" = ok ]; then
        pass "sqlite3: $(wc -l <"$g/out") output lines identical, integrity ok ($((SECONDS - t0)) s)"
    else
        fail "sqlite3: runs differ or failed"
        show sqlite
        diff "$g/out" "$p/out" | head -n 20
    fi
else
    fail "sqlite3: not available"
fi

# ---------------------------------------------------------------------------
# 3. gcc -O2 on a generated file of 3000 functions.
t0=$SECONDS
awk -v n=3000 'BEGIN {
  print "#include <stdio.h>\n#include <string.h>\n"
  print "struct pt { unsigned x, y; char tag[8]; };\n"
  print "unsigned f0(unsigned x) { return x * 2654435761u; }\n"
  for (i = 1; i < n; i++) {
    printf "unsigned f%d(unsigned x)\n{\n", i
    printf "    unsigned a[4], s = %du;\n", i * 7919
    printf "    struct pt p = { x, x ^ %du, \"t%d\" };\n", i, i % 1000
    printf "    for (unsigned k = 0; k < 4; k++) a[k] = (x * %du + k * k) ^ (s >> k);\n", 2 * i + 1
    printf "    switch ((x + %d) %% 6) {\n", i
    printf "    case 0: s += a[3] + p.y; break;\n"
    printf "    case 1: s ^= a[1] * 3u; break;\n"
    printf "    case 2: s -= a[2] + (unsigned)strlen(p.tag); break;\n"
    printf "    case 3: s = (s << 3) | (s >> 29); break;\n"
    printf "    case 4: s += a[0] * %du; break;\n", i % 13 + 2
    printf "    default: s = ~s + p.x;\n    }\n"
    printf "    for (unsigned k = 0; k < 4; k++) s = s * 31u + a[k];\n"
    printf "    return (s & %du) ? f%d(s >> 1) : s;\n}\n\n", (i % 3 == 0) ? 1 : 0, i - 1
  }
  print "typedef unsigned (*fn)(unsigned);\nstatic const fn table[] = {"
  for (i = 0; i < n; i++) printf "    f%d,\n", i
  print "};\n"
  print "int main(void)\n{\n    unsigned long long sum = 0;"
  print "    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) {"
  print "        unsigned v = table[i](i * 40503u);"
  print "        sum += v;"
  print "        if (i % 100 == 0) printf(\"f%u %08x\\n\", i, v);"
  print "    }"
  print "    printf(\"sum %llu\\n\", sum);\n    return 0;\n}"
}' >"$W/gen.c"
echo 'int main(void) { return 0; }' >"$W/tiny.c"
if need gcc gcc; then
    if preload_reaches cc1 gcc -O2 -c "$W/tiny.c" -o tiny.o; then
        pass "gcc: preload reaches cc1"
    else
        fail "gcc: preload does not reach cc1"
    fi
    # Compile and link (cc1, as, collect2 and ld all preloaded in one run).
    run_both gcc sh -c 'gcc -O2 -frandom-seed=gm -c "$1" -o gen.o && gcc gen.o -o prog' sh "$W/gen.c"
    g=$W/glibc/gcc p=$W/preload/gcc
    if [ "$(rc glibc gcc)" = 0 ] && [ "$(rc preload gcc)" = 0 ] && cmp -s "$g/gen.o" "$p/gen.o" && cmp -s "$g/err" "$p/err" &&
        "$g/prog" >"$g/prog.out" && "$p/prog" >"$p/prog.out" && cmp -s "$g/prog.out" "$p/prog.out"; then
        pass "gcc: -O2 objects ($(wc -c <"$g/gen.o") bytes) and program outputs identical ($((SECONDS - t0)) s)"
    else
        fail "gcc: runs differ or failed"
        show gcc
    fi
else
    fail "gcc: not available"
fi

echo "real_programs: $npass passed, $nfail failed"
[ "$nfail" = 0 ]
