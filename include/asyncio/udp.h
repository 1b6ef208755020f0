/*
 * libasyncio: UDP sockets.
 *
 *   asyncio_udp_bind                 a socket bound to an IPv4 / IPv6 address (port 0: any)
 *   asyncio_udp_poll_send_to / _recv_from   one datagram to / from any peer
 *   asyncio_udp_connect              fix the peer; then _poll_send / _poll_recv
 *   broadcast, multicast             SO_BROADCAST; join / leave a group, loop, TTL, interface
 *
 * Datagrams. Each send is one datagram, sent whole or not at all: success
 * always reports *n_out == len. The largest payload is 65,507 bytes over
 * IPv4 and 65,527 over IPv6 (ASYNCIO_UDP_MAX_PAYLOAD_V4 / _V6; a larger
 * send fails with ASYNCIO_EMSGSIZE, as does one larger than the send
 * buffer). A zero-length datagram is valid: receiving it gives 0 bytes,
 * which for UDP is not end-of-file.
 *
 * Truncation (decided here, used by every datagram receive in the
 * library, Unix datagrams included): a datagram longer than the buffer is
 * NOT an error. The receive returns 0 with *n_out == len (the bytes that
 * fitted) and sets *truncated = true; the rest of that datagram is
 * discarded by the kernel and the next receive returns the next datagram.
 * Pass a buffer of ASYNCIO_UDP_MAX_PAYLOAD_V6 bytes (64 KiB) to never
 * truncate. `truncated` may be NULL when the caller does not care.
 *
 * Memory. A socket is a small embeddable value (a registration and an fd,
 * like asyncio_tcp_stream): no buffer, no allocation per operation.
 *
 * Signals and errors. Sends use MSG_NOSIGNAL. ICMP errors are reported on
 * a later operation of a connected socket (ASYNCIO_ECONNREFUSED when the
 * peer's port is closed); the socket stays usable. EINTR is retried.
 *
 * Threads. A socket binds to the runtime running on the calling thread
 * when it is created. Functions that take a context are called from inside
 * a task of that runtime. One receiving task and one sending task may use
 * a socket at the same time; two receivers (or two senders) would steal
 * each other's wake-ups. Option setters and address getters may be called
 * from any thread, but not concurrently with close.
 */
#ifndef ASYNCIO_UDP_H
#define ASYNCIO_UDP_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "error.h"
#include "net.h"
#include "task.h"

/** Largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header). */
#define ASYNCIO_UDP_MAX_PAYLOAD_V4 65507
/** Largest UDP payload over IPv6 without jumbograms: 65,535 - 8. */
#define ASYNCIO_UDP_MAX_PAYLOAD_V6 65527

/**
 * A UDP socket registered with a runtime's I/O driver. Embeddable and
 * movable (no pointer to itself): it may be copied into a task's state as
 * long as only one copy is used and closed. Created by asyncio_udp_bind(),
 * released by asyncio_udp_close(). A closed socket has fd == -1
 * (asyncio_udp_socket_init_closed()), so cleanup code can close
 * unconditionally.
 */
typedef struct asyncio_udp_socket {
    /* private */
    void *io;  /* the I/O driver it is registered with */
    void *reg; /* its registration (one slab entry) */
    /* read-only */
    int fd; /* the socket, or -1 when closed */
} asyncio_udp_socket;

/** Bind options. Zero-initialise; zero fields take the defaults (all off). */
typedef struct asyncio_udp_options {
    /** SO_REUSEADDR: bind even if the address is in use by another socket with it set. */
    bool reuseaddr;
    /** SO_REUSEPORT: several sockets share the port (ASYNCIO_ENOTSUP where missing). */
    bool reuseport;
    /** IPV6_V6ONLY on: an IPv6 socket refuses IPv4-mapped traffic (default: OS default). */
    bool v6only;
    /** SO_BROADCAST on at creation (same as asyncio_udp_set_broadcast()). */
    bool broadcast;
} asyncio_udp_options;

ASYNCIO_BEGIN_DECLS

/** Marks a socket as closed (fd == -1): closing it is a no-op. Never fails. */
ASYNCIO_EXTERN void asyncio_udp_socket_init_closed(asyncio_udp_socket *s);

/**
 * Creates a UDP socket for addr's family, applies `opts` (may be NULL),
 * binds it to `addr` (port 0: the kernel picks one; read it back with
 * asyncio_udp_local_addr()) and registers it with the runtime running on
 * this thread. On success *s owns the socket.
 *
 * Errors: ASYNCIO_EINVAL (NULL s / addr, not an IPv4 / IPv6 address, no
 * runtime on this thread), ASYNCIO_EADDRINUSE, ASYNCIO_EADDRNOTAVAIL,
 * ASYNCIO_EACCES, ASYNCIO_ENOTSUP (reuseport), ASYNCIO_EMFILE,
 * ASYNCIO_ENOMEM. On error *s is untouched and nothing needs closing.
 * Runtime thread; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_udp_bind(asyncio_udp_socket *s, const asyncio_sockaddr *addr,
                                    const asyncio_udp_options *opts);

/**
 * Sets the default peer (connect(2) on a datagram socket: immediate, no
 * handshake). Afterwards poll_send sends there and only datagrams from
 * that address are received. Connecting again changes the peer.
 * Errors: ASYNCIO_EINVAL (NULL, closed socket, address of another family
 * than the socket's), ASYNCIO_ENETUNREACH. Not concurrently with a send
 * or receive.
 */
ASYNCIO_EXTERN int asyncio_udp_connect(asyncio_udp_socket *s, const asyncio_sockaddr *addr);

/**
 * Sends buf[0..len) as one datagram to `to`. 0 with *n_out == len,
 * ASYNCIO_PENDING (send buffer full: cx's waker stored in the write
 * slot), or an error: ASYNCIO_EMSGSIZE (too large), ASYNCIO_EACCES
 * (broadcast address without SO_BROADCAST), ASYNCIO_ENETUNREACH,
 * ASYNCIO_EISCONN (connected socket on some systems), ASYNCIO_EINVAL
 * (NULL argument, closed socket, buf NULL with len > 0). Never allocates.
 * From a task; one sender at a time.
 */
ASYNCIO_EXTERN int asyncio_udp_poll_send_to(asyncio_udp_socket *s, asyncio_context *cx,
                                            const void *buf, size_t len, const asyncio_sockaddr *to,
                                            size_t *n_out);

/**
 * Receives one datagram: 0 with *n_out bytes copied into buf (at most
 * len), the sender in *from (if non-NULL) and *truncated (if non-NULL)
 * telling whether the datagram was longer than len (see "Truncation"
 * above: the rest is discarded, it is not an error); ASYNCIO_PENDING
 * (cx's waker stored in the read slot); or an error: ASYNCIO_ECONNREFUSED
 * (connected socket, ICMP port unreachable), ASYNCIO_EINVAL (NULL s / cx /
 * n_out, closed socket, buf NULL with len > 0). len == 0 receives (and
 * discards) one datagram, reporting truncation if it was not empty.
 * Never allocates. From a task; one receiver at a time.
 */
ASYNCIO_EXTERN int asyncio_udp_poll_recv_from(asyncio_udp_socket *s, asyncio_context *cx, void *buf,
                                              size_t len, size_t *n_out, asyncio_sockaddr *from,
                                              bool *truncated);

/**
 * As poll_send_to, to the connected peer. Errors: also ASYNCIO_ENOTCONN
 * (not connected: the kernel's EDESTADDRREQ is reported as ENOTCONN), and
 * ASYNCIO_ECONNREFUSED (an earlier datagram hit a closed port).
 */
ASYNCIO_EXTERN int asyncio_udp_poll_send(asyncio_udp_socket *s, asyncio_context *cx,
                                         const void *buf, size_t len, size_t *n_out);

/** As poll_recv_from without the sender (on a connected socket: always the peer). */
ASYNCIO_EXTERN int asyncio_udp_poll_recv(asyncio_udp_socket *s, asyncio_context *cx, void *buf,
                                         size_t len, size_t *n_out, bool *truncated);

/**
 * SO_BROADCAST on or off: needed to send to a broadcast address
 * (255.255.255.255 or a subnet's); without it such sends fail with
 * ASYNCIO_EACCES. 0 or a negative error (ASYNCIO_EINVAL: NULL / closed).
 */
ASYNCIO_EXTERN int asyncio_udp_set_broadcast(asyncio_udp_socket *s, bool on);

/** Reads SO_BROADCAST into *on. 0 or a negative error. */
ASYNCIO_EXTERN int asyncio_udp_broadcast(const asyncio_udp_socket *s, bool *on);

/**
 * Joins the multicast group `group` (an IPv4 224.0.0.0/4 or IPv6 ff00::/8
 * address of the socket's family; its port is ignored) on the interface
 * with index `ifindex` (0: the kernel picks it from the routing table,
 * which needs a route for the group; if_nametoindex(3) gives an index).
 * Datagrams sent to the group and the socket's port are then received.
 *
 * Errors: ASYNCIO_EINVAL (NULL, closed, not a multicast address, family
 * unlike the socket's), -ENODEV (no such interface, or ifindex 0 and no
 * multicast route), ASYNCIO_EADDRINUSE (already a member),
 * ASYNCIO_ENOBUFS (membership limit), ASYNCIO_ENOTSUP (ifindex != 0 on
 * systems without ip_mreqn). Not concurrently with close.
 */
ASYNCIO_EXTERN int asyncio_udp_join_multicast(asyncio_udp_socket *s, const asyncio_sockaddr *group,
                                              unsigned ifindex);

/**
 * Leaves a group joined with the same group and ifindex. Errors: as join;
 * ASYNCIO_EADDRNOTAVAIL (not a member). Closing the socket leaves every
 * group anyway.
 */
ASYNCIO_EXTERN int asyncio_udp_leave_multicast(asyncio_udp_socket *s, const asyncio_sockaddr *group,
                                               unsigned ifindex);

/**
 * Whether the socket's own multicast datagrams loop back to local members
 * (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP; default on). 0 or a negative
 * error (ASYNCIO_EINVAL: NULL / closed). Not concurrently with close.
 */
ASYNCIO_EXTERN int asyncio_udp_set_multicast_loop(asyncio_udp_socket *s, bool on);

/**
 * TTL (IPv4) / hop limit (IPv6) of outgoing multicast, 0-255 (default 1).
 * 0 or a negative error (ASYNCIO_EINVAL: NULL / closed / above 255).
 */
ASYNCIO_EXTERN int asyncio_udp_set_multicast_ttl(asyncio_udp_socket *s, unsigned ttl);

/**
 * The interface outgoing multicast leaves by, as an index (0: the routing
 * table decides). 0 or a negative error (ASYNCIO_EINVAL: NULL / closed;
 * -ENODEV: no such interface; ASYNCIO_ENOTSUP: ifindex != 0 for IPv4 on
 * systems without ip_mreqn).
 */
ASYNCIO_EXTERN int asyncio_udp_set_multicast_interface(asyncio_udp_socket *s, unsigned ifindex);

/**
 * The bound address (with the kernel-chosen port) into *out. 0 or a
 * negative error (ASYNCIO_EINVAL: NULL / closed). Any thread.
 */
ASYNCIO_EXTERN int asyncio_udp_local_addr(const asyncio_udp_socket *s, asyncio_sockaddr *out);

/** The connected peer into *out. ASYNCIO_ENOTCONN if not connected, ASYNCIO_EINVAL. Any thread. */
ASYNCIO_EXTERN int asyncio_udp_peer_addr(const asyncio_udp_socket *s, asyncio_sockaddr *out);

/**
 * Deregisters the socket (its stored wakers are dropped, not woken) and
 * closes it; the socket becomes closed (fd == -1) and closing again is a
 * no-op. Returns 0 or a deregistration / close error (closed anyway).
 * Runtime thread, never concurrently with another call on the socket.
 */
ASYNCIO_EXTERN int asyncio_udp_close(asyncio_udp_socket *s);

ASYNCIO_END_DECLS

#endif
