/*
 * Observability (issue 17 parts 2-4): the task snapshot and dump, the stall
 * detector, the added metrics and the Prometheus writer, on every flavour
 * of the matrix (ASYNCIO_TEST_RUNTIME). No timed assertions: the stall test
 * blocks a worker for 300 ms against a 100 ms threshold and checks that the
 * report names the task and came while the poll still ran.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "asyncio/await.h"
#include "asyncio/blocking.h"
#include "asyncio/poll.h"
#include "asyncio/runtime.h"
#include "asyncio/task.h"
#include "asyncio/time.h"
#include "support/support.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* A stream in memory: text written to it is read back after fclose. */
typedef struct memout {
    FILE *f;
    char *buf;
    size_t len;
} memout;

static void memout_open(memout *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    assert_non_null(m->f);
}

static void memout_close(memout *m)
{
    assert_int_equal(fclose(m->f), 0);
}

static size_t count_lines_starting(const char *text, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, plen) == 0)
            n++;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return n;
}

/* Lines of `text` that start with `prefix` and contain `needle`. */
static size_t count_lines_starting_with(const char *text, const char *prefix, const char *needle)
{
    size_t n = 0, plen = strlen(prefix), nlen = strlen(needle);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len >= plen && strncmp(p, prefix, plen) == 0) {
            for (size_t i = 0; i + nlen <= len; i++) {
                if (strncmp(p + i, needle, nlen) == 0) {
                    n++;
                    break;
                }
            }
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return n;
}

/* The one line of `text` that contains `needle`, copied to line (NUL-terminated). */
static bool find_line(const char *text, const char *needle, char *line, size_t cap)
{
    const char *hit = strstr(text, needle);
    if (hit == NULL)
        return false;
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t n = end != NULL ? (size_t)(end - start) : strlen(start);
    if (n >= cap)
        n = cap - 1;
    memcpy(line, start, n);
    line[n] = '\0';
    return true;
}

static const asyncio_task_info *info_by_id(const asyncio_task_info *v, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

/* A task that is polled once, labels what it waits on, and then waits forever. */
typedef struct waiter {
    _Atomic int *polled;
    const char *what;
    int64_t arg;
} waiter;

static int waiter_poll(void *state, asyncio_context *cx, void *output)
{
    waiter *w = state;
    (void)cx;
    (void)output;
    asyncio_task_set_waiting_on(w->what, w->arg);
    atomic_fetch_add(w->polled, 1);
    return ASYNCIO_PENDING; /* nothing will wake it: shutdown cancels it */
}

static const asyncio_task_vtable waiter_vt = {.poll = waiter_poll, .state_size = sizeof(waiter)};

/* The same with the await macro: its label is the awaited expression and its place. */
typedef struct awaiter {
    asyncio_coro co;
    _Atomic int *polled;
} awaiter;

static int never_ready(awaiter *a)
{
    atomic_fetch_add(a->polled, 1);
    return ASYNCIO_PENDING;
}

static int awaiter_poll(void *state, asyncio_context *cx, void *output)
{
    awaiter *a = state;
    int rc = 0;
    (void)cx;
    (void)output;
    ASYNCIO_BEGIN(a->co);
    ASYNCIO_AWAIT(a->co, rc, never_ready(a));
    ASYNCIO_END(a->co);
    return rc;
}

static const asyncio_task_vtable awaiter_vt = {.poll = awaiter_poll, .state_size = sizeof(awaiter)};

/* ------------------------------------------------------------------------ */
/* Dump and snapshot                                                         */

typedef struct dump_main {
    asyncio_runtime *rt;
    _Atomic int polled;
    asyncio_join_handle *jh[2];
    bool spawned;
    char text[8192];
    asyncio_task_info info[8];
    size_t n;
} dump_main;

/* Task states are copied at spawn: the task works on the test's record through a pointer. */
typedef struct ref {
    void *p;
} ref;

static int dump_main_poll(void *state, asyncio_context *cx, void *output)
{
    dump_main *m = ((ref *)state)->p;
    (void)output;
    if (!m->spawned) {
        m->spawned = true;
        waiter w = {&m->polled, "read fd", 17};
        asyncio_spawn_options o = {.name = "reader"};
        if (asyncio_spawn_with(m->rt, &waiter_vt, &w, &o, &m->jh[0]) < 0)
            return ASYNCIO_EIO;
        awaiter a = {ASYNCIO_CORO_INIT, &m->polled};
        if (asyncio_spawn(m->rt, &awaiter_vt, &a, &m->jh[1]) < 0)
            return ASYNCIO_EIO;
    }
    if (atomic_load(&m->polled) < 2) {
        asyncio_waker_wake_by_ref(cx->waker); /* let them run once */
        return ASYNCIO_PENDING;
    }
    /* From inside a task of the runtime, while it runs. */
    memout mo;
    memout_open(&mo);
    int rc = asyncio_runtime_dump(m->rt, mo.f);
    memout_close(&mo);
    snprintf(m->text, sizeof m->text, "%s", mo.buf);
    free(mo.buf);
    if (rc < 0)
        return rc;
    return asyncio_runtime_tasks(m->rt, m->info, 8, &m->n);
}

static const asyncio_task_vtable dump_main_vt = {.poll = dump_main_poll, .state_size = sizeof(ref)};

static void test_dump_lists_every_task_with_state_name_worker_polls_and_label(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.track_tasks = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    dump_main *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->rt = rt;
    assert_ok(asyncio_runtime_block_on(rt, &dump_main_vt, &(ref){m}, NULL));

    /* Structured form: the two children and the main task. */
    assert_int_equal(m->n, 3);
    const asyncio_task_info *r = info_by_id(m->info, m->n, asyncio_join_handle_id(m->jh[0]));
    const asyncio_task_info *a = info_by_id(m->info, m->n, asyncio_join_handle_id(m->jh[1]));
    assert_non_null(r);
    assert_non_null(a);
    assert_string_equal(r->name, "reader");
    assert_true(r->tracked);
    assert_int_equal(r->state, ASYNCIO_TASK_IDLE);
    assert_int_equal(r->polls, 1);
    assert_true(r->worker >= 0 && (uint32_t)r->worker < asyncio_runtime_num_workers(rt));
    assert_string_equal(r->waiting_on, "read fd 17");
    assert_true(r->age_us >= r->since_poll_us);
    assert_string_equal(a->name, "");
    assert_int_equal(a->polls, 1);
    assert_true(strncmp(a->waiting_on, "never_ready(a) @ ", 17) == 0);
    int running = 0;
    for (size_t i = 0; i < m->n; i++)
        running += m->info[i].state == ASYNCIO_TASK_RUNNING;
    assert_int_equal(running, 1); /* the main task, which took the snapshot */

    /* Text form. */
    assert_non_null(strstr(m->text, "asyncio runtime dump: flavor="));
    assert_non_null(strstr(m->text, " tasks=3 tracking=on"));
    assert_int_equal(count_lines_starting(m->text, "task "), 3);
    assert_int_equal(count_lines_starting(m->text, "worker "), asyncio_runtime_num_workers(rt));
    char line[512];
    assert_true(find_line(m->text, "name=\"reader\"", line, sizeof line));
    assert_non_null(strstr(line, "state=idle"));
    assert_non_null(strstr(line, "polls=1 "));
    assert_non_null(strstr(line, "waiting_on=\"read fd 17\""));
    assert_true(find_line(m->text, "waiting_on=\"never_ready(a) @ ", line, sizeof line));
    assert_non_null(strstr(line, "name=\"unnamed\""));
    assert_true(find_line(m->text, "state=running", line, sizeof line));
    assert_non_null(strstr(m->text, "end of dump (3 tasks)"));

    asyncio_join_handle_drop(m->jh[0]);
    asyncio_join_handle_drop(m->jh[1]);
    free(m);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_untracked_runtime_dump_lists_tasks_without_times(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    dump_main *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->rt = rt;
    assert_ok(asyncio_runtime_block_on(rt, &dump_main_vt, &(ref){m}, NULL));
    assert_int_equal(m->n, 3);
    const asyncio_task_info *r = info_by_id(m->info, m->n, asyncio_join_handle_id(m->jh[0]));
    assert_non_null(r);
    assert_false(r->tracked);
    assert_string_equal(r->name, "reader");
    assert_int_equal(r->state, ASYNCIO_TASK_IDLE);
    assert_int_equal(r->polls, 0);
    assert_string_equal(r->waiting_on, ""); /* the label is a no-op without tracking */
    assert_non_null(strstr(m->text, "tracking=off"));
    /* untracked task lines carry no per-task counters (the worker lines do: polls=N) */
    assert_int_equal(count_lines_starting_with(m->text, "task ", "polls="), 0);
    assert_int_equal(count_lines_starting(m->text, "task "), 3);
    asyncio_join_handle_drop(m->jh[0]);
    asyncio_join_handle_drop(m->jh[1]);
    free(m);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_dump_and_prometheus_reject_bad_arguments_and_report_write_errors(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    assert_err(asyncio_runtime_dump(NULL, stdout), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_dump(rt, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_metrics_write_prometheus(NULL, stdout), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_metrics_write_prometheus(rt, NULL), ASYNCIO_EINVAL);
    FILE *ro = fopen("/dev/null", "r"); /* every write fails */
    assert_non_null(ro);
    assert_err(asyncio_runtime_dump(rt, ro), ASYNCIO_EIO);
    clearerr(ro);
    assert_err(asyncio_runtime_metrics_write_prometheus(rt, ro), ASYNCIO_EIO);
    fclose(ro);
    assert_string_equal(asyncio_task_run_state_name(ASYNCIO_TASK_NOTIFIED), "notified");
    assert_string_equal(asyncio_task_run_state_name((asyncio_task_run_state)99), "?");
    asyncio_task_set_waiting_on("outside any task", 1); /* a no-op */
    assert_ok(asyncio_runtime_free(rt));
}

/* ------------------------------------------------------------------------ */
/* Stall detector                                                            */

typedef struct stall_log {
    pthread_mutex_t lock;
    int reports;
    int while_running;
    asyncio_stall_info last;
    _Atomic int *blocking;
} stall_log;

static void on_stall(void *arg, const asyncio_stall_info *info)
{
    stall_log *l = arg;
    pthread_mutex_lock(&l->lock);
    if (strcmp(info->task_name, "blocker") == 0) {
        l->reports++;
        l->while_running += atomic_load(l->blocking);
        l->last = *info;
    }
    pthread_mutex_unlock(&l->lock);
}

typedef struct blocker {
    _Atomic int *blocking;
} blocker;

static int blocker_poll(void *state, asyncio_context *cx, void *output)
{
    blocker *b = state;
    (void)cx;
    (void)output;
    atomic_store(b->blocking, 1);
    usleep(300 * 1000); /* the classic bug: a blocking call inside a poll */
    atomic_store(b->blocking, 0);
    return 0;
}

static const asyncio_task_vtable blocker_vt = {.poll = blocker_poll, .state_size = sizeof(blocker)};

typedef struct spawn_join {
    asyncio_runtime *rt;
    const asyncio_task_vtable *vt;
    const void *init;
    const char *name;
    asyncio_join_handle *jh;
} spawn_join;

static int spawn_join_poll(void *state, asyncio_context *cx, void *output)
{
    spawn_join *s = state;
    (void)output;
    if (s->jh == NULL) {
        asyncio_spawn_options o = {.name = s->name};
        int rc = asyncio_spawn_with(s->rt, s->vt, s->init, &o, &s->jh);
        if (rc < 0)
            return rc;
    }
    int rc = asyncio_join_handle_poll(s->jh, cx, NULL);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_join_handle_drop(s->jh);
    return rc;
}

static const asyncio_task_vtable spawn_join_vt = {.poll = spawn_join_poll,
                                                  .state_size = sizeof(spawn_join)};

static void test_stall_detector_reports_a_300ms_blocking_poll_by_name_while_it_runs(void **state)
{
    (void)state;
    _Atomic int blocking = 0;
    stall_log log = {.blocking = &blocking};
    pthread_mutex_init(&log.lock, NULL);
    asyncio_runtime_options o = {
        .stall_threshold_ms = 100, .on_stall = on_stall, .on_stall_arg = &log};
    asyncio_runtime *rt = support_runtime_new(&o);
    blocker b = {&blocking};
    spawn_join s = {rt, &blocker_vt, &b, "blocker", NULL};
    assert_ok(asyncio_runtime_block_on(rt, &spawn_join_vt, &s, NULL));
    assert_ok(asyncio_runtime_free(rt));    /* joins the observer: no report can follow */
    assert_int_equal(log.reports, 1);       /* once per poll */
    assert_int_equal(log.while_running, 1); /* during the poll, not after it */
    assert_true(log.last.poll_ms >= 100);
    assert_true(log.last.task_id != 0);
    assert_true(log.last.worker < 4);
    pthread_mutex_destroy(&log.lock);
}

static void test_stall_detector_default_prints_one_line_with_id_name_and_duration(void **state)
{
    (void)state;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    _Atomic int blocking = 0;
    asyncio_runtime_options o = {.stall_threshold_ms = 100};
    asyncio_runtime *rt = support_runtime_new(&o);
    blocker b = {&blocking};
    spawn_join s = {rt, &blocker_vt, &b, "sleepy-handler", NULL};
    int rc = asyncio_runtime_block_on(rt, &spawn_join_vt, &s, NULL);
    int frc = asyncio_runtime_free(rt);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    assert_ok(rc);
    assert_ok(frc);
    char text[1024] = {0};
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    fclose(tmp);
    text[n] = '\0';
    assert_int_equal(count_lines_starting(text, "asyncio: stall: task "), 1);
    assert_non_null(strstr(text, "\"sleepy-handler\" has been polling for "));
    assert_non_null(strstr(text, " ms on worker "));
}

/* Blocks its first poll for 300 ms, then waits forever (stays listed). */
typedef struct block_once {
    _Atomic int *done;
    bool blocked;
} block_once;

static int block_once_poll(void *state, asyncio_context *cx, void *output)
{
    block_once *b = state;
    (void)cx;
    (void)output;
    if (!b->blocked) {
        b->blocked = true;
        usleep(300 * 1000);
        atomic_store(b->done, 1);
    }
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable block_once_vt = {.poll = block_once_poll,
                                                  .state_size = sizeof(block_once)};

static int tick_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    return 0;
}

static const asyncio_task_vtable tick_vt = {.poll = tick_poll};

static void test_tracked_task_records_its_long_poll_as_longest_poll(void **state)
{
    (void)state;
    _Atomic int done = 0;
    asyncio_runtime_options o = {.track_tasks = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    block_once b = {&done, false};
    asyncio_join_handle *jh;
    asyncio_spawn_options so = {.name = "slow"};
    assert_ok(asyncio_spawn_with(rt, &block_once_vt, &b, &so, &jh));
    /* Current-thread: the slow task runs inside the first block_on; multi-thread: on a worker. */
    while (!atomic_load(&done)) {
        assert_ok(asyncio_runtime_block_on(rt, &tick_vt, NULL, NULL));
        usleep(1000);
    }
    asyncio_task_info info[4];
    size_t n = 0;
    assert_ok(asyncio_runtime_tasks(rt, info, 4, &n));
    const asyncio_task_info *t = info_by_id(info, n, asyncio_join_handle_id(jh));
    assert_non_null(t);
    assert_int_equal(t->polls, 1);
    /* Sampled every 10 ms while it ran 300 ms: far above 0 (never compared with a clock). */
    assert_true(t->longest_poll_us > 0);
    assert_true(t->longest_poll_us <= t->age_us);
    asyncio_join_handle_drop(jh);
    assert_ok(asyncio_runtime_free(rt));
}

/* ------------------------------------------------------------------------ */
/* A dump from another thread while tasks run (TSan stress), and 10,000 tasks */

typedef struct churn {
    int left;
} churn;

static int churn_poll(void *state, asyncio_context *cx, void *output)
{
    churn *c = state;
    (void)output;
    asyncio_task_set_waiting_on("churn", c->left);
    if (c->left-- > 0) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static const asyncio_task_vtable churn_vt = {.poll = churn_poll, .state_size = sizeof(churn)};

typedef struct serve_main {
    asyncio_runtime *rt;
    _Atomic int *stop;
    int idle_tasks; /* spawned once, pending forever */
    int churners;   /* kept alive: each finished one is replaced */
    _Atomic int *idle_polled;
    asyncio_join_handle **jh;
    int spawned;
    unsigned long served; /* polls of this task: the runtime keeps serving */
} serve_main;

static int serve_main_poll(void *state, asyncio_context *cx, void *output)
{
    serve_main *m = ((ref *)state)->p;
    (void)output;
    if (m->spawned == 0) {
        for (int i = 0; i < m->idle_tasks; i++) {
            waiter w = {m->idle_polled, "idle", i};
            asyncio_spawn_options o = {.name = "idle"};
            int rc = asyncio_spawn_with(m->rt, &waiter_vt, &w, &o, NULL);
            if (rc < 0)
                return rc;
        }
        m->spawned = 1;
    }
    m->served++;
    if (m->churners > 0 && m->served % 4 == 0) {
        for (int i = 0; i < m->churners; i++) {
            churn c = {(int)(m->served % 7)};
            asyncio_spawn_options o = {.name = "churn"};
            int rc = asyncio_spawn_with(m->rt, &churn_vt, &c, &o, NULL);
            if (rc < 0)
                return rc;
        }
    }
    if (atomic_load(m->stop))
        return 0;
    asyncio_waker_wake_by_ref(cx->waker);
    return ASYNCIO_PENDING;
}

static const asyncio_task_vtable serve_main_vt = {.poll = serve_main_poll,
                                                  .state_size = sizeof(ref)};

typedef struct dumper {
    asyncio_runtime *rt;
    _Atomic int *stop;
    _Atomic int *idle_polled;
    int want_polled;
    int rounds;
    int failures;
    int inconsistent;
    size_t max_tasks;
    double first_ms, first_cpu_ms;
} dumper;

/* Header "tasks=N" equals the number of task lines and the footer's count. */
static bool dump_consistent(const char *text, size_t *tasks)
{
    const char *h = strstr(text, " tasks=");
    if (h == NULL)
        return false;
    size_t n = strtoul(h + 7, NULL, 10);
    char footer[64];
    snprintf(footer, sizeof footer, "end of dump (%zu tasks)", n);
    *tasks = n;
    return count_lines_starting(text, "task ") == n && strstr(text, footer) != NULL;
}

static double now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *dumper_main(void *arg)
{
    dumper *d = arg;
    while (atomic_load(d->idle_polled) < d->want_polled)
        usleep(1000);
    for (int i = 0; i < d->rounds; i++) {
        memout mo;
        memout_open(&mo);
        double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);
        int rc = asyncio_runtime_dump(d->rt, mo.f);
        double t1 = now_ms(CLOCK_MONOTONIC), c1 = now_ms(CLOCK_THREAD_CPUTIME_ID);
        if (i == 0) {
            d->first_ms = t1 - t0;
            d->first_cpu_ms = c1 - c0;
        }
        if (rc == 0)
            rc = asyncio_runtime_metrics_write_prometheus(d->rt, mo.f);
        memout_close(&mo);
        size_t n = 0;
        if (rc < 0)
            d->failures++;
        else if (!dump_consistent(mo.buf, &n))
            d->inconsistent++;
        if (n > d->max_tasks)
            d->max_tasks = n;
        free(mo.buf);
    }
    atomic_store(d->stop, 1);
    return NULL;
}

static void run_serve_and_dump(int idle_tasks, int churners, int rounds, dumper *d, serve_main *m)
{
    _Atomic int stop = 0, idle_polled = 0;
    asyncio_runtime_options o = {
        .track_tasks = true, .stall_threshold_ms = 1000, .poll_time_histogram = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    *m = (serve_main){rt, &stop, idle_tasks, churners, &idle_polled, NULL, 0, 0};
    *d = (dumper){rt, &stop, &idle_polled, idle_tasks, rounds, 0, 0, 0, 0.0, 0.0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, dumper_main, d), 0);
    assert_ok(asyncio_runtime_block_on(rt, &serve_main_vt, &(ref){m}, NULL));
    assert_int_equal(pthread_join(th, NULL), 0);
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_dump_from_another_thread_while_tasks_run_is_consistent(void **state)
{
    (void)state;
    dumper d;
    serve_main m;
    run_serve_and_dump(50, 8, (int)support_scale(200), &d, &m);
    assert_int_equal(d.failures, 0);
    assert_int_equal(d.inconsistent, 0);
    assert_true(d.max_tasks >= 51); /* the idle tasks and the main one, at least */
}

static void test_dump_of_10000_tasks_completes_while_the_runtime_keeps_serving(void **state)
{
    (void)state;
    dumper d;
    serve_main m;
    int n = (int)support_scale(10000);
    run_serve_and_dump(n, 0, 3, &d, &m);
    assert_int_equal(d.failures, 0);
    assert_int_equal(d.inconsistent, 0);
    assert_true(d.max_tasks >= (size_t)n + 1);
    assert_true(m.served > 1); /* the main task kept being polled while dumps ran */
    /* Reported, never asserted (no timed assertions): docs/observability.md quotes it. */
    printf("dump of %d tasks: %.2f ms wall, %.2f ms CPU of the dumping thread\n", n + 1, d.first_ms,
           d.first_cpu_ms);
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */

typedef struct metrics_main {
    asyncio_runtime *rt;
    _Atomic int polled;
    int step;
    asyncio_sleep sleep;
    asyncio_worker_metrics during;
    asyncio_join_handle *jh[3];
} metrics_main;

static int metrics_main_poll(void *state, asyncio_context *cx, void *output)
{
    metrics_main *m = ((ref *)state)->p;
    (void)output;
    int rc;
    switch (m->step) {
    case 0:
        for (int i = 0; i < 3; i++) {
            waiter w = {&m->polled, "x", ASYNCIO_WAITING_NO_ARG};
            if ((rc = asyncio_spawn(m->rt, &waiter_vt, &w, &m->jh[i])) < 0)
                return rc;
        }
        asyncio_sleep_init(&m->sleep, 5);
        m->step = 1;
        /* fallthrough */
    case 1:
        rc = asyncio_sleep_poll(&m->sleep, cx);
        if (rc == ASYNCIO_PENDING) {
            if (asyncio_runtime_metrics(m->rt, ASYNCIO_ALL_WORKERS, &m->during) < 0)
                return ASYNCIO_EIO;
            return rc;
        }
        asyncio_sleep_drop(&m->sleep);
        for (int i = 0; i < 3; i++) {
            asyncio_join_handle_abort(m->jh[i]);
            asyncio_join_handle_drop(m->jh[i]);
        }
        return rc;
    }
    return ASYNCIO_EINVAL;
}

static const asyncio_task_vtable metrics_main_vt = {.poll = metrics_main_poll,
                                                    .state_size = sizeof(ref)};

static void test_metrics_count_alive_tasks_timers_histogram_and_backend(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.poll_time_histogram = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    metrics_main *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->rt = rt;
    assert_ok(asyncio_runtime_block_on(rt, &metrics_main_vt, &(ref){m}, NULL));
    /* While the sleep was registered: 3 waiters + the main task alive, one timer. */
    assert_int_equal(m->during.alive_tasks, 4);
    assert_int_equal(m->during.timers_active, 1);
    asyncio_worker_metrics after;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &after));
    assert_true(after.timers_fired >= 1);
    assert_int_equal(after.timers_active, 0);
    uint64_t hist = 0;
    for (unsigned b = 0; b < ASYNCIO_POLL_HISTOGRAM_BUCKETS; b++)
        hist += after.poll_time_histogram[b];
    /* Every poll timed; a worker may still be between its histogram and its poll count. */
    assert_true(hist >= after.polls && hist <= after.polls + asyncio_runtime_num_workers(rt));
    assert_true(after.poll_time_ns > 0);
    const char *want = getenv("ASYNCIO_BACKEND");
    assert_non_null(after.backend);
    if (want != NULL)
        assert_string_equal(after.backend, want);
    free(m);
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &after));
    assert_int_equal(after.alive_tasks, 0);
    assert_ok(asyncio_runtime_free(rt));
}

/* A blocking job that waits until released, and one queued behind it. */
static _Atomic int g_release;

static int slow_job(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_release))
        usleep(1000);
    return 0;
}

static void test_metrics_report_blocking_queue_depth_and_threads(void **state)
{
    (void)state;
    atomic_store(&g_release, 0);
    asyncio_runtime_options o = {.blocking_max_threads = 1};
    asyncio_runtime *rt = support_runtime_new(&o);
    asyncio_blocking_handle *h[3];
    for (int i = 0; i < 3; i++)
        assert_ok(asyncio_spawn_blocking(rt, slow_job, NULL, &h[i]));
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, 0, &m));
    assert_int_equal(m.blocking_threads, 1);
    assert_true(m.blocking_queue_depth >= 2); /* the thread took one, or not yet */
    atomic_store(&g_release, 1);
    for (int i = 0; i < 3; i++)
        asyncio_blocking_handle_drop(h[i]);
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_metrics(rt, 0, &m));
    assert_int_equal(m.blocking_queue_depth, 0);
    assert_ok(asyncio_runtime_free(rt));
}

/* One task spawns more than a local queue holds: mt1 must overflow into the global queue. */
typedef struct flood {
    asyncio_runtime *rt;
    int n;
} flood;

static int nop_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    return 0;
}

static const asyncio_task_vtable nop_vt = {.poll = nop_poll};

static int flood_poll(void *state, asyncio_context *cx, void *output)
{
    flood *f = state;
    (void)cx;
    (void)output;
    for (int i = 0; i < f->n; i++) {
        int rc = asyncio_spawn(f->rt, &nop_vt, NULL, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const asyncio_task_vtable flood_vt = {.poll = flood_poll, .state_size = sizeof(flood)};

static void test_metrics_count_local_queue_overflows(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    flood f = {rt, 1000};
    assert_ok(asyncio_runtime_block_on(rt, &flood_vt, &f, NULL));
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m));
    if (support_runtime_kind_get() == SUPPORT_RT_MT1)
        assert_true(m.overflows >=
                    1); /* 1,000 spawns on one worker: its 256-slot ring overflowed */
    else if (!support_runtime_is_mt())
        assert_int_equal(m.overflows, 0); /* the current-thread queue is unbounded */
    assert_ok(asyncio_runtime_free(rt));
}

static void test_prometheus_output_has_every_series_and_the_histogram(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.poll_time_histogram = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    flood f = {rt, 10};
    assert_ok(asyncio_runtime_block_on(rt, &flood_vt, &f, NULL));
    asyncio_runtime_shutdown(rt); /* the spawned tasks are done or cancelled: none alive */
    memout mo;
    memout_open(&mo);
    assert_ok(asyncio_runtime_metrics_write_prometheus(rt, mo.f));
    memout_close(&mo);
    const char *t = mo.buf;
    assert_non_null(strstr(t, "# TYPE asyncio_worker_polls_total counter\n"));
    assert_non_null(strstr(t, "asyncio_worker_polls_total{worker=\"0\"} "));
    assert_non_null(strstr(t, "# TYPE asyncio_tasks_alive gauge\n"));
    assert_non_null(strstr(t, "\nasyncio_tasks_alive 0\n"));
    assert_non_null(strstr(t, "\nasyncio_worker_overflows_total{worker=\"0\"} "));
    assert_non_null(strstr(t, "\nasyncio_blocking_queue_depth 0\n"));
    assert_non_null(strstr(t, "\nasyncio_timers_active 0\n"));
    assert_non_null(strstr(t, "\nasyncio_io_registrations "));
    char backend[96];
    asyncio_worker_metrics m;
    assert_ok(asyncio_runtime_metrics(rt, 0, &m));
    snprintf(backend, sizeof backend, "\nasyncio_backend_info{backend=\"%s\"} 1\n", m.backend);
    assert_non_null(strstr(t, backend));
    assert_non_null(strstr(t, "# TYPE asyncio_poll_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "asyncio_poll_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"} "));
    assert_non_null(strstr(t, "asyncio_poll_duration_seconds_count{worker=\"0\"} "));
    /* Every line is a comment or `name{labels} value`. */
    for (const char *p = t; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(*p == '#' ||
                    (strncmp(p, "asyncio_", 8) == 0 && memchr(p, ' ', (size_t)(nl - p))));
        p = nl + 1;
    }
    free(mo.buf);
    assert_ok(asyncio_runtime_free(rt));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_dump_lists_every_task_with_state_name_worker_polls_and_label),
        support_test(test_untracked_runtime_dump_lists_tasks_without_times),
        support_test(test_dump_and_prometheus_reject_bad_arguments_and_report_write_errors),
        support_test(test_stall_detector_reports_a_300ms_blocking_poll_by_name_while_it_runs),
        support_test(test_stall_detector_default_prints_one_line_with_id_name_and_duration),
        support_test(test_tracked_task_records_its_long_poll_as_longest_poll),
        support_test(test_dump_from_another_thread_while_tasks_run_is_consistent),
        support_test(test_dump_of_10000_tasks_completes_while_the_runtime_keeps_serving),
        support_test(test_metrics_count_alive_tasks_timers_histogram_and_backend),
        support_test(test_metrics_report_blocking_queue_depth_and_threads),
        support_test(test_metrics_count_local_queue_overflows),
        support_test(test_prometheus_output_has_every_series_and_the_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
