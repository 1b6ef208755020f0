/*
 * Datagram and Unix-domain socket helpers on Winsock 2 (socket_dgram.h).
 *
 * Truncation: recvfrom fails with WSAEMSGSIZE when a datagram is larger than the buffer,
 * after filling the buffer; that is reported as a full-length read with *truncated set,
 * as POSIX's MSG_TRUNC would. Multicast uses the struct ip_mreq interface index form
 * (IP_ADD_MEMBERSHIP takes an interface index when imr_interface is 0.0.0.x on Windows;
 * only the default interface is offered, as on the BSDs).
 *
 * Unix-domain sockets: AF_UNIX stream sockets exist on Windows 10 1803+, but wine 8 does not
 * implement them (socket() fails with WSAEAFNOSUPPORT: checked with a probe program) and
 * Windows has no socketpair(), no peer credentials and no abstract names, so socket pairs
 * and credentials are ASYNCIO_ENOTSUP (docs/backends.md); a listener or connect on AF_UNIX
 * goes to Winsock, and is ASYNCIO_ENOTSUP where it has no AF_UNIX (socket_win.c).
 */
#include <string.h>

#include "internal.h"
#include "platform/socket.h"
#include "platform/socket_dgram.h"
#include "platform/win.h"

static int setopt(int fd, int level, int name, const void *val, int len)
{
    if (setsockopt(asyncio__win_sock(fd), level, name, val, len) != 0)
        return asyncio__wsa_error();
    return 0;
}

ssize_t asyncio__sock_send_to(int fd, const void *buf, size_t len, const asyncio_sockaddr *to)
{
    const struct sockaddr *sa = to != NULL ? &to->u.sa : NULL;
    int salen = to != NULL ? (int)to->len : 0;
    if (len > INT_MAX)
        return ASYNCIO_EMSGSIZE;
    /* No destination: send() on the connected peer (WSAENOTCONN when there is none). */
    int n = sa != NULL ? sendto(asyncio__win_sock(fd), buf, (int)len, 0, sa, salen)
                       : send(asyncio__win_sock(fd), buf, (int)len, 0);
    if (n >= 0)
        return n;
    int rc = asyncio__wsa_error();
    if (sa == NULL && rc == ASYNCIO_EINVAL) {
        /* Windows documents WSAENOTCONN for a socket with no peer; wine says WSAEINVAL. */
        asyncio_sockaddr peer;
        if (asyncio__sock_peer_addr(fd, &peer) == ASYNCIO_ENOTCONN)
            return ASYNCIO_ENOTCONN;
    }
    return rc;
}

ssize_t asyncio__sock_recv_from(int fd, void *buf, size_t len, asyncio_sockaddr *from,
                                bool *truncated)
{
    asyncio_sockaddr scratch;
    asyncio_sockaddr *a = from != NULL ? from : &scratch;
    memset(a, 0, sizeof *a);
    int alen = (int)sizeof a->u;
    int cap = len > INT_MAX ? INT_MAX : (int)len;
    int n = recvfrom(asyncio__win_sock(fd), buf, cap, 0, &a->u.sa, &alen);
    bool trunc = false;
    if (n < 0) {
        int rc = asyncio__wsa_error();
        /* Windows reports an ICMP port unreachable as WSAECONNRESET; POSIX as ECONNREFUSED. */
        if (rc == ASYNCIO_ECONNRESET)
            return ASYNCIO_ECONNREFUSED;
        if (rc != ASYNCIO_EMSGSIZE)
            return rc;
        n = cap; /* the buffer holds the first cap bytes of a longer datagram */
        trunc = true;
    }
    a->len = (socklen_t)alen;
    if (truncated != NULL)
        *truncated = trunc;
    return n;
}

int asyncio__sock_multicast_membership(int fd, const asyncio_sockaddr *group, unsigned ifindex,
                                       bool join)
{
    switch (group->u.sa.sa_family) {
    case AF_INET: { /* 224.0.0.0/4 */
        if (!IN_MULTICAST(ntohl(group->u.in4.sin_addr.s_addr)))
            return ASYNCIO_EINVAL;
        if (ifindex != 0)
            return ASYNCIO_ENOTSUP;
        struct ip_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.imr_multiaddr = group->u.in4.sin_addr;
        mr.imr_interface.s_addr = htonl(INADDR_ANY);
        return setopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &mr,
                      sizeof mr);
    }
    case AF_INET6: { /* ff00::/8 */
        if (!IN6_IS_ADDR_MULTICAST(&group->u.in6.sin6_addr))
            return ASYNCIO_EINVAL;
        struct ipv6_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.ipv6mr_multiaddr = group->u.in6.sin6_addr;
        mr.ipv6mr_interface = ifindex;
        return setopt(fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &mr,
                      sizeof mr);
    }
    default:
        return ASYNCIO_EINVAL;
    }
}

int asyncio__sock_set_multicast_loop(int fd, int family, bool on)
{
    DWORD v = on ? 1 : 0;
    if (family == AF_INET)
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &v, sizeof v);
    if (family == AF_INET6)
        return setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &v, sizeof v);
    return ASYNCIO_EINVAL;
}

int asyncio__sock_set_multicast_ttl(int fd, int family, unsigned ttl)
{
    if (ttl > 255)
        return ASYNCIO_EINVAL;
    DWORD v = ttl;
    if (family == AF_INET)
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &v, sizeof v);
    if (family == AF_INET6)
        return setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &v, sizeof v);
    return ASYNCIO_EINVAL;
}

int asyncio__sock_set_multicast_if(int fd, int family, unsigned ifindex)
{
    if (family == AF_INET) {
        /* IP_MULTICAST_IF takes an address, or an index in network order as 0.0.0.x. */
        DWORD v = htonl(ifindex);
        return setopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &v, sizeof v);
    }
    if (family == AF_INET6) {
        DWORD v = ifindex;
        return setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &v, sizeof v);
    }
    return ASYNCIO_EINVAL;
}

int asyncio__sock_pair(int type, int fds[2])
{
    (void)type;
    fds[0] = fds[1] = -1;
    return ASYNCIO_ENOTSUP; /* no socketpair() on Windows (file comment) */
}

int asyncio__sock_peer_cred(int fd, asyncio_unix_cred *out)
{
    (void)fd;
    (void)out;
    return ASYNCIO_ENOTSUP;
}

bool asyncio__unix_abstract_names(void)
{
    return false;
}

int asyncio__unix_unlink_stale(const asyncio_sockaddr *addr)
{
    (void)addr;
    /*
     * Not removed here: a Windows AF_UNIX socket file is a reparse point, and this cannot
     * be tried under wine 8 (no AF_UNIX). A stale one makes the bind fail (EADDRINUSE).
     */
    return 0;
}
