/*
 * libasyncio: time — sleep, interval, timeout, and the paused clock.
 *
 * Time is the runtime's clock: uint64_t milliseconds since the runtime was
 * created, monotonic (asyncio_time_now_ms() reads it). Resolution is 1 ms.
 *
 * Timers are futures the caller embeds (full structs below; touch only the
 * fields marked public). They bind to a runtime lazily: the first poll finds
 * the runtime running on the calling thread and registers with its time
 * driver; polling outside a runtime returns ASYNCIO_EINVAL.
 *
 * Never early: a timer with deadline D completes at the first driver turn
 * at which the runtime clock is >= D (one whose deadline the driver has
 * already passed completes at its first poll). With the real clock, a
 * relative timer (asyncio_sleep_init, asyncio_timeout_init) rounds its
 * start up to the next whole ms, so it lasts at least its duration in real
 * time; with the paused clock its deadline is exactly now + duration.
 *
 * Moving: every timer here is movable until its first poll: initialise it
 * in a task's initial state and let asyncio_spawn copy it (its links into
 * the driver are made at the first poll and an unlinked timer holds no
 * pointer to itself). After the first poll it may be registered with the
 * driver, which points at it: it must stay where it is until dropped.
 *
 * Ownership: the caller owns the struct and must call its _drop before the
 * memory goes away if it was ever polled (dropping is idempotent and also
 * fine on a never-polled or finished timer). Drop unregisters
 * synchronously: after it returns, the runtime holds no reference to the
 * struct.
 *
 * Thread-safety: a timer belongs to one task: poll, reset and drop it from
 * one thread at a time, on any thread of the runtime it is bound to (on
 * the multi-thread runtime its task may move between workers; the timer
 * driver's lock guards the wheel). Wakes reach tasks through their wakers,
 * which are thread-safe. The clock functions below may be called from any
 * thread of the runtime.
 *
 * Paused clock (for tests): a paused clock moves only through
 * asyncio_time_advance() and auto-advance: when the runtime has nothing to
 * do but wait for timers, it jumps straight to the next one, so tests that
 * sleep for hours finish instantly and deterministically. Create the
 * runtime paused (asyncio_runtime_options.start_paused) or call
 * asyncio_time_pause() from a task.
 */
#ifndef ASYNCIO_TIME_H
#define ASYNCIO_TIME_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "future.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* Futures as poll functions                                                 */

/**
 * A future given as a bare poll function plus its state pointer, with no
 * output and no drop: returns ASYNCIO_PENDING (having arranged a wake
 * through cx) or its result (0 or a negative error). The older, borrowed
 * form that asyncio_timeout_init() and asyncio_retry_init() take; new code
 * uses asyncio_future (future.h), which every leaf adapts to (adapt.h).
 */
typedef int (*asyncio_future_poll_fn)(void *fut, asyncio_context *cx);

/* ------------------------------------------------------------------------ */
/* Timer record                                                              */

/**
 * A timer-wheel entry. Private: never touch it. This is the wheel's own
 * entry type (src/time/wheel.h), defined here so that futures embed it and
 * the library uses it with no cast.
 */
typedef struct asyncio_timer_entry {
    /* private */
    uint64_t deadline;
    asyncio_link node; /* NULL links while in no list */
    uint8_t level;
    uint8_t slot;
} asyncio_timer_entry;

/**
 * The runtime's timer record: a wheel entry and the waker to wake.
 * Private: never touch it (the time driver's own type, src/time/driver.h).
 */
typedef struct asyncio_timer_record {
    /* private */
    asyncio_timer_entry entry;
    asyncio_waker waker;
} asyncio_timer_record;

/* ------------------------------------------------------------------------ */
/* Sleep                                                                     */

/**
 * A future that completes when a deadline is reached. Embeddable:
 * initialise with asyncio_sleep_init() or asyncio_sleep_init_until(),
 * poll with asyncio_sleep_poll(), release with asyncio_sleep_drop().
 * Movable until its first poll (and after asyncio_sleep_drop); not while
 * it may be registered.
 */
typedef struct asyncio_sleep {
    /* private */
    asyncio_timer_record timer; /* registered in the driver while pending */
    void *driver;               /* the time driver bound at the first poll, or NULL */
    uint64_t deadline;          /* absolute deadline, or the duration before binding */
    uint8_t state;              /* see src/time/sleep.c */
} asyncio_sleep;

ASYNCIO_BEGIN_DECLS

/**
 * Initialises a sleep of `duration_ms` milliseconds, counted from its
 * first poll (deadline = runtime now at the first poll + duration,
 * saturating). Allocates nothing, never fails, needs no runtime.
 * Any thread (the struct is not shared yet).
 */
ASYNCIO_EXTERN void asyncio_sleep_init(asyncio_sleep *s, uint64_t duration_ms);

/**
 * Initialises a sleep until the absolute `deadline_ms` of the runtime
 * clock (see asyncio_time_now_ms(); UINT64_MAX never fires in practice).
 * Allocates nothing, never fails, needs no runtime.
 */
ASYNCIO_EXTERN void asyncio_sleep_init_until(asyncio_sleep *s, uint64_t deadline_ms);

/**
 * Polls the sleep. Returns 0 once the deadline has been reached (and keeps
 * returning 0 on later polls), or ASYNCIO_PENDING having registered the
 * timer and stored a clone of cx's waker (woken once, when it fires).
 * Before returning 0 it takes a unit of the task's cooperative budget
 * (asyncio_coop_proceed), so it may return ASYNCIO_PENDING once more when
 * the budget is used up.
 *
 * Errors: ASYNCIO_EINVAL if polled outside a runtime, or on a different
 * runtime than the one its first poll bound it to (nothing is stored).
 * Allocates nothing. Call from a task (or a hand-made context) on the
 * runtime's thread.
 */
ASYNCIO_EXTERN int asyncio_sleep_poll(asyncio_sleep *s, asyncio_context *cx);

/**
 * Moves the deadline to the absolute `deadline_ms` (runtime clock), also
 * for a sleep that already completed: it becomes pending again until the
 * new deadline. If a task is waiting on it, that task's waker stays
 * registered and is woken at the new deadline (at the next driver turn if
 * it lies in the past). Works before the first poll too. Never fails,
 * allocates nothing. Runtime thread only once the sleep was polled.
 */
ASYNCIO_EXTERN void asyncio_sleep_reset(asyncio_sleep *s, uint64_t deadline_ms);

/**
 * Cancels the sleep: unregisters its timer synchronously and drops the
 * stored waker, so nothing refers to `s` any more and its memory may be
 * reused. Idempotent; fine on a never-polled or completed sleep, and after
 * the runtime was freed (its teardown already unregistered every timer).
 * Polling after drop is not allowed unless the sleep is initialised again.
 * Runtime thread only (if it was polled).
 */
ASYNCIO_EXTERN void asyncio_sleep_drop(asyncio_sleep *s);

/* ------------------------------------------------------------------------ */
/* Interval                                                                  */

/**
 * What an interval does when ticks were missed because the consumer (or
 * the runtime) was late by more than ASYNCIO_INTERVAL_LATE_MS. With
 * period P and first tick at S, ticks are scheduled at S, S+P, S+2P...
 */
typedef enum asyncio_missed_tick {
    /** Catch up: the missed ticks complete back to back, then the schedule resumes. */
    ASYNCIO_MISSED_TICK_BURST = 0,
    /** Restart the schedule: the next tick is one period after the late one was seen. */
    ASYNCIO_MISSED_TICK_DELAY = 1,
    /** Drop missed ticks: the next tick is the next multiple of P after S that lies ahead. */
    ASYNCIO_MISSED_TICK_SKIP = 2
} asyncio_missed_tick;

/**
 * A tick seen this many ms (or less) after its scheduled time counts as on
 * time: the next one stays on schedule whatever the policy (absorbs wake-up
 * latency with the real clock).
 */
#define ASYNCIO_INTERVAL_LATE_MS 5

/**
 * A stream of ticks every period. Embeddable: initialise with
 * asyncio_interval_init(), poll with asyncio_interval_poll_tick(),
 * release with asyncio_interval_drop(). Movable until its first poll.
 */
typedef struct asyncio_interval {
    /* private */
    asyncio_sleep sleep; /* waits for the next tick */
    uint64_t period;
    uint8_t policy;
    bool started; /* the first tick was delivered */
} asyncio_interval;

/**
 * Initialises an interval of `period_ms` with the given missed-tick
 * policy. The first tick completes at the first poll; the following ones
 * every period after it. Allocates nothing, needs no runtime.
 *
 * Errors: ASYNCIO_EINVAL if period_ms is 0 or the policy is unknown (the
 * struct is still safe to drop, and polling it returns ASYNCIO_EINVAL).
 */
ASYNCIO_EXTERN int asyncio_interval_init(asyncio_interval *iv, uint64_t period_ms,
                                         asyncio_missed_tick policy);

/**
 * Polls for the next tick. Returns 0 with *tick_ms (if non-NULL) set to the
 * tick's scheduled time (for a late tick, the time it was due, not when it
 * was seen), or ASYNCIO_PENDING having stored cx's waker. Takes a unit of
 * cooperative budget per tick.
 *
 * Errors: ASYNCIO_EINVAL outside a runtime, on another runtime than the
 * first poll's, or for an interval whose init failed. Runtime thread only.
 */
ASYNCIO_EXTERN int asyncio_interval_poll_tick(asyncio_interval *iv, asyncio_context *cx,
                                              uint64_t *tick_ms);

/** Releases the interval (as asyncio_sleep_drop()). Idempotent. Runtime thread only. */
ASYNCIO_EXTERN void asyncio_interval_drop(asyncio_interval *iv);

/* ------------------------------------------------------------------------ */
/* Timeout                                                                   */

/**
 * Runs a future with a time limit (Tokio's timeout / timeout_at).
 * Embeddable: initialise with asyncio_timeout_init_future() (a relative
 * limit), asyncio_timeout_at_init() (an absolute deadline) or the older
 * asyncio_timeout_init() (a borrowed poll function); poll with
 * asyncio_timeout_poll() or as a future (asyncio_timeout_future());
 * release with asyncio_timeout_drop(). Movable until its first poll.
 */
typedef struct asyncio_timeout {
    /* private */
    asyncio_sleep sleep;
    asyncio_future inner;      /* the wrapped future; empty once it finished or was dropped */
    asyncio_future_poll_fn fn; /* asyncio_timeout_init's form: inner.state is its future */
    asyncio_waker armed;       /* not a reference: the waker the timer was registered with */
} asyncio_timeout;

/**
 * Initialises a timeout of `duration_ms` (counted from the first poll)
 * around `inner`, which the timeout owns from now on: it is dropped when
 * it finishes, when the deadline passes (that is what a timeout cancels:
 * the inner future's own cancellation rule applies), or when the timeout
 * is dropped. Allocates nothing, needs no runtime, never fails (an empty
 * `inner` makes every poll return ASYNCIO_EINVAL).
 */
ASYNCIO_EXTERN void asyncio_timeout_init_future(asyncio_timeout *t, asyncio_future inner,
                                                uint64_t duration_ms);

/**
 * As asyncio_timeout_init_future, with an absolute deadline of the runtime
 * clock (asyncio_time_now_ms(); UINT64_MAX: never).
 */
ASYNCIO_EXTERN void asyncio_timeout_at_init(asyncio_timeout *t, asyncio_future inner,
                                            uint64_t deadline_ms);

/**
 * The borrowed form: a timeout of `duration_ms` around the future
 * (`poll`, `fut`), which stays the caller's (the timeout polls it and
 * never drops it; it has no output). The same as
 * asyncio_timeout_init_future() otherwise. Allocates nothing, never fails.
 *
 * `fut` is stored as given. If the inner future lives in memory that is
 * about to move (next to the timeout in a task's initial state), the moved
 * timeout would still point at the original: initialise the timeout after
 * the move (in the task's first poll) in that case.
 */
ASYNCIO_EXTERN void asyncio_timeout_init(asyncio_timeout *t, asyncio_future_poll_fn poll, void *fut,
                                         uint64_t duration_ms);

/**
 * Polls the inner future first; if it finished, drops it (owned form) and
 * returns its result (0 or its negative error; its output went to its
 * `out`). Otherwise returns ASYNCIO_ETIMEDOUT once the deadline is reached
 * (the inner future is dropped then), else ASYNCIO_PENDING (both the inner
 * future and the timer hold cx's waker). A result is final: polling again
 * returns ASYNCIO_EINVAL. Allocates nothing.
 *
 * Errors: ASYNCIO_ETIMEDOUT as above; ASYNCIO_EINVAL (never initialised,
 * already finished, or the inner future is pending and the timeout is
 * polled outside a runtime or on another runtime than its first poll's).
 * Runtime thread only.
 */
ASYNCIO_EXTERN int asyncio_timeout_poll(asyncio_timeout *t, asyncio_context *cx);

/**
 * Drops the timer (as asyncio_sleep_drop()) and the inner future if the
 * timeout owns it and it is still there (the borrowed form leaves its
 * future alone). Idempotent. Runtime thread only.
 */
ASYNCIO_EXTERN void asyncio_timeout_drop(asyncio_timeout *t);

/** The timeout as a future (no output of its own: the inner future's goes to its `out`). */
ASYNCIO_EXTERN asyncio_future asyncio_timeout_future(asyncio_timeout *t);

/* ------------------------------------------------------------------------ */
/* Clock                                                                     */

/**
 * The current runtime's clock in ms (paused or real), or 0 outside a
 * runtime. Use it to compute deadlines for asyncio_sleep_init_until() and
 * asyncio_sleep_reset(). Runtime thread (inside a task or not).
 */
ASYNCIO_EXTERN uint64_t asyncio_time_now_ms(void);

/**
 * Pauses the current runtime's clock (tests). From now on it moves only
 * through asyncio_time_advance() and auto-advance (the idle runtime jumps
 * to the next timer). Errors: ASYNCIO_EINVAL outside a runtime or if the
 * clock is already paused. Call from a task on the runtime's thread.
 */
ASYNCIO_EXTERN int asyncio_time_pause(void);

/**
 * Resumes the current runtime's clock: real time flows again, continuing
 * from the paused time (the clock never jumps back). Errors:
 * ASYNCIO_EINVAL outside a runtime or if the clock is not paused. Call
 * from a task on the runtime's thread.
 */
ASYNCIO_EXTERN int asyncio_time_resume(void);

/**
 * Moves the current runtime's paused clock forward by `ms` (saturating).
 * Timers due by then fire at the next driver turn (a task that then waits
 * on one lets the runtime take that turn). Errors: ASYNCIO_EINVAL outside
 * a runtime or if the clock is not paused. Call from a task on the
 * runtime's thread.
 */
ASYNCIO_EXTERN int asyncio_time_advance(uint64_t ms);

ASYNCIO_END_DECLS

#endif
