/*
 * Plain fd operations for the portable core: what kind of fd it is, and
 * read / write that retry EINTR, report negative error codes and can never
 * raise SIGPIPE. The async fd (src/reactor/io.c) and the zero-copy calls
 * (zero_copy.c) use them, so the core includes no OS header.
 *
 * Thread-safety: every function may be called from any thread; the SIGPIPE
 * guard changes only the calling thread's signal mask, and only for the
 * duration of one call.
 */
#ifndef ASYNCIO_PLATFORM_FD_IO_H
#define ASYNCIO_PLATFORM_FD_IO_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Probes fd: *is_socket (writes may use send(MSG_NOSIGNAL)) and *is_stream
 * (a stream socket or a pipe: a short transfer means the kernel buffer was
 * drained or filled). 0, or ASYNCIO_EBADF if fd is not an open fd.
 */
int asyncio__fd_probe(int fd, bool *is_socket, bool *is_stream);

/*
 * read(2), EINTR retried. 0 with the count in *n_out (0 bytes: EOF),
 * ASYNCIO_EAGAIN when a non-blocking fd has nothing, or another negative
 * errno-style code.
 */
int asyncio__fd_read(int fd, void *buf, size_t len, size_t *n_out);

/*
 * write(2) / send(MSG_NOSIGNAL) for sockets, EINTR retried, never raising
 * SIGPIPE: a closed reader gives ASYNCIO_EPIPE. Results as asyncio__fd_read.
 */
int asyncio__fd_write(int fd, bool is_socket, const void *buf, size_t len, size_t *n_out);

/*
 * The SIGPIPE guard for syscalls that have no MSG_NOSIGNAL (write to a pipe,
 * splice, sendfile): begin blocks SIGPIPE for the calling thread and notes
 * whether one was already pending; end(failed_with_epipe) eats the SIGPIPE
 * this call raised (never one that was pending before), restores the mask
 * and keeps errno. The state is opaque storage for the two calls.
 */
typedef struct asyncio__sigpipe_guard {
    unsigned char opaque[2 * 128 + 8];
} asyncio__sigpipe_guard;

void asyncio__sigpipe_begin(asyncio__sigpipe_guard *g);
void asyncio__sigpipe_end(asyncio__sigpipe_guard *g, bool failed_with_epipe);

#endif
