/*
 * The public runtime API: argument checks, then one branch on the flavour
 * (see sched/runtime_int.h). Also the parts both flavours share: the
 * thread's current runtime, the driver and blocking pool set-up, metrics.
 */
#include "sched/runtime_int.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_EVENT_INTERVAL   61
#define DEFAULT_BLOCKING_THREADS 512
#define DEFAULT_KEEP_ALIVE_MS    10000

_Thread_local asyncio_runtime *asyncio__tl_runtime;

/* task.h compares asyncio__tl_runtime with a task's scheduler: the scheduler comes first. */
_Static_assert(offsetof(asyncio_runtime, sched) == 0, "asyncio_runtime starts with its scheduler");

asyncio_runtime *asyncio_runtime_current(void)
{
    return asyncio__tl_runtime;
}

asyncio__blocking_pool *asyncio__runtime_blocking_pool(asyncio_runtime *rt)
{
    return &rt->blocking;
}

int asyncio__runtime_base_init(asyncio_runtime *rt, asyncio_runtime_flavor flavor,
                               const asyncio__scheduler_ops *ops, uint32_t nworkers,
                               const asyncio_runtime_options *opts)
{
    asyncio__sched_init(&rt->sched, ops);
    rt->flavor = flavor;
    rt->event_interval =
        opts != NULL && opts->event_interval ? opts->event_interval : DEFAULT_EVENT_INTERVAL;
    atomic_init(&rt->remote_spawned, 0);
    int rc = asyncio__obs_init(rt, nworkers, opts);
    if (rc < 0)
        return rc;
    /*
     * A runtime's threads enter the kernel often (waits, parks), so its
     * poller may defer completion work to their next entry (poller_int.h,
     * ASYNCIO__POLLER_COOP). ASYNCIO_URING_COOP=0 turns that off (A/B
     * measurements: docs/backends.md, "COOP_TASKRUN").
     */
    bool coop = true;
    const char *coop_env = getenv("ASYNCIO_URING_COOP");
    if (coop_env != NULL && (strcmp(coop_env, "0") == 0 || strcmp(coop_env, "1") == 0))
        coop = coop_env[0] == '1';
    if ((rc = asyncio__driver_init(&rt->driver, opts, coop)) < 0) {
        asyncio__obs_close(rt);
        return rc;
    }
    size_t threads = opts != NULL && opts->blocking_max_threads ? opts->blocking_max_threads
                                                                : DEFAULT_BLOCKING_THREADS;
    uint64_t keep = opts != NULL && opts->blocking_keep_alive_ms ? opts->blocking_keep_alive_ms
                                                                 : DEFAULT_KEEP_ALIVE_MS;
    if ((rc = asyncio__blocking_pool_init(&rt->blocking, threads, keep)) < 0) {
        asyncio__driver_close(&rt->driver);
        asyncio__obs_close(rt);
        return rc;
    }
    return 0;
}

void asyncio__runtime_quiesce(asyncio_runtime *rt)
{
    /*
     * Acquire pairs with leave's release: the call's last access to the
     * runtime happens-before the teardown. A call that has not entered yet
     * meets complete tasks only (the argument is in task.h), and its enter /
     * leave touch the scheduler's counters, which its task's reference keeps
     * allocated.
     */
    while (atomic_load_explicit(&rt->sched.remote_inflight, memory_order_acquire) != 0)
        asyncio__thread_yield();
}

int asyncio__runtime_base_close(asyncio_runtime *rt)
{
    int rc = asyncio__driver_close(&rt->driver);
    if (rc < 0)
        return rc;
    asyncio__blocking_pool_close(&rt->blocking);
    asyncio__obs_close(rt);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

int asyncio_runtime_new(asyncio_runtime **out, const asyncio_runtime_options *opts)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_runtime_flavor flavor = opts != NULL ? opts->flavor : ASYNCIO_RUNTIME_CURRENT_THREAD;
    switch (flavor) {
    case ASYNCIO_RUNTIME_CURRENT_THREAD:
        return asyncio__ct_new(out, opts);
    case ASYNCIO_RUNTIME_MULTI_THREAD:
        return asyncio__mt_new(out, opts);
    }
    return ASYNCIO_EINVAL; /* unknown flavour */
}

static bool spawn_args_ok(asyncio_runtime *rt, const asyncio_task_vtable *vt)
{
    return rt != NULL && vt != NULL && vt->poll != NULL;
}

static inline int publish(asyncio_runtime *rt, asyncio__task *t, unsigned flags,
                          asyncio_join_handle **jh)
{
    if (ASYNCIO_LIKELY(rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD))
        return asyncio__ct_spawn(rt, t, jh, flags); /* one thread: always "pinned" */
    return asyncio__mt_spawn(rt, t, jh, flags);
}

int asyncio_spawn_with(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                       const asyncio_spawn_options *opts, asyncio_join_handle **jh)
{
    if (!spawn_args_ok(rt, vt))
        return ASYNCIO_EINVAL;
    asyncio__task *t = asyncio__task_new(&rt->sched, vt, init_state, opts,
                                         jh == NULL ? ASYNCIO__TASK_NEW_DETACHED : 0);
    if (t == NULL)
        return ASYNCIO_ENOMEM;
    /* On error the flavour frees the task: a tail call. */
    return publish(rt, t, opts != NULL && opts->pinned ? ASYNCIO__SPAWN_PINNED : 0, jh);
}

int asyncio__spawn_publish(asyncio_runtime *rt, asyncio__task *t, bool pinned,
                           asyncio_join_handle **jh)
{
    return publish(rt, t, ASYNCIO__SPAWN_KEEP | (pinned ? ASYNCIO__SPAWN_PINNED : 0), jh);
}

int asyncio_spawn(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                  asyncio_join_handle **jh)
{
    return asyncio_spawn_with(rt, vt, init_state, NULL, jh);
}

int asyncio_spawn_pinned(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                         asyncio_join_handle **jh)
{
    static const asyncio_spawn_options pinned = {.pinned = true};
    if (!spawn_args_ok(rt, vt))
        return ASYNCIO_EINVAL;
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD)
        return asyncio_spawn_with(rt, vt, init_state, NULL, jh);
    return asyncio_spawn_with(rt, vt, init_state, &pinned, jh);
}

int asyncio_runtime_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                             const void *init_state, void *output)
{
    if (rt == NULL)
        return ASYNCIO_EINVAL;
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD)
        return asyncio__ct_block_on(rt, vt, init_state, output);
    return asyncio__mt_block_on(rt, vt, init_state, output);
}

void asyncio_runtime_shutdown(asyncio_runtime *rt)
{
    if (rt == NULL)
        return;
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD)
        asyncio__ct_shutdown(rt);
    else
        asyncio__mt_shutdown(rt);
}

int asyncio_runtime_free(asyncio_runtime *rt)
{
    if (rt == NULL)
        return 0;
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD)
        return asyncio__ct_free(rt);
    return asyncio__mt_free(rt);
}

uint32_t asyncio_runtime_num_workers(const asyncio_runtime *rt)
{
    if (rt == NULL)
        return 0;
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD)
        return 1;
    return asyncio__mt_num_workers(rt);
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */

void asyncio__metrics_read(const asyncio__metrics *m, asyncio_worker_metrics *out)
{
#define LOAD(f) atomic_load_explicit(&((asyncio__metrics *)m)->f, memory_order_relaxed)
    out->tasks_spawned = LOAD(spawned);
    out->polls = LOAD(polls);
    out->steals = LOAD(steals);
    out->tasks_stolen = LOAD(stolen);
    out->parks = LOAD(parks);
    out->unparks = LOAD(unparks);
    out->lifo_hits = LOAD(lifo_hits);
    out->budget_yields = LOAD(budget_yields);
    out->io_events = LOAD(io_events);
#undef LOAD
}

static void metrics_add(asyncio_worker_metrics *sum, const asyncio_worker_metrics *w)
{
    sum->tasks_spawned += w->tasks_spawned;
    sum->polls += w->polls;
    sum->steals += w->steals;
    sum->tasks_stolen += w->tasks_stolen;
    sum->parks += w->parks;
    sum->unparks += w->unparks;
    sum->lifo_hits += w->lifo_hits;
    sum->budget_yields += w->budget_yields;
    sum->io_events += w->io_events;
    sum->overflows += w->overflows;
    sum->poll_time_ns += w->poll_time_ns;
    for (unsigned b = 0; b < ASYNCIO_POLL_HISTOGRAM_BUCKETS; b++)
        sum->poll_time_histogram[b] += w->poll_time_histogram[b];
    sum->local_queue_depth += w->local_queue_depth;
    sum->global_queue_depth = w->global_queue_depth; /* runtime-wide: not summed */
}

/* The fields every worker reports alike: each source's own lock or relaxed load. */
static void runtime_wide_metrics(asyncio_runtime *rt, asyncio_worker_metrics *out)
{
    out->remote_spawned = atomic_load_explicit(&rt->remote_spawned, memory_order_relaxed);
    out->alive_tasks = asyncio__runtime_alive(rt);
    out->blocking_threads = asyncio__blocking_pool_threads(&rt->blocking);
    out->blocking_queue_depth = asyncio__blocking_pool_queued(&rt->blocking);
    asyncio__time_counts(&rt->driver.time, &out->timers_active, &out->timers_fired);
    asyncio__mutex_lock(&rt->driver.io.lock);
    out->io_registrations = rt->driver.io.live;
    asyncio__mutex_unlock(&rt->driver.io.lock);
    out->backend = asyncio_poller_backend(rt->driver.poller);
}

int asyncio_runtime_metrics(const asyncio_runtime *rt, uint32_t worker, asyncio_worker_metrics *out)
{
    if (rt == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    uint32_t n = asyncio_runtime_num_workers(rt);
    if (worker >= n && worker != ASYNCIO_ALL_WORKERS)
        return ASYNCIO_EINVAL;
    *out = (asyncio_worker_metrics){0};
    if (rt->flavor == ASYNCIO_RUNTIME_CURRENT_THREAD) {
        asyncio__ct_metrics(rt, out);
        asyncio__obs_metrics(rt, 0, out);
    } else if (worker != ASYNCIO_ALL_WORKERS) {
        asyncio__mt_metrics(rt, worker, out);
        asyncio__obs_metrics(rt, worker, out);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            asyncio_worker_metrics w = {0};
            asyncio__mt_metrics(rt, i, &w);
            asyncio__obs_metrics(rt, i, &w);
            metrics_add(out, &w);
        }
    }
    runtime_wide_metrics((asyncio_runtime *)rt, out);
    return 0;
}

const char *asyncio_runtime_backend(const asyncio_runtime *rt)
{
    return rt != NULL ? asyncio_poller_backend(rt->driver.poller) : "none";
}
