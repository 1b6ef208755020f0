/*
 * The OS-call table (POSIX): every system call the platform layer and the
 * epoll / poll backends make for sockets, pipes, the wake-up channel, the
 * poller and the monotonic clock goes through one process-wide struct of
 * function pointers, `asyncio__os`.
 *
 * Production (os_table.c): the libc functions themselves, so a call costs one
 * pointer load and an indirect call next to a system call; except on 64-bit
 * Linux, where the I/O-path calls (read, write, recv, send, recvmsg, sendmsg,
 * sendto, accept4, connect, close, epoll_ctl, epoll_wait, poll) are raw
 * system calls (x86-64: inline; elsewhere syscall(2)). libc's wrappers of
 * those are cancellation points, which in a multi-threaded process cost two
 * atomic read-modify-writes of the thread's cancel state per call; the library's threads are never
 * cancelled, so it skips them (a pthread_cancel() of a thread blocked in
 * block_on is therefore not acted on in these calls). clock_gettime stays
 * libc (vDSO). ASan / TSan builds keep libc for all members, so the
 * sanitizers' interceptors still see every call (os_table.c says why).
 * Tests: tests/support/fault_inject.c swaps in wrappers that inject EINTR,
 * spurious EAGAIN, short transfers, resets, fd exhaustion and clock jumps
 * (docs/testing.md, "Fault plans"); tests/sim/ swaps in a simulated OS.
 *
 * Members have the libc signatures and conventions (-1 + errno). Callers
 * (socket.c, socket_dgram.c, fd_io.c, clock.c, notify_*.c, pipe_*.c,
 * epoll.c, poll.c) turn those into negative codes as before.
 *
 * Not public: the symbol is hidden in the shared library; the static library
 * exposes it to the test programs only. Thread-safety: the members are read
 * without synchronisation by every thread; replace the table (assign the
 * whole struct or single members) only while no thread uses the library, and
 * restore asyncio__os_libc before freeing whatever the replacement uses.
 * Windows has its own platform files and no table.
 */
#ifndef ASYNCIO_PLATFORM_OS_TABLE_H
#define ASYNCIO_PLATFORM_OS_TABLE_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#if defined(__linux__)
#include <sys/epoll.h>
#endif

typedef struct asyncio__os_table {
    /* byte streams: fd_io.c, notify_*.c, socket.c (vectored writes are sendmsg) */
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
    ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
    ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    ssize_t (*sendto)(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                      socklen_t tolen);
    /* sockets: socket.c, socket_dgram.c */
    int (*socket)(int family, int type, int protocol);
    int (*socketpair)(int family, int type, int protocol, int fds[2]);
    /* accept4 where the OS has it (Linux); elsewhere accept(2) with flags ignored (0). */
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int fd, int backlog);
    int (*shutdown)(int fd, int how);
    int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
    int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
    int (*getsockname)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*getpeername)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*close)(int fd);
    /* pipes, wake-up channel: pipe_*.c, notify_*.c (NULL where the OS lacks the call) */
    int (*pipe)(int fds[2]);
    int (*pipe2)(int fds[2], int flags);
    int (*eventfd)(unsigned initval, int flags);
    /* pollers: poll.c, epoll.c */
    int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
#if defined(__linux__)
    int (*epoll_create1)(int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
    int (*epoll_wait)(int epfd, struct epoll_event *evs, int max, int timeout_ms);
#endif
    /* CLOCK_MONOTONIC reads: clock.c (timer deadlines, poller timeouts) */
    int (*clock_gettime)(clockid_t id, struct timespec *ts);
} asyncio__os_table;

/** The table every call site uses; starts as a copy of asyncio__os_libc. */
extern asyncio__os_table asyncio__os;
/**
 * The production functions (libc, or raw system calls as above), for restoring
 * asyncio__os and for wrappers that call through.
 */
extern const asyncio__os_table asyncio__os_libc;

#endif
