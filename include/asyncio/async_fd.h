/*
 * libasyncio: AsyncFd — readiness of a file descriptor (or of any event
 * source) delivered to tasks.
 *
 * An asyncio_async_fd registers a source ONCE with the current runtime's
 * I/O driver, edge-triggered, for reading and writing (and priority data
 * when asked). A task then waits for a direction with
 * asyncio_async_fd_poll_ready(), performs its own non-blocking operation,
 * and, when that operation reports EAGAIN, gives the readiness back with
 * asyncio_async_fd_clear_ready(). The pattern, inside a task's poll
 * function:
 *
 *     for (;;) {
 *         asyncio_ready_guard g;
 *         int rc = asyncio_async_fd_poll_ready(a, cx, ASYNCIO_READABLE, &g);
 *         if (rc != 0)
 *             return rc;                       // ASYNCIO_PENDING or an error
 *         ssize_t n = recv(fd, buf, len, 0);
 *         if (n >= 0)
 *             return done(n);
 *         if (errno == EAGAIN || errno == EWOULDBLOCK)
 *             asyncio_async_fd_clear_ready(a, &g);  // and loop: pending next time
 *         else if (errno != EINTR)
 *             return -errno;
 *     }
 *
 * asyncio_async_fd_poll_read() / _poll_write() are exactly that loop around
 * read(2) / write(2).
 *
 * Clearing is race-free: clear_ready() only clears if no readiness event
 * for that direction arrived since the poll_ready() that filled the guard,
 * so an event that lands between the EAGAIN and the clear is never lost
 * (docs/io-driver.md explains the tick protocol).
 *
 * One waiter per direction: each direction (READABLE, WRITABLE, PRIORITY)
 * keeps ONE waker, the last one stored. Two tasks may wait at the same time
 * if they wait for different directions (a reader and a writer); two tasks
 * waiting for the same direction would only wake the last one — give each
 * direction a single owner.
 *
 * Thread-safety: every function may be called from any thread of the
 * runtime that created the async fd; functions that take a context may be
 * called only from inside a task poll (or with a hand-made context).
 * asyncio_async_fd_free() must not race with other calls on the same async fd.
 */
#ifndef ASYNCIO_ASYNC_FD_H
#define ASYNCIO_ASYNC_FD_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "error.h"
#include "poll.h"
#include "task.h"

/** Opaque. Created by asyncio_async_fd_new*(), freed by asyncio_async_fd_free(). */
typedef struct asyncio_async_fd asyncio_async_fd;

/**
 * What asyncio_async_fd_poll_ready() saw: pass it back to
 * asyncio_async_fd_clear_ready() after an EAGAIN. A plain value; copying or
 * discarding it is fine.
 */
typedef struct asyncio_ready_guard {
    uint32_t readiness; /* read-only: asyncio_ready bits seen for the direction (never 0) */
    uint32_t direction; /* read-only: the direction polled (READABLE, WRITABLE or PRIORITY) */
    uint32_t tick;      /* private: the direction's readiness tick when it was seen */
} asyncio_ready_guard;

ASYNCIO_BEGIN_DECLS

/**
 * Registers `fd` with the I/O driver of the runtime running on this thread,
 * edge-triggered, for READABLE | WRITABLE, plus PRIORITY if `interest` has
 * it. `interest` (a non-empty subset of ASYNCIO_INTEREST_MASK) says which
 * directions may be polled: READABLE and WRITABLE always can; PRIORITY only
 * if asked for here.
 *
 * Ownership: on success *out owns the registration (free it with
 * asyncio_async_fd_free()). The fd stays the caller's: it must be
 * non-blocking, stay open while the async fd lives, and be closed only
 * after asyncio_async_fd_free() (closing it first lets a new fd reuse the
 * number while it is still registered).
 *
 * Errors: ASYNCIO_EINVAL (out NULL, bad interest, or no runtime is running
 * on this thread), ASYNCIO_ENOMEM, and the errors of
 * asyncio_poller_register_fd() (ASYNCIO_EBADF, ASYNCIO_EEXIST when the fd is
 * already registered, ASYNCIO_EPERM for regular files under epoll...). On
 * error *out is untouched and nothing needs freeing.
 *
 * Thread-safety: any runtime thread; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_async_fd_new(asyncio_async_fd **out, int fd, uint32_t interest);

/**
 * As asyncio_async_fd_new() for any event source: `src` is registered with
 * the runtime's poller through its vtable (register_source on creation,
 * rearm_source after each clear, deregister_source on free). This is the
 * public path for custom event sources (a struct embedding asyncio_source
 * that wraps an eventfd, a timerfd, a device...).
 *
 * Ownership: `src` stays the caller's and must stay valid until
 * asyncio_async_fd_free() returns. asyncio_async_fd_fd() returns -1 for it,
 * and poll_read / poll_write do not apply to it (ASYNCIO_EINVAL).
 *
 * Errors: ASYNCIO_EINVAL (out or src NULL, bad interest, no runtime on this
 * thread), ASYNCIO_ENOMEM, or what register_source returned. On error
 * nothing needs freeing.
 *
 * Thread-safety: any runtime thread; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_async_fd_new_source(asyncio_async_fd **out, asyncio_source *src,
                                               uint32_t interest);

/**
 * Polls readiness in one `direction` (ASYNCIO_READABLE, ASYNCIO_WRITABLE or,
 * if registered with it, ASYNCIO_PRIORITY). Returns 0 with *guard filled
 * when the direction is ready (READABLE also counts as ready on
 * READ_CLOSED and ERROR, WRITABLE on WRITE_CLOSED and ERROR, PRIORITY on
 * READ_CLOSED and ERROR), else stores a clone of cx's waker in the
 * direction's slot (replacing the previous one) and returns
 * ASYNCIO_PENDING: the waker is woken once when readiness arrives.
 * Also returns ASYNCIO_PENDING when the task has used up its cooperative
 * budget (it is then rescheduled right away).
 *
 * Errors: ASYNCIO_EINVAL (NULL argument, bad direction). A waker is never
 * stored when an error is returned.
 *
 * Thread-safety: any runtime thread, concurrently with the driver and with
 * polls of the other directions; from inside a task (or with a hand-made
 * context). Never allocates.
 */
ASYNCIO_EXTERN int asyncio_async_fd_poll_ready(asyncio_async_fd *a, asyncio_context *cx,
                                               uint32_t direction, asyncio_ready_guard *guard);

/**
 * The operation the caller performed after `guard` was filled hit EAGAIN:
 * clears the direction's readiness (except READ_CLOSED / WRITE_CLOSED,
 * which are final) unless an event for that direction arrived since —
 * then the readiness stays and the next poll_ready() returns at once.
 * Always re-arms the source's edge with the poller (needed by the poll(2)
 * backend; free on epoll). Use the guard of the latest poll_ready() of that
 * direction; call it only after a real EAGAIN, not after a success.
 *
 * NULL arguments are ignored. Thread-safety: any runtime thread; never
 * allocates; never wakes anything.
 */
ASYNCIO_EXTERN void asyncio_async_fd_clear_ready(asyncio_async_fd *a,
                                                 const asyncio_ready_guard *guard);

/**
 * Reads up to `len` bytes into `buf` once the fd is readable: loops on
 * poll_ready(READABLE) + read(2), retrying EINTR and clearing readiness on
 * EAGAIN. Returns 0 with the byte count in *n_out (0 bytes means EOF, or
 * len == 0), ASYNCIO_PENDING (cx's waker stored), or a negative errno-style
 * error from read(2) (e.g. ASYNCIO_ECONNRESET).
 *
 * Errors: also ASYNCIO_EINVAL (NULL argument, buf NULL with len > 0, async
 * fd made from a source). Thread-safety: as poll_ready.
 */
ASYNCIO_EXTERN int asyncio_async_fd_poll_read(asyncio_async_fd *a, asyncio_context *cx, void *buf,
                                              size_t len, size_t *n_out);

/**
 * Writes up to `len` bytes from `buf` once the fd is writable, as
 * poll_read: returns 0 with the count written in *n_out (a short write is
 * success), ASYNCIO_PENDING or a negative error. Sockets are written with
 * send(MSG_NOSIGNAL) and other fds (pipes) with write(2) while SIGPIPE is
 * blocked for the calling thread, so a closed peer gives ASYNCIO_EPIPE and
 * never a SIGPIPE, whatever the process's signal disposition.
 *
 * Errors: also ASYNCIO_EINVAL (as poll_read). Thread-safety: as poll_ready.
 */
ASYNCIO_EXTERN int asyncio_async_fd_poll_write(asyncio_async_fd *a, asyncio_context *cx,
                                               const void *buf, size_t len, size_t *n_out);

/** The fd given to asyncio_async_fd_new(), or -1 (source-based, or NULL). Thread-safe. */
ASYNCIO_EXTERN int asyncio_async_fd_fd(const asyncio_async_fd *a);

/**
 * Deregisters the fd or source from the poller, drops every stored waker
 * and frees the async fd. Nothing is woken by the registration after this
 * returns (a wake the driver thread already started may still finish: it
 * holds its own waker reference). The registration's slot is recycled at
 * the driver's next safe point, so a late event never reaches a new
 * registration. The fd (or source) is the caller's again: close it now.
 *
 * Returns 0; NULL is a no-op. A deregistration error from the poller (the
 * fd was closed too early) is returned, but the async fd is freed anyway.
 *
 * Thread-safety: any runtime thread, but never concurrently with another
 * call on the same async fd; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_async_fd_free(asyncio_async_fd *a);

ASYNCIO_END_DECLS

#endif
