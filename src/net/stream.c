/*
 * Byte-stream sockets shared by TCP and Unix (see stream.h): data
 * operations and vtables, the connect future, the listener.
 *
 * Every data operation is one asyncio__sockio_poll() (poll_ready -> system
 * call -> give the readiness back on EAGAIN or after a short transfer;
 * sockio.h has the protocol and why the give-back is safe).
 */
#include "net/stream.h"

#include <string.h>

#include "platform/socket.h"
#include "reactor/comp.h"
#include "reactor/driver.h"
#include "util/alloc.h"
#include "reactor/io.h"

/* ------------------------------------------------------------------------ */
/* Data operations                                                           */

/* The stream's completion state if its reads (or writes) run on the ring, else NULL. */
static asyncio__cstream *comp_of(const asyncio__sockio_handle *h, bool write)
{
    asyncio__cstream *cs = ((asyncio__io_reg *)h->reg)->comp;
    if (cs == NULL)
        return NULL;
    return (write ? asyncio__cstream_writes(cs) : asyncio__cstream_reads(cs)) ? cs : NULL;
}

/*
 * A raw read (the copy's splice) wants the socket's own queue: the reads of
 * a stream that has not received on the ring yet move to the readiness path
 * for good; else ENOTSUP, and the copy takes its buffered path
 * (src/io/copy.c falls back on it).
 */
static int comp_stop_reads(asyncio__cstream *cs, const asyncio__sockio_handle *h)
{
    int rc = asyncio__cstream_stop_reads(cs);
    return rc < 0
               ? rc
               : asyncio__sockio_watch(h->io, h->reg, h->fd, ASYNCIO_READABLE | ASYNCIO_WRITABLE);
}

/*
 * A completion-path read or write (a gathering write is one send from one
 * copy); ASYNCIO__CSTREAM_DIRECT when the operation takes the readiness path.
 */
static int comp_op(asyncio__cstream *cs, asyncio_context *cx, const asyncio__sockio_op *op,
                   size_t *n_out)
{
    switch (op->kind) {
    case ASYNCIO__SOCKIO_RECV: /* bytes the multishot receive queued */
        return asyncio__cstream_poll_read(cs, cx, op->rbuf, op->len, n_out);
    case ASYNCIO__SOCKIO_SEND: { /* one iovec */
        asyncio_iovec one = {.base = (void *)(uintptr_t)op->wbuf, .len = op->len};
        return asyncio__cstream_poll_write(cs, cx, &one, 1, n_out);
    }
    case ASYNCIO__SOCKIO_SENDV:
        return asyncio__cstream_poll_write(cs, cx, op->iov, op->iovcnt, n_out);
    default: { /* RAW_WRITE: after the accepted send is done, the readiness loop */
        int rc = asyncio__cstream_poll_idle(cs, cx);
        return rc == 0 ? ASYNCIO__CSTREAM_DIRECT : rc;
    }
    }
}

/* Runs one stream operation; len == 0 completes at once with 0 bytes. */
static int stream_op(void *obj, asyncio_context *cx, const asyncio__sockio_op *op, size_t *n_out)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h) || cx == NULL || n_out == NULL)
        return ASYNCIO_EINVAL;
    if (op->len == 0 && op->raw == NULL) {
        *n_out = 0;
        return 0;
    }
    bool write = op->kind != ASYNCIO__SOCKIO_RECV && op->kind != ASYNCIO__SOCKIO_RAW_READ;
    asyncio__cstream *cs = comp_of(&h, write);
    if (cs != NULL && op->kind == ASYNCIO__SOCKIO_RAW_READ) {
        int rc = comp_stop_reads(cs, &h);
        if (rc < 0)
            return rc;
    } else if (cs != NULL && write && asyncio__io_hung_up(h.reg, ASYNCIO_WRITABLE)) {
        /*
         * The poller reported a hang-up or an error: the write goes through
         * send(2) once the accepted bytes are out, so it fails at once with
         * the socket's error (EPIPE, ECONNRESET), as on the readiness path.
         */
        int rc = asyncio__cstream_poll_idle(cs, cx);
        if (rc != 0)
            return rc;
    } else if (cs != NULL) {
        int rc = comp_op(cs, cx, op, n_out);
        if (rc != ASYNCIO__CSTREAM_DIRECT)
            return rc;
    }
    return asyncio__sockio_poll(h.io, h.reg, h.fd, cx, op, n_out);
}

int asyncio__stream_poll_read(void *obj, asyncio_context *cx, void *buf, size_t len, size_t *n_out)
{
    if (buf == NULL && len > 0)
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = ASYNCIO__SOCKIO_RECV, .rbuf = buf, .len = len};
    return stream_op(obj, cx, &op, n_out);
}

int asyncio__stream_poll_write(void *obj, asyncio_context *cx, const void *buf, size_t len,
                               size_t *n_out)
{
    if (buf == NULL && len > 0)
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = ASYNCIO__SOCKIO_SEND, .wbuf = buf, .len = len};
    return stream_op(obj, cx, &op, n_out);
}

int asyncio__stream_poll_write_vectored(void *obj, asyncio_context *cx, const asyncio_iovec *iov,
                                        int iovcnt, size_t *n_out)
{
    if (iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return ASYNCIO_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].len;
    asyncio__sockio_op op = {
        .kind = ASYNCIO__SOCKIO_SENDV, .iov = iov, .iovcnt = iovcnt, .len = total};
    return stream_op(obj, cx, &op, n_out);
}

int asyncio__stream_poll_flush(void *obj, asyncio_context *cx)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h))
        return ASYNCIO_EINVAL;
    (void)cx; /* never waits (comp.h says why) */
    asyncio__cstream *cs = comp_of(&h, true);
    return cs == NULL ? 0 : asyncio__cstream_flush(cs);
}

int asyncio__stream_poll_shutdown(void *obj, asyncio_context *cx)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h))
        return ASYNCIO_EINVAL;
    (void)cx; /* never blocks */
    asyncio__cstream *cs = comp_of(&h, true);
    /* Completion path: the accepted bytes go out before the FIN. */
    return cs != NULL ? asyncio__cstream_shutdown(cs) : asyncio__sock_shutdown(h.fd, SHUT_WR);
}

int asyncio__stream_poll_read_ready(void *obj, asyncio_context *cx)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h) || cx == NULL)
        return ASYNCIO_EINVAL;
    asyncio__cstream *cs = comp_of(&h, false);
    if (cs != NULL)
        return asyncio__cstream_poll_read_ready(cs, cx);
    asyncio_ready_guard g; /* not cleared: the next read consumes the readiness */
    int rc = asyncio__sockio_ensure_polled(h.io, h.reg, h.fd);
    return rc < 0 ? rc : asyncio__io_poll_ready(h.reg, cx, ASYNCIO_READABLE, &g);
}

/* ---- AsyncRead / AsyncWrite vtables -------------------------------------- */

static int vt_raw_fd(void *self)
{
    asyncio__sockio_handle h;
    return asyncio__handle_load(self, &h) ? h.fd : -1;
}

/* poll_raw_io (io.h): the copy's splice / sendfile inside the readiness loop. */
static int raw_io(void *self, asyncio_context *cx, asyncio_raw_io_fn fn, void *arg, size_t *n_out,
                  asyncio__sockio_kind kind)
{
    if (fn == NULL)
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = kind, .raw = fn, .raw_arg = arg};
    return stream_op(self, cx, &op, n_out);
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

const asyncio_reader_vtable asyncio__stream_reader_vt = {
    .poll_read = asyncio__stream_poll_read,
    .raw_fd = vt_raw_fd,
    .poll_raw_io = vt_poll_raw_read,
};

const asyncio_writer_vtable asyncio__stream_writer_vt = {
    .poll_write = asyncio__stream_poll_write,
    .poll_write_vectored = asyncio__stream_poll_write_vectored,
    .poll_flush = asyncio__stream_poll_flush,
    .poll_shutdown = asyncio__stream_poll_shutdown,
    .raw_fd = vt_raw_fd,
    .poll_raw_io = vt_poll_raw_write,
};

/* ------------------------------------------------------------------------ */
/* Connect                                                                   */

/* asyncio__stream_connect.state */
enum {
    CONNECT_INIT = 0,  /* not started: addr holds the target, no socket */
    CONNECT_WAIT,      /* socket connecting, registered: waiting for writability */
    CONNECT_READY,     /* connected: the stream waits inside to be taken */
    CONNECT_TAKEN,     /* the stream was moved out: nothing left to close */
    CONNECT_FAILED,    /* finished with `result`; the socket is closed */
    CONNECT_CANCELLED, /* dropped: polls complete with ECANCELED */
    CONNECT_RING,      /* socket connecting on the ring (IORING_OP_CONNECT), not registered */
};

/*
 * A connect the ring runs (completion path): the request's memory (the
 * address) lives here, apart from the future, until its completion, so
 * a future dropped meanwhile cancels it and leaves the freeing to the
 * completion. No readiness is involved: the socket is registered as a
 * stream only once connected.
 */
typedef struct ring_connect {
    asyncio__cop cop; /* first */
    asyncio_sockaddr addr;
    asyncio__spinlock lock;
    asyncio_waker waker;
    int fd;
    int32_t res;
    uint8_t refs; /* the future's and the request's: the last one frees */
    bool done;
} ring_connect;

static int connect_fail(asyncio__stream_connect *c, int rc);

static void ring_connect_done(asyncio__cop *op, int32_t res)
{
    ring_connect *rc = (ring_connect *)op;
    asyncio__spin_lock(&rc->lock);
    rc->res = res;
    rc->done = true;
    bool free_now = --rc->refs == 0;
    asyncio_waker w = rc->waker;
    rc->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&rc->lock);
    asyncio_waker_wake(&w);
    if (free_now)
        asyncio__free(rc);
}

/* Starts fd's connect on the ring: 0 (state RING), or ASYNCIO_ENOTSUP (use the readiness path). */
static int ring_connect_start(asyncio__stream_connect *c, int fd)
{
    /* TCP only: a Unix connect never waits (it succeeds, fails or is refused at once). */
    int family = asyncio_addr_family(&c->addr);
    asyncio__driver *drv = asyncio__driver_current();
    if ((family != AF_INET && family != AF_INET6) || drv == NULL ||
        !asyncio__comp_has(&drv->comp, ASYNCIO__COP_CONNECT))
        return ASYNCIO_ENOTSUP;
    ring_connect *rc = asyncio__calloc(1, sizeof *rc);
    if (rc == NULL)
        return ASYNCIO_ENOMEM;
    atomic_init(&rc->lock.held, false);
    rc->waker = ASYNCIO_WAKER_EMPTY;
    rc->addr = c->addr;
    rc->fd = fd;
    rc->refs = 2;
    asyncio__cop_req req = {.kind = ASYNCIO__COP_CONNECT,
                            .fd = fd,
                            .buf = &rc->addr.u,
                            .len = (uint32_t)rc->addr.len};
    int err = asyncio__comp_start(&drv->comp, &rc->cop, ring_connect_done, &req);
    if (err < 0) {
        asyncio__free(rc);
        return err;
    }
    c->ring = rc;
    c->state = CONNECT_RING;
    return 0;
}

/* RING -> READY / FAILED once the completion came: the connected socket is registered then. */
static int ring_connect_wait(asyncio__stream_connect *c, asyncio_context *cx)
{
    ring_connect *rc = c->ring;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&rc->lock);
    bool done = rc->done;
    if (!done && !asyncio_waker_will_wake(&rc->waker, cx->waker)) {
        old = rc->waker;
        rc->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__spin_unlock(&rc->lock);
    asyncio_waker_drop(&old);
    if (!done)
        return ASYNCIO_PENDING;
    int fd = rc->fd, res = rc->res;
    asyncio_waker_drop(&rc->waker);
    asyncio__free(rc);
    c->ring = NULL;
    if (res == 0)
        res = asyncio__handle_attach_stream(&c->stream, fd);
    if (res < 0) {
        asyncio__sock_close(fd);
        return connect_fail(c, res);
    }
    c->state = CONNECT_READY;
    return 0;
}

/* A dropped RING connect: cancelled, its socket closed; the completion frees the request. */
static void ring_connect_abandon(asyncio__stream_connect *c)
{
    ring_connect *rc = c->ring;
    c->ring = NULL;
    asyncio__spin_lock(&rc->lock);
    bool done = rc->done;
    asyncio_waker w = rc->waker;
    rc->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&rc->lock);
    asyncio_waker_drop(&w);
    int fd = rc->fd;
    if (!done) /* our reference keeps rc alive even if the completion comes meanwhile */
        asyncio__comp_cancel(&rc->cop); /* submitted now: the kernel holds the file */
    asyncio__spin_lock(&rc->lock);
    bool free_now = --rc->refs == 0;
    asyncio__spin_unlock(&rc->lock);
    if (free_now)
        asyncio__free(rc);
    asyncio__sock_close(fd);
}

void asyncio__stream_connect_init(void *obj, const asyncio_sockaddr *addr)
{
    asyncio__stream_connect c;
    memset(&c, 0, sizeof c);
    if (addr != NULL)
        c.addr = *addr;
    asyncio__handle_init_closed(&c.stream);
    c.state = CONNECT_INIT;
    memcpy(obj, &c, sizeof c);
}

static int connect_fail(asyncio__stream_connect *c, int rc)
{
    asyncio__handle_close(&c->stream);
    c->result = rc;
    c->state = CONNECT_FAILED;
    return rc;
}

/*
 * INIT -> WAIT / READY / FAILED: creates the socket, starts the connect,
 * then registers. Connecting first means the edge-triggered registration
 * reports the state after the connect started, never the "closed,
 * writable" state of a fresh socket.
 */
static int connect_start(asyncio__stream_connect *c, bool addr_ok)
{
    if (!addr_ok || !asyncio__sockio_can_attach())
        return ASYNCIO_EINVAL; /* state stays INIT: nothing was created */
    int fd = asyncio__sock_open(asyncio_addr_family(&c->addr), SOCK_STREAM, 0);
    if (fd < 0)
        return connect_fail(c, fd);
    int rc = ring_connect_start(c, fd);
    if (rc == 0)
        return 0;
    if (rc != ASYNCIO_ENOTSUP) {
        asyncio__sock_close(fd);
        return connect_fail(c, rc);
    }
    rc = asyncio__sock_connect(fd, &c->addr);
    int reg_rc =
        rc == 0 || rc == ASYNCIO_EINPROGRESS ? asyncio__handle_attach_stream(&c->stream, fd) : rc;
    if (reg_rc < 0) {
        asyncio__sock_close(fd);
        return connect_fail(c, reg_rc);
    }
    if (rc == ASYNCIO_EINPROGRESS) {
        /* The wait is for writability: a completion-path stream asks the poller now. */
        reg_rc = asyncio__sockio_ensure_polled(c->stream.io, c->stream.reg, c->stream.fd);
        if (reg_rc < 0)
            return connect_fail(c, reg_rc); /* closes the stream */
    }
    c->state = rc == 0 ? CONNECT_READY : CONNECT_WAIT;
    return 0;
}

/*
 * WAIT: writable means the connect finished; SO_ERROR says how. A writable
 * event can be spurious (poll-style backends, a wake-up the kernel reports
 * early): with SO_ERROR 0 only the peer address proves the handshake is
 * done; ENOTCONN means still connecting, so clear and wait again (mio's
 * connect contract).
 */
static int connect_wait(asyncio__stream_connect *c, asyncio_context *cx)
{
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio__io_poll_ready(c->stream.reg, cx, ASYNCIO_WRITABLE, &g);
        if (rc != 0)
            return rc;
        rc = asyncio__sock_take_error(c->stream.fd);
        if (rc < 0)
            return connect_fail(c, rc);
        asyncio_sockaddr peer;
        rc = asyncio__sock_peer_addr(c->stream.fd, &peer);
        if (rc == 0)
            break;
        if (rc != ASYNCIO_ENOTCONN)
            return connect_fail(c, rc);
        asyncio__io_clear_ready(c->stream.reg, &g);
    }
    c->state = CONNECT_READY;
    return 0;
}

/* READY -> TAKEN: moves the stream to out. */
static void connect_hand_over(asyncio__stream_connect *c, void *out)
{
    memcpy(out, &c->stream, sizeof c->stream);
    asyncio__handle_init_closed(&c->stream);
    c->state = CONNECT_TAKEN;
}

static int connect_step(asyncio__stream_connect *c, asyncio_context *cx, void *out, bool addr_ok)
{
    for (;;) {
        int rc;
        switch (c->state) {
        case CONNECT_INIT: /* create, connect, register */
            rc = connect_start(c, addr_ok);
            break;
        case CONNECT_WAIT: /* in progress: wait for writability */
            rc = connect_wait(c, cx);
            break;
        case CONNECT_RING: /* in progress on the ring: wait for its completion */
            rc = ring_connect_wait(c, cx);
            break;
        case CONNECT_READY: /* connected: hand the stream over if asked */
            if (out != NULL)
                connect_hand_over(c, out);
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

int asyncio__stream_connect_poll(void *obj, asyncio_context *cx, void *out, bool addr_ok)
{
    if (obj == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    asyncio__stream_connect c;
    memcpy(&c, obj, sizeof c);
    int rc = connect_step(&c, cx, out, addr_ok);
    memcpy(obj, &c, sizeof c);
    return rc;
}

int asyncio__stream_connect_take(void *obj, void *out)
{
    asyncio__stream_connect c;
    if (obj == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    memcpy(&c, obj, sizeof c);
    if (c.state != CONNECT_READY)
        return ASYNCIO_EINVAL;
    connect_hand_over(&c, out);
    memcpy(obj, &c, sizeof c);
    return 0;
}

void asyncio__stream_connect_drop(void *obj)
{
    asyncio__stream_connect c;
    if (obj == NULL)
        return;
    memcpy(&c, obj, sizeof c);
    if (c.state == CONNECT_RING)
        ring_connect_abandon(&c);
    asyncio__handle_close(&c.stream);
    if (c.state != CONNECT_FAILED && c.state != CONNECT_TAKEN)
        c.state = CONNECT_CANCELLED;
    memcpy(obj, &c, sizeof c);
}

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */

int asyncio__stream_listener_init(asyncio__stream_listener *l, int fd, uint32_t backoff_ms)
{
    void *acc;
    asyncio__sockio_handle h = {.fd = fd};
    int rc = asyncio__sockio_attach_listener(fd, &h.io, &h.reg, &acc);
    if (rc < 0)
        return rc;
    l->sock = h;
    l->acc = acc;
    asyncio_sleep_init(&l->backoff, 0);
    l->backing_off = false;
    l->backoff_ms = backoff_ms > 0 ? backoff_ms : ASYNCIO__LISTENER_BACKOFF_MS;
    atomic_init(&l->backoffs, 0);
    return 0;
}

static bool is_fd_exhaustion(int rc)
{
    return rc == ASYNCIO_EMFILE || rc == ASYNCIO_ENFILE || rc == ASYNCIO_ENOBUFS ||
           rc == ASYNCIO_ENOMEM;
}

/* Waits out an armed back-off: 0 when it is over, else ASYNCIO_PENDING / an error. */
static int listener_backoff_poll(asyncio__stream_listener *l, asyncio_context *cx)
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
static int accept_op(void *peer, int fd, size_t *n_out)
{
    int nfd = asyncio__sock_accept(fd, peer);
    if (nfd < 0)
        return nfd;
    *n_out = (size_t)nfd;
    return 0;
}

int asyncio__stream_listener_poll_accept(asyncio__stream_listener *l, asyncio_context *cx,
                                         void *stream_out, asyncio_sockaddr *peer_out)
{
    if (l == NULL || cx == NULL || stream_out == NULL || l->sock.fd < 0)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc = listener_backoff_poll(l, cx);
        if (rc != 0)
            return rc;
        size_t nfd = 0;
        if (l->acc != NULL) { /* on the ring */
            int afd = -1;
            rc = asyncio__cacceptor_poll(l->acc, cx, &afd, peer_out);
            nfd = (size_t)afd;
        } else {
            asyncio__sockio_op op = {
                .kind = ASYNCIO__SOCKIO_RAW_READ, .raw = accept_op, .raw_arg = peer_out};
            rc = asyncio__sockio_poll(l->sock.io, l->sock.reg, l->sock.fd, cx, &op, &nfd);
        }
        if (is_fd_exhaustion(rc)) {
            /*
             * The connection stays queued and the readiness stays set (no
             * clear): after the back-off the accept is simply retried. No
             * event is needed, so nothing spins meanwhile (the known EMFILE
             * accept-storm hazard).
             */
            atomic_fetch_add_explicit(&l->backoffs, 1, memory_order_relaxed);
            l->backing_off = true;
            asyncio_sleep_init(&l->backoff, l->backoff_ms);
            continue;
        }
        if (rc != 0)
            return rc; /* ASYNCIO_PENDING, or an unexpected accept error */
        rc = asyncio__handle_attach_stream(stream_out, (int)nfd);
        if (rc < 0)
            asyncio__sock_close((int)nfd);
        return rc;
    }
}

int asyncio__stream_listener_close(asyncio__stream_listener *l)
{
    asyncio_sleep_drop(&l->backoff);
    if (l->acc != NULL) {
        /*
         * The armed accept holds the socket's file until its cancel has run,
         * which on the multi-thread runtime happens on the worker that
         * submitted it, maybe after close(2) returned: stop listening now
         * (connects are refused from here on), then cancel.
         */
        if (l->sock.fd >= 0)
            (void)asyncio__sock_shutdown(l->sock.fd, SHUT_RDWR);
        asyncio__cacceptor_close(l->acc);
        l->acc = NULL;
    }
    return asyncio__handle_close(&l->sock);
}
