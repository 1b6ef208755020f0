/*
 * Zero-copy syscalls for asyncio_copy (src/io/copy.c): splice(2) through a
 * pipe and sendfile(2), plus the small fd helpers that path needs. The only
 * file that calls them; everything above sees negative error codes.
 *
 * Every call is non-blocking (the fds of streams are O_NONBLOCK, the internal
 * pipe too, and splice gets SPLICE_F_NONBLOCK), retries EINTR, and returns 0
 * with the count in *n_out, ASYNCIO_EAGAIN, or another negative error. On
 * systems without the calls they return ASYNCIO_ENOTSUP, so the caller falls
 * back to its buffered path.
 *
 * The process-wide counters record bytes that reached a writer through each
 * path; they are only statistics (relaxed atomics), read by tests to check
 * that the fast path was taken.
 */
#ifndef ASYNCIO_PLATFORM_ZERO_COPY_H
#define ASYNCIO_PLATFORM_ZERO_COPY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum asyncio__fd_kind {
    ASYNCIO__FD_OTHER = 0, /* character device, directory, unknown, or fstat failed */
    ASYNCIO__FD_FILE,      /* regular file */
    ASYNCIO__FD_PIPE,      /* pipe or FIFO */
    ASYNCIO__FD_SOCKET,
} asyncio__fd_kind;

/** Bytes written to a destination by splice(2) out of a copy's internal pipe. */
extern _Atomic uint64_t asyncio__zero_copy_splice_bytes;
/** Bytes written to a destination by sendfile(2). */
extern _Atomic uint64_t asyncio__zero_copy_sendfile_bytes;

/** What kind of file `fd` is (fstat). */
asyncio__fd_kind asyncio__fd_kind_of(int fd);

/** A non-blocking, close-on-exec pipe: fds[0] read end, fds[1] write end. */
int asyncio__zc_pipe_open(int fds[2]);

/** Closes both ends (ignores -1) and sets them to -1. */
void asyncio__zc_pipe_close(int fds[2]);

/** splice(2) of up to len bytes from in_fd to out_fd (one of them a pipe). 0 bytes: EOF. */
int asyncio__zc_splice(int in_fd, int out_fd, size_t len, size_t *n_out);

/** sendfile(2) of up to len bytes from in_fd's file offset to out_fd. 0 bytes: EOF. */
int asyncio__zc_sendfile(int out_fd, int in_fd, size_t len, size_t *n_out);

#endif
