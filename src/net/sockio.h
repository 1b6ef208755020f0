/*
 * A socket registered with the I/O driver, and the readiness loop every
 * data operation of the UDP and Unix-socket modules runs (src/net/udp.c,
 * src/net/unix.c).
 *
 * What it owns. Nothing of its own: the embeddable public types
 * (asyncio_udp_socket, asyncio_unix_stream, asyncio_unix_datagram) each
 * hold the same three fields — the driver, the registration (one slab
 * entry, src/reactor/io.h) and the fd — and pass them here. Registering
 * directly with the driver instead of through an asyncio_async_fd saves
 * one allocation per socket (the same choice as TCP, docs/net.md).
 *
 * The loop (asyncio__sockio_poll): poll_ready(direction) -> system call ->
 * on ASYNCIO_EAGAIN clear the readiness + re-arm the edge, and loop (the
 * next poll_ready is pending with the waker stored). Byte streams also
 * give the readiness back after a short transfer (the socket was drained
 * or its buffer filled); datagram operations never do, because a datagram
 * shorter than the buffer says nothing about the queue behind it. The tick
 * protocol (docs/io-driver.md) makes a give-back safe: an event that
 * arrived since poll_ready keeps the readiness.
 *
 * Thread-safety: the registration keeps one waker per direction, so one
 * receiver and one sender may run at once (two tasks); everything else on
 * a socket is single-owner.
 */
#ifndef ASYNCIO_NET_SOCKIO_H
#define ASYNCIO_NET_SOCKIO_H

#include <stdbool.h>
#include <stddef.h>

#include "asyncio/io.h"
#include "asyncio/net.h"
#include "asyncio/task.h"

/* The kinds of operation the loop runs. */
typedef enum asyncio__sockio_kind {
    ASYNCIO__SOCKIO_RECV,      /* stream read: recv(2) */
    ASYNCIO__SOCKIO_SEND,      /* stream write: send(2), MSG_NOSIGNAL */
    ASYNCIO__SOCKIO_SENDV,     /* stream gathering write: sendmsg(2) */
    ASYNCIO__SOCKIO_RECV_FROM, /* one datagram in: recvmsg(2), truncation and sender */
    ASYNCIO__SOCKIO_SEND_TO,   /* one datagram out: sendto(2) (to NULL: the connected peer) */
    ASYNCIO__SOCKIO_RAW_READ,  /* a caller's raw operation once readable (io.h poll_raw_io) */
    ASYNCIO__SOCKIO_RAW_WRITE, /* a caller's raw operation once writable */
} asyncio__sockio_kind;

/* One operation: the arguments its kind uses. */
typedef struct asyncio__sockio_op {
    asyncio__sockio_kind kind;
    void *rbuf;                 /* RECV, RECV_FROM */
    const void *wbuf;           /* SEND, SEND_TO */
    const asyncio_iovec *iov;   /* SENDV */
    int iovcnt;                 /* SENDV */
    size_t len;                 /* bytes asked for (SENDV: the total) */
    const asyncio_sockaddr *to; /* SEND_TO, may be NULL */
    asyncio_sockaddr *from;     /* RECV_FROM, may be NULL */
    bool *truncated;            /* RECV_FROM, may be NULL */
    asyncio_raw_io_fn raw;      /* RAW_*: the operation and its argument */
    void *raw_arg;
} asyncio__sockio_op;

/* True if a runtime runs on this thread (so attach can register with its driver). */
bool asyncio__sockio_can_attach(void);

/*
 * Registers `fd` (READABLE | WRITABLE, edge-triggered) with the I/O driver
 * of the runtime running on this thread; fills *io and *reg. Errors:
 * ASYNCIO_EINVAL (no runtime on this thread), ASYNCIO_ENOMEM, the
 * poller's. The fd stays the caller's on error.
 */
int asyncio__sockio_attach(int fd, void **io, void **reg);

/*
 * Deregisters (stored wakers dropped, the slot recycled at the driver's
 * safe point), then closes the fd. Returns the first error; the socket is
 * gone either way.
 */
int asyncio__sockio_close(void *io, void *reg, int fd);

/*
 * The readiness loop above: 0 with *n_out (bytes moved), ASYNCIO_PENDING
 * (cx's waker stored in the direction's slot, or the cooperative budget
 * was used up), or the operation's error. Never allocates.
 */
int asyncio__sockio_poll(void *io, void *reg, int fd, asyncio_context *cx,
                         const asyncio__sockio_op *op, size_t *n_out);

#endif
