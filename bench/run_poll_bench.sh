#!/bin/sh
# Builds bench_poll in build-bench/ and runs it.
#
#   bench/run_poll_bench.sh [bench_poll options]       the benchmark (default settings)
#   bench/run_poll_bench.sh --syscalls [options]       syscalls per iteration, per side
#
# --syscalls runs each implementation alone under `strace -c -f` twice, with
# --iters N (N = $SYSCALL_ITERS, default 20000) and --iters 1, both with
# --reps 1 --warmup 0, and prints the difference divided by N-1: setup and
# teardown cancel out, what is left is the timed loop. Other options (e.g.
# --backend poll, with SYSCALL_ITERS=300) are passed to bench_poll; do not
# pass --iters there.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
bin="$build/bench/bench_poll"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DASYNCIO_BUILD_BENCH=ON \
    -DASYNCIO_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target bench_poll >/dev/null

if [ "${1:-}" != "--syscalls" ]; then
    exec "$bin" "$@"
fi
shift
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }

iters=${SYSCALL_ITERS:-20000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Prints "name calls" for each syscall in a strace -c summary.
calls() {
    awk '$1 ~ /^[0-9]/ && $NF != "total" { print $NF, $4 }' "$1"
}

for impl in edge level libuv; do
    strace -c -f -o "$tmp/long" "$bin" "$@" --iters "$iters" --reps 1 --warmup 0 \
        --only "$impl" >/dev/null
    strace -c -f -o "$tmp/short" "$bin" "$@" --iters 1 --reps 1 --warmup 0 \
        --only "$impl" >/dev/null
    calls "$tmp/long" >"$tmp/long.calls"
    calls "$tmp/short" >"$tmp/short.calls"
    echo "== $impl: syscalls per iteration (--iters $iters minus --iters 1)"
    awk -v n="$((iters - 1))" '
        NR == FNR { short[$1] = $2; next }
        { d = $2 - short[$1]; if (d != 0) { printf "  %-14s %.3f\n", $1, d / n; t += d } }
        END { printf "  %-14s %.3f\n", "total", t / n }
    ' "$tmp/short.calls" "$tmp/long.calls"
done
