/*
 * The current-thread runtime: every task runs on the thread inside
 * asyncio_runtime_block_on().
 *
 * Queues
 *   local    FIFO of entries, touched only by the owner thread (the thread
 *            running block_on, or shutdown).
 *   inject   FIFO guarded by `lock`, for entries made on other threads
 *            (wakes, spawns); each push unparks the driver.
 *   owned    every live task (for shutdown), guarded by `owned_lock`.
 * A task has at most one entry at a time (the NOTIFIED bit), so one
 * intrusive `next` pointer per task is enough.
 *
 * The scheduling loop (block_on), one tick per task polled:
 *   1. if the main task's JoinHandle was woken, poll it; done when ready;
 *   2. pick the next entry: every GLOBAL_INTERVAL ticks inject first, else
 *      local first (so neither queue starves the other);
 *   3. none: park in the driver until I/O, a timer or an unpark;
 *      otherwise run it, and every event_interval ticks turn the driver
 *      without blocking so I/O and timers are never starved by busy tasks.
 */
#include <stdatomic.h>

#include "internal.h"
#include "platform/thread.h"
#include "sched/queue.h"
#include "sched/runtime_int.h"
#include "util/alloc.h"

#define GLOBAL_INTERVAL 31

typedef struct ct_runtime {
    asyncio_runtime base; /* first: sched, driver, blocking pool (runtime_int.h) */

    /* Owner thread only. */
    asyncio__task_fifo local;
    uint32_t until_global; /* tasks picked before the next inject-first pick (0: this one) */
    uint32_t until_event;  /* tasks left before the next maintenance driver turn */
    bool running;
    bool shut_down;

    /* Guarded by lock. */
    asyncio__mutex lock;
    asyncio__task_fifo inject;

    /* Guarded by owned_lock (spawn and release may come from any thread). */
    asyncio__spinlock owned_lock;
    asyncio__list owned;
    bool closed;

    _Atomic size_t inject_len; /* lets the owner skip the lock when inject is empty */
    _Atomic bool main_woken;   /* the block_on task's JoinHandle was woken */
    asyncio__metrics metrics;  /* worker 0: written by the owner thread only */
    asyncio__worker_obs *wobs; /* worker 0's poll record, NULL when nothing is observed */
    asyncio__task_cache cache; /* task blocks: the thread inside block_on's (block_cache.h) */
} ct_runtime;

#define tl_runtime asyncio__tl_runtime

static ct_runtime *ct_of(asyncio_runtime *rt)
{
    return (ct_runtime *)rt;
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                    */

static asyncio__task *inject_pop(ct_runtime *rt)
{
    /* acquire pairs with the release in sched_schedule: the entry's writes are visible. */
    if (atomic_load_explicit(&rt->inject_len, memory_order_acquire) == 0)
        return NULL;
    asyncio__mutex_lock(&rt->lock);
    asyncio__task *t = asyncio__fifo_pop(&rt->inject);
    if (t != NULL)
        atomic_fetch_sub_explicit(&rt->inject_len, 1, memory_order_relaxed);
    asyncio__mutex_unlock(&rt->lock);
    return t;
}

/* Simulation only (tests/sim, runtime_int.h): a seeded choice among the ready tasks. */
size_t (*asyncio__ct_pick_hook)(size_t ready);

/*
 * The loops below are copied per observability option set (block_on): what
 * they call per task is forced inline into each copy, so the copies cost the
 * same (a called-out next_task cost a tracked yield +18 instructions).
 */
#if defined(__GNUC__) || defined(__clang__)
#define LOOP_INLINE inline __attribute__((always_inline))
#else
#define LOOP_INLINE inline
#endif

/* Simulation only: the hook's pick of the n ready tasks (out of line: never in production). */
static asyncio__task *local_pick(ct_runtime *rt)
{
    if (rt->local.head == NULL)
        return NULL;
    size_t n = 0;
    for (asyncio__task *t = rt->local.head; t != NULL; t = t->next)
        n++;
    asyncio__task *prev = NULL, *t = rt->local.head;
    for (size_t k = asyncio__ct_pick_hook(n); k > 0; k--)
        prev = t, t = t->next;
    if (prev == NULL)
        return asyncio__fifo_pop(&rt->local);
    prev->next = t->next;
    if (rt->local.tail == t)
        rt->local.tail = prev;
    t->next = NULL;
    return t;
}

/* The local run queue's next task: FIFO, or the simulation hook's pick. */
static LOOP_INLINE asyncio__task *local_pop(ct_runtime *rt)
{
    if (ASYNCIO_LIKELY(asyncio__ct_pick_hook == NULL))
        return asyncio__fifo_pop(&rt->local);
    return local_pick(rt);
}

static LOOP_INLINE asyncio__task *next_task(ct_runtime *rt)
{
    asyncio__task *t;
    if (rt->until_global == 0) {
        if ((t = inject_pop(rt)) != NULL)
            return t;
        return local_pop(rt);
    }
    if ((t = local_pop(rt)) != NULL)
        return t;
    return inject_pop(rt);
}

/* ------------------------------------------------------------------------ */
/* Scheduler ops (called by the task harness)                                */

static void sched_schedule(asyncio__scheduler *s, asyncio__task *t, bool yield)
{
    ASYNCIO_UNUSED(yield); /* FIFO already puts it behind everything queued */
    ct_runtime *rt = (ct_runtime *)s;
    if (tl_runtime == &rt->base) {
        asyncio__fifo_push(&rt->local, t);
        return;
    }
    /* From another thread: the caller is inside a remote bracket (task.h), so free waits. */
    asyncio__mutex_lock(&rt->lock);
    asyncio__fifo_push(&rt->inject, t);
    atomic_fetch_add_explicit(&rt->inject_len, 1, memory_order_release);
    asyncio__mutex_unlock(&rt->lock);
    asyncio__driver_unpark(&rt->base.driver);
}

static bool sched_release(asyncio__scheduler *s, asyncio__task *t)
{
    ct_runtime *rt = (ct_runtime *)s;
    asyncio__spin_lock(&rt->owned_lock);
    bool was_owned = asyncio__list_linked(&t->owned);
    if (was_owned)
        asyncio__list_remove(&t->owned);
    asyncio__spin_unlock(&rt->owned_lock);
    return was_owned;
}

/* The last reference went (task.h): only the memory was left. */
static void sched_dealloc(asyncio__scheduler *s)
{
    asyncio__free(ct_of((asyncio_runtime *)s));
}

static const asyncio__scheduler_ops g_sched_ops = {sched_schedule, sched_release, sched_dealloc};

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

int asyncio__ct_new(asyncio_runtime **out, const asyncio_runtime_options *opts)
{
    ct_runtime *rt = asyncio__calloc(1, sizeof *rt);
    if (rt == NULL)
        return ASYNCIO_ENOMEM;
    asyncio__list_init(&rt->owned);
    atomic_init(&rt->owned_lock.held, false);
    atomic_init(&rt->inject_len, 0);
    atomic_init(&rt->main_woken, false);
    asyncio__task_cache_init(&rt->cache);
    int rc = asyncio__mutex_init(&rt->lock);
    if (rc < 0)
        goto fail_free;
    if ((rc = asyncio__runtime_base_init(&rt->base, ASYNCIO_RUNTIME_CURRENT_THREAD, &g_sched_ops, 1,
                                         opts)) < 0)
        goto fail_mutex;
    rt->until_event = rt->base.event_interval;
    rt->wobs = asyncio__obs_worker(&rt->base, 0, &rt->metrics.polls);
    if ((rc = asyncio__obs_start(&rt->base)) < 0) {
        ASYNCIO_CHECK(asyncio__runtime_base_close(&rt->base) == 0); /* nothing registered yet */
        goto fail_mutex;
    }
    *out = &rt->base;
    return 0;

fail_mutex:
    asyncio__mutex_destroy(&rt->lock);
fail_free:
    asyncio__free(rt);
    return rc;
}

void asyncio__ct_visit(const asyncio_runtime *base, asyncio__task_visit_fn fn, void *arg)
{
    ct_runtime *rt = ct_of((asyncio_runtime *)base);
    asyncio__spin_lock(&rt->owned_lock);
    for (asyncio__list *l = rt->owned.next; l != &rt->owned; l = l->next)
        fn(arg, ASYNCIO_CONTAINER_OF(l, asyncio__task, owned));
    asyncio__spin_unlock(&rt->owned_lock);
}

int asyncio__ct_spawn(asyncio_runtime *base, asyncio__task *t, asyncio_join_handle **jh,
                      unsigned flags)
{
    ct_runtime *rt = ct_of(base);
    bool remote = asyncio__sched_enter_remote(&base->sched); /* from another thread: free waits */
    asyncio__spin_lock(&rt->owned_lock);
    bool closed = rt->closed;
    if (!closed)
        asyncio__list_push_back(&rt->owned, &t->owned);
    asyncio__spin_unlock(&rt->owned_lock);
    if (closed) {
        asyncio__sched_leave_remote(&base->sched, remote);
        if (!(flags & ASYNCIO__SPAWN_KEEP))
            asyncio__task_dealloc(t); /* never published: no callback ran, none will */
        return ASYNCIO_ECANCELED;
    }
    if (!remote)
        ASYNCIO__METRIC_ADD(&rt->metrics, spawned, 1);
    else
        atomic_fetch_add_explicit(&base->remote_spawned, 1, memory_order_relaxed);
    if (jh != NULL)
        *jh = (asyncio_join_handle *)t; /* else it was made detached (ASYNCIO__TASK_NEW_DETACHED) */
    sched_schedule(&base->sched, t, false);                 /* the first entry's reference */
    asyncio__sched_leave_remote(&base->sched, remote);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* block_on                                                                  */

/* The main waker: data is the runtime; it marks the JoinHandle as worth polling. */
static asyncio_waker main_clone(const void *data);

static void main_wake_by_ref(const void *data)
{
    ct_runtime *rt = (ct_runtime *)data;
    if (tl_runtime == &rt->base) {
        atomic_store_explicit(&rt->main_woken, true, memory_order_release);
        return;
    }
    /* block_on may return and the runtime be freed meanwhile: free waits for us. */
    bool remote = asyncio__sched_enter_remote(&rt->base.sched);
    atomic_store_explicit(&rt->main_woken, true, memory_order_release);
    asyncio__driver_unpark(&rt->base.driver);
    asyncio__sched_leave_remote(&rt->base.sched, remote);
}

/*
 * A clone holds a reference on the runtime's memory (task.h), so a clone
 * that outlives block_on can still be dropped safely. block_on's own waker
 * lives on its stack and is never dropped. (Waking such a clone after
 * asyncio_runtime_free is a use of a freed runtime's driver: the clone only
 * exists while block_on's JoinHandle holds it, and block_on drops that.)
 */
static void main_drop(const void *data)
{
    asyncio__sched_unref(&((ct_runtime *)data)->base.sched);
}

static const asyncio_waker_vtable g_main_waker_vtable = {
    main_clone,
    main_wake_by_ref,
    main_wake_by_ref,
    main_drop,
};

static asyncio_waker main_clone(const void *data)
{
    asyncio__sched_ref(&((ct_runtime *)data)->base.sched);
    return (asyncio_waker){&g_main_waker_vtable, data};
}


/* Counts one poll's outcome (asyncio__task_run flags) in worker 0's metrics. */
static LOOP_INLINE void count_run(ct_runtime *rt, unsigned ran)
{
    if (ran & ASYNCIO__RAN_POLL)
        ASYNCIO__METRIC_ADD(&rt->metrics, polls, 1);
    if (ran & ASYNCIO__RAN_BUDGET)
        ASYNCIO__METRIC_ADD(&rt->metrics, budget_yields, 1);
}

/* One driver turn; counts the I/O events it dispatched. */
static int turn_driver(ct_runtime *rt, int timeout_ms)
{
    int n = asyncio__driver_park(&rt->base.driver, timeout_ms);
    if (n > 0)
        ASYNCIO__METRIC_ADD(&rt->metrics, io_events, (uint64_t)n);
    return n;
}

/*
 * One tick: run one task if there is one. Returns false when both queues
 * were empty. `run` and `wo`: the harness's entry point for this runtime's
 * observability options and worker 0's record (NULL, NULL:
 * asyncio__task_run), passed as constants by the copies of the loop in
 * block_on, so each loop calls its entry point directly, with no branch
 * (the test is on `run`, a constant; `wo` is a load the compiler cannot
 * see through).
 */
static LOOP_INLINE bool run_one(ct_runtime *rt, asyncio__task_run_fn run, asyncio__worker_obs *wo)
{
    asyncio__task *t = next_task(rt);
    if (t == NULL)
        return false;
    /* Countdowns, not a tick % interval: the modulo cost ~14 instructions per task. */
    rt->until_global = (rt->until_global == 0 ? GLOBAL_INTERVAL : rt->until_global) - 1;
    count_run(rt, run != NULL ? run(t, wo) : asyncio__task_run(t));
    if (--rt->until_event == 0) {
        rt->until_event = rt->base.event_interval;
        turn_driver(rt, 0); /* busy tasks never starve I/O and timers */
    }
    return true;
}

/* block_on's loop: runs tasks until the main task's JoinHandle is ready (run, wo: see run_one). */
static LOOP_INLINE int run_until(ct_runtime *rt, asyncio_join_handle *jh, void *output,
                                 asyncio__task_run_fn run, asyncio__worker_obs *wo)
{
    asyncio_waker main = {&g_main_waker_vtable, rt};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&main);
    int rc;
    for (;;) {
        /*
         * Load first: the exchange (a locked instruction) only when the flag
         * is set, not on every task run. A wake landing after the load is
         * seen at the next iteration. acquire / acq_rel: pair with the
         * waker's release store (the main task's writes are visible).
         */
        if (atomic_load_explicit(&rt->main_woken, memory_order_acquire) &&
            atomic_exchange_explicit(&rt->main_woken, false, memory_order_acq_rel)) {
            rc = asyncio_join_handle_poll(jh, &cx, output);
            if (rc != ASYNCIO_PENDING)
                break;
        }
        if (!run_one(rt, run, wo)) {
            ASYNCIO__METRIC_ADD(&rt->metrics, parks, 1);
            rc = turn_driver(rt, -1);
            if (rc < 0)
                break; /* the poller failed: nothing can make progress */
            ASYNCIO__METRIC_ADD(&rt->metrics, unparks, 1);
        }
    }
    return rc;
}

int asyncio__ct_block_on(asyncio_runtime *base, const asyncio_task_vtable *vt,
                         const void *init_state, void *output)
{
    ct_runtime *rt = ct_of(base);
    if (tl_runtime != NULL || rt->running)
        return ASYNCIO_EBUSY;
    asyncio_join_handle *jh;
    int rc = asyncio_spawn(base, vt, init_state, &jh);
    if (rc < 0)
        return rc;

    rt->running = true;
    tl_runtime = base;
    asyncio__driver *prev = asyncio__driver_enter(&base->driver);
    asyncio__task_cache *prev_cache = asyncio__task_cache_enter(&rt->cache);
    atomic_store(&rt->main_woken, true);
    asyncio__task_run_fn run = rt->wobs != NULL ? asyncio__task_run_for(rt->wobs) : NULL;
    if (ASYNCIO_LIKELY(run == NULL))
        rc = run_until(rt, jh, output, NULL, NULL);
    else if (run == asyncio__task_run_tracked)
        rc = run_until(rt, jh, output, asyncio__task_run_tracked, rt->wobs);
    else if (run == asyncio__task_run_watched)
        rc = run_until(rt, jh, output, asyncio__task_run_watched, rt->wobs);
    else
        rc = run_until(rt, jh, output, asyncio__task_run_observed, rt->wobs);
    asyncio__task_cache_enter(prev_cache);
    asyncio__driver_flush(&base->driver); /* accepted writes leave now (io_uring path) */
    asyncio__driver_enter(prev);
    tl_runtime = NULL;
    rt->running = false;
    asyncio_join_handle_drop(jh);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                  */

/*
 * Steps:
 *   1. close: spawns from now on fail with ECANCELED;
 *   2. cancel every owned task, one at a time, with no lock held while its
 *      drop runs (a drop may wake or abort other tasks, or try to spawn);
 *   3. drop every queue entry left (all tasks are complete now);
 *   4. shut the blocking pool down: queued jobs are cancelled, running ones
 *      finish (their wakes reach completed tasks and do nothing).
 * The thread acts as the runtime's thread meanwhile, so drops that touch
 * the drivers (timers, async fds) find them.
 */
void asyncio__ct_shutdown(asyncio_runtime *base)
{
    ct_runtime *rt = ct_of(base);
    if (rt->shut_down || rt->running)
        return;
    asyncio__obs_stop(base); /* before anything is torn down */
    asyncio_runtime *prev_rt = tl_runtime;
    tl_runtime = base;
    asyncio__driver *prev = asyncio__driver_enter(&base->driver);

    asyncio__spin_lock(&rt->owned_lock);
    rt->closed = true;
    asyncio__spin_unlock(&rt->owned_lock);

    for (;;) {
        asyncio__spin_lock(&rt->owned_lock);
        asyncio__list *n = asyncio__list_first(&rt->owned);
        asyncio__task *t = n != NULL ? ASYNCIO_CONTAINER_OF(n, asyncio__task, owned) : NULL;
        asyncio__spin_unlock(&rt->owned_lock);
        if (t == NULL)
            break;
        /* Nothing runs concurrently on this flavour, so every owned task is idle. */
        ASYNCIO_CHECK(asyncio__task_shutdown(t));
    }
    asyncio__task *t;
    while ((t = next_task(rt)) != NULL)
        asyncio__task_drop_entry(t);
    asyncio__blocking_pool_shutdown(&base->blocking);

    rt->shut_down = true;
    asyncio__driver_enter(prev);
    tl_runtime = prev_rt;
}

int asyncio__ct_free(asyncio_runtime *base)
{
    ct_runtime *rt = ct_of(base);
    if (rt->running)
        return ASYNCIO_EBUSY;
    asyncio__ct_shutdown(base);
    asyncio__runtime_quiesce(base);
    /*
     * A wake from another thread that queued its task before shutdown
     * claimed it may have pushed the entry after shutdown drained inject
     * (the quiesce waited for it): let go of it now.
     */
    asyncio__task *t;
    while ((t = inject_pop(rt)) != NULL)
        asyncio__task_drop_entry(t);
    int rc = asyncio__runtime_base_close(base);
    if (rc < 0)
        return rc;
    asyncio__mutex_destroy(&rt->lock);
    asyncio__task_cache_drain(&rt->cache); /* no block_on runs: nobody uses it any more */
    asyncio__sched_unref(&base->sched);    /* the handle's: the memory goes with the last task */
    return 0;
}

void asyncio__ct_metrics(const asyncio_runtime *base, asyncio_worker_metrics *out)
{
    const ct_runtime *rt = (const ct_runtime *)base;
    asyncio__metrics_read(&rt->metrics, out);
    /* The local FIFO is the owner's only: its depth is not tracked (reported 0). */
    out->global_queue_depth =
        atomic_load_explicit(&((ct_runtime *)rt)->inject_len, memory_order_relaxed);
}
