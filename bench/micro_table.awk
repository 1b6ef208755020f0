# Summary of run_bench.sh's micro-benchmarks beside tokio_micro (--only micro).
# Input lines: bench flavor impl rep value   (impl: asyncio or tokio; one line per rep)
# Output: one markdown row per (bench, flavor): each side's median and min-max, the ratio of
# the medians (asyncio / tokio), and the spread of the ratios of reps paired in run order.

function sort_num(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
}
function median(a, n) {
    sort_num(a, n)
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v) { return (v >= 100) ? sprintf("%.0f", v) : sprintf("%.1f", v) }
{
    k = $1 SUBSEP $2
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    i = ++cnt[k, $3]
    v[k, $3, i] = $5
    byrep[k, $3, $4] = $5
    reps[k, $4] = 1
}
END {
    unit["spawn"] = "ns/task"; unit["yield"] = "ns/yield"; unit["ping_pong"] = "ns/round trip"
    unit["timers"] = "ns/timer created"; unit["timers_rss"] = "peak B/timer"
    # issue 13: spawn + join <= 0.5 x Tokio; yield <= 0.7 x (multi-thread too)
    tgt["spawn"] = 0.5; tgt["yield"] = 0.7
    for (o = 1; o <= nk; o++) {
        k = order[o]; split(k, f, SUBSEP)
        na = cnt[k, "asyncio"] + 0; nt = cnt[k, "tokio"] + 0
        for (s = 1; s <= 2; s++) {
            side = (s == 1) ? "asyncio" : "tokio"
            n = cnt[k, side] + 0
            delete a
            for (i = 1; i <= n; i++) a[i] = v[k, side, i]
            if (n > 0) { med[s] = median(a, n); lo[s] = a[1]; hi[s] = a[n] }
        }
        ca = (na > 0) ? fmt(med[1]) " | " fmt(lo[1]) "–" fmt(hi[1]) : "n/a | "
        ct = (nt > 0) ? fmt(med[2]) " | " fmt(lo[2]) "–" fmt(hi[2]) : "n/a | "
        ratio = ""; spread = ""; met = ""
        t = (f[1] in tgt) ? tgt[f[1]] : 0
        if (na > 0 && nt > 0 && med[2] > 0) {
            r = med[1] / med[2]
            ratio = sprintf("%.2f", r)
            rmin = ""; rmax = ""
            for (kr in reps) {
                split(kr, q, SUBSEP)
                if (q[1] SUBSEP q[2] != k) continue
                if (!((k, "asyncio", q[3]) in byrep) || !((k, "tokio", q[3]) in byrep)) continue
                if (byrep[k, "tokio", q[3]] <= 0) continue
                x = byrep[k, "asyncio", q[3]] / byrep[k, "tokio", q[3]]
                if (rmin == "" || x < rmin) rmin = x
                if (rmax == "" || x > rmax) rmax = x
            }
            if (rmin != "") spread = sprintf("%.2f–%.2f", rmin, rmax)
            if (t > 0) met = (r <= t) ? "yes" : "no"
        }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], unit[f[1]], ca, ct,
            ratio, spread, (t > 0) ? "≤ " t : "", met
    }
}
