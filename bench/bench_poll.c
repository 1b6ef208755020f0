/*
 * bench_poll: poller micro-benchmark, libasyncio against libuv's uv_poll.
 *
 * N nonblocking AF_UNIX socketpairs (default 10,000) are registered for
 * READABLE with one poller. Each iteration picks one pair (pseudo-random by
 * default, the same sequence for every implementation, never the same pair
 * twice in a row: see pick()), writes 1 byte to its
 * write end, waits once (timeout -1), and dispatches: looks the pair up from
 * the event and reads the byte back. The result is the wall time per
 * iteration (CLOCK_MONOTONIC, setup and teardown excluded).
 *
 * Every implementation does the same write and read syscalls per iteration,
 * so the differences are the wait + dispatch cost:
 *   asyncio-<backend>-edge   asyncio_poller_wait, ASYNCIO_EDGE
 *   asyncio-<backend>-level  asyncio_poller_wait, ASYNCIO_LEVEL
 *   libuv-uv_poll            uv_run(UV_RUN_ONCE), uv_poll_start(UV_READABLE)
 *                            (libuv's epoll registration is level-triggered)
 *
 * Draining: every handler reads into a 64-byte buffer until a read returns
 * less than the buffer size (or EAGAIN). For stream sockets a short read
 * means the receive queue is empty (epoll(7)), which is what edge mode needs,
 * and it costs one read(2) per iteration, the same on every side.
 *
 * Reps run interleaved (asyncio-edge, asyncio-level, libuv, asyncio-edge, ...)
 * in one process; each rep creates a fresh poller / uv loop, registers every
 * pair, runs a short untimed warm-up, then the timed loop, then tears down,
 * so no two pollers watch the sockets at the same time. The pairs themselves
 * are created once.
 *
 * Every call's result is checked; a wrong or missing event aborts the run,
 * and a watchdog ends a run that stops making progress (a lost event would
 * otherwise block a wait with timeout -1 forever).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "asyncio/error.h"
#include "asyncio/poll.h"

#define DEFAULT_PAIRS      10000
#define DEFAULT_ITERS      200000
#define DEFAULT_POLL_ITERS 2000
#define DEFAULT_REPS       5
#define DEFAULT_WARMUP     1000
#define EVENT_CAP          64
#define FD_SLACK           32 /* stdio, 2 for the asyncio poller, ~5 for a uv loop */
#define READ_BUF           64
#define WATCHDOG_S         10
#define WATCHDOG_STR       "10"

enum impl { IMPL_EDGE, IMPL_LEVEL, IMPL_LIBUV, IMPL_COUNT };

static const char *const g_impl_opt[IMPL_COUNT] = {"edge", "level", "libuv"};

typedef struct options {
    size_t pairs;
    size_t iters;
    size_t reps;
    size_t warmup;
    const char *backend;
    bool iters_given;
    bool pairs_given;
    bool warmup_given;
    char pairs_note[128]; /* set when the fd limit forced fewer pairs */
    bool round_robin;
    bool run[IMPL_COUNT];
    uint64_t seed;
} options;

typedef struct pair {
    int rd; /* registered end */
    int wr; /* the benchmark writes here */
} pair;

/* Shared with the libuv callback through loop.data. */
typedef struct uv_ctx {
    pair *pairs;
    uv_poll_t *handles;
    size_t last;  /* pair index of the last callback */
    size_t fired; /* callbacks since the iteration started */
} uv_ctx;

/* Pair picker: xorshift64 (same sequence for every implementation) or round robin. */
typedef struct picker {
    uint64_t state;
    size_t next; /* round robin: the next pair */
    size_t prev; /* random: the previous pair */
    size_t n;
    bool round_robin;
} picker;

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static void die_errno(const char *what)
{
    fprintf(stderr, "bench_poll: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void check_asyncio(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_poll: %s: %s (%s)\n", what, asyncio_strerror(rc),
                asyncio_err_name(rc));
        exit(1);
    }
}

static void check_uv(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_poll: %s: %s (%s)\n", what, uv_strerror(rc), uv_err_name(rc));
        exit(1);
    }
}

/*
 * Watchdog: every WATCHDOG_S seconds SIGALRM checks that some iteration
 * completed since the last tick; if none did, an event was lost and the wait
 * would block forever, so it says so and exits. The loops set g_progress
 * (one store per iteration, on every side).
 */
static volatile sig_atomic_t g_progress = 1;

static void on_watchdog(int sig)
{
    (void)sig;
    if (g_progress) {
        g_progress = 0;
        alarm(WATCHDOG_S);
        return;
    }
    static const char msg[] =
        "bench_poll: watchdog: no iteration completed for " WATCHDOG_STR " s (lost event?)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

static void start_watchdog(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) < 0)
        die_errno("sigaction(SIGALRM)");
    alarm(WATCHDOG_S);
}

static void die_msg(const char *msg, size_t a, size_t b)
{
    fprintf(stderr, "bench_poll: %s (%zu, %zu)\n", msg, a, b);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */

/*
 * Raises RLIMIT_NOFILE: the soft limit to the hard limit, and the hard limit
 * to `need` if it is lower and the process may (CAP_SYS_RESOURCE). Returns
 * the soft limit in force afterwards.
 */
static size_t raise_nofile(size_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die_errno("getrlimit(RLIMIT_NOFILE)");
    rlim_t hard = rl.rlim_max;
    if (hard != RLIM_INFINITY && hard < need) {
        rl.rlim_cur = rl.rlim_max = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return need;
        rl.rlim_max = hard; /* not allowed: settle for the hard limit */
    }
    rl.rlim_cur = hard;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die_errno("setrlimit(RLIMIT_NOFILE)");
    return hard == RLIM_INFINITY || hard > SIZE_MAX ? SIZE_MAX : (size_t)hard;
}

/*
 * Makes sure 2 * pairs + FD_SLACK descriptors are available. If they are not
 * and --pairs was not given, lowers the pair count to what fits and says so.
 */
static void fit_pairs(options *o)
{
    size_t limit = raise_nofile(2 * o->pairs + FD_SLACK);
    if (limit >= 2 * o->pairs + FD_SLACK)
        return;
    if (o->pairs_given || limit < 2 + FD_SLACK) {
        fprintf(stderr,
                "bench_poll: need %zu fds for %zu pairs, RLIMIT_NOFILE hard limit is %zu: "
                "raise it (ulimit -Hn) or lower --pairs\n",
                2 * o->pairs + FD_SLACK, o->pairs, limit);
        exit(1);
    }
    size_t fit = (limit - FD_SLACK) / 2;
    snprintf(o->pairs_note, sizeof o->pairs_note,
             "note: RLIMIT_NOFILE hard limit is %zu (cannot raise it): using %zu pairs instead "
             "of %zu\n",
             limit, fit, o->pairs);
    o->pairs = fit;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die_errno("fcntl(O_NONBLOCK)");
}

static pair *make_pairs(size_t n)
{
    pair *pairs = calloc(n, sizeof *pairs);
    if (pairs == NULL)
        die_errno("calloc(pairs)");
    for (size_t i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die_errno("socketpair");
        set_nonblock(sv[0]);
        set_nonblock(sv[1]);
        pairs[i].rd = sv[0];
        pairs[i].wr = sv[1];
    }
    return pairs;
}

static void free_pairs(pair *pairs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        close(pairs[i].rd);
        close(pairs[i].wr);
    }
    free(pairs);
}

/* ------------------------------------------------------------------------ */
/* The per-iteration work shared by every implementation                     */

/*
 * Never returns the previous pair again (a redraw), for every implementation:
 * re-poking the pair that the last wait reported, before the next wait,
 * loses the event with the poll backend's edge emulation (README.md, known
 * issues), which would hang the run.
 */
static size_t pick(picker *p)
{
    if (p->round_robin) {
        size_t i = p->next;
        p->next = i + 1 == p->n ? 0 : i + 1;
        return i;
    }
    for (;;) {
        uint64_t x = p->state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p->state = x;
        size_t i = (size_t)(x % p->n);
        if (i != p->prev || p->n == 1) {
            p->prev = i;
            return i;
        }
    }
}

static void poke(const pair *p)
{
    static const char byte = 'x';
    ssize_t r;
    do {
        r = write(p->wr, &byte, 1);
    } while (r < 0 && errno == EINTR);
    if (r != 1)
        die_errno("write");
}

/* Reads until a short read or EAGAIN (epoll(7): a short read drains a stream socket). */
static void drain(int fd)
{
    char buf[READ_BUF];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == (ssize_t)sizeof buf || (r < 0 && errno == EINTR))
            continue;
        if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            return;
        if (r == 0)
            die_msg("unexpected EOF on pair fd", (size_t)fd, 0);
        die_errno("read");
    }
}

static double now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        die_errno("clock_gettime");
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* libasyncio                                                                */

static void asyncio_loop(asyncio_poller *poller, pair *pairs, picker *pk, size_t iters)
{
    asyncio_event events[EVENT_CAP];
    for (size_t it = 0; it < iters; it++) {
        size_t want = pick(pk);
        poke(&pairs[want]);
        size_t n = 0;
        check_asyncio(asyncio_poller_wait(poller, events, EVENT_CAP, -1, &n),
                      "asyncio_poller_wait");
        if (n != 1 || events[0].token != want)
            die_msg("asyncio: expected exactly one event for the poked pair", n,
                    n > 0 ? (size_t)events[0].token : SIZE_MAX);
        for (size_t e = 0; e < n; e++) {
            int fd = pairs[events[e].token].rd;
            drain(fd);
            /* The portable edge contract: say we drained (free on epoll, needed by poll). */
            check_asyncio(asyncio_poller_rearm_fd(poller, fd, ASYNCIO_READABLE),
                          "asyncio_poller_rearm_fd");
        }
        g_progress = 1;
    }
}

/* One rep: fresh poller, register all, warm up, timed loop, free. Returns ns/iter. */
static double run_asyncio(const options *o, pair *pairs, asyncio_trigger mode,
                          const char **backend_out)
{
    asyncio_poller *poller = NULL;
    check_asyncio(asyncio_poller_new_backend(&poller, o->backend), "asyncio_poller_new_backend");
    for (size_t i = 0; i < o->pairs; i++)
        check_asyncio(
            asyncio_poller_register_fd(poller, pairs[i].rd, (uintptr_t)i, ASYNCIO_READABLE, mode),
            "asyncio_poller_register_fd");
    *backend_out = asyncio_poller_backend(poller);

    picker pk = {.state = o->seed, .prev = SIZE_MAX, .n = o->pairs, .round_robin = o->round_robin};
    asyncio_loop(poller, pairs, &pk, o->warmup);
    double t0 = now_ns();
    asyncio_loop(poller, pairs, &pk, o->iters);
    double t1 = now_ns();

    check_asyncio(asyncio_poller_free(poller), "asyncio_poller_free");
    return (t1 - t0) / (double)o->iters;
}

/* ------------------------------------------------------------------------ */
/* libuv                                                                     */

static void uv_on_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    check_uv(status, "uv_poll callback");
    uv_ctx *ctx = h->loop->data;
    size_t i = (size_t)(uintptr_t)h->data;
    drain(ctx->pairs[i].rd);
    ctx->last = i;
    ctx->fired++;
}

static void uv_loop_iters(uv_loop_t *loop, uv_ctx *ctx, picker *pk, size_t iters)
{
    for (size_t it = 0; it < iters; it++) {
        size_t want = pick(pk);
        poke(&ctx->pairs[want]);
        ctx->fired = 0;
        /* The return value only says whether handles are still active: they are. */
        (void)uv_run(loop, UV_RUN_ONCE);
        if (ctx->fired != 1 || ctx->last != want)
            die_msg("libuv: expected exactly one callback for the poked pair", ctx->fired,
                    ctx->last);
        g_progress = 1;
    }
}

static void uv_setup(uv_loop_t *loop, uv_ctx *ctx, size_t n)
{
    check_uv(uv_loop_init(loop), "uv_loop_init");
    loop->data = ctx;
    for (size_t i = 0; i < n; i++) {
        uv_poll_t *h = &ctx->handles[i];
        check_uv(uv_poll_init(loop, h, ctx->pairs[i].rd), "uv_poll_init");
        h->data = (void *)(uintptr_t)i;
        check_uv(uv_poll_start(h, UV_READABLE, uv_on_readable), "uv_poll_start");
    }
}

static void uv_teardown(uv_loop_t *loop, uv_ctx *ctx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        check_uv(uv_poll_stop(&ctx->handles[i]), "uv_poll_stop");
        uv_close((uv_handle_t *)&ctx->handles[i], NULL);
    }
    check_uv(uv_run(loop, UV_RUN_DEFAULT), "uv_run(close)");
    check_uv(uv_loop_close(loop), "uv_loop_close");
}

/* One rep: fresh loop, start all, warm up, timed loop, close. Returns ns/iter. */
static double run_libuv(const options *o, uv_ctx *ctx)
{
    uv_loop_t loop;
    uv_setup(&loop, ctx, o->pairs);
    picker pk = {.state = o->seed, .prev = SIZE_MAX, .n = o->pairs, .round_robin = o->round_robin};
    uv_loop_iters(&loop, ctx, &pk, o->warmup);
    double t0 = now_ns();
    uv_loop_iters(&loop, ctx, &pk, o->iters);
    double t1 = now_ns();
    uv_teardown(&loop, ctx, o->pairs);
    return (t1 - t0) / (double)o->iters;
}

/* ------------------------------------------------------------------------ */
/* Statistics and report                                                     */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place; median of an even count is the mean of the middle two. */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_header(const options *o, const char *backend)
{
    printf("poller: %zu socketpairs, %zu iterations, %zu reps (interleaved), "
           "%zu warm-up iterations/rep, %s order\n",
           o->pairs, o->iters, o->reps, o->warmup, o->round_robin ? "round-robin" : "random");
    if (strcmp(backend, "poll") == 0 && !o->iters_given)
        printf("note: poll backend: poll(2) scans all %zu fds per wait, so iterations default "
               "to %d (--iters to override)\n",
               o->pairs, DEFAULT_POLL_ITERS);
    fputs(o->pairs_note, stdout);
    printf("%-24s %16s %10s %10s\n", "impl", "median ns/iter", "min", "max");
}

static void print_row(const char *name, double *v, size_t n, double *med_out)
{
    double med = median(v, n);
    printf("%-24s %16.0f %10.0f %10.0f\n", name, med, v[0], v[n - 1]);
    *med_out = med;
}

static void report(const options *o, const char *backend, double *res[IMPL_COUNT])
{
    char names[IMPL_COUNT][48];
    snprintf(names[IMPL_EDGE], sizeof names[0], "asyncio-%s-edge", backend);
    snprintf(names[IMPL_LEVEL], sizeof names[0], "asyncio-%s-level", backend);
    snprintf(names[IMPL_LIBUV], sizeof names[0], "libuv-uv_poll");
    print_header(o, backend);
    double med[IMPL_COUNT] = {0};
    for (int k = 0; k < IMPL_COUNT; k++) {
        if (o->run[k])
            print_row(names[k], res[k], o->reps, &med[k]);
    }
    if (!o->run[IMPL_LIBUV])
        return;
    if (o->run[IMPL_EDGE])
        printf("ratio asyncio-edge/libuv (median): %.2f\n", med[IMPL_EDGE] / med[IMPL_LIBUV]);
    if (o->run[IMPL_LEVEL])
        printf("ratio asyncio-level/libuv (median): %.2f\n", med[IMPL_LEVEL] / med[IMPL_LIBUV]);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_poll [--pairs N] [--iters N] [--reps N] [--warmup N]\n"
            "                  [--backend epoll|poll] [--order random|rr] [--seed N]\n"
            "                  [--only edge,level,libuv]\n"
            "defaults: --pairs %d --iters %d (%d with --backend poll) --reps %d\n"
            "          --warmup min(%d, iters / 10)\n"
            "          --order random; all three implementations\n",
            DEFAULT_PAIRS, DEFAULT_ITERS, DEFAULT_POLL_ITERS, DEFAULT_REPS, DEFAULT_WARMUP);
}

static size_t parse_size(const char *opt, const char *s, size_t min)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > SIZE_MAX / 4) {
        fprintf(stderr, "bench_poll: %s: bad value '%s' (integer >= %zu)\n", opt, s, min);
        exit(2);
    }
    return (size_t)v;
}

static void parse_only(options *o, const char *list)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", list);
    memset(o->run, 0, sizeof o->run);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < IMPL_COUNT && strcmp(tok, g_impl_opt[k]) != 0)
            k++;
        if (k == IMPL_COUNT) {
            fprintf(stderr, "bench_poll: --only: unknown implementation '%s'\n", tok);
            exit(2);
        }
        o->run[k] = true;
    }
}

/* Applies one "--opt value" pair; returns false if `opt` is unknown. */
static bool parse_opt(options *o, const char *opt, const char *val)
{
    if (strcmp(opt, "--pairs") == 0)
        o->pairs = parse_size(opt, val, 1), o->pairs_given = true;
    else if (strcmp(opt, "--iters") == 0)
        o->iters = parse_size(opt, val, 1), o->iters_given = true;
    else if (strcmp(opt, "--reps") == 0)
        o->reps = parse_size(opt, val, 1);
    else if (strcmp(opt, "--warmup") == 0)
        o->warmup = parse_size(opt, val, 0), o->warmup_given = true;
    else if (strcmp(opt, "--seed") == 0)
        o->seed = parse_size(opt, val, 1);
    else if (strcmp(opt, "--backend") == 0)
        o->backend = val;
    else if (strcmp(opt, "--order") == 0 && (strcmp(val, "rr") == 0 || strcmp(val, "random") == 0))
        o->round_robin = strcmp(val, "rr") == 0;
    else if (strcmp(opt, "--only") == 0)
        parse_only(o, val);
    else
        return false;
    return true;
}

static void parse_args(options *o, int argc, char **argv)
{
    *o = (options){.pairs = DEFAULT_PAIRS,
                   .iters = DEFAULT_ITERS,
                   .reps = DEFAULT_REPS,
                   .warmup = DEFAULT_WARMUP,
                   .backend = "epoll",
                   .seed = 0x9e3779b97f4a7c15u,
                   .run = {true, true, true}};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc || !parse_opt(o, argv[i], argv[i + 1])) {
            usage(stderr);
            exit(2);
        }
        i++;
    }
    if (strcmp(o->backend, "poll") == 0 && !o->iters_given)
        o->iters = DEFAULT_POLL_ITERS;
    if (!o->warmup_given && o->iters / 10 < o->warmup)
        o->warmup = o->iters / 10;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    options o;
    parse_args(&o, argc, argv);
    fit_pairs(&o);

    pair *pairs = make_pairs(o.pairs);
    uv_ctx ctx = {.pairs = pairs, .handles = calloc(o.pairs, sizeof(uv_poll_t))};
    double *res[IMPL_COUNT];
    for (int k = 0; k < IMPL_COUNT; k++)
        res[k] = calloc(o.reps, sizeof(double));
    if (ctx.handles == NULL || !res[0] || !res[1] || !res[2])
        die_errno("calloc");

    const char *backend = o.backend;
    start_watchdog();
    for (size_t r = 0; r < o.reps; r++) {
        if (o.run[IMPL_EDGE])
            res[IMPL_EDGE][r] = run_asyncio(&o, pairs, ASYNCIO_EDGE, &backend);
        if (o.run[IMPL_LEVEL])
            res[IMPL_LEVEL][r] = run_asyncio(&o, pairs, ASYNCIO_LEVEL, &backend);
        if (o.run[IMPL_LIBUV])
            res[IMPL_LIBUV][r] = run_libuv(&o, &ctx);
    }
    alarm(0);
    report(&o, backend, res);

    for (int k = 0; k < IMPL_COUNT; k++)
        free(res[k]);
    free(ctx.handles);
    free_pairs(pairs, o.pairs);
    return 0;
}
