/*
 * The allocation-failure sweep: see alloc_sweep.h for the protocol. The hook
 * below counts every call (malloc and realloc, including realloc of an
 * existing block, which may fail too) and refuses exactly one of them.
 */
#include "alloc_sweep.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asyncio/alloc.h"
#include "asyncio/error.h"
#include "asyncio/runtime.h"
#include "asyncio/task.h"
#include "fault_inject.h"
#include "support.h"

static _Atomic long g_calls;   /* hook calls since the run started */
static _Atomic long g_fail_at; /* the call index to refuse; -1: none */
static _Atomic bool g_persist; /* refuse every call from g_fail_at on (memory stays exhausted) */
static _Atomic long g_live;    /* blocks handed out and not yet freed */
static _Atomic bool g_failed;  /* the refusal has happened */
static _Atomic int g_noted;    /* first error a scenario task noted */

/* What the watchdog prints: the run in progress. */
static const char *volatile g_cur_name = "";
static volatile long g_cur_k = -1;
static volatile long g_cur_seed = -1; /* the fault plan's seed in the plan pass */

static bool refuse_this_call(void)
{
    support_alloc_site_note();
    long idx = atomic_fetch_add(&g_calls, 1), at = atomic_load(&g_fail_at);
    if (at < 0 || (idx != at && !(atomic_load(&g_persist) && idx > at)))
        return false;
    atomic_store(&g_failed, true);
    return true;
}

static void *sweep_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (refuse_this_call())
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&g_live, 1);
    return p;
}

static void *sweep_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (refuse_this_call())
        return NULL; /* C's contract: ptr is untouched and still owned by the caller */
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        atomic_fetch_add(&g_live, 1);
    return p;
}

static void sweep_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL)
        atomic_fetch_sub(&g_live, 1);
    free(ptr);
}

void alloc_sweep_note(int rc)
{
    int zero = 0;
    if (rc < 0)
        atomic_compare_exchange_strong(&g_noted, &zero, rc);
}

int alloc_sweep_noted(void)
{
    return atomic_load(&g_noted);
}

bool alloc_sweep_failed_yet(void)
{
    return atomic_load(&g_failed);
}

static void put(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

/* SIGALRM: the run hung. Async-signal-safe output, then abort. */
static void on_watchdog(int sig)
{
    (void)sig;
    char num[32];
    int i = (int)sizeof num - 1;
    long k = g_cur_k;
    num[i] = '\0';
    do {
        num[--i] = (char)('0' + (k < 0 ? 0 : k % 10));
        k /= 10;
    } while (k > 0 && i > 0);
    put("\nalloc sweep: HANG in scenario ");
    put(g_cur_name);
    if (g_cur_seed >= 0) {
        k = g_cur_seed;
        i = (int)sizeof num - 1;
        do {
            num[--i] = (char)('0' + k % 10);
            k /= 10;
        } while (k > 0 && i > 0);
        put(" under fault plan ASYNCIO_FAULT_SEED=");
        put(num + i);
        put(" (docs/testing.md)\n");
        abort();
    }
    put(" failing allocation k=");
    put(g_cur_k < 0 ? "none" : num + i);
    put(atomic_load(&g_persist) ? " and every later one (replay: ALLOC_SWEEP_PERSIST=1 " : " (replay: ");
    put("ALLOC_SWEEP_K=<k>; docs/testing.md)\n");
    abort();
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end == '\0' ? n : dflt;
}

typedef struct run_result {
    int rc;
    long calls;
    bool failed;
} run_result;

/*
 * One run with call fail_at refused (-1: none) and, if persist, every later call too;
 * checks blocks and fds.
 */
static run_result run_once(const alloc_sweep_scenario *s, long fail_at, bool persist)
{
    static const asyncio_allocator hook = {sweep_malloc, sweep_realloc, sweep_free, NULL};
    int fds_before = support_open_fds();
    atomic_store(&g_calls, 0);
    atomic_store(&g_fail_at, fail_at);
    atomic_store(&g_persist, persist);
    atomic_store(&g_live, 0);
    atomic_store(&g_failed, false);
    atomic_store(&g_noted, 0);
    g_cur_name = s->name;
    g_cur_k = fail_at;
    assert_int_equal(asyncio_set_allocator(&hook), 0);
    alarm((unsigned)env_long("ALLOC_SWEEP_TIMEOUT_S", 20));
    run_result r = {s->run(), 0, false};
    alarm(0);
    r.calls = atomic_load(&g_calls);
    r.failed = atomic_load(&g_failed);
    long live = atomic_load(&g_live);
    int fds_after = support_open_fds();
    assert_int_equal(asyncio_set_allocator(NULL), 0);
    if (live != 0 || fds_after != fds_before) {
        fprintf(stderr, "alloc sweep: %s k=%ld%s: LEAK: %ld blocks live, fds %d -> %d (rc %s)\n",
                s->name, fail_at, persist ? " (and after)" : "", live, fds_before, fds_after,
                asyncio_err_name(r.rc));
        fail();
    }
    return r;
}

static bool allowed(const alloc_sweep_scenario *s, int rc)
{
    if (rc == 0 || rc == ASYNCIO_ENOMEM)
        return true;
    for (const int *a = s->also_allowed; a != NULL && *a != 0; a++)
        if (*a == rc)
            return true;
    return false;
}

static void check_failing_run(const alloc_sweep_scenario *s, long k, bool persist,
                              run_result r)
{
    const char *mode = persist ? " (and after)" : "";
    if (getenv("ALLOC_SWEEP_VERBOSE") != NULL)
        fprintf(stderr, "alloc sweep: %s k=%ld%s: %s (%ld calls)\n", s->name, k, mode,
                r.rc == 0 ? "ok" : asyncio_err_name(r.rc), r.calls);
    if (r.rc != 0 && !r.failed) {
        fprintf(stderr, "alloc sweep: %s k=%ld%s: failed with %s before allocation k was refused\n",
                s->name, k, mode, asyncio_err_name(r.rc));
        fail();
    }
    if (!allowed(s, r.rc)) {
        fprintf(stderr, "alloc sweep: %s k=%ld%s: unexpected result %s (%s)\n", s->name, k, mode,
                asyncio_err_name(r.rc), asyncio_strerror(r.rc));
        fail();
    }
}

/* Errors a hostile fault may cause (a reset connection, a full fd table, a clock jump). */
static bool hostile_result(int rc)
{
    return rc == ASYNCIO_ECONNRESET || rc == ASYNCIO_EPIPE || rc == ASYNCIO_EMFILE ||
           rc == ASYNCIO_ENFILE || rc == ASYNCIO_EUNEXPECTED_EOF || rc == ASYNCIO_ETIMEDOUT ||
           rc == ASYNCIO_ECANCELED;
}

/* A seed per (scenario, i): every scenario gets plans of its own (FNV-1a of the name). */
static uint64_t plan_seed(const char *name, long i)
{
    uint64_t h = 1469598103934665603u;
    for (const char *c = name; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    return (h % 1000000u) * 1000u + (uint64_t)i;
}

static void run_plan(const alloc_sweep_scenario *s, uint64_t seed)
{
    fault_plan plan = fault_plan_from_seed(seed, FAULT_ALL);
    fault_plan_override_from_env(&plan);
    g_cur_seed = (long)seed;
    fault_inject_install(&plan);
    run_result r = run_once(s, -1, false);
    uint64_t hostile = fault_inject_hostile_count();
    fault_inject_uninstall();
    g_cur_seed = -1;
    bool ok = r.rc == 0 || (hostile > 0 && (hostile_result(r.rc) || allowed(s, r.rc)));
    if (getenv("ALLOC_SWEEP_VERBOSE") != NULL || !ok) {
        fprintf(stderr, "fault plan: %s ASYNCIO_FAULT_SEED=%llu: %s (%llu injections, %llu hostile)\n",
                s->name, (unsigned long long)seed, asyncio_err_name(r.rc),
                (unsigned long long)fault_inject_count(), (unsigned long long)hostile);
        fault_inject_dump(stderr);
    }
    if (!ok) {
        fprintf(stderr, "fault plan: %s: unexpected result %s (%s)%s\n", s->name,
                asyncio_err_name(r.rc), asyncio_strerror(r.rc),
                hostile == 0 ? " with only transparent faults injected" : "");
        fail();
    }
}

/*
 * The plan pass: the scenario under FAULT_SWEEP_SEEDS (default 16) fault plans of
 * all classes; ASYNCIO_FAULT_SEED=s runs that plan only. Returns the plans run.
 */
static long plan_pass(const alloc_sweep_scenario *s)
{
    uint64_t only;
    if (fault_seed_from_env(&only)) {
        run_plan(s, only);
        return 1;
    }
    long n = env_long("FAULT_SWEEP_SEEDS", 16);
    for (long i = 0; i < n; i++)
        run_plan(s, plan_seed(s->name, i));
    printf("fault plans: %-26s %4ld plans (seeds %llu..%llu)\n", s->name, n,
           (unsigned long long)plan_seed(s->name, 0), (unsigned long long)plan_seed(s->name, n - 1));
    return n;
}

long alloc_sweep_run(const alloc_sweep_scenario *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    run_result base = run_once(s, -1, false);
    if (base.rc != 0) {
        fprintf(stderr, "alloc sweep: %s: the run without failures returned %s\n", s->name,
                asyncio_err_name(base.rc));
        fail();
    }
    uint64_t seed_only;
    if (fault_seed_from_env(&seed_only)) /* replaying a fault plan: nothing else */
        return plan_pass(s);
    long only = env_long("ALLOC_SWEEP_K", -1);
    bool only_persist = env_long("ALLOC_SWEEP_PERSIST", 0) != 0;
    if (only >= 0) {
        run_result r = run_once(s, only, only_persist);
        check_failing_run(s, only, only_persist, r);
        fprintf(stderr, "alloc sweep: %s k=%ld%s replayed: %s (%ld calls)\n", s->name, only,
                only_persist ? " (and after)" : "", asyncio_err_name(r.rc), r.calls);
        return 1;
    }
    /*
     * Two passes: exactly call k fails (a transient failure the code must survive), then
     * every call from k on fails (memory stays exhausted: recovery and cleanup paths that
     * allocate again must not loop or leak). Bound: a run whose count keeps growing with
     * k is itself a bug (a retry loop).
     */
    long limit = 4 * base.calls + 64, runs = 0, errors = 0;
    for (int persist = 0; persist <= 1; persist++) {
        for (long k = 0;; k++) {
            assert_true(k < limit);
            run_result r = run_once(s, k, persist);
            if (!r.failed)
                break; /* allocation k was never reached: every site is covered */
            check_failing_run(s, k, persist, r);
            runs++;
            errors += r.rc != 0;
        }
    }
    printf("alloc sweep: %-26s %4ld allocations, %4ld failing runs (%ld ended in an error, "
           "%ld completed anyway)\n",
           s->name, base.calls, runs, errors, runs - errors);
    plan_pass(s);
    return runs;
}

int alloc_sweep_block_on(const asyncio_task_vtable *vt, const void *init)
{
    asyncio_runtime_options o;
    memset(&o, 0, sizeof o);
    support_runtime_options(&o);
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, &o);
    if (rc != 0)
        return rc;
    rc = asyncio_runtime_block_on(rt, vt, init, NULL);
    int frc = asyncio_runtime_free(rt);
    if (frc != 0) {
        fprintf(stderr, "alloc sweep: asyncio_runtime_free: %s\n", asyncio_err_name(frc));
        return frc;
    }
    return rc != 0 ? rc : alloc_sweep_noted();
}
