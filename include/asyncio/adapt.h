/*
 * libasyncio: every leaf as an asyncio_future (future.h).
 *
 * Two kinds of adapter:
 *
 *   Operations that are futures already (a sleep, an acquire, a connect, a
 *   JoinHandle...): the adapter is a function returning an asyncio_future
 *   whose state is the leaf itself. The future owns the leaf: dropping it
 *   runs the leaf's own _drop (its documented cancellation rule: an acquire
 *   hands its partial grant on, a connect closes its socket, a JoinHandle
 *   is released and its task keeps running detached...).
 *
 *   Calls on an object (read from a stream, accept on a listener, receive a
 *   datagram, wait for a signal): the arguments live in a small op struct
 *   the caller embeds (asyncio_read_op, ...), and the future's state is
 *   that struct. The object is borrowed: dropping the future cancels only
 *   the call, and these calls are cancellation-safe (nothing is consumed
 *   before they complete: a dropped read or receive loses no byte or
 *   datagram, a dropped accept no connection).
 *
 * Each adapter's output (`out`) is what the leaf's poll writes: a byte
 * count (size_t) for reads and writes, the stream for accept / connect, the
 * message for a channel receive, the signal number for a signal. NULL
 * where the leaf allows it.
 *
 * Adapters never fail and allocate nothing; the errors are the leaf's own,
 * returned by the future's poll. Thread-safety: as the leaf's.
 */
#ifndef ASYNCIO_ADAPT_H
#define ASYNCIO_ADAPT_H

#include <stdbool.h>
#include <stddef.h>

#include "barrier.h"
#include "blocking.h"
#include "broadcast.h"
#include "channel.h"
#include "common.h"
#include "fs.h"
#include "future.h"
#include "io.h"
#include "io_util.h"
#include "net.h"
#include "once_cell.h"
#include "rwlock.h"
#include "signal.h"
#include "sync.h"
#include "task.h"
#include "time.h"
#include "udp.h"
#include "unix.h"
#include "watch_channel.h"

/** Arguments of a read (any asyncio_reader: TCP, Unix, file, buffered). Caller-embedded. */
typedef struct asyncio_read_op {
    asyncio_reader r;
    void *buf;
    size_t len;
} asyncio_read_op;

/** Arguments of a write (any asyncio_writer). Caller-embedded. */
typedef struct asyncio_write_op {
    asyncio_writer w;
    const void *buf;
    size_t len;
} asyncio_write_op;

/** Arguments of an accept (TCP or Unix listener). Caller-embedded. */
typedef struct asyncio_accept_op {
    void *listener;         /* asyncio_tcp_listener * or asyncio_unix_listener * */
    asyncio_sockaddr *peer; /* the peer's address, or NULL */
} asyncio_accept_op;

/** Arguments of a datagram send or receive (UDP or Unix datagram). Caller-embedded. */
typedef struct asyncio_dgram_op {
    void *sock; /* asyncio_udp_socket * or asyncio_unix_datagram * */
    void *buf;  /* receive: written; send: read */
    size_t len;
    asyncio_sockaddr *addr; /* receive: the sender (or NULL); send: the peer (NULL: connected) */
    bool *truncated;        /* receive: set when the datagram was longer than len (or NULL) */
} asyncio_dgram_op;

/**
 * A once-cell get_or_init as a future (asyncio_once_cell_get_or_init_future).
 * Caller-embedded; fields private. Keeps the leaf's address and whether
 * its completion handed this caller the initialisation turn.
 */
typedef struct asyncio_once_cell_op {
    /* private */
    asyncio_once_cell_get_or_init *get;
    bool *init_turn;
    bool turn; /* completed with the turn: the turn is the caller's, drop leaves it */
} asyncio_once_cell_op;

ASYNCIO_BEGIN_DECLS

/* ---- calls on objects (borrowed; op struct) -------------------------------- */

/** A read of up to len bytes from r; output: the count (size_t *n_out; 0 = EOF). */
ASYNCIO_EXTERN asyncio_future asyncio_read_future(asyncio_read_op *op, asyncio_reader r, void *buf,
                                                  size_t len, size_t *n_out);

/** A write of up to len bytes to w; output: the count written (size_t *n_out). */
ASYNCIO_EXTERN asyncio_future asyncio_write_future(asyncio_write_op *op, asyncio_writer w,
                                                   const void *buf, size_t len, size_t *n_out);

/** One TCP accept; output: the new stream (owned by the caller once it completed). */
ASYNCIO_EXTERN asyncio_future asyncio_tcp_accept_future(asyncio_accept_op *op,
                                                        asyncio_tcp_listener *l,
                                                        asyncio_sockaddr *peer,
                                                        asyncio_tcp_stream *stream_out);

/** One Unix-socket accept; output: the new stream. */
ASYNCIO_EXTERN asyncio_future asyncio_unix_accept_future(asyncio_accept_op *op,
                                                         asyncio_unix_listener *l,
                                                         asyncio_sockaddr *peer,
                                                         asyncio_unix_stream *stream_out);

/** One UDP datagram received (from: sender or NULL); output: its length (size_t). */
ASYNCIO_EXTERN asyncio_future asyncio_udp_recv_future(asyncio_dgram_op *op, asyncio_udp_socket *s,
                                                      void *buf, size_t len, asyncio_sockaddr *from,
                                                      bool *truncated, size_t *n_out);

/** One UDP datagram sent to `to` (NULL: the connected peer); output: bytes sent (size_t). */
ASYNCIO_EXTERN asyncio_future asyncio_udp_send_future(asyncio_dgram_op *op, asyncio_udp_socket *s,
                                                      const void *buf, size_t len,
                                                      const asyncio_sockaddr *to, size_t *n_out);

/** One Unix datagram received; as asyncio_udp_recv_future. */
ASYNCIO_EXTERN asyncio_future asyncio_unix_datagram_recv_future(asyncio_dgram_op *op,
                                                                asyncio_unix_datagram *d, void *buf,
                                                                size_t len, asyncio_sockaddr *from,
                                                                bool *truncated, size_t *n_out);

/** One Unix datagram sent; as asyncio_udp_send_future. */
ASYNCIO_EXTERN asyncio_future asyncio_unix_datagram_send_future(asyncio_dgram_op *op,
                                                                asyncio_unix_datagram *d,
                                                                const void *buf, size_t len,
                                                                const asyncio_sockaddr *to,
                                                                size_t *n_out);

/** The next delivery of a signal listener (borrowed); output: the signal number (int). */
ASYNCIO_EXTERN asyncio_future asyncio_signal_future(asyncio_signal *s, int *signo);

/** The next tick of an interval (borrowed); output: the tick's time (uint64_t, ms). */
ASYNCIO_EXTERN asyncio_future asyncio_interval_tick_future(asyncio_interval *iv, uint64_t *tick_ms);

/* ---- operations (owned: dropping the future drops the leaf) ---------------- */

/** A sleep (drop: asyncio_sleep_drop). No output. */
ASYNCIO_EXTERN asyncio_future asyncio_sleep_future(asyncio_sleep *s);

/** A semaphore acquire (drop: asyncio_semaphore_acquire_drop, permits handed on). */
ASYNCIO_EXTERN asyncio_future asyncio_semaphore_acquire_future(asyncio_semaphore_acquire *a);

/** A mutex lock (drop: asyncio_mutex_lock_drop). */
ASYNCIO_EXTERN asyncio_future asyncio_mutex_lock_future(asyncio_mutex_lock *l);

/** A notified future (drop: asyncio_notified_drop). */
ASYNCIO_EXTERN asyncio_future asyncio_notified_future(asyncio_notified *f);

/** An mpsc send (drop: asyncio_mpsc_send_drop: the message is not sent, its slot freed). */
ASYNCIO_EXTERN asyncio_future asyncio_mpsc_send_future(asyncio_mpsc_send *s);

/** An mpsc receive; output: the message (elem_size bytes at out). Drop: asyncio_mpsc_recv_drop. */
ASYNCIO_EXTERN asyncio_future asyncio_mpsc_recv_future(asyncio_mpsc_recv *r, void *out);

/** A oneshot receive; output: the value. Drop: asyncio_oneshot_receiver_drop (closes it). */
ASYNCIO_EXTERN asyncio_future asyncio_oneshot_recv_future(asyncio_oneshot_receiver *rx, void *out);

/**
 * A task's completion; output: the task's output (its output_size bytes).
 * Drop: asyncio_join_handle_drop (the handle is released; the task keeps
 * running, detached).
 */
ASYNCIO_EXTERN asyncio_future asyncio_join_handle_future(asyncio_join_handle *jh, void *output);

/** A blocking job's result (drop: asyncio_blocking_handle_drop). */
ASYNCIO_EXTERN asyncio_future asyncio_blocking_handle_future(asyncio_blocking_handle *h);

/** A TCP connect; output: the stream. Drop: asyncio_tcp_connect_drop (closes the socket). */
ASYNCIO_EXTERN asyncio_future asyncio_tcp_connect_future(asyncio_tcp_connect *c,
                                                         asyncio_tcp_stream *out);

/** A TCP connect by host name; output: the stream. Drop: asyncio_tcp_connect_host_drop. */
ASYNCIO_EXTERN asyncio_future asyncio_tcp_connect_host_future(asyncio_tcp_connect_host *c,
                                                              asyncio_tcp_stream *out);

/** A Unix-socket connect; output: the stream. Drop: asyncio_unix_connect_drop. */
ASYNCIO_EXTERN asyncio_future asyncio_unix_connect_future(asyncio_unix_connect *c,
                                                          asyncio_unix_stream *out);

/** A name resolution (drop: asyncio_resolve_drop). Results: asyncio_resolve's accessors. */
ASYNCIO_EXTERN asyncio_future asyncio_resolve_future(asyncio_resolve *r);

/**
 * A file-system operation (open, metadata, read_file, ...: asyncio_fs_*_init).
 * Drop: asyncio_fs_op_drop. Results: the op's accessors (fs.h).
 */
ASYNCIO_EXTERN asyncio_future asyncio_fs_op_future(asyncio_fs_op *op);

/** read_exact (io_util.h). Cancelling loses the bytes read so far (they are in the buffer). */
ASYNCIO_EXTERN asyncio_future asyncio_read_exact_future(asyncio_read_exact *f);

/** write_all (io_util.h). Cancelling: part of the buffer may have been written. */
ASYNCIO_EXTERN asyncio_future asyncio_write_all_future(asyncio_write_all *f);

/** copy (io_util.h; drop: asyncio_copy_drop). */
ASYNCIO_EXTERN asyncio_future asyncio_copy_future(asyncio_copy *c);

/**
 * A read lock (rwlock.h); no output. Once it completed the read lock is the
 * caller's (release it with asyncio_rwlock_read_unlock). Drop:
 * asyncio_rwlock_read_drop (queued: leaves the queue, its collected
 * permits go to the next requests; granted but not observed: passed on).
 */
ASYNCIO_EXTERN asyncio_future asyncio_rwlock_read_future(asyncio_rwlock_read *r);

/**
 * The write lock (rwlock.h); no output. Once it completed the lock is the
 * caller's (asyncio_rwlock_write_unlock). Drop: asyncio_rwlock_write_drop,
 * as for the read lock.
 */
ASYNCIO_EXTERN asyncio_future asyncio_rwlock_write_future(asyncio_rwlock_write *w);

/**
 * A barrier wait (barrier.h); output: whether this party is the leader of
 * its generation (bool, or NULL). Drop: asyncio_barrier_wait_drop (a wait
 * still waiting withdraws its arrival; after its generation completed,
 * nothing).
 */
ASYNCIO_EXTERN asyncio_future asyncio_barrier_wait_future(asyncio_barrier_wait *w, bool *is_leader);

/**
 * A broadcast receive (broadcast.h); output: the message (elem_size bytes
 * at out). Its errors are the receive's: ASYNCIO_EOVERFLOW (lagged: the
 * next receive continues with the oldest message held), ASYNCIO_ECLOSED.
 * Drop: asyncio_broadcast_recv_drop (no message is lost: it stays for the
 * receiver's next receive).
 */
ASYNCIO_EXTERN asyncio_future asyncio_broadcast_recv_future(asyncio_broadcast_recv *r, void *out);

/**
 * A watch changed() (watch_channel.h); no output (read the value with
 * asyncio_watch_borrow). Error: ASYNCIO_ECLOSED. Drop:
 * asyncio_watch_changed_drop (nothing is marked seen: the next changed()
 * reports the change).
 */
ASYNCIO_EXTERN asyncio_future asyncio_watch_changed_future(asyncio_watch_changed *c);

/**
 * A once-cell get_or_init (once_cell.h) on `get` (initialised by the
 * caller), arguments kept in `op`. Output: the value (elem_size bytes at
 * value_out, or NULL) when the cell is set; *init_turn (if non-NULL) says
 * which of the two results it is, as for asyncio_once_cell_get_or_init_poll.
 *
 * Ownership: the future owns `get` until it completes. Dropping it
 * before then runs asyncio_once_cell_get_or_init_drop (a waiting caller
 * just leaves; a turn handed to it and not yet observed passes to the
 * next waiter). When it completed with the turn, the turn is the
 * caller's: dropping the future (as a combinator does at once) leaves
 * `get` alone, and the caller finishes with asyncio_once_cell_init_finish
 * or abandons with asyncio_once_cell_get_or_init_drop -- one of them is
 * required, or every other caller waits forever.
 */
ASYNCIO_EXTERN asyncio_future asyncio_once_cell_get_or_init_future(
    asyncio_once_cell_op *op, asyncio_once_cell_get_or_init *get, void *value_out, bool *init_turn);

ASYNCIO_END_DECLS

#endif
