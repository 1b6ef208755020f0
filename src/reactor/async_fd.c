/*
 * The public async fd (include/asyncio/async_fd.h): one registration with
 * the current runtime's I/O driver (src/reactor/io.c) around a caller's fd
 * or custom source, and the readiness loop of its read / write.
 *
 * Owns: the asyncio_async_fd block (one allocation at _new, freed by _free
 * after deregistering). The readiness word itself belongs to io.c; this
 * file only observes and clears it through asyncio__io_poll_ready /
 * asyncio__io_clear_ready, and re-arms the poller after a clear.
 *
 * Reads and writes go through src/platform/fd_io.c (read(2),
 * send(MSG_NOSIGNAL) or write(2) with SIGPIPE blocked): the operation the
 * async fd exists to wrap, with the OS calls kept in the platform layer.
 *
 * Thread-safety: as async_fd.h states; _free must not race with other calls
 * on the same async fd.
 */
#include <stdbool.h>

#include "internal.h"
#include "platform/fd_io.h"
#include "reactor/driver.h"
#include "reactor/io.h"
#include "util/alloc.h"

struct asyncio_async_fd {
    asyncio__io_driver *io;
    asyncio__io_reg *reg;
    asyncio_source *src; /* &fd_src.base, or the caller's source */
    asyncio_fd_source fd_src;
    int fd;         /* -1 for a source */
    bool is_socket; /* writes use send(MSG_NOSIGNAL) */
    bool is_stream; /* stream socket or pipe: a short transfer means the direction is drained */
};

static int async_fd_create(asyncio_async_fd **out, int fd, asyncio_source *src, uint32_t interest)
{
    asyncio__driver *drv = asyncio__driver_current();
    if (out == NULL || drv == NULL)
        return ASYNCIO_EINVAL;
    asyncio_async_fd *a = asyncio__malloc(sizeof *a);
    if (a == NULL)
        return ASYNCIO_ENOMEM;
    a->io = &drv->io;
    a->fd = fd;
    a->is_socket = false;
    a->is_stream = false;
    if (src == NULL) {
        int rc = asyncio__fd_probe(fd, &a->is_socket, &a->is_stream);
        if (rc < 0) {
            asyncio__free(a);
            return rc;
        }
        asyncio_fd_source_init(&a->fd_src, fd);
        src = &a->fd_src.base;
    }
    a->src = src;
    int rc = asyncio__io_register(a->io, src, interest, &a->reg);
    if (rc < 0) {
        asyncio__free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int asyncio_async_fd_new(asyncio_async_fd **out, int fd, uint32_t interest)
{
    if (fd < 0)
        return out == NULL ? ASYNCIO_EINVAL : ASYNCIO_EBADF;
    return async_fd_create(out, fd, NULL, interest);
}

int asyncio_async_fd_new_source(asyncio_async_fd **out, asyncio_source *src, uint32_t interest)
{
    if (src == NULL)
        return ASYNCIO_EINVAL;
    return async_fd_create(out, -1, src, interest);
}

int asyncio_async_fd_poll_ready(asyncio_async_fd *a, asyncio_context *cx, uint32_t direction,
                                asyncio_ready_guard *guard)
{
    if (a == NULL)
        return ASYNCIO_EINVAL;
    return asyncio__io_poll_ready(a->reg, cx, direction, guard);
}

static bool is_direction(uint32_t direction)
{
    return direction == ASYNCIO_READABLE || direction == ASYNCIO_WRITABLE ||
           direction == ASYNCIO_PRIORITY;
}

void asyncio_async_fd_clear_ready(asyncio_async_fd *a, const asyncio_ready_guard *guard)
{
    if (a == NULL || guard == NULL || !is_direction(guard->direction))
        return;
    asyncio__io_clear_ready(a->reg, guard);
    /*
     * The caller drained the direction to EAGAIN, so re-arm the edge whether
     * or not the word was cleared (the poll backend needs it; free on epoll).
     * It cannot fail for a live registration; nothing useful to do if it did.
     */
    (void)asyncio_poller_rearm(a->io->poller, a->src, guard->direction);
}

int asyncio_async_fd_fd(const asyncio_async_fd *a)
{
    return a != NULL ? a->fd : -1;
}

int asyncio_async_fd_free(asyncio_async_fd *a)
{
    if (a == NULL)
        return 0;
    int rc = asyncio__io_deregister(a->io, a->reg, a->src);
    asyncio__free(a);
    return rc;
}

/*
 * The readiness loop shared by poll_read and poll_write: poll_ready, the
 * operation (EINTR is retried inside it), clear on EAGAIN. `write_buf` selects the
 * direction.
 *
 * On a stream socket or a pipe a short transfer (0 < n < len) means the
 * kernel buffer was emptied (read) or filled (write) by this very call, so
 * the direction is cleared right away: the next operation waits for a new
 * edge instead of spending a syscall to learn EAGAIN (Tokio does the same).
 * Data that arrives after the call raises a new edge, and a dispatch that
 * raced the clear bumped the tick, which makes the clear a no-op.
 */
static int poll_io(asyncio_async_fd *a, asyncio_context *cx, void *read_buf, const void *write_buf,
                   size_t len, size_t *n_out)
{
    uint32_t dir = read_buf != NULL ? ASYNCIO_READABLE : ASYNCIO_WRITABLE;
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio__io_poll_ready(a->reg, cx, dir, &g);
        if (rc != 0)
            return rc;
        size_t n = 0;
        rc = read_buf != NULL ? asyncio__fd_read(a->fd, read_buf, len, &n)
                              : asyncio__fd_write(a->fd, a->is_socket, write_buf, len, &n);
        if (rc == 0) {
            if (a->is_stream && n > 0 && n < len)
                asyncio_async_fd_clear_ready(a, &g);
            *n_out = n;
            return 0;
        }
        if (rc != ASYNCIO_EAGAIN)
            return rc;
        asyncio_async_fd_clear_ready(a, &g);
    }
}

/* len == 0 is answered at once (io.h): no readiness wait, no syscall. */
int asyncio_async_fd_poll_read(asyncio_async_fd *a, asyncio_context *cx, void *buf, size_t len,
                               size_t *n_out)
{
    if (a == NULL || a->fd < 0 || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    return poll_io(a, cx, buf, NULL, len, n_out);
}

int asyncio_async_fd_poll_write(asyncio_async_fd *a, asyncio_context *cx, const void *buf,
                                size_t len, size_t *n_out)
{
    if (a == NULL || a->fd < 0 || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    return poll_io(a, cx, NULL, buf, len, n_out);
}
