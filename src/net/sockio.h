/*
 * A socket registered with the I/O driver, and the readiness loop every
 * data operation of src/net runs (TCP and Unix streams through
 * src/net/stream.c; UDP and Unix datagrams directly).
 *
 * What it owns. Nothing of its own: the embeddable public types
 * (asyncio_tcp_stream, asyncio_unix_stream, asyncio_unix_datagram,
 * asyncio_udp_socket) each hold the same three fields — the driver, the
 * registration (one slab entry, src/reactor/io.h) and the fd —
 * (asyncio__sockio_handle, below) and pass them here. Registering
 * directly with the driver instead of through an asyncio_async_fd saves
 * one allocation per socket (docs/net.md, "Memory").
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

#include "internal.h"

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
 * As attach, for a byte stream (TCP, Unix): when the runtime's backend has
 * a completion path (src/reactor/comp.h) the stream gets its completion
 * state, chosen once here, and its reads and writes run on it.
 */
int asyncio__sockio_attach_stream(int fd, void **io, void **reg);

/*
 * As attach, for a listening socket: when the runtime's completion path
 * runs accepts (src/reactor/comp.h, "listeners") *acc gets the socket's
 * acceptor and the poller watches nothing the listener would report
 * (accepts need no readiness); else *acc is NULL and accepts wait for
 * readability. Same errors as attach.
 */
int asyncio__sockio_attach_listener(int fd, void **io, void **reg, void **acc);

/*
 * Changes the directions the poller watches for a registered fd (edge),
 * registering it with the poller first if it was not yet. 0 or the
 * poller's error.
 */
int asyncio__sockio_watch(void *io, void *reg, int fd, uint32_t watch);

/*
 * Registers with the poller a completion-path stream that was not yet
 * (sockio_attach_stream leaves it out while both directions run on the
 * ring): WRITABLE, and READABLE unless its reads run on the ring. A no-op
 * (one load) once registered. 0 or the poller's error.
 */
int asyncio__sockio_ensure_polled(void *io, void *reg, int fd);

/*
 * Deregisters (stored wakers dropped, the slot recycled at the driver's
 * safe point), then closes the fd. A stream's completion state is closed
 * first (its receive cancelled, an accepted send left to finish). Returns the first error; the
 * socket is gone either way.
 */
int asyncio__sockio_close(void *io, void *reg, int fd);

/*
 * The readiness loop above: 0 with *n_out (bytes moved), ASYNCIO_PENDING
 * (cx's waker stored in the direction's slot, or the cooperative budget
 * was used up), or the operation's error. Never allocates.
 */
int asyncio__sockio_poll(void *io, void *reg, int fd, asyncio_context *cx,
                         const asyncio__sockio_op *op, size_t *n_out);

/* ---- the public socket objects ------------------------------------------------- */

/*
 * Every socket type in src/net (asyncio_tcp_stream, asyncio_unix_stream,
 * asyncio_unix_datagram, asyncio_udp_socket) is these three fields; the
 * modules prove it with ASYNCIO__HANDLE_LAYOUT. The helpers below take the
 * public object as `void *` and copy the handle in and out with memcpy, so
 * no object is accessed through a pointer to another struct type.
 */
/* A registered socket: the common layout of every socket type in src/net. */
typedef struct asyncio__sockio_handle {
    void *io;  /* the I/O driver */
    void *reg; /* the registration (one slab entry) */
    int fd;    /* -1 when closed */
} asyncio__sockio_handle;

/* Compile-time proof that public type T has the handle's layout. */
#define ASYNCIO__HANDLE_LAYOUT(T)                                                          \
    ASYNCIO_STATIC_ASSERT(sizeof(T) == sizeof(asyncio__sockio_handle) &&                   \
                              offsetof(T, io) == offsetof(asyncio__sockio_handle, io) &&   \
                              offsetof(T, reg) == offsetof(asyncio__sockio_handle, reg) && \
                              offsetof(T, fd) == offsetof(asyncio__sockio_handle, fd),     \
                          #T " has the layout of asyncio__sockio_handle")

/*
 * Copies the handle out of a public object. False (h unusable) for NULL,
 * a closed object (fd < 0) or a zero-filled one (reg NULL).
 */
bool asyncio__handle_load(const void *obj, asyncio__sockio_handle *h);

/* Marks a public object closed (fd -1). NULL is a no-op. */
void asyncio__handle_init_closed(void *obj);

/*
 * Registers fd (the current runtime's driver) and stores the handle into
 * obj. On error obj is untouched and the fd stays the caller's.
 */
int asyncio__handle_attach(void *obj, int fd);

/* As attach, for byte streams (asyncio__sockio_attach_stream). */
int asyncio__handle_attach_stream(void *obj, int fd);

/* Deregisters and closes an open object, then marks it closed. 0 for NULL / closed. */
int asyncio__handle_close(void *obj);

/* getsockname / getpeername of an open object. ASYNCIO_EINVAL for NULL / closed. */
int asyncio__handle_local_addr(const void *obj, asyncio_sockaddr *out);
int asyncio__handle_peer_addr(const void *obj, asyncio_sockaddr *out);

#endif
