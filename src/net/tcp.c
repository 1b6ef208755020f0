/*
 * TCP: the typed face of the byte-stream sockets in src/net/stream.c —
 * argument checks, IPv4 / IPv6 socket creation, TCP options, split halves.
 *
 * What it owns. A stream is a registration in the I/O driver (one slab
 * entry) plus the socket fd, the same three fields as every socket object
 * in src/net (asyncio__sockio_handle), so it is movable and 24 bytes.
 * Streams are built on the internal registration API rather than on an
 * asyncio_async_fd to avoid the async fd's extra allocation per connection
 * (docs/net.md, "Memory"). Data operations, the vtables, the connect
 * state machine and the listener's EMFILE back-off are shared with Unix
 * sockets (stream.c); the readiness loop is sockio.c's.
 *
 * Thread-safety: the registration keeps one waker per direction, so one
 * reader and one writer may work at once (split halves); everything else
 * on a stream is single-owner.
 */
#include <string.h>

#include "asyncio/net.h"
#include "internal.h"
#include "net/stream.h"
#include "platform/socket.h"
#include "util/alloc.h"

ASYNCIO__HANDLE_LAYOUT(asyncio_tcp_stream);
ASYNCIO__CONNECT_LAYOUT(asyncio_tcp_connect);
/* The halves embed a stream copy first, so the stream vtables serve them too. */
ASYNCIO_STATIC_ASSERT(offsetof(asyncio_tcp_read_half, stream) == 0, "read half layout");
ASYNCIO_STATIC_ASSERT(offsetof(asyncio_tcp_write_half, stream) == 0, "write half layout");

static bool is_ip(const asyncio_sockaddr *a)
{
    int family = asyncio_addr_family(a);
    return family == AF_INET || family == AF_INET6;
}

/* The fd of an open stream, or -1. */
static int stream_fd(const asyncio_tcp_stream *s)
{
    asyncio__sockio_handle h;
    return asyncio__handle_load(s, &h) ? h.fd : -1;
}

/* ------------------------------------------------------------------------ */
/* Stream                                                                    */

void asyncio_tcp_stream_init_closed(asyncio_tcp_stream *s)
{
    asyncio__handle_init_closed(s);
}

int asyncio_tcp_stream_from_fd(asyncio_tcp_stream *s, int fd)
{
    if (s == NULL || fd < 0 || !asyncio__sockio_can_attach())
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_set_nonblocking(fd);
    return rc < 0 ? rc : asyncio__handle_attach_stream(s, fd);
}

int asyncio_tcp_stream_poll_read(asyncio_tcp_stream *s, asyncio_context *cx, void *buf, size_t len,
                                 size_t *n_out)
{
    return asyncio__stream_poll_read(s, cx, buf, len, n_out);
}

int asyncio_tcp_stream_poll_write(asyncio_tcp_stream *s, asyncio_context *cx, const void *buf,
                                  size_t len, size_t *n_out)
{
    return asyncio__stream_poll_write(s, cx, buf, len, n_out);
}

int asyncio_tcp_stream_poll_write_vectored(asyncio_tcp_stream *s, asyncio_context *cx,
                                           const asyncio_iovec *iov, int iovcnt, size_t *n_out)
{
    return asyncio__stream_poll_write_vectored(s, cx, iov, iovcnt, n_out);
}

int asyncio_tcp_stream_poll_read_ready(asyncio_tcp_stream *s, asyncio_context *cx)
{
    return asyncio__stream_poll_read_ready(s, cx);
}

int asyncio_tcp_stream_poll_flush(asyncio_tcp_stream *s, asyncio_context *cx)
{
    return asyncio__stream_poll_flush(s, cx);
}

int asyncio_tcp_stream_poll_shutdown(asyncio_tcp_stream *s, asyncio_context *cx)
{
    return asyncio__stream_poll_shutdown(s, cx);
}

asyncio_reader asyncio_tcp_stream_reader(asyncio_tcp_stream *s)
{
    return (asyncio_reader){&asyncio__stream_reader_vt, s};
}

asyncio_writer asyncio_tcp_stream_writer(asyncio_tcp_stream *s)
{
    return (asyncio_writer){&asyncio__stream_writer_vt, s};
}

int asyncio_tcp_stream_close(asyncio_tcp_stream *s)
{
    return asyncio__handle_close(s);
}

/* ---- Options and names --------------------------------------------------- */

int asyncio_tcp_stream_set_nodelay(asyncio_tcp_stream *s, bool on)
{
    int fd = stream_fd(s);
    if (fd < 0)
        return ASYNCIO_EINVAL;
    return asyncio__sock_set_nodelay(fd, on);
}

int asyncio_tcp_stream_nodelay(asyncio_tcp_stream *s, bool *on)
{
    int fd = stream_fd(s), v = 0;
    if (fd < 0 || on == NULL)
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_nodelay(fd, &v);
    if (rc == 0)
        *on = v != 0;
    return rc;
}

int asyncio_tcp_stream_set_keepalive(asyncio_tcp_stream *s, bool on, uint32_t idle_s)
{
    int fd = stream_fd(s);
    if (fd < 0 || idle_s > INT32_MAX)
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_setopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
    if (rc < 0 || !on || idle_s == 0)
        return rc;
    return asyncio__sock_set_keepalive_idle(fd, (int)idle_s);
}

int asyncio_tcp_stream_set_linger(asyncio_tcp_stream *s, int seconds)
{
    int fd = stream_fd(s);
    if (fd < 0 || seconds < -1)
        return ASYNCIO_EINVAL;
    return asyncio__sock_set_linger(fd, seconds);
}

int asyncio_tcp_stream_peer_addr(const asyncio_tcp_stream *s, asyncio_sockaddr *out)
{
    return asyncio__handle_peer_addr(s, out);
}

int asyncio_tcp_stream_local_addr(const asyncio_tcp_stream *s, asyncio_sockaddr *out)
{
    return asyncio__handle_local_addr(s, out);
}

/* ---- Split --------------------------------------------------------------- */

int asyncio_tcp_stream_split(asyncio_tcp_stream *s, asyncio_tcp_read_half *r,
                             asyncio_tcp_write_half *w)
{
    if (stream_fd(s) < 0 || r == NULL || w == NULL)
        return ASYNCIO_EINVAL;
    r->stream = *s;
    w->stream = *s;
    return 0;
}

int asyncio_tcp_read_half_poll_read(asyncio_tcp_read_half *r, asyncio_context *cx, void *buf,
                                    size_t len, size_t *n_out)
{
    return asyncio_tcp_stream_poll_read(r != NULL ? &r->stream : NULL, cx, buf, len, n_out);
}

int asyncio_tcp_write_half_poll_write(asyncio_tcp_write_half *w, asyncio_context *cx,
                                      const void *buf, size_t len, size_t *n_out)
{
    return asyncio_tcp_stream_poll_write(w != NULL ? &w->stream : NULL, cx, buf, len, n_out);
}

int asyncio_tcp_write_half_poll_shutdown(asyncio_tcp_write_half *w, asyncio_context *cx)
{
    return asyncio_tcp_stream_poll_shutdown(w != NULL ? &w->stream : NULL, cx);
}

asyncio_reader asyncio_tcp_read_half_reader(asyncio_tcp_read_half *r)
{
    return (asyncio_reader){&asyncio__stream_reader_vt, r};
}

asyncio_writer asyncio_tcp_write_half_writer(asyncio_tcp_write_half *w)
{
    return (asyncio_writer){&asyncio__stream_writer_vt, w};
}

/* ------------------------------------------------------------------------ */
/* Connect (the state machine is stream.c's)                                 */

void asyncio_tcp_connect_init(asyncio_tcp_connect *c, const asyncio_sockaddr *addr)
{
    asyncio__stream_connect_init(c, addr);
}

int asyncio_tcp_connect_poll(asyncio_tcp_connect *c, asyncio_context *cx, asyncio_tcp_stream *out)
{
    return asyncio__stream_connect_poll(c, cx, out, c != NULL && is_ip(&c->addr));
}

int asyncio_tcp_connect_poll_fn(void *c, asyncio_context *cx)
{
    return asyncio_tcp_connect_poll(c, cx, NULL);
}

int asyncio_tcp_connect_take(asyncio_tcp_connect *c, asyncio_tcp_stream *out)
{
    return asyncio__stream_connect_take(c, out);
}

void asyncio_tcp_connect_drop(asyncio_tcp_connect *c)
{
    asyncio__stream_connect_drop(c);
}

/* ------------------------------------------------------------------------ */
/* Listener (accept and its EMFILE back-off are stream.c's)                  */

struct asyncio_tcp_listener {
    asyncio__stream_listener base;
};

/* Socket, options, bind, listen: the fd, or a negative error. */
static int listener_socket(const asyncio_sockaddr *addr, int backlog, bool reuseport)
{
    int fd = asyncio__sock_open(asyncio_addr_family(addr), SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int rc = asyncio__sock_setopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && reuseport) {
#ifdef SO_REUSEPORT
        rc = asyncio__sock_setopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
        rc = ASYNCIO_ENOTSUP;
#endif
    }
    if (rc == 0)
        rc = asyncio__sock_bind(fd, addr);
    if (rc == 0)
        rc = asyncio__sock_listen(fd, backlog);
    if (rc < 0) {
        asyncio__sock_close(fd);
        return rc;
    }
    return fd;
}

int asyncio_tcp_listener_bind(asyncio_tcp_listener **out, const asyncio_sockaddr *addr,
                              const asyncio_tcp_listener_options *opts)
{
    if (out == NULL || !is_ip(addr) || !asyncio__sockio_can_attach() ||
        (opts != NULL && opts->backlog < 0))
        return ASYNCIO_EINVAL;
    int backlog = opts != NULL && opts->backlog > 0 ? opts->backlog : ASYNCIO__LISTENER_BACKLOG;
    asyncio_tcp_listener *l = asyncio__calloc(1, sizeof *l);
    if (l == NULL)
        return ASYNCIO_ENOMEM;
    int fd = listener_socket(addr, backlog, opts != NULL && opts->reuseport);
    int rc = fd < 0 ? fd
                    : asyncio__stream_listener_init(&l->base, fd,
                                                    opts != NULL ? opts->accept_backoff_ms : 0);
    if (rc < 0) {
        if (fd >= 0)
            asyncio__sock_close(fd);
        asyncio__free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int asyncio_tcp_listener_poll_accept(asyncio_tcp_listener *l, asyncio_context *cx,
                                     asyncio_tcp_stream *stream_out, asyncio_sockaddr *peer_out)
{
    if (l == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__stream_listener_poll_accept(&l->base, cx, stream_out, peer_out);
}

int asyncio_tcp_listener_local_addr(const asyncio_tcp_listener *l, asyncio_sockaddr *out)
{
    return l != NULL ? asyncio__handle_local_addr(&l->base.sock, out) : ASYNCIO_EINVAL;
}

int asyncio_tcp_listener_fd(const asyncio_tcp_listener *l)
{
    return l != NULL ? l->base.sock.fd : -1;
}

uint64_t asyncio_tcp_listener_backoffs(const asyncio_tcp_listener *l)
{
    return l != NULL ? atomic_load_explicit(&((asyncio_tcp_listener *)l)->base.backoffs,
                                            memory_order_relaxed)
                     : 0;
}

int asyncio_tcp_listener_close(asyncio_tcp_listener *l)
{
    if (l == NULL)
        return 0;
    int rc = asyncio__stream_listener_close(&l->base);
    asyncio__free(l);
    return rc;
}
