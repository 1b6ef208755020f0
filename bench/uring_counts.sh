#!/bin/sh
# Syscalls per request of the echo and HTTP example servers on epoll and on uring, same
# bounded load (no timing: counts only). Usage (from the repository root, after a build):
#   sh bench/uring_counts.sh [BUILD_DIR] [SECONDS] [CONNS]
# For each backend and scenario: the server (current-thread runtime) is started on a free
# port and a counter is attached for one load run of SECONDS: TOOL=perf (default when
# `perf stat` can count the syscall tracepoints: no ptrace stops) or TOOL=strace
# (`strace -c -f -p`: per-call breakdown, but the server runs several times slower, so more
# events are ready per wait). Raw output is kept in $OUT (default /tmp/uring_counts).
# Backends: epoll; uring-rdy (uring with the completion path off, ASYNCIO_URING_COMPLETION=0:
# readiness + recv / send); uring (receives and sends on the ring, docs/backends.md).
# Prints one line per run:
#   scenario backend requests syscalls/request waits/request [calls/request per name]
set -eu
BUILD=${1:-build}
SECS=${2:-3}
CONNS=${3:-100}
OUT=${OUT:-/tmp/uring_counts}
mkdir -p "$OUT"
PORT=${PORT:-18431}
if [ -z "${TOOL:-}" ]; then
    TOOL=strace
    perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 && TOOL=perf
fi

run() { # scenario backend
    sc=$1 be=$2 port=$PORT
    PORT=$((PORT + 1))
    bk=${be%-rdy} comp=1
    [ "$bk" = "$be" ] || comp=0
    case $sc in
    echo*) ASYNCIO_BACKEND=$bk ASYNCIO_URING_COMPLETION=$comp "$BUILD/examples/tcp_echo_server" \
               --threads 0 --port "$port" >"$OUT/$sc.$be.server" 2>&1 & ;;
    http*) ASYNCIO_BACKEND=$bk ASYNCIO_URING_COMPLETION=$comp "$BUILD/examples/http_server" \
               --threads 0 --port "$port" >"$OUT/$sc.$be.server" 2>&1 & ;;
    esac
    srv=$!
    sleep 0.5
    if [ "$TOOL" = perf ]; then
        perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait \
            -p "$srv" -o "$OUT/$sc.$be.perf" 2>/dev/null &
    else
        strace -c -f -p "$srv" -o "$OUT/$sc.$be.strace" 2>/dev/null &
    fi
    st=$!
    sleep 0.5
    case $sc in
    echo64) "$BUILD/examples/tcp_echo_client" --port "$port" --conns "$CONNS" --size 64 \
                --seconds "$SECS" >"$OUT/$sc.$be.load" ;;
    echo4k) "$BUILD/examples/tcp_echo_client" --port "$port" --conns "$CONNS" --size 4096 \
                --seconds "$SECS" >"$OUT/$sc.$be.load" ;;
    http) wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port/plaintext" >"$OUT/$sc.$be.load" ;;
    httppipe) wrk -t1 -c"$CONNS" -d"${SECS}s" -s bench/wrk_pipeline.lua \
                  "http://127.0.0.1:$port/plaintext" -- 16 /plaintext >"$OUT/$sc.$be.load" ;;
    esac
    kill -INT "$st"
    wait "$st" 2>/dev/null || true
    kill -INT "$srv"
    wait "$srv" 2>/dev/null || true
    case $sc in
    echo*) reqs=$(awk '/^round_trips:/ { print $2 }' "$OUT/$sc.$be.load") ;;
    http*) reqs=$(awk '/requests in/ { print $1 }' "$OUT/$sc.$be.load") ;;
    esac
    if [ "$TOOL" = perf ]; then
        awk -F, -v sc="$sc" -v be="$be" -v reqs="$reqs" '
            $3 ~ /raw_syscalls/ { all = $1 }
            $3 ~ /io_uring_enter|epoll_wait/ { wait += $1 }
            END { printf "%-8s %-9s reqs=%d syscalls/req=%.3f waits/req=%.3f\n", sc, be, reqs,
                         all / reqs, wait / reqs }' "$OUT/$sc.$be.perf"
        return
    fi
    awk -v sc="$sc" -v be="$be" -v reqs="$reqs" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = $4; total += calls; c[name] = calls }
        END {
            top = ""
            for (n in c) if (c[n] / reqs >= 0.001) top = top sprintf(" %s=%.3f", n, c[n] / reqs)
            printf "%-8s %-9s reqs=%d syscalls/req=%.3f |%s\n", sc, be, reqs, total / reqs, top
        }' "$OUT/$sc.$be.strace"
}

for sc in echo64 echo4k http httppipe; do
    for be in epoll uring-rdy uring; do
        run "$sc" "$be"
    done
done
