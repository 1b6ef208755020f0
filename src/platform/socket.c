/*
 * Platform sockets: the socket system calls (see socket.h for the
 * conventions). Linux has every one-step flag (SOCK_NONBLOCK, SOCK_CLOEXEC,
 * accept4, MSG_NOSIGNAL); other POSIX systems get the fcntl / SO_NOSIGPIPE
 * fallbacks, confined to the helpers at the top of this file.
 */
#include "platform/socket.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"
#include "util/alloc.h"

ASYNCIO_STATIC_ASSERT(sizeof(asyncio_iovec) == sizeof(struct iovec), "asyncio_iovec layout");
ASYNCIO_STATIC_ASSERT(offsetof(asyncio_iovec, base) == offsetof(struct iovec, iov_base),
                      "asyncio_iovec base");
ASYNCIO_STATIC_ASSERT(offsetof(asyncio_iovec, len) == offsetof(struct iovec, iov_len),
                      "asyncio_iovec len");

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* ------------------------------------------------------------------------ */
/* Portability helpers                                                       */

/* Makes fd non-blocking and close-on-exec. */
static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* Per-socket options every new socket gets (none on Linux: MSG_NOSIGNAL covers SIGPIPE). */
static int init_new_socket(int fd)
{
#if !defined(SOCK_NONBLOCK) || !defined(SOCK_CLOEXEC) || !defined(__linux__)
    int rc = set_nonblock_cloexec(fd);
    if (rc < 0)
        return rc;
#endif
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    if (asyncio__os.setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0)
        return -errno;
#endif
    (void)fd;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Creation, options                                                         */

int asyncio__sock_open(int family, int type, int protocol)
{
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC) && defined(__linux__)
    type |= SOCK_NONBLOCK | SOCK_CLOEXEC;
#endif
    int fd = asyncio__os.socket(family, type, protocol);
    if (fd < 0)
        return -errno;
    int rc = init_new_socket(fd);
    if (rc < 0) {
        asyncio__os.close(fd);
        return rc;
    }
    return fd;
}

int asyncio__sock_set_nonblocking(int fd)
{
    return set_nonblock_cloexec(fd);
}

int asyncio__sock_init_new(int fd)
{
    int rc = set_nonblock_cloexec(fd);
    return rc < 0 ? rc : init_new_socket(fd);
}

int asyncio__sock_close(int fd)
{
    return asyncio__os.close(fd) < 0 && errno != EINTR ? -errno : 0;
}

int asyncio__sock_setopt_int(int fd, int level, int name, int value)
{
    return asyncio__os.setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int asyncio__sock_getopt_int(int fd, int level, int name, int *value)
{
    socklen_t len = sizeof *value;
    return asyncio__os.getsockopt(fd, level, name, value, &len) < 0 ? -errno : 0;
}

int asyncio__sock_set_linger(int fd, int seconds)
{
    struct linger lg;
    lg.l_onoff = seconds >= 0;
    lg.l_linger = seconds >= 0 ? seconds : 0;
    return asyncio__os.setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0 ? -errno : 0;
}

int asyncio__sock_take_error(int fd)
{
    int err = 0;
    int rc = asyncio__sock_getopt_int(fd, SOL_SOCKET, SO_ERROR, &err);
    return rc < 0 ? rc : -err;
}

/* ------------------------------------------------------------------------ */
/* Connection set-up                                                         */

int asyncio__sock_bind(int fd, const asyncio_sockaddr *addr)
{
    return asyncio__os.bind(fd, &addr->u.sa, addr->len) < 0 ? -errno : 0;
}

int asyncio__sock_listen(int fd, int backlog)
{
    return asyncio__os.listen(fd, backlog) < 0 ? -errno : 0;
}

/*
 * accept(2) errors that concern one queued connection, not the listener
 * (accept(2), "Error handling": Linux passes pending network errors of the
 * new socket on; treat them like EAGAIN by retrying).
 */
static bool accept_error_is_per_connection(int err)
{
    switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM: /* firewall rules forbid this connection */
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
#ifdef EHOSTDOWN
    case EHOSTDOWN:
#endif
#ifdef ENONET
    case ENONET:
#endif
        return true;
    default:
        return false;
    }
}

int asyncio__sock_accept(int fd, asyncio_sockaddr *peer)
{
    asyncio_sockaddr scratch;
    asyncio_sockaddr *a = peer != NULL ? peer : &scratch;
    for (;;) {
        socklen_t len = sizeof a->u;
#if defined(__linux__)
        int cfd = asyncio__os.accept4(fd, &a->u.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int cfd = asyncio__os.accept4(fd, &a->u.sa, &len, 0);
#endif
        if (cfd < 0) {
            if (errno == EINTR || accept_error_is_per_connection(errno))
                continue;
            return errno == EWOULDBLOCK ? ASYNCIO_EAGAIN : -errno;
        }
        a->len = len;
        int rc = init_new_socket(cfd);
        if (rc < 0) {
            asyncio__os.close(cfd);
            return rc;
        }
        return cfd;
    }
}

int asyncio__sock_connect(int fd, const asyncio_sockaddr *addr)
{
    if (asyncio__os.connect(fd, &addr->u.sa, addr->len) == 0)
        return 0;
    /* An interrupted non-blocking connect carries on asynchronously. */
    if (errno == EINPROGRESS || errno == EINTR)
        return ASYNCIO_EINPROGRESS;
    /* Unix sockets with a full backlog say EAGAIN: the connect did not start. */
    return -errno;
}

int asyncio__sock_shutdown(int fd, int how)
{
    return asyncio__os.shutdown(fd, how) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------------ */
/* Data                                                                      */

static ssize_t io_error(void)
{
    return errno == EWOULDBLOCK ? ASYNCIO_EAGAIN : -errno;
}

ssize_t asyncio__sock_recv(int fd, void *buf, size_t len, int flags)
{
    for (;;) {
        ssize_t n = asyncio__os.recv(fd, buf, len, flags);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return io_error();
    }
}

ssize_t asyncio__sock_send(int fd, const void *buf, size_t len, int flags)
{
    for (;;) {
        ssize_t n = asyncio__os.send(fd, buf, len, flags | SEND_FLAGS);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return io_error();
    }
}

ssize_t asyncio__sock_sendv(int fd, const asyncio_iovec *iov, int iovcnt)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    /* asyncio_iovec is layout-compatible with struct iovec (asserted above). */
    msg.msg_iov = (struct iovec *)(uintptr_t)iov;
    msg.msg_iovlen = iovcnt > IOV_MAX ? IOV_MAX : iovcnt;
    for (;;) {
        ssize_t n = asyncio__os.sendmsg(fd, &msg, SEND_FLAGS);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return io_error();
    }
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

int asyncio__sock_local_addr(int fd, asyncio_sockaddr *out)
{
    socklen_t len = sizeof out->u;
    memset(out, 0, sizeof *out);
    if (asyncio__os.getsockname(fd, &out->u.sa, &len) < 0)
        return -errno;
    out->len = len;
    return 0;
}

int asyncio__sock_peer_addr(int fd, asyncio_sockaddr *out)
{
    socklen_t len = sizeof out->u;
    memset(out, 0, sizeof *out);
    if (asyncio__os.getpeername(fd, &out->u.sa, &len) < 0)
        return -errno;
    out->len = len;
    return 0;
}

static int gai_to_error(int rc, int saved_errno)
{
    switch (rc) {
    case EAI_NONAME: /* no such host (or numeric host of the wrong form) */
#ifdef EAI_NODATA
    case EAI_NODATA: /* the host exists but has no address */
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: /* no address of the requested family */
#endif
        return ASYNCIO_EHOST_NOT_FOUND;
    case EAI_AGAIN: /* temporary DNS failure: the caller may retry */
        return ASYNCIO_EAGAIN;
    case EAI_MEMORY:
        return ASYNCIO_ENOMEM;
    case EAI_SYSTEM:
        return saved_errno != 0 ? -saved_errno : ASYNCIO_EIO;
    case EAI_FAMILY:
    case EAI_SERVICE:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS:
        return ASYNCIO_EINVAL;
    default: /* EAI_FAIL and anything unknown */
        return ASYNCIO_EIO;
    }
}

int asyncio__sock_getaddrinfo(const char *host, uint16_t port, int family, asyncio_sockaddr **out,
                              size_t *count)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo *res = NULL;
    errno = 0;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return gai_to_error(rc, errno);
    size_t n = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (ai->ai_addrlen <= sizeof((asyncio_sockaddr *)0)->u)
            n++;
    asyncio_sockaddr *addrs = n > 0 ? asyncio__calloc(n, sizeof *addrs) : NULL;
    if (n > 0 && addrs == NULL) {
        freeaddrinfo(res);
        return ASYNCIO_ENOMEM;
    }
    size_t i = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof addrs[i].u)
            continue;
        memcpy(&addrs[i].u, ai->ai_addr, ai->ai_addrlen);
        addrs[i].len = ai->ai_addrlen;
        i++;
    }
    freeaddrinfo(res);
    if (n == 0)
        return ASYNCIO_ENOENT;
    *out = addrs;
    *count = n;
    return 0;
}

int asyncio__sock_set_nodelay(int fd, bool on)
{
    return asyncio__sock_setopt_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int asyncio__sock_nodelay(int fd, int *value)
{
    return asyncio__sock_getopt_int(fd, IPPROTO_TCP, TCP_NODELAY, value);
}

int asyncio__sock_set_keepalive_idle(int fd, int idle_s)
{
#if defined(TCP_KEEPIDLE)
    return asyncio__sock_setopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
#elif defined(TCP_KEEPALIVE)
    return asyncio__sock_setopt_int(fd, IPPROTO_TCP, TCP_KEEPALIVE, idle_s);
#else
    (void)fd;
    (void)idle_s;
    return ASYNCIO_ENOTSUP;
#endif
}
