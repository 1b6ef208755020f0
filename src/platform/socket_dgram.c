/*
 * Platform sockets for datagrams and Unix-domain sockets (see
 * socket_dgram.h for the conventions). Linux is the main target (ip_mreqn,
 * SO_DOMAIN); the fallbacks for other POSIX systems are confined to small
 * #if blocks inside the helpers. Peer credentials and abstract names differ
 * by OS: unix_os_linux.c / unix_os_bsd.c, picked by CMake.
 */
#include "platform/socket_dgram.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"
#include "platform/socket.h"

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

/* -errno, folding EWOULDBLOCK into ASYNCIO_EAGAIN. */
static int neg_errno(void)
{
    int e = errno;
    if (e == EWOULDBLOCK)
        e = EAGAIN;
    return -e;
}

static int setopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (asyncio__os.setsockopt(fd, level, name, val, len) < 0)
        return neg_errno();
    return 0;
}

static int setopt_int(int fd, int level, int name, int value)
{
    return setopt(fd, level, name, &value, sizeof value);
}

/* ------------------------------------------------------------------------ */
/* Datagrams                                                                 */

ssize_t asyncio__sock_send_to(int fd, const void *buf, size_t len, const asyncio_sockaddr *to)
{
    const struct sockaddr *sa = to != NULL ? &to->u.sa : NULL;
    socklen_t salen = to != NULL ? to->len : 0;
    for (;;) {
        ssize_t n = asyncio__os.sendto(fd, buf, len, SEND_FLAGS, sa, salen);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return neg_errno();
    }
}

ssize_t asyncio__sock_recv_from(int fd, void *buf, size_t len, asyncio_sockaddr *from,
                                bool *truncated)
{
    struct iovec iov = {buf, len};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    if (from != NULL) {
        memset(from, 0, sizeof *from);
        msg.msg_name = &from->u;
        msg.msg_namelen = sizeof from->u;
    }
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    for (;;) {
        ssize_t n = asyncio__os.recvmsg(fd, &msg, 0);
        if (n >= 0) {
            if (from != NULL)
                from->len = msg.msg_namelen;
            if (truncated != NULL)
                *truncated = (msg.msg_flags & MSG_TRUNC) != 0;
            return n;
        }
        if (errno != EINTR)
            return neg_errno();
    }
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

static int membership_v4(int fd, const struct sockaddr_in *group, unsigned ifindex, bool join)
{
    int name = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
#if defined(__linux__)
    struct ip_mreqn mr;
    memset(&mr, 0, sizeof mr);
    mr.imr_multiaddr = group->sin_addr;
    mr.imr_address.s_addr = htonl(INADDR_ANY);
    mr.imr_ifindex = (int)ifindex;
#else
    if (ifindex != 0)
        return ASYNCIO_ENOTSUP;
    struct ip_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.imr_multiaddr = group->sin_addr;
    mr.imr_interface.s_addr = htonl(INADDR_ANY);
#endif
    return setopt(fd, IPPROTO_IP, name, &mr, sizeof mr);
}

static int membership_v6(int fd, const struct sockaddr_in6 *group, unsigned ifindex, bool join)
{
    struct ipv6_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.ipv6mr_multiaddr = group->sin6_addr;
    mr.ipv6mr_interface = ifindex;
    return setopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &mr, sizeof mr);
}

int asyncio__sock_multicast_membership(int fd, const asyncio_sockaddr *group, unsigned ifindex,
                                       bool join)
{
    switch (group->u.sa.sa_family) {
    case AF_INET: /* 224.0.0.0/4 */
        if (!IN_MULTICAST(ntohl(group->u.in4.sin_addr.s_addr)))
            return ASYNCIO_EINVAL;
        return membership_v4(fd, &group->u.in4, ifindex, join);
    case AF_INET6: /* ff00::/8 */
        if (!IN6_IS_ADDR_MULTICAST(&group->u.in6.sin6_addr))
            return ASYNCIO_EINVAL;
        return membership_v6(fd, &group->u.in6, ifindex, join);
    default: /* not an IP address */
        return ASYNCIO_EINVAL;
    }
}

int asyncio__sock_set_multicast_loop(int fd, int family, bool on)
{
    if (family == AF_INET) {
        unsigned char v = on ? 1 : 0; /* Linux takes int or char; BSDs want a char */
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &v, sizeof v);
    }
    if (family == AF_INET6)
        return setopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0);
    return ASYNCIO_EINVAL;
}

int asyncio__sock_set_multicast_ttl(int fd, int family, unsigned ttl)
{
    if (ttl > 255)
        return ASYNCIO_EINVAL;
    if (family == AF_INET) {
        unsigned char v = (unsigned char)ttl;
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &v, sizeof v);
    }
    if (family == AF_INET6)
        return setopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, (int)ttl);
    return ASYNCIO_EINVAL;
}

int asyncio__sock_set_multicast_if(int fd, int family, unsigned ifindex)
{
    if (family == AF_INET) {
#if defined(__linux__)
        struct ip_mreqn mr;
        memset(&mr, 0, sizeof mr);
        mr.imr_ifindex = (int)ifindex;
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr);
#else
        if (ifindex != 0)
            return ASYNCIO_ENOTSUP;
        struct in_addr any = {htonl(INADDR_ANY)};
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &any, sizeof any);
#endif
    }
    if (family == AF_INET6)
        return setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex);
    return ASYNCIO_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Unix-domain helpers                                                       */

int asyncio__sock_pair(int type, int fds[2])
{
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    if (asyncio__os.socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        return neg_errno();
    return 0;
#else
    if (asyncio__os.socketpair(AF_UNIX, type, 0, fds) < 0)
        return neg_errno();
    for (int i = 0; i < 2; i++) {
        int rc = asyncio__sock_init_new(fds[i]); /* flags, and SO_NOSIGPIPE on macOS */
        if (rc < 0) {
            asyncio__os.close(fds[0]);
            asyncio__os.close(fds[1]);
            return rc;
        }
    }
    return 0;
#endif
}

int asyncio__unix_unlink_stale(const asyncio_sockaddr *addr)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (addr->u.sa.sa_family != AF_UNIX || addr->len <= off || addr->u.un.sun_path[0] == '\0')
        return 0; /* unnamed or abstract: no file */
    char path[sizeof addr->u.un.sun_path + 1];
    size_t n = addr->len - off;
    if (n > sizeof addr->u.un.sun_path)
        n = sizeof addr->u.un.sun_path;
    memcpy(path, addr->u.un.sun_path, n);
    path[n] = '\0';
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : neg_errno();
    if (!S_ISSOCK(st.st_mode))
        return ASYNCIO_EADDRINUSE;
    if (unlink(path) < 0 && errno != ENOENT)
        return neg_errno();
    return 0;
}
