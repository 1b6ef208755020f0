/*
 * The current-thread runtime: every task runs on the thread inside
 * asyncio_runtime_block_on().
 *
 * Queues
 *   local    FIFO of entries, touched only by the owner thread (the thread
 *            running block_on, or shutdown).
 *   inject   FIFO guarded by `lock`, for entries made on other threads
 *            (wakes, spawns); each push unparks the driver.
 *   owned    every live task (for shutdown), guarded by `lock`.
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

#include "asyncio/runtime.h"
#include "internal.h"
#include "platform/thread.h"
#include "reactor/driver.h"
#include "sched/blocking.h"
#include "task/task.h"
#include "util/alloc.h"

#define GLOBAL_INTERVAL 31
#define DEFAULT_EVENT_INTERVAL 61
#define DEFAULT_BLOCKING_THREADS 512
#define DEFAULT_KEEP_ALIVE_MS 10000

typedef struct task_queue {
    asyncio__task *head, *tail;
} task_queue;

struct asyncio_runtime {
    asyncio__scheduler sched; /* first: the harness's view of us */
    asyncio__driver driver;
    asyncio__blocking_pool blocking;
    uint32_t event_interval;

    /* Owner thread only. */
    task_queue local;
    uint64_t tick;
    bool running;
    bool shut_down;

    /* Guarded by lock. */
    asyncio__mutex lock;
    task_queue inject;
    asyncio__list owned;
    bool closed;

    _Atomic size_t inject_len; /* lets the owner skip the lock when inject is empty */
    _Atomic bool main_woken;   /* the block_on task's JoinHandle was woken */
};

static _Thread_local asyncio_runtime *tl_runtime;

asyncio_runtime *asyncio_runtime_current(void)
{
    return tl_runtime;
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                    */

static void queue_push(task_queue *q, asyncio__task *t)
{
    t->next = NULL;
    if (q->tail != NULL)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static asyncio__task *queue_pop(task_queue *q)
{
    asyncio__task *t = q->head;
    if (t != NULL) {
        q->head = t->next;
        if (q->head == NULL)
            q->tail = NULL;
        t->next = NULL;
    }
    return t;
}

static asyncio__task *inject_pop(asyncio_runtime *rt)
{
    /* acquire pairs with the release in sched_schedule: the entry's writes are visible. */
    if (atomic_load_explicit(&rt->inject_len, memory_order_acquire) == 0)
        return NULL;
    asyncio__mutex_lock(&rt->lock);
    asyncio__task *t = queue_pop(&rt->inject);
    if (t != NULL)
        atomic_fetch_sub_explicit(&rt->inject_len, 1, memory_order_relaxed);
    asyncio__mutex_unlock(&rt->lock);
    return t;
}

static asyncio__task *next_task(asyncio_runtime *rt)
{
    asyncio__task *t;
    if (rt->tick % GLOBAL_INTERVAL == 0) {
        if ((t = inject_pop(rt)) != NULL)
            return t;
        return queue_pop(&rt->local);
    }
    if ((t = queue_pop(&rt->local)) != NULL)
        return t;
    return inject_pop(rt);
}

/* ------------------------------------------------------------------------ */
/* Scheduler ops (called by the task harness)                                */

static void sched_schedule(asyncio__scheduler *s, asyncio__task *t, bool yield)
{
    ASYNCIO_UNUSED(yield); /* FIFO already puts it behind everything queued */
    asyncio_runtime *rt = (asyncio_runtime *)s;
    if (tl_runtime == rt) {
        queue_push(&rt->local, t);
        return;
    }
    asyncio__mutex_lock(&rt->lock);
    queue_push(&rt->inject, t);
    atomic_fetch_add_explicit(&rt->inject_len, 1, memory_order_release);
    asyncio__mutex_unlock(&rt->lock);
    asyncio__driver_unpark(&rt->driver);
}

static bool sched_release(asyncio__scheduler *s, asyncio__task *t)
{
    asyncio_runtime *rt = (asyncio_runtime *)s;
    asyncio__mutex_lock(&rt->lock);
    bool was_owned = asyncio__list_linked(&t->owned);
    if (was_owned)
        asyncio__list_remove(&t->owned);
    asyncio__mutex_unlock(&rt->lock);
    return was_owned;
}

static const asyncio__scheduler_ops g_sched_ops = {sched_schedule, sched_release};

asyncio__blocking_pool *asyncio__runtime_blocking_pool(asyncio_runtime *rt)
{
    return &rt->blocking;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

int asyncio_runtime_new(asyncio_runtime **out, const asyncio_runtime_options *opts)
{
    if (out == NULL || (opts != NULL && opts->flavor != ASYNCIO_RUNTIME_CURRENT_THREAD))
        return ASYNCIO_EINVAL;
    asyncio_runtime *rt = asyncio__calloc(1, sizeof *rt);
    if (rt == NULL)
        return ASYNCIO_ENOMEM;
    rt->sched.ops = &g_sched_ops;
    rt->event_interval =
        opts != NULL && opts->event_interval ? opts->event_interval : DEFAULT_EVENT_INTERVAL;
    asyncio__list_init(&rt->owned);
    atomic_init(&rt->inject_len, 0);
    atomic_init(&rt->main_woken, false);
    int rc = asyncio__mutex_init(&rt->lock);
    if (rc < 0)
        goto fail_free;
    if ((rc = asyncio__driver_init(&rt->driver, opts)) < 0)
        goto fail_mutex;
    size_t threads = opts != NULL && opts->blocking_max_threads ? opts->blocking_max_threads
                                                                : DEFAULT_BLOCKING_THREADS;
    uint64_t keep = opts != NULL && opts->blocking_keep_alive_ms ? opts->blocking_keep_alive_ms
                                                                 : DEFAULT_KEEP_ALIVE_MS;
    if ((rc = asyncio__blocking_pool_init(&rt->blocking, threads, keep)) < 0)
        goto fail_driver;
    *out = rt;
    return 0;

fail_driver:
    asyncio__driver_close(&rt->driver);
fail_mutex:
    asyncio__mutex_destroy(&rt->lock);
fail_free:
    asyncio__free(rt);
    return rc;
}

int asyncio_spawn(asyncio_runtime *rt, const asyncio_task_vtable *vt, const void *init_state,
                  asyncio_join_handle **jh)
{
    if (rt == NULL || vt == NULL || vt->poll == NULL)
        return ASYNCIO_EINVAL;
    asyncio__task *t = asyncio__task_new(&rt->sched, vt, init_state);
    if (t == NULL)
        return ASYNCIO_ENOMEM;
    asyncio__mutex_lock(&rt->lock);
    bool closed = rt->closed;
    if (!closed)
        asyncio__list_push_back(&rt->owned, &t->owned);
    asyncio__mutex_unlock(&rt->lock);
    if (closed) {
        asyncio__task_dealloc(t); /* never published: no callback ran, none will */
        return ASYNCIO_ECANCELED;
    }
    if (jh != NULL)
        *jh = (asyncio_join_handle *)t;
    else
        asyncio_join_handle_drop((asyncio_join_handle *)t); /* detached */
    sched_schedule(&rt->sched, t, false);                 /* the first entry's reference */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* block_on                                                                  */

/* The main waker: data is the runtime; it marks the JoinHandle as worth polling. */
static asyncio_waker main_clone(const void *data);

static void main_wake_by_ref(const void *data)
{
    asyncio_runtime *rt = (asyncio_runtime *)data;
    atomic_store_explicit(&rt->main_woken, true, memory_order_release);
    if (tl_runtime != rt)
        asyncio__driver_unpark(&rt->driver);
}

static void main_drop(const void *data)
{
    ASYNCIO_UNUSED(data); /* the runtime outlives block_on's waker */
}

static const asyncio_waker_vtable g_main_waker_vtable = {
    main_clone,
    main_wake_by_ref,
    main_wake_by_ref,
    main_drop,
};

static asyncio_waker main_clone(const void *data)
{
    return (asyncio_waker){&g_main_waker_vtable, data};
}

/* One tick: run one task if there is one. Returns false when both queues were empty. */
static bool run_one(asyncio_runtime *rt)
{
    asyncio__task *t = next_task(rt);
    if (t == NULL)
        return false;
    rt->tick++;
    asyncio__task_run(t);
    if (rt->tick % rt->event_interval == 0)
        asyncio__driver_park(&rt->driver, 0); /* busy tasks never starve I/O and timers */
    return true;
}

int asyncio_runtime_block_on(asyncio_runtime *rt, const asyncio_task_vtable *vt,
                             const void *init_state, void *output)
{
    if (rt == NULL)
        return ASYNCIO_EINVAL;
    if (tl_runtime != NULL || rt->running)
        return ASYNCIO_EBUSY;
    asyncio_join_handle *jh;
    int rc = asyncio_spawn(rt, vt, init_state, &jh);
    if (rc < 0)
        return rc;

    rt->running = true;
    tl_runtime = rt;
    asyncio__driver *prev = asyncio__driver_enter(&rt->driver);
    asyncio_waker main = {&g_main_waker_vtable, rt};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&main);
    atomic_store(&rt->main_woken, true);
    for (;;) {
        if (atomic_exchange_explicit(&rt->main_woken, false, memory_order_acq_rel)) {
            rc = asyncio_join_handle_poll(jh, &cx, output);
            if (rc != ASYNCIO_PENDING)
                break;
        }
        if (!run_one(rt)) {
            rc = asyncio__driver_park(&rt->driver, -1);
            if (rc < 0)
                break; /* the poller failed: nothing can make progress */
        }
    }
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
void asyncio_runtime_shutdown(asyncio_runtime *rt)
{
    if (rt == NULL || rt->shut_down || rt->running)
        return;
    asyncio_runtime *prev_rt = tl_runtime;
    tl_runtime = rt;
    asyncio__driver *prev = asyncio__driver_enter(&rt->driver);

    asyncio__mutex_lock(&rt->lock);
    rt->closed = true;
    asyncio__mutex_unlock(&rt->lock);

    for (;;) {
        asyncio__mutex_lock(&rt->lock);
        asyncio__list *n = asyncio__list_first(&rt->owned);
        asyncio__task *t = n != NULL ? ASYNCIO_CONTAINER_OF(n, asyncio__task, owned) : NULL;
        asyncio__mutex_unlock(&rt->lock);
        if (t == NULL)
            break;
        /* Nothing runs concurrently on this flavour, so every owned task is idle. */
        ASYNCIO_CHECK(asyncio__task_shutdown(t));
    }
    asyncio__task *t;
    while ((t = next_task(rt)) != NULL)
        asyncio__task_drop_entry(t);
    asyncio__blocking_pool_shutdown(&rt->blocking);

    rt->shut_down = true;
    asyncio__driver_enter(prev);
    tl_runtime = prev_rt;
}

int asyncio_runtime_free(asyncio_runtime *rt)
{
    if (rt == NULL)
        return 0;
    if (rt->running)
        return ASYNCIO_EBUSY;
    asyncio_runtime_shutdown(rt);
    int rc = asyncio__driver_close(&rt->driver);
    if (rc < 0)
        return rc;
    asyncio__blocking_pool_close(&rt->blocking);
    asyncio__mutex_destroy(&rt->lock);
    asyncio__free(rt);
    return 0;
}
