#!/bin/sh
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined) and runs
# each for FUZZ_SECONDS (default 60) with its corpus in build-fuzz/corpus/<target>/,
# seeded from tests/http_regress/. Crashing inputs land in build-fuzz/crashes/<target>/;
# copy each into tests/http_regress/<parser|chunked|lines>/ so `make test` replays it.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
CC=${FUZZ_CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE"
mkdir -p "$OUT/lib"
# the library (for bufio) built once with the same sanitizers, without the fuzzer main
if [ ! -f "$OUT/lib/libasyncio.a" ]; then
    cmake -S "$ROOT" -B "$OUT/lib" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug \
        -DASYNCIO_BUILD_TESTS=OFF -DASYNCIO_BUILD_EXAMPLES=OFF \
        -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" >/dev/null
fi
cmake --build "$OUT/lib" -j "${JOBS:-2}" --target asyncio_static >/dev/null
INC="-I$ROOT/include -I$ROOT/examples/http -I$ROOT/fuzz"
$CC $FLAGS $INC "$ROOT/fuzz/fuzz_http_parser.c" "$ROOT/examples/http/parser.c" -o "$OUT/fuzz_http_parser"
$CC $FLAGS $INC "$ROOT/fuzz/fuzz_http_chunked.c" "$ROOT/examples/http/parser.c" -o "$OUT/fuzz_http_chunked"
$CC $FLAGS $INC "$ROOT/fuzz/fuzz_bufio_lines.c" "$ROOT/examples/http/parser.c" \
    "$OUT/lib/libasyncio.a" -lpthread -o "$OUT/fuzz_bufio_lines"
status=0
for t in http_parser:parser http_chunked:chunked bufio_lines:lines; do
    name=${t%%:*}
    dir=${t##*:}
    mkdir -p "$OUT/corpus/$name" "$OUT/crashes/$name"
    seeds="$ROOT/tests/http_regress/$dir"
    echo "fuzzing $name for ${SECONDS_EACH}s"
    if ! "$OUT/fuzz_$name" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 \
        -artifact_prefix="$OUT/crashes/$name/" "$OUT/corpus/$name" $seeds \
        >"$OUT/$name.log" 2>&1; then
        echo "fuzz_$name found a crash: see $OUT/$name.log and $OUT/crashes/$name/"
        status=1
    fi
    tail -n 2 "$OUT/$name.log"
done
exit $status
