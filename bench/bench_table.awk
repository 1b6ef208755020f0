# Summaries for run_bench.sh. Input lines (one per load run):
#   scenario mode peer rep count rate p50_us p99_us errors cpu_ticks
#   scenario mode peer rep na|fail
# -v what=rows    one markdown row per (scenario, mode, peer): medians and min-max
# -v what=ratios  each libasyncio peer's medians divided by each other peer's and by the
#                 best peer's (lowest CPU per request), per (scenario, mode)
# -v hz=N         clock ticks per second (getconf CLK_TCK)

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
# Fills the medians and ranges of key k into med_rate[k], etc.
function summarize(k,    n, i, r, c, p, parts) {
    n = cnt[k]
    for (i = 1; i <= n; i++) {
        split(val[k, i], parts, " ")
        r[i] = parts[1]; c[i] = parts[2]; p[i] = parts[3]
    }
    med_rate[k] = median(r, n); min_rate[k] = r[1]; max_rate[k] = r[n]
    med_cpu[k] = median(c, n); min_cpu[k] = c[1]; max_cpu[k] = c[n]
    med_p99[k] = median(p, n)
}
{
    k = $1 SUBSEP $2 SUBSEP $3
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    group = $1 SUBSEP $2
    if (!(group in gseen)) { gseen[group] = 1; gorder[++ng] = group }
    if (!((group, $3) in gpeer)) { gpeer[group, $3] = 1; peers[group] = peers[group] " " $3 }
    if ($5 == "na" || $5 == "fail") { bad[k] = $5; next }
    cpu_us = ($5 > 0) ? $10 / hz * 1e6 / $5 : 0
    val[k, ++cnt[k]] = $6 " " cpu_us " " $8
    errs[k] += $9
}
END {
    for (i = 1; i <= nk; i++)
        if (cnt[order[i]] > 0)
            summarize(order[i])
    if (what == "rows") {
        for (i = 1; i <= nk; i++) {
            k = order[i]; split(k, f, SUBSEP)
            if (cnt[k] == 0) {
                printf "| %s | %s | %s | %s | | | | | |\n", f[1], f[2], f[3], (bad[k] == "na") ? "n/a" : "fail"
                continue
            }
            note = (k in bad) ? " (" bad[k] " in some reps)" : ""
            p99 = (med_p99[k] > 0) ? sprintf("%.0f", med_p99[k]) : "—" # wrk reports 0 when pipelining
            printf "| %s | %s | %s | %.0f%s | %.0f–%.0f | %.2f | %.2f–%.2f | %s | %d |\n",
                f[1], f[2], f[3], med_rate[k], note, min_rate[k], max_rate[k],
                med_cpu[k], min_cpu[k], max_cpu[k], p99, errs[k]
        }
    } else {
        # Every libasyncio peer (asyncio-*: epoll, uring) against every other peer, then
        # against the best peer: the one with the lowest median CPU per request among
        # libuv, nginx, Tokio and hyper (base-* is the same library, not a peer).
        for (g = 1; g <= ng; g++) {
            split(gorder[g], f, SUBSEP)
            n = split(peers[gorder[g]], pl, " ")
            best = ""
            for (j = 1; j <= n; j++) {
                b = gorder[g] SUBSEP pl[j]
                if (pl[j] ~ /^(asyncio|base)/ || cnt[b] == 0 || med_cpu[b] == 0) continue
                if (best == "" || med_cpu[b] < med_cpu[gorder[g] SUBSEP best]) best = pl[j]
            }
            for (m = 1; m <= n; m++) {
                if (pl[m] !~ /^asyncio/) continue
                for (j = 1; j <= n; j++)
                    if (pl[j] !~ /^asyncio/)
                        ratio_row(f[1], f[2], pl[m], pl[j], pl[j], target(f[1], pl[j]))
                if (best != "")
                    ratio_row(f[1], f[2], pl[m], best, "best peer (" best ")", target(f[1], "best"))
            }
        }
    }
}
# CPU/request targets (issue 13): 0.85 x the best of libuv and Tokio, and of every peer
# (echo 64 B and 4 KiB, HTTP keep-alive); pipelined x16: 0.90 x libuv; nginx 1.0; a
# baseline build of libasyncio (BENCH_BASE_BUILD) 1.03.
function target(sc, peer) {
    if (peer == "nginx") return 1.0
    if (peer ~ /^base-/) return 1.03
    if (sc == "http-pipe") return (peer == "libuv-http") ? 0.90 : 0
    return 0.85
}
function ratio_row(sc, mode, a_peer, b_peer, label, tgt,    a, b, rc, p99) {
    a = sc SUBSEP mode SUBSEP a_peer
    b = sc SUBSEP mode SUBSEP b_peer
    t = (tgt > 0) ? sprintf("≤ %.2f", tgt) : ""
    if (cnt[a] == 0 || cnt[b] == 0 || med_rate[b] == 0 || med_cpu[b] == 0) {
        printf "| %s | %s | %s | %s | n/a | n/a | n/a | %s | |\n", sc, mode, a_peer, label, t
        return
    }
    rc = med_cpu[a] / med_cpu[b]
    p99 = (med_p99[a] > 0 && med_p99[b] > 0) ? sprintf("%.2f", med_p99[a] / med_p99[b]) : "—"
    printf "| %s | %s | %s | %s | %.2f | %.2f | %s | %s | %s |\n", sc, mode, a_peer, label,
        med_rate[a] / med_rate[b], rc, p99, t, (tgt > 0) ? ((rc <= tgt) ? "yes" : "no") : ""
}
