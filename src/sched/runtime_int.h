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
#include "task/task.h"

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
};

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
                               const asyncio__scheduler_ops *ops,
                               const asyncio_runtime_options *opts);
/* ASYNCIO_EBUSY (nothing freed) while I/O registrations are alive. */
int asyncio__runtime_base_close(asyncio_runtime *rt);

/* Fills the metrics fields that come from one asyncio__metrics block. */
void asyncio__metrics_read(const asyncio__metrics *m, asyncio_worker_metrics *out);

/* Current-thread flavour (current_thread.c). */
int asyncio__ct_new(asyncio_runtime **out, const asyncio_runtime_options *opts);
/* Publishes a task made by asyncio__task_new (the caller's; freed here on error). */
int asyncio__ct_spawn(asyncio_runtime *rt, asyncio__task *t, asyncio_join_handle **jh);
int asyncio__ct_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                         void *output);
void asyncio__ct_shutdown(asyncio_runtime *rt);
int asyncio__ct_free(asyncio_runtime *rt);
void asyncio__ct_metrics(const asyncio_runtime *rt, asyncio_worker_metrics *out);
/* asyncio_runtime_tasks: copies up to cap owned tasks, returns how many are owned. */
size_t asyncio__ct_tasks(const asyncio_runtime *rt, asyncio_task_info *out, size_t cap);

/* Multi-thread flavour (multi_thread.c). */
int asyncio__mt_new(asyncio_runtime **out, const asyncio_runtime_options *opts);
int asyncio__mt_spawn(asyncio_runtime *rt, asyncio__task *t, asyncio_join_handle **jh, bool pinned);
int asyncio__mt_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                         void *output);
void asyncio__mt_shutdown(asyncio_runtime *rt);
int asyncio__mt_free(asyncio_runtime *rt);
uint32_t asyncio__mt_num_workers(const asyncio_runtime *rt);
size_t asyncio__mt_tasks(const asyncio_runtime *rt, asyncio_task_info *out, size_t cap);
/* worker < num_workers: that worker's counters (runtime-wide fields left to the caller). */
void asyncio__mt_metrics(const asyncio_runtime *rt, uint32_t worker, asyncio_worker_metrics *out);

#endif
