/*
 * Unix-domain sockets: streams (AsyncRead / AsyncWrite), the connect
 * future, the listener and datagram sockets.
 *
 * What it owns. Streams and datagram sockets are a registration plus an fd
 * (src/net/sockio.h), like TCP streams; every data operation is one
 * asyncio__sockio_poll(). The listener is one allocation holding its
 * socket and the timer of its EMFILE back-off.
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

#include "asyncio/time.h"
#include "internal.h"
#include "net/sockio.h"
#include "platform/socket.h"
#include "platform/socket_dgram.h"
#include "reactor/io.h"
#include "util/alloc.h"

#define UNIX_PATH_OFFSET    offsetof(struct sockaddr_un, sun_path)
#define LISTENER_BACKLOG    1024
#define LISTENER_BACKOFF_MS 100

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

/* Registers fd into (*io, *reg, *fd_out); closes fd on failure. 0 or a negative error. */
static int attach_or_close(int fd, void **io, void **reg, int *fd_out)
{
    int rc = asyncio__sockio_attach(fd, io, reg);
    if (rc < 0) {
        asyncio__sock_close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Stream                                                                    */

static bool stream_ok(const asyncio_unix_stream *s)
{
    return s != NULL && s->fd >= 0 && s->reg != NULL;
}

void asyncio_unix_stream_init_closed(asyncio_unix_stream *s)
{
    if (s == NULL)
        return;
    s->io = NULL;
    s->reg = NULL;
    s->fd = -1;
}

/* Registers fd as a stream (fd closed on failure; *s untouched then). */
static int stream_attach(asyncio_unix_stream *s, int fd)
{
    asyncio_unix_stream tmp;
    int rc = attach_or_close(fd, &tmp.io, &tmp.reg, &tmp.fd);
    if (rc == 0)
        *s = tmp;
    return rc;
}

int asyncio_unix_stream_close(asyncio_unix_stream *s)
{
    if (s == NULL || s->fd < 0)
        return 0;
    int rc = asyncio__sockio_close(s->io, s->reg, s->fd);
    asyncio_unix_stream_init_closed(s);
    return rc;
}

int asyncio_unix_stream_pair(asyncio_unix_stream *a, asyncio_unix_stream *b)
{
    if (a == NULL || b == NULL)
        return ASYNCIO_EINVAL;
    int fds[2];
    int rc = asyncio__sock_pair(SOCK_STREAM, fds);
    if (rc < 0)
        return rc;
    asyncio_unix_stream sa, sb;
    rc = attach_or_close(fds[0], &sa.io, &sa.reg, &sa.fd);
    if (rc < 0) {
        asyncio__sock_close(fds[1]);
        return rc;
    }
    rc = attach_or_close(fds[1], &sb.io, &sb.reg, &sb.fd);
    if (rc < 0) {
        asyncio_unix_stream_close(&sa);
        return rc;
    }
    *a = sa;
    *b = sb;
    return 0;
}

int asyncio_unix_stream_from_fd(asyncio_unix_stream *s, int fd)
{
    if (s == NULL || fd < 0)
        return ASYNCIO_EINVAL;
    int rc = asyncio__sock_set_nonblocking(fd);
    if (rc < 0)
        return rc;
    asyncio_unix_stream tmp;
    rc = asyncio__sockio_attach(fd, &tmp.io, &tmp.reg);
    if (rc < 0)
        return rc; /* the fd stays the caller's */
    tmp.fd = fd;
    *s = tmp;
    return 0;
}

static int stream_poll(asyncio_unix_stream *s, asyncio_context *cx, const asyncio__sockio_op *op,
                       size_t *n_out)
{
    if (op->len == 0) {
        *n_out = 0;
        return 0;
    }
    return asyncio__sockio_poll(s->io, s->reg, s->fd, cx, op, n_out);
}

int asyncio_unix_stream_poll_read(asyncio_unix_stream *s, asyncio_context *cx, void *buf,
                                  size_t len, size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = ASYNCIO__SOCKIO_RECV, .rbuf = buf, .len = len};
    return stream_poll(s, cx, &op, n_out);
}

int asyncio_unix_stream_poll_write(asyncio_unix_stream *s, asyncio_context *cx, const void *buf,
                                   size_t len, size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = ASYNCIO__SOCKIO_SEND, .wbuf = buf, .len = len};
    return stream_poll(s, cx, &op, n_out);
}

int asyncio_unix_stream_poll_write_vectored(asyncio_unix_stream *s, asyncio_context *cx,
                                            const asyncio_iovec *iov, int iovcnt, size_t *n_out)
{
    if (!stream_ok(s) || cx == NULL || n_out == NULL || iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return ASYNCIO_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].len;
    asyncio__sockio_op op = {
        .kind = ASYNCIO__SOCKIO_SENDV, .iov = iov, .iovcnt = iovcnt, .len = total};
    return stream_poll(s, cx, &op, n_out);
}

int asyncio_unix_stream_poll_flush(asyncio_unix_stream *s, asyncio_context *cx)
{
    (void)cx;
    return stream_ok(s) ? 0 : ASYNCIO_EINVAL;
}

int asyncio_unix_stream_poll_shutdown(asyncio_unix_stream *s, asyncio_context *cx)
{
    (void)cx;
    if (!stream_ok(s))
        return ASYNCIO_EINVAL;
    return asyncio__sock_shutdown(s->fd, SHUT_WR);
}

/* ---- AsyncRead / AsyncWrite vtables -------------------------------------- */

static int vt_poll_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n_out)
{
    return asyncio_unix_stream_poll_read(self, cx, buf, len, n_out);
}

static int vt_poll_write(void *self, asyncio_context *cx, const void *buf, size_t len,
                         size_t *n_out)
{
    return asyncio_unix_stream_poll_write(self, cx, buf, len, n_out);
}

static int vt_poll_write_vectored(void *self, asyncio_context *cx, const asyncio_iovec *iov,
                                  int iovcnt, size_t *n_out)
{
    return asyncio_unix_stream_poll_write_vectored(self, cx, iov, iovcnt, n_out);
}

static int vt_poll_flush(void *self, asyncio_context *cx)
{
    return asyncio_unix_stream_poll_flush(self, cx);
}

static int vt_poll_shutdown(void *self, asyncio_context *cx)
{
    return asyncio_unix_stream_poll_shutdown(self, cx);
}

static int vt_raw_fd(void *self)
{
    const asyncio_unix_stream *s = self;
    return s->fd;
}

/* poll_raw_io (io.h): the caller's zero-copy operation inside the readiness loop. */
static int raw_io(void *self, asyncio_context *cx, asyncio_raw_io_fn fn, void *arg, size_t *n_out,
                  asyncio__sockio_kind kind)
{
    asyncio_unix_stream *s = self;
    if (!stream_ok(s) || cx == NULL || fn == NULL || n_out == NULL)
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = kind, .raw = fn, .raw_arg = arg};
    return asyncio__sockio_poll(s->io, s->reg, s->fd, cx, &op, n_out);
}

static int vt_poll_raw_read(void *self, asyncio_context *cx, asyncio_raw_io_fn fn, void *arg,
                            size_t *n_out)
{
    return raw_io(self, cx, fn, arg, n_out, ASYNCIO__SOCKIO_RAW_READ);
}

static int vt_poll_raw_write(void *self, asyncio_context *cx, asyncio_raw_io_fn fn, void *arg,
                             size_t *n_out)
{
    return raw_io(self, cx, fn, arg, n_out, ASYNCIO__SOCKIO_RAW_WRITE);
}

static const asyncio_reader_vtable g_reader_vt = {
    .poll_read = vt_poll_read, .raw_fd = vt_raw_fd, .poll_raw_io = vt_poll_raw_read};
static const asyncio_writer_vtable g_writer_vt = {.poll_write = vt_poll_write,
                                                  .poll_write_vectored = vt_poll_write_vectored,
                                                  .poll_flush = vt_poll_flush,
                                                  .poll_shutdown = vt_poll_shutdown,
                                                  .raw_fd = vt_raw_fd,
                                                  .poll_raw_io = vt_poll_raw_write};

asyncio_reader asyncio_unix_stream_reader(asyncio_unix_stream *s)
{
    return (asyncio_reader){&g_reader_vt, s};
}

asyncio_writer asyncio_unix_stream_writer(asyncio_unix_stream *s)
{
    return (asyncio_writer){&g_writer_vt, s};
}

/* ---- Names and credentials ----------------------------------------------- */

int asyncio_unix_stream_peer_cred(const asyncio_unix_stream *s, asyncio_unix_cred *out)
{
    if (!stream_ok(s) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_peer_cred(s->fd, out);
}

int asyncio_unix_stream_local_addr(const asyncio_unix_stream *s, asyncio_sockaddr *out)
{
    if (!stream_ok(s) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_local_addr(s->fd, out);
}

int asyncio_unix_stream_peer_addr(const asyncio_unix_stream *s, asyncio_sockaddr *out)
{
    if (!stream_ok(s) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_peer_addr(s->fd, out);
}

/* ------------------------------------------------------------------------ */
/* Connect                                                                   */

/* asyncio_unix_connect.state */
enum {
    CONNECT_INIT = 0,  /* not started: addr holds the target, no socket */
    CONNECT_WAIT,      /* EINPROGRESS (non-Linux): registered, waiting for writability */
    CONNECT_READY,     /* connected: the stream waits inside to be taken */
    CONNECT_TAKEN,     /* the stream was moved out: nothing left to close */
    CONNECT_FAILED,    /* finished with `result`; the socket is closed */
    CONNECT_CANCELLED, /* dropped: polls complete with ECANCELED */
};

void asyncio_unix_connect_init(asyncio_unix_connect *c, const asyncio_sockaddr *addr)
{
    memset(c, 0, sizeof *c);
    if (addr != NULL)
        c->addr = *addr;
    asyncio_unix_stream_init_closed(&c->stream);
    c->state = CONNECT_INIT;
}

static int connect_fail(asyncio_unix_connect *c, int rc)
{
    asyncio_unix_stream_close(&c->stream);
    c->result = rc;
    c->state = CONNECT_FAILED;
    return rc;
}

/* INIT -> READY / WAIT / FAILED. Connect before registering (the TCP rationale: net.h). */
static int connect_start(asyncio_unix_connect *c)
{
    if (!unix_addr_ok(&c->addr, false))
        return ASYNCIO_EINVAL; /* state stays INIT: nothing was created */
    int fd = asyncio__sock_open(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return connect_fail(c, fd);
    int rc = asyncio__sock_connect(fd, &c->addr);
    if (rc < 0 && rc != ASYNCIO_EINPROGRESS) {
        asyncio__sock_close(fd);
        return connect_fail(c, rc);
    }
    int reg_rc = stream_attach(&c->stream, fd);
    if (reg_rc < 0)
        return connect_fail(c, reg_rc);
    c->state = rc == 0 ? CONNECT_READY : CONNECT_WAIT;
    return 0;
}

/* WAIT: writable means the connect finished; SO_ERROR says how. */
static int connect_wait(asyncio_unix_connect *c, asyncio_context *cx)
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

int asyncio_unix_connect_poll(asyncio_unix_connect *c, asyncio_context *cx,
                              asyncio_unix_stream *out)
{
    if (c == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc;
        switch (c->state) {
        case CONNECT_INIT: /* create, connect, register */
            rc = connect_start(c);
            break;
        case CONNECT_WAIT: /* in progress: wait for writability */
            rc = connect_wait(c, cx);
            break;
        case CONNECT_READY: /* connected: hand the stream over if asked */
            if (out != NULL) {
                *out = c->stream;
                asyncio_unix_stream_init_closed(&c->stream);
                c->state = CONNECT_TAKEN;
            }
            return 0;
        case CONNECT_FAILED: /* the same error every time */
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

int asyncio_unix_connect_poll_fn(void *c, asyncio_context *cx)
{
    return asyncio_unix_connect_poll(c, cx, NULL);
}

int asyncio_unix_connect_take(asyncio_unix_connect *c, asyncio_unix_stream *out)
{
    if (c == NULL || out == NULL || c->state != CONNECT_READY)
        return ASYNCIO_EINVAL;
    *out = c->stream;
    asyncio_unix_stream_init_closed(&c->stream);
    c->state = CONNECT_TAKEN;
    return 0;
}

void asyncio_unix_connect_drop(asyncio_unix_connect *c)
{
    if (c == NULL)
        return;
    asyncio_unix_stream_close(&c->stream);
    if (c->state != CONNECT_FAILED && c->state != CONNECT_TAKEN)
        c->state = CONNECT_CANCELLED;
}

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */

struct asyncio_unix_listener {
    asyncio_unix_stream sock; /* the listening socket's registration and fd */
    asyncio_sleep backoff;    /* armed while backing off after fd exhaustion */
    bool backing_off;
    uint32_t backoff_ms;
};

int asyncio_unix_listener_bind(asyncio_unix_listener **out, const asyncio_sockaddr *addr,
                               const asyncio_unix_bind_options *opts)
{
    if (out == NULL || !unix_addr_ok(addr, false) || (opts != NULL && opts->backlog < 0) ||
        !asyncio__sockio_can_attach())
        return ASYNCIO_EINVAL;
    int backlog = opts != NULL && opts->backlog > 0 ? opts->backlog : LISTENER_BACKLOG;
    asyncio_unix_listener *l = asyncio__calloc(1, sizeof *l);
    if (l == NULL)
        return ASYNCIO_ENOMEM;
    int fd = open_socket(SOCK_STREAM, addr, opts);
    int rc = fd < 0 ? fd : asyncio__sock_listen(fd, backlog);
    if (rc == 0)
        rc = stream_attach(&l->sock, fd); /* closes fd on failure */
    else if (fd >= 0)
        asyncio__sock_close(fd);
    if (rc < 0) {
        if (fd >= 0)
            (void)asyncio__unix_unlink_stale(addr); /* the file we just created */
        asyncio__free(l);
        return rc;
    }
    asyncio_sleep_init(&l->backoff, 0);
    l->backoff_ms =
        opts != NULL && opts->accept_backoff_ms > 0 ? opts->accept_backoff_ms : LISTENER_BACKOFF_MS;
    *out = l;
    return 0;
}

static bool is_fd_exhaustion(int rc)
{
    return rc == ASYNCIO_EMFILE || rc == ASYNCIO_ENFILE || rc == ASYNCIO_ENOBUFS ||
           rc == ASYNCIO_ENOMEM;
}

/* Waits out an armed back-off: 0 when it is over, else ASYNCIO_PENDING / an error. */
static int listener_backoff_poll(asyncio_unix_listener *l, asyncio_context *cx)
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

/* accept(2) inside the readiness loop: the new fd via *n_out. */
static int accept_op(void *arg, int fd, size_t *n_out)
{
    int nfd = asyncio__sock_accept(fd, arg);
    if (nfd < 0)
        return nfd;
    *n_out = (size_t)nfd;
    return 0;
}

int asyncio_unix_listener_poll_accept(asyncio_unix_listener *l, asyncio_context *cx,
                                      asyncio_unix_stream *stream_out, asyncio_sockaddr *peer_out)
{
    if (l == NULL || cx == NULL || stream_out == NULL || !stream_ok(&l->sock))
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc = listener_backoff_poll(l, cx);
        if (rc != 0)
            return rc;
        size_t nfd = 0;
        asyncio__sockio_op op = {
            .kind = ASYNCIO__SOCKIO_RAW_READ, .raw = accept_op, .raw_arg = peer_out};
        rc = asyncio__sockio_poll(l->sock.io, l->sock.reg, l->sock.fd, cx, &op, &nfd);
        if (is_fd_exhaustion(rc)) {
            /*
             * The connection stays queued and the readiness stays set (no
             * clear): after the back-off the accept is simply retried, so
             * nothing spins meanwhile (PITFALLS: EMFILE accept storm).
             */
            l->backing_off = true;
            asyncio_sleep_init(&l->backoff, l->backoff_ms);
            continue;
        }
        if (rc != 0)
            return rc;
        return stream_attach(stream_out, (int)nfd);
    }
}

int asyncio_unix_listener_local_addr(const asyncio_unix_listener *l, asyncio_sockaddr *out)
{
    if (l == NULL || out == NULL || !stream_ok(&l->sock))
        return ASYNCIO_EINVAL;
    return asyncio__sock_local_addr(l->sock.fd, out);
}

int asyncio_unix_listener_fd(const asyncio_unix_listener *l)
{
    return l != NULL ? l->sock.fd : -1;
}

int asyncio_unix_listener_close(asyncio_unix_listener *l)
{
    if (l == NULL)
        return 0;
    asyncio_sleep_drop(&l->backoff);
    int rc = asyncio_unix_stream_close(&l->sock);
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
    if (d == NULL)
        return;
    d->io = NULL;
    d->reg = NULL;
    d->fd = -1;
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
    asyncio_unix_datagram tmp;
    int rc = attach_or_close(fd, &tmp.io, &tmp.reg, &tmp.fd);
    if (rc < 0 && addr != NULL)
        (void)asyncio__unix_unlink_stale(addr); /* the file we just created */
    if (rc == 0)
        *d = tmp;
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
    int fds[2];
    int rc = asyncio__sock_pair(SOCK_DGRAM, fds);
    if (rc < 0)
        return rc;
    asyncio_unix_datagram da, db;
    rc = attach_or_close(fds[0], &da.io, &da.reg, &da.fd);
    if (rc < 0) {
        asyncio__sock_close(fds[1]);
        return rc;
    }
    rc = attach_or_close(fds[1], &db.io, &db.reg, &db.fd);
    if (rc < 0) {
        asyncio_unix_datagram_close(&da);
        return rc;
    }
    *a = da;
    *b = db;
    return 0;
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
    if (!dgram_ok(d) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_local_addr(d->fd, out);
}

int asyncio_unix_datagram_peer_addr(const asyncio_unix_datagram *d, asyncio_sockaddr *out)
{
    if (!dgram_ok(d) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_peer_addr(d->fd, out);
}

int asyncio_unix_datagram_close(asyncio_unix_datagram *d)
{
    if (d == NULL || d->fd < 0)
        return 0;
    int rc = asyncio__sockio_close(d->io, d->reg, d->fd);
    asyncio_unix_datagram_init_closed(d);
    return rc;
}
