/*
 * The multi-thread runtime: N worker threads with work stealing, in the
 * shape of Tokio's multi-thread scheduler. docs/scheduler.md has the
 * design; sched/mt.h the types and the idle protocol.
 *
 * Where an entry (a task's queue reference) can be:
 *   queue          a worker's steal-half ring (sched/queue.h)
 *   lifo           a worker's LIFO slot (below)
 *   pinned_local   a worker's FIFO of its own pinned tasks (owner only)
 *   pinned_remote  a worker's FIFO of its pinned tasks woken elsewhere (lock)
 *   inject         the global queue: spawns and wakes from non-workers,
 *                  and ring overflow
 *
 * Worker loop (worker_main), one tick per task:
 *   1. maintenance: every event_interval ticks turn the driver without
 *      blocking (if no other worker holds it), so busy workers never
 *      starve I/O and timers; check for shutdown;
 *   2. next task: every GLOBAL_INTERVAL (61) ticks the remote pinned queue
 *      and the inject queue first (they cannot starve); else the local
 *      ring and pinned_local (alternating), then pinned_remote, then a
 *      batch from inject;
 *   3. run it, then up to LIFO_MAX tasks from the LIFO slot;
 *   4. nothing: search (steal half of a random other worker's ring, else
 *      its LIFO slot, else inject), at most half the workers at a time;
 *   5. still nothing: park (sched/mt_idle.c).
 *
 * LIFO slot. While a worker polls a task, a task woken on that worker goes
 * to the LIFO slot (the previous occupant to the ring, which also wakes a
 * sleeper), and runs right after the poll: message passing keeps its data
 * in cache. At most LIFO_MAX consecutive LIFO polls, then the slot's task
 * goes to the back of the ring: two tasks waking each other cannot starve
 * the rest (tokio#2349, #5712). The slot is an atomic pointer that other
 * workers may also take (exchange) when they search and find every ring
 * empty: unlike Tokio's (tokio#4941), a task in it is not stranded while
 * its worker is stuck in a long poll. Yields never use it; a spawn from
 * inside a poll does (as Tokio: a chain of spawns stays on one worker).
 *
 * Thread-local: tl_worker is the worker this thread is (NULL elsewhere).
 */
#include <stdatomic.h>

#include "internal.h"
#include "sched/mt.h"
#include "util/alloc.h"

#define GLOBAL_INTERVAL 61
#define LIFO_MAX        3
#define HALF            (ASYNCIO__QUEUE_CAPACITY / 2)

static _Thread_local mt_worker *tl_worker;

static mt_runtime *mt_of(asyncio_runtime *rt)
{
    return (mt_runtime *)rt;
}

/* This thread's worker if it belongs to `rt`. */
static mt_worker *current_worker(mt_runtime *rt)
{
    mt_worker *w = tl_worker;
    return w != NULL && w->rt == rt ? w : NULL;
}

static bool stopping(mt_runtime *rt)
{
    /* acquire: pairs with shutdown's release store. */
    return atomic_load_explicit(&rt->stopping, memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* Entry lists                                                               */

static asyncio__task *pinned_remote_pop(mt_worker *w)
{
    /* Hint: an entry pushed meanwhile is seen on the next check (the pusher unparks us). */
    if (atomic_load_explicit(&w->pinned_remote_len, memory_order_relaxed) == 0)
        return NULL;
    asyncio__mutex_lock(&w->pinned_lock);
    asyncio__task *t = asyncio__fifo_pop(&w->pinned_remote);
    if (t != NULL)
        atomic_store_explicit(&w->pinned_remote_len,
                              atomic_load_explicit(&w->pinned_remote_len, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    asyncio__mutex_unlock(&w->pinned_lock);
    return t;
}

/* Drops a NULL-terminated chain of entries no queue accepted (shutdown). */
static void drop_refused(asyncio__task *t)
{
    while (t != NULL) {
        asyncio__task *next = t->next;
        asyncio__task_drop_notified(t);
        t = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Scheduling                                                                */

static void notify_parked(mt_runtime *rt)
{
    int32_t idx = asyncio__idle_worker_to_notify(rt);
    if (idx >= 0)
        asyncio__parker_unpark(rt, &rt->workers[idx]);
}

/* Owner: onto its ring (overflow goes to inject), then wake a sleeper if nobody searches. */
static void push_local(mt_runtime *rt, mt_worker *w, asyncio__task *t)
{
    drop_refused(asyncio__queue_push_back_or_overflow(&w->queue, t, &rt->inject));
    notify_parked(rt);
}

static void schedule_pinned(mt_runtime *rt, mt_worker *self, asyncio__task *t)
{
    mt_worker *home = &rt->workers[t->pin];
    if (self == home) {
        asyncio__fifo_push(&home->pinned_local, t); /* we are running (or turning the driver) */
        return;
    }
    asyncio__mutex_lock(&home->pinned_lock);
    bool closed = home->pinned_closed;
    if (!closed) {
        asyncio__fifo_push(&home->pinned_remote, t);
        atomic_store_explicit(&home->pinned_remote_len,
                              atomic_load_explicit(&home->pinned_remote_len, memory_order_relaxed) +
                                  1,
                              memory_order_relaxed);
    }
    asyncio__mutex_unlock(&home->pinned_lock);
    if (closed) {
        asyncio__task_drop_notified(t);
        return;
    }
    /* Only `home` may run it: wake that one (its parker remembers the unpark). */
    asyncio__idle_unpark_worker(rt, home);
    asyncio__parker_unpark(rt, home);
}

static void sched_schedule(asyncio__scheduler *s, asyncio__task *t, bool yield)
{
    mt_runtime *rt = mt_of((asyncio_runtime *)s);
    mt_worker *w = current_worker(rt);
    if (ASYNCIO_UNLIKELY(t->pin >= 0)) {
        schedule_pinned(rt, w, t); /* from outside: inside a remote bracket (task.h) */
        return;
    }
    if (w != NULL) {
        if (!yield && w->polling) {
            /* acq_rel: publishes t to a stealer's exchange; takes over the previous one. */
            t = atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);
            if (t == NULL)
                return;
        }
        push_local(rt, w, t);
        return;
    }
    /* From outside: the caller is inside a remote bracket (task.h), so free waits. */
    if (asyncio__inject_push(&rt->inject, t))
        notify_parked(rt);
    else
        asyncio__task_drop_notified(t); /* shutting down */
}

/* A task's owned-list shard: from its address (allocations are >= 64-byte apart). */
static mt_owned_shard *owned_shard(mt_runtime *rt, const asyncio__task *t)
{
    uintptr_t a = (uintptr_t)t >> 6;
    return &rt->owned[(a ^ (a >> 7) ^ (a >> 17)) & rt->owned_mask];
}

static bool sched_release(asyncio__scheduler *s, asyncio__task *t)
{
    mt_runtime *rt = mt_of((asyncio_runtime *)s);
    mt_owned_shard *sh = owned_shard(rt, t);
    asyncio__spin_lock(&sh->lock);
    bool was_owned = asyncio__list_linked(&t->owned);
    if (was_owned)
        asyncio__list_remove(&t->owned);
    asyncio__spin_unlock(&sh->lock);
    return was_owned;
}

/* The last reference went (task.h): only the memory was left. */
static void sched_dealloc(asyncio__scheduler *s)
{
    asyncio__free(mt_of((asyncio_runtime *)s));
}

static const asyncio__scheduler_ops g_sched_ops = {sched_schedule, sched_release, sched_dealloc};

/* ------------------------------------------------------------------------ */
/* Worker: run                                                               */

void asyncio__mt_turn_driver(mt_runtime *rt, mt_worker *w, int timeout_ms, bool idle)
{
    int n = asyncio__driver_park_ex(&rt->base.driver, timeout_ms, idle);
    if (n > 0)
        ASYNCIO__METRIC_ADD(&w->metrics, io_events, (uint64_t)n);
}

static void poll_one(mt_worker *w, asyncio__task *t)
{
    unsigned ran = ASYNCIO_UNLIKELY(w->obs != NULL) ? w->obs_run(t, w->obs) : asyncio__task_run(t);
    if (ran & ASYNCIO__RAN_POLL)
        ASYNCIO__METRIC_ADD(&w->metrics, polls, 1);
    if (ran & ASYNCIO__RAN_BUDGET)
        ASYNCIO__METRIC_ADD(&w->metrics, budget_yields, 1);
}

/* Runs `t`, then what its wakes put in the LIFO slot (capped). */
static void run_task(mt_runtime *rt, mt_worker *w, asyncio__task *t)
{
    if (w->searching) {
        /* Found work: stop searching; the last searcher wakes another (more may be queued). */
        w->searching = false;
        if (asyncio__idle_from_searching(&rt->idle))
            notify_parked(rt);
    }
    w->polling = true;
    poll_one(w, t);
    for (int streak = 0;; streak++) {
        /* acquire: pairs with the depositing exchange (the entry's writes are visible). */
        t = atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel);
        if (t == NULL)
            break;
        if (streak == LIFO_MAX) {
            push_local(rt, w, t); /* behind the others: no LIFO ping-pong starvation */
            break;
        }
        ASYNCIO__METRIC_ADD(&w->metrics, lifo_hits, 1);
        poll_one(w, t);
    }
    w->polling = false;
}

/* Moves up to a fair share of inject into our ring; returns one entry to run. */
static asyncio__task *inject_batch(mt_runtime *rt, mt_worker *w)
{
    asyncio__task *first = asyncio__inject_pop(&rt->inject);
    if (first == NULL)
        return NULL;
    size_t len = asyncio__inject_len(&rt->inject);
    size_t n = len / rt->nworkers + 1;
    size_t room = asyncio__queue_remaining_slots(&w->queue);
    if (n > HALF)
        n = HALF;
    if (n > room)
        n = room;
    for (size_t i = 1; i < n; i++) {
        asyncio__task *t = asyncio__inject_pop(&rt->inject);
        if (t == NULL)
            break;
        drop_refused(asyncio__queue_push_back_or_overflow(&w->queue, t, &rt->inject));
    }
    return first;
}

static asyncio__task *local_next(mt_worker *w)
{
    asyncio__task *t;
    if (w->tick & 1) {
        if ((t = asyncio__fifo_pop(&w->pinned_local)) != NULL)
            return t;
        return asyncio__queue_pop(&w->queue);
    }
    if ((t = asyncio__queue_pop(&w->queue)) != NULL)
        return t;
    return asyncio__fifo_pop(&w->pinned_local);
}

static asyncio__task *next_task(mt_runtime *rt, mt_worker *w)
{
    asyncio__task *t;
    w->tick++;
    /* A countdown, not tick % event_interval (a runtime divisor is a div per task). */
    if (--w->until_event == 0) {
        w->until_event = rt->base.event_interval;
        /* Our own ring first: what tasks queued there goes out with this turn. */
        (void)asyncio__comp_worker_turn(&rt->base.driver.comp);
        if (!atomic_exchange_explicit(&rt->driver_busy, true, memory_order_acquire)) {
            asyncio__mt_turn_driver(rt, w, 0, false); /* busy tasks never starve I/O, timers */
            atomic_store_explicit(&rt->driver_busy, false, memory_order_release);
        }
    }
    if (w->tick % GLOBAL_INTERVAL == 0) {
        if ((t = pinned_remote_pop(w)) != NULL || (t = asyncio__inject_pop(&rt->inject)) != NULL)
            return t;
    }
    if ((t = local_next(w)) != NULL || (t = pinned_remote_pop(w)) != NULL)
        return t;
    return inject_batch(rt, w);
}

/* ------------------------------------------------------------------------ */
/* Worker: steal                                                             */

static uint32_t next_rand(mt_worker *w)
{
    uint32_t x = w->rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    w->rng = x;
    return x;
}

static asyncio__task *steal_from_others(mt_runtime *rt, mt_worker *w)
{
    uint32_t n = rt->nworkers, start = next_rand(w) % n;
    asyncio__task *t = NULL;
    for (uint32_t i = 0; i < n; i++) {
        mt_worker *v = &rt->workers[(start + i) % n];
        if (v == w)
            continue;
        uint32_t k = asyncio__queue_steal_into(&v->queue, &w->queue, &t);
        if (k > 0) {
            ASYNCIO__METRIC_ADD(&w->metrics, steals, 1);
            ASYNCIO__METRIC_ADD(&w->metrics, stolen, k);
            return t;
        }
    }
    /* Every ring was empty: a LIFO task whose worker is stuck in a long poll. */
    for (uint32_t i = 0; i < n; i++) {
        mt_worker *v = &rt->workers[(start + i) % n];
        if (v == w || atomic_load_explicit(&v->lifo, memory_order_relaxed) == NULL)
            continue;
        /* acq_rel: pairs with the owner's depositing exchange. */
        if ((t = atomic_exchange_explicit(&v->lifo, NULL, memory_order_acq_rel)) != NULL) {
            ASYNCIO__METRIC_ADD(&w->metrics, steals, 1);
            ASYNCIO__METRIC_ADD(&w->metrics, stolen, 1);
            return t;
        }
    }
    return NULL;
}

/*
 * Even a single worker becomes a searcher: only the last searcher re-checks
 * the queues before it sleeps, and a worker refused as searcher parks on
 * the strength of the searchers still running (mt.h, "Idle protocol").
 */
static asyncio__task *search(mt_runtime *rt, mt_worker *w)
{
    if (!w->searching && asyncio__idle_to_searching(&rt->idle))
        w->searching = true;
    asyncio__task *t = NULL;
    if (w->searching)
        t = steal_from_others(rt, w);
    if (t == NULL)
        t = inject_batch(rt, w);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Worker: park                                                              */

static bool has_local_work(mt_worker *w)
{
    return !asyncio__queue_is_empty(&w->queue) || w->pinned_local.head != NULL ||
           atomic_load_explicit(&w->pinned_remote_len, memory_order_relaxed) != 0;
}

/* Work any worker could take (checked by the last searcher before it sleeps). */
static bool has_shared_work(mt_runtime *rt)
{
    if (!asyncio__inject_is_empty(&rt->inject))
        return true;
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        if (!asyncio__queue_is_empty(&rt->workers[i].queue))
            return true;
    }
    return false;
}

/*
 * Steps:
 *   1. become a sleeper (idle_to_parked); the last searcher re-checks every
 *      queue and wakes a sleeper if it sees work (mt.h: no lost wake-up);
 *   2. a paused clock: if the whole runtime is now idle, unpark the driver
 *      holder so that its turn may auto-advance;
 *   3. sleep (parker: in the driver if free, else on the condvar) until
 *      woken: by a notifier (we are off the sleepers stack, maybe counted
 *      searching), by our own driver turn queueing work for us, or by
 *      shutdown.
 */
static void park(mt_runtime *rt, mt_worker *w)
{
    if (asyncio__idle_to_parked(rt, w) && has_shared_work(rt))
        notify_parked(rt);
    if (asyncio__idle_num_unparked(&rt->idle) == 0 &&
        asyncio__time_is_paused(&rt->base.driver.time))
        asyncio__driver_unpark(&rt->base.driver);
    ASYNCIO__METRIC_ADD(&w->metrics, parks, 1);
    /*
     * Our ring (comp.h "Rings"): while we sleep, its completion work and mail
     * wake us (through ring 0's poller, or the poster); checked after the
     * signals are on, so nothing that came before is missed.
     */
    asyncio__comp_driver *cd = &rt->base.driver.comp;
    asyncio__comp_worker_sleep(cd, true);
    for (;;) {
        if (!asyncio__comp_worker_pending(cd))
            asyncio__parker_park(rt, w);
        bool searching;
        if (asyncio__idle_leave_park(
                rt, w, has_local_work(w) || stopping(rt) || asyncio__comp_worker_pending(cd),
                &searching)) {
            w->searching = searching;
            break;
        }
    }
    asyncio__comp_worker_sleep(cd, false);
    ASYNCIO__METRIC_ADD(&w->metrics, unparks, 1);
    if (!asyncio__queue_is_empty(&w->queue))
        notify_parked(rt); /* our driver turn queued work: others may share it */
}

/*
 * Shutdown: a worker with a ring of its own leaves it (cancelling what is
 * on it) only once no worker runs tasks any more. A task polled on another
 * worker after that cancel would see its own send fail with ECANCELED, or
 * a receive cancelled under it (test_comp_runtime_shutdown_with_operations_
 * in_flight_reaps_them did, once in ~500 runs). `started` is read after
 * `stopping` was seen: the creator wrote it before setting that.
 */
static void leave_ring(mt_runtime *rt, asyncio__comp_driver *cd)
{
    atomic_fetch_add_explicit(&rt->stopped, 1, memory_order_acq_rel);
    if (!asyncio__comp_worker_can_wait(cd))
        return;
    for (unsigned spins = 0; atomic_load_explicit(&rt->stopped, memory_order_acquire) < rt->started;
         spins++) {
        if (spins < 100)
            asyncio__thread_yield();
        else
            asyncio__sleep_ms(1);
    }
    asyncio__comp_worker_leave(cd);
}

static void *worker_main(void *arg)
{
    mt_worker *w = arg;
    mt_runtime *rt = w->rt;
    w->until_event = rt->base.event_interval;
    tl_worker = w;
    asyncio__tl_runtime = &rt->base;
    asyncio__driver *prev = asyncio__driver_enter(&rt->base.driver);
    asyncio__task_cache_enter(&w->cache);
    asyncio__comp_driver *cd = &rt->base.driver.comp;
    asyncio__comp_worker_enter(cd, w->index);
    atomic_fetch_add_explicit(&rt->entered, 1, memory_order_release);
    while (!stopping(rt)) {
        asyncio__task *t = next_task(rt, w);
        /* Out of tasks: our ring's completions may wake some (onto our queue). */
        if (t == NULL && asyncio__comp_worker_turn(cd) > 0)
            t = next_task(rt, w);
        if (t == NULL)
            t = search(rt, w);
        if (t != NULL)
            run_task(rt, w, t);
        else
            park(rt, w);
    }
    leave_ring(rt, cd);
    asyncio__task_cache_enter(NULL);
    asyncio__driver_enter(prev);
    asyncio__tl_runtime = NULL;
    tl_worker = NULL;
    return NULL;
}

/*
 * Worker i's ring has completion work or mail while it sleeps (comp.h
 * "Rings"): wake it as a pinned task's push does. Our own ring: the park
 * loop sees it when the driver turn that reported it returns.
 */
static void wake_ring_owner(void *ctx, uint32_t i)
{
    mt_runtime *rt = ctx;
    mt_worker *w = &rt->workers[i];
    if (tl_worker == w)
        return;
    asyncio__idle_unpark_worker(rt, w);
    asyncio__parker_unpark(rt, w);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

static int workers_init(mt_runtime *rt)
{
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        mt_worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        w->rng = 0x9E3779B9u * (i + 1);
        asyncio__queue_init(&w->queue);
        asyncio__task_cache_init(&w->cache);
        atomic_init(&w->lifo, NULL);
        atomic_init(&w->pinned_remote_len, 0);
        int rc = asyncio__mutex_init(&w->pinned_lock);
        if (rc == 0 && (rc = asyncio__parker_init(&w->parker)) < 0)
            asyncio__mutex_destroy(&w->pinned_lock);
        if (rc < 0) {
            while (i-- > 0) {
                asyncio__parker_destroy(&rt->workers[i].parker);
                asyncio__mutex_destroy(&rt->workers[i].pinned_lock);
            }
            return rc;
        }
    }
    return 0;
}

static void workers_destroy(mt_runtime *rt)
{
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        mt_worker *w = &rt->workers[i];
        asyncio__queue_destroy(&w->queue);
        ASYNCIO_CHECK(atomic_load(&w->lifo) == NULL && w->pinned_local.head == NULL &&
                      w->pinned_remote.head == NULL);
        asyncio__parker_destroy(&w->parker);
        asyncio__mutex_destroy(&w->pinned_lock);
        asyncio__task_cache_drain(&w->cache); /* the worker thread is joined (or never ran) */
    }
}

/* Tells every worker to stop and joins those started. */
static void stop_workers(mt_runtime *rt)
{
    /* release: pairs with stopping()'s acquire. */
    atomic_store_explicit(&rt->stopping, true, memory_order_release);
    for (uint32_t i = 0; i < rt->started; i++)
        asyncio__parker_unpark(rt, &rt->workers[i]);
    for (uint32_t i = 0; i < rt->started; i++)
        asyncio__thread_join(&rt->workers[i].thread);
    rt->started = 0;
}

/* Frees the shard array (spinlocks need no teardown). */
static void owned_destroy(mt_runtime *rt)
{
    asyncio__free(rt->owned_mem);
    rt->owned = NULL;
    rt->owned_mem = NULL;
}

/* Four shards per worker, rounded up to a power of two (as Tokio sizes its own). */
static int owned_init(mt_runtime *rt, uint32_t workers)
{
    uint32_t shards = 1;
    while (shards < 4 * workers)
        shards <<= 1;
    /* The allocation hook promises malloc's alignment: align the shards by hand. */
    rt->owned_mem = asyncio__calloc(shards + 1, sizeof *rt->owned);
    if (rt->owned_mem == NULL)
        return ASYNCIO_ENOMEM;
    uintptr_t a = ((uintptr_t)rt->owned_mem + 63) & ~(uintptr_t)63;
    rt->owned = (mt_owned_shard *)a;
    for (uint32_t i = 0; i < shards; i++) {
        atomic_init(&rt->owned[i].lock.held, false);
        asyncio__list_init(&rt->owned[i].list);
        rt->owned[i].closed = false;
    }
    rt->owned_mask = shards - 1;
    return 0;
}

/* Frees what mt_alloc / init set up (workers stopped, queues empty). */
static void mt_release(mt_runtime *rt, bool base_ready)
{
    workers_destroy(rt);
    asyncio__idle_destroy(&rt->idle);
    asyncio__inject_destroy(&rt->inject);
    owned_destroy(rt);
    if (base_ready)
        ASYNCIO_CHECK(asyncio__runtime_base_close(&rt->base) == 0);
    asyncio__free(rt->workers);
    asyncio__sched_unref(&rt->base.sched); /* the handle's: the memory goes with the last task */
}

static int mt_init(mt_runtime *rt, uint32_t n, const asyncio_runtime_options *opts)
{
    rt->nworkers = n;
    atomic_init(&rt->driver_busy, false);
    atomic_init(&rt->stopping, false);
    atomic_init(&rt->entered, 0);
    atomic_init(&rt->stopped, 0);
    atomic_init(&rt->pin_rr, 0);
    int rc = owned_init(rt, n);
    if (rc < 0)
        return rc;
    if ((rc = asyncio__inject_init(&rt->inject)) < 0)
        goto fail_owned;
    if ((rc = asyncio__idle_init(&rt->idle, n)) < 0)
        goto fail_inject;
    if ((rc = workers_init(rt)) < 0)
        goto fail_idle;
    if ((rc = asyncio__runtime_base_init(&rt->base, ASYNCIO_RUNTIME_MULTI_THREAD, &g_sched_ops, n,
                                         opts)) < 0)
        goto fail_workers;
    for (uint32_t i = 0; i < n; i++) {
        mt_worker *w = &rt->workers[i];
        w->obs = asyncio__obs_worker(&rt->base, i, &w->metrics.polls);
        w->obs_run = w->obs != NULL ? asyncio__task_run_for(w->obs) : NULL;
    }
    if ((rc = asyncio__comp_driver_workers(&rt->base.driver.comp, n, wake_ring_owner, rt)) < 0) {
        ASYNCIO_CHECK(asyncio__runtime_base_close(&rt->base) == 0);
        goto fail_workers;
    }
    return 0;

fail_workers:
    workers_destroy(rt);
fail_idle:
    asyncio__idle_destroy(&rt->idle);
fail_inject:
    asyncio__inject_destroy(&rt->inject);
fail_owned:
    owned_destroy(rt);
    return rc;
}

int asyncio__mt_new(asyncio_runtime **out, const asyncio_runtime_options *opts)
{
    uint32_t n = opts->workers != 0 ? opts->workers : asyncio__cpu_count();
    if (n > ASYNCIO__MT_MAX_WORKERS)
        return ASYNCIO_EINVAL;
    mt_runtime *rt = asyncio__calloc(1, sizeof *rt);
    if (rt == NULL)
        return ASYNCIO_ENOMEM;
    rt->workers = asyncio__calloc(n, sizeof *rt->workers);
    if (rt->workers == NULL) {
        asyncio__free(rt);
        return ASYNCIO_ENOMEM;
    }
    int rc = mt_init(rt, n, opts);
    if (rc < 0) {
        asyncio__free(rt->workers);
        asyncio__free(rt);
        return rc;
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = asyncio__thread_spawn(&rt->workers[i].thread, worker_main, &rt->workers[i])) <
            0) {
            stop_workers(rt); /* nothing was spawned on it yet: the queues are empty */
            mt_release(rt, true);
            return rc;
        }
        rt->started++;
    }
    /*
     * Every worker has made its ring (and its fds) before the runtime is
     * handed out: what a program sees of the runtime does not change under
     * it while workers start (fd counts, the driver's worker_rings).
     */
    for (unsigned spins = 0; atomic_load_explicit(&rt->entered, memory_order_acquire) < n; spins++) {
        if (spins < 100)
            asyncio__thread_yield();
        else
            asyncio__sleep_ms(1);
    }
    if ((rc = asyncio__obs_start(&rt->base)) < 0) {
        stop_workers(rt);
        mt_release(rt, true);
        return rc;
    }
    *out = &rt->base;
    return 0;
}

void asyncio__mt_visit(const asyncio_runtime *base, asyncio__task_visit_fn fn, void *arg)
{
    mt_runtime *rt = mt_of((asyncio_runtime *)base);
    for (uint32_t i = 0; i <= rt->owned_mask; i++) {
        mt_owned_shard *sh = &rt->owned[i];
        asyncio__spin_lock(&sh->lock);
        for (asyncio__list *l = sh->list.next; l != &sh->list; l = l->next)
            fn(arg, ASYNCIO_CONTAINER_OF(l, asyncio__task, owned));
        asyncio__spin_unlock(&sh->lock);
    }
}

int asyncio__mt_spawn(asyncio_runtime *base, asyncio__task *t, asyncio_join_handle **jh,
                      unsigned flags)
{
    mt_runtime *rt = mt_of(base);
    mt_worker *w = current_worker(rt);
    bool remote = asyncio__sched_enter_remote(&base->sched); /* from outside: free waits */
    if (flags & ASYNCIO__SPAWN_PINNED) {
        uint32_t rr = atomic_fetch_add_explicit(&rt->pin_rr, 1, memory_order_relaxed);
        t->pin = (int16_t)(w != NULL ? w->index : rr % rt->nworkers);
    }
    mt_owned_shard *sh = owned_shard(rt, t);
    asyncio__spin_lock(&sh->lock);
    bool closed = sh->closed;
    if (!closed)
        asyncio__list_push_back(&sh->list, &t->owned);
    asyncio__spin_unlock(&sh->lock);
    if (closed) {
        asyncio__sched_leave_remote(&base->sched, remote);
        if (!(flags & ASYNCIO__SPAWN_KEEP))
            asyncio__task_dealloc(t); /* never published: no callback ran, none will */
        return ASYNCIO_ECANCELED;
    }
    if (w != NULL)
        ASYNCIO__METRIC_ADD(&w->metrics, spawned, 1);
    else
        atomic_fetch_add_explicit(&base->remote_spawned, 1, memory_order_relaxed);
    if (jh != NULL)
        *jh = (asyncio_join_handle *)t; /* else it was made detached (ASYNCIO__TASK_NEW_DETACHED) */
    sched_schedule(&base->sched, t, false); /* inside a poll: the LIFO slot (chained spawns) */
    asyncio__sched_leave_remote(&base->sched, remote);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* block_on: the caller waits on a condition variable                        */

/*
 * The waiter is reference counted (one per waker clone, one for block_on):
 * the task's completion may still be inside wake() when block_on has seen
 * COMPLETE and returned.
 */
typedef struct mt_waiter {
    _Atomic int refs;
    asyncio__mutex lock;
    asyncio__cond cond;
    bool woken; /* guarded by lock */
} mt_waiter;

static void waiter_unref(mt_waiter *wt)
{
    /* acq_rel: the last one sees every other holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&wt->refs, 1, memory_order_acq_rel) == 1) {
        asyncio__cond_destroy(&wt->cond);
        asyncio__mutex_destroy(&wt->lock);
        asyncio__free(wt);
    }
}

static asyncio_waker waiter_clone(const void *data);

static void waiter_wake_by_ref(const void *data)
{
    mt_waiter *wt = (mt_waiter *)data;
    asyncio__mutex_lock(&wt->lock);
    wt->woken = true;
    asyncio__cond_signal(&wt->cond);
    asyncio__mutex_unlock(&wt->lock);
}

static void waiter_drop(const void *data)
{
    waiter_unref((mt_waiter *)data);
}

static void waiter_wake(const void *data)
{
    waiter_wake_by_ref(data);
    waiter_drop(data);
}

static const asyncio_waker_vtable g_waiter_vtable = {
    waiter_clone,
    waiter_wake,
    waiter_wake_by_ref,
    waiter_drop,
};

static asyncio_waker waiter_clone(const void *data)
{
    /* Relaxed: a clone is made from a live reference. */
    atomic_fetch_add_explicit(&((mt_waiter *)data)->refs, 1, memory_order_relaxed);
    return (asyncio_waker){&g_waiter_vtable, data};
}

static mt_waiter *waiter_new(void)
{
    mt_waiter *wt = asyncio__calloc(1, sizeof *wt);
    if (wt == NULL)
        return NULL;
    atomic_init(&wt->refs, 1);
    if (asyncio__mutex_init(&wt->lock) < 0) {
        asyncio__free(wt);
        return NULL;
    }
    if (asyncio__cond_init(&wt->cond) < 0) {
        asyncio__mutex_destroy(&wt->lock);
        asyncio__free(wt);
        return NULL;
    }
    return wt;
}

int asyncio__mt_block_on(asyncio_runtime *base, const asyncio_task_vtable *vt,
                         const void *init_state, void *output)
{
    if (asyncio__tl_runtime != NULL)
        return ASYNCIO_EBUSY; /* inside a task: blocking here could deadlock the worker */
    mt_waiter *wt = waiter_new();
    if (wt == NULL)
        return ASYNCIO_ENOMEM;
    asyncio_join_handle *jh;
    int rc = asyncio_spawn(base, vt, init_state, &jh);
    if (rc < 0) {
        waiter_unref(wt);
        return rc;
    }
    asyncio_waker waker = {&g_waiter_vtable, wt};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&waker);
    while ((rc = asyncio_join_handle_poll(jh, &cx, output)) == ASYNCIO_PENDING) {
        asyncio__mutex_lock(&wt->lock);
        while (!wt->woken)
            asyncio__cond_wait(&wt->cond, &wt->lock);
        wt->woken = false;
        asyncio__mutex_unlock(&wt->lock);
    }
    asyncio_join_handle_drop(jh); /* drops the stored waker clone, if any */
    waiter_unref(wt);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                  */

/* Step 1: refuse new spawns and every queue that other threads push to. */
static void close_everything(mt_runtime *rt)
{
    for (uint32_t i = 0; i <= rt->owned_mask; i++) {
        asyncio__spin_lock(&rt->owned[i].lock);
        rt->owned[i].closed = true;
        asyncio__spin_unlock(&rt->owned[i].lock);
    }
    asyncio__inject_close(&rt->inject);
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        mt_worker *w = &rt->workers[i];
        asyncio__mutex_lock(&w->pinned_lock);
        w->pinned_closed = true;
        asyncio__mutex_unlock(&w->pinned_lock);
    }
}

/* Step 3: cancel every owned task; nothing runs concurrently any more. */
static void cancel_owned(mt_runtime *rt)
{
    for (uint32_t i = 0; i <= rt->owned_mask; i++) {
        mt_owned_shard *sh = &rt->owned[i];
        for (;;) {
            asyncio__spin_lock(&sh->lock);
            asyncio__list *n = asyncio__list_first(&sh->list);
            if (n != NULL)
                asyncio__list_remove(n); /* its owner reference is ours now */
            asyncio__spin_unlock(&sh->lock);
            if (n == NULL)
                break;
            /* A drop may spawn: the shards are closed, so nothing joins a done shard. */
            asyncio__task_shutdown_unowned(ASYNCIO_CONTAINER_OF(n, asyncio__task, owned));
        }
    }
}

/* Step 4: every entry left belongs to a completed task: let go of it. */
static void drain_queues(mt_runtime *rt)
{
    asyncio__task *t;
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        mt_worker *w = &rt->workers[i];
        if ((t = atomic_exchange(&w->lifo, NULL)) != NULL)
            asyncio__task_drop_entry(t);
        while ((t = asyncio__queue_pop(&w->queue)) != NULL)
            asyncio__task_drop_entry(t);
        while ((t = asyncio__fifo_pop(&w->pinned_local)) != NULL)
            asyncio__task_drop_entry(t);
        asyncio__mutex_lock(&w->pinned_lock);
        asyncio__task_fifo remote = w->pinned_remote;
        w->pinned_remote = (asyncio__task_fifo){NULL, NULL};
        atomic_store_explicit(&w->pinned_remote_len, 0, memory_order_relaxed);
        asyncio__mutex_unlock(&w->pinned_lock);
        while ((t = asyncio__fifo_pop(&remote)) != NULL)
            asyncio__task_drop_entry(t);
    }
    while ((t = asyncio__inject_pop(&rt->inject)) != NULL)
        asyncio__task_drop_entry(t);
}

/*
 * Steps (docs/scheduler.md "Shutdown"):
 *   1. close: spawns fail with ECANCELED; wakes from now on are refused
 *      by the inject and pinned queues (their entries just let go: the
 *      task keeps NOTIFIED and step 3 cancels it);
 *   2. stop the workers: each finishes the poll it is in, sees `stopping`
 *      and exits; join them all. From here this thread is the only one
 *      touching the queues (the joins order everything before);
 *   3. cancel every owned task, taking it off the owned list first (so we
 *      hold its owner reference while touching it); every one is idle now,
 *      so to_shutdown claims it and its drop runs here, exactly once;
 *   4. drain the queues (drop_entry checks each task is complete);
 *   5. shut the blocking pool down.
 * Drops run with this thread acting as the runtime's thread, so they find
 * the drivers; a drop that wakes or spawns meets closed queues.
 */
void asyncio__mt_shutdown(asyncio_runtime *base)
{
    mt_runtime *rt = mt_of(base);
    if (rt->shut_down || asyncio__tl_runtime != NULL)
        return;
    asyncio__obs_stop(base); /* before anything is torn down */
    close_everything(rt);
    stop_workers(rt);
    asyncio__tl_runtime = base;
    asyncio__driver *prev = asyncio__driver_enter(&base->driver);
    cancel_owned(rt);
    drain_queues(rt);
    asyncio__blocking_pool_shutdown(&base->blocking);
    drain_queues(rt); /* wakes from jobs that were still running hit closed queues; none left */
    asyncio__driver_enter(prev);
    asyncio__tl_runtime = NULL;
    rt->shut_down = true;
}

int asyncio__mt_free(asyncio_runtime *base)
{
    mt_runtime *rt = mt_of(base);
    if (asyncio__tl_runtime != NULL)
        return ASYNCIO_EBUSY; /* from inside a task */
    asyncio__mt_shutdown(base);
    asyncio__runtime_quiesce(base);
    int rc = asyncio__runtime_base_close(base);
    if (rc < 0)
        return rc;
    mt_release(rt, false);
    return 0;
}

uint32_t asyncio__mt_num_workers(const asyncio_runtime *base)
{
    return ((const mt_runtime *)base)->nworkers;
}

void asyncio__mt_metrics(const asyncio_runtime *base, uint32_t worker, asyncio_worker_metrics *out)
{
    mt_runtime *rt = mt_of((asyncio_runtime *)base);
    mt_worker *w = &rt->workers[worker];
    asyncio__metrics_read(&w->metrics, out);
    out->overflows = atomic_load_explicit(&w->queue.overflows, memory_order_relaxed);
    out->local_queue_depth = asyncio__queue_len(&w->queue) +
                             (atomic_load_explicit(&w->lifo, memory_order_relaxed) != NULL);
    out->global_queue_depth = asyncio__inject_len(&rt->inject);
}
