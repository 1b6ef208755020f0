/*
 * Platform sockets: every socket system call the library makes (TCP, and
 * the UDP / Unix-socket modules, which reuse these). Family-agnostic: the
 * functions take an asyncio_sockaddr (any family) or a raw fd and never
 * look at the protocol above them.
 *
 * Conventions, for every function here:
 *   - the result is >= 0 on success (a count or an fd) or a negative
 *     errno-style code (ASYNCIO_Exxx); errno is never left for the caller;
 *   - EINTR is retried inside (connect excepted: an interrupted
 *     non-blocking connect keeps going in the kernel, so it is reported as
 *     ASYNCIO_EINPROGRESS);
 *   - sockets are created, and accepted, non-blocking and close-on-exec in
 *     one step where the OS allows it (SOCK_NONBLOCK | SOCK_CLOEXEC,
 *     accept4), otherwise with fcntl right after;
 *   - no call ever raises SIGPIPE: sends use MSG_NOSIGNAL (SO_NOSIGPIPE is
 *     set at creation on systems without it), so a reset peer gives
 *     ASYNCIO_EPIPE / ASYNCIO_ECONNRESET on the operation;
 *   - ASYNCIO_EAGAIN means "would block": the caller clears readiness.
 *
 * Thread-safety: plain system calls on the caller's fds; any thread.
 */
#ifndef ASYNCIO_PLATFORM_SOCKET_H
#define ASYNCIO_PLATFORM_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "asyncio/io.h"
#include "asyncio/net.h"

/* Creates a non-blocking, close-on-exec socket. The fd, or a negative error. */
int asyncio__sock_open(int family, int type, int protocol);

/* Makes an existing fd non-blocking and close-on-exec. 0 or a negative error. */
int asyncio__sock_set_nonblocking(int fd);

/*
 * Gives a socket made without the one-step flags what asyncio__sock_open's
 * sockets have: non-blocking, close-on-exec and, where there is no
 * MSG_NOSIGNAL (macOS), SO_NOSIGPIPE. 0 or a negative error.
 */
int asyncio__sock_init_new(int fd);

/* Closes an fd (EINTR is not retried: on Linux the fd is gone either way). 0 or an error. */
int asyncio__sock_close(int fd);

/* setsockopt / getsockopt for int-valued options. 0 or a negative error. */
int asyncio__sock_setopt_int(int fd, int level, int name, int value);
int asyncio__sock_getopt_int(int fd, int level, int name, int *value);

/* TCP_NODELAY on / off, and its current value (0 or 1). */
int asyncio__sock_set_nodelay(int fd, bool on);
int asyncio__sock_nodelay(int fd, int *value);

/* Keep-alive idle time before the first probe (TCP_KEEPIDLE, or TCP_KEEPALIVE
 * on macOS); ASYNCIO_ENOTSUP where the platform has neither. */
int asyncio__sock_set_keepalive_idle(int fd, int idle_s);

/* SO_LINGER: seconds >= 0 turns lingering on (0: close resets), -1 off. 0 or an error. */
int asyncio__sock_set_linger(int fd, int seconds);

/*
 * SO_ERROR: the socket's pending error, consumed. Returns 0 (none), the
 * pending error as a negative code, or getsockopt's own error.
 */
int asyncio__sock_take_error(int fd);

/* bind(2) / listen(2). 0 or a negative error. */
int asyncio__sock_bind(int fd, const asyncio_sockaddr *addr);
int asyncio__sock_listen(int fd, int backlog);

/*
 * Accepts one connection, non-blocking and close-on-exec. `peer` may be
 * NULL. The new fd, ASYNCIO_EAGAIN when none is queued, or an error (e.g.
 * ASYNCIO_EMFILE / ENFILE when the fd table is full: the connection stays
 * queued in the kernel). Errors that belong to one dead connection, not to
 * the listener (ECONNABORTED, EPROTO, EPERM from a firewall, and the
 * network errors Linux passes on: ENETDOWN, EHOSTUNREACH, ...), are
 * skipped: the next queued connection is tried.
 */
int asyncio__sock_accept(int fd, asyncio_sockaddr *peer);

/*
 * Starts a connect. 0 (connected at once, e.g. some Unix sockets),
 * ASYNCIO_EINPROGRESS (completion is signalled by writability; read the
 * result with asyncio__sock_take_error), or an error.
 */
int asyncio__sock_connect(int fd, const asyncio_sockaddr *addr);

/* shutdown(2); `how` is SHUT_RD, SHUT_WR or SHUT_RDWR. 0 or a negative error. */
int asyncio__sock_shutdown(int fd, int how);

/* recv(2): bytes read (0 = EOF), ASYNCIO_EAGAIN, or an error. */
ssize_t asyncio__sock_recv(int fd, void *buf, size_t len, int flags);

/* send(2) with MSG_NOSIGNAL added to `flags`: bytes written, ASYNCIO_EAGAIN, or an error. */
ssize_t asyncio__sock_send(int fd, const void *buf, size_t len, int flags);

/*
 * Gathering send: sendmsg(2) with MSG_NOSIGNAL over iov[0..iovcnt)
 * (iovcnt above IOV_MAX is clamped: a short write). Bytes written,
 * ASYNCIO_EAGAIN, or an error.
 */
ssize_t asyncio__sock_sendv(int fd, const asyncio_iovec *iov, int iovcnt);

/* getsockname(2) / getpeername(2) into *out (len set). 0 or a negative error. */
int asyncio__sock_local_addr(int fd, asyncio_sockaddr *out);
int asyncio__sock_peer_addr(int fd, asyncio_sockaddr *out);

/*
 * getaddrinfo(3) for stream sockets (blocking: call it on the blocking
 * pool). `family` is AF_UNSPEC, AF_INET or AF_INET6. On success *out is an
 * array of *count addresses (port set), in getaddrinfo's order, allocated
 * with asyncio__malloc (free with asyncio__free). Errors: ASYNCIO_ENOENT
 * (no such host, or no address of that family), ASYNCIO_EAGAIN (temporary
 * DNS failure), ASYNCIO_EINVAL (bad family / flags), ASYNCIO_ENOMEM,
 * ASYNCIO_EIO (unrecoverable resolver failure), or the errno of EAI_SYSTEM.
 */
int asyncio__sock_getaddrinfo(const char *host, uint16_t port, int family, asyncio_sockaddr **out,
                              size_t *count);

#endif
