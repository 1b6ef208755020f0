#!/bin/sh
# Every executable of a `make test-musl` build is a static program with no trace of glibc:
# no program interpreter (PT_INTERP: a dynamic loader would be needed) and none of glibc's
# symbol versions or tunables (GLIBC_2.x, GLIBC_TUNABLES). Catches a build that quietly
# used the host compiler or linked a host library.
# Usage: check-static-musl.sh <build dir>
set -eu
n=0
bad=0
for f in $(find "$1" -type f -perm -u+x ! -path '*/CMakeFiles/*' | sort); do
    [ "$(head -c 4 "$f" | tr -d '\177')" = "ELF" ] || continue
    n=$((n + 1))
    if readelf -l "$f" | grep -q INTERP; then
        echo "not static: $f" >&2
        bad=$((bad + 1))
    elif grep -q 'GLIBC_' "$f"; then
        echo "glibc inside: $f" >&2
        bad=$((bad + 1))
    fi
done
if [ "$n" = 0 ] || [ "$bad" != 0 ]; then
    echo "check-static-musl: $bad of $n executables are not static musl programs" >&2
    exit 1
fi
echo "check-static-musl: $n executables, all static, no glibc"
