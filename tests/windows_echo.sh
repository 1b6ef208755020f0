#!/bin/sh
# make test-windows: examples/tcp_echo_server.exe under wine answers a Linux load generator
# (tests/windows_echo_load.c, built here with the host compiler): 100 connections for
# 10 seconds, every byte checked, on the current-thread runtime and on 2 worker threads.
# WINEPREFIX / WINEDEBUG come from the Makefile. Usage: windows_echo.sh <build-windows dir>
set -eu
dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
load="$dir/windows_echo_load"
cc -O2 -Wall -Wextra -o "$load" "$here/windows_echo_load.c"
server=""
stop() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    server=""
}
trap stop EXIT INT TERM
for threads in 0 2; do
    out="$dir/echo_server.$threads.out"
    : >"$out"
    wine "$dir/examples/tcp_echo_server.exe" --host 127.0.0.1 --port 0 --threads "$threads" \
        >"$out" 2>&1 &
    server=$!
    port=""
    for _ in $(seq 1 300); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" | head -n 1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "windows_echo: tcp_echo_server.exe (--threads $threads) did not start:" >&2
        cat "$out" >&2
        exit 1
    fi
    echo "windows_echo: tcp_echo_server.exe --threads $threads on port $port"
    "$load" 127.0.0.1 "$port" 100 10
    stop
done
echo "windows_echo: passed"
