/*
 * A socket registered with the I/O driver and its readiness loop (see
 * sockio.h for the protocol).
 */
#include "net/sockio.h"

#include <string.h>

#include "internal.h"
#include "platform/socket.h"
#include "platform/socket_dgram.h"
#include "reactor/driver.h"
#include "reactor/io.h"

bool asyncio__sockio_can_attach(void)
{
    return asyncio__driver_current() != NULL;
}

int asyncio__sockio_attach(int fd, void **io, void **reg)
{
    asyncio__driver *drv = asyncio__driver_current();
    if (drv == NULL)
        return ASYNCIO_EINVAL;
    /*
     * An fd source is only read during the call (the poller keys fds by
     * number), so a temporary one is enough; close() rebuilds it.
     */
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    asyncio__io_reg *r;
    int rc = asyncio__io_register(&drv->io, &src.base, ASYNCIO_READABLE | ASYNCIO_WRITABLE, &r);
    if (rc < 0)
        return rc;
    *io = &drv->io;
    *reg = r;
    return 0;
}

int asyncio__sockio_attach_stream(int fd, void **io, void **reg)
{
    asyncio__driver *drv = asyncio__driver_current();
    if (drv == NULL)
        return ASYNCIO_EINVAL;
    if (!asyncio__comp_enabled(&drv->comp))
        return asyncio__sockio_attach(fd, io, reg);
    asyncio__cstream *cs;
    int rc = asyncio__cstream_new(&drv->comp, fd, &cs);
    if (rc < 0)
        return rc;
    /*
     * Receives on the ring need no readable reports; writable ones serve raw
     * writes and writes through send(2). When both directions run on the
     * ring the poller is not asked at all until one of those needs it
     * (asyncio__sockio_poll): no registration, fstat or poll per connection.
     */
    uint32_t watch = asyncio__cstream_reads(cs) && asyncio__cstream_writes(cs)
                         ? 0
                         : ASYNCIO_WRITABLE | (asyncio__cstream_reads(cs) ? 0 : ASYNCIO_READABLE);
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    asyncio__io_reg *r;
    rc = asyncio__io_register_watch(&drv->io, &src.base, ASYNCIO_READABLE | ASYNCIO_WRITABLE, watch,
                                    &r);
    if (rc < 0) {
        asyncio__cstream_close(cs); /* nothing in flight: freed at once */
        return rc;
    }
    r->comp = cs;
    *io = &drv->io;
    *reg = r;
    return 0;
}

int asyncio__sockio_attach_listener(int fd, void **io, void **reg, void **acc)
{
    asyncio__driver *drv = asyncio__driver_current();
    *acc = NULL;
    if (drv == NULL)
        return ASYNCIO_EINVAL;
    if (!asyncio__comp_accepts(&drv->comp))
        return asyncio__sockio_attach(fd, io, reg);
    asyncio__cacceptor *a;
    int rc = asyncio__cacceptor_new(&drv->comp, fd, &a);
    if (rc < 0)
        return rc;
    /* A listening socket never turns writable: watched, it reports nothing. */
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    asyncio__io_reg *r;
    rc = asyncio__io_register_watch(&drv->io, &src.base, ASYNCIO_READABLE | ASYNCIO_WRITABLE,
                                    ASYNCIO_WRITABLE, &r);
    if (rc < 0) {
        asyncio__cacceptor_close(a); /* never armed: freed at once */
        return rc;
    }
    *io = &drv->io;
    *reg = r;
    *acc = a;
    return 0;
}

int asyncio__sockio_watch(void *io, void *reg, int fd, uint32_t watch)
{
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    return asyncio__io_watch(io, reg, &src.base, watch, false);
}

int asyncio__sockio_ensure_polled(void *io, void *reg, int fd)
{
    asyncio__io_reg *r = reg;
    if (asyncio__io_polled(r))
        return 0;
    uint32_t watch = ASYNCIO_WRITABLE | (asyncio__cstream_reads(r->comp) ? 0 : ASYNCIO_READABLE);
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    return asyncio__io_watch(io, r, &src.base, watch, true);
}

int asyncio__sockio_close(void *io, void *reg, int fd)
{
    asyncio__io_reg *r = reg;
    if (r->comp != NULL) {
        /*
         * On the completion path one io_uring_enter does it all, in order:
         * the requests queued before (a send just accepted), the receive's
         * cancel, the poll's cancel, the close.
         */
        bool handed = asyncio__cstream_close_queued(r->comp);
        r->comp = NULL;
        if (handed) {
            /* A worker's ring closes the fd behind its requests (comp.h "Rings"). */
            asyncio_fd_source src;
            asyncio_fd_source_init(&src, fd);
            return asyncio__io_deregister(io, reg, &src.base);
        }
        bool closed = false;
        int rc = asyncio__io_deregister_close(io, reg, fd, &closed);
        int crc = closed ? 0 : asyncio__sock_close(fd);
        return rc < 0 ? rc : crc;
    }
    asyncio_fd_source src;
    asyncio_fd_source_init(&src, fd);
    int rc = asyncio__io_deregister(io, reg, &src.base);
    int crc = asyncio__sock_close(fd);
    return rc < 0 ? rc : crc;
}

/* The operation drained the direction: clear (unless an event came since) and re-arm. */
static void give_back(asyncio__io_driver *io, asyncio__io_reg *reg, int fd,
                      const asyncio_ready_guard *g)
{
    asyncio__io_clear_ready(reg, g);
    (void)asyncio_poller_rearm_fd(io->poller, fd, g->direction);
}

static bool op_is_read(asyncio__sockio_kind k)
{
    return k == ASYNCIO__SOCKIO_RECV || k == ASYNCIO__SOCKIO_RECV_FROM ||
           k == ASYNCIO__SOCKIO_RAW_READ;
}

/* One attempt: bytes moved, ASYNCIO_EAGAIN, or an error. */
static ssize_t op_run(int fd, const asyncio__sockio_op *o)
{
    switch (o->kind) {
    case ASYNCIO__SOCKIO_RECV: /* stream bytes; 0 = EOF */
        return asyncio__sock_recv(fd, o->rbuf, o->len, 0);
    case ASYNCIO__SOCKIO_SEND: /* stream bytes; short writes possible */
        return asyncio__sock_send(fd, o->wbuf, o->len, 0);
    case ASYNCIO__SOCKIO_SENDV: /* gathering stream write */
        return asyncio__sock_sendv(fd, o->iov, o->iovcnt);
    case ASYNCIO__SOCKIO_RECV_FROM: /* one datagram, truncation reported */
        return asyncio__sock_recv_from(fd, o->rbuf, o->len, o->from, o->truncated);
    case ASYNCIO__SOCKIO_SEND_TO: /* one datagram, all or nothing */
        return asyncio__sock_send_to(fd, o->wbuf, o->len, o->to);
    default: { /* RAW_READ / RAW_WRITE: the caller's operation on the fd */
        size_t n = 0;
        int rc = o->raw(o->raw_arg, fd, &n);
        return rc < 0 ? rc : (ssize_t)n;
    }
    }
}

/* Stream transfers that moved fewer bytes than asked drained the socket (see sockio.h). */
static bool short_drains(const asyncio__sockio_op *o, ssize_t n)
{
    switch (o->kind) {
    case ASYNCIO__SOCKIO_RECV:
    case ASYNCIO__SOCKIO_SEND:
    case ASYNCIO__SOCKIO_SENDV:
        return n > 0 && (size_t)n < o->len;
    default: /* datagrams and raw operations: a short count says nothing */
        return false;
    }
}

int asyncio__sockio_poll(void *io, void *reg, int fd, asyncio_context *cx,
                         const asyncio__sockio_op *op, size_t *n_out)
{
    uint32_t dir = op_is_read(op->kind) ? ASYNCIO_READABLE : ASYNCIO_WRITABLE;
    int prc = asyncio__sockio_ensure_polled(io, reg, fd);
    if (prc < 0)
        return prc;
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio__io_poll_ready(reg, cx, dir, &g);
        if (rc != 0)
            return rc; /* ASYNCIO_PENDING (waker stored, or budget used up) */
        ssize_t n = op_run(fd, op);
        if (n == ASYNCIO_EAGAIN) {
            give_back(io, reg, fd, &g);
            continue;
        }
        if (n < 0)
            return (int)n;
        if (short_drains(op, n))
            give_back(io, reg, fd, &g);
        *n_out = (size_t)n;
        return 0;
    }
}

/* ---- the public socket objects ------------------------------------------------- */

bool asyncio__handle_load(const void *obj, asyncio__sockio_handle *h)
{
    if (obj == NULL)
        return false;
    memcpy(h, obj, sizeof *h);
    return h->fd >= 0 && h->reg != NULL;
}

void asyncio__handle_init_closed(void *obj)
{
    if (obj == NULL)
        return;
    asyncio__sockio_handle h = {.io = NULL, .reg = NULL, .fd = -1};
    memcpy(obj, &h, sizeof h);
}

int asyncio__handle_attach(void *obj, int fd)
{
    asyncio__sockio_handle h = {.fd = fd};
    int rc = asyncio__sockio_attach(fd, &h.io, &h.reg);
    if (rc == 0)
        memcpy(obj, &h, sizeof h);
    return rc;
}

int asyncio__handle_attach_stream(void *obj, int fd)
{
    asyncio__sockio_handle h = {.fd = fd};
    int rc = asyncio__sockio_attach_stream(fd, &h.io, &h.reg);
    if (rc == 0)
        memcpy(obj, &h, sizeof h);
    return rc;
}

int asyncio__handle_close(void *obj)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h)) /* closed, or zero-filled (fd 0 is not ours then) */
        return 0;
    int rc = asyncio__sockio_close(h.io, h.reg, h.fd);
    asyncio__handle_init_closed(obj);
    return rc;
}

int asyncio__handle_local_addr(const void *obj, asyncio_sockaddr *out)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_local_addr(h.fd, out);
}

int asyncio__handle_peer_addr(const void *obj, asyncio_sockaddr *out)
{
    asyncio__sockio_handle h;
    if (!asyncio__handle_load(obj, &h) || out == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__sock_peer_addr(h.fd, out);
}
