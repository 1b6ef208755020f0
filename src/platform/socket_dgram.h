/*
 * Platform sockets, second part: the system calls of the datagram and
 * Unix-domain modules (src/net/udp.c, src/net/unix.c, src/net/sockio.c) that
 * the generic wrappers in platform/socket.h do not cover: sendto / recvmsg
 * with truncation, multicast membership and options, socketpair, peer
 * credentials and the Unix socket-file helper. Plain int options
 * (SO_BROADCAST, SO_REUSEADDR, IPV6_V6ONLY) go through
 * asyncio__sock_setopt_int().
 *
 * Conventions: those of platform/socket.h — results >= 0 or a negative
 * errno-style code, EINTR retried inside, ASYNCIO_EAGAIN means "would
 * block", sockets non-blocking and close-on-exec, sends never raise
 * SIGPIPE (MSG_NOSIGNAL).
 *
 * Thread-safety: plain system calls on the caller's fds; any thread.
 */
#ifndef ASYNCIO_PLATFORM_SOCKET_DGRAM_H
#define ASYNCIO_PLATFORM_SOCKET_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "asyncio/net.h"
#include "asyncio/unix.h"

/*
 * sendto(2) with MSG_NOSIGNAL: one datagram. `to` NULL sends to the
 * connected peer. Bytes sent (all of them), ASYNCIO_EAGAIN, or an error
 * (ASYNCIO_EMSGSIZE: larger than the protocol allows or the send buffer).
 */
ssize_t asyncio__sock_send_to(int fd, const void *buf, size_t len, const asyncio_sockaddr *to);

/*
 * recvmsg(2): one datagram, at most len bytes copied into buf. Bytes
 * copied, ASYNCIO_EAGAIN, or an error. *truncated (if non-NULL) is set
 * when the datagram was longer than len (MSG_TRUNC in msg_flags: the rest
 * is discarded by the kernel). *from (if non-NULL) receives the sender's
 * address; from->len is the kernel's length (for an unnamed Unix sender,
 * just the family).
 */
ssize_t asyncio__sock_recv_from(int fd, void *buf, size_t len, asyncio_sockaddr *from,
                                bool *truncated);

/*
 * Joins (join true) or leaves a multicast group on interface `ifindex` (0:
 * the kernel picks one from the routing table). IPv4 uses
 * IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP with struct ip_mreqn where
 * available (ip_mreq with INADDR_ANY otherwise, then ifindex must be 0);
 * IPv6 uses IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP. Errors: ASYNCIO_EINVAL
 * (not an IP address, or not a multicast group), ASYNCIO_ENODEV (no such
 * interface, or no route for the group), ASYNCIO_EADDRINUSE (already
 * joined), ASYNCIO_EADDRNOTAVAIL (leaving a group not joined), others.
 */
int asyncio__sock_multicast_membership(int fd, const asyncio_sockaddr *group, unsigned ifindex,
                                       bool join);

/*
 * Outgoing multicast options for the socket's family (AF_INET or
 * AF_INET6): loopback of own datagrams, TTL / hop limit (0..255), and the
 * outgoing interface by index (0: the routing table decides). 0 or a
 * negative error.
 */
int asyncio__sock_set_multicast_loop(int fd, int family, bool on);
int asyncio__sock_set_multicast_ttl(int fd, int family, unsigned ttl);
int asyncio__sock_set_multicast_if(int fd, int family, unsigned ifindex);

/*
 * socketpair(AF_UNIX, type): two connected, non-blocking, close-on-exec
 * sockets. `type` is SOCK_STREAM or SOCK_DGRAM. 0 or a negative error.
 */
int asyncio__sock_pair(int type, int fds[2]);

/*
 * The credentials of the process at the other end of a connected Unix
 * socket, as they were when it connected (or called socketpair):
 * SO_PEERCRED on Linux, getpeereid (pid -1) elsewhere. 0 or a negative
 * error (ASYNCIO_ENOTSUP where neither exists, ASYNCIO_ENOTCONN).
 */
int asyncio__sock_peer_cred(int fd, asyncio_unix_cred *out);

/*
 * Whether the OS has abstract Unix socket names (a leading NUL in sun_path):
 * Linux only (unix_os_linux.c); elsewhere asyncio_addr_unix("@name") fails
 * with ASYNCIO_ENOTSUP (unix_os_bsd.c).
 */
bool asyncio__unix_abstract_names(void);

/*
 * Removes a stale socket file at a Unix path address before bind, for the
 * `unlink_existing` bind option: unlinks the path only if it exists and
 * is a socket (lstat S_ISSOCK). Abstract and unnamed addresses: nothing to
 * do. 0 if nothing was there or it was removed, ASYNCIO_EADDRINUSE if
 * something other than a socket is there (left alone), or the error of
 * lstat / unlink.
 */
int asyncio__unix_unlink_stale(const asyncio_sockaddr *addr);

#endif
