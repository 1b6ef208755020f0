#!/bin/sh
# Builds cmocka as a static musl library into <dir>/sysroot (lib/libcmocka.a,
# include/cmocka*.h) from Debian's source package, the same version the glibc build
# links, compiled with the zig toolchain of cmake/fetch-zig-musl.sh <dir>.
#
# `apt-get source` needs a deb-src entry: when apt has none, one is added for each
# archive apt already uses (/etc/apt/sources.list.d/asyncio-deb-src.{sources,list}, the
# same URIs and suites with type deb-src) and the indexes are refreshed. Root or sudo.
# Idempotent: nothing is done when <dir>/sysroot/lib/libcmocka.a exists.
# Usage: fetch-cmocka-musl.sh <dir>     (used by `make test-musl`)
# Other cross targets reuse it with CMOCKA_TOOLCHAIN=<toolchain file> (and CMOCKA_LABEL for
# the messages): `make test-windows` builds cmocka for mingw-w64 this way.
set -eu
dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
sysroot="$dir/sysroot"
toolchain="${CMOCKA_TOOLCHAIN:-$here/zig-musl.cmake}"
label="${CMOCKA_LABEL:-musl}"
if [ -f "$sysroot/lib/libcmocka.a" ]; then
    echo "cmocka ($label): present in $sysroot"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
APT_LOCK_WAIT="-o DPkg::Lock::Timeout=300"

# 1. A deb-src entry for the archives apt uses (deb822 .sources files and one-line .list).
if ! apt-get indextargets --format '$(TARGET_OF)' | grep -qx deb-src; then
    src_list=/etc/apt/sources.list.d/asyncio-deb-src
    tmp=$(mktemp)
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed -e 's/^Types:.*/Types: deb-src/' "$f" >>"$tmp"
        echo >>"$tmp"
    done
    if [ -s "$tmp" ]; then
        echo "adding deb-src entries: $src_list.sources"
        $SUDO install -m 644 "$tmp" "$src_list.sources"
    fi
    : >"$tmp"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n -e 's/^deb[[:space:]]/deb-src /p' "$f" >>"$tmp"
    done
    if [ -s "$tmp" ]; then
        echo "adding deb-src entries: $src_list.list"
        $SUDO install -m 644 "$tmp" "$src_list.list"
    fi
    rm -f "$tmp"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get $APT_LOCK_WAIT update -qq
fi

# 2. The source package, unpacked with its Debian patches applied.
work="$dir/cmocka-src"
rm -rf "$work"
mkdir -p "$work"
(cd "$work" && apt-get source --download-only cmocka)
dsc=$(ls "$work"/cmocka_*.dsc | head -n 1)
dpkg-source --no-check -x "$dsc" "$work/src"

# 3. Static library with the cross toolchain (zig cc for x86_64-linux-musl by default).
cmake -S "$work/src" -B "$work/build" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
    -DZIG_MUSL_DIR="$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$sysroot" \
    -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DWITH_STATIC_LIB=ON \
    -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF -DPICKY_DEVELOPER=OFF
cmake --build "$work/build" -j "${JOBS:-2}"
cmake --install "$work/build"
# Only the archive and headers: no .pc / CMake package (see cmake/zig-musl.cmake), and no
# shared library a glibc-style lookup could pick.
rm -rf "$sysroot/lib/pkgconfig" "$sysroot/lib/cmake" "$sysroot"/lib/libcmocka.so* \
    "$sysroot"/lib/libcmocka.dll* "$sysroot"/bin/*cmocka*.dll
if [ ! -f "$sysroot/lib/libcmocka.a" ]; then
    # cmocka 1.1.5 names its static archive libcmocka-static.a.
    cp "$sysroot/lib/libcmocka-static.a" "$sysroot/lib/libcmocka.a"
fi
echo "cmocka ($label): $sysroot/lib/libcmocka.a"
