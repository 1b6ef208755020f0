/*
 * libasyncio: helpers over AsyncRead / AsyncWrite (io.h).
 *
 * Each helper is an embeddable future: a struct the caller owns (in a task's
 * state, typically), an _init that cannot fail, and a _poll that follows the
 * task contract (ASYNCIO_PENDING with cx's waker stored, 0 when done, or a
 * negative error code). None of them allocates. Structs hold no pointers
 * into themselves, so a freshly initialised one may be copied (asyncio_spawn
 * copies a task's initial state).
 *
 *   asyncio_read_exact          fill a buffer; early EOF is ASYNCIO_EUNEXPECTED_EOF
 *   asyncio_read_to_end         read until EOF into a caller buffer (the size limit)
 *   asyncio_write_all           write a whole buffer, across partial writes
 *                               (asyncio_poll_write_all: the same with the
 *                               progress in a size_t the caller keeps)
 *   asyncio_write_vectored_all  write a whole iovec array, across partial writes
 *   asyncio_copy                reader -> writer until EOF (splice / sendfile when possible)
 *   asyncio_copy_bidirectional  two copies, half-close propagated (proxies)
 *
 * Progress is kept in read-only fields when an operation fails, so no byte
 * is lost: after an error, `done` (or the copy counters) says how far it got.
 *
 * Thread-safety: a future is polled by one task at a time. Everything here
 * may be called from inside a task; the _poll functions only from a task
 * poll or with a hand-made context. docs/io.md has examples.
 */
#ifndef ASYNCIO_IO_UTIL_H
#define ASYNCIO_IO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_fd.h"
#include "common.h"
#include "error.h"
#include "io.h"
#include "task.h"

/** Buffers of one vectored write passed down at once (the rest go in later calls). */
#define ASYNCIO_IOV_BATCH 64

/** Size of the buffer embedded in asyncio_copy (the fallback path). */
#define ASYNCIO_COPY_BUF_SIZE 8192

ASYNCIO_BEGIN_DECLS

/* ------------------------------------------------------------------------ */
/* One-shot calls and stream-author helpers                                  */

/**
 * One vectored write: w's poll_write_vectored, or, when the vtable has none,
 * poll_write of the first non-empty buffer. iovcnt == 0 or all-empty
 * buffers return 0 bytes at once. Errors: ASYNCIO_EINVAL (w has no vtable,
 * iov NULL with iovcnt > 0, iovcnt < 0, n_out NULL), and the writer's.
 */
ASYNCIO_EXTERN int asyncio_poll_write_vectored(asyncio_writer w, asyncio_context *cx,
                                               const asyncio_iovec *iov, int iovcnt, size_t *n_out);

/** r's raw fd, or -1 when it has none (member NULL or it returned -1). */
ASYNCIO_EXTERN int asyncio_reader_raw_fd(asyncio_reader r);

/** w's raw fd, or -1 when it has none. */
ASYNCIO_EXTERN int asyncio_writer_raw_fd(asyncio_writer w);

/**
 * The poll_raw_io of a stream built on an async fd, in one call: waits for
 * `direction` (ASYNCIO_READABLE or ASYNCIO_WRITABLE) with
 * asyncio_async_fd_poll_ready(), runs op(arg, fd, n_out), and on
 * ASYNCIO_EAGAIN clears the readiness and waits again. Returns op's result,
 * ASYNCIO_PENDING, or ASYNCIO_EINVAL (NULL argument, async fd without an fd).
 */
ASYNCIO_EXTERN int asyncio_raw_io_poll_async_fd(asyncio_async_fd *a, asyncio_context *cx,
                                                uint32_t direction, asyncio_raw_io_fn op, void *arg,
                                                size_t *n_out);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* read_exact                                                                */

/** Reads exactly len bytes. Embeddable; no drop needed. */
typedef struct asyncio_read_exact {
    /* read-only */
    size_t done; /* bytes read so far (all of them stay in buf, even on error) */
    /* private */
    asyncio_reader reader;
    unsigned char *buf;
    size_t len;
} asyncio_read_exact;

/* ------------------------------------------------------------------------ */
/* read_to_end                                                               */

/**
 * Reads until EOF into a caller buffer whose size is the limit. Embeddable;
 * no drop needed.
 */
typedef struct asyncio_read_to_end {
    /* read-only */
    size_t done;    /* bytes stored in buf so far */
    bool has_extra; /* ASYNCIO_EMSGSIZE: one more byte was read, into `extra` */
    unsigned char extra;
    /* private */
    asyncio_reader reader;
    unsigned char *buf;
    size_t cap;
} asyncio_read_to_end;

/* ------------------------------------------------------------------------ */
/* write_all / write_vectored_all                                            */

/** Writes all len bytes. Embeddable; no drop needed. */
typedef struct asyncio_write_all {
    /* read-only */
    size_t done; /* bytes written so far */
    /* private */
    asyncio_writer writer;
    const unsigned char *buf;
    size_t len;
} asyncio_write_all;

/**
 * Writes every byte of an iovec array, advancing across partial writes
 * (the caller's array is never modified). Embeddable; no drop needed.
 */
typedef struct asyncio_write_vectored_all {
    /* read-only */
    size_t done; /* bytes written so far, over all buffers */
    /* private */
    asyncio_writer writer;
    const asyncio_iovec *iov;
    int iovcnt;
    int index;     /* first buffer not fully written */
    size_t offset; /* bytes of iov[index] already written */
} asyncio_write_vectored_all;

/* ------------------------------------------------------------------------ */
/* copy                                                                      */

/** Which path an asyncio_copy is on (read-only field `path`). */
typedef enum asyncio_copy_path {
    ASYNCIO_COPY_PATH_UNDECIDED = 0, /* not polled yet */
    ASYNCIO_COPY_PATH_BUFFER,        /* read into the embedded buffer, write from it */
    ASYNCIO_COPY_PATH_SPLICE,        /* splice(2) in and out of an internal pipe */
    ASYNCIO_COPY_PATH_SENDFILE,      /* sendfile(2) from a regular file */
} asyncio_copy_path;

/**
 * Copies everything from a reader to a writer until EOF, then flushes the
 * writer (it does not shut it down). Embeddable; release with
 * asyncio_copy_drop() (it may hold an internal pipe).
 */
typedef struct asyncio_copy {
    /* read-only */
    uint64_t read;      /* bytes taken from the reader */
    uint64_t written;   /* bytes accepted by the writer */
    uint64_t zero_copy; /* of `written`, bytes moved by splice / sendfile */
    asyncio_copy_path path;
    /* private */
    asyncio_reader reader;
    asyncio_writer writer;
    int step;
    bool need_flush; /* bytes were written since the writer was last flushed */
    int src_fd;      /* the reader's raw fd on the sendfile path */
    int pipe_fds[2]; /* the splice path's internal pipe while it holds bytes, or -1 */
    size_t in_pipe;  /* bytes waiting in the internal pipe */
    size_t pos, len; /* bytes of buf not yet written: buf[pos, len) */
    unsigned char buf[ASYNCIO_COPY_BUF_SIZE];
} asyncio_copy;

/**
 * Copies in both directions between stream A and stream B (a proxy). When
 * one side reaches EOF the other side's writer is shut down (half-close
 * propagated), and the other direction carries on. Finishes when both
 * directions reached EOF and both shutdowns completed. Embeddable;
 * release with asyncio_copy_bidirectional_drop().
 */
typedef struct asyncio_copy_bidirectional {
    /* read-only */
    asyncio_copy a_to_b;
    asyncio_copy b_to_a;
    /* private */
    int a_state, b_state; /* per direction: copying, shutting down, done */
} asyncio_copy_bidirectional;

ASYNCIO_BEGIN_DECLS

/**
 * Prepares to read exactly len bytes into buf (both borrowed until done).
 * asyncio_read_exact_poll returns 0 once all len bytes arrived,
 * ASYNCIO_EUNEXPECTED_EOF if the stream ended first (`done` bytes are in
 * buf), ASYNCIO_PENDING, or the reader's error.
 */
ASYNCIO_EXTERN void asyncio_read_exact_init(asyncio_read_exact *f, asyncio_reader r, void *buf,
                                            size_t len);
ASYNCIO_EXTERN int asyncio_read_exact_poll(asyncio_read_exact *f, asyncio_context *cx);

/**
 * Prepares to read until EOF into buf; cap is the size limit. The poll
 * returns 0 at EOF (`done` bytes in buf), ASYNCIO_PENDING, the reader's
 * error, or ASYNCIO_EMSGSIZE when the stream holds more than cap bytes:
 * buf is full and the one byte read to find that out is kept in `extra`
 * (has_extra), so nothing is lost; the rest stays in the stream.
 */
ASYNCIO_EXTERN void asyncio_read_to_end_init(asyncio_read_to_end *f, asyncio_reader r, void *buf,
                                             size_t cap);
ASYNCIO_EXTERN int asyncio_read_to_end_poll(asyncio_read_to_end *f, asyncio_context *cx);

/**
 * Prepares to write all len bytes of buf (borrowed until done). The poll
 * returns 0 when every byte was accepted, ASYNCIO_PENDING, the writer's
 * error, or ASYNCIO_EWRITE_ZERO if the writer accepted 0 bytes of a non-empty
 * buffer (it can take no more). It does not flush.
 */
ASYNCIO_EXTERN void asyncio_write_all_init(asyncio_write_all *f, asyncio_writer w, const void *buf,
                                           size_t len);
ASYNCIO_EXTERN int asyncio_write_all_poll(asyncio_write_all *f, asyncio_context *cx);

/**
 * Writes buf[*done, len) to w, advancing *done across partial writes: the
 * write_all loop for a task that keeps its own progress counter (set it to
 * 0 before the first poll; an echo or a protocol writer needs no other
 * state). Returns 0 once *done == len, ASYNCIO_PENDING (cx's waker stored
 * by the writer), the writer's error, or ASYNCIO_EWRITE_ZERO if the writer
 * accepted 0 bytes of a non-empty rest. ASYNCIO_EINVAL: done NULL,
 * *done > len, or buf NULL with len > 0. *done is exact after any result,
 * so no byte is lost or written twice. asyncio_write_all_poll is this over
 * its own fields. Nothing is consumed before a write completes: dropping
 * the task between polls loses nothing but the rest of the buffer.
 */
ASYNCIO_EXTERN int asyncio_poll_write_all(asyncio_writer w, asyncio_context *cx, const void *buf,
                                          size_t len, size_t *done);

/**
 * Prepares to write every buffer of iov[0..iovcnt) in order (the array and
 * the buffers are borrowed until done, never modified). The poll is as
 * asyncio_write_all_poll, plus ASYNCIO_EINVAL for iov NULL with iovcnt > 0
 * or iovcnt < 0.
 */
ASYNCIO_EXTERN void asyncio_write_vectored_all_init(asyncio_write_vectored_all *f, asyncio_writer w,
                                                    const asyncio_iovec *iov, int iovcnt);
ASYNCIO_EXTERN int asyncio_write_vectored_all_poll(asyncio_write_vectored_all *f,
                                                   asyncio_context *cx);

/**
 * Prepares a copy from r to w (both borrowed until the copy is dropped).
 * Never fails; the path is chosen at the first poll (docs/io.md):
 * sendfile when r's raw fd is a regular file and w has a raw fd and
 * poll_raw_io; splice through an internal pipe (two fds, held only while
 * bytes are in it: borrowed per fill from the runtime's one spare or made
 * then, given back once empty) when r's raw fd is a socket or a pipe and
 * both have raw fds and
 * poll_raw_io; the embedded buffer otherwise, and whenever the kernel
 * refuses the fast path (EINVAL, ENOSYS, EMFILE for the pipe...).
 */
ASYNCIO_EXTERN void asyncio_copy_init(asyncio_copy *c, asyncio_reader r, asyncio_writer w);

/**
 * Polls the copy. Returns 0 once the reader reached EOF, every byte was
 * written and the writer was flushed (`written` holds the total),
 * ASYNCIO_PENDING, or the first error of the reader or writer (ASYNCIO_EWRITE_ZERO
 * if the writer accepted 0 bytes). While the reader is pending, bytes
 * written since the last flush are flushed, so buffered writers do not
 * hold data back. Uses one unit of cooperative budget per chunk moved.
 */
ASYNCIO_EXTERN int asyncio_copy_poll(asyncio_copy *c, asyncio_context *cx);

/** Releases the copy's internal pipe, if any. Idempotent; NULL is a no-op. */
ASYNCIO_EXTERN void asyncio_copy_drop(asyncio_copy *c);

/**
 * Prepares a bidirectional copy between stream A (a_r, a_w) and stream B
 * (b_r, b_w): A's reads go to B's writer and B's reads to A's writer.
 * The two directions use different readiness directions of each fd, so
 * they may share one task.
 */
ASYNCIO_EXTERN void asyncio_copy_bidirectional_init(asyncio_copy_bidirectional *c,
                                                    asyncio_reader a_r, asyncio_writer a_w,
                                                    asyncio_reader b_r, asyncio_writer b_w);

/**
 * Returns 0 once both directions finished (bytes each way in
 * a_to_b.written and b_to_a.written), ASYNCIO_PENDING, or the first error
 * of either direction (the other direction is then left where it was).
 */
ASYNCIO_EXTERN int asyncio_copy_bidirectional_poll(asyncio_copy_bidirectional *c,
                                                   asyncio_context *cx);

/** Releases both directions' internal pipes. Idempotent; NULL is a no-op. */
ASYNCIO_EXTERN void asyncio_copy_bidirectional_drop(asyncio_copy_bidirectional *c);

ASYNCIO_END_DECLS

#endif
