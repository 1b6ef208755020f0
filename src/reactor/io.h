/*
 * The I/O driver: registrations of event sources with the poller, their
 * readiness, and the wakers of the tasks waiting for it (Tokio's
 * ScheduledIo, in C). docs/io-driver.md tells the whole story.
 *
 * What it owns. A slab of registrations (src/util/slab.h): each one is a
 * readiness word, a small lock and one waker slot per direction. A source
 * is registered ONCE with the poller, edge-triggered, for READABLE |
 * WRITABLE (| PRIORITY when asked), with the registration's slab token;
 * operations never touch the poller again except to re-arm an edge after
 * EAGAIN (a no-op on epoll). One exception: a completion-path stream
 * (both directions on the io_uring ring) is made with watch 0 and joins
 * the poller only when an operation first needs readiness
 * (asyncio__io_watch, `polled`).
 *
 * Readiness word (64 bits, one per registration). Three direction fields,
 * READ (bits 0..), WRITE and PRIORITY, each ASYNCIO__IO_FIELD_BITS wide:
 *
 *   bit   name     meaning
 *   0     PRIMARY  READABLE / WRITABLE / PRIORITY was reported
 *   1     CLOSED   READ_CLOSED / WRITE_CLOSED / READ_CLOSED (final: never cleared)
 *   2     ERROR    ERROR was reported (each direction clears its own copy)
 *   3     SEEN     a poll_ready returned this direction ready at the current tick
 *   4..   TICK     ASYNCIO__IO_TICK_BITS-bit counter of events seen by a guard
 *
 *   bit 63  SHUTDOWN  the registration is being freed: dispatch ignores it
 *
 * The tick protocol (per direction):
 *   - dispatch ORs the event's bits into each direction it touches; if that
 *     direction's SEEN is set it also bumps TICK and clears SEEN;
 *   - poll_ready, when the direction is ready, sets SEEN in the same atomic
 *     step that reads TICK, and hands TICK out in the guard;
 *   - clear_ready clears PRIMARY and ERROR only if TICK still equals the
 *     guard's tick.
 * Any event after the guard was filled finds SEEN set and moves the tick,
 * so the clear is ignored and the event's readiness stays: no wake is lost.
 * Because the tick moves at most once per observation, it can come back to
 * the guard's value only after 2^TICK_BITS further observe+event rounds by
 * OTHER pollers of the same direction within one EAGAIN-to-clear window;
 * with one poller per direction (the documented contract) it never wraps
 * onto a live guard, whatever the width — which tests/test_io.c checks with
 * a 2-bit tick build (the tick-wrap hazard, tokio#6133).
 *
 * Waker slots: guarded by the registration's spinlock (held for a waker
 * clone or swap only; a waker's clone runs under it, its wake and drop
 * never do). dispatch updates the
 * word first, then takes the wakers of the directions it touched under the
 * lock and wakes them after unlocking; poll_ready stores its waker under
 * the lock and re-reads the word before unlocking. Whichever takes the
 * lock second sees the other's write, so a waiter is never missed.
 *
 * Deregistration (asyncio__io_deregister), in order:
 *   1. the source is deregistered from the poller (later waits report nothing);
 *   2. SHUTDOWN is set (events already fetched no longer change the word);
 *   3. the slab generation is retired (a stale token no longer resolves);
 *   4. the wakers are taken under the lock and dropped after it;
 *   5. the slot goes on the driver's pending list; asyncio__io_maintain(),
 *      run after each dispatch batch, recycles it. So a token from the batch
 *      being dispatched can never resolve to a freed or reused slot.
 *
 * Thread-safety: dispatch and maintain run on the thread that turns the
 * driver (one at a time). register / deregister / poll_ready / clear_ready
 * may run on any runtime thread concurrently with it; one registration is
 * deregistered by its single owner, never concurrently with its other calls.
 */
#ifndef ASYNCIO_REACTOR_IO_H
#define ASYNCIO_REACTOR_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "asyncio/async_fd.h"
#include "asyncio/poll.h"
#include "asyncio/task.h"
#include "platform/thread.h"
#include "util/list.h"
#include "util/slab.h"

/* Width of each direction's tick. Tests build a 2-bit variant to prove wraps lose nothing. */
#ifndef ASYNCIO_IO_TICK_BITS
#define ASYNCIO_IO_TICK_BITS 16
#endif

/* Directions: index of the field in the readiness word and of the waker slot. */
enum {
    ASYNCIO__IO_DIR_READ = 0,
    ASYNCIO__IO_DIR_WRITE = 1,
    ASYNCIO__IO_DIR_PRIORITY = 2,
    ASYNCIO__IO_DIRS = 3,
};

#define ASYNCIO__IO_PRIMARY    ((uint64_t)1 << 0)
#define ASYNCIO__IO_CLOSED     ((uint64_t)1 << 1)
#define ASYNCIO__IO_ERROR      ((uint64_t)1 << 2)
#define ASYNCIO__IO_SEEN       ((uint64_t)1 << 3)
#define ASYNCIO__IO_READY_BITS (ASYNCIO__IO_PRIMARY | ASYNCIO__IO_CLOSED | ASYNCIO__IO_ERROR)
#define ASYNCIO__IO_TICK_SHIFT 4
#define ASYNCIO__IO_TICK_MASK  (((uint64_t)1 << ASYNCIO_IO_TICK_BITS) - 1)
#define ASYNCIO__IO_FIELD_BITS (ASYNCIO__IO_TICK_SHIFT + ASYNCIO_IO_TICK_BITS)
#define ASYNCIO__IO_FIELD_MASK (((uint64_t)1 << ASYNCIO__IO_FIELD_BITS) - 1)
#define ASYNCIO__IO_SHUTDOWN   ((uint64_t)1 << 63)

/* One registration: a slab entry. */
typedef struct asyncio__io_reg {
    asyncio__slab_entry entry;  /* first: index, generation, list node */
    _Atomic uint64_t readiness; /* the word above */
    uint32_t interest;          /* directions that may be polled (fixed while live) */
    asyncio__spinlock lock;     /* guards wakers (a few instructions; 1 byte, not a mutex's 40) */
    /* 1 once the source is registered with the poller (0: watch 0, not yet; see register). */
    _Atomic uint8_t polled;
    asyncio_waker wakers[ASYNCIO__IO_DIRS];
    /* The stream's completion state (src/reactor/comp.h), or NULL: readiness only. */
    struct asyncio__cstream *comp;
} asyncio__io_reg;

typedef struct asyncio__io_driver {
    asyncio_poller *poller;
    asyncio__mutex lock;   /* guards the slab's free list and pages, pending, live */
    asyncio__slab slab;    /* of asyncio__io_reg */
    asyncio__list pending; /* deregistered slots waiting for maintain() */
    size_t live;           /* registered and not yet deregistered */
} asyncio__io_driver;

/* Sets up an empty driver on `poller` (which it does not own). 0 or a negative error. */
int asyncio__io_driver_init(asyncio__io_driver *io, asyncio_poller *poller);

/*
 * Frees everything. ASYNCIO_EBUSY, with nothing freed, while registrations
 * are alive. Must not race with any other call on the driver.
 */
int asyncio__io_driver_close(asyncio__io_driver *io);

/*
 * Registers `src` (edge-triggered, READABLE | WRITABLE | interest &
 * PRIORITY) and returns its registration. `interest`: a non-empty subset
 * of ASYNCIO_INTEREST_MASK. Errors: ASYNCIO_EINVAL, ASYNCIO_ENOMEM,
 * ASYNCIO_ENOSPC, or what the poller returns. Any thread.
 */
int asyncio__io_register(asyncio__io_driver *io, asyncio_source *src, uint32_t interest,
                         asyncio__io_reg **out);

/*
 * As register, with the poller watching only the `watch` directions
 * (READABLE and / or WRITABLE): a stream whose receives run on the
 * completion path (src/reactor/comp.h) needs no readable reports. The
 * others are still pollable (poll_ready does not refuse them) but only
 * hang-ups and errors make them ready.
 */
int asyncio__io_register_watch(asyncio__io_driver *io, asyncio_source *src, uint32_t interest,
                               uint32_t watch, asyncio__io_reg **out);

/*
 * Sets the directions the poller watches for a registration (edge): the
 * first call registers a registration made with watch 0 (a stream whose
 * reads and writes run on the ring needs the poller only for a raw
 * operation or a write through send(2)); later calls reregister. 0 or the
 * poller's error (the registration then stays as it was). `once`: do
 * nothing if the source is registered already. Any runtime thread.
 */
int asyncio__io_watch(asyncio__io_driver *io, asyncio__io_reg *reg, asyncio_source *src,
                      uint32_t watch, bool once);

/* Whether the registration is registered with the poller (acquire). */
bool asyncio__io_polled(const asyncio__io_reg *reg);

/*
 * Deregisters (steps 1-5 above). Returns the poller's deregistration result;
 * the registration is released whatever it is. Any thread; `reg` is invalid
 * afterwards.
 */
int asyncio__io_deregister(asyncio__io_driver *io, asyncio__io_reg *reg, asyncio_source *src);

/*
 * As deregister for a registered fd, closing it in the same submission to
 * the kernel where the backend can (asyncio__poller_deregister_close_fd):
 * *closed then says fd is closed; else the caller closes it.
 */
int asyncio__io_deregister_close(asyncio__io_driver *io, asyncio__io_reg *reg, int fd,
                                 bool *closed);

/* The registration's token (tests). */
uintptr_t asyncio__io_token(const asyncio__io_reg *reg);

/*
 * Polls one direction (ASYNCIO_READABLE / WRITABLE / PRIORITY). 0 with
 * *guard filled, ASYNCIO_PENDING (waker stored, or coop budget used up),
 * or ASYNCIO_EINVAL (direction not registered). Any thread; no allocation.
 */
int asyncio__io_poll_ready(asyncio__io_reg *reg, asyncio_context *cx, uint32_t direction,
                           asyncio_ready_guard *guard);

/*
 * Whether a hang-up or an error was reported for `direction` (CLOSED or
 * ERROR set). Any thread; one acquire load.
 */
bool asyncio__io_hung_up(const asyncio__io_reg *reg, uint32_t direction);

/*
 * Clears the guard's direction if its tick is unchanged; returns true if it
 * cleared. Does not re-arm the poller (the caller does). Any thread.
 */
bool asyncio__io_clear_ready(asyncio__io_reg *reg, const asyncio_ready_guard *guard);

/* One poller event (driver thread). Unknown or stale tokens are ignored. */
void asyncio__io_dispatch(asyncio__io_driver *io, const asyncio_event *ev);

/* Safe point after a dispatch batch: recycles deregistered slots (driver thread). */
void asyncio__io_maintain(asyncio__io_driver *io);

#endif
