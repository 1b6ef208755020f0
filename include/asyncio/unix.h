/*
 * libasyncio: Unix-domain sockets.
 *
 *   asyncio_unix_listener    bind a path or abstract name, accept (survives EMFILE)
 *   asyncio_unix_connect     connect future -> asyncio_unix_stream
 *   asyncio_unix_stream      AsyncRead + AsyncWrite (io.h), half-close, peer credentials,
 *                            socketpair
 *   asyncio_unix_datagram    bound, unbound or paired datagram sockets
 *
 * Addresses are asyncio_sockaddr values of family AF_UNIX (net.h):
 * asyncio_addr_unix("/run/app.sock", &a) for a path, asyncio_addr_unix(
 * "@name", &a) or asyncio_addr_parse("@name", &a) for a Linux abstract
 * name (no file; the name disappears with the last socket bound to it).
 * A path must fit sun_path with its NUL (107 bytes on Linux): longer
 * gives ASYNCIO_ENAMETOOLONG, and an empty one ASYNCIO_EINVAL, from
 * asyncio_addr_unix(); the bind / connect functions here reject addresses
 * that are not AF_UNIX, or whose length is out of range, with
 * ASYNCIO_EINVAL.
 *
 * Stale socket files. Binding a path creates a socket file that stays
 * after the socket is closed and after the process dies: closing a
 * listener here does NOT remove it (the file may already have been
 * replaced by another server's). Binding a path where such a file remains
 * fails with ASYNCIO_EADDRINUSE, even though no process listens there.
 * The library never deletes it silently: either unlink(2) the path
 * yourself (typically after close, or at startup once you know no other
 * instance runs), or set `unlink_existing` in the bind options, which
 * removes a socket file found at the path right before binding (never a
 * non-socket file: that still fails with ASYNCIO_EADDRINUSE). Beware
 * that unlink_existing also takes the name away from a live server bound
 * there. Abstract names have no file and no stale state.
 *
 * Writes never raise SIGPIPE (MSG_NOSIGNAL): writing to a stream whose
 * peer is gone fails with ASYNCIO_EPIPE. Datagram receives report
 * truncation like UDP (udp.h, "Truncation"): 0, *n_out == len,
 * *truncated = true, the rest discarded.
 *
 * Memory. Streams and datagram sockets are small embeddable values (a
 * registration and an fd, like asyncio_tcp_stream); the listener is one
 * allocation (it embeds the timer of its EMFILE back-off). No operation
 * allocates.
 *
 * Threads. Objects bind to the runtime running on the calling thread when
 * they are created. Functions that take a context are called from inside
 * a task of that runtime. One reading (receiving) task and one writing
 * (sending) task at a time per object. Getters may be called from any
 * thread, not concurrently with close.
 */
#ifndef ASYNCIO_UNIX_H
#define ASYNCIO_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#ifdef _WIN32
/* Windows has no user or group ids: asyncio_unix_stream_peer_cred is ASYNCIO_ENOTSUP there. */
typedef int uid_t;
typedef int gid_t;
#endif

#include "common.h"
#include "error.h"
#include "io.h"
#include "net.h"
#include "task.h"

/** The credentials of the peer process, as they were when it connected. */
typedef struct asyncio_unix_cred {
    pid_t pid; /* -1 where the OS does not tell (getpeereid systems) */
    uid_t uid; /* effective user id */
    gid_t gid; /* effective group id */
} asyncio_unix_cred;

/** Bind options for listeners and datagram sockets. Zero-initialise; zero means default. */
typedef struct asyncio_unix_bind_options {
    /**
     * Remove a socket file left at the path before binding (see "Stale
     * socket files" above). Only a socket is removed; ignored for abstract
     * names.
     */
    bool unlink_existing;
    /** Listeners: listen(2) backlog (default 1024, capped by the kernel). */
    int backlog;
    /** Listeners: wait after accept ran out of fds (EMFILE...), default 100 ms. */
    uint32_t accept_backoff_ms;
} asyncio_unix_bind_options;

/* ------------------------------------------------------------------------ */
/* Stream                                                                    */

/**
 * A connected Unix stream socket registered with a runtime's I/O driver.
 * Embeddable and movable (no pointer to itself): copy it into a task's
 * state as long as only one copy is used and closed. Obtained from
 * poll_accept, a connect future or asyncio_unix_stream_pair(); released
 * with asyncio_unix_stream_close(). A closed stream has fd == -1.
 */
typedef struct asyncio_unix_stream {
    /* private */
    void *io;  /* the I/O driver it is registered with */
    void *reg; /* its registration (one slab entry) */
    /* read-only */
    int fd; /* the socket, or -1 when closed */
} asyncio_unix_stream;

ASYNCIO_BEGIN_DECLS

/** Marks a stream as closed (fd == -1): closing it is a no-op. Never fails. */
ASYNCIO_EXTERN void asyncio_unix_stream_init_closed(asyncio_unix_stream *s);

/**
 * A connected pair (socketpair(2)), both registered with the runtime
 * running on this thread. On success *a and *b each own one end.
 * Errors: ASYNCIO_EINVAL (NULL, no runtime on this thread),
 * ASYNCIO_EMFILE, ASYNCIO_ENOMEM; on error nothing needs closing. Runtime
 * thread; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_pair(asyncio_unix_stream *a, asyncio_unix_stream *b);

/**
 * Adopts a connected Unix stream socket (made non-blocking here). On
 * success the stream owns `fd`. Errors: ASYNCIO_EINVAL (NULL, fd < 0, no
 * runtime), ASYNCIO_ENOMEM, registration errors; on error the fd stays
 * the caller's.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_from_fd(asyncio_unix_stream *s, int fd);

/**
 * AsyncRead: reads up to len bytes. 0 with *n_out (0 = the peer shut down
 * writing or closed, or len == 0), ASYNCIO_PENDING (cx's waker stored in
 * the read slot), or an error: ASYNCIO_ECONNRESET, ASYNCIO_EINVAL (NULL /
 * closed stream, buf NULL with len > 0). From a task; one reader.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_poll_read(asyncio_unix_stream *s, asyncio_context *cx,
                                                 void *buf, size_t len, size_t *n_out);

/**
 * AsyncWrite: writes up to len bytes (a short write is success). 0 with
 * *n_out, ASYNCIO_PENDING (cx's waker stored in the write slot), or an
 * error: ASYNCIO_EPIPE (peer gone, or we shut down writing; never
 * SIGPIPE), ASYNCIO_EINVAL. From a task; one writer.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_poll_write(asyncio_unix_stream *s, asyncio_context *cx,
                                                  const void *buf, size_t len, size_t *n_out);

/**
 * As poll_write, gathering iov[0..iovcnt) in one sendmsg (more than
 * IOV_MAX buffers: a short write). Zero total length returns 0 bytes at
 * once. Errors: as poll_write; ASYNCIO_EINVAL for iovcnt < 0 or iov NULL
 * with iovcnt > 0.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_poll_write_vectored(asyncio_unix_stream *s,
                                                           asyncio_context *cx,
                                                           const asyncio_iovec *iov, int iovcnt,
                                                           size_t *n_out);

/** Nothing is buffered in user space: 0 at once (ASYNCIO_EINVAL for a closed stream). */
ASYNCIO_EXTERN int asyncio_unix_stream_poll_flush(asyncio_unix_stream *s, asyncio_context *cx);

/**
 * Half-close: shuts down the write side; the peer reads EOF after the
 * bytes already sent. Reading still works. 0 at once, or an error
 * (ASYNCIO_ENOTCONN, ASYNCIO_EINVAL). Later writes fail with ASYNCIO_EPIPE.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_poll_shutdown(asyncio_unix_stream *s, asyncio_context *cx);

/** The stream as an AsyncRead (io.h); borrows s, which must stay at its address while used. */
ASYNCIO_EXTERN asyncio_reader asyncio_unix_stream_reader(asyncio_unix_stream *s);

/** The stream as an AsyncWrite (io.h); borrows s, which must stay at its address while used. */
ASYNCIO_EXTERN asyncio_writer asyncio_unix_stream_writer(asyncio_unix_stream *s);

/**
 * The peer process's pid, uid and gid as they were when it connected or
 * created the pair (SO_PEERCRED on Linux; getpeereid, with pid -1, on the
 * BSDs and macOS). Errors: ASYNCIO_EINVAL (NULL, closed), ASYNCIO_ENOTSUP
 * (no such facility on this OS), ASYNCIO_ENOTCONN. Any thread.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_peer_cred(const asyncio_unix_stream *s,
                                                 asyncio_unix_cred *out);

/** The local address (unnamed for a connecting side: len == sizeof(sa_family_t)). */
ASYNCIO_EXTERN int asyncio_unix_stream_local_addr(const asyncio_unix_stream *s,
                                                  asyncio_sockaddr *out);

/** The peer's address (the listener's name, or unnamed). 0 or a negative error. */
ASYNCIO_EXTERN int asyncio_unix_stream_peer_addr(const asyncio_unix_stream *s,
                                                 asyncio_sockaddr *out);

/**
 * Deregisters (stored wakers dropped, not woken) and closes; the stream
 * becomes closed and closing again is a no-op. Returns 0 or a
 * deregistration / close error (closed anyway). Runtime thread, never
 * concurrently with another call on the stream.
 */
ASYNCIO_EXTERN int asyncio_unix_stream_close(asyncio_unix_stream *s);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Connect                                                                   */

/**
 * A future that connects a stream socket to a listener's address.
 * Embeddable, movable at any time; init / poll / take / drop exactly as
 * asyncio_tcp_connect (net.h). On Linux a Unix connect completes in the
 * first poll (or fails at once); the wait for writability covers systems
 * where it reports EINPROGRESS.
 */
typedef struct asyncio_unix_connect {
    /* private */
    asyncio_sockaddr addr;
    asyncio_unix_stream stream; /* connecting, or connected and not yet taken */
    int result;                 /* the final error once failed */
    uint8_t state;              /* see src/net/unix.c */
    void *ring; /* the connect while io_uring runs it (src/net/stream.c), else NULL */
} asyncio_unix_connect;

ASYNCIO_BEGIN_DECLS

/** Initialises a connect to `addr` (copied). Needs no runtime; never fails. */
ASYNCIO_EXTERN void asyncio_unix_connect_init(asyncio_unix_connect *c,
                                              const asyncio_sockaddr *addr);

/**
 * Polls the connect; the first poll creates the socket and registers it
 * with the runtime running on this thread. 0 once connected (stream moved
 * to *out; if out is NULL it stays inside for asyncio_unix_connect_take()),
 * ASYNCIO_PENDING, or an error, returned again by later polls:
 * ASYNCIO_ENOENT (no socket file at the path), ASYNCIO_ECONNREFUSED
 * (nobody listens: a stale socket file, or an abstract name nobody holds),
 * ASYNCIO_EAGAIN (Linux: the listener's backlog is full; connect again
 * later), ASYNCIO_EACCES, -EPROTOTYPE (the name is a datagram socket),
 * ASYNCIO_ECANCELED after drop, ASYNCIO_EINVAL (NULL,
 * not a Unix address, polled outside a runtime). From a task.
 */
ASYNCIO_EXTERN int asyncio_unix_connect_poll(asyncio_unix_connect *c, asyncio_context *cx,
                                             asyncio_unix_stream *out);

/** asyncio_unix_connect_poll(c, cx, NULL) as an asyncio_future_poll_fn (for timeouts). */
ASYNCIO_EXTERN int asyncio_unix_connect_poll_fn(void *c, asyncio_context *cx);

/** Moves the stream out after poll returned 0. Errors: ASYNCIO_EINVAL. */
ASYNCIO_EXTERN int asyncio_unix_connect_take(asyncio_unix_connect *c, asyncio_unix_stream *out);

/** Cancels (closes any socket); later polls give ASYNCIO_ECANCELED. Idempotent. */
ASYNCIO_EXTERN void asyncio_unix_connect_drop(asyncio_unix_connect *c);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */

/**
 * A listening Unix stream socket. Opaque, one allocation per listener (it
 * embeds its EMFILE back-off timer, which must not move while armed) —
 * the same shape as asyncio_tcp_listener.
 */
typedef struct asyncio_unix_listener asyncio_unix_listener;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a Unix stream socket, binds it to `addr` (a path or an abstract
 * name), listens, and registers it with the runtime running on this
 * thread. `opts` may be NULL.
 *
 * Errors: ASYNCIO_EINVAL (NULL, not a Unix address or unnamed, no runtime
 * on this thread, negative backlog), ASYNCIO_EADDRINUSE (the path exists —
 * including a stale socket file, see above — or the abstract name is
 * taken), ASYNCIO_ENOENT / ASYNCIO_ENOTDIR (a directory of the path is
 * missing), ASYNCIO_EACCES, ASYNCIO_EMFILE, ASYNCIO_ENOMEM. On error
 * nothing needs closing and nothing was created on disk. Runtime thread.
 */
ASYNCIO_EXTERN int asyncio_unix_listener_bind(asyncio_unix_listener **out,
                                              const asyncio_sockaddr *addr,
                                              const asyncio_unix_bind_options *opts);

/**
 * Accepts one connection: 0 with the stream in *stream_out (now owned by
 * the caller) and, if peer_out is non-NULL, the peer's address (usually
 * unnamed); or ASYNCIO_PENDING. Survives fd exhaustion like the TCP
 * listener: after EMFILE / ENFILE / ENOBUFS / ENOMEM it waits
 * accept_backoff_ms (a timer, no spinning) and retries; the connection
 * stays queued. Errors: ASYNCIO_EINVAL (NULL, closed), registration
 * errors of the new stream (that connection is closed). One acceptor.
 */
ASYNCIO_EXTERN int asyncio_unix_listener_poll_accept(asyncio_unix_listener *l, asyncio_context *cx,
                                                     asyncio_unix_stream *stream_out,
                                                     asyncio_sockaddr *peer_out);

/** The bound address. 0 or a negative error. Any thread. */
ASYNCIO_EXTERN int asyncio_unix_listener_local_addr(const asyncio_unix_listener *l,
                                                    asyncio_sockaddr *out);

/** The listening socket's fd (still owned by the listener), or -1 for NULL. */
ASYNCIO_EXTERN int asyncio_unix_listener_fd(const asyncio_unix_listener *l);

/**
 * Cancels the back-off timer, deregisters and closes the socket and frees
 * the listener. The socket FILE is left in place (see "Stale socket
 * files": unlink it yourself). Returns 0 or a deregistration / close
 * error (freed anyway); NULL is a no-op. Runtime thread, not
 * concurrently with poll_accept.
 */
ASYNCIO_EXTERN int asyncio_unix_listener_close(asyncio_unix_listener *l);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Datagram                                                                  */

/**
 * A Unix datagram socket registered with a runtime's I/O driver.
 * Embeddable and movable, like asyncio_unix_stream. Bound (it has a name
 * others send to), unbound (it can send; replies cannot reach it), or one
 * end of a pair. Released with asyncio_unix_datagram_close().
 *
 * Datagrams are reliable and ordered on one host; a send blocks
 * (ASYNCIO_PENDING) while the receiver's queue is full. Linux wakes a
 * blocked sender when the receiver drains its queue only for a connected
 * sender (or when the queue held the sender's own datagrams): unconnected
 * senders to a busy receiver should connect first or bound their waits
 * with asyncio_timeout.
 */
typedef struct asyncio_unix_datagram {
    /* private */
    void *io;  /* the I/O driver it is registered with */
    void *reg; /* its registration (one slab entry) */
    /* read-only */
    int fd; /* the socket, or -1 when closed */
} asyncio_unix_datagram;

ASYNCIO_BEGIN_DECLS

/** Marks a datagram socket as closed (fd == -1): closing it is a no-op. Never fails. */
ASYNCIO_EXTERN void asyncio_unix_datagram_init_closed(asyncio_unix_datagram *d);

/**
 * Creates a datagram socket bound to `addr` (a path or an abstract name;
 * on Linux an unnamed address — len == sizeof(sa_family_t) — autobinds
 * to a fresh abstract name, so replies can reach an otherwise anonymous
 * client). `opts` may be NULL (only unlink_existing applies). Errors: as
 * asyncio_unix_listener_bind(). On error nothing needs closing.
 */
ASYNCIO_EXTERN int asyncio_unix_datagram_bind(asyncio_unix_datagram *d,
                                              const asyncio_sockaddr *addr,
                                              const asyncio_unix_bind_options *opts);

/**
 * Creates an unbound datagram socket: it can send (send_to, or connect +
 * send) but has no name, so nobody can send to it. Errors: ASYNCIO_EINVAL
 * (NULL, no runtime), ASYNCIO_EMFILE, ASYNCIO_ENOMEM.
 */
ASYNCIO_EXTERN int asyncio_unix_datagram_unbound(asyncio_unix_datagram *d);

/** A connected pair (socketpair(2)). Errors: as asyncio_unix_stream_pair(). */
ASYNCIO_EXTERN int asyncio_unix_datagram_pair(asyncio_unix_datagram *a, asyncio_unix_datagram *b);

/**
 * Sets the default peer (immediate). Errors: ASYNCIO_EINVAL (NULL,
 * closed, not a Unix address), ASYNCIO_ENOENT, ASYNCIO_ECONNREFUSED
 * (nobody bound there), ASYNCIO_EPERM (the peer is connected elsewhere).
 */
ASYNCIO_EXTERN int asyncio_unix_datagram_connect(asyncio_unix_datagram *d,
                                                 const asyncio_sockaddr *addr);

/**
 * Sends one datagram to `to`. 0 with *n_out == len, ASYNCIO_PENDING
 * (receiver's queue or our buffer full), or an error: ASYNCIO_ENOENT /
 * ASYNCIO_ECONNREFUSED (nobody bound at `to`), ASYNCIO_EMSGSIZE (larger
 * than the send buffer), ASYNCIO_EISCONN (connected: use poll_send),
 * ASYNCIO_EINVAL. From a task; one sender.
 */
ASYNCIO_EXTERN int asyncio_unix_datagram_poll_send_to(asyncio_unix_datagram *d, asyncio_context *cx,
                                                      const void *buf, size_t len,
                                                      const asyncio_sockaddr *to, size_t *n_out);

/**
 * Receives one datagram: 0 with *n_out, the sender in *from (unnamed
 * senders give an address with len == sizeof(sa_family_t), formatted as
 * "") and *truncated (see udp.h); or ASYNCIO_PENDING; or an error
 * (ASYNCIO_EINVAL). From a task; one receiver.
 */
ASYNCIO_EXTERN int asyncio_unix_datagram_poll_recv_from(asyncio_unix_datagram *d,
                                                        asyncio_context *cx, void *buf, size_t len,
                                                        size_t *n_out, asyncio_sockaddr *from,
                                                        bool *truncated);

/** As poll_send_to, to the connected peer (ASYNCIO_ENOTCONN if none). */
ASYNCIO_EXTERN int asyncio_unix_datagram_poll_send(asyncio_unix_datagram *d, asyncio_context *cx,
                                                   const void *buf, size_t len, size_t *n_out);

/** As poll_recv_from without the sender. */
ASYNCIO_EXTERN int asyncio_unix_datagram_poll_recv(asyncio_unix_datagram *d, asyncio_context *cx,
                                                   void *buf, size_t len, size_t *n_out,
                                                   bool *truncated);

/** The bound name (unnamed if unbound). 0 or a negative error. */
ASYNCIO_EXTERN int asyncio_unix_datagram_local_addr(const asyncio_unix_datagram *d,
                                                    asyncio_sockaddr *out);

/** The connected peer. ASYNCIO_ENOTCONN if not connected. */
ASYNCIO_EXTERN int asyncio_unix_datagram_peer_addr(const asyncio_unix_datagram *d,
                                                   asyncio_sockaddr *out);

/**
 * Deregisters and closes; closing again is a no-op. A bound path's file
 * is left in place (see "Stale socket files"). 0 or an error (closed
 * anyway). Runtime thread, single owner.
 */
ASYNCIO_EXTERN int asyncio_unix_datagram_close(asyncio_unix_datagram *d);

ASYNCIO_END_DECLS

#endif
