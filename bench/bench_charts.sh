#!/usr/bin/env bash
# Charts of the last bench/run_bench.sh run (`make bench` draws them; `make bench-charts`
# draws them again and copies them to docs/img/ for docs/performance.md).
#
#   bench/bench_charts.sh [--build-dir DIR] [--copy-to DIR]
#
# Reads DIR/bench-data/*.txt (written by run_bench.sh at the end of every run; build-bench
# by default) and writes SVGs with gnuplot to DIR/charts/:
#   cpu-per-request-<mode>.svg  server CPU µs per request / round trip, median over the reps,
#                               one cluster of bars per scenario, one bar per server
#   syscalls-per-request.svg    syscalls per request (perf steady/req, else strace steady/req;
#                               pinned servers), same layout
#   latency-<scenario>.svg      latency percentiles of the pinned runs (wrk: p50/75/90/99;
#                               echo client: p50/p99), median over the reps, one line per server
#   idle-memory.svg             server RSS per idle connection (never used / after one exchange)
#   micro-ratios.svg            libasyncio / Tokio per micro-benchmark (ct, mt; 1 = parity)
# Servers are grouped by implementation: asyncio-epoll (asyncio-echo, asyncio-http),
# asyncio-uring (the *-uring peers), base (BENCH_BASE_BUILD), libuv, tokio (tokio-echo,
# tokio-http), hyper, nginx. A chart whose data is missing is skipped. Without gnuplot it
# prints one line and exits 0.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$root/build-bench
COPY=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD=$2; shift ;;
    --copy-to) COPY=$2; shift ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_charts.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BUILD" in /*) ;; *) BUILD=$root/$BUILD ;; esac
DATA=$BUILD/bench-data
OUTDIR=$BUILD/charts

command -v gnuplot >/dev/null || {
    echo "charts: gnuplot not installed (make deps-bench installs gnuplot-nox): skipped"
    exit 0
}
[ -d "$DATA" ] || { echo "charts: no $DATA (run make bench first): skipped"; exit 0; }
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/*.svg # a chart of an earlier run must not pass for this one's
HZ=$(getconf CLK_TCK)
tmp=$(mktemp -d /tmp/asyncio-charts.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Shared awk: family(peer) and median(array, n).
AWKLIB='
function family(p) {
    if (p ~ /-uring$/) return "asyncio-uring"
    if (p ~ /^asyncio-/) return "asyncio-epoll"
    if (p ~ /^base-/) return "base"
    if (p ~ /^libuv-/) return "libuv"
    if (p ~ /^tokio-/) return "tokio"
    return p
}
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# The families present, in a fixed order, as a header line "scenario f1 f2 ...".
function header(    i, h) {
    split("asyncio-epoll asyncio-uring base libuv tokio hyper nginx", order, " ")
    h = "scenario"; nf = 0
    for (i = 1; i <= 7; i++) if (order[i] in fam) { h = h " " order[i]; cols[++nf] = order[i] }
    return h
}
'

# matrix FILE: "scenario value..." rows from "scenario family value" lines (medians of
# repeated keys), "-" where a family has no value in that scenario.
matrix() {
    awk "$AWKLIB"'
        { k = $1 SUBSEP $2; if (!(k in n)) keys[++nk] = k; v[k, ++n[k]] = $3
          fam[$2] = 1; if (!($1 in sseen)) { sseen[$1] = 1; sc[++ns] = $1 } }
        END {
            print header()
            for (s = 1; s <= ns; s++) {
                line = sc[s]
                for (c = 1; c <= nf; c++) {
                    k = sc[s] SUBSEP cols[c]
                    if (!(k in n)) { line = line " -"; continue }
                    delete a; for (i = 1; i <= n[k]; i++) a[i] = v[k, i]
                    line = line " " median(a, n[k])
                }
                print line
            }
        }' "$1"
}

# bars DATAFILE OUT TITLE YLABEL [EXTRA]: a clustered bar chart of a matrix file (EXTRA: more
# gnuplot commands before the plot).
bars() {
    local ncol
    ncol=$(head -1 "$1" | awk '{ print NF }')
    [ "$ncol" -ge 2 ] && [ "$(wc -l <"$1")" -ge 2 ] || return 0
    if ! gnuplot <<EOF; then
set terminal svg size 960,480 dynamic noenhanced font "sans,12" background "white"
set output "$2"
set title "$3"
set ylabel "$4"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set yrange [0:*]
set xtics noenhanced
set key noenhanced
${5:-}
plot for [i=2:$ncol] "$1" using i:xtic(1) title columnheader(i)
EOF
        echo "charts: gnuplot failed on $2" >&2
        return 0
    fi
    echo "$2"
}

made=""
# 1. CPU per request, one chart per mode.
if [ -s "$DATA/results.txt" ]; then
    for mode in $(awk '{ print $2 }' "$DATA/results.txt" | sort -u); do
        awk -v hz="$HZ" -v mode="$mode" "$AWKLIB"'
            $2 == mode && $5 != "na" && $5 != "fail" && $5 > 0 { print $1, family($3), $10 / hz * 1e6 / $5 }' \
            "$DATA/results.txt" >"$tmp/cpu.$mode"
        [ -s "$tmp/cpu.$mode" ] || continue
        matrix "$tmp/cpu.$mode" >"$tmp/cpu.$mode.dat"
        made="$made $(bars "$tmp/cpu.$mode.dat" "$OUTDIR/cpu-per-request-$mode.svg" \
            "Server CPU per request ($mode; median over the reps; lower is better)" "CPU µs per request / round trip")"
    done
fi
# 2. Syscalls per request (pinned): perf steady/req when measured, else strace steady/req.
if [ -s "$DATA/syscalls.txt" ]; then
    awk "$AWKLIB"'$3 != "na" && $3 != "fail" { print $1, family($2), ($6 != "-") ? $6 : $5 }' \
        "$DATA/syscalls.txt" >"$tmp/sys"
    if [ -s "$tmp/sys" ]; then
        matrix "$tmp/sys" >"$tmp/sys.dat"
        made="$made $(bars "$tmp/sys.dat" "$OUTDIR/syscalls-per-request.svg" \
            "System calls per request (pinned servers; io_uring_enter counts as one; lower is better)" "syscalls per request / round trip")"
    fi
fi
# 3. Latency percentiles of the pinned runs, one chart per scenario.
if [ -s "$DATA/latency.txt" ]; then
    for sc in $(awk '$2 == "pinned" { print $1 }' "$DATA/latency.txt" | sort -u); do
        # rows: percentile, then one column per server (median over the reps)
        awk -v sc="$sc" "$AWKLIB"'
            $1 == sc && $2 == "pinned" {
                f = family($3); fam[f] = 1
                for (c = 5; c <= 8; c++) if ($c != "-" && $c > 0) v[f, c, ++n[f, c]] = $c
            }
            END {
                print header()
                split("50 75 90 99", pct, " ")
                for (c = 5; c <= 8; c++) {
                    line = pct[c - 4]; any = 0
                    for (i = 1; i <= nf; i++) {
                        k = cols[i] SUBSEP c
                        if (!(k in n)) { line = line " -"; continue }
                        delete a; for (j = 1; j <= n[k]; j++) a[j] = v[cols[i], c, j]
                        line = line " " median(a, n[k]); any = 1
                    }
                    if (any) print line
                }
            }' "$DATA/latency.txt" >"$tmp/lat.$sc.dat"
        ncol=$(head -1 "$tmp/lat.$sc.dat" | awk '{ print NF }')
        [ "$(wc -l <"$tmp/lat.$sc.dat")" -ge 3 ] || continue # at least two percentiles
        if ! gnuplot <<EOF; then
set terminal svg size 960,480 dynamic noenhanced font "sans,12" background "white"
set output "$OUTDIR/latency-$sc.svg"
set title "Latency percentiles, $sc (pinned; median over the reps; lower is better)"
set xlabel "percentile"
set ylabel "latency µs"
set datafile missing "-"
set logscale y
set grid
set key outside right top vertical noenhanced
set xtics ("p50" 50, "p75" 75, "p90" 90, "p99" 99)
set xrange [45:102]
plot for [i=2:$ncol] "$tmp/lat.$sc.dat" using 1:i with linespoints lw 2 pt 7 title columnheader(i)
EOF
            echo "charts: gnuplot failed on latency-$sc" >&2
            continue
        fi
        made="$made $OUTDIR/latency-$sc.svg"
    done
fi
# 4. Idle memory: bytes per connection, never used and after one exchange.
if [ -s "$DATA/idle.txt" ]; then
    awk '$2 != "na" && $2 > 0 {
        b1 = ($4 - $3) * 1024 / $2; b2 = ($5 > 0) ? ($6 - $3) * 1024 / $5 : "-"
        print $1, b1, b2 }' "$DATA/idle.txt" >"$tmp/idle.body"
    if [ -s "$tmp/idle.body" ]; then
        { echo "server never-used after-one-exchange"; cat "$tmp/idle.body"; } >"$tmp/idle.dat"
        made="$made $(bars "$tmp/idle.dat" "$OUTDIR/idle-memory.svg" \
            "Server RSS per idle connection ($(awk 'NR == 1 { print $2 }' "$DATA/idle.txt") connections; lower is better)" "bytes per connection" 'set xtics rotate by -30 left; set bmargin 7')"
    fi
fi
# 5. Micro-benchmarks: libasyncio / Tokio, ratio of the medians.
if [ -s "$DATA/micro.txt" ]; then
    awk "$AWKLIB"'
        { k = $1 "-" $2; if (!(k in seen)) { seen[k] = 1; ks[++nk] = k }; v[k, $3, ++n[k, $3]] = $5 }
        END {
            print "benchmark ct mt"
            for (i = 1; i <= nk; i++) {
                split(ks[i], p, "-")
                if (n[ks[i], "asyncio"] == 0 || n[ks[i], "tokio"] == 0) continue
                delete a; for (j = 1; j <= n[ks[i], "asyncio"]; j++) a[j] = v[ks[i], "asyncio", j]
                ma = median(a, n[ks[i], "asyncio"])
                delete a; for (j = 1; j <= n[ks[i], "tokio"]; j++) a[j] = v[ks[i], "tokio", j]
                mt = median(a, n[ks[i], "tokio"])
                if (mt > 0) r[p[1], p[2]] = ma / mt
                if (!(p[1] in bs)) { bs[p[1]] = 1; b[++nb] = p[1] }
            }
            for (i = 1; i <= nb; i++)
                print b[i], ((b[i], "ct") in r) ? r[b[i], "ct"] : "-", ((b[i], "mt") in r) ? r[b[i], "mt"] : "-"
        }' "$DATA/micro.txt" >"$tmp/micro.dat"
    made="$made $(bars "$tmp/micro.dat" "$OUTDIR/micro-ratios.svg" \
        "Runtime micro-benchmarks: libasyncio / Tokio (median; below 1 favours libasyncio)" "ratio" \
        'set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 2')"
fi

made=$(echo $made)
[ -n "$made" ] || { echo "charts: no data in $DATA: nothing drawn"; exit 0; }
echo "charts: $(echo "$made" | wc -w) written to $OUTDIR/"
if [ -n "$COPY" ]; then
    mkdir -p "$COPY" || exit 1
    rm -f "$COPY"/bench-*.svg # the set of charts is this run's, not a mix with an older one
    for f in $made; do cp "$f" "$COPY/bench-$(basename "$f")" || exit 1; done
    echo "charts: copied to $COPY/ as bench-*.svg"
fi
