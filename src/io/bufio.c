/*
 * Buffered reader and writer (include/asyncio/bufio.h).
 *
 * Reader buffer invariant: 0 <= pos <= scan <= filled <= cap, where
 * buf[pos, filled) are the buffered bytes and buf[pos, scan) is known to
 * hold no byte equal to scan_delim (so a record arriving byte by byte is
 * scanned once, not once per byte). The buffer is compacted (unconsumed
 * bytes moved to the front) only when it is full and more are needed, or
 * reset when it is empty; both happen only inside calls that document that
 * earlier views become invalid.
 *
 * Writer buffer invariant: buf[0, len) is buffered; buf[0, pos) of it was
 * already accepted by the inner writer during a flush that went pending or
 * failed, so no byte is written twice or dropped.
 */
#include <string.h>

#include "asyncio/bufio.h"
#include "asyncio/io_util.h"
#include "internal.h"
#include "util/alloc.h"

/* Picks the caller's buffer or allocates one. */
static int buffer_init(void *buf, size_t *cap, unsigned char **out, bool *owned)
{
    if (buf != NULL) {
        if (*cap == 0)
            return ASYNCIO_EINVAL;
        *out = buf;
        *owned = false;
        return 0;
    }
    if (*cap == 0)
        *cap = ASYNCIO_BUF_DEFAULT_CAPACITY;
    *out = asyncio__malloc(*cap);
    if (*out == NULL)
        return ASYNCIO_ENOMEM;
    *owned = true;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

static int br_vt_poll_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n_out)
{
    return asyncio_buf_reader_poll_read(self, cx, buf, len, n_out);
}

static const asyncio_reader_vtable buf_reader_vtable = {
    .poll_read = br_vt_poll_read,
    .raw_fd = NULL,      /* bytes may be buffered in front of the fd */
    .poll_raw_io = NULL, /* so no zero-copy through a buffered reader */
};

int asyncio_buf_reader_init(asyncio_buf_reader *br, asyncio_reader inner, void *buf, size_t cap)
{
    if (br == NULL || inner.vtable == NULL || inner.vtable->poll_read == NULL)
        return ASYNCIO_EINVAL;
    asyncio_buf_reader b = {.inner = inner, .cap = cap, .scan_delim = -1};
    int rc = buffer_init(buf, &b.cap, &b.buf, &b.owned);
    if (rc != 0)
        return rc;
    *br = b;
    return 0;
}

void asyncio_buf_reader_free(asyncio_buf_reader *br)
{
    if (br == NULL)
        return;
    if (br->owned)
        asyncio__free(br->buf);
    br->buf = NULL;
    br->cap = br->pos = br->filled = br->scan = 0;
    br->owned = false;
}

asyncio_reader asyncio_buf_reader_as_reader(asyncio_buf_reader *br)
{
    return (asyncio_reader){&buf_reader_vtable, br};
}

asyncio_reader asyncio_buf_reader_inner(const asyncio_buf_reader *br)
{
    return br->inner;
}

const void *asyncio_buf_reader_buffer(const asyncio_buf_reader *br, size_t *len)
{
    *len = br->filled - br->pos;
    return br->buf + br->pos;
}

void asyncio_buf_reader_consume(asyncio_buf_reader *br, size_t n)
{
    size_t avail = br->filled - br->pos;
    br->pos += n < avail ? n : avail;
    if (br->scan < br->pos)
        br->scan = br->pos;
}

/* Makes room at the end of the buffer: reset when empty, compact when full. */
static void make_room(asyncio_buf_reader *br)
{
    if (br->pos == br->filled) {
        br->pos = br->filled = br->scan = 0;
    } else if (br->filled == br->cap && br->pos > 0) {
        size_t avail = br->filled - br->pos;
        memmove(br->buf, br->buf + br->pos, avail);
        br->scan -= br->pos;
        br->filled = avail;
        br->pos = 0;
    }
}

/* One read from the inner reader into the free tail. *n_out == 0 means EOF. */
static int fill_more(asyncio_buf_reader *br, asyncio_context *cx, size_t *n_out)
{
    make_room(br);
    ASYNCIO_ASSERT(br->filled < br->cap);
    size_t n = 0;
    int rc = asyncio_poll_read(br->inner, cx, br->buf + br->filled, br->cap - br->filled, &n);
    if (rc != 0)
        return rc;
    ASYNCIO_CHECK(n <= br->cap - br->filled);
    br->filled += n;
    *n_out = n;
    return 0;
}

int asyncio_buf_reader_poll_fill_buf(asyncio_buf_reader *br, asyncio_context *cx, const void **data,
                                     size_t *len)
{
    if (br->pos == br->filled) {
        size_t n;
        int rc = fill_more(br, cx, &n);
        if (rc != 0)
            return rc;
    }
    *data = br->buf + br->pos;
    *len = br->filled - br->pos;
    return 0;
}

int asyncio_buf_reader_poll_read(asyncio_buf_reader *br, asyncio_context *cx, void *buf, size_t len,
                                 size_t *n_out)
{
    if (n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    if (br->pos == br->filled && len >= br->cap)
        return asyncio_poll_read(br->inner, cx, buf, len, n_out); /* large read: bypass */
    const void *data;
    size_t avail;
    int rc = asyncio_buf_reader_poll_fill_buf(br, cx, &data, &avail);
    if (rc != 0)
        return rc;
    size_t n = avail < len ? avail : len;
    memcpy(buf, data, n);
    asyncio_buf_reader_consume(br, n);
    *n_out = n;
    return 0;
}

/* Looks for delim in the first `max` buffered bytes; returns the record length or 0. */
static size_t scan_record(asyncio_buf_reader *br, int delim, size_t max)
{
    size_t avail = br->filled - br->pos;
    size_t end = br->pos + (avail < max ? avail : max);
    if (br->scan < end) {
        const unsigned char *p = memchr(br->buf + br->scan, delim, end - br->scan);
        if (p != NULL)
            return (size_t)(p - (br->buf + br->pos)) + 1;
        br->scan = end;
    }
    return 0;
}

/* Hands out buf[pos, pos + n) as a view and consumes it. */
static void take(asyncio_buf_reader *br, size_t n, const char **data, size_t *len)
{
    *data = (const char *)br->buf + br->pos;
    *len = n;
    asyncio_buf_reader_consume(br, n);
}

int asyncio_buf_reader_poll_read_until(asyncio_buf_reader *br, asyncio_context *cx, int delim,
                                       size_t max, const char **data, size_t *len)
{
    if (max == 0)
        max = br->cap;
    if (data == NULL || len == NULL || max > br->cap || delim < 0 || delim > 255)
        return ASYNCIO_EINVAL;
    if (delim != br->scan_delim) {
        br->scan = br->pos; /* what was scanned was scanned for another byte */
        br->scan_delim = delim;
    }
    for (;;) {
        size_t n = scan_record(br, delim, max);
        if (n > 0) {
            take(br, n, data, len);
            return 0;
        }
        if (br->filled - br->pos >= max)
            return ASYNCIO_EMSGSIZE; /* consumes nothing: the bytes stay readable */
        int rc = fill_more(br, cx, &n);
        if (rc != 0)
            return rc; /* pending: what arrived stays buffered (and scanned) */
        if (n == 0) {
            take(br, br->filled - br->pos, data, len); /* EOF: the rest, maybe empty */
            return 0;
        }
    }
}

int asyncio_buf_reader_poll_read_line(asyncio_buf_reader *br, asyncio_context *cx, size_t max,
                                      const char **line, size_t *len)
{
    return asyncio_buf_reader_poll_read_until(br, cx, '\n', max, line, len);
}

void asyncio_lines_init(asyncio_lines *it, asyncio_buf_reader *br, size_t max)
{
    *it = (asyncio_lines){.reader = br, .max = max};
}

int asyncio_lines_poll_next(asyncio_lines *it, asyncio_context *cx, const char **line, size_t *len)
{
    const char *p;
    size_t n;
    int rc = asyncio_buf_reader_poll_read_line(it->reader, cx, it->max, &p, &n);
    if (rc != 0)
        return rc;
    if (n == 0) {
        *line = NULL; /* end of the stream */
        *len = 0;
        return 0;
    }
    if (p[n - 1] == '\n') {
        n--;
        if (n > 0 && p[n - 1] == '\r')
            n--;
    }
    *line = p;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

static int bw_vt_poll_write(void *self, asyncio_context *cx, const void *buf, size_t len,
                            size_t *n_out)
{
    return asyncio_buf_writer_poll_write(self, cx, buf, len, n_out);
}

static int bw_vt_poll_write_vectored(void *self, asyncio_context *cx, const asyncio_iovec *iov,
                                     int iovcnt, size_t *n_out)
{
    return asyncio_buf_writer_poll_write_vectored(self, cx, iov, iovcnt, n_out);
}

static int bw_vt_poll_flush(void *self, asyncio_context *cx)
{
    return asyncio_buf_writer_poll_flush(self, cx);
}

static int bw_vt_poll_shutdown(void *self, asyncio_context *cx)
{
    return asyncio_buf_writer_poll_shutdown(self, cx);
}

static const asyncio_writer_vtable buf_writer_vtable = {
    .poll_write = bw_vt_poll_write,
    .poll_write_vectored = bw_vt_poll_write_vectored,
    .poll_flush = bw_vt_poll_flush,
    .poll_shutdown = bw_vt_poll_shutdown,
    .raw_fd = NULL, /* buffered bytes would be overtaken by direct fd writes */
    .poll_raw_io = NULL,
};

int asyncio_buf_writer_init(asyncio_buf_writer *bw, asyncio_writer inner, void *buf, size_t cap)
{
    if (bw == NULL || inner.vtable == NULL || inner.vtable->poll_write == NULL ||
        inner.vtable->poll_flush == NULL || inner.vtable->poll_shutdown == NULL)
        return ASYNCIO_EINVAL;
    asyncio_buf_writer b = {.inner = inner, .cap = cap};
    int rc = buffer_init(buf, &b.cap, &b.buf, &b.owned);
    if (rc != 0)
        return rc;
    *bw = b;
    return 0;
}

int asyncio_buf_writer_free(asyncio_buf_writer *bw)
{
    if (bw == NULL)
        return 0;
    if (bw->len > bw->pos)
        return ASYNCIO_EBUSY; /* like every _free: nothing freed; flush or discard first */
    if (bw->owned)
        asyncio__free(bw->buf);
    bw->buf = NULL;
    bw->cap = bw->pos = bw->len = 0;
    bw->owned = false;
    return 0;
}

size_t asyncio_buf_writer_discard(asyncio_buf_writer *bw)
{
    size_t n = bw->len - bw->pos;
    bw->pos = bw->len = 0;
    return n;
}

asyncio_writer asyncio_buf_writer_as_writer(asyncio_buf_writer *bw)
{
    return (asyncio_writer){&buf_writer_vtable, bw};
}

asyncio_writer asyncio_buf_writer_inner(const asyncio_buf_writer *bw)
{
    return bw->inner;
}

size_t asyncio_buf_writer_buffered(const asyncio_buf_writer *bw)
{
    return bw->len - bw->pos;
}

/* Writes buf[pos, len) to the inner writer; empties the buffer when all went. */
static int write_out(asyncio_buf_writer *bw, asyncio_context *cx)
{
    while (bw->pos < bw->len) {
        size_t n = 0;
        int rc = asyncio_poll_write(bw->inner, cx, bw->buf + bw->pos, bw->len - bw->pos, &n);
        if (rc != 0)
            return rc; /* the rest stays buffered */
        if (n == 0)
            return ASYNCIO_EWRITE_ZERO; /* the inner writer takes no more */
        ASYNCIO_CHECK(n <= bw->len - bw->pos);
        bw->pos += n;
    }
    bw->pos = bw->len = 0;
    return 0;
}

int asyncio_buf_writer_poll_write(asyncio_buf_writer *bw, asyncio_context *cx, const void *buf,
                                  size_t len, size_t *n_out)
{
    if (n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len > bw->cap - bw->len) {
        int rc = write_out(bw, cx);
        if (rc != 0)
            return rc;
    }
    if (len >= bw->cap)
        return asyncio_poll_write(bw->inner, cx, buf, len, n_out); /* large write: bypass */
    if (len > 0)
        memcpy(bw->buf + bw->len, buf, len);
    bw->len += len;
    *n_out = len;
    return 0;
}

int asyncio_buf_writer_poll_write_vectored(asyncio_buf_writer *bw, asyncio_context *cx,
                                           const asyncio_iovec *iov, int iovcnt, size_t *n_out)
{
    if (n_out == NULL || iovcnt < 0 || (iov == NULL && iovcnt > 0))
        return ASYNCIO_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].len > SIZE_MAX - total)
            return ASYNCIO_EINVAL;
        total += iov[i].len;
    }
    if (total > bw->cap - bw->len) {
        int rc = write_out(bw, cx);
        if (rc != 0)
            return rc;
    }
    if (total >= bw->cap)
        return asyncio_poll_write_vectored(bw->inner, cx, iov, iovcnt, n_out);
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].len > 0)
            memcpy(bw->buf + bw->len, iov[i].base, iov[i].len);
        bw->len += iov[i].len;
    }
    *n_out = total;
    return 0;
}

int asyncio_buf_writer_poll_flush(asyncio_buf_writer *bw, asyncio_context *cx)
{
    int rc = write_out(bw, cx);
    if (rc != 0)
        return rc;
    return asyncio_poll_flush(bw->inner, cx);
}

int asyncio_buf_writer_poll_shutdown(asyncio_buf_writer *bw, asyncio_context *cx)
{
    int rc = write_out(bw, cx);
    if (rc != 0)
        return rc;
    return asyncio_poll_shutdown(bw->inner, cx);
}
