# packages.bash — sourced by script tests that need a Debian package (not a
# test itself). install_pkg PKG installs PKG with apt-get unless it is
# installed already (updating the package lists once if the first try
# fails); need CMD PKG makes CMD available, installing PKG if it is not.
# Both return non-zero when the package cannot be had (not root, no
# network), so that the caller can skip (exit 77). Needs $W (testlib.bash).
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
    apt-get install -y -q "$1" >"$W/apt.log" 2>&1 && return 0
    if apt-get update -q >>"$W/apt.log" 2>&1 && apt-get install -y -q "$1" >>"$W/apt.log" 2>&1; then
        return 0
    fi
    tail -n 5 "$W/apt.log"
    return 1
}
need() { command -v "$1" >/dev/null 2>&1 || install_pkg "$2"; }
