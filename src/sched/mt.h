/*
 * The multi-thread runtime's internal types (multi_thread.c: workers,
 * scheduling, lifecycle; mt_idle.c: the idle protocol and the parker).
 * docs/scheduler.md tells the design; the protocols are commented here and
 * at each atomic operation.
 *
 * Ownership of each worker's fields:
 *   owner only      tick, searching, polling, rng, pinned_local, cache
 *   any thread      queue (steal side), lifo, pinned_remote (its lock),
 *                   parker, metrics (read side)
 *   idle lock       sleeping, woke_searching
 */
#ifndef ASYNCIO_SCHED_MT_H
#define ASYNCIO_SCHED_MT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/thread.h"
#include "sched/queue.h"
#include "sched/runtime_int.h"

#define ASYNCIO__MT_MAX_WORKERS 1024u

typedef struct mt_runtime mt_runtime;

/*
 * Parker: how one worker sleeps. state:
 *   EMPTY     running, or about to park
 *   COND      asleep on `cond` (under `lock`)
 *   DRIVER    asleep in the driver's poller (it holds the driver flag)
 *   RING      asleep on its own io_uring (a worker with a ring of its own,
 *             src/reactor/comp.h "Rings"): its completions or a wake end it
 *   NOTIFIED  an unpark came: the next (or current) park returns
 * unpark() swaps in NOTIFIED and wakes whatever the old state says sleeps:
 * COND -> lock/unlock (so the sleeper is inside cond_wait or has not yet
 * checked) then signal; DRIVER -> the driver's unpark waker. park() consumes
 * NOTIFIED. Every state RMW is acq_rel: the unparker's writes before unpark
 * (queue pushes) happen-before the parked worker's reads after it wakes.
 */
enum { PARK_EMPTY = 0, PARK_COND = 1, PARK_DRIVER = 2, PARK_NOTIFIED = 3, PARK_RING = 4 };

typedef struct asyncio__parker {
    _Atomic int state;
    asyncio__mutex lock;
    asyncio__cond cond;
} asyncio__parker;

typedef struct mt_worker {
    mt_runtime *rt;
    uint32_t index;
    asyncio__thread thread;

    /* Owner only. */
    uint64_t tick;
    uint32_t until_event; /* tasks left before the next non-blocking driver turn */
    bool searching; /* counted in the idle state's searching field */
    bool polling;   /* inside run_task: wakes may use the LIFO slot */
    uint32_t rng;
    asyncio__task_fifo pinned_local;

    /* Shared. */
    asyncio__queue queue;             /* steal-half ring (queue.h) */
    _Atomic(asyncio__task *) lifo;    /* LIFO slot: see multi_thread.c "LIFO slot" */
    asyncio__mutex pinned_lock;       /* guards pinned_remote, pinned_closed */
    asyncio__task_fifo pinned_remote;            /* pinned entries queued by other threads */
    bool pinned_closed;               /* shutdown: refuse remote pinned entries */
    _Atomic size_t pinned_remote_len; /* hint; written under pinned_lock */
    asyncio__parker parker;

    /* Guarded by the idle lock. */
    bool sleeping;       /* on the sleepers stack (counted as parked) */
    bool woke_searching; /* the notifier counted us as searching */

    asyncio__metrics metrics;
    asyncio__worker_obs *obs; /* its poll record (owner writes), NULL when nothing is observed */
    asyncio__task_run_fn obs_run; /* asyncio__task_run_for(obs) when obs is set */
    asyncio__task_cache cache; /* owner only: task blocks (task/block_cache.h) */
} mt_worker;

/*
 * Idle protocol (Tokio's): one atomic word counts the workers that are
 * searching (stealing) and those unparked; the sleepers stack under `lock`
 * lists the parked ones.
 *
 *   state   bits 15..0   searching
 *           bits 31..16  unparked (running, searching or about to park)
 *
 * Every RMW of state is seq_cst. The no-lost-wake-up argument is Dekker's,
 * with every access involved seq_cst (no standalone fence, so TSan sees the
 * orderings as they are):
 *   pusher   store the queue's tail / inject's len (seq_cst);  load state (seq_cst)
 *   parker   RMW state (seq_cst);  load every tail / len (seq_cst, queue_len)
 * All four are in the single total order S. If the pusher's load comes
 * before the parker's RMW, its store came earlier still, so the parker's
 * later loads see the push; otherwise the pusher's load sees the RMW. So
 * either the pusher sees no searcher and wakes a sleeper, or the last
 * searcher sees the work and wakes one (tokio#6847). Tokio reads state with
 * an RMW (fetch_add 0): correct too, but every push then takes the line
 * exclusive, and with every worker pushing (yield_many) that line bounced
 * between the cores for half of the scheduler's time. A seq_cst load keeps
 * it shared while no worker parks or unparks; the push's seq_cst store
 * (an xchg on x86) is on the pusher's own line.
 */
typedef struct asyncio__idle {
    _Atomic uint32_t state;
    uint32_t workers;
    asyncio__mutex lock;
    uint32_t *sleepers; /* stack of worker indices, guarded by lock */
    uint32_t nsleepers;
} asyncio__idle;

/* One shard of the owned-task list; each on its own cache line. */
typedef struct mt_owned_shard {
    _Alignas(64) asyncio__spinlock lock; /* guards list, closed (a few instructions) */
    asyncio__list list;
    bool closed; /* shutdown began: spawns fail */
} mt_owned_shard;

struct mt_runtime {
    asyncio_runtime base; /* first */
    uint32_t nworkers;
    mt_worker *workers;
    asyncio__inject inject;
    asyncio__idle idle;
    _Atomic bool driver_busy; /* the driver flag: its holder alone turns the driver */
    _Atomic bool stopping;    /* shutdown: workers exit */
    _Atomic uint32_t pin_rr;  /* round-robin for pinned spawns from outside */
    uint32_t started;         /* worker threads started (creator thread only) */
    _Atomic uint32_t entered; /* workers past their setup (own ring made or not): creation waits */
    _Atomic uint32_t stopped; /* workers out of their task loop: a worker ring is left after all */
    bool shut_down;           /* creator thread only */

    /*
     * Every live task, for shutdown: sharded so that spawns and completions
     * on different workers rarely meet on one lock (a single list lock was
     * a fifth of spawn_many's time on 2 workers). A task's shard follows
     * from its address (owned_shard in multi_thread.c), so nothing is stored.
     */
    mt_owned_shard *owned; /* 64-byte aligned inside owned_mem */
    void *owned_mem;
    uint32_t owned_mask; /* shards - 1; shards is a power of two */
};

/* ---- idle protocol (mt_idle.c) ------------------------------------------ */

int asyncio__idle_init(asyncio__idle *idle, uint32_t workers);
void asyncio__idle_destroy(asyncio__idle *idle);
/* A worker with nothing to run asks to search; false when half already do. */
bool asyncio__idle_to_searching(asyncio__idle *idle);
/* A searcher found work; true when it was the last searcher (then notify). */
ASYNCIO__MUST_USE bool asyncio__idle_from_searching(asyncio__idle *idle);
/* Picks a sleeper to wake (counted unparked + searching), or -1 when none should be. */
ASYNCIO__MUST_USE int32_t asyncio__idle_worker_to_notify(mt_runtime *rt);
/* Parks `w`; true when it was the last searcher (it must re-check every queue). */
ASYNCIO__MUST_USE bool asyncio__idle_to_parked(mt_runtime *rt, mt_worker *w);
/* Takes `w` off the sleepers (counted unparked, not searching); false if it was not there. */
bool asyncio__idle_unpark_worker(mt_runtime *rt, mt_worker *w);
/*
 * After a park returned. If a notifier woke `w` (it is off the sleepers stack):
 * true, and *searching says whether the notifier counted it searching. Else,
 * if `must_leave` (local work, or stopping): takes it off the stack itself
 * (counted unparked, not searching) and returns true. Else false: still a
 * sleeper. One locked section, so no notifier can pop `w` in between.
 */
ASYNCIO__MUST_USE bool asyncio__idle_leave_park(mt_runtime *rt, mt_worker *w, bool must_leave, bool *searching);
/* Test hook: called at the start of asyncio__idle_leave_park when set (tests only). */
extern void (*asyncio__idle_leave_park_hook)(mt_runtime *rt, mt_worker *w);
/* Workers not parked now. */
uint32_t asyncio__idle_num_unparked(asyncio__idle *idle);

/* ---- parker (mt_idle.c) --------------------------------------------------- */

int asyncio__parker_init(asyncio__parker *p);
void asyncio__parker_destroy(asyncio__parker *p);
/* Sleeps until unparked; turns the driver meanwhile if nobody else does. */
void asyncio__parker_park(mt_runtime *rt, mt_worker *w);
void asyncio__parker_unpark(mt_runtime *rt, mt_worker *w);

/* Turns the driver (multi_thread.c): counts its I/O events in w's metrics. */
void asyncio__mt_turn_driver(mt_runtime *rt, mt_worker *w, int timeout_ms, bool idle);

#endif
