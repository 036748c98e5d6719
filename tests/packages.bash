# packages.bash — sourced by the script tests that need Debian packages the
# machine may not have yet (not a test itself: tests/*.sh are the tests).
# Expects W, the script's scratch directory, for apt-get's log. make test
# runs two scripts at a time and apt-get takes dpkg's lock, so the
# installs of all of them take turns on one lock file.
GM_APT_LOCK=${TMPDIR:-/tmp}/gomalloc-apt.lock

# install_pkg PKG: install a Debian package unless it is installed already.
# Returns 1, after saying why, if it cannot be had (not root, no package
# lists, no network): the caller decides whether that fails or skips.
install_pkg() {
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "package $1 is missing and this is not root: cannot install it"
        return 1
    fi
    echo "installing missing package $1"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(flock -w 900 "$GM_APT_LOCK" apt-get)
    "${apt[@]}" install -y -q "$1" >"$W/apt.log" 2>&1 && return 0
    # The package lists may never have been fetched: update once and retry.
    if "${apt[@]}" update -q >>"$W/apt.log" 2>&1 && "${apt[@]}" install -y -q "$1" >>"$W/apt.log" 2>&1; then
        return 0
    fi
    tail -n 5 "$W/apt.log"
    return 1
}
# need CMD PKG: make CMD available, installing PKG if it is not.
need() { command -v "$1" >/dev/null 2>&1 || install_pkg "$2"; }
