/*
 * Unix-domain sockets: streams (AsyncRead / AsyncWrite), the connect
 * future, the listener and datagram sockets.
 *
 * What it owns. Streams and datagram sockets are a registration plus an fd
 * (asyncio__sockio_handle, src/net/sockio.h), like TCP streams; every data
 * operation is one asyncio__sockio_poll(). The stream operations, vtables,
 * connect state machine and listener (one allocation: its socket and the
 * timer of its EMFILE back-off) are shared with TCP in src/net/stream.c;
 * this file adds the Unix parts: addresses, stale socket files,
 * credentials, socketpairs and datagrams.
 *
 * Stale socket files (unix.h): bind never unlinks on its own; with
 * unlink_existing it removes a SOCKET file found at the path first
 * (asyncio__unix_unlink_stale). Close never unlinks.
 *
 * Thread-safety: one reader and one writer per object (one waker slot per
 * direction); everything else is single-owner.
 */
#include "asyncio/unix.h"

#include <string.h>

#include "internal.h"
#include "net/stream.h"
#include "platform/socket.h"
#include "platform/socket_dgram.h"
#include "util/alloc.h"

#define UNIX_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

/*
 * A Unix address we accept: AF_UNIX with a length within sun_path.
 * `allow_unnamed`: the bare family (datagram autobind) is allowed.
 */
static bool unix_addr_ok(const asyncio_sockaddr *a, bool allow_unnamed)
{
    if (a == NULL || a->u.sa.sa_family != AF_UNIX || a->len > sizeof(struct sockaddr_un))
        return false;
    return allow_unnamed ? a->len >= UNIX_PATH_OFFSET : a->len > UNIX_PATH_OFFSET;
}

/* Creates a socket of `type`, optionally bound to `addr`. The fd, or a negative error. */
static int open_socket(int type, const asyncio_sockaddr *addr, const asyncio_unix_bind_options *o)
{
    if (addr != NULL && o != NULL && o->unlink_existing) {
        int rc = asyncio__unix_unlink_stale(addr);
        if (rc < 0)
            return rc;
    }
    int fd = asyncio__sock_open(AF_UNIX, type, 0);
    if (fd < 0 || addr == NULL)
        return fd;
    int rc = asyncio__sock_bind(fd, addr);
    if (rc < 0) {
        asyncio__sock_close(fd);
        return rc;
    }
    return fd;
}

/* ------------------------------------------------------------------------ */
/* Stream (data operations and vtables: stream.c)                            */

ASYNCIO__HANDLE_LAYOUT(asyncio_unix_stream);
ASYNCIO__HANDLE_LAYOUT(asyncio_unix_datagram);
ASYNCIO__CONNECT_LAYOUT(asyncio_unix_connect);

void asyncio_unix_stream_init_closed(asyncio_unix_stream *s)
{
    asyncio__handle_init_closed(s);
}

int asyncio_unix_stream_close(asyncio_unix_stream *s)
{
    return asyncio__handle_close(s);
}

/* Registers both ends of a socketpair into *a and *b, or closes both. */
static int attach_pair(void *a, void *b, int type)
{
    int fds[2];
    int rc = asyncio__sock_pair(type, fds);
    if (rc < 0)
        return rc;
    rc = type == SOCK_STREAM ? asyncio__handle_attach_stream(a, fds[0])
                             : asyncio__handle_attach(a, fds[0]);
    if (rc < 0) {
        asyncio__sock_close(fds[0]);
        asyncio__sock_close(fds[1]);
        return rc;
    }
    rc = type == SOCK_STREAM ? asyncio__handle_attach_stream(b, fds[1])
                             : asyncio__handle_attach(b, fds[1]);
    if (rc < 0) {
        asyncio__sock_close(fds[1]);
        asyncio__handle_close(a);
    }
    return rc;
}

int asyncio_unix_stream_pair(asyncio_unix_stream *a, asyncio_unix_stream *b)
{
    if (a == NULL || b == NULL)
        return ASYNCIO_EINVAL;
    return attach_pair(a, b, SOCK_STREAM);
}

int asyncio_unix_stream_from_fd(asyncio_unix_stream *s, int fd)
{
    if (s == NULL || fd < 0)
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_set_nonblocking(fd);
    return rc < 0 ? rc
                  : asyncio__handle_attach_stream(s, fd); /* on error the fd stays the caller's */
}

int asyncio_unix_stream_poll_read(asyncio_unix_stream *s, asyncio_context *cx, void *buf,
                                  size_t len, size_t *n_out)
{
    return asyncio__stream_poll_read(s, cx, buf, len, n_out);
}

int asyncio_unix_stream_poll_write(asyncio_unix_stream *s, asyncio_context *cx, const void *buf,
                                   size_t len, size_t *n_out)
{
    return asyncio__stream_poll_write(s, cx, buf, len, n_out);
}

int asyncio_unix_stream_poll_write_vectored(asyncio_unix_stream *s, asyncio_context *cx,
                                            const asyncio_iovec *iov, int iovcnt, size_t *n_out)
{
    return asyncio__stream_poll_write_vectored(s, cx, iov, iovcnt, n_out);
}

int asyncio_unix_stream_poll_flush(asyncio_unix_stream *s, asyncio_context *cx)
{
    return asyncio__stream_poll_flush(s, cx);
}

int asyncio_unix_stream_poll_shutdown(asyncio_unix_stream *s, asyncio_context *cx)
{
    return asyncio__stream_poll_shutdown(s, cx);
}

asyncio_reader asyncio_unix_stream_reader(asyncio_unix_stream *s)
{
    return (asyncio_reader){&asyncio__stream_reader_vt, s};
}

asyncio_writer asyncio_unix_stream_writer(asyncio_unix_stream *s)
{
    return (asyncio_writer){&asyncio__stream_writer_vt, s};
}

/* ---- Names and credentials ----------------------------------------------- */

int asyncio_unix_stream_peer_cred(const asyncio_unix_stream *s, asyncio_unix_cred *out)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(s, &h) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_peer_cred(h.fd, out);
}

int asyncio_unix_stream_local_addr(const asyncio_unix_stream *s, asyncio_sockaddr *out)
{
    return asyncio__handle_local_addr(s, out);
}

int asyncio_unix_stream_peer_addr(const asyncio_unix_stream *s, asyncio_sockaddr *out)
{
    return asyncio__handle_peer_addr(s, out);
}

/* ------------------------------------------------------------------------ */
/* Connect (the state machine is stream.c's)                                 */

void asyncio_unix_connect_init(asyncio_unix_connect *c, const asyncio_sockaddr *addr)
{
    asyncio__stream_connect_init(c, addr);
}

int asyncio_unix_connect_poll(asyncio_unix_connect *c, asyncio_context *cx,
                              asyncio_unix_stream *out)
{
    return asyncio__stream_connect_poll(c, cx, out, c != NULL && unix_addr_ok(&c->addr, false));
}

int asyncio_unix_connect_poll_fn(void *c, asyncio_context *cx)
{
    return asyncio_unix_connect_poll(c, cx, NULL);
}

int asyncio_unix_connect_take(asyncio_unix_connect *c, asyncio_unix_stream *out)
{
    return asyncio__stream_connect_take(c, out);
}

void asyncio_unix_connect_drop(asyncio_unix_connect *c)
{
    asyncio__stream_connect_drop(c);
}

/* ------------------------------------------------------------------------ */
/* Listener (accept and its EMFILE back-off are stream.c's)                  */

struct asyncio_unix_listener {
    asyncio__stream_listener base;
};

int asyncio_unix_listener_bind(asyncio_unix_listener **out, const asyncio_sockaddr *addr,
                               const asyncio_unix_bind_options *opts)
{
    if (out == NULL || !unix_addr_ok(addr, false) || (opts != NULL && opts->backlog < 0) ||
        !asyncio__sockio_can_attach())
        return ASYNCIO_EINVAL;
    int backlog = opts != NULL && opts->backlog > 0 ? opts->backlog : ASYNCIO__LISTENER_BACKLOG;
    asyncio_unix_listener *l = asyncio__calloc(1, sizeof *l);
    if (l == NULL)
        return ASYNCIO_ENOMEM;
    int fd = open_socket(SOCK_STREAM, addr, opts);
    int rc = fd < 0 ? fd : asyncio__sock_listen(fd, backlog);
    if (rc == 0)
        rc =
            asyncio__stream_listener_init(&l->base, fd, opts != NULL ? opts->accept_backoff_ms : 0);
    if (rc < 0) {
        if (fd >= 0) {
            asyncio__sock_close(fd);
            (void)asyncio__unix_unlink_stale(addr); /* the file we just created */
        }
        asyncio__free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int asyncio_unix_listener_poll_accept(asyncio_unix_listener *l, asyncio_context *cx,
                                      asyncio_unix_stream *stream_out, asyncio_sockaddr *peer_out)
{
    if (l == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__stream_listener_poll_accept(&l->base, cx, stream_out, peer_out);
}

int asyncio_unix_listener_local_addr(const asyncio_unix_listener *l, asyncio_sockaddr *out)
{
    return l != NULL ? asyncio__handle_local_addr(&l->base.sock, out) : ASYNCIO_EINVAL;
}

int asyncio_unix_listener_fd(const asyncio_unix_listener *l)
{
    return l != NULL ? l->base.sock.fd : -1;
}

int asyncio_unix_listener_close(asyncio_unix_listener *l)
{
    if (l == NULL)
        return 0;
    int rc = asyncio__stream_listener_close(&l->base);
    asyncio__free(l);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Datagram                                                                  */

static bool dgram_ok(const asyncio_unix_datagram *d)
{
    return d != NULL && d->fd >= 0 && d->reg != NULL;
}

void asyncio_unix_datagram_init_closed(asyncio_unix_datagram *d)
{
    asyncio__handle_init_closed(d);
}

/* Creates (bound to addr, or unbound when NULL) and registers. */
static int dgram_create(asyncio_unix_datagram *d, const asyncio_sockaddr *addr,
                        const asyncio_unix_bind_options *opts)
{
    if (d == NULL || !asyncio__sockio_can_attach())
        return ASYNCIO_EINVAL;
    int fd = open_socket(SOCK_DGRAM, addr, opts);
    if (fd < 0)
        return fd;
    int rc = asyncio__handle_attach(d, fd);
    if (rc < 0) {
        asyncio__sock_close(fd);
        if (addr != NULL)
            (void)asyncio__unix_unlink_stale(addr); /* the file we just created */
    }
    return rc;
}

int asyncio_unix_datagram_bind(asyncio_unix_datagram *d, const asyncio_sockaddr *addr,
                               const asyncio_unix_bind_options *opts)
{
    if (!unix_addr_ok(addr, true))
        return ASYNCIO_EINVAL;
    return dgram_create(d, addr, opts);
}

int asyncio_unix_datagram_unbound(asyncio_unix_datagram *d)
{
    return dgram_create(d, NULL, NULL);
}

int asyncio_unix_datagram_pair(asyncio_unix_datagram *a, asyncio_unix_datagram *b)
{
    if (a == NULL || b == NULL)
        return ASYNCIO_EINVAL;
    return attach_pair(a, b, SOCK_DGRAM);
}

int asyncio_unix_datagram_connect(asyncio_unix_datagram *d, const asyncio_sockaddr *addr)
{
    if (!dgram_ok(d) || !unix_addr_ok(addr, false))
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_connect(d->fd, addr);
    return rc == ASYNCIO_EINPROGRESS ? 0 : rc; /* datagram connects are immediate */
}

static int dgram_send(asyncio_unix_datagram *d, asyncio_context *cx, const void *buf, size_t len,
                      const asyncio_sockaddr *to, size_t *n_out)
{
    static const unsigned char empty[1];
    if (!dgram_ok(d) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {
        .kind = ASYNCIO__SOCKIO_SEND_TO, .wbuf = buf != NULL ? buf : empty, .len = len, .to = to};
    return asyncio__sockio_poll(d->io, d->reg, d->fd, cx, &op, n_out);
}

static int dgram_recv(asyncio_unix_datagram *d, asyncio_context *cx, void *buf, size_t len,
                      size_t *n_out, asyncio_sockaddr *from, bool *truncated)
{
    static unsigned char discard[1];
    if (!dgram_ok(d) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = ASYNCIO__SOCKIO_RECV_FROM,
                             .rbuf = buf != NULL ? buf : discard,
                             .len = len,
                             .from = from,
                             .truncated = truncated};
    int rc = asyncio__sockio_poll(d->io, d->reg, d->fd, cx, &op, n_out);
    if (rc == 0 && from != NULL && from->len == 0) {
        /* Linux reports an unnamed sender with no address at all: make it "unnamed". */
        from->u.sa.sa_family = AF_UNIX;
        from->len = (socklen_t)sizeof(sa_family_t);
    }
    return rc;
}

int asyncio_unix_datagram_poll_send_to(asyncio_unix_datagram *d, asyncio_context *cx,
                                       const void *buf, size_t len, const asyncio_sockaddr *to,
                                       size_t *n_out)
{
    if (!unix_addr_ok(to, false))
        return ASYNCIO_EINVAL;
    return dgram_send(d, cx, buf, len, to, n_out);
}

int asyncio_unix_datagram_poll_recv_from(asyncio_unix_datagram *d, asyncio_context *cx, void *buf,
                                         size_t len, size_t *n_out, asyncio_sockaddr *from,
                                         bool *truncated)
{
    return dgram_recv(d, cx, buf, len, n_out, from, truncated);
}

int asyncio_unix_datagram_poll_send(asyncio_unix_datagram *d, asyncio_context *cx, const void *buf,
                                    size_t len, size_t *n_out)
{
    return dgram_send(d, cx, buf, len, NULL, n_out);
}

int asyncio_unix_datagram_poll_recv(asyncio_unix_datagram *d, asyncio_context *cx, void *buf,
                                    size_t len, size_t *n_out, bool *truncated)
{
    return dgram_recv(d, cx, buf, len, n_out, NULL, truncated);
}

int asyncio_unix_datagram_local_addr(const asyncio_unix_datagram *d, asyncio_sockaddr *out)
{
    return asyncio__handle_local_addr(d, out);
}

int asyncio_unix_datagram_peer_addr(const asyncio_unix_datagram *d, asyncio_sockaddr *out)
{
    return asyncio__handle_peer_addr(d, out);
}

int asyncio_unix_datagram_close(asyncio_unix_datagram *d)
{
    return asyncio__handle_close(d);
}
