/*
 * libasyncio: the byte-stream interfaces, AsyncRead and AsyncWrite.
 *
 * Every stream type (TCP stream and its halves, Unix stream, async file,
 * buffered reader / writer, user types) exposes itself as an
 * asyncio_reader and / or asyncio_writer: a vtable plus the object
 * pointer, passed by value. Helpers (read_exact, write_all, copy, ...) and
 * buffered I/O work over any of them.
 *
 * Poll functions follow the task contract (task.h): ASYNCIO_PENDING after
 * storing cx's waker, 0 on success with the byte count in *n_out, or a
 * negative error code. End of file is 0 with *n_out == 0. A poll_read or
 * poll_write with len == 0 returns 0 bytes at once.
 */
#ifndef ASYNCIO_IO_H
#define ASYNCIO_IO_H

#include <stddef.h>

#include "common.h"
#include "error.h"
#include "task.h"

/**
 * One buffer of a vectored write. Layout-compatible with POSIX struct
 * iovec (checked at build time), so it can be passed to writev(2) as is.
 */
typedef struct asyncio_iovec {
    void *base;
    size_t len;
} asyncio_iovec;

/**
 * A raw operation on a stream's fd (a splice(2), a sendfile(2)), run by a
 * stream's poll_raw_io once the fd is ready. Returns 0 with the byte count
 * in *n_out, ASYNCIO_EAGAIN when the fd was not ready after all (the stream
 * then clears its readiness and waits again), or a negative error code.
 */
typedef int (*asyncio_raw_io_fn)(void *arg, int fd, size_t *n_out);

typedef struct asyncio_reader_vtable {
    /** Reads up to len bytes into buf. Required. */
    int (*poll_read)(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n_out);
    /** The underlying fd for zero-copy paths (splice / sendfile), or -1. May be NULL. */
    int (*raw_fd)(void *self);
    /**
     * Optional (may be NULL; added for the zero-copy paths of asyncio_copy,
     * docs/io.md): waits until raw_fd is readable, then runs op(arg, fd,
     * n_out) once; when op returns ASYNCIO_EAGAIN the stream gives the
     * readiness back and waits again. Returns what op returned (0 or an
     * error), or ASYNCIO_PENDING with cx's waker stored. Streams built on an
     * asyncio_async_fd implement it with asyncio_raw_io_poll_async_fd().
     * Provide it only when raw_fd is >= 0 and no bytes are buffered in user
     * space in front of the fd.
     */
    int (*poll_raw_io)(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg,
                       size_t *n_out);
} asyncio_reader_vtable;

typedef struct asyncio_writer_vtable {
    /** Writes up to len bytes from buf. Required. */
    int (*poll_write)(void *self, asyncio_context *cx, const void *buf, size_t len,
                      size_t *n_out);
    /**
     * Writes from several buffers at once (writev). May be NULL: callers
     * then write the first non-empty buffer with poll_write.
     */
    int (*poll_write_vectored)(void *self, asyncio_context *cx, const asyncio_iovec *iov,
                               int iovcnt, size_t *n_out);
    /** Pushes buffered bytes to the OS (0 at once for unbuffered types). Required. */
    int (*poll_flush)(void *self, asyncio_context *cx);
    /** Flushes, then shuts down the write side (TCP: FIN). Required. */
    int (*poll_shutdown)(void *self, asyncio_context *cx);
    /** The underlying fd for zero-copy paths, or -1. May be NULL. */
    int (*raw_fd)(void *self);
    /**
     * Optional (may be NULL): as the reader's poll_raw_io, waiting until
     * raw_fd is writable. Provide it only when nothing the stream buffers
     * in user space would be overtaken by bytes written to the fd directly.
     */
    int (*poll_raw_io)(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg,
                       size_t *n_out);
} asyncio_writer_vtable;

/** AsyncRead: a vtable and the object it reads from. A small value; the object is borrowed. */
typedef struct asyncio_reader {
    const asyncio_reader_vtable *vtable;
    void *self;
} asyncio_reader;

/** AsyncWrite: a vtable and the object it writes to. A small value; the object is borrowed. */
typedef struct asyncio_writer {
    const asyncio_writer_vtable *vtable;
    void *self;
} asyncio_writer;

/*
 * Direct calls through the interfaces. A zero-initialised reader or writer
 * (vtable == NULL) gets ASYNCIO_EINVAL instead of a crash (docs/errors.md);
 * the check is one well-predicted branch per call.
 */

/** Polls r's poll_read. Errors: ASYNCIO_EINVAL if r has no vtable, else as the stream's. */
static inline int asyncio_poll_read(asyncio_reader r, asyncio_context *cx, void *buf, size_t len,
                                    size_t *n_out)
{
    if (r.vtable == NULL)
        return ASYNCIO_EINVAL;
    return r.vtable->poll_read(r.self, cx, buf, len, n_out);
}

/** Polls w's poll_write. Errors: ASYNCIO_EINVAL if w has no vtable, else as the stream's. */
static inline int asyncio_poll_write(asyncio_writer w, asyncio_context *cx, const void *buf,
                                     size_t len, size_t *n_out)
{
    if (w.vtable == NULL)
        return ASYNCIO_EINVAL;
    return w.vtable->poll_write(w.self, cx, buf, len, n_out);
}

/** Polls w's poll_flush. Errors: ASYNCIO_EINVAL if w has no vtable, else as the stream's. */
static inline int asyncio_poll_flush(asyncio_writer w, asyncio_context *cx)
{
    if (w.vtable == NULL)
        return ASYNCIO_EINVAL;
    return w.vtable->poll_flush(w.self, cx);
}

/** Polls w's poll_shutdown. Errors: ASYNCIO_EINVAL if w has no vtable, else as the stream's. */
static inline int asyncio_poll_shutdown(asyncio_writer w, asyncio_context *cx)
{
    if (w.vtable == NULL)
        return ASYNCIO_EINVAL;
    return w.vtable->poll_shutdown(w.self, cx);
}

#endif
