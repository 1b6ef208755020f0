/*
 * TCP: streams, the connect future and the listener.
 *
 * What it owns. A stream is a registration in the I/O driver (one slab
 * entry, src/reactor/io.h) plus the socket fd; the public struct holds only
 * those two pointers and the fd, so it is movable and 24 bytes. Streams are
 * built on the internal registration API rather than on an asyncio_async_fd
 * to avoid the async fd's extra allocation per connection (docs/net.md,
 * "Memory").
 *
 * I/O loop (every data operation): poll_ready(direction) -> system call ->
 * on EAGAIN clear_ready + re-arm and loop (the next poll_ready is then
 * pending, with the waker stored); EINTR is retried in src/platform. A
 * short transfer also gives the readiness back at once: the socket was
 * drained (or its send buffer filled), so the EAGAIN call the next
 * operation would make is skipped — one read and one write per echo round
 * trip. The tick protocol makes that safe: if an event arrived since
 * poll_ready the clear is ignored and the readiness stays.
 *
 * Thread-safety: the registration keeps one waker per direction, so one
 * reader and one writer may work at once (split halves); everything else
 * on a stream is single-owner.
 */
#include <string.h>

#include "asyncio/net.h"
#include "asyncio/time.h"
#include "internal.h"
#include "platform/socket.h"
#include "reactor/driver.h"
#include "reactor/io.h"
#include "util/alloc.h"

#include <netinet/tcp.h>

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

/* Registers `fd` with the current runtime's I/O driver and fills *s. */
static int stream_attach(asyncio_tcp_stream *s, int fd)
{
    asyncio__driver *drv = asyncio__driver_current();
    if (drv == NULL)
        return ASYNCIO_EINVAL;
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    asyncio__io_reg *reg;
    int rc = asyncio__io_register(&drv->io, &src.base, ASYNCIO_READABLE | ASYNCIO_WRITABLE, &reg);
    if (rc < 0)
        return rc;
    s->io = &drv->io;
    s->reg = reg;
    s->fd = fd;
    return 0;
}

/* Deregisters (wakers dropped, slot recycled at the driver's safe point), then closes. */
static int stream_detach(asyncio_tcp_stream *s)
{
    if (s->fd < 0 || s->reg == NULL) /* closed, or zeroed (fd 0 is not ours then) */
        return 0;
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, s->fd);
    int rc = asyncio__io_deregister(s->io, s->reg, &src.base);
    int crc = asyncio__sock_close(s->fd);
    asyncio_tcp_stream_init_closed(s);
    return rc < 0 ? rc : crc;
}

/* The operation drained the direction: clear (unless an event came since) and re-arm. */
static void give_back(const asyncio_tcp_stream *s, const asyncio_ready_guard *g)
{
    asyncio__io_clear_ready(s->reg, g);
    asyncio__io_driver *io = s->io;
    (void)asyncio_poller_rearm_fd(io->poller, s->fd, g->direction);
}

/* ------------------------------------------------------------------------ */
/* Data operations                                                           */

typedef enum op_kind { OP_RECV, OP_SEND, OP_SENDV } op_kind;

typedef struct io_op {
    op_kind kind;
    void *rbuf;
    const void *wbuf;
    const asyncio_iovec *iov;
    int iovcnt;
    size_t len; /* total bytes asked for */
} io_op;

static ssize_t op_run(int fd, const io_op *o)
{
    switch (o->kind) {
    case OP_RECV:
        return asyncio__sock_recv(fd, o->rbuf, o->len, 0);
    case OP_SEND:
        return asyncio__sock_send(fd, o->wbuf, o->len, 0);
    default:
        return asyncio__sock_sendv(fd, o->iov, o->iovcnt);
    }
}

/* The readiness loop shared by every data operation (see the file comment). */
static int poll_op(asyncio_tcp_stream *s, asyncio_context *cx, const io_op *o, size_t *n_out)
{
    uint32_t dir = o->kind == OP_RECV ? ASYNCIO_READABLE : ASYNCIO_WRITABLE;
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio__io_poll_ready(s->reg, cx, dir, &g);
        if (rc != 0)
            return rc; /* ASYNCIO_PENDING (waker stored, or budget used up) */
        ssize_t n = op_run(s->fd, o);
        if (n == ASYNCIO_EAGAIN) {
            give_back(s, &g);
            continue;
        }
        if (n < 0)
            return (int)n;
        if (n > 0 && (size_t)n < o->len)
            give_back(s, &g); /* short: drained / send buffer full */
        *n_out = (size_t)n;
        return 0;
    }
}

static bool stream_ok(const asyncio_tcp_stream *s)
{
    return s != NULL && s->fd >= 0 && s->reg != NULL;
}

void asyncio_tcp_stream_init_closed(asyncio_tcp_stream *s)
{
    if (s == NULL)
        return;
    s->io = NULL;
    s->reg = NULL;
    s->fd = -1;
}

int asyncio_tcp_stream_from_fd(asyncio_tcp_stream *s, int fd)
{
    if (s == NULL || fd < 0 || asyncio__driver_current() == NULL)
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_set_nonblocking(fd);
    if (rc < 0)
        return rc;
    asyncio_tcp_stream tmp;
    rc = stream_attach(&tmp, fd);
    if (rc == 0)
        *s = tmp;
    return rc;
}

int asyncio_tcp_stream_poll_read(asyncio_tcp_stream *s, asyncio_context *cx, void *buf, size_t len,
                                 size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    io_op o = {.kind = OP_RECV, .rbuf = buf, .len = len};
    return poll_op(s, cx, &o, n_out);
}

int asyncio_tcp_stream_poll_write(asyncio_tcp_stream *s, asyncio_context *cx, const void *buf,
                                  size_t len, size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    io_op o = {.kind = OP_SEND, .wbuf = buf, .len = len};
    return poll_op(s, cx, &o, n_out);
}

int asyncio_tcp_stream_poll_write_vectored(asyncio_tcp_stream *s, asyncio_context *cx,
                                           const asyncio_iovec *iov, int iovcnt, size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || n_out == NULL || iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return ASYNCIO_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].len;
    if (total == 0) {
        *n_out = 0;
        return 0;
    }
    io_op o = {.kind = OP_SENDV, .iov = iov, .iovcnt = iovcnt, .len = total};
    return poll_op(s, cx, &o, n_out);
}

int asyncio_tcp_stream_poll_flush(asyncio_tcp_stream *s, asyncio_context *cx)
{
    (void)cx;
    return stream_ok(s) ? 0 : ASYNCIO_EINVAL;
}

int asyncio_tcp_stream_poll_shutdown(asyncio_tcp_stream *s, asyncio_context *cx)
{
    (void)cx;
    if (!stream_ok(s))
        return ASYNCIO_EINVAL;
    return asyncio__sock_shutdown(s->fd, SHUT_WR);
}

/* ---- AsyncRead / AsyncWrite vtables -------------------------------------- */

static int vt_poll_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n_out)
{
    return asyncio_tcp_stream_poll_read(self, cx, buf, len, n_out);
}

static int vt_poll_write(void *self, asyncio_context *cx, const void *buf, size_t len,
                         size_t *n_out)
{
    return asyncio_tcp_stream_poll_write(self, cx, buf, len, n_out);
}

static int vt_poll_write_vectored(void *self, asyncio_context *cx, const asyncio_iovec *iov,
                                  int iovcnt, size_t *n_out)
{
    return asyncio_tcp_stream_poll_write_vectored(self, cx, iov, iovcnt, n_out);
}

static int vt_poll_flush(void *self, asyncio_context *cx)
{
    return asyncio_tcp_stream_poll_flush(self, cx);
}

static int vt_poll_shutdown(void *self, asyncio_context *cx)
{
    return asyncio_tcp_stream_poll_shutdown(self, cx);
}

static int vt_raw_fd(void *self)
{
    const asyncio_tcp_stream *s = self;
    return s->fd;
}

/* Zero-copy hook (io.h): wait for the direction, run op once, give back on EAGAIN. */
static int poll_raw_dir(asyncio_tcp_stream *s, asyncio_context *cx, uint32_t dir,
                        asyncio_raw_io_fn op, void *arg, size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || op == NULL || n_out == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio__io_poll_ready(s->reg, cx, dir, &g);
        if (rc != 0)
            return rc;
        rc = op(arg, s->fd, n_out);
        if (rc != ASYNCIO_EAGAIN)
            return rc;
        give_back(s, &g);
    }
}

static int vt_poll_raw_read(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg,
                            size_t *n_out)
{
    return poll_raw_dir(self, cx, ASYNCIO_READABLE, op, arg, n_out);
}

static int vt_poll_raw_write(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg,
                             size_t *n_out)
{
    return poll_raw_dir(self, cx, ASYNCIO_WRITABLE, op, arg, n_out);
}

/*
 * The halves embed a stream copy as their first member, so the same
 * vtables serve a stream, a read half and a write half.
 */
ASYNCIO_STATIC_ASSERT(offsetof(asyncio_tcp_read_half, stream) == 0, "read half layout");
ASYNCIO_STATIC_ASSERT(offsetof(asyncio_tcp_write_half, stream) == 0, "write half layout");

static const asyncio_reader_vtable g_reader_vt = {
    .poll_read = vt_poll_read,
    .raw_fd = vt_raw_fd,
    .poll_raw_io = vt_poll_raw_read,
};
static const asyncio_writer_vtable g_writer_vt = {
    .poll_write = vt_poll_write,
    .poll_write_vectored = vt_poll_write_vectored,
    .poll_flush = vt_poll_flush,
    .poll_shutdown = vt_poll_shutdown,
    .raw_fd = vt_raw_fd,
    .poll_raw_io = vt_poll_raw_write,
};

asyncio_reader asyncio_tcp_stream_reader(asyncio_tcp_stream *s)
{
    return (asyncio_reader){&g_reader_vt, s};
}

asyncio_writer asyncio_tcp_stream_writer(asyncio_tcp_stream *s)
{
    return (asyncio_writer){&g_writer_vt, s};
}

/* ---- Options and names --------------------------------------------------- */

int asyncio_tcp_stream_set_nodelay(asyncio_tcp_stream *s, bool on)
{
    if (!stream_ok(s))
        return ASYNCIO_EINVAL;
    return asyncio__sock_setopt_int(s->fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int asyncio_tcp_stream_nodelay(asyncio_tcp_stream *s, bool *on)
{
    if (!stream_ok(s) || on == NULL)
        return ASYNCIO_EINVAL;
    int v = 0;
    int rc = asyncio__sock_getopt_int(s->fd, IPPROTO_TCP, TCP_NODELAY, &v);
    if (rc == 0)
        *on = v != 0;
    return rc;
}

int asyncio_tcp_stream_set_keepalive(asyncio_tcp_stream *s, bool on, uint32_t idle_s)
{
    if (!stream_ok(s) || idle_s > INT32_MAX)
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_setopt_int(s->fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
    if (rc < 0 || !on || idle_s == 0)
        return rc;
#if defined(TCP_KEEPIDLE)
    return asyncio__sock_setopt_int(s->fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_s);
#elif defined(TCP_KEEPALIVE)
    return asyncio__sock_setopt_int(s->fd, IPPROTO_TCP, TCP_KEEPALIVE, (int)idle_s);
#else
    return ASYNCIO_ENOTSUP;
#endif
}

int asyncio_tcp_stream_set_linger(asyncio_tcp_stream *s, int seconds)
{
    if (!stream_ok(s) || seconds < -1)
        return ASYNCIO_EINVAL;
    return asyncio__sock_set_linger(s->fd, seconds);
}

int asyncio_tcp_stream_peer_addr(const asyncio_tcp_stream *s, asyncio_sockaddr *out)
{
    if (!stream_ok(s) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_peer_addr(s->fd, out);
}

int asyncio_tcp_stream_local_addr(const asyncio_tcp_stream *s, asyncio_sockaddr *out)
{
    if (!stream_ok(s) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_local_addr(s->fd, out);
}

/* ---- Split --------------------------------------------------------------- */

int asyncio_tcp_stream_split(asyncio_tcp_stream *s, asyncio_tcp_read_half *r,
                             asyncio_tcp_write_half *w)
{
    if (!stream_ok(s) || r == NULL || w == NULL)
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
    return (asyncio_reader){&g_reader_vt, r};
}

asyncio_writer asyncio_tcp_write_half_writer(asyncio_tcp_write_half *w)
{
    return (asyncio_writer){&g_writer_vt, w};
}

int asyncio_tcp_stream_close(asyncio_tcp_stream *s)
{
    if (s == NULL)
        return 0;
    return stream_detach(s);
}

/* ------------------------------------------------------------------------ */
/* Connect                                                                   */

/* asyncio_tcp_connect.state */
enum {
    CONNECT_INIT = 0,  /* not started: addr holds the target, no socket */
    CONNECT_WAIT,      /* socket connecting, registered: waiting for writability */
    CONNECT_READY,     /* connected: the stream waits inside to be taken */
    CONNECT_TAKEN,     /* the stream was moved out: nothing left to close */
    CONNECT_FAILED,    /* finished with `result`; the socket is closed */
    CONNECT_CANCELLED, /* dropped: polls complete with ECANCELED */
};

void asyncio_tcp_connect_init(asyncio_tcp_connect *c, const asyncio_sockaddr *addr)
{
    memset(c, 0, sizeof *c);
    if (addr != NULL)
        c->addr = *addr;
    asyncio_tcp_stream_init_closed(&c->stream);
    c->state = CONNECT_INIT;
}

static int connect_fail(asyncio_tcp_connect *c, int rc)
{
    stream_detach(&c->stream);
    c->result = rc;
    c->state = CONNECT_FAILED;
    return rc;
}

/* Creates the socket, starts the connect, then registers (state INIT -> WAIT / READY). */
static int connect_start(asyncio_tcp_connect *c)
{
    int family = asyncio_addr_family(&c->addr);
    if (asyncio__driver_current() == NULL || (family != AF_INET && family != AF_INET6))
        return ASYNCIO_EINVAL; /* state stays INIT: nothing was created */
    int fd = asyncio__sock_open(family, SOCK_STREAM, 0);
    if (fd < 0)
        return connect_fail(c, fd);
    /*
     * Connect before registering: the edge-triggered registration then
     * reports the socket's state after the connect started, never the
     * "closed, writable" state of a fresh socket.
     */
    int rc = asyncio__sock_connect(fd, &c->addr);
    if (rc < 0 && rc != ASYNCIO_EINPROGRESS) {
        asyncio__sock_close(fd);
        return connect_fail(c, rc);
    }
    int reg_rc = stream_attach(&c->stream, fd);
    if (reg_rc < 0) {
        asyncio__sock_close(fd);
        return connect_fail(c, reg_rc);
    }
    c->state = rc == 0 ? CONNECT_READY : CONNECT_WAIT;
    return 0;
}

/* WAIT: writable means the handshake finished; SO_ERROR says how. */
static int connect_wait(asyncio_tcp_connect *c, asyncio_context *cx)
{
    asyncio_ready_guard g;
    int rc = asyncio__io_poll_ready(c->stream.reg, cx, ASYNCIO_WRITABLE, &g);
    if (rc != 0)
        return rc;
    rc = asyncio__sock_take_error(c->stream.fd);
    if (rc < 0)
        return connect_fail(c, rc);
    c->state = CONNECT_READY;
    return 0;
}

int asyncio_tcp_connect_poll(asyncio_tcp_connect *c, asyncio_context *cx, asyncio_tcp_stream *out)
{
    if (c == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc;
        switch (c->state) {
        case CONNECT_INIT:
            rc = connect_start(c);
            break;
        case CONNECT_WAIT:
            rc = connect_wait(c, cx);
            break;
        case CONNECT_READY:
            if (out != NULL) {
                *out = c->stream;
                asyncio_tcp_stream_init_closed(&c->stream);
                c->state = CONNECT_TAKEN;
            }
            return 0;
        case CONNECT_FAILED:
            return c->result;
        case CONNECT_CANCELLED:
            return ASYNCIO_ECANCELED;
        default: /* CONNECT_TAKEN: nothing left to give */
            return ASYNCIO_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
}

int asyncio_tcp_connect_poll_fn(void *c, asyncio_context *cx)
{
    return asyncio_tcp_connect_poll(c, cx, NULL);
}

int asyncio_tcp_connect_take(asyncio_tcp_connect *c, asyncio_tcp_stream *out)
{
    if (c == NULL || out == NULL || c->state != CONNECT_READY)
        return ASYNCIO_EINVAL;
    *out = c->stream;
    asyncio_tcp_stream_init_closed(&c->stream);
    c->state = CONNECT_TAKEN;
    return 0;
}

void asyncio_tcp_connect_drop(asyncio_tcp_connect *c)
{
    if (c == NULL)
        return;
    stream_detach(&c->stream);
    if (c->state != CONNECT_FAILED && c->state != CONNECT_TAKEN)
        c->state = CONNECT_CANCELLED;
}

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */

#define LISTENER_BACKLOG_DEFAULT    1024
#define LISTENER_BACKOFF_MS_DEFAULT 100

struct asyncio_tcp_listener {
    asyncio_tcp_stream sock; /* the listening socket's registration and fd */
    asyncio_sleep backoff;   /* armed while backing off after fd exhaustion */
    bool backing_off;
    uint32_t backoff_ms;
    uint64_t backoffs; /* how many times it backed off */
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
    int family = asyncio_addr_family(addr);
    if (out == NULL || (family != AF_INET && family != AF_INET6) ||
        asyncio__driver_current() == NULL || (opts != NULL && opts->backlog < 0))
        return ASYNCIO_EINVAL;
    int backlog = opts != NULL && opts->backlog > 0 ? opts->backlog : LISTENER_BACKLOG_DEFAULT;
    asyncio_tcp_listener *l = asyncio__calloc(1, sizeof *l);
    if (l == NULL)
        return ASYNCIO_ENOMEM;
    int fd = listener_socket(addr, backlog, opts != NULL && opts->reuseport);
    int rc = fd < 0 ? fd : stream_attach(&l->sock, fd);
    if (rc < 0) {
        if (fd >= 0)
            asyncio__sock_close(fd);
        asyncio__free(l);
        return rc;
    }
    asyncio_sleep_init(&l->backoff, 0);
    l->backoff_ms = opts != NULL && opts->accept_backoff_ms > 0 ? opts->accept_backoff_ms
                                                                : LISTENER_BACKOFF_MS_DEFAULT;
    *out = l;
    return 0;
}

static bool is_fd_exhaustion(int rc)
{
    return rc == ASYNCIO_EMFILE || rc == ASYNCIO_ENFILE || rc == ASYNCIO_ENOBUFS ||
           rc == ASYNCIO_ENOMEM;
}

/* Waits out an armed back-off: 0 when it is over, else ASYNCIO_PENDING / an error. */
static int listener_backoff_poll(asyncio_tcp_listener *l, asyncio_context *cx)
{
    if (!l->backing_off)
        return 0;
    int rc = asyncio_sleep_poll(&l->backoff, cx);
    if (rc != 0)
        return rc;
    asyncio_sleep_drop(&l->backoff);
    l->backing_off = false;
    return 0;
}

int asyncio_tcp_listener_poll_accept(asyncio_tcp_listener *l, asyncio_context *cx,
                                     asyncio_tcp_stream *stream_out, asyncio_sockaddr *peer_out)
{
    if (l == NULL || cx == NULL || stream_out == NULL || !stream_ok(&l->sock))
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc = listener_backoff_poll(l, cx);
        if (rc != 0)
            return rc;
        asyncio_ready_guard g;
        rc = asyncio__io_poll_ready(l->sock.reg, cx, ASYNCIO_READABLE, &g);
        if (rc != 0)
            return rc;
        int fd = asyncio__sock_accept(l->sock.fd, peer_out);
        if (fd == ASYNCIO_EAGAIN) {
            give_back(&l->sock, &g);
            continue;
        }
        if (is_fd_exhaustion(fd)) {
            /*
             * The connection stays queued and the readiness stays set (no
             * clear): after the back-off the accept is simply retried. No
             * event is needed, so nothing can spin meanwhile.
             */
            l->backoffs++;
            l->backing_off = true;
            asyncio_sleep_init(&l->backoff, l->backoff_ms);
            continue;
        }
        if (fd < 0)
            return fd;
        asyncio_tcp_stream s;
        rc = stream_attach(&s, fd);
        if (rc < 0) {
            asyncio__sock_close(fd);
            return rc;
        }
        *stream_out = s;
        return 0;
    }
}

int asyncio_tcp_listener_local_addr(const asyncio_tcp_listener *l, asyncio_sockaddr *out)
{
    if (l == NULL || out == NULL || !stream_ok(&l->sock))
        return ASYNCIO_EINVAL;
    return asyncio__sock_local_addr(l->sock.fd, out);
}

int asyncio_tcp_listener_fd(const asyncio_tcp_listener *l)
{
    return l != NULL ? l->sock.fd : -1;
}

uint64_t asyncio_tcp_listener_backoffs(const asyncio_tcp_listener *l)
{
    return l != NULL ? l->backoffs : 0;
}

int asyncio_tcp_listener_close(asyncio_tcp_listener *l)
{
    if (l == NULL)
        return 0;
    asyncio_sleep_drop(&l->backoff);
    int rc = stream_detach(&l->sock);
    asyncio__free(l);
    return rc;
}
