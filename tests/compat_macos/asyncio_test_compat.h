/*
 * TEST-ONLY compatibility for building the Linux-centric test programs for macOS
 * (make check-macos: they are compiled and linked, never run; docs/backends.md).
 * Force-included (-include) into the test and example_test translation units on
 * non-Linux targets only: the library itself never sees it.
 *
 *   SOCK_NONBLOCK / SOCK_CLOEXEC on socket() / socketpair(), accept4(), pipe2():
 *       real emulations with fcntl(2) (not atomic with respect to fork);
 *   prlimit(), and <sys/eventfd.h>, <sys/prctl.h> (beside this file): fail with ENOSYS;
 *   struct stat's st_mtim: macOS's st_mtimespec.
 */
#ifndef ASYNCIO_TEST_COMPAT_H
#define ASYNCIO_TEST_COMPAT_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define st_mtim st_mtimespec

static inline int prlimit(pid_t pid, int resource, const struct rlimit *new_limit,
                          struct rlimit *old_limit)
{
    (void)pid;
    (void)resource;
    (void)new_limit;
    (void)old_limit;
    errno = ENOSYS;
    return -1;
}

#ifndef SOCK_NONBLOCK
#define SOCK_NONBLOCK 0x10000000
#define SOCK_CLOEXEC  0x20000000

static inline int compat_set_flags(int fd, int flags)
{
    if ((flags & SOCK_NONBLOCK) != 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -1;
    }
    if ((flags & SOCK_CLOEXEC) != 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

static inline int compat_fail_close(int fd)
{
    int err = errno;
    close(fd);
    errno = err;
    return -1;
}

static inline int compat_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), protocol);
    if (fd >= 0 && compat_set_flags(fd, type) < 0)
        return compat_fail_close(fd);
    return fd;
}

static inline int compat_socketpair(int domain, int type, int protocol, int sv[2])
{
    if (socketpair(domain, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), protocol, sv) < 0)
        return -1;
    if (compat_set_flags(sv[0], type) < 0 || compat_set_flags(sv[1], type) < 0) {
        compat_fail_close(sv[1]);
        return compat_fail_close(sv[0]);
    }
    return 0;
}

static inline int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int c = accept(fd, addr, len);
    if (c >= 0 && compat_set_flags(c, flags) < 0)
        return compat_fail_close(c);
    return c;
}

static inline int pipe2(int fds[2], int flags)
{
    if (pipe(fds) < 0)
        return -1;
    int sock_flags =
        ((flags & O_NONBLOCK) ? SOCK_NONBLOCK : 0) | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0);
    if (compat_set_flags(fds[0], sock_flags) < 0 || compat_set_flags(fds[1], sock_flags) < 0) {
        compat_fail_close(fds[1]);
        return compat_fail_close(fds[0]);
    }
    return 0;
}

#define socket(d, t, p)         compat_socket(d, t, p)
#define socketpair(d, t, p, sv) compat_socketpair(d, t, p, sv)
#endif /* !SOCK_NONBLOCK */

#endif
