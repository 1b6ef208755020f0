/*
 * Seeing inside a running runtime (docs/observability.md): the task
 * snapshot and dump, the observer thread (coarse clock + stall detector +
 * long-poll tracking) and the Prometheus writer. The records it reads are
 * task/obs.h's (which also gives the sampling argument); the owned lists
 * it walks belong to the flavours (asyncio__ct_visit / asyncio__mt_visit,
 * each under the list's own lock, which keeps every task on it alive).
 *
 * The observer thread exists only with track_tasks or the stall detector.
 * Every tick it stores the coarse clock (ms since the runtime started) into
 * the runtime and into every worker's record, and samples each worker: a
 * poll seen in two samples is looked up on the owned lists, its task's
 * longest poll raised (track_tasks) and, once it has run for the threshold,
 * reported once. Lifecycle: started by the flavour's new() once the
 * runtime is complete, stopped (joined) first thing in shutdown, so it
 * never sees a runtime being torn down.
 *
 * Thread-safety: every public function here is safe from any thread until
 * asyncio_runtime_free().
 */
#include <inttypes.h>
#include <string.h>

#include "internal.h"
#include "sched/runtime_int.h"
#include "util/alloc.h"

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */

int asyncio__obs_init(asyncio_runtime *rt, uint32_t nworkers, const asyncio_runtime_options *opts)
{
    asyncio__obs *o = &rt->obs;
    memset(o, 0, sizeof *o);
    o->clock.origin_ns = asyncio__clock_now_ns();
    atomic_init(&o->clock.now_ms, 0);
    if (opts == NULL)
        return 0;
    o->track = opts->track_tasks;
    o->hist = opts->poll_time_histogram;
    o->threshold_ms = opts->stall_threshold_ms;
    o->on_stall = opts->on_stall;
    o->on_stall_arg = opts->on_stall_arg;
    o->on = o->track || o->threshold_ms > 0 || o->hist;
    if (!o->on)
        return 0;
    o->tick_ms = ASYNCIO_OBSERVER_TICK_MS;
    if (o->threshold_ms > 0 && o->threshold_ms / 4 < o->tick_ms)
        o->tick_ms = o->threshold_ms / 4 > 0 ? o->threshold_ms / 4 : 1;
    o->workers = asyncio__calloc(nworkers, sizeof *o->workers);
    if (o->workers == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&o->lock);
    if (rc == 0 && (rc = asyncio__cond_init(&o->cond)) < 0)
        asyncio__mutex_destroy(&o->lock);
    if (rc < 0) {
        asyncio__free(o->workers);
        o->workers = NULL;
        return rc;
    }
    o->nworkers = nworkers;
    for (uint32_t i = 0; i < nworkers; i++) {
        asyncio__worker_obs *wo = &o->workers[i];
        wo->index = i;
        wo->track = o->track;
        wo->hist_on = o->hist;
    }
    if (o->track)
        rt->sched.track_clock = &o->clock;
    return 0;
}

asyncio__worker_obs *asyncio__obs_worker(asyncio_runtime *rt, uint32_t i,
                                         const _Atomic uint64_t *polls)
{
    if (!rt->obs.on)
        return NULL;
    rt->obs.workers[i].polls = polls;
    return &rt->obs.workers[i];
}

static bool needs_thread(const asyncio__obs *o)
{
    return o->threshold_ms > 0 || o->track; /* the coarse clock and the samples */
}

static void *observer_main(void *arg);

int asyncio__obs_start(asyncio_runtime *rt)
{
    asyncio__obs *o = &rt->obs;
    if (!o->on || !needs_thread(o))
        return 0;
    int rc = asyncio__thread_spawn(&o->thread, observer_main, rt);
    if (rc < 0)
        return rc;
    o->thread_started = true;
    return 0;
}

void asyncio__obs_stop(asyncio_runtime *rt)
{
    asyncio__obs *o = &rt->obs;
    if (!o->thread_started)
        return;
    asyncio__mutex_lock(&o->lock);
    o->stop = true;
    asyncio__cond_signal(&o->cond);
    asyncio__mutex_unlock(&o->lock);
    asyncio__thread_join(&o->thread);
    o->thread_started = false;
}

void asyncio__obs_close(asyncio_runtime *rt)
{
    asyncio__obs *o = &rt->obs;
    asyncio__obs_stop(rt);
    if (o->workers == NULL)
        return;
    asyncio__cond_destroy(&o->cond);
    asyncio__mutex_destroy(&o->lock);
    asyncio__free(o->workers);
    o->workers = NULL;
}

/* The coarse clock's time now, read from the monotonic clock (not the stored tick). */
static uint32_t obs_now_ms(const asyncio_runtime *rt)
{
    return (uint32_t)((asyncio__clock_now_ns() - rt->obs.clock.origin_ns) / 1000000u);
}

/* ------------------------------------------------------------------------ */
/* Walking the owned tasks                                                   */

static void visit(const asyncio_runtime *rt, asyncio__task_visit_fn fn, void *arg)
{
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD)
        asyncio__ct_visit(rt, fn, arg);
    else
        asyncio__mt_visit(rt, fn, arg);
}

typedef struct collect {
    asyncio_task_info *out;
    size_t cap, n;
    uint32_t now_ms;
} collect;

static void collect_one(void *arg, const asyncio__task *t)
{
    collect *c = arg;
    if (c->n < c->cap)
        asyncio__task_info(t, c->now_ms, &c->out[c->n]);
    c->n++;
}

static void count_one(void *arg, const asyncio__task *t)
{
    ASYNCIO_UNUSED(t);
    (*(size_t *)arg)++;
}

size_t asyncio__runtime_alive(const asyncio_runtime *rt)
{
    size_t n = 0;
    visit(rt, count_one, &n);
    return n;
}

int asyncio_runtime_tasks(const asyncio_runtime *rt, asyncio_task_info *out, size_t cap,
                          size_t *n_out)
{
    if (rt == NULL || n_out == NULL || (out == NULL && cap > 0))
        return ASYNCIO_EINVAL;
    collect c = {out, cap, 0, obs_now_ms(rt)};
    visit(rt, collect_one, &c);
    *n_out = c.n;
    return 0;
}

const char *asyncio_task_run_state_name(asyncio_task_run_state s)
{
    switch (s) {
    case ASYNCIO_TASK_IDLE:
        return "idle";
    case ASYNCIO_TASK_SCHEDULED:
        return "scheduled";
    case ASYNCIO_TASK_RUNNING:
        return "running";
    case ASYNCIO_TASK_NOTIFIED:
        return "notified";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* The observer thread                                                       */

/*
 * A sampled long poll: looked up on the owned lists. Under the list's lock
 * the task is alive; if the worker still polls it with the same count, the
 * sample still holds, so the record may be updated and the report made.
 */
typedef struct find {
    const asyncio__task *want;
    const asyncio__worker_obs *wo;
    uint64_t polls;
    uint32_t now_ms, poll_ms;
    bool found;
    asyncio_task_info info;
} find;

static void find_one(void *arg, const asyncio__task *t)
{
    find *f = arg;
    if (t != f->want) /* compared, never dereferenced unless it is on the list */
        return;
    asyncio__worker_obs *wo = (asyncio__worker_obs *)f->wo;
    if (atomic_load_explicit(&wo->task, memory_order_acquire) != t ||
        atomic_load_explicit(wo->polls, memory_order_relaxed) != f->polls)
        return; /* that poll ended meanwhile */
    if (asyncio__task_tracked(t)) {
        asyncio__task_obs *o = asyncio__task_obs_of(t);
        if (atomic_load_explicit(&o->longest_ms, memory_order_relaxed) < f->poll_ms)
            atomic_store_explicit(&o->longest_ms, f->poll_ms, memory_order_relaxed);
    }
    asyncio__task_info(t, f->now_ms, &f->info);
    f->found = true;
}

static void default_on_stall(void *arg, const asyncio_stall_info *info)
{
    ASYNCIO_UNUSED(arg);
    fprintf(stderr,
            "asyncio: stall: task %" PRIu64 " \"%s\" has been polling for %" PRIu64
            " ms on worker %" PRIu32 " (a blocking call in async code?)\n",
            info->task_id, info->task_name[0] != '\0' ? info->task_name : "unnamed", info->poll_ms,
            info->worker);
}

/*
 * One worker's sample (task/obs.h, "The stall detector samples"): a new poll
 * is remembered; one that spans samples is looked up, its task's longest
 * poll raised (track_tasks) and, past the threshold, reported once.
 */
static void check_worker(asyncio_runtime *rt, asyncio__worker_obs *wo, uint32_t now_ms)
{
    asyncio__obs *o = &rt->obs;
    uint64_t polls = atomic_load_explicit(wo->polls, memory_order_relaxed);
    asyncio__task *t = atomic_load_explicit(&wo->task, memory_order_acquire);
    if (t == NULL || t != atomic_load_explicit(&wo->seen_task, memory_order_relaxed) ||
        polls != atomic_load_explicit(&wo->seen_polls, memory_order_relaxed)) {
        atomic_store_explicit(&wo->seen_task, t, memory_order_relaxed);
        atomic_store_explicit(&wo->seen_polls, polls, memory_order_relaxed);
        atomic_store_explicit(&wo->seen_since_ms, now_ms, memory_order_relaxed);
        wo->reported = false;
        return;
    }
    uint32_t ms = now_ms - atomic_load_explicit(&wo->seen_since_ms, memory_order_relaxed);
    bool report = o->threshold_ms > 0 && !wo->reported && ms >= o->threshold_ms;
    if (ms == 0 || (!report && !o->track))
        return;
    find f = {t, wo, polls, now_ms, ms, false, {0}};
    visit(rt, find_one, &f);
    if (!f.found || !report)
        return;
    wo->reported = true;
    asyncio_stall_info si = {.task_id = f.info.id, .worker = wo->index, .poll_ms = ms};
    memcpy(si.task_name, f.info.name, sizeof si.task_name);
    if (o->on_stall != NULL)
        o->on_stall(o->on_stall_arg, &si);
    else
        default_on_stall(NULL, &si);
}

static void *observer_main(void *arg)
{
    asyncio_runtime *rt = arg;
    asyncio__obs *o = &rt->obs;
    asyncio__mutex_lock(&o->lock);
    while (!o->stop) {
        asyncio__mutex_unlock(&o->lock);
        uint32_t now = obs_now_ms(rt);
        atomic_store_explicit(&o->clock.now_ms, now, memory_order_relaxed);
        for (uint32_t i = 0; i < o->nworkers; i++) {
            atomic_store_explicit(&o->workers[i].now_ms, now, memory_order_relaxed);
            check_worker(rt, &o->workers[i], now);
        }
        asyncio__mutex_lock(&o->lock);
        if (!o->stop)
            asyncio__cond_timedwait(&o->cond, &o->lock, o->tick_ms);
    }
    asyncio__mutex_unlock(&o->lock);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                      */

/* The live tasks into a new array (*n of them); NULL with *n = 0 when none or out of memory. */
static asyncio_task_info *snapshot(const asyncio_runtime *rt, size_t *n, int *err)
{
    size_t cap = 0, live = 0;
    asyncio_task_info *v = NULL;
    *err = 0;
    for (;;) {
        if (asyncio_runtime_tasks(rt, v, cap, &live) < 0 || live <= cap) {
            *n = live < cap ? live : cap;
            return v;
        }
        asyncio__free(v);
        cap = live + live / 4 + 16; /* room for the spawns racing with us */
        v = asyncio__malloc(cap * sizeof *v);
        if (v == NULL) {
            *err = ASYNCIO_ENOMEM;
            *n = 0;
            return NULL;
        }
    }
}

static void dump_worker(FILE *out, const asyncio_runtime *rt, uint32_t i, uint32_t now_ms)
{
    asyncio_worker_metrics m;
    (void)asyncio_runtime_metrics(rt, i, &m);
    fprintf(out, "worker %" PRIu32 ": polls=%" PRIu64 " local_queue=%" PRIu64 " steals=%" PRIu64, i,
            m.polls, m.local_queue_depth, m.steals);
    const asyncio__obs *o = &rt->obs;
    if (o->on) {
        asyncio__worker_obs *wo = &o->workers[i];
        asyncio__task *t = atomic_load_explicit(&wo->task, memory_order_acquire);
        if (t == NULL)
            fprintf(out, " polling=no");
        else if (t == atomic_load_explicit(&wo->seen_task, memory_order_relaxed))
            fprintf(out, " polling_for_ms=%" PRIu32, /* as sampled: late by up to a tick */
                    now_ms - atomic_load_explicit(&wo->seen_since_ms, memory_order_relaxed));
        else
            fprintf(out, " polling=yes");
    }
    fputc('\n', out);
}

static void dump_task(FILE *out, const asyncio_task_info *t)
{
    fprintf(out, "task %" PRIu64 " name=\"%s\" state=%s worker=%" PRId32, t->id,
            t->name[0] != '\0' ? t->name : "unnamed", asyncio_task_run_state_name(t->state),
            t->worker);
    if (t->tracked)
        fprintf(out,
                " polls=%" PRIu64 " age_ms=%" PRIu64 " since_poll_ms=%" PRIu64
                " longest_poll_us=%" PRIu64 " waiting_on=\"%s\"",
                t->polls, t->age_us / 1000u, t->since_poll_us / 1000u, t->longest_poll_us,
                t->waiting_on);
    fputc('\n', out);
}

int asyncio_runtime_dump(const asyncio_runtime *rt, FILE *out)
{
    if (rt == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    int err;
    size_t n;
    asyncio_task_info *v = snapshot(rt, &n, &err);
    if (err < 0)
        return err;
    uint32_t now = obs_now_ms(rt);
    uint32_t workers = asyncio_runtime_num_workers(rt);
    fprintf(out,
            "asyncio runtime dump: flavor=%s workers=%" PRIu32 " backend=%s tasks=%zu"
            " tracking=%s stall_threshold_ms=%" PRIu32 "\n",
            rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD ? "current_thread" : "multi_thread",
            workers, asyncio_poller_backend(rt->driver.poller), n, rt->obs.track ? "on" : "off",
            rt->obs.threshold_ms);
    for (uint32_t i = 0; i < workers; i++)
        dump_worker(out, rt, i, now);
    for (size_t i = 0; i < n; i++)
        dump_task(out, &v[i]);
    fprintf(out, "end of dump (%zu tasks)\n", n);
    asyncio__free(v);
    if (fflush(out) != 0 || ferror(out))
        return ASYNCIO_EIO;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */

void asyncio__obs_metrics(const asyncio_runtime *rt, uint32_t i, asyncio_worker_metrics *out)
{
    const asyncio__obs *o = &rt->obs;
    if (!o->on || !o->hist)
        return;
    asyncio__worker_obs *wo = &o->workers[i];
    for (unsigned b = 0; b < ASYNCIO_POLL_HISTOGRAM_BUCKETS; b++)
        out->poll_time_histogram[b] = atomic_load_explicit(&wo->hist[b], memory_order_relaxed);
    out->poll_time_ns = atomic_load_explicit(&wo->hist_sum, memory_order_relaxed);
}

/* One per-worker counter series. */
typedef struct series {
    const char *name, *type, *help;
    size_t off; /* offsetof(asyncio_worker_metrics, field) */
} series;

#define S(n, t, f, h)                                \
    {                                                \
        n, t, h, offsetof(asyncio_worker_metrics, f) \
    }
static const series g_worker_series[] = {
    S("asyncio_worker_polls_total", "counter", polls, "Task polls."),
    S("asyncio_worker_tasks_spawned_total", "counter", tasks_spawned, "Spawns made on the worker."),
    S("asyncio_worker_steals_total", "counter", steals, "Successful steal operations."),
    S("asyncio_worker_tasks_stolen_total", "counter", tasks_stolen, "Tasks taken by steals."),
    S("asyncio_worker_overflows_total", "counter", overflows,
      "Times the full local queue moved entries to the global queue."),
    S("asyncio_worker_parks_total", "counter", parks, "Times the worker went idle."),
    S("asyncio_worker_unparks_total", "counter", unparks, "Times the worker woke from idle."),
    S("asyncio_worker_lifo_hits_total", "counter", lifo_hits, "Polls taken from the LIFO slot."),
    S("asyncio_worker_budget_yields_total", "counter", budget_yields,
      "Polls that used up the cooperative budget."),
    S("asyncio_worker_io_events_total", "counter", io_events,
      "I/O readiness events dispatched by the worker's driver turns."),
    S("asyncio_worker_local_queue_depth", "gauge", local_queue_depth, "Tasks in the local queue."),
};
static const series g_rt_series[] = {
    S("asyncio_tasks_alive", "gauge", alive_tasks, "Tasks spawned and not yet finished."),
    S("asyncio_global_queue_depth", "gauge", global_queue_depth, "Tasks in the global queue."),
    S("asyncio_remote_spawned_total", "counter", remote_spawned,
      "Spawns made outside the runtime's threads."),
    S("asyncio_blocking_threads", "gauge", blocking_threads, "Blocking-pool threads alive."),
    S("asyncio_blocking_queue_depth", "gauge", blocking_queue_depth,
      "Blocking jobs queued, not started."),
    S("asyncio_timers_active", "gauge", timers_active, "Timers registered."),
    S("asyncio_timers_fired_total", "counter", timers_fired, "Timers that came due."),
    S("asyncio_io_registrations", "gauge", io_registrations, "I/O sources registered."),
};
#undef S

static uint64_t field(const asyncio_worker_metrics *m, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)m + off, sizeof v);
    return v;
}

static void write_header(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_histogram(FILE *out, const asyncio_worker_metrics *per, uint32_t workers)
{
    write_header(out, "asyncio_poll_duration_seconds", "histogram", "Duration of task polls.");
    for (uint32_t w = 0; w < workers; w++) {
        uint64_t cum = 0;
        for (unsigned b = 0; b < ASYNCIO_POLL_HISTOGRAM_BUCKETS; b++) {
            cum += per[w].poll_time_histogram[b];
            if (b + 1 < ASYNCIO_POLL_HISTOGRAM_BUCKETS)
                fprintf(out,
                        "asyncio_poll_duration_seconds_bucket{worker=\"%" PRIu32
                        "\",le=\"%.9g\"} %" PRIu64 "\n",
                        w, (double)((uint64_t)1 << (10 + b)) / 1e9, cum);
            else
                fprintf(out,
                        "asyncio_poll_duration_seconds_bucket{worker=\"%" PRIu32
                        "\",le=\"+Inf\"} %" PRIu64 "\n",
                        w, cum);
        }
        fprintf(out, "asyncio_poll_duration_seconds_sum{worker=\"%" PRIu32 "\"} %.9g\n", w,
                (double)per[w].poll_time_ns / 1e9);
        fprintf(out, "asyncio_poll_duration_seconds_count{worker=\"%" PRIu32 "\"} %" PRIu64 "\n", w,
                cum);
    }
}

int asyncio_runtime_metrics_write_prometheus(const asyncio_runtime *rt, FILE *out)
{
    if (rt == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    uint32_t workers = asyncio_runtime_num_workers(rt);
    asyncio_worker_metrics *per = asyncio__malloc(workers * sizeof *per);
    if (per == NULL)
        return ASYNCIO_ENOMEM;
    for (uint32_t w = 0; w < workers; w++)
        (void)asyncio_runtime_metrics(rt, w, &per[w]);
    for (size_t s = 0; s < sizeof g_worker_series / sizeof *g_worker_series; s++) {
        const series *se = &g_worker_series[s];
        write_header(out, se->name, se->type, se->help);
        for (uint32_t w = 0; w < workers; w++)
            fprintf(out, "%s{worker=\"%" PRIu32 "\"} %" PRIu64 "\n", se->name, w,
                    field(&per[w], se->off));
    }
    for (size_t s = 0; s < sizeof g_rt_series / sizeof *g_rt_series; s++) {
        const series *se = &g_rt_series[s];
        write_header(out, se->name, se->type, se->help);
        fprintf(out, "%s %" PRIu64 "\n", se->name, field(&per[0], se->off));
    }
    write_header(out, "asyncio_workers", "gauge", "Worker threads.");
    fprintf(out, "asyncio_workers %" PRIu32 "\n", workers);
    write_header(out, "asyncio_backend_info", "gauge", "The poller backend the driver uses.");
    fprintf(out, "asyncio_backend_info{backend=\"%s\"} 1\n", per[0].backend);
    if (rt->obs.hist)
        write_histogram(out, per, workers);
    asyncio__free(per);
    if (fflush(out) != 0 || ferror(out))
        return ASYNCIO_EIO;
    return 0;
}
