/*
 * libasyncio: networking — socket addresses, name resolution and TCP.
 *
 *   asyncio_sockaddr        any socket address (IPv4, IPv6, Unix) with its length
 *   asyncio_addr_*          parse / format "host:port", "[v6]:port", Unix paths
 *   asyncio_resolve         host name -> addresses (getaddrinfo on the blocking pool)
 *   asyncio_tcp_listener    bind, accept (survives EMFILE), local address
 *   asyncio_tcp_connect     connect future -> asyncio_tcp_stream
 *   asyncio_tcp_connect_host  resolve, then try each address in turn
 *   asyncio_tcp_stream      AsyncRead + AsyncWrite (io.h), half-close, options,
 *                           split into a read half and a write half
 *
 * Memory. A stream is a small embeddable value (a registration and an fd,
 * sizeof == 24 on LP64) and owns no buffer: the bytes of an idle
 * connection are the kernel's socket, the I/O driver's registration
 * (one slab entry) and whatever the user's task keeps. No operation
 * allocates; a resolve allocates its result once.
 *
 * Signals. No call here ever raises SIGPIPE: writes use MSG_NOSIGNAL, so a
 * reset peer gives ASYNCIO_EPIPE or ASYNCIO_ECONNRESET on the operation,
 * whatever the process's SIGPIPE disposition. EINTR is retried inside.
 *
 * Threads. Objects bind to the runtime running on the calling thread when
 * they are created (bind, accept, first poll of a connect). Functions that
 * take a context are called from inside a task of that runtime. One task
 * at a time per direction: one reader and one writer may use a stream (or
 * its two halves) at the same time, from two tasks; two readers (or two
 * writers) would steal each other's wake-ups. docs/net.md has the details.
 */
#ifndef ASYNCIO_NET_H
#define ASYNCIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
/* Winsock 2 (AF_UNIX from afunix.h, Windows 10+). Sockets are ints here too: docs/platforms.md. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#ifndef SHUT_RD
#define SHUT_RD   SD_RECEIVE
#define SHUT_WR   SD_SEND
#define SHUT_RDWR SD_BOTH
#endif
typedef ADDRESS_FAMILY sa_family_t;
#else
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#endif

#include "blocking.h"
#include "common.h"
#include "error.h"
#include "io.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* Addresses                                                                 */

/**
 * A socket address of any supported family (AF_INET, AF_INET6, AF_UNIX)
 * and its length. A plain value: copy it freely. Pass `&a.u.sa` and `a.len`
 * to socket calls of your own.
 */
typedef struct asyncio_sockaddr {
    /* public */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    } u;
    socklen_t len; /* bytes of u in use; 0 for an empty address */
} asyncio_sockaddr;

/** A buffer this large holds any asyncio_addr_format() result, NUL included. */
#define ASYNCIO_ADDRSTRLEN 128

/** Longest host name asyncio_resolve accepts (RFC 1035: 253; a little slack). */
#define ASYNCIO_HOST_MAX 255

ASYNCIO_BEGIN_DECLS

/**
 * Parses a socket address:
 *   "a.b.c.d:port"          IPv4 (dotted quad, port 0-65535)
 *   "[v6]:port"             IPv6, optionally with a numeric scope: "[fe80::1%2]:80"
 *   "/path", "./p", "../p"  a Unix socket path (longer than sun_path: ENAMETOOLONG)
 *   "@name"                 a Linux abstract Unix socket
 * Host names are not parsed here (see asyncio_resolve); neither are bare
 * IPv6 addresses without brackets (use asyncio_addr_from_ip()).
 *
 * Errors: ASYNCIO_EINVAL (NULL argument or malformed string; *out is
 * untouched), ASYNCIO_ENAMETOOLONG. Pure function: any thread, never
 * allocates.
 */
ASYNCIO_EXTERN int asyncio_addr_parse(const char *str, asyncio_sockaddr *out);

/**
 * Builds an address from an IP literal ("127.0.0.1", "::1", "fe80::1%2",
 * also "[::1]") and a port. Errors: ASYNCIO_EINVAL (NULL argument, not an
 * IP literal). Any thread; never allocates.
 */
ASYNCIO_EXTERN int asyncio_addr_from_ip(const char *ip, uint16_t port, asyncio_sockaddr *out);

/**
 * Builds a Unix socket address from a path, taken literally, except that
 * a leading '@' names a Linux abstract socket. Errors: ASYNCIO_EINVAL
 * (NULL, empty), ASYNCIO_ENAMETOOLONG (does not fit sun_path with its
 * NUL), ASYNCIO_ENOTSUP ('@' on systems without abstract names: macOS, the
 * BSDs). Any thread; never allocates.
 */
ASYNCIO_EXTERN int asyncio_addr_unix(const char *path, asyncio_sockaddr *out);

/**
 * Formats `addr` into buf (NUL-terminated) in the syntax asyncio_addr_parse()
 * reads: "1.2.3.4:80", "[::1]:80", "[fe80::1%2]:80", "/path", "@name"; an
 * unnamed Unix socket gives "". ASYNCIO_ADDRSTRLEN always suffices.
 *
 * Errors: ASYNCIO_EINVAL (NULL argument, unknown family or bad length),
 * ASYNCIO_ENOSPC (buf too small: buf holds "" if size > 0). Any thread.
 */
ASYNCIO_EXTERN int asyncio_addr_format(const asyncio_sockaddr *addr, char *buf, size_t size);

/** The address family (AF_INET, AF_INET6, AF_UNIX), or AF_UNSPEC for NULL / empty. */
ASYNCIO_EXTERN int asyncio_addr_family(const asyncio_sockaddr *addr);

/** The port in host byte order (0 for Unix addresses and NULL). */
ASYNCIO_EXTERN uint16_t asyncio_addr_port(const asyncio_sockaddr *addr);

/** Sets the port of an IPv4 / IPv6 address. Errors: ASYNCIO_EINVAL (NULL, other family). */
ASYNCIO_EXTERN int asyncio_addr_set_port(asyncio_sockaddr *addr, uint16_t port);

/** True if both hold the same family, address, port (and scope), or the same Unix path. */
ASYNCIO_EXTERN bool asyncio_addr_equal(const asyncio_sockaddr *a, const asyncio_sockaddr *b);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Name resolution                                                           */

/**
 * A future that resolves a host name to stream-socket addresses with
 * getaddrinfo(3), run on the runtime's blocking pool (an IP literal is
 * answered at once without a thread). Embeddable: initialise with
 * asyncio_resolve_init(), poll with asyncio_resolve_poll(), release with
 * asyncio_resolve_drop(). Movable at any time (nothing points into it).
 *
 * Memory: the first poll allocates one shared job block (the host copy and,
 * later, the result array); it is freed by drop (or by the job, if the
 * future was dropped first).
 */
typedef struct asyncio_resolve {
    /* read-only: after poll returned 0, until drop */
    const asyncio_sockaddr *addrs; /* count addresses, getaddrinfo's order, ports set */
    size_t count;
    /* private */
    void *job;                       /* shared with the blocking job, refcounted */
    asyncio_blocking_handle *handle; /* while the job runs */
    asyncio_sockaddr *literal;       /* the one-entry result of an IP literal */
    int family;
    int result;
    uint16_t port;
    uint8_t state;
    char host[ASYNCIO_HOST_MAX + 1];
} asyncio_resolve;

ASYNCIO_BEGIN_DECLS

/**
 * Initialises a resolve of `host` (copied) and `port`. `family` is
 * AF_UNSPEC (0: both), AF_INET or AF_INET6. Needs no runtime, allocates
 * nothing.
 *
 * Errors: ASYNCIO_EINVAL (NULL or empty host, bad family),
 * ASYNCIO_ENAMETOOLONG (host longer than ASYNCIO_HOST_MAX). On error the
 * struct is still safe to drop.
 */
ASYNCIO_EXTERN int asyncio_resolve_init(asyncio_resolve *r, const char *host, uint16_t port,
                                        int family);

/**
 * Polls the resolve. 0 when done (r->addrs / r->count are valid, count >=
 * 1), ASYNCIO_PENDING (cx's waker stored), or an error, returned again by
 * later polls: ASYNCIO_EHOST_NOT_FOUND (no such host, or no address of the family),
 * ASYNCIO_EAGAIN (temporary DNS failure), ASYNCIO_EIO, ASYNCIO_ENOMEM,
 * ASYNCIO_ECANCELED (the runtime shut down first), ASYNCIO_EINVAL (polled
 * outside a runtime, or init failed).
 * From a task of the runtime that first polled it.
 */
ASYNCIO_EXTERN int asyncio_resolve_poll(asyncio_resolve *r, asyncio_context *cx);

/**
 * Releases the result, or detaches a lookup still running (it finishes on
 * its thread and frees its block). Idempotent; fine on a never-polled
 * resolve. Any thread, but not concurrently with a poll.
 */
ASYNCIO_EXTERN void asyncio_resolve_drop(asyncio_resolve *r);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* TCP stream                                                                */

/**
 * A connected TCP socket registered with a runtime's I/O driver.
 * Embeddable and movable: it holds no pointer to itself, so it may be
 * copied by value into a task's state (asyncio_spawn copies it) as long as
 * only one copy is used and closed. Obtained from
 * asyncio_tcp_listener_poll_accept(), a connect future, or
 * asyncio_tcp_stream_from_fd(); released with asyncio_tcp_stream_close().
 * A closed stream has fd == -1 (asyncio_tcp_stream_init_closed() makes
 * one, so cleanup code can close unconditionally); a zero-filled stream
 * (and a zero-filled connect future) is also safe to close / drop.
 */
typedef struct asyncio_tcp_stream {
    /* private */
    void *io;  /* the I/O driver it is registered with */
    void *reg; /* its registration (one slab entry) */
    /* read-only */
    int fd; /* the socket, or -1 when closed */
} asyncio_tcp_stream;

/** The read half of a split stream: a view of its reading direction. A plain value. */
typedef struct asyncio_tcp_read_half {
    asyncio_tcp_stream stream; /* private: a copy of the stream's handle */
} asyncio_tcp_read_half;

/** The write half of a split stream: a view of its writing direction. A plain value. */
typedef struct asyncio_tcp_write_half {
    asyncio_tcp_stream stream; /* private: a copy of the stream's handle */
} asyncio_tcp_write_half;

ASYNCIO_BEGIN_DECLS

/** Marks a stream as closed (fd == -1): closing it again is a no-op. Never fails. */
ASYNCIO_EXTERN void asyncio_tcp_stream_init_closed(asyncio_tcp_stream *s);

/**
 * Adopts a connected stream socket (made non-blocking here) and registers
 * it with the runtime running on this thread. On success the stream owns
 * `fd`. Errors: ASYNCIO_EINVAL (NULL, fd < 0, no runtime on this thread),
 * ASYNCIO_ENOMEM, the poller's registration errors; on error the fd stays
 * the caller's and *s is untouched. Runtime thread; may be called in a task.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_from_fd(asyncio_tcp_stream *s, int fd);

/**
 * AsyncRead: reads up to len bytes. 0 with *n_out bytes (0 = the peer shut
 * down writing, or len == 0), ASYNCIO_PENDING (cx's waker stored in the
 * read slot), or an error: ASYNCIO_ECONNRESET, ASYNCIO_ETIMEDOUT
 * (keepalive), ASYNCIO_EINVAL (NULL / closed stream, buf NULL with len >
 * 0). Never allocates. From a task; one reader at a time.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_poll_read(asyncio_tcp_stream *s, asyncio_context *cx,
                                                void *buf, size_t len, size_t *n_out);

/**
 * AsyncWrite: writes up to len bytes (a short write is success). 0 with
 * *n_out, ASYNCIO_PENDING (cx's waker stored in the write slot), or an
 * error: ASYNCIO_EPIPE / ASYNCIO_ECONNRESET (peer reset or we shut down
 * writing; never SIGPIPE), ASYNCIO_EINVAL. Never allocates. From a task;
 * one writer at a time.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_poll_write(asyncio_tcp_stream *s, asyncio_context *cx,
                                                 const void *buf, size_t len, size_t *n_out);

/**
 * As poll_write, gathering iov[0..iovcnt) in one sendmsg (more than
 * IOV_MAX buffers: a short write). Zero total length returns 0 bytes at
 * once. Errors: as poll_write; ASYNCIO_EINVAL for iovcnt < 0 or iov NULL
 * with iovcnt > 0.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_poll_write_vectored(asyncio_tcp_stream *s,
                                                          asyncio_context *cx,
                                                          const asyncio_iovec *iov, int iovcnt,
                                                          size_t *n_out);

/**
 * Waits until the stream is readable without reading: 0 when data (or EOF,
 * or an error) is waiting, ASYNCIO_PENDING (cx's waker stored in the read
 * slot). Readiness is a hint: a poll_read after it may still return
 * ASYNCIO_PENDING (it then clears the readiness, so nothing spins). Lets a
 * server allocate its read buffer only once data arrives, so an idle
 * connection holds no buffer (Tokio's `readable()`). Errors: ASYNCIO_EINVAL
 * (NULL / closed stream). From a task; the stream's one reader.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_poll_read_ready(asyncio_tcp_stream *s, asyncio_context *cx);

/** Nothing is buffered in user space: returns 0 at once (ASYNCIO_EINVAL for a closed stream). */
ASYNCIO_EXTERN int asyncio_tcp_stream_poll_flush(asyncio_tcp_stream *s, asyncio_context *cx);

/**
 * Half-close: shuts down the write side (the peer reads EOF once it has
 * read what was sent). Reading still works. Returns 0 at once, or an
 * error (ASYNCIO_ENOTCONN if the connection is already gone,
 * ASYNCIO_EINVAL). Later writes fail with ASYNCIO_EPIPE.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_poll_shutdown(asyncio_tcp_stream *s, asyncio_context *cx);

/** The stream as an AsyncRead (io.h); borrows s, which must stay at its address while used. */
ASYNCIO_EXTERN asyncio_reader asyncio_tcp_stream_reader(asyncio_tcp_stream *s);

/** The stream as an AsyncWrite (io.h); borrows s, which must stay at its address while used. */
ASYNCIO_EXTERN asyncio_writer asyncio_tcp_stream_writer(asyncio_tcp_stream *s);

/** TCP_NODELAY on (true: send small segments at once) or off. 0 or a negative error. */
ASYNCIO_EXTERN int asyncio_tcp_stream_set_nodelay(asyncio_tcp_stream *s, bool on);

/** Reads TCP_NODELAY into *on. 0 or a negative error. */
ASYNCIO_EXTERN int asyncio_tcp_stream_nodelay(asyncio_tcp_stream *s, bool *on);

/**
 * SO_KEEPALIVE on or off; with on and idle_s > 0, also the idle time
 * before the first probe (TCP_KEEPIDLE where available). 0 or a negative
 * error (ASYNCIO_EINVAL for idle_s above INT_MAX or a closed stream).
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_set_keepalive(asyncio_tcp_stream *s, bool on,
                                                    uint32_t idle_s);

/**
 * SO_LINGER: seconds >= 0 enables lingering on close (0: close sends a
 * reset and discards unsent data); -1 restores the default. 0 or a
 * negative error.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_set_linger(asyncio_tcp_stream *s, int seconds);

/** The peer's address (getpeername). ASYNCIO_ENOTCONN once the peer is gone, ASYNCIO_EINVAL. */
ASYNCIO_EXTERN int asyncio_tcp_stream_peer_addr(const asyncio_tcp_stream *s, asyncio_sockaddr *out);

/** The local address (getsockname). 0 or a negative error. */
ASYNCIO_EXTERN int asyncio_tcp_stream_local_addr(const asyncio_tcp_stream *s,
                                                 asyncio_sockaddr *out);

/**
 * Splits a stream into a read half and a write half that two tasks may use
 * at the same time (the registration keeps one waker per direction, so the
 * reader and the writer never disturb each other). The halves are views:
 * they borrow the stream's registration and fd, and the stream still owns
 * them. Close the stream (once) only after both halves are no longer used;
 * the halves need no closing. The stream itself may be moved meanwhile.
 * Errors: ASYNCIO_EINVAL (NULL argument, closed stream). Any thread.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_split(asyncio_tcp_stream *s, asyncio_tcp_read_half *r,
                                            asyncio_tcp_write_half *w);

/** As asyncio_tcp_stream_poll_read() on the half's stream. */
ASYNCIO_EXTERN int asyncio_tcp_read_half_poll_read(asyncio_tcp_read_half *r, asyncio_context *cx,
                                                   void *buf, size_t len, size_t *n_out);

/** As asyncio_tcp_stream_poll_write() on the half's stream. */
ASYNCIO_EXTERN int asyncio_tcp_write_half_poll_write(asyncio_tcp_write_half *w, asyncio_context *cx,
                                                     const void *buf, size_t len, size_t *n_out);

/** As asyncio_tcp_stream_poll_shutdown() on the half's stream (half-close). */
ASYNCIO_EXTERN int asyncio_tcp_write_half_poll_shutdown(asyncio_tcp_write_half *w,
                                                        asyncio_context *cx);

/** The read half as an AsyncRead; borrows r. */
ASYNCIO_EXTERN asyncio_reader asyncio_tcp_read_half_reader(asyncio_tcp_read_half *r);

/** The write half as an AsyncWrite (write, writev, flush, shutdown); borrows w. */
ASYNCIO_EXTERN asyncio_writer asyncio_tcp_write_half_writer(asyncio_tcp_write_half *w);

/**
 * Deregisters the socket (its stored wakers are dropped, not woken) and
 * closes it; the stream becomes closed (fd == -1) and closing again is a
 * no-op. Unsent data is still delivered by the kernel (unless linger 0).
 * Returns 0, or a deregistration / close error (the stream is closed
 * anyway). Any thread, never concurrently with another call on the stream
 * or its halves.
 */
ASYNCIO_EXTERN int asyncio_tcp_stream_close(asyncio_tcp_stream *s);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* TCP connect                                                               */

/**
 * A future that connects to one address (non-blocking connect; completion
 * by writability and SO_ERROR). Embeddable: initialise with
 * asyncio_tcp_connect_init(), poll with asyncio_tcp_connect_poll(), release
 * with asyncio_tcp_connect_drop(). Movable at any time (no self pointers).
 */
typedef struct asyncio_tcp_connect {
    /* private */
    asyncio_sockaddr addr;
    asyncio_tcp_stream stream; /* connecting, or connected and not yet taken */
    int result;                /* the final error once failed */
    uint8_t state;             /* see src/net/tcp.c */
    void *ring; /* the connect while io_uring runs it (src/net/stream.c), else NULL */
} asyncio_tcp_connect;

ASYNCIO_BEGIN_DECLS

/** Initialises a connect to `addr` (copied). Needs no runtime; never fails. */
ASYNCIO_EXTERN void asyncio_tcp_connect_init(asyncio_tcp_connect *c, const asyncio_sockaddr *addr);

/**
 * Polls the connect. The first poll creates the socket and registers it
 * with the runtime running on this thread. Returns 0 once connected, with
 * the stream moved to *out (if out is NULL the stream stays inside: take
 * it with asyncio_tcp_connect_take()); ASYNCIO_PENDING (cx's waker
 * stored); or an error, returned again by every later poll:
 * ASYNCIO_ECONNREFUSED, ASYNCIO_ETIMEDOUT, ASYNCIO_ENETUNREACH,
 * ASYNCIO_EHOSTUNREACH, ASYNCIO_EADDRNOTAVAIL, ASYNCIO_EMFILE, ...;
 * ASYNCIO_ECANCELED after asyncio_tcp_connect_drop(); ASYNCIO_EINVAL
 * (NULL, non-IP address, polled outside a runtime). On an error the socket
 * is already closed. From a task.
 */
ASYNCIO_EXTERN int asyncio_tcp_connect_poll(asyncio_tcp_connect *c, asyncio_context *cx,
                                            asyncio_tcp_stream *out);

/**
 * asyncio_tcp_connect_poll(c, cx, NULL) with the asyncio_future_poll_fn
 * signature, for asyncio_timeout_init(&t, asyncio_tcp_connect_poll_fn, &c, ms).
 */
ASYNCIO_EXTERN int asyncio_tcp_connect_poll_fn(void *c, asyncio_context *cx);

/**
 * Moves the connected stream out of a connect whose poll returned 0.
 * Errors: ASYNCIO_EINVAL (NULL, not connected, or already taken).
 */
ASYNCIO_EXTERN int asyncio_tcp_connect_take(asyncio_tcp_connect *c, asyncio_tcp_stream *out);

/**
 * Cancels: closes a socket still connecting (or connected and not taken)
 * and drops its waker; a later poll completes with ASYNCIO_ECANCELED.
 * Idempotent; fine on a never-polled or finished connect. Any thread, not
 * concurrently with a poll.
 */
ASYNCIO_EXTERN void asyncio_tcp_connect_drop(asyncio_tcp_connect *c);

ASYNCIO_END_DECLS

/**
 * A future that resolves a host name and connects to each address in turn
 * until one succeeds (sequentially, in getaddrinfo's order; wrap it in
 * asyncio_timeout for an overall limit). Embeddable: init / poll / take /
 * drop as asyncio_tcp_connect. Movable at any time (the lookup's job and
 * result live on the heap; nothing points into the struct).
 */
typedef struct asyncio_tcp_connect_host {
    /* private */
    asyncio_resolve resolve;
    asyncio_tcp_connect connect;
    size_t next;    /* the next address to try */
    int last_error; /* the error of the latest failed attempt */
    uint8_t state;  /* see src/net/resolve.c */
} asyncio_tcp_connect_host;

ASYNCIO_BEGIN_DECLS

/** Initialises a connect to host:port. Errors: those of asyncio_resolve_init(). */
ASYNCIO_EXTERN int asyncio_tcp_connect_host_init(asyncio_tcp_connect_host *c, const char *host,
                                                 uint16_t port);

/**
 * Initialises the same future over a list of addresses instead of a name:
 * connects to addrs[0..count) in turn (no lookup). `addrs` is borrowed: it
 * must stay valid until the future finished or was dropped. Errors:
 * ASYNCIO_EINVAL (NULL, count 0; the struct is still safe to drop).
 */
ASYNCIO_EXTERN int asyncio_tcp_connect_addrs_init(asyncio_tcp_connect_host *c,
                                                  const asyncio_sockaddr *addrs, size_t count);

/**
 * Polls: resolves, then connects to each address in turn. 0 once
 * connected (stream moved to *out, or kept for _take if out is NULL),
 * ASYNCIO_PENDING, or an error: the resolve's error, or the last address's
 * connect error when every address failed; ASYNCIO_ECANCELED after drop.
 * From a task.
 */
ASYNCIO_EXTERN int asyncio_tcp_connect_host_poll(asyncio_tcp_connect_host *c, asyncio_context *cx,
                                                 asyncio_tcp_stream *out);

/** asyncio_tcp_connect_host_poll(c, cx, NULL) as an asyncio_future_poll_fn (for timeouts). */
ASYNCIO_EXTERN int asyncio_tcp_connect_host_poll_fn(void *c, asyncio_context *cx);

/** Moves the stream out after poll returned 0. Errors: ASYNCIO_EINVAL. */
ASYNCIO_EXTERN int asyncio_tcp_connect_host_take(asyncio_tcp_connect_host *c,
                                                 asyncio_tcp_stream *out);

/** Cancels (closes any socket, detaches the lookup); later polls give ASYNCIO_ECANCELED. */
ASYNCIO_EXTERN void asyncio_tcp_connect_host_drop(asyncio_tcp_connect_host *c);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* TCP listener                                                              */

/**
 * A listening TCP socket. Opaque, one allocation per listener: it is
 * long-lived (one per server, never on a hot path), and it embeds the
 * timer of its EMFILE back-off, which must not move while registered —
 * so keeping it behind a pointer is simpler and safer than an embeddable
 * struct that must stay put.
 */
typedef struct asyncio_tcp_listener asyncio_tcp_listener;

/** Listener options. Zero-initialise; zero fields take the defaults. */
typedef struct asyncio_tcp_listener_options {
    /** listen(2) backlog (default 1024; the kernel caps it at somaxconn). */
    int backlog;
    /** Set SO_REUSEPORT (several listeners share the port; the kernel balances). */
    bool reuseport;
    /**
     * After accept fails for lack of file descriptors (EMFILE / ENFILE /
     * ENOBUFS / ENOMEM), wait this long before trying again (default 100
     * ms). Meanwhile poll_accept returns ASYNCIO_PENDING and the pending
     * connection stays queued in the kernel.
     */
    uint32_t accept_backoff_ms;
} asyncio_tcp_listener_options;

ASYNCIO_BEGIN_DECLS

/**
 * Creates a TCP socket for addr's family, sets SO_REUSEADDR (and
 * SO_REUSEPORT if asked), binds, listens and registers it with the runtime
 * running on this thread. `opts` may be NULL. Port 0 lets the kernel
 * choose; read it back with asyncio_tcp_listener_local_addr().
 *
 * Errors: ASYNCIO_EINVAL (NULL, not an IPv4 / IPv6 address, no runtime on
 * this thread, negative backlog), ASYNCIO_EADDRINUSE, ASYNCIO_EACCES,
 * ASYNCIO_EADDRNOTAVAIL, ASYNCIO_EMFILE, ASYNCIO_ENOMEM, ASYNCIO_ENOTSUP
 * (SO_REUSEPORT unsupported). On error nothing needs closing. Runtime
 * thread; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_tcp_listener_bind(asyncio_tcp_listener **out,
                                             const asyncio_sockaddr *addr,
                                             const asyncio_tcp_listener_options *opts);

/**
 * Accepts one connection. 0 with the new stream in *stream_out (which now
 * owns it: close it with asyncio_tcp_stream_close) and, if peer_out is
 * non-NULL, the peer's address; or ASYNCIO_PENDING (cx's waker stored).
 *
 * Survives fd exhaustion: when accept fails with EMFILE / ENFILE /
 * ENOBUFS / ENOMEM, poll_accept backs off for accept_backoff_ms (a timer:
 * no spinning, one accept attempt per period) and returns
 * ASYNCIO_PENDING; other connections keep being served, and accepting
 * resumes by itself once descriptors are free. Per-connection errors
 * (ECONNABORTED, EPROTO, network errors of the new connection) are skipped.
 *
 * Errors: ASYNCIO_EINVAL (NULL argument, closed listener), ASYNCIO_ENOMEM
 * (registering the new stream failed: that connection is closed), and
 * unexpected accept errors. One accepting task at a time.
 */
ASYNCIO_EXTERN int asyncio_tcp_listener_poll_accept(asyncio_tcp_listener *l, asyncio_context *cx,
                                                    asyncio_tcp_stream *stream_out,
                                                    asyncio_sockaddr *peer_out);

/** The bound address (with the kernel-chosen port). 0 or a negative error. Any thread. */
ASYNCIO_EXTERN int asyncio_tcp_listener_local_addr(const asyncio_tcp_listener *l,
                                                   asyncio_sockaddr *out);

/** The listening socket's fd (still owned by the listener), or -1 for NULL. */
ASYNCIO_EXTERN int asyncio_tcp_listener_fd(const asyncio_tcp_listener *l);

/** How many times accept backed off for lack of fds since bind (monitoring, tests). */
ASYNCIO_EXTERN uint64_t asyncio_tcp_listener_backoffs(const asyncio_tcp_listener *l);

/**
 * Cancels the back-off timer, deregisters and closes the socket (queued,
 * unaccepted connections are reset) and frees the listener. Returns 0 or a
 * deregistration / close error (freed anyway); NULL is a no-op. Runtime
 * thread (the timer is bound to it), not concurrently with poll_accept.
 */
ASYNCIO_EXTERN int asyncio_tcp_listener_close(asyncio_tcp_listener *l);

ASYNCIO_END_DECLS

#endif
