/*
 * bench_process: spawn + wait of `true`, libasyncio next to posix_spawn +
 * waitpid done by hand, in one run (issue 17's target: median within 1.2x).
 *
 *   asyncio   asyncio_process_spawn + asyncio_process_poll_wait inside a task
 *             on the current-thread runtime (pidfd registered with the I/O
 *             driver, or SIGCHLD under ASYNCIO_PROCESS_WAIT=signal)
 *   by_hand   posix_spawnp + a blocking waitpid
 *
 * Each rep runs N spawn+waits of one row, then of the other (rows alternate
 * so drift in machine load hits both alike); every spawn+wait is timed and
 * the row reports, in microseconds over all reps, the median and the spread
 * (min, p10, p90, max) and the range of the per-rep medians; then the ratio
 * of the medians, overall and per rep (min..max: how stable it is).
 * Afterwards it checks that no child is left (not even a zombie: waitid
 * with WNOWAIT) and that no fd leaked, and exits 1 if either check fails
 * (counted after one warm-up spawn: the signal module's
 * self-pipe, made once per process on the SIGCHLD path, is no leak).
 *
 * Options: --iterations N (default 1000), --reps N (default 3), --quick
 * (50 iterations, 1 rep: a smoke run that checks it works).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asyncio/process.h"
#include "asyncio/runtime.h"

extern char **environ;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_process: %s: %s\n", what, asyncio_strerror(rc));
    exit(1);
}

/* ---- libasyncio: a task that spawns and awaits n children, timing each ---------- */

typedef struct spawn_loop {
    int n, done;
    double *samples; /* n entries */
    double t0;
    asyncio_process *p;
} spawn_loop;

static int loop_poll(void *state, asyncio_context *cx, void *output)
{
    spawn_loop *s = state;
    (void)output;
    static const char *const argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    while (s->done < s->n) {
        if (s->p == NULL) {
            s->t0 = now_us();
            int rc = asyncio_process_spawn(&s->p, &o);
            if (rc < 0)
                return rc;
        }
        asyncio_exit_status st;
        int rc = asyncio_process_poll_wait(s->p, cx, &st);
        if (rc != 0)
            return rc;
        s->samples[s->done++] = now_us() - s->t0;
        asyncio_process_free(s->p);
        s->p = NULL;
        if (st.code != 0)
            return ASYNCIO_EIO;
    }
    return 0;
}

static void loop_drop(void *state)
{
    asyncio_process_free(((spawn_loop *)state)->p);
}

static const asyncio_task_vtable loop_vt = {loop_poll, loop_drop, NULL, sizeof(spawn_loop), 0};

static void run_asyncio(asyncio_runtime *rt, int n, double *samples)
{
    spawn_loop s = {.n = n, .samples = samples};
    int rc = asyncio_runtime_block_on(rt, &loop_vt, &s, NULL);
    if (rc != 0)
        die("asyncio row", rc);
}

/* ---- by hand: posix_spawnp + waitpid -------------------------------------------- */

static void run_by_hand(int n, double *samples)
{
    char *argv[] = {"true", NULL};
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        pid_t pid;
        int rc = posix_spawnp(&pid, "true", NULL, NULL, argv, environ);
        if (rc != 0)
            die("posix_spawnp", -rc);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        samples[i] = now_us() - t0;
    }
}

/* ---- statistics and checks ------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorts it). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* One row: the median over all samples, the spread, and the per-rep medians' range. */
static double report(const char *row, double *v, int n, const double *rep_med, int reps)
{
    double lo = rep_med[0], hi = rep_med[0];
    for (int r = 1; r < reps; r++) {
        lo = rep_med[r] < lo ? rep_med[r] : lo;
        hi = rep_med[r] > hi ? rep_med[r] : hi;
    }
    double med = median(v, n);
    printf("%-8s  spawn+wait  median %8.1f us  p90 %8.1f us  max %8.1f us  (n=%d)"
           "  min %.1f  p10 %.1f  rep medians %.1f..%.1f us\n",
           row, med, v[(n * 9) / 10], v[n - 1], n, v[0], v[n / 10], lo, hi);
    return med;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

static int children_left(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD)
        return 0;
    return 1;
}

int main(int argc, char **argv)
{
    int iterations = 1000, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            iterations = 50;
            reps = 1;
        } else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_process [--iterations N] [--reps N] [--quick]\n");
            return 2;
        }
    }
    if (iterations <= 0 || reps <= 0)
        return 2;
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, NULL);
    if (rc != 0)
        die("runtime", rc);
    double warm;
    run_asyncio(rt, 1, &warm); /* process-wide fds made once (signal self-pipe) exist from here */
    int fds_before = open_fds();
    size_t total = (size_t)iterations * (size_t)reps;
    double *a = malloc(total * sizeof *a), *h = malloc(total * sizeof *h);
    double *am = malloc((size_t)reps * sizeof *am), *hm = malloc((size_t)reps * sizeof *hm);
    if (a == NULL || h == NULL || am == NULL || hm == NULL)
        die("malloc", ASYNCIO_ENOMEM);
    double rlo = 0, rhi = 0;
    for (int r = 0; r < reps; r++) {
        double *ar = a + (size_t)r * (size_t)iterations, *hr = h + (size_t)r * (size_t)iterations;
        run_asyncio(rt, iterations, ar);
        run_by_hand(iterations, hr);
        am[r] = median(ar, iterations);
        hm[r] = median(hr, iterations);
        double q = am[r] / hm[r];
        rlo = r == 0 || q < rlo ? q : rlo;
        rhi = r == 0 || q > rhi ? q : rhi;
    }
    double ma = report("asyncio", a, (int)total, am, reps);
    double mh = report("by_hand", h, (int)total, hm, reps);
    printf("ratio     asyncio / by_hand median  %.3f  (target <= 1.2)  per rep %.3f..%.3f\n",
           ma / mh, rlo, rhi);
    int leaked = open_fds() - fds_before;
    int zombies = children_left();
    printf("check     children left %d, fds leaked %d\n", zombies, leaked);
    free(a);
    free(h);
    free(am);
    free(hm);
    asyncio_runtime_free(rt);
    return zombies == 0 && leaked == 0 ? 0 : 1;
}
