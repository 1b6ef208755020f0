#!/usr/bin/env bash
# Ring per worker vs the shared ring vs epoll, side by side (docs/backends.md, "Ring per
# worker"): the echo and HTTP examples on the multi-thread runtime (--threads 2, unpinned),
# interleaved reps (A B C A B C ...), each against a fresh server.
#   bench/mt_rings.sh            (BENCH_BUILD [build-bench], SECS [3], REPS [4],
#                                 KINDS ["64 4096 http"]: echo message sizes and/or http,
#                                 OTHER_BUILD: a second build dir, e.g. of another commit,
#                                 whose servers run as a fourth variant, "rpw-other", with
#                                 the ring per worker on: an A/B of a change in one run)
# Per run it prints: kind, variant, requests, server CPU µs per request (utime + stime of
# all its threads from /proc/PID/stat, divided by the requests), p99 latency. Needs wrk for
# http. Stops only the servers it started (by PID). Loopback only.
set -u
B=${BENCH_BUILD:-build-bench}
SECS=${SECS:-3}
REPS=${REPS:-4}
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() { # variant kind env...
    local name=$1 kind=$2
    shift 2
    local port=$((20000 + RANDOM % 12000)) log # below the ephemeral range (32768-)
    log=$(mktemp)
    if [ "$kind" = http ]; then
        env "$@" "${SB:-$B}/examples/http_server" --host 127.0.0.1 --port "$port" --threads 2 >"$log" 2>&1 &
    else
        env "$@" "${SB:-$B}/examples/tcp_echo_server" --port "$port" --threads 2 >"$log" 2>&1 &
    fi
    local pid=$! i n p99 out t0 t1
    for i in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
    if ! grep -q listening "$log"; then
        echo "$kind $name: the server did not start: $(tail -c 200 "$log" | tr '\n' ' ')"
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rm -f "$log"
        return
    fi
    t0=$(ticks "$pid")
    if [ "$kind" = http ]; then
        out=$(wrk -t1 -c100 -d"${SECS}s" --latency "http://127.0.0.1:$port/" 2>&1)
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    else
        out=$("$B/examples/tcp_echo_client" --port "$port" --conns 100 --size "$kind" --seconds "$SECS" 2>&1)
        n=$(echo "$out" | awk -F': ' '/round_trips/ {print $2}')
        p99=$(echo "$out" | awk -F': ' '/p99_us/ {print $2 "us"}')
    fi
    t1=$(ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null
    rm -f "$log"
    awk -v a="$t0" -v b="$t1" -v n="${n:-0}" -v hz="$HZ" -v name="$name" -v kind="$kind" -v p="$p99" \
        'BEGIN { printf "%s %s requests=%d cpu_us_per_req=%.3f p99=%s\n", kind, name, n, n ? (b - a) * 1e6 / hz / n : 0, p }'
}

for kind in ${KINDS:-64 4096 http}; do
    for r in $(seq "$REPS"); do
        run_one ring-per-worker "$kind" ASYNCIO_BACKEND=uring ASYNCIO_URING_RING_PER_WORKER=1
        run_one shared-ring "$kind" ASYNCIO_BACKEND=uring ASYNCIO_URING_RING_PER_WORKER=0
        run_one epoll "$kind" ASYNCIO_BACKEND=epoll
        if [ -n "${OTHER_BUILD:-}" ]; then
            SB=$OTHER_BUILD run_one rpw-other "$kind" ASYNCIO_BACKEND=uring ASYNCIO_URING_RING_PER_WORKER=1
        fi
    done
done
