/*
 * libasyncio: buffered I/O over AsyncRead / AsyncWrite (io.h).
 *
 * asyncio_buf_reader  fill_buf / consume, read_until(delim, max),
 *                     read_line(max), a lines iterator; is itself an
 *                     asyncio_reader, so it can be stacked.
 * asyncio_buf_writer  collects small writes; writes at least as large as
 *                     the capacity bypass the buffer; poll_flush;
 *                     poll_shutdown flushes first; is itself an
 *                     asyncio_writer.
 *
 * Memory: the buffer is the caller's (any storage that outlives the object)
 * or allocated once by _init through the library's allocator and freed by
 * _free. No operation allocates.
 *
 * Lines are returned as views into the reader's buffer (no copy): a view
 * stays valid until the next call on the same reader. A line must fit in
 * the buffer, so `max` is at most the capacity; a longer line is reported
 * with ASYNCIO_EMSGSIZE and nothing is consumed, so no byte is lost (read
 * it with fill_buf / consume or asyncio_poll_read instead).
 *
 * Cooperative budget: operations served from the buffer do not use budget;
 * refilling it calls the inner reader, whose leaf operations do.
 *
 * Thread-safety: one task at a time per object. Every function may be
 * called from inside a task; the _poll functions only from a task poll or
 * with a hand-made context.
 */
#ifndef ASYNCIO_BUFIO_H
#define ASYNCIO_BUFIO_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "error.h"
#include "io.h"
#include "task.h"

/** Capacity used when _init is given 0. */
#define ASYNCIO_BUF_DEFAULT_CAPACITY 8192

/**
 * A buffered reader. Embeddable; release with asyncio_buf_reader_free().
 * Movable at any time (no pointer into itself).
 */
typedef struct asyncio_buf_reader {
    /* private */
    asyncio_reader inner;
    unsigned char *buf;
    size_t cap;
    size_t pos;    /* first unconsumed byte */
    size_t filled; /* end of the valid bytes: buf[pos, filled) is buffered */
    size_t scan;   /* buf[pos, scan) is known to hold no `scan_delim` */
    int scan_delim;
    bool owned; /* buf was allocated by _init */
} asyncio_buf_reader;

/**
 * Iterates over lines ("\n" or "\r\n" stripped). Embeddable; no drop needed.
 * Movable at any time; `reader` is the pointer given to asyncio_lines_init
 * and does not follow a move.
 */
typedef struct asyncio_lines {
    /* private */
    asyncio_buf_reader *reader;
    size_t max;
} asyncio_lines;

/**
 * A buffered writer. Embeddable; release with asyncio_buf_writer_free().
 * Movable at any time (no pointer into itself).
 */
typedef struct asyncio_buf_writer {
    /* private */
    asyncio_writer inner;
    unsigned char *buf;
    size_t cap;
    size_t pos; /* buf[0, pos) already went to the inner writer (flush in progress) */
    size_t len; /* buf[0, len) is buffered */
    bool owned; /* buf was allocated by _init */
} asyncio_buf_writer;

ASYNCIO_BEGIN_DECLS

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

/**
 * Wraps `inner` (borrowed: it must outlive the buffered reader). `buf`
 * NULL allocates `cap` bytes (ASYNCIO_BUF_DEFAULT_CAPACITY if 0) once;
 * otherwise buf (cap bytes, cap > 0) is used and stays the caller's.
 * Errors: ASYNCIO_EINVAL (br NULL, inner without poll_read, buf with cap
 * 0), ASYNCIO_ENOMEM. On error nothing needs freeing.
 */
ASYNCIO_EXTERN int asyncio_buf_reader_init(asyncio_buf_reader *br, asyncio_reader inner, void *buf,
                                           size_t cap);

/** Releases the buffer if _init allocated it. Buffered bytes are discarded. NULL is a no-op. */
ASYNCIO_EXTERN void asyncio_buf_reader_free(asyncio_buf_reader *br);

/** This reader as an asyncio_reader (for helpers, copy, another buffered reader). */
ASYNCIO_EXTERN asyncio_reader asyncio_buf_reader_as_reader(asyncio_buf_reader *br);

/** The inner reader. */
ASYNCIO_EXTERN asyncio_reader asyncio_buf_reader_inner(const asyncio_buf_reader *br);

/** Bytes buffered and not yet consumed; the view is valid until the next call. */
ASYNCIO_EXTERN const void *asyncio_buf_reader_buffer(const asyncio_buf_reader *br, size_t *len);

/**
 * Returns the buffered bytes, reading from the inner reader first if the
 * buffer is empty: 0 with *data / *len (*len == 0 means EOF),
 * ASYNCIO_PENDING or the inner reader's error. Consumes nothing.
 */
ASYNCIO_EXTERN int asyncio_buf_reader_poll_fill_buf(asyncio_buf_reader *br, asyncio_context *cx,
                                                    const void **data, size_t *len);

/** Marks n buffered bytes as read (clamped to what is buffered). */
ASYNCIO_EXTERN void asyncio_buf_reader_consume(asyncio_buf_reader *br, size_t n);

/**
 * Reads one record ending with `delim` (a byte value 0..255), at most
 * `max` bytes including the delimiter (0 means the capacity). Returns 0
 * with *data / *len viewing the record, delimiter included, consumed; at
 * EOF the last record may lack the delimiter, and *len == 0 means EOF.
 * ASYNCIO_EMSGSIZE: `max` bytes arrived without the delimiter, and nothing
 * was consumed. Also ASYNCIO_PENDING, ASYNCIO_EINVAL (max > capacity, bad
 * delim, NULL out-parameter) and the inner reader's errors. Bytes read
 * before a pending poll stay buffered, so polling again resumes.
 */
ASYNCIO_EXTERN int asyncio_buf_reader_poll_read_until(asyncio_buf_reader *br, asyncio_context *cx,
                                                      int delim, size_t max, const char **data,
                                                      size_t *len);

/** asyncio_buf_reader_poll_read_until with '\n': the line keeps its "\n" (or "\r\n"). */
ASYNCIO_EXTERN int asyncio_buf_reader_poll_read_line(asyncio_buf_reader *br, asyncio_context *cx,
                                                     size_t max, const char **line, size_t *len);

/**
 * Reads into buf as an asyncio_reader: buffered bytes first; with an empty
 * buffer and len >= capacity, reads straight into buf (no double copy).
 */
ASYNCIO_EXTERN int asyncio_buf_reader_poll_read(asyncio_buf_reader *br, asyncio_context *cx,
                                                void *buf, size_t len, size_t *n_out);

/** A lines iterator over `br` (borrowed), each line at most `max` bytes (0: capacity). */
ASYNCIO_EXTERN void asyncio_lines_init(asyncio_lines *it, asyncio_buf_reader *br, size_t max);

/**
 * The next line, without its "\n" / "\r\n": 0 with *line / *len (a view
 * valid until the next call on the reader), or 0 with *line == NULL at the
 * end of the stream. A last line without "\n" is returned as a line. Also
 * ASYNCIO_PENDING, ASYNCIO_EMSGSIZE (nothing consumed: the iterator can be
 * resumed only after the caller consumed the long line some other way) and
 * the reader's errors.
 */
ASYNCIO_EXTERN int asyncio_lines_poll_next(asyncio_lines *it, asyncio_context *cx,
                                           const char **line, size_t *len);

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

/**
 * Wraps `inner` (borrowed). Buffer as for the reader. Errors: ASYNCIO_EINVAL
 * (bw NULL, inner without poll_write / poll_flush / poll_shutdown, buf with
 * cap 0), ASYNCIO_ENOMEM. On error nothing needs freeing.
 */
ASYNCIO_EXTERN int asyncio_buf_writer_init(asyncio_buf_writer *bw, asyncio_writer inner, void *buf,
                                           size_t cap);

/**
 * Releases the buffer if _init allocated it. Errors: ASYNCIO_EBUSY while
 * bytes are buffered that were never written out: as for every _free
 * (docs/errors.md), nothing is freed and the writer stays usable, so
 * flush and call again, or drop the bytes with asyncio_buf_writer_discard()
 * first (after the inner writer failed, say). NULL is a no-op returning 0.
 */
ASYNCIO_EXTERN int asyncio_buf_writer_free(asyncio_buf_writer *bw);

/**
 * Drops the bytes buffered and not yet written out, and returns how many
 * there were. The writer stays usable. For error paths, where the inner
 * writer cannot take them any more, before asyncio_buf_writer_free().
 */
ASYNCIO_EXTERN size_t asyncio_buf_writer_discard(asyncio_buf_writer *bw);

/** This writer as an asyncio_writer. */
ASYNCIO_EXTERN asyncio_writer asyncio_buf_writer_as_writer(asyncio_buf_writer *bw);

/** The inner writer. */
ASYNCIO_EXTERN asyncio_writer asyncio_buf_writer_inner(const asyncio_buf_writer *bw);

/** Bytes buffered and not yet handed to the inner writer. */
ASYNCIO_EXTERN size_t asyncio_buf_writer_buffered(const asyncio_buf_writer *bw);

/**
 * Buffers what fits and reports it in *n_out. If the bytes do not fit, the
 * buffer is written out first; then a write of at least the capacity goes
 * straight to the inner writer (one poll_write) and a smaller one is
 * buffered. ASYNCIO_PENDING only while the buffer is being written out.
 */
ASYNCIO_EXTERN int asyncio_buf_writer_poll_write(asyncio_buf_writer *bw, asyncio_context *cx,
                                                 const void *buf, size_t len, size_t *n_out);

/** As poll_write for several buffers (a large total goes to the inner writer vectored). */
ASYNCIO_EXTERN int asyncio_buf_writer_poll_write_vectored(asyncio_buf_writer *bw,
                                                          asyncio_context *cx,
                                                          const asyncio_iovec *iov, int iovcnt,
                                                          size_t *n_out);

/**
 * Writes the whole buffer to the inner writer, then flushes the inner
 * writer. 0, ASYNCIO_PENDING, or the inner writer's error (ASYNCIO_EWRITE_ZERO if
 * it accepted 0 bytes); on error the unwritten bytes stay buffered.
 */
ASYNCIO_EXTERN int asyncio_buf_writer_poll_flush(asyncio_buf_writer *bw, asyncio_context *cx);

/** Flushes (as poll_flush), then shuts the inner writer down. */
ASYNCIO_EXTERN int asyncio_buf_writer_poll_shutdown(asyncio_buf_writer *bw, asyncio_context *cx);

ASYNCIO_END_DECLS

#endif
