/*
 * The time driver: the runtime's clock and timer wheel, and the glue that
 * fires timers by waking their tasks.
 *
 * What it owns. The clock state (real monotonic, or paused for tests) and
 * the wheel's links of every registered timer. Timers themselves
 * (asyncio__timer: a wheel entry plus the waker to wake) are embedded in
 * their users' futures (asyncio_sleep, and through it interval and
 * timeout); the driver never allocates.
 *
 * Time. Runtime time is uint64_t milliseconds since the driver was created
 * (so a runtime starts at 0). With the real clock it is
 *   base_ms + (asyncio__clock_now_ms() - origin_ms);
 * with the paused clock it is base_ms, which moves only through
 * asyncio_time_advance() and auto-advance. Pausing and resuming keep it
 * continuous; it never goes backwards.
 *
 * When a timer is "elapsed". A timer is due once its deadline <= the wheel's
 * `elapsed`, the time up to which process() has run (never ahead of the
 * clock). Futures compare against that, not against the clock, so a timer
 * completes at the first driver turn at or after its deadline and never
 * early, and the paused clock stays deterministic: advancing it fires
 * nothing until the next driver turn.
 *
 * Firing. process() moves due entries to a local list, then pops them one
 * at a time: unlink, take the waker out of the timer, wake it (by value).
 * A wake may cancel or insert any other timer, including one still on the
 * local list (the wheel's cancel unlinks it from there).
 *
 * Thread-safety: one mutex (`lock`) guards the wheel, the clock fields and
 * every registered timer's entry and waker, so timers are inserted,
 * reset and cancelled from any worker of a multi-thread runtime while
 * another one turns the driver. Wakers are woken and dropped after the
 * lock is released (process() takes each fired timer's waker out under the
 * lock, one at a time, and wakes it unlocked; a concurrent cancel that
 * finds the entry already taken has nothing left to do). On the
 * current-thread runtime the lock is uncontended (an uncontended
 * lock/unlock pair per timer operation).
 *
 * Parked driver wake-up: while a driver turn blocks, `wake_if_before`
 * holds the time it will wake at (UINT64_MAX: no timer, or the paused
 * clock; 0 when no turn blocks). Registering a timer with an earlier
 * deadline unparks the poller (`unpark`, set by the runtime's driver), so a
 * timer added on another worker is not delayed until the next event.
 */
#ifndef ASYNCIO_TIME_DRIVER_H
#define ASYNCIO_TIME_DRIVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asyncio/poll.h"
#include "asyncio/task.h"
#include "platform/thread.h"
#include "time/wheel.h"

/*
 * A timer: what the driver fires. It is the public asyncio_timer_record,
 * embedded in asyncio_sleep (include/asyncio/time.h).
 *   entry   the wheel entry; linked exactly while the timer is registered
 *           (or on process()'s local fired list).
 *   waker   the waker to wake when it fires; given up (left empty) when
 *           fired, dropped on cancel.
 */
typedef asyncio_timer_record asyncio__timer;

typedef struct asyncio__time_driver {
    asyncio__mutex lock;          /* guards everything below and every registered timer */
    asyncio__wheel wheel;         /* every registered timer; wheel.elapsed = processed time */
    uint64_t base_ms;             /* runtime time at origin_ms (real) or the time (paused) */
    uint64_t origin_ms;           /* asyncio__clock_now_ms() reading matching base_ms (real) */
    bool paused;                  /* the clock is paused: it moves only when told to */
    uint64_t wake_if_before;      /* see "Parked driver wake-up" */
    asyncio_poller_waker *unpark; /* the runtime driver's unpark waker (may be NULL) */
    uint64_t active;              /* timers registered now (metrics) */
    uint64_t fired;               /* timers that came due so far (metrics) */
    /*
     * wheel.elapsed, published with release after every advance (under the
     * lock, before anything fires), so "this timer is not due yet" can be
     * read without the lock: asyncio__sleep_armed_not_due.
     */
    _Atomic uint64_t elapsed_pub;
} asyncio__time_driver;

/*
 * True when `s` is bound to a driver whose processed time has not reached
 * its deadline: a timer registered by its last poll is then still
 * registered (only the driver's advance past the deadline, or the owner's
 * own cancel / reset, unregisters it), so re-polling it with the same waker
 * would change nothing. One acquire load, no lock. Owner thread.
 */
bool asyncio__sleep_armed_not_due(const asyncio_sleep *s);

/*
 * Initialises the driver with the clock at 0, real or paused. 0, or a
 * negative error from the mutex (nothing to close then).
 */
int asyncio__time_driver_init(asyncio__time_driver *t, bool start_paused);

/*
 * Teardown, after every task was dropped. Timers still registered (a sleep
 * nobody dropped) are unlinked, their wakers dropped (not woken) and their
 * sleeps orphaned (asyncio__sleep_orphan), so a later asyncio_sleep_drop()
 * on them touches nothing of the driver.
 */
void asyncio__time_driver_close(asyncio__time_driver *t);

/*
 * The poller timeout for one driver turn: min(requested, ms until the next
 * expiration) with the real clock (requested: -1 blocks, 0 polls, N ms).
 * With the paused clock and timers pending: 0 (look at I/O without
 * blocking; process() then auto-advances if the runtime is idle).
 */
int asyncio__time_park_timeout(asyncio__time_driver *t, int requested_ms);

/*
 * As park_timeout(), for a runtime that knows whether it is idle: with the
 * paused clock and timers pending, a runtime that is NOT idle (other
 * workers run tasks) gets the requested timeout instead of 0, so the
 * turning worker does not spin; the multi-thread runtime unparks it when
 * the last worker goes idle, and the next turn auto-advances.
 * park_timeout(t, r) is park_timeout_ex(t, r, true).
 */
int asyncio__time_park_timeout_ex(asyncio__time_driver *t, int requested_ms, bool runtime_idle);

/* Timers registered now and fired so far (metrics; takes the lock briefly). */
void asyncio__time_counts(asyncio__time_driver *t, uint64_t *active, uint64_t *fired);

/* Whether the clock is paused now. */
bool asyncio__time_is_paused(const asyncio__time_driver *t);

/*
 * Fires due timers: advances the wheel to the clock's now and wakes every
 * fired timer's waker. `idle`: the runtime has nothing else to do (the
 * turn could have blocked and no I/O arrived); a paused clock with timers
 * pending then first jumps to the next one (auto-advance).
 */
void asyncio__time_process(asyncio__time_driver *t, bool idle);

/* The current runtime time in ms (paused or real). */
uint64_t asyncio__time_now(const asyncio__time_driver *t);

/*
 * The deadline of a timer of `duration_ms` started now (saturating). With
 * the real clock, now is rounded up to the next whole ms (the clock
 * truncates), so the timer lasts at least duration_ms of real time; the
 * paused clock has no fraction, so there it is exactly now + duration.
 */
uint64_t asyncio__time_deadline_after(const asyncio__time_driver *t, uint64_t duration_ms);

/* The time driver of the runtime running on this thread, or NULL. */
asyncio__time_driver *asyncio__time_current(void);

/* ---- timers (used by sleep.c) ------------------------------------------ */

/*
 * sleep.c: the driver is being closed with this timer (embedded in an
 * asyncio_sleep) still registered: the sleep forgets the driver, so a later
 * poll returns ASYNCIO_EINVAL and its drop touches nothing of the driver.
 */
void asyncio__sleep_orphan(asyncio__timer *tm);

/* Initialises an unregistered timer with an empty waker. */
void asyncio__timer_init(asyncio__timer *tm);

/* True when the timer's deadline has been processed by the driver. */
bool asyncio__timer_elapsed(asyncio__time_driver *t, uint64_t deadline);

/*
 * Waits for `deadline`: returns true if it has been processed already
 * (nothing registered); else registers the timer (once) with that deadline,
 * stores a clone of `w` (or keeps the stored one if it wakes the same task)
 * and returns false. Unparks a blocked driver turn that would wake later.
 */
bool asyncio__timer_register(asyncio__time_driver *t, asyncio__timer *tm, uint64_t deadline,
                             const asyncio_waker *w);

/* Moves a registered timer to `deadline` (no-op when not registered). */
void asyncio__timer_reset(asyncio__time_driver *t, asyncio__timer *tm, uint64_t deadline);

/*
 * Unregisters the timer (if registered) and drops its waker. Idempotent.
 * Takes the driver's lock (the timer may be firing on another worker).
 */
void asyncio__timer_cancel(asyncio__time_driver *t, asyncio__timer *tm);

#endif
