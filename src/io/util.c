/*
 * The I/O helpers over AsyncRead / AsyncWrite: read_exact, read_to_end,
 * write_all, write_vectored_all, and the small one-shot calls
 * (include/asyncio/io_util.h). asyncio_copy lives in copy.c.
 *
 * Each helper is a loop around its interface call that keeps its progress
 * in the future's struct, so a poll that returns ASYNCIO_PENDING resumes
 * exactly where it stopped; the cooperative budget is consumed by the leaf
 * operations the streams call.
 */
#include <string.h>

#include "asyncio/io_util.h"
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* One-shot calls                                                            */

int asyncio_poll_write_vectored(asyncio_writer w, asyncio_context *cx, const asyncio_iovec *iov,
                                int iovcnt, size_t *n_out)
{
    if (w.vtable == NULL || n_out == NULL || iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return ASYNCIO_EINVAL;
    int first = 0;
    while (first < iovcnt && iov[first].len == 0)
        first++;
    if (first == iovcnt) {
        *n_out = 0;
        return 0;
    }
    if (w.vtable->poll_write_vectored != NULL)
        return w.vtable->poll_write_vectored(w.self, cx, iov + first, iovcnt - first, n_out);
    return w.vtable->poll_write(w.self, cx, iov[first].base, iov[first].len, n_out);
}

int asyncio_reader_raw_fd(asyncio_reader r)
{
    return r.vtable->raw_fd != NULL ? r.vtable->raw_fd(r.self) : -1;
}

int asyncio_writer_raw_fd(asyncio_writer w)
{
    return w.vtable->raw_fd != NULL ? w.vtable->raw_fd(w.self) : -1;
}

int asyncio_raw_io_poll_async_fd(asyncio_async_fd *a, asyncio_context *cx, uint32_t direction,
                                 asyncio_raw_io_fn op, void *arg, size_t *n_out)
{
    int fd = asyncio_async_fd_fd(a);
    if (fd < 0 || op == NULL || n_out == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio_async_fd_poll_ready(a, cx, direction, &g);
        if (rc != 0)
            return rc; /* ASYNCIO_PENDING (waker stored) or ASYNCIO_EINVAL */
        rc = op(arg, fd, n_out);
        if (rc != ASYNCIO_EAGAIN)
            return rc;
        asyncio_async_fd_clear_ready(a, &g); /* not ready after all: wait for the next edge */
    }
}

/* ------------------------------------------------------------------------ */
/* read_exact                                                                */

void asyncio_read_exact_init(asyncio_read_exact *f, asyncio_reader r, void *buf, size_t len)
{
    *f = (asyncio_read_exact){.reader = r, .buf = buf, .len = len};
}

int asyncio_read_exact_poll(asyncio_read_exact *f, asyncio_context *cx)
{
    while (f->done < f->len) {
        size_t n = 0;
        int rc = asyncio_poll_read(f->reader, cx, f->buf + f->done, f->len - f->done, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return ASYNCIO_EUNEXPECTED_EOF;
        ASYNCIO_CHECK(n <= f->len - f->done);
        f->done += n;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* read_to_end                                                               */

void asyncio_read_to_end_init(asyncio_read_to_end *f, asyncio_reader r, void *buf, size_t cap)
{
    *f = (asyncio_read_to_end){.reader = r, .buf = buf, .cap = cap};
}

int asyncio_read_to_end_poll(asyncio_read_to_end *f, asyncio_context *cx)
{
    if (f->has_extra)
        return ASYNCIO_EMSGSIZE; /* already over the limit: polled again after the error */
    for (;;) {
        size_t n = 0;
        int rc;
        if (f->done < f->cap) {
            rc = asyncio_poll_read(f->reader, cx, f->buf + f->done, f->cap - f->done, &n);
        } else {
            /* Full: one byte tells EOF from "too long"; it is kept, not lost. */
            rc = asyncio_poll_read(f->reader, cx, &f->extra, 1, &n);
        }
        if (rc != 0)
            return rc;
        if (n == 0)
            return 0; /* EOF */
        if (f->done == f->cap) {
            f->has_extra = true;
            return ASYNCIO_EMSGSIZE;
        }
        ASYNCIO_CHECK(n <= f->cap - f->done);
        f->done += n;
    }
}

/* ------------------------------------------------------------------------ */
/* write_all                                                                 */

void asyncio_write_all_init(asyncio_write_all *f, asyncio_writer w, const void *buf, size_t len)
{
    *f = (asyncio_write_all){.writer = w, .buf = buf, .len = len};
}

int asyncio_poll_write_all(asyncio_writer w, asyncio_context *cx, const void *buf, size_t len,
                           size_t *done)
{
    if (done == NULL || *done > len || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    const unsigned char *p = buf;
    while (*done < len) {
        size_t n = 0;
        int rc = asyncio_poll_write(w, cx, p + *done, len - *done, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return ASYNCIO_EWRITE_ZERO; /* the writer takes no more: never spin on it */
        ASYNCIO_CHECK(n <= len - *done);
        *done += n;
    }
    return 0;
}

int asyncio_write_all_poll(asyncio_write_all *f, asyncio_context *cx)
{
    return asyncio_poll_write_all(f->writer, cx, f->buf, f->len, &f->done);
}

/* ------------------------------------------------------------------------ */
/* write_vectored_all                                                        */

void asyncio_write_vectored_all_init(asyncio_write_vectored_all *f, asyncio_writer w,
                                     const asyncio_iovec *iov, int iovcnt)
{
    *f = (asyncio_write_vectored_all){.writer = w, .iov = iov, .iovcnt = iovcnt};
}

/* Skips buffers that are fully written (or empty) after f->done advanced by n. */
static void advance_iov(asyncio_write_vectored_all *f, size_t n)
{
    f->done += n;
    while (f->index < f->iovcnt) {
        size_t left = f->iov[f->index].len - f->offset;
        if (n < left) {
            f->offset += n;
            return;
        }
        n -= left;
        f->index++;
        f->offset = 0;
    }
    ASYNCIO_CHECK(n == 0); /* the writer claimed more than it was given */
}

/* The next batch: iov[index..], the first one advanced past `offset`. Returns its count. */
static int next_batch(const asyncio_write_vectored_all *f, asyncio_iovec *batch)
{
    int cnt = 0;
    for (int i = f->index; i < f->iovcnt && cnt < ASYNCIO_IOV_BATCH; i++) {
        batch[cnt] = f->iov[i];
        if (i == f->index) {
            batch[cnt].base = (unsigned char *)batch[cnt].base + f->offset;
            batch[cnt].len -= f->offset;
        }
        cnt++;
    }
    return cnt;
}

int asyncio_write_vectored_all_poll(asyncio_write_vectored_all *f, asyncio_context *cx)
{
    if (f->iovcnt < 0 || (f->iov == NULL && f->iovcnt > 0))
        return ASYNCIO_EINVAL;
    advance_iov(f, 0); /* skip leading empty buffers */
    while (f->index < f->iovcnt) {
        asyncio_iovec batch[ASYNCIO_IOV_BATCH];
        int cnt = next_batch(f, batch);
        size_t n = 0;
        int rc = asyncio_poll_write_vectored(f->writer, cx, batch, cnt, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return ASYNCIO_EWRITE_ZERO; /* batch[0] is non-empty, so the writer takes no more */
        advance_iov(f, n);
    }
    return 0;
}
