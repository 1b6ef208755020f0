/*
 * The OS-call table's production contents (os_table.h).
 *
 * Everywhere: the libc functions. glibc with _GNU_SOURCE declares the
 * sockaddr arguments as transparent unions, so those calls get one-line
 * forwarding functions here that the compiler turns into a plain jump.
 *
 * 64-bit Linux: the calls on the I/O path — read, write, recv, send, recvmsg,
 * sendmsg, sendto, accept4, connect, close, epoll_ctl, epoll_wait, poll — are
 * raw system calls instead (x86-64: the syscall instruction inline; other
 * 64-bit ABIs: syscall(2)). The libc wrappers of those are POSIX
 * cancellation points: once the process has a second thread (a multi-thread
 * runtime's workers, the blocking pool, the observer thread of track_tasks /
 * the stall detector), glibc brackets every one of them with
 * __pthread_enable/disable_asynccancel, atomic read-modify-writes on the
 * thread's cancel state: about 370 instructions per current-thread echo
 * round trip with the observer thread (docs/observability.md, "Cost"). The
 * library's own threads are never cancelled, so it needs none of that; the
 * consequence for users is that pthread_cancel() of a thread blocked in
 * asyncio_runtime_block_on is not acted on at these calls
 * (docs/architecture.md, "OS-call table"). clock_gettime stays libc: it is
 * a vDSO call, far cheaper than a system call.
 *
 * Where the raw calls are not used (libc instead):
 * - 32-bit ABIs: syscall(2) takes long arguments, 32-bit time and socketcall
 *   conversions live in libc; the gain is not worth the cases.
 * - ABIs with socketcall(2) (s390x): their direct socket system calls only
 *   appeared in Linux 4.3.
 * - sendmsg / recvmsg when libc's struct msghdr / cmsghdr is not the
 *   kernel's (musl on 64-bit: int lengths plus padding that musl's wrappers
 *   zero before the call).
 * - ASan / TSan / MSan builds: the sanitizers see system calls through their
 *   libc interceptors (ASan checks the buffers the kernel fills, TSan takes
 *   file-descriptor synchronisation and close/use races from them).
 */
#include "platform/os_table.h"

#include <unistd.h>

#if defined(__linux__)
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define OS_SANITIZED 1
#endif
#endif

#if defined(__linux__) && defined(__LP64__) && !defined(SYS_socketcall) && !defined(OS_SANITIZED)
#define OS_RAW_SYSCALLS 1
#endif

static int os_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return bind(fd, addr, len);
}

static int os_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    return getsockname(fd, addr, len);
}

static int os_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    return getpeername(fd, addr, len);
}

#if defined(OS_RAW_SYSCALLS)
/*
 * Raw system calls return -1 and set errno like the wrappers. Every argument
 * is passed as a long: an int left in a 64-bit register would carry undefined
 * upper bits, and syscall(2) reads longs.
 *
 * x86-64: inline, the `syscall` instruction itself (number in rax, arguments
 * in rdi rsi rdx r10 r8 r9, result in rax, rcx and r11 clobbered; -4095..-1
 * is -errno), so a call costs what libc's single-threaded path does.
 * syscall(2) would add a call, a shuffle of seven registers and a return:
 * about 15 instructions per call, 2.4% of a current-thread echo round trip.
 * Other 64-bit ABIs: syscall(2).
 */
#define ARG(x) ((long)(x))
#define PTR(p) ((long)(uintptr_t)(p))

#if defined(__x86_64__)
/* The error path, out of line so the success path keeps no register saved. */
__attribute__((noinline, cold)) static long raw_fail(long ret)
{
    errno = (int)-ret;
    return -1;
}

static inline long raw_syscall(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return (unsigned long)ret > (unsigned long)-4096L ? raw_fail(ret) : ret;
}
#else
#define raw_syscall syscall
#endif

/* The kernel's sigset size for epoll_pwait / ppoll (ignored with a NULL mask). */
#if defined(_NSIG)
#define KERNEL_SIGSET_SIZE ARG(_NSIG / 8)
#else
#define KERNEL_SIGSET_SIZE ARG(8)
#endif

/* libc's struct msghdr / cmsghdr is the kernel's user_msghdr / cmsghdr (glibc: yes; musl: no). */
#define MSGHDR_IS_KERNEL_LAYOUT                                        \
    (sizeof(((struct msghdr *)0)->msg_iovlen) == sizeof(size_t) &&     \
     sizeof(((struct msghdr *)0)->msg_controllen) == sizeof(size_t) && \
     sizeof(((struct cmsghdr *)0)->cmsg_len) == sizeof(size_t))

static ssize_t raw_read(int fd, void *buf, size_t len)
{
    return raw_syscall(SYS_read, ARG(fd), PTR(buf), ARG(len), 0L, 0L, 0L);
}

static ssize_t raw_write(int fd, const void *buf, size_t len)
{
    return raw_syscall(SYS_write, ARG(fd), PTR(buf), ARG(len), 0L, 0L, 0L);
}

static ssize_t raw_recv(int fd, void *buf, size_t len, int flags)
{
    return raw_syscall(SYS_recvfrom, ARG(fd), PTR(buf), ARG(len), ARG(flags), 0L, 0L);
}

static ssize_t raw_send(int fd, const void *buf, size_t len, int flags)
{
    return raw_syscall(SYS_sendto, ARG(fd), PTR(buf), ARG(len), ARG(flags), 0L, 0L);
}

static ssize_t raw_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                          socklen_t tolen)
{
    return raw_syscall(SYS_sendto, ARG(fd), PTR(buf), ARG(len), ARG(flags), PTR(to), ARG(tolen));
}

static ssize_t raw_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!MSGHDR_IS_KERNEL_LAYOUT) /* a constant: one of the two lines is compiled */
        return recvmsg(fd, msg, flags);
    return raw_syscall(SYS_recvmsg, ARG(fd), PTR(msg), ARG(flags), 0L, 0L, 0L);
}

static ssize_t raw_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!MSGHDR_IS_KERNEL_LAYOUT)
        return sendmsg(fd, msg, flags);
    return raw_syscall(SYS_sendmsg, ARG(fd), PTR(msg), ARG(flags), 0L, 0L, 0L);
}

static int raw_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return (int)raw_syscall(SYS_accept4, ARG(fd), PTR(addr), PTR(len), ARG(flags), 0L, 0L);
}

static int raw_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return (int)raw_syscall(SYS_connect, ARG(fd), PTR(addr), ARG(len), 0L, 0L, 0L);
}

/* Like glibc's close: EINTR is returned (the fd is closed anyway on Linux; socket.c knows). */
static int raw_close(int fd)
{
    return (int)raw_syscall(SYS_close, ARG(fd), 0L, 0L, 0L, 0L, 0L);
}

static int raw_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return (int)raw_syscall(SYS_epoll_ctl, ARG(epfd), ARG(op), ARG(fd), PTR(ev), 0L, 0L);
}

static int raw_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
#if defined(SYS_epoll_wait)
    return (int)raw_syscall(SYS_epoll_wait, ARG(epfd), PTR(evs), ARG(max), ARG(timeout_ms), 0L, 0L);
#else /* aarch64, riscv64, loongarch64: only epoll_pwait, which with a NULL mask is the same */
    return (int)raw_syscall(SYS_epoll_pwait, ARG(epfd), PTR(evs), ARG(max), ARG(timeout_ms), 0L,
                            KERNEL_SIGSET_SIZE);
#endif
}

static int raw_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
#if defined(SYS_poll)
    return (int)raw_syscall(SYS_poll, PTR(fds), ARG(n), ARG(timeout_ms), 0L, 0L, 0L);
#else /* only ppoll: a negative timeout is "forever" (NULL), else the ms as a timespec */
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    return (int)raw_syscall(SYS_ppoll, PTR(fds), ARG(n), PTR(tsp), 0L, KERNEL_SIGSET_SIZE, 0L);
#endif
}

#define OS_IO_CALLS                                                                               \
    .read = raw_read, .write = raw_write, .recv = raw_recv, .send = raw_send,                     \
    .recvmsg = raw_recvmsg, .sendmsg = raw_sendmsg, .sendto = raw_sendto, .accept4 = raw_accept4, \
    .connect = raw_connect, .close = raw_close, .poll = raw_poll, .epoll_ctl = raw_epoll_ctl,     \
    .epoll_wait = raw_epoll_wait,
#else
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

static ssize_t os_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                         socklen_t tolen)
{
    return sendto(fd, buf, len, flags, to, tolen);
}

#if defined(__linux__)
#define OS_EPOLL_IO_CALLS .epoll_ctl = epoll_ctl, .epoll_wait = epoll_wait,
#else
#define OS_EPOLL_IO_CALLS
#endif
#define OS_IO_CALLS                                                                        \
    .read = read, .write = write, .recv = recv, .send = send, .recvmsg = recvmsg,          \
    .sendmsg = sendmsg, .sendto = os_sendto, .accept4 = os_accept4, .connect = os_connect, \
    .close = close, .poll = poll, OS_EPOLL_IO_CALLS
#endif

#if defined(__linux__)
static int os_eventfd(unsigned initval, int flags)
{
    return eventfd(initval, flags);
}
#define OS_LINUX_CALLS .pipe2 = pipe2, .eventfd = os_eventfd, .epoll_create1 = epoll_create1,
#else
#define OS_LINUX_CALLS
#endif

/* One initialiser for both tables (a static initialiser cannot copy a const object). */
/* clang-format off */
#define OS_PRODUCTION_TABLE                                                                \
    {                                                                                      \
        OS_IO_CALLS OS_LINUX_CALLS                                                         \
        .socket = socket, .socketpair = socketpair, .bind = os_bind, .listen = listen,     \
        .shutdown = shutdown, .getsockopt = getsockopt, .setsockopt = setsockopt,          \
        .getsockname = os_getsockname, .getpeername = os_getpeername, .pipe = pipe,        \
        .clock_gettime = clock_gettime,                                                    \
    }
/* clang-format on */

const asyncio__os_table asyncio__os_libc = OS_PRODUCTION_TABLE;
asyncio__os_table asyncio__os = OS_PRODUCTION_TABLE;
