/*
 * The driver: what a scheduler thread does when it has no task to run.
 *
 * It owns the poller, the unpark waker (a poller waker with token
 * ASYNCIO__UNPARK_TOKEN), the I/O driver (registrations and their
 * readiness, src/reactor/io.c) and the time driver (clock + timer wheel,
 * src/time/driver.c). One turn of the driver, asyncio__driver_park():
 *
 *   1. timeout := asyncio__time_park_timeout(time, requested timeout)
 *   2. asyncio_poller_wait(poller, events, cap, timeout)
 *   3. each event: the unpark token is ignored (its job was to return
 *      from the wait); the signal token (the process-wide self-pipe)
 *      goes to asyncio__signal_dispatch(); every other one goes to
 *      asyncio__io_dispatch(), then asyncio__io_maintain() frees
 *      deregistered slots (the batch's safe point)
 *   4. asyncio__time_process(): fire due timers (auto-advancing a paused
 *      clock when the runtime was idle)
 *
 * Thread-safety: park() is called by one thread at a time (the scheduler
 * thread that owns the driver now: on the multi-thread runtime, the worker
 * holding its driver flag); unpark() from any thread. Registrations,
 * timers and signal listeners are added and removed from any thread (the
 * I/O driver, time driver and signal module lock what they share).
 */
#ifndef ASYNCIO_REACTOR_DRIVER_H
#define ASYNCIO_REACTOR_DRIVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asyncio/poll.h"
#include "asyncio/runtime.h"
#include "reactor/comp.h"
#include "reactor/io.h"
#include "time/driver.h"

#define ASYNCIO__UNPARK_TOKEN ((uintptr_t)0)
/* The process-wide signal self-pipe (I/O driver tokens are always >= 2^32). */
#define ASYNCIO__SIGNAL_TOKEN ((uintptr_t)1)

typedef struct asyncio__driver {
    asyncio_poller *poller;
    asyncio_poller_waker *unpark;
    asyncio_event *events;
    size_t capacity;
    asyncio__io_driver io;
    asyncio__comp_driver comp; /* the completion path (off unless the backend has one) */
    asyncio__time_driver time;
    asyncio_fd_source signal_src; /* the signal self-pipe, once a listener waited here */
    bool signal_attached;
    /*
     * One empty splice pipe kept for asyncio_copy (src/io/copy.c), which
     * holds a pipe only while bytes are in it: fds[0] << 32 | fds[1], or -1.
     * Any thread (workers share the driver): an exchange takes it, a CAS
     * from -1 gives it back. The slot carries its whole payload (two fd
     * numbers; the pipe's state is the kernel's), so relaxed would do; the
     * acquire / release pair documents the hand-over.
     */
    _Atomic int64_t spare_pipe;
    /* Waits that failed in a row (driver.c's back-off); the thread turning the driver only. */
    unsigned wait_failures;
} asyncio__driver;

/*
 * Creates the poller, unpark waker, I/O and time drivers. 0 or a negative
 * error. `coop`: the poller may defer completion work to the submitting
 * thread's next kernel entry (ASYNCIO__POLLER_COOP, src/poller/poller_int.h).
 */
int asyncio__driver_init(asyncio__driver *d, const asyncio_runtime_options *opts, bool coop);

/*
 * Frees everything. ASYNCIO_EBUSY (and nothing freed) while I/O
 * registrations are alive.
 */
int asyncio__driver_close(asyncio__driver *d);

/*
 * One driver turn, waiting at most timeout_ms (-1: until an event, a timer
 * or an unpark; 0: do not block). Wakes the tasks whose I/O or timers are
 * ready. Returns the number of I/O readiness events dispatched (>= 0, for
 * the metrics) or a negative error from the poller.
 */
int asyncio__driver_park(asyncio__driver *d, int timeout_ms);

/*
 * As park(), saying whether the whole runtime is idle (no task can run
 * anywhere: a paused clock may then auto-advance). park() passes
 * timeout_ms != 0, right for a runtime with one thread; the multi-thread
 * runtime passes "every worker is parked".
 */
int asyncio__driver_park_ex(asyncio__driver *d, int timeout_ms, bool runtime_idle);

/*
 * An empty non-blocking pipe for a splice: the driver's spare if there is
 * one, else a new one (d may be NULL: always new). 0, or a negative error
 * (ASYNCIO_EMFILE / ENFILE when out of fds, ENOSYS without splice).
 */
int asyncio__driver_pipe_take(asyncio__driver *d, int fds[2]);

/*
 * Gives back an EMPTY pipe from pipe_take: kept as the spare if the slot is
 * free, else closed. Sets fds to -1. No-op if fds[0] < 0.
 */
void asyncio__driver_pipe_give(asyncio__driver *d, int fds[2]);

/*
 * Submits the operations tasks queued for the completion path (comp.h) now,
 * without a driver turn: the current-thread runtime calls it when block_on
 * returns, so an accepted write leaves even if the runtime is not turned
 * again. A no-op (no system call) when nothing is queued. Any thread.
 */
void asyncio__driver_flush(asyncio__driver *d);

/* Makes a concurrent or the next park() return. Any thread. */
void asyncio__driver_unpark(asyncio__driver *d);

/*
 * The driver of the runtime running on this thread (NULL outside one).
 * Leaf futures (sleep, async fd) use it to find where to register.
 */
asyncio__driver *asyncio__driver_current(void);

/* Makes `d` this thread's current driver; returns the previous one (restore it after). */
asyncio__driver *asyncio__driver_enter(asyncio__driver *d);

/* Signals (src/signal/signal.c): register the self-pipe once, unregister, and dispatch. */
int asyncio__signal_driver_attach(asyncio__driver *d);
void asyncio__signal_driver_detach(asyncio__driver *d);
void asyncio__signal_dispatch(asyncio__driver *d);

#endif
