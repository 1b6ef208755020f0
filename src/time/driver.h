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
 * Thread-safety: none yet. The driver and every timer registered in it
 * belong to the runtime's thread (the multi-thread runtime will add a lock
 * here: wakes are already done outside any structure walk).
 */
#ifndef ASYNCIO_TIME_DRIVER_H
#define ASYNCIO_TIME_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "asyncio/task.h"
#include "time/wheel.h"

/*
 * A timer: what the driver fires. Embedded in asyncio_sleep (the public
 * struct mirrors this layout as asyncio_timer_storage; src/time/sleep.c
 * checks it with static assertions).
 *   entry   the wheel entry; linked exactly while the timer is registered
 *           (or on process()'s local fired list).
 *   waker   the waker to wake when it fires; given up (left empty) when
 *           fired, dropped on cancel.
 */
typedef struct asyncio__timer {
    asyncio__timer_entry entry;
    asyncio_waker waker;
} asyncio__timer;

typedef struct asyncio__time_driver {
    asyncio__wheel wheel; /* every registered timer; wheel.elapsed = processed time */
    uint64_t base_ms;     /* runtime time at origin_ms (real) or the time (paused) */
    uint64_t origin_ms;   /* asyncio__clock_now_ms() reading matching base_ms (real) */
    bool paused;          /* the clock is paused: it moves only when told to */
} asyncio__time_driver;

/*
 * Initialises the driver with the clock at 0, real or paused. Never fails
 * today (returns 0); the int leaves room for a clock that can.
 */
int asyncio__time_driver_init(asyncio__time_driver *t, bool start_paused);

/*
 * Teardown, after every task was dropped. Timers still registered (a sleep
 * nobody dropped) are unlinked and their wakers dropped (not woken), so a
 * later asyncio_sleep_drop() on them touches nothing of the driver.
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

/* Initialises an unregistered timer with an empty waker. */
void asyncio__timer_init(asyncio__timer *tm);

/* True when the timer's deadline has been processed by the driver. */
static inline bool asyncio__timer_elapsed(const asyncio__time_driver *t, uint64_t deadline)
{
    return deadline <= t->wheel.elapsed;
}

/*
 * Unregisters the timer (if registered) and drops its waker. Idempotent.
 * Touches `t` only when the timer is registered, so it is safe after
 * asyncio__time_driver_close() has unlinked everything.
 */
void asyncio__timer_cancel(asyncio__time_driver *t, asyncio__timer *tm);

#endif
