/*
 * The OS-call table's production contents (os_table.h): the libc functions.
 *
 * glibc with _GNU_SOURCE declares the sockaddr arguments as transparent
 * unions, so those calls get one-line forwarding functions here that the
 * compiler turns into a plain jump; the rest are the libc symbols themselves.
 */
#include "platform/os_table.h"

#include <unistd.h>

#if defined(__linux__)
#include <sys/eventfd.h>
#endif

static int os_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
#if defined(__linux__)
    return accept4(fd, addr, len, flags);
#else
    (void)flags; /* the caller sets the flags with fcntl (socket.c) */
    return accept(fd, addr, len);
#endif
}

static int os_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return connect(fd, addr, len);
}

static int os_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return bind(fd, addr, len);
}

static ssize_t os_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                         socklen_t tolen)
{
    return sendto(fd, buf, len, flags, to, tolen);
}

static int os_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    return getsockname(fd, addr, len);
}

static int os_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    return getpeername(fd, addr, len);
}

#if defined(__linux__)
static int os_eventfd(unsigned initval, int flags)
{
    return eventfd(initval, flags);
}
#define OS_LINUX_CALLS                                                                    \
    .pipe2 = pipe2, .eventfd = os_eventfd, .epoll_create1 = epoll_create1,                \
    .epoll_ctl = epoll_ctl, .epoll_wait = epoll_wait,
#else
#define OS_LINUX_CALLS
#endif

/* One initialiser for both tables (a static initialiser cannot copy a const object). */
#define OS_LIBC_TABLE                                                                      \
    {                                                                                      \
        .read = read, .write = write, .recv = recv, .send = send,                          \
        .recvmsg = recvmsg, .sendmsg = sendmsg, .sendto = os_sendto,         \
        .socket = socket, .socketpair = socketpair, .accept4 = os_accept4,                 \
        .connect = os_connect, .bind = os_bind, .listen = listen, .shutdown = shutdown,    \
        .getsockopt = getsockopt, .setsockopt = setsockopt,                                \
        .getsockname = os_getsockname, .getpeername = os_getpeername, .close = close,      \
        .pipe = pipe, .poll = poll, .clock_gettime = clock_gettime, OS_LINUX_CALLS         \
    }

const asyncio__os_table asyncio__os_libc = OS_LIBC_TABLE;
asyncio__os_table asyncio__os = OS_LIBC_TABLE;
