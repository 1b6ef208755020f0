/*
 * Platform sockets on Winsock 2 (socket.h has the conventions; win.h the int <-> SOCKET
 * rule). Differences from the POSIX file, each handled here:
 *   - every socket is made non-blocking with FIONBIO and not inheritable
 *     (WSA_FLAG_NO_HANDLE_INHERIT), the Windows twin of close-on-exec;
 *   - there is no SIGPIPE, so sends need no flag;
 *   - a non-blocking connect says WSAEWOULDBLOCK where POSIX says EINPROGRESS;
 *   - SO_REUSEADDR means "let another socket steal this port" on Windows, and a listener
 *     can be rebound while old connections sit in TIME_WAIT without it, so the option is
 *     accepted and ignored (SO_EXCLUSIVEADDRUSE semantics are Windows' default for
 *     listeners since Windows Server 2003);
 *   - keep-alive idle time: SIO_KEEPALIVE_VALS;
 *   - gathering sends go through WSASend, whose WSABUF is not layout-compatible with
 *     asyncio_iovec: up to SENDV_MAX buffers are converted on the stack;
 *   - a Winsock without AF_UNIX (Windows before 10 1803, wine 8) refuses the family with
 *     WSAEAFNOSUPPORT: reported as ASYNCIO_ENOTSUP, the library's "not on this platform".
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "platform/socket.h"
#include "platform/win.h"
#include "util/alloc.h"

#include <mstcpip.h> /* after winsock2.h (win.h): SIO_KEEPALIVE_VALS */

enum { SENDV_MAX = 64 };

/* Checks that s fits an int handle; closes it otherwise. The fd or a negative error. */
static int adopt(SOCKET s)
{
    int fd = asyncio__win_fd(s);
    if (fd < 0) {
        closesocket(s);
        return ASYNCIO_EMFILE;
    }
    return fd;
}

int asyncio__sock_open(int family, int type, int protocol)
{
    int rc = asyncio__winsock_init();
    if (rc < 0)
        return rc;
    SOCKET s = WSASocketW(family, type, protocol, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) {
        rc = asyncio__wsa_error();
        /* No AF_UNIX in this Winsock (before Windows 10 1803; wine 8): a gap, not a bad call. */
        return family == AF_UNIX && rc == ASYNCIO_EAFNOSUPPORT ? ASYNCIO_ENOTSUP : rc;
    }
    int fd = adopt(s);
    if (fd < 0)
        return fd;
    rc = asyncio__sock_set_nonblocking(fd);
    if (rc < 0) {
        closesocket(s);
        return rc;
    }
    return fd;
}

int asyncio__sock_set_nonblocking(int fd)
{
    u_long on = 1;
    if (ioctlsocket(asyncio__win_sock(fd), FIONBIO, &on) != 0)
        return asyncio__wsa_error();
    /* Not inherited by child processes (close-on-exec); a no-op for non-handles. */
    SetHandleInformation((HANDLE)asyncio__win_sock(fd), HANDLE_FLAG_INHERIT, 0);
    return 0;
}

int asyncio__sock_init_new(int fd)
{
    return asyncio__sock_set_nonblocking(fd);
}

int asyncio__sock_close(int fd)
{
    return closesocket(asyncio__win_sock(fd)) != 0 ? asyncio__wsa_error() : 0;
}

int asyncio__sock_setopt_int(int fd, int level, int name, int value)
{
    if (level == SOL_SOCKET && name == SO_REUSEADDR)
        return 0; /* see the file comment */
    int rc = setsockopt(asyncio__win_sock(fd), level, name, (const char *)&value, sizeof value);
    return rc != 0 ? asyncio__wsa_error() : 0;
}

int asyncio__sock_getopt_int(int fd, int level, int name, int *value)
{
    int len = sizeof *value;
    *value = 0;
    int rc = getsockopt(asyncio__win_sock(fd), level, name, (char *)value, &len);
    if (rc != 0)
        return asyncio__wsa_error();
    /* Some boolean options (TCP_NODELAY, SO_KEEPALIVE) come back as one byte. */
    if (len == 1)
        *value = *(unsigned char *)value;
    return 0;
}

int asyncio__sock_set_linger(int fd, int seconds)
{
    struct linger lg;
    lg.l_onoff = seconds >= 0;
    lg.l_linger = (u_short)(seconds >= 0 ? seconds : 0);
    int rc = setsockopt(asyncio__win_sock(fd), SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
    return rc != 0 ? asyncio__wsa_error() : 0;
}

int asyncio__sock_take_error(int fd)
{
    int err = 0;
    int rc = asyncio__sock_getopt_int(fd, SOL_SOCKET, SO_ERROR, &err);
    if (rc < 0)
        return rc;
    return err != 0 ? asyncio__win_error((DWORD)err) : 0;
}

int asyncio__sock_bind(int fd, const asyncio_sockaddr *addr)
{
    int rc = bind(asyncio__win_sock(fd), &addr->u.sa, (int)addr->len);
    return rc != 0 ? asyncio__wsa_error() : 0;
}

int asyncio__sock_listen(int fd, int backlog)
{
    return listen(asyncio__win_sock(fd), backlog) != 0 ? asyncio__wsa_error() : 0;
}

int asyncio__sock_accept(int fd, asyncio_sockaddr *peer)
{
    asyncio_sockaddr scratch;
    asyncio_sockaddr *a = peer != NULL ? peer : &scratch;
    for (;;) {
        int len = (int)sizeof a->u;
        memset(&a->u, 0, sizeof a->u);
        SOCKET c = accept(asyncio__win_sock(fd), &a->u.sa, &len);
        if (c == INVALID_SOCKET) {
            int rc = asyncio__wsa_error();
            /* WSAECONNRESET: the peer reset a queued connection; try the next one. */
            if (rc == ASYNCIO_ECONNRESET || rc == ASYNCIO_ECONNABORTED || rc == ASYNCIO_EINTR)
                continue;
            return rc;
        }
        a->len = (socklen_t)len;
        int cfd = adopt(c);
        if (cfd < 0)
            return cfd;
        /* An accepted socket inherits FIONBIO from the listener; say so anyway. */
        int rc = asyncio__sock_set_nonblocking(cfd);
        if (rc < 0) {
            closesocket(c);
            return rc;
        }
        return cfd;
    }
}

int asyncio__sock_connect(int fd, const asyncio_sockaddr *addr)
{
    if (connect(asyncio__win_sock(fd), &addr->u.sa, (int)addr->len) == 0)
        return 0;
    int rc = asyncio__wsa_error();
    /* A non-blocking connect in progress is WSAEWOULDBLOCK on Windows. */
    return rc == ASYNCIO_EAGAIN ? ASYNCIO_EINPROGRESS : rc;
}

int asyncio__sock_shutdown(int fd, int how)
{
    return shutdown(asyncio__win_sock(fd), how) != 0 ? asyncio__wsa_error() : 0;
}

ssize_t asyncio__sock_recv(int fd, void *buf, size_t len, int flags)
{
    int n = recv(asyncio__win_sock(fd), buf, len > INT_MAX ? INT_MAX : (int)len, flags);
    if (n >= 0)
        return n;
    int rc = asyncio__wsa_error();
    /* A datagram larger than the buffer: POSIX returns the truncated bytes (MSG_TRUNC). */
    return rc == ASYNCIO_EMSGSIZE ? (ssize_t)len : rc;
}

ssize_t asyncio__sock_send(int fd, const void *buf, size_t len, int flags)
{
    int n = send(asyncio__win_sock(fd), buf, len > INT_MAX ? INT_MAX : (int)len, flags);
    return n >= 0 ? n : asyncio__wsa_error();
}

ssize_t asyncio__sock_sendv(int fd, const asyncio_iovec *iov, int iovcnt)
{
    WSABUF bufs[SENDV_MAX];
    DWORD n = 0, cnt = 0;
    for (int i = 0; i < iovcnt && cnt < SENDV_MAX; i++) {
        if (iov[i].len > ULONG_MAX)
            break;
        bufs[cnt].buf = iov[i].base;
        bufs[cnt].len = (ULONG)iov[i].len;
        cnt++;
    }
    if (cnt == 0 && iovcnt > 0) /* one huge buffer: a short write of its first part */
        return asyncio__sock_send(fd, iov[0].base, iov[0].len, 0);
    if (WSASend(asyncio__win_sock(fd), bufs, cnt, &n, 0, NULL, NULL) != 0)
        return asyncio__wsa_error();
    return (ssize_t)n;
}

int asyncio__sock_local_addr(int fd, asyncio_sockaddr *out)
{
    int len = (int)sizeof out->u;
    memset(out, 0, sizeof *out);
    if (getsockname(asyncio__win_sock(fd), &out->u.sa, &len) != 0)
        return asyncio__wsa_error();
    out->len = (socklen_t)len;
    return 0;
}

int asyncio__sock_peer_addr(int fd, asyncio_sockaddr *out)
{
    int len = (int)sizeof out->u;
    memset(out, 0, sizeof *out);
    if (getpeername(asyncio__win_sock(fd), &out->u.sa, &len) != 0)
        return asyncio__wsa_error();
    out->len = (socklen_t)len;
    return 0;
}

static int gai_to_error(int rc)
{
    switch (rc) {
    case EAI_NONAME:
    case WSANO_DATA:
        return ASYNCIO_EHOST_NOT_FOUND;
    case EAI_AGAIN:
        return ASYNCIO_EAGAIN;
    case EAI_MEMORY:
        return ASYNCIO_ENOMEM;
    case EAI_FAMILY:
    case EAI_SERVICE:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS:
        return ASYNCIO_EINVAL;
    default:
        return ASYNCIO_EIO;
    }
}

int asyncio__sock_getaddrinfo(const char *host, uint16_t port, int family, asyncio_sockaddr **out,
                              size_t *count)
{
    int rc = asyncio__winsock_init();
    if (rc < 0)
        return rc;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo *res = NULL;
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return gai_to_error(rc);
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
        addrs[i].len = (socklen_t)ai->ai_addrlen;
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

/*
 * SIO_KEEPALIVE_VALS sets the idle time and the probe interval together and switches
 * keep-alive on (every Windows version; TCP_KEEPIDLE needs Windows 10 1709). It is only
 * called to turn keep-alive on (tcp.c), so switching it on here changes nothing; probes go
 * every second after the idle time, the Windows default interval.
 */
int asyncio__sock_set_keepalive_idle(int fd, int idle_s)
{
    if (idle_s <= 0 || idle_s > INT_MAX / 1000)
        return ASYNCIO_EINVAL;
    struct tcp_keepalive ka = {1, (u_long)idle_s * 1000u, 1000u};
    DWORD bytes = 0;
    if (WSAIoctl(asyncio__win_sock(fd), SIO_KEEPALIVE_VALS, &ka, sizeof ka, NULL, 0, &bytes, NULL,
                 NULL) != 0)
        return asyncio__wsa_error();
    return 0;
}
