#!/usr/bin/env bash
# install.sh BUILD_DIR — make install, and building against what it installs.
#   - make install PREFIX=/opt/gomalloc DESTDIR=STAGE puts every file under
#     STAGE/opt/gomalloc and nowhere else: libgomalloc.so.VERSION with its
#     soname link libgomalloc.so.MAJOR and libgomalloc.so, libgomalloc.a,
#     gomalloc.h, gomalloc.pc, the CMake package (config, version, targets),
#     gomalloc-run, gomalloc-plot, gomalloc.3; the library's SONAME is
#     libgomalloc.so.MAJOR;
#   - the staged tree is used where it lies (everything in it is found by
#     relative paths): a program built with pkg-config's flags, and a CMake
#     project with find_package(gomalloc) linking gomalloc::gomalloc and
#     gomalloc::gomalloc_static, all run on gomalloc (their own mallocs
#     show in gm_stats_get, version 2) and link the library they should;
#   - find_package(gomalloc 99) fails (version file);
#   - the installed gomalloc-run finds the installed library, and man
#     renders the installed page.
. "$(dirname "$0")/testlib.bash"
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$B/CMakeCache.txt")
MAJOR=${VERSION%%.*}
LIBDIR=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$B/CMakeCache.txt")
STAGE=$W/stage
P=$STAGE/opt/gomalloc

# A make of its own, not a part of the make that may be running ctest.
if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$SRC" --no-print-directory BUILD="$B" PREFIX=/opt/gomalloc DESTDIR="$STAGE" install >"$W/install.log" 2>&1; then
    pass "make install PREFIX DESTDIR"
else
    fail "make install"; tail -20 "$W/install.log"
fi
missing=""
for f in "$LIBDIR/libgomalloc.so.$VERSION" "$LIBDIR/libgomalloc.so.$MAJOR" "$LIBDIR/libgomalloc.so" \
    "$LIBDIR/libgomalloc.a" include/gomalloc.h "$LIBDIR/pkgconfig/gomalloc.pc" \
    "$LIBDIR/cmake/gomalloc/gomallocConfig.cmake" "$LIBDIR/cmake/gomalloc/gomallocConfigVersion.cmake" \
    "$LIBDIR/cmake/gomalloc/gomallocTargets.cmake" bin/gomalloc-run bin/gomalloc-plot share/man/man3/gomalloc.3; do
    [ -e "$P/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && pass "installed files" || fail "not installed:$missing"
[ -L "$P/$LIBDIR/libgomalloc.so.$MAJOR" ] && [ -L "$P/$LIBDIR/libgomalloc.so" ] &&
    pass "soname links" || fail "libgomalloc.so.$MAJOR / libgomalloc.so are not links"
[ -x "$P/bin/gomalloc-run" ] && [ -x "$P/bin/gomalloc-plot" ] && pass "tools executable" || fail "tools not executable"
stray=$(cd "$STAGE" && find . -mindepth 1 -maxdepth 2 ! -path ./opt ! -path ./opt/gomalloc)
[ -z "$stray" ] && pass "nothing outside the prefix" || fail "outside the prefix: $stray"
soname=$(readelf -d "$P/$LIBDIR/libgomalloc.so.$VERSION" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libgomalloc.so.$MAJOR" ] && pass "SONAME $soname" || fail "SONAME '$soname'"

# A program that says whether its own allocations went through gomalloc.
cat >"$W/prog.c" <<'EOF'
#include <gomalloc.h>
#include <stdio.h>
#include <stdlib.h>
static void *volatile sink;
int main(void)
{
    struct gm_stats a, b;
    gm_stats_get(&a);
    for (int i = 0; i < 1000; i++) {
        sink = malloc(16 + i);
        free(sink);
    }
    gm_stats_get(&b);
    printf("version %u mallocs %llu\n", b.version, (unsigned long long)(b.mallocs - a.mallocs));
    return !(b.version == GM_STATS_VERSION && b.mallocs - a.mallocs >= 1000);
}
EOF

# prog_ok NAME BINARY [LIBRARY]: BINARY runs on gomalloc and, if LIBRARY is
# given, loads it from the staged tree, else links no libgomalloc.so.
prog_ok() {
    local name=$1 bin=$2 lib=${3:-}
    if ! "$bin" >"$W/out" 2>&1; then
        fail "$name: $(cat "$W/out")"
        return
    fi
    local loaded
    loaded=$(ldd "$bin" | sed -n 's/.*libgomalloc\.so[^ ]* => \([^ ]*\).*/\1/p')
    if [ -n "$lib" ] && [ "$(readlink -f "$loaded")" != "$(readlink -f "$lib")" ]; then
        fail "$name loads '$loaded'"
    elif [ -z "$lib" ] && [ -n "$loaded" ]; then
        fail "$name links $loaded"
    else
        pass "$name: $(cat "$W/out")"
    fi
}

export PKG_CONFIG_PATH=$P/$LIBDIR/pkgconfig
if cc -o "$W/prog_pc" "$W/prog.c" $(pkg-config --cflags gomalloc) $(pkg-config --libs gomalloc) \
    -Wl,-rpath,"$(pkg-config --variable=libdir gomalloc)" 2>"$W/cc.log"; then
    prog_ok "pkg-config build" "$W/prog_pc" "$P/$LIBDIR/libgomalloc.so.$VERSION"
else
    fail "pkg-config build"; cat "$W/cc.log"
fi
[ "$(pkg-config --modversion gomalloc)" = "$VERSION" ] && pass "pkg-config version" || fail "pkg-config version"

mkdir -p "$W/proj"
cp "$W/prog.c" "$W/proj/"
cat >"$W/proj/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(uses_gomalloc C)
find_package(gomalloc 0.1 REQUIRED)
add_executable(prog_shared prog.c)
target_link_libraries(prog_shared PRIVATE gomalloc::gomalloc)
add_executable(prog_static prog.c)
target_link_libraries(prog_static PRIVATE gomalloc::gomalloc_static)
EOF
if cmake -S "$W/proj" -B "$W/proj/build" -DCMAKE_PREFIX_PATH="$P" >"$W/cmake.log" 2>&1 &&
    cmake --build "$W/proj/build" >>"$W/cmake.log" 2>&1; then
    pass "CMake find_package build"
    prog_ok "gomalloc::gomalloc" "$W/proj/build/prog_shared" "$P/$LIBDIR/libgomalloc.so.$VERSION"
    prog_ok "gomalloc::gomalloc_static" "$W/proj/build/prog_static"
else
    fail "CMake find_package build"; tail -20 "$W/cmake.log"
fi
sed -i 's/find_package(gomalloc 0.1 REQUIRED)/find_package(gomalloc 99 REQUIRED)/' "$W/proj/CMakeLists.txt"
if cmake -S "$W/proj" -B "$W/proj/build99" -DCMAKE_PREFIX_PATH="$P" >/dev/null 2>&1; then
    fail "find_package(gomalloc 99) succeeded"
else
    pass "find_package(gomalloc 99) fails"
fi

"$P/bin/gomalloc-run" --stats true 2>"$W/err"
grep -q "^gomalloc statistics of true" "$W/err" && pass "installed gomalloc-run" || fail "installed gomalloc-run: $(cat "$W/err")"
if command -v man >/dev/null; then
    MANWIDTH=80 man -l "$P/share/man/man3/gomalloc.3" 2>/dev/null | grep -q GOMALLOC_TRACE &&
        pass "installed man page renders" || fail "installed man page"
else
    echo "SKIP: man is not installed"
fi

finish
