/*
 * Byte-stream sockets, once for TCP and Unix: the data operations and the
 * AsyncRead / AsyncWrite vtables, the connect future and the listener with
 * its EMFILE back-off (src/net/stream.c). src/net/tcp.c and src/net/unix.c
 * are the typed public faces: argument checks, socket creation and the
 * options of their family.
 *
 * Layouts. asyncio_tcp_stream and asyncio_unix_stream are the same three
 * fields as asyncio__sockio_handle (io, reg, fd; src/net/sockio.h), and asyncio_tcp_connect /
 * asyncio_unix_connect the same four as asyncio__stream_connect; each
 * module checks that at compile time (ASYNCIO__HANDLE_LAYOUT, ASYNCIO__CONNECT_LAYOUT). Functions
 * here take the public object as `void *` and copy it in and out with
 * memcpy, so no object is ever accessed through a pointer to another
 * struct type (strict aliasing stays intact).
 *
 * Thread-safety: as the public types (net.h, unix.h): one reader and one
 * writer per stream, everything else single-owner.
 */
#ifndef ASYNCIO_NET_STREAM_H
#define ASYNCIO_NET_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asyncio/io.h"
#include "asyncio/net.h"
#include "asyncio/time.h"
#include "net/sockio.h"

/* ---- data operations (io.h semantics; the public wrappers document them) ---- */

int asyncio__stream_poll_read(void *obj, asyncio_context *cx, void *buf, size_t len, size_t *n_out);
int asyncio__stream_poll_write(void *obj, asyncio_context *cx, const void *buf, size_t len,
                               size_t *n_out);
int asyncio__stream_poll_write_vectored(void *obj, asyncio_context *cx, const asyncio_iovec *iov,
                                        int iovcnt, size_t *n_out);
int asyncio__stream_poll_flush(void *obj, asyncio_context *cx);
int asyncio__stream_poll_shutdown(void *obj, asyncio_context *cx);
/* 0 once readable (data, EOF or an error waiting), without reading or clearing. */
int asyncio__stream_poll_read_ready(void *obj, asyncio_context *cx);

/* The vtables of every stream object (and of a TCP half: it embeds a stream first). */
extern const asyncio_reader_vtable asyncio__stream_reader_vt;
extern const asyncio_writer_vtable asyncio__stream_writer_vt;

/* ---- connect ------------------------------------------------------------------ */

/* The layout of asyncio_tcp_connect and asyncio_unix_connect. */
typedef struct asyncio__stream_connect {
    asyncio_sockaddr addr;
    asyncio__sockio_handle stream;
    int result;
    uint8_t state;
    void *ring; /* CONNECT_RING: the request on the ring (stream.c) */
} asyncio__stream_connect;

#define ASYNCIO__CONNECT_LAYOUT(T)                                                                \
    ASYNCIO_STATIC_ASSERT(sizeof(T) == sizeof(asyncio__stream_connect) &&                         \
                              offsetof(T, stream) == offsetof(asyncio__stream_connect, stream) && \
                              offsetof(T, result) == offsetof(asyncio__stream_connect, result) && \
                              offsetof(T, state) == offsetof(asyncio__stream_connect, state) &&   \
                              offsetof(T, ring) == offsetof(asyncio__stream_connect, ring),       \
                          #T " has the layout of asyncio__stream_connect")

void asyncio__stream_connect_init(void *c, const asyncio_sockaddr *addr);
/*
 * Polls a connect; `addr_ok` says whether c's address suits the caller's
 * family (checked on the first poll: ASYNCIO_EINVAL, nothing created).
 * `out` receives the stream (NULL: it stays inside for _take).
 */
int asyncio__stream_connect_poll(void *c, asyncio_context *cx, void *out, bool addr_ok);
int asyncio__stream_connect_take(void *c, void *out);
void asyncio__stream_connect_drop(void *c);

/* ---- listener ------------------------------------------------------------------ */

/* What a TCP or Unix listener is: its socket and the EMFILE back-off. */
typedef struct asyncio__cacceptor asyncio__cacceptor;

typedef struct asyncio__stream_listener {
    asyncio__sockio_handle sock; /* the listening socket's registration and fd */
    asyncio__cacceptor *acc;     /* accepts on the ring (completion path), else NULL */
    asyncio_sleep backoff;       /* armed while backing off after fd exhaustion */
    bool backing_off;
    uint32_t backoff_ms;
    /* How many times it backed off; atomic (relaxed): read from any task or thread. */
    _Atomic uint64_t backoffs;
} asyncio__stream_listener;

#define ASYNCIO__LISTENER_BACKLOG    1024
#define ASYNCIO__LISTENER_BACKOFF_MS 100

/* Registers a listening fd (backoff_ms 0: the default). On error the fd stays the caller's. */
int asyncio__stream_listener_init(asyncio__stream_listener *l, int fd, uint32_t backoff_ms);

/*
 * Accepts one connection into stream_out (a public stream object), peer
 * into peer_out (may be NULL). Backs off on fd exhaustion (docs/net.md).
 */
int asyncio__stream_listener_poll_accept(asyncio__stream_listener *l, asyncio_context *cx,
                                         void *stream_out, asyncio_sockaddr *peer_out);

/* Cancels the back-off timer, deregisters and closes (the struct is the caller's). */
int asyncio__stream_listener_close(asyncio__stream_listener *l);

#endif
