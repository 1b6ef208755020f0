/*
 * asyncio_copy and asyncio_copy_bidirectional: reader -> writer until EOF.
 *
 * Three paths, chosen at the first poll (choose_path) and never revisited
 * except to fall back to the buffer:
 *
 *   BUFFER    poll_read into the embedded buffer, poll_write it out.
 *   SPLICE    reader fd (socket or pipe) -> internal pipe -> writer fd
 *             (socket or pipe), with splice(2), through the streams'
 *             poll_raw_io so readiness is waited for by the streams' own
 *             async fds. The internal pipe is filled only when it is empty
 *             and drained completely before the next fill, which makes
 *             every EAGAIN unambiguous: on the way in the pipe has room, so
 *             EAGAIN means "reader not readable"; on the way out the pipe
 *             has bytes, so EAGAIN means "writer not writable". A wrong
 *             guess there would clear the readiness of the other side and
 *             lose its wake-up.
 *   SENDFILE  regular file -> writer fd with sendfile(2), waiting only for
 *             the writer (a regular file is always "ready").
 *
 * Fallback: if the kernel refuses a fast path (EINVAL, ENOSYS, ...: see
 * is_refusal) the copy switches to BUFFER. Bytes already spliced into the
 * internal pipe are not lost: the buffer path reads them out of the pipe
 * first (the DRAIN step), then goes on with the reader.
 *
 * Pipes: a copy holds an internal pipe only while bytes are in it. SPLICE_IN
 * borrows one (pipe_borrow: the runtime driver's spare, else a new pipe)
 * and the copy gives it back (pipe_return: it becomes the spare, or is
 * closed) as soon as it is empty again: drained by SPLICE_OUT, or the
 * reader had nothing (pending, EOF, refusal). So a copy waiting for its
 * reader, the usual state of a quiet proxied connection, holds no fd of its
 * own; one whose writer is stalled with bytes in the pipe holds two. If no
 * pipe can be had (EMFILE, ENFILE: out of fds) the copy goes on with its
 * buffer path for good, so it keeps working under a low fd limit.
 * Ownership: a pipe holding bytes is closed by asyncio_copy_drop.
 */
#include <stdatomic.h>
#include <string.h>

#include "asyncio/io_util.h"
#include "internal.h"
#include "platform/fd_io.h"
#include "platform/zero_copy.h"
#include "reactor/driver.h"

/* Bytes asked of one splice into the pipe / one sendfile. */
#define SPLICE_CHUNK   ((size_t)1 << 16)
#define SENDFILE_CHUNK ((size_t)1 << 19)

enum copy_step {
    STEP_START = 0,  /* path not chosen yet */
    STEP_READ,       /* BUFFER: buffer empty, read from the pipe leftovers or the reader */
    STEP_WRITE,      /* BUFFER: buf[pos, len) to write */
    STEP_SPLICE_IN,  /* SPLICE: pipe empty, splice reader -> pipe */
    STEP_SPLICE_OUT, /* SPLICE: in_pipe bytes in the pipe, splice pipe -> writer */
    STEP_SENDFILE,   /* SENDFILE: sendfile file -> writer */
    STEP_FLUSH,      /* reader at EOF, everything written: flush the writer */
    STEP_DONE,       /* finished (0 returned) */
};

void asyncio_copy_init(asyncio_copy *c, asyncio_reader r, asyncio_writer w)
{
    memset(c, 0, offsetof(asyncio_copy, buf)); /* the buffer needs no zeroing */
    c->reader = r;
    c->writer = w;
    c->step = STEP_START;
    c->path = ASYNCIO_COPY_PATH_UNDECIDED;
    c->src_fd = -1;
    c->pipe_fds[0] = c->pipe_fds[1] = -1;
}

void asyncio_copy_drop(asyncio_copy *c)
{
    if (c != NULL)
        asyncio__zc_pipe_close(c->pipe_fds);
}

/* The kernel cannot do this fast path for these fds: use the buffer instead. */
static bool is_refusal(int rc)
{
    return rc == ASYNCIO_EINVAL || rc == ASYNCIO_ENOSYS || rc == ASYNCIO_ENOTSUP ||
           rc == ASYNCIO_EBADF || rc == ASYNCIO_EPERM;
}

/* Borrows an empty pipe for one fill (see the file comment). */
static int pipe_borrow(asyncio_copy *c)
{
    return asyncio__driver_pipe_take(asyncio__driver_current(), c->pipe_fds);
}

/* Gives the pipe back; it must be empty (in_pipe == 0). */
static void pipe_return(asyncio_copy *c)
{
    ASYNCIO_ASSERT(c->in_pipe == 0);
    asyncio__driver_pipe_give(asyncio__driver_current(), c->pipe_fds);
}

static void to_buffer_path(asyncio_copy *c)
{
    c->path = ASYNCIO_COPY_PATH_BUFFER;
    c->step = STEP_READ;
    if (c->in_pipe == 0)
        pipe_return(c);
}

/* Picks the path from what the two streams expose (see the file comment). */
static void choose_path(asyncio_copy *c)
{
    int rfd = asyncio_reader_raw_fd(c->reader);
    int wfd = asyncio_writer_raw_fd(c->writer);
    c->path = ASYNCIO_COPY_PATH_BUFFER;
    c->step = STEP_READ;
    if (rfd < 0 || wfd < 0 || c->writer.vtable->poll_raw_io == NULL)
        return;
    asyncio__fd_kind wk = asyncio__fd_kind_of(wfd);
    if (wk != ASYNCIO__FD_SOCKET && wk != ASYNCIO__FD_PIPE)
        return;
    asyncio__fd_kind rk = asyncio__fd_kind_of(rfd);
    if (rk == ASYNCIO__FD_FILE) {
        c->src_fd = rfd;
        c->path = ASYNCIO_COPY_PATH_SENDFILE;
        c->step = STEP_SENDFILE;
    } else if ((rk == ASYNCIO__FD_SOCKET || rk == ASYNCIO__FD_PIPE) &&
               c->reader.vtable->poll_raw_io != NULL) {
        c->path = ASYNCIO_COPY_PATH_SPLICE; /* the pipe is borrowed by each fill */
        c->step = STEP_SPLICE_IN;
    }
}

/*
 * The reader is pending: flush what was written since the last flush so a
 * buffered writer does not sit on it while we wait. Returns ASYNCIO_PENDING
 * or the flush's error.
 */
static int pending_flush(asyncio_copy *c, asyncio_context *cx)
{
    if (!c->need_flush)
        return ASYNCIO_PENDING;
    int rc = asyncio_poll_flush(c->writer, cx);
    if (rc == 0)
        c->need_flush = false;
    return rc == 0 ? ASYNCIO_PENDING : rc;
}

static void count_written(asyncio_copy *c, size_t n, bool zero_copy)
{
    c->written += n;
    c->need_flush = true;
    if (!zero_copy)
        return;
    c->zero_copy += n;
    _Atomic uint64_t *ctr = c->path == ASYNCIO_COPY_PATH_SENDFILE
                                ? &asyncio__zero_copy_sendfile_bytes
                                : &asyncio__zero_copy_splice_bytes;
    atomic_fetch_add_explicit(ctr, n, memory_order_relaxed); /* statistics only */
}

/* ---- raw operations run by the streams' poll_raw_io --------------------- */

static int op_splice_in(void *arg, int fd, size_t *n_out)
{
    asyncio_copy *c = arg;
    return asyncio__zc_splice(fd, c->pipe_fds[1], SPLICE_CHUNK, n_out);
}

static int op_splice_out(void *arg, int fd, size_t *n_out)
{
    asyncio_copy *c = arg;
    return asyncio__zc_splice(c->pipe_fds[0], fd, c->in_pipe, n_out);
}

static int op_sendfile(void *arg, int fd, size_t *n_out)
{
    asyncio_copy *c = arg;
    return asyncio__zc_sendfile(fd, c->src_fd, SENDFILE_CHUNK, n_out);
}

/* ---- steps: each returns 0 to go on, or what poll must return ------------ */

static int step_read(asyncio_copy *c, asyncio_context *cx)
{
    size_t n = 0;
    int rc;
    if (c->in_pipe > 0) {
        /* Leftovers of a refused splice: they come before anything the reader has. */
        rc = asyncio__fd_read(c->pipe_fds[0], c->buf, sizeof c->buf, &n);
        if (rc != 0)
            return rc; /* a pipe holding in_pipe bytes cannot be empty */
        c->in_pipe -= n;
        if (c->in_pipe == 0)
            pipe_return(c);
    } else {
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING; /* for readers that never run out (user types) */
        rc = asyncio_poll_read(c->reader, cx, c->buf, sizeof c->buf, &n);
        if (rc == ASYNCIO_PENDING)
            return pending_flush(c, cx);
        if (rc != 0)
            return rc;
        if (n == 0) {
            c->step = STEP_FLUSH;
            return 0;
        }
        ASYNCIO_CHECK(n <= sizeof c->buf);
        c->read += n;
    }
    c->pos = 0;
    c->len = n;
    c->step = STEP_WRITE;
    return 0;
}

static int step_write(asyncio_copy *c, asyncio_context *cx)
{
    size_t n = 0;
    int rc = asyncio_poll_write(c->writer, cx, c->buf + c->pos, c->len - c->pos, &n);
    if (rc != 0)
        return rc;
    if (n == 0)
        return ASYNCIO_EWRITE_ZERO; /* the writer takes no more */
    ASYNCIO_CHECK(n <= c->len - c->pos);
    c->pos += n;
    count_written(c, n, false);
    if (c->pos == c->len)
        c->step = STEP_READ;
    return 0;
}

static int step_splice_in(asyncio_copy *c, asyncio_context *cx)
{
    const asyncio_reader r = c->reader;
    size_t n = 0;
    if (c->pipe_fds[0] < 0 && pipe_borrow(c) < 0) {
        to_buffer_path(c); /* no pipe to be had (out of fds, no splice): the buffer works */
        return 0;
    }
    int rc = r.vtable->poll_raw_io(r.self, cx, op_splice_in, c, &n);
    if (rc != 0 || n == 0)
        pipe_return(c); /* it stayed empty: nobody waits holding a pipe */
    if (rc == ASYNCIO_PENDING)
        return pending_flush(c, cx);
    if (is_refusal(rc)) {
        to_buffer_path(c); /* the pipe is empty: nothing to carry over */
        return 0;
    }
    if (rc != 0)
        return rc;
    if (n == 0) {
        c->step = STEP_FLUSH;
        return 0;
    }
    c->read += n;
    c->in_pipe = n;
    c->step = STEP_SPLICE_OUT;
    return 0;
}

static int step_splice_out(asyncio_copy *c, asyncio_context *cx)
{
    const asyncio_writer w = c->writer;
    size_t n = 0;
    int rc = w.vtable->poll_raw_io(w.self, cx, op_splice_out, c, &n);
    if (is_refusal(rc)) {
        to_buffer_path(c); /* in_pipe bytes are read out of the pipe first */
        return 0;
    }
    if (rc != 0)
        return rc;
    if (n == 0)
        return ASYNCIO_EWRITE_ZERO;
    ASYNCIO_CHECK(n <= c->in_pipe);
    c->in_pipe -= n;
    count_written(c, n, true);
    if (c->in_pipe == 0) {
        pipe_return(c); /* the next fill borrows one again (usually this one) */
        c->step = STEP_SPLICE_IN;
    }
    return 0;
}

static int step_sendfile(asyncio_copy *c, asyncio_context *cx)
{
    const asyncio_writer w = c->writer;
    size_t n = 0;
    int rc = w.vtable->poll_raw_io(w.self, cx, op_sendfile, c, &n);
    if (is_refusal(rc)) {
        to_buffer_path(c); /* a refused sendfile moved nothing */
        return 0;
    }
    if (rc != 0)
        return rc;
    if (n == 0) {
        c->step = STEP_FLUSH;
        return 0;
    }
    c->read += n;
    count_written(c, n, true);
    return 0;
}

int asyncio_copy_poll(asyncio_copy *c, asyncio_context *cx)
{
    for (;;) {
        int rc = 0;
        switch (c->step) {
        case STEP_START: /* first poll: pick the path */
            choose_path(c);
            break;
        case STEP_READ:
            rc = step_read(c, cx);
            break;
        case STEP_WRITE:
            rc = step_write(c, cx);
            break;
        case STEP_SPLICE_IN:
            rc = step_splice_in(c, cx);
            break;
        case STEP_SPLICE_OUT:
            rc = step_splice_out(c, cx);
            break;
        case STEP_SENDFILE:
            rc = step_sendfile(c, cx);
            break;
        case STEP_FLUSH: /* EOF seen and everything written: flush once */
            rc = asyncio_poll_flush(c->writer, cx);
            if (rc != 0)
                return rc;
            c->need_flush = false;
            c->step = STEP_DONE;
            return 0;
        default: /* STEP_DONE: polled again after finishing */
            return 0;
        }
        if (rc != 0)
            return rc;
    }
}

/* ------------------------------------------------------------------------ */
/* copy_bidirectional                                                        */

enum dir_state {
    DIR_COPYING = 0, /* copying until the reader's EOF */
    DIR_SHUTDOWN,    /* EOF seen: shutting down the other side's writer (half-close) */
    DIR_DONE,
};

void asyncio_copy_bidirectional_init(asyncio_copy_bidirectional *c, asyncio_reader a_r,
                                     asyncio_writer a_w, asyncio_reader b_r, asyncio_writer b_w)
{
    asyncio_copy_init(&c->a_to_b, a_r, b_w);
    asyncio_copy_init(&c->b_to_a, b_r, a_w);
    c->a_state = DIR_COPYING;
    c->b_state = DIR_COPYING;
}

/* One direction: returns 0 when done, ASYNCIO_PENDING or an error. */
static int poll_direction(asyncio_copy *c, int *state, asyncio_context *cx)
{
    int rc;
    switch (*state) {
    case DIR_COPYING:
        rc = asyncio_copy_poll(c, cx);
        if (rc != 0)
            return rc;
        asyncio__zc_pipe_close(c->pipe_fds); /* done with it: give the fds back early */
        *state = DIR_SHUTDOWN;
        /* fall through */
    case DIR_SHUTDOWN:
        rc = asyncio_poll_shutdown(c->writer, cx);
        if (rc != 0)
            return rc;
        *state = DIR_DONE;
        /* fall through */
    default: /* DIR_DONE */
        return 0;
    }
}

int asyncio_copy_bidirectional_poll(asyncio_copy_bidirectional *c, asyncio_context *cx)
{
    int ra = poll_direction(&c->a_to_b, &c->a_state, cx);
    if (ra < 0)
        return ra;
    int rb = poll_direction(&c->b_to_a, &c->b_state, cx);
    if (rb < 0)
        return rb;
    return ra == 0 && rb == 0 ? 0 : ASYNCIO_PENDING;
}

void asyncio_copy_bidirectional_drop(asyncio_copy_bidirectional *c)
{
    if (c == NULL)
        return;
    asyncio_copy_drop(&c->a_to_b);
    asyncio_copy_drop(&c->b_to_a);
}
