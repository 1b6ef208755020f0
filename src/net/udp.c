/*
 * UDP sockets: bind, connect, datagram send / receive, broadcast and
 * multicast options.
 *
 * What it owns. Nothing beyond the public struct: a registration in the
 * I/O driver plus the fd (src/net/sockio.h). Every data operation is one
 * asyncio__sockio_poll() call (poll_ready -> sendto / recvmsg -> clear on
 * EAGAIN); datagram receives never give readiness back early, since a
 * short datagram says nothing about the queue behind it.
 *
 * Truncation is reported, not an error (udp.h): recvmsg's MSG_TRUNC flag
 * becomes *truncated, and *n_out is the count copied.
 *
 * Thread-safety: one receiver and one sender at a time (one waker slot per
 * direction); options and names from any thread; close is single-owner.
 */
#include "asyncio/udp.h"

#include <string.h>

#include "internal.h"
#include "net/sockio.h"
#include "platform/socket.h"
#include "platform/socket_dgram.h"

static bool sock_ok(const asyncio_udp_socket *s)
{
    return s != NULL && s->fd >= 0 && s->reg != NULL;
}

static bool is_ip(const asyncio_sockaddr *a)
{
    int f = asyncio_addr_family(a);
    return f == AF_INET || f == AF_INET6;
}

ASYNCIO__HANDLE_LAYOUT(asyncio_udp_socket);

void asyncio_udp_socket_init_closed(asyncio_udp_socket *s)
{
    asyncio__handle_init_closed(s);
}

/* Options that must be set before bind. 0 or a negative error. */
static int apply_options(int fd, int family, const asyncio_udp_options *o)
{
    int rc = 0;
    if (o->reuseaddr)
        rc = asyncio__sock_setopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && o->reuseport) {
#ifdef SO_REUSEPORT
        rc = asyncio__sock_setopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
        rc = ASYNCIO_ENOTSUP;
#endif
    }
    if (rc == 0 && o->v6only && family == AF_INET6)
        rc = asyncio__sock_setopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (rc == 0 && o->broadcast)
        rc = asyncio__sock_setopt_int(fd, SOL_SOCKET, SO_BROADCAST, 1);
    return rc;
}

int asyncio_udp_bind(asyncio_udp_socket *s, const asyncio_sockaddr *addr,
                     const asyncio_udp_options *opts)
{
    static const asyncio_udp_options defaults = {0};
    if (s == NULL || !is_ip(addr))
        return ASYNCIO_EINVAL;
    int family = asyncio_addr_family(addr);
    int fd = asyncio__sock_open(family, SOCK_DGRAM, 0);
    if (fd < 0)
        return fd;
    int rc = apply_options(fd, family, opts != NULL ? opts : &defaults);
    if (rc == 0)
        rc = asyncio__sock_bind(fd, addr);
    if (rc == 0)
        rc = asyncio__handle_attach(s, fd);
    if (rc < 0)
        asyncio__sock_close(fd);
    return rc;
}

int asyncio_udp_connect(asyncio_udp_socket *s, const asyncio_sockaddr *addr)
{
    if (!sock_ok(s) || !is_ip(addr))
        return ASYNCIO_EINVAL;
    asyncio_sockaddr local;
    int rc = asyncio__sock_local_addr(s->fd, &local);
    if (rc < 0)
        return rc;
    if (asyncio_addr_family(&local) != asyncio_addr_family(addr))
        return ASYNCIO_EINVAL;
    rc = asyncio__sock_connect(s->fd, addr);
    /* A datagram connect completes at once; EINPROGRESS would only mean EINTR (socket.h). */
    return rc == ASYNCIO_EINPROGRESS ? 0 : rc;
}

/* ---- Data ---------------------------------------------------------------- */

static int send_common(asyncio_udp_socket *s, asyncio_context *cx, const void *buf, size_t len,
                       const asyncio_sockaddr *to, size_t *n_out)
{
    static const unsigned char empty[1];
    if (!sock_ok(s) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {
        .kind = ASYNCIO__SOCKIO_SEND_TO, .wbuf = buf != NULL ? buf : empty, .len = len, .to = to};
    int rc = asyncio__sockio_poll(s->io, s->reg, s->fd, cx, &op, n_out);
#ifdef EDESTADDRREQ
    if (rc == -EDESTADDRREQ)
        rc = ASYNCIO_ENOTCONN; /* poll_send on a socket never connected */
#endif
    return rc;
}

static int recv_common(asyncio_udp_socket *s, asyncio_context *cx, void *buf, size_t len,
                       size_t *n_out, asyncio_sockaddr *from, bool *truncated)
{
    static unsigned char discard[1];
    if (!sock_ok(s) || cx == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    asyncio__sockio_op op = {.kind = ASYNCIO__SOCKIO_RECV_FROM,
                             .rbuf = buf != NULL ? buf : discard,
                             .len = len,
                             .from = from,
                             .truncated = truncated};
    return asyncio__sockio_poll(s->io, s->reg, s->fd, cx, &op, n_out);
}

int asyncio_udp_poll_send_to(asyncio_udp_socket *s, asyncio_context *cx, const void *buf,
                             size_t len, const asyncio_sockaddr *to, size_t *n_out)
{
    if (!is_ip(to))
        return ASYNCIO_EINVAL;
    return send_common(s, cx, buf, len, to, n_out);
}

int asyncio_udp_poll_recv_from(asyncio_udp_socket *s, asyncio_context *cx, void *buf, size_t len,
                               size_t *n_out, asyncio_sockaddr *from, bool *truncated)
{
    return recv_common(s, cx, buf, len, n_out, from, truncated);
}

int asyncio_udp_poll_send(asyncio_udp_socket *s, asyncio_context *cx, const void *buf, size_t len,
                          size_t *n_out)
{
    return send_common(s, cx, buf, len, NULL, n_out);
}

int asyncio_udp_poll_recv(asyncio_udp_socket *s, asyncio_context *cx, void *buf, size_t len,
                          size_t *n_out, bool *truncated)
{
    return recv_common(s, cx, buf, len, n_out, NULL, truncated);
}

/* ---- Options ------------------------------------------------------------- */

int asyncio_udp_set_broadcast(asyncio_udp_socket *s, bool on)
{
    if (!sock_ok(s))
        return ASYNCIO_EINVAL;
    return asyncio__sock_setopt_int(s->fd, SOL_SOCKET, SO_BROADCAST, on ? 1 : 0);
}

int asyncio_udp_broadcast(const asyncio_udp_socket *s, bool *on)
{
    if (!sock_ok(s) || on == NULL)
        return ASYNCIO_EINVAL;
    int v = 0;
    int rc = asyncio__sock_getopt_int(s->fd, SOL_SOCKET, SO_BROADCAST, &v);
    if (rc == 0)
        *on = v != 0;
    return rc;
}

/* The socket's family (AF_INET / AF_INET6), or a negative error. */
static int sock_family(const asyncio_udp_socket *s)
{
    asyncio_sockaddr local;
    int rc = asyncio__sock_local_addr(s->fd, &local);
    return rc < 0 ? rc : asyncio_addr_family(&local);
}

static int membership(asyncio_udp_socket *s, const asyncio_sockaddr *group, unsigned ifindex,
                      bool join)
{
    if (!sock_ok(s) || !is_ip(group))
        return ASYNCIO_EINVAL;
    int family = sock_family(s);
    if (family < 0)
        return family;
    if (family != asyncio_addr_family(group))
        return ASYNCIO_EINVAL;
    return asyncio__sock_multicast_membership(s->fd, group, ifindex, join);
}

int asyncio_udp_join_multicast(asyncio_udp_socket *s, const asyncio_sockaddr *group,
                               unsigned ifindex)
{
    return membership(s, group, ifindex, true);
}

int asyncio_udp_leave_multicast(asyncio_udp_socket *s, const asyncio_sockaddr *group,
                                unsigned ifindex)
{
    return membership(s, group, ifindex, false);
}

int asyncio_udp_set_multicast_loop(asyncio_udp_socket *s, bool on)
{
    if (!sock_ok(s))
        return ASYNCIO_EINVAL;
    int family = sock_family(s);
    return family < 0 ? family : asyncio__sock_set_multicast_loop(s->fd, family, on);
}

int asyncio_udp_set_multicast_ttl(asyncio_udp_socket *s, unsigned ttl)
{
    if (!sock_ok(s) || ttl > 255)
        return ASYNCIO_EINVAL;
    int family = sock_family(s);
    return family < 0 ? family : asyncio__sock_set_multicast_ttl(s->fd, family, ttl);
}

int asyncio_udp_set_multicast_interface(asyncio_udp_socket *s, unsigned ifindex)
{
    if (!sock_ok(s))
        return ASYNCIO_EINVAL;
    int family = sock_family(s);
    return family < 0 ? family : asyncio__sock_set_multicast_if(s->fd, family, ifindex);
}

/* ---- Names and close ----------------------------------------------------- */

int asyncio_udp_local_addr(const asyncio_udp_socket *s, asyncio_sockaddr *out)
{
    return asyncio__handle_local_addr(s, out);
}

int asyncio_udp_peer_addr(const asyncio_udp_socket *s, asyncio_sockaddr *out)
{
    return asyncio__handle_peer_addr(s, out);
}

int asyncio_udp_close(asyncio_udp_socket *s)
{
    return asyncio__handle_close(s);
}
