#!/usr/bin/env bash
# Side-by-side server benchmark: libasyncio's examples, on the epoll and on the uring
# backend, against libuv peers (bench/uv_*_server.c), nginx and the Tokio / hyper peers
# (bench/peers/tokio), in one run (`make bench`; bench/README.md).
#
#   bench/run_bench.sh [--quick] [--only LIST] [--modes LIST] [--no-build]
#                      [--no-install] [--no-charts] [--build-dir DIR] [--out FILE]
#
#   --only LIST    comma-separated, from: http, echo, syscalls, idle, micro (the
#                  default: all five; micro = bench_sched + bench_runtime's timers
#                  beside tokio_micro, ct and mt, with ratios), and any micro-benchmark
#                  bench/bench_<name>.c by name (poll, runtime, sync, sched, fs, ...),
#                  run with its defaults
#   --modes LIST   pinned, unpinned (default both): pinned = each server on
#                  CPU $BENCH_SERVER_CPU with one thread / loop / worker, the
#                  load generator on CPU $BENCH_CLIENT_CPU; unpinned = no
#                  affinity, $BENCH_THREADS workers per server
#   --quick        smoke run (~3 minutes): 1 s per run, 1 rep, pinned only,
#                  2,000 idle connections, 1 s strace runs, micro-benchmarks at
#                  10 % size and 1 rep
#   --no-build     use the binaries already in the build dir
#   --no-install   do not apt-get install missing tools (wrk, nginx-light,
#                  libuv1-dev, strace; the optional cargo + crates and gnuplot)
#   --no-charts    do not draw the charts (bench/bench_charts.sh; gnuplot) into
#                  <build>/charts/ (`make bench-charts` copies them to docs/img/)
#
# Peers: asyncio-echo / asyncio-http (the examples, ASYNCIO_BACKEND=epoll) and
# asyncio-echo-uring / asyncio-http-uring (the same binaries, ASYNCIO_BACKEND=uring);
# libuv-echo / libuv-http; nginx; tokio-echo / tokio-http (tokio on its own, no HTTP
# library) and hyper (hyper 0.14): current_thread runtime when pinned, the multi-thread
# runtime with $BENCH_THREADS workers unpinned. The Tokio peers are built with cargo
# offline from Debian's crates (bench/peers/tokio/build.sh); without cargo or the crates
# one line says so and the run goes on without them.
#
# BENCH_BASE_BUILD=DIR adds a baseline libasyncio (another checkout's build dir, e.g. the
# commit before a change) as peers base-echo / base-http in the same interleaved runs, so
# a before/after comparison is one side-by-side run; the ratios table then has a row
# "asyncio / base" for each scenario (target: CPU ratio <= 1.03).
#
# Environment (defaults in brackets): BENCH_SECONDS [5] per run, BENCH_REPS [3],
# BENCH_CONNS [100], BENCH_PIPELINE [16], BENCH_SIZES ["64 4096"],
# BENCH_IDLE_CONNS [10000], BENCH_SYSCALL_SECONDS [3], BENCH_THREADS [2],
# BENCH_SERVER_CPU [0], BENCH_CLIENT_CPU [1], BENCH_BUILD [build-bench],
# BENCH_OUT [<build>/bench-results.md], JOBS [2], BENCH_ASYNCIO_HTTP_ARGS
# [--max-conns <idle connections + 1000>]: extra flags for examples/http_server,
# BENCH_MICRO_REPS [5] (--quick: 1) and BENCH_MICRO_SCALE [100] (--quick: 10, percent of
# each micro-benchmark's size; tokio_micro has fixed sizes, so ratios need 100).
#
# What it measures (details and formulas in bench/README.md):
#   throughput   wrk -t1 -c100 (HTTP keep-alive, and pipelined with
#                bench/wrk_pipeline.lua) and tcp_echo_client (echo ping-pong,
#                64 B and 4 KiB): requests or round trips per second;
#   CPU/request  the server's utime + stime (/proc/PID/stat, all threads,
#                nginx master + workers) before and after each run, divided by
#                the requests the load generator completed;
#   syscalls     strace -c -f -p on a separate short run of each case (pinned
#                servers), total calls / requests, with the main calls; and
#                perf stat syscall tracepoint counts on another (less disturbed);
#   idle memory  VmRSS of a fresh server before and after bench/idle_conns
#                opened N connections (never used), and again 1.5 s after one
#                request / round trip on each of them.
# Reps are interleaved (A B C A B C ...) so that machine noise hits every
# peer alike; the table shows medians and min-max. Every process the script
# starts is stopped on exit, Ctrl-C or failure. Loopback only.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$root/build-bench}
S=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
CONNS=${BENCH_CONNS:-100}
PIPELINE=${BENCH_PIPELINE:-16}
SIZES=${BENCH_SIZES:-"64 4096"}
IDLE_N=${BENCH_IDLE_CONNS:-10000}
SYS_S=${BENCH_SYSCALL_SECONDS:-3}
MT=${BENCH_THREADS:-2}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
JOBS=${JOBS:-2}
HOST=127.0.0.1
ONLY=http,echo,syscalls,idle,micro
MODES=pinned,unpinned
BUILD_IT=1
INSTALL=1
CHARTS=1
MICRO_REPS=${BENCH_MICRO_REPS:-5}
MICRO_SCALE=${BENCH_MICRO_SCALE:-100}
OUT=${BENCH_OUT:-}

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }

ARGS_TEXT="$*"
while [ $# -gt 0 ]; do
    case "$1" in
    --quick)
        S=${BENCH_SECONDS:-1} REPS=${BENCH_REPS:-1} IDLE_N=${BENCH_IDLE_CONNS:-2000}
        SYS_S=${BENCH_SYSCALL_SECONDS:-1} MODES=pinned
        MICRO_REPS=${BENCH_MICRO_REPS:-1} MICRO_SCALE=${BENCH_MICRO_SCALE:-10} ;;
    --only) ONLY=$2; shift ;;
    --modes) MODES=$2; shift ;;
    --no-build) BUILD_IT=0 ;;
    --no-install) INSTALL=0 ;;
    --no-charts) CHARTS=0 ;;
    --build-dir) BUILD=$(cd "$2" 2>/dev/null && pwd || echo "$2"); shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run_bench.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BUILD" in /*) ;; *) BUILD=$root/$BUILD ;; esac
OUT=${OUT:-$BUILD/bench-results.md}
has() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- processes: everything started is recorded and stopped on exit -----------------------
tmp=$(mktemp -d /tmp/asyncio-bench.XXXXXX)
RAW=$BUILD/bench-raw
declare -a STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    for p in "${STARTED[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# Stops one started process (SIGTERM, then SIGKILL after 5 s) and forgets it.
stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    local keep=() q
    for q in "${STARTED[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
    STARTED=("${keep[@]}")
}

# The micro-benchmarks named in --only (anything that is not a server section).
micro_list() {
    local m
    for m in ${ONLY//,/ }; do
        case "$m" in http | echo | syscalls | idle | micro) ;; *) echo "$m" ;; esac
    done
}

# ---- tools and build --------------------------------------------------------------------
install_missing() {
    local missing="" p
    for p in wrk nginx-light libuv1-dev strace; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    # Optional: the Tokio peers' toolchain and crates, gnuplot for the charts.
    for p in librust-tokio-dev librust-hyper-dev gnuplot-nox; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || missing="$missing cargo"
    [ -z "$missing" ] && return 0
    [ $INSTALL = 1 ] || { log "missing:$missing (--no-install given)"; return 0; }
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    log "installing:$missing"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            $missing >/dev/null ||
        log "warning: apt-get install$missing failed"
}

build() {
    [ $BUILD_IT = 1 ] || return 0
    log "building in $BUILD"
    cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DASYNCIO_BUILD_BENCH=ON \
        -DASYNCIO_BUILD_TESTS=OFF >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; die "cmake failed"; }
    local t targets="tcp_echo_server tcp_echo_client http_server uv_echo_server uv_http_server idle_conns"
    for t in $(micro_list); do targets="$targets bench_$t"; done
    has "$ONLY" micro && targets="$targets bench_sched bench_runtime"
    for t in $targets; do # one at a time: a target that does not build yet is only "n/a"
        if ! cmake --build "$BUILD" -j "$JOBS" --target "$t" >"$RAW/build-$t.log" 2>&1; then
            log "warning: target $t did not build: see $RAW/build-$t.log"
            echo "- build: target $t did not build ($RAW/build-$t.log);" \
                "$([ -e "$(find "$BUILD" -name "$t" -type f -perm -u+x | head -1)" ] && echo "an older binary was used" || echo "its rows are n/a")" >>"$tmp/notes"
        fi
    done
    # The Tokio / hyper peers: one line (built, or why not), never fatal.
    local msg
    msg=$(nice -n 5 "$root/bench/peers/tokio/build.sh" "$BUILD/tokio" 2>&1 | tail -1)
    log "$msg"
    case "$msg" in *built*) ;; *) echo "- $msg" >>"$tmp/notes" ;; esac
}

# ---- peers ------------------------------------------------------------------------------
# Peer names: asyncio-echo asyncio-echo-uring libuv-echo tokio-echo, asyncio-http
# asyncio-http-uring libuv-http nginx tokio-http hyper (and base-echo, base-http).
declare -A BIN PID PORT NOTE
BIN[asyncio-echo]=$BUILD/examples/tcp_echo_server
BIN[asyncio-echo-uring]=$BUILD/examples/tcp_echo_server
BIN[libuv-echo]=$BUILD/bench/uv_echo_server
BIN[asyncio-http]=$BUILD/examples/http_server
BIN[asyncio-http-uring]=$BUILD/examples/http_server
BIN[libuv-http]=$BUILD/bench/uv_http_server
TOKIO=$BUILD/tokio/release
BIN[tokio-echo]=$TOKIO/tokio_echo
BIN[tokio-http]=$TOKIO/tokio_http
BIN[hyper]=$TOKIO/hyper_hello
ECHO_PEERS="asyncio-echo asyncio-echo-uring libuv-echo tokio-echo"
HTTP_PEERS="asyncio-http asyncio-http-uring libuv-http nginx tokio-http hyper"
BASE=${BENCH_BASE_BUILD:-}
if [ -n "$BASE" ]; then
    BIN[base-echo]=$BASE/examples/tcp_echo_server
    BIN[base-http]=$BASE/examples/http_server
    ECHO_PEERS="asyncio-echo base-echo ${ECHO_PEERS#asyncio-echo }"
    HTTP_PEERS="asyncio-http base-http ${HTTP_PEERS#asyncio-http }"
fi
kind() { case "$1" in *echo*) echo echo ;; *) echo http ;; esac; } # a peer's protocol

# Without the Tokio peers (no cargo or crates: build() said so in one line) their rows are
# left out instead of showing n/a everywhere.
present() { # LIST: the peers of LIST, less the Tokio ones that were not built
    local p out=""
    for p in $1; do
        case "$p" in tokio-* | hyper) [ -x "${BIN[$p]}" ] || continue ;; esac
        out="$out $p"
    done
    echo $out
}
drop_missing_tokio() {
    ECHO_PEERS=$(present "$ECHO_PEERS")
    HTTP_PEERS=$(present "$HTTP_PEERS")
    # (with a build, build() has already said why in its one line)
    [ $BUILD_IT = 0 ] && [ ! -x "$TOKIO/tokio_echo" ] && log "tokio peers: not built in $TOKIO: left out"
    return 0
}
CLIENT=$BUILD/examples/tcp_echo_client
IDLE=$BUILD/bench/idle_conns
# Extra server flags: room for the 10,000 idle connections (the default cap is 10,000).
ASYNCIO_HTTP_ARGS=${BENCH_ASYNCIO_HTTP_ARGS:---max-conns $((IDLE_N + 1000))}

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo 28080
}

nginx_conf() { # dir port workers
    mkdir -p "$1/tmp"
    cat >"$1/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $3;
worker_rlimit_nofile $(ulimit -n);
pid $1/nginx.pid;
error_log $1/error.log warn;
events {
    worker_connections $((IDLE_N + 1000));
}
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    server {
        listen $HOST:$2;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
EOF
}

# The pids whose CPU time and RSS count for a peer (nginx: master and workers).
peer_pids() {
    local p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    echo "$p"
    [ "$1" = nginx ] && pgrep -P "$p"
}

# start_peer NAME MODE: PID[NAME], PORT[NAME] set, or NOTE[NAME] says why not.
start_peer() {
    local name=$1 mode=$2 pin="" threads
    [ "$mode" = pinned ] && pin="taskset -c $SCPU"
    unset "PID[$name]"
    NOTE[$name]=""
    local out=$RAW/server.$name.$mode.out err=$RAW/server.$name.$mode.err
    if [ "$name" = nginx ]; then
        command -v nginx >/dev/null || { NOTE[$name]="nginx not installed"; return 1; }
        local dir=$tmp/nginx-$mode port
        port=$(free_port)
        threads=1; [ "$mode" = unpinned ] && threads=$MT
        nginx_conf "$dir" "$port" "$threads"
        $pin nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$out" 2>"$err" &
        PID[$name]=$!
        STARTED+=("$!")
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null && [ "$(pgrep -c -P "${PID[$name]}")" -ge "$threads" ] && break
            kill -0 "${PID[$name]}" 2>/dev/null || break
            sleep 0.1
        done
        if ! (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
            NOTE[$name]="nginx did not start: $(tail -c 300 "$dir/error.log" "$err" 2>/dev/null | tr '\n' ' ')"
            stop_pid "${PID[$name]}"; unset "PID[$name]"; return 1
        fi
        PORT[$name]=$port
        check_http "$name"
        return 0
    fi
    local bin=${BIN[$name]}
    [ -x "$bin" ] || { NOTE[$name]="not built"; return 1; }
    case "$name:$mode" in # mode idle: one thread as pinned, without the affinity
    *:unpinned) threads=$MT ;;
    asyncio-* | base-*) threads=0 ;; # current-thread runtime
    *) threads=1 ;;         # one libuv loop
    esac
    local extra="" envs=() cmd
    case "$name" in asyncio-http* | base-http) extra=$ASYNCIO_HTTP_ARGS ;; esac
    case "$name" in # the backend each libasyncio row is named after, whatever the default
    asyncio-*-uring) envs=(ASYNCIO_BACKEND=uring) ;;
    asyncio-*) envs=(ASYNCIO_BACKEND=epoll) ;;
    esac
    case "$name" in
    tokio-* | hyper) # PORT ct|mt WORKERS [lazy]: current_thread as pinned, mt unpinned
        threads=ct
        [ "$mode" = unpinned ] && threads=mt
        cmd=("$bin" "$(free_port)" "$threads" "$MT")
        [ "$name:$mode" = tokio-echo:idle ] && cmd+=(lazy) ;;
    *)
        # shellcheck disable=SC2206
        cmd=("$bin" --host "$HOST" --port 0 --threads "$threads" $extra) ;;
    esac
    $pin env "${envs[@]}" "${cmd[@]}" >"$out" 2>"$err" &
    PID[$name]=$!
    STARTED+=("$!")
    for _ in $(seq 100); do
        grep -q 'listening on' "$out" 2>/dev/null && break
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    local port
    port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\).*/\1/p' "$out" | head -1)
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
        wait "${PID[$name]}"
        NOTE[$name]="--threads $threads: exited with status $? $([ -n "$port" ] && echo "right after 'listening on'") $(tail -c 200 "$err" | tr '\n' ' ')"
        stop_pid "${PID[$name]}"; unset "PID[$name]"; return 1
    fi
    if [ -z "$port" ]; then
        NOTE[$name]="--threads $threads: no 'listening on' line within 10 s $(tail -c 200 "$err" | tr '\n' ' ')"
        stop_pid "${PID[$name]}"; unset "PID[$name]"; return 1
    fi
    PORT[$name]=$port
    # A uring peer that fell back to epoll (io_uring blocked here) would measure epoll
    # twice: the run says so (the ring is an anon inode among the server's fds).
    case "$name" in *-uring)
        if ! has_uring_fd "${PID[$name]}"; then
            log "  warning: $name has no io_uring fd: the runtime fell back to epoll"
            echo "- $mode: $name has no io_uring fd: the runtime fell back to epoll (its rows measure epoll)" >>"$tmp/notes"
        fi ;;
    esac
    [ "$(kind "$name")" = http ] && check_http "$name"
    return 0
}

has_uring_fd() { # PID: true if one of its fds is an io_uring instance (anon_inode:[io_uring])
    local f
    for f in "/proc/$1/fd"/*; do
        case "$(readlink "$f" 2>/dev/null)" in *io_uring*) return 0 ;; esac
    done
    return 1
}

# A warning (not fatal) when an HTTP peer does not answer /plaintext with the expected body.
check_http() {
    command -v curl >/dev/null || return 0
    local body
    body=$(curl -s --max-time 3 "http://$HOST:${PORT[$1]}/plaintext")
    if [ "$body" != "Hello, World!" ]; then
        log "  warning: $1: GET /plaintext answered '$body'"
        echo "- $1: GET /plaintext answered '$(echo "$body" | head -c 80)', not 'Hello, World!'" >>"$tmp/notes"
    fi
}

stop_peer() {
    local p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    if ! kill -0 "$p" 2>/dev/null; then
        log "warning: $1 had already exited"
    fi
    stop_pid "$p"
    wait "$p" 2>/dev/null
    unset "PID[$1]"
}

cpu_ticks() { # utime + stime of the given pids (all their threads)
    local t=0 p f
    for p in "$@"; do
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + $(echo "$f" | awk '{ print $12 + $13 }')))
    done
    echo $t
}

rss_kb() {
    local t=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo $t
}

nfds() {
    local t=0 p
    for p in "$@"; do t=$((t + $(ls "/proc/$p/fd" 2>/dev/null | wc -l))); done
    echo $t
}

# ---- one load run -----------------------------------------------------------------------
# Scenarios: http-plain, http-pipe, echo-<size>.
peers_for() {
    case "$1" in
    http-*) echo "$HTTP_PEERS" ;;
    echo-*) echo "$ECHO_PEERS" ;;
    esac
}

us() { # a wrk latency ("812.00us", "1.20ms", "2.00s") in microseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n
    }'
}

# load SCENARIO PEER SECONDS PIN OUTFILE: runs the load generator; prints
# "count rate p50_us p99_us errors" or "fail".
load() {
    local sc=$1 peer=$2 secs=$3 pin=$4 out=$5 port=${PORT[$2]}
    local url="http://$HOST:$port/plaintext"
    case "$sc" in
    http-plain)
        timeout -k 5 $((secs + 30)) $pin wrk -t1 -c"$CONNS" -d"${secs}s" --latency "$url" >"$out" 2>&1 ;;
    http-pipe)
        timeout -k 5 $((secs + 30)) $pin wrk -t1 -c"$CONNS" -d"${secs}s" --latency \
            -s "$root/bench/wrk_pipeline.lua" "$url" -- "$PIPELINE" /plaintext >"$out" 2>&1 ;;
    echo-*)
        [ -x "$CLIENT" ] || { echo fail; return; }
        timeout -k 5 $((secs + 30)) $pin "$CLIENT" --host "$HOST" --port "$port" --conns "$CONNS" \
            --size "${sc#echo-}" --seconds "$secs" >"$out" 2>&1 ;;
    esac
    local rc=$?
    case "$sc" in
    http-*)
        local count rate p50 p99 errs
        count=$(awk '/requests in/ { print $1 }' "$out")
        rate=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p50=$(us "$(awk '$1 == "50%" { print $2 }' "$out")")
        p99=$(us "$(awk '$1 == "99%" { print $2 }' "$out")")
        errs=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 } /Non-2xx/ { print $NF }' "$out" |
            awk '{ s += $1 } END { print s + 0 }')
        if [ $rc != 0 ] || [ -z "$count" ] || [ "$count" = 0 ]; then echo fail; return; fi
        echo "$count $rate $p50 $p99 $errs" ;;
    echo-*)
        kv() { awk -v k="$1:" '$1 == k { print $2 }' "$out"; }
        local count rate
        count=$(kv round_trips)
        rate=$(kv rtt/s)
        if [ -z "$count" ] || [ "$count" = 0 ]; then echo fail; return; fi
        echo "$count $rate $(kv p50_us) $(kv p99_us) $(kv errors)" ;;
    esac
}

# ---- throughput and CPU per request ------------------------------------------------------
RESULTS=$tmp/results.txt # scenario mode peer rep count rate p50 p99 errors cpu_ticks
LATENCY=$tmp/latency.txt # scenario mode peer rep p50_us p75_us p90_us p99_us ("-": not reported)
: >"$RESULTS"
: >"$LATENCY"

# The latency percentiles of one load run's output (wrk --latency: 50/75/90/99 %;
# tcp_echo_client: p50 and p99).
latency_of() { # scenario outfile
    case "$1" in
    http-*)
        local p v line=""
        for p in 50% 75% 90% 99%; do
            v=$(awk -v p="$p" '$1 == p { print $2 }' "$2")
            line="$line $([ -n "$v" ] && us "$v" || echo -)"
        done
        echo $line ;;
    echo-*)
        awk '$1 == "p50_us:" { a = $2 } $1 == "p99_us:" { b = $2 }
            END { print (a == "" ? "-" : a), "-", "-", (b == "" ? "-" : b) }' "$2" ;;
    esac
}

scenarios() {
    local list=""
    has "$ONLY" http && list="http-plain http-pipe"
    if has "$ONLY" echo; then
        local z
        for z in $SIZES; do list="$list echo-$z"; done
    fi
    echo $list
}

run_throughput() { # mode
    local mode=$1 cpin="" sc rep peer
    [ "$mode" = pinned ] && cpin="taskset -c $CCPU"
    for sc in $(scenarios); do
        for rep in $(seq "$REPS"); do
            for peer in $(peers_for "$sc"); do
                if [ -n "${PID[$peer]:-}" ] && ! kill -0 "${PID[$peer]}" 2>/dev/null; then
                    wait "${PID[$peer]}"
                    local st=$?
                    log "  $peer exited (status $st) during the $mode runs"
                    echo "- $mode: $peer exited (status $st) during the runs, before $sc rep $rep;" \
                        "its stderr: $RAW/server.$peer.$mode.err" >>"$tmp/notes"
                    stop_peer "$peer"
                fi
                if [ -z "${PID[$peer]:-}" ]; then
                    echo "$sc $mode $peer $rep na" >>"$RESULTS"
                    continue
                fi
                local pids c0 c1 r out=$RAW/$sc.$mode.$peer.$rep.txt
                pids=$(peer_pids "$peer")
                # shellcheck disable=SC2086
                c0=$(cpu_ticks $pids)
                r=$(load "$sc" "$peer" "$S" "$cpin" "$out")
                # shellcheck disable=SC2086
                c1=$(cpu_ticks $pids)
                if ! kill -0 "${PID[$peer]}" 2>/dev/null; then # died during the run: no CPU figure
                    r=fail
                fi
                if [ "$r" = fail ]; then
                    log "  $sc $mode $peer rep $rep: load failed (see $out)"
                    echo "$sc $mode $peer $rep fail" >>"$RESULTS"
                    continue
                fi
                echo "$sc $mode $peer $rep $r $((c1 - c0))" >>"$RESULTS"
                echo "$sc $mode $peer $rep $(latency_of "$sc" "$out")" >>"$LATENCY"
                log "  $sc $mode $peer rep $rep: $(echo "$r" | awk '{ printf "%.0f/s", $2 }')"
            done
        done
    done
}

# ---- syscalls per request (strace, pinned servers) ----------------------------------------
SYSCALLS=$tmp/syscalls.txt # scenario peer requests all steady perf_all perf_wait name=per_req ...
PERF_EV=""
: >"$SYSCALLS"

# The perf events for the strace-free count: every syscall entry, and the epoll waits.
perf_events() {
    command -v perf >/dev/null || return 0
    local ev=raw_syscalls:sys_enter e d
    for e in epoll_wait epoll_pwait epoll_pwait2 io_uring_enter; do
        for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
            [ -d "$d/events/syscalls/sys_enter_$e" ] && { ev="$ev,syscalls:sys_enter_$e"; break; }
        done
    done
    perf stat -e "$ev" -- true >/dev/null 2>&1 && echo "$ev"
}

# perf_count SC PEER PIDS: a load run under `perf stat -e <events> -p PIDS` (counting
# tracepoints: no ptrace stops; it still slows syscalls, ~2x here); sets PF to
# "all_calls,wait_calls,requests" or "- -". (Not called in a subshell, so that the
# perf process is in STARTED and stopped on an interrupt.)
perf_count() {
    local sc=$1 peer=$2 pl po=$tmp/perf.$1.$2
    PF="- -"
    [ -n "$PERF_EV" ] || return 0
    pl=$(echo $3 | tr ' ' ',')
    perf stat -x, -e "$PERF_EV" -p "$pl" -o "$po" 2>"$po.err" &
    local pp=$!
    STARTED+=("$pp")
    sleep 0.3
    local r
    r=$(load "$sc" "$peer" "$SYS_S" "taskset -c $CCPU" "$RAW/$sc.perf.$peer.txt")
    kill -INT "$pp" 2>/dev/null # perf stops counting and writes the counts
    for _ in $(seq 50); do kill -0 "$pp" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$pp"
    cp "$po" "$RAW/$sc.perf.$peer.counts" 2>/dev/null
    if [ "$r" = fail ] || [ ! -s "$po" ]; then return 0; fi
    PF=$(awk -F, -v n="${r%% *}" '
        $3 ~ /raw_syscalls/ && $1 ~ /^[0-9]+$/ { all = $1; ok = 1 }
        $3 ~ /sys_enter_(epoll|io_uring_enter)/ && $1 ~ /^[0-9]+$/ { wait += $1 }
        END { if (ok && n > 0) printf "%d,%d,%d\n", all, wait, n; else print "- -" }
    ' "$po")
}

run_syscalls() {
    command -v strace >/dev/null || { log "strace not installed: no syscall counts"; return; }
    PERF_EV=$(perf_events)
    [ -n "$PERF_EV" ] || log "perf with syscall tracepoints not available: strace counts only"
    local sc peer
    for sc in $(scenarios); do
        for peer in $(peers_for "$sc"); do
            [ -n "${PID[$peer]:-}" ] || { echo "$sc $peer na" >>"$SYSCALLS"; continue; }
            local pids args="" p so=$tmp/strace.$sc.$peer
            if [ "$peer" = nginx ]; then pids=$(pgrep -P "${PID[$peer]}"); else pids=${PID[$peer]}; fi
            perf_count "$sc" "$peer" "$pids"
            local pf=$PF
            for p in $pids; do args="$args -p $p"; done
            # shellcheck disable=SC2086
            strace -c -f -o "$so.out" $args 2>"$so.err" &
            local st=$!
            STARTED+=("$st")
            for _ in $(seq 50); do grep -q attached "$so.err" 2>/dev/null && break; sleep 0.1; done
            sleep 0.3
            local r
            r=$(load "$sc" "$peer" "$SYS_S" "taskset -c $CCPU" "$RAW/$sc.strace.$peer.txt")
            kill -INT "$st" 2>/dev/null # strace detaches and writes its summary
            for _ in $(seq 50); do kill -0 "$st" 2>/dev/null || break; sleep 0.1; done
            stop_pid "$st"
            cp "$so.out" "$RAW/$sc.strace.$peer.summary" 2>/dev/null
            if [ "$r" = fail ] || [ ! -s "$so.out" ]; then
                echo "$sc $peer fail" >>"$SYSCALLS"
                continue
            fi
            local n=${r%% *}
            # steady = total minus connection setup / teardown: of each per-connection
            # call, at most 2 per connection is not charged to the requests.
            awk -v n="$n" -v sc="$sc" -v peer="$peer" -v conns="$CONNS" -v pf="$pf" '
                $1 ~ /^[0-9]/ && $NF == "total" { total = $4 }
                $1 ~ /^[0-9]/ && $NF ~ /^(accept4?|close|setsockopt|getsockopt|shutdown|getsockname|getpeername|fcntl|ioctl|epoll_ctl)$/ {
                    setup += ($4 < 2 * conns) ? $4 : 2 * conns
                }
                $1 ~ /^[0-9]/ && $NF != "total" && $4 / n >= 0.005 { detail = detail sprintf(" %s=%.3f", $NF, $4 / n) }
                END {
                    # perf: the same setup calls (per connection) come off its total too
                    if (split(pf, q, ",") == 3 && q[3] > 0)
                        pp = sprintf("%.3f %.3f", (q[1] - setup) / q[3], q[2] / q[3])
                    else
                        pp = "- -"
                    printf "%s %s %d %.3f %.3f %s%s\n", sc, peer, n, total / n, (total - setup) / n, pp, detail
                }
            ' "$so.out" >>"$SYSCALLS"
            log "  syscalls $sc $peer: $(tail -1 "$SYSCALLS" | cut -d' ' -f4-)"
        done
    done
}

# ---- RSS per idle connection ----------------------------------------------------------------
IDLERES=$tmp/idle.txt # peer conns_ok kb0 kb1 conns_ok2 kb2 closed
: >"$IDLERES"

run_idle() {
    [ -x "$IDLE" ] || { log "idle_conns not built: no idle figures"; return; }
    local peers="" peer
    # tokio-echo runs with `lazy` here: no buffer until a connection is readable.
    local echo_p
    echo_p=$(present "asyncio-echo asyncio-echo-uring libuv-echo tokio-echo")
    local http_p="asyncio-http asyncio-http-uring libuv-http nginx"
    has "$ONLY" echo && peers=$echo_p
    has "$ONLY" http && peers="$peers $http_p"
    [ -n "$peers" ] || peers="$echo_p $http_p" # --only idle
    for peer in $peers; do
        start_peer "$peer" idle || { echo "$peer na ${NOTE[$peer]}" >>"$IDLERES"; continue; }
        local pids mode=echo io=$tmp/idle.$peer.out
        [ "$(kind "$peer")" = echo ] || mode=http
        sleep 0.3
        pids=$(peer_pids "$peer")
        local kb0 fd0 kb1 kb2
        # shellcheck disable=SC2086
        kb0=$(rss_kb $pids); fd0=$(nfds $pids)
        "$IDLE" --host "$HOST" --port "${PORT[$peer]}" --conns "$IDLE_N" --mode "$mode" >"$io" 2>&1 &
        local ic=$!
        STARTED+=("$ic")
        for _ in $(seq 300); do grep -q '^connected' "$io" && break; kill -0 $ic 2>/dev/null || break; sleep 0.1; done
        local ok
        ok=$(sed -n 's/^connected ok=\([0-9]*\).*/\1/p' "$io")
        # Wait until the server has accepted them all (its fd count), at most 5 s.
        for _ in $(seq 50); do
            # shellcheck disable=SC2086
            [ "$(nfds $pids)" -ge $((fd0 + ${ok:-0})) ] && break
            sleep 0.1
        done
        sleep 0.5
        # shellcheck disable=SC2086
        kb1=$(rss_kb $pids)
        kill -USR1 $ic 2>/dev/null
        for _ in $(seq 300); do grep -q '^exchanged' "$io" && break; kill -0 $ic 2>/dev/null || break; sleep 0.1; done
        # Idle again for 1.5 s: the uring driver gives a burst's receive buffers back to the
        # kernel after a quiet second (docs/backends.md); the other servers do nothing timed.
        sleep 1.5
        # shellcheck disable=SC2086
        kb2=$(rss_kb $pids)
        local ok2 closed
        ok2=$(sed -n 's/^exchanged ok=\([0-9]*\).*/\1/p' "$io")
        stop_pid $ic
        closed=$(sed -n 's/^closed_by_peer=\([0-9]*\).*/\1/p' "$io")
        cp "$io" "$RAW/idle.$peer.txt"
        echo "$peer ${ok:-0} $kb0 $kb1 ${ok2:-0} $kb2 ${closed:-?}" >>"$IDLERES"
        log "  idle $peer: $(tail -1 "$IDLERES")"
        stop_peer "$peer"
    done
}

# ---- runtime micro-benchmarks beside tokio_micro (--only micro) -------------------------------
# Same workloads on both sides, reps interleaved (asyncio, tokio ct, tokio mt, asyncio, ...),
# one fresh process per rep and side; both sides run one untimed warm-up in it, on the runtime
# they then measure (tokio_micro always; bench_sched with --warmup, bench_runtime timers without):
#   spawn      bench_sched spawn_many  / tokio_micro spawn          ns per spawned + joined task
#   yield      bench_sched yield_many  / tokio_micro yield_many     ns per yield (200 tasks)
#   ping_pong  bench_sched ping_pong_chan / tokio_micro ping_pong_seq: ns per round trip over
#              two mpsc channels of capacity 1 (100,000 sequential)
#   timers     bench_runtime timers    / tokio_micro timers         1M sleeping tasks: ns per
#              timer created and armed, peak RSS per timer (current-thread only on our side)
# MICRO lines: bench flavor impl rep value (ns, or bytes for timers_rss).
MICRO=$tmp/micro.txt
: >"$MICRO"

micro_asyncio() { # bench rep: bench_sched's ns/op for mt and ct, or bench_runtime's timers
    local b=$1 rep=$2 out=$RAW/micro.asyncio.$1.$2.txt
    case "$b" in
    timers)
        local n=$((1000000 * MICRO_SCALE / 100))
        "$BUILD/bench/bench_runtime" --only timers-asyncio --timers "$n" --timer-reps 1 >"$out" 2>&1 ||
            { log "  bench_runtime timers failed (see $out)"; return; }
        # asyncio-sleep  wall min max setup p50 p99 max <=1ms% early peak_MB B/tmr
        awk -v n="$n" -v rep="$rep" '$1 == "asyncio-sleep" && NF >= 12 && !done { # the first: the table
            done = 1
            printf "timers ct asyncio %d %.1f\n", rep, $5 * 1e6 / n
            printf "timers_rss ct asyncio %d %.1f\n", rep, $12 }' "$out" >>"$MICRO" ;;
    *)
        local name
        case "$b" in spawn) name=spawn_many ;; yield) name=yield_many ;; ping_pong) name=ping_pong_chan ;; esac
        "$BUILD/bench/bench_sched" --only "$name" --reps 1 --warmup --scale "$MICRO_SCALE" >"$out" 2>&1 ||
            { log "  bench_sched $name failed (see $out)"; return; }
        awk -v b="$b" -v rep="$rep" -v name="$name" '$1 == name {
            printf "%s %s asyncio %d %s\n", b, ($2 ~ /^multi/) ? "mt" : "ct", rep, $3 }' "$out" >>"$MICRO" ;;
    esac
}

micro_tokio() { # bench flavor rep
    local b=$1 fl=$2 rep=$3 name key out=$RAW/micro.tokio.$1.$2.$3.txt
    case "$b" in
    spawn) name=spawn key=per_task_ns ;;
    yield) name=yield_many key=per_yield_ns ;;
    ping_pong) name=ping_pong_seq key=per_pingpong_ns ;;
    timers) name=timers key=create_ms ;;
    esac
    "$TOKIO/tokio_micro" "$name" "$fl" 1 "$MT" >"$out" 2>&1 ||
        { log "  tokio_micro $name $fl failed (see $out)"; return; }
    awk -v b="$b" -v fl="$fl" -v rep="$rep" -v key="$key" '
        /^bench=/ { for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) v = substr($i, length(key) + 2) }
        /^RESULT/ { for (i = 1; i <= NF; i++) if (index($i, "peak_rss_kb=") == 1) rss = substr($i, 13) }
        END {
            if (v == "") exit
            if (b == "timers") {
                printf "timers %s tokio %d %.1f\n", fl, rep, v * 1e6 / 1e6
                printf "timers_rss %s tokio %d %.1f\n", fl, rep, rss * 1024 / 1e6
            } else
                printf "%s %s tokio %d %s\n", b, fl, rep, v
        }' "$out" >>"$MICRO"
}

run_micro() {
    local have_tokio=1 b rep fl
    [ -x "$TOKIO/tokio_micro" ] || { have_tokio=0; log "tokio_micro not built: libasyncio's side only"; }
    [ -x "$BUILD/bench/bench_sched" ] || { log "bench_sched not built: no micro-benchmarks"; return; }
    for b in spawn yield ping_pong timers; do
        for rep in $(seq "$MICRO_REPS"); do
            micro_asyncio "$b" "$rep"
            if [ $have_tokio = 1 ]; then
                for fl in ct mt; do micro_tokio "$b" "$fl" "$rep"; done
            fi
        done
        log "  micro $b: $(awk -v b="$b" '$1 == b { printf "%s/%s=%s ", $3, $2, $5 }' "$MICRO")"
    done
}

micro_report() {
    [ -s "$MICRO" ] || return 0
    {
        echo "## Runtime micro-benchmarks beside tokio_micro"
        echo
        echo "Same workload on both sides, one fresh process per rep and side, reps interleaved; ${MICRO_REPS} reps,"
        echo "each after one untimed warm-up run on the same runtime (bench_sched --warmup; tokio_micro always; not timers),"
        echo "libasyncio sizes at ${MICRO_SCALE}% (tokio_micro's are fixed: 1,000,000 tasks / timers). ct = current-thread"
        echo "runtime, mt = multi-thread with $MT workers. ratio = libasyncio median / Tokio median (< 1 favours libasyncio);"
        echo "spread = the lowest and highest ratio of the reps paired in run order. spawn: bench_sched spawn_many vs"
        echo "tokio_micro spawn; yield: yield_many (200 tasks); ping_pong: 100,000 sequential round trips between two"
        echo "tasks over two mpsc channels of capacity 1 (bench_sched ping_pong_chan, tokio_micro ping_pong_seq); timers: 1M sleeping tasks, bench_runtime (current-thread"
        echo "only) vs tokio_micro timers: ns to create and arm one, and peak RSS per timer."
        echo
        echo "| benchmark | flavor | unit | libasyncio median | min–max | Tokio median | min–max | ratio | spread | target | met |"
        echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
        awk -f "$root/bench/micro_table.awk" "$MICRO"
        echo
    } >>"$1"
}

# ---- report -----------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)

# ", tokio X, hyper Y (Debian crates, rustc Z)" when the Tokio peers were built.
tokio_versions() {
    [ -x "$TOKIO/tokio_echo" ] || return 0
    awk '/^name = / { n = $3 } /^version = / && (n == "\"tokio\"" || n == "\"hyper\"") { gsub("\"", "", n); gsub("\"", "", $3); printf ", %s %s", n, $3 }' \
        "$root/bench/peers/tokio/Cargo.lock"
    printf " (Debian crates, %s)" "$(PATH="$PATH:$HOME/.cargo/bin" rustc --version 2>/dev/null | cut -d' ' -f1-2)"
}

report() {
    local md=$1
    {
        echo "# libasyncio side-by-side benchmark"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); command: \`bench/run_bench.sh $ARGS_TEXT\`"
        echo "- machine: $(nproc) CPUs, $(uname -r), load average at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- peers: libuv $(pkg-config --modversion libuv 2>/dev/null || echo ?), $(nginx -v 2>&1 | sed 's/.*: //'), wrk $(wrk -v 2>&1 | awk 'NR==1 { print $2 }')$(tokio_versions)"
        echo "- settings: ${S} s per run, $REPS reps interleaved, $CONNS connections, pipeline depth $PIPELINE, echo sizes $SIZES B, $IDLE_N idle connections, strace runs of $SYS_S s"
        echo "- pinned: server on CPU $SCPU (libasyncio --threads 0 = current-thread, libuv 1 loop, nginx 1 worker, Tokio / hyper current_thread), load generator on CPU $CCPU; unpinned: no affinity, libasyncio --threads $MT, libuv $MT loops (SO_REUSEPORT), nginx $MT workers, Tokio / hyper multi-thread with $MT workers; *-uring: the examples with ASYNCIO_BACKEND=uring"
        echo
    } >"$md"
    if [ -s "$RESULTS" ]; then
        {
            echo "## Throughput and server CPU per request"
            echo
            echo "req/s = requests (HTTP) or round trips (echo) per second, median over the reps, min–max beside it;"
            echo "CPU µs/req = server utime+stime during the run / requests completed (median, min–max); p99 = load generator's"
            echo "99th-percentile latency (median over reps). \`n/a\`: the server could not run in that mode; \`fail\`: the load run failed."
            echo
            echo "| scenario | mode | server | req/s | min–max | CPU µs/req | min–max | p99 µs | errors |"
            echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
            awk -v hz="$HZ" -v what=rows -f "$root/bench/bench_table.awk" "$RESULTS"
            echo
            echo "## Ratios: libasyncio / peer (medians)"
            echo
            echo "Each libasyncio server (epoll, uring) divided by each peer, then by the best peer (the lowest median"
            echo "CPU/req among libuv, nginx, Tokio and hyper in that scenario and mode). Throughput > 1, CPU/req < 1 and"
            echo "p99 < 1 favour libasyncio. CPU targets (issue 13): ≤ 0.85 × the best peer and × libuv / Tokio (echo,"
            echo "HTTP keep-alive), ≤ 0.90 × libuv (HTTP pipelined), ≤ 1.0 × nginx."
            echo
            echo "| scenario | mode | libasyncio | peer | req/s ratio | CPU/req ratio | p99 ratio | CPU target | met |"
            echo "|---|---|---|---|---:|---:|---:|---:|---|"
            awk -v hz="$HZ" -v what=ratios -f "$root/bench/bench_table.awk" "$RESULTS"
            echo
        } >>"$md"
    fi
    if [ -s "$SYSCALLS" ]; then
        {
            echo "## Syscalls per request (strace -c -f -p, pinned server, separate ${SYS_S} s run)"
            echo
            echo "strace all/req = every syscall of the server process(es) while the load ran / requests completed in that run;"
            echo "strace steady/req = the same without connection setup and teardown (accept4, close, setsockopt, epoll_ctl, ...:"
            echo "at most 2 calls per connection of each are left out); main calls per request (≥ 0.005) in the last column."
            echo "Under strace the server runs several times slower, so more events are ready per wait: its epoll_wait share is a"
            echo "lower bound. perf steady/req and perf wait/req come from another run of the same length under"
            echo "\`perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,...\` (counting tracepoints: it slows the server"
            echo "too, but far less than strace's ptrace stops, so its wait share is closer to an undisturbed run):"
            echo "every syscall less the setup / teardown calls strace counted, and the epoll waits, per request (\`-\`: perf or"
            echo "its tracepoints unavailable); io_uring_enter counts like any other call and as a wait. vs best ="
            echo "libasyncio's judged figure / the lowest among libuv, nginx, Tokio and hyper. Targets (libasyncio; judged on"
            echo "perf steady/req when there is one, else on strace steady/req): epoll ≤ 2.05 per request or round trip"
            echo "without pipelining, ≤ 0.14 at pipeline depth $PIPELINE; uring (issue 13) ≤ 0.5 HTTP keep-alive, ≤ 0.05 pipelined."
            echo
            echo "| scenario | server | requests (strace run) | strace all/req | strace steady/req | perf steady/req | perf wait/req | vs best peer | target | met | main calls per request (strace) |"
            echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
            awk '
            function judged() { return ($6 != "-") ? $6 : $5 }
            function target(sc, peer) {
                if (peer ~ /-uring$/ && sc == "http-plain") return 0.5
                if (peer ~ /-uring$/ && sc == "http-pipe") return 0.05
                return (sc == "http-pipe") ? 0.14 : 2.05
            }
            NR == FNR { # first pass: the best peer per scenario
                if ($3 != "na" && $3 != "fail" && $2 !~ /^(asyncio|base)/ && (!($1 in best) || judged() < best[$1]))
                    best[$1] = judged()
                next
            }
            {
                if ($3 == "na" || $3 == "fail") { printf "| %s | %s | %s | | | | | | | | |\n", $1, $2, ($3 == "na") ? "n/a" : "fail"; next }
                mine = ($2 ~ /^asyncio/)
                tgt = target($1, $2)
                vs = (mine && ($1 in best) && best[$1] > 0) ? sprintf("%.2f", judged() / best[$1]) : ""
                met = mine ? ((judged() <= tgt) ? "yes" : "no") : ""
                d = ""; for (i = 8; i <= NF; i++) d = d (i > 8 ? ", " : "") $i
                printf "| %s | %s | %d | %.3f | %.3f | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7,
                    vs, mine ? "≤ " tgt : "", met, d
            }' "$SYSCALLS" "$SYSCALLS"
            echo
        } >>"$md"
    fi
    if [ -s "$IDLERES" ]; then
        {
            echo "## Server memory per idle connection ($IDLE_N connections)"
            echo
            echo "VmRSS of a fresh server (pinned configuration) before and after bench/idle_conns opened the connections"
            echo "(never used), then after one request / round trip on each (idle again). B/conn = ΔRSS / connections open."
            echo "Target (libasyncio): ≤ 512 B per idle connection."
            echo
            echo "| server | open | RSS before KiB | after open KiB | B/conn (never used) | open after use | after use KiB | B/conn (after use) | closed by server | met |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
            awk '{
                if ($2 == "na") { $1 = $1; printf "| %s | n/a: %s |||||||||\n", $1, substr($0, index($0, "na") + 3); next }
                b1 = $2 > 0 ? ($4 - $3) * 1024 / $2 : 0; b2 = $5 > 0 ? ($6 - $3) * 1024 / $5 : 0
                met = ($1 ~ /^asyncio/) ? ((b1 <= 512 && b2 <= 512) ? "yes" : "no") : ""
                printf "| %s | %d | %d | %d | %.0f | %d | %d | %.0f | %s | %s |\n", $1, $2, $3, $4, b1, $5, $6, b2, $7, met
            }' "$IDLERES"
            echo
        } >>"$md"
    fi
    micro_report "$md"
    [ -s "$tmp/notes" ] && cat "$tmp/notes" >>"$md"
    echo >>"$md"
    echo "Raw outputs of every run: \`$RAW/\`." >>"$md"
}

# ---- main ------------------------------------------------------------------------------------
# (one function, called on the last line: bash has read all of it before it runs,
# so editing this file during a run cannot change what the run executes)
main() {
    [ "$S" -ge 1 ] 2>/dev/null || die "BENCH_SECONDS must be a whole number >= 1"
    LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
    T0=$(date +%s)
    mkdir -p "$RAW" "$(dirname "$OUT")"
    rm -f "$RAW"/*
    install_missing
    build
    drop_missing_tokio
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # servers and clients inherit it
    if [ "$(nproc)" -lt 2 ]; then log "warning: fewer than 2 CPUs: pinning puts server and client on one core"; fi
    log "settings: ${S}s x $REPS reps, modes $MODES, only $ONLY, fd limit $(ulimit -n); output $OUT"

    if has "$ONLY" http || has "$ONLY" echo; then
        for mode in ${MODES//,/ }; do
            peers=""
            has "$ONLY" echo && peers=$ECHO_PEERS
            has "$ONLY" http && peers="$peers $HTTP_PEERS"
            log "mode $mode: starting $peers"
            for peer in $peers; do
                start_peer "$peer" "$mode" || {
                    log "  $peer: n/a (${NOTE[$peer]})"
                    echo "- $mode: $peer n/a: ${NOTE[$peer]}" >>"$tmp/notes"
                }
            done
            run_throughput "$mode"
            if [ "$mode" = pinned ] && has "$ONLY" syscalls; then
                log "syscalls per request (strace)"
                run_syscalls
            fi
            for peer in $peers; do stop_peer "$peer"; done
        done
        if has "$ONLY" syscalls && ! has "$MODES" pinned; then
            log "syscalls need the pinned mode: skipped"
        fi
    fi
    # Starts its own servers: runs with --only idle alone too.
    if has "$ONLY" idle; then
        log "RSS per idle connection ($IDLE_N connections)"
        run_idle
    fi

    if has "$ONLY" micro; then
        log "runtime micro-benchmarks beside tokio_micro ($MICRO_REPS reps, scale $MICRO_SCALE%)"
        run_micro
    fi

    report "$OUT"
    # Machine-readable copies for bench/bench_charts.sh (`make bench-charts`).
    mkdir -p "$BUILD/bench-data"
    rm -f "$BUILD/bench-data"/*.txt
    for f in results latency syscalls idle micro; do
        [ -s "$tmp/$f.txt" ] && cp "$tmp/$f.txt" "$BUILD/bench-data/$f.txt"
    done
    if [ $CHARTS = 1 ]; then
        "$root/bench/bench_charts.sh" --build-dir "$BUILD" || log "warning: charts failed"
    fi
    for m in $(micro_list); do
        b=$BUILD/bench/bench_$m
        [ -x "$b" ] || { log "bench_$m not built"; continue; }
        log "bench_$m (defaults)"
        {
            echo
            echo "## bench_$m"
            echo
            echo '```'
            "$b" 2>&1
            echo '```'
        } >>"$OUT"
    done
    echo
    cat "$OUT"
    log "done in $(($(date +%s) - T0)) s; results in $OUT"
}

main; exit $?
