/*
 * libasyncio: an async once-cell (Tokio's OnceCell): a value set at most
 * once, initialised asynchronously by one caller while the others wait.
 *
 * Values are fixed-size elements copied in and out with memcpy, like the
 * channels' (channel.h): the element size is given at creation, the cell
 * holds one element, and the library never looks inside it (no destructor
 * runs when the cell is freed).
 *
 * Initialising: every caller that needs the value awaits an
 * asyncio_once_cell_get_or_init future. It completes with the value once
 * the cell is set; or, if the cell is empty and nobody is initialising it,
 * it completes with *init_turn = true: this caller now owns the
 * initialisation. It computes the value however it likes (awaiting other
 * futures meanwhile) and publishes it with asyncio_once_cell_init_finish,
 * which wakes every waiter with the value. Exactly one future holds the
 * turn at a time.
 *
 * Cancellation (what dropping loses): dropping a waiting future loses
 * nothing (it just leaves the queue). Dropping the future that holds the
 * initialisation turn without finishing (cancelled, or its work failed)
 * abandons the attempt: the cell stays empty and the turn passes to the
 * oldest waiter, which is woken and completes with *init_turn = true; with
 * no waiter, the next caller gets it. So a cancelled initialiser never
 * leaves the others waiting forever.
 *
 * Objects and ownership: asyncio_once_cell is an opaque heap object (one
 * allocation holding the value slot, at _new; none per operation), owned
 * by the caller and freed with asyncio_once_cell_free once no future is
 * queued on it.
 *
 * Futures: asyncio_once_cell_get_or_init is embeddable (full struct below;
 * every field private), with _init (never fails, allocates nothing), _poll
 * and _drop under the contract of sync.h: movable until its first poll,
 * polled and dropped by one thread at a time.
 *
 * Thread-safety: every function is safe from any thread, inside a task or
 * not. Reading a set cell (asyncio_once_cell_get, and a get_or_init poll
 * once it is set) takes no lock: one acquire load. Waiting and setting
 * take the cell's lock; wakers are woken after it is released.
 */
#ifndef ASYNCIO_ONCE_CELL_H
#define ASYNCIO_ONCE_CELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

/** A cell set at most once. Opaque; see the file comment. */
typedef struct asyncio_once_cell asyncio_once_cell;

/** Waiting for the value, or for the turn to initialise it: an embeddable future. */
typedef struct asyncio_once_cell_get_or_init {
    /* private (guarded by the cell's lock while queued) */
    asyncio_link link; /* in the cell's waiter list while waiting */
    asyncio_once_cell *cell;
    asyncio_waker waker;
    uint8_t granted; /* the turn was handed to it while it waited */
    uint8_t state;   /* see src/sync/once_cell.c */
} asyncio_once_cell_get_or_init;

ASYNCIO_BEGIN_DECLS

/**
 * Creates an empty cell for one element of `elem_size` bytes. Errors:
 * ASYNCIO_EINVAL (out NULL, elem_size 0 or too large), ASYNCIO_ENOMEM.
 * Any thread.
 */
ASYNCIO_EXTERN int asyncio_once_cell_new(asyncio_once_cell **out, size_t elem_size);

/**
 * Frees the cell (and its value). Errors: ASYNCIO_EBUSY while a
 * get_or_init future is queued or holds the initialisation turn (nothing
 * freed). NULL is a no-op.
 */
ASYNCIO_EXTERN int asyncio_once_cell_free(asyncio_once_cell *cell);

/**
 * Copies the value to `out` if the cell is set. No lock. Errors:
 * ASYNCIO_EAGAIN (not set yet), ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_once_cell_get(asyncio_once_cell *cell, void *out);

/** True once the cell is set. No lock. Any thread. */
ASYNCIO_EXTERN bool asyncio_once_cell_is_set(asyncio_once_cell *cell);

/**
 * Sets the value now (copies elem_size bytes from `value`) and wakes every
 * waiter with it. Errors: ASYNCIO_EEXIST (already set; nothing changes),
 * ASYNCIO_EBUSY (a get_or_init future holds the initialisation turn: it
 * owns the cell until it finishes or is dropped), ASYNCIO_EINVAL (NULL).
 * Any thread.
 */
ASYNCIO_EXTERN int asyncio_once_cell_set(asyncio_once_cell *cell, const void *value);

/** Initialises a get_or_init future on `cell` (which must outlive it). Allocates nothing. */
ASYNCIO_EXTERN void asyncio_once_cell_get_or_init_init(asyncio_once_cell_get_or_init *f,
                                                       asyncio_once_cell *cell);

/**
 * Polls. Returns 0 with *init_turn == false and the value copied to `out`
 * (if non-NULL) once the cell is set; 0 with *init_turn == true when this
 * caller now owns the initialisation (`out` untouched: compute the value,
 * then asyncio_once_cell_init_finish, or drop to abandon); or
 * ASYNCIO_PENDING, queued (FIFO) with cx's waker stored, while another
 * caller initialises. Polling again after a 0 result returns it again
 * (with the value if the cell is set by then). Errors: ASYNCIO_EINVAL
 * (NULL f, cx or init_turn; never initialised). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_once_cell_get_or_init_poll(asyncio_once_cell_get_or_init *f,
                                                      asyncio_context *cx, void *out,
                                                      bool *init_turn);

/**
 * Publishes the value computed by the holder of the initialisation turn
 * (copies elem_size bytes from `value`), wakes every waiter, and ends the
 * turn (the future is finished; _drop is still fine). Errors:
 * ASYNCIO_EINVAL (NULL, or `f` does not hold the turn). Owner thread.
 */
ASYNCIO_EXTERN int asyncio_once_cell_init_finish(asyncio_once_cell_get_or_init *f,
                                                 const void *value);

/**
 * Cancels: a queued future leaves the queue; the holder of the
 * initialisation turn abandons it, passing it to the oldest waiter (see
 * the file comment). Idempotent. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_once_cell_get_or_init_drop(asyncio_once_cell_get_or_init *f);

ASYNCIO_END_DECLS

#endif
