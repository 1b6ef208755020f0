/*
 * libasyncio: channels — bounded and unbounded mpsc, oneshot.
 *
 * Messages are fixed-size elements: the element size is given at creation
 * and values are copied in and out with memcpy. The library never looks
 * inside them; elements still buffered when the channel is freed are
 * discarded without any destructor, so if they own resources the receiver
 * drains them first (close, then try_recv until it fails).
 *
 * Ownership: a channel is one reference-counted heap object shared by its
 * handles. asyncio_mpsc_channel() gives one sender and one receiver handle;
 * more senders come from asyncio_mpsc_sender_clone(). Each handle is
 * released exactly once (_drop); the channel is freed with the last one.
 * A future must be dropped (or finished) before the handle it was
 * initialised with.
 *
 * Allocation: the bounded channel allocates its object and its ring of
 * `capacity` elements once, at creation. The unbounded one grows its ring
 * by doubling (16 elements first), copying the buffered elements over:
 * amortised O(1) allocations per message, none once it has reached its
 * high-water mark (it never shrinks). Sending, receiving and waiting never
 * allocate otherwise.
 *
 * Thread-safety: every function is safe from any thread, inside a task or
 * not; one internal lock per channel (the bounded one also has its slot
 * semaphore's lock), wakers are woken after it is released. The bounded
 * channel's send and receive take no lock while no sender waits for a slot
 * and the receiver is not waiting for a message. Each future is polled and
 * dropped by one thread at a time (its owner); receiving is for one
 * consumer at a time (single consumer).
 *
 * Futures (asyncio_mpsc_send, asyncio_mpsc_recv) are embeddable: full
 * structs below, every field private. _init allocates nothing and never
 * fails; _drop cancels synchronously (a queued send leaves the sender
 * queue at once; a waiting recv releases its stored waker) and is
 * idempotent. docs/sync.md has the protocols and examples.
 */
#ifndef ASYNCIO_CHANNEL_H
#define ASYNCIO_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "sync.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* mpsc                                                                      */

/** A sending handle of an mpsc channel (all clones of one sender share it). Opaque. */
typedef struct asyncio_mpsc_sender asyncio_mpsc_sender;
/** The receiving handle of an mpsc channel. Opaque. */
typedef struct asyncio_mpsc_receiver asyncio_mpsc_receiver;

/**
 * A send of one element: an embeddable future.
 *
 * Bounded channel: the send first acquires a slot (FIFO among senders: a
 * semaphore with `capacity` permits, one per free slot), then copies the
 * element in. It suspends exactly when the buffer is full and resumes when
 * the receiver frees a slot. Unbounded channel: completes at its first poll.
 *
 * Movable until its first poll; after it, it may wait in the slot
 * semaphore's waiter list and must stay put until dropped.
 */
typedef struct asyncio_mpsc_send {
    /* private */
    asyncio_semaphore_acquire slot; /* bounded: waiting for a free slot */
    asyncio_mpsc_sender *tx;
    const void *elem; /* borrowed until the send finishes or is dropped */
    int result;
    uint8_t state; /* see src/sync/mpsc.c */
} asyncio_mpsc_send;

/**
 * A receive of one element: an embeddable future (reusable: see _poll).
 * Movable at any time: the channel keeps a clone of the waker, never a
 * pointer to the future.
 */
typedef struct asyncio_mpsc_recv {
    /* private */
    asyncio_mpsc_receiver *rx;
    bool registered; /* its waker is stored in the channel */
} asyncio_mpsc_recv;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a bounded mpsc channel of `capacity` elements of `elem_size`
 * bytes; *tx and *rx receive its two first handles.
 * Errors: ASYNCIO_EINVAL (NULL out-parameters, elem_size or capacity 0,
 * capacity * elem_size overflows, capacity > ASYNCIO_SEMAPHORE_MAX_PERMITS),
 * ASYNCIO_ENOMEM. On failure nothing needs freeing. Any thread.
 */
ASYNCIO_EXTERN int asyncio_mpsc_channel(asyncio_mpsc_sender **tx, asyncio_mpsc_receiver **rx,
                                        size_t elem_size, size_t capacity);

/**
 * Creates an unbounded mpsc channel (sends never wait; the ring grows, see
 * the file comment). Errors: ASYNCIO_EINVAL (NULL, elem_size 0),
 * ASYNCIO_ENOMEM.
 */
ASYNCIO_EXTERN int asyncio_mpsc_unbounded_channel(asyncio_mpsc_sender **tx,
                                                  asyncio_mpsc_receiver **rx, size_t elem_size);

/**
 * A new sender reference (returned; the same pointer value as `tx`), to be
 * released with its own asyncio_mpsc_sender_drop. Never fails. Any thread.
 */
ASYNCIO_EXTERN asyncio_mpsc_sender *asyncio_mpsc_sender_clone(asyncio_mpsc_sender *tx);

/**
 * Releases a sender reference. When the last one goes, the receiver is
 * woken: once the buffer is drained, receives return ASYNCIO_ECLOSED.
 * NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_mpsc_sender_drop(asyncio_mpsc_sender *tx);

/**
 * Sends now if there is room: copies elem_size bytes from `elem`.
 * Errors: ASYNCIO_EAGAIN (bounded and full, or senders are queued for a
 * slot: try_send never overtakes them), ASYNCIO_ECLOSED (the receiver was
 * closed or dropped; the element was not sent), ASYNCIO_ENOMEM (unbounded:
 * the ring could not grow), ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_mpsc_try_send(asyncio_mpsc_sender *tx, const void *elem);

/** True once the receiver was closed or dropped: sends fail. Any thread. */
ASYNCIO_EXTERN bool asyncio_mpsc_sender_is_closed(asyncio_mpsc_sender *tx);

/**
 * Free slots right now (a snapshot): 0 when full or while senders are
 * queued; SIZE_MAX for an unbounded channel. Any thread.
 */
ASYNCIO_EXTERN size_t asyncio_mpsc_capacity(asyncio_mpsc_sender *tx);

/** The capacity given at creation; SIZE_MAX for an unbounded channel. */
ASYNCIO_EXTERN size_t asyncio_mpsc_max_capacity(asyncio_mpsc_sender *tx);

/**
 * Initialises a send of the element at `elem` (elem_size bytes, borrowed:
 * it must stay valid and unchanged until the send finishes or is dropped)
 * through `tx`. Allocates nothing, never fails.
 */
ASYNCIO_EXTERN void asyncio_mpsc_send_init(asyncio_mpsc_send *s, asyncio_mpsc_sender *tx,
                                           const void *elem);

/**
 * Polls the send: 0 once the element is in the channel (and the receiver
 * woken), or ASYNCIO_PENDING (bounded and full: queued for a slot, cx's
 * waker stored). Errors: ASYNCIO_ECLOSED (receiver closed or dropped, before
 * or while waiting; the element was not sent), ASYNCIO_ENOMEM (unbounded),
 * ASYNCIO_EINVAL (NULL). Polling a finished send returns its result again.
 * Owner thread.
 */
ASYNCIO_EXTERN int asyncio_mpsc_send_poll(asyncio_mpsc_send *s, asyncio_context *cx);

/**
 * Cancels a send that is waiting for a slot: leaves the queue at once (a
 * slot granted to it but never used goes to the next sender). The element
 * was not sent. Idempotent; no effect on a finished send. Owner thread.
 */
ASYNCIO_EXTERN void asyncio_mpsc_send_drop(asyncio_mpsc_send *s);

/**
 * Receives now if an element is buffered, copying it to `out`.
 * Errors: ASYNCIO_EAGAIN (empty, senders remain), ASYNCIO_ECLOSED (empty and
 * every sender is gone, or the receiver was closed), ASYNCIO_EINVAL (NULL).
 * Single consumer.
 */
ASYNCIO_EXTERN int asyncio_mpsc_try_recv(asyncio_mpsc_receiver *rx, void *out);

/**
 * Elements buffered right now (a snapshot; a bounded send that is copying
 * its element in already counts). Any thread.
 */
ASYNCIO_EXTERN size_t asyncio_mpsc_len(asyncio_mpsc_receiver *rx);

/**
 * Closes the receiving side without releasing the handle: later sends fail
 * with ASYNCIO_ECLOSED, and senders waiting for a slot are woken with it.
 * Elements already buffered can still be received; then receives return
 * ASYNCIO_ECLOSED. Idempotent. Any thread.
 */
ASYNCIO_EXTERN void asyncio_mpsc_receiver_close(asyncio_mpsc_receiver *rx);

/**
 * Closes (as above), discards the buffered elements and releases the
 * receiver handle. Every recv future must have been dropped. NULL is a
 * no-op.
 */
ASYNCIO_EXTERN void asyncio_mpsc_receiver_drop(asyncio_mpsc_receiver *rx);

/** Initialises a receive on `rx`. Allocates nothing, never fails. */
ASYNCIO_EXTERN void asyncio_mpsc_recv_init(asyncio_mpsc_recv *r, asyncio_mpsc_receiver *rx);

/**
 * Polls the receive: 0 with the oldest element copied to `out` (which the
 * bounded channel's slot is then freed for), ASYNCIO_PENDING (empty: cx's
 * waker stored, woken by the next send or by the last sender's drop), or
 * ASYNCIO_ECLOSED: the buffer is drained and every sender is gone (or the
 * receiver was closed). That "closed" result is distinct from every
 * message and is returned again by later polls. Errors: ASYNCIO_EINVAL
 * (NULL). After a result the future may be polled again to receive the
 * next element (no re-init needed). Single consumer.
 */
ASYNCIO_EXTERN int asyncio_mpsc_recv_poll(asyncio_mpsc_recv *r, asyncio_context *cx, void *out);

/** Cancels a receive: releases its stored waker. Idempotent. Single consumer. */
ASYNCIO_EXTERN void asyncio_mpsc_recv_drop(asyncio_mpsc_recv *r);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* oneshot                                                                   */

/** The sending half of a oneshot channel (one value, once). Opaque. */
typedef struct asyncio_oneshot_sender asyncio_oneshot_sender;
/**
 * The receiving half. Opaque. It is itself the receive future:
 * asyncio_oneshot_recv_poll polls it, asyncio_oneshot_receiver_drop cancels.
 */
typedef struct asyncio_oneshot_receiver asyncio_oneshot_receiver;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a oneshot channel for one element of `elem_size` bytes (one
 * allocation holding the value slot). Errors: ASYNCIO_EINVAL (NULL,
 * elem_size 0), ASYNCIO_ENOMEM. Any thread.
 */
ASYNCIO_EXTERN int asyncio_oneshot_channel(asyncio_oneshot_sender **tx,
                                           asyncio_oneshot_receiver **rx, size_t elem_size);

/**
 * Sends the value (copies elem_size bytes from `elem`) and releases the
 * sender, in every case: do not use `tx` afterwards. Wakes the receiver.
 * Errors: ASYNCIO_ECLOSED (the receiver was already dropped: the value was
 * not delivered), ASYNCIO_EINVAL (NULL tx; with a NULL elem the sender is
 * still released). Any thread.
 */
ASYNCIO_EXTERN int asyncio_oneshot_send(asyncio_oneshot_sender *tx, const void *elem);

/**
 * Releases the sender without sending: the receiver gets ASYNCIO_ECLOSED.
 * NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_oneshot_sender_drop(asyncio_oneshot_sender *tx);

/** True once the receiver was dropped (a send would fail). Any thread. */
ASYNCIO_EXTERN bool asyncio_oneshot_sender_is_closed(asyncio_oneshot_sender *tx);

/**
 * Waits for the receiver to go away: 0 once it was dropped, else
 * ASYNCIO_PENDING with cx's waker stored (released by send or drop of the
 * sender). Errors: ASYNCIO_EINVAL (NULL). Sender's owner only.
 */
ASYNCIO_EXTERN int asyncio_oneshot_sender_poll_closed(asyncio_oneshot_sender *tx,
                                                      asyncio_context *cx);

/**
 * Polls for the value: 0 with it copied to `out`, ASYNCIO_PENDING with cx's
 * waker stored, or ASYNCIO_ECLOSED: the sender was dropped without sending,
 * or the value was already received. Errors: ASYNCIO_EINVAL (NULL).
 * Receiver's owner only.
 */
ASYNCIO_EXTERN int asyncio_oneshot_recv_poll(asyncio_oneshot_receiver *rx, asyncio_context *cx,
                                             void *out);

/**
 * Receives without waiting: as asyncio_oneshot_recv_poll, with
 * ASYNCIO_EAGAIN instead of ASYNCIO_PENDING.
 */
ASYNCIO_EXTERN int asyncio_oneshot_try_recv(asyncio_oneshot_receiver *rx, void *out);

/**
 * Releases the receiver (cancelling a pending receive: its stored waker is
 * released at once). A value sent and never received is discarded. Wakes a
 * sender waiting in poll_closed. NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_oneshot_receiver_drop(asyncio_oneshot_receiver *rx);

ASYNCIO_END_DECLS

#endif
