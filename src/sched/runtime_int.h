/*
 * The runtime's common part and the flavour entry points (internal).
 *
 * struct asyncio_runtime is the first member of each flavour's own struct
 * (ct_runtime in current_thread.c, mt_runtime in multi_thread.c). The
 * public functions (src/sched/runtime.c) check their arguments and branch
 * once on `flavor` to the flavour's entry point; inside a flavour nothing
 * is dispatched again, except the harness's scheduler ops (one indirect
 * call per schedule, as before). So the current-thread hot loop is the
 * same code as before the split.
 *
 * Metrics: each worker's counters are written by that worker's thread only
 * (relaxed load + relaxed store: no locked instruction) and read by anyone
 * with relaxed loads (asyncio_runtime_metrics()).
 */
#ifndef ASYNCIO_SCHED_RUNTIME_INT_H
#define ASYNCIO_SCHED_RUNTIME_INT_H

#include <stdatomic.h>

#include "asyncio/runtime.h"
#include "reactor/driver.h"
#include "sched/blocking.h"
#include "task/block_cache.h"
#include "task/task.h"

/*
 * Observability (src/sched/observe.c, task/obs.h): the clock the records
 * use, one poll record per worker, and the observer thread that keeps the
 * coarse clock and runs the stall detector. Fixed at creation; `on` says
 * whether workers hand their record to asyncio__task_run().
 */
typedef struct asyncio__obs {
    asyncio__obs_clock clock;
    bool on;               /* any observability option */
    bool track;            /* opts.track_tasks */
    bool hist;             /* opts.poll_time_histogram */
    uint32_t threshold_ms; /* stall detector; 0: off */
    uint32_t tick_ms;      /* the observer thread's period */
    asyncio_stall_fn on_stall;
    void *on_stall_arg;
    uint32_t nworkers;
    asyncio__worker_obs *workers; /* nworkers records (NULL when !on) */
    bool thread_started;          /* creator thread only */
    asyncio__thread thread;
    asyncio__mutex lock; /* guards stop */
    asyncio__cond cond;
    bool stop;
} asyncio__obs;

/* Counters of one worker; see asyncio_worker_metrics for their meaning. */
typedef struct asyncio__metrics {
    _Atomic uint64_t spawned, polls, steals, stolen, parks, unparks, lifo_hits, budget_yields,
        io_events;
} asyncio__metrics;

/* Single-writer increment: the owning thread only (relaxed; readers are snapshots). */
#define ASYNCIO__METRIC_ADD(m, field, n)                                                 \
    atomic_store_explicit(&(m)->field,                                                   \
                          atomic_load_explicit(&(m)->field, memory_order_relaxed) + (n), \
                          memory_order_relaxed)

struct asyncio_runtime {
    asyncio__scheduler sched; /* first: the harness's view of us */
    asyncio_runtime_flavor flavor;
    asyncio__driver driver;
    asyncio__blocking_pool blocking;
    uint32_t event_interval;
    _Atomic uint64_t remote_spawned; /* spawns from outside every worker (any thread: RMW) */
    asyncio__obs obs;
};

/*
 * Sets up rt->obs from the options for `nworkers` workers (called by base
 * init). 0, ASYNCIO_ENOMEM or a lock's error; on error nothing to close.
 */
int asyncio__obs_init(asyncio_runtime *rt, uint32_t nworkers, const asyncio_runtime_options *opts);
/* Starts the observer thread if an option needs it (the flavour is fully set up). */
int asyncio__obs_start(asyncio_runtime *rt);
/* Stops and joins the observer thread (shutdown; idempotent). Creator thread. */
void asyncio__obs_stop(asyncio_runtime *rt);
/* Frees what init allocated (the thread is stopped). */
void asyncio__obs_close(asyncio_runtime *rt);
/*
 * Worker i's record for the harness's observed entry points (its poll counter is
 * `polls`), or NULL when nothing is observed. Called once by the flavour.
 */
asyncio__worker_obs *asyncio__obs_worker(asyncio_runtime *rt, uint32_t i,
                                         const _Atomic uint64_t *polls);
/* Adds worker i's histogram to *out (metrics). */
void asyncio__obs_metrics(const asyncio_runtime *rt, uint32_t i, asyncio_worker_metrics *out);

/* Called for each owned task, under the lock of the list that holds it. */
typedef void (*asyncio__task_visit_fn)(void *arg, const asyncio__task *t);

/*
 * Waits until no wake, abort or spawn from outside the runtime's threads is
 * in progress (sched.remote_inflight, src/task/task.h "The scheduler's
 * lifetime"). Called by free after shutdown: any such call still to come
 * finds every task complete and queues nothing.
 */
void asyncio__runtime_quiesce(asyncio_runtime *rt);

/* asyncio__tl_runtime (declared in task/task.h): the runtime whose tasks this thread runs. */

/*
 * Common part: the scheduler's counters (one reference: the handle's), the
 * driver and the blocking pool from the options. 0 or a negative error.
 */
int asyncio__runtime_base_init(asyncio_runtime *rt, asyncio_runtime_flavor flavor,
                               const asyncio__scheduler_ops *ops, uint32_t nworkers,
                               const asyncio_runtime_options *opts);
/* ASYNCIO_EBUSY (nothing freed) while I/O registrations are alive. */
int asyncio__runtime_base_close(asyncio_runtime *rt);

/* Fills the metrics fields that come from one asyncio__metrics block. */
void asyncio__metrics_read(const asyncio__metrics *m, asyncio_worker_metrics *out);

/* Current-thread flavour (current_thread.c). */
int asyncio__ct_new(asyncio_runtime **out, const asyncio_runtime_options *opts);
/* asyncio__ct_spawn / asyncio__mt_spawn flags. */
#define ASYNCIO__SPAWN_PINNED 1u /* multi-thread: keep the task on one worker */
#define ASYNCIO__SPAWN_KEEP   2u /* on error the caller frees the task (else freed here) */

/*
 * Publishes a task made by asyncio__task_new (*jh receives the handle; jh
 * NULL only for a task made detached). On error (ECANCELED: the runtime is
 * shutting down) the task was never published: no callback ran or will,
 * and it was freed here, or with ASYNCIO__SPAWN_KEEP is the caller's to
 * free (asyncio__task_dealloc) once it let go of what it linked.
 */
int asyncio__ct_spawn(asyncio_runtime *rt, asyncio__task *t, asyncio_join_handle **jh,
                      unsigned flags);
int asyncio__ct_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                         void *output);
void asyncio__ct_shutdown(asyncio_runtime *rt);
int asyncio__ct_free(asyncio_runtime *rt);
void asyncio__ct_metrics(const asyncio_runtime *rt, asyncio_worker_metrics *out);
/* Calls fn for every owned task, under the owned lock. */
void asyncio__ct_visit(const asyncio_runtime *rt, asyncio__task_visit_fn fn, void *arg);

/* Multi-thread flavour (multi_thread.c). */
int asyncio__mt_new(asyncio_runtime **out, const asyncio_runtime_options *opts);
/* As asyncio__ct_spawn. */
int asyncio__mt_spawn(asyncio_runtime *rt, asyncio__task *t, asyncio_join_handle **jh,
                      unsigned flags);

/*
 * Spawn in two steps, for callers that keep state of their own in the task
 * block (the JoinSet's entry: asyncio__task_new's area) and must set it up
 * before anyone can see the task: build it with asyncio__task_new
 * (&rt->sched, ...), then publish it here. Returns 0 (*jh, if non-NULL,
 * receives the handle; else it is dropped) or ECANCELED, after which the
 * task was never published and the caller frees it with
 * asyncio__task_dealloc. jh NULL only for a task made with
 * ASYNCIO__TASK_NEW_DETACHED. rt and t must be valid. Any thread.
 */
int asyncio__spawn_publish(asyncio_runtime *rt, asyncio__task *t, bool pinned,
                           asyncio_join_handle **jh);
int asyncio__mt_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                         void *output);
void asyncio__mt_shutdown(asyncio_runtime *rt);
int asyncio__mt_free(asyncio_runtime *rt);
uint32_t asyncio__mt_num_workers(const asyncio_runtime *rt);
/* Calls fn for every owned task, one shard lock at a time. */
void asyncio__mt_visit(const asyncio_runtime *rt, asyncio__task_visit_fn fn, void *arg);

/* Live tasks: walks the owned lists (observe.c). */
size_t asyncio__runtime_alive(const asyncio_runtime *rt);
/* worker < num_workers: that worker's counters (runtime-wide fields left to the caller). */
void asyncio__mt_metrics(const asyncio_runtime *rt, uint32_t worker, asyncio_worker_metrics *out);

/*
 * Simulation hook (tests/sim; docs/testing.md, "Simulation"): when set, the
 * current-thread runtime takes the hook(n)-th of its n ready local tasks
 * instead of the first. NULL in production (one predictable branch per pop).
 * Set and cleared only while no runtime runs.
 */
extern size_t (*asyncio__ct_pick_hook)(size_t ready);

#endif
