/*
 * libasyncio: the broadcast channel — many senders, many receivers, every
 * receiver sees every message (Tokio's broadcast).
 *
 * Messages are fixed-size elements copied in and out with memcpy, as in
 * channel.h: the element size is given at creation, the library never
 * looks inside them and runs no destructor.
 *
 * The channel keeps the last `capacity` messages in a ring. A send never
 * waits: it overwrites the oldest message. Each receiver has its own
 * position; a receiver that fell more than `capacity` messages behind has
 * lost the overwritten ones: its next receive returns ASYNCIO_EOVERFLOW
 * ("lagged"), asyncio_broadcast_receiver_lagged() tells how many messages
 * it missed, and its position moves to the oldest message still held, so
 * the receive after that continues normally. A receiver sees messages sent
 * after it was created (asyncio_broadcast_channel's first receiver, or
 * asyncio_broadcast_subscribe), in send order.
 *
 * Closed: once every sender is dropped, a receiver drains what it has not
 * seen yet, then receives return ASYNCIO_ECLOSED (again on every later
 * call). A send with no receiver alive fails with ASYNCIO_ECLOSED (the
 * message is not stored).
 *
 * Ownership: the channel is one reference-counted heap object (its ring
 * allocated with it, at creation). Sender references (the first from
 * asyncio_broadcast_channel, more from asyncio_broadcast_sender_clone)
 * each are released once with asyncio_broadcast_sender_drop. Every
 * receiver is a small heap object of its own (allocated at subscribe,
 * never per message) released with asyncio_broadcast_receiver_drop. The
 * channel is freed with the last sender or receiver. Sending and
 * receiving never allocate.
 *
 * Futures: asyncio_broadcast_recv is embeddable (every field private) and
 * movable at any time: the receiver object keeps the waker, never a
 * pointer to the future. One receive at a time per receiver (each receiver
 * belongs to one consumer; subscribe another for another consumer).
 *
 * Cancellation (what dropping loses): nothing. A receive takes a message
 * only in the poll that returns it, so dropping a waiting receive leaves
 * every message in place for the next receive on that receiver. (A
 * receiver that is not polled for long enough still lags, cancelled or
 * not: that is the channel's bounded memory, reported as above.)
 *
 * Thread-safety: every function is safe from any thread, inside a task or
 * not; one internal lock per channel, wakers are woken after it is
 * released. A receiver and its futures are used by one thread at a time.
 */
#ifndef ASYNCIO_BROADCAST_H
#define ASYNCIO_BROADCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "task.h"

/** A sending handle (all sender references share it). Opaque. */
typedef struct asyncio_broadcast_sender asyncio_broadcast_sender;
/** One receiver: a position in the channel plus its waker. Opaque. */
typedef struct asyncio_broadcast_receiver asyncio_broadcast_receiver;

/** A receive of the receiver's next message: an embeddable, reusable future. */
typedef struct asyncio_broadcast_recv {
    /* private */
    asyncio_broadcast_receiver *rx;
    bool registered; /* its waker is stored in the receiver */
} asyncio_broadcast_recv;

/** The largest capacity a broadcast channel may have. */
#define ASYNCIO_BROADCAST_MAX_CAPACITY ((size_t)1 << 30)

ASYNCIO_BEGIN_DECLS

/**
 * Creates a broadcast channel keeping the last `capacity` messages of
 * `elem_size` bytes; *tx and *rx receive its first sender reference and
 * its first receiver. Errors: ASYNCIO_EINVAL (NULL out-parameters,
 * elem_size or capacity 0, capacity > ASYNCIO_BROADCAST_MAX_CAPACITY, the
 * ring's size overflows), ASYNCIO_ENOMEM. On failure nothing needs
 * freeing. Any thread.
 */
ASYNCIO_EXTERN int asyncio_broadcast_channel(asyncio_broadcast_sender **tx,
                                             asyncio_broadcast_receiver **rx, size_t elem_size,
                                             size_t capacity);

/** A new sender reference (the same pointer), released with its own _sender_drop. Any thread. */
ASYNCIO_EXTERN asyncio_broadcast_sender *
asyncio_broadcast_sender_clone(asyncio_broadcast_sender *tx);

/**
 * Releases a sender reference. With the last one the channel is closed:
 * waiting receivers are woken and get ASYNCIO_ECLOSED once drained. NULL
 * is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_broadcast_sender_drop(asyncio_broadcast_sender *tx);

/**
 * Sends: copies elem_size bytes from `elem` into the ring (overwriting the
 * oldest message when it is full) and wakes every waiting receiver. Never
 * waits. Errors: ASYNCIO_ECLOSED (no receiver is alive: not stored),
 * ASYNCIO_EINVAL (NULL). Any thread.
 */
ASYNCIO_EXTERN int asyncio_broadcast_send(asyncio_broadcast_sender *tx, const void *elem);

/** Receivers alive right now (a snapshot). Any thread. */
ASYNCIO_EXTERN size_t asyncio_broadcast_receiver_count(asyncio_broadcast_sender *tx);

/**
 * A new receiver that will see every message sent from now on. Errors:
 * ASYNCIO_EINVAL (NULL), ASYNCIO_ENOMEM. Any thread.
 */
ASYNCIO_EXTERN int asyncio_broadcast_subscribe(asyncio_broadcast_sender *tx,
                                               asyncio_broadcast_receiver **out);

/**
 * Receives now: 0 with the receiver's next message copied to `out`.
 * Errors: ASYNCIO_EAGAIN (nothing new; senders remain), ASYNCIO_EOVERFLOW
 * (lagged: messages were overwritten before this receiver read them;
 * asyncio_broadcast_receiver_lagged says how many; the next receive
 * returns the oldest message held), ASYNCIO_ECLOSED (every sender is gone
 * and nothing is left to read), ASYNCIO_EINVAL (NULL). The receiver's
 * consumer only.
 */
ASYNCIO_EXTERN int asyncio_broadcast_try_recv(asyncio_broadcast_receiver *rx, void *out);

/**
 * How many messages the receiver missed at its most recent
 * ASYNCIO_EOVERFLOW result (0 before the first). The receiver's consumer.
 */
ASYNCIO_EXTERN uint64_t asyncio_broadcast_receiver_lagged(asyncio_broadcast_receiver *rx);

/**
 * Messages this receiver could receive right now without lagging further
 * (at most the capacity; a snapshot). The receiver's consumer.
 */
ASYNCIO_EXTERN size_t asyncio_broadcast_receiver_len(asyncio_broadcast_receiver *rx);

/**
 * Releases a receiver (every recv future on it must have been dropped or
 * finished first). Its unread messages are simply no longer its concern.
 * NULL is a no-op. Any thread.
 */
ASYNCIO_EXTERN void asyncio_broadcast_receiver_drop(asyncio_broadcast_receiver *rx);

/** Initialises a receive on `rx`. Allocates nothing, never fails. */
ASYNCIO_EXTERN void asyncio_broadcast_recv_init(asyncio_broadcast_recv *r,
                                                asyncio_broadcast_receiver *rx);

/**
 * Polls the receive: 0 with the next message copied to `out`,
 * ASYNCIO_PENDING (nothing new: cx's waker stored in the receiver, woken
 * by the next send or the last sender's drop), or the errors of
 * asyncio_broadcast_try_recv except ASYNCIO_EAGAIN (ASYNCIO_EOVERFLOW,
 * ASYNCIO_ECLOSED, ASYNCIO_EINVAL). After a result the future may be
 * polled again for the next message (no re-init needed). The receiver's
 * consumer only.
 */
ASYNCIO_EXTERN int asyncio_broadcast_recv_poll(asyncio_broadcast_recv *r, asyncio_context *cx,
                                               void *out);

/** Cancels a receive: releases its stored waker; no message is lost. Idempotent. */
ASYNCIO_EXTERN void asyncio_broadcast_recv_drop(asyncio_broadcast_recv *r);

ASYNCIO_END_DECLS

#endif
